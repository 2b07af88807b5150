//! The web inspector in a real browser: headless Chromium, driven over the DevTools
//! protocol by playwright-core (tests/peers/node/inspector.mjs), with real traffic from
//! Node's ws through the proxy. The script asserts what a person sees and does; it saves
//! a screenshot of each main view in target/inspector-shots/ (look at them).

mod support;

use std::path::PathBuf;
use support::binary::{
    follow_stderr, parse_inspector_url, sigterm, spawn_with_inspector, wstap_command,
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
    let capture = temp_path("inspector-browser");
    let mut command = wstap_command();
    command.args(["--no-intercept", "--capture"]).arg(&capture);
    let run = spawn_with_inspector(command);
    let url = format!("http://{}/?token={}", run.web, run.token);
    let args = serde_json::json!({
        "mode": "live", "url": url, "proxy": run.proxy.to_string(), "echo": echo.to_string(),
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
    ] {
        assert_shot(name);
    }
    sigterm(&run.child);
    let mut child = run.child;
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(capture);
}

#[tokio::test]
#[ignore = "needs chromium, node and `npm ci` in tests/peers/node; .ci/run installs them and runs ignored tests"]
async fn the_demo_serves_the_inspector_with_its_chat() {
    let mut child = wstap_command()
        .args(["demo", "--duration", "12"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (url, text) = follow_stderr(child.stderr.take().unwrap());
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
    assert!(child.wait().unwrap().success(), "{}", text.lock().unwrap());
}
