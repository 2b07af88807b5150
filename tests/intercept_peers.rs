//! Interception judged by other WebSocket implementations' own decoders: Python's
//! `websockets` and Node's `ws`, each on both ends, permessage-deflate with context
//! takeover both ways, and wstap dropping one compressed message and editing another in
//! each direction. Every later message must still inflate at the receiver (the peers
//! fail the connection otherwise), and each end must receive exactly what was decided.
//!
//! Needs python3 with websockets, and node with `npm ci` in tests/peers/node; `.ci/run`
//! installs them and runs ignored tests.

mod support;

use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use wstap_control::{Control, HeldAction, Settings};
use wstap_filter::Filter;
use wstap_proxy::ProxyConfig;
use wstap_trace::Decider;

/// Decides every held message as it appears: "drop-me" is dropped, "edit-me" edited.
async fn decide_until(control: Control, done: Arc<AtomicBool>) -> Vec<String> {
    let mut decided = Vec::new();
    while !done.load(Ordering::Acquire) {
        for held in control.held() {
            let text = String::from_utf8_lossy(&held.payload).into_owned();
            let action = if text.contains("drop-me") {
                HeldAction::Drop
            } else {
                HeldAction::Edit {
                    payload: text.replace("edit-me", "edited by wstap").into_bytes(),
                    as_bytes: false,
                }
            };
            let done = control.decide(held.id, action, Decider::Api).await;
            assert_eq!(done, Ok(()), "{text}");
            decided.push(format!("{} {}", held.dir.short(), &text[text.len() - 7..]));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    decided
}

/// What one end should receive of what the other sent.
fn as_decided(sent: &Value) -> Vec<String> {
    sent.as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|m| !m.contains("drop-me"))
        .map(|m| m.replace("edit-me", "edited by wstap"))
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
#[ignore = "needs python3 with websockets; .ci/run installs it and runs ignored tests"]
async fn python_websockets_with_context_takeover_take_drops_and_edits_both_ways() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/python_intercept.py"
    );
    drops_and_edits_both_ways("python3", script).await;
}

#[tokio::test]
#[ignore = "needs node and `npm ci` in tests/peers/node; .ci/run does both and runs ignored tests"]
async fn node_ws_with_context_takeover_takes_drops_and_edits_both_ways() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/node/ws_intercept.mjs"
    );
    drops_and_edits_both_ways("node", script).await;
}

/// Runs `program script PROXY_URL` (see tests/peers) through a proxy whose breakpoint
/// holds "drop-me" and "edit-me", and checks what each end received.
async fn drops_and_edits_both_ways(program: &str, script: &str) {
    let control = Control::new(Settings::default());
    let filter = Filter::parse(r#"text~"drop-me" or text~"edit-me""#).unwrap();
    control.add_breakpoint(filter, false).await;
    let proxy = Proxy::start_with(ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        control: Some(control.clone()),
        ..ProxyConfig::default()
    })
    .await;
    let done = Arc::new(AtomicBool::new(false));
    let decider = tokio::spawn(decide_until(control.clone(), done.clone()));
    let run = tokio::process::Command::new(program)
        .arg(script)
        .arg(format!("http://{}", proxy.addr))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the peers finish within a minute")
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    done.store(true, Ordering::Release);
    let decided = decider.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the peers failed (a message that did not inflate?):\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let extensions = report["extensions"].to_string();
    assert!(extensions.contains("permessage-deflate"), "{extensions}");
    assert!(!extensions.contains("no_context_takeover"), "{extensions}");
    assert_eq!(decided.len(), 4, "{decided:?}");
    assert_eq!(
        strings(&report["server_received"]),
        as_decided(&report["client_sent"])
    );
    assert_eq!(
        strings(&report["client_received"]),
        as_decided(&report["server_sent"])
    );

    let trace = proxy.stop(Duration::from_secs(5)).await;
    let reencoded: Vec<&str> = of_type(&trace, "intervention")
        .into_iter()
        .filter(|i| i["action"] == "reencoded")
        .map(|i| i["dir"].as_str().unwrap())
        .collect();
    let mut directions = reencoded.clone();
    directions.sort_unstable();
    assert_eq!(directions, ["c2s", "s2c"], "once each way");
    // Each message compressed again is recorded with the frames wstap wrote for it.
    let recompressed = of_type(&trace, "intervention")
        .into_iter()
        .filter(|i| i["action"] == "recompressed")
        .filter(|i| i["wire"]["data"].as_str().is_some_and(|w| !w.is_empty()))
        .count();
    assert!(
        recompressed >= 2,
        "{recompressed} messages compressed again"
    );
}
