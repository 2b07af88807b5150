//! `wstap mock`: a session of Python's `websockets` (permessage-deflate on) recorded
//! through the real binary, then its server side served offline to Node's `ws`, to
//! headless Chromium and to Python clients (over ws and wss), who must see the server's messages as recorded: the greeting, the
//! answers when they ask, the unprompted tick at its offset. `--ignore` lets a client
//! whose ids differ match; `--strict` closes with 1008 on a message never recorded.
//!
//! Needs python3 with websockets, node with the packages of tests/peers/node and
//! `chromium`; `.ci/run` installs them and runs ignored tests.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::binary::{
    collect_lines, free_loopback_addr, sigterm, spawn_listening, wstap_command, KillOnDrop,
};
use support::*;

const PYTHON_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/python_mock.py");
const BROWSER_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/node/mock_browser.mjs"
);
const NODE_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/node/mock_client.mjs"
);

/// Runs a peer program to its end and returns its JSON line.
fn peer(program: &str, args: &[&str]) -> Value {
    support::binary::peer_json(program, args)
}

/// Records the Python chat through wstap into `capture`; returns what its client
/// received and the session's number.
fn record(capture: &Path) -> (Value, u64) {
    let mut command = wstap_command();
    command.args(["-q", "--capture", capture.to_str().unwrap()]);
    let (child, proxy) = spawn_listening(command);
    let child = KillOnDrop(child);
    let recorded = peer(
        "python3",
        &[PYTHON_SCRIPT, "record", &format!("http://{proxy}")],
    );
    sigterm(&child.0);
    let mut child = child;
    let _ = child.0.wait();
    let store = wstap_store::Capture::open(capture).expect("the capture");
    let sessions = store
        .session_ids(&wstap_filter::Filter::default(), None)
        .expect("sessions");
    let session = sessions
        .into_iter()
        .find(|&id| store.handshake(id).ok().flatten().is_some())
        .expect("the WebSocket session");
    (recorded, session)
}

