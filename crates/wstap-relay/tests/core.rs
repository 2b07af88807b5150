//! The relay core's decisions, with plain function calls: byte-exact forwarding of any
//! stream in any chunking, `--strict`, shutdown at frame boundaries, close commands,
//! half-closes and failures.

use proptest::prelude::*;
use std::time::{Duration, Instant};
use wstap_relay::{
    Closed, Closes, Command, EndReason, HoldAt, MessageTest, Relay, RelayConfig, Side, StreamEnd,
    Transmit,
};
use wstap_wire::deflate::DeflateParams;
use wstap_wire::{
    AnalyzerConfig, CloseFrame, Direction, FrameBuilder, Opcode, Record, StreamAnalyzer, Timestamp,
    Violation,
};

/// What each side received: bytes, and whether its stream was ended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Received {
    bytes: Vec<u8>,
    ended: bool,
}

/// A relay and what it wrote, driven as the engine's loop drives it.
struct Harness {
    relay: Relay,
    client: Received,
    server: Received,
    records: Vec<Record>,
    /// Sides whose peer takes nothing: the first write to one never finishes.
    stuck: Vec<Side>,
    /// Time zero of the relay's monotonic clock.
    start: Instant,
}

impl Harness {
    fn new(config: RelayConfig) -> Harness {
        Harness {
            relay: Relay::new(config),
            client: Received::default(),
            server: Received::default(),
            records: Vec::new(),
            stuck: Vec::new(),
            start: Instant::now(),
        }
    }

    /// The monotonic instant `us` microseconds after the start.
    fn at(&self, us: u64) -> Instant {
        self.start + Duration::from_micros(us)
    }

