//! The ASP.NET Core SignalR hub protocol (`HubProtocol.md` in dotnet/aspnetcore), both
//! encodings:
//!
//! - JSON: each record is a JSON object ended by the record separator `0x1E`; a message
//!   may hold several. The handshake (`{"protocol":"json","version":1}` and the server's
//!   `{}` or `{"error":...}`) is JSON in both encodings.
//! - MessagePack: each record is a variable-length size (7 bits a byte, low first) and a
//!   MessagePack array whose first element is the message type.
//!
//! A message ending in `0x1E` is read as JSON records, any other as MessagePack records.
//! Invocations with an id are calls; their completion answers them.

use crate::formats::msgpack;
use crate::render::{arguments, cut, plain, SUMMARY_VALUE_CHARS};
use crate::{Call, Decoded, Item, Problem, Role, View};
use serde_json::{json, Map, Value};

/// The record separator ending every JSON record.
const RECORD_SEPARATOR: u8 = 0x1e;

/// Decodes one message's records.
pub(crate) fn decode(payload: &[u8]) -> Decoded {
    if payload.last() == Some(&RECORD_SEPARATOR) {
        decode_json(payload)
    } else {
        decode_msgpack(payload)
    }
}

fn decode_json(payload: &[u8]) -> Decoded {
    let mut items = Vec::new();
    let mut at = 0;
    for record in payload.split(|&b| b == RECORD_SEPARATOR) {
        let start = at;
        at += record.len() + 1;
        if record.is_empty() {
            continue;
        }
        match crate::formats::parse_json(record) {
            Ok(Value::Object(fields)) => items.push(json_record(fields)),
            Ok(_) => return partial(items, Problem::new(start, "a record that is not an object")),
            Err(problem) => return partial(items, Problem::new(start + problem.at, problem.what)),
        }
    }
    partial(items, None)
}

fn partial(items: Vec<Item>, problem: impl Into<Option<Problem>>) -> Decoded {
    let problem = problem.into();
    if items.is_empty() && problem.is_none() {
        return Decoded::failed(View::SignalR, Problem::new(0, "no record"));
    }
    Decoded {
        view: View::SignalR,
        items,
        problem,
    }
}

/// A JSON record: a hub message when it has a `type`, else a handshake.
fn json_record(fields: Map<String, Value>) -> Item {
    let Some(kind) = fields.get("type").and_then(Value::as_u64) else {
        return handshake(fields);
    };
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_owned);
    let list = |key: &str| match fields.get(key) {
        Some(Value::Array(values)) => values.clone(),
        _ => Vec::new(),
    };
    let message = Message {
        kind,
        invocation_id: text("invocationId"),
        target: text("target"),
        arguments: list("arguments"),
        stream_ids: list("streamIds"),
        result: fields.get("result").cloned(),
        error: text("error"),
        item: fields.get("item").cloned(),
        sequence_id: fields.get("sequenceId").and_then(Value::as_u64),
    };
    message.item(Value::Object(fields))
}

fn handshake(fields: Map<String, Value>) -> Item {
    let summary = match (fields.get("protocol"), fields.get("error")) {
        (Some(protocol), _) => format!(
            "SIGNALR handshake protocol={} version={}",
            plain(protocol),
            fields.get("version").map(plain).unwrap_or_default()
        ),
        (None, Some(error)) => format!("SIGNALR handshake refused: {}", plain(error)),
        (None, None) => "SIGNALR handshake accepted".to_owned(),
    };
    let mut tree = Value::Object(fields);
    tree["type"] = Value::String("handshake".to_owned());
    Item {
        summary,
        tree,
        call: None,
    }
}

fn decode_msgpack(payload: &[u8]) -> Decoded {
    let mut items = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let start = at;
        let Some(size) = size_prefix(payload, &mut at) else {
            return partial(items, Problem::new(start, "cut-off record size"));
        };
        let Some(record) = payload.get(at..at.saturating_add(size)) else {
            return partial(
                items,
                Problem::new(start, format!("record of {size} bytes runs past the end")),
            );
        };
        at += size;
        match msgpack::read(record) {
            Ok((Value::Array(fields), _)) => match msgpack_record(&fields) {
                Some(item) => items.push(item),
                None => return partial(items, Problem::new(start, "not a hub message")),
            },
            Ok(_) => return partial(items, Problem::new(start, "a record that is not an array")),
            Err(problem) => {
                return partial(items, Problem::new(at - size + problem.at, problem.what))
            }
        }
    }
    partial(items, None)
}

/// The variable-length record size: 7 bits a byte, low first, at most 5 bytes.
fn size_prefix(payload: &[u8], at: &mut usize) -> Option<usize> {
    let mut size = 0usize;
    for shift in 0..5 {
        let byte = *payload.get(*at)?;
        *at += 1;
        size |= usize::from(byte & 0x7f) << (shift * 7);
        if byte & 0x80 == 0 {
            return Some(size);
        }
    }
    None
}

