//! The web inspector at scale: its API over the big capture (the first rows of a session
//! view, a page anywhere, a filter over a million messages), as `wstap view` serves it,
//! and the relay's throughput while a page follows the live session against none.

use crate::proxy::{inspector_of, ProxyProcess, Recording};
use crate::report::{median, Row};
use crate::scenarios;
use crate::suite::Bench;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A `wstap view` of a capture.
struct View {
    child: Child,
    addr: SocketAddr,
    token: String,
}

impl Drop for View {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn view(wstap: &Path, capture: &Path) -> Result<View, String> {
    let mut child = Command::new(wstap)
        .arg("view")
        .arg(capture)
        .args(["--web", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start wstap view: {e}"))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (addr, token) = inspector_of(stderr)?;
    Ok(View { child, addr, token })
}

/// GETs `path` with the token; the answer's JSON body.
async fn get(addr: SocketAddr, token: &str, path: &str) -> Result<Value, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .map_err(|e| e.to_string())?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no head")?;
    if !raw.starts_with(b"HTTP/1.1 200") {
        return Err(format!("{path}: {}", String::from_utf8_lossy(&raw[..end])));
    }
    serde_json::from_slice(&raw[end + 4..]).map_err(|e| format!("{path}: {e}"))
}

async fn timed_get(addr: SocketAddr, token: &str, path: &str) -> Result<(Value, f64), String> {
    let start = Instant::now();
    let value = get(addr, token, path).await?;
    Ok((value, start.elapsed().as_secs_f64() * 1e3))
}

/// The inspector's rows over the big capture at `capture`, whose session 2 holds
/// `messages` messages with a needle in some.
pub async fn api_rows(wstap: &Path, capture: &Path, messages: u64) -> Result<Vec<Row>, String> {
    let view = view(wstap, capture)?;
    let (addr, token) = (view.addr, view.token.as_str());
    // Opening a session: its summary, then the first page of its messages.
    let mut open_ms = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        get(addr, token, "/api/sessions/2").await?;
        let first = get(
            addr,
            token,
            "/api/sessions/2/rows?kind=messages&index=0&limit=100",
        )
        .await?;
        // The session's messages, and the two close frames.
        let total = first["total"].as_u64().unwrap_or(0);
        if first["rows"].as_array().map_or(0, Vec::len) != 100 || total < messages {
            return Err(format!("the first page is wrong: total {}", first["total"]));
        }
        open_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let cold = open_ms[0];
    let open = median(open_ms);

    // Pages anywhere: the middle, the end and places between.
    let mut offsets = vec![messages / 2, messages - 100, messages / 4, 3 * messages / 4];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..16 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        offsets.push(seed % (messages - 100));
    }
    let mut page_ms = Vec::new();
    for &index in &offsets {
        let path = format!("/api/sessions/2/rows?kind=messages&index={index}&limit=100");
        let (page, ms) = timed_get(addr, token, &path).await?;
        if page["rows"][0]["seq"] != index {
            return Err(format!("the page at {index} starts elsewhere"));
        }
        page_ms.push(ms);
    }
    let worst_page = page_ms.iter().copied().fold(0.0, f64::max);
    let typical_page = median(page_ms.clone());