    fn received(&mut self, side: Side) -> &mut Received {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Feeds `chunk` from `from` and writes what the relay says; returns whether the relay
    /// wanted it.
    fn feed(&mut self, from: Side, chunk: &[u8], now: i64) -> bool {
        if !self.relay.wants_read(from) {
            return false;
        }
        self.relay.feed(from, chunk, Timestamp(now));
        self.write_all(Some((from, chunk)));
        true
    }

    /// Writes every queued transmit; `Forward` ranges refer to `last` from its side.
    fn write_all(&mut self, last: Option<(Side, &[u8])>) {
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
    }

    fn eof(&mut self, from: Side) {
        self.relay.end_of_stream(from);
        self.write_all(None);
    }

    fn command(&mut self, command: Command, now: u64) {
        self.relay.command(command, self.at(now));
        self.write_all(None);
    }

    fn timeout(&mut self, now: u64) {
        self.relay.handle_timeout(self.at(now));
        self.write_all(None);
    }

    fn records_of(&self, direction: Direction) -> Vec<Record> {
        self.records
            .iter()
            .filter(|r| record_direction(r) == direction)
            .cloned()
            .collect()
    }
}

fn record_direction(record: &Record) -> Direction {
    match record {
        Record::Frame(f) => f.direction,
        Record::Message(m) => m.direction,
    }
}

/// The records an analyzer of its own makes of `wire`, ended at `end`.
fn analyzed(direction: Direction, config: AnalyzerConfig, wire: &[u8], end: i64) -> Vec<Record> {
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
fn comparable(mut records: Vec<Record>) -> Vec<Record> {
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

fn websocket(config: AnalyzerConfig) -> RelayConfig {
    RelayConfig {
        websocket: Some(config),
        strict: false,
        strict_grace: None,
    }
}

fn strict() -> RelayConfig {
    RelayConfig {
        websocket: Some(AnalyzerConfig::default()),
        strict: true,
        strict_grace: None,
    }
}

/// A frame as a test writes it.
#[derive(Debug, Clone)]
struct Spec {
    opcode: u8,
    fin: bool,
    rsv: u8,
    masked: bool,
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
fn encode(specs: &[Spec], side: Side) -> Vec<u8> {
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
fn chunks(wire: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
    at.push(0);
    at.push(wire.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| wire[w[0]..w[1]].to_vec()).collect()
}

fn config_with(deflate: bool) -> AnalyzerConfig {
    AnalyzerConfig {
        max_frame_capture: 1 << 16,
        max_message_capture: 1 << 16,
        deflate: deflate.then(DeflateParams::default),
        other_extension_bits: 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// With no commands, whatever the frames (valid or not, control frames between
    /// fragments, compressed or not) and however both directions are cut and interleaved,
    /// each side receives exactly what the other sent, and the records are those an
    /// analyzer of its own makes of each direction.
    #[test]
    fn any_stream_in_any_chunking_passes_byte_for_byte_with_the_analyzers_records(
        client_specs in proptest::collection::vec(spec(), 0..8),
        server_specs in proptest::collection::vec(spec(), 0..8),
        client_cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        server_cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        order in proptest::collection::vec(any::<bool>(), 0..40),
        deflate in any::<bool>(),
    ) {
        let config = config_with(deflate);
        let client_wire = encode(&client_specs, Side::Client);
        let server_wire = encode(&server_specs, Side::Server);
        let mut from_client = chunks(&client_wire, &client_cuts).into_iter();
        let mut from_server = chunks(&server_wire, &server_cuts).into_iter();
        let mut h = Harness::new(websocket(config));
        let mut order = order.into_iter();
        loop {
            let client_first = order.next().unwrap_or(true);
            let (side, next) = match (client_first, from_client.len(), from_server.len()) {
                (_, 0, 0) => break,
                (true, 1.., _) | (false, _, 0) => (Side::Client, from_client.next()),
                _ => (Side::Server, from_server.next()),
            };
            let Some(chunk) = next else { break };
            prop_assert!(h.feed(side, &chunk, 0));
        }
        prop_assert_eq!(from_client.len(), 0);
        h.eof(Side::Client);
        h.eof(Side::Server);
        prop_assert!(h.relay.is_done());
        let end = h.relay.end(Timestamp(7));
        h.records.extend(h.relay.drain_events());

        prop_assert_eq!(&h.server.bytes, &client_wire);
        prop_assert_eq!(&h.client.bytes, &server_wire);
        prop_assert!(h.server.ended && h.client.ended, "half-closes passed on");
        prop_assert_eq!(
            comparable(h.records_of(Direction::ClientToServer)),
            comparable(analyzed(Direction::ClientToServer, config, &client_wire, 7))
        );
        prop_assert_eq!(
            comparable(h.records_of(Direction::ServerToClient)),
            comparable(analyzed(Direction::ServerToClient, config, &server_wire, 7))
        );
        prop_assert_eq!(end.bytes, [client_wire.len() as u64, server_wire.len() as u64]);
        let peers = matches!(end.reason, EndReason::Peers { .. });
        prop_assert!(peers);
    }

    /// `--strict` forwards every frame before the first one that breaks a rule, and
    /// nothing of it when it began in the read that showed it broken; then it closes both
    /// sides, and records nothing it did not forward.
    #[test]
    fn strict_withholds_exactly_from_the_offending_frame_on_in_any_chunking(
        good in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..5),
        after in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..3),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let mut wire = Vec::new();
        for (i, payload) in good.iter().enumerate() {
            wire.extend(FrameBuilder::binary().mask([i as u8, 1, 2, 3]).encode(payload));
        }
        let bad_at = wire.len();
        // Unmasked from the client: the header already breaks the rule.
        wire.extend(FrameBuilder::text().encode(b"unmasked"));
        for payload in &after {
            wire.extend(FrameBuilder::binary().mask([9, 9, 9, 9]).encode(payload));
        }
        let mut h = Harness::new(strict());
        for chunk in chunks(&wire, &cuts) {
            if !h.feed(Side::Client, &chunk, 0) {
                break;
            }
        }
        prop_assert!(h.relay.is_done(), "strict ends the relay");
        let end = h.relay.end(Timestamp(1));
        let EndReason::Strict { from, offence, code, closes, .. } = end.reason else {
            panic!("not a strict end: {:?}", end.reason);
        };
        prop_assert_eq!(from, Direction::ClientToServer);
        prop_assert_eq!(offence.index, good.len() as u64);
        prop_assert_eq!(code, 1002);
        // The server got the frames before the bad one and, when the bad frame began in an
        // earlier read, the one header byte that came then; a close frame only when not.
        let close_len = FrameBuilder::close()
            .mask([0; 4])
            .encode(&CloseFrame::encode(1002, "wstap --strict: unmasked_client_frame"))
            .len();
        let to_server = closes.server == Some(Closed::CloseFrame(1002));
        prop_assert_eq!(to_server, offence.begins_in_chunk);
        prop_assert!(to_server || closes.server == Some(Closed::WithoutCloseFrame));
        let relayed = if to_server {
            prop_assert_eq!(close_at_end(&h.server.bytes[bad_at..], true).0, 1002);
            &h.server.bytes[..h.server.bytes.len() - close_len]
        } else {
            &h.server.bytes[..]
        };
        prop_assert!(wire.starts_with(relayed));
        let expected = if offence.begins_in_chunk { bad_at } else { bad_at + 1 };
        prop_assert_eq!(relayed.len(), expected);
        prop_assert_eq!(
            closes.client,
            Some(Closed::CloseFrame(1002)),
            "the client's stream was between frames"
        );
        prop_assert!(h.server.ended && h.client.ended);
        // No record of anything after the bad frame.
        let frames = h.records.iter().filter(|r| matches!(r, Record::Frame(_))).count();
        prop_assert!(frames <= good.len() + 1);
    }
}

/// The close frame a side received at the end of its bytes, decoded.
fn close_at_end(received: &[u8], masked: bool) -> (u16, String) {
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

#[test]
fn shutdown_waits_for_each_stream_to_reach_a_frame_boundary() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    let frame = FrameBuilder::text()
        .mask([1, 2, 3, 4])
        .encode(b"hello, server");
    let (first, rest) = frame.split_at(5);
    h.feed(Side::Client, first, 0);
    h.command(
        Command::Shutdown {
            grace: Duration::from_secs(1),
        },
        10,
    );
    // The client's stream was between frames: its close went at once; the server's waits
    // for the frame the client is in the middle of.
    assert_eq!(close_at_end(&h.client.bytes, false).0, 1001);
    assert!(h.client.ended);
    assert!(!h.server.ended);
    assert_eq!(h.relay.poll_timeout(), Some(h.at(1_000_010)));
    assert!(
        !h.relay.wants_read(Side::Server),
        "nothing more goes to the client"
    );
    assert!(h.relay.wants_read(Side::Client));
    h.feed(Side::Client, rest, 20);
    assert!(
        h.server.bytes.starts_with(&frame),
        "the frame whole, then the close"
    );
    assert_eq!(
        close_at_end(&h.server.bytes, true),
        (1001, "wstap is shutting down".into())
    );
    assert!(h.server.ended);
    assert!(h.relay.is_done());
    assert_eq!(h.relay.poll_timeout(), None);
    let end = h.relay.end(Timestamp(30));
    assert_eq!(
        end.reason,
        EndReason::Shutdown {
            closes: Closes {
                client: Some(Closed::CloseFrame(1001)),
                server: Some(Closed::CloseFrame(1001)),
            }
        }
    );
    assert!(!end.clean);
    assert_eq!(
        end.error().unwrap(),
        "wstap shut down: it sent close 1001 (Going Away) to both sides"
    );
}

#[test]
fn shutdown_past_its_grace_closes_a_stream_in_mid_frame_without_a_close_frame() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    let frame = FrameBuilder::binary().encode(&[7; 100]);
    h.feed(Side::Server, &frame[..50], 0);
    h.command(
        Command::Shutdown {
            grace: Duration::from_millis(5),
        },
        0,
    );
    assert!(h.server.ended, "the server's stream was between frames");
    assert!(!h.client.ended);
    h.timeout(4_999);
    assert!(!h.client.ended, "not before the deadline");
    h.timeout(5_000);
    assert!(h.client.ended);
    assert_eq!(h.client.bytes, frame[..50], "no close frame cuts the frame");
    let end = h.relay.end(Timestamp(5_000));
    assert_eq!(
        end.reason,
        EndReason::Shutdown {
            closes: Closes {
                client: Some(Closed::WithoutCloseFrame),
                server: Some(Closed::CloseFrame(1001)),
            }
        }
    );
    assert_eq!(end.cut_off.len(), 1, "the server's frame was cut off");
    assert!(end.error().unwrap().contains("to the server"));
}

#[test]
fn a_shutdown_without_grace_decides_at_once() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.command(
        Command::Shutdown {
            grace: Duration::ZERO,
        },
        0,
    );
    assert!(h.relay.is_done());
    assert_eq!(close_at_end(&h.client.bytes, false).0, 1001);
    assert_eq!(close_at_end(&h.server.bytes, true).0, 1001);
}

#[test]
fn a_half_close_passes_through_and_the_other_direction_flows_on() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    let client_close = FrameBuilder::close()
        .mask([1, 1, 1, 1])
        .encode(&CloseFrame::encode(1000, "bye"));
    h.feed(Side::Client, &client_close, 1);
    h.eof(Side::Client);
    assert!(
        h.server.ended,
        "the client's end of stream reaches the server"
    );
    assert!(!h.client.ended);
    assert!(h.relay.wants_read(Side::Server));
    let data = FrameBuilder::text().encode(b"late news");
    let server_close = FrameBuilder::close().encode(&CloseFrame::encode(1000, "bye"));
    h.feed(Side::Server, &data, 2);
    h.feed(Side::Server, &server_close, 3);
    assert_eq!(h.client.bytes, [data, server_close].concat());
    assert!(!h.relay.is_done());
    h.eof(Side::Server);
    assert!(h.relay.is_done());
    let end = h.relay.end(Timestamp(4));
    assert!(end.clean, "{:?}", end.reason);
    assert_eq!(end.error(), None);
    let first = end.first_close.unwrap();
    assert_eq!((first.by, first.code), (Side::Client, Some(1000)));
    assert_eq!(end.frames, [1, 2]);
}

#[test]
fn a_stream_ended_without_a_close_frame_is_not_clean_and_says_who() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.eof(Side::Server);
    h.eof(Side::Client);
    let end = h.relay.end(Timestamp(1));
    assert!(!end.clean);
    assert_eq!(
        end.reason,
        EndReason::Peers {
            c2s: StreamEnd::Eof { sent_close: false },
            s2c: StreamEnd::Eof { sent_close: false },
        }
    );
    assert_eq!(
        end.error().unwrap(),
        "the client closed the connection without a close frame; the server closed the connection without a close frame"
    );
}

