//! TLS interception end to end: wss through the proxy with wstap's CA, verified upstreams,
//! certificate caching, the CA on disk, failures answered with reasons, `--ignore-hosts`,
//! curl over https, and the `http://wstap/` page.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use support::tls::*;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use wstap_proxy::tls::ca::{CaError, CertificateAuthority};
use wstap_wire::FrameBuilder;

#[tokio::test]
async fn wss_echo_through_the_proxy_is_decrypted_into_the_trace() {
    let pki = TestPki::new();
    let server = tls_echo_server(&pki).await;
    let proxy = Proxy::start_tls(pki.intercepting()).await;
    let target = format!("localhost:{}", server.port());
    let (stream, head) = connect_raw(proxy.addr, &target).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let tls = tls_client(stream, client_trusting(&proxy.ca_pem()), "localhost")
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://{target}/secure"), tls)
        .await
        .unwrap();
    ws.send(Message::text("over tls")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("over tls"));
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    drop(ws);

    let trace = proxy.stop(Duration::from_secs(5)).await;
    let start = of_type(&trace, "session_start")[0];
    assert_eq!(start["tls"], true);
    assert_eq!(start["client_tls"]["sni"], "localhost");
    assert_eq!(
        start["client_tls"]["alpn"],
        serde_json::Value::Null,
        "the client offered no ALPN"
    );
    assert!(start["client_tls"]["version"]
        .as_str()
        .unwrap()
        .starts_with("TLSv1_"));
    assert!(!start["upstream_tls"]["cipher"].as_str().unwrap().is_empty());
    assert_eq!(start["upstream_tls"]["alpn"], "http/1.1");
    // The server's own certificate, for the inspector's TLS facts; a client shows none.
    let certificate = &start["upstream_tls"]["certificate"];
    assert_eq!(
        certificate["names"],
        serde_json::json!(["localhost", "127.0.0.1"])
    );
    assert_eq!(certificate["sha256"].as_str().unwrap().len(), 64);
    assert!(!certificate["issuer"].as_str().unwrap().is_empty());
    assert!(
        certificate["not_before"].as_str().unwrap() < certificate["not_after"].as_str().unwrap()
    );
    assert!(start["client_tls"].get("certificate").is_none());
    let handshake = of_type(&trace, "handshake")[0];
    assert_eq!(handshake["url"], format!("wss://{target}/secure"));
    assert_eq!(handshake["accept_valid"], true);
    let frame = of_type(&trace, "frame")
        .into_iter()
        .find(|f| f["dir"] == "c2s" && f["opcode"] == 1)
        .unwrap();
    assert_eq!(frame["payload"]["data"], "over tls");
    assert_eq!(of_type(&trace, "session_end")[0]["outcome"], "closed");
}

#[tokio::test]
async fn decrypted_bytes_reach_the_server_exactly() {
    let pki = TestPki::new();
    let (server, seen, server_task) = raw_tls_server(&pki, switching("")).await;
    let proxy = Proxy::start_tls(pki.intercepting()).await;
    let target = format!("localhost:{}", server.port());
    let (stream, _) = connect_raw(proxy.addr, &target).await;
    let mut tls = tls_client(stream, client_trusting(&proxy.ca_pem()), "localhost")
        .await
        .unwrap();
    let handshake = client_handshake(&target, "/raw", "X-Odd-Case: yes\r\n");
    send(&mut tls, handshake.as_bytes()).await;
    assert_eq!(read_head(&mut tls).await, switching("").as_bytes());
    let frames = [
        FrameBuilder::text()
            .fin(false)
            .mask([1, 2, 3, 4])
            .encode(b"frag"),
        FrameBuilder::ping().mask([5, 6, 7, 8]).encode(b""),
        FrameBuilder::continuation()
            .mask([9, 10, 11, 12])
            .encode(b"ment"),
        FrameBuilder::binary().encode(b"unmasked on purpose"),
    ]
    .concat();
    send(&mut tls, &frames).await;
    tls.shutdown().await.unwrap();
    server_task.await.unwrap();
    let (head, bytes) = {
        let seen = seen.lock().unwrap();
        (seen.head.clone(), seen.bytes.clone())
    };
    assert_eq!(head, handshake.as_bytes());
    assert_eq!(bytes, frames);
    let trace = proxy.stop(Duration::from_secs(5)).await;
    let message = of_type(&trace, "message")
        .into_iter()
        .find(|m| m["opcode_name"] == "TEXT")
        .unwrap();
    assert_eq!(message["payload"]["data"], "fragment");
}

