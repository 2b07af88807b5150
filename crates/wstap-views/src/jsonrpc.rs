//! JSON-RPC 2.0: requests (`method`, `params`, `id`), notifications (no `id`), responses
//! (`result` or `error`, `id`), and batches of them (a JSON array). A request is a call;
//! the response with its id answers it.

use crate::render::{compact, cut, plain, SUMMARY_VALUE_CHARS};
use crate::{Call, Decoded, Item, Problem, Role, View};
use serde_json::Value;

/// Decodes one message: one item per request or response (a batch has several).
pub(crate) fn decode(payload: &[u8]) -> Decoded {
    let value = match crate::formats::parse_json(payload) {
        Ok(value) => value,
        Err(problem) => return crate::formats::fallback(View::JsonRpc, payload, problem),
    };
    let members = match value {
        Value::Array(members) => members,
        single => vec![single],
    };
    let mut items = Vec::with_capacity(members.len());
    for (n, member) in members.into_iter().enumerate() {
        match item(member) {
            Some(item) => items.push(item),
            None => {
                let what = match n {
                    0 => "not a JSON-RPC request or response".to_owned(),
                    n => format!("batch member {n} is not a JSON-RPC request or response"),
                };
                return Decoded {
                    view: View::JsonRpc,
                    items,
                    problem: Some(Problem::new(0, what)),
                };
            }
        }
    }
    Decoded {
        view: View::JsonRpc,
        items,
        problem: None,
    }
}

fn item(mut tree: Value) -> Option<Item> {
    let object = tree.as_object()?;
    let id = object.get("id").filter(|id| !id.is_null());
    let id_text = id.map(Value::to_string);
    let answer = |id: &String| Call {
        key: format!("jsonrpc:{id}"),
        role: Role::Answer,
        name: None,
    };
    let (kind, summary, call) = if let Some(method) = object.get("method").and_then(Value::as_str) {
        let params = object.get("params").map(compact).unwrap_or_default();
        let summary = format!("JSON-RPC {}({params})", cut(method, SUMMARY_VALUE_CHARS));
        match &id_text {
            Some(id) => {
                let call = Call {
                    key: format!("jsonrpc:{id}"),
                    role: Role::Call,
                    name: Some(method.to_owned()),
                };
                ("request", summary, Some(call))
            }
            None => ("notification", summary, None),
        }
    } else if let Some(error) = object.get("error") {
        let code = error.get("code").map(compact).unwrap_or_default();
        let message = error.get("message").map(plain).unwrap_or_default();
        let summary = format!("JSON-RPC error {code} {}", serde_json::json!(message));
        ("error", summary, id_text.as_ref().map(answer))
    } else if let Some(result) = object.get("result") {
        let summary = format!("JSON-RPC result {}", compact(result));
        ("result", summary, id_text.as_ref().map(answer))
    } else {
        return None;
    };
    let summary = match &id_text {
        Some(id) => format!("{summary} id={}", cut(id, SUMMARY_VALUE_CHARS)),
        None => summary,
    };
    tree["type"] = Value::String(kind.to_owned());
    Some(Item {
        summary,
        tree,
        call,
    })
}