#[test]
fn a_close_command_closes_one_side_at_its_next_frame_boundary() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    let fragment = FrameBuilder::text().fin(false).encode(b"part one, ");
    let last = FrameBuilder::continuation().encode(b"part two");
    h.feed(Side::Server, &fragment[..4], 0);
    h.command(
        Command::Close {
            to: Side::Client,
            code: 4000,
            reason: "closed by a person".into(),
            grace: Duration::from_secs(1),
        },
        1,
    );
    assert!(!h.client.ended, "waits for the frame to end");
    h.feed(Side::Server, &fragment[4..], 2);
    assert_eq!(
        close_at_end(&h.client.bytes, false),
        (4000, "closed by a person".into())
    );
    assert!(h.client.ended);
    assert!(
        !h.relay.wants_read(Side::Server),
        "nothing more can go to the client"
    );
    assert!(!h.feed(Side::Server, &last, 3));
    // The client still speaks to the server.
    let reply = FrameBuilder::close()
        .mask([2, 2, 2, 2])
        .encode(&CloseFrame::encode(4000, ""));
    assert!(h.feed(Side::Client, &reply, 4));
    assert_eq!(h.server.bytes, reply);
    h.eof(Side::Client);
    assert!(h.relay.is_done());
    let end = h.relay.end(Timestamp(5));
    assert_eq!(
        end.reason,
        EndReason::Commanded {
            code: 4000,
            closes: Closes {
                client: Some(Closed::CloseFrame(4000)),
                server: None,
            }
        }
    );
}

#[test]
fn a_failed_read_ends_the_relay_at_once_and_says_which() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.feed(
        Side::Client,
        &FrameBuilder::ping().mask([0; 4]).encode(b""),
        0,
    );
    h.relay
        .read_failed(Side::Server, "connection reset by peer".into());
    assert!(h.relay.is_done());
    assert!(!h.relay.wants_read(Side::Client));
    let end = h.relay.end(Timestamp(1));
    assert_eq!(
        end.reason,
        EndReason::Peers {
            c2s: StreamEnd::Stopped,
            s2c: StreamEnd::ReadFailed("connection reset by peer".into()),
        }
    );
    assert_eq!(
        end.error().unwrap(),
        "client->server stopped when the other direction failed; reading from the server failed: connection reset by peer"
    );
}

#[test]
fn a_blind_relay_forwards_unread_and_shuts_down_without_close_frames() {
    let mut h = Harness::new(RelayConfig::default());
    assert!(h.feed(Side::Client, b"\x16\x03\x01 not a websocket", 0));
    assert!(h.feed(Side::Server, b"anything", 0));
    assert_eq!(h.server.bytes, b"\x16\x03\x01 not a websocket");
    h.command(
        Command::Shutdown {
            grace: Duration::from_secs(1),
        },
        1,
    );
    assert!(h.relay.is_done());
    assert!(h.client.ended && h.server.ended);
    assert_eq!(h.client.bytes, b"anything");
    assert_eq!(h.relay.drain_events().count(), 0);
}

#[test]
fn strict_answers_bad_utf8_with_1007_on_both_sides() {
    let mut h = Harness::new(strict());
    let good = FrameBuilder::text().encode("ok".as_bytes());
    let bad = FrameBuilder::text().encode(&[0xff, 0xfe]);
    h.feed(Side::Server, &[good.clone(), bad].concat(), 0);
    assert!(h.relay.is_done());
    assert!(h.client.bytes.starts_with(&good));
    // Invalid UTF-8 shows only once the payload is read: the frame began in this read,
    // so the client got nothing of it and a close frame follows the good one.
    assert_eq!(close_at_end(&h.client.bytes[good.len()..], false).0, 1007);
    assert_eq!(close_at_end(&h.server.bytes, true).0, 1007);
    let end = h.relay.end(Timestamp(1));
    assert!(end
        .error()
        .unwrap()
        .starts_with("--strict: the server sent a frame that breaks the protocol (invalid_utf8"));
}

