//! The capture store at scale: the disk's own speed, for reading the 16 KiB row against,
//! and a capture of ten million frames, built through the proxy and then read back as the
//! command line and the inspector read it (pages at any offset, a search, counts).

use crate::peers::Route;
use crate::proxy::{ProxyProcess, Recording};
use crate::report::{median, Row};
use crate::scenarios;
use crate::suite::Bench;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::time::Instant;
use wstap_filter::Filter;
use wstap_store::{Capture, Position, Rows};

/// Sequential write speed of the disk under `dir`: `bytes` written in 1 MiB blocks, then
/// `fdatasync`, in MB/s (10^6 bytes).
pub fn disk_write_rate(dir: &Path, bytes: usize) -> Result<f64, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let path = dir.join("disk-rate.bin");
    let block = vec![0x5Au8; 1 << 20];
    let start = Instant::now();
    let mut file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
    for _ in 0..bytes.div_ceil(block.len()) {
        file.write_all(&block).map_err(|e| e.to_string())?;
    }
    file.sync_data().map_err(|e| e.to_string())?;
    let seconds = start.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(bytes as f64 / seconds / 1e6)
}

/// A 64-byte-ish text message, with `needle` in every `every`-th one: that one a JSON-RPC
/// request for the method `needle` (what the protocol filter row looks for).
fn message(n: u64, size: usize, every: u64) -> String {
    let mut text = if n % every == every / 2 {
        format!("{{\"jsonrpc\":\"2.0\",\"id\":{n},\"method\":\"needle\"")
    } else {
        format!("{{\"n\":{n},\"note\":\"hay\"")
    };
    while text.len() + 2 < size {
        text.push(' ');
    }
    text.push('}');
    text
}

/// How the big capture is made: `search` echoes in one session (with a needle every
/// `every`), then `bulk` echoes in another.
#[derive(Debug, Clone, Copy)]
pub struct BigCapture {
    /// Echoes in the searched session (two messages and two frames each).
    pub search: u64,
    /// Echoes in the bulk session.
    pub bulk: u64,
    /// One message in this many holds the needle.
    pub every: u64,
    /// Turns of the capture of many sessions written at once (`crate::interleaved`).
    pub interleaved: u64,
}

fn ms(seconds: f64) -> f64 {
    seconds * 1e3
}

fn timed<T>(f: impl FnOnce() -> Result<T, wstap_store::StoreError>) -> Result<(T, f64), String> {
    let start = Instant::now();
    let value = f().map_err(|e| e.to_string())?;
    Ok((value, start.elapsed().as_secs_f64()))
}

impl Bench {
    /// Builds the big capture through a fresh proxy and measures its reads.
    pub async fn big_capture(&self, size: &BigCapture) -> Result<Vec<Row>, String> {
        let dir = self.dir.join("big-capture");
        let proxy = ProxyProcess::start(
            &self.wstap,
            Recording::Capture(None),
            &self.wstap_args,
            &dir,
            &self.pki.ca_pem,
        )?;
        let route = Route {
            server: self.plain,
            proxy: Some(proxy.addr),
            tls: None,
            mode: crate::peers::Mode::Connect,
        };
        let every = size.every;
        let search_s =
            scenarios::fill(&route, size.search, 64, 16, |n, len| message(n, len, every)).await?;
        let bulk_s = scenarios::fill(&route, size.bulk, 64, 16, |n, len| {
            message(n, len, u64::MAX)
        })
        .await?;
        // Let the writer catch up before the memory is read.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let peak_mib = proxy.peak_rss_kib().unwrap_or(0) as f64 / 1024.0;
        let capture_dir = proxy.recorded.clone();
        proxy.stop()?;
        let frames = 2 * (size.search + size.bulk);
        let mut rows = vec![Row {
            scenario: format!("capture of {frames} frames through the proxy (64 B echoes)"),
            direct: "-".into(),
            proxied: format!(
                "{:.0} echoes/s",
                (size.search + size.bulk) as f64 / (search_s + bulk_s)
            ),
            result: format!("proxy peak RSS {peak_mib:.1} MiB"),
            target: "<= 64 MiB".into(),
            met: peak_mib <= 64.0,
            json: json!({"scenario": "capture_build", "frames": frames, "seconds": search_s + bulk_s,
                         "proxy_peak_rss_mib": peak_mib}),
        }];
        let size = *size;
        let read_dir = capture_dir.clone();
        let reads = tokio::task::spawn_blocking(move || read_rows(&read_dir, size))
            .await
            .map_err(|e| e.to_string())??;
        rows.extend(reads);
        let (interleaved_dir, turns) = (self.dir.join("interleaved-capture"), size.interleaved);
        let interleaved =
            tokio::task::spawn_blocking(move || crate::interleaved::rows(&interleaved_dir, turns))
                .await
                .map_err(|e| e.to_string())??;
        rows.extend(interleaved);
        // The same capture as the inspector pages it: session 2 has the million messages.
        rows.extend(crate::inspector::api_rows(&self.wstap, &capture_dir, 2 * size.search).await?);
        let _ = std::fs::remove_dir_all(&dir);
        Ok(rows)
    }
}

