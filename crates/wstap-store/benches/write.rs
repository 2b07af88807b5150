//! How fast the writer takes events: `cargo bench -p wstap-store [64|16384|fanin]`.
//! Echo-like traffic of 64-byte and 16 KiB messages (a frame and a message record each
//! way) in one session, and of 1 KiB messages in 100 sessions taking turns (the proxy
//! bench's fan-in row), committed every 2,000 events as the bus's driver would under load.
//!
//! `cargo bench -p wstap-store --bench write floor` measures SQLite alone in the capture's
//! schema and settings (those of `tune_writer`): bare frame rows, 32 per `INSERT`, of the
//! fan-in row's shape (1 KiB payloads out of line, 100 sessions taking turns) committed
//! every 1,024, 2,048 or 4,096 rows (10-40 ms of the proxy's fan-in), with
//! `frames_by_session` (the index captures had before schema 8) and without any (as
//! since); and of the 64 B row's (payloads inline, one
//! session). It is the least a row per frame can cost here, the writer's own work
//! (records, messages, payload bytes) left out.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;
use std::path::Path;
use std::time::Instant;
use wstap_store::{CaptureInfo, CaptureWriter};
use wstap_trace::{BusEvent, Sink};
use wstap_wire::{AnalyzerConfig, Direction, FrameBuilder, StreamAnalyzer, Timestamp};

/// Records for `count` messages of `session`, made once for a pool of at most 1,000 and
/// repeated.
fn records(direction: Direction, size: usize, count: usize, session: u64) -> Vec<BusEvent> {
    let mut analyzer = StreamAnalyzer::new(direction, AnalyzerConfig::default());
    let mut builder = FrameBuilder::text();
    if direction == Direction::ClientToServer {
        builder = builder.mask([1, 2, 3, 4]);
    }
    let payload = "x".repeat(size);
    let mut pool = Vec::new();
    for i in 0..count.min(1000) {
        let wire = builder.encode(payload.as_bytes());
        analyzer.feed(&wire, Timestamp(i as i64), &mut pool);
    }
    let pool: Vec<BusEvent> = pool
        .into_iter()
        .map(|record| BusEvent::Wire { session, record })
        .collect();
    pool.iter().cycle().take(2 * count).cloned().collect()
}

/// Echoes (a message up, its answer down) of `size` bytes, `count` per session, the
/// sessions taking turns message by message.
fn echoes(size: usize, count: usize, sessions: u64) -> Vec<BusEvent> {
    let per_session: Vec<(Vec<BusEvent>, Vec<BusEvent>)> = (1..=sessions)
        .map(|session| {
            (
                records(Direction::ClientToServer, size, count, session),
                records(Direction::ServerToClient, size, count, session),
            )
        })
        .collect();
    let mut events = Vec::with_capacity(4 * count * sessions as usize);
    for echo in 0..count {
        for (up, down) in &per_session {
            events.extend_from_slice(&up[2 * echo..2 * echo + 2]);
            events.extend_from_slice(&down[2 * echo..2 * echo + 2]);
        }
    }
    events
}

/// What every row's capture says of itself: unbounded, payloads kept to 64 KiB.
fn bench_capture() -> CaptureInfo {
    CaptureInfo {
        writer: "bench".into(),
        max_capture: 65536,
        max_bytes: None,
    }
}

/// Frame rows per `INSERT`, as the writer batches them.
const FLOOR_ROWS_PER_INSERT: usize = 32;
/// Rows per `floor` run: 400 commits of 1,024.
const FLOOR_ROWS: usize = 409_600;

/// What the `floor` rows insert.
#[derive(Debug, Clone, Copy)]
struct FloorShape {
    /// Sessions taking turns, an echo (a row each way) at a time.
    sessions: usize,
    /// Each frame's payload: inline in the row up to the writer's limit, else a pointer.
    payload: usize,
    per_commit: usize,
    with_index: bool,
}

