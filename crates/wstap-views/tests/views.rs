//! Each view on messages as real peers send them, the session decoder on what spans
//! messages, detection, filter fields, call pairing, and no panic on any input.

use proptest::prelude::*;
use serde_json::{json, Value};
use wstap_views::calls::{latency_stats, Pairer};
use wstap_views::detect::{by_subprotocol, sniff};
use wstap_views::field::format_value;
use wstap_views::{decode, decode_plain, Detector, ProtocolField, Role, SessionDecoder, View};
use wstap_wire::Direction::{ClientToServer as C2S, ServerToClient as S2C};

fn summary(view: View, payload: &[u8]) -> String {
    decode(view, payload, std::str::from_utf8(payload).is_ok()).summary()
}

#[test]
fn signalr_json_records_decode_with_their_calls() {
    let handshake = b"{\"protocol\":\"json\",\"version\":1}\x1e";
    assert_eq!(
        summary(View::SignalR, handshake),
        "SIGNALR handshake protocol=json version=1"
    );
    assert_eq!(
        summary(View::SignalR, b"{}\x1e"),
        "SIGNALR handshake accepted"
    );
    let invocation = b"{\"type\":1,\"invocationId\":\"3\",\"target\":\"SendMessage\",\"arguments\":[\"John\",\"hi\"]}\x1e";
    let decoded = decode(View::SignalR, invocation, true);
    assert_eq!(
        decoded.summary(),
        "SIGNALR invocation SendMessage(\"John\", \"hi\") id=3"
    );
    let call = decoded.items[0].call.clone().unwrap();
    assert_eq!((call.key.as_str(), call.role), ("signalr:3", Role::Call));
    // Two records in one message: a ping and a completion.
    let two = b"{\"type\":6}\x1e{\"type\":3,\"invocationId\":\"3\",\"result\":42}\x1e";
    let decoded = decode(View::SignalR, two, true);
    assert_eq!(
        decoded.summary(),
        "SIGNALR ping | SIGNALR completion result=42 id=3"
    );
    assert_eq!(decoded.items[1].call.as_ref().unwrap().role, Role::Answer);
}

/// A SignalR MessagePack record: the size prefix and the array.
fn signalr_pack(fields: Vec<rmpv::Value>) -> Vec<u8> {
    let mut body = Vec::new();
    rmpv::encode::write_value(&mut body, &rmpv::Value::Array(fields)).unwrap();
    let mut out = Vec::new();
    let mut size = body.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend(body);
    out
}

#[test]
fn signalr_messagepack_records_decode() {
    use rmpv::Value as P;
    let invocation = signalr_pack(vec![
        P::from(1),
        P::Map(vec![]),
        P::from("7"),
        P::from("SendMessage"),
        P::Array(vec![P::from("Adam"), P::from("hello")]),
    ]);
    let completion = signalr_pack(vec![
        P::from(3),
        P::Map(vec![]),
        P::from("7"),
        P::from(3),
        P::from(true),
    ]);
    let both = [invocation.clone(), completion].concat();
    let decoded = decode(View::SignalR, &both, false);
    assert_eq!(
        decoded.summary(),
        "SIGNALR invocation SendMessage(\"Adam\", \"hello\") id=7 | SIGNALR completion result=true id=7"
    );
    // Cut short: the first record decodes, the second says where it broke.
    let cut = &both[..both.len() - 2];
    let decoded = decode(View::SignalR, cut, false);
    assert_eq!(decoded.items.len(), 1);
    assert_eq!(decoded.problem.unwrap().at, invocation.len());
}

