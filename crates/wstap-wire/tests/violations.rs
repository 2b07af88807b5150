//! One test per violation, plus reassembly, close parsing and permessage-deflate, all
//! through the public [`StreamAnalyzer`] as the proxy's tap drives it.

use wstap_wire::deflate::DeflateParams;
use wstap_wire::{
    AnalyzerConfig, Direction, FrameBuilder, FrameRecord, LengthEncoding, MessageRecord, Opcode,
    Record, StreamAnalyzer, Timestamp, Violation,
};

const KEY: [u8; 4] = [0x16, 0x39, 0x8f, 0x63];

fn run(
    direction: Direction,
    config: AnalyzerConfig,
    wire: &[u8],
) -> (Vec<FrameRecord>, Vec<MessageRecord>) {
    let mut analyzer = StreamAnalyzer::new(direction, config);
    let mut out = Vec::new();
    analyzer.feed(wire, Timestamp(1), &mut out);
    analyzer.finish(Timestamp(2), &mut out);
    let mut frames = Vec::new();
    let mut messages = Vec::new();
    for record in out {
        match record {
            Record::Frame(f) => frames.push(f),
            Record::Message(m) => messages.push(m),
        }
    }
    (frames, messages)
}

fn client(frames: &[Vec<u8>]) -> (Vec<FrameRecord>, Vec<MessageRecord>) {
    run(
        Direction::ClientToServer,
        AnalyzerConfig::default(),
        &frames.concat(),
    )
}

fn server(frames: &[Vec<u8>]) -> (Vec<FrameRecord>, Vec<MessageRecord>) {
    run(
        Direction::ServerToClient,
        AnalyzerConfig::default(),
        &frames.concat(),
    )
}

fn violations_of(frames: &[FrameRecord]) -> Vec<Vec<Violation>> {
    frames.iter().map(|f| f.violations.clone()).collect()
}

#[test]
fn conforming_traffic_has_no_violations() {
    let (frames, messages) = client(&[
        FrameBuilder::text().mask(KEY).encode("héllo".as_bytes()),
        FrameBuilder::binary().mask(KEY).encode(&[0; 300]),
        FrameBuilder::close().mask(KEY).encode(b"\x03\xe8bye"),
    ]);
    assert!(frames.iter().all(|f| f.violations.is_empty()), "{frames:?}");
    assert_eq!(messages.len(), 3);
}

#[test]
fn reserved_opcodes_are_flagged() {
    for op in [3u8, 7, 0xB, 0xF] {
        let (frames, _) = client(&[FrameBuilder::new(Opcode::Reserved(op))
            .mask(KEY)
            .encode(b"")]);
        assert_eq!(frames[0].violations, [Violation::ReservedOpcode(op)]);
        assert_eq!(frames[0].header.opcode().bits(), op);
    }
}

#[test]
fn rsv_bits_without_extension_are_flagged() {
    let (frames, _) = client(&[FrameBuilder::text()
        .rsv2(true)
        .rsv3(true)
        .mask(KEY)
        .encode(b"x")]);
    assert_eq!(
        frames[0].violations,
        [Violation::ReservedBitSet { bits: 0x30 }]
    );
}

