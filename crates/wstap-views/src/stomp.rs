//! STOMP 1.0 to 1.2 frames: a command line, `name:value` header lines, an empty line, the
//! body, and a NUL. Lines end with LF or CR LF; a `content-length` header gives the body's
//! length (it may then hold NULs), else the body ends at the first NUL. A message may hold
//! several frames, and a lone end of line is a heart-beat. Header values are unescaped as
//! STOMP 1.2 says (`\\`, `\n`, `\r`, `\c`), except in CONNECT and CONNECTED frames.
//!
//! A frame with a `receipt` header is a call, and the RECEIPT with that `receipt-id`
//! answers it; CONNECT (or STOMP) is answered by CONNECTED or ERROR.

use crate::render::{bytes_value, cut, SUMMARY_VALUE_CHARS};
use crate::{Call, Decoded, Item, Problem, Role, View};
use serde_json::{json, Map, Value};

/// Decodes one message's frames.
pub(crate) fn decode(payload: &[u8]) -> Decoded {
    let mut items = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        // Heart-beats (and the optional EOLs after a frame's NUL).
        if payload[at] == b'\n' {
            items.push(heartbeat());
            at += 1;
            continue;
        }
        if payload[at..].starts_with(b"\r\n") {
            items.push(heartbeat());
            at += 2;
            continue;
        }
        match frame(payload, at) {
            Ok((item, end)) => {
                items.push(item);
                at = end;
            }
            Err(problem) => {
                return Decoded {
                    view: View::Stomp,
                    items,
                    problem: Some(problem),
                }
            }
        }
    }
    if items.is_empty() {
        return Decoded::failed(View::Stomp, Problem::new(0, "empty message"));
    }
    Decoded {
        view: View::Stomp,
        items,
        problem: None,
    }
}

fn heartbeat() -> Item {
    Item {
        summary: "STOMP heart-beat".to_owned(),
        tree: json!({ "command": "HEARTBEAT" }),
        call: None,
    }
}

/// One line from `at`: its text (without the end of line) and where the next begins.
fn line(payload: &[u8], at: usize) -> Result<(&str, usize), Problem> {
    let rest = &payload[at..];
    let nl = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| Problem::new(at, "line without an end"))?;
    let raw = &rest[..nl];
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let text =
        std::str::from_utf8(raw).map_err(|e| Problem::new(at + e.valid_up_to(), "not UTF-8"))?;
    Ok((text, at + nl + 1))
}

/// One frame from `at`: its item and where the next begins.
fn frame(payload: &[u8], at: usize) -> Result<(Item, usize), Problem> {
    let (command, mut next) = line(payload, at)?;
    if command.is_empty() || !command.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Problem::new(
            at,
            format!("{:?} is not a STOMP command", cut(command, 20)),
        ));
    }
    let escaped = !matches!(command, "CONNECT" | "CONNECTED");
    let mut headers = Map::new();
    loop {
        let start = next;
        let (header, after) = line(payload, next)?;
        next = after;
        if header.is_empty() {
            break;
        }
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| Problem::new(start, "header without ':'"))?;
        let (name, value) = if escaped {
            (unescape(name), unescape(value))
        } else {
            (name.to_owned(), value.to_owned())
        };
        // The first of a repeated header is the one that counts.
        headers.entry(name).or_insert(Value::String(value));
    }
    let length = headers
        .get("content-length")
        .and_then(Value::as_str)
        .map(|n| {
            n.trim()
                .parse::<usize>()
                .map_err(|_| Problem::new(next, "bad content-length"))
        })
        .transpose()?;
    let body_end = match length {
        Some(length) => next
            .checked_add(length)
            .filter(|&end| payload.get(end) == Some(&0))
            .ok_or_else(|| {
                Problem::new(next, format!("body of {length} bytes and NUL expected"))
            })?,
        None => {
            next + payload[next..]
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| Problem::new(next, "frame without its NUL"))?
        }
    };
    let body = &payload[next..body_end];
    let item = item(command, headers, body);
    Ok((item, body_end + 1))
}

fn unescape(text: &str) -> String {
    if !text.contains('\\') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(':'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn item(command: &str, headers: Map<String, Value>, body: &[u8]) -> Item {
    let header = |name: &str| headers.get(name).and_then(Value::as_str).map(str::to_owned);
    let mut summary = format!("STOMP {}", cut(command, SUMMARY_VALUE_CHARS));
    for (label, name) in [
        ("", "destination"),
        ("sub=", "subscription"),
        ("id=", "id"),
        ("receipt=", "receipt"),
        ("receipt-id=", "receipt-id"),
        ("", "message"),
    ] {
        if let Some(value) = header(name) {
            summary.push(' ');
            summary.push_str(label);
            summary.push_str(&cut(&value, SUMMARY_VALUE_CHARS));
        }
    }
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) => {
                summary.push(' ');
                summary.push_str(&cut(text, SUMMARY_VALUE_CHARS));
            }
            Err(_) => summary.push_str(&format!(" ({} bytes)", body.len())),
        }
    }
    let call = match command {
        "CONNECT" | "STOMP" => Some(Call {
            key: "stomp:connect".to_owned(),
            role: Role::Call,
            name: Some(command.to_owned()),
        }),
        "CONNECTED" => Some(Call {
            key: "stomp:connect".to_owned(),
            role: Role::Answer,
            name: None,
        }),
        // An ERROR answers the frame whose receipt it names, else the CONNECT.
        "ERROR" => Some(Call {
            key: header("receipt-id").map_or("stomp:connect".to_owned(), |id| {
                format!("stomp:receipt:{id}")
            }),
            role: Role::Answer,
            name: None,
        }),
        "RECEIPT" => header("receipt-id").map(|id| Call {
            key: format!("stomp:receipt:{id}"),
            role: Role::Answer,
            name: None,
        }),
        _ => header("receipt").map(|id| Call {
            key: format!("stomp:receipt:{id}"),
            role: Role::Call,
            name: Some(match header("destination") {
                Some(destination) => format!("{command} {destination}"),
                None => command.to_owned(),
            }),
        }),
    };
    let mut tree = json!({ "command": command, "headers": headers });
    if let Some(destination) = header("destination") {
        tree["destination"] = Value::String(destination);
    }
    tree["body"] = if crate::formats::looks_like_json(body) {
        serde_json::from_slice(body).unwrap_or_else(|_| bytes_value(body))
    } else {
        bytes_value(body)
    };
    Item {
        summary,
        tree,
        call,
    }
}
