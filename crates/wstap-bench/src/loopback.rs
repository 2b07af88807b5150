//! What a loopback round trip costs on this machine, and what a relay adds to it, with
//! nothing else in the way: raw TCP, 64-byte messages, one at a time, blocking threads for
//! the peers, no WebSocket, no TLS, no trace.
//!
//! The latency rows read against these. On a VM whose idle vCPUs halt at once (no guest
//! halt polling), every hop that has to wake a halted vCPU pays for it, so the same round
//! trip costs several times more with idle cores than with one core kept busy. A relay adds
//! two hops. How much they cost depends on how the relay waits: a thread blocked in
//! `read` on each direction, or one event loop (`epoll` via tokio) for all sessions. wstap
//! is the second kind: it must hold 10,000 idle sessions at a few KiB each, which two
//! threads per session cannot.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Bytes per message.
const SIZE: usize = 64;

/// Round trips run before measuring, so connections and caches are warm.
const WARM_UP: usize = 100;

/// Round-trip time quantiles, in µs.
#[derive(Debug, Clone, Copy)]
pub struct RoundTrip {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// The ways a round trip is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Client to echo server, nothing else running.
    Direct,
    /// The same, while a thread spins on one core so that it never halts.
    DirectOneCoreBusy,
    /// Through a relay with a thread blocked in `read` for each direction.
    ThreadRelay,
    /// Through a relay on a tokio runtime (`copy_bidirectional`), as wstap and the floor
    /// relay wait.
    EventLoopRelay,
}

impl Path {
    /// Every path, in report order.
    pub const ALL: [Path; 4] = [
        Path::Direct,
        Path::DirectOneCoreBusy,
        Path::ThreadRelay,
        Path::EventLoopRelay,
    ];

    /// How the report names it.
    pub fn describe(self) -> &'static str {
        match self {
            Path::Direct => "direct, cores idle",
            Path::DirectOneCoreBusy => "direct, one core kept busy",
            Path::ThreadRelay => "via a relay with a thread per direction",
            Path::EventLoopRelay => "via a tokio relay (copy_bidirectional)",
        }
    }

    /// The key in the JSON report.
    pub fn key(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::DirectOneCoreBusy => "direct_one_core_busy",
            Path::ThreadRelay => "thread_relay",
            Path::EventLoopRelay => "event_loop_relay",
        }
    }
}

/// Measures one round of `path` for `duration` (blocking; run it off the async runtime).
pub fn measure(path: Path, duration: Duration) -> io::Result<RoundTrip> {
    let server = echo_server()?;
    let target = match path {
        Path::Direct | Path::DirectOneCoreBusy => server,
        Path::ThreadRelay => thread_relay(server)?,
        Path::EventLoopRelay => event_loop_relay(server)?,
    };
    let spinning = Arc::new(AtomicBool::new(true));
    let spinner = (path == Path::DirectOneCoreBusy).then(|| {
        let spinning = Arc::clone(&spinning);
        thread::spawn(move || {
            while spinning.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        })
    });
    let measured = ping_pong(target, duration);
    spinning.store(false, Ordering::Relaxed);
    if let Some(spinner) = spinner {
        let _ = spinner.join();
    }
    measured
}

/// Sends a message, waits for its echo, and again, for `duration`.
fn ping_pong(target: SocketAddr, duration: Duration) -> io::Result<RoundTrip> {
    let mut stream = TcpStream::connect(target)?;
    stream.set_nodelay(true)?;
    let message = [0x5Au8; SIZE];
    let mut echo = [0u8; SIZE];
    let mut samples = Vec::new();
    let deadline = Instant::now() + duration;
    for round in 0.. {
        let start = Instant::now();
        stream.write_all(&message)?;
        stream.read_exact(&mut echo)?;
        if round >= WARM_UP {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
            if Instant::now() > deadline && samples.len() >= 100 {
                break;
            }
        }
    }
    // Closing our end ends the relay's and the server's threads in turn.
    drop(stream);
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok(RoundTrip {
        p50: pick(0.50),
        p99: pick(0.99),
    })
}

/// An echo server for one connection, on a thread that ends when the client leaves.
fn echo_server() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || -> io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut message = [0u8; SIZE];
        while stream.read_exact(&mut message).is_ok() {
            stream.write_all(&message)?;
        }
        Ok(())
    });
    Ok(addr)
}

/// A relay for one connection to `upstream`, with a blocking thread per direction.
fn thread_relay(upstream: SocketAddr) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || -> io::Result<()> {
        let (client, _) = listener.accept()?;
        let server = TcpStream::connect(upstream)?;
        client.set_nodelay(true)?;
        server.set_nodelay(true)?;
        let (client_in, server_in) = (client.try_clone()?, server.try_clone()?);
        thread::spawn(move || copy_until_eof(server_in, client));
        copy_until_eof(client_in, server);
        Ok(())
    });
    Ok(addr)
}

fn copy_until_eof(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// A relay for one connection to `upstream` on a tokio runtime of its own, with as many
/// workers as wstap's (one per core).
fn event_loop_relay(upstream: SocketAddr) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    thread::spawn(move || {
        // Spawned, not run in block_on: a task runs on the workers, where wakeups land,
        // as wstap's sessions do; block_on's thread would add a hand-off per wakeup.
        let relay = runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let (mut client, _) = listener.accept().await?;
            let mut server = tokio::net::TcpStream::connect(upstream).await?;
            client.set_nodelay(true)?;
            server.set_nodelay(true)?;
            tokio::io::copy_bidirectional(&mut client, &mut server).await?;
            io::Result::Ok(())
        });
        runtime.block_on(relay)
    });
    Ok(addr)
}

/// The cpuidle facts that decide what waking a core costs, when the kernel shows them:
/// the idle driver and, for `haltpoll`, how long an idle vCPU polls before it halts.
pub fn idle_policy() -> Option<String> {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_owned())
    };
    let driver = read("/sys/devices/system/cpu/cpuidle/current_driver")?;
    Some(
        match read("/sys/module/haltpoll/parameters/guest_halt_poll_ns") {
            Some(ns) => format!("cpuidle {driver}, guest_halt_poll_ns {ns}"),
            None => format!("cpuidle {driver}"),
        },
    )
}
