//! MQTT 3.1, 3.1.1 and 5 control packets, as MQTT over WebSocket carries them: a byte
//! stream in binary messages, where a packet may span several messages (MQTT.js sends one
//! PUBLISH in pieces) and a message may end several packets. [`Stream`] buffers one
//! direction and yields each packet in the message where it ends.
//!
//! Version 5 adds properties to most packets; which version a session speaks is read from
//! its CONNECT (protocol level 5), so the caller keeps it across both directions. Before a
//! CONNECT is seen, packets are read as 3.1.1. A PUBLISH's payload is given its own view
//! (JSON, text or hex). A packet with a packet identifier that expects an answer is a call
//! (PUBLISH at QoS 1 or 2, PUBREL, SUBSCRIBE, UNSUBSCRIBE, and CONNECT and PINGREQ).

use crate::render::{bytes_value, cut, hex, SUMMARY_VALUE_CHARS};
use crate::{Call, Item, Problem, Role};
use serde_json::{json, Map, Value};

/// The largest packet a stream buffers (MQTT allows 256 MiB; a debugging view needs
/// less). A larger one is reported and the stream starts over with the next message.
pub(crate) const MAX_PACKET: usize = 16 << 20;

/// One direction's bytes not yet ending a packet.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    held: Vec<u8>,
}

impl Stream {
    /// Forgets the part of a packet held: the bytes after it are not known (a payload the
    /// capture cut short), so the stream starts again with the next message.
    pub(crate) fn lose(&mut self) {
        self.held.clear();
    }

    /// Takes one message's bytes: the packets that end in it (and, when it leaves part of
    /// a packet for the next message, an item saying so), and what went wrong.
    pub(crate) fn push(
        &mut self,
        payload: &[u8],
        version: &mut u8,
    ) -> (Vec<Item>, Option<Problem>) {
        // Offsets in problems are of this message: where its bytes start in `held`.
        let base = self.held.len();
        self.held.extend_from_slice(payload);
        let mut items = Vec::new();
        let mut at = 0;
        let problem = loop {
            if at == self.held.len() {
                break None;
            }
            match packet_length(&self.held[at..]) {
                Length::Incomplete => break None,
                Length::Malformed => {
                    break Some(Problem::new(
                        at.saturating_sub(base),
                        "malformed remaining length",
                    ))
                }
                Length::Whole(header, length) if header + length > MAX_PACKET => {
                    break Some(Problem::new(
                        at.saturating_sub(base),
                        format!("a packet of {length} bytes (more than this view buffers)"),
                    ));
                }
                Length::Whole(header, length) => {
                    let end = at + header + length;
                    if end > self.held.len() {
                        break None;
                    }
                    let packet = &self.held[at..end];
                    match decode_guessing(packet[0], &packet[header..], version) {
                        Ok(item) => items.push(item),
                        // A packet whose length was right but whose contents were not:
                        // shown as bytes, and the stream goes on with the next.
                        Err(problem) => items.push(Item {
                            summary: format!(
                                "MQTT malformed {}: {}",
                                type_name(packet[0] >> 4),
                                problem.what
                            ),
                            tree: json!({
                                "type": type_name(packet[0] >> 4).to_ascii_lowercase(),
                                "malformed": problem.what,
                                "at": (at + header + problem.at).saturating_sub(base),
                                "bytes": format!("0x{}", hex(packet)),
                            }),
                            call: None,
                        }),
                    }
                    at = end;
                }
            }
        };
        if problem.is_some() {
            self.held.clear();
        } else {
            self.held.drain(..at);
            if !self.held.is_empty() {
                items.push(Item {
                    summary: format!("MQTT part of a packet ({} bytes so far)", self.held.len()),
                    tree: json!({ "type": "fragment", "held": self.held.len() }),
                    call: None,
                });
            }
        }
        (items, problem)
    }
}

/// How many bytes at the front of `bytes` are whole packets (the rest begins a packet
/// that continues later); `None` when the bytes are not MQTT's framing or a packet is
/// larger than [`MAX_PACKET`].
pub(crate) fn whole_packets(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at < bytes.len() {
        match packet_length(&bytes[at..]) {
            Length::Incomplete => break,
            Length::Malformed => return None,
            Length::Whole(header, length) if header + length > MAX_PACKET => return None,
            Length::Whole(header, length) if at + header + length > bytes.len() => break,
            Length::Whole(header, length) => at += header + length,
        }
    }
    Some(at)
}

enum Length {
    /// The fixed header's size and the remaining length.
    Whole(usize, usize),
    Incomplete,
    Malformed,
}