#[test]
fn socketio_packets_decode_and_attachments_join_their_placeholder() {
    assert_eq!(
        summary(
            View::SocketIo,
            b"0{\"sid\":\"abc\",\"upgrades\":[],\"pingInterval\":25000}"
        ),
        "ENGINE.IO open sid=abc"
    );
    assert_eq!(summary(View::SocketIo, b"2"), "ENGINE.IO ping");
    assert_eq!(
        summary(View::SocketIo, b"40/admin,"),
        "SOCKET.IO connect ns=/admin"
    );
    assert_eq!(
        summary(View::SocketIo, b"42[\"chat\",\"hi\",{\"from\":\"John\"}]"),
        "SOCKET.IO event chat(\"hi\", {\"from\":\"John\"})"
    );
    let event = decode(View::SocketIo, b"42/admin,12[\"kick\",\"Adam\"]", true);
    assert_eq!(
        event.summary(),
        "SOCKET.IO event kick(\"Adam\") ack=12 ns=/admin"
    );
    assert_eq!(
        event.items[0].call.as_ref().unwrap().key,
        "socketio:/admin:12"
    );
    let ack = decode(View::SocketIo, b"43/admin,12[\"ok\"]", true);
    assert_eq!(
        ack.items[0].call.as_ref().unwrap().key,
        "socketio:/admin:12"
    );
    assert_eq!(ack.items[0].call.as_ref().unwrap().role, Role::Answer);

    let mut session = SessionDecoder::new(Some(View::SocketIo));
    let first = session.decode(
        C2S,
        b"452-[\"upload\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
        true,
    );
    assert!(
        first.summary().ends_with("+2 binary"),
        "{}",
        first.summary()
    );
    let one = session.decode(C2S, &[1, 2], false);
    assert!(
        one.summary().starts_with("SOCKET.IO attachment 1/2"),
        "{}",
        one.summary()
    );
    let two = session.decode(C2S, &[0xff], false);
    assert_eq!(
        two.items[0].tree["packet"]["args"],
        json!(["0x0102", "0xff"])
    );
    let stray = session.decode(C2S, &[9], false);
    assert!(stray.summary().contains("no packet announced"));
}

#[test]
fn maps_keyed_by_maps_keyed_by_maps_stay_small() {
    // Found by the fuzzer: each level of keys written as JSON escaped the one inside it
    // again, doubling its length; 30 levels asked for gigabytes.
    let mut nested = vec![0x81u8; 30];
    nested.extend([0xc0; 31]);
    let mut cbor = vec![0xa1u8; 30];
    cbor.extend([0xf6; 31]);
    for (view, payload) in [(View::MsgPack, nested), (View::Cbor, cbor)] {
        let decoded = decode(view, &payload, false);
        assert_eq!(decoded.problem, None, "{view}");
        let text = decoded.to_json().to_string();
        assert!(text.len() < 2_000, "{view}: {} bytes", text.len());
        assert!(text.contains('…'), "{view}: {text}");
    }
}

#[test]
fn repeated_map_keys_keep_every_entry_in_linear_time() {
    // {"a": 0, "a#2": 1, "a": 2, "a": 3, ...}: 20,000 entries, mostly under one key.
    let count = 20_000u16;
    let mut payload = vec![0xde];
    payload.extend_from_slice(&count.to_be_bytes());
    for n in 0..count {
        let key: &[u8] = if n == 1 { b"\xa3a#2" } else { b"\xa1a" };
        payload.extend_from_slice(key);
        payload.extend_from_slice(&[0xcd]);
        payload.extend_from_slice(&n.to_be_bytes());
    }
    let decoded = decode(View::MsgPack, &payload, false);
    let tree = decoded.items[0].tree.as_object().unwrap();
    assert_eq!(tree.len(), usize::from(count));
    assert_eq!(tree["a"], json!(0));
    assert_eq!(tree["a#2"], json!(1), "a key of that name keeps its value");
    assert_eq!(tree["a#3"], json!(2));
    assert_eq!(tree[&format!("a#{count}")], json!(count - 1));
}

