//! What the relay core's tests share: a harness that drives a [`Relay`] as the engine's
//! loop does, and generators of streams.
#![allow(dead_code)] // Each test file uses its own part.

use proptest::prelude::*;
use std::time::{Duration, Instant};
use wstap_relay::{Command, Note, Refused, Relay, RelayConfig, Side, Transmit};
use wstap_wire::deflate::DeflateParams;
use wstap_wire::{
    AnalyzerConfig, CloseFrame, Direction, FrameBuilder, Opcode, Record, StreamAnalyzer, Timestamp,
    Violation,
};

/// What each side received: bytes, and whether its stream was ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Received {
    pub bytes: Vec<u8>,
    pub ended: bool,
}

/// A relay and what it wrote, driven as the engine's loop drives it.
pub struct Harness {
    pub relay: Relay,
    pub client: Received,
    pub server: Received,
    pub records: Vec<Record>,
    /// What interception told, in order.
    pub notes: Vec<Note>,
    /// Sides whose peer takes nothing: the first write to one never finishes.
    pub stuck: Vec<Side>,
    /// Time zero of the relay's monotonic clock.
    pub start: Instant,
}

impl Harness {
    pub fn new(config: RelayConfig) -> Harness {
        Harness {
            relay: Relay::new(config),
            client: Received::default(),
            server: Received::default(),
            records: Vec::new(),
            notes: Vec::new(),
            stuck: Vec::new(),
            start: Instant::now(),
        }
    }

    /// The monotonic instant `us` microseconds after the start.
    pub fn at(&self, us: u64) -> Instant {
        self.start + Duration::from_micros(us)
    }

