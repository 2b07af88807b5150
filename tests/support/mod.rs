//! Test support: the engine started in-process with a trace file, real peers (a
//! tokio-tungstenite echo server, raw TCP servers that speak exactly the bytes a test
//! chooses), and helpers to tunnel through the proxy and read heads byte by byte.
#![allow(dead_code)]

pub mod binary;
pub mod tls;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wstap_bus::{driver, Cadence, EventBus, SinkStats};
use wstap_proxy::{ProxyConfig, RunningProxy};
use wstap_trace::TraceFile;

pub use serde_json::Value;

/// A fresh path in the system temp folder.
pub fn temp_path(name: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("wstap-test-{}-{n}-{name}", std::process::id()))
}

/// A home folder for the binary (`WSTAP_HOME`) shared by this test process.
pub fn test_home() -> PathBuf {
    static HOME: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    HOME.get_or_init(|| temp_path("home")).clone()
}

/// A line of this process's `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let value = line.strip_prefix(field)?.trim().trim_end_matches("kB");
                value.trim().parse().ok()
            })
        })
        .unwrap_or(0)
}

/// This process's peak resident memory since the last reset, in KiB.
pub fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// Resets the peak (Linux: `/proc/self/clear_refs`) and returns the resident memory now.
pub fn reset_peak_rss_kib() -> u64 {
    let reset = std::fs::write("/proc/self/clear_refs", "5");
    assert!(reset.is_ok(), "cannot reset the peak RSS: {reset:?}");
    status_kib("VmRSS:")
}

/// The engine, listening on a free loopback port, writing a trace file.
pub struct Proxy {
    pub addr: SocketAddr,
    pub trace_path: PathBuf,
    /// The capture folder, when started with [`Proxy::start_recording`].
    pub capture_path: Option<PathBuf>,
    running: RunningProxy,
    trace: std::thread::JoinHandle<SinkStats>,
    capture: Option<std::thread::JoinHandle<SinkStats>>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        Self::start_with(ProxyConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            ..ProxyConfig::default()
        })
        .await
    }

    /// A proxy intercepting TLS with a fresh CA in a temp folder, trusting `upstream_ca`.
    pub async fn start_tls(tls: wstap_proxy::tls::TlsConfig) -> Proxy {
        Self::start_with(ProxyConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            tls: Some(tls),
            ..ProxyConfig::default()
        })
        .await
    }

    /// The CA certificate file of an intercepting proxy.
    pub fn ca_pem(&self) -> PathBuf {
        self.running
            .ca()
            .expect("TLS interception is on")
            .dir()
            .join("wstap-ca.pem")
    }

    /// The first SOCKS5 listener's address (started with `socks5` in its config).
    pub fn socks_addr(&self) -> SocketAddr {
        self.running.socks_addrs()[0]
    }

    /// Leaf certificates signed so far.
    pub fn certificates_issued(&self) -> u64 {
        self.running.certificates_issued()
    }

    /// The first reverse listener's address (started with `reverse` in its config).
    pub fn reverse_addr(&self) -> SocketAddr {
        self.running.reverse_listeners().next().unwrap().0
    }

    pub async fn start_with(config: ProxyConfig) -> Proxy {
        Self::start_sinks(config, false).await
    }

    /// Like [`Proxy::start_with`], also recording a capture (as `wstap` does by default).
    pub async fn start_recording(config: ProxyConfig) -> Proxy {
        Self::start_sinks(config, true).await
    }

    async fn start_sinks(config: ProxyConfig, record: bool) -> Proxy {
        let trace_path = temp_path("trace.ndjson");
        let mut bus = EventBus::new();
        let (capture_path, capture) = if record {
            let path = temp_path("capture");
            let info = wstap_store::CaptureInfo {
                writer: "wstap test".into(),
                max_capture: config.max_capture,
                max_bytes: None,
            };
            let writer = wstap_store::CaptureWriter::create(&path, &info).unwrap();
            let rx = bus.subscribe_lossless(4 << 20);
            let cadence = Cadence {
                nap: Duration::from_millis(2),
                max_delay: Duration::from_millis(50),
                background: false,
            };
            let thread = driver::spawn("wstap-capture", rx, writer, cadence).unwrap();
            (Some(path), Some(thread))
        } else {
            (None, None)
        };
        let rx = bus.subscribe_lossless(4 << 20);
        let file = TraceFile::create(&trace_path, "wstap test").unwrap();
        let cadence = Cadence {
            nap: Duration::from_millis(2),
            max_delay: Duration::from_millis(100),
            background: false,
        };
        let trace = driver::spawn("wstap-trace", rx, file, cadence).unwrap();
        let running = wstap_proxy::start(config, bus).await.unwrap();
        let addr = running.local_addrs()[0];
        Proxy {
            addr,
            trace_path,
            capture_path,
            running,
            trace,
            capture,
        }
    }

    /// Stops the proxy (sessions get `grace` to finish) and returns the trace's lines.
    pub async fn stop(self, grace: Duration) -> Vec<Value> {
        self.running.shutdown(grace).await;
        let trace = self.trace;
        let capture = self.capture;
        let (stats, capture) = tokio::task::spawn_blocking(move || {
            (trace.join().unwrap(), capture.map(|c| c.join().unwrap()))
        })
        .await
        .unwrap();
        assert_eq!(stats.error, None);
        assert_eq!(capture.and_then(|c| c.error), None);
        let text = std::fs::read_to_string(&self.trace_path).unwrap();
        let _ = std::fs::remove_file(&self.trace_path);
        let trace: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("every trace line parses"))
            .collect();
        assert_sessions_start_first_and_end_once(&trace);
        trace
    }
}