/// `wstap mock` serving `session` of `capture` (none when 0) with `extra` options, its console lines
/// collected; returns it, the URL it serves the session at and the lines.
fn mock(
    capture: &Path,
    session: u64,
    extra: &[&str],
) -> (KillOnDrop, String, Arc<Mutex<Vec<String>>>) {
    let addr = free_loopback_addr();
    let mut child = wstap_command()
        .args(["mock", capture.to_str().unwrap()])
        .args(match session {
            0 => Vec::new(),
            n => vec!["--session".to_owned(), n.to_string()],
        })
        .args(["--listen", &addr.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wstap mock starts");
    let stdout = child.stdout.take().unwrap();
    let child = KillOnDrop(child);
    let lines = collect_lines(stdout);
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        let found = lines.lock().unwrap().iter().find_map(|line: &String| {
            line.split_whitespace()
                .find(|word| word.starts_with("ws://") || word.starts_with("wss://"))
                .map(str::to_owned)
        });
        if let Some(url) = found {
            break url;
        }
        assert!(
            Instant::now() < deadline,
            "wstap mock did not say where it serves"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(url.contains(&format!("://{addr}/")), "{url}");
    (child, url, lines)
}

/// The console's lines once a client's connection has ended.
fn lines_after_end(lines: &Mutex<Vec<String>>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = lines.lock().unwrap().clone();
        if now
            .iter()
            .any(|l| l.contains("closed by the client") || l.contains("1008"))
        {
            return now;
        }
        assert!(Instant::now() < deadline, "no end reported: {now:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs python3 with websockets, node with tests/peers/node and chromium (.ci/run)"]
fn a_recorded_python_session_is_served_to_node_and_python_clients_as_recorded() {
    let capture = temp_path("mock.capture");
    let (recorded, session) = record(&capture);
    let messages = recorded["received"].as_array().expect("messages").clone();
    let kinds: Vec<&str> = messages
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["welcome", "reply", "reply", "tick"], "{recorded}");
    assert!(
        recorded["extensions"]
            .as_str()
            .unwrap_or_default()
            .contains("permessage-deflate"),
        "the recording is compressed: {recorded}"
    );

    let (mut server, url, lines) = mock(&capture, session, &[]);
    assert!(
        url.ends_with("/chat?room=1"),
        "served at its recorded path: {url}"
    );
    let started = Instant::now();
    let node = peer("node", &[NODE_SCRIPT, &url]);
    let took = started.elapsed();
    assert_eq!(node["received"].as_array().unwrap(), &messages, "{node}");
    assert_eq!(node["close"], 1000, "{node}");
    assert!(
        node["extensions"]
            .as_str()
            .unwrap_or_default()
            .contains("permessage-deflate"),
        "the mock compresses as recorded: {node}"
    );
    // The tick is unprompted: played at its recorded offset (1.5 s), not at once.
    assert!(took >= Duration::from_millis(1_400), "{took:?}");
    let console = lines_after_end(&lines);
    let as_recorded = console
        .iter()
        .filter(|l| l.contains("as recorded (#"))
        .count();
    assert_eq!(as_recorded, 2, "{console:#?}");
    assert!(
        console
            .iter()
            .any(|l| l.contains("4 of 4 server messages played")),
        "{console:#?}"
    );

    let profile = temp_path("mock-chromium-profile");
    let browser = peer("node", &[BROWSER_SCRIPT, &url, profile.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&profile);
    assert_eq!(
        browser["received"].as_array().unwrap(),
        &messages,
        "{browser}"
    );
    assert_eq!(browser["close"], 1000, "{browser}");
    assert!(
        browser["extensions"]
            .as_str()
            .unwrap_or_default()
            .contains("permessage-deflate"),
        "{browser}"
    );

    let python = peer("python3", &[PYTHON_SCRIPT, "client", &url]);
    assert_eq!(
        python["received"].as_array().unwrap(),
        &messages,
        "{python}"
    );
    assert!(python["extensions"]
        .as_str()
        .unwrap_or_default()
        .contains("permessage-deflate"));
    sigterm(&server.0);
    let _ = server.0.wait();

    // Other ids: unrecorded as they are, recorded once `id` is left out.
    let (mut server, url, lines) = mock(&capture, session, &["--strict"]);
    let other_ids = peer("python3", &[PYTHON_SCRIPT, "client", &url, "7"]);
    assert_eq!(other_ids["close"], 1008, "{other_ids}");
    let console = lines_after_end(&lines);
    assert!(
        console
            .iter()
            .any(|l| l.contains("no recorded counterpart")),
        "{console:#?}"
    );
    sigterm(&server.0);
    let _ = server.0.wait();
    let (mut server, url, _) = mock(&capture, session, &["--strict", "--ignore", "id"]);
    let ignoring = peer("python3", &[PYTHON_SCRIPT, "client", &url, "7"]);
    assert_eq!(
        ignoring["received"].as_array().unwrap(),
        &messages,
        "{ignoring}"
    );
    // And a message the recording never had ends a strict mock's session with 1008.
    let unexpected = peer(
        "python3",
        &[PYTHON_SCRIPT, "client", &url, "1", "--unexpected"],
    );
    assert_eq!(unexpected["close"], 1008, "{unexpected}");
    sigterm(&server.0);
    let _ = server.0.wait();

    // Over TLS, with a certificate of wstap's CA for the name the client asks for.
    let (mut server, url, _) = mock(&capture, session, &["--tls"]);
    let url = url.replace("127.0.0.1", "localhost");
    assert!(url.starts_with("wss://localhost:"), "{url}");
    let ca = test_home().join("wstap-ca.pem");
    let secure = peer(
        "python3",
        &[PYTHON_SCRIPT, "client", &url, "--ca", ca.to_str().unwrap()],
    );
    assert_eq!(
        secure["received"].as_array().unwrap(),
        &messages,
        "{secure}"
    );
    sigterm(&server.0);
    let _ = server.0.wait();
    let _ = std::fs::remove_dir_all(&capture);
}

#[test]
fn mock_refuses_what_it_cannot_serve_with_a_reason() {
    let missing = temp_path("mock-missing.capture");
    let out = support::binary::wstap(&["mock", missing.to_str().unwrap(), "--session", "1"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Sends `texts` on a tokio-tungstenite client and returns the texts answered to each.
async fn converse(
    ws: &mut tokio_tungstenite::WebSocketStream<
        impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    >,
    texts: &[&str],
) -> Vec<String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut answers = Vec::new();
    for text in texts {
        ws.send(Message::text(*text)).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an answer in time")
            .expect("an answer")
            .unwrap();
        answers.push(answer.into_text().unwrap().to_string());
    }
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    answers
}

/// A tokio-tungstenite client of `ws://addr{path}`.
async fn connect(
    addr: &str,
    path: &str,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(format!("ws://{addr}{path}"), stream).await
}

#[tokio::test]
async fn several_sessions_are_served_at_their_recorded_paths() {
    let capture = temp_path("mock-paths.capture");
    let (server, _) = echo_server().await;
    let mut command = wstap_command();
    command.args(["-q", "--capture", capture.to_str().unwrap()]);
    let (child, proxy) = spawn_listening(command);
    let mut child = KillOnDrop(child);
    for (path, texts) in [("/alpha?x=1", &["a1", "a2"][..]), ("/beta", &["b1"][..])] {
        let stream = tunnel(proxy, server).await;
        let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{server}{path}"), stream)
            .await
            .unwrap();
        assert_eq!(converse(&mut ws, texts).await, texts);
    }
    sigterm(&child.0);
    let _ = child.0.wait();

    let (mock, url, _) = mock(&capture, 0, &["--filter", "path:/*"]);
    let addr = url.split('/').nth(2).unwrap().to_owned();
    let (mut beta, _) = connect(&addr, "/beta").await.unwrap();
    assert_eq!(converse(&mut beta, &["b1"]).await, ["b1"]);
    let (mut alpha, _) = connect(&addr, "/alpha?x=1").await.unwrap();
    assert_eq!(converse(&mut alpha, &["a1", "a2"]).await, ["a1", "a2"]);
    // Not a WebSocket handshake, or not HTTP at all: a 400 that says why.
    for (request, why) in [
        (
            "GET /beta HTTP/1.1\r\nHost: x\r\n\r\n",
            "not a WebSocket upgrade",
        ),
        ("\x16\x03\x01 not http\r\n\r\n", "not a GET request"),
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
        raw.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        raw.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains(why), "{answer}");
    }
    // A path nobody recorded: a 404 that says so.
    let refused = connect(&addr, "/gamma").await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("no recorded session for /gamma"), "{body}");
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    drop(mock);
    let _ = std::fs::remove_dir_all(&capture);
}

/// `wstap mock --rules FILE`: a rule answers a call the recording lacks, another sets a
/// made-up id to the recorded one so the message matches again (under `--strict`), and a
/// third closes with its code; a rule a mock cannot carry out stops it with the reason.
#[tokio::test]
async fn rules_decide_a_clients_messages_before_the_recording_does() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let capture = temp_path("mock-rules.capture");
    let (server, _) = echo_server().await;
    let mut command = wstap_command();
    command.args(["-q", "--capture", capture.to_str().unwrap()]);
    let (child, proxy) = spawn_listening(command);
    let mut child = KillOnDrop(child);
    let stream = tunnel(proxy, server).await;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{server}/rpc"), stream)
        .await
        .unwrap();
    let recorded = r#"{"id":1,"op":"get"}"#;
    assert_eq!(converse(&mut ws, &[recorded]).await, [recorded]);
    sigterm(&child.0);
    let _ = child.0.wait();

    let rules = temp_path("mock-rules.toml");
    std::fs::write(
        &rules,
        r#"
[[rule]]
name = "pong"
filter = 'json.op == "ping"'
respond = { text = '{"op":"pong"}' }

[[rule]]
name = "recorded id"
filter = 'json.op == "get"'
replace = [{ json = "id", value = 1 }]

[[rule]]
name = "bye"
filter = 'text:bye'
close = { code = 4000, reason = "see you" }
"#,
    )
    .unwrap();
    let (mock, url, lines) = mock(
        &capture,
        0,
        &[
            "--filter",
            "path:/rpc",
            "--strict",
            "--rules",
            rules.to_str().unwrap(),
        ],
    );
    let addr = url.split('/').nth(2).unwrap().to_owned();
    let (mut client, _) = connect(&addr, "/rpc").await.unwrap();
    client
        .send(Message::text(r#"{"op":"ping"}"#))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(10), client.next()).await;
    assert!(
        matches!(pong, Ok(Some(Ok(Message::Text(ref t)))) if t.as_str() == r#"{"op":"pong"}"#),
        "{pong:?}"
    );
    client
        .send(Message::text(r#"{"id":77,"op":"get"}"#))
        .await
        .unwrap();
    let played = tokio::time::timeout(Duration::from_secs(10), client.next()).await;
    assert!(
        matches!(played, Ok(Some(Ok(Message::Text(ref t)))) if t.as_str() == recorded),
        "the recorded answer, matched once the id was set: {played:?}"
    );
    client.send(Message::text("bye")).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), client.next()).await;
    match closed {
        Ok(Some(Ok(Message::Close(Some(frame))))) => {
            assert_eq!(u16::from(frame.code), 4000);
            assert_eq!(frame.reason.as_str(), "see you");
        }
        other => panic!("a close 4000 from the rule, not {other:?}"),
    }
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(10);
    let said = loop {
        let said = lines.lock().unwrap().join("\n");
        if said.contains("closed with 4000 by bye") || Instant::now() > deadline {
            break said;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for line in [
        "answered by pong",
        "rewritten by recorded id",
        "as recorded",
        "closed with 4000 by bye",
    ] {
        assert!(said.contains(line), "{line:?} in:\n{said}");
    }
    drop(mock);

    // What needs a proxy is refused, with the reason.
    std::fs::write(&rules, "[[rule]]\nfilter = ''\nbreak = true\n").unwrap();
    let out = wstap_command()
        .args(["mock", capture.to_str().unwrap(), "--filter", "path:/rpc"])
        .args(["--listen", &free_loopback_addr().to_string()])
        .args(["--rules", rules.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("need a proxy"), "{stderr}");
    let _ = std::fs::remove_dir_all(&capture);
    let _ = std::fs::remove_file(&rules);
}
