//! `wstap export --format pcapng` read by tshark: the WebSocket frames tshark decodes on
//! each leg (client to wstap, wstap to server) are the frames the capture holds, in
//! order, with the same opcode, FIN, RSV bits, masking key, length and payload, for a
//! plain session with large frames over IPv6, and for Python `websockets` sessions with
//! permessage-deflate over ws and over intercepted wss.
//!
//! Needs Debian's `tshark` (and python3 with websockets for the deflate cases); `.ci/run`
//! installs them and runs ignored tests.

mod support;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use support::binary::{exported_events, wstap};
use support::tls::TestPki;
use support::*;
use tokio_tungstenite::tungstenite::Message;
use wstap_proxy::ProxyConfig;

/// One frame as both sides see it: opcode, FIN, RSV bits, masking key and length (the
/// payloads are compared as texts, inflated, by the tests).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    opcode: u8,
    fin: bool,
    rsv: u8,
    key: String,
    len: u64,
}

/// The capture's frames, per direction, as `wstap export` gives them.
fn captured(capture: &std::path::Path) -> Vec<(String, Seen)> {
    exported_events(capture, "frame")
        .iter()
        .map(|f| {
            let rsv = (u8::from(f["rsv1"] == true) << 2)
                | (u8::from(f["rsv2"] == true) << 1)
                | u8::from(f["rsv3"] == true);
            (
                f["dir"].as_str().unwrap().to_owned(),
                Seen {
                    opcode: f["opcode"].as_u64().unwrap() as u8,
                    fin: f["fin"] == true,
                    rsv,
                    key: f["mask_key"].as_str().unwrap_or("").to_owned(),
                    len: f["payload_len"].as_u64().unwrap(),
                },
            )
        })
        .collect()
}

/// What tshark decodes of the export: per TCP stream, its WebSocket frames in order, each
/// with its direction (a masked frame is the client's), and the texts it shows (inflated,
/// for compressed messages).
fn tshark_frames(pcap: &std::path::Path, ports: &[u16]) -> (Vec<Vec<(String, Seen)>>, Vec<String>) {
    // Loopback servers listen on random ports, some of which tshark takes for another
    // protocol's: say they are HTTP, as a person would with Decode As.
    let decode_as: Vec<String> = ports
        .iter()
        .flat_map(|port| ["-d".to_owned(), format!("tcp.port=={port},http")])
        .collect();
    let out = std::process::Command::new("tshark")
        .args(&decode_as)
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-Y",
            "websocket",
            "-T",
            "fields",
        ])
        .args(["-E", "occurrence=a", "-E", "aggregator=|"])
        .args([
            "-e",
            "tcp.stream",
            "-e",
            "tcp.srcport",
            "-e",
            "websocket.opcode",
        ])
        .args([
            "-e",
            "websocket.fin",
            "-e",
            "websocket.rsv",
            "-e",
            "websocket.masking_key",
        ])
        .args([
            "-e",
            "websocket.payload_length",
            "-e",
            "websocket.payload_length_ext_16",
        ])
        .args([
            "-e",
            "websocket.payload_length_ext_64",
            "-e",
            "websocket.payload.text",
        ])
        .args(["-o", "websocket.decompress:TRUE"])
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut streams: Vec<Vec<(String, Seen)>> = Vec::new();
    let mut texts = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let cells: Vec<&str> = line.split('\t').collect();
        let stream: usize = cells[0].parse().unwrap();
        if streams.len() <= stream {
            streams.resize(stream + 1, Vec::new());
        }
        // A packet may carry several frames: fields come as lists.
        let list =
            |i: usize| -> Vec<&str> { cells.get(i).map_or(vec![], |c| c.split('|').collect()) };
        let (opcodes, fins, rsvs, keys) = (list(2), list(3), list(4), list(5));
        let (short, ext16, ext64) = (list(6), list(7), list(8));
        let (mut at16, mut at64) = (0, 0);
        for n in 0..opcodes.len() {
            let declared: u64 = short[n].parse().unwrap();
            let len = match declared {
                126 => {
                    at16 += 1;
                    ext16[at16 - 1].parse().unwrap()
                }
                127 => {
                    at64 += 1;
                    ext64[at64 - 1].parse().unwrap()
                }
                n => n,
            };
            let key = keys.get(n).copied().unwrap_or("").replace(':', "");
            // The client masks: a masked frame goes from the stream's opener.
            let dir = if key.is_empty() { "s2c" } else { "c2s" };
            streams[stream].push((
                dir.to_owned(),
                Seen {
                    opcode: opcodes[n].parse().unwrap(),
                    fin: fins[n] == "1" || fins[n] == "True",
                    rsv: u8::from_str_radix(rsvs[n].trim_start_matches("0x"), 16).unwrap(),
                    key,
                    len,
                },
            ));
        }
        texts.extend(
            list(9)
                .iter()
                .filter(|t| !t.is_empty())
                .map(|t| t.to_string()),
        );
    }
    (
        streams.into_iter().filter(|s| !s.is_empty()).collect(),
        texts,
    )
}

