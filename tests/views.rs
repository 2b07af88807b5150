//! Payload views end to end: a SignalR hub session and an MQTT session through the real
//! binary, a tokio-tungstenite peer on each side. The console prints each message's
//! decoded summary, the capture records the view it chose, protocol filters select in
//! `wstap export`, the JSON export carries `decoded` objects and the calls, and
//! `wstap sessions --stats` pairs calls with their answers.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::process::Stdio;
use support::binary::*;
use support::*;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const RS: char = '\u{1e}';

/// A small SignalR hub (JSON hub protocol): accepts the handshake, answers every
/// invocation that has an id with a completion (but `JoinRoom`, which it never answers),
/// and tells the client `ReceiveMessage` after each `SendMessage`.
async fn signalr_hub() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            for record in text.split(RS).filter(|r| !r.is_empty()) {
                let value: serde_json::Value = serde_json::from_str(record).unwrap();
                if value.get("protocol").is_some() {
                    ws.send(Message::text(format!("{{}}{RS}"))).await.unwrap();
                    continue;
                }
                let target = value["target"].as_str().unwrap_or_default().to_owned();
                if target == "SendMessage" {
                    let push = serde_json::json!({"type": 1, "target": "ReceiveMessage", "arguments": value["arguments"]});
                    ws.send(Message::text(format!("{push}{RS}"))).await.unwrap();
                }
                if let (Some(id), false) = (value.get("invocationId"), target == "JoinRoom") {
                    let done = serde_json::json!({"type": 3, "invocationId": id, "result": true});
                    ws.send(Message::text(format!("{done}{RS}"))).await.unwrap();
                }
            }
        }
    });
    addr
}

