//! How rows spell what frames and messages carry. Frames and messages come in either of
//! their two forms, a live wire record (from the bus) or a trace event (from `wstap
//! import`), both read through `wstap_trace::view`: so a capture of a run and the import
//! of its trace hold the same rows.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use wstap_trace::view::Violations;
use wstap_wire::{Direction, FrameHeader, LengthEncoding, Violation};

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
    Some(serde_json::to_string(&stored_violations(violations)).unwrap_or_default())
}

fn stored_violations<'a>(violations: &'a Violations<'_>) -> Vec<StoredViolation<'a>> {
    violations
        .described()
        .into_iter()
        .map(|(code, text)| StoredViolation {
            code: Cow::Borrowed(code),
            text,
        })
        .collect()
}

/// What few frames have, kept in one column of `frame_rows` (`rare`): a close frame's
/// code and reason, and a frame's violations. The `frames` view spells them as columns.
#[derive(Debug, Serialize)]
struct Rare<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    close_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    close_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    violations: Vec<StoredViolation<'a>>,
}

/// A frame's `rare` column: `None` for a frame that is no close frame and broke no rule,
/// as nearly every frame.
pub(crate) fn rare_json(
    close: Option<(Option<u16>, &str)>,
    violations: &Violations<'_>,
) -> Option<String> {
    if close.is_none() && violations.is_empty() {
        return None;
    }
    let rare = Rare {
        close_code: close.and_then(|(code, _)| code),
        close_reason: close.map(|(_, reason)| reason),
        violations: stored_violations(violations),
    };
    Some(serde_json::to_string(&rare).unwrap_or_default())
}

/// A frame's `head` in `frame_rows`: its flags byte (bits 0-7), its length's encoding
/// (bits 8-9: 0 for 7 bits, 1 for 16, 2 for 64), its direction (bit 10 set for
/// server to client), whether it is masked (bit 11) and its masking key (bits 16-47, the
/// key's four bytes read big-endian).
pub(crate) fn frame_head(dir: Direction, header: &FrameHeader) -> i64 {
    let length = match header.length_encoding() {
        LengthEncoding::Bits7 => 0,
        LengthEncoding::Bits16 => 1,
        LengthEncoding::Bits64 => 2,
    };
    let s2c = match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    };
    let mask = header
        .mask()
        .map_or(0, |key| 1 << 11 | i64::from(u32::from_be_bytes(key)) << 16);
    i64::from(header.first_byte()) | length << 8 | s2c << 10 | mask
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
