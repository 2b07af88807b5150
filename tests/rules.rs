//! `--rules FILE` through the real binary: a rules file rewriting, dropping, delaying,
//! answering, closing and aborting on a Python `websockets` session with
//! permessage-deflate on, every firing recorded in the capture as decided by a rule; a
//! file with a mistake stops wstap with its line and column; SIGHUP reads the file again,
//! and a bad one leaves the rules in force.
//!
//! The Python test needs python3 with websockets; `.ci/run` installs it and runs ignored
//! tests.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::binary::{
    collect_lines, free_loopback_addr, sigterm, spawn_listening, spawn_with_inspector,
    wstap_command, KillOnDrop,
};
use support::web::{get, send_json};
use support::*;
use tokio_tungstenite::tungstenite::Message;

const RULES: &str = r#"
[[rule]]
name = "shout"
filter = 'dir:c2s text~"^hello"'
replace = [{ regex = "^hello", with = "HELLO" }]

[[rule]]
name = "no secrets"
filter = 'dir:c2s text:secret'
drop = true

[[rule]]
name = "slow"
filter = 'dir:s2c text~"^slow"'
delay = 300
tag = "slow"

[[rule]]
name = "pong"
filter = 'dir:c2s json.op == "ping"'
respond = { text = '{"op":"pong"}' }

[[rule]]
name = "bye"
filter = 'dir:c2s text:bye'
close = { code = 4001, reason = "rule says bye" }

[[rule]]
name = "crash"
filter = 'dir:c2s text:"crash me"'
abort = true
"#;