#[test]
fn a_close_handshake_then_a_reset_still_ends_cleanly() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    let close = CloseFrame::encode(1000, "");
    h.feed(
        Side::Client,
        &FrameBuilder::close().mask([3; 4]).encode(&close),
        1,
    );
    h.feed(Side::Server, &FrameBuilder::close().encode(&close), 2);
    // A TLS peer that skips close_notify: the read fails after the handshake.
    h.relay.read_failed(
        Side::Client,
        "peer closed connection without close_notify".into(),
    );
    let end = h.relay.end(Timestamp(3));
    assert!(end.clean, "{:?}", end.reason);
    assert_eq!(end.error(), None);
}

/// A close frame from `from`'s side of a session, with `code`.
fn close_from(from: Side, code: u16) -> Vec<u8> {
    let payload = CloseFrame::encode(code, "");
    match from {
        Side::Client => FrameBuilder::close().mask([5; 4]).encode(&payload),
        Side::Server => FrameBuilder::close().encode(&payload),
    }
}

#[test]
fn a_shutdown_to_a_peer_that_takes_nothing_ends_the_relay_after_a_second_grace() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.stuck.push(Side::Client);
    let news = FrameBuilder::text().encode(b"news nobody reads");
    h.feed(Side::Server, &news, 0);
    h.command(
        Command::Shutdown {
            grace: Duration::from_millis(5),
        },
        0,
    );
    assert!(h.server.ended, "the server took its close");
    assert!(!h.relay.is_done(), "the write to the client is stuck");
    assert_eq!(h.relay.poll_timeout(), Some(h.at(5_000)));
    h.timeout(5_000);
    assert!(
        !h.relay.is_done(),
        "nothing was waiting for a frame boundary"
    );
    assert_eq!(h.relay.poll_timeout(), Some(h.at(10_000)));
    h.timeout(9_999);
    assert!(!h.relay.is_done());
    h.timeout(10_000);
    assert!(
        h.relay.is_done() && h.relay.is_aborted(),
        "given up at last"
    );
    assert_eq!(h.relay.poll_timeout(), None);
    let end = h.relay.end(Timestamp(10));
    assert_eq!(
        end.reason,
        EndReason::Shutdown {
            closes: Closes {
                client: Some(Closed::WithoutCloseFrame),
                server: Some(Closed::CloseFrame(1001)),
            }
        }
    );
    assert_eq!(end.bytes, [0, 0], "nothing reached the client");
    assert_eq!(
        end.error().unwrap(),
        "wstap shut down: it ended the connection to the client without a close frame (in the middle of a frame, or not a WebSocket); it sent close 1001 (Going Away) to the server"
    );
}

#[test]
fn a_failed_write_during_strict_closing_reports_only_the_close_written() {
    let mut h = Harness::new(strict());
    h.stuck.push(Side::Server);
    let bad = FrameBuilder::text().encode(b"unmasked");
    h.feed(Side::Client, &bad, 0);
    assert!(h.client.ended, "the client got its 1002");
    h.relay.write_failed(Side::Server, "broken pipe".into());
    assert!(h.relay.is_done());
    let EndReason::Strict { closes, .. } = h.relay.end(Timestamp(1)).reason else {
        panic!("not a strict end");
    };
    assert_eq!(
        closes,
        Closes {
            client: Some(Closed::CloseFrame(1002)),
            server: Some(Closed::WithoutCloseFrame),
        }
    );
}

#[test]
fn a_shutdown_sends_no_second_close_and_nothing_after_a_half_close() {
    // The client closed; its close frame went to the server, which must get no other.
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.feed(Side::Client, &close_from(Side::Client, 1000), 0);
    h.command(
        Command::Shutdown {
            grace: Duration::from_secs(1),
        },
        1,
    );
    assert_eq!(h.server.bytes, close_from(Side::Client, 1000));
    assert!(h.server.ended);
    assert_eq!(close_at_end(&h.client.bytes, false).0, 1001);
    assert!(h.relay.is_done());
    let end = h.relay.end(Timestamp(2));
    assert_eq!(
        end.reason,
        EndReason::Shutdown {
            closes: Closes {
                client: Some(Closed::CloseFrame(1001)),
                server: Some(Closed::AlreadyClosed),
            }
        }
    );
    assert!(end
        .error()
        .unwrap()
        .contains("the stream to the server had already closed"));

    // The server ended its stream: the stream to the client ended with it.
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.eof(Side::Server);
    h.command(
        Command::Shutdown {
            grace: Duration::from_secs(1),
        },
        1,
    );
    assert!(
        h.client.bytes.is_empty(),
        "nothing after the end of a stream"
    );
    assert_eq!(close_at_end(&h.server.bytes, true).0, 1001);
    let Some(EndReason::Shutdown { closes }) = Some(h.relay.end(Timestamp(2)).reason) else {
        panic!("not a shutdown");
    };
    assert_eq!(closes.client, Some(Closed::AlreadyClosed));
    assert_eq!(closes.server, Some(Closed::CloseFrame(1001)));
}

#[test]
fn a_close_command_on_a_blind_relay_ends_the_stream_without_a_frame() {
    let mut h = Harness::new(RelayConfig::default());
    assert!(h.feed(Side::Server, b"raw bytes", 0));
    h.command(
        Command::Close {
            to: Side::Server,
            code: 1000,
            reason: String::new(),
            grace: Duration::from_secs(1),
        },
        1,
    );
    assert!(h.server.ended);
    assert!(
        h.server.bytes.is_empty(),
        "no WebSocket frame on a blind stream"
    );
    assert!(!h.relay.wants_read(Side::Client));
    assert!(h.relay.wants_read(Side::Server), "the server still speaks");
    assert_eq!(h.relay.poll_timeout(), None, "nothing left to wait for");
    // Closing it again changes nothing.
    h.command(
        Command::Close {
            to: Side::Server,
            code: 1000,
            reason: String::new(),
            grace: Duration::from_secs(1),
        },
        2,
    );
    h.eof(Side::Server);
    let end = h.relay.end(Timestamp(3));
    assert_eq!(
        end.reason,
        EndReason::Commanded {
            code: 1000,
            closes: Closes {
                client: None,
                server: Some(Closed::WithoutCloseFrame),
            }
        }
    );
    assert_eq!(end.bytes, [0, 9]);
}

