//! How rows spell what frames and messages carry. Frames and messages come in either of
//! their two forms, a live wire record (from the bus) or a trace event (from `wstap
//! import`), both read through `wstap_trace::view`: so a capture of a run and the import
//! of its trace hold the same rows.

use wstap_trace::view::Violations;
use wstap_wire::Direction;

/// Violations as the store keeps them: a JSON array of `code: description`, or `None`.
pub(crate) fn violations_json(violations: &Violations<'_>) -> Option<String> {
    (!violations.is_empty()).then(|| serde_json::to_string(&violations.texts()).unwrap_or_default())
}

/// A direction's name in the store.
pub(crate) fn dir_name(dir: Direction) -> &'static str {
    dir.short()
}

/// The violations in a frame's JSON list that are about its message, or `None`.
pub(crate) fn message_violations(json: &str) -> Option<Vec<String>> {
    let all: Vec<String> = serde_json::from_str(json).ok()?;
    let about: Vec<String> = all
        .into_iter()
        .filter(|v| wstap_trace::view::is_about_message(v))
        .collect();
    (!about.is_empty()).then_some(about)
}
