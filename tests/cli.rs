//! The real `wstap` binary: the demo runs and exits by itself, and `wstap export` turns its
//! trace into session JSON and HAR.

mod support;

use std::process::Command;
use support::binary::{
    free_loopback_addr, rss_kib, sigterm, spawn_listening, wstap, wstap_command,
};
use support::{temp_path, Value};

#[test]
fn demo_exits_by_itself_and_its_trace_exports_to_json_and_har() {
    let trace = temp_path("demo.ndjson");
    let trace_arg = trace.to_str().unwrap();
    let demo = wstap(&["demo", "--duration", "0.5", "--trace", trace_arg]);
    let stdout = String::from_utf8_lossy(&demo.stdout);
    assert!(
        demo.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&demo.stderr)
    );
    for line in [
        "\"Welcome Ronald.\"",
        "\"John joined.\"",
        "\"Adam says: Sorry, can't stay. Bye!\"",
        "TYPE: PING",
        "CLOSE: 4001 \"gone to lunch\"",
    ] {
        assert!(stdout.contains(line), "the log lacks {line}:\n{stdout}");
    }
    assert!(stdout.contains("masked using KEY: "), "{stdout}");

    let json = wstap(&["export", trace_arg, "--format", "json"]);
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let doc: Value = serde_json::from_slice(&json.stdout).unwrap();
    let sessions = doc["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 3, "Ronald, John and Adam");
    for session in sessions {
        assert_eq!(session["handshake"]["accept_valid"], true);
        assert_eq!(session["end"]["outcome"], "closed");
        assert!(session["stats"]["frames"]["s2c"].as_u64().unwrap() > 0);
    }

    let one = wstap(&["export", trace_arg, "--session", "2"]);
    let doc: Value = serde_json::from_slice(&one.stdout).unwrap();
    assert_eq!(doc["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(doc["sessions"][0]["session"], 2);

    let har_path = temp_path("demo.har");
    let har = wstap(&[
        "export",
        trace_arg,
        "--format",
        "har",
        "-o",
        har_path.to_str().unwrap(),
    ]);
    assert!(
        har.status.success(),
        "{}",
        String::from_utf8_lossy(&har.stderr)
    );
    let har: Value = serde_json::from_str(&std::fs::read_to_string(&har_path).unwrap()).unwrap();
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(entries.len(), 3);
    let ronald = entries
        .iter()
        .find(|e| {
            e["request"]["url"]
                .as_str()
                .unwrap()
                .ends_with("name=Ronald")
        })
        .unwrap();
    assert_eq!(ronald["_resourceType"], "websocket");
    assert_eq!(ronald["response"]["status"], 101);
    let messages = ronald["_webSocketMessages"].as_array().unwrap();
    assert_eq!(messages[0]["type"], "receive");
    assert_eq!(messages[0]["data"], "Welcome Ronald.");
    assert!(messages
        .iter()
        .any(|m| m["type"] == "send" && m["data"] == "Hi John!"));

    let missing = wstap(&["export", trace_arg, "--session", "99"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no session 99"));
    let _ = std::fs::remove_file(trace);
    let _ = std::fs::remove_file(har_path);
}

#[test]
fn export_of_a_file_that_is_neither_a_capture_nor_a_trace_fails_clearly() {
    let path = temp_path("not-a-trace.txt");
    std::fs::write(&path, "hello\n").unwrap();
    let out = wstap(&["export", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is neither a wstap capture") && stderr.lines().count() == 1,
        "{stderr}"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn an_unwritable_trace_path_is_a_clear_error_at_start() {
    let out = wstap(&[
        "--listen",
        "127.0.0.1:0",
        "--trace",
        "/nonexistent-dir/trace.ndjson",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot write the trace file /nonexistent-dir/trace.ndjson"),
        "{stderr}"
    );
}

#[test]
fn a_proxy_that_accepts_connections_has_its_ca_ready() {
    // Scripts (and the benchmark) wait for the port, then fetch the CA to trust it.
    let ca_dir = temp_path("fresh-ca");
    let addr = free_loopback_addr();
    let mut child = wstap_command()
        .args(["-q", "--listen", &addr.to_string(), "--ca-dir"])
        .arg(&ca_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(std::time::Instant::now() < deadline, "wstap did not start");
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let pem = std::fs::read_to_string(ca_dir.join("wstap-ca.pem"));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&ca_dir);
    let pem = pem.expect("the CA certificate exists once the port accepts");
    assert!(
        pem.trim_end().ends_with("-----END CERTIFICATE-----"),
        "{pem}"
    );
}

#[test]
fn a_taken_port_fails_before_a_ca_is_made() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let ca_dir = temp_path("unmade-ca");
    let out = wstap(&["--listen", &addr, "--ca-dir", ca_dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&addr),
        "the error names the address: {stderr}"
    );
    assert!(
        !ca_dir.exists(),
        "no CA is created for a proxy that cannot start"
    );
}

/// Starts the real binary on a free port with a trace, waiting until it listens.
fn spawn_wstap(
    trace: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, std::net::SocketAddr) {
    spawn_wstap_with(trace, extra, |_| {})
}

/// [`spawn_wstap`], with `configure` applied to the command before it runs.
fn spawn_wstap_with(
    trace: &std::path::Path,
    extra: &[&str],
    configure: impl FnOnce(&mut Command),
) -> (std::process::Child, std::net::SocketAddr) {
    let mut command = wstap_command();
    command
        .args([
            "--no-intercept",
            "--no-capture",
            "--trace",
            trace.to_str().unwrap(),
        ])
        .args(extra);
    configure(&mut command);
    spawn_listening(command)
}

/// An echo session through `proxy` sending messages until told to stop.
async fn chatter(
    proxy: std::net::SocketAddr,
    server: std::net::SocketAddr,
    stop: tokio::sync::watch::Receiver<bool>,
) -> usize {
    use futures_util::{SinkExt, StreamExt};
    let stream = support::tunnel(proxy, server).await;
    let Ok((mut ws, _)) = tokio_tungstenite::client_async(format!("ws://{server}/"), stream).await
    else {
        return 0;
    };
    let mut echoed = 0;
    while !*stop.borrow() {
        let text = format!("message {echoed} {}", "x".repeat(echoed % 300));
        if ws
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .is_err()
        {
            break;
        }
        match ws.next().await {
            Some(Ok(_)) => echoed += 1,
            _ => break,
        }
    }
    echoed
}

#[tokio::test]
async fn after_kill_9_every_complete_trace_line_parses() {
    let (server, _) = support::echo_server().await;
    let trace = temp_path("killed.ndjson");
    let (mut child, proxy) = spawn_wstap(&trace, &["-q"]);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let talkers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(chatter(proxy, server, stop.clone())))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    child.kill().unwrap(); // SIGKILL, mid-traffic
    child.wait().unwrap();
    let _ = stop_tx.send(true);
    let mut echoed = 0;
    for t in talkers {
        echoed += t.await.unwrap();
    }
    assert!(echoed > 0, "traffic flowed before the kill");
    let text = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let complete: Vec<&str> = lines
        .iter()
        .filter(|l| l.ends_with('\n'))
        .copied()
        .collect();
    assert!(
        complete.len() > 10,
        "the trace was flushed while running ({} lines)",
        complete.len()
    );
    for line in &complete {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("a complete line does not parse ({e}): {line}"));
    }
    assert!(
        lines.len() - complete.len() <= 1,
        "at most the last line is torn"
    );
    let _ = std::fs::remove_file(trace);
}

#[tokio::test]
async fn sigterm_closes_open_sessions_with_1001_records_them_and_prints_a_summary() {
    use futures_util::{SinkExt, StreamExt};
    let (server, _) = support::echo_server().await;
    let trace = temp_path("sigterm.ndjson");
    let (child, proxy) = spawn_wstap(&trace, &["--grace", "0"]);
    let mut ws = support::ws_client(proxy, server).await;
    ws.send(tokio_tungstenite::tungstenite::Message::text("hello"))
        .await
        .unwrap();
    ws.next().await.unwrap().unwrap();
    sigterm(&child);
    let close = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.unwrap().code), 1001);
    drop(ws);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = std::fs::read_to_string(&trace).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Session 1 is spawn_wstap's readiness probe; the WebSocket is the other one.
    let end = events
        .iter()
        .find(|e| e["type"] == "session_end" && e["kind"] == "websocket")
        .expect("the session's end is recorded");
    assert!(
        end["error"].as_str().is_some_and(|e| e.contains("1001")),
        "{end}"
    );
    assert!(stderr.contains("stopping: no new connections"), "{stderr}");
    assert!(stderr.contains("stopped after 2 sessions"), "{stderr}");
    assert!(stderr.contains("trace complete"), "{stderr}");
    let _ = std::fs::remove_file(trace);
}

/// How much the slow-reader test pushes: `WSTAP_SLOW_READER_MIB` MiB, read to the end, or
/// (unset) as much as the client can in 3 s. The full run the hardening issue names is
/// `WSTAP_SLOW_READER_MIB=1024`: 1 GiB at 1 MiB/s, measured at 24 minutes (each 64 KiB
/// read is followed by a 62.5 ms sleep, so the reader averages about 0.7 MiB/s).
fn slow_reader_volume() -> Option<u64> {
    let mib: u64 = std::env::var("WSTAP_SLOW_READER_MIB").ok()?.parse().ok()?;
    Some(mib << 20)
}

#[tokio::test]
async fn a_fast_client_and_a_slow_server_keep_the_proxy_small() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const FRAME: usize = 1 << 20;
    let volume = slow_reader_volume();
    // A server that accepts the handshake, then reads 64 KiB every 62.5 ms: 1 MiB/s.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let read = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&read);
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        support::read_head(&mut stream).await;
        stream
            .write_all(support::switching("").as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => counter.fetch_add(n as u64, Ordering::Relaxed),
            };
            tokio::time::sleep(std::time::Duration::from_micros(62_500)).await;
        }
    });
    let trace = temp_path("backpressure.ndjson");
    let (mut child, proxy) = spawn_wstap(&trace, &["-q"]);
    let pid = child.id();
    let mut client = support::websocket_through(proxy, server, "").await;

    let frame = wstap_wire::FrameBuilder::binary()
        .mask([1, 2, 3, 4])
        .encode(&vec![0x5a; FRAME]);
    let frames = volume.map_or(u64::MAX, |v| v.div_ceil(frame.len() as u64));
    let sent = Arc::new(AtomicU64::new(0));
    let sent_counter = Arc::clone(&sent);
    let pusher = tokio::spawn(async move {
        for _ in 0..frames {
            if client.write_all(&frame).await.is_err() {
                break;
            }
            sent_counter.fetch_add(frame.len() as u64, Ordering::Relaxed);
        }
        // Held open until the server has read everything.
        client
    });
    let mut peak = 0;
    let mut samples = 0u64;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        peak = peak.max(rss_kib(pid));
        samples += 1;
        let done = match volume {
            Some(_) => read.load(Ordering::Relaxed) >= frames * (FRAME as u64 + 14),
            None => samples == 30,
        };
        if done {
            break;
        }
    }
    pusher.abort();
    let (sent, read) = (sent.load(Ordering::Relaxed), read.load(Ordering::Relaxed));
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_file(&trace);
    eprintln!(
        "slow reader: sent {} MiB, read {} MiB, proxy peak RSS {peak} KiB",
        sent >> 20,
        read >> 20
    );
    assert!(read > 1 << 20, "the server read at its pace ({read} bytes)");
    assert!(peak < 64 * 1024, "proxy RSS peaked at {peak} KiB");
    // Without backpressure the client would have pushed gigabytes in 3 s; with it, what it
    // sent is what the server read plus what kernel buffers and one relay read hold.
    assert!(
        sent - read < 48 << 20,
        "in flight: {} MiB (sent {sent}, read {read})",
        (sent - read) >> 20
    );
}