/// The fixed header: a byte of type and flags, then the remaining length (7 bits a byte,
/// low first, at most 4 bytes).
fn packet_length(bytes: &[u8]) -> Length {
    let mut length = 0usize;
    for n in 0..4 {
        let Some(&byte) = bytes.get(1 + n) else {
            return Length::Incomplete;
        };
        length |= usize::from(byte & 0x7f) << (7 * n);
        if byte & 0x80 == 0 {
            return Length::Whole(2 + n, length);
        }
    }
    Length::Malformed
}

fn type_name(kind: u8) -> &'static str {
    match kind {
        1 => "CONNECT",
        2 => "CONNACK",
        3 => "PUBLISH",
        4 => "PUBACK",
        5 => "PUBREC",
        6 => "PUBREL",
        7 => "PUBCOMP",
        8 => "SUBSCRIBE",
        9 => "SUBACK",
        10 => "UNSUBSCRIBE",
        11 => "UNSUBACK",
        12 => "PINGREQ",
        13 => "PINGRESP",
        14 => "DISCONNECT",
        15 => "AUTH",
        _ => "RESERVED",
    }
}

/// A cursor over a packet's variable header and payload.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn cut(&self, what: &str) -> Problem {
        Problem::new(self.at, format!("cut-off {what}"))
    }

    fn u8(&mut self, what: &str) -> Result<u8, Problem> {
        let byte = *self.bytes.get(self.at).ok_or_else(|| self.cut(what))?;
        self.at += 1;
        Ok(byte)
    }

    fn u16(&mut self, what: &str) -> Result<u16, Problem> {
        let hi = self.u8(what)?;
        let lo = self.u8(what)?;
        Ok(u16::from_be_bytes([hi, lo]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, Problem> {
        let hi = self.u16(what)?;
        let lo = self.u16(what)?;
        Ok((u32::from(hi) << 16) | u32::from(lo))
    }

    fn varint(&mut self, what: &str) -> Result<u32, Problem> {
        let mut value = 0u32;
        for n in 0..4 {
            let byte = self.u8(what)?;
            value |= u32::from(byte & 0x7f) << (7 * n);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Problem::new(self.at, format!("malformed {what}")))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Problem> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| self.cut(what))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn binary(&mut self, what: &str) -> Result<&'a [u8], Problem> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }

    fn string(&mut self, what: &str) -> Result<String, Problem> {
        let at = self.at;
        let bytes = self.binary(what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| Problem::new(at, format!("{what} is not UTF-8")))
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.at..];
        self.at = self.bytes.len();
        rest
    }

    fn is_done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    /// MQTT 5 properties: a length, then identifier and value pairs. A problem inside
    /// says where in the packet.
    fn properties(&mut self) -> Result<Value, Problem> {
        let length = self.varint("property length")? as usize;
        let bytes = self.take(length, "properties")?;
        let base = self.at - length;
        Reader { bytes, at: 0 }
            .property_list()
            .map(Value::Object)
            .map_err(|problem| Problem::new(base + problem.at, problem.what))
    }

    /// The identifier and value pairs of a property list (all of this reader's bytes).
    fn property_list(&mut self) -> Result<Map<String, Value>, Problem> {
        let inner = self;
        let mut properties = Map::new();
        while !inner.is_done() {
            let start = inner.at;
            let id = inner.varint("property identifier")?;
            let (name, value) = match id {
                0x01 => ("payloadFormat", json!(inner.u8("property")?)),
                0x02 => ("messageExpiry", json!(inner.u32("property")?)),
                0x03 => ("contentType", json!(inner.string("property")?)),
                0x08 => ("responseTopic", json!(inner.string("property")?)),
                0x09 => ("correlationData", bytes_value(inner.binary("property")?)),
                0x0B => ("subscriptionIdentifier", json!(inner.varint("property")?)),
                0x11 => ("sessionExpiry", json!(inner.u32("property")?)),
                0x12 => ("assignedClientId", json!(inner.string("property")?)),
                0x13 => ("serverKeepAlive", json!(inner.u16("property")?)),
                0x15 => ("authMethod", json!(inner.string("property")?)),
                0x16 => ("authData", bytes_value(inner.binary("property")?)),
                0x17 => ("requestProblemInfo", json!(inner.u8("property")?)),
                0x18 => ("willDelay", json!(inner.u32("property")?)),
                0x19 => ("requestResponseInfo", json!(inner.u8("property")?)),
                0x1A => ("responseInfo", json!(inner.string("property")?)),
                0x1C => ("serverReference", json!(inner.string("property")?)),
                0x1F => ("reasonString", json!(inner.string("property")?)),
                0x21 => ("receiveMaximum", json!(inner.u16("property")?)),
                0x22 => ("topicAliasMaximum", json!(inner.u16("property")?)),
                0x23 => ("topicAlias", json!(inner.u16("property")?)),
                0x24 => ("maximumQos", json!(inner.u8("property")?)),
                0x25 => ("retainAvailable", json!(inner.u8("property")?)),
                0x26 => {
                    let key = inner.string("user property")?;
                    let value = inner.string("user property")?;
                    let users = properties
                        .entry("userProperties")
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(pairs) = users {
                        pairs.push(json!([key, value]));
                    }
                    continue;
                }
                0x27 => ("maximumPacketSize", json!(inner.u32("property")?)),
                0x28 => (
                    "wildcardSubscriptionAvailable",
                    json!(inner.u8("property")?),
                ),
                0x29 => ("subscriptionIdsAvailable", json!(inner.u8("property")?)),
                0x2A => ("sharedSubscriptionAvailable", json!(inner.u8("property")?)),
                other => {
                    return Err(Problem::new(
                        start,
                        format!("unknown property 0x{other:02x}"),
                    ))
                }
            };
            properties.insert(name.to_owned(), value);
        }
        Ok(properties)
    }
}

/// Decodes one whole packet as [`decode_packet`] does; before a CONNECT has said the
/// version (`version` 0), as 3.1.1 and, when that does not parse, as 5 (whose properties
/// 3.1.1 lacks), and the version that parses is taken for the rest of the session.
fn decode_guessing(first: u8, body: &[u8], version: &mut u8) -> Result<Item, Problem> {
    if *version != 0 {
        return decode_packet(first, body, version);
    }
    let mut guess = 4;
    match decode_packet(first, body, &mut guess) {
        Ok(item) => {
            // A CONNECT says its level: that is the version from now on.
            if guess != 4 {
                *version = guess;
            }
            Ok(item)
        }
        Err(problem) => {
            let mut five = 5;
            match decode_packet(first, body, &mut five) {
                Ok(item) => {
                    *version = five;
                    Ok(item)
                }
                Err(_) => Err(problem),
            }
        }
    }
}

/// Decodes one whole packet: its first byte and the rest after the remaining length.
fn decode_packet(first: u8, body: &[u8], version: &mut u8) -> Result<Item, Problem> {
    let kind = first >> 4;
    let name = type_name(kind);
    let mut r = Reader { bytes: body, at: 0 };
    let mut tree = Map::new();
    tree.insert("type".into(), json!(name.to_ascii_lowercase()));
    let mut summary = format!("MQTT {name}");
    let mut call = None;
    let v5 = *version == 5;
    match kind {
        1 => {
            let protocol = r.string("protocol name")?;
            let level = r.u8("protocol level")?;
            let flags = r.u8("connect flags")?;
            let keep_alive = r.u16("keep alive")?;
            *version = level;
            let properties = if level == 5 {
                Some(r.properties()?)
            } else {
                None
            };
            let client = r.string("client identifier")?;
            tree.insert("protocol".into(), json!(protocol));
            tree.insert("level".into(), json!(level));
            tree.insert("cleanStart".into(), json!(flags & 0x02 != 0));
            tree.insert("keepAlive".into(), json!(keep_alive));
            tree.insert("clientId".into(), json!(client));
            if let Some(properties) = properties {
                tree.insert("properties".into(), properties);
            }
            if flags & 0x04 != 0 {
                if level == 5 {
                    tree.insert("willProperties".into(), r.properties()?);
                }
                tree.insert("willTopic".into(), json!(r.string("will topic")?));
                tree.insert("willPayload".into(), bytes_value(r.binary("will payload")?));
                tree.insert("willQos".into(), json!((flags >> 3) & 3));
                tree.insert("willRetain".into(), json!(flags & 0x20 != 0));
            }
            if flags & 0x80 != 0 {
                tree.insert("username".into(), json!(r.string("user name")?));
            }
            if flags & 0x40 != 0 {
                // The password is not shown: its length is enough to debug with.
                let password = r.binary("password")?;
                tree.insert("passwordLength".into(), json!(password.len()));
            }
            let shown = match level {
                5 => "v5",
                4 => "v3.1.1",
                3 => "v3.1",
                _ => "v?",
            };
            summary.push_str(&format!(
                " client={} {shown} keepalive={keep_alive}",
                json!(client)
            ));
            call = Some(call_of("mqtt:connect", Role::Call, Some("CONNECT")));
        }
        2 => {
            let flags = r.u8("acknowledge flags")?;
            let code = r.u8("return code")?;
            tree.insert("sessionPresent".into(), json!(flags & 1 != 0));
            tree.insert("code".into(), json!(code));
            if v5 && !r.is_done() {
                tree.insert("properties".into(), r.properties()?);
            }
            summary.push_str(&format!(" code={code}"));
            call = Some(call_of("mqtt:connect", Role::Answer, None));
        }
        3 => {
            let qos = (first >> 1) & 3;
            let retain = first & 1 != 0;
            let topic = r.string("topic")?;
            let id = if qos > 0 {
                Some(r.u16("packet identifier")?)
            } else {
                None
            };
            if v5 {
                tree.insert("properties".into(), r.properties()?);
            }
            let payload = r.rest();
            tree.insert("topic".into(), json!(topic));
            tree.insert("qos".into(), json!(qos));
            tree.insert("retain".into(), json!(retain));
            tree.insert("dup".into(), json!(first & 0x08 != 0));
            let shown = crate::formats::plain(payload);
            tree.insert(
                "payload".into(),
                shown
                    .items
                    .first()
                    .map(|i| i.tree.clone())
                    .unwrap_or(Value::Null),
            );
            tree.insert("payloadView".into(), json!(shown.view.name()));
            summary.push_str(&format!(" {} qos={qos}", cut(&topic, SUMMARY_VALUE_CHARS)));
            if retain {
                summary.push_str(" retain");
            }
            if let Some(id) = id {
                tree.insert("packetId".into(), json!(id));
                summary.push_str(&format!(" id={id}"));
                let key = if qos == 1 { "puback" } else { "pubrec" };
                call = Some(call_of(
                    &format!("mqtt:{key}:{id}"),
                    Role::Call,
                    Some(&topic),
                ));
            }
            summary.push_str(&format!(" ({} bytes)", payload.len()));
        }
        4..=7 => {
            let id = r.u16("packet identifier")?;
            tree.insert("packetId".into(), json!(id));
            if !r.is_done() {
                tree.insert("code".into(), json!(r.u8("reason code")?));
                if v5 && !r.is_done() {
                    tree.insert("properties".into(), r.properties()?);
                }
            }
            summary.push_str(&format!(" id={id}"));
            call = Some(match kind {
                4 => call_of(&format!("mqtt:puback:{id}"), Role::Answer, None),
                5 => call_of(&format!("mqtt:pubrec:{id}"), Role::Answer, None),
                6 => call_of(&format!("mqtt:pubcomp:{id}"), Role::Call, Some("PUBREL")),
                _ => call_of(&format!("mqtt:pubcomp:{id}"), Role::Answer, None),
            });
        }
        8 | 10 => {
            let id = r.u16("packet identifier")?;
            if v5 {
                tree.insert("properties".into(), r.properties()?);
            }
            let mut filters = Vec::new();
            while !r.is_done() {
                let filter = r.string("topic filter")?;
                if kind == 8 {
                    let options = r.u8("subscription options")?;
                    filters.push(json!({ "filter": filter, "qos": options & 3 }));
                } else {
                    filters.push(json!({ "filter": filter }));
                }
            }
            let names: Vec<&str> = filters
                .iter()
                .filter_map(|f| f.get("filter").and_then(Value::as_str))
                .collect();
            let joined = names.join(",");
            summary.push_str(&format!(" {} id={id}", cut(&joined, SUMMARY_VALUE_CHARS)));
            // A subscription's filter answers `mqtt.topic` too.
            if let Some(first) = names.first() {
                tree.insert("topic".into(), json!(first));
            }
            tree.insert("packetId".into(), json!(id));
            tree.insert("filters".into(), Value::Array(filters));
            let key = if kind == 8 { "suback" } else { "unsuback" };
            call = Some(call_of(&format!("mqtt:{key}:{id}"), Role::Call, Some(name)));
        }
        9 | 11 => {
            let id = r.u16("packet identifier")?;
            if v5 {
                tree.insert("properties".into(), r.properties()?);
            }
            let codes: Vec<u8> = r.rest().to_vec();
            summary.push_str(&format!(" id={id} codes={codes:?}"));
            tree.insert("packetId".into(), json!(id));
            tree.insert("codes".into(), json!(codes));
            let key = if kind == 9 { "suback" } else { "unsuback" };
            call = Some(call_of(&format!("mqtt:{key}:{id}"), Role::Answer, None));
        }
        12 => call = Some(call_of("mqtt:ping", Role::Call, Some("PINGREQ"))),
        13 => call = Some(call_of("mqtt:ping", Role::Answer, None)),
        14 | 15 => {
            if !r.is_done() {
                let code = r.u8("reason code")?;
                tree.insert("code".into(), json!(code));
                summary.push_str(&format!(" code={code}"));
                if !r.is_done() {
                    tree.insert("properties".into(), r.properties()?);
                }
            }
        }
        _ => return Err(Problem::new(0, "reserved packet type 0")),
    }
    Ok(Item {
        summary,
        tree: Value::Object(tree),
        call,
    })
}

/// The call (or answer) a packet makes under `key`.
fn call_of(key: &str, role: Role, name: Option<&str>) -> Call {
    Call {
        key: key.to_owned(),
        role,
        name: name.map(str::to_owned),
    }
}