#[tokio::test]
async fn an_ip_literal_gets_an_ip_certificate_and_the_second_connection_reuses_it() {
    let pki = TestPki::new();
    let server = tls_echo_server(&pki).await;
    let proxy = Proxy::start_tls(pki.intercepting()).await;
    let client_config = client_trusting(&proxy.ca_pem());
    let mut seen_certs = Vec::new();
    for _ in 0..2 {
        let stream = tunnel(proxy.addr, server).await;
        // An IP literal: rustls sends no SNI, so wstap uses the CONNECT host.
        let tls = tls_client(stream, client_config.clone(), "127.0.0.1")
            .await
            .unwrap();
        seen_certs.push(tls.get_ref().1.peer_certificates().unwrap()[0].clone());
        let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://{server}/"), tls)
            .await
            .unwrap();
        ws.send(Message::text("ip")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("ip"));
    }
    assert_eq!(
        seen_certs[0], seen_certs[1],
        "the cached certificate is served again"
    );
    assert_eq!(proxy.certificates_issued(), 1);
    let trace = proxy.stop(Duration::from_secs(1)).await;
    let start = of_type(&trace, "session_start")[0];
    assert_eq!(start["client_tls"]["sni"], serde_json::Value::Null);
}

#[tokio::test]
async fn an_untrusted_upstream_certificate_gets_a_502_naming_the_reason() {
    let pki = TestPki::new();
    let server = https_server(&pki).await;
    let mut config = pki.intercepting();
    config.upstream_ca.clear(); // the test CA is not trusted now
    let proxy = Proxy::start_tls(config).await;
    let target = format!("localhost:{}", server.port());
    let (stream, _) = connect_raw(proxy.addr, &target).await;
    let mut tls = tls_client(stream, client_trusting(&proxy.ca_pem()), "localhost")
        .await
        .unwrap();
    send(
        &mut tls,
        format!("GET /x HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes(),
    )
    .await;
    let answer = String::from_utf8(read_to_end(&mut tls).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(answer.contains("certificate"), "{answer}");

    let trace = proxy.stop(Duration::from_secs(1)).await;
    let http = of_type(&trace, "http")[0];
    assert_eq!(http["responder"], "proxy");
    assert_eq!(http["url"], format!("https://{target}/x"));
    assert!(
        http["error"].as_str().unwrap().contains("TLS handshake"),
        "{http}"
    );
    assert_eq!(of_type(&trace, "session_end")[0]["outcome"], "error");
}

#[tokio::test]
async fn insecure_accepts_an_untrusted_upstream() {
    let pki = TestPki::new();
    let server = https_server(&pki).await;
    let mut config = pki.intercepting();
    config.upstream_ca.clear();
    config.insecure = true;
    let proxy = Proxy::start_tls(config).await;
    let (stream, _) = connect_raw(proxy.addr, &format!("localhost:{}", server.port())).await;
    let mut tls = tls_client(stream, client_trusting(&proxy.ca_pem()), "localhost")
        .await
        .unwrap();
    send(
        &mut tls,
        b"GET /ok HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let answer = String::from_utf8(read_to_end(&mut tls).await).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("secure hello at /ok"),
        "{answer}"
    );
    proxy.stop(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn ignored_hosts_are_tunnelled_without_interception() {
    let pki = TestPki::new();
    let server = tls_echo_server(&pki).await;
    let mut config = pki.intercepting();
    config.ignore_hosts = vec![format!("^localhost:{}$", server.port())];
    let proxy = Proxy::start_tls(config).await;
    let (stream, _) = connect_raw(proxy.addr, &format!("localhost:{}", server.port())).await;
    // Trusting only the upstream's own CA: this works only if wstap stays out of the way.
    let tls = tls_client(stream, client_trusting(&pki.ca_pem_path), "localhost")
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/", tls)
        .await
        .unwrap();
    ws.send(Message::text("pinned")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("pinned"));
    drop(ws);
    let trace = proxy.stop(Duration::from_secs(5)).await;
    let end = of_type(&trace, "session_end")[0];
    assert_eq!(end["kind"], "tls-tunnel");
    assert!(end["bytes"]["c2s"].as_u64().unwrap() > 100);
    assert!(proxy_issued_nothing(&trace));
}

fn proxy_issued_nothing(trace: &[Value]) -> bool {
    of_type(trace, "frame").is_empty() && of_type(trace, "handshake").is_empty()
}

#[tokio::test]
async fn absolute_form_wss_is_dialled_over_verified_tls() {
    let pki = TestPki::new();
    let server = tls_echo_server(&pki).await;
    let proxy = Proxy::start_tls(pki.intercepting()).await;
    let mut client = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let url = format!("wss://localhost:{}/abs", server.port());
    send(
        &mut client,
        client_handshake("localhost", &url, "").as_bytes(),
    )
    .await;
    let head = String::from_utf8(read_head(&mut client).await).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    send(
        &mut client,
        &FrameBuilder::text().mask([1, 1, 1, 1]).encode(b"abs"),
    )
    .await;
    assert_eq!(
        read_exact(&mut client, 5).await,
        FrameBuilder::text().encode(b"abs")
    );
    drop(client);
    let trace = proxy.stop(Duration::from_secs(1)).await;
    assert_eq!(of_type(&trace, "handshake")[0]["url"], url);
}

async fn curl(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("curl")
        .args(args)
        .output()
        .await
        .expect("curl runs (CI installs it)")
}

#[tokio::test]
async fn curl_fetches_https_through_the_proxy_trusting_the_wstap_ca() {
    let pki = TestPki::new();
    let server = https_server(&pki).await;
    let proxy = Proxy::start_tls(pki.intercepting()).await;
    let proxy_url = format!("http://{}", proxy.addr);
    let ca = proxy.ca_pem();
    let url = format!("https://localhost:{}/curl", server.port());
    let out = curl(&[
        "-sS",
        "--proxy",
        &proxy_url,
        "--cacert",
        ca.to_str().unwrap(),
        &url,
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "secure hello at /curl"
    );

    // Without trusting the wstap CA, curl must refuse: interception is not silent.
    let refused = curl(&["-sS", "--proxy", &proxy_url, &url]).await;
    assert!(!refused.status.success());

    // The CA page serves the public certificate only.
    let pem = curl(&["-sS", "--proxy", &proxy_url, "http://wstap/ca.pem"]).await;
    assert_eq!(
        String::from_utf8_lossy(&pem.stdout),
        std::fs::read_to_string(&ca).unwrap()
    );
    let page = curl(&["-sS", "--proxy", &proxy_url, "http://wstap/"]).await;
    let page = String::from_utf8_lossy(&page.stdout).into_owned();
    assert!(
        page.contains("SHA-256 fingerprint") && page.contains("/ca.cer"),
        "{page}"
    );
    assert!(!page.contains("PRIVATE KEY"));
    let der = curl(&["-sS", "--proxy", &proxy_url, "http://wstap/ca.cer"]).await;
    assert_eq!(
        der.stdout.len(),
        std::fs::read(ca.with_extension("cer")).unwrap().len()
    );

    let trace = proxy.stop(Duration::from_secs(2)).await;
    let exchange = of_type(&trace, "http")
        .into_iter()
        .find(|e| e["url"] == url)
        .unwrap();
    assert_eq!(exchange["response"]["status"], 200);
    assert!(of_type(&trace, "session_start")
        .iter()
        .any(|s| s["tls"] == true));
}

#[test]
fn the_ca_is_kept_reused_and_never_overwritten() {
    let dir = temp_path("ca-reuse");
    let first = CertificateAuthority::load_or_create(&dir).unwrap();
    assert!(first.created());
    let second = CertificateAuthority::load_or_create(&dir).unwrap();
    assert!(!second.created());
    assert_eq!(first.fingerprint_sha256(), second.fingerprint_sha256());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |p: std::path::PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.join("wstap-ca-key.pem")), 0o600);
        assert_eq!(mode(dir.clone()), 0o700);
    }

    // A corrupt key is an error naming the file, and the file is left alone.
    let key = dir.join("wstap-ca-key.pem");
    std::fs::write(&key, "not a key").unwrap();
    let err = CertificateAuthority::load_or_create(&dir).unwrap_err();
    assert!(matches!(err, CaError::Corrupt { .. }));
    assert!(err.to_string().contains(key.to_str().unwrap()), "{err}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "not a key");

    // A missing certificate is an error too, not a new CA.
    std::fs::remove_file(dir.join("wstap-ca.pem")).unwrap();
    let err = CertificateAuthority::load_or_create(&dir).unwrap_err();
    assert!(matches!(err, CaError::Incomplete { .. }), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn wstaps_started_at_once_on_a_new_machine_share_one_new_ca() {
    for round in 0..5 {
        let dir = temp_path(&format!("ca-race-{round}"));
        let start = std::sync::Arc::new(std::sync::Barrier::new(8));
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let (dir, start) = (dir.clone(), std::sync::Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    CertificateAuthority::load_or_create(&dir)
                })
            })
            .collect();
        let cas: Vec<CertificateAuthority> = racers
            .into_iter()
            .map(|racer| racer.join().unwrap().expect("every racer gets the CA"))
            .collect();
        assert_eq!(
            cas.iter().filter(|ca| ca.created()).count(),
            1,
            "one made it"
        );
        let fingerprint = cas[0].fingerprint_sha256();
        assert!(cas.iter().all(|ca| ca.fingerprint_sha256() == fingerprint));
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".partial"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test]
async fn non_tls_bytes_after_connect_to_443_are_relayed_blind_and_recorded() {
    // A plain TCP service that answers "pong" to anything, standing where TLS was expected.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 16];
        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
        let _ = stream.write_all(b"pong").await;
    });
    let pki = TestPki::new();
    let proxy = Proxy::start_tls(pki.intercepting()).await;
    let (mut client, head) = connect_raw(proxy.addr, &format!("127.0.0.1:{port}")).await;
    assert!(head.starts_with("HTTP/1.1 200"));
    send(&mut client, b"\x00\x01not tls").await;
    assert_eq!(read_to_end(&mut client).await, b"pong");
    drop(client);
    let trace = proxy.stop(Duration::from_secs(2)).await;
    let end = of_type(&trace, "session_end")[0];
    assert_eq!(end["kind"], "tunnel");
    assert_eq!(end["bytes"]["s2c"], 4);
}

#[tokio::test]
async fn a_truncated_client_hello_is_recorded_and_the_proxy_carries_on() {
    let pki = TestPki::new();
    let server = tls_echo_server(&pki).await;
    let proxy = Proxy::start_tls(pki.intercepting()).await;
    let (mut client, _) = connect_raw(proxy.addr, &format!("localhost:{}", server.port())).await;
    // A handshake record header promising 512 bytes, then a few, then the end.
    send(
        &mut client,
        &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01],
    )
    .await;
    client.shutdown().await.unwrap();
    let _ = read_to_end(&mut client).await;
    // Still serving: a real TLS client gets through.
    let (stream, _) = connect_raw(proxy.addr, &format!("localhost:{}", server.port())).await;
    let tls = tls_client(stream, client_trusting(&proxy.ca_pem()), "localhost")
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/", tls)
        .await
        .unwrap();
    ws.send(Message::text("after")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("after"));
    drop(ws);
    let trace = proxy.stop(Duration::from_secs(2)).await;
    let failed = of_type(&trace, "session_end")
        .into_iter()
        .find(|e| e["kind"] == "tls")
        .expect("the cut hello is recorded");
    assert_eq!(failed["outcome"], "error");
    assert!(
        failed["error"].as_str().unwrap().contains("ClientHello"),
        "{failed}"
    );
}
