//! Socket.IO over Engine.IO, as the WebSocket transport carries them.
//!
//! A text message is one Engine.IO packet: a digit for its type (`0` open, `1` close,
//! `2` ping, `3` pong, `4` message, `5` upgrade, `6` noop) and its data. A `4` carries a
//! Socket.IO packet: a digit for its type (`0` CONNECT, `1` DISCONNECT, `2` EVENT, `3` ACK,
//! `4` CONNECT_ERROR, `5` BINARY_EVENT, `6` BINARY_ACK), then, all optional and in this
//! order, the number of binary attachments and `-`, a namespace starting with `/` and
//! ending with `,`, an ack id (digits), and JSON data. Engine.IO v3 writes text packets the
//! same way (there the client pings, v4's server does).
//!
//! A binary message is an attachment of the BINARY_EVENT or BINARY_ACK before it (in
//! Engine.IO v3, which a session's URL asks for with `EIO=3`, after a `0x04` byte: the
//! message packet type); the
//! [`crate::SessionDecoder`] joins attachments to the placeholders
//! (`{"_placeholder":true,"num":N}`) that stand for them. An event with an ack id is a
//! call; the ACK with the same id in the same namespace answers it.

use crate::render::{arguments, cut, hex, plain, SUMMARY_VALUE_CHARS};
use crate::{Call, Item, Problem, Role};
use serde_json::{json, Map, Value};

/// The most binary attachments a packet may announce (more is not Socket.IO's use, and
/// would have the session's decoder wait for them).
const MAX_ATTACHMENTS: usize = 64;

/// A text message, decoded: its item and how many binary attachments follow it.
pub(crate) struct Packet {
    pub(crate) item: Item,
    pub(crate) attachments: usize,
}

/// Decodes a text message.
pub(crate) fn decode_text(text: &str) -> Result<Packet, Problem> {
    let mut chars = text.char_indices();
    let Some((_, kind)) = chars.next() else {
        return Err(Problem::new(0, "empty packet"));
    };
    let data = &text[kind.len_utf8()..];
    let engine = match kind {
        '0' => "open",
        '1' => "close",
        '2' => "ping",
        '3' => "pong",
        '4' => return socket_packet(data),
        '5' => "upgrade",
        '6' => "noop",
        other => return Err(Problem::new(0, format!("Engine.IO packet type {other:?}"))),
    };
    let mut tree = json!({ "engine": engine, "type": engine });
    let mut summary = format!("ENGINE.IO {engine}");
    if !data.is_empty() {
        match serde_json::from_str::<Value>(data) {
            Ok(value) => {
                if let Some(sid) = value.get("sid").and_then(Value::as_str) {
                    summary.push_str(&format!(" sid={sid}"));
                }
                tree["data"] = value;
            }
            Err(_) => {
                summary.push(' ');
                summary.push_str(&cut(data, SUMMARY_VALUE_CHARS));
                tree["data"] = Value::String(data.to_owned());
            }
        }
    }
    Ok(Packet {
        item: Item {
            summary,
            tree,
            call: None,
        },
        attachments: 0,
    })
}

