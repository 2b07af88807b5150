//! Reverse mode: clients connect to wstap as if it were the server, and wstap forwards to
//! the URL it was given, rewriting `Host` (and `Origin` when asked), recording everything
//! as in forward mode. Peers: tokio-tungstenite clients and servers, a hyper HTTP server,
//! raw sockets, and the real binary. (Python's websockets on both ends: tests/peers.rs.)

mod support;

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use support::binary::*;
use support::tls::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use wstap_proxy::{ProxyConfig, ReverseProxy, ReverseTls};

/// A proxy with one reverse listener on a free port forwarding to `url`.
async fn reverse_proxy(url: &str, adjust: impl FnOnce(&mut ReverseProxy), tls: bool) -> Proxy {
    let mut reverse = ReverseProxy::new("127.0.0.1:0".parse().unwrap(), url).unwrap();
    adjust(&mut reverse);
    let pki_config = tls.then(|| TestPki::new().intercepting());
    Proxy::start_recording(ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        tls: pki_config,
        reverse: vec![reverse],
        ..ProxyConfig::default()
    })
    .await
}

/// A tokio-tungstenite client connected straight to `url`'s address `addr`.
async fn connect_to(
    addr: std::net::SocketAddr,
    url: String,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<TcpStream>,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    let stream = TcpStream::connect(addr).await.unwrap();
    tokio_tungstenite::client_async(url, stream).await
}

/// Sends `text` on `ws` and checks the echo.
async fn assert_echoed<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, text: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text(text)).await.unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), text);
}

