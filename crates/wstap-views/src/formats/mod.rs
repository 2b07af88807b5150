//! The formats: text, JSON, hex, and the binary encodings a message may carry
//! (MessagePack, CBOR, Protocol Buffers without a schema). Each turns a whole payload
//! into one item whose tree is the value as JSON.

pub(crate) mod cbor;
pub(crate) mod msgpack;
pub(crate) mod protobuf;

use crate::render::{compact, cut, hex, SUMMARY_VALUE_CHARS};
use crate::{Decoded, Item, Problem, View};
use serde_json::Value;

/// One item with `tree`, summarised as the view's tag and the value on one line.
pub(crate) fn one(view: View, tree: Value) -> Decoded {
    let summary = format!("{} {}", view.tag(), compact(&tree));
    Decoded {
        view,
        items: vec![Item {
            summary,
            tree,
            call: None,
        }],
        problem: None,
    }
}

/// The payload as hexadecimal: what every view falls back to.
pub(crate) fn hex_item(payload: &[u8]) -> Item {
    let shown = &payload[..payload.len().min(32)];
    let more = if payload.len() > shown.len() {
        "…"
    } else {
        ""
    };
    Item {
        summary: format!("HEX {}{more} ({} bytes)", hex(shown), payload.len()),
        tree: Value::String(hex(payload)),
        call: None,
    }
}

/// The hex view.
pub(crate) fn hex_view(payload: &[u8]) -> Decoded {
    Decoded {
        view: View::Hex,
        items: vec![hex_item(payload)],
        problem: None,
    }
}

/// The text view: UTF-8 as it is; anything else falls back to hex.
pub(crate) fn text(payload: &[u8]) -> Decoded {
    match std::str::from_utf8(payload) {
        Ok(text) => Decoded {
            view: View::Text,
            items: vec![Item {
                summary: format!("TEXT {}", cut(text, SUMMARY_VALUE_CHARS)),
                tree: Value::String(text.to_owned()),
                call: None,
            }],
            problem: None,
        },
        Err(e) => fallback(
            View::Text,
            payload,
            Problem::new(e.valid_up_to(), "not UTF-8"),
        ),
    }
}

/// The JSON view.
pub(crate) fn json(payload: &[u8]) -> Decoded {
    match parse_json(payload) {
        Ok(value) => one(View::Json, value),
        Err(problem) => fallback(View::Json, payload, problem),
    }
}

/// A payload parsed as JSON, or where it stops being JSON.
pub(crate) fn parse_json(payload: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(payload).map_err(|e| {
        Problem::new(
            byte_offset(payload, e.line(), e.column()),
            json_error_text(&e),
        )
    })
}

/// serde_json's message without its own ` at line L column C`.
fn json_error_text(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The byte offset of a 1-based line and column (serde_json counts bytes in a line).
fn byte_offset(payload: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match payload[start..].iter().position(|&b| b == b'\n') {
            Some(nl) => start += nl + 1,
            None => break,
        }
    }
    (start + column.saturating_sub(1)).min(payload.len())
}

/// What a session without a protocol view shows: JSON, else text, else hex.
pub(crate) fn plain(payload: &[u8]) -> Decoded {
    if looks_like_json(payload) {
        if let Ok(value) = serde_json::from_slice::<Value>(payload) {
            return one(View::Json, value);
        }
    }
    match std::str::from_utf8(payload) {
        Ok(_) => text(payload),
        Err(_) => hex_view(payload),
    }
}

/// Whether the first byte that is not white space opens a JSON object or array.
pub(crate) fn looks_like_json(payload: &[u8]) -> bool {
    payload
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['))
}

/// `view` could not read `payload`: say why, and show it as hex.
pub(crate) fn fallback(view: View, payload: &[u8], problem: Problem) -> Decoded {
    Decoded {
        view,
        items: vec![hex_item(payload)],
        problem: Some(problem),
    }
}

/// The whole payload as one value of a binary format: every value it holds, one after
/// another (an array of them when there are several).
pub(crate) fn binary_format(
    view: View,
    payload: &[u8],
    read_one: impl Fn(&[u8]) -> Result<(Value, usize), Problem>,
) -> Decoded {
    let mut values = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        match read_one(&payload[at..]) {
            Ok((value, used)) if used > 0 => {
                values.push(value);
                at += used;
            }
            Ok(_) => return fallback(view, payload, Problem::new(at, "no value here")),
            Err(problem) => {
                let problem = Problem::new(at + problem.at, problem.what);
                return fallback(view, payload, problem);
            }
        }
    }
    match values.len() {
        0 => fallback(view, payload, Problem::new(0, "empty payload")),
        1 => one(view, values.pop().unwrap_or(Value::Null)),
        _ => one(view, Value::Array(values)),
    }
}
