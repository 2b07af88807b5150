//! GraphQL over WebSocket, both protocols: `graphql-transport-ws` (the graphql-ws
//! library: `connection_init`, `subscribe`, `next`, `error`, `complete`, `ping`, `pong`)
//! and the older `graphql-ws` of subscriptions-transport-ws (`start`, `data`, `stop`,
//! `ka`, `connection_terminate`, ...). Each message is one JSON object with a `type`.
//!
//! The operation's name is the payload's `operationName`, or else the name the query
//! gives its first operation (`subscription OnMessage { ... }`). A `subscribe` (or
//! `start`) is a call; the first `next`, `data`, `error` or `complete` with its id answers
//! it.

use crate::render::{compact, cut, SUMMARY_VALUE_CHARS};
use crate::{Call, Decoded, Item, Problem, Role, View};
use serde_json::Value;

/// Decodes one message.
pub(crate) fn decode(payload: &[u8]) -> Decoded {
    let value = match crate::formats::parse_json(payload) {
        Ok(value) => value,
        Err(problem) => return crate::formats::fallback(View::Graphql, payload, problem),
    };
    let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return crate::formats::fallback(
            View::Graphql,
            payload,
            Problem::new(0, "an object with a \"type\" expected"),
        );
    };
    // The whole id pairs calls; a summary shows it cut.
    let id = value.get("id").map(|id| match id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    });
    let payload_value = value.get("payload");
    let operation = payload_value.and_then(operation_name);
    let mut tree = value.clone();
    if let Some(operation) = &operation {
        tree["operation"] = Value::String(operation.clone());
    }
    let mut summary = format!("GRAPHQL {}", cut(&kind, SUMMARY_VALUE_CHARS));
    if let Some(operation) = &operation {
        summary.push(' ');
        summary.push_str(&cut(operation, SUMMARY_VALUE_CHARS));
    }
    if let Some(id) = &id {
        summary.push_str(&format!(" id={}", cut(id, SUMMARY_VALUE_CHARS)));
    }
    match (kind.as_str(), payload_value) {
        ("subscribe" | "start", Some(p)) => {
            if let Some(variables) = p.get("variables").filter(|v| !v.is_null()) {
                summary.push_str(&format!(" variables={}", compact(variables)));
            }
        }
        (_, Some(p)) if !p.is_null() => {
            summary.push(' ');
            summary.push_str(&compact(p));
        }
        _ => {}
    }
    let call = id
        .map(|id| (format!("graphql:{id}"), kind.as_str()))
        .and_then(|(key, kind)| match kind {
            "subscribe" | "start" => Some(Call {
                key,
                role: Role::Call,
                name: Some(operation.clone().unwrap_or_else(|| "anonymous".to_owned())),
            }),
            "next" | "data" | "error" | "complete" => Some(Call {
                key,
                role: Role::Answer,
                name: None,
            }),
            _ => None,
        });
    Decoded {
        view: View::Graphql,
        items: vec![Item {
            summary,
            tree,
            call,
        }],
        problem: None,
    }
}

/// The operation's name: `operationName`, else the first named operation in `query`.
fn operation_name(payload: &Value) -> Option<String> {
    if let Some(name) = payload.get("operationName").and_then(Value::as_str) {
        return Some(name.to_owned());
    }
    let query = payload.get("query")?.as_str()?;
    let mut words = query
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty());
    while let Some(word) = words.next() {
        if matches!(word, "query" | "mutation" | "subscription") {
            return words.next().map(str::to_owned);
        }
    }
    None
}
