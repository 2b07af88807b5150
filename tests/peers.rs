//! Other WebSocket implementations through the proxy, as users run them: Python's
//! `websockets` and Node's `ws`, each on both ends of a session, with permessage-deflate
//! as they negotiate it (websockets: context takeover and 12-bit windows), a fragmented
//! message, a ping and a normal close, over ws and (intercepted) wss, and Python's on both
//! sides of a reverse listener. The trace must show every frame as sent and every message
//! as the peers saw it.
//!
//! Needs python3 with websockets (`pip install websockets`) and node with the packages of
//! tests/peers/node (`npm ci` there); `.ci/run` installs both and runs ignored tests.

mod support;

use base64::Engine;
use std::time::Duration;
use support::tls::TestPki;
use support::*;

/// A peer program: an echo server and a client connecting to it through the proxy given
/// as the first argument (see the scripts in tests/peers).
struct Peers {
    program: &'static str,
    script: &'static str,
}

const PYTHON: Peers = Peers {
    program: "python3",
    script: concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/python_websockets.py"
    ),
};

const NODE: Peers = Peers {
    program: "node",
    script: concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/node/ws_peers.mjs"),
};

/// A message's (or frame's) captured payload as bytes.
fn payload_bytes(record: &Value) -> Vec<u8> {
    let payload = &record["payload"];
    assert_eq!(payload["truncated"], false, "{record}");
    let data = payload["data"].as_str().expect("payload data");
    match payload["encoding"].as_str() {
        Some("utf8") => data.as_bytes().to_vec(),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("valid base64"),
        other => panic!("unknown payload encoding {other:?}"),
    }
}

impl Peers {
    /// Runs the peers through `proxy` (over wss with `tls_files`: the server's chain and
    /// key, and the CA the client trusts) and returns what the script says it sent.
    async fn run(&self, proxy: &Proxy, tls_files: &[&std::path::Path]) -> Value {
        self.run_via(&format!("http://{}", proxy.addr), tls_files)
            .await
    }

    /// Like [`Peers::run`], through the proxy at `proxy_url` (`http://` or `socks5h://`).
    async fn run_via(&self, proxy_url: &str, tls_files: &[&std::path::Path]) -> Value {
        let run = tokio::process::Command::new(self.program)
            .arg(self.script)
            .arg(proxy_url)
            .args(tls_files)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("the peers finish within a minute")
            .unwrap_or_else(|e| panic!("{} runs: {e}", self.program));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} {} failed:\nstdout: {stdout}\nstderr: {}",
            self.program,
            self.script,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.lines().last().expect("a JSON line"))
            .expect("the script reports what it sent")
    }

    /// A ws session through a plain proxy.
    async fn over_ws(&self) {
        let proxy = Proxy::start().await;
        let sent = self.run(&proxy, &[]).await;
        let trace = proxy.stop(Duration::from_secs(5)).await;
        assert!(sent["url"].as_str().unwrap().starts_with("ws://"));
        assert_session_traced(&trace, &sent);
    }

    /// A wss session through a proxy that intercepts TLS.
    async fn over_intercepted_wss(&self) {
        let pki = TestPki::new();
        let proxy = Proxy::start_tls(pki.intercepting()).await;
        let files = [
            pki.server_chain_pem_path.as_path(),
            pki.server_key_pem_path.as_path(),
            &proxy.ca_pem(),
        ];
        let sent = self.run(&proxy, &files).await;
        let trace = proxy.stop(Duration::from_secs(5)).await;
        assert!(sent["url"]
            .as_str()
            .unwrap()
            .starts_with("wss://localhost:"));
        let start = &of_type(&trace, "session_start")[0];
        assert_eq!(start["tls"], true, "{start}");
        assert_eq!(start["client_tls"]["sni"], "localhost", "{start}");
        assert_session_traced(&trace, &sent);
    }
}

#[tokio::test]
#[ignore = "needs python3 with websockets; .ci/run installs it and runs ignored tests"]
async fn python_websockets_over_ws_is_traced_frame_by_frame_and_inflated() {
    PYTHON.over_ws().await;
}

#[tokio::test]
#[ignore = "needs python3 with websockets; .ci/run installs it and runs ignored tests"]
async fn python_websockets_over_intercepted_wss_is_traced_frame_by_frame_and_inflated() {
    PYTHON.over_intercepted_wss().await;
}

