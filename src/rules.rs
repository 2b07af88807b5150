//! `--rules FILE`: the rules file read for the proxy (the language is
//! `wstap_control::parse_rules`'s; `docs/rules.md`).

use std::path::Path;
use wstap_control::RuleSet;

/// The rules and timers in `path`, or the mistake as `FILE:LINE:COLUMN: what` on one line.
pub fn load(path: &Path) -> Result<RuleSet, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
    wstap_control::parse_rules(&text).map_err(|e| format!("{}:{e}", path.display()))
}