fn run(args: &[&str]) -> (std::process::Output, String) {
    let out = wstap(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

// Multi-threaded: the hub runs while the test waits for wstap's commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signalr_session_is_decoded_filtered_exported_and_its_calls_paired() {
    let hub = signalr_hub().await;
    let capture = temp_path("views-signalr.capture");
    let mut command = wstap_command();
    command.args(["--capture", capture.to_str().unwrap(), "--no-web"]);
    let (mut child, addr, console) = spawn_with_console(command);

    // The hub's URL says nothing; its first message (the handshake) tells.
    let stream = tunnel(addr, hub).await;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{hub}/chathub?id=abc"), stream)
        .await
        .unwrap();
    let send = |record: serde_json::Value| Message::text(format!("{record}{RS}"));
    ws.send(Message::text(format!(
        "{{\"protocol\":\"json\",\"version\":1}}{RS}"
    )))
    .await
    .unwrap();
    // The hub's `{}`: the handshake is accepted.
    ws.next().await.unwrap().unwrap();
    for (id, who, text) in [("1", "John", "hi"), ("2", "Adam", "yo")] {
        ws.send(send(serde_json::json!({"type": 1, "invocationId": id, "target": "SendMessage", "arguments": [who, text]})))
            .await
            .unwrap();
        // ReceiveMessage, then the completion.
        for _ in 0..2 {
            ws.next().await.unwrap().unwrap();
        }
    }
    ws.send(send(serde_json::json!({"type": 1, "invocationId": "3", "target": "JoinRoom", "arguments": ["lobby"]})))
        .await
        .unwrap();
    ws.send(send(serde_json::json!({"type": 6}))).await.unwrap();
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    sigterm(&child.0);
    let _ = child.0.wait();

    let console = console.lock().unwrap().join("\n");
    assert!(
        console.contains("SIGNALR handshake protocol=json version=1"),
        "{console}"
    );
    assert!(
        console.contains("SIGNALR invocation SendMessage(\"John\", \"hi\") id=1"),
        "{console}"
    );
    assert!(
        console.contains("SIGNALR completion result=true id=2"),
        "{console}"
    );

    // The capture knows the session's view.
    // (The other session is the check that wstap listens: it sent nothing.)
    let (out, stdout) = run(&[
        "sessions",
        capture.to_str().unwrap(),
        "--json",
        "--filter",
        "status:101",
    ]);
    assert!(out.status.success(), "{out:?}");
    let session: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(session["view"], "signalr");

    // A protocol filter selects in SQL: the two SendMessage invocations, nothing else.
    let doc = export_json(
        &capture,
        &["--filter", "signalr.target == \"SendMessage\" and dir:c2s"],
    );
    let messages = doc["sessions"][0]["messages"].as_array().unwrap();
    let summaries: Vec<&str> = messages
        .iter()
        .map(|m| m["decoded"]["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        [
            "SIGNALR invocation SendMessage(\"John\", \"hi\") id=1",
            "SIGNALR invocation SendMessage(\"Adam\", \"yo\") id=2"
        ]
    );
    assert_eq!(doc["sessions"][0]["view"], "signalr");
    assert_eq!(
        messages[0]["decoded"]["items"][0]["decoded"]["arguments"],
        serde_json::json!(["John", "hi"])
    );
    // A mistyped field is an error that says which fields there are.
    let (out, _) = run(&[
        "export",
        capture.to_str().unwrap(),
        "--filter",
        "signalr.targte == \"SendMessage\"",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signalr has no field \"targte\""),
        "{out:?}"
    );

    // Calls and answers: two SendMessage answered, JoinRoom never.
    let (out, stdout) = run(&["sessions", capture.to_str().unwrap(), "--stats"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("(view signalr): 2 calls answered, 1 unanswered"),
        "{stdout}"
    );
    assert!(stdout.contains("SendMessage"), "{stdout}");
    assert!(stdout.contains("unanswered: JoinRoom"), "{stdout}");
    let (out, stdout) = run(&[
        "sessions",
        capture.to_str().unwrap(),
        "--stats",
        "--json",
        "--filter",
        "status:101",
    ]);
    assert!(out.status.success(), "{out:?}");
    let line: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let by_name = &line["calls"]["by_name"][0];
    assert_eq!(
        (by_name["name"].as_str(), by_name["count"].as_u64()),
        (Some("SendMessage"), Some(2))
    );
    assert!(by_name["max_us"].as_i64().unwrap() > 0);
    assert_eq!(line["calls"]["unanswered"][0]["name"], "JoinRoom");
}

/// The WebSocket sessions of a capture's JSON export (not the one `spawn_listening` made
/// to see wstap listen).
fn websocket_sessions(capture: &std::path::Path) -> Vec<serde_json::Value> {
    export_json(capture, &["--filter", "status:101"])["sessions"]
        .as_array()
        .unwrap()
        .clone()
}

/// An MQTT packet: first byte, remaining length, body.
fn mqtt(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first, body.len() as u8];
    out.extend_from_slice(body);
    out
}

fn mqtt_string(text: &str) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

// Multi-threaded: the broker runs while the test waits for wstap's commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_split_across_messages_is_one_packet_and_a_view_can_be_chosen_by_rule() {
    // A broker stand-in that answers CONNECT with CONNACK and a QoS 1 PUBLISH with PUBACK.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broker = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        #[allow(clippy::result_large_err)]
        let callback =
            |_: &tokio_tungstenite::tungstenite::handshake::server::Request,
             mut res: tokio_tungstenite::tungstenite::handshake::server::Response| {
                res.headers_mut()
                    .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
                Ok(res)
            };
        let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback)
            .await
            .unwrap();
        let mut held = Vec::new();
        while let Some(Ok(Message::Binary(bytes))) = ws.next().await {
            held.extend_from_slice(&bytes);
            while held.len() >= 2 && held.len() >= 2 + held[1] as usize {
                let packet: Vec<u8> = held.drain(..2 + held[1] as usize).collect();
                let answer = match packet[0] >> 4 {
                    1 => mqtt(0x20, &[0, 0]),
                    3 => {
                        let topic_len = u16::from_be_bytes([packet[2], packet[3]]) as usize;
                        mqtt(0x40, &packet[4 + topic_len..6 + topic_len])
                    }
                    _ => continue,
                };
                ws.send(Message::binary(answer)).await.unwrap();
            }
        }
    });

    let capture = temp_path("views-mqtt.capture");
    let mut command = wstap_command();
    command.args(["-q", "--capture", capture.to_str().unwrap(), "--no-web"]);
    let (child, proxy) = spawn_listening(command);
    let mut child = KillOnDrop(child);
    let stream = tunnel(proxy, broker).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{broker}/mqtt"
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    let connect = mqtt(
        0x10,
        &[mqtt_string("MQTT"), vec![4, 2, 0, 60], mqtt_string("probe")].concat(),
    );
    ws.send(Message::binary(connect)).await.unwrap();
    ws.next().await.unwrap().unwrap();
    // One PUBLISH in five messages, as MQTT.js sends it.
    let publish = mqtt(
        0x32,
        &[mqtt_string("sensors/t1"), vec![0, 7], b"21.5".to_vec()].concat(),
    );
    for piece in [
        &publish[..1],
        &publish[1..2],
        &publish[2..4],
        &publish[4..14],
        &publish[14..],
    ] {
        ws.send(Message::binary(piece.to_vec())).await.unwrap();
    }
    ws.next().await.unwrap().unwrap();
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    sigterm(&child.0);
    let _ = child.0.wait();

    let doc = websocket_sessions(&capture);
    let session = &doc[0];
    assert_eq!(session["view"], "mqtt");
    let summaries: Vec<String> = session["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["decoded"]["summary"].as_str().map(str::to_owned))
        .collect();
    // The PUBLISH belongs to the message where it ends: the fifth piece.
    let publishes: Vec<&String> = summaries.iter().filter(|s| s.contains("PUBLISH")).collect();
    assert_eq!(
        publishes,
        ["MQTT PUBLISH sensors/t1 qos=1 id=7 (4 bytes)"],
        "{summaries:?}"
    );
    let fragments = summaries
        .iter()
        .filter(|s| s.contains("part of a packet"))
        .count();
    assert_eq!(fragments, 4, "{summaries:?}");
    // A protocol filter in SQL reads the packets where they end, split or not.
    let (out, stdout) = run(&[
        "sessions",
        capture.to_str().unwrap(),
        "--json",
        "--filter",
        "mqtt.topic ~ \"^sensors/\" and mqtt.id == 7",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout.lines().count(), 1, "the MQTT session: {stdout}");
    // Each call answered: CONNECT by CONNACK, then the PUBLISH (named by its topic).
    assert_eq!(session["calls"]["by_name"][0]["name"], "CONNECT");
    assert_eq!(session["calls"]["by_name"][1]["name"], "sensors/t1");
    assert_eq!(session["calls"]["unanswered"], serde_json::json!([]));

    // `wstap frames` with a filter shows the PUBLISH alone, read with the pieces it hides.
    let id = session["session"].as_u64().unwrap().to_string();
    let (out, stdout) = run(&[
        "frames",
        capture.to_str().unwrap(),
        "--session",
        &id,
        "--messages",
        "--filter",
        "mqtt.type:publish",
    ]);
    assert!(out.status.success(), "{out:?}");
    let summaries: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("MQTT"))
        .collect();
    assert_eq!(
        summaries,
        ["MQTT PUBLISH sensors/t1 qos=1 id=7 (4 bytes)"],
        "{stdout}"
    );

    // The inspector reads a page anywhere as the filters do: the PUBLISH's last piece,
    // alone on its page, is the PUBLISH; a piece before it, part of one.
    let mut view = wstap_command();
    view.args(["view"])
        .arg(&capture)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut viewer = KillOnDrop(view.spawn().unwrap());
    let (url, _) = follow_stderr(viewer.0.stderr.take().unwrap());
    let (web, token) = parse_inspector_url(&url.expect("view prints its URL"));
    let id = session["session"].as_u64().unwrap();
    let rows = |index: u64| {
        let path = format!("/api/sessions/{id}/rows?kind=messages&index={index}&limit=1");
        let token = token.clone();
        async move { support::web::get(web, &token, &path).await.json() }
    };
    let publish_seq = session["messages"]
        .as_array()
        .unwrap()
        .iter()
        .position(|m| {
            m["decoded"]["summary"]
                .as_str()
                .is_some_and(|s| s.contains("PUBLISH"))
        })
        .unwrap() as u64;
    let last_piece = rows(publish_seq).await;
    assert_eq!(
        last_piece["rows"][0]["decoded"]["summary"],
        "MQTT PUBLISH sensors/t1 qos=1 id=7 (4 bytes)"
    );
    let piece = rows(publish_seq - 1).await;
    assert!(
        piece["rows"][0]["decoded"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("MQTT part of a packet"),
        "{piece}"
    );
    drop(viewer);

    // `--view` overrides what the subprotocol says: the same traffic read as hex.
    let mut command = wstap_command();
    let hexed = temp_path("views-hex.capture");
    command.args([
        "-q",
        "--capture",
        hexed.to_str().unwrap(),
        "--no-web",
        "--view",
        "path:/raw*=hex",
    ]);
    let (child, proxy) = spawn_listening(command);
    let mut child = KillOnDrop(child);
    let (server, _) = echo_server().await;
    for path in ["/raw", "/other"] {
        let stream = tunnel(proxy, server).await;
        let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{server}{path}"), stream)
            .await
            .unwrap();
        ws.send(Message::text("{\"a\":1}")).await.unwrap();
        ws.next().await.unwrap().unwrap();
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
    }
    sigterm(&child.0);
    let _ = child.0.wait();
    let doc = websocket_sessions(&hexed);
    let (raw, other) = (&doc[0], &doc[1]);
    assert_eq!(raw["view"], "hex");
    assert_eq!(
        raw["messages"][0]["decoded"]["summary"],
        "HEX 7b2261223a317d (7 bytes)"
    );
    // The session the rule does not select has no view: its JSON reads as JSON.
    assert_eq!(other["view"], serde_json::Value::Null);
    assert_eq!(other["messages"][0]["decoded"]["summary"], "JSON {\"a\":1}");
}

#[test]
fn the_demo_speaks_signalr_and_socketio_and_its_calls_are_answered() {
    for (app, summaries, view) in [
        (
            "signalr",
            &[
                "SIGNALR handshake protocol=json version=1",
                "SIGNALR invocation SendMessage(\"Ronald\", \"Hi John!\") id=1",
                "SIGNALR invocation ReceiveMessage(\"Ronald\", \"Hi John!\")",
                "SIGNALR completion result=true id=1",
            ][..],
            "signalr",
        ),
        (
            "socketio",
            &[
                "ENGINE.IO open sid=sid-Ronald",
                "SOCKET.IO event chat(\"Hi John!\") ack=1",
                "SOCKET.IO event chat({\"from\":\"Ronald\",\"text\":\"Hi John!\"})",
                "SOCKET.IO ack(\"ok\") ack=1",
                "ENGINE.IO pong",
            ][..],
            "socketio",
        ),
    ] {
        let capture = temp_path(&format!("demo-{app}.capture"));
        let out = wstap(&[
            "demo",
            "--app",
            app,
            "--duration",
            "0.5",
            "--no-web",
            "--capture",
            capture.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{app}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for summary in summaries {
            assert!(
                stdout.contains(summary),
                "{app}: the log lacks {summary}:\n{stdout}"
            );
        }
        // Ronald, John and Adam each said something and were answered.
        let (out, stdout) = run(&["sessions", capture.to_str().unwrap(), "--stats"]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            stdout.matches(&format!("(view {view}): ")).count(),
            3,
            "{app}: {stdout}"
        );
        assert!(!stdout.contains("unanswered: "), "{app}: {stdout}");
    }
}

/// `chat.Envelope { from: "John", text: "hi", kind: JOIN, counts: {"a": 1}, sent: {seconds:
/// 1700000000} }`, as any protobuf library writes it (tests/peers/proto/chat.proto).
const ENVELOPE: &[u8] = &[
    0x0a, 0x04, 0x4a, 0x6f, 0x68, 0x6e, 0x12, 0x02, 0x68, 0x69, 0x18, 0x02, 0x22, 0x05, 0x0a, 0x01,
    0x61, 0x10, 0x01, 0x2a, 0x06, 0x08, 0x80, 0xe2, 0xcf, 0xaa, 0x06,
];

/// `chat.Ack { id: 7 }`.
const ACK: &[u8] = &[0x08, 0x07];

/// A server that answers each binary message with an `Ack`.
async fn acking_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_binary() && ws.send(Message::binary(ACK)).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// One Envelope and its Ack through wstap at `proxy`, to `server` at `/pb`.
async fn envelope_and_ack(proxy: std::net::SocketAddr, server: std::net::SocketAddr) {
    let stream = tunnel(proxy, server).await;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{server}/pb"), stream)
        .await
        .unwrap();
    ws.send(Message::binary(ENVELOPE)).await.unwrap();
    ws.next().await.unwrap().unwrap();
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
}

/// The decoded trees of a capture's one WebSocket session's data messages, in order.
fn decoded_trees(capture: &std::path::Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let doc = export_json(capture, extra);
    let session = doc["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["view"] == "protobuf")
        .expect("the protobuf session")
        .clone();
    session["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.get("decoded"))
        .map(|d| d["items"][0]["decoded"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_with_a_descriptor_set_names_fields_live_in_exports_and_in_the_inspector() {
    let descriptor = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/proto/chat.pb");
    let named = serde_json::json!({
        "from": "John", "text": "hi", "kind": "JOIN", "counts": {"a": 1},
        "sent": {"seconds": 1700000000}
    });
    let server = acking_server().await;

    // Recorded with the schema: the console names the fields, and so does every reader
    // of the capture, which keeps the schema.
    let capture = temp_path("views-protobuf.capture");
    let mut command = wstap_command();
    command.args([
        "--capture",
        capture.to_str().unwrap(),
        "--no-web",
        "--view",
        "path:/pb=protobuf",
        "--proto-descriptor",
        descriptor,
        "--proto-type",
        "c2s=chat.Envelope",
        "--proto-type",
        "s2c=.chat.Ack",
    ]);
    let (mut child, proxy, console) = spawn_with_console(command);
    envelope_and_ack(proxy, server).await;
    sigterm(&child.0);
    let _ = child.0.wait();
    let console = console.lock().unwrap().join("\n");
    assert!(
        console
            .lines()
            .any(|line| line.trim().starts_with("PROTOBUF Envelope {")
                && line.contains(r#""from":"John","kind":"JOIN""#)),
        "{console}"
    );
    assert!(console.contains(r#"PROTOBUF Ack {"id":7}"#), "{console}");
    assert_eq!(
        decoded_trees(&capture, &[]),
        [named.clone(), serde_json::json!({"id": 7})]
    );

    // Recorded without it: field numbers; an export may read with a schema; `wstap view`
    // keeps one in the capture, and the inspector reads with it.
    let bare = temp_path("views-protobuf-bare.capture");
    let mut command = wstap_command();
    command.args([
        "-q",
        "--capture",
        bare.to_str().unwrap(),
        "--no-web",
        "--view",
        "path:/pb=protobuf",
    ]);
    let (child, proxy) = spawn_listening(command);
    let mut child = KillOnDrop(child);
    envelope_and_ack(proxy, server).await;
    sigterm(&child.0);
    let _ = child.0.wait();
    let numbered = decoded_trees(&bare, &[]);
    assert_eq!(numbered[0]["1"], "John");
    assert_eq!(numbered[1], serde_json::json!({"1": 7}));
    let schema_flags = [
        "--proto-descriptor",
        descriptor,
        "--proto-type",
        "c2s=chat.Envelope",
    ];
    let read_with = decoded_trees(&bare, &schema_flags);
    assert_eq!(read_with[0], named);
    assert_eq!(
        read_with[1],
        serde_json::json!({"1": 7}),
        "no type given for s2c"
    );

    let mut view = wstap_command();
    view.args(["view"])
        .arg(&bare)
        .args(schema_flags)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut viewer = KillOnDrop(view.spawn().unwrap());
    let (url, _) = follow_stderr(viewer.0.stderr.take().unwrap());
    let (web, token) = parse_inspector_url(&url.expect("view prints its URL"));
    let (out, stdout) = run(&[
        "sessions",
        bare.to_str().unwrap(),
        "--json",
        "--filter",
        "path:/pb",
    ]);
    assert!(out.status.success(), "{out:?}");
    let id = serde_json::from_str::<serde_json::Value>(stdout.lines().next().unwrap()).unwrap()
        ["id"]
        .as_u64()
        .unwrap();
    let path = format!("/api/sessions/{id}/rows?kind=messages&index=0&limit=2");
    let rows = support::web::get(web, &token, &path).await.json();
    let summary = rows["rows"][0]["decoded"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("PROTOBUF Envelope {") && summary.contains(r#""from":"John""#),
        "{rows}"
    );
    drop(viewer);
    assert_eq!(decoded_trees(&bare, &[])[0], named, "the capture kept it");

    // A bad schema is a one-line error before anything starts.
    for (flags, says) in [
        (
            vec![
                "--proto-descriptor",
                "/nonexistent/chat.pb",
                "--proto-type",
                "chat.Ack",
            ],
            "--proto-descriptor /nonexistent/chat.pb: No such file",
        ),
        (
            vec![
                "--proto-descriptor",
                descriptor,
                "--proto-type",
                "chat.Nope",
            ],
            "has no message type chat.Nope (it has chat.Ack, chat.Envelope)",
        ),
        (
            vec![
                "--proto-descriptor",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/proto/chat.proto"),
                "--proto-type",
                "chat.Ack",
            ],
            "not a protobuf descriptor set",
        ),
        (
            vec![
                "--proto-descriptor",
                descriptor,
                "--proto-type",
                "up=chat.Ack",
            ],
            "give TYPE (both ways), c2s=TYPE or s2c=TYPE",
        ),
    ] {
        let mut args = vec!["--no-capture", "--no-web", "--listen", "127.0.0.1:0"];
        args.extend(flags);
        let out = wstap(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}