/// The Socket.IO packet inside an Engine.IO message (`data` after the `4`).
fn socket_packet(data: &str) -> Result<Packet, Problem> {
    // Offsets in problems count from the payload's start: the `4` is one byte.
    let bytes = data.as_bytes();
    let Some(&kind) = bytes.first() else {
        return Err(Problem::new(1, "message without a Socket.IO packet"));
    };
    let name = match kind {
        b'0' => "connect",
        b'1' => "disconnect",
        b'2' => "event",
        b'3' => "ack",
        b'4' => "connect_error",
        b'5' => "binary_event",
        b'6' => "binary_ack",
        other => {
            return Err(Problem::new(
                1,
                format!("Socket.IO packet type {:?}", char::from(other)),
            ))
        }
    };
    let mut at = 1;
    let mut attachments = 0usize;
    if matches!(kind, b'5' | b'6') {
        let digits = count_digits(&bytes[at..]);
        if digits == 0 || bytes.get(at + digits) != Some(&b'-') {
            return Err(Problem::new(1 + at, "attachment count and '-' expected"));
        }
        attachments = data[at..at + digits]
            .parse()
            .ok()
            .filter(|&n| n <= MAX_ATTACHMENTS)
            .ok_or_else(|| {
                Problem::new(1 + at, format!("more than {MAX_ATTACHMENTS} attachments"))
            })?;
        at += digits + 1;
    }
    let mut namespace = "/";
    if bytes.get(at) == Some(&b'/') {
        let end = data[at..].find(',').map(|n| at + n).unwrap_or(data.len());
        namespace = &data[at..end];
        at = (end + 1).min(data.len());
    }
    let digits = count_digits(&bytes[at..]);
    let ack: Option<u64> = if digits > 0 {
        let id = data[at..at + digits]
            .parse()
            .map_err(|_| Problem::new(1 + at, "ack id too large"))?;
        at += digits;
        Some(id)
    } else {
        None
    };
    let payload = match &data[at..] {
        "" => None,
        json_text => Some(
            crate::formats::parse_json(json_text.as_bytes()).map_err(|problem| {
                // Offsets count from the payload's start: the `4`, then what came before.
                Problem::new(1 + at + problem.at, problem.what)
            })?,
        ),
    };

    let mut tree = Map::new();
    tree.insert("engine".into(), json!("message"));
    tree.insert("type".into(), json!(name));
    tree.insert("namespace".into(), json!(namespace));
    if let Some(ack) = ack {
        tree.insert("ack".into(), json!(ack));
    }
    if attachments > 0 {
        tree.insert("attachments".into(), json!(attachments));
    }
    let mut summary = format!("SOCKET.IO {name}");
    let mut event_name = None;
    let namespace_shown = cut(namespace, SUMMARY_VALUE_CHARS);
    match (kind, &payload) {
        (b'2' | b'5', Some(Value::Array(args))) if !args.is_empty() => {
            let event = plain(&args[0]);
            summary = format!("SOCKET.IO event {event}{}", arguments(&args[1..]));
            tree.insert("event".into(), args[0].clone());
            tree.insert("args".into(), Value::Array(args[1..].to_vec()));
            event_name = Some(event);
        }
        (b'3' | b'6', Some(Value::Array(args))) => {
            summary.push_str(&arguments(args));
            tree.insert("args".into(), Value::Array(args.clone()));
        }
        (_, Some(value)) => {
            summary.push(' ');
            summary.push_str(&crate::render::compact(value));
            tree.insert("data".into(), value.clone());
        }
        (_, None) => {}
    }
    if let Some(ack) = ack {
        summary.push_str(&format!(" ack={ack}"));
    }
    if namespace != "/" {
        summary.push_str(&format!(" ns={namespace_shown}"));
    }
    if attachments > 0 {
        summary.push_str(&format!(" +{attachments} binary"));
    }
    let call = ack.and_then(|id| {
        let key = format!("socketio:{namespace}:{id}");
        match kind {
            b'2' | b'5' => Some(Call {
                key,
                role: Role::Call,
                name: event_name,
            }),
            b'3' | b'6' => Some(Call {
                key,
                role: Role::Answer,
                name: None,
            }),
            _ => None,
        }
    });
    Ok(Packet {
        item: Item {
            summary,
            tree: Value::Object(tree),
            call,
        },
        attachments,
    })
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// A binary message: attachment `number` (from 1) of `total` to the packet `of`
/// summarises.
pub(crate) fn attachment(payload: &[u8], number: usize, total: usize, of: &str) -> Item {
    Item {
        summary: format!(
            "SOCKET.IO attachment {number}/{total} ({} bytes) of {of}",
            payload.len()
        ),
        tree: json!({ "type": "attachment", "number": number, "of": total,
                      "data": format!("0x{}", hex(payload)) }),
        call: None,
    }
}

/// A binary message no packet announced.
pub(crate) fn stray_binary(payload: &[u8]) -> Item {
    Item {
        summary: format!(
            "SOCKET.IO binary ({} bytes) no packet announced",
            payload.len()
        ),
        tree: json!({ "type": "binary", "data": format!("0x{}", hex(payload)) }),
        call: None,
    }
}

/// `tree` with each placeholder `{"_placeholder":true,"num":N}` replaced by attachment
/// N, as hexadecimal.
pub(crate) fn join_attachments(tree: &mut Value, attachments: &[Vec<u8>]) {
    fn walk(value: &mut Value, attachments: &[Vec<u8>], depth: usize) {
        if depth > 64 {
            return;
        }
        match value {
            Value::Object(map) if map.get("_placeholder") == Some(&Value::Bool(true)) => {
                let data = map
                    .get("num")
                    .and_then(Value::as_u64)
                    .and_then(|n| attachments.get(usize::try_from(n).ok()?));
                if let Some(data) = data {
                    *value = Value::String(format!("0x{}", hex(data)));
                }
            }
            Value::Object(map) => map
                .values_mut()
                .for_each(|v| walk(v, attachments, depth + 1)),
            Value::Array(items) => items
                .iter_mut()
                .for_each(|v| walk(v, attachments, depth + 1)),
            _ => {}
        }
    }
    walk(tree, attachments, 0);
}
