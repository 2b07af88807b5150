//! Faults end to end: upstreams that never answer, reset mid-handshake or die mid-frame,
//! clients that vanish mid-message, and a decompression bomb. The client always gets a
//! clear status or a clean close, and the trace always says what happened.

mod support;

use std::time::Duration;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use wstap_proxy::ProxyConfig;
use wstap_wire::FrameBuilder;

/// A server that accepts connections, reads what comes, and then does `then`.
async fn misbehaving_server(then: &'static str) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = try_read_head(&mut stream).await;
                match then {
                    "silence" => tokio::time::sleep(Duration::from_secs(30)).await,
                    "reset" => {
                        let _ = stream.write_all(b"HTTP/1.1 101 Swi").await;
                        // SO_LINGER 0 makes the close a reset, which is the point here.
                        #[allow(deprecated)]
                        let _ = stream.set_linger(Some(Duration::ZERO));
                        drop(stream);
                    }
                    "die-mid-frame" => {
                        let _ = stream.write_all(switching("").as_bytes()).await;
                        let frame = FrameBuilder::binary().encode(&[9; 1000]);
                        let _ = stream.write_all(&frame[..300]).await;
                        drop(stream);
                    }
                    _ => {}
                }
            });
        }
    });
    addr
}

fn fast_timeouts() -> ProxyConfig {
    ProxyConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        handshake_timeout: Duration::from_millis(400),
        ..ProxyConfig::default()
    }
}

#[tokio::test]
async fn an_upstream_that_never_answers_the_handshake_gets_the_client_a_502() {
    let server = misbehaving_server("silence").await;
    let proxy = Proxy::start_with(fast_timeouts()).await;
    let mut client = handshake_sent(proxy.addr, server, "").await;
    let answer = String::from_utf8(read_to_end(&mut client).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(answer.contains("no complete head within"), "{answer}");
    let trace = proxy.stop(Duration::from_secs(1)).await;
    assert!(of_type(&trace, "http")[0]["error"]
        .as_str()
        .unwrap()
        .contains("upstream response"));
}

#[tokio::test]
async fn an_upstream_reset_mid_handshake_gets_the_client_a_502() {
    let server = misbehaving_server("reset").await;
    let proxy = Proxy::start().await;
    let mut client = handshake_sent(proxy.addr, server, "").await;
    let answer = String::from_utf8(read_to_end(&mut client).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    let trace = proxy.stop(Duration::from_secs(1)).await;
    let http = of_type(&trace, "http")[0];
    assert_eq!(http["responder"], "proxy");
    assert!(
        of_type(&trace, "handshake").is_empty(),
        "no handshake was completed, none is shown"
    );
}

#[tokio::test]
async fn an_upstream_dying_mid_frame_aborts_the_session_and_the_trace_counts_the_bytes() {
    let server = misbehaving_server("die-mid-frame").await;
    let proxy = Proxy::start().await;
    let mut client = websocket_through(proxy.addr, server, "").await;
    let relayed = read_to_end(&mut client).await;
    assert_eq!(
        relayed.len(),
        300,
        "the partial frame is relayed as far as it came"
    );
    drop(client);
    let trace = proxy.stop(Duration::from_secs(2)).await;
    let end = of_type(&trace, "session_end")[0];
    assert_eq!(end["outcome"], "aborted");
    let cut = &end["cut_frames"][0];
    assert_eq!(
        (
            cut["dir"].as_str(),
            cut["payload_received"].as_u64(),
            cut["payload_len"].as_u64()
        ),
        (Some("s2c"), Some(296), Some(1000))
    );
}

#[tokio::test]
async fn a_client_vanishing_mid_message_closes_the_upstream_and_aborts_the_session() {
    let (server, seen, server_task) = raw_server(switching(""), Vec::new()).await;
    let proxy = Proxy::start().await;
    let mut client = websocket_through(proxy.addr, server, "").await;
    send(
        &mut client,
        &FrameBuilder::text()
            .fin(false)
            .mask([1, 2, 3, 4])
            .encode(b"first half, then gone"),
    )
    .await;
    #[allow(deprecated)] // SO_LINGER 0: the drop below is a reset, as when a client crashes.
    client.set_linger(Some(Duration::ZERO)).unwrap();
    drop(client); // a reset, not a close
    tokio::time::timeout(Duration::from_secs(5), server_task)
        .await
        .expect("the upstream connection is closed too")
        .unwrap();
    assert!(!seen.lock().unwrap().bytes.is_empty());
    let trace = proxy.stop(Duration::from_secs(2)).await;
    let end = of_type(&trace, "session_end")[0];
    assert_eq!(end["outcome"], "aborted");
    let message = of_type(&trace, "message")[0];
    assert_eq!(message["incomplete"], true);
    assert_eq!(message["payload"]["data"], "first half, then gone");
}

#[tokio::test]
async fn a_decompression_bomb_is_relayed_with_its_inflated_size_counted_not_stored() {
    use flate2::{Compress, Compression, FlushCompress};
    // 1 GiB of zeros, compressed to about 1 MiB: deflate's best ratio.
    let zeros = vec![0u8; 1 << 20];
    let mut compressor = Compress::new(Compression::best(), false);
    let mut compressed = Vec::new();
    for _ in 0..1024 {
        compressed.reserve(zeros.len());
        compressor
            .compress_vec(&zeros, &mut compressed, FlushCompress::None)
            .unwrap();
    }
    compressed.reserve(1 << 16);
    compressor
        .compress_vec(&[], &mut compressed, FlushCompress::Sync)
        .unwrap();
    compressed.truncate(compressed.len() - 4);
    let bomb = FrameBuilder::binary().rsv1(true).encode(&compressed);
    let (server, _, server_task) = raw_server(
        switching("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
        bomb.clone(),
    )
    .await;
    let proxy = Proxy::start().await;
    let before = support::reset_peak_rss_kib();
    let mut client = websocket_through(
        proxy.addr,
        server,
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    )
    .await;
    assert_eq!(
        read_exact(&mut client, bomb.len()).await,
        bomb,
        "relayed unchanged"
    );
    client.shutdown().await.unwrap();
    server_task.await.unwrap();
    let trace = proxy.stop(Duration::from_secs(2)).await;
    let message = of_type(&trace, "message")
        .into_iter()
        .find(|m| m["dir"] == "s2c")
        .unwrap();
    assert_eq!(
        message["len"].as_u64(),
        Some(1 << 30),
        "inflated size counted in full"
    );
    // This process holds the test's peers and the proxy; inflating the gigabyte anywhere
    // in it would show here.
    let grown = support::peak_rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "peak RSS grew by {grown} KiB");
    assert_eq!(message["payload"]["truncated"], true);
    assert!(message["wire_len"].as_u64().unwrap() < 1 << 20);
}