#[test]
fn a_close_not_delivered_does_not_make_a_clean_end() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.feed(Side::Client, &close_from(Side::Client, 1000), 0);
    h.stuck.push(Side::Client);
    h.feed(Side::Server, &close_from(Side::Server, 1000), 1);
    h.relay.write_failed(Side::Client, "broken pipe".into());
    let end = h.relay.end(Timestamp(2));
    assert!(!end.clean, "the client never got the server's close");
    assert_eq!(end.bytes, [close_from(Side::Client, 1000).len() as u64, 0]);
    assert!(end
        .error()
        .unwrap()
        .contains("writing to the client failed"));
}

/// A valid stream from `side`: messages of one or more fragments, with pings between
/// fragments now and then; `None` cuts a message into fragments, `Some(n)` sends a ping
/// after fragment n.
fn valid_stream(messages: &[(Vec<u8>, u8, Option<u8>)], side: Side) -> Vec<u8> {
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

fn messages() -> impl Strategy<Value = Vec<(Vec<u8>, u8, Option<u8>)>> {
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
fn analyze_all(direction: Direction, wire: &[u8]) -> (Vec<Record>, bool) {
    let mut analyzer = StreamAnalyzer::new(direction, AnalyzerConfig::default());
    let mut out = Vec::new();
    analyzer.feed(wire, Timestamp(0), &mut out);
    let between = analyzer.at_frame_boundary() && !analyzer.message_open();
    (out, between)
}

fn violations_in(records: &[Record]) -> usize {
    records
        .iter()
        .map(|r| match r {
            Record::Frame(f) => f.violations.len(),
            Record::Message(m) => m.violations.len(),
        })
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A hold begins at a message boundary, hands on nothing more until released, and a
    /// release hands on the rest as it was read: the receiver gets the stream byte for
    /// byte, however it was cut and wherever the hold and release fell.
    #[test]
    fn a_hold_starts_at_a_message_boundary_and_a_release_gives_back_every_byte(
        messages in messages(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        hold_at in any::<prop::sample::Index>(),
        release_after in any::<prop::sample::Index>(),
    ) {
        let wire = valid_stream(&messages, Side::Client);
        let pieces = chunks(&wire, &cuts);
        let hold_at = hold_at.index(pieces.len() + 1);
        let release_at = hold_at + release_after.index(pieces.len() + 2 - hold_at);
        let mut h = Harness::new(websocket(AnalyzerConfig::default()));
        let mut fed = 0;
        // Before a release: what the server has is a prefix of the stream that is either
        // all that was fed (the hold still waits for a boundary) or ends between messages.
        let check = |h: &Harness, fed: usize| -> Result<(), TestCaseError> {
            let got = &h.server.bytes;
            prop_assert!(wire.starts_with(got));
            let (_, between) = analyze_all(Direction::ClientToServer, got);
            prop_assert!(got.len() == fed || between, "held from a message boundary");
            Ok(())
        };
        for (i, piece) in pieces.iter().enumerate() {
            if i == hold_at {
                h.command(Command::Hold { from: Side::Client, budget: usize::MAX, at: HoldAt::NextMessage }, 0);
            }
            if i == release_at {
                check(&h, fed)?;
                h.command(Command::Release { from: Side::Client }, 0);
            }
            prop_assert!(h.feed(Side::Client, piece, 0));
            fed += piece.len();
        }
        check(&h, fed)?;
        if release_at >= pieces.len() && hold_at < pieces.len() {
            // Never released: what is held is lost with the session, and counted.
            let end = h.relay.end(Timestamp(1));
            prop_assert_eq!(end.held[0] as usize, wire.len() - h.server.bytes.len());
            prop_assert_eq!(end.bytes[0] as usize, h.server.bytes.len());
            return Ok(());
        }
        h.command(Command::Release { from: Side::Client }, 0);
        prop_assert_eq!(&h.server.bytes, &wire);
        h.eof(Side::Client);
        prop_assert!(h.server.ended);
        let end = h.relay.end(Timestamp(1));
        prop_assert_eq!(end.held, [0, 0]);
        prop_assert_eq!(end.bytes[0], wire.len() as u64);
    }

    /// An injected frame lands between messages, never inside a frame nor between a
    /// message's fragments: the receiver's stream is as valid as the sender's, and is the
    /// sender's with the injected frame taken out.
    #[test]
    fn an_injection_lands_between_messages_in_any_chunking(
        messages in messages(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        inject_at in any::<prop::sample::Index>(),
        to_server in any::<bool>(),
    ) {
        let from = if to_server { Side::Client } else { Side::Server };
        let to = from.other();
        let wire = valid_stream(&messages, from);
        let pieces = chunks(&wire, &cuts);
        let inject_at = inject_at.index(pieces.len() + 1);
        let mut h = Harness::new(websocket(AnalyzerConfig::default()));
        let payload = b"from wstap".to_vec();
        for (i, piece) in pieces.iter().enumerate() {
            if i == inject_at {
                h.command(Command::Inject { to, opcode: Opcode::Text, payload: payload.clone() }, 0);
            }
            prop_assert!(h.feed(from, piece, 0));
        }
        if inject_at == pieces.len() {
            h.command(Command::Inject { to, opcode: Opcode::Text, payload: payload.clone() }, 0);
        }
        let received = h.received(to).bytes.clone();
        let direction = from.sends();
        let (records, between) = analyze_all(direction, &received);
        prop_assert!(between);
        prop_assert_eq!(violations_in(&records), 0, "{:?}", records);
        let injected: Vec<usize> = records.iter().enumerate().filter_map(|(i, r)| match r {
            Record::Frame(f) if f.header.opcode() == Opcode::Text => Some(i),
            _ => None,
        }).collect();
        prop_assert_eq!(injected.len(), 1, "injected once");
        let Record::Frame(frame) = &records[injected[0]] else { unreachable!() };
        prop_assert_eq!(&frame.payload.data, &payload);
        prop_assert_eq!(frame.header.mask().is_some(), to == Side::Server);
        // Take the injected frame out: what is left is the sender's stream.
        let len = frame.header.wire_len() as usize;
        let at = received.windows(len).position(|w| {
            let (recs, _) = analyze_all(direction, w);
            matches!(recs.first(), Some(Record::Frame(f)) if f.header.opcode() == Opcode::Text && f.payload.data == payload)
        });
        let at = at.expect("the injected frame's bytes");
        let rest = [&received[..at], &received[at + len..]].concat();
        prop_assert_eq!(rest, wire);
    }
}

#[test]
fn a_full_hold_stops_reading_until_released_and_keeps_the_end_of_stream_for_after() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.command(
        Command::Hold {
            from: Side::Server,
            budget: 16,
            at: HoldAt::NextMessage,
        },
        0,
    );
    let first = FrameBuilder::binary().encode(&[1; 20]);
    let second = FrameBuilder::text().encode(b"later");
    assert!(h.feed(Side::Server, &first, 1));
    assert!(h.client.bytes.is_empty(), "held");
    assert!(!h.relay.wants_read(Side::Server), "the budget is full");
    assert!(h.relay.wants_read(Side::Client), "the other way flows on");
    h.command(Command::Release { from: Side::Server }, 2);
    assert_eq!(h.client.bytes, first);
    assert!(h.relay.wants_read(Side::Server));
    h.command(
        Command::Hold {
            from: Side::Server,
            budget: 1024,
            at: HoldAt::NextMessage,
        },
        3,
    );
    assert!(h.feed(Side::Server, &second, 4));
    h.eof(Side::Server);
    assert!(!h.client.ended, "the end waits behind what is held");
    assert!(!h.relay.is_finished(), "what is held can still be released");
    h.command(Command::Release { from: Side::Server }, 5);
    assert_eq!(h.client.bytes, [first, second].concat());
    assert!(h.client.ended);
}

#[test]
fn an_injection_waits_for_the_message_in_progress_and_skips_dead_streams() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    let start = FrameBuilder::text().fin(false).encode(b"one ");
    let end = FrameBuilder::continuation().encode(b"two");
    h.feed(Side::Server, &start, 0);
    h.command(
        Command::Inject {
            to: Side::Client,
            opcode: Opcode::Ping,
            payload: b"?".to_vec(),
        },
        1,
    );
    assert_eq!(h.client.bytes, start, "not between fragments");
    h.feed(Side::Server, &end, 2);
    let ping = FrameBuilder::ping().encode(b"?");
    assert_eq!(h.client.bytes, [start, end, ping].concat());

    // Into a stream that ended, or one that is not a WebSocket: nothing.
    h.eof(Side::Server);
    h.command(
        Command::Inject {
            to: Side::Client,
            opcode: Opcode::Text,
            payload: b"too late".to_vec(),
        },
        3,
    );
    assert!(h.client.ended);
    let mut blind = Harness::new(RelayConfig::default());
    blind.command(
        Command::Inject {
            to: Side::Server,
            opcode: Opcode::Text,
            payload: b"not here".to_vec(),
        },
        0,
    );
    assert!(blind.server.bytes.is_empty());
}

#[test]
fn a_shutdown_after_a_finished_close_gets_its_own_grace() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.command(
        Command::Close {
            to: Side::Client,
            code: 4000,
            reason: String::new(),
            grace: Duration::from_millis(5),
        },
        0,
    );
    assert!(h.client.ended, "the close went at once");
    assert_eq!(h.relay.poll_timeout(), None);
    // Long after that close's deadline, the server's stream is in the middle of a frame.
    let frame = FrameBuilder::binary().mask([1; 4]).encode(&[9; 64]);
    h.feed(Side::Client, &frame[..10], 1_000_000);
    h.command(
        Command::Shutdown {
            grace: Duration::from_secs(1),
        },
        1_000_000,
    );
    assert_eq!(h.relay.poll_timeout(), Some(h.at(2_000_000)));
    h.timeout(1_500_000);
    assert!(!h.server.ended, "still within its own grace");
    h.feed(Side::Client, &frame[10..], 1_600_000);
    assert_eq!(close_at_end(&h.server.bytes[frame.len()..], true).0, 1001);
}

#[test]
fn a_held_close_frame_is_not_taken_for_one_sent() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.command(
        Command::Hold {
            from: Side::Server,
            budget: 1 << 20,
            at: HoldAt::NextMessage,
        },
        0,
    );
    h.feed(Side::Server, &close_from(Side::Server, 1000), 1);
    assert!(h.client.bytes.is_empty(), "the server's close is held");
    h.command(
        Command::Shutdown {
            grace: Duration::from_secs(1),
        },
        2,
    );
    assert_eq!(close_at_end(&h.client.bytes, false).0, 1001);
    let end = h.relay.end(Timestamp(3));
    let EndReason::Shutdown { closes } = end.reason else {
        panic!("not a shutdown: {:?}", end.reason);
    };
    assert_eq!(closes.client, Some(Closed::CloseFrame(1001)));
    assert_eq!(
        end.held[1],
        close_from(Side::Server, 1000).len() as u64,
        "what was held is lost with the session, and counted"
    );
}

