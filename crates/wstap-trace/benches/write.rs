//! Trace writing speed: frame and message lines per second on one core.
//!
//! Under a saturated echo of small messages the trace thread writes four lines per
//! message (a frame and a message line each way), so its cost per line bounds the proxy's
//! message rate with `--trace` on. This harness decodes masked binary and text frames
//! with the proxy's analyzer, then writes their records repeatedly into a discarding
//! writer and prints lines/s and ns per line. Run: `cargo bench -p wstap-trace`.

use std::hint::black_box;
use std::time::{Duration, Instant};
use wstap_trace::{TraceHeader, TraceWriter};
use wstap_wire::{AnalyzerConfig, Direction, FrameBuilder, Record, StreamAnalyzer, Timestamp};

fn records(frame: Vec<u8>) -> Vec<Record> {
    let mut analyzer = StreamAnalyzer::new(Direction::ClientToServer, AnalyzerConfig::default());
    let mut records = Vec::new();
    let wire = frame;
    analyzer.feed(&wire, Timestamp(1_763_700_000_123_456), &mut records);
    records
}

fn measure(name: &str, records: &[Record]) {
    let header = TraceHeader::new("bench", chrono::Utc::now());
    let mut writer = match TraceWriter::new(std::io::sink(), &header) {
        Ok(writer) => writer,
        Err(e) => panic!("a sink takes a header: {e}"),
    };
    let mut lines = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        for _ in 0..1000 {
            for record in records {
                let written = match record {
                    Record::Frame(frame) => writer.write_frame_record(black_box(7), frame),
                    Record::Message(message) => writer.write_message_record(7, message),
                };
                if let Err(e) = written {
                    panic!("a sink takes every line: {e}");
                }
                lines += 1;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<36} {:>6.2} M lines/s {:>6.0} ns/line",
        lines as f64 / secs / 1e6,
        secs * 1e9 / lines as f64
    );
}

fn main() {
    let control: Vec<u8> = (0..64u8).collect();
    let masked = |builder: FrameBuilder, payload: &[u8]| builder.mask([1, 2, 3, 4]).encode(payload);
    for (name, frame) in [
        // wstap-bench's payload: not UTF-8, so written as base64.
        (
            "64 B binary frame + message",
            masked(FrameBuilder::binary(), &[0xa5; 64]),
        ),
        (
            "64 B text frame + message",
            masked(FrameBuilder::text(), &[b'a'; 64]),
        ),
        (
            "64 B control-byte text + message",
            masked(FrameBuilder::text(), &control),
        ),
        (
            "1 KiB binary frame + message",
            masked(FrameBuilder::binary(), &[0xa5; 1024]),
        ),
    ] {
        measure(name, &records(frame));
    }
}
