//! `wstap replay` and `wstap diff` against real peers: two sessions of a Python
//! `websockets` client (permessage-deflate on) recorded through the real binary, one to a
//! chat server and one to the same chat answering in capitals. Replayed against the same
//! server the answers are the recording's (exit 0, with either timing); against the
//! shouting one the comparison names the changed field (exit 1) unless it is ignored;
//! `diff` says the same of the two recorded sessions.
//!
//! Needs python3 with websockets; `.ci/run` installs it and runs ignored tests.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::binary::{sigterm, spawn_listening, wstap_command, KillOnDrop};
use support::*;

const PYTHON_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/python_mock.py");

/// A Python chat server (`--shout`: answering in capitals); returns it and its port.
fn chat_server(shout: bool) -> (KillOnDrop, u16) {
    let mut child = Command::new("python3")
        .args([PYTHON_SCRIPT, "serve"])
        .args(shout.then_some("--shout"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let stdout = child.stdout.take().unwrap();
    let child = KillOnDrop(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let port = line.trim().parse().expect("the server's port");
    (child, port)
}

/// A Python client's session with the chat at `port`, through the proxy at `proxy`.
fn converse(port: u16, proxy: std::net::SocketAddr) {
    let out = Command::new("python3")
        .args([PYTHON_SCRIPT, "client"])
        .arg(format!("ws://127.0.0.1:{port}/chat?room=1"))
        .args(["--proxy", &format!("http://{proxy}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

fn run(args: &[&str]) -> (Output, String) {
    let out = wstap_command().args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

/// The WebSocket sessions of `capture`, in order.
fn sessions(capture: &Path) -> Vec<u64> {
    let store = wstap_store::Capture::open(capture).unwrap();
    store
        .session_ids(&wstap_filter::Filter::default(), None)
        .unwrap()
        .into_iter()
        .filter(|&id| store.handshake(id).ok().flatten().is_some())
        .collect()
}

#[test]
#[ignore = "needs python3 with websockets (.ci/run)"]
fn a_replay_against_the_same_server_is_the_recording_and_a_changed_server_is_named() {
    let (_plain, plain) = chat_server(false);
    let (_shout, shout) = chat_server(true);
    let capture = temp_path("replay.capture");
    let mut command = wstap_command();
    command.args(["-q", "--capture", capture.to_str().unwrap()]);
    let (child, proxy) = spawn_listening(command);
    let mut child = KillOnDrop(child);
    converse(plain, proxy);
    converse(shout, proxy);
    sigterm(&child.0);
    let _ = child.0.wait();
    let found = sessions(&capture);
    assert_eq!(found.len(), 2, "{found:?}");
    let (first, second) = (found[0].to_string(), found[1].to_string());
    let cap = capture.to_str().unwrap();

    let (out, stdout) = run(&["replay", cap, "--session", &first]);
    assert!(out.status.success(), "{stdout}\n{out:?}");
    assert!(stdout.contains("permessage-deflate"), "{stdout}");
    assert!(
        stdout.contains("5 same, 0 changed, 0 missing, 0 extra"),
        "{stdout}"
    );
    let (out, stdout) = run(&["replay", cap, "--session", &first, "--timing", "fast"]);
    assert!(out.status.success(), "{stdout}\n{out:?}");

    let shouting = format!("ws://127.0.0.1:{shout}/chat?room=1");
    let (out, stdout) = run(&["replay", cap, "--session", &first, "--to", &shouting]);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{out:?}");
    assert!(stdout.contains(r#".to: "hello" -> "HELLO""#), "{stdout}");
    assert!(stdout.contains("3 same, 2 changed"), "{stdout}");
    let (out, stdout) = run(&[
        "replay",
        cap,
        "--session",
        &first,
        "--to",
        &shouting,
        "--ignore",
        "to",
    ]);
    assert!(out.status.success(), "{stdout}\n{out:?}");

    let (out, stdout) = run(&["diff", cap, &first, &second]);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{out:?}");
    assert!(
        stdout.contains(r#".to: "how are you" -> "HOW ARE YOU""#),
        "{stdout}"
    );
    let (out, stdout) = run(&["diff", cap, &first, &second, "--ignore", "to"]);
    assert!(out.status.success(), "{stdout}\n{out:?}");
    let (out, stdout) = run(&["diff", cap, &first, &second, "--dir", "client"]);
    assert!(
        out.status.success(),
        "the clients said the same: {stdout}\n{out:?}"
    );
    let _ = std::fs::remove_dir_all(&capture);
}

#[test]
fn diff_and_replay_refuse_bad_operands_with_a_reason() {
    let missing = temp_path("replay-missing.capture");
    let path = missing.to_str().unwrap();
    for args in [
        vec!["diff", path, "1", "2"],
        vec!["diff", path, "one", "2"],
        vec!["replay", path, "--session", "1"],
    ] {
        let (out, _) = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}

/// A tokio-tungstenite session of `texts` to the echo server at `server`, through the
/// wstap at `proxy`, closed by the client.
async fn echo_session(proxy: std::net::SocketAddr, server: std::net::SocketAddr, texts: &[&str]) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = ws_client(proxy, server).await;
    for text in texts {
        ws.send(Message::text(*text)).await.unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo.into_text().unwrap().as_str(), *text);
    }
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
}

/// The texts of `session`'s client messages in `capture`.
fn client_texts(capture: &Path, session: u64) -> Vec<String> {
    let store = wstap_store::Capture::open(capture).unwrap();
    let all = wstap_filter::Filter::parse("dir:c2s op:text").unwrap();
    store
        .messages(Some(session), &all, wstap_store::Position::From(0), 100)
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m.message.payload.bytes).unwrap())
        .collect()
}

/// A capture `name` holding one session through wstap with the echo at `server` ("one",
/// "two"), and that session's number.
async fn recorded_echo(name: &str, server: std::net::SocketAddr) -> (std::path::PathBuf, u64) {
    let recorded = temp_path(name);
    let mut command = wstap_command();
    command.args(["-q", "--capture", recorded.to_str().unwrap()]);
    let (child, proxy) = spawn_listening(command);
    let mut child = KillOnDrop(child);
    echo_session(proxy, server, &["one", "two"]).await;
    sigterm(&child.0);
    let _ = child.0.wait();
    let session = sessions(&recorded)[0];
    (recorded, session)
}

// Multi-threaded: the echo server runs while the test waits for wstap's commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_through_a_running_wstap_is_recorded_in_its_capture() {
    let (server, _) = echo_server().await;
    let (recorded, session) = recorded_echo("replay-recorded.capture", server).await;

    let replayed = temp_path("replay-replayed.capture");
    let mut command = wstap_command();
    command.args(["-q", "--capture", replayed.to_str().unwrap()]);
    let (child, second) = spawn_listening(command);
    let mut child = KillOnDrop(child);
    let (out, stdout) = run(&[
        "replay",
        recorded.to_str().unwrap(),
        "--session",
        &session.to_string(),
        "--upstream-proxy",
        &format!("http://{second}"),
        "--timing",
        "fast",
    ]);
    assert!(out.status.success(), "{stdout}\n{out:?}");
    assert!(
        stdout.contains("3 same, 0 changed"),
        "two echoes and the close: {stdout}"
    );
    sigterm(&child.0);
    let _ = child.0.wait();
    let again = sessions(&replayed);
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(client_texts(&replayed, again[0]), ["one", "two"]);
    assert_eq!(client_texts(&recorded, session), ["one", "two"]);
    // The replay recorded itself into the capture it came from too, after its session.
    let here = sessions(&recorded);
    assert_eq!(here, [session, session + 1], "{stdout}");
    assert_eq!(client_texts(&recorded, session + 1), ["one", "two"]);
    assert!(stdout.contains("recorded into"), "{stdout}");
    // `--no-record` leaves it as it is.
    let (out, stdout) = run(&[
        "replay",
        recorded.to_str().unwrap(),
        "--session",
        &session.to_string(),
        "--no-record",
        "--timing",
        "fast",
    ]);
    assert!(out.status.success(), "{stdout}\n{out:?}");
    assert_eq!(sessions(&recorded).len(), 2);

    // A proxy that is not there, or refuses: a one-line error (`--proxy` says the same).
    let (out, _) = run(&[
        "replay",
        recorded.to_str().unwrap(),
        "--session",
        &session.to_string(),
        "--proxy",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{out:?}");
    assert!(stderr.contains("127.0.0.1:1"), "names the proxy: {stderr}");
    // A host the bypass list names goes direct, proxy or not.
    let (out, stdout) = run(&[
        "replay",
        recorded.to_str().unwrap(),
        "--session",
        &session.to_string(),
        "--upstream-proxy",
        "http://127.0.0.1:1",
        "--no-upstream-proxy-for",
        "127.0.0.1",
        "--timing",
        "fast",
    ]);
    assert!(out.status.success(), "{stdout}\n{out:?}");
    assert!(stdout.contains("3 same, 0 changed"), "{stdout}");
    let _ = std::fs::remove_dir_all(&recorded);
    let _ = std::fs::remove_dir_all(&replayed);
}

/// The inspector's replay (`POST /api/sessions/N/replay`) through the running proxy, with
/// tokio-tungstenite peers: the same echoes (the comparison says so, row by row), the
/// replayed session recorded beside the original; a changed answer named; a session that
/// cannot replay a 400 with the reason; a bad body a 400 naming the field.
#[tokio::test(flavor = "multi_thread")]
async fn the_inspectors_replay_goes_through_the_proxy_and_compares() {
    use futures_util::{SinkExt, StreamExt};
    use serde_json::{json, Value};
    use support::web::{get, send_json};
    use tokio_tungstenite::tungstenite::Message;

    let capture = temp_path("inspector-replay.capture");
    let mut command = wstap_command();
    command
        .args(["--no-tls-intercept", "--grace", "1", "--capture"])
        .arg(&capture);
    let run = support::binary::spawn_with_inspector(command);
    let (server, _) = echo_server().await;
    let mut ws = ws_client(run.proxy, server).await;
    for text in ["one", r#"{"n":2,"who":"ann"}"#] {
        ws.send(Message::text(text)).await.unwrap();
        let echo = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await;
        assert!(matches!(echo, Ok(Some(Ok(_)))), "{echo:?}");
    }
    ws.close(None).await.unwrap();
    while let Ok(Some(Ok(_))) =
        tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await
    {}
    drop(ws);
    // WebSocket sessions that ended: all their messages are committed.
    let sessions = |listed: &Value| -> Vec<u64> {
        listed["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["status"] == 101 && s["state"] == "closed")
            .filter_map(|s| s["id"].as_u64())
            .collect()
    };
    let mut recorded = Vec::new();
    for _ in 0..100 {
        recorded = sessions(&get(run.web, &run.token, "/api/sessions").await.json());
        if !recorded.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let session = *recorded.first().expect("the session is listed");
    let replay = |body: Value| {
        let path = format!("/api/sessions/{session}/replay");
        let (web, token) = (run.web, run.token.clone());
        async move { send_json(web, &token, "POST", &path, &body).await }
    };

    let answer = replay(json!({ "timing": "fast" })).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let comparison = answer.json();
    assert_eq!(
        (comparison["same"].as_u64(), comparison["changed"].as_u64()),
        (Some(3), Some(0)),
        "two echoes and the close: {comparison}"
    );
    assert_eq!(
        comparison["rows"][1]["recorded"]["text"],
        r#"{"n":2,"who":"ann"}"#
    );
    assert_eq!(
        comparison["rows"][1]["replayed"]["text"],
        r#"{"n":2,"who":"ann"}"#
    );

    // A rule now changes the server's answer on its way: the comparison names the field.
    let rules = "[[rule]]\nfilter = 'dir:s2c json.who == \"ann\"'\nreplace = [{ json = \"who\", value = \"bob\" }]";
    let added = send_json(
        run.web,
        &run.token,
        "POST",
        "/api/rules",
        &json!({ "rules": rules }),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text());
    let comparison = replay(json!({})).await.json();
    assert_eq!(comparison["changed"], 1, "{comparison}");
    let changed = comparison["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["status"] == "changed")
        .cloned()
        .unwrap();
    assert_eq!(
        changed["fields"],
        json!([r#".who: "ann" -> "bob""#]),
        "{changed}"
    );
    // Left out, the field no longer counts.
    let ignored = replay(json!({ "ignore": ["who"] })).await.json();
    assert_eq!(ignored["changed"], 0, "{ignored}");

    // Both replays were recorded as sessions of their own.
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = sessions(&get(run.web, &run.token, "/api/sessions").await.json());
        if listed.len() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        listed.len(),
        4,
        "the original and three replays: {listed:?}"
    );

    // What cannot replay says why.
    let answer = replay(json!({ "timing": "later" })).await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(answer.text().contains("timing"), "{}", answer.text());
    let answer = send_json(
        run.web,
        &run.token,
        "POST",
        "/api/sessions/999/replay",
        &json!({}),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    drop(run);
    let _ = std::fs::remove_dir_all(&capture);
}

/// `wstap replay --record DIR --rules FILE`: the replay goes through a wstap of its own,
/// whose rules change the server's answer on its way (the comparison names it, exit 1)
/// and whose capture holds the replayed session, the answer as read and as rewritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_with_rules_is_recorded_into_a_capture_of_its_own() {
    let (server, _) = echo_server().await;
    let (recorded, session) = recorded_echo("replay-own-recorded.capture", server).await;

    let rules = temp_path("replay-rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nfilter = 'dir:s2c text:two'\nreplace = [{ regex = 'two', with = 'TWO' }]\n",
    )
    .unwrap();
    let into = temp_path("replay-own.capture");
    let args: Vec<String> = [
        "replay",
        recorded.to_str().unwrap(),
        "--session",
        &session.to_string(),
        "--timing",
        "fast",
        "--record",
        into.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec();
    let (out, stdout) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args)
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{out:?}");
    assert!(stdout.contains("2 same, 1 changed"), "{stdout}");
    assert!(stdout.contains("recorded into"), "{stdout}");
    let replayed = sessions(&into);
    assert_eq!(replayed.len(), 1, "{replayed:?}");
    assert_eq!(client_texts(&into, replayed[0]), ["one", "two"]);
    let store = wstap_store::Capture::open(&into).unwrap();
    let answers: Vec<(String, String)> = store
        .messages(
            Some(replayed[0]),
            &wstap_filter::Filter::parse("dir:s2c op:text").unwrap(),
            wstap_store::Position::From(0),
            100,
        )
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                String::from_utf8(m.message.payload.bytes).unwrap(),
                format!("{:?}", m.message.origin),
            )
        })
        .collect();
    assert!(
        answers.contains(&("two".to_owned(), "Wire".to_owned()))
            && answers.contains(&("TWO".to_owned(), "Edited".to_owned())),
        "the answer as read and as the rule rewrote it: {answers:?}"
    );
    for dir in [&recorded, &into] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_file(&rules);
}