#[test]
fn a_release_into_an_ended_stream_keeps_counting_what_was_held() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.command(
        Command::Hold {
            from: Side::Server,
            budget: 1 << 20,
            at: HoldAt::NextMessage,
        },
        0,
    );
    let news = FrameBuilder::text().encode(b"held back");
    h.feed(Side::Server, &news, 1);
    h.eof(Side::Client);
    h.command(
        Command::Close {
            to: Side::Client,
            code: 1000,
            reason: String::new(),
            grace: Duration::from_secs(1),
        },
        2,
    );
    assert!(h.client.ended);
    h.command(Command::Release { from: Side::Server }, 3);
    let end = h.relay.end(Timestamp(4));
    assert_eq!(end.held, [0, news.len() as u64]);
    assert!(!h.client.bytes.windows(news.len()).any(|w| w == news));
}

#[test]
fn nothing_is_injected_after_a_close_frame_nor_held_on_a_blind_stream() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.feed(Side::Server, &close_from(Side::Server, 1000), 0);
    h.command(
        Command::Inject {
            to: Side::Client,
            opcode: Opcode::Text,
            payload: b"after the close".to_vec(),
        },
        1,
    );
    assert_eq!(h.client.bytes, close_from(Side::Server, 1000));
    h.command(
        Command::Inject {
            to: Side::Server,
            opcode: Opcode::Close,
            payload: Vec::new(),
        },
        1,
    );
    assert!(
        h.server.bytes.is_empty(),
        "a close of wstap's own is Command::Close"
    );

    let mut blind = Harness::new(RelayConfig::default());
    blind.command(
        Command::Hold {
            from: Side::Client,
            budget: 1,
            at: HoldAt::NextMessage,
        },
        0,
    );
    assert!(blind.feed(Side::Client, b"no frames here", 1));
    assert_eq!(blind.server.bytes, b"no frames here");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A drop takes whole held messages and nothing else: the receiver's stream is the
    /// sender's with one run of whole messages taken out, as valid as it was.
    #[test]
    fn a_drop_takes_whole_messages_and_leaves_a_valid_stream(
        messages in messages(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        hold_at in any::<prop::sample::Index>(),
        drop_after in any::<prop::sample::Index>(),
    ) {
        let wire = valid_stream(&messages, Side::Client);
        let pieces = chunks(&wire, &cuts);
        let hold_at = hold_at.index(pieces.len() + 1);
        let drop_at = hold_at + drop_after.index(pieces.len() + 2 - hold_at);
        let mut h = Harness::new(websocket(AnalyzerConfig::default()));
        for (i, piece) in pieces.iter().enumerate() {
            if i == hold_at {
                h.command(Command::Hold { from: Side::Client, budget: usize::MAX, at: HoldAt::NextMessage }, 0);
            }
            if i == drop_at {
                h.command(Command::Drop { from: Side::Client }, 0);
            }
            prop_assert!(h.feed(Side::Client, piece, 0));
        }
        if drop_at >= pieces.len() {
            h.command(Command::Hold { from: Side::Client, budget: usize::MAX, at: HoldAt::NextMessage }, 0);
            h.command(Command::Drop { from: Side::Client }, 0);
        }
        h.command(Command::Release { from: Side::Client }, 0);
        let got = h.server.bytes.clone();
        let dropped = h.relay.end(Timestamp(1)).dropped[0] as usize;
        prop_assert_eq!(got.len() + dropped, wire.len());
        let (records, between) = analyze_all(Direction::ClientToServer, &got);
        prop_assert!(between);
        prop_assert_eq!(violations_in(&records), 0);
        let at = got.iter().zip(&wire).take_while(|(a, b)| a == b).count();
        // The run taken out starts where the two part (or anywhere in an equal run).
        let candidates = (0..=at.min(got.len())).filter(|&a| {
            got[..a] == wire[..a] && got[a..] == wire[a + dropped..]
        });
        let mut found = false;
        for a in candidates {
            let (_, starts_between) = analyze_all(Direction::ClientToServer, &wire[..a]);
            let (_, ends_between) = analyze_all(Direction::ClientToServer, &wire[..a + dropped]);
            found |= starts_between && ends_between;
        }
        prop_assert!(found, "a run of whole messages was taken out");
    }
}

