//! Interception through the real binary: breakpoints from the command line and from the
//! API hold messages until the API decides (forward, edit, drop, continue); messages,
//! closes and aborts sent on live sessions reach real peers (tokio-tungstenite) exactly
//! as asked; the API's refusals; and the capture's record of every intervention.

mod support;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;
use support::binary::{sigterm, spawn_with_inspector, wstap, wstap_command, WithInspector};
use support::web::{get, request_with_body, send_json};
use support::*;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

type Client = WebSocketStream<TcpStream>;

fn start(name: &str, flags: &[&str]) -> (WithInspector, std::path::PathBuf) {
    let capture = temp_path(name);
    let mut command = wstap_command();
    // Sessions still open at the end get a second to close, not five.
    command
        .args(["--no-tls-intercept", "--grace", "1", "--capture"])
        .arg(&capture)
        .args(flags);
    (spawn_with_inspector(command), capture)
}

async fn stop(mut run: WithInspector) {
    sigterm(&run.child);
    let status = run.child.wait().unwrap();
    assert!(status.success(), "{}", run.stderr.lock().unwrap());
}

/// The next data message the client gets within `wait`, or `None`.
async fn next_text(ws: &mut Client, wait: Duration) -> Option<String> {
    loop {
        let next = tokio::time::timeout(wait, ws.next()).await.ok()??;
        match next.ok()? {
            WsMessage::Text(text) => return Some(text.to_string()),
            WsMessage::Binary(bytes) => return Some(String::from_utf8_lossy(&bytes).into_owned()),
            _ => continue,
        }
    }
}