#[test]
fn engine_io_v3_attachments_lose_their_packet_type_byte_and_v4_ones_keep_every_byte() {
    let attachment_in = |url: &str| {
        let mut session = SessionDecoder::new(Some(View::SocketIo)).with_url(url);
        session.decode(
            C2S,
            b"451-[\"upload\",{\"_placeholder\":true,\"num\":0}]",
            true,
        );
        session.decode(C2S, &[4, 1, 2, 3], false)
    };
    // socket.io 2 (Engine.IO v3): a binary message is 0x04 and the data.
    let v3 = attachment_in("ws://h/socket.io/?EIO=3&transport=websocket");
    assert_eq!(v3.items[0].tree["packet"]["args"], json!(["0x010203"]));
    assert!(v3.summary().contains("(3 bytes)"), "{}", v3.summary());
    // v4, or a URL that does not say: every byte is data.
    for url in [
        "ws://h/socket.io/?EIO=4&transport=websocket",
        "ws://h/socket.io/?transport=websocket",
        "ws://h/live",
    ] {
        let v4 = attachment_in(url);
        assert_eq!(
            v4.items[0].tree["packet"]["args"],
            json!(["0x04010203"]),
            "{url}"
        );
    }
    assert_eq!(
        wstap_views::detect::engine_io_version("ws://h/?a=1&EIO=3#x"),
        Some(3)
    );
    assert_eq!(
        wstap_views::detect::engine_io_version("ws://h/?EIO=x"),
        None
    );
}

#[test]
fn stomp_frames_decode_with_headers_bodies_and_receipts() {
    let send = b"SEND\ndestination:/topic/chat\nreceipt:r-1\ncontent-type:text/plain\n\nhello\x00";
    let decoded = decode(View::Stomp, send, true);
    assert_eq!(
        decoded.summary(),
        "STOMP SEND /topic/chat receipt=r-1 hello"
    );
    assert_eq!(decoded.items[0].tree["destination"], "/topic/chat");
    assert_eq!(
        decoded.items[0].call.as_ref().unwrap().key,
        "stomp:receipt:r-1"
    );
    // CR LF lines, an escaped header, a body with a NUL by content-length, a heart-beat.
    let message = b"MESSAGE\r\ndestination:/queue/a\\cb\r\ncontent-length:3\r\n\r\na\x00b\x00\n";
    let decoded = decode(View::Stomp, message, false);
    assert_eq!(decoded.items.len(), 2);
    assert_eq!(decoded.items[0].tree["destination"], "/queue/a:b");
    assert_eq!(decoded.items[1].summary, "STOMP heart-beat");
    let bad = decode(View::Stomp, b"SEND\ndestination:/x\n\nno nul", true);
    let problem = bad.problem.unwrap();
    assert_eq!(problem.what, "frame without its NUL");
    assert_eq!(problem.at, 21);
}

