//! Fuzz the frame analyzer: any bytes, cut at fuzzer-chosen points, in both directions,
//! with and without permessage-deflate. It must never panic and must decode the same
//! records whatever the cuts; judging the chunks as `--strict` does must forward a prefix
//! of the input and publish a prefix of the records, up to the first offending frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wstap_wire::{deflate::DeflateParams, AnalyzerConfig, Direction, Record, StreamAnalyzer, Timestamp};

fuzz_target!(|input: &[u8]| {
    let Some((&control, wire)) = input.split_first() else { return };
    let config = AnalyzerConfig {
        max_frame_capture: 256,
        max_message_capture: 512,
        deflate: (control & 1 != 0).then(DeflateParams::default),
        other_extension_bits: 0,
    };
    let direction = if control & 2 != 0 { Direction::ClientToServer } else { Direction::ServerToClient };
    let step = usize::from(control >> 2).max(1);

    let mut whole = StreamAnalyzer::new(direction, config);
    let mut whole_out = Vec::new();
    whole.feed(&wire.to_vec(), Timestamp(0), &mut whole_out);
    let whole_end = whole.finish(Timestamp(0), &mut whole_out);

    let mut cut = StreamAnalyzer::new(direction, config);
    let mut cut_out = Vec::new();
    for chunk in wire.chunks(step) {
        cut.feed(&chunk.to_vec(), Timestamp(0), &mut cut_out);
    }
    let cut_end = cut.finish(Timestamp(0), &mut cut_out);

    let mut judged = StreamAnalyzer::new(direction, config);
    let (mut judged_out, mut forwarded) = (Vec::new(), 0usize);
    for chunk in wire.chunks(step) {
        let verdict = judged.judge(&chunk.to_vec(), Timestamp(0), &mut judged_out);
        assert!(verdict.clean <= chunk.len());
        forwarded += verdict.clean;
        if verdict.offence.is_some() {
            break;
        }
    }
    assert!(forwarded <= wire.len());
    assert!(judged_out.len() <= whole_out.len());
    let frames = |records: &[Record]| -> Vec<wstap_wire::FrameHeader> {
        records.iter().filter_map(|r| match r { Record::Frame(f) => Some(f.header), _ => None }).collect()
    };
    assert!(frames(&whole_out).starts_with(&frames(&judged_out)));

    // When a compressed stream is corrupt, or a compressed message never ends, how much
    // the inflater has surfaced depends on where calls ended (see
    // wstap_wire::deflate::Inflater); everything else must not.
    let corrupt = whole_out.iter().any(|r| match r {
        Record::Frame(f) => f.violations.iter().any(|v| v.code() == "inflate_failed"),
        Record::Message(m) => m.compressed && m.incomplete,
    });
    if corrupt {
        assert_eq!(whole_out.len(), cut_out.len());
        for (a, b) in whole_out.iter().zip(&cut_out) {
            match (a, b) {
                (Record::Frame(a), Record::Frame(b)) => {
                    assert_eq!((a.header, &a.payload, &a.close), (b.header, &b.payload, &b.close));
                }
                (Record::Message(a), Record::Message(b)) => assert_eq!((a.opcode, a.frames), (b.opcode, b.frames)),
                _ => panic!("record kinds differ"),
            }
        }
    } else {
        assert_eq!(whole_out, cut_out);
        assert_eq!(whole_end, cut_end);
    }
});
