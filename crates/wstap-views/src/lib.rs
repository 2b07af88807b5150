//! Payload views: what a WebSocket message says, decoded for a person and for filters.
//!
//! A WebSocket payload is rarely just text. This crate turns one message's bytes into a
//! [`Decoded`] value: the message's records (a SignalR message may hold several, an MQTT
//! stream may end several packets in one message), each with a one-line summary
//! (`SIGNALR invocation SendMessage("John", "hi") id=3`), a JSON tree of everything it
//! holds, and, for protocols that number their calls, which call it makes or answers.
//!
//! Formats ([`View::Json`], [`View::MsgPack`], [`View::Cbor`], [`View::Protobuf`], ...)
//! lean on well-kept crates where there is one (`rmpv`, `ciborium`, `prost-reflect` for
//! Protobuf with a schema: [`ProtoSchema`]); the application
//! protocols on top (SignalR, Socket.IO, STOMP, MQTT, GraphQL over WebSocket, JSON-RPC)
//! are small decoders of our own, one module each. Everything here is sans-IO: bytes in,
//! values out, no clock, no allocation driven by what a peer declares. A payload that
//! does not parse as its view says where and why ([`Problem`]), and its records fall back
//! to hex; no input makes a decoder panic (property tests of any bytes in any chunks, and
//! a fuzz target: `fuzz/fuzz_targets/views.rs`).
//!
//! Which view a session gets is [`detect`]'s job: the negotiated subprotocol first, then
//! the URL, then the first messages. Most views decode a message alone ([`decode`]); MQTT
//! over WebSocket is a byte stream and Socket.IO sends binary attachments after the
//! packet that names them, so a [`SessionDecoder`] carries what one message leaves for
//! the next, per direction. [`calls`] pairs the calls these protocols number with their
//! answers.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod calls;
pub mod detect;
pub mod field;
mod formats;
mod graphql;
mod joiner;
mod jsonrpc;
mod mqtt;
mod render;
mod schema;
mod session;
mod signalr;
mod socketio;
mod stomp;

pub use detect::Detector;
pub use field::{ProtocolField, UnknownField};
pub use joiner::{PacketJoiner, Seen, ViewTracker};
pub use schema::{ProtoSchema, ProtoTypes, SchemaError};
pub use session::SessionDecoder;

use serde_json::{json, Value};
use std::fmt;

/// How a message's payload is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// UTF-8 text, as it is.
    Text,
    /// JSON.
    Json,
    /// Bytes, in hexadecimal.
    Hex,
    /// MessagePack.
    MsgPack,
    /// CBOR (RFC 8949).
    Cbor,
    /// Protocol Buffers: field numbers and wire types, or, with a [`ProtoSchema`], field
    /// names and enum values.
    Protobuf,
    /// The ASP.NET Core SignalR hub protocol, JSON or MessagePack.
    SignalR,
    /// Socket.IO over Engine.IO (v4; v3's text packets read the same).
    SocketIo,
    /// STOMP 1.0 to 1.2.
    Stomp,
    /// MQTT 3.1, 3.1.1 and 5 over WebSocket.
    Mqtt,
    /// GraphQL over WebSocket: `graphql-transport-ws` and the older `graphql-ws`.
    Graphql,
    /// JSON-RPC 2.0.
    JsonRpc,
}

impl View {
    /// Every view, in the order above.
    pub const ALL: [View; 12] = [
        View::Text,
        View::Json,
        View::Hex,
        View::MsgPack,
        View::Cbor,
        View::Protobuf,
        View::SignalR,
        View::SocketIo,
        View::Stomp,
        View::Mqtt,
        View::Graphql,
        View::JsonRpc,
    ];

    /// The name the command line, the API, the capture and filters use.
    pub fn name(self) -> &'static str {
        match self {
            View::Text => "text",
            View::Json => "json",
            View::Hex => "hex",
            View::MsgPack => "msgpack",
            View::Cbor => "cbor",
            View::Protobuf => "protobuf",
            View::SignalR => "signalr",
            View::SocketIo => "socketio",
            View::Stomp => "stomp",
            View::Mqtt => "mqtt",
            View::Graphql => "graphql",
            View::JsonRpc => "jsonrpc",
        }
    }

    /// The view of this name (see [`View::name`]).
    pub fn from_name(name: &str) -> Option<View> {
        View::ALL
            .into_iter()
            .find(|view| view.name().eq_ignore_ascii_case(name))
    }

    /// Whether it is an application protocol (as opposed to a format).
    pub fn is_protocol(self) -> bool {
        matches!(
            self,
            View::SignalR
                | View::SocketIo
                | View::Stomp
                | View::Mqtt
                | View::Graphql
                | View::JsonRpc
        )
    }

    /// How summaries begin: `SIGNALR`, `MQTT`, ...
    pub fn tag(self) -> &'static str {
        match self {
            View::Text => "TEXT",
            View::Json => "JSON",
            View::Hex => "HEX",
            View::MsgPack => "MSGPACK",
            View::Cbor => "CBOR",
            View::Protobuf => "PROTOBUF",
            View::SignalR => "SIGNALR",
            View::SocketIo => "SOCKET.IO",
            View::Stomp => "STOMP",
            View::Mqtt => "MQTT",
            View::Graphql => "GRAPHQL",
            View::JsonRpc => "JSON-RPC",
        }
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One message, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The view it was read with.
    pub view: View,
    /// What it holds: one record for most messages, several for a batch (SignalR records,
    /// STOMP frames, MQTT packets ending in this message), none for a message that only
    /// carries part of a packet.
    pub items: Vec<Item>,
    /// Why it did not (all) parse as its view, and where.
    pub problem: Option<Problem>,
}