/// The reads, on the finished capture: pages, a search, counts.
fn read_rows(dir: &Path, size: BigCapture) -> Result<Vec<Row>, String> {
    let capture = Capture::open(dir).map_err(|e| e.to_string())?;
    // Session 1 is the connection that waited for the proxy to listen; 2 is the searched
    // session, 3 the bulk one.
    let (search, bulk) = (2u64, 3u64);
    let all = Filter::parse("").map_err(|e| e.to_string())?;
    let bulk_frames = 2 * size.bulk;
    let mut offsets: Vec<u64> = vec![
        0,
        bulk_frames / 4,
        bulk_frames / 2,
        3 * bulk_frames / 4,
        bulk_frames - 100,
    ];
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        offsets.push(seed % (bulk_frames - 100));
    }
    let mut page_ms = Vec::new();
    for &offset in &offsets {
        let (page, seconds) =
            timed(|| capture.frames(Some(bulk), &all, Position::From(offset), 100))?;
        if page.len() != 100 || page[0].seq != offset {
            return Err(format!(
                "the page at {offset} came back wrong ({} frames)",
                page.len()
            ));
        }
        page_ms.push(ms(seconds));
    }
    let (_, last_s) = timed(|| capture.frames(Some(bulk), &all, Position::Last, 100))?;
    page_ms.push(ms(last_s));
    let worst = page_ms.iter().copied().fold(0.0, f64::max);
    let typical = median(page_ms.clone());

    let parse = |text: &str| Filter::parse(text).map_err(|e| e.to_string());
    let needle = parse("text~needle")?;
    let (found, search_s) = timed(|| capture.count(Rows::Messages, Some(search), &needle))?;
    // Each needle goes both ways.
    let expected = 2
        * (0..size.search)
            .filter(|n| n % size.every == size.every / 2)
            .count() as u64;
    let messages = 2 * size.search;
    let (first_hits, first_s) =
        timed(|| capture.messages(Some(search), &needle, Position::From(0), 100))?;
    let by_filter = parse("dir:c2s op:text len>10")?;
    let (counted, count_s) = timed(|| capture.count(Rows::Messages, Some(search), &by_filter))?;
    let protocol = parse("jsonrpc.method == \"needle\"")?;
    let (rpc_found, rpc_s) = timed(|| capture.count(Rows::Messages, Some(search), &protocol))?;
    // A field no byte check rules out: every payload decoded.
    let decoded_all = parse("jsonrpc.type:request")?;
    let (typed_found, typed_s) =
        timed(|| capture.count(Rows::Messages, Some(search), &decoded_all))?;
    let downstream = parse("dir:s2c")?;
    let (bulk_counted, bulk_count_s) =
        timed(|| capture.count(Rows::Frames, Some(bulk), &downstream))?;
    Ok(vec![
        Row {
            scenario: format!(
                "capture: a page of 100 frames at {} offsets of a {bulk_frames}-frame session",
                page_ms.len()
            ),
            direct: "-".into(),
            proxied: format!("median {typical:.2} ms"),
            result: format!("worst {worst:.2} ms"),
            target: "<= 20 ms".into(),
            met: worst <= 20.0,
            json: json!({"scenario": "capture_page", "session_frames": bulk_frames, "pages": page_ms.len(),
                         "median_ms": typical, "worst_ms": worst}),
        },
        Row {
            scenario: format!("capture: text~\"needle\" over {messages} messages"),
            direct: "-".into(),
            proxied: format!("{found} of {expected} found"),
            result: format!(
                "{:.0} ms (first page of hits {:.1} ms, {} hits)",
                ms(search_s),
                ms(first_s),
                first_hits.len()
            ),
            target: "<= 1 s".into(),
            met: search_s <= 1.0 && found == expected,
            json: json!({"scenario": "capture_search", "messages": messages, "found": found,
                         "seconds": search_s, "first_page_ms": ms(first_s)}),
        },
        Row {
            scenario: format!("capture: jsonrpc.method == \"needle\" over {messages} messages"),
            direct: "-".into(),
            proxied: format!("{rpc_found} of {expected} found"),
            result: format!(
                "{:.0} ms (a payload without the text is not decoded)",
                ms(rpc_s)
            ),
            target: "<= 1 s".into(),
            met: rpc_s <= 1.0 && rpc_found == expected,
            json: json!({"scenario": "capture_protocol_filter", "messages": messages,
                         "found": rpc_found, "seconds": rpc_s}),
        },
        Row {
            scenario: format!("capture: jsonrpc.type:request over {messages} messages"),
            direct: "-".into(),
            proxied: format!("{typed_found} of {expected} found"),
            result: format!("{:.0} ms (every payload decoded as JSON-RPC)", ms(typed_s)),
            target: "<= 1 s".into(),
            met: typed_s <= 1.0 && typed_found == expected,
            json: json!({"scenario": "capture_protocol_decode", "messages": messages,
                         "found": typed_found, "seconds": typed_s}),
        },
        Row {
            scenario: format!("capture: count by filter over {messages} messages"),
            direct: "-".into(),
            proxied: format!("{counted} counted"),
            result: format!(
                "{:.0} ms (over {bulk_frames} frames: {bulk_counted} in {:.0} ms)",
                ms(count_s),
                ms(bulk_count_s)
            ),
            target: "<= 1 s".into(),
            met: count_s <= 1.0 && counted == size.search,
            json: json!({"scenario": "capture_count", "messages": messages, "counted": counted,
                         "seconds": count_s, "bulk_frames": bulk_frames, "bulk_counted": bulk_counted,
                         "bulk_seconds": bulk_count_s}),
        },
    ])
}