/// An MQTT packet: first byte, remaining length, body.
fn mqtt(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut length = body.len();
    loop {
        let byte = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(body);
    out
}

fn mqtt_string(text: &str) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

#[test]
fn mqtt_packets_spanning_and_sharing_messages_end_where_they_end() {
    let connect = mqtt(
        0x10,
        &[
            mqtt_string("MQTT"),
            vec![5, 0x02, 0, 60, 0],
            mqtt_string("sensor-1"),
        ]
        .concat(),
    );
    let publish = mqtt(
        0x32,
        &[
            mqtt_string("sensors/t1"),
            vec![0, 5, 0],
            b"{\"t\":21.5}".to_vec(),
        ]
        .concat(),
    );
    let mut session = SessionDecoder::new(Some(View::Mqtt));
    assert_eq!(
        session.decode(C2S, &connect, false).summary(),
        "MQTT CONNECT client=\"sensor-1\" v5 keepalive=60"
    );
    // MQTT.js style: one PUBLISH in five messages; only the last ends it.
    let pieces = [
        &publish[..1],
        &publish[1..2],
        &publish[2..4],
        &publish[4..14],
        &publish[14..],
    ];
    for piece in &pieces[..4] {
        let decoded = session.decode(C2S, piece, false);
        assert_eq!(decoded.items[0].tree["type"], "fragment");
        assert!(decoded.problem.is_none());
    }
    let last = session.decode(C2S, pieces[4], false);
    assert_eq!(
        last.summary(),
        "MQTT PUBLISH sensors/t1 qos=1 id=5 (10 bytes)"
    );
    assert_eq!(last.items[0].tree["payload"], json!({"t": 21.5}));
    // The answer, and two packets in one message the other way.
    let puback = mqtt(0x40, &[0, 5]);
    let both = [puback.clone(), mqtt(0xd0, &[])].concat();
    let decoded = session.decode(S2C, &both, false);
    assert_eq!(decoded.summary(), "MQTT PUBACK id=5 | MQTT PINGRESP");
    assert_eq!(decoded.items[0].call.as_ref().unwrap().key, "mqtt:puback:5");
    // Version 3.1.1: no properties.
    let mut v311 = SessionDecoder::new(Some(View::Mqtt));
    let connect = mqtt(
        0x10,
        &[mqtt_string("MQTT"), vec![4, 0x02, 0, 30], mqtt_string("c")].concat(),
    );
    v311.decode(C2S, &connect, false);
    let subscribe = mqtt(
        0x82,
        &[vec![0, 9], mqtt_string("sensors/#"), vec![1]].concat(),
    );
    assert_eq!(
        v311.decode(C2S, &subscribe, false).summary(),
        "MQTT SUBSCRIBE sensors/# id=9"
    );
}

#[test]
fn graphql_both_protocols_decode_with_operation_names() {
    let subscribe = br#"{"id":"1","type":"subscribe","payload":{"query":"subscription OnMessage($room: ID!) { message(room: $room) { text } }","variables":{"room":"a"}}}"#;
    let decoded = decode(View::Graphql, subscribe, true);
    assert_eq!(
        decoded.summary(),
        "GRAPHQL subscribe OnMessage id=1 variables={\"room\":\"a\"}"
    );
    assert_eq!(decoded.items[0].tree["operation"], "OnMessage");
    let legacy =
        br#"{"id":"2","type":"start","payload":{"query":"{ hello }","operationName":"Hello"}}"#;
    assert_eq!(summary(View::Graphql, legacy), "GRAPHQL start Hello id=2");
    let next = br#"{"id":"1","type":"next","payload":{"data":{"message":{"text":"hi"}}}}"#;
    let decoded = decode(View::Graphql, next, true);
    assert_eq!(decoded.items[0].call.as_ref().unwrap().role, Role::Answer);
}

#[test]
fn jsonrpc_requests_responses_and_batches_decode() {
    let request = br#"{"jsonrpc":"2.0","method":"eth_subscribe","params":["newHeads"],"id":1}"#;
    assert_eq!(
        summary(View::JsonRpc, request),
        "JSON-RPC eth_subscribe([\"newHeads\"]) id=1"
    );
    let batch = br#"[{"jsonrpc":"2.0","result":"0x9c","id":1},{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"a"}]"#;
    assert_eq!(
        summary(View::JsonRpc, batch),
        "JSON-RPC result \"0x9c\" id=1 | JSON-RPC error -32601 \"Method not found\" id=\"a\""
    );
}

#[test]
fn formats_decode_and_say_where_they_fail() {
    assert_eq!(summary(View::Json, b"{\"a\":[1,2]}"), "JSON {\"a\":[1,2]}");
    let bad = decode(View::Json, b"{\"a\":tru}", true);
    assert_eq!(
        bad.problem.as_ref().unwrap().at,
        8,
        "where serde_json saw the bad literal end"
    );
    assert!(
        bad.items[0].summary.starts_with("HEX 7b22"),
        "falls back to hex"
    );
    let mut pack = Vec::new();
    rmpv::encode::write_value(
        &mut pack,
        &rmpv::Value::Map(vec![(
            rmpv::Value::from("a"),
            rmpv::Value::Binary(vec![1, 2]),
        )]),
    )
    .unwrap();
    assert_eq!(summary(View::MsgPack, &pack), "MSGPACK {\"a\":\"0x0102\"}");
    let mut cbor = Vec::new();
    ciborium::ser::into_writer(&json!({"n": [1, -2, "x"]}), &mut cbor).unwrap();
    assert_eq!(summary(View::Cbor, &cbor), "CBOR {\"n\":[1,-2,\"x\"]}");
    // Protobuf: field 1 varint 150, field 2 "hi", field 3 a nested message {1: 1}.
    let proto = [
        0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i', 0x1a, 0x02, 0x08, 0x01,
    ];
    assert_eq!(
        decode(View::Protobuf, &proto, false).items[0].tree,
        json!({"1": 150, "2": "hi", "3": {"1": 1}})
    );
    assert_eq!(
        decode(View::Protobuf, &[0x0b], false).problem.unwrap().what,
        "wire type 3 (groups are not decoded)"
    );
    assert_eq!(decode_plain(b"[1]").view, View::Json);
    assert_eq!(decode_plain(b"hello").view, View::Text);
    assert_eq!(decode_plain(&[0xff, 0]).view, View::Hex);
}

#[test]
fn detection_uses_subprotocol_then_url_then_the_first_messages() {
    assert_eq!(by_subprotocol("v12.stomp"), Some(View::Stomp));
    assert_eq!(by_subprotocol("graphql-transport-ws"), Some(View::Graphql));
    assert_eq!(
        Detector::from_handshake(None, "ws://h/socket.io/?EIO=4&transport=websocket").view(),
        Some(View::SocketIo)
    );
    let mut detector = Detector::from_handshake(None, "ws://h/chathub?id=x");
    assert!(!detector.is_settled());
    assert_eq!(
        detector.observe(b"{\"protocol\":\"json\",\"version\":1}\x1e", true),
        Some(View::SignalR)
    );
    assert!(detector.is_settled());
    assert_eq!(
        sniff(br#"{"jsonrpc":"2.0","method":"a"}"#, true),
        Some(View::JsonRpc)
    );
    assert_eq!(
        sniff(br#"{"type":"connection_init"}"#, true),
        Some(View::Graphql)
    );
    assert_eq!(
        sniff(b"CONNECT\naccept-version:1.2\n\n\x00", true),
        Some(View::Stomp)
    );
    let connect = mqtt(
        0x10,
        &[mqtt_string("MQTT"), vec![4, 2, 0, 30], mqtt_string("c")].concat(),
    );
    assert_eq!(sniff(&connect, false), Some(View::Mqtt));
    let mut plain = Detector::from_handshake(None, "ws://h/");
    for _ in 0..4 {
        assert_eq!(plain.observe(b"hello", true), None);
    }
    assert!(plain.is_settled());
    assert_eq!(plain.view(), None);
}

#[test]
fn filter_fields_read_every_item_and_unknown_fields_say_what_exists() {
    let field = ProtocolField::find(View::SignalR, "target").unwrap();
    let two = b"{\"type\":1,\"target\":\"A\",\"arguments\":[]}\x1e{\"type\":1,\"target\":\"B\",\"arguments\":[]}\x1e";
    assert_eq!(field.values(two), vec![json!("A"), json!("B")]);
    let error = ProtocolField::find(View::SignalR, "targte").unwrap_err();
    assert_eq!(
        error.to_string(),
        "signalr has no field \"targte\" (it has type, target, id, error)"
    );
    let mut pack = Vec::new();
    rmpv::encode::write_value(&mut pack, &rmpv::Value::from(7)).unwrap();
    assert_eq!(format_value(View::MsgPack, &pack), Some(json!(7)));
    assert_eq!(
        format_value(View::MsgPack, &[pack.clone(), pack].concat()),
        None
    );
}

#[test]
fn calls_pair_with_answers_the_other_way_and_the_rest_stay_unanswered() {
    let mut pairer = Pairer::new();
    let request = |id: u32| {
        decode(
            View::JsonRpc,
            format!(r#"{{"jsonrpc":"2.0","method":"get","id":{id}}}"#).as_bytes(),
            true,
        )
    };
    let response = |id: u32| {
        decode(
            View::JsonRpc,
            format!(r#"{{"jsonrpc":"2.0","result":1,"id":{id}}}"#).as_bytes(),
            true,
        )
    };
    let call = |d: &wstap_views::Decoded| d.items[0].call.clone().unwrap();
    assert!(pairer.observe(&call(&request(1)), C2S, 1, 1_000).is_none());
    assert!(pairer.observe(&call(&request(2)), C2S, 2, 2_000).is_none());
    // An answer the same way as its call is not its answer.
    assert!(pairer.observe(&call(&response(1)), C2S, 3, 2_500).is_none());
    let answered = pairer.observe(&call(&response(1)), S2C, 4, 4_000).unwrap();
    assert_eq!(
        (answered.call, answered.answer, answered.latency_us),
        (1, 4, 3_000)
    );
    let unanswered = pairer.unanswered();
    assert_eq!(unanswered.len(), 1);
    assert_eq!(
        (unanswered[0].name.as_str(), unanswered[0].call),
        ("get", 2)
    );
    let stats = latency_stats(&[answered.clone(), answered]);
    assert_eq!(
        (stats[0].count, stats[0].p50_us, stats[0].max_us),
        (2, 3_000, 3_000)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// No view panics on any input, decoded alone or as a session's stream, and every
    /// problem points inside the payload.
    #[test]
    fn no_view_panics_on_any_bytes(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..6), text in any::<bool>()) {
        for view in View::ALL {
            let mut session = SessionDecoder::new(Some(view));
            for chunk in &chunks {
                let decoded = session.decode(C2S, chunk, text);
                if let Some(problem) = &decoded.problem {
                    prop_assert!(problem.at <= chunk.len(), "{view}: {problem} of {}", chunk.len());
                }
                let _ = decoded.summary();
                let _ = decoded.to_json();
                let _ = decode(view, chunk, text);
            }
        }
        for chunk in &chunks {
            let _ = sniff(chunk, text);
            let _ = decode_plain(chunk);
        }
    }

    /// Any MessagePack value rmpv writes reads back as the same JSON.
    #[test]
    fn msgpack_values_round_trip(value in json_value()) {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &to_pack(&value)).unwrap();
        prop_assert_eq!(format_value(View::MsgPack, &bytes), Some(value));
    }

    /// Any CBOR value ciborium writes reads back as the same JSON.
    #[test]
    fn cbor_values_round_trip(value in json_value()) {
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&value, &mut bytes).unwrap();
        prop_assert_eq!(format_value(View::Cbor, &bytes), Some(value));
    }

    /// Any split of a stream of MQTT packets into messages yields the same packets.
    #[test]
    fn mqtt_any_split_yields_the_same_packets(ids in proptest::collection::vec(1u16..1000, 1..6), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let stream: Vec<u8> = ids
            .iter()
            .flat_map(|id| mqtt(0x32, &[mqtt_string("t/x"), id.to_be_bytes().to_vec(), b"p".to_vec()].concat()))
            .collect();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len())).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        points.dedup();
        let mut session = SessionDecoder::new(Some(View::Mqtt));
        let mut seen = Vec::new();
        for pair in points.windows(2) {
            for item in session.decode(C2S, &stream[pair[0]..pair[1]], false).items {
                if item.tree["type"] == "publish" {
                    seen.push(item.tree["packetId"].as_u64().unwrap() as u16);
                }
            }
        }
        prop_assert_eq!(seen, ids);
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn to_pack(value: &Value) -> rmpv::Value {
    match value {
        Value::Null => rmpv::Value::Nil,
        Value::Bool(b) => rmpv::Value::Boolean(*b),
        Value::Number(n) => rmpv::Value::from(n.as_i64().unwrap()),
        Value::String(s) => rmpv::Value::from(s.as_str()),
        Value::Array(items) => rmpv::Value::Array(items.iter().map(to_pack).collect()),
        Value::Object(map) => rmpv::Value::Map(
            map.iter()
                .map(|(k, v)| (rmpv::Value::from(k.as_str()), to_pack(v)))
                .collect(),
        ),
    }
}