impl Decoded {
    /// A decode that found nothing it could read.
    fn failed(view: View, problem: Problem) -> Decoded {
        Decoded {
            view,
            items: Vec::new(),
            problem: Some(problem),
        }
    }

    /// The one-line summary: the items' summaries joined, or what went wrong.
    pub fn summary(&self) -> String {
        let mut line = String::new();
        for (n, item) in self.items.iter().enumerate() {
            if n > 0 {
                line.push_str(" | ");
            }
            line.push_str(&item.summary);
        }
        if let Some(problem) = &self.problem {
            if !line.is_empty() {
                line.push_str(" | ");
            }
            line.push_str(self.view.tag());
            line.push_str(" not decoded: ");
            line.push_str(&problem.to_string());
        }
        line
    }

    /// The whole decode as JSON: `{"view", "summary", "items": [...], "problem"?}`, each
    /// item its tree with `summary` (and `call`, when it makes or answers one).
    pub fn to_json(&self) -> Value {
        let items: Vec<Value> = self.items.iter().map(Item::to_json).collect();
        let mut doc = json!({
            "view": self.view.name(),
            "summary": self.summary(),
            "items": items,
        });
        if let Some(problem) = &self.problem {
            doc["problem"] = json!({ "at": problem.at, "what": problem.what });
        }
        doc
    }
}

/// One record of a message: a SignalR message, an MQTT packet, a STOMP frame, ...
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// One line, starting with the view's tag (`MQTT PUBLISH sensors/t1 qos=1`).
    pub summary: String,
    /// Everything it holds, as JSON (bytes as hexadecimal strings).
    pub tree: Value,
    /// The call it makes or answers, for protocols that number them.
    pub call: Option<Call>,
}

impl Item {
    fn to_json(&self) -> Value {
        let mut doc = json!({ "summary": self.summary, "decoded": self.tree });
        if let Some(call) = &self.call {
            doc["call"] = json!({
                "key": call.key,
                "role": call.role.name(),
                "name": call.name,
            });
        }
        doc
    }
}

/// A call, or the answer to one, as a protocol numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// What pairs a call with its answer within a session (`jsonrpc:7`, `mqtt:puback:12`):
    /// a call's answer comes the other way with the same key.
    pub key: String,
    /// Call or answer.
    pub role: Role,
    /// What is called (a method, a target, an event, a topic), on the call.
    pub name: Option<String>,
}

/// Whether an item makes a call or answers one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It asks.
    Call,
    /// It answers.
    Answer,
}

impl Role {
    /// `call` or `answer`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Call => "call",
            Role::Answer => "answer",
        }
    }
}

/// Why a payload did not parse as its view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The byte offset in the payload where it went wrong.
    pub at: usize,
    /// What was wrong there.
    pub what: String,
}

impl Problem {
    fn new(at: usize, what: impl Into<String>) -> Problem {
        Problem {
            at,
            what: what.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.at, self.what)
    }
}

/// Decodes one message by itself with `view` (`text` says whether it was a text
/// message). MQTT packets that a message carries only part of, and Socket.IO attachments,
/// need the messages around them: see [`SessionDecoder`].
pub fn decode(view: View, payload: &[u8], text: bool) -> Decoded {
    SessionDecoder::new(Some(view)).decode(wstap_wire::Direction::ClientToServer, payload, text)
}

/// Decodes what protocol fields read of a message of a byte-stream view (MQTT) by
/// itself: the packets that end in it, as the capture keeps them when they are not its
/// own bytes (`packets`), else its payload; no packet ending in it is said so.
pub fn decode_packets(view: View, payload: &[u8], packets: Option<&[u8]>, text: bool) -> Decoded {
    match packets {
        Some([]) => Decoded {
            view,
            items: vec![Item {
                summary: format!(
                    "{} part of a packet (it ends in a later message)",
                    view.tag()
                ),
                tree: serde_json::json!({ "type": "fragment" }),
                call: None,
            }],
            problem: None,
        },
        Some(packets) => decode(view, packets, text),
        None => decode(view, payload, text),
    }
}

/// Decodes a message of a session that has no protocol view: JSON when it parses as
/// JSON, else text when it is UTF-8, else hex.
pub fn decode_plain(payload: &[u8]) -> Decoded {
    formats::plain(payload)
}
