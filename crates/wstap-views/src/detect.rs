//! Which view a session gets: the subprotocol the server chose first, then the URL, then
//! the first data messages (the first that says what it is decides; after
//! [`MAX_SNIFFED`] messages that say nothing, the session reads each message as JSON,
//! text or hex).

use crate::View;

/// How many data messages are looked at before giving up on a protocol.
pub const MAX_SNIFFED: u32 = 4;

/// Chooses a session's view as it goes.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    view: Option<View>,
    settled: bool,
    sniffed: u32,
}

impl Detector {
    /// Starts with what the handshake says: the subprotocol chosen and the URL.
    pub fn from_handshake(subprotocol: Option<&str>, url: &str) -> Detector {
        let view = subprotocol.and_then(by_subprotocol).or_else(|| by_url(url));
        Detector {
            view,
            settled: view.is_some(),
            sniffed: 0,
        }
    }

    /// A view chosen by a person (or `--view`): settled, nothing sniffed.
    pub fn chosen(view: Option<View>) -> Detector {
        Detector {
            view,
            settled: true,
            sniffed: 0,
        }
    }

    /// The view so far (`None`: JSON, text or hex, message by message).
    pub fn view(&self) -> Option<View> {
        self.view
    }

    /// Whether more messages would not change it.
    pub fn is_settled(&self) -> bool {
        self.settled
    }

    /// Looks at a data message; returns the view when this message decided it.
    pub fn observe(&mut self, payload: &[u8], text: bool) -> Option<View> {
        if self.settled {
            return None;
        }
        self.sniffed += 1;
        let view = sniff(payload, text);
        if view.is_some() || self.sniffed >= MAX_SNIFFED {
            self.settled = true;
            self.view = view;
        }
        view
    }
}

/// The view a subprotocol names (`mqtt`, `v12.stomp`, `graphql-transport-ws`, ...).
pub fn by_subprotocol(subprotocol: &str) -> Option<View> {
    let name = subprotocol.trim().to_ascii_lowercase();
    Some(match name.as_str() {
        "mqtt" | "mqttv3.1" | "mqttv3.1.1" | "mqttv5" => View::Mqtt,
        "stomp" | "v10.stomp" | "v11.stomp" | "v12.stomp" => View::Stomp,
        "graphql-transport-ws" | "graphql-ws" => View::Graphql,
        "jsonrpc" | "json-rpc" | "jsonrpc2" | "jsonrpc-2.0" => View::JsonRpc,
        "msgpack" | "messagepack" => View::MsgPack,
        "cbor" => View::Cbor,
        "protobuf" | "proto" => View::Protobuf,
        "json" => View::Json,
        _ => return None,
    })
}

/// The Engine.IO protocol version a URL's query asks for (`EIO=4`), if it does.
pub fn engine_io_version(url: &str) -> Option<u8> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("EIO="))
        .and_then(|version| version.parse().ok())
}

/// The view a URL's path says: Socket.IO's `/socket.io/` (or an `EIO=` query).
pub fn by_url(url: &str) -> Option<View> {
    let lower = url.to_ascii_lowercase();
    if lower.contains("/socket.io/") || lower.contains("?eio=") || lower.contains("&eio=") {
        return Some(View::SocketIo);
    }
    None
}

/// What one data message says it is, when it says.
pub fn sniff(payload: &[u8], text: bool) -> Option<View> {
    if text {
        sniff_text(payload)
    } else {
        sniff_binary(payload)
    }
}

fn sniff_text(payload: &[u8]) -> Option<View> {
    // SignalR's handshake: `{"protocol":"json","version":1}` and the record separator.
    if payload.last() == Some(&0x1e) && payload.first() == Some(&b'{') {
        return Some(View::SignalR);
    }
    for command in [
        &b"CONNECT\n"[..],
        b"CONNECT\r\n",
        b"STOMP\n",
        b"STOMP\r\n",
        b"CONNECTED\n",
        b"CONNECTED\r\n",
    ] {
        if payload.starts_with(command) {
            return Some(View::Stomp);
        }
    }
    // Engine.IO's open packet: `0{"sid":...`.
    if payload.starts_with(b"0{\"sid\"") {
        return Some(View::SocketIo);
    }
    if crate::formats::looks_like_json(payload) {
        let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
        let first = match &value {
            serde_json::Value::Array(items) => items.first()?,
            other => other,
        };
        if first.get("jsonrpc").and_then(|v| v.as_str()) == Some("2.0") {
            return Some(View::JsonRpc);
        }
        let kind = first.get("type").and_then(|v| v.as_str());
        if matches!(kind, Some("connection_init" | "connection_ack")) {
            return Some(View::Graphql);
        }
    }
    None
}

fn sniff_binary(payload: &[u8]) -> Option<View> {
    // MQTT's CONNECT: type 1, a remaining length, then the protocol name `MQTT` (3.1.1,
    // 5) or `MQIsdp` (3.1).
    if payload.first() == Some(&0x10) {
        let name_at = 1 + payload[1..].iter().take(4).position(|b| b & 0x80 == 0)? + 1;
        let name = payload.get(name_at..)?;
        if name.starts_with(b"\x00\x04MQTT") || name.starts_with(b"\x00\x06MQIsdp") {
            return Some(View::Mqtt);
        }
    }
    // MessagePack: a map or array that is the whole payload. (SignalR over MessagePack
    // needs no sniffing here: its handshake is a JSON text message.)
    let first = *payload.first()?;
    if matches!(first, 0x80..=0x9f | 0xdc..=0xdf) {
        let mut reader = payload;
        if rmpv::decode::read_value_with_max_depth(&mut reader, 64).is_ok() && reader.is_empty() {
            return Some(View::MsgPack);
        }
    }
    // CBOR: a map, or the self-described CBOR tag.
    if matches!(first, 0xa0..=0xbf) || payload.starts_with(&[0xd9, 0xd9, 0xf7]) {
        let mut reader = payload;
        let parsed: Result<ciborium::Value, _> =
            ciborium::de::from_reader_with_recursion_limit(&mut reader, 64);
        if parsed.is_ok() && reader.is_empty() {
            return Some(View::Cbor);
        }
    }
    None
}