#[test]
fn a_drop_leaves_the_message_in_progress_and_is_refused_under_context_takeover() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.command(
        Command::Hold {
            from: Side::Server,
            budget: 1 << 20,
            at: HoldAt::NextMessage,
        },
        0,
    );
    let first = FrameBuilder::text().encode(b"first");
    let second = FrameBuilder::binary().encode(&[2; 10]);
    let third = FrameBuilder::text().fin(false).encode(b"thi");
    let rest = FrameBuilder::continuation().encode(b"rd");
    h.feed(
        Side::Server,
        &[first.clone(), second.clone(), third.clone()].concat(),
        1,
    );
    h.command(Command::Drop { from: Side::Server }, 2);
    h.command(
        Command::Inject {
            to: Side::Client,
            opcode: Opcode::Text,
            payload: b"instead".to_vec(),
        },
        3,
    );
    h.command(Command::Release { from: Side::Server }, 4);
    h.feed(Side::Server, &rest, 5);
    let instead = FrameBuilder::text().encode(b"instead");
    assert_eq!(h.client.bytes, [instead, third, rest].concat());
    let end = h.relay.end(Timestamp(6));
    assert_eq!(end.dropped, [0, (first.len() + second.len()) as u64]);

    // A sender that keeps its compression context: nothing is dropped.
    let config = AnalyzerConfig {
        deflate: Some(DeflateParams::default()),
        ..AnalyzerConfig::default()
    };
    let mut h = Harness::new(websocket(config));
    h.command(
        Command::Hold {
            from: Side::Server,
            budget: 1 << 20,
            at: HoldAt::NextMessage,
        },
        0,
    );
    h.feed(Side::Server, &first, 1);
    h.command(Command::Drop { from: Side::Server }, 2);
    h.command(Command::Release { from: Side::Server }, 3);
    assert_eq!(h.client.bytes, first);
}

#[test]
fn a_dropped_close_frame_is_not_taken_for_one_sent() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.command(
        Command::Hold {
            from: Side::Server,
            budget: 1 << 20,
            at: HoldAt::NextMessage,
        },
        0,
    );
    h.feed(Side::Server, &close_from(Side::Server, 1000), 1);
    h.command(Command::Drop { from: Side::Server }, 2);
    h.command(
        Command::Shutdown {
            grace: Duration::from_secs(1),
        },
        3,
    );
    assert_eq!(close_at_end(&h.client.bytes, false).0, 1001);
    let end = h.relay.end(Timestamp(4));
    assert!(!end.clean);
    assert_eq!(end.dropped[1], close_from(Side::Server, 1000).len() as u64);
}

