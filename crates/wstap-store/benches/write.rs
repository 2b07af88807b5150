//! How fast the writer takes events: `cargo bench -p wstap-store`. Echo-like traffic of
//! 64-byte and 16 KiB messages (a frame and a message record each way), one session,
//! committed every 2,000 events as the bus's driver would under load.

use std::time::Instant;
use wstap_store::{CaptureInfo, CaptureWriter};
use wstap_trace::{BusEvent, Sink};
use wstap_wire::{AnalyzerConfig, Direction, FrameBuilder, StreamAnalyzer, Timestamp};

/// Records for `count` messages, made once for a pool of at most 1,000 and repeated.
fn records(direction: Direction, size: usize, count: usize) -> Vec<BusEvent> {
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
        .map(|record| BusEvent::Wire { session: 1, record })
        .collect();
    pool.iter().cycle().take(2 * count).cloned().collect()
}

fn main() {
    let only: Option<usize> = std::env::args().nth(1).and_then(|a| a.parse().ok());
    for (size, count) in [(64usize, 200_000usize), (16 * 1024, 40_000)] {
        if only.is_some_and(|o| o != size) {
            continue;
        }
        let up = records(Direction::ClientToServer, size, count);
        let down = records(Direction::ServerToClient, size, count);
        let mut events = Vec::with_capacity(up.len() * 2);
        for (a, b) in up.chunks(2).zip(down.chunks(2)) {
            events.extend_from_slice(a);
            events.extend_from_slice(b);
        }
        let dir =
            std::env::temp_dir().join(format!("wstap-store-bench-{}-{size}", std::process::id()));
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
            "{size:>6} B messages: {:.0} events/s ({:.2} µs per event), {:.0} echoes/s",
            events.len() as f64 / seconds,
            seconds * 1e6 / events.len() as f64,
            count as f64 / seconds
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
