//! The SOCKS5 listener (RFC 1928, RFC 1929) against real clients: a WebSocket over a
//! SOCKS5 tunnel decoded like a CONNECT tunnel's, curl's `--socks5-hostname` for http
//! and intercepted https, user/password authentication, and bad input (truncated,
//! wrong versions, unsupported commands and address types, oversized names, garbage):
//! each gets its reply or a clean close, and the proxy stays up.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use support::tls::{https_server, TestPki};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wstap_proxy::ProxyConfig;

async fn socks_proxy(auth: Option<&str>) -> Proxy {
    Proxy::start_with(ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        socks5: vec!["127.0.0.1:0".parse().unwrap()],
        proxy_auth: auth.map(str::to_owned),
        handshake_timeout: Duration::from_secs(2),
        ..ProxyConfig::default()
    })
    .await
}

/// Sends `bytes` and reads what comes back until the proxy closes (at most 5 s).
async fn exchange(proxy: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the proxy answers or closes, never hangs")
        .ok();
    answer
}

/// A CONNECT request for `target` (an IPv4 address).
fn connect_request(target: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(v4) = target else {
        panic!("IPv4 only")
    };
    let mut request = vec![5, 1, 0, 1];
    request.extend_from_slice(&v4.ip().octets());
    request.extend_from_slice(&v4.port().to_be_bytes());
    request
}

/// A tunnel to `target` through the SOCKS5 listener, without authentication.
async fn socks_tunnel(proxy: SocketAddr, target: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.write_all(&[5, 1, 0]).await.unwrap();
    let mut method = [0u8; 2];
    stream.read_exact(&mut method).await.unwrap();
    assert_eq!(method, [5, 0]);
    stream.write_all(&connect_request(target)).await.unwrap();
    let mut reply = [0u8; 10];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[..2], [5, 0], "succeeded");
    stream
}

#[tokio::test]
async fn a_websocket_in_a_socks5_tunnel_is_decoded_like_a_connect_tunnels() {
    let (echo, _) = echo_server().await;
    let proxy = socks_proxy(None).await;
    let stream = socks_tunnel(proxy.socks_addr(), echo).await;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{echo}/via-socks"), stream)
        .await
        .unwrap();
    ws.send(Message::text("socks hello")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text("socks hello")
    );
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);
    let trace = proxy.stop(Duration::from_secs(2)).await;
    let start = of_type(&trace, "session_start")[0];
    assert_eq!(start["via"], "socks5");
    assert_eq!(start["target"], echo.to_string());
    let handshake = of_type(&trace, "handshake")[0];
    assert_eq!(handshake["url"], format!("ws://{echo}/via-socks"));
    let frame = of_type(&trace, "frame")
        .into_iter()
        .find(|f| f["dir"] == "c2s" && f["opcode"] == 1)
        .unwrap();
    assert_eq!(frame["payload"]["data"], "socks hello");
}

#[tokio::test]
async fn user_and_password_are_required_when_proxy_auth_is_set() {
    let (echo, _) = echo_server().await;
    let proxy = socks_proxy(Some("alice:s3cret")).await;
    let socks = proxy.socks_addr();
    // No acceptable method: 0xFF, then the proxy closes.
    assert_eq!(exchange(socks, &[5, 1, 0]).await, [5, 0xFF]);
    // The wrong password: status 1, then closed.
    let mut wrong = vec![5, 1, 2, 1, 5];
    wrong.extend_from_slice(b"alice");
    wrong.push(5);
    wrong.extend_from_slice(b"wrong");
    assert_eq!(exchange(socks, &wrong).await, [5, 2, 1, 1]);
    // The right one: a tunnel.
    let mut stream = TcpStream::connect(socks).await.unwrap();
    let mut right = vec![5, 1, 2, 1, 5];
    right.extend_from_slice(b"alice");
    right.push(6);
    right.extend_from_slice(b"s3cret");
    right.extend_from_slice(&connect_request(echo));
    stream.write_all(&right).await.unwrap();
    let mut answer = [0u8; 14];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer[..4], [5, 2, 1, 0], "user/password, accepted");
    assert_eq!(answer[4..6], [5, 0], "connected");
    let trace = proxy.stop(Duration::from_secs(1)).await;
    let errors: Vec<&serde_json::Value> = of_type(&trace, "session_end")
        .into_iter()
        .filter(|e| e["outcome"] == "error")
        .collect();
    assert!(
        errors.iter().any(|e| e["error"]
            .as_str()
            .unwrap_or("")
            .contains("wrong SOCKS5 user or password")),
        "{errors:?}"
    );
}