    pub fn received(&mut self, side: Side) -> &mut Received {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Feeds `chunk` from `from` and writes what the relay says; returns whether the relay
    /// wanted it.
    pub fn feed(&mut self, from: Side, chunk: &[u8], now: i64) -> bool {
        if !self.relay.wants_read(from) {
            return false;
        }
        self.relay.feed(from, chunk, Timestamp(now));
        self.write_all(Some((from, chunk)));
        true
    }

    /// Writes every queued transmit; `Forward` ranges refer to `last` from its side.
    pub fn write_all(&mut self, last: Option<(Side, &[u8])>) {
        for to in [Side::Client, Side::Server] {
            if self.stuck.contains(&to) {
                // The write begins and never ends.
                let _ = self.relay.poll_transmit(to);
                continue;
            }
            while let Some(transmit) = self.relay.poll_transmit(to) {
                let bytes = match transmit {
                    Transmit::Forward(range) => {
                        let (from, chunk) = last.expect("a forward refers to a chunk");
                        assert_eq!(from, to.other(), "forwarded to the other side");
                        chunk[range].to_vec()
                    }
                    Transmit::Built(bytes) => bytes,
                    Transmit::Shutdown => {
                        assert!(!self.received(to).ended, "ended twice");
                        self.received(to).ended = true;
                        Vec::new()
                    }
                };
                let received = self.received(to);
                assert!(
                    bytes.is_empty() || !received.ended,
                    "bytes after the end of the stream"
                );
                received.bytes.extend(bytes);
                self.relay.transmitted(to);
            }
        }
        self.records.extend(self.relay.drain_events());
        self.notes.extend(self.relay.drain_notes());
    }

    /// [`Harness::feed`] at `us` microseconds on the monotonic clock (what a stream with
    /// network conditions times its frames by).
    pub fn feed_at(&mut self, from: Side, chunk: &[u8], us: u64) -> bool {
        if !self.relay.wants_read(from) {
            return false;
        }
        let at = self.at(us);
        self.relay
            .feed_at(from, chunk, Timestamp(us as i64 * 1000), at);
        self.write_all(Some((from, chunk)));
        true
    }

    pub fn eof(&mut self, from: Side) {
        self.relay.end_of_stream(from);
        self.write_all(None);
    }

    /// Carries out `command`, which must not be refused.
    pub fn command(&mut self, command: Command, now: u64) {
        let done = self.try_command(command, now);
        assert_eq!(done, Ok(()), "refused");
    }

    /// Asks for `command`: whether it was carried out.
    pub fn try_command(&mut self, command: Command, now: u64) -> Result<(), Refused> {
        let done = self.relay.command(command, self.at(now));
        self.write_all(None);
        done
    }

    pub fn timeout(&mut self, now: u64) {
        self.relay.handle_timeout(self.at(now));
        self.write_all(None);
    }

    pub fn records_of(&self, direction: Direction) -> Vec<Record> {
        self.records
            .iter()
            .filter(|r| record_direction(r) == direction)
            .cloned()
            .collect()
    }
}

pub fn record_direction(record: &Record) -> Direction {
    match record {
        Record::Frame(f) => f.direction,
        Record::Message(m) => m.direction,
    }
}

/// The records an analyzer of its own makes of `wire`, ended at `end`.
pub fn analyzed(
    direction: Direction,
    config: AnalyzerConfig,
    wire: &[u8],
    end: i64,
) -> Vec<Record> {
    let mut analyzer = StreamAnalyzer::new(direction, config);
    let mut out = Vec::new();
    analyzer.feed(wire, Timestamp(0), &mut out);
    analyzer.finish(Timestamp(end), &mut out);
    out
}

/// `records` without the text of inflate failures: on corrupt compressed data, zlib's
/// message depends on where its input was cut (the same bytes fail with "invalid distance
/// too far back" in one call, or pass one call and fail the next with "repeated call with
/// bad state"), as `wstap_wire::deflate::Inflater` documents. That a frame failed does not.
pub fn comparable(mut records: Vec<Record>) -> Vec<Record> {
    let blank = |violations: &mut Vec<Violation>| {
        for violation in violations {
            if let Violation::InflateFailed(why) = violation {
                why.clear();
            }
        }
    };
    for record in &mut records {
        match record {
            Record::Frame(frame) => blank(&mut frame.violations),
            Record::Message(message) => blank(&mut message.violations),
        }
    }
    records
}

pub fn websocket(config: AnalyzerConfig) -> RelayConfig {
    RelayConfig {
        websocket: Some(config),
        strict: false,
        strict_grace: None,
    }
}

pub fn strict() -> RelayConfig {
    RelayConfig {
        websocket: Some(AnalyzerConfig::default()),
        strict: true,
        strict_grace: None,
    }
}

/// A frame as a test writes it.
#[derive(Debug, Clone)]
pub struct Spec {
    pub opcode: u8,
    pub fin: bool,
    pub rsv: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

pub fn spec() -> impl Strategy<Value = Spec> {
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
        prop_oneof![3 => Just(0u8), 1 => 0u8..8],
        prop_oneof![5 => Just(true), 1 => Just(false)],
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..130),
            1 => proptest::collection::vec(any::<u8>(), 120..20_000),
        ],
    )
        .prop_map(|(opcode, fin, rsv, masked, payload)| Spec {
            opcode,
            fin,
            rsv,
            masked,
            payload,
        })
}

/// `specs` on the wire from `side`: masked where the spec says so, from the client (the
/// server's frames are masked where it says not, so both sides break the rule sometimes).
pub fn encode(specs: &[Spec], side: Side) -> Vec<u8> {
    let mut wire = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let mut b = FrameBuilder::new(Opcode::from_bits(s.opcode))
            .fin(s.fin)
            .rsv1(s.rsv & 4 != 0)
            .rsv2(s.rsv & 2 != 0)
            .rsv3(s.rsv & 1 != 0);
        let masked = match side {
            Side::Client => s.masked,
            Side::Server => !s.masked,
        };
        if masked {
            b = b.mask([i as u8, 0x5a, 0xa5, 0x3c]);
        }
        wire.extend(b.encode(&s.payload));
    }
    wire
}

/// `wire` cut at `cuts` (indices into it, any order).
pub fn chunks(wire: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
    at.push(0);
    at.push(wire.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| wire[w[0]..w[1]].to_vec()).collect()
}