/// Whether a message's first captured byte is odd: the test the watching tests hold by.
fn odd_first_byte() -> MessageTest {
    MessageTest::new(|m: &wstap_wire::MessageRecord| {
        m.data.data.first().is_some_and(|b| b % 2 == 1)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Holding at a matching message: every message before the first that matches goes
    /// on whole and as read, nothing of the matching one goes out, and a release gives
    /// back the rest; at no moment has the receiver part of a message.
    #[test]
    fn a_hold_at_a_matching_message_lets_the_others_by_whole(
        messages in messages(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let wire = valid_stream(&messages, Side::Server);
        let pieces = chunks(&wire, &cuts);
        let mut h = Harness::new(websocket(AnalyzerConfig::default()));
        h.command(
            Command::Hold { from: Side::Server, budget: usize::MAX, at: HoldAt::Matching(odd_first_byte()) },
            0,
        );
        for piece in &pieces {
            prop_assert!(h.feed(Side::Server, piece, 0));
            let (_, between) = analyze_all(Direction::ServerToClient, &h.client.bytes);
            prop_assert!(between, "no part of a message before its verdict");
        }
        // Where the first matching data message starts on the wire.
        let (records, _) = analyze_all(Direction::ServerToClient, &wire);
        let mut offset = 0usize;
        let mut first_match = None;
        let mut start_of_message = 0usize;
        for record in &records {
            match record {
                Record::Frame(f) => {
                    offset += f.header.wire_len() as usize;
                }
                Record::Message(m) => {
                    if m.opcode != Opcode::Ping {
                        if first_match.is_none() && m.data.data.first().is_some_and(|b| b % 2 == 1) {
                            first_match = Some(start_of_message);
                        }
                        start_of_message = offset;
                    }
                }
            }
        }
        let expected = first_match.unwrap_or(wire.len());
        prop_assert_eq!(&h.client.bytes[..], &wire[..expected]);
        h.command(Command::Release { from: Side::Server }, 0);
        prop_assert_eq!(&h.client.bytes, &wire);
    }
}

#[test]
fn a_watched_message_larger_than_the_budget_passes_and_the_next_is_watched() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.command(
        Command::Hold {
            from: Side::Server,
            budget: 64,
            at: HoldAt::Matching(odd_first_byte()),
        },
        0,
    );
    let big = FrameBuilder::binary().encode(&[1; 200]);
    let small = FrameBuilder::binary().encode(&[3; 10]);
    h.feed(Side::Server, &big[..100], 1);
    assert_eq!(
        h.client.bytes,
        &big[..100],
        "too large to wait for: it goes on"
    );
    assert!(h.relay.wants_read(Side::Server));
    h.feed(Side::Server, &big[100..], 2);
    h.feed(Side::Server, &small, 3);
    assert_eq!(h.client.bytes, big, "the next message, matching, is held");
    h.eof(Side::Server);
    assert!(!h.client.ended, "its end waits behind it");
    h.command(Command::Release { from: Side::Server }, 4);
    assert_eq!(h.client.bytes, [big, small].concat());
    assert!(h.client.ended);
}

#[test]
fn a_watched_message_cut_short_by_the_end_of_its_stream_goes_on() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.command(
        Command::Hold {
            from: Side::Server,
            budget: 1 << 20,
            at: HoldAt::Matching(odd_first_byte()),
        },
        0,
    );
    let frame = FrameBuilder::binary().encode(&[2; 50]);
    h.feed(Side::Server, &frame[..20], 1);
    assert!(h.client.bytes.is_empty(), "waiting for its verdict");
    h.eof(Side::Server);
    assert_eq!(h.client.bytes, &frame[..20]);
    assert!(h.client.ended);
    assert_eq!(
        h.relay.end(Timestamp(2)).held,
        [0, 0],
        "nothing is left held"
    );
}

#[test]
fn a_shutdown_after_a_close_command_says_which_code_each_side_got() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    h.command(
        Command::Close {
            to: Side::Client,
            code: 4000,
            reason: "from a person".into(),
            grace: Duration::from_secs(1),
        },
        0,
    );
    h.command(
        Command::Shutdown {
            grace: Duration::from_secs(1),
        },
        1,
    );
    let end = h.relay.end(Timestamp(2));
    assert_eq!(
        end.reason,
        EndReason::Shutdown {
            closes: Closes {
                client: Some(Closed::CloseFrame(4000)),
                server: Some(Closed::CloseFrame(1001)),
            }
        }
    );
    assert_eq!(
        end.error().unwrap(),
        "wstap shut down: it sent close 4000 to the client; it sent close 1001 (Going Away) to the server"
    );
}

#[test]
fn a_strict_close_to_a_peer_that_takes_nothing_gives_up_after_its_grace() {
    let mut h = Harness::new(RelayConfig {
        strict_grace: Some(Duration::from_millis(5)),
        ..strict()
    });
    h.stuck.push(Side::Server);
    // The server takes nothing; the client's second frame, unmasked, breaks the rule.
    let good = FrameBuilder::binary().mask([1; 4]).encode(b"ok");
    let bad = FrameBuilder::text().encode(b"unmasked");
    h.feed(Side::Client, &[good, bad].concat(), 0);
    assert!(h.client.ended, "the client got its 1002");
    assert!(!h.relay.is_done(), "the server's write is stuck");
    assert_eq!(h.relay.poll_timeout(), None, "no time told yet");
    h.timeout(100);
    assert_eq!(h.relay.poll_timeout(), Some(h.at(5_100)));
    h.timeout(5_100);
    assert!(!h.relay.is_done());
    h.timeout(10_100);
    assert!(h.relay.is_done() && h.relay.is_aborted());
    let EndReason::Strict { closes, .. } = h.relay.end(Timestamp(1)).reason else {
        panic!("not a strict end");
    };
    assert_eq!(closes.server, Some(Closed::WithoutCloseFrame));
    assert_eq!(closes.client, Some(Closed::CloseFrame(1002)));
}
