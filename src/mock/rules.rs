//! `wstap mock --rules FILE`: rules (docs/rules.md) that decide a client's message before
//! it is matched with the recording. A rule whose filter selects the message rewrites it
//! first (`replace`: an id the client makes up, set to the recorded one, matches again),
//! waits its `delay`, then answers it itself (`respond`: a mock of a call the recording
//! lacks), ignores it (`drop`), closes (`close`, with its code and reason) or drops the
//! connection (`abort`); a rule that only rewrites lets the message be matched as
//! rewritten. Timers, conditions and `break` need a proxy and are refused.

use crate::AppError;
use std::path::Path;
use wstap_control::{Outcome, Rule, SessionInfo};
use wstap_filter::{Origin, RecordFacts, RecordKind};
use wstap_wire::{Direction, Opcode};

/// The rules a mock applies, in order.
#[derive(Debug, Default)]
pub struct MockRules {
    rules: Vec<Rule>,
}

impl MockRules {
    /// The rules in `path`, or what in them a mock cannot do, on one line.
    pub fn load(path: &Path) -> Result<MockRules, AppError> {
        let set = crate::rules::load(path).map_err(AppError::BadInput)?;
        let refuse = |what: &str| {
            Err(AppError::BadInput(format!(
                "{}: {what} need a proxy: a mock's rules rewrite, delay, respond, drop, close or abort",
                path.display()
            )))
        };
        if !set.timers.is_empty() {
            return refuse("timers");
        }
        if !set.conditions.is_empty() {
            return refuse("network conditions");
        }
        if set.rules.iter().any(|r| r.outcome == Outcome::Break) {
            return refuse("rules that break (hold for a person)");
        }
        Ok(MockRules { rules: set.rules })
    }

    /// The first rule that selects the client's data message (`opcode`, `data`) on the
    /// session `info` describes, and the message as it rewrote it.
    pub fn first_match(
        &self,
        info: &SessionInfo,
        opcode: Opcode,
        data: &[u8],
        time_us: i64,
    ) -> Option<(&Rule, Vec<u8>)> {
        if self.rules.is_empty() {
            return None;
        }
        let record = RecordFacts {
            kind: RecordKind::Message,
            dir: Direction::ClientToServer,
            opcode: opcode.bits(),
            flags: 0x80 | opcode.bits(),
            masked: true,
            len: data.len() as u64,
            frames: 1,
            compressed: false,
            close: None,
            time_us,
            violations: &[],
            payload: data,
            stream: None,
            fate: None,
            tags: "",
            origin: Origin::Wire,
            dropped: false,
        };
        let facts = info.facts();
        let rule = self
            .rules
            .iter()
            .find(|rule| rule.filter.matches_record(&facts, &record))?;
        Some((rule, rule.rewrite(opcode, data)))
    }
}