/// The value of header `name` in a recorded header list.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn a_websocket_client_takes_wstap_for_the_server_and_the_server_sees_its_own_host() {
    let (server, seen) = echo_server().await;
    let url = format!("ws://{server}/api");
    let proxy = reverse_proxy(&url, |_| {}, false).await;
    let front = proxy.reverse_addr();

    let (mut ws, response) = connect_to(front, format!("ws://{front}/chat?room=1"))
        .await
        .expect("the handshake through the reverse listener");
    assert_eq!(response.status(), 101);
    ws.send(Message::text("hello upstream")).await.unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "hello upstream");
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}

    let (path, headers) = seen.lock().unwrap()[0].clone();
    assert_eq!(path, "/api/chat?room=1", "the URL's path is the prefix");
    assert_eq!(header(&headers, "host"), Some(server.to_string().as_str()));
    let capture = proxy.capture_path.clone().unwrap();
    let trace = proxy.stop(Duration::from_secs(5)).await;

    let start = of_type(&trace, "session_start")[0];
    assert_eq!(start["via"], "reverse", "{start}");
    assert_eq!(start["listener"], front.to_string(), "{start}");
    assert_eq!(start["target"], server.to_string(), "{start}");
    let handshake = of_type(&trace, "handshake")[0];
    assert_eq!(
        handshake["url"],
        format!("ws://{server}/api/chat?room=1"),
        "{handshake}"
    );
    // What the client sent, and what wstap changed: both are on record.
    assert_eq!(handshake["request"]["target"], "/chat?room=1");
    assert_eq!(handshake["forwarded"]["target"], "/api/chat?room=1");
    let rewritten = &handshake["forwarded"]["rewritten_headers"][0];
    assert_eq!(rewritten["name"], "Host");
    assert_eq!(rewritten["from"], front.to_string());
    assert_eq!(rewritten["to"], server.to_string());
    let texts: Vec<&Value> = of_type(&trace, "message")
        .into_iter()
        .filter(|m| m["opcode_name"] == "TEXT")
        .collect();
    assert_eq!(texts.len(), 2, "one text message each way");

    // The capture says the same: mode and listener, and the frames.
    let db = rusqlite::Connection::open(capture.join("capture.db")).unwrap();
    let (via, listener, frames): (String, String, i64) = db
        .query_row(
            "SELECT via, listener, frames_c2s + frames_s2c FROM sessions WHERE target = ?1",
            [server.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((via.as_str(), listener), ("reverse", front.to_string()));
    assert_eq!(frames, 4, "a text and a close each way");
}

#[tokio::test]
async fn origin_is_rewritten_only_when_asked() {
    let (server, seen) = echo_server().await;
    let url = format!("ws://{server}");
    for rewrite in [false, true] {
        let proxy = reverse_proxy(&url, |r| r.rewrite_origin = rewrite, false).await;
        let front = proxy.reverse_addr();
        let mut client = TcpStream::connect(front).await.unwrap();
        let request = client_handshake(&front.to_string(), "/", "Origin: http://front.test\r\n");
        send(&mut client, request.as_bytes()).await;
        let head = String::from_utf8(read_head(&mut client).await).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        drop(client);
        proxy.stop(Duration::from_secs(1)).await;
        let (_, headers) = seen.lock().unwrap().pop().unwrap();
        let expected = if rewrite {
            format!("http://{server}")
        } else {
            "http://front.test".to_owned()
        };
        assert_eq!(header(&headers, "origin"), Some(expected.as_str()));
    }
}

#[tokio::test]
async fn wss_on_the_listener_with_a_certificate_from_the_ca_to_a_tls_upstream() {
    let pki = TestPki::new();
    let server = tls_echo_server(&pki).await;
    let url = format!("wss://localhost:{}", server.port());
    let mut reverse = ReverseProxy::new("127.0.0.1:0".parse().unwrap(), &url).unwrap();
    reverse.tls = ReverseTls::FromCa;
    let proxy = Proxy::start_with(ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        tls: Some(pki.intercepting()),
        reverse: vec![reverse],
        ..ProxyConfig::default()
    })
    .await;
    let front = proxy.reverse_addr();

    let tcp = TcpStream::connect(front).await.unwrap();
    let tls = tls_client(tcp, client_trusting(&proxy.ca_pem()), "localhost")
        .await
        .expect("the client trusts wstap's certificate for the URL's host");
    let request = format!("wss://localhost:{}/secure", front.port());
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    let echoed = ws.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_data().as_ref(), &[1u8, 2, 3]);
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    let trace = proxy.stop(Duration::from_secs(5)).await;

    let start = of_type(&trace, "session_start")[0];
    assert_eq!(start["via"], "reverse");
    assert_eq!(start["tls"], true);
    assert_eq!(start["client_tls"]["sni"], "localhost", "{start}");
    assert!(start["client_tls"]["cipher"]
        .as_str()
        .unwrap()
        .starts_with("TLS13_"));
    assert_eq!(start["upstream_tls"]["sni"], "localhost", "{start}");
    let certificate = &start["upstream_tls"]["certificate"];
    assert!(certificate["issuer"]
        .as_str()
        .unwrap()
        .contains("test upstream CA"));
    let handshake = of_type(&trace, "handshake")[0];
    assert_eq!(
        handshake["url"],
        format!("wss://localhost:{}/secure", server.port())
    );
    assert_eq!(handshake["accept_valid"], true);
}

/// A hyper server answering each request with the path and `Host` it saw.
async fn http_server() -> std::net::SocketAddr {
    use http_body_util::Full;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let host = req.headers().get("host").cloned();
                        let host = host.as_ref().and_then(|h| h.to_str().ok()).unwrap_or("");
                        let body = format!("{} for {host}", req.uri().path());
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            bytes::Bytes::from(body),
                        )))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Reads one response with a `Content-Length` body.
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let head = String::from_utf8(read_head(stream).await).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a content length");
    let body = String::from_utf8(read_exact(stream, length).await).unwrap();
    (head, body)
}

#[tokio::test]
async fn plain_http_goes_through_with_keep_alive_and_each_exchange_recorded() {
    let server = http_server().await;
    let proxy = reverse_proxy(&format!("http://{server}"), |_| {}, false).await;
    let front = proxy.reverse_addr();
    let mut client = TcpStream::connect(front).await.unwrap();
    for path in ["/one", "/two"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: front.test\r\n\r\n");
        send(&mut client, request.as_bytes()).await;
        let (head, body) = read_response(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, format!("{path} for {server}"));
    }
    drop(client);
    let trace = proxy.stop(Duration::from_secs(2)).await;
    let exchanges = of_type(&trace, "http");
    assert_eq!(exchanges.len(), 2, "{exchanges:?}");
    assert_eq!(exchanges[1]["url"], format!("http://{server}/two"));
    assert_eq!(
        exchanges[1]["forwarded"]["rewritten_headers"][0]["from"],
        "front.test"
    );
    assert_eq!(
        of_type(&trace, "session_start").len(),
        1,
        "one connection, one session"
    );
}