/// Exports `capture` as pcapng and checks that tshark sees the capture's frames on both
/// legs; returns the texts tshark shows.
fn export_and_compare(capture: &std::path::Path) -> Vec<String> {
    let pcap = temp_path("export.pcapng");
    let out = wstap(&[
        "export",
        capture.to_str().unwrap(),
        "--format",
        "pcapng",
        "-o",
        pcap.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let frames = captured(capture);
    assert!(frames.len() >= 4, "{frames:?}");
    // The ports the legs were served on: the listener's, and the server's.
    let port = |addr: &Value| {
        addr.as_str()
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
    };
    let mut ports: Vec<u16> = exported_events(capture, "session_start")
        .iter()
        .filter_map(|s| port(&s["listener"]))
        .collect();
    ports.extend(
        exported_events(capture, "handshake")
            .iter()
            .filter_map(|h| port(&h["upstream"]["peer"])),
    );
    let (streams, texts) = tshark_frames(&pcap, &ports);
    assert_eq!(
        streams.len(),
        2,
        "a client leg and an upstream leg: {streams:?}"
    );
    for (leg, seen) in streams.iter().enumerate() {
        assert_eq!(seen.len(), frames.len(), "leg {leg}");
        for (n, (theirs, ours)) in seen.iter().zip(&frames).enumerate() {
            assert_eq!(theirs, ours, "leg {leg}, frame {n}");
        }
    }
    texts
}

#[tokio::test]
#[ignore = "needs tshark (Debian package tshark); .ci/run installs it and runs ignored tests"]
async fn a_plain_session_over_ipv6_with_large_frames_reads_in_tshark_as_captured() {
    let proxy = Proxy::start_recording(ProxyConfig {
        listen: vec!["[::1]:0".parse().unwrap()],
        ..ProxyConfig::default()
    })
    .await;
    let listener = tokio::net::TcpListener::bind("[::1]:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                break;
            }
        }
    });
    let stream = tunnel(proxy.addr, server).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{server}/"
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("Authorization", "Bearer sesame-42".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    let big_text = "wstap ".repeat(1000); // a 16-bit length, over several segments
    let huge = vec![7u8; 70_000]; // a 64-bit length
    for message in [
        Message::text("hello"),
        Message::text(big_text.clone()),
        Message::binary(huge),
    ] {
        ws.send(message).await.unwrap();
        ws.next().await.unwrap().unwrap();
    }
    ws.close(None).await.unwrap();
    while ws.next().await.is_some() {}
    let capture = proxy.capture_path.clone().unwrap();
    proxy.stop(Duration::from_secs(5)).await;
    let texts = export_and_compare(&capture);
    assert_eq!(
        texts.iter().filter(|t| *t == "hello").count(),
        4,
        "{texts:?}"
    );
    assert_eq!(texts.iter().filter(|t| **t == big_text).count(), 4);
}

/// Python `websockets` (permessage-deflate with context takeover, a fragmented message,
/// a ping) through a recording proxy; over wss when `pki` is given.
async fn python_session(pki: Option<&TestPki>) -> std::path::PathBuf {
    let proxy = Proxy::start_recording(ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        tls: pki.map(TestPki::intercepting),
        ..ProxyConfig::default()
    })
    .await;
    let mut command = tokio::process::Command::new("python3");
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/python_websockets.py"
        ))
        .arg(format!("http://{}", proxy.addr))
        .kill_on_drop(true);
    if let Some(pki) = pki {
        command
            .arg(&pki.server_chain_pem_path)
            .arg(&pki.server_key_pem_path)
            .arg(proxy.ca_pem());
    }
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the peers finish within a minute")
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let capture = proxy.capture_path.clone().unwrap();
    proxy.stop(Duration::from_secs(5)).await;
    capture
}

/// The texts of the capture's whole text messages (inflated), as tshark must show them.
fn captured_texts(capture: &std::path::Path) -> Vec<String> {
    exported_events(capture, "message")
        .iter()
        .filter(|m| m["opcode"] == 1 && m["frames"] == 1)
        .map(|m| {
            let payload = &m["payload"];
            match payload["encoding"].as_str() {
                Some("base64") => String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(payload["data"].as_str().unwrap())
                        .unwrap(),
                )
                .unwrap(),
                _ => payload["data"].as_str().unwrap().to_owned(),
            }
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs tshark and python3 with websockets; .ci/run installs them and runs ignored tests"]
async fn a_deflated_python_session_over_ws_reads_in_tshark_as_captured() {
    let capture = python_session(None).await;
    let texts = export_and_compare(&capture);
    let expected = captured_texts(&capture);
    assert!(!expected.is_empty());
    for text in &expected {
        assert!(
            texts.contains(text),
            "tshark inflated {:.40}: {texts:.200?}",
            text
        );
    }
}

#[tokio::test]
#[ignore = "needs tshark and python3 with websockets; .ci/run installs them and runs ignored tests"]
async fn a_deflated_python_session_over_intercepted_wss_reads_in_tshark_decrypted() {
    let pki = TestPki::new();
    let capture = python_session(Some(&pki)).await;
    let texts = export_and_compare(&capture);
    for text in &captured_texts(&capture) {
        assert!(texts.contains(text), "tshark inflated {:.40}", text);
    }
}
