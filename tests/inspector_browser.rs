//! The web inspector in a real browser: headless Chromium, driven over the DevTools
//! protocol by playwright-core (tests/peers/node/inspector.mjs), with real traffic from
//! Node's ws through the proxy. The script asserts what a person sees and does; it saves
//! a screenshot of each main view in target/inspector-shots/ (look at them).

mod support;

use std::path::PathBuf;
use support::binary::{
    follow_stderr, parse_inspector_url, sigterm, spawn_with_inspector, wstap_command, KillOnDrop,
};
use support::*;

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/inspector-shots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn drive(args: serde_json::Value) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/node/inspector.mjs");
    let out = std::process::Command::new("node")
        .arg(script)
        .arg(args.to_string())
        .output()
        .expect("node runs (Debian: nodejs; npm ci in tests/peers/node)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser script failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
}

fn assert_shot(name: &str) {
    let path = shots().join(format!("{name}.png"));
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "{} is missing or blank ({size} bytes)",
        path.display()
    );
}

#[tokio::test]
#[ignore = "needs chromium, node and `npm ci` in tests/peers/node; .ci/run installs them and runs ignored tests"]
async fn chromium_shows_live_traffic_and_runs_nothing_a_peer_sent() {
    let (echo, _) = echo_server().await;
    // And a wss echo, intercepted, for the TLS legs and the server's certificate.
    let pki = support::tls::TestPki::new();
    let tls_echo = support::tls::tls_echo_server(&pki).await;
    let capture = temp_path("inspector-browser");
    let ca_dir = temp_path("inspector-browser-ca");
    let mut command = wstap_command();
    command
        .arg("--capture")
        .arg(&capture)
        .arg("--ca-dir")
        .arg(&ca_dir)
        .arg("--upstream-ca")
        .arg(&pki.ca_pem_path);
    let mut run = spawn_with_inspector(command);
    let url = format!("http://{}/?token={}", run.web, run.token);
    let args = serde_json::json!({
        "mode": "live", "url": url, "proxy": run.proxy.to_string(), "echo": echo.to_string(),
        "tls_echo": format!("localhost:{}", tls_echo.port()),
        "wstap_ca": ca_dir.join("wstap-ca.pem"),
        "shots": shots(),
    });
    tokio::task::spawn_blocking(move || drive(args))
        .await
        .unwrap();
    for name in [
        "1-sessions",
        "2-message-hex",
        "3-message-json",
        "4-filter-error",
        "5-handshake",
        "6-dark",
        "8-tls-handshake",
    ] {
        assert_shot(name);
    }
    sigterm(&run.child);
    assert!(run.child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(capture);
}

#[tokio::test]
#[ignore = "needs chromium, node and `npm ci` in tests/peers/node; .ci/run installs them and runs ignored tests"]
async fn the_demo_serves_the_inspector_with_its_chat() {
    let mut child = KillOnDrop(
        wstap_command()
            .args(["demo", "--duration", "12"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (url, text) = follow_stderr(child.0.stderr.take().unwrap());
    let url = url.unwrap_or_else(|| {
        panic!(
            "the demo printed no inspector URL: {}",
            text.lock().unwrap()
        )
    });
    let (web, token) = parse_inspector_url(&url);
    let args = serde_json::json!({
        "mode": "demo", "url": format!("http://{web}/?token={token}"), "shots": shots(),
    });
    tokio::task::spawn_blocking(move || drive(args))
        .await
        .unwrap();
    assert_shot("demo");
    assert!(
        child.0.wait().unwrap().success(),
        "{}",
        text.lock().unwrap()
    );
}

/// A capture with one session of `messages` text messages, each one whole frame, made
/// from a real session's events (through the engine) repeated: quicker than relaying a
/// million messages, and what the inspector reads is the same.
async fn million_message_capture(dir: &std::path::Path, messages: u64) -> u64 {
    use wstap_trace::Event;
    let (server, _) = echo_server().await;
    let proxy = Proxy::start().await;
    {
        let mut ws = ws_client(proxy.addr, server).await;
        use futures_util::{SinkExt, StreamExt};
        ws.send(tokio_tungstenite::tungstenite::Message::text(
            "one of a million",
        ))
        .await
        .unwrap();
        ws.next().await.unwrap().unwrap();
    }
    let lines = proxy.stop(std::time::Duration::from_secs(1)).await;
    let events: Vec<Event> = lines
        .into_iter()
        .skip(1)
        .map(|line| serde_json::from_value(line).expect("a trace line is an event"))
        .collect();
    let session = events.iter().find_map(Event::session).expect("a session");
    let frame = events
        .iter()
        .find_map(|e| match e {
            Event::Frame(f) if f.opcode == 1 => Some(f.clone()),
            _ => None,
        })
        .expect("a text frame");
    let message = events
        .iter()
        .find_map(|e| match e {
            Event::Message(m) if m.opcode == 1 => Some(m.clone()),
            _ => None,
        })
        .expect("a text message");
    let (head, tail): (Vec<Event>, Vec<Event>) = events
        .into_iter()
        .filter(|e| e.session() == Some(session))
        .filter(|e| !matches!(e, Event::Frame(_) | Event::Message(_)))
        .partition(|e| !matches!(e, Event::SessionEnd(_)));
    let info = wstap_store::CaptureInfo {
        writer: "wstap test".into(),
        max_capture: 64 * 1024,
        max_bytes: None,
    };
    let mut writer = wstap_store::CaptureWriter::create(dir, &info).unwrap();
    writer.write_events(&head).unwrap();
    let mut batch = Vec::with_capacity(20_000);
    for n in 0..messages {
        let mut f = frame.clone();
        f.index = n;
        f.time += chrono::Duration::microseconds(n as i64 * 10);
        let mut m = message.clone();
        m.time = f.time;
        m.end_time = f.time;
        batch.push(Event::Frame(f));
        batch.push(Event::Message(m));
        if batch.len() == batch.capacity() {
            writer.write_events(&batch).unwrap();
            batch.clear();
        }
    }
    writer.write_events(&batch).unwrap();
    writer.write_events(&tail).unwrap();
    writer.finish().unwrap();
    session
}

#[tokio::test]
#[ignore = "needs chromium, node and `npm ci` in tests/peers/node; .ci/run installs them and runs ignored tests"]
async fn chromium_scrolls_a_million_messages_to_the_middle_and_the_end() {
    const MESSAGES: u64 = 1_000_000;
    let capture = temp_path("inspector-million");
    let session = million_message_capture(&capture, MESSAGES).await;
    let mut view = KillOnDrop(
        wstap_command()
            .arg("view")
            .arg(&capture)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (url, text) = follow_stderr(view.0.stderr.take().unwrap());
    let url = url.unwrap_or_else(|| panic!("no inspector URL: {}", text.lock().unwrap()));
    let args = serde_json::json!({
        "mode": "scale", "url": format!("{url}#session={session}"), "shots": shots(),
        "messages": MESSAGES,
    });
    tokio::task::spawn_blocking(move || drive(args))
        .await
        .unwrap();
    assert_shot("7-million");
    sigterm(&view.0);
    let _ = view.0.wait();
    let _ = std::fs::remove_dir_all(capture);
}

#[tokio::test]
#[ignore = "needs chromium, node and `npm ci` in tests/peers/node; .ci/run installs them and runs ignored tests"]
async fn chromium_sets_a_breakpoint_edits_a_held_message_injects_and_aborts() {
    let rules = temp_path("inspector-rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"shout\"\nfilter = 'dir:c2s text:\"rule me\"'\nreplace = [{ regex = 'rule', with = 'RULE' }]\n",
    )
    .unwrap();
    drive_against_echo(
        "intercept",
        &["--no-tls-intercept", "--rules", rules.to_str().unwrap()],
        &[
            "9-held",
            "10-composer",
            "11-interventions",
            "12-traffic-fates",
        ],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs chromium, node and `npm ci` in tests/peers/node; .ci/run installs them and runs ignored tests"]
async fn chromium_sets_network_conditions_on_a_live_session() {
    drive_against_echo(
        "conditions",
        &[
            "--no-tls-intercept",
            "--conditions",
            "path:/shaped=to:server, latency:40ms",
        ],
        &["14-conditions", "15-conditions-record", "16-rule-added"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs chromium, node and `npm ci` in tests/peers/node; .ci/run installs them and runs ignored tests"]
async fn chromium_replays_a_session_and_shows_the_comparison_side_by_side() {
    drive_against_echo("replay", &["--no-tls-intercept"], &["17-replay"]).await;
}

#[tokio::test]
#[ignore = "needs chromium, node and `npm ci` in tests/peers/node; .ci/run installs them and runs ignored tests"]
async fn chromium_shows_a_signalr_session_decoded_with_its_calls_latency_and_filters() {
    drive_against_echo(
        "views",
        &["--no-tls-intercept"],
        &["18-views", "19-views-detail"],
    )
    .await;
}

#[tokio::test]
#[ignore = "needs chromium, node and `npm ci` in tests/peers/node; .ci/run installs them and runs ignored tests"]
async fn chromium_shows_a_bounded_capture_dropping_its_oldest_payloads() {
    drive_against_echo(
        "bounded",
        &["--no-tls-intercept", "--capture-max", "2MiB"],
        &["13-bounded"],
    )
    .await;
}

/// Runs the browser script's `mode` against a wstap started with `flags` (and a capture of
/// its own), an echo server behind it, and checks the screenshots `shots_taken`.
async fn drive_against_echo(mode: &str, flags: &[&str], shots_taken: &[&str]) {
    let (echo, _) = echo_server().await;
    let capture = temp_path(&format!("inspector-{mode}"));
    let mut command = wstap_command();
    command.args(flags).arg("--capture").arg(&capture);
    let mut run = spawn_with_inspector(command);
    let url = format!("http://{}/?token={}", run.web, run.token);
    let args = serde_json::json!({
        "mode": mode, "url": url, "proxy": run.proxy.to_string(),
        "echo": echo.to_string(), "shots": shots(),
    });
    tokio::task::spawn_blocking(move || drive(args))
        .await
        .unwrap();
    for name in shots_taken {
        assert_shot(name);
    }
    sigterm(&run.child);
    assert!(run.child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(capture);
}
