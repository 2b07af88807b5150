//! How rows spell what frames and messages carry. Frames and messages come in either of
//! their two forms, a live wire record (from the bus) or a trace event (from `wstap
//! import`), both read through `wstap_trace::view`: so a capture of a run and the import
//! of its trace hold the same rows.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use wstap_trace::view::Violations;
use wstap_wire::{Direction, Violation};

/// One violation as the store keeps it: `{"code": ..., "text": ...}`, the code first (the
/// filters' SQL finds a code by that prefix).
#[derive(Debug, Serialize, Deserialize)]
struct StoredViolation<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
    #[serde(borrow)]
    text: Cow<'a, str>,
}

/// Violations as the store keeps them: a JSON array of objects, or `None` when there are
/// none.
pub(crate) fn violations_json(violations: &Violations<'_>) -> Option<String> {
    if violations.is_empty() {
        return None;
    }
    let stored: Vec<StoredViolation<'_>> = violations
        .described()
        .into_iter()
        .map(|(code, text)| StoredViolation {
            code: Cow::Borrowed(code),
            text,
        })
        .collect();
    Some(serde_json::to_string(&stored).unwrap_or_default())
}

/// A stored list of violations as events spell them, `code: description`; nothing when
/// the column is `NULL` or not such a list.
pub(crate) fn violation_texts(json: Option<&str>) -> Vec<String> {
    json.and_then(|json| serde_json::from_str::<Vec<StoredViolation<'_>>>(json).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|v| match v.text.is_empty() {
            true => v.code.into_owned(),
            false => format!("{}: {}", v.code, v.text),
        })
        .collect()
}

/// A direction's name in the store.
pub(crate) fn dir_name(dir: Direction) -> &'static str {
    dir.short()
}

/// The violations in a frame's stored list that are about its message, as a stored list;
/// `None` when there are none.
pub(crate) fn message_violations(json: &str) -> Option<String> {
    let all: Vec<StoredViolation<'_>> = serde_json::from_str(json).ok()?;
    let about: Vec<StoredViolation<'_>> = all
        .into_iter()
        .filter(|v| Violation::MESSAGE_CODES.contains(&v.code.as_ref()))
        .collect();
    (!about.is_empty()).then(|| serde_json::to_string(&about).unwrap_or_default())
}
