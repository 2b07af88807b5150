//! The protocol fields the filter language names (`signalr.target`, `mqtt.topic`, ...):
//! which exist, where each sits in a decoded item's tree, and a field's values in a
//! payload. Both of the filter's evaluators read fields through here, so they agree.

use crate::{SessionDecoder, View};
use serde_json::Value;
use std::fmt;
use wstap_wire::Direction;

/// A field's name as filters write it, and its path in an item's tree.
type FieldPath = (&'static str, &'static [&'static str]);

/// The fields of each protocol.
const FIELDS: &[(View, &[FieldPath])] = &[
    (
        View::SignalR,
        &[
            ("type", &["type"]),
            ("target", &["target"]),
            ("id", &["invocationId"]),
            ("error", &["error"]),
        ],
    ),
    (
        View::SocketIo,
        &[
            ("type", &["type"]),
            ("event", &["event"]),
            ("namespace", &["namespace"]),
            ("ack", &["ack"]),
        ],
    ),
    (
        View::Mqtt,
        &[
            ("type", &["type"]),
            ("topic", &["topic"]),
            ("qos", &["qos"]),
            ("id", &["packetId"]),
            ("retain", &["retain"]),
            ("client", &["clientId"]),
        ],
    ),
    (
        View::Stomp,
        &[
            ("command", &["command"]),
            ("destination", &["destination"]),
            ("id", &["headers", "id"]),
            ("subscription", &["headers", "subscription"]),
            ("receipt", &["headers", "receipt"]),
        ],
    ),
    (
        View::Graphql,
        &[
            ("type", &["type"]),
            ("id", &["id"]),
            ("operation", &["operation"]),
        ],
    ),
    (
        View::JsonRpc,
        &[
            ("type", &["type"]),
            ("method", &["method"]),
            ("id", &["id"]),
            ("error", &["error", "code"]),
        ],
    ),
];

/// The fields whose text is a string as the payload carries it: verbatim, or (in JSON and
/// STOMP headers) escaped, which takes a backslash. A payload holding neither the text nor
/// a backslash has no such field with that text ([`ProtocolField::may_be`]).
const VERBATIM: &[(View, &str)] = &[
    (View::SignalR, "target"),
    (View::SocketIo, "event"),
    (View::Mqtt, "topic"),
    (View::Mqtt, "client"),
    (View::Stomp, "command"),
    (View::Stomp, "destination"),
    (View::Stomp, "id"),
    (View::Stomp, "subscription"),
    (View::Stomp, "receipt"),
    (View::Graphql, "operation"),
    (View::JsonRpc, "method"),
];

/// A field of a protocol, as a filter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolField {
    view: View,
    name: &'static str,
    path: &'static [&'static str],
}

/// A protocol has no field of that name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    /// The protocol.
    pub view: View,
    /// The name asked for.
    pub field: String,
}

impl fmt::Display for UnknownField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<&str> = fields_of(self.view).iter().map(|(name, _)| *name).collect();
        write!(
            f,
            "{} has no field {:?} (it has {})",
            self.view,
            self.field,
            known.join(", ")
        )
    }
}

impl std::error::Error for UnknownField {}

fn fields_of(view: View) -> &'static [FieldPath] {
    FIELDS
        .iter()
        .find(|(v, _)| *v == view)
        .map(|(_, fields)| *fields)
        .unwrap_or(&[])
}

impl ProtocolField {
    /// The protocol a filter names by `prefix` (`signalr`, `socketio`, `mqtt`, `stomp`,
    /// `graphql`, `jsonrpc`), if it is one.
    pub fn protocol(prefix: &str) -> Option<View> {
        View::from_name(prefix).filter(|view| view.is_protocol())
    }

    /// The field `name` of `view` (a protocol), or why there is none.
    pub fn find(view: View, name: &str) -> Result<ProtocolField, UnknownField> {
        fields_of(view)
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|&(name, path)| ProtocolField { view, name, path })
            .ok_or_else(|| UnknownField {
                view,
                field: name.to_owned(),
            })
    }

    /// Every field, of every protocol.
    pub fn all() -> impl Iterator<Item = ProtocolField> {
        FIELDS.iter().flat_map(|&(view, fields)| {
            fields
                .iter()
                .map(move |&(name, path)| ProtocolField { view, name, path })
        })
    }

    /// The protocol.
    pub fn view(&self) -> View {
        self.view
    }

    /// The field's name, without its protocol.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether `payload` may have this field with exactly the text `text`: `false` when it
    /// certainly has not (the field is one the payload carries verbatim, and neither the
    /// text nor a backslash is there), so an equality test need not decode it.
    pub fn may_be(&self, payload: &[u8], text: &str) -> bool {
        let verbatim = VERBATIM
            .iter()
            .any(|&(view, name)| view == self.view && name == self.name);
        if !verbatim || text.is_empty() {
            return true;
        }
        payload.contains(&b'\\')
            || payload
                .windows(text.len())
                .any(|window| window == text.as_bytes())
    }

    /// The field's value in each item of `payload` read as its protocol (one message by
    /// itself), where it has one.
    pub fn values(&self, payload: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(payload).is_ok();
        let decoded =
            SessionDecoder::new(Some(self.view)).decode(Direction::ClientToServer, payload, text);
        decoded
            .items
            .iter()
            .filter_map(|item| {
                let mut at = &item.tree;
                for step in self.path {
                    at = at.get(step)?;
                }
                (!at.is_null()).then(|| at.clone())
            })
            .collect()
    }
}

impl fmt::Display for ProtocolField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.view, self.name)
    }
}

/// A whole payload as one MessagePack or CBOR value, as JSON (`msgpack.PATH` and
/// `cbor.PATH` filters test it as `json.PATH` tests JSON).
pub fn format_value(view: View, payload: &[u8]) -> Option<Value> {
    let (value, used) = match view {
        View::MsgPack => crate::formats::msgpack::read(payload).ok()?,
        View::Cbor => crate::formats::cbor::read(payload).ok()?,
        _ => return None,
    };
    (used == payload.len()).then_some(value)
}