fn write_rules(name: &str, text: &str) -> std::path::PathBuf {
    let path = temp_path(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
#[ignore = "needs python3 with websockets (.ci/run)"]
fn rules_rewrite_drop_delay_answer_close_and_abort_a_compressed_python_session() {
    let rules = write_rules("rules.toml", RULES);
    let capture = temp_path("rules.capture");
    let mut command = wstap_command();
    command.args(["-q", "--capture", capture.to_str().unwrap()]);
    command.args(["--rules", rules.to_str().unwrap()]);
    let (child, proxy) = spawn_listening(command);
    let mut child = KillOnDrop(child);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/python_rules.py");
    let out = std::process::Command::new("python3")
        .args([script, &format!("http://{proxy}")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(
        seen["extensions"]
            .as_str()
            .unwrap_or_default()
            .contains("permessage-deflate"),
        "{seen}"
    );
    assert_eq!(seen["rewritten"], "HELLO world", "{seen}");
    assert_eq!(seen["after_dropped"], "after", "{seen}");
    assert_eq!(seen["responded"], r#"{"op":"pong"}"#, "{seen}");
    assert_eq!(seen["after_responded"], "check", "{seen}");
    assert_eq!(seen["close_code"], 4001, "{seen}");
    assert_eq!(seen["close_reason"], "rule says bye", "{seen}");
    assert_eq!(seen["aborted_code"], 1006, "{seen}");
    let server: Vec<&str> = seen["seen_by_server"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert!(server.contains(&"HELLO world"), "{server:?}");
    assert!(
        !server
            .iter()
            .any(|m| m.contains("secret") || m.contains("ping")),
        "{server:?}"
    );
    // The delay added, as the client measured it: within 10% of the 300 ms set.
    let median = |key: &str| {
        let mut values: Vec<f64> = seen[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let added = median("slow_s") - median("fast_s");
    assert!((0.27..=0.33).contains(&added), "added {added} s, {seen}");
    sigterm(&child.0);
    let _ = child.0.wait();

    // Every firing is in the capture, decided by its rule.
    let store = wstap_store::Capture::open(&capture).unwrap();
    let sessions = store
        .session_ids(&wstap_filter::Filter::default(), None)
        .unwrap();
    let mut decided = Vec::new();
    for session in sessions {
        for done in store.interventions(session).unwrap() {
            if done.by == wstap_trace::Decider::Rule {
                decided.push(done.action.name());
            }
        }
    }
    for action in [
        "edited",
        "dropped",
        "forwarded",
        "injected",
        "closed",
        "aborted",
        "tagged",
    ] {
        assert!(decided.contains(&action), "{action} by a rule: {decided:?}");
    }
    // The tag selects exactly the messages the rule tagged, in the capture's SQL and in
    // an export's own pass alike.
    let tagged = wstap_store::Capture::open(&capture)
        .unwrap()
        .session_ids(&wstap_filter::Filter::parse("tag:slow").unwrap(), None)
        .unwrap();
    assert_eq!(
        tagged.len(),
        1,
        "one session has tagged messages: {tagged:?}"
    );
    let out = support::binary::wstap(&[
        "export",
        capture.to_str().unwrap(),
        "--format",
        "ndjson",
        "--filter",
        "tag:slow",
    ]);
    assert!(out.status.success(), "{out:?}");
    let texts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["type"] == "message")
        .map(|event| event["payload"]["data"].as_str().unwrap_or("?").to_owned())
        .collect();
    assert_eq!(texts, ["slow one"; 3], "the tagged messages, and only they");
    let _ = std::fs::remove_dir_all(&capture);
    let _ = std::fs::remove_file(&rules);
}

#[test]
fn a_rules_file_with_a_mistake_stops_wstap_with_its_line_and_column() {
    let rules = write_rules(
        "bad-rules.toml",
        "[[rule]]\nfilter = 'op:text'\ndorp = true\n",
    );
    let out = wstap_command()
        .args([
            "--no-capture",
            "--listen",
            &free_loopback_addr().to_string(),
        ])
        .args(["--rules", rules.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:1: unknown field `dorp`", rules.display())),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let _ = std::fs::remove_file(&rules);
}

/// A wstap with `--rules`, its console lines collected.
fn proxy_with_rules(rules: &Path) -> (KillOnDrop, std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let addr = free_loopback_addr();
    let mut child = wstap_command()
        .args(["--no-capture", "--no-web", "--listen", &addr.to_string()])
        .args(["--rules", rules.to_str().unwrap()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let child = KillOnDrop(child);
    let lines = collect_lines(stderr);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "wstap did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, addr, lines)
}

/// Waits for a console line containing `text`.
fn wait_for_line(lines: &Mutex<Vec<String>>, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lines.lock().unwrap().iter().any(|l| l.contains(text)) {
        assert!(
            Instant::now() < deadline,
            "no line with {text:?}: {:?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn hangup(child: &KillOnDrop) {
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.0.id() as libc::pid_t, libc::SIGHUP);
    }
}

/// What the echo server answers to `text` through the proxy, on a new session.
async fn answer(proxy: std::net::SocketAddr, server: std::net::SocketAddr, text: &str) -> String {
    let mut ws = ws_client(proxy, server).await;
    ws.send(Message::text(text)).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("an answer")
        .unwrap()
        .unwrap();
    answer.into_text().unwrap().to_string()
}

#[tokio::test]
async fn sighup_reads_the_rules_again_and_a_bad_file_leaves_them_in_force() {
    let (server, _) = echo_server().await;
    let rules = write_rules(
        "hup-rules.toml",
        "[[rule]]\nfilter = 'dir:c2s'\nreplace = [{ regex = 'a', with = 'A' }]\n",
    );
    let (child, proxy, lines) = proxy_with_rules(&rules);
    assert_eq!(answer(proxy, server, "banana").await, "bAnAnA");

    std::fs::write(
        &rules,
        "[[rule]]\nfilter = 'dir:c2s'\nreplace = [{ regex = '(' }]\n",
    )
    .unwrap();
    hangup(&child);
    wait_for_line(&lines, "rules not read again, the old ones stay");
    assert!(
        lines.lock().unwrap().iter().any(|l| l.contains(":3:")),
        "the mistake's line: {:?}",
        lines.lock().unwrap()
    );
    assert_eq!(answer(proxy, server, "banana").await, "bAnAnA");

    std::fs::write(
        &rules,
        "[[rule]]\nfilter = 'dir:c2s'\nreplace = [{ regex = 'n', with = 'N' }]\n",
    )
    .unwrap();
    hangup(&child);
    wait_for_line(&lines, "1 in force");
    assert_eq!(answer(proxy, server, "banana").await, "baNaNa");
    drop(child);
    let _ = std::fs::remove_file(&rules);
}

#[tokio::test]
async fn rules_are_added_listed_and_removed_through_the_api() {
    let (server, _) = echo_server().await;
    // The inspector shows a capture: record one, in the test's own folder.
    let capture = temp_path("api-rules.capture");
    let command = {
        let mut c = wstap_command();
        c.args(["--no-tls-intercept", "--capture", capture.to_str().unwrap()]);
        c
    };
    let run = spawn_with_inspector(command);
    let rules = r#"
[[rule]]
name = "upper"
filter = 'dir:c2s'
replace = [{ regex = "x", with = "X" }]
"#;
    let added = send_json(
        run.web,
        &run.token,
        "POST",
        "/api/rules",
        &serde_json::json!({ "rules": rules }),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.text());
    let ids = added.json()["ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 1);
    assert_eq!(answer(run.proxy, server, "xyx").await, "XyX");
    let listed = get(run.web, &run.token, "/api/rules").await.json();
    assert_eq!(listed["rules"][0]["name"], "upper", "{listed}");
    assert_eq!(listed["rules"][0]["hits"], 1, "{listed}");

    // A mistake: 400, naming the field and where in the text.
    let bad = send_json(
        run.web,
        &run.token,
        "POST",
        "/api/rules",
        &serde_json::json!({ "rules": "[[rule]]\nfilter = 'op:text'\ndorp = true" }),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(
        bad.text().contains("3:1: unknown field `dorp`"),
        "{}",
        bad.text()
    );

    // Nothing to read again: wstap was started without --rules.
    let reload = send_json(
        run.web,
        &run.token,
        "POST",
        "/api/rules/reload",
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(reload.status, 409, "{}", reload.text());
    assert!(
        reload.text().contains("without --rules"),
        "{}",
        reload.text()
    );

    let id = ids[0].as_u64().unwrap();
    let path = format!("/api/rules/{id}");
    let nothing = serde_json::json!({});
    let delete = || send_json(run.web, &run.token, "DELETE", &path, &nothing);
    let removed = delete().await;
    assert_eq!(removed.status, 200, "{}", removed.text());
    assert_eq!(answer(run.proxy, server, "xyx").await, "xyx");
    let again = delete().await;
    assert_eq!(again.status, 404, "{}", again.text());
    drop(run);
    let _ = std::fs::remove_dir_all(&capture);
}

/// How many `tick` messages `ws` gets within `span`.
async fn ticks_within(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    span: Duration,
) -> usize {
    let deadline = tokio::time::Instant::now() + span;
    let mut ticks = 0;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if message.to_text().is_ok_and(|t| t == "tick") {
            ticks += 1;
        }
    }
    ticks
}

#[tokio::test]
async fn a_timer_sends_on_the_sessions_it_selects_until_it_is_gone() {
    let (server, _) = echo_server().await;
    let rules = write_rules(
        "timer-rules.toml",
        "[[timer]]\nname = \"ticker\"\nfilter = 'path:/ticks'\nevery = 100\ninject = { to = 'client', text = 'tick' }\n",
    );
    let capture = temp_path("timer.capture");
    let mut child = wstap_command()
        .args([
            "--no-web",
            "--grace",
            "1",
            "--capture",
            capture.to_str().unwrap(),
        ])
        .args(["--rules", rules.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lines = collect_lines(child.stderr.take().unwrap());
    let child = KillOnDrop(child);
    wait_for_line(&lines, "proxy listening on http://");
    let proxy: std::net::SocketAddr = lines
        .lock()
        .unwrap()
        .iter()
        .find_map(|l| l.strip_prefix("wstap: proxy listening on http://"))
        .unwrap()
        .parse()
        .unwrap();
    let open = |path: &'static str| async move {
        let stream = tunnel(proxy, server).await;
        tokio_tungstenite::client_async(format!("ws://{server}{path}"), stream)
            .await
            .unwrap()
            .0
    };
    let (mut ticked, mut other) = (open("/ticks").await, open("/other").await);
    let ticks = ticks_within(&mut ticked, Duration::from_millis(650)).await;
    assert!(
        (4..=7).contains(&ticks),
        "{ticks} ticks in 650 ms at one per 100 ms"
    );
    assert_eq!(
        ticks_within(&mut other, Duration::from_millis(250)).await,
        0
    );

    // Read again without the timer: it stops.
    std::fs::write(&rules, "").unwrap();
    hangup(&child);
    wait_for_line(&lines, "0 in force");
    let _ = ticks_within(&mut ticked, Duration::from_millis(150)).await;
    assert_eq!(
        ticks_within(&mut ticked, Duration::from_millis(400)).await,
        0
    );
    drop((ticked, other));
    sigterm(&child.0);
    let mut child = child;
    let _ = child.0.wait();

    // Each tick is in the capture: injected by a rule, a message of wstap's own.
    let store = wstap_store::Capture::open(&capture).unwrap();
    let injected: usize = store
        .session_ids(&wstap_filter::Filter::parse("path:/ticks").unwrap(), None)
        .unwrap()
        .into_iter()
        .map(|session| {
            store
                .interventions(session)
                .unwrap()
                .into_iter()
                .filter(|i| i.by == wstap_trace::Decider::Rule && i.action.name() == "injected")
                .count()
        })
        .sum();
    assert!(injected >= ticks, "{injected} recorded, {ticks} seen");
    let _ = std::fs::remove_dir_all(&capture);
    let _ = std::fs::remove_file(&rules);
}