    // A filter over every message: the first request scans, the next pages are lookups.
    let filter = "/api/sessions/2/rows?kind=messages&filter=text~needle&limit=100";
    let (found, filter_ms) = timed_get(addr, token, filter).await?;
    let hits = found["total"].as_u64().unwrap_or(0);
    let (_, next_ms) = timed_get(addr, token, &format!("{filter}&index={}", hits / 2)).await?;
    Ok(vec![
        Row {
            scenario: format!(
                "inspector: open a {messages}-message session (summary + first 100 rows)"
            ),
            direct: "-".into(),
            proxied: format!("median {open:.1} ms"),
            result: format!("first (cold) {cold:.1} ms"),
            target: "<= 100 ms".into(),
            met: cold <= 100.0 && open <= 100.0,
            json: json!({"scenario": "inspector_open", "messages": messages, "median_ms": open, "cold_ms": cold}),
        },
        Row {
            scenario: format!(
                "inspector: a page of 100 messages at {} offsets of {messages}",
                page_ms.len()
            ),
            direct: "-".into(),
            proxied: format!("median {typical_page:.2} ms"),
            result: format!("worst {worst_page:.2} ms"),
            target: "<= 20 ms".into(),
            met: worst_page <= 20.0,
            json: json!({"scenario": "inspector_page", "messages": messages, "median_ms": typical_page, "worst_ms": worst_page}),
        },
        Row {
            scenario: format!("inspector: filter text~needle over {messages} messages"),
            direct: "-".into(),
            proxied: format!("{hits} hits"),
            result: format!("first page {filter_ms:.0} ms, then a page at any hit {next_ms:.1} ms"),
            target: "<= 1000 ms".into(),
            met: filter_ms <= 1000.0 && hits > 0,
            json: json!({"scenario": "inspector_filter", "messages": messages, "hits": hits,
                         "first_ms": filter_ms, "next_ms": next_ms}),
        },
    ])
}

/// How often the page asks for new rows (static/list.js, REFRESH_MS).
const REFRESH: Duration = Duration::from_millis(250);

/// A page following a live capture (as static/session.js does): after commits, at most
/// every [`REFRESH`], the new rows of each changed session
/// (the tail, when it is more than a page behind) and, once a second, its timeline.
async fn follow_like_a_page(
    addr: SocketAddr,
    token: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<u64, String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let head =
        format!("GET /api/live HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut feed = BufReader::new(stream);
    let mut known: std::collections::HashMap<u64, u64> = Default::default();
    let mut changed: std::collections::BTreeSet<u64> = Default::default();
    let mut requests = 0u64;
    let mut refreshed_at = Instant::now();
    let mut timeline_at = Instant::now();
    let mut timeline_every = Duration::from_secs(1);
    let mut line = String::new();
    loop {
        line.clear();
        let read = tokio::select! {
            read = feed.read_line(&mut line) => read.map_err(|e| e.to_string())?,
            _ = wait_stop(stop.clone()) => return Ok(requests),
        };
        if read == 0 {
            return Ok(requests);
        }
        let Some(data) = line.trim().strip_prefix("data: ") else {
            continue;
        };
        let Ok(commit) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        changed.extend(
            commit["sessions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["id"].as_u64()),
        );
        // As the page does: at most one refresh a quarter second, of what changed since.
        if refreshed_at.elapsed() < REFRESH {
            continue;
        }
        refreshed_at = Instant::now();
        for id in std::mem::take(&mut changed) {
            let have = known.entry(id).or_default();
            let path = format!("/api/sessions/{id}/rows?kind=messages&index={have}&limit=100");
            let page = get(addr, &token, &path).await?;
            requests += 1;
            let total = page["total"].as_u64().unwrap_or(0);
            if total > *have + 100 {
                let tail = format!(
                    "/api/sessions/{id}/rows?kind=messages&index={}&limit=100",
                    total - 100
                );
                get(addr, &token, &tail).await?;
                requests += 1;
            }
            *have = total;
            // As the page does: once a second, or less when it takes long (a tenth of the time).
            if timeline_at.elapsed() >= timeline_every {
                let started = Instant::now();
                get(addr, &token, &format!("/api/sessions/{id}/timeline")).await?;
                requests += 1;
                timeline_every = (started.elapsed() * 10).max(Duration::from_secs(1));
                timeline_at = Instant::now();
            }
        }
    }
}

async fn wait_stop(mut stop: tokio::sync::watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

impl Bench {
    /// Saturated 64 B echoes through one capturing proxy, with and without a page
    /// following it live, in alternating rounds.
    pub async fn inspector_live(&self) -> Result<Row, String> {
        let mut extra = self.wstap_args.clone();
        extra.extend(["--web".to_owned(), "127.0.0.1:0".to_owned()]);
        let dir = self.dir.join("inspector-live");
        let proxy = ProxyProcess::start(
            &self.wstap,
            Recording::Capture(None),
            &extra,
            &dir,
            &self.pki.ca_pem,
        )?;
        let (web, token) = proxy
            .inspector
            .clone()
            .ok_or("the proxy serves no inspector")?;
        let route = crate::peers::Route {
            server: self.plain,
            proxy: Some(proxy.addr),
            tls: None,
            mode: crate::peers::Mode::Connect,
        };
        let plan = &self.plan;
        let (mut closed, mut open, mut requests) = (Vec::new(), Vec::new(), 0u64);
        for _ in 0..plan.rounds {
            proxy.drain();
            closed.push(scenarios::throughput(&route, 64, 16, plan.duration()).await?);
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let follower = tokio::spawn(follow_like_a_page(web, token.clone(), stop_rx));
            proxy.drain();
            open.push(scenarios::throughput(&route, 64, 16, plan.duration()).await?);
            let _ = stop_tx.send(true);
            requests += follower.await.map_err(|e| e.to_string())??;
        }
        proxy.stop()?;
        let _ = std::fs::remove_dir_all(&dir);
        let (c, o) = (median(closed), median(open));
        let ratio = o / c;
        Ok(Row {
            scenario:
                "inspector: throughput ws 64 B, window 16, a page following live vs none (msg/s)"
                    .into(),
            direct: format!("{c:.0} closed"),
            proxied: format!("{o:.0} open"),
            result: format!("ratio {ratio:.2} ({requests} page requests)"),
            target: ">= 0.90".into(),
            met: ratio >= 0.9,
            json: json!({"scenario": "inspector_live", "closed_msgs_per_s": c, "open_msgs_per_s": o,
                         "ratio": ratio, "requests": requests}),
        })
    }
}