#[tokio::test]
async fn bad_input_gets_its_reply_or_a_clean_close_and_the_proxy_stays_up() {
    let (echo, _) = echo_server().await;
    let proxy = socks_proxy(None).await;
    let socks = proxy.socks_addr();
    let mut bind = vec![5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80];
    let mut udp = bind.clone();
    udp[4] = 3;
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("an empty connection", vec![], vec![]),
        ("a truncated greeting", vec![5], vec![]),
        ("SOCKS4", vec![4, 1, 0, 80, 127, 0, 0, 1, 0], vec![]),
        (
            "HTTP on the SOCKS port",
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            vec![],
        ),
        ("no methods", vec![5, 0], vec![]),
        (
            "BIND",
            std::mem::take(&mut bind),
            vec![5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0],
        ),
        (
            "UDP ASSOCIATE",
            udp,
            vec![5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0],
        ),
        (
            "address type 9",
            vec![5, 1, 0, 5, 1, 0, 9, 1, 2],
            vec![5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0],
        ),
        (
            "a domain longer than sent",
            vec![5, 1, 0, 5, 1, 0, 3, 255, b'a', b'b'],
            vec![5, 0],
        ),
        (
            "garbage after the greeting",
            [&[5u8, 1, 0][..], b"garbage!"].concat(),
            vec![5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0],
        ),
        (
            "port 0",
            vec![5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 0],
            vec![5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0],
        ),
    ];
    for (what, sent, expected) in cases {
        assert_eq!(exchange(socks, &sent).await, expected, "{what}");
    }
    // A target that refuses: "connection refused".
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = gone.local_addr().unwrap();
    drop(gone);
    let refused = exchange(socks, &[&[5u8, 1, 0][..], &connect_request(down)].concat()).await;
    assert_eq!(refused[..4], [5, 0, 5, 5], "{refused:?}");
    // A tunnel to the SOCKS listener itself is a loop.
    let looped = exchange(socks, &[&[5u8, 1, 0][..], &connect_request(socks)].concat()).await;
    assert_eq!(looped[..4], [5, 0, 5, 5], "{looped:?}");
    // Still up.
    let mut ws =
        tokio_tungstenite::client_async(format!("ws://{echo}/"), socks_tunnel(socks, echo).await)
            .await
            .unwrap()
            .0;
    ws.send(Message::text("still up")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("still up"));
}

#[tokio::test]
#[ignore = "needs curl; .ci/run installs it and runs ignored tests"]
async fn curl_socks5_hostname_gets_http_and_intercepted_https() {
    let pki = TestPki::new();
    let server = https_server(&pki).await;
    let mut tls = pki.intercepting();
    tls.ignore_hosts.clear();
    let proxy = Proxy::start_with(ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        socks5: vec!["127.0.0.1:0".parse().unwrap()],
        tls: Some(tls),
        ..ProxyConfig::default()
    })
    .await;
    let socks = proxy.socks_addr().to_string();
    let https = tokio::process::Command::new("curl")
        .args(["-s", "--socks5-hostname", &socks, "--cacert"])
        .arg(proxy.ca_pem())
        .arg(format!("https://localhost:{}/over-socks", server.port()))
        .output()
        .await
        .expect("curl runs");
    assert!(
        https.status.success(),
        "{}",
        String::from_utf8_lossy(&https.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&https.stdout),
        "secure hello at /over-socks"
    );

    let (plain, seen, _) = raw_server(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain".into(),
        Vec::new(),
    )
    .await;
    let http = tokio::process::Command::new("curl")
        .args(["-s", "--socks5-hostname", &socks])
        .arg(format!("http://{plain}/over-socks"))
        .output()
        .await
        .expect("curl runs");
    assert!(
        http.status.success(),
        "{}",
        String::from_utf8_lossy(&http.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&http.stdout), "plain");
    assert!(
        String::from_utf8_lossy(&seen.lock().unwrap().head).starts_with("GET /over-socks HTTP/1.1")
    );

    let trace = proxy.stop(Duration::from_secs(2)).await;
    let starts = of_type(&trace, "session_start");
    assert!(starts.iter().all(|s| s["via"] == "socks5"), "{starts:?}");
    assert!(
        starts
            .iter()
            .any(|s| s["tls"] == true && s["client_tls"]["sni"] == "localhost"),
        "the https session was intercepted: {starts:?}"
    );
    let http_events = of_type(&trace, "http");
    assert!(
        http_events
            .iter()
            .any(|h| h["url"] == format!("https://localhost:{}/over-socks", server.port())),
        "{http_events:?}"
    );
}