/// The messages held now, once there are `count` (at most 5 s).
async fn held(run: &WithInspector, count: usize) -> Vec<Value> {
    for _ in 0..100 {
        let answer = get(run.web, &run.token, "/api/held").await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        let held = answer.json()["held"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if held.len() >= count {
            return held;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never {count} messages held");
}

/// Waits (at most 5 s) for the next data message, which must be `text`.
async fn expect(ws: &mut Client, text: &str) {
    let got = next_text(ws, Duration::from_secs(5)).await;
    assert_eq!(got.as_deref(), Some(text));
}

/// POSTs `body` to `path`, which must answer 200.
async fn ok(run: &WithInspector, path: &str, body: Value) {
    let (status, answer) = post(run, path, body).await;
    assert_eq!(status, 200, "{path}: {answer}");
}

async fn post(run: &WithInspector, path: &str, body: Value) -> (u16, Value) {
    let answer = send_json(run.web, &run.token, "POST", path, &body).await;
    let value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    (answer.status, value)
}

/// The interventions the capture recorded, in order.
fn interventions(capture: &Path) -> Vec<Value> {
    events(capture, "intervention")
}

/// The events of `kind` the capture recorded, in order.
fn events(capture: &Path, kind: &str) -> Vec<Value> {
    support::binary::exported_events(capture, kind)
}

fn actions(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or("?").to_owned(),
                r["by"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_breakpoint_holds_until_the_api_forwards_edits_or_drops_and_the_capture_says_so() {
    let (run, capture) = start("intercept-decisions", &["--break", r#"text~"secret""#]);
    let (server, _) = echo_server().await;
    let mut ws = ws_client(run.proxy, server).await;
    let wait = Duration::from_millis(300);

    ws.send(WsMessage::text("hello")).await.unwrap();
    expect(&mut ws, "hello").await;

    // Held: nothing of it reaches the server, and what follows queues behind it.
    ws.send(WsMessage::text("the secret plan")).await.unwrap();
    ws.send(WsMessage::text("behind it")).await.unwrap();
    assert_eq!(
        next_text(&mut ws, wait).await,
        None,
        "held, and the next behind it"
    );
    let held_now = held(&run, 1).await;
    assert_eq!(held_now.len(), 1);
    let message = &held_now[0];
    assert_eq!(message["text"], "the secret plan");
    assert_eq!(message["dir"], "c2s");
    assert_eq!(message["type"], "text");
    let session = message["session"].as_u64().unwrap();

    // Edited: the server gets the edit (its echo says so), then what queued behind.
    let id = message["id"].as_u64().unwrap();
    ok(
        &run,
        &format!("/api/held/{id}"),
        json!({"action": "edit", "text": "the plan, edited"}),
    )
    .await;
    expect(&mut ws, "the plan, edited").await;
    expect(&mut ws, "behind it").await;

    // Decided already: 409, with the reason.
    let (status, answer) = post(
        &run,
        &format!("/api/held/{id}"),
        json!({"action": "forward"}),
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        answer["error"].as_str().unwrap().contains("not held"),
        "{answer}"
    );

    // Dropped: the server never sees it.
    ws.send(WsMessage::text("another secret")).await.unwrap();
    let id = held(&run, 1).await[0]["id"].as_u64().unwrap();
    ok(&run, &format!("/api/held/{id}"), json!({"action": "drop"})).await;
    ws.send(WsMessage::text("after the drop")).await.unwrap();
    expect(&mut ws, "after the drop").await;

    // Forwarded as read; the server's echo of it is held on its way back, in turn.
    ws.send(WsMessage::text("a third secret")).await.unwrap();
    for dir in ["c2s", "s2c"] {
        let message = held(&run, 1).await.remove(0);
        assert_eq!(message["dir"], dir);
        let id = message["id"].as_u64().unwrap();
        ok(
            &run,
            &format!("/api/held/{id}"),
            json!({"action": "forward"}),
        )
        .await;
    }
    expect(&mut ws, "a third secret").await;

    // Injected, to each side: the server's echo of its own comes back too.
    ok(
        &run,
        &format!("/api/sessions/{session}/inject"),
        json!({"to": "client", "type": "text", "text": "from wstap"}),
    )
    .await;
    expect(&mut ws, "from wstap").await;
    ok(
        &run,
        &format!("/api/sessions/{session}/inject"),
        json!({"to": "server", "type": "binary", "base64": "aW5qZWN0ZWQ="}),
    )
    .await;
    expect(&mut ws, "injected").await;
    // Resent: a recorded message (by its id) sent again, to the server; its echo comes back.
    ok(
        &run,
        &format!("/api/sessions/{session}/inject"),
        json!({"to": "server", "type": "text", "text": "after the drop", "resend": 7}),
    )
    .await;
    expect(&mut ws, "after the drop").await;

    // Closed toward both sides with a chosen code: the client gets it.
    ok(
        &run,
        &format!("/api/sessions/{session}/close"),
        json!({"to": "both", "code": 4000, "reason": "closed from the API"}),
    )
    .await;
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(WsMessage::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    let close = close.expect("a code");
    assert_eq!(u16::from(close.code), 4000);
    assert_eq!(close.reason.as_str(), "closed from the API");
    drop(ws);
    stop(run).await;

    let records = interventions(&capture);
    let expected: Vec<(String, String)> = [
        ("held", "breakpoint"),
        ("edited", "api"),
        ("held", "breakpoint"),
        ("dropped", "api"),
        ("held", "breakpoint"),
        ("forwarded", "api"),
        ("held", "breakpoint"),
        ("forwarded", "api"),
        ("injected", "api"),
        ("injected", "api"),
        ("injected", "api"),
        ("closed", "api"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(actions(&records), expected);
    assert_eq!(records[1]["payload"]["data"], "the plan, edited");
    assert_eq!(records[10]["resent"], 7);
    // The edit is a message of the session, with the frames wstap wrote for it, as
    // written: masked toward the server.
    let written = events(&capture, "message")
        .into_iter()
        .filter(|m| m["origin"] == "edited")
        .collect::<Vec<_>>();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0]["payload"]["data"], "the plan, edited");
    assert_eq!(written[0]["held"], records[1]["held"]);
    let wire = base64::engine::general_purpose::STANDARD
        .decode(written[0]["wire"]["data"].as_str().unwrap())
        .unwrap();
    let mut analyzer = wstap_wire::StreamAnalyzer::new(
        wstap_wire::Direction::ClientToServer,
        wstap_wire::AnalyzerConfig::default(),
    );
    let mut decoded = Vec::new();
    analyzer.feed(&wire, wstap_wire::Timestamp(0), &mut decoded);
    let Some(wstap_wire::Record::Frame(frame)) = decoded.first() else {
        panic!("no frame in {wire:?}");
    };
    assert!(frame.header.mask().is_some());
    assert_eq!(&frame.payload.data[..], b"the plan, edited");
    assert_eq!(records[0]["breakpoint"], 1);
    assert_eq!(records[11]["code"], 4000);

    // The filter language knows what became of each held message.
    let selected = |filter: &str| -> Vec<String> {
        let out = wstap(&[
            "export",
            capture.to_str().unwrap(),
            "--format",
            "ndjson",
            "--no-redact",
            "--filter",
            filter,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| event["type"] == "message")
            .map(|m| m["payload"]["data"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(selected("fate:dropped"), ["another secret"]);
    assert_eq!(selected("fate:edited"), ["the secret plan"]);
    assert_eq!(selected("held and dir:s2c"), ["a third secret"]);
    assert_eq!(selected("held").len(), 4);
    // ... and who made each message.
    assert_eq!(selected("origin:edited"), ["the plan, edited"]);
    assert_eq!(selected("origin:injected"), ["from wstap", "injected"]);
    assert_eq!(selected("origin:resent"), ["after the drop"]);
    assert_eq!(
        selected("text~\"after the drop\" and origin:wire").len(),
        3,
        "the client's, the server's echo, and the echo of the resend"
    );

    // HAR lists what each receiver got: the edit (and what it replaced), wstap's own
    // messages; what nobody got apart.
    let out = wstap(&[
        "export",
        capture.to_str().unwrap(),
        "--format",
        "har",
        "--no-redact",
    ]);
    assert!(out.status.success());
    let har: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = &har["log"]["entries"][0];
    let messages = entry["_webSocketMessages"].as_array().unwrap();
    let data: Vec<&str> = messages
        .iter()
        .map(|m| m["data"].as_str().unwrap())
        .collect();
    assert!(
        !data.contains(&"the secret plan") && !data.contains(&"another secret"),
        "{data:?}"
    );
    let edited = messages
        .iter()
        .find(|m| m["data"] == "the plan, edited")
        .expect("the edit");
    assert_eq!(edited["type"], "send");
    assert_eq!(edited["_wstap"]["original"], "the secret plan");
    let injected = messages
        .iter()
        .find(|m| m["data"] == "from wstap")
        .expect("the injection");
    assert_eq!(
        (
            injected["type"].as_str(),
            injected["_wstap"]["origin"].as_str()
        ),
        (Some("receive"), Some("injected"))
    );
    assert_eq!(entry["_wstapUndelivered"][0]["data"], "another secret");
    assert_eq!(entry["_wstapUndelivered"][0]["_wstap"]["fate"], "dropped");
    let _ = std::fs::remove_dir_all(&capture);
}

#[tokio::test]
async fn breakpoints_set_from_the_api_hold_live_sessions_and_an_abort_is_a_1006() {
    let (run, capture) = start("intercept-api", &[]);
    let (server, _) = echo_server().await;
    let mut ws = ws_client(run.proxy, server).await;
    ws.send(WsMessage::text("before")).await.unwrap();
    expect(&mut ws, "before").await;

    // A breakpoint on what the server sends, set while the session lives.
    let (status, answer) = post(
        &run,
        "/api/breakpoints",
        json!({"filter": "dir:s2c and opcode:text"}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let breakpoint = answer["id"].as_u64().unwrap();
    ws.send(WsMessage::text("echo me")).await.unwrap();
    let held_now = held(&run, 1).await;
    assert_eq!(held_now[0]["dir"], "s2c");
    assert_eq!(held_now[0]["breakpoint"], breakpoint);
    assert_eq!(next_text(&mut ws, Duration::from_millis(300)).await, None);
    let listed = get(run.web, &run.token, "/api/breakpoints").await.json();
    assert_eq!(listed["breakpoints"][0]["hits"], 1);
    assert_eq!(
        listed["breakpoints"][0]["filter"],
        "dir:s2c and opcode:text"
    );

    // Disabled: new messages pass; what is held stays held until decided.
    let answer = send_json(
        run.web,
        &run.token,
        "PATCH",
        &format!("/api/breakpoints/{breakpoint}"),
        &json!({"enabled": false}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["enabled"], false);
    let id = held_now[0]["id"].as_u64().unwrap();
    ok(
        &run,
        &format!("/api/held/{id}"),
        json!({"action": "continue"}),
    )
    .await;
    expect(&mut ws, "echo me").await;
    let answer = send_json(
        run.web,
        &run.token,
        "DELETE",
        &format!("/api/breakpoints/{breakpoint}"),
        &json!({}),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert!(
        get(run.web, &run.token, "/api/breakpoints").await.json()["breakpoints"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Aborted: the client sees its connection end without a close frame (1006).
    let session = held_now[0]["session"].as_u64().unwrap();
    ok(&run, &format!("/api/sessions/{session}/abort"), json!({})).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Close(_))) => return "close frame",
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return "dropped",
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ended, "dropped", "no close frame: the client's 1006");
    // The session is over: 409.
    let (status, answer) = post(
        &run,
        &format!("/api/sessions/{session}/inject"),
        json!({"to": "client", "type": "ping"}),
    )
    .await;
    assert_eq!(status, 409, "{answer}");
    stop(run).await;
    let records = interventions(&capture);
    let names: Vec<String> = actions(&records).into_iter().map(|(a, _)| a).collect();
    assert_eq!(names, ["held", "forwarded", "continued", "aborted"]);
    let _ = std::fs::remove_dir_all(&capture);
}

#[tokio::test]
async fn the_api_refuses_what_it_cannot_do_and_says_why() {
    let (run, _capture) = start("intercept-refusals", &[]);
    let host = run.web.to_string();
    let bearer = format!("Bearer {}", run.token);
    let body = br#"{"filter":"opcode:text"}"#;
    let length = body.len().to_string();
    // Not JSON by its type: what a cross-site form could send.
    let answer = request_with_body(
        run.web,
        "POST",
        "/api/breakpoints",
        &[
            ("Host", &host),
            ("Authorization", &bearer),
            ("Content-Type", "text/plain"),
            ("Content-Length", &length),
        ],
        body,
    )
    .await;
    assert_eq!(answer.status, 415, "{}", answer.text());
    // From another site's page, even with the token.
    let answer = request_with_body(
        run.web,
        "POST",
        "/api/breakpoints",
        &[
            ("Host", &host),
            ("Authorization", &bearer),
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/json"),
            ("Content-Length", &length),
        ],
        body,
    )
    .await;
    assert_eq!(answer.status, 403);
    // Without the token.
    let answer = request_with_body(
        run.web,
        "POST",
        "/api/breakpoints",
        &[
            ("Host", &host),
            ("Content-Type", "application/json"),
            ("Content-Length", &length),
        ],
        body,
    )
    .await;
    assert_eq!(answer.status, 401);
    // A method the path does not answer.
    let answer = send_json(run.web, &run.token, "PUT", "/api/held", &json!({})).await;
    assert_eq!(answer.status, 405);
    assert_eq!(
        answer.headers.get("allow").map(String::as_str),
        Some("GET, HEAD")
    );
    // A filter with a mistake: 400, with where.
    let (status, answer) = post(&run, "/api/breakpoints", json!({"filter": "opcod:text"})).await;
    assert_eq!(status, 400);
    assert!(answer["filter_error"]["column"].is_number(), "{answer}");
    // A body that lacks a field, or has a wrong one: 400 naming it.
    let (status, answer) = post(&run, "/api/held/1", json!({})).await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("action")));
    let (status, answer) = post(
        &run,
        "/api/sessions/1/inject",
        json!({"to": "nobody", "type": "text"}),
    )
    .await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("to")));
    let (status, answer) = post(
        &run,
        "/api/sessions/1/inject",
        json!({"to": "client", "type": "text", "text": "x", "resend": "the last one"}),
    )
    .await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("resend")));
    // Nothing held, no such session: 409.
    let (status, _) = post(&run, "/api/held/12345", json!({"action": "forward"})).await;
    assert_eq!(status, 409);
    let (status, answer) = post(&run, "/api/sessions/999/abort", json!({})).await;
    assert_eq!(status, 409);
    assert!(
        answer["error"].as_str().unwrap().contains("999"),
        "{answer}"
    );
    // An invalid close code: 400.
    let (status, _) = post(&run, "/api/sessions/1/close", json!({"code": 1005})).await;
    assert_eq!(status, 400);
    // No such breakpoint: 404.
    let answer = send_json(
        run.web,
        &run.token,
        "DELETE",
        "/api/breakpoints/77",
        &json!({}),
    )
    .await;
    assert_eq!(answer.status, 404);
    stop(run).await;
}

#[tokio::test]
async fn a_held_direction_stops_reading_at_the_break_buffer_and_memory_stays_bounded() {
    use tokio::io::AsyncWriteExt;
    let (run, capture) = start(
        "intercept-bounded",
        &["--break", "opcode:binary", "--break-buffer", "1M", "-q"],
    );
    let pid = run.child.id();
    let (server, _) = echo_server().await;
    let mut client = websocket_through(run.proxy, server, "").await;
    let before = support::binary::rss_kib(pid);
    // A sender that never stops: 64 KiB binary messages, as long as wstap takes them.
    let frame = wstap_wire::FrameBuilder::binary()
        .mask([1, 2, 3, 4])
        .encode(&vec![7u8; 64 << 10]);
    let mut written = 0usize;
    let offered = 512usize << 20;
    while written < offered {
        let write = tokio::time::timeout(Duration::from_secs(2), client.write_all(&frame)).await;
        match write {
            Ok(Ok(())) => written += frame.len(),
            Ok(Err(e)) => panic!("the proxy dropped the client: {e}"),
            Err(_) => break,
        }
    }
    let after = support::binary::rss_kib(pid);
    assert!(
        written < 16 << 20,
        "TCP pushed back: {} MiB of {} MiB offered went in",
        written >> 20,
        offered >> 20
    );
    let grew_mib = after.saturating_sub(before) >> 10;
    assert!(
        grew_mib < 16,
        "the proxy grew {grew_mib} MiB holding a 1 MiB buffer"
    );
    let held_now = held(&run, 1).await;
    assert_eq!(held_now[0]["len"], 64 << 10);
    drop(client);
    stop(run).await;
    let _ = std::fs::remove_dir_all(&capture);
}

#[tokio::test]
async fn a_held_message_goes_on_after_the_break_timeout_and_the_capture_says_so() {
    let (run, capture) = start(
        "intercept-timeout",
        &["--break", "dir:c2s", "--break-timeout", "1"],
    );
    let (server, _) = echo_server().await;
    let mut ws = ws_client(run.proxy, server).await;
    let sent = std::time::Instant::now();
    ws.send(WsMessage::text("wait for me")).await.unwrap();
    assert_eq!(
        next_text(&mut ws, Duration::from_millis(500)).await,
        None,
        "held"
    );
    expect(&mut ws, "wait for me").await;
    assert!(
        sent.elapsed() >= Duration::from_secs(1),
        "not before its timeout"
    );
    drop(ws);
    stop(run).await;
    let records = interventions(&capture);
    let expected: Vec<(String, String)> = [("held", "breakpoint"), ("timed_out", "timeout")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(actions(&records), expected);
    let _ = std::fs::remove_dir_all(&capture);
}

#[tokio::test]
async fn a_breakpoint_that_selects_nothing_relays_raw_frames_byte_for_byte() {
    use tokio::io::AsyncWriteExt;
    use wstap_wire::FrameBuilder;
    let (run, capture) = start("intercept-exact", &["--break", r#"text~"never sent""#]);
    let server_frames = [
        FrameBuilder::binary().fin(false).encode(&[1; 70_000]),
        FrameBuilder::ping().encode(b"between"),
        FrameBuilder::continuation().encode(&[2; 10]),
        FrameBuilder::text()
            .mask([1, 1, 1, 1])
            .encode(b"masked by a server"),
    ]
    .concat();
    let (server, seen, server_task) = raw_server(switching(""), server_frames.clone()).await;
    let mut client = handshake_sent(run.proxy, server, "").await;
    assert_eq!(read_head(&mut client).await, switching("").as_bytes());
    assert_eq!(
        read_exact(&mut client, server_frames.len()).await,
        server_frames,
        "the server's frames, byte for byte"
    );
    let client_frames = tricky_client_frames().concat();
    // Odd write sizes, so frames straddle reads.
    for piece in client_frames[..40]
        .chunks(1)
        .chain(client_frames[40..].chunks(97))
    {
        send(&mut client, piece).await;
    }
    client.shutdown().await.unwrap();
    let _ = read_to_end(&mut client).await;
    server_task.await.unwrap();
    assert_eq!(
        seen.lock().unwrap().bytes,
        client_frames,
        "the client's frames, byte for byte"
    );
    stop(run).await;
    assert!(interventions(&capture).is_empty());
    let _ = std::fs::remove_dir_all(&capture);
}
