//! Chaining to a parent proxy (`--upstream-proxy`) through the real binary, with a second
//! wstap as the parent: tunnels and absolute-form requests go through it with Basic
//! credentials; a parent that refuses (407) or is down gives the client a 502 that says
//! so; the bypass list goes direct.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use support::binary::{spawn_listening, wstap_command, KillOnDrop};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// A wstap started with `args`, and its proxy address.
fn wstap_with(args: &[&str]) -> (KillOnDrop, SocketAddr) {
    let mut command = wstap_command();
    command
        .args(["--no-intercept", "--no-web", "--no-capture", "-q"])
        .args(args);
    let (child, addr) = spawn_listening(command);
    (KillOnDrop(child), addr)
}

/// A wstap started with `args`, recording to a capture of its own: it, its proxy address
/// and the capture's folder.
fn wstap_recording(args: &[&str]) -> (KillOnDrop, SocketAddr, std::path::PathBuf) {
    let capture = temp_path("child-capture");
    let mut command = wstap_command();
    command
        .args(["--no-intercept", "--no-web", "-q", "--capture"])
        .arg(&capture)
        .args(args);
    let (child, addr) = spawn_listening(command);
    (KillOnDrop(child), addr, capture)
}

/// Stops `child` and lists its capture's sessions as JSON.
fn sessions_of(mut child: KillOnDrop, capture: &std::path::Path) -> Vec<serde_json::Value> {
    support::binary::sigterm(&child.0);
    assert!(child.0.wait().unwrap().success());
    let listed = support::binary::wstap(&["sessions", capture.to_str().unwrap(), "--json"]);
    String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The first line and the body of a proxy's answer on `stream`.
async fn answer(stream: &mut tokio::net::TcpStream) -> (String, String) {
    let head = String::from_utf8_lossy(&read_head(stream).await).into_owned();
    let body = String::from_utf8_lossy(&read_to_end(stream).await).into_owned();
    (head.lines().next().unwrap_or("").to_owned(), body)
}

#[tokio::test]
async fn tunnels_and_absolute_requests_go_through_the_parent_with_credentials() {
    let (echo, _) = echo_server().await;
    // The parent records what it relays: the proof that the child went through it.
    let recorded = temp_path("parent-capture");
    let mut command = wstap_command();
    command
        .args([
            "--no-intercept",
            "--no-web",
            "-q",
            "--proxy-auth",
            "alice:s3cret",
            "--capture",
        ])
        .arg(&recorded);
    let (parent_child, parent) = spawn_listening(command);
    let mut parent_process = KillOnDrop(parent_child);
    let url = format!("http://alice:s3cret@{parent}");
    let (child_process, child, child_capture) = wstap_recording(&["--upstream-proxy", &url]);

    // A WebSocket in a CONNECT tunnel.
    let mut ws = ws_client(child, echo).await;
    ws.send(Message::text("through two proxies")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("through two proxies")
    );
    drop(ws);

    // An absolute-form request: the child reaches the server through the parent too.
    let (server, seen, _) = raw_server(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".into(),
        Vec::new(),
    )
    .await;
    let mut http = tokio::net::TcpStream::connect(child).await.unwrap();
    let request =
        format!("GET http://{server}/x HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
    http.write_all(request.as_bytes()).await.unwrap();
    let (status, body) = answer(&mut http).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body, "ok");
    let head = String::from_utf8_lossy(&seen.lock().unwrap().head).into_owned();
    assert!(head.starts_with("GET /x HTTP/1.1\r\n"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("proxy-authorization"),
        "the parent's credentials never reach the server: {head}"
    );

    support::binary::sigterm(&parent_process.0);
    assert!(parent_process.0.wait().unwrap().success());
    let listed = support::binary::wstap(&["sessions", recorded.to_str().unwrap(), "--json"]);
    let targets: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|s| s["target"].as_str().map(str::to_owned))
        .collect();
    for through in [echo, server] {
        assert!(
            targets.contains(&through.to_string()),
            "the parent relayed {through}: {targets:?}"
        );
    }
    let _ = std::fs::remove_dir_all(recorded);

    // The child's records say how each upstream connection was made: the parent, its
    // answer, how long it took; and where the client came in.
    let sessions = sessions_of(child_process, &child_capture);
    for (through, via) in [(echo, "connect"), (server, "absolute")] {
        let session = sessions
            .iter()
            .find(|s| s["target"] == through.to_string())
            .unwrap_or_else(|| panic!("a session to {through}: {sessions:?}"));
        assert_eq!(session["via"], via, "{session}");
        assert_eq!(session["listener"], child.to_string(), "{session}");
        let hop = &session["upstream_proxy"];
        assert_eq!(hop["proxy"], parent.to_string(), "{session}");
        assert_eq!(hop["status_line"], "HTTP/1.1 200 Connection Established");
        assert!(hop["connect_us"].as_u64().unwrap() > 0, "{session}");
    }
    let _ = std::fs::remove_dir_all(child_capture);
}

#[tokio::test]
async fn a_parent_that_refuses_or_is_down_gets_the_client_a_502_that_says_so() {
    let (echo, _) = echo_server().await;
    let (_parent, parent) = wstap_with(&["--proxy-auth", "alice:s3cret"]);

    let wrong = format!("http://alice:wrong@{parent}");
    let (child_process, child, capture) = wstap_recording(&["--upstream-proxy", &wrong]);
    let (mut stream, head) = connect_raw(child, &echo.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    let body = String::from_utf8_lossy(&read_to_end(&mut stream).await).into_owned();
    assert!(
        body.contains("407"),
        "the parent's status line is quoted: {body}"
    );
    let refused = sessions_of(child_process, &capture)
        .into_iter()
        .find(|s| s["target"] == echo.to_string())
        .expect("the refused tunnel's session");
    assert_eq!(refused["state"], "error", "{refused}");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("407 Proxy Authentication Required"),
        "{refused}"
    );
    let _ = std::fs::remove_dir_all(capture);

    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = gone.local_addr().unwrap();
    drop(gone);
    let url = format!("http://{down}");
    let (_child, child) = wstap_with(&["--upstream-proxy", &url]);
    let (mut stream, head) = connect_raw(child, &echo.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    let body = String::from_utf8_lossy(&read_to_end(&mut stream).await).into_owned();
    assert!(
        body.contains(&format!("the upstream proxy {down} cannot be used")),
        "{body}"
    );

    // The bypass list goes direct, around the parent that is down.
    let (_child, child) = wstap_with(&[
        "--upstream-proxy",
        &url,
        "--no-upstream-proxy-for",
        "127.0.0.1",
    ]);
    let mut ws = ws_client(child, echo).await;
    ws.send(Message::text("direct")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("direct"));
}

#[test]
fn a_bad_upstream_proxy_url_is_a_one_line_error() {
    let out = wstap_command()
        .args([
            "--no-web",
            "--no-capture",
            "--upstream-proxy",
            "https://p:1",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("must be an http:// URL"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
