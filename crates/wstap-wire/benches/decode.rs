//! Decode throughput: unmask + decode of masked binary frames, 64 B and 16 KiB.
//!
//! A plain `cargo bench` harness (no criterion, to keep the dependency tree lean): it
//! decodes a buffer of back-to-back masked frames repeatedly through a [`StreamAnalyzer`]
//! with the proxy's default capture limits, and prints GB/s of wire bytes on one core.
//! Run: `cargo bench -p wstap-wire`.

use std::hint::black_box;
use std::time::{Duration, Instant};
use wstap_wire::{
    AnalyzerConfig, Direction, FrameBuilder, FrameDecoder, FrameHandler, FrameHeader, Record,
    StreamAnalyzer, Timestamp,
};

/// A handler that only counts, to measure the bare decoder and unmask.
struct Count(u64);

impl FrameHandler for Count {
    fn header(&mut self, _: &FrameHeader, _: Timestamp) {}
    fn payload(&mut self, data: &[u8]) {
        self.0 += u64::from(data[0]);
    }
    fn end(&mut self, _: Timestamp, _: usize) -> std::ops::ControlFlow<()> {
        std::ops::ControlFlow::Continue(())
    }
}

fn wire_of(payload_len: usize, total: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7) as u8).collect();
    let frame = FrameBuilder::binary()
        .mask([0x16, 0x39, 0x8f, 0x63])
        .encode(&payload);
    let mut wire = Vec::with_capacity(total + frame.len());
    while wire.len() < total {
        wire.extend_from_slice(&frame);
    }
    wire
}

fn measure(name: &str, payload_len: usize, mut run: impl FnMut(&mut [u8])) {
    let pristine = wire_of(payload_len, 4 << 20);
    let mut buf = pristine.clone();
    let mut bytes = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(1500) {
        // Decoding unmasks in place; re-copy so every round sees masked input (the copy
        // is timed too, which only understates the decoder).
        buf.copy_from_slice(&pristine);
        run(&mut buf);
        bytes += buf.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{name:<40} {:>6.2} GB/s", bytes as f64 / secs / 1e9);
}

fn main() {
    for payload_len in [64usize, 16 * 1024] {
        measure(
            &format!("decoder+unmask {payload_len} B frames"),
            payload_len,
            |buf| {
                let mut decoder = FrameDecoder::new();
                let mut count = Count(0);
                decoder.feed(buf, Timestamp(0), &mut count);
                black_box(count.0);
            },
        );
        measure(
            &format!("analyzer (records) {payload_len} B frames"),
            payload_len,
            |buf| {
                let mut analyzer =
                    StreamAnalyzer::new(Direction::ClientToServer, AnalyzerConfig::default());
                let mut out = Vec::new();
                for chunk in buf.chunks_mut(64 * 1024) {
                    analyzer.feed(chunk, Timestamp(0), &mut out);
                    black_box(out.iter().filter(|r| matches!(r, Record::Frame(_))).count());
                    out.clear();
                }
            },
        );
    }
}