#[tokio::test]
async fn what_a_reverse_listener_cannot_serve_is_answered_with_a_reason() {
    // An upstream that is down: 502 that says why.
    let down = free_loopback_addr();
    let proxy = reverse_proxy(&format!("ws://{down}"), |_| {}, false).await;
    let front = proxy.reverse_addr();
    let mut client = TcpStream::connect(front).await.unwrap();
    send(&mut client, client_handshake("x", "/", "").as_bytes()).await;
    let answer = String::from_utf8(read_to_end(&mut client).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(
        answer.contains(&format!("cannot connect to {down}")),
        "{answer}"
    );

    // CONNECT is for forward proxies.
    let mut client = TcpStream::connect(front).await.unwrap();
    send(
        &mut client,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    )
    .await;
    let answer = String::from_utf8(read_to_end(&mut client).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("reverse proxy"), "{answer}");

    // A client that is not speaking HTTP at all.
    let mut client = TcpStream::connect(front).await.unwrap();
    send(&mut client, b"\x00\x01garbage\r\n\r\n").await;
    let answer = String::from_utf8_lossy(&read_to_end(&mut client).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let trace = proxy.stop(Duration::from_secs(1)).await;
    let ends = of_type(&trace, "session_end");
    assert_eq!(ends.len(), 3);
    assert!(ends.iter().all(|e| e["outcome"] == "error"), "{ends:?}");
    let starts = of_type(&trace, "session_start");
    assert!(
        starts.iter().all(|s| s["via"] == "reverse"),
        "even a session that never named a target came through the reverse listener: {starts:?}"
    );

    // A listener whose URL is itself would loop: 508.
    let own = free_loopback_addr();
    let reverse = ReverseProxy::new(own, &format!("http://{own}")).unwrap();
    let proxy = Proxy::start_with(ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        reverse: vec![reverse],
        ..ProxyConfig::default()
    })
    .await;
    let mut client = TcpStream::connect(own).await.unwrap();
    send(&mut client, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let answer = String::from_utf8(read_to_end(&mut client).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 508"), "{answer}");
    proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn max_connections_covers_reverse_listeners() {
    let (server, _) = echo_server().await;
    let reverse = ReverseProxy::new("127.0.0.1:0".parse().unwrap(), &format!("ws://{server}"));
    let proxy = Proxy::start_with(ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        reverse: vec![reverse.unwrap()],
        max_connections: Some(1),
        ..ProxyConfig::default()
    })
    .await;
    let front = proxy.reverse_addr();
    let _held = connect_to(front, format!("ws://{front}/")).await.unwrap();
    let mut second = TcpStream::connect(front).await.unwrap();
    let answer = String::from_utf8(read_to_end(&mut second).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    drop(_held);
    proxy.stop(Duration::from_secs(1)).await;
}

#[test]
fn the_binary_takes_the_listen_address_for_a_bare_url_and_says_so() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, seen) = rt.block_on(echo_server());
    let mut command = wstap_command();
    command.args([
        "--no-capture",
        "--no-web",
        "--reverse",
        &format!("ws://{server}"),
    ]);
    let (child, front) = spawn_listening(command);
    let mut child = KillOnDrop(child);
    rt.block_on(async {
        let (mut ws, _) = connect_to(front, format!("ws://{front}/x"))
            .await
            .expect("the --listen address is the reverse listener");
        assert_echoed(&mut ws, "hi").await;
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
    });
    assert_eq!(seen.lock().unwrap()[0].0, "/x");
    let mut stderr = String::new();
    let mut pipe = child.0.stderr.take().unwrap();
    sigterm(&child.0);
    std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "reverse proxy listening on ws://{front} -> ws://{server}"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("proxy listening on http://"), "{stderr}");
}

#[test]
fn the_binary_speaks_tls_with_the_certificate_it_is_given() {
    let pki = TestPki::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, _) = rt.block_on(echo_server());
    let listen = free_loopback_addr();
    let mut command = wstap_command();
    command.args([
        "--no-capture",
        "--no-web",
        "--reverse",
        &format!("{listen}=ws://{server}"),
        "--reverse-cert",
        pki.server_chain_pem_path.to_str().unwrap(),
        "--reverse-key",
        pki.server_key_pem_path.to_str().unwrap(),
    ]);
    let (child, forward) = spawn_listening(command);
    let _child = KillOnDrop(child);
    rt.block_on(async {
        let tcp = TcpStream::connect(listen).await.unwrap();
        let tls = tls_client(tcp, client_trusting(&pki.ca_pem_path), "localhost")
            .await
            .expect("the certificate given");
        let (mut ws, _) =
            tokio_tungstenite::client_async(format!("wss://localhost:{}/", listen.port()), tls)
                .await
                .unwrap();
        assert_echoed(&mut ws, "over tls").await;
        // The forward proxy still serves on --listen beside the reverse listener.
        let mut client = TcpStream::connect(forward).await.unwrap();
        client
            .write_all(b"GET http://wstap/ HTTP/1.1\r\nHost: wstap\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        client.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
    });
}

#[test]
fn bad_reverse_settings_are_one_line_errors() {
    let bad_key = temp_path("not-a-key.pem");
    std::fs::write(&bad_key, "nothing here").unwrap();
    let chain = TestPki::new().server_chain_pem_path;
    let cases: [(&[&str], &str); 4] = [
        (&["--reverse", "ftp://example.com"], "unsupported scheme"),
        (
            &["--reverse", "ws://a:1", "--reverse", "ws://b:1"],
            "only one --reverse may take the --listen address",
        ),
        (
            &["--reverse", "wss://example.com", "--no-intercept"],
            "speaks TLS to its upstream, and TLS interception is off",
        ),
        (
            &[
                "--reverse",
                "ws://a:1",
                "--reverse-cert",
                chain.to_str().unwrap(),
                "--reverse-key",
                bad_key.to_str().unwrap(),
            ],
            "cannot use",
        ),
    ];
    for (args, expected) in cases {
        let out = wstap_command()
            .args(["--no-capture", "--no-web", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_tls_listener_answers_the_name_the_client_asks_for_else_the_urls_host() {
    let (server, _) = echo_server().await;
    let mut reverse =
        ReverseProxy::new("127.0.0.1:0".parse().unwrap(), &format!("ws://{server}")).unwrap();
    reverse.tls = ReverseTls::FromCa;
    let proxy = Proxy::start_with(ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        tls: Some(TestPki::new().intercepting()),
        reverse: vec![reverse],
        ..ProxyConfig::default()
    })
    .await;
    let front = proxy.reverse_addr();
    // A name of the client's choosing (SNI), and an IP address (no SNI: the URL's host).
    for name in ["api.wstap.test", "127.0.0.1"] {
        let tcp = TcpStream::connect(front).await.unwrap();
        let tls = tls_client(tcp, client_trusting(&proxy.ca_pem()), name)
            .await
            .unwrap_or_else(|e| panic!("a certificate for {name}: {e}"));
        let url = format!("wss://{name}:{}/", front.port());
        let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
        assert_echoed(&mut ws, name).await;
        ws.close(None).await.unwrap();
        while ws.next().await.is_some() {}
    }
    let trace = proxy.stop(Duration::from_secs(2)).await;
    let starts = of_type(&trace, "session_start");
    assert_eq!(starts[0]["client_tls"]["sni"], "api.wstap.test");
    assert_eq!(starts[1]["client_tls"]["sni"], Value::Null);
    assert!(starts
        .iter()
        .all(|s| s["tls"] == true && s["via"] == "reverse"));
}
