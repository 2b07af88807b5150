//! A capture of many sessions written at once, read a session at a time: what capture
//! schema 8's `frame_spans` cost readers where they cost most. `frames` has no index, so
//! a page of one session's frames scans the rows of the others among them: a hundred
//! sessions taking turns, and a session with one frame in 500 turns (about a thousand
//! ids apart, just inside a span's gap), each paged at offsets across it. The capture is
//! written through the store's writer directly: the proxy's part is measured elsewhere.

use crate::report::{median, Row};
use serde_json::json;
use std::path::Path;
use std::time::Instant;
use wstap_filter::Filter;
use wstap_store::{Capture, CaptureInfo, CaptureWriter, Position};
use wstap_trace::{BusEvent, Sink};
use wstap_wire::{AnalyzerConfig, Direction, FrameBuilder, Record, StreamAnalyzer, Timestamp};

/// Sessions taking turns, one frame (and its message) a turn each.
const BUSY: u64 = 100;
/// The sparse session has a frame every this many turns.
const SPARSE_EVERY: u64 = 500;
/// The sparse session's number.
const SPARSE: u64 = BUSY + 1;

/// A 64-byte text message's records (its frame and the message it is), as the analyzer
/// makes them.
fn echo_records() -> Vec<Record> {
    let mut analyzer = StreamAnalyzer::new(Direction::ServerToClient, AnalyzerConfig::default());
    let mut records = Vec::new();
    analyzer.feed(
        &FrameBuilder::text().encode(&[b'x'; 64]),
        Timestamp(1),
        &mut records,
    );
    records
}

/// Writes `turns` turns into a new capture at `dir`, committed every 2,000 events as the
/// bus's driver would under load.
fn write(dir: &Path, turns: u64) -> Result<(), String> {
    let info = CaptureInfo {
        writer: "wstap-bench".into(),
        max_capture: 64 * 1024,
        max_bytes: None,
    };
    let mut writer = CaptureWriter::create(dir, &info).map_err(|e| e.to_string())?;
    let records = echo_records();
    let mut batch = Vec::with_capacity(2_100);
    for turn in 0..turns {
        let mut push = |session: u64| {
            batch.extend(records.iter().map(|record| BusEvent::Wire {
                session,
                record: record.clone(),
            }));
        };
        push(1 + turn % BUSY);
        if turn % SPARSE_EVERY == SPARSE_EVERY / 2 {
            push(SPARSE);
        }
        if batch.len() >= 2_000 {
            writer.write_batch(&batch).map_err(|e| e.to_string())?;
            writer.flush().map_err(|e| e.to_string())?;
            batch.clear();
        }
    }
    writer.write_batch(&batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}

/// Pages of 100 frames of `session` at `pages` offsets spread over its `frames`, each
/// checked; their times in ms.
fn page_times(
    capture: &Capture,
    session: u64,
    frames: u64,
    pages: u64,
) -> Result<Vec<f64>, String> {
    let all = Filter::default();
    let mut times = Vec::new();
    for k in 0..pages {
        let offset = k * (frames - 100) / (pages - 1).max(1);
        let start = Instant::now();
        let page = capture
            .frames(Some(session), &all, Position::From(offset), 100)
            .map_err(|e| e.to_string())?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
        if page.len() != 100 || page[0].seq != offset {
            return Err(format!(
                "session {session}: the page at {offset} came back wrong ({} frames)",
                page.len()
            ));
        }
    }
    Ok(times)
}

/// Builds the capture in `dir` (`turns` turns) and times its pages.
pub fn rows(dir: &Path, turns: u64) -> Result<Vec<Row>, String> {
    let _ = std::fs::remove_dir_all(dir);
    write(dir, turns)?;
    let capture = Capture::open(dir).map_err(|e| e.to_string())?;
    let shapes = [
        (
            1,
            turns / BUSY,
            format!("one of {BUSY} sessions taking turns"),
        ),
        (
            SPARSE,
            turns / SPARSE_EVERY,
            format!("a session with a frame every {SPARSE_EVERY} turns of {BUSY} others"),
        ),
    ];
    let mut rows = Vec::new();
    for (session, frames, what) in shapes {
        let times = page_times(&capture, session, frames, 20)?;
        let worst = times.iter().copied().fold(0.0, f64::max);
        let typical = median(times.clone());
        rows.push(Row {
            scenario: format!(
                "capture: a page of 100 frames at {} offsets of {what} ({frames} frames, {} in all)",
                times.len(),
                turns + turns / SPARSE_EVERY
            ),
            direct: "-".into(),
            proxied: format!("median {typical:.2} ms"),
            result: format!("worst {worst:.2} ms"),
            target: "<= 20 ms".into(),
            met: worst <= 20.0,
            json: json!({"scenario": "capture_page_interleaved", "session": session,
                         "session_frames": frames, "frames": turns + turns / SPARSE_EVERY,
                         "median_ms": typical, "worst_ms": worst}),
        });
    }
    drop(capture);
    let _ = std::fs::remove_dir_all(dir);
    Ok(rows)
}
