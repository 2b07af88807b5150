//! Application protocols from their real libraries, through the real binary
//! (tests/peers/node/protocols.mjs): Socket.IO's server and client (an ack, a binary
//! attachment, a namespace), graphql-ws's server and client (a subscription and a query),
//! MQTT.js against the aedes broker (each packet cut into several WebSocket messages),
//! @stomp/stompjs against a STOMP broker, and @microsoft/signalr's client over the JSON and
//! the MessagePack hub protocols. The capture must choose each session's view, decode
//! every message, pair every call with its answer, and its protocol filters select in SQL.
//!
//! And Python's: python-socketio at both ends and paho-mqtt against a small broker
//! (tests/peers/python_protocols.py).
//!
//! Needs node and `npm ci` in tests/peers/node, and the Python packages `.ci/run` names;
//! `.ci/run` installs them and runs ignored tests.

mod support;

use serde_json::Value;
use support::binary::*;
use support::*;

/// Exports `capture` as JSON (payloads unredacted) with `filter`, if any.
fn export(capture: &std::path::Path, filter: Option<&str>) -> Value {
    match filter {
        Some(filter) => export_json(capture, &["--filter", filter]),
        None => export_json(capture, &[]),
    }
}

/// The summaries of a session's messages, in order.
fn summaries(session: &Value) -> Vec<String> {
    session["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["decoded"]["summary"].as_str().map(str::to_owned))
        .collect()
}

/// A session's first binary message (a Socket.IO attachment).
fn first_binary(session: &Value) -> &Value {
    session["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["opcode"] == 2)
        .expect("a binary message")
}

/// The decoded messages a filter selects, across sessions.
fn selected(capture: &std::path::Path, filter: &str) -> Vec<String> {
    export(capture, Some(filter))["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(summaries)
        .collect()
}

/// Runs `program tests/peers/SCRIPT '{"proxy": ADDR}'` with a wstap recording into a
/// capture named `name`; returns the capture, once wstap has stopped, and the JSON line
/// the script printed last.
async fn record(name: &str, program: &'static str, script: &str) -> (std::path::PathBuf, Value) {
    let capture = temp_path(name);
    let mut command = wstap_command();
    command.args(["-q", "--no-web", "--capture", capture.to_str().unwrap()]);
    let (child, proxy) = spawn_listening(command);
    let mut child = KillOnDrop(child);
    let script = format!("{}/tests/peers/{script}", env!("CARGO_MANIFEST_DIR"));
    let args = serde_json::json!({ "proxy": proxy.to_string() }).to_string();
    let report = tokio::task::spawn_blocking(move || peer_json(program, &[&script, &args]))
        .await
        .unwrap();
    sigterm(&child.0);
    let _ = child.0.wait();
    (capture, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs node and `npm ci` in tests/peers/node; .ci/run installs them and runs ignored tests"]
async fn real_protocol_libraries_are_decoded_paired_and_filtered() {
    let (capture, report) = record("protocols.capture", "node", "node/protocols.mjs").await;
    assert_eq!(
        report["signalr_messagepack"]["result"], "John said hi",
        "{report}"
    );

    let doc = export(&capture, None);
    let sessions: Vec<&Value> = doc["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["view"].is_null())
        .collect();
    let by_view = |view: &str| -> Vec<&Value> {
        sessions
            .iter()
            .copied()
            .filter(|s| s["view"] == view)
            .collect()
    };
    // One Socket.IO session, two graphql-ws ones (the client connects per operation),
    // MQTT, STOMP, and SignalR twice.
    for (view, count) in [
        ("socketio", 1),
        ("graphql", 2),
        ("mqtt", 1),
        ("stomp", 1),
        ("signalr", 2),
    ] {
        assert_eq!(
            by_view(view).len(),
            count,
            "{view}: {:?}",
            sessions.iter().map(|s| &s["view"]).collect::<Vec<_>>()
        );
    }
    let contains = |view: &str, wanted: &[&str]| {
        let all: Vec<String> = by_view(view).into_iter().flat_map(summaries).collect();
        for line in wanted {
            assert!(
                all.iter().any(|s| s == line || s.starts_with(line)),
                "{view} lacks {line}: {all:#?}"
            );
        }
        all
    };
    let socketio = contains(
        "socketio",
        &[
            "ENGINE.IO open sid=",
            "SOCKET.IO connect ns=/admin",
            "SOCKET.IO event chat(\"hello\") ack=0",
            "SOCKET.IO ack(\"got hello\") ack=0",
            "SOCKET.IO attachment 1/1 (4 bytes) of SOCKET.IO event upload(",
            "SOCKET.IO ack(4) ack=1",
            "SOCKET.IO event kick(\"Adam\") ack=0 ns=/admin",
            "SOCKET.IO ack(\"kicked Adam\") ack=0 ns=/admin",
        ],
    );
    assert!(
        !socketio.iter().any(|s| s.contains("not decoded")),
        "{socketio:#?}"
    );
    // The attachment joins its placeholder: the event whole, the bytes in place.
    assert_eq!(
        first_binary(by_view("socketio")[0])["decoded"]["items"][0]["decoded"]["packet"]["args"][0],
        "0x01020304"
    );
    contains(
        "graphql",
        &[
            "GRAPHQL connection_init",
            "GRAPHQL subscribe OnGreeting id=",
            "GRAPHQL subscribe SayHello id=",
            "GRAPHQL complete id=",
        ],
    );
    let mqtt = contains(
        "mqtt",
        &[
            "MQTT CONNECT client=\"wstap-probe\" v3.1.1",
            "MQTT CONNACK code=0",
            "MQTT SUBSCRIBE sensors/# id=",
            "MQTT PUBLISH sensors/t1 qos=1 id=",
            "MQTT PUBACK id=",
        ],
    );
    // MQTT.js writes each packet in pieces: each packet is decoded once, where it ends.
    assert!(
        mqtt.iter()
            .filter(|s| s.starts_with("MQTT part of a packet"))
            .count()
            > 10,
        "{mqtt:#?}"
    );
    assert_eq!(
        mqtt.iter()
            .filter(|s| s.starts_with("MQTT PUBLISH"))
            .count(),
        2,
        "{mqtt:#?}"
    );
    contains(
        "stomp",
        &[
            "STOMP CONNECT",
            "STOMP CONNECTED",
            "STOMP SEND /topic/chat receipt=r-1 hello stomp",
            "STOMP MESSAGE /topic/chat sub=sub-0 hello stomp",
            "STOMP RECEIPT receipt-id=r-1",
        ],
    );
    contains(
        "signalr",
        &[
            "SIGNALR handshake protocol=json version=1",
            "SIGNALR handshake protocol=messagepack version=1",
            "SIGNALR invocation SendMessage(\"John\", \"hi\") id=0",
            "SIGNALR completion result=\"John said hi\" id=0",
        ],
    );
    // Every call has its answer, in every protocol.
    for session in &sessions {
        let calls = &session["calls"];
        assert!(
            calls["answered"].as_array().is_some_and(|a| !a.is_empty()),
            "{}: {calls}",
            session["view"]
        );
        assert_eq!(
            calls["unanswered"],
            serde_json::json!([]),
            "{}: {calls}",
            session["view"]
        );
    }

    // Protocol filters select in SQL (the export reads the capture with them).
    let sent = selected(&capture, "socketio.event == \"chat\" and dir:c2s");
    assert_eq!(sent, ["SOCKET.IO event chat(\"hello\") ack=0"]);
    let admin = selected(
        &capture,
        "socketio.namespace:/admin and socketio.type:event",
    );
    assert_eq!(admin, ["SOCKET.IO event kick(\"Adam\") ack=0 ns=/admin"]);
    let published = selected(&capture, "mqtt.topic ~ \"^sensors/\" and mqtt.type:publish");
    assert_eq!(published.len(), 2, "{published:?}");
    let stomp = selected(
        &capture,
        "stomp.destination:/topic/* and stomp.command:SEND",
    );
    assert_eq!(stomp, ["STOMP SEND /topic/chat receipt=r-1 hello stomp"]);
    let operation = selected(&capture, "graphql.operation:OnGreeting");
    assert_eq!(operation.len(), 1, "{operation:?}");
    let invocations = selected(&capture, "signalr.target == \"SendMessage\"");
    assert_eq!(
        invocations.len(),
        2,
        "JSON and MessagePack: {invocations:?}"
    );
    // And in the capture's own SQL (the inspector's and `sessions`' filters).
    for (filter, view) in [
        ("mqtt.topic ~ \"^sensors/\" and mqtt.type:publish", "mqtt"),
        ("socketio.namespace:/admin", "socketio"),
        ("stomp.destination:/topic/*", "stomp"),
        ("graphql.operation:SayHello", "graphql"),
    ] {
        let out = wstap(&[
            "sessions",
            capture.to_str().unwrap(),
            "--json",
            "--filter",
            filter,
        ]);
        assert!(out.status.success(), "{out:?}");
        let found: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(found.len(), 1, "{filter}: {found:?}");
        assert_eq!(found[0]["view"], view, "{filter}");
    }
    let _ = std::fs::remove_dir_all(capture);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs python-socketio, aiohttp, websocket-client, paho-mqtt, PySocks and websockets; .ci/run installs them and runs ignored tests"]
async fn python_socketio_and_paho_mqtt_are_decoded_paired_and_filtered() {
    let (capture, report) =
        record("protocols-python.capture", "python3", "python_protocols.py").await;
    assert_eq!(report["socketio"]["ack"], "got hello", "{report}");

    let doc = export(&capture, None);
    let session = |view: &str| -> Value {
        doc["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["view"] == view)
            .unwrap_or_else(|| panic!("no {view} session: {doc}"))
            .clone()
    };
    let socketio = session("socketio");
    assert_eq!(
        summaries(&socketio)[5..13],
        [
            "SOCKET.IO event chat(\"hello\") ack=1",
            "SOCKET.IO event chat(\"echo hello\")",
            "SOCKET.IO ack(\"got hello\") ack=1",
            "SOCKET.IO event upload({\"name\":\"a.bin\"}, {\"_placeholder\":true,\"num\":0}) ack=2 +1 binary",
            "SOCKET.IO attachment 1/1 (4 bytes) of SOCKET.IO event upload({\"name\":\"a.bin\"}, {\"_placeholder\":true,\"num\":0}) ack=2 +1 binary",
            "SOCKET.IO ack(4) ack=2",
            "SOCKET.IO event whoami() ack=1 ns=/admin",
            "SOCKET.IO ack(\"admin\") ack=1 ns=/admin",
        ]
    );
    assert_eq!(
        first_binary(&socketio)["decoded"]["items"][0]["decoded"]["packet"]["args"][1],
        "0x01020304"
    );
    // paho sends SUBSCRIBE and PUBLISH without waiting for the SUBACK: each direction
    // has its order, the two interleave as they happen.
    let mqtt = session("mqtt");
    let one_way = |dir: &str| -> Vec<String> {
        mqtt["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["dir"] == dir)
            .filter_map(|m| m["decoded"]["summary"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        one_way("c2s"),
        [
            "MQTT CONNECT client=\"paho-probe\" v3.1.1 keepalive=30",
            "MQTT SUBSCRIBE sensors/# id=1",
            "MQTT PUBLISH sensors/t1 qos=1 id=2 (10 bytes)",
            "MQTT DISCONNECT",
        ]
    );
    assert_eq!(
        one_way("s2c"),
        [
            "MQTT CONNACK code=0",
            "MQTT SUBACK id=1 codes=[1]",
            "MQTT PUBACK id=2",
            "MQTT PUBLISH sensors/t1 qos=0 (10 bytes)",
        ]
    );
    // Every call answered: the ack ids pair per namespace (both namespaces use ack 1).
    for (session, names) in [
        (&socketio, vec!["chat", "upload", "whoami"]),
        (&mqtt, vec!["CONNECT", "SUBSCRIBE", "sensors/t1"]),
    ] {
        let answered: Vec<&str> = session["calls"]["by_name"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(answered, names);
        assert_eq!(session["calls"]["unanswered"], serde_json::json!([]));
    }
    // The protocol filters select in SQL.
    assert_eq!(
        selected(
            &capture,
            "socketio.namespace:/admin and socketio.type:event"
        ),
        ["SOCKET.IO event whoami() ack=1 ns=/admin"]
    );
    assert_eq!(
        selected(&capture, "mqtt.topic == \"sensors/t1\" and dir:s2c"),
        ["MQTT PUBLISH sensors/t1 qos=0 (10 bytes)"]
    );
}
