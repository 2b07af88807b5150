//! The hand-written frame and message lines parse to exactly what the serde path writes.

use proptest::prelude::*;
use serde_json::Value;
use wstap_trace::fast::{write_frame, write_message, LineCache};
use wstap_trace::{Event, Frame, Message};
use wstap_wire::deflate::DeflateParams;
use wstap_wire::{
    AnalyzerConfig, Direction, FrameBuilder, Opcode, Record, StreamAnalyzer, Timestamp,
};

fn records(direction: Direction, config: AnalyzerConfig, wire: &[u8], time: i64) -> Vec<Record> {
    let mut analyzer = StreamAnalyzer::new(direction, config);
    let mut out = Vec::new();
    analyzer.feed(wire, Timestamp(time), &mut out);
    analyzer.finish(Timestamp(time + 5), &mut out);
    out
}

fn assert_same(records: Vec<Record>) {
    let mut cache = LineCache::default();
    for record in records {
        let mut line = Vec::new();
        let expected = match &record {
            Record::Frame(f) => {
                write_frame(&mut line, &mut cache, 42, f);
                serde_json::to_value(Event::Frame(Frame::from_record(42, f.clone()))).unwrap()
            }
            Record::Message(m) => {
                write_message(&mut line, &mut cache, 42, m);
                serde_json::to_value(Event::Message(Message::from_record(42, m.clone()))).unwrap()
            }
        };
        assert!(line.ends_with(b"\n") && !line[..line.len() - 1].contains(&b'\n'));
        let got: Value = serde_json::from_slice(&line)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&line)));
        assert_eq!(got, expected, "line: {}", String::from_utf8_lossy(&line));
        // And the reader's types accept it.
        let _: Event = serde_json::from_slice(&line).unwrap();
    }
}

#[test]
fn every_kind_of_frame_and_message_matches_the_serde_output() {
    let tricky_text = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \u{0} é €";
    let wire = [
        FrameBuilder::text()
            .mask([1, 2, 3, 4])
            .encode(tricky_text.as_bytes()),
        FrameBuilder::binary()
            .mask([5, 6, 7, 8])
            .encode(&[0, 159, 146, 150, 255]),
        FrameBuilder::text()
            .fin(false)
            .mask([9, 9, 9, 9])
            .encode(b"frag"),
        FrameBuilder::ping().mask([1, 1, 1, 1]).encode(b""),
        FrameBuilder::continuation()
            .mask([2, 2, 2, 2])
            .encode(b"\xff"),
        FrameBuilder::new(Opcode::Reserved(0xB)).encode(b"x"),
        FrameBuilder::binary().mask([3, 3, 3, 3]).encode(&[7; 5000]),
        FrameBuilder::close()
            .mask([4, 4, 4, 4])
            .encode(b"\x0f\xa1bye \"now\""),
        FrameBuilder::close().mask([4, 4, 4, 4]).encode(b"\x03"),
    ]
    .concat();
    let small_capture = AnalyzerConfig {
        max_frame_capture: 100,
        max_message_capture: 100,
        ..AnalyzerConfig::default()
    };
    assert_same(records(
        Direction::ClientToServer,
        small_capture,
        &wire,
        1_790_000_000_123_456,
    ));
    // Before the epoch and at a second boundary.
    assert_same(records(
        Direction::ServerToClient,
        AnalyzerConfig::default(),
        &wire,
        -1,
    ));
    let deflate = AnalyzerConfig {
        deflate: Some(DeflateParams::default()),
        ..AnalyzerConfig::default()
    };
    let compressed = [
        FrameBuilder::text()
            .rsv1(true)
            .encode(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        FrameBuilder::binary()
            .rsv1(true)
            .encode(&[0xff, 0xff, 0xff]),
    ]
    .concat();
    assert_same(records(
        Direction::ServerToClient,
        deflate,
        &compressed,
        1_000_000,
    ));
}

#[test]
fn a_message_line_reuses_its_frame_payload_only_when_the_bytes_are_the_same() {
    // The frame keeps 8 bytes, the message 64: same message, different captures.
    let capture_differs = AnalyzerConfig {
        max_frame_capture: 8,
        max_message_capture: 64,
        ..AnalyzerConfig::default()
    };
    let wire = [
        FrameBuilder::text()
            .mask([1, 2, 3, 4])
            .encode(b"twenty bytes of text"),
        FrameBuilder::binary().encode(&[0xa5; 20]),
        // The same bytes again, then a single-frame message after a fragmented one.
        FrameBuilder::binary().encode(&[0xa5; 20]),
        FrameBuilder::binary().fin(false).encode(&[0xa5; 4]),
        FrameBuilder::continuation().encode(&[0xa5; 4]),
        FrameBuilder::binary().encode(&[0xa5; 4]),
    ]
    .concat();
    assert_same(records(
        Direction::ClientToServer,
        capture_differs,
        &wire,
        7_000_000,
    ));
    assert_same(records(
        Direction::ServerToClient,
        AnalyzerConfig::default(),
        &wire,
        7_000_000,
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_frames_match_the_serde_output(
        frames in proptest::collection::vec((0u8..16, any::<bool>(), 0u8..8, proptest::option::of(any::<[u8; 4]>()),
            proptest::collection::vec(any::<u8>(), 0..300)), 1..8),
        time in any::<i32>(),
    ) {
        let mut wire = Vec::new();
        for (op, fin, rsv, mask, payload) in frames {
            let mut b = FrameBuilder::new(Opcode::from_bits(op)).fin(fin).rsv1(rsv & 4 != 0).rsv2(rsv & 2 != 0).rsv3(rsv & 1 != 0);
            if let Some(key) = mask {
                b = b.mask(key);
            }
            wire.extend(b.encode(&payload));
        }
        assert_same(records(Direction::ClientToServer, AnalyzerConfig::default(), &wire, i64::from(time) * 1000));
    }
}
