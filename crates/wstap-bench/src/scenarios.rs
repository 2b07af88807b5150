//! The load scenarios. Each runs one kind of traffic along a [`Route`] (direct or through
//! the proxy) for a bounded time or count, and measures it.

use crate::peers::{connect, Route, Ws};
use futures_util::{stream, SinkExt, StreamExt};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Sends `window` messages of `size` bytes and keeps that many in flight, each echo
/// answered with a new message, until `duration` ends. Returns messages per second.
pub async fn throughput(
    route: &Route,
    size: usize,
    window: usize,
    duration: Duration,
) -> Result<f64, String> {
    let ws = connect(route).await?;
    echo_rate(ws, size, window, duration).await
}

async fn echo_rate(ws: Ws, size: usize, window: usize, duration: Duration) -> Result<f64, String> {
    let (mut sink, mut stream) = ws.split();
    let payload: tokio_tungstenite::tungstenite::Bytes = vec![0xA5u8; size].into();
    for _ in 0..window {
        sink.send(Message::Binary(payload.clone()))
            .await
            .map_err(|e| e.to_string())?;
    }
    let start = Instant::now();
    let deadline = start + duration;
    let (mut sent, mut received) = (window as u64, 0u64);
    let mut counted = None;
    while received < sent {
        match stream.next().await {
            Some(Ok(Message::Binary(_))) => received += 1,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the connection closed mid-run".into()),
        }
        let now = Instant::now();
        if now < deadline {
            sink.send(Message::Binary(payload.clone()))
                .await
                .map_err(|e| e.to_string())?;
            sent += 1;
        } else if counted.is_none() {
            counted = Some((received, now - start));
        }
    }
    // Just drop the halves: a split sink's close() waits for the peer's close reply,
    // which only the (no longer polled) read half could receive.
    let (count, elapsed) = counted.unwrap_or((received, start.elapsed()));
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// Echoes `count` text messages of about `size` bytes through one session, `window` in
/// flight, each made by `text(n)`. Returns the seconds it took.
pub async fn fill(
    route: &Route,
    count: u64,
    size: usize,
    window: u64,
    text: impl Fn(u64, usize) -> String,
) -> Result<f64, String> {
    let ws = connect(route).await?;
    let (mut sink, mut stream) = ws.split();
    let start = Instant::now();
    let (mut sent, mut received) = (0u64, 0u64);
    while sent < window.min(count) {
        sink.send(Message::text(text(sent, size)))
            .await
            .map_err(|e| e.to_string())?;
        sent += 1;
    }
    while received < count {
        match stream.next().await {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the connection closed mid-run".into()),
        }
        if sent < count {
            sink.send(Message::text(text(sent, size)))
                .await
                .map_err(|e| e.to_string())?;
            sent += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let _ = sink.send(Message::Close(None)).await;
    Ok(elapsed)
}

/// Round-trip times of 64-byte messages, one at a time, for `duration`: (p50, p99) in µs.
pub async fn latency(route: &Route, duration: Duration) -> Result<(f64, f64), String> {
    let ws = connect(route).await?;
    let (mut sink, mut stream) = ws.split();
    let payload: tokio_tungstenite::tungstenite::Bytes = vec![7u8; 64].into();
    let mut samples = Vec::new();
    let deadline = Instant::now() + duration;
    // Warm up the path first.
    for round in 0.. {
        let start = Instant::now();
        sink.send(Message::Binary(payload.clone()))
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match stream.next().await {
                Some(Ok(Message::Binary(_))) => break,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the connection closed mid-run".into()),
            }
        }
        if round >= 100 {
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
        if Instant::now() > deadline && samples.len() >= 100 {
            break;
        }
    }
    // Just drop the halves: a split sink's close() waits for the peer's close reply,
    // which only the (no longer polled) read half could receive.
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok((pick(0.50), pick(0.99)))
}

/// `connections` clients at once, each with `window` messages of `size` in flight, for
/// `duration`. Returns the total messages per second.
pub async fn fan_in(
    route: &Route,
    connections: usize,
    window: usize,
    size: usize,
    duration: Duration,
) -> Result<f64, String> {
    let mut sockets = Vec::with_capacity(connections);
    for _ in 0..connections {
        sockets.push(connect(route).await?);
    }
    // Spawn every client before awaiting any: they must run at the same time.
    let runs: Vec<_> = sockets
        .into_iter()
        .map(|ws| tokio::spawn(echo_rate(ws, size, window, duration)))
        .collect();
    let mut total = 0.0;
    for run in runs {
        total += run.await.map_err(|e| e.to_string())??;
    }
    Ok(total)
}

/// Opens `count` sessions and keeps them idle, calling `measure` once all are open, then
/// sends one echo on each. Returns what `measure` returned and how many sessions answered.
pub async fn idle<T>(
    route: &Route,
    count: usize,
    measure: impl FnOnce() -> T,
) -> Result<(T, usize), String> {
    let opened: Vec<Result<Ws, String>> = stream::iter(0..count)
        .map(|_| connect(route))
        .buffer_unordered(128)
        .collect()
        .await;
    let sockets: Vec<Ws> = opened.into_iter().collect::<Result<_, _>>()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let measured = measure();
    let answered = stream::iter(sockets)
        .map(|mut ws| async move {
            ws.send(Message::text("still there?")).await.ok()?;
            match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "still there?" => Some(()),
                _ => None,
            }
        })
        .buffer_unordered(256)
        .filter_map(|answer| async move { answer })
        .count()
        .await;
    Ok((measured, answered))
}

fn checksum(data: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut hasher);
    hasher.finish()
}

/// Sends one `size`-byte binary message and waits for its echo. Returns the seconds taken;
/// fails unless the echo is byte-identical.
pub async fn big_message(route: &Route, size: usize) -> Result<f64, String> {
    let mut ws = connect(route).await?;
    let data: Vec<u8> = (0..size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect();
    let sum = checksum(&data);
    let start = Instant::now();
    ws.send(Message::Binary(data.into()))
        .await
        .map_err(|e| e.to_string())?;
    let echo = loop {
        match ws.next().await {
            Some(Ok(Message::Binary(echo))) => break echo,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the connection closed before the echo".into()),
        }
    };
    let secs = start.elapsed().as_secs_f64();
    if echo.len() != size || checksum(&echo) != sum {
        return Err(format!(
            "the echo differs: {} bytes, checksum mismatch",
            echo.len()
        ));
    }
    let _ = ws.close(None).await;
    Ok(secs)
}