/// Every session in `trace` opens with its one `session_start`, before anything else of
/// it, and closes with its one `session_end`, after everything else of it.
fn assert_sessions_start_first_and_end_once(trace: &[Value]) {
    use std::collections::HashMap;
    let mut lines: HashMap<u64, Vec<&str>> = HashMap::new();
    for event in trace {
        if let Some(session) = event["session"].as_u64() {
            let kind = event["type"].as_str().unwrap_or("?");
            lines.entry(session).or_default().push(kind);
        }
    }
    for (session, kinds) in lines {
        assert_eq!(
            kinds.first(),
            Some(&"session_start"),
            "session {session} opens with its start: {kinds:?}"
        );
        assert_eq!(
            kinds.iter().filter(|k| **k == "session_start").count(),
            1,
            "session {session} starts once: {kinds:?}"
        );
        let ends = kinds.iter().filter(|k| **k == "session_end").count();
        assert!(ends <= 1, "session {session} ends once: {kinds:?}");
        if ends == 1 {
            assert_eq!(
                kinds.last(),
                Some(&"session_end"),
                "session {session}: {kinds:?}"
            );
        }
    }
}

/// The trace lines of one type.
pub fn of_type<'a>(trace: &'a [Value], kind: &str) -> Vec<&'a Value> {
    trace.iter().filter(|e| e["type"] == kind).collect()
}

/// Reads a head byte by byte, so nothing after it is consumed.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    try_read_head(stream).await.expect("a complete head")
}

/// Reads a head byte by byte; `None` when the stream ends first.
pub async fn try_read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.ok()?);
    }
    Some(head)
}

/// Opens a CONNECT tunnel to `target` through `proxy`, returning the answer's head too.
pub async fn connect_raw(proxy: SocketAddr, target: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let head = String::from_utf8(read_head(&mut stream).await).unwrap();
    (stream, head)
}

/// A tunnel that must succeed.
pub async fn tunnel(proxy: SocketAddr, target: SocketAddr) -> TcpStream {
    let (stream, head) = connect_raw(proxy, &target.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "CONNECT failed: {head}");
    stream
}

/// A raw client that tunnels to `server` through `proxy` and sends a minimal handshake
/// with `extra` header lines; the answer is left for the test to read.
pub async fn handshake_sent(proxy: SocketAddr, server: SocketAddr, extra: &str) -> TcpStream {
    let mut client = tunnel(proxy, server).await;
    let handshake = client_handshake(&server.to_string(), "/", extra);
    send(&mut client, handshake.as_bytes()).await;
    client
}

/// A raw client that tunnels to `server` through `proxy`, completes a minimal handshake
/// with `extra` header lines (the server must answer) and is ready for frames.
pub async fn websocket_through(proxy: SocketAddr, server: SocketAddr, extra: &str) -> TcpStream {
    let mut client = handshake_sent(proxy, server, extra).await;
    read_head(&mut client).await;
    client
}

