//! Property tests: decoding is independent of how the stream is cut into chunks.

use proptest::prelude::*;
use wstap_wire::{
    AnalyzerConfig, Direction, FrameBuilder, Opcode, Record, StreamAnalyzer, Timestamp,
};

#[derive(Debug, Clone)]
struct Spec {
    opcode: u8,
    fin: bool,
    rsv: u8,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![
            Just(0u8),
            Just(1),
            Just(2),
            Just(8),
            Just(9),
            Just(10),
            0u8..16
        ],
        any::<bool>(),
        0u8..8,
        proptest::option::of(any::<[u8; 4]>()),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..130),
            proptest::collection::vec(any::<u8>(), 120..70_000),
        ],
    )
        .prop_map(|(opcode, fin, rsv, mask, payload)| Spec {
            opcode,
            fin,
            rsv,
            mask,
            payload,
        })
}

fn encode(specs: &[Spec]) -> Vec<u8> {
    let mut wire = Vec::new();
    for s in specs {
        let mut b = FrameBuilder::new(Opcode::from_bits(s.opcode))
            .fin(s.fin)
            .rsv1(s.rsv & 4 != 0)
            .rsv2(s.rsv & 2 != 0)
            .rsv3(s.rsv & 1 != 0);
        if let Some(key) = s.mask {
            b = b.mask(key);
        }
        wire.extend(b.encode(&s.payload));
    }
    wire
}

/// Captures large enough to keep every generated payload whole.
fn config() -> AnalyzerConfig {
    AnalyzerConfig {
        max_frame_capture: 1 << 20,
        max_message_capture: 1 << 20,
        ..AnalyzerConfig::default()
    }
}

fn decode(wire: &[u8], cuts: &[usize]) -> Vec<Record> {
    decode_with(config(), wire, cuts)
}

/// The records of `wire` fed in chunks cut at `cuts`, analyzed with `config`.
fn decode_with(config: AnalyzerConfig, wire: &[u8], cuts: &[usize]) -> Vec<Record> {
    let mut analyzer = StreamAnalyzer::new(Direction::ClientToServer, config);
    let mut out = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain([&wire.len()]) {
        let chunk = wire[at..cut].to_vec();
        analyzer.feed(&chunk, Timestamp(0), &mut out);
        at = cut;
    }
    out
}

