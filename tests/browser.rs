//! A real browser through the proxy: headless Chromium, trusting wstap's CA in a fresh NSS
//! database, loads an https page whose script opens a wss WebSocket (Chromium offers
//! permessage-deflate; the test server accepts it), sends text and binary, and writes the
//! echoes into the DOM. The trace must hold those frames, compressed and inflated.
//! playwright-core drives Chromium (tests/peers/node/page_result.mjs) and waits for the
//! page's verdict in real time.
//!
//! Needs `chromium`, `certutil` (Debian: chromium, libnss3-tools) and node with `npm ci`
//! in tests/peers/node; `.ci/run` installs them and runs ignored tests.

mod support;

use flate2::{Compress, Compression, FlushCompress};
use std::time::Duration;
use support::tls::TestPki;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use wstap_wire::deflate::DeflateParams;
use wstap_wire::handshake::compute_accept;
use wstap_wire::{
    AnalyzerConfig, Direction, FrameBuilder, Opcode, Record, StreamAnalyzer, Timestamp,
};

const TEXT: &str = "hello from chromium, compressed by the browser and inflated by wstap";

fn page(port: u16) -> String {
    format!(
        r#"<!doctype html><html><body><pre id="result">pending</pre><script>
const out = document.getElementById('result');
const ws = new WebSocket('wss://localhost:{port}/ws');
ws.binaryType = 'arraybuffer';
const got = [];
ws.onopen = () => {{ ws.send('{TEXT}'); ws.send(new Uint8Array([1, 2, 3, 250]).buffer); }};
ws.onmessage = (e) => {{
  got.push(typeof e.data === 'string' ? 'text:' + e.data : 'binary:' + Array.from(new Uint8Array(e.data)).join(','));
  if (got.length === 2) {{ out.textContent = 'ECHOED ' + got.join(' | ') + ' | ext:' + ws.extensions; ws.close(1000, 'done'); }}
}};
ws.onerror = () => {{ out.textContent = 'WEBSOCKET ERROR'; }};
</script><img src="/done" alt=""></body></html>"#
    )
}

/// An https server on localhost: the page at `/`, a permessage-deflate echo at `/ws`, and
/// `/done`, answered only once the WebSocket has closed, so the page's load event waits
/// for the echoes.
async fn browser_server(pki: &TestPki) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = TlsAcceptor::from(std::sync::Arc::clone(&pki.server));
    let (closed_tx, closed_rx) = tokio::sync::watch::channel(false);
    let closed_tx = std::sync::Arc::new(closed_tx);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let closed_tx = std::sync::Arc::clone(&closed_tx);
            let mut closed_rx = closed_rx.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                loop {
                    let Some(head) = try_read_head(&mut tls).await else {
                        return;
                    };
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let lower = head.to_ascii_lowercase();
                    if lower.contains("upgrade: websocket") {
                        let key = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .starts_with("sec-websocket-key:")
                                    .then(|| l[18..].trim().to_owned())
                            })
                            .unwrap();
                        let response = format!(
                            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\
                             Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n\r\n",
                            compute_accept(&key)
                        );
                        let _ = tls.write_all(response.as_bytes()).await;
                        deflate_echo(tls).await;
                        let _ = closed_tx.send(true);
                        return;
                    }
                    if head.starts_with("GET /done ") {
                        let closed = closed_rx.wait_for(|closed| *closed);
                        let _ = tokio::time::timeout(Duration::from_secs(20), closed).await;
                    }
                    let (status, body) = if head.starts_with("GET / ") {
                        ("200 OK", page(port))
                    } else {
                        ("404 Not Found", String::new())
                    };
                    let response = format!("HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    if tls.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// Echoes each message back compressed, until a close frame.
async fn deflate_echo(mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>) {
    let params = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let config = AnalyzerConfig {
        deflate: Some(params),
        max_message_capture: 1 << 20,
        ..AnalyzerConfig::default()
    };
    let mut analyzer = StreamAnalyzer::new(Direction::ClientToServer, config);
    let mut buf = vec![0u8; 16 * 1024];
    let mut records = Vec::new();
    loop {
        let Ok(n @ 1..) = tls.read(&mut buf).await else {
            return;
        };
        analyzer.feed(&buf[..n], Timestamp(0), &mut records);
        for record in records.drain(..) {
            let Record::Message(message) = record else {
                continue;
            };
            match message.opcode {
                Opcode::Close => {
                    let _ = tls
                        .write_all(&FrameBuilder::close().encode(b"\x03\xe8"))
                        .await;
                    return;
                }
                Opcode::Text | Opcode::Binary => {
                    let mut compressed = Vec::with_capacity(message.data.data.len() + 64);
                    Compress::new(Compression::default(), false)
                        .compress_vec(&message.data.data, &mut compressed, FlushCompress::Sync)
                        .unwrap();
                    compressed.truncate(compressed.len() - 4);
                    send(
                        &mut tls,
                        &FrameBuilder::new(message.opcode)
                            .rsv1(true)
                            .encode(&compressed),
                    )
                    .await;
                }
                _ => {}
            }
        }
    }
}

fn run(program: &str, args: &[&str], home: &std::path::Path) -> std::process::Output {
    std::process::Command::new(program)
        .args(args)
        .env("HOME", home)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} must be installed (Debian: chromium, libnss3-tools): {e}")
        })
}

