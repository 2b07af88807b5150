//! How fast the writer takes events: `cargo bench -p wstap-store [64|16384|fanin]`.
//! Echo-like traffic of 64-byte and 16 KiB messages (a frame and a message record each
//! way) in one session, and of 1 KiB messages in 100 sessions taking turns (the proxy
//! bench's fan-in row), committed every 2,000 events as the bus's driver would under load.

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

fn main() {
    // `cargo bench` passes `--bench`: only a row's name counts.
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
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
        let info = CaptureInfo {
            writer: "bench".into(),
            max_capture: 65536,
            max_bytes: None,
        };
        let mut writer = CaptureWriter::create(&dir, &info).unwrap();
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