/// Inserts [`FLOOR_ROWS`] bare frame rows of `shape` into the capture at `dir` (made by
/// the writer, so in its schema), with the writer's settings; returns the seconds it took.
fn sqlite_floor(dir: &Path, shape: FloorShape) -> f64 {
    let FloorShape {
        sessions,
        payload,
        per_commit,
        with_index,
    } = shape;
    let inline = payload <= wstap_store::INLINE_MAX;
    let conn = Connection::open(dir.join("capture.db")).unwrap();
    for (pragma, value) in [
        ("journal_mode", "WAL"),
        ("synchronous", "NORMAL"),
        ("temp_store", "MEMORY"),
        ("cache_size", "-8192"),
        ("wal_autocheckpoint", "4096"),
    ] {
        conn.pragma_update(None, pragma, value).unwrap();
    }
    if with_index {
        // The index captures had before schema 8 (`frame_spans` since).
        conn.execute_batch("CREATE INDEX frames_by_session ON frame_rows(session, seq)")
            .unwrap();
    }
    let row = format!("({})", ["?"; 12].join(","));
    let sql = format!(
        "INSERT INTO frame_rows (id, session, seq, idx, time_us, end_after_us, head, \
         payload_len, payload, payload_at, payload_kept, msg) VALUES {}",
        vec![row; FLOOR_ROWS_PER_INSERT].join(",")
    );
    let mut statement = conn.prepare(&sql).unwrap();
    // Borrowed values, as the writer binds them: nothing allocated per row.
    let bytes = vec![0xA5u8; payload];
    let mut values: Vec<ToSqlOutput<'_>> = Vec::new();
    let int = |v: i64| ToSqlOutput::Borrowed(ValueRef::Integer(v));
    let null = ToSqlOutput::Borrowed(ValueRef::Null);
    let start = Instant::now();
    for first in (0..FLOOR_ROWS).step_by(per_commit) {
        conn.execute_batch("BEGIN").unwrap();
        for group in (first..first + per_commit).step_by(FLOOR_ROWS_PER_INSERT) {
            values.clear();
            for i in group..group + FLOOR_ROWS_PER_INSERT {
                // A message up and its echo down, sessions taking turns.
                let session = (i / 2 % sessions + 1) as i64;
                let seq = (i / (2 * sessions) * 2 + i % 2) as i64;
                let head = if i % 2 == 0 { 0x82 } else { 0x82 | 1 << 10 };
                let length = if payload < 126 { 0 } else { 1 << 8 };
                let time = i as i64;
                values.extend([
                    int(2 * time + 1),
                    int(session),
                    int(seq),
                    int(seq),
                    int(time),
                    int(0),
                    int(head | length),
                    int(payload as i64),
                    match inline {
                        true => ToSqlOutput::Borrowed(ValueRef::Blob(&bytes)),
                        false => null.clone(),
                    },
                    match inline {
                        true => null.clone(),
                        false => int(time * payload as i64),
                    },
                    int(payload as i64),
                    int(seq),
                ]);
            }
            statement
                .execute(rusqlite::params_from_iter(&values))
                .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    start.elapsed().as_secs_f64()
}

/// The `floor` rows: see the module documentation. `floor-index`, `floor-bare`,
/// `floor-64` and `floor-64-bare` run one each (for a profiler).
fn floor_rows(only: &str) {
    let fan_in = |per_commit, with_index| FloorShape {
        sessions: 100,
        payload: 1024,
        per_commit,
        with_index,
    };
    let small = |with_index| FloorShape {
        sessions: 1,
        payload: 64,
        per_commit: 2_048,
        with_index,
    };
    let runs = [
        ("floor-index", fan_in(1_024, true)),
        ("floor-index", fan_in(2_048, true)),
        ("floor-index", fan_in(4_096, true)),
        ("floor-bare", fan_in(2_048, false)),
        ("floor-64", small(true)),
        ("floor-64-bare", small(false)),
    ];
    for (name, shape) in runs {
        if only != "floor" && (only != name || shape.per_commit != 2_048) {
            continue;
        }
        let dir = std::env::temp_dir().join(format!(
            "wstap-store-bench-{}-{name}-{}",
            std::process::id(),
            shape.per_commit
        ));
        let _ = std::fs::remove_dir_all(&dir);
        CaptureWriter::create(&dir, &bench_capture())
            .unwrap()
            .finish()
            .unwrap();
        let seconds = sqlite_floor(&dir, shape);
        println!(
            "SQLite alone, {} B frames' rows ({}), {} session(s), {} rows a commit, {}: {:.2} µs per row",
            shape.payload,
            if shape.payload <= wstap_store::INLINE_MAX { "inline" } else { "out of line" },
            shape.sessions,
            shape.per_commit,
            if shape.with_index { "frames_by_session kept" } else { "no index" },
            seconds * 1e6 / FLOOR_ROWS as f64
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn main() {
    // `cargo bench` passes `--bench`: only a row's name counts.
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if let Some(floor) = only.as_deref().filter(|o| o.starts_with("floor")) {
        floor_rows(floor);
        return;
    }
    let rows = [
        ("64", 64usize, 200_000usize, 1u64),
        ("16384", 16 * 1024, 40_000, 1),
        ("fanin", 1024, 2_000, 100),
    ];
    for (name, size, count, sessions) in rows {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let events = echoes(size, count, sessions);
        let dir =
            std::env::temp_dir().join(format!("wstap-store-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut writer = CaptureWriter::create(&dir, &bench_capture()).unwrap();
        eprintln!("writing");
        let start = Instant::now();
        for batch in events.chunks(2000) {
            writer.write_batch(batch).unwrap();
            writer.flush().unwrap();
        }
        writer.flush().unwrap();
        let seconds = start.elapsed().as_secs_f64();
        writer.finish().unwrap();
        println!(
            "{size:>6} B messages, {sessions} session(s): {:.0} events/s ({:.2} µs per event), {:.0} echoes/s",
            events.len() as f64 / seconds,
            seconds * 1e6 / events.len() as f64,
            (count as u64 * sessions) as f64 / seconds
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
