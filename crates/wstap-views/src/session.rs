//! One session's decoder: the view it reads messages with, and what one message leaves
//! for the next (MQTT bytes not yet ending a packet, Socket.IO attachments still to come),
//! kept per direction.

use crate::formats::{self, cbor, msgpack, protobuf};
use crate::{mqtt, signalr, socketio, stomp, Decoded, Item, Problem, ProtoSchema, View};
use wstap_wire::Direction;

/// Decodes a session's messages in order; see the crate documentation.
#[derive(Debug, Default)]
pub struct SessionDecoder {
    view: Option<View>,
    /// What names the protobuf view's fields, when a person gave a schema.
    schema: Option<ProtoSchema>,
    mqtt_version: u8,
    mqtt: [mqtt::Stream; 2],
    awaiting: [Option<Attachments>; 2],
    /// Whether the session's URL asked for Engine.IO v3 (`EIO=3`): its binary messages
    /// begin with the message packet type, `0x04`.
    engine_io_v3: bool,
}

/// A Socket.IO packet whose binary attachments are still coming.
#[derive(Debug)]
struct Attachments {
    item: Item,
    expected: usize,
    received: Vec<Vec<u8>>,
}

fn slot(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl SessionDecoder {
    /// A decoder reading with `view`; `None` reads each message as JSON, text or hex,
    /// whichever it is.
    pub fn new(view: Option<View>) -> SessionDecoder {
        SessionDecoder {
            view,
            // Not known until a CONNECT says.
            mqtt_version: 0,
            ..SessionDecoder::default()
        }
    }

    /// Reads the protobuf view's messages with `schema` (each direction as its type),
    /// when there is one.
    pub fn with_schema(mut self, schema: Option<ProtoSchema>) -> SessionDecoder {
        self.schema = schema;
        self
    }

    /// Takes what the session's URL says of how to read it: Socket.IO's Engine.IO version
    /// (`EIO=3` in the query).
    pub fn with_url(mut self, url: &str) -> SessionDecoder {
        self.engine_io_v3 = crate::detect::engine_io_version(url) == Some(3);
        self
    }

    /// The view it reads with.
    pub fn view(&self) -> Option<View> {
        self.view
    }

    /// Says that the message just decoded going `dir` was not all there (the capture cut
    /// its payload short, or gave it up): a packet or attachments it began are lost, and
    /// the next message starts afresh.
    pub fn lose(&mut self, dir: Direction) {
        self.mqtt[slot(dir)].lose();
        self.awaiting[slot(dir)] = None;
    }

    /// Decodes the next data message going `dir` (`text`: whether it was a text message).
    pub fn decode(&mut self, dir: Direction, payload: &[u8], text: bool) -> Decoded {
        let Some(view) = self.view else {
            return formats::plain(payload);
        };
        match view {
            View::Text => formats::text(payload),
            View::Json => formats::json(payload),
            View::Hex => formats::hex_view(payload),
            View::MsgPack => formats::binary_format(view, payload, msgpack::read),
            View::Cbor => formats::binary_format(view, payload, cbor::read),
            View::Protobuf => self
                .schema
                .as_ref()
                .and_then(|schema| schema.decode(dir, payload))
                .unwrap_or_else(|| formats::binary_format(view, payload, protobuf::read)),
            View::SignalR => signalr::decode(payload),
            View::Stomp => stomp::decode(payload),
            View::Graphql => crate::graphql::decode(payload),
            View::JsonRpc => crate::jsonrpc::decode(payload),
            View::Mqtt => {
                let (items, problem) = self.mqtt[slot(dir)].push(payload, &mut self.mqtt_version);
                Decoded {
                    view,
                    items,
                    problem,
                }
            }
            View::SocketIo => self.socketio(dir, payload, text),
        }
    }

    fn socketio(&mut self, dir: Direction, payload: &[u8], text: bool) -> Decoded {
        let awaiting = &mut self.awaiting[slot(dir)];
        if !text {
            let payload = match (self.engine_io_v3, payload.split_first()) {
                (true, Some((4, data))) => data,
                _ => payload,
            };
            let item = match awaiting.take() {
                None => socketio::stray_binary(payload),
                Some(mut pending) => {
                    // What the tree shows of it is all it keeps.
                    let kept = &payload[..payload.len().min(crate::render::HEX_TREE_BYTES)];
                    pending.received.push(kept.to_vec());
                    let number = pending.received.len();
                    let mut item = socketio::attachment(
                        payload,
                        number,
                        pending.expected,
                        &pending.item.summary,
                    );
                    if number == pending.expected {
                        // The last one: the packet, placeholders filled in.
                        let mut whole = pending.item.tree.clone();
                        socketio::join_attachments(&mut whole, &pending.received);
                        item.tree["packet"] = whole;
                        item.call = pending.item.call.take();
                    } else {
                        *awaiting = Some(pending);
                    }
                    item
                }
            };
            return Decoded {
                view: View::SocketIo,
                items: vec![item],
                problem: None,
            };
        }
        let Ok(text) = std::str::from_utf8(payload) else {
            return formats::fallback(View::SocketIo, payload, Problem::new(0, "not UTF-8"));
        };
        match socketio::decode_text(text) {
            Ok(packet) => {
                let mut item = packet.item;
                if packet.attachments > 0 {
                    // The call is made when the packet is whole: with its last attachment.
                    let call = item.call.take();
                    *awaiting = Some(Attachments {
                        item: Item {
                            call,
                            ..item.clone()
                        },
                        expected: packet.attachments,
                        received: Vec::new(),
                    });
                }
                Decoded {
                    view: View::SocketIo,
                    items: vec![item],
                    problem: None,
                }
            }
            Err(problem) => formats::fallback(View::SocketIo, payload, problem),
        }
    }
}