/// Echoes `count` text messages of 1 KiB through `proxy` to the echo server `server`.
async fn echo_kib_messages(
    proxy: std::net::SocketAddr,
    server: std::net::SocketAddr,
    count: usize,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = support::ws_client(proxy, server).await;
    for i in 0..count {
        let text = format!("{i:>1024}");
        ws.send(Message::text(text.clone())).await.unwrap();
        let echo = ws.next().await.unwrap().unwrap();
        assert_eq!(echo, Message::text(text), "echo {i} came back unchanged");
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn a_trace_that_fills_its_disk_mid_run_is_reported_loudly_and_the_relay_goes_on() {
    use std::os::unix::process::CommandExt;
    // A file-size limit makes the trace hit the end of its space part-way through, as a
    // full disk would: the writes succeed at first, then fail.
    const SPACE: u64 = 256 * 1024;
    let (server, _) = support::echo_server().await;
    let trace = temp_path("disk-full.ndjson");
    let (child, proxy) = spawn_wstap_with(&trace, &["-q"], |command| {
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: SPACE,
                    rlim_max: SPACE,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    });
    // 600 messages of 1 KiB each way need well over 256 KiB of trace; the session after
    // them starts when the trace can no longer be written at all.
    echo_kib_messages(proxy, server, 600).await;
    echo_kib_messages(proxy, server, 50).await;
    sigterm(&child);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("ERROR: writing the trace").count(),
        1,
        "one loud error, said once: {stderr}"
    );
    assert!(
        stderr.contains("Traffic is still relayed"),
        "the error says the relay goes on: {stderr}"
    );
    assert!(
        stderr.contains("the trace is incomplete"),
        "the summary says so too: {stderr}"
    );
    assert!(
        !output.status.success(),
        "an incomplete trace fails the run"
    );
    let text = std::fs::read(&trace).unwrap();
    let _ = std::fs::remove_file(&trace);
    assert!(text.len() as u64 <= SPACE);
    assert!(
        text.len() as u64 > SPACE / 2,
        "the trace was written until it was full"
    );
    // Everything up to the last, torn, line is a complete event.
    let text = String::from_utf8_lossy(&text);
    let complete = text.rsplit_once('\n').map_or("", |(whole, _)| whole);
    for line in complete.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
}

#[tokio::test]
async fn a_trace_reader_that_stalls_holds_up_the_relay_within_bounded_memory_and_loses_nothing() {
    use futures_util::{SinkExt, StreamExt};
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio_tungstenite::tungstenite::Message;
    // 400 echoes of 16 KiB, each captured whole in four records: 25 MiB of captures
    // against the trace's 4 MiB backlog.
    const ECHOES: usize = 400;
    // The trace goes into a pipe whose reader reads nothing for the first 2 s.
    let fifo = temp_path("stalled.fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let paused = Arc::new(AtomicBool::new(true));
    let reader = std::thread::spawn({
        let (fifo, paused) = (fifo.clone(), Arc::clone(&paused));
        move || {
            let mut pipe = std::fs::File::open(fifo).unwrap();
            while paused.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let mut trace = Vec::new();
            pipe.read_to_end(&mut trace).unwrap();
            trace
        }
    });
    let (server, _) = support::echo_server().await;
    let (child, proxy) = spawn_wstap(&fifo, &["-q"]);
    let ws = support::ws_client(proxy, server).await;
    let (mut sink, mut stream) = ws.split();
    let echoed = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&echoed);
    let receiver = tokio::spawn(async move {
        while counter.load(Ordering::Relaxed) < ECHOES {
            match stream.next().await {
                Some(Ok(Message::Binary(data))) if data.len() == 16 * 1024 => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                other => panic!("expected an echo, got {other:?}"),
            }
        }
        stream
    });
    let sender = tokio::spawn(async move {
        for i in 0..ECHOES {
            sink.send(Message::binary(vec![i as u8; 16 * 1024]))
                .await
                .unwrap();
        }
        sink
    });
    let mut peak = 0;
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        peak = peak.max(rss_kib(child.id()));
    }
    let during_stall = echoed.load(Ordering::Relaxed);
    paused.store(false, Ordering::Relaxed);
    let (sink, stream) = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        (sender.await.unwrap(), receiver.await.unwrap())
    })
    .await
    .expect("every echo arrives once the trace is read");
    let mut ws = sink.reunite(stream).unwrap();
    ws.close(None).await.unwrap();
    sigterm(&child);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let trace = reader.join().unwrap();
    let _ = std::fs::remove_file(&fifo);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        during_stall < ECHOES / 2,
        "the relay waited for the stalled trace: {during_stall} of {ECHOES} echoes got through"
    );
    assert!(peak < 32 * 1024, "proxy RSS peaked at {peak} KiB");
    let events: Vec<Value> = String::from_utf8(trace)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    for dir in ["c2s", "s2c"] {
        let messages = events
            .iter()
            .filter(|e| e["type"] == "message" && e["dir"] == dir && e["opcode"] == 2)
            .count();
        assert_eq!(messages, ECHOES, "every {dir} message is in the trace");
    }
}

/// A service manager may stop wstap the moment it accepts connections: it still stops
/// gracefully (exit 0, the capture finished), never killed by the signal's default.
#[test]
fn sigterm_right_after_wstap_listens_stops_it_gracefully() {
    for round in 0..5 {
        let capture = temp_path(&format!("early-stop-{round}.capture"));
        let mut command = wstap_command();
        command.args(["-q", "--no-web", "--capture", capture.to_str().unwrap()]);
        let (mut child, _) = spawn_listening(command);
        sigterm(&child);
        let status = child.wait().unwrap();
        assert!(status.success(), "round {round}: {status:?}");
        wstap_store::Capture::open(&capture).expect("a finished capture");
        let _ = std::fs::remove_dir_all(&capture);
    }
}
