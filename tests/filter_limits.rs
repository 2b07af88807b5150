//! Filters that are too deep, too long or name a field that does not exist, through the
//! real binary: the inspector's API answers 400 with a caret and keeps serving (and the
//! proxy keeps relaying); the commands over a capture and the live console fail with a
//! one-line error and exit 2. None of them may abort the process.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::process::Output;
use support::binary::{sigterm, spawn_with_inspector, wstap, wstap_command};
use support::web::{encode, get};
use support::*;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The filters a user or an attacker with the token might send, each with what its error
/// says and the column its caret starts at; `negations` in a row in one of them (a URL
/// holds fewer than a command line: past 64 KiB the inspector answers 414).
fn bad_filters(negations: usize) -> Vec<(&'static str, String, &'static str, usize)> {
    let terms: Vec<String> = (0..3_000).map(|i| format!("w{i}")).collect();
    let first_too_many = terms[..1_000].join(" or ").len() + " or ".len();
    vec![
        (
            "5,000 parentheses",
            format!("{}x{}", "(".repeat(5_000), ")".repeat(5_000)),
            "nests too deeply",
            256,
        ),
        (
            "a long run of negations",
            format!("{}x", "!".repeat(negations)),
            "nests too deeply",
            256,
        ),
        (
            "3,000 terms",
            terms.join(" or "),
            "too long: at most 1000 terms",
            first_too_many,
        ),
        (
            "a mistyped field",
            "lenght > 1000".into(),
            "unknown field 'lenght'",
            0,
        ),
        (
            "a dotted unknown field",
            "op:text and sockeeio.event == \"chat\"".into(),
            "unknown field 'sockeeio.event'",
            12,
        ),
        (
            "a protocol's unknown field",
            "op:text and socketio.evnt == \"chat\"".into(),
            "socketio has no field \"evnt\"",
            12,
        ),
    ]
}

/// One echoed message through the proxy.
async fn echo_once(proxy: std::net::SocketAddr, server: std::net::SocketAddr, text: &str) {
    let mut ws = ws_client(proxy, server).await;
    ws.send(WsMessage::text(text.to_owned())).await.unwrap();
    let echo = ws.next().await.unwrap().unwrap();
    assert_eq!(echo, WsMessage::text(text.to_owned()));
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
}

#[tokio::test]
async fn the_inspector_answers_a_bad_filter_with_400_and_keeps_serving() {
    let (server, _) = echo_server().await;
    let capture = temp_path("filter-limits-api");
    let mut command = wstap_command();
    command.args(["--no-intercept", "--capture"]).arg(&capture);
    let mut run = spawn_with_inspector(command);
    let (web, token) = (run.web, run.token.clone());
    echo_once(run.proxy, server, "before").await;

    for (what, filter, message, column) in bad_filters(10_000) {
        for path in [
            format!("/api/sessions?filter={}", encode(&filter)),
            format!(
                "/api/sessions/1/rows?kind=frames&filter={}",
                encode(&filter)
            ),
        ] {
            let answer = get(web, &token, &path).await;
            assert_eq!(answer.status, 400, "{what}: {}", answer.text());
            let error = answer.json();
            let said = error["filter_error"]["message"]
                .as_str()
                .unwrap_or_default();
            assert!(said.contains(message), "{what}: {error}");
            assert_eq!(error["filter_error"]["column"], column, "{what}: {said}");
        }
        // Still serving, and still relaying.
        let sessions = get(web, &token, "/api/sessions").await;
        assert_eq!(sessions.status, 200, "{what}: the inspector went away");
        echo_once(run.proxy, server, what).await;
    }
    assert!(run.child.try_wait().unwrap().is_none(), "wstap is running");
    sigterm(&run.child);
    let status = run.child.wait().unwrap();
    assert!(status.success(), "{}", run.stderr.lock().unwrap());
    let _ = std::fs::remove_dir_all(&capture);
}

/// Asserts a command failed as a bad filter should: exit 2, the reason and a caret on
/// stderr, no crash.
fn assert_refused(output: &Output, what: &str, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{what}: {stderr}");
    assert!(stderr.contains(message), "{what}: {stderr}");
    assert!(stderr.contains('^'), "{what}: a caret: {stderr}");
    assert!(!stderr.contains("overflow"), "{what}: {stderr}");
}

#[tokio::test]
async fn commands_over_a_capture_and_the_live_console_refuse_a_bad_filter_with_exit_2() {
    // A capture with one session to read.
    let (server, _) = echo_server().await;
    let capture = temp_path("filter-limits-cli");
    let mut command = wstap_command();
    command.args(["--no-intercept", "--capture"]).arg(&capture);
    let mut run = spawn_with_inspector(command);
    echo_once(run.proxy, server, "recorded").await;
    sigterm(&run.child);
    assert!(run.child.wait().unwrap().success());
    let path = capture.to_str().unwrap();

    let out = temp_path("filter-limits-export.json");
    for (what, filter, message, _) in bad_filters(50_000) {
        assert_refused(
            &wstap(&["sessions", path, "--filter", &filter]),
            what,
            message,
        );
        assert_refused(
            &wstap(&["frames", path, "--session", "1", "--filter", &filter]),
            what,
            message,
        );
        assert_refused(
            &wstap(&[
                "export",
                path,
                "--filter",
                &filter,
                "-o",
                out.to_str().unwrap(),
            ]),
            what,
            message,
        );
        // The live console checks its filter before it listens.
        assert_refused(
            &wstap(&["--listen", "127.0.0.1:0", "--no-web", "--filter", &filter]),
            what,
            message,
        );
    }
    // A good filter still reads the capture.
    let good = wstap(&["sessions", path, "--filter", "len > 3 and op:text"]);
    assert!(good.status.success(), "{good:?}");
    assert!(String::from_utf8_lossy(&good.stdout).contains(&server.to_string()));
    let _ = std::fs::remove_dir_all(&capture);
}
