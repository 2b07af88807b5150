//! The HTTP side of the proxy end to end: absolute-form requests, header fidelity,
//! answers that are not 101, failures answered with reasons, and curl as a real client
//! of a hyper upstream.

mod support;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio::net::{TcpListener, TcpStream};
use wstap_wire::FrameBuilder;

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A hyper HTTP/1.1 server answering every request with a fixed body.
async fn hyper_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let body = format!("hello from hyper at {}", req.uri().path());
                    Ok::<_, Infallible>(
                        hyper::Response::builder()
                            .header("X-Upstream", "hyper")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn absolute_form_websocket_reaches_the_server_in_origin_form_without_proxy_headers() {
    let (server, requests) = echo_server().await;
    let proxy = Proxy::start().await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    let extra = "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic dTpw\r\n";
    let handshake = client_handshake(
        &server.to_string(),
        &format!("ws://{server}/echo?room=1"),
        extra,
    );
    send(&mut client, handshake.as_bytes()).await;
    let response = String::from_utf8(read_head(&mut client).await).unwrap();
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    assert!(response.contains(ACCEPT));

    send(
        &mut client,
        &FrameBuilder::text().mask([1, 2, 3, 4]).encode(b"hi there"),
    )
    .await;
    assert_eq!(
        read_exact(&mut client, 10).await,
        FrameBuilder::text().encode(b"hi there")
    );
    send(
        &mut client,
        &FrameBuilder::close().mask([1, 2, 3, 4]).encode(b"\x03\xe8"),
    )
    .await;
    read_to_end(&mut client).await;
    drop(client);

    let (uri, headers) = requests.lock().unwrap()[0].clone();
    assert_eq!(uri, "/echo?room=1");
    assert!(
        headers.iter().all(|(n, _)| !n.starts_with("proxy-")),
        "{headers:?}"
    );

    let trace = proxy.stop(Duration::from_secs(5)).await;
    let start = of_type(&trace, "session_start")[0];
    assert_eq!(start["via"], "absolute");
    let event = of_type(&trace, "handshake")[0];
    // The session began when its connection was accepted: before its own handshake,
    // however late it was announced.
    let micros = |e: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(e["time"].as_str().unwrap())
            .unwrap()
            .timestamp_micros()
    };
    assert!(micros(start) <= micros(event), "{start} after {event}");
    assert_eq!(event["url"], format!("ws://{server}/echo?room=1"));
    assert_eq!(event["forwarded"]["target"], "/echo?room=1");
    assert_eq!(
        event["forwarded"]["removed_headers"],
        serde_json::json!(["Proxy-Connection", "Proxy-Authorization"])
    );
    assert_eq!(
        event["request"]["target"],
        format!("ws://{server}/echo?room=1"),
        "recorded as the client sent it"
    );
    assert_eq!(of_type(&trace, "session_end")[0]["outcome"], "closed");
}