#[test]
fn rsv1_is_allowed_once_deflate_is_negotiated() {
    let config = AnalyzerConfig {
        deflate: Some(DeflateParams::default()),
        ..AnalyzerConfig::default()
    };
    let wire = FrameBuilder::text()
        .rsv1(true)
        .mask(KEY)
        .encode(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    let (frames, messages) = run(Direction::ClientToServer, config, &wire);
    assert_eq!(frames[0].violations, []);
    assert_eq!(
        &frames[0].inflated.as_ref().unwrap().data.data[..],
        b"Hello"
    );
    assert_eq!(&messages[0].data.data[..], b"Hello");
    assert!(messages[0].compressed);
}

#[test]
fn control_frame_over_125_bytes_is_flagged() {
    let (frames, _) = client(&[FrameBuilder::ping().mask(KEY).encode(&[1; 126])]);
    assert_eq!(frames[0].violations, [Violation::ControlFrameTooLong(126)]);
}

#[test]
fn control_frame_without_fin_is_flagged() {
    let (frames, messages) = client(&[FrameBuilder::ping().fin(false).mask(KEY).encode(b"p")]);
    assert_eq!(frames[0].violations, [Violation::FragmentedControlFrame]);
    assert_eq!(messages.len(), 1, "a control frame is a message of its own");
}

#[test]
fn non_minimal_length_encodings_are_flagged() {
    let (frames, _) = client(&[
        FrameBuilder::binary()
            .mask(KEY)
            .length_encoding(LengthEncoding::Bits16)
            .encode(&[0; 5]),
        FrameBuilder::binary()
            .mask(KEY)
            .length_encoding(LengthEncoding::Bits64)
            .encode(&[0; 200]),
    ]);
    assert_eq!(
        violations_of(&frames),
        [
            vec![Violation::NonMinimalLength {
                used: LengthEncoding::Bits16,
                len: 5
            }],
            vec![Violation::NonMinimalLength {
                used: LengthEncoding::Bits64,
                len: 200
            }],
        ]
    );
}

#[test]
fn length_with_top_bit_set_is_flagged() {
    let wire = FrameBuilder::binary()
        .declared_len(1 << 63)
        .encode_header(0);
    let mut analyzer = StreamAnalyzer::new(Direction::ServerToClient, AnalyzerConfig::default());
    let mut out = Vec::new();
    analyzer.feed(&wire.clone(), Timestamp(0), &mut out);
    analyzer.feed(&[0; 100], Timestamp(0), &mut out);
    match analyzer.finish(Timestamp(1), &mut out) {
        Some(wstap_wire::PartialFrame::Payload {
            header,
            received,
            violations,
        }) => {
            assert_eq!((header.payload_len(), received), (1 << 63, 100));
            assert_eq!(violations, [Violation::LengthHighBitSet]);
        }
        other => panic!("expected a cut payload, got {other:?}"),
    }
}

#[test]
fn unmasked_client_frame_is_flagged() {
    let (frames, _) = client(&[FrameBuilder::text().encode(b"hi")]);
    assert_eq!(frames[0].violations, [Violation::UnmaskedClientFrame]);
}

#[test]
fn masked_server_frame_is_flagged() {
    let (frames, _) = server(&[FrameBuilder::text().mask(KEY).encode(b"hi")]);
    assert_eq!(frames[0].violations, [Violation::MaskedServerFrame]);
    assert_eq!(
        &frames[0].payload.data[..],
        b"hi",
        "payload is still unmasked for display"
    );
}

#[test]
fn continuation_without_open_message_is_flagged() {
    let (frames, messages) = server(&[FrameBuilder::continuation().encode(b"stray")]);
    assert_eq!(
        frames[0].violations,
        [Violation::ContinuationWithoutMessage]
    );
    assert_eq!(&messages[0].data.data[..], b"stray");
}

#[test]
fn new_data_frame_inside_fragmented_message_is_flagged() {
    let (frames, messages) = server(&[
        FrameBuilder::text().fin(false).encode(b"one"),
        FrameBuilder::binary().encode(b"two"),
    ]);
    assert_eq!(
        violations_of(&frames),
        [vec![], vec![Violation::DataFrameInsideFragmentedMessage]]
    );
    assert!(messages[0].incomplete);
    assert_eq!(&messages[1].data.data[..], b"two");
}

#[test]
fn invalid_utf8_is_flagged_on_the_fragment_that_carries_it() {
    let (frames, messages) = server(&[
        FrameBuilder::text().fin(false).encode(b"ok "),
        FrameBuilder::continuation().fin(false).encode(b"\xff"),
        FrameBuilder::continuation().encode(b" more"),
    ]);
    assert_eq!(
        violations_of(&frames),
        [vec![], vec![Violation::InvalidUtf8], vec![]]
    );
    assert_eq!(messages[0].violations, [Violation::InvalidUtf8]);
}

#[test]
fn utf8_split_across_fragments_is_valid_and_truncated_end_is_flagged() {
    let euro = "€".as_bytes();
    let (frames, _) = server(&[
        FrameBuilder::text().fin(false).encode(&euro[..1]),
        FrameBuilder::continuation().encode(&euro[1..]),
    ]);
    assert!(frames.iter().all(|f| f.violations.is_empty()));
    let (frames, messages) = server(&[
        FrameBuilder::text().fin(false).encode(b"a"),
        FrameBuilder::continuation().encode(&euro[..2]),
    ]);
    assert_eq!(frames[1].violations, [Violation::TruncatedUtf8]);
    assert_eq!(messages[0].violations, [Violation::TruncatedUtf8]);
}

#[test]
fn close_with_one_byte_is_flagged() {
    let (frames, _) = client(&[FrameBuilder::close().mask(KEY).encode(b"\x03")]);
    assert_eq!(frames[0].violations, [Violation::CloseOneByte]);
}

#[test]
fn invalid_close_code_is_flagged() {
    let (frames, _) = server(&[FrameBuilder::close().encode(&1005u16.to_be_bytes())]);
    assert_eq!(frames[0].violations, [Violation::InvalidCloseCode(1005)]);
}

#[test]
fn invalid_utf8_close_reason_is_flagged() {
    let (frames, _) = server(&[FrameBuilder::close().encode(b"\x03\xe8\xc3")]);
    assert_eq!(frames[0].violations, [Violation::InvalidUtf8CloseReason]);
}

#[test]
fn close_code_and_reason_are_parsed() {
    let (frames, _) = client(&[FrameBuilder::close()
        .mask(KEY)
        .encode(b"\x0f\xa1going away now")]);
    let close = frames[0].close.as_ref().unwrap();
    assert_eq!(
        (close.code, close.reason.as_str()),
        (Some(4001), "going away now")
    );
}

#[test]
fn frame_after_close_is_flagged() {
    let (frames, _) = server(&[
        FrameBuilder::close().encode(b"\x03\xe8"),
        FrameBuilder::text().encode(b"late"),
    ]);
    assert_eq!(
        violations_of(&frames),
        [vec![], vec![Violation::FrameAfterClose]]
    );
}

#[test]
fn fragmented_text_with_interleaved_ping_reassembles() {
    let (frames, messages) = client(&[
        FrameBuilder::text().fin(false).mask(KEY).encode(b"Hel"),
        FrameBuilder::ping()
            .mask([1, 2, 3, 4])
            .encode(b"are you there"),
        FrameBuilder::continuation()
            .mask([5, 6, 7, 8])
            .encode(b"lo"),
    ]);
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().all(|f| f.violations.is_empty()));
    assert_eq!(messages.len(), 2, "the ping, then the text");
    assert_eq!(
        (messages[0].opcode, &messages[0].data.data[..]),
        (Opcode::Ping, &b"are you there"[..])
    );
    assert_eq!((messages[1].opcode, messages[1].frames), (Opcode::Text, 2));
    assert_eq!(&messages[1].data.data[..], b"Hello");
    assert_eq!(messages[1].wire_payload_len, 5);
}

