//! Hardening end to end: connection limits, proxy authentication, loops to the proxy
//! itself, handshake timeouts, graceful shutdown (1001 to both sides, every session end
//! recorded), a thousand concurrent sessions, and a killed proxy's trace.

mod support;

use futures_util::{stream, SinkExt, StreamExt};
use std::time::Duration;
use support::*;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use wstap_proxy::ProxyConfig;

fn config() -> ProxyConfig {
    ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..ProxyConfig::default()
    }
}

#[tokio::test]
async fn beyond_max_connections_new_clients_get_503_and_open_ones_carry_on() {
    let (server, _) = echo_server().await;
    let proxy = Proxy::start_with(ProxyConfig {
        max_connections: Some(2),
        ..config()
    })
    .await;
    let mut held = ws_client(proxy.addr, server).await;
    let _second = tunnel(proxy.addr, server).await;

    let (mut third, head) = connect_raw(proxy.addr, &server.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let body = String::from_utf8(read_to_end(&mut third).await).unwrap();
    assert!(body.contains("--max-connections"), "{body}");

    held.send(Message::text("unaffected")).await.unwrap();
    assert_eq!(
        held.next().await.unwrap().unwrap().into_text().unwrap(),
        "unaffected"
    );
    drop(held);
    drop(_second);
    // Once they are gone there is room again.
    let mut served = false;
    for _ in 0..50 {
        let (stream, head) = connect_raw(proxy.addr, &server.to_string()).await;
        if head.starts_with("HTTP/1.1 200") {
            drop(stream);
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a slot frees up when a session ends");
    let trace = proxy.stop(Duration::from_secs(1)).await;
    assert!(of_type(&trace, "http")
        .iter()
        .any(|e| e["response"]["status"] == 503));
}

#[tokio::test]
async fn proxy_auth_is_required_checked_and_never_forwarded() {
    let (server, requests) = echo_server().await;
    let proxy = Proxy::start_with(ProxyConfig {
        proxy_auth: Some("alice:s3cret".into()),
        ..config()
    })
    .await;

    let (_, head) = connect_raw(proxy.addr, &server.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 407"), "{head}");
    assert!(
        head.contains("Proxy-Authenticate: Basic realm=\"wstap\""),
        "{head}"
    );

    let wrong = base64_of("alice:guess");
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    let request =
        format!("CONNECT {server} HTTP/1.1\r\nProxy-Authorization: Basic {wrong}\r\n\r\n");
    send(&mut client, request.as_bytes()).await;
    let answer = String::from_utf8(read_to_end(&mut client).await).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 407") && answer.contains("wrong proxy credentials"),
        "{answer}"
    );

    // The right credentials, in absolute form: the server must not see them.
    let right = base64_of("alice:s3cret");
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    let extra = format!("Proxy-Authorization: Basic {right}\r\n");
    send(
        &mut client,
        client_handshake(&server.to_string(), &format!("ws://{server}/"), &extra).as_bytes(),
    )
    .await;
    let head = String::from_utf8(read_head(&mut client).await).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    drop(client);
    let (_, headers) = requests.lock().unwrap()[0].clone();
    assert!(
        headers.iter().all(|(n, _)| n != "proxy-authorization"),
        "{headers:?}"
    );
    let trace = proxy.stop(Duration::from_secs(1)).await;
    assert_eq!(
        of_type(&trace, "http")
            .iter()
            .filter(|e| e["response"]["status"] == 407)
            .count(),
        2
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn requests_to_the_proxy_itself_are_refused_not_looped() {
    let proxy = Proxy::start().await;
    let (_, head) = connect_raw(proxy.addr, &proxy.addr.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 508"), "{head}");
    let mut client = TcpStream::connect(proxy.addr).await.unwrap();
    send(
        &mut client,
        format!("GET http://{}/ HTTP/1.1\r\n\r\n", proxy.addr).as_bytes(),
    )
    .await;
    let answer = String::from_utf8(read_to_end(&mut client).await).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 508") && answer.contains("would loop"),
        "{answer}"
    );
    let trace = proxy.stop(Duration::from_secs(1)).await;
    assert_eq!(
        of_type(&trace, "session_start").len(),
        2,
        "exactly the two clients: nothing looped back in"
    );
}

#[tokio::test]
async fn a_client_that_sends_nothing_times_out_with_408() {
    let proxy = Proxy::start_with(ProxyConfig {
        handshake_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let started = std::time::Instant::now();
    let mut silent = TcpStream::connect(proxy.addr).await.unwrap();
    let answer = String::from_utf8(read_to_end(&mut silent).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let trace = proxy.stop(Duration::from_secs(1)).await;
    let end = of_type(&trace, "session_end")[0];
    assert_eq!(end["outcome"], "error");
    assert!(
        end["error"].as_str().unwrap().contains("no complete head"),
        "{end}"
    );
}

#[tokio::test]
async fn shutdown_closes_open_websockets_with_1001_and_records_their_end() {
    let (server, _) = echo_server().await;
    let proxy = Proxy::start().await;
    let mut ws = ws_client(proxy.addr, server).await;
    ws.send(Message::text("before shutdown")).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_text().unwrap(),
        "before shutdown"
    );

    let stopping = tokio::spawn(proxy.stop(Duration::from_millis(200)));
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a close frame")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let close = close.expect("a close code");
    assert_eq!(close.code, CloseCode::Away);
    drop(ws);
    let trace = stopping.await.unwrap();
    let end = of_type(&trace, "session_end")[0];
    assert_eq!(end["outcome"], "aborted");
    assert!(end["error"].as_str().unwrap().contains("1001"), "{end}");
}

/// A stream in the middle of a frame when wstap stops gets its close frame only once the
/// frame is whole: the server receives the client's frame complete, then `1001`; the
/// client, whose stream was between frames, gets its `1001` at once.
#[tokio::test]
async fn shutdown_in_the_middle_of_a_frame_sends_1001_once_the_frame_is_whole() {
    let (server, seen, server_task) = raw_server(switching(""), Vec::new()).await;
    let proxy = Proxy::start().await;
    let mut client = websocket_through(proxy.addr, server, "").await;
    let frame = wstap_wire::FrameBuilder::text()
        .mask([1, 2, 3, 4])
        .encode(b"a frame cut in two by a shutdown");
    let (first, rest) = frame.split_at(10);
    send(&mut client, first).await;
    // Wait until the server has the first part, so the proxy is mid-frame for sure.
    for _ in 0..200 {
        if seen.lock().unwrap().bytes.len() >= first.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The proxy gives sessions 200 ms to end by themselves, then tells them to close.
    let stopping = tokio::spawn(proxy.stop(Duration::from_millis(200)));
    // The client's own stream was between frames: its close comes at once.
    let to_client =
        tokio::time::timeout(Duration::from_secs(5), read_exact(&mut client, 2 + 2 + 22))
            .await
            .expect("a close frame for the client");
    assert_eq!(
        &to_client[..4],
        &[0x88, 24, 0x03, 0xE9],
        "close 1001, unmasked"
    );
    assert_eq!(&to_client[4..], b"wstap is shutting down");
    send(&mut client, rest).await;
    let trace = stopping.await.unwrap();
    server_task.await.unwrap();
    let bytes = seen.lock().unwrap().bytes.clone();
    assert!(bytes.starts_with(&frame), "the frame whole, then the close");
    let mut analyzer = wstap_wire::StreamAnalyzer::new(
        wstap_wire::Direction::ClientToServer,
        wstap_wire::AnalyzerConfig::default(),
    );
    let mut records = Vec::new();
    analyzer.feed(
        &bytes[frame.len()..],
        wstap_wire::Timestamp(0),
        &mut records,
    );
    let close = records
        .iter()
        .find_map(|r| match r {
            wstap_wire::Record::Frame(f) => f.close.clone(),
            _ => None,
        })
        .expect("a close frame for the server");
    assert_eq!(close.code, Some(1001));
    let end = of_type(&trace, "session_end")[0];
    assert_eq!(
        end["error"],
        "wstap shut down: it sent close 1001 (Going Away) to both sides"
    );
    assert_eq!(end["frames"]["c2s"], 1, "the frame is recorded whole");
}

#[tokio::test]
async fn shutdown_gives_up_on_a_client_that_reads_nothing_and_records_the_end() {
    // The server floods the client, which never reads: the proxy's writes to it stall.
    let flood: Vec<u8> = (0..128)
        .flat_map(|_| wstap_wire::FrameBuilder::binary().encode(&[7u8; 256 * 1024]))
        .collect();
    let (server, _seen, server_task) = raw_server(switching(""), flood).await;
    let proxy = Proxy::start().await;
    let _client = websocket_through(proxy.addr, server, "").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One second for frame boundaries, one more for writes: then the session is dropped.
    let trace = tokio::time::timeout(
        Duration::from_secs(20),
        proxy.stop(Duration::from_millis(100)),
    )
    .await
    .expect("the proxy stops although a client reads nothing");
    server_task.abort();
    let end = of_type(&trace, "session_end")[0];
    let error = end["error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "wstap shut down: it ended the connection to the client without a close frame"
        ),
        "{error}"
    );
    assert!(
        error.ends_with("it sent close 1001 (Going Away) to the server"),
        "{error}"
    );
}

#[tokio::test]
async fn a_thousand_concurrent_sessions_all_echo_and_are_all_recorded() {
    let (server, _) = echo_server().await;
    let proxy = Proxy::start().await;
    let addr = proxy.addr;
    let sockets: Vec<_> = stream::iter(0..1000)
        .map(|_| async move { ws_client(addr, server).await })
        .buffer_unordered(100)
        .collect()
        .await;
    let answered = stream::iter(sockets.into_iter().enumerate())
        .map(|(i, mut ws)| async move {
            let text = format!("session {i}");
            ws.send(Message::text(text.clone())).await.unwrap();
            let echoed = ws.next().await.unwrap().unwrap().into_text().unwrap();
            ws.close(None).await.unwrap();
            while let Some(Ok(_)) = ws.next().await {}
            echoed.as_str() == text
        })
        .buffer_unordered(100)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    assert_eq!(answered, 1000);
    let trace = proxy.stop(Duration::from_secs(10)).await;
    let ends = of_type(&trace, "session_end");
    assert_eq!(ends.len(), 1000);
    assert!(ends
        .iter()
        .all(|e| e["outcome"] == "closed" && e["kind"] == "websocket"));
    assert_eq!(of_type(&trace, "handshake").len(), 1000);
}

/// Reads frames from `stream` until it closes; returns their (opcode, payload) pairs.
async fn frames_until_close(
    stream: &mut TcpStream,
    direction: wstap_wire::Direction,
) -> Vec<(u8, Vec<u8>)> {
    let bytes = read_to_end(stream).await;
    let mut analyzer =
        wstap_wire::StreamAnalyzer::new(direction, wstap_wire::AnalyzerConfig::default());
    let mut records = Vec::new();
    analyzer.feed(&bytes, wstap_wire::Timestamp(0), &mut records);
    records
        .into_iter()
        .filter_map(|r| match r {
            wstap_wire::Record::Frame(f) => {
                Some((f.header.opcode().bits(), f.payload.data.to_vec()))
            }
            wstap_wire::Record::Message(_) => None,
        })
        .collect()
}

#[tokio::test]
async fn strict_withholds_a_bad_client_frame_and_closes_both_sides_with_1002() {
    use wstap_wire::FrameBuilder;
    let (server, seen, server_task) = raw_server(switching(""), Vec::new()).await;
    let proxy = Proxy::start_with(ProxyConfig {
        strict: true,
        ..config()
    })
    .await;
    let mut client = websocket_through(proxy.addr, server, "").await;
    let good = FrameBuilder::text().mask([1, 2, 3, 4]).encode(b"fine");
    send(&mut client, &good).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    send(&mut client, &FrameBuilder::text().encode(b"unmasked")).await; // a client must mask
    let to_client = frames_until_close(&mut client, wstap_wire::Direction::ServerToClient).await;
    server_task.await.unwrap();

    assert_eq!(to_client.len(), 1, "{to_client:?}");
    assert_eq!(to_client[0].0, 8);
    assert_eq!(&to_client[0].1[..2], &1002u16.to_be_bytes());
    let received = seen.lock().unwrap().bytes.clone();
    assert!(received.starts_with(&good), "the good frame went through");
    let mut rest = received[good.len()..].to_vec();
    let header = wstap_wire::FrameHeader::parse(&rest).unwrap();
    assert_eq!(header.opcode(), wstap_wire::Opcode::Close);
    assert!(
        header.mask().is_some(),
        "wstap speaks to the server as a client: masked"
    );
    let start = usize::from(header.header_len());
    wstap_wire::mask::apply_mask(&mut rest[start..], header.mask().unwrap(), 0);
    assert_eq!(&rest[start..start + 2], &1002u16.to_be_bytes());
    assert!(
        !received.windows(8).any(|w| w == b"unmasked"),
        "the bad frame was withheld"
    );

    let trace = proxy.stop(Duration::from_secs(2)).await;
    let end = of_type(&trace, "session_end")[0];
    assert_eq!(end["outcome"], "aborted");
    let error = end["error"].as_str().unwrap();
    assert!(
        error.contains("--strict")
            && error.contains("unmasked_client_frame")
            && error.contains("1002"),
        "{error}"
    );
    let recorded = of_type(&trace, "frame").into_iter().any(|f| {
        f["violations"]
            .to_string()
            .contains("unmasked_client_frame")
    });
    assert!(recorded, "the offending frame is in the trace");
}

/// The frames before a bad one in the same read reach the server; the bad one and what
/// follows it do not, and the record says exactly that.
#[tokio::test]
async fn strict_forwards_the_good_frames_of_a_read_and_withholds_from_the_bad_one_on() {
    use wstap_wire::FrameBuilder;
    let (server, seen, server_task) = raw_server(switching(""), Vec::new()).await;
    let proxy = Proxy::start_with(ProxyConfig {
        strict: true,
        ..config()
    })
    .await;
    let mut client = websocket_through(proxy.addr, server, "").await;
    let good = FrameBuilder::text().mask([1, 2, 3, 4]).encode(b"fine");
    let bad = FrameBuilder::text().encode(b"unmasked"); // a client must mask
    let after = FrameBuilder::text().mask([5, 6, 7, 8]).encode(b"later");
    // One write: the proxy reads all three frames at once.
    send(
        &mut client,
        &[good.clone(), bad.clone(), after.clone()].concat(),
    )
    .await;
    let to_client = frames_until_close(&mut client, wstap_wire::Direction::ServerToClient).await;
    server_task.await.unwrap();

    assert_eq!(to_client.len(), 1, "only wstap's close: {to_client:?}");
    assert_eq!(&to_client[0].1[..2], &1002u16.to_be_bytes());
    let received = seen.lock().unwrap().bytes.clone();
    assert!(
        received.starts_with(&good),
        "the good frame before the bad one went through: {received:?}"
    );
    let rest = &received[good.len()..];
    let close = wstap_wire::FrameHeader::parse(rest).unwrap();
    assert_eq!(
        close.opcode(),
        wstap_wire::Opcode::Close,
        "then wstap's close"
    );
    assert!(close.mask().is_some());
    assert_eq!(rest.len() as u64, close.wire_len(), "and nothing else");

    let trace = proxy.stop(Duration::from_secs(2)).await;
    let frames: Vec<_> = of_type(&trace, "frame")
        .into_iter()
        .filter(|f| f["dir"] == "c2s")
        .collect();
    assert_eq!(
        frames.len(),
        2,
        "the good frame and the offending one: {frames:?}"
    );
    assert_eq!(frames[0]["payload"]["data"], "fine");
    assert_eq!(frames[0]["violations"], serde_json::json!([]));
    assert!(frames[1]["violations"]
        .to_string()
        .contains("unmasked_client_frame"));
    assert!(
        !of_type(&trace, "message")
            .iter()
            .any(|m| m["payload"]["data"] == "later"),
        "the frame after the bad one was never decoded, so never recorded"
    );
    let end = of_type(&trace, "session_end")[0];
    assert_eq!(
        end["withheld"],
        serde_json::json!({
            "dir": "c2s",
            "frame": 1,
            "bytes": bad.len() + after.len(),
            "whole_frame": true,
        })
    );
    assert_eq!(
        end["bytes"]["c2s"],
        good.len(),
        "relayed: the good frame only"
    );
}

#[tokio::test]
async fn strict_closes_with_1007_for_invalid_utf8_and_without_strict_relays_it() {
    use wstap_wire::FrameBuilder;
    let bad = FrameBuilder::text().encode(b"bad \xff utf-8");
    for strict in [true, false] {
        let (server, _, _task) = raw_server(switching(""), bad.clone()).await;
        let proxy = Proxy::start_with(ProxyConfig { strict, ..config() }).await;
        let mut client = websocket_through(proxy.addr, server, "").await;
        if strict {
            let frames =
                frames_until_close(&mut client, wstap_wire::Direction::ServerToClient).await;
            assert_eq!(frames.len(), 1, "only wstap's close: {frames:?}");
            assert_eq!(&frames[0].1[..2], &1007u16.to_be_bytes());
        } else {
            assert_eq!(
                read_exact(&mut client, bad.len()).await,
                bad,
                "relayed unchanged"
            );
        }
        drop(client);
        let trace = proxy.stop(Duration::from_secs(1)).await;
        let flagged = of_type(&trace, "frame")
            .into_iter()
            .any(|f| f["violations"].to_string().contains("invalid_utf8"));
        assert!(flagged, "recorded either way (strict: {strict})");
    }
}
