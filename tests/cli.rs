//! The real `wstap` binary: the demo runs and exits by itself, and `wstap export` turns its
//! trace into session JSON and HAR.

mod support;

use std::process::Command;
use support::{temp_path, Value};

fn wstap(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wstap"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("the wstap binary runs")
}

#[test]
fn demo_exits_by_itself_and_its_trace_exports_to_json_and_har() {
    let trace = temp_path("demo.ndjson");
    let trace_arg = trace.to_str().unwrap();
    let demo = wstap(&["demo", "--duration", "0.5", "--trace", trace_arg]);
    let stdout = String::from_utf8_lossy(&demo.stdout);
    assert!(
        demo.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&demo.stderr)
    );
    for line in [
        "\"Welcome Ronald.\"",
        "\"John joined.\"",
        "\"Adam says: Sorry, can't stay. Bye!\"",
        "TYPE: PING",
        "CLOSE: 4001 \"gone to lunch\"",
    ] {
        assert!(stdout.contains(line), "the log lacks {line}:\n{stdout}");
    }
    assert!(stdout.contains("masked using KEY: "), "{stdout}");

    let json = wstap(&["export", trace_arg, "--format", "json"]);
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    let sessions = doc["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "Ronald, John and Adam");
    for session in sessions {
        assert_eq!(session["handshake"]["accept_valid"], true);
        assert_eq!(session["end"]["outcome"], "closed");
        assert!(session["stats"]["frames"]["s2c"].as_u64().unwrap() > 0);
    }

    let one = wstap(&["export", trace_arg, "--session", "2"]);
    let doc: Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(doc["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(doc["sessions"][0]["session"], 2);

    let har_path = temp_path("demo.har");
    let har = wstap(&[
        "export",
        trace_arg,
        "--format",
        "har",
        "-o",
        har_path.to_str().unwrap(),
    ]);
    assert!(
        har.status.success(),
        "{}",
        String::from_utf8_lossy(&har.stderr)
    );
    let har: Value = serde_json::from_str(&std::fs::read_to_string(&har_path).unwrap()).unwrap();
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(entries.len(), 3);
    let ronald = entries
        .iter()
        .find(|e| {
            e["request"]["url"]
                .as_str()
                .unwrap()
                .ends_with("name=Ronald")
        })
        .unwrap();
    assert_eq!(ronald["_resourceType"], "websocket");
    assert_eq!(ronald["response"]["status"], 101);
    let messages = ronald["_webSocketMessages"].as_array().unwrap();
    assert_eq!(messages[0]["type"], "receive");
    assert_eq!(messages[0]["data"], "Welcome Ronald.");
    assert!(messages
        .iter()
        .any(|m| m["type"] == "send" && m["data"] == "Hi John!"));

    let missing = wstap(&["export", trace_arg, "--session", "99"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no session 99"));
    let _ = std::fs::remove_file(trace);
    let _ = std::fs::remove_file(har_path);
}

#[test]
fn export_of_a_file_that_is_not_a_trace_fails_clearly() {
    let path = temp_path("not-a-trace.txt");
    std::fs::write(&path, "hello\n").unwrap();
    let out = wstap(&["export", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a wstap trace"));
    let _ = std::fs::remove_file(path);
}

#[test]
fn an_unwritable_trace_path_is_a_clear_error_at_start() {
    let out = wstap(&[
        "--listen",
        "127.0.0.1:0",
        "--trace",
        "/nonexistent-dir/trace.ndjson",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot write the trace file /nonexistent-dir/trace.ndjson"),
        "{stderr}"
    );
}
