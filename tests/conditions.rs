//! Network conditions through the real binary: `--conditions` shaping Python `websockets`
//! sessions (added latency and a bandwidth cap as the peers measure them, within 10%; a
//! drop after N messages seen as 1006 by Python and Node `ws` clients; a close with a
//! code), a pause set on a live session from the API that holds within its budget and
//! resumes with nothing lost, and the capture's record of each (`conditioned`, and the
//! cut-offs decided `by: conditions`).
//!
//! The Python and Node tests need python3 with websockets and node with tests/peers/node's
//! packages; `.ci/run` installs both and runs ignored tests.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use support::binary::{
    rss_kib, sigterm, spawn_listening, spawn_with_inspector, wstap, wstap_command, KillOnDrop,
};
use support::web::{get, send_json};
use support::*;
use tokio_tungstenite::tungstenite::Message;

const CONDITIONS: [&str; 4] = [
    "path:/latency=to:server, latency:200ms",
    "path:/bandwidth=to:client, bandwidth:100KB/s",
    "path:/drop=to:server, drop-after:3",
    "path:/close=close-after:2:4000:enough",
];

/// The events of `kind` in `capture`, in order.
fn events(capture: &Path, kind: &str) -> Vec<Value> {
    support::binary::exported_events(capture, kind)
}

fn has(records: &[Value], action: &str, by: &str, reason: Option<&str>) -> bool {
    records.iter().any(|r| {
        r["action"] == action
            && r["by"] == by
            && reason.is_none_or(|reason| r["reason"].as_str() == Some(reason))
    })
}

#[test]
#[ignore = "needs python3 with websockets (.ci/run)"]
fn conditions_add_latency_cap_bandwidth_and_cut_python_sessions() {
    let capture = temp_path("conditions.capture");
    let mut command = wstap_command();
    command.args(["-q", "--capture", capture.to_str().unwrap()]);
    for conditions in CONDITIONS {
        command.args(["--conditions", conditions]);
    }
    let (child, proxy) = spawn_listening(command);
    let child = KillOnDrop(child);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/python_conditions.py"
    );
    let seen = support::binary::peer_json("python3", &[script, &format!("http://{proxy}")]);
    let number = |key: &str| seen[key].as_f64().unwrap();

    // Latency: what a round trip gained, within 10% of the 200 ms set; five messages sent
    // at once come back together (the line is pipelined, not one message at a time).
    let added = number("latency_rtt") - number("plain_rtt");
    assert!((0.18..=0.22).contains(&added), "added {added} s: {seen}");
    let five = number("five_at_once_s");
    assert!(
        (0.18..0.35).contains(&five),
        "five at once took {five} s: {seen}"
    );

    // Bandwidth: each message arrives when its last byte would over 100 kB/s, the last
    // within 10% of the time the whole burst takes at that rate.
    let arrivals: Vec<f64> = seen["burst_arrivals_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let expected = number("burst_wire_bytes") / 100_000.0;
    let last = *arrivals.last().unwrap();
    assert!(
        (expected * 0.9..=expected * 1.1).contains(&last),
        "the burst took {last} s, {expected} s expected: {arrivals:?}"
    );
    let first = arrivals[0];
    assert!(
        (expected / 10.0 * 0.8..=expected / 10.0 * 1.5).contains(&first),
        "paced, not at once: the first arrived at {first} s: {arrivals:?}"
    );

    // A drop after three messages: the server got exactly three, the client saw 1006.
    assert_eq!(seen["drop_code"], 1006, "{seen}");
    assert_eq!(
        seen["seen_by_server"]["/drop"],
        json!(["m0", "m1", "m2"]),
        "{seen}"
    );
    // A close after two messages each way: 4000 with its reason, to both.
    assert_eq!(seen["close_code"], 4000, "{seen}");
    assert_eq!(seen["close_reason"], "enough", "{seen}");
    assert_eq!(
        seen["seen_by_server"]["/close"],
        json!(["one", "two"]),
        "{seen}"
    );
    sigterm(&child.0);
    drop(child);

    // The capture says which conditions shaped which way, and what cut the sessions.
    let records = events(&capture, "intervention");
    assert!(
        has(&records, "conditioned", "rule", Some("latency:200ms")),
        "{records:?}"
    );
    assert!(
        has(&records, "conditioned", "rule", Some("bandwidth:100000B/s")),
        "{records:?}"
    );
    assert!(has(&records, "aborted", "conditions", None), "{records:?}");
    assert!(
        has(&records, "closed", "conditions", Some("enough")),
        "{records:?}"
    );
    let _ = std::fs::remove_dir_all(&capture);
}