#[test]
fn captures_are_bounded_but_counts_are_exact() {
    let config = AnalyzerConfig {
        max_frame_capture: 10,
        max_message_capture: 20,
        ..AnalyzerConfig::default()
    };
    let wire = [
        FrameBuilder::binary().fin(false).encode(&[7; 1000]),
        FrameBuilder::continuation().encode(&[8; 1000]),
    ]
    .concat();
    let (frames, messages) = run(Direction::ServerToClient, config, &wire);
    assert_eq!(
        (frames[0].payload.data.len(), frames[0].payload.total),
        (10, 1000)
    );
    assert!(frames[0].payload.truncated());
    assert_eq!(
        (messages[0].data.data.len(), messages[0].data.total),
        (20, 2000)
    );
}

#[test]
fn deflate_context_takeover_and_fragmented_compressed_message() {
    let config = AnalyzerConfig {
        deflate: Some(DeflateParams::default()),
        ..AnalyzerConfig::default()
    };
    // RFC 7692 7.2.3.2: two messages sharing the window; then 7.2.3.1 split across frames.
    let wire = [
        FrameBuilder::text()
            .rsv1(true)
            .encode(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
        FrameBuilder::text()
            .rsv1(true)
            .encode(&[0xf2, 0x00, 0x11, 0x00, 0x00]),
        FrameBuilder::text()
            .rsv1(true)
            .fin(false)
            .encode(&[0xf2, 0x48, 0xcd]),
        FrameBuilder::continuation().encode(&[0xc9, 0xc9, 0x07, 0x00]),
    ]
    .concat();
    let (frames, messages) = run(Direction::ServerToClient, config, &wire);
    assert!(frames.iter().all(|f| f.violations.is_empty()), "{frames:?}");
    let texts: Vec<&[u8]> = messages.iter().map(|m| &m.data.data[..]).collect();
    assert_eq!(texts, [&b"Hello"[..], b"Hello", b"Hello"]);
    assert_eq!(messages[2].wire_payload_len, 7);
}

#[test]
fn rsv1_on_continuation_under_deflate_is_flagged() {
    let config = AnalyzerConfig {
        deflate: Some(DeflateParams::default()),
        ..AnalyzerConfig::default()
    };
    let wire = [
        FrameBuilder::binary().fin(false).encode(b"a"),
        FrameBuilder::continuation().rsv1(true).encode(b"b"),
    ]
    .concat();
    let (frames, _) = run(Direction::ServerToClient, config, &wire);
    assert_eq!(frames[1].violations, [Violation::CompressedBitMisplaced]);
}

#[test]
fn decompression_bomb_is_counted_not_stored() {
    use flate2::{write::DeflateEncoder, Compression};
    use std::io::Write;
    let mut encoder = DeflateEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.flush().unwrap();
    let mut compressed = encoder.finish().unwrap();
    compressed.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    let config = AnalyzerConfig {
        deflate: Some(DeflateParams::default()),
        ..AnalyzerConfig::default()
    };
    let wire = FrameBuilder::binary().rsv1(true).encode(&compressed);
    let (frames, messages) = run(Direction::ServerToClient, config, &wire);
    assert_eq!(messages[0].data.total, 64 << 20);
    assert_eq!(messages[0].data.data.len(), 64 * 1024);
    assert_eq!(frames[0].inflated.as_ref().unwrap().data.total, 64 << 20);
}

#[test]
fn stream_cut_inside_a_header_reports_how_much_arrived() {
    let mut analyzer = StreamAnalyzer::new(Direction::ClientToServer, AnalyzerConfig::default());
    let mut out = Vec::new();
    analyzer.feed(&[0x81, 0xFE, 0x01], Timestamp(0), &mut out);
    assert_eq!(
        analyzer.finish(Timestamp(1), &mut out),
        Some(wstap_wire::PartialFrame::Header {
            received: 3,
            needed: 8
        })
    );
}

#[test]
fn a_message_cut_off_mid_frame_keeps_what_arrived_of_it() {
    let wire = FrameBuilder::binary().encode(b"hello world");
    let (frames, messages) = run(
        Direction::ServerToClient,
        AnalyzerConfig::default(),
        &wire[..2 + 5],
    );
    assert!(frames.is_empty(), "the frame never ended");
    assert_eq!(messages.len(), 1);
    assert!(messages[0].incomplete);
    assert_eq!(&messages[0].data.data[..], b"hello");
    assert_eq!(messages[0].data.total, 5);
}