#[tokio::test]
#[ignore = "needs python3 with websockets and python-socks; .ci/run installs them and runs ignored tests"]
async fn python_websockets_over_socks5h_with_intercepted_wss() {
    let pki = TestPki::new();
    let proxy = Proxy::start_with(wstap_proxy::ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        socks5: vec!["127.0.0.1:0".parse().unwrap()],
        tls: Some(pki.intercepting()),
        ..Default::default()
    })
    .await;
    let files = [
        pki.server_chain_pem_path.as_path(),
        pki.server_key_pem_path.as_path(),
        &proxy.ca_pem(),
    ];
    // socks5h: the proxy resolves the name, so the SOCKS request carries `localhost`.
    let url = format!("socks5h://{}", proxy.socks_addr());
    let sent = PYTHON.run_via(&url, &files).await;
    let trace = proxy.stop(Duration::from_secs(5)).await;
    let start = &of_type(&trace, "session_start")[0];
    assert_eq!(start["via"], "socks5", "{start}");
    assert_eq!(start["tls"], true, "{start}");
    assert!(
        start["target"].as_str().unwrap().starts_with("localhost:"),
        "{start}"
    );
    assert_session_traced(&trace, &sent);
}

#[tokio::test]
#[ignore = "needs node and `npm ci` in tests/peers/node; .ci/run does both and runs ignored tests"]
async fn node_ws_over_ws_is_traced_frame_by_frame_and_inflated() {
    NODE.over_ws().await;
}

#[tokio::test]
#[ignore = "needs node and `npm ci` in tests/peers/node; .ci/run does both and runs ignored tests"]
async fn node_ws_over_intercepted_wss_is_traced_frame_by_frame_and_inflated() {
    NODE.over_intercepted_wss().await;
}