/// A client that connects to the proxy port and closes without a word made no request:
/// neither absolute-form nor CONNECT, nor HTTP.
#[tokio::test]
async fn a_connection_that_sends_nothing_is_recorded_as_empty_on_the_proxy_port() {
    let proxy = Proxy::start().await;
    let client = TcpStream::connect(proxy.addr).await.unwrap();
    drop(client);
    let mut bad = TcpStream::connect(proxy.addr).await.unwrap();
    send(
        &mut bad,
        b"GET http://127.0.0.1:0/ HTTP/1.1\r\nHost: 127.0.0.1:0\r\n\r\n",
    )
    .await;
    let answer = String::from_utf8(read_to_end(&mut bad).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let trace = proxy.stop(Duration::from_secs(5)).await;
    let starts = of_type(&trace, "session_start");
    let ends = of_type(&trace, "session_end");
    assert_eq!((starts.len(), ends.len()), (2, 2));
    let of = |events: &[&serde_json::Value], id: u64| {
        events
            .iter()
            .find(|e| e["session"] == id)
            .copied()
            .cloned()
            .unwrap()
    };
    let (first, second) = (
        starts[0]["session"].as_u64().unwrap(),
        starts[1]["session"].as_u64().unwrap(),
    );
    let (empty, refused) = if of(&ends, first)["kind"] == "empty" {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(of(&starts, empty)["via"], "proxy");
    assert_eq!(of(&ends, empty)["kind"], "empty");
    assert_eq!(of(&ends, empty)["outcome"], "closed");
    // An absolute-form request, refused before it was routed, was still absolute-form.
    assert_eq!(of(&starts, refused)["via"], "absolute");
    assert_eq!(of(&ends, refused)["kind"], "http");
}

#[tokio::test]
async fn header_case_order_and_duplicates_reach_the_server_and_the_trace_unchanged() {
    let (server, seen, server_task) =
        raw_server(switching("X-Server-Header: Kept-As-Is\r\n"), Vec::new()).await;
    let proxy = Proxy::start().await;
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    let lines = format!(
        "host: {server}\r\nx-dup: a\r\nUpgrade: websocket\r\nX-Mixed-CASE:   v  \r\nConnection: Upgrade\r\nX-DUP: b\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nx-dup: c\r\n"
    );
    let request =
        format!("GET http://{server}/ HTTP/1.1\r\n{lines}Proxy-Connection: keep-alive\r\n\r\n");
    send(&mut client, request.as_bytes()).await;
    let response = read_head(&mut client).await;
    assert_eq!(
        response,
        switching("X-Server-Header: Kept-As-Is\r\n").as_bytes()
    );
    drop(client);
    server_task.await.unwrap();
    assert_eq!(
        String::from_utf8(seen.lock().unwrap().head.clone()).unwrap(),
        format!("GET / HTTP/1.1\r\n{lines}\r\n"),
        "only the target and the Proxy-* line changed"
    );

    let trace = proxy.stop(Duration::from_secs(5)).await;
    let event = of_type(&trace, "handshake")[0];
    let names: Vec<&str> = event["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "host",
            "x-dup",
            "Upgrade",
            "X-Mixed-CASE",
            "Connection",
            "X-DUP",
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Version",
            "x-dup",
            "Proxy-Connection"
        ]
    );
    assert_eq!(
        event["request"]["headers"][3][1], "v",
        "values are trimmed of optional whitespace, as HTTP defines"
    );
    assert_eq!(
        event["response"]["headers"][2],
        serde_json::json!(["Sec-WebSocket-Accept", ACCEPT])
    );
    assert_eq!(
        event["response"]["headers"][3],
        serde_json::json!(["X-Server-Header", "Kept-As-Is"])
    );
}

#[tokio::test]
async fn a_refused_upgrade_is_relayed_as_is_and_recorded() {
    let refusal =
        "HTTP/1.1 403 Forbidden\r\nX-Why: No Entry\r\nContent-Length: 5\r\n\r\nnope!".to_owned();
    let (server, _, _task) = raw_server(refusal.clone(), Vec::new()).await;
    let proxy = Proxy::start().await;
    let mut client = handshake_sent(proxy.addr, server, "").await;
    assert_eq!(
        read_exact(&mut client, refusal.len()).await,
        refusal.as_bytes()
    );
    drop(client);

    let trace = proxy.stop(Duration::from_secs(5)).await;
    let event = of_type(&trace, "handshake")[0];
    assert_eq!(event["response"]["status"], 403);
    assert_eq!(event["response"]["reason"], "Forbidden");
    assert_eq!(event["accept_valid"], false);
    assert!(event["issues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i.as_str().unwrap().contains("403")));
    assert!(of_type(&trace, "frame").is_empty());
}

#[tokio::test]
async fn an_unreachable_upstream_gets_a_502_that_says_why() {
    let dead = closed_port().await;
    let proxy = Proxy::start().await;

    let (mut via_connect, head) = connect_raw(proxy.addr, &dead.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 502 Bad Gateway"), "{head}");
    assert!(head.contains("X-Wstap-Error: cannot connect to"), "{head}");
    let body = String::from_utf8(read_to_end(&mut via_connect).await).unwrap();
    assert!(
        body.contains(&format!("cannot connect to {dead}")),
        "{body}"
    );

    let mut absolute = TcpStream::connect(proxy.addr).await.unwrap();
    send(
        &mut absolute,
        client_handshake(&dead.to_string(), &format!("ws://{dead}/"), "").as_bytes(),
    )
    .await;
    let answer = String::from_utf8(read_to_end(&mut absolute).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");

    let trace = proxy.stop(Duration::from_secs(5)).await;
    let answers = of_type(&trace, "http");
    assert_eq!(answers.len(), 2);
    for answer in answers {
        assert_eq!(answer["responder"], "proxy");
        assert_eq!(answer["response"]["status"], 502);
        assert!(answer["error"].as_str().unwrap().contains("cannot connect"));
    }
    assert!(of_type(&trace, "session_end")
        .iter()
        .any(|e| e["outcome"] == "error"));
}

#[tokio::test]
async fn bad_requests_get_4xx_with_reasons_and_the_proxy_keeps_serving() {
    let (server, _) = echo_server().await;
    let proxy = Proxy::start().await;
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"\x16\x03\x01garbage\r\n\r\n".to_vec(), "400", "malformed request"),
        (b"GET /origin-form HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "400", "absolute-form"),
        (b"CONNECT example.test HTTP/1.1\r\n\r\n".to_vec(), "400", "has no port"),
        (b"CONNECT http://example.test:80/ HTTP/1.1\r\n\r\n".to_vec(), "400", "not a URI"),
        (
            format!("POST http://{server}/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n").into_bytes(),
            "400",
            "both Content-Length and Transfer-Encoding",
        ),
        (format!("GET http://{server}/ HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(70_000)).into_bytes(), "431", "header section"),
        (format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000)).into_bytes(), "414", "request line"),
    ];
    for (request, status, reason) in cases {
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        send(&mut client, &request).await;
        let answer = String::from_utf8_lossy(&read_to_end(&mut client).await).into_owned();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{reason}: {answer}"
        );
        assert!(answer.contains(reason), "{reason}: {answer}");
    }
    // Still serving.
    let mut ws = ws_client(proxy.addr, server).await;
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text("still here"))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_text().unwrap(),
        "still here"
    );
    drop(ws);
    let trace = proxy.stop(Duration::from_secs(1)).await;
    assert_eq!(
        of_type(&trace, "http")
            .iter()
            .filter(|e| e["responder"] == "proxy")
            .count(),
        7
    );
}

async fn curl(args: &[&str]) -> String {
    let output = tokio::process::Command::new("curl")
        .args(args)
        .output()
        .await
        .expect("curl runs (CI installs it)");
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn curl_gets_plain_http_through_the_proxy_in_absolute_form_and_through_connect() {
    let upstream = hyper_server().await;
    let proxy = Proxy::start().await;
    let proxy_url = format!("http://{}", proxy.addr);

    let absolute = curl(&[
        "-s",
        "-i",
        "--proxy",
        &proxy_url,
        &format!("http://{upstream}/first"),
    ])
    .await;
    assert!(absolute.starts_with("HTTP/1.1 200"), "{absolute}");
    assert!(
        absolute.to_ascii_lowercase().contains("x-upstream: hyper"),
        "{absolute}"
    );
    assert!(
        absolute.ends_with("hello from hyper at /first"),
        "{absolute}"
    );

    // Two URLs on one connection: keep-alive through the proxy.
    let both = curl(&[
        "-s",
        "--proxy",
        &proxy_url,
        &format!("http://{upstream}/a"),
        &format!("http://{upstream}/b"),
    ])
    .await;
    assert_eq!(both, "hello from hyper at /ahello from hyper at /b");

    let tunnelled = curl(&[
        "-s",
        "-p",
        "--proxy",
        &proxy_url,
        &format!("http://{upstream}/tunnelled"),
    ])
    .await;
    assert_eq!(tunnelled, "hello from hyper at /tunnelled");

    let trace = proxy.stop(Duration::from_secs(5)).await;
    let exchanges = of_type(&trace, "http");
    assert_eq!(exchanges.len(), 4);
    let first = exchanges
        .iter()
        .find(|e| e["url"] == format!("http://{upstream}/first"))
        .unwrap();
    assert_eq!(first["response"]["status"], 200);
    assert_eq!(first["responder"], "upstream");
    assert_eq!(
        first["response_body_bytes"],
        "hello from hyper at /first".len()
    );
    assert_eq!(
        first["request"]["target"],
        format!("http://{upstream}/first")
    );
    assert_eq!(first["forwarded"]["target"], "/first");
    let sessions_of_ab: Vec<_> = exchanges
        .iter()
        .filter(|e| {
            e["url"].as_str().unwrap().ends_with("/a") || e["url"].as_str().unwrap().ends_with("/b")
        })
        .map(|e| e["session"].as_u64())
        .collect();
    assert_eq!(
        sessions_of_ab[0], sessions_of_ab[1],
        "one client connection, kept alive"
    );
    let tunnelled = exchanges
        .iter()
        .find(|e| e["url"] == format!("http://{upstream}/tunnelled"))
        .unwrap();
    assert_eq!(tunnelled["request"]["target"], "/tunnelled");
}

#[tokio::test]
async fn connect_with_non_http_bytes_is_a_blind_tunnel_with_byte_counts() {
    // An upstream that answers every chunk it gets with the same bytes, reversed.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            buf[..n].reverse();
            stream.write_all(&buf[..n]).await.unwrap();
        }
    });
    let proxy = Proxy::start().await;
    let mut client = tunnel(proxy.addr, upstream).await;
    send(&mut client, b"SSH-2.0-not-http").await;
    assert_eq!(read_exact(&mut client, 16).await, b"ptth-ton-0.2-HSS");
    drop(client);

    let trace = proxy.stop(Duration::from_secs(5)).await;
    let end = of_type(&trace, "session_end")[0];
    assert_eq!(end["kind"], "tunnel");
    assert_eq!(end["bytes"]["c2s"], 16);
    assert_eq!(end["bytes"]["s2c"], 16);
    assert!(of_type(&trace, "frame").is_empty());
}

#[tokio::test]
async fn listens_on_ipv6_loopback_and_several_addresses() {
    let config = wstap_proxy::ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()],
        ..wstap_proxy::ProxyConfig::default()
    };
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine; only checking that binding fails cleanly");
        assert!(wstap_proxy::start(config, wstap_proxy::EventBus::new())
            .await
            .is_err());
        return;
    }
    let (server, _) = echo_server().await;
    let proxy = wstap_proxy::start(config, wstap_proxy::EventBus::new())
        .await
        .unwrap();
    let addrs = proxy.local_addrs().to_vec();
    assert_eq!(addrs.len(), 2);
    assert!(addrs[1].is_ipv6());
    for addr in addrs {
        let mut ws = ws_client(addr, server).await;
        use futures_util::{SinkExt, StreamExt};
        ws.send(tokio_tungstenite::tungstenite::Message::text("v6?"))
            .await
            .unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap().into_text().unwrap(),
            "v6?"
        );
    }
    proxy.shutdown(Duration::ZERO).await;
}