pub fn config_with(deflate: bool) -> AnalyzerConfig {
    AnalyzerConfig {
        max_frame_capture: 1 << 16,
        max_message_capture: 1 << 16,
        deflate: deflate.then(DeflateParams::default),
        other_extension_bits: 0,
    }
}

/// The close frame a side received at the end of its bytes, decoded.
pub fn close_at_end(received: &[u8], masked: bool) -> (u16, String) {
    let direction = if masked {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    };
    let mut analyzer = StreamAnalyzer::new(direction, AnalyzerConfig::default());
    let mut out = Vec::new();
    analyzer.feed(received, Timestamp(0), &mut out);
    let close = out
        .iter()
        .rev()
        .find_map(|r| match r {
            Record::Frame(f) if f.header.opcode() == Opcode::Close => {
                assert_eq!(f.header.mask().is_some(), masked);
                assert!(f.violations.is_empty(), "{:?}", f.violations);
                f.close.clone()
            }
            _ => None,
        })
        .expect("a close frame");
    (close.code.unwrap_or_default(), close.reason)
}

/// A close frame from `from`'s side of a session, with `code`.
pub fn close_from(from: Side, code: u16) -> Vec<u8> {
    let payload = CloseFrame::encode(code, "");
    match from {
        Side::Client => FrameBuilder::close().mask([5; 4]).encode(&payload),
        Side::Server => FrameBuilder::close().encode(&payload),
    }
}

/// A valid stream from `side`: messages of one or more fragments, with pings between
/// fragments now and then; `None` cuts a message into fragments, `Some(n)` sends a ping
/// after fragment n.
pub fn valid_stream(messages: &[(Vec<u8>, u8, Option<u8>)], side: Side) -> Vec<u8> {
    let mut wire = Vec::new();
    let mut key = 0u8;
    let mut frame = |builder: FrameBuilder, payload: &[u8], wire: &mut Vec<u8>| {
        key = key.wrapping_add(1);
        let builder = match side {
            Side::Client => builder.mask([key, 1, 2, 3]),
            Side::Server => builder,
        };
        wire.extend(builder.encode(payload));
    };
    for (payload, fragments, ping_after) in messages {
        let pieces: Vec<&[u8]> = if payload.is_empty() {
            vec![&payload[..]]
        } else {
            payload
                .chunks(payload.len().div_ceil(usize::from(*fragments).max(1)))
                .collect()
        };
        for (i, piece) in pieces.iter().enumerate() {
            let builder = if i == 0 {
                FrameBuilder::binary()
            } else {
                FrameBuilder::continuation()
            };
            frame(builder.fin(i + 1 == pieces.len()), piece, &mut wire);
            if *ping_after == Some(i as u8) && i + 1 < pieces.len() {
                frame(FrameBuilder::ping(), b"are you there", &mut wire);
            }
        }
    }
    wire
}

pub fn messages() -> impl Strategy<Value = Vec<(Vec<u8>, u8, Option<u8>)>> {
    proptest::collection::vec(
        (
            proptest::collection::vec(any::<u8>(), 0..400),
            1u8..5,
            proptest::option::of(0u8..4),
        ),
        1..6,
    )
}

/// What an analyzer of `direction` makes of `wire`, and whether it ends between messages.
pub fn analyze_all(direction: Direction, wire: &[u8]) -> (Vec<Record>, bool) {
    let mut analyzer = StreamAnalyzer::new(direction, AnalyzerConfig::default());
    let mut out = Vec::new();
    analyzer.feed(wire, Timestamp(0), &mut out);
    let between = analyzer.at_frame_boundary() && !analyzer.message_open();
    (out, between)
}

pub fn violations_in(records: &[Record]) -> usize {
    records
        .iter()
        .map(|r| match r {
            Record::Frame(f) => f.violations.len(),
            Record::Message(m) => m.violations.len(),
        })
        .sum()
}