/// The one session of `trace` holds what the script `sent`: its handshake, every message
/// each way (inflated, fragments joined), the frames' flags, ping, pong and close.
fn assert_session_traced(trace: &[Value], sent: &Value) {
    // The handshake, as the client sent it and the server answered.
    let handshakes = of_type(trace, "handshake");
    assert_eq!(handshakes.len(), 1, "one WebSocket session");
    let handshake = handshakes[0];
    assert_eq!(handshake["accept_valid"], true, "{handshake}");
    assert_eq!(handshake["url"], sent["url"], "{handshake}");
    let extensions = sent["extensions"].as_str().expect("deflate was negotiated");
    assert_eq!(handshake["extensions"][0], extensions, "{handshake}");
    assert!(handshake["deflate"].is_object(), "{handshake}");
    let names: Vec<&str> = handshake["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Sec-WebSocket-Key") && names.contains(&"Sec-WebSocket-Extensions"),
        "the request's header names, as sent: {names:?}"
    );

    // Every message, each way, as the peers sent it: inflated, the fragments joined.
    let texts: Vec<Vec<u8>> = sent["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().as_bytes().to_vec())
        .collect();
    let binary = base64::engine::general_purpose::STANDARD
        .decode(sent["binary_base64"].as_str().unwrap())
        .unwrap();
    let fragments: Vec<&str> = sent["fragments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let joined = fragments.concat().into_bytes();
    let ping = sent["ping"].as_str().unwrap().as_bytes().to_vec();
    let expected: Vec<(&str, Vec<u8>)> = vec![
        ("TEXT", texts[0].clone()),
        ("TEXT", texts[1].clone()),
        ("BINARY", binary),
        ("TEXT", joined),
    ];
    let messages = of_type(trace, "message");
    for dir in ["c2s", "s2c"] {
        let data: Vec<(&str, Vec<u8>)> = messages
            .iter()
            .filter(|m| m["dir"] == dir && m["opcode"].as_u64().unwrap() < 8)
            .map(|m| (m["opcode_name"].as_str().unwrap(), payload_bytes(m)))
            .collect();
        assert_eq!(data, expected, "{dir} data messages, in order");
        for message in messages.iter().filter(|m| m["dir"] == dir) {
            assert_eq!(message["violations"], serde_json::json!([]), "{message}");
            if message["len"].as_u64() > Some(10_000) {
                assert_eq!(message["compressed"], true, "{message}");
                assert!(message["wire_len"].as_u64() < Some(1_000), "{message}");
            }
        }
    }
    let fragmented = messages
        .iter()
        .find(|m| m["dir"] == "c2s" && m["frames"].as_u64() > Some(1))
        .expect("the client's fragmented message");
    assert!(
        fragmented["frames"].as_u64().unwrap() >= fragments.len() as u64,
        "{fragmented}"
    );

    // Frame by frame: the flags websockets set, ping and pong, and the close handshake.
    let frames = of_type(trace, "frame");
    for frame in &frames {
        assert_eq!(frame["violations"], serde_json::json!([]), "{frame}");
        let masked = frame["dir"] == "c2s";
        assert_eq!(frame["masked"], masked, "{frame}");
    }
    let first_fragment = frames
        .iter()
        .find(|f| f["dir"] == "c2s" && f["fin"] == false)
        .expect("a first fragment");
    assert_eq!(
        first_fragment["rsv1"], true,
        "RSV1 on the first fragment only"
    );
    assert!(frames
        .iter()
        .filter(|f| f["opcode_name"] == "CONT")
        .all(|f| f["rsv1"] == false));
    let control = |name: &str, dir: &str| {
        frames
            .iter()
            .find(|f| f["opcode_name"] == name && f["dir"] == dir)
            .copied()
            .unwrap_or_else(|| panic!("a {dir} {name} frame"))
    };
    assert_eq!(payload_bytes(control("PING", "c2s")), ping);
    assert_eq!(payload_bytes(control("PONG", "s2c")), ping);
    assert_eq!(control("CLOSE", "c2s")["close"]["code"], 1000);
    assert_eq!(control("CLOSE", "s2c")["close"]["code"], 1000);
    let ends = of_type(trace, "session_end");
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_codec_reads_and_writes_as_the_peers_do(trace);
}

/// The peers' own compressed bytes, message by message, through wstap's codec: its
/// Inflater reads each as the peer meant it, and its Deflater, given each message, makes a
/// stream that a plain zlib inflater (flate2, with the negotiated window and context) reads
/// back the same. The Deflater is what interception re-encodes a direction with.
fn assert_codec_reads_and_writes_as_the_peers_do(trace: &[Value]) {
    use flate2::{Decompress, FlushDecompress};
    use wstap_wire::deflate::{Inflater, MESSAGE_TAIL};
    use wstap_wire::{DeflateParams, Deflater, Direction};
    let negotiated = &of_type(trace, "handshake")[0]["deflate"];
    let bits = |name: &str| negotiated[name].as_u64().map(|b| b as u8);
    let params = DeflateParams {
        server_no_context_takeover: negotiated["server_no_context_takeover"] == true,
        client_no_context_takeover: negotiated["client_no_context_takeover"] == true,
        server_max_window_bits: bits("server_max_window_bits"),
        client_max_window_bits: bits("client_max_window_bits"),
    };
    for (dir, direction) in [
        ("c2s", Direction::ClientToServer),
        ("s2c", Direction::ServerToClient),
    ] {
        // Each data message as its frames carried it: compressed or not, and its bytes.
        let mut wire: Vec<(bool, Vec<u8>)> = Vec::new();
        let mut open: Option<(bool, Vec<u8>)> = None;
        for frame in of_type(trace, "frame").iter().filter(|f| f["dir"] == dir) {
            if frame["opcode"].as_u64().unwrap() >= 8 {
                continue;
            }
            let message = open.get_or_insert_with(|| (frame["rsv1"] == true, Vec::new()));
            message.1.extend(payload_bytes(frame));
            if frame["fin"] == true {
                wire.extend(open.take());
            }
        }
        let data: Vec<Vec<u8>> = of_type(trace, "message")
            .iter()
            .filter(|m| m["dir"] == dir && m["opcode"].as_u64().unwrap() < 8)
            .map(|m| payload_bytes(m))
            .collect();
        assert_eq!(wire.len(), data.len(), "{dir}");
        assert!(wire.iter().any(|(compressed, _)| *compressed), "{dir}");
        let no_context = params.no_context_takeover(direction);
        let mut inflater = Inflater::new(no_context);
        for ((compressed, bytes), expected) in wire.iter().zip(&data) {
            if !compressed {
                assert_eq!(bytes, expected, "{dir}");
                continue;
            }
            let mut inflated = Vec::new();
            inflater.begin_message();
            inflater
                .inflate(bytes, &mut |d| inflated.extend_from_slice(d))
                .unwrap();
            inflater
                .end_message(&mut |d| inflated.extend_from_slice(d))
                .unwrap();
            assert_eq!(
                &inflated, expected,
                "{dir}: wstap's Inflater on the peer's bytes"
            );
        }
        let mut deflater = Deflater::new(params, direction);
        let window = params.window_bits(direction).max(9);
        let mut zlib = Decompress::new_with_window_bits(false, window);
        for expected in &data {
            let mut compressed = Vec::new();
            deflater.compress(expected, &mut compressed).unwrap();
            if no_context {
                zlib.reset(false);
            }
            let input = [&compressed[..], &MESSAGE_TAIL].concat();
            let (start, mut out) = (zlib.total_in(), Vec::new());
            loop {
                let consumed = (zlib.total_in() - start) as usize;
                let before = (zlib.total_in(), zlib.total_out());
                out.reserve(64 * 1024);
                zlib.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
                    .expect("zlib reads what the Deflater wrote, within the window");
                let done = (zlib.total_in() - start) as usize == input.len();
                let stuck = (zlib.total_in(), zlib.total_out()) == before;
                if (done && out.len() < out.capacity()) || stuck {
                    break;
                }
            }
            assert_eq!(&out, expected, "{dir}: the Deflater, read back by zlib");
        }
    }
}

/// Python's websockets on both ends with wstap in reverse mode between them: the server
/// behind a reverse listener (over TLS with `tls`, the listener then speaking TLS with a
/// certificate from wstap's CA), the client connecting straight to wstap. The server must
/// see its own `Host`, and the trace and the capture must hold every frame.
async fn python_through_reverse(tls: bool) {
    use tokio::io::AsyncBufReadExt;
    let pki = TestPki::new();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/python_reverse.py");
    let mut server = tokio::process::Command::new("python3");
    server.arg(script).arg("serve");
    if tls {
        server.args([&pki.server_chain_pem_path, &pki.server_key_pem_path]);
    }
    let mut server = server
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut seen = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let next_line = async |seen: &mut tokio::io::Lines<_>| -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), seen.next_line())
            .await
            .expect("the server reports in time")
            .unwrap()
            .expect("a line from the server");
        serde_json::from_str(&line).unwrap()
    };
    let port = next_line(&mut seen).await["port"].as_u64().unwrap();
    let upstream = match tls {
        true => format!("localhost:{port}"),
        false => format!("127.0.0.1:{port}"),
    };
    let scheme = if tls { "wss" } else { "ws" };
    let mut reverse = wstap_proxy::ReverseProxy::new(
        "127.0.0.1:0".parse().unwrap(),
        &format!("{scheme}://{upstream}"),
    )
    .unwrap();
    if tls {
        reverse.tls = wstap_proxy::ReverseTls::FromCa;
        reverse.rewrite_origin = true;
    }
    let proxy = Proxy::start_recording(wstap_proxy::ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        tls: Some(pki.intercepting()),
        reverse: vec![reverse],
        ..Default::default()
    })
    .await;
    let front = proxy.reverse_addr();
    let front_host = if tls { "localhost" } else { "127.0.0.1" };
    let mut client = tokio::process::Command::new("python3");
    client
        .arg(script)
        .arg("connect")
        .arg(format!("{scheme}://{front_host}:{}/python", front.port()));
    if tls {
        client.arg(proxy.ca_pem());
    }
    let out = tokio::time::timeout(Duration::from_secs(60), client.output())
        .await
        .expect("the client finishes within a minute")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut sent: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();

    // The server saw its own name, and the client's Origin unless asked otherwise.
    let request = next_line(&mut seen).await;
    assert_eq!(request["host"], upstream, "{request}");
    assert_eq!(request["path"], "/python", "{request}");
    let origin = match tls {
        true => format!("https://{upstream}"),
        false => "http://wstap.test".to_owned(),
    };
    assert_eq!(request["origin"], origin, "{request}");

    let capture = proxy.capture_path.clone().unwrap();
    let trace = proxy.stop(Duration::from_secs(5)).await;
    let start = &of_type(&trace, "session_start")[0];
    assert_eq!(start["via"], "reverse", "{start}");
    assert_eq!(start["listener"], front.to_string(), "{start}");
    assert_eq!(start["tls"], tls, "{start}");
    // The trace records the URL the request went to.
    sent["url"] = Value::String(format!("{scheme}://{upstream}/python"));
    assert_session_traced(&trace, &sent);

    let db = rusqlite::Connection::open(capture.join("capture.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    let frames = of_type(&trace, "frame").len() as i64;
    let messages = of_type(&trace, "message").len() as i64;
    assert_eq!(count("SELECT count(*) FROM frames"), frames);
    assert_eq!(count("SELECT count(*) FROM messages"), messages);
    assert_eq!(
        count("SELECT count(*) FROM sessions WHERE via = 'reverse' AND status = 101"),
        1
    );
}

#[tokio::test]
#[ignore = "needs python3 with websockets; .ci/run installs it and runs ignored tests"]
async fn python_websockets_through_a_reverse_listener_over_ws() {
    python_through_reverse(false).await;
}

#[tokio::test]
#[ignore = "needs python3 with websockets; .ci/run installs it and runs ignored tests"]
async fn python_websockets_through_a_reverse_listener_over_wss() {
    python_through_reverse(true).await;
}