#[tokio::test]
#[ignore = "needs chromium, certutil (libnss3-tools), node and `npm ci` in tests/peers/node; .ci/run installs them and runs ignored tests"]
async fn chromium_speaks_wss_with_permessage_deflate_through_the_proxy() {
    chromium_through(Listener::Http).await;
}

#[tokio::test]
#[ignore = "needs chromium, certutil (libnss3-tools), node and `npm ci` in tests/peers/node; .ci/run installs them and runs ignored tests"]
async fn chromium_speaks_wss_through_the_socks5_listener() {
    chromium_through(Listener::Socks5).await;
}

/// Which of wstap's listeners Chromium is pointed at.
#[derive(Clone, Copy, PartialEq)]
enum Listener {
    Http,
    Socks5,
}

/// Chromium opens the page and its wss WebSocket through `listener`; the trace must hold
/// the handshake and the frames, compressed and inflated.
async fn chromium_through(listener: Listener) {
    let pki = TestPki::new();
    let port = browser_server(&pki).await;
    let proxy = Proxy::start_with(wstap_proxy::ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        socks5: vec!["127.0.0.1:0".parse().unwrap()],
        tls: Some(pki.intercepting()),
        ..Default::default()
    })
    .await;
    let proxy_url = match listener {
        Listener::Http => format!("http://{}", proxy.addr),
        Listener::Socks5 => format!("socks5://{}", proxy.socks_addr()),
    };

    // A fresh HOME whose NSS database trusts the wstap CA, and nothing else of ours.
    let home = temp_path("browser-home");
    let nssdb = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    let db = format!("sql:{}", nssdb.display());
    let created = run("certutil", &["-d", &db, "-N", "--empty-password"], &home);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let ca = proxy.ca_pem();
    let trusted = run(
        "certutil",
        &[
            "-d",
            &db,
            "-A",
            "-t",
            "C,,",
            "-n",
            "wstap",
            "-i",
            ca.to_str().unwrap(),
        ],
        &home,
    );
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );

    // Driven by playwright-core, waiting in real time for the page's verdict: a WebSocket
    // does not hold back the load event or virtual time, so `--dump-dom` could print the
    // page before the echoes arrived.
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers/node/page_result.mjs");
    let args = serde_json::json!({
        "url": format!("https://localhost:{port}/"),
        "proxy": proxy_url,
        "home": home,
        "profile": home.join("profile"),
    });
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(script)
            .arg(args.to_string())
            .output()
            .expect("node runs (npm ci in tests/peers/node)")
    })
    .await
    .unwrap();
    let result = String::from_utf8_lossy(&out.stdout).into_owned();
    let expected = format!("ECHOED text:{TEXT} | binary:1,2,3,250 | ext:permessage-deflate");
    assert!(
        result.contains(&expected),
        "page said: {result}\nnode stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let trace = proxy.stop(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&home);
    let via = match listener {
        Listener::Http => "connect",
        Listener::Socks5 => "socks5",
    };
    // (Chromium's own background requests may show up too: only the page's count.)
    let target = format!("localhost:{port}");
    let starts: Vec<&Value> = of_type(&trace, "session_start")
        .into_iter()
        .filter(|s| s["target"] == target)
        .collect();
    assert!(!starts.is_empty());
    assert!(
        starts.iter().all(|s| s["via"] == via && s["tls"] == true),
        "every session to the page came through the {via} listener, intercepted: {starts:?}"
    );
    let handshake = of_type(&trace, "handshake")[0];
    assert_eq!(handshake["url"], format!("wss://localhost:{port}/ws"));
    assert!(handshake["deflate"]["server_no_context_takeover"]
        .as_bool()
        .unwrap());
    let offered = handshake["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| {
            h[0] == "Sec-WebSocket-Extensions"
                && h[1].as_str().unwrap().contains("permessage-deflate")
        });
    assert!(offered, "Chromium offers permessage-deflate: {handshake}");
    let frames = of_type(&trace, "frame");
    let sent = frames
        .iter()
        .find(|f| f["dir"] == "c2s" && f["opcode"] == 1)
        .expect("the browser's text frame");
    assert_eq!(sent["rsv1"], true);
    assert_eq!(sent["masked"], true);
    assert_eq!(sent["inflated"]["payload"]["data"], TEXT);
    assert!(sent["violations"].as_array().unwrap().is_empty(), "{sent}");
    let echoed = frames
        .iter()
        .find(|f| f["dir"] == "s2c" && f["opcode"] == 2)
        .unwrap();
    assert_eq!(echoed["rsv1"], true);
    assert_eq!(echoed["inflated"]["payload"]["encoding"], "base64");
    assert_eq!(echoed["inflated"]["payload"]["data"], "AQID+g==");
}