/// What a strict relay does with `wire` cut at `cuts`: judges each chunk, forwards its
/// clean bytes, and stops at the first offence. Returns the bytes forwarded, the records
/// published and the offence.
fn judge(wire: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<Record>, Option<wstap_wire::Offence>) {
    let mut analyzer = StreamAnalyzer::new(Direction::ClientToServer, config());
    let (mut forwarded, mut records) = (Vec::new(), Vec::new());
    let mut at = 0;
    for &cut in cuts.iter().chain([&wire.len()]) {
        let chunk = &wire[at..cut];
        let verdict = analyzer.judge(chunk, Timestamp(0), &mut records);
        forwarded.extend_from_slice(&chunk[..verdict.clean]);
        if verdict.offence.is_some() {
            return (forwarded, records, verdict.offence);
        }
        at = cut;
    }
    (forwarded, records, None)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// A strict relay forwards exactly the frames before the first one that breaks a rule
    /// (and, when that frame began in an earlier chunk, the part of it that came then), and
    /// publishes records for nothing it did not decode.
    #[test]
    fn judging_forwards_exactly_what_precedes_the_first_offending_frame(
        specs in proptest::collection::vec(spec(), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let wire = encode(&specs);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.sort_unstable();
        let whole = decode(&wire, &[]);
        let (forwarded, records, offence) = judge(&wire, &cuts);
        prop_assert!(wire.starts_with(&forwarded));
        prop_assert!(whole.starts_with(&records));
        let frames: Vec<&wstap_wire::FrameRecord> = whole.iter().filter_map(|r| match r {
            Record::Frame(f) => Some(f),
            Record::Message(_) => None,
        }).collect();
        let starts: Vec<usize> = specs.iter().scan(0, |at, s| {
            let start = *at;
            *at += encode(std::slice::from_ref(s)).len();
            Some(start)
        }).collect();
        match frames.iter().position(|f| !f.violations.is_empty()) {
            None => {
                prop_assert!(offence.is_none());
                prop_assert_eq!(forwarded.len(), wire.len());
            }
            Some(k) => {
                let offence = offence.expect("the offending frame is found");
                prop_assert_eq!(offence.index, k as u64);
                prop_assert_eq!(&offence.violation, &frames[k].violations[0]);
                if offence.begins_in_chunk {
                    prop_assert_eq!(forwarded.len(), starts[k]);
                } else {
                    prop_assert!(forwarded.len() > starts[k]);
                }
                let decoded_frames = records.iter().filter(|r| matches!(r, Record::Frame(_))).count();
                prop_assert!(decoded_frames <= k + 1, "nothing after the offending frame is decoded");
            }
        }
    }

    #[test]
    fn any_chunking_decodes_like_the_whole(
        specs in proptest::collection::vec(spec(), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let wire = encode(&specs);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.sort_unstable();
        let whole = decode(&wire, &[]);
        let chunked = decode(&wire, &cuts);
        prop_assert_eq!(&whole, &chunked);

        let frames: Vec<_> = whole.iter().filter_map(|r| match r {
            Record::Frame(f) => Some(f),
            Record::Message(_) => None,
        }).collect();
        prop_assert_eq!(frames.len(), specs.len());
        for (frame, spec) in frames.iter().zip(&specs) {
            prop_assert_eq!(frame.header.opcode().bits(), spec.opcode);
            prop_assert_eq!(frame.header.fin(), spec.fin);
            prop_assert_eq!(frame.header.mask(), spec.mask);
            prop_assert_eq!(&frame.payload.data, &spec.payload);
        }
    }

    #[test]
    fn one_byte_at_a_time_decodes_like_the_whole(specs in proptest::collection::vec(spec(), 1..4)) {
        let wire = encode(&specs);
        if wire.len() <= 4096 {
            let cuts: Vec<usize> = (1..wire.len()).collect();
            prop_assert_eq!(decode(&wire, &[]), decode(&wire, &cuts));
        }
    }
}

/// Found by the decoder fuzz target: a compressed message cut off mid-payload inflated to
/// different bytes depending on how its payload was chunked, because the inflater held
/// decoded output back. Inflating with a sync flush makes the output depend on the bytes
/// only.
#[test]
fn inflated_output_does_not_depend_on_chunking_regression() {
    use wstap_wire::deflate::DeflateParams;
    let wire = [0xe1, 0x32, 0x9b, 0x27, 0x00, 0xff, 0xff];
    let config = AnalyzerConfig {
        deflate: Some(DeflateParams::default()),
        ..AnalyzerConfig::default()
    };
    let run = |step: usize| {
        let mut analyzer = StreamAnalyzer::new(Direction::ServerToClient, config);
        let mut out = Vec::new();
        for chunk in wire.chunks(step) {
            analyzer.feed(chunk, Timestamp(0), &mut out);
        }
        let cut = analyzer.finish(Timestamp(0), &mut out);
        (out, cut)
    };
    let whole = run(wire.len());
    for step in 1..wire.len() {
        assert_eq!(run(step), whole, "step {step}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A message's own violations are those of its frames that are about the message
    /// (its text, its compression), in the order they were found: so the message of one
    /// frame says nothing its frame does not.
    #[test]
    fn a_message_holds_exactly_its_frames_message_level_violations(
        specs in proptest::collection::vec(spec(), 1..6),
        deflate in any::<bool>(),
    ) {
        let config = AnalyzerConfig {
            deflate: deflate.then(wstap_wire::deflate::DeflateParams::default),
            ..config()
        };
        let mut analyzer = StreamAnalyzer::new(Direction::ClientToServer, config);
        let mut out = Vec::new();
        analyzer.feed(&encode(&specs), Timestamp(0), &mut out);
        let mut pending: Vec<wstap_wire::Violation> = Vec::new();
        let mut controls: Vec<wstap_wire::Violation> = Vec::new();
        for record in &out {
            match record {
                Record::Frame(f) => {
                    let about: Vec<_> = f.violations.iter().filter(|v| v.is_about_message()).cloned().collect();
                    if f.header.opcode().is_control() || matches!(f.header.opcode(), Opcode::Reserved(_)) {
                        controls = about;
                    } else {
                        pending.extend(about);
                    }
                }
                Record::Message(m) => {
                    let expected = if m.opcode.is_control() || matches!(m.opcode, Opcode::Reserved(_)) {
                        std::mem::take(&mut controls)
                    } else {
                        std::mem::take(&mut pending)
                    };
                    prop_assert_eq!(&m.violations, &expected);
                }
            }
        }
    }
}

/// A message for the one-frame property, as the analyzer may meet it: any opcode (an
/// orphan continuation, a reserved one, a close, a control frame over 125 bytes), deflated
/// or not (and then perhaps corrupt), whole or in two fragments (perhaps with a ping
/// between them, perhaps never finished, so that the next data frame cuts it short).
#[derive(Debug, Clone)]
struct MessageSpec {
    opcode: Opcode,
    compressed: bool,
    corrupt: bool,
    fragmented: bool,
    ping_between: bool,
    unfinished: bool,
    data: Vec<u8>,
}

impl MessageSpec {
    /// Whether the analyzer must make a one-frame message of it, whatever came before.
    fn is_one_frame(&self) -> bool {
        !self.fragmented && self.opcode != Opcode::Continuation
    }
}

fn message_spec() -> impl Strategy<Value = MessageSpec> {
    (
        prop_oneof![
            Just(Opcode::Text),
            Just(Opcode::Binary),
            Just(Opcode::Ping),
            Just(Opcode::Close),
            Just(Opcode::Continuation),
            Just(Opcode::from_bits(3)),
        ],
        any::<[bool; 5]>(),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(0u8..4, 100..3000),
        ],
    )
        .prop_map(
            |(opcode, [compressed, corrupt, fragmented, ping, unfinished], data)| {
                let data_start = matches!(opcode, Opcode::Text | Opcode::Binary);
                let fragmented = fragmented && data_start;
                MessageSpec {
                    opcode,
                    compressed: compressed && data_start,
                    corrupt: corrupt && compressed && data_start,
                    fragmented,
                    ping_between: ping && fragmented,
                    unfinished: unfinished && fragmented,
                    data: if data_start {
                        data
                    } else {
                        data[..data.len().min(200)].to_vec()
                    },
                }
            },
        )
}

/// RFC 7692's deflate of one message: raw DEFLATE, sync flush, the final 4 bytes cut.
fn deflated(data: &[u8]) -> Vec<u8> {
    let mut deflater = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    deflater
        .compress_vec(data, &mut out, flate2::FlushCompress::Sync)
        .expect("deflate");
    out.truncate(out.len().saturating_sub(4));
    out
}

fn encode_messages(messages: &[MessageSpec]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut wire = Vec::new();
    for m in messages {
        let mut payload = if m.compressed {
            deflated(&m.data)
        } else {
            m.data.clone()
        };
        if m.corrupt {
            if let Some(byte) = payload.first_mut() {
                *byte ^= 0xff;
            }
        }
        let pieces: Vec<&[u8]> = if m.fragmented {
            let (a, b) = payload.split_at(payload.len() / 2);
            if m.unfinished {
                vec![a]
            } else {
                vec![a, b]
            }
        } else {
            vec![&payload[..]]
        };
        let last = if m.fragmented { 2 } else { 1 };
        for (i, piece) in pieces.iter().enumerate() {
            if i == 1 && m.ping_between {
                wire.extend(FrameBuilder::ping().mask(KEY).encode(b"between"));
            }
            let opcode = if i == 0 {
                m.opcode
            } else {
                Opcode::Continuation
            };
            let frame = FrameBuilder::new(opcode)
                .fin(i + 1 == last)
                .rsv1(m.compressed && i == 0)
                .mask(KEY);
            wire.extend(frame.encode(piece));
        }
    }
    wire
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The contract the capture relies on to store a one-frame message once: its data is
    /// what its frame record holds (the inflated bytes when compressed), up to the smaller
    /// of the two capture limits, so equal lengths mean equal bytes, whatever the limits,
    /// the compression and the chunking.
    #[test]
    fn a_message_of_one_frame_holds_its_frames_bytes(
        messages in proptest::collection::vec(message_spec(), 1..6),
        limits in (prop_oneof![Just(4usize), Just(125), Just(1000), Just(1 << 20)],
                   prop_oneof![Just(4usize), Just(125), Just(1000), Just(1 << 20)]),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let wire = encode_messages(&messages);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.sort_unstable();
        let config = AnalyzerConfig {
            max_frame_capture: limits.0,
            max_message_capture: limits.1,
            deflate: Some(wstap_wire::deflate::DeflateParams::default()),
            ..AnalyzerConfig::default()
        };
        let records = decode_with(config, &wire, &cuts);
        let mut whole_frame_messages = 0;
        for pair in records.windows(2) {
            let (Record::Frame(frame), Record::Message(message)) = (&pair[0], &pair[1]) else {
                continue;
            };
            if message.frames != 1 {
                continue;
            }
            whole_frame_messages += 1;
            let held = frame.inflated.as_ref().map_or(&frame.payload, |i| &i.data);
            prop_assert_eq!(held.total, message.data.total);
            let kept = held.data.len().min(message.data.data.len());
            prop_assert_eq!(&held.data[..kept], &message.data.data[..kept]);
            if limits.0 == limits.1 && !frame.header.opcode().is_control() {
                prop_assert_eq!(&held.data, &message.data.data);
            }
            // Shared, not copied, when the message keeps no more than the frame does.
            let frame_keeps = match frame.header.opcode().is_control() {
                true => limits.0.max(125),
                false => limits.0,
            };
            if limits.1 <= frame_keeps && !message.incomplete && !message.data.data.is_empty() {
                prop_assert_eq!(message.data.data.as_ptr(), held.data.as_ptr(), "shared");
            }
        }
        let at_least = messages.iter().filter(|m| m.is_one_frame()).count()
            + messages.iter().filter(|m| m.ping_between && !m.unfinished).count();
        prop_assert!(whole_frame_messages >= at_least);
    }
}

/// Where frames end, and whether a data message is open there, for any chunking: what a
/// relay needs to hold or add messages only between them.
#[test]
fn frame_ends_are_marked_with_whether_a_message_is_open_in_any_chunking() {
    let frames = [
        FrameBuilder::text()
            .fin(false)
            .mask([1, 2, 3, 4])
            .encode(b"par"),
        FrameBuilder::ping().mask([5, 6, 7, 8]).encode(b"?"),
        FrameBuilder::continuation()
            .mask([9, 9, 9, 9])
            .encode(b"tial"),
        FrameBuilder::binary().mask([0, 0, 0, 1]).encode(&[0; 300]),
    ];
    let wire = frames.concat();
    let ends: Vec<usize> = frames
        .iter()
        .scan(0, |at, f| {
            *at += f.len();
            Some(*at)
        })
        .collect();
    for size in [1, 2, 7, 64, wire.len()] {
        let mut analyzer = StreamAnalyzer::new(Direction::ClientToServer, config());
        let (mut records, mut marks) = (Vec::new(), Vec::new());
        let mut base = 0;
        for chunk in wire.chunks(size) {
            let before = chunk.to_vec();
            let mut found = Vec::new();
            analyzer.feed_marking_ends(chunk, Timestamp(0), &mut records, &mut found);
            assert_eq!(chunk, &before[..], "the bytes stay as read (masked)");
            marks.extend(found.iter().map(|e| (base + e.offset, e.message_open)));
            base += chunk.len();
        }
        assert_eq!(
            marks,
            [
                (ends[0], true),
                (ends[1], true),
                (ends[2], false),
                (ends[3], false)
            ],
            "chunks of {size}"
        );
        assert!(!analyzer.message_open());
    }
}

/// `record` as an analyzer with capture limits `frame` and `message` would keep it: the
/// first bytes of each capture, the totals as they were.
fn cut_to(record: &Record, frame: usize, message: usize) -> Record {
    let cut = |c: &wstap_wire::Capture, limit: usize| wstap_wire::Capture {
        data: c.data.slice(..c.data.len().min(limit)),
        total: c.total,
    };
    match record {
        Record::Frame(f) => {
            let mut f = f.clone();
            let limit = if f.header.opcode().is_control() {
                frame.max(125)
            } else {
                frame
            };
            f.payload = cut(&f.payload, limit);
            if let Some(inflated) = f.inflated.as_mut() {
                inflated.data = cut(&inflated.data, frame);
            }
            Record::Frame(f)
        }
        Record::Message(m) => {
            let mut m = m.clone();
            m.data = cut(&m.data, message);
            Record::Message(m)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Small captures keep each payload's first bytes and exact totals and verdicts, in
    /// any chunking: the bytes nothing needs are counted, not unmasked. (Control frames
    /// are kept within 125 bytes: a longer close frame's reason is read from what was
    /// captured of it, which differs by design.)
    #[test]
    fn small_captures_keep_the_first_bytes_and_exact_counts(
        specs in proptest::collection::vec(spec(), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        frame_limit in 0usize..40,
        message_limit in 0usize..40,
    ) {
        let specs: Vec<Spec> = specs
            .into_iter()
            .map(|mut s| {
                if s.opcode >= 8 {
                    s.payload.truncate(125);
                }
                s
            })
            .collect();
        let wire = encode(&specs);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.sort_unstable();
        let small = AnalyzerConfig {
            max_frame_capture: frame_limit,
            max_message_capture: message_limit,
            ..AnalyzerConfig::default()
        };
        let expected: Vec<Record> = decode(&wire, &[])
            .iter()
            .map(|r| cut_to(r, frame_limit, message_limit))
            .collect();
        prop_assert_eq!(decode_with(small, &wire, &cuts), expected);
    }
}
