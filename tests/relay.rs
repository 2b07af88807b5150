//! The WebSocket relay end to end: real peers on both sides of the engine, byte-exact
//! passthrough checked on raw sockets, and what the trace says about it.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use wstap_wire::{FrameBuilder, LengthEncoding, Opcode};

#[tokio::test]
async fn tungstenite_echo_through_connect_is_traced_with_close_initiator() {
    let (server, _) = echo_server().await;
    let proxy = Proxy::start().await;
    let stream = tunnel(proxy.addr, server).await;
    let (mut ws, response) = tokio_tungstenite::client_async(format!("ws://{server}/echo"), stream)
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    ws.send(Message::Binary(vec![0, 1, 2, 255].into()))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Binary(vec![0, 1, 2, 255].into())
    );
    let close = CloseFrame {
        code: CloseCode::Library(4001),
        reason: "done here".into(),
    };
    ws.close(Some(close)).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);

    let trace = proxy.stop(Duration::from_secs(5)).await;
    assert_eq!(trace[0]["type"], "trace");
    assert_eq!(trace[0]["format"], "wstap");
    assert_eq!(trace[0]["version"], 1);

    let start = of_type(&trace, "session_start")[0];
    assert_eq!(start["via"], "connect");
    assert_eq!(start["target"], server.to_string());
    assert_eq!(start["tls"], false);
    assert!(start["client"].as_str().unwrap().starts_with("127.0.0.1:"));

    let handshake = of_type(&trace, "handshake")[0];
    assert_eq!(handshake["url"], format!("ws://{server}/echo"));
    assert_eq!(handshake["accept_valid"], true);
    assert_eq!(handshake["response"]["status"], 101);
    assert_eq!(handshake["request"]["method"], "GET");
    assert!(handshake["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h[0] == "Sec-WebSocket-Key"));

    let frames = of_type(&trace, "frame");
    let sent = frames
        .iter()
        .find(|f| f["dir"] == "c2s" && f["opcode"] == 1)
        .unwrap();
    assert_eq!(sent["payload"]["data"], "hello");
    assert_eq!(sent["payload"]["encoding"], "utf8");
    assert_eq!(sent["masked"], true);
    assert_eq!(sent["mask_key"].as_str().unwrap().len(), 8);
    assert_eq!(sent["flags"], "10000001");
    for field in [
        "session",
        "time",
        "fin",
        "rsv1",
        "rsv2",
        "rsv3",
        "opcode_name",
        "header_len",
        "payload_len",
        "violations",
    ] {
        assert!(!sent[field].is_null(), "frame lacks {field}");
    }
    let echoed = frames
        .iter()
        .find(|f| f["dir"] == "s2c" && f["opcode"] == 2)
        .unwrap();
    assert_eq!(echoed["payload"]["encoding"], "base64");
    assert_eq!(echoed["payload"]["data"], "AAEC/w==");
    assert_eq!(echoed["masked"], false);
    assert!(echoed["mask_key"].is_null());
    let closes: Vec<_> = frames.iter().filter(|f| f["opcode"] == 8).collect();
    assert_eq!(closes.len(), 2, "a close frame each way");
    assert_eq!(closes[0]["close"]["code"], 4001);

    let end = of_type(&trace, "session_end")[0];
    assert_eq!(end["outcome"], "closed");
    assert_eq!(end["kind"], "websocket");
    assert_eq!(end["close"]["initiator"], "client");
    assert_eq!(end["close"]["code"], 4001);
    assert_eq!(end["close"]["reason"], "done here");
    assert_eq!(end["frames"]["c2s"], 3);
    assert_eq!(end["frames"]["s2c"], 3);
    assert!(end["bytes"]["c2s"].as_u64().unwrap() > 0);

    let messages = of_type(&trace, "message");
    assert_eq!(messages.len(), 6);
    assert!(trace
        .iter()
        .all(|e| e["type"] == "trace" || e["session"] == start["session"]));
}

#[tokio::test]
async fn server_receives_the_clients_exact_bytes_and_the_trace_reassembles() {
    let (server, seen, server_task) = raw_server(switching(""), Vec::new()).await;
    let proxy = Proxy::start().await;
    let mut client = tunnel(proxy.addr, server).await;
    // Header names in odd case and an odd order: inside a tunnel the head is forwarded as is.
    let handshake = format!(
        "GET /raw HTTP/1.1\r\nhost: {server}\r\nUPGRADE: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Custom:  spaced  \r\n\r\n"
    );
    send(&mut client, handshake.as_bytes()).await;
    let response = read_head(&mut client).await;
    assert_eq!(
        response,
        switching("").as_bytes(),
        "the 101 reaches the client unchanged"
    );

    let wire: Vec<u8> = tricky_client_frames().concat();
    // Odd write sizes, down to single bytes, so frames straddle reads.
    for piece in wire[..40].chunks(1).chain(wire[40..].chunks(97)) {
        send(&mut client, piece).await;
    }
    client.shutdown().await.unwrap();
    let _ = read_to_end(&mut client).await;
    server_task.await.unwrap();

    let (seen_head, seen_bytes) = {
        let seen = seen.lock().unwrap();
        (seen.head.clone(), seen.bytes.clone())
    };
    assert_eq!(
        seen_head,
        handshake.as_bytes(),
        "the handshake is forwarded byte for byte"
    );
    assert_eq!(
        seen_bytes, wire,
        "the server receives exactly the client's bytes"
    );

    let trace = proxy.stop(Duration::from_secs(5)).await;
    let handshake_event = of_type(&trace, "handshake")[0];
    let names: Vec<&str> = handshake_event["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "host",
            "UPGRADE",
            "connection",
            "sec-websocket-key",
            "Sec-WebSocket-Version",
            "X-Custom"
        ]
    );

    let frames: Vec<_> = of_type(&trace, "frame")
        .into_iter()
        .filter(|f| f["dir"] == "c2s")
        .collect();
    assert_eq!(frames.len(), 7);
    let keys: Vec<&str> = frames
        .iter()
        .map(|f| f["mask_key"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        keys,
        ["16398f63", "01020304", "aabbccdd", "-", "09090909", "05060708", "deadbeef"]
    );
    assert_eq!(frames[0]["fin"], false);
    assert_eq!(frames[0]["payload"]["data"], "Hel");
    assert_eq!(frames[1]["opcode_name"], "PING");
    assert!(frames[3]["violations"][0]
        .as_str()
        .unwrap()
        .starts_with("unmasked_client_frame"));
    assert!(frames[4]["violations"][0]
        .as_str()
        .unwrap()
        .starts_with("reserved_opcode"));
    assert_eq!(frames[4]["opcode_name"], "RESERVED_0x3");
    assert!(frames[5]["violations"][0]
        .as_str()
        .unwrap()
        .starts_with("non_minimal_length"));
    assert_eq!(frames[5]["length_bits"], 64);

    let text = of_type(&trace, "message")
        .into_iter()
        .find(|m| m["opcode_name"] == "TEXT")
        .unwrap();
    assert_eq!(text["frames"], 2);
    assert_eq!(text["payload"]["data"], "Hello");
}

#[tokio::test]
async fn client_receives_the_servers_exact_bytes_sent_right_after_the_101() {
    let server_frames = [
        FrameBuilder::text().encode(b"sent in the same write as the 101"),
        FrameBuilder::binary().fin(false).encode(&[1; 10]),
        FrameBuilder::pong().encode(b""),
        FrameBuilder::continuation().encode(&[2; 70_000]),
        FrameBuilder::text()
            .mask([1, 1, 1, 1])
            .encode(b"masked by a server"),
        FrameBuilder::close().encode(b"\x03\xe8"),
    ]
    .concat();
    let (server, _, server_task) = raw_server(switching(""), server_frames.clone()).await;
    let proxy = Proxy::start().await;
    let mut client = handshake_sent(proxy.addr, server, "").await;
    assert_eq!(read_head(&mut client).await, switching("").as_bytes());
    assert_eq!(
        read_exact(&mut client, server_frames.len()).await,
        server_frames
    );
    send(
        &mut client,
        &FrameBuilder::close().mask([3, 3, 3, 3]).encode(b"\x03\xe8"),
    )
    .await;
    client.shutdown().await.unwrap();
    server_task.await.unwrap();

    let trace = proxy.stop(Duration::from_secs(5)).await;
    let frames: Vec<_> = of_type(&trace, "frame")
        .into_iter()
        .filter(|f| f["dir"] == "s2c")
        .collect();
    assert_eq!(frames.len(), 6);
    assert!(frames[4]["violations"][0]
        .as_str()
        .unwrap()
        .starts_with("masked_server_frame"));
    let binary = of_type(&trace, "message")
        .into_iter()
        .find(|m| m["opcode_name"] == "BINARY")
        .unwrap();
    assert_eq!(
        (binary["frames"].as_u64(), binary["len"].as_u64()),
        (Some(2), Some(70_010))
    );
    let end = of_type(&trace, "session_end")[0];
    assert_eq!(end["close"]["initiator"], "server");
}

#[tokio::test]
async fn permessage_deflate_is_inflated_in_the_trace_and_relayed_compressed() {
    use flate2::{Compress, Compression, FlushCompress};
    // RFC 7692 7.2.3.2: "Hello" twice, the second sharing the first's window.
    let mut server_frames = FrameBuilder::text()
        .rsv1(true)
        .encode(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    server_frames.extend(
        FrameBuilder::text()
            .rsv1(true)
            .encode(&[0xf2, 0x00, 0x11, 0x00, 0x00]),
    );
    // A longer message compressed here, split into two fragments.
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(50);
    let mut compressor = Compress::new(Compression::default(), false);
    let mut compressed = Vec::with_capacity(text.len());
    compressor
        .compress_vec(text.as_bytes(), &mut compressed, FlushCompress::Sync)
        .unwrap();
    compressed.truncate(compressed.len() - 4); // strip 00 00 ff ff (RFC 7692 7.2.1)
    let (a, b) = compressed.split_at(compressed.len() / 2);
    // A fresh compressor refers only to its own output, so the inflater's shared window
    // (server context takeover) reads it all the same.
    server_frames.extend(FrameBuilder::text().rsv1(true).fin(false).encode(a));
    server_frames.extend(FrameBuilder::continuation().encode(b));

    let (server, _, server_task) = raw_server(
        switching("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n"),
        server_frames.clone(),
    )
    .await;
    let proxy = Proxy::start().await;
    let mut client = websocket_through(
        proxy.addr,
        server,
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    )
    .await;
    assert_eq!(
        read_exact(&mut client, server_frames.len()).await,
        server_frames,
        "compressed bytes relayed as is"
    );
    let client_frame = FrameBuilder::text()
        .rsv1(true)
        .mask([7, 7, 7, 7])
        .encode(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    send(&mut client, &client_frame).await;
    client.shutdown().await.unwrap();
    server_task.await.unwrap();

    let trace = proxy.stop(Duration::from_secs(5)).await;
    let handshake = of_type(&trace, "handshake")[0];
    assert_eq!(handshake["deflate"]["client_no_context_takeover"], true);
    let frames = of_type(&trace, "frame");
    for frame in frames.iter().filter(|f| f["opcode"] == 1) {
        assert_eq!(frame["rsv1"], true);
        assert_eq!(frame["violations"].as_array().unwrap().len(), 0, "{frame}");
    }
    let first = frames.iter().find(|f| f["dir"] == "s2c").unwrap();
    assert_eq!(first["inflated"]["payload"]["data"], "Hello");
    let messages: Vec<_> = of_type(&trace, "message")
        .into_iter()
        .filter(|m| m["dir"] == "s2c")
        .collect();
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["payload"]["data"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Hello", "Hello", text.as_str()]);
    assert_eq!(
        (
            messages[2]["compressed"].as_bool(),
            messages[2]["frames"].as_u64()
        ),
        (Some(true), Some(2))
    );
    assert_eq!(messages[2]["len"].as_u64(), Some(text.len() as u64));
    assert!(messages[2]["wire_len"].as_u64().unwrap() < text.len() as u64 / 4);
    let c2s = of_type(&trace, "message")
        .into_iter()
        .find(|m| m["dir"] == "c2s")
        .unwrap();
    assert_eq!(c2s["payload"]["data"], "Hello");
}

#[tokio::test]
async fn a_frame_cut_off_by_the_client_ends_the_session_aborted_and_says_how_much_arrived() {
    let (server, seen, server_task) = raw_server(switching(""), Vec::new()).await;
    let proxy = Proxy::start().await;
    let mut client = websocket_through(proxy.addr, server, "").await;
    let frame = FrameBuilder::binary()
        .mask([1, 2, 3, 4])
        .encode(&[0x55; 1000]);
    send(&mut client, &frame[..508]).await; // 8 header bytes and 500 of 1000 payload bytes
    client.shutdown().await.unwrap();
    server_task.await.unwrap();
    assert_eq!(seen.lock().unwrap().bytes, frame[..508]);

    let trace = proxy.stop(Duration::from_secs(5)).await;
    let end = of_type(&trace, "session_end")[0];
    assert_eq!(end["outcome"], "aborted");
    let cut = &end["cut_frames"][0];
    assert_eq!(cut["dir"], "c2s");
    assert_eq!(cut["payload_received"], 500);
    assert_eq!(cut["payload_len"], 1000);
    assert!(end["error"]
        .as_str()
        .unwrap()
        .contains("without a close frame"));
}

/// Every violation the wire crate knows, sent by a raw peer in the direction where it is one:
/// the bytes arrive unchanged, and the trace names the violation on the frame.
#[tokio::test]
async fn every_violation_is_relayed_unchanged_and_recorded_in_both_directions() {
    let k = [9, 8, 7, 6];
    let masked = |b: FrameBuilder| b.mask(k);
    // (violation code, frames from the client, frames from the server)
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "reserved_opcode",
            masked(FrameBuilder::new(Opcode::Reserved(5))).encode(b"r"),
            FrameBuilder::new(Opcode::Reserved(0xC)).encode(b""),
        ),
        (
            "reserved_bit_set",
            masked(FrameBuilder::text().rsv2(true)).encode(b"x"),
            FrameBuilder::binary().rsv3(true).encode(b"x"),
        ),
        (
            "control_frame_too_long",
            masked(FrameBuilder::ping()).encode(&[1; 126]),
            FrameBuilder::pong().encode(&[1; 200]),
        ),
        (
            "fragmented_control_frame",
            masked(FrameBuilder::ping().fin(false)).encode(b"p"),
            FrameBuilder::ping().fin(false).encode(b"p"),
        ),
        (
            "non_minimal_length",
            masked(FrameBuilder::binary().length_encoding(LengthEncoding::Bits16)).encode(b"abc"),
            FrameBuilder::binary()
                .length_encoding(LengthEncoding::Bits64)
                .encode(b"abc"),
        ),
        (
            "unmasked_client_frame",
            FrameBuilder::text().encode(b"bare"),
            FrameBuilder::text().encode(b"fine"),
        ),
        (
            "masked_server_frame",
            masked(FrameBuilder::text()).encode(b"fine"),
            masked(FrameBuilder::text()).encode(b"masked"),
        ),
        (
            "continuation_without_message",
            masked(FrameBuilder::continuation()).encode(b"c"),
            FrameBuilder::continuation().encode(b"c"),
        ),
        (
            "data_frame_inside_fragmented_message",
            [
                masked(FrameBuilder::text().fin(false)).encode(b"a"),
                masked(FrameBuilder::binary()).encode(b"b"),
            ]
            .concat(),
            [
                FrameBuilder::text().fin(false).encode(b"a"),
                FrameBuilder::text().encode(b"b"),
            ]
            .concat(),
        ),
        (
            "invalid_utf8",
            masked(FrameBuilder::text()).encode(b"\xc3\x28"),
            FrameBuilder::text().encode(b"\xff"),
        ),
        (
            "truncated_utf8",
            [
                masked(FrameBuilder::text().fin(false)).encode(b"\xe2\x82"),
                masked(FrameBuilder::continuation()).encode(b""),
            ]
            .concat(),
            FrameBuilder::text().encode(b"\xe2\x82"),
        ),
        (
            "close_one_byte",
            masked(FrameBuilder::close()).encode(b"\x03"),
            FrameBuilder::close().encode(b"\x03"),
        ),
        (
            "invalid_close_code",
            masked(FrameBuilder::close()).encode(&1006u16.to_be_bytes()),
            FrameBuilder::close().encode(&999u16.to_be_bytes()),
        ),
        (
            "invalid_utf8_close_reason",
            masked(FrameBuilder::close()).encode(b"\x03\xe8\xc0"),
            FrameBuilder::close().encode(b"\x03\xe8\xc0"),
        ),
        (
            "frame_after_close",
            [
                masked(FrameBuilder::close()).encode(b"\x03\xe8"),
                masked(FrameBuilder::text()).encode(b"late"),
            ]
            .concat(),
            [
                FrameBuilder::close().encode(b"\x03\xe8"),
                FrameBuilder::text().encode(b"late"),
            ]
            .concat(),
        ),
    ];
    for (code, from_client, from_server) in cases {
        let (server, seen, server_task) = raw_server(switching(""), from_server.clone()).await;
        let proxy = Proxy::start().await;
        let mut client = websocket_through(proxy.addr, server, "").await;
        assert_eq!(
            read_exact(&mut client, from_server.len()).await,
            from_server,
            "{code}: server bytes unchanged"
        );
        send(&mut client, &from_client).await;
        client.shutdown().await.unwrap();
        let _ = read_to_end(&mut client).await;
        server_task.await.unwrap();
        assert_eq!(
            seen.lock().unwrap().bytes,
            from_client,
            "{code}: client bytes unchanged"
        );
        let trace = proxy.stop(Duration::from_secs(2)).await;
        for dir in ["c2s", "s2c"] {
            // unmasked_client_frame only exists client-side, masked_server_frame server-side.
            let expected = match (code, dir) {
                ("unmasked_client_frame", "s2c") | ("masked_server_frame", "c2s") => continue,
                _ => code,
            };
            let found = of_type(&trace, "frame")
                .into_iter()
                .filter(|f| f["dir"] == dir)
                .any(|f| f["violations"].to_string().contains(expected));
            assert!(found, "{code} not recorded {dir}: {trace:?}");
        }
    }
}