#[test]
#[ignore = "needs node and `npm ci` in tests/peers/node; .ci/run does both and runs ignored tests"]
fn a_drop_after_messages_is_a_1006_to_a_node_ws_client() {
    let mut command = wstap_command();
    command.args(["-q", "--no-capture", "--conditions", CONDITIONS[2]]);
    let (child, proxy) = spawn_listening(command);
    let _child = KillOnDrop(child);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/node/ws_conditions.mjs"
    );
    let seen = support::binary::peer_json("node", &[script, &format!("http://{proxy}")]);
    assert_eq!(seen["code"], 1006, "{seen}");
    assert_eq!(seen["server_received"], json!(["m0", "m1", "m2"]), "{seen}");
}

#[test]
fn conditions_with_a_mistake_stop_wstap_saying_what_is_wrong() {
    let out = wstap(&["--no-capture", "--conditions", "path:/x=latncy:200ms"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown condition \"latncy\""), "{stderr}");
    let out = wstap(&["--no-capture", "--conditions", "op:text=latency:1ms"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only session fields"),
        "{out:?}"
    );
}

/// The number of the session to `server`, once the inspector lists it.
async fn session_to(web: std::net::SocketAddr, token: &str, server: std::net::SocketAddr) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listed = get(web, token, "/api/sessions").await.json();
        let found = listed["rows"].as_array().and_then(|sessions| {
            sessions
                .iter()
                .find(|s| {
                    s["url"]
                        .as_str()
                        .is_some_and(|url| url.contains(&server.to_string()))
                })
                .and_then(|s| s["id"].as_u64())
        });
        if let Some(id) = found {
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "no session to {server}: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The answer to a POST of `conditions` on session `session`, once it is live.
async fn set_conditions(
    web: std::net::SocketAddr,
    token: &str,
    session: u64,
    conditions: &str,
) -> Value {
    let path = format!("/api/sessions/{session}/conditions");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = send_json(
            web,
            token,
            "POST",
            &path,
            &json!({ "conditions": conditions }),
        )
        .await;
        if answer.status == 200 {
            return answer.json();
        }
        assert_eq!(answer.status, 409, "{}", answer.text());
        assert!(Instant::now() < deadline, "session {session} never live");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pause_from_the_api_holds_within_the_budget_and_resuming_loses_nothing() {
    const MESSAGES: usize = 64;
    const SIZE: usize = 512 << 10;
    let capture = temp_path("paused.capture");
    let mut command = wstap_command();
    command
        .args([
            "--no-tls-intercept",
            "--grace",
            "1",
            "--break-buffer",
            "1M",
            "--capture",
        ])
        .arg(&capture);
    let run = spawn_with_inspector(command);
    let (server, _) = echo_server().await;
    let ws = ws_client(run.proxy, server).await;
    let (mut sink, mut stream) = ws.split();
    // A message goes and comes back before the pause.
    sink.send(Message::text("before")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    assert!(matches!(echo, Ok(Some(Ok(Message::Text(ref t)))) if t.as_str() == "before"));

    let session = session_to(run.web, &run.token, server).await;
    let set = set_conditions(run.web, &run.token, session, "to:server, pause").await;
    assert_eq!(set["server"]["conditions"], "to:server, pause", "{set}");
    assert_eq!(set["client"], Value::Null, "{set}");
    let shown = get(
        run.web,
        &run.token,
        &format!("/api/sessions/{session}/conditions"),
    )
    .await
    .json();
    assert_eq!(shown["server"]["conditions"], "to:server, pause", "{shown}");

    let before = rss_kib(run.child.id());
    let sending = tokio::spawn(async move {
        for n in 0..MESSAGES {
            let mut payload = vec![n as u8; SIZE];
            payload[..8].copy_from_slice(&(n as u64).to_be_bytes());
            sink.send(Message::binary(payload)).await.unwrap();
        }
        sink
    });
    // Paused: nothing comes back, the sender is held up, and wstap keeps no more than
    // its budget of what it read (32 MiB were offered).
    let nothing = tokio::time::timeout(Duration::from_millis(1500), stream.next()).await;
    assert!(nothing.is_err(), "paused, yet {nothing:?}");
    assert!(!sending.is_finished(), "backpressure: the sender waits");
    let grown = rss_kib(run.child.id()).saturating_sub(before);
    assert!(grown < 12 << 10, "wstap grew by {grown} KiB while paused");

    // Resumed: every message, in order, unchanged.
    let cleared = set_conditions(run.web, &run.token, session, "none").await;
    assert_eq!(cleared["server"], Value::Null, "{cleared}");
    for n in 0..MESSAGES {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("resumed")
            .unwrap()
            .unwrap();
        let payload = next.into_data();
        assert_eq!(payload.len(), SIZE);
        assert_eq!(
            payload[..8],
            (n as u64).to_be_bytes(),
            "message {n} in its place"
        );
        assert!(payload[8..].iter().all(|b| *b == n as u8));
    }
    let mut sink = sending.await.unwrap();
    sink.close().await.unwrap();
    drop(stream);

    // A mistake is a 400 naming the field; a session that is not live, a 409.
    let answer = send_json(
        run.web,
        &run.token,
        "POST",
        &format!("/api/sessions/{session}/conditions"),
        &json!({ "conditions": "latency:soon" }),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.text());
    assert!(
        answer.text().contains("not a duration"),
        "{}",
        answer.text()
    );
    let answer = send_json(
        run.web,
        &run.token,
        "POST",
        "/api/sessions/99/conditions",
        &json!({ "conditions": "pause" }),
    )
    .await;
    assert_eq!(answer.status, 409, "{}", answer.text());

    sigterm(&run.child);
    let mut run = run;
    assert!(run.child.wait().unwrap().success());
    let records = events(&capture, "intervention");
    assert!(
        has(&records, "conditioned", "api", Some("pause")),
        "{records:?}"
    );
    assert!(
        has(&records, "conditioned", "api", Some("none")),
        "{records:?}"
    );
    let _ = std::fs::remove_dir_all(&capture);
}

#[tokio::test(flavor = "multi_thread")]
async fn conditions_come_and_go_with_the_rules_api() {
    let mut command = wstap_command();
    let capture = temp_path("conditions-api.capture");
    command
        .args(["--no-tls-intercept", "--grace", "1", "--capture"])
        .arg(&capture);
    let run = spawn_with_inspector(command);
    let rules = "[[conditions]]\nname = \"slow\"\nfilter = ''\nset = 'to:client, latency:300ms'";
    let answer = send_json(
        run.web,
        &run.token,
        "POST",
        "/api/rules",
        &json!({ "rules": rules }),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    let id = answer.json()["ids"][0].as_u64().unwrap();
    let listed = get(run.web, &run.token, "/api/rules").await.json();
    let entry = &listed["rules"][0];
    assert_eq!(entry["name"], "slow", "{listed}");
    assert_eq!(entry["conditions"], "to:client, latency:300ms", "{listed}");

    // A live session takes them: its echoes come 300 ms late; removed, at once again.
    let (server, _) = echo_server().await;
    let mut ws = ws_client(run.proxy, server).await;
    let slow = round_trip(&mut ws).await;
    assert!(slow >= Duration::from_millis(290), "{slow:?}");
    let answer = send_json(
        run.web,
        &run.token,
        "DELETE",
        &format!("/api/rules/{id}"),
        &json!({}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let quick = round_trip(&mut ws).await;
        if quick < Duration::from_millis(150) {
            break;
        }
        assert!(Instant::now() < deadline, "still slow: {quick:?}");
    }
    drop(run);
    let _ = std::fs::remove_dir_all(&capture);
}

/// How long an echo of one message takes.
async fn round_trip(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) -> Duration {
    let started = Instant::now();
    ws.send(Message::text("x")).await.unwrap();
    let echo = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    assert!(matches!(echo, Ok(Some(Ok(_)))), "{echo:?}");
    started.elapsed()
}