/// A MessagePack record: `[type, headers, ...]` (ping and close have no headers).
fn msgpack_record(fields: &[Value]) -> Option<Item> {
    let kind = fields.first()?.as_u64()?;
    let at = |n: usize| fields.get(n).cloned().unwrap_or(Value::Null);
    let text = |n: usize| fields.get(n).and_then(Value::as_str).map(str::to_owned);
    let list = |n: usize| match fields.get(n) {
        Some(Value::Array(values)) => values.clone(),
        _ => Vec::new(),
    };
    let mut message = Message {
        kind,
        ..Message::default()
    };
    let mut tree = Map::new();
    tree.insert("type".into(), Value::from(kind));
    match kind {
        1 | 4 => {
            message.invocation_id = text(2);
            message.target = text(3);
            message.arguments = list(4);
            message.stream_ids = list(5);
            tree.insert("headers".into(), at(1));
            tree.insert("invocationId".into(), at(2));
            tree.insert("target".into(), at(3));
            tree.insert("arguments".into(), at(4));
            tree.insert("streamIds".into(), at(5));
        }
        2 => {
            message.invocation_id = text(2);
            message.item = fields.get(3).cloned();
            tree.insert("headers".into(), at(1));
            tree.insert("invocationId".into(), at(2));
            tree.insert("item".into(), at(3));
        }
        3 => {
            message.invocation_id = text(2);
            tree.insert("headers".into(), at(1));
            tree.insert("invocationId".into(), at(2));
            match fields.get(3).and_then(Value::as_u64) {
                Some(1) => {
                    message.error = text(4);
                    tree.insert("error".into(), at(4));
                }
                Some(3) => {
                    message.result = Some(at(4));
                    tree.insert("result".into(), at(4));
                }
                _ => {}
            }
        }
        5 => {
            message.invocation_id = text(2);
            tree.insert("headers".into(), at(1));
            tree.insert("invocationId".into(), at(2));
        }
        6 => {}
        7 => {
            message.error = text(1);
            tree.insert("error".into(), at(1));
            tree.insert("allowReconnect".into(), at(2));
        }
        8 | 9 => {
            message.sequence_id = fields.get(1).and_then(Value::as_u64);
            tree.insert("sequenceId".into(), at(1));
        }
        _ => return None,
    }
    Some(message.item(Value::Object(tree)))
}

/// A hub message, whichever encoding it came in.
#[derive(Debug, Default)]
struct Message {
    kind: u64,
    invocation_id: Option<String>,
    target: Option<String>,
    arguments: Vec<Value>,
    stream_ids: Vec<Value>,
    result: Option<Value>,
    error: Option<String>,
    item: Option<Value>,
    sequence_id: Option<u64>,
}

/// The names of the message types, by number.
fn type_name(kind: u64) -> &'static str {
    match kind {
        1 => "invocation",
        2 => "streamitem",
        3 => "completion",
        4 => "streaminvocation",
        5 => "cancelinvocation",
        6 => "ping",
        7 => "close",
        8 => "ack",
        9 => "sequence",
        _ => "unknown",
    }
}

impl Message {
    /// The item, with `tree` (the record as it came) given the type's name.
    fn item(self, mut tree: Value) -> Item {
        let name = type_name(self.kind);
        tree["type"] = Value::String(name.to_owned());
        tree["typeNumber"] = Value::from(self.kind);
        let mut summary = format!("SIGNALR {name}");
        if let Some(target) = &self.target {
            summary.push(' ');
            summary.push_str(&cut(target, SUMMARY_VALUE_CHARS));
            summary.push_str(&arguments(&self.arguments));
        }
        if !self.stream_ids.is_empty() {
            summary.push_str(&format!(
                " streams={}",
                Value::Array(self.stream_ids.clone())
            ));
        }
        if let Some(item) = &self.item {
            summary.push(' ');
            summary.push_str(&crate::render::compact(item));
        }
        if let Some(result) = &self.result {
            summary.push_str(" result=");
            summary.push_str(&crate::render::compact(result));
        }
        if let Some(error) = &self.error {
            summary.push_str(&format!(" error={}", json!(error)));
        }
        if let Some(sequence) = self.sequence_id {
            summary.push_str(&format!(" seq={sequence}"));
        }
        if let Some(id) = &self.invocation_id {
            summary.push_str(&format!(" id={}", cut(id, SUMMARY_VALUE_CHARS)));
        }
        let call = self.invocation_id.as_ref().and_then(|id| match self.kind {
            1 | 4 => Some(Call {
                key: format!("signalr:{id}"),
                role: Role::Call,
                name: self.target.clone(),
            }),
            3 => Some(Call {
                key: format!("signalr:{id}"),
                role: Role::Answer,
                name: None,
            }),
            _ => None,
        });
        Item {
            summary,
            tree,
            call,
        }
    }
}