/// A tokio-tungstenite client for `ws://server/`, through a CONNECT tunnel of `proxy`.
pub async fn ws_client(
    proxy: SocketAddr,
    server: SocketAddr,
) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let stream = tunnel(proxy, server).await;
    tokio_tungstenite::client_async(format!("ws://{server}/"), stream)
        .await
        .unwrap()
        .0
}

/// A minimal, valid client handshake for `path` on `host`.
pub fn client_handshake(host: &str, path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// The RFC's accept value for the key used by [`client_handshake`].
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// What a raw server saw.
#[derive(Default)]
pub struct Seen {
    pub head: Vec<u8>,
    pub bytes: Vec<u8>,
}

/// A raw server for one connection: reads the request head, answers with `response`,
/// sends `then_send`, then records every byte it receives until the client closes.
pub async fn raw_server(
    response: String,
    then_send: Vec<u8>,
) -> (SocketAddr, Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        play_raw(stream, response.as_bytes(), &then_send, &record).await;
    });
    (addr, seen, task)
}

/// What a raw server does on its one connection: see [`raw_server`].
pub async fn play_raw<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    response: &[u8],
    then_send: &[u8],
    record: &Mutex<Seen>,
) {
    let head = read_head(&mut stream).await;
    record.lock().unwrap().head = head;
    stream.write_all(response).await.unwrap();
    stream.write_all(then_send).await.unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => record.lock().unwrap().bytes.extend_from_slice(&buf[..n]),
        }
    }
}

/// A 101 answering [`client_handshake`], with extra header lines.
pub fn switching(extra: &str) -> String {
    format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n")
}

/// A tokio-tungstenite echo server for any number of connections; it records each
/// handshake request's target and headers.
pub async fn echo_server() -> (SocketAddr, Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>) {
    use futures_util::{SinkExt, StreamExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                #[allow(clippy::result_large_err)]
                let callback =
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request, res| {
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
                            .collect();
                        log.lock().unwrap().push((req.uri().to_string(), headers));
                        Ok(res)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, requests)
}

/// Reads exactly `n` bytes, with a time limit so a broken relay fails instead of hanging.
pub async fn read_exact<S: AsyncRead + Unpin>(stream: &mut S, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buf))
        .await
        .expect("timed out reading")
        .expect("read failed");
    buf
}

/// Reads until the peer closes.
pub async fn read_to_end<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    out
}

/// Writes and flushes.
pub async fn send<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) {
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
}

/// `text` compressed as permessage-deflate sends it: a sync flush, without the
/// `00 00 ff ff` tail (RFC 7692, 7.2.1).
pub fn deflated(text: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut deflate = Compress::new(Compression::default(), false);
    let mut compressed = vec![0u8; text.len() + 64];
    deflate
        .compress(text, &mut compressed, FlushCompress::Sync)
        .unwrap();
    compressed.truncate(deflate.total_out() as usize);
    compressed.truncate(compressed.len() - 4);
    compressed
}

/// Client frames that exercise everything the relay must not touch: masking keys,
/// fragment boundaries with a ping in between, and frames that break the RFC.
pub fn tricky_client_frames() -> Vec<Vec<u8>> {
    vec![
        wstap_wire::FrameBuilder::text()
            .fin(false)
            .mask([0x16, 0x39, 0x8f, 0x63])
            .encode(b"Hel"),
        wstap_wire::FrameBuilder::ping()
            .mask([1, 2, 3, 4])
            .encode(b"ping in the middle"),
        wstap_wire::FrameBuilder::continuation()
            .mask([0xaa, 0xbb, 0xcc, 0xdd])
            .encode(b"lo"),
        wstap_wire::FrameBuilder::binary().encode(b"unmasked, against the rules"),
        wstap_wire::FrameBuilder::new(wstap_wire::Opcode::Reserved(3))
            .mask([9, 9, 9, 9])
            .encode(b"reserved"),
        wstap_wire::FrameBuilder::binary()
            .mask([5, 6, 7, 8])
            .length_encoding(wstap_wire::LengthEncoding::Bits64)
            .encode(&[0x42; 300]),
        wstap_wire::FrameBuilder::close()
            .mask([0xde, 0xad, 0xbe, 0xef])
            .encode(b"\x03\xe8bye"),
    ]
}
