//! Breakpoints and their decisions in the relay core, with plain function calls: what is
//! held, what queues behind it, what passes ahead, and what each decision puts on the
//! wire, in any chunking.

mod support;

use proptest::prelude::*;
use std::time::Duration;
use support::*;
use wstap_relay::{
    BreakRule, Built, Command, Decision, EndReason, HeldId, MessageTest, Note, Refused, Side,
};
use wstap_wire::deflate::DeflateParams;
use wstap_wire::{
    AnalyzerConfig, Direction, FrameBuilder, Opcode, Record, StreamAnalyzer, Timestamp,
};

/// Whether a message's first captured byte is odd: the test these breakpoints hold by.
fn odd_first_byte() -> MessageTest {
    MessageTest::new(|c| c.message.data.data.first().is_some_and(|b| b % 2 == 1))
}

fn every_message() -> MessageTest {
    MessageTest::new(|_| true)
}

fn rule(test: MessageTest, control: bool) -> BreakRule {
    BreakRule {
        test,
        control,
        budget: usize::MAX,
        timeout: None,
    }
}

fn set(h: &mut Harness, from: Side, rule: BreakRule) {
    h.command(
        Command::Break {
            from,
            rule: Some(rule),
        },
        0,
    );
}

/// The held notes not yet taken, in order.
fn take_held(h: &mut Harness) -> Vec<(HeldId, Vec<u8>)> {
    let mut held = Vec::new();
    h.notes.retain(|note| match note {
        Note::Held { id, message, .. } => {
            held.push((*id, message.data.data.to_vec()));
            false
        }
        _ => true,
    });
    held
}

fn decide(h: &mut Harness, id: HeldId, decision: Decision) {
    h.command(Command::Decide { id, decision }, 0);
}

/// `wire` as a router passes it on when every message goes on: each control frame that
/// came between a message's fragments goes before that message.
fn normalized(direction: Direction, wire: &[u8]) -> Vec<u8> {
    let mut analyzer = StreamAnalyzer::new(direction, AnalyzerConfig::default());
    let (mut records, mut ends) = (Vec::new(), Vec::new());
    analyzer.feed_marking_ends(wire, Timestamp(0), &mut records, &mut ends);
    let frames = records.iter().filter_map(|r| match r {
        Record::Frame(f) => Some(f),
        Record::Message(_) => None,
    });
    let (mut out, mut message, mut start) = (Vec::new(), Vec::new(), 0);
    for (frame, end) in frames.zip(&ends) {
        let bytes = &wire[start..end.offset];
        start = end.offset;
        if frame.header.opcode().is_control() {
            out.extend_from_slice(bytes);
        } else {
            message.extend_from_slice(bytes);
            if !end.message_open {
                out.append(&mut message);
            }
        }
    }
    out
}

/// The data messages (payload, unmasked) and the number of control frames in `wire`.
fn data_messages(direction: Direction, wire: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let (records, between) = analyze_all(direction, wire);
    assert!(between, "ends between messages");
    assert_eq!(violations_in(&records), 0, "{records:?}");
    let mut data = Vec::new();
    let mut controls = 0;
    for record in records {
        if let Record::Message(m) = record {
            if m.opcode.is_control() {
                controls += 1;
            } else {
                data.push(m.data.data.to_vec());
            }
        }
    }
    (data, controls)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// With control frames judged too, nothing of a held message goes out and nothing
    /// overtakes it: the receiver always has a prefix of the stream, ending between
    /// messages; forwarding each held message in turn gives back every byte.
    #[test]
    fn held_messages_keep_their_place_and_forwarding_gives_back_every_byte(
        messages in messages(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        decide_at in proptest::collection::vec(any::<bool>(), 0..12),
    ) {
        let wire = valid_stream(&messages, Side::Server);
        let expected = normalized(Direction::ServerToClient, &wire);
        let mut h = Harness::new(websocket(AnalyzerConfig::default()));
        set(&mut h, Side::Server, rule(odd_first_byte(), true));
        let mut waiting = Vec::new();
        for (i, piece) in chunks(&wire, &cuts).iter().enumerate() {
            prop_assert!(h.feed(Side::Server, piece, 0));
            waiting.extend(take_held(&mut h));
            let got = &h.client.bytes;
            prop_assert!(expected.starts_with(got));
            let (_, between) = analyze_all(Direction::ServerToClient, got);
            prop_assert!(between, "never part of a message");
            // It stops right before the first message waiting for a decision.
            if let Some((_, first_waiting)) = waiting.first() {
                let (rest, _) = analyze_all(Direction::ServerToClient, &expected[got.len()..]);
                let next = rest.iter().find_map(|r| match r {
                    Record::Message(m) => Some(&m.data.data[..]),
                    Record::Frame(_) => None,
                });
                prop_assert_eq!(next, Some(&first_waiting[..]));
            }
            if decide_at.get(i).copied().unwrap_or(false) && !waiting.is_empty() {
                let (id, _) = waiting.remove(0);
                decide(&mut h, id, Decision::Forward);
                waiting.extend(take_held(&mut h));
            }
        }
        while !waiting.is_empty() {
            let (id, _) = waiting.remove(0);
            decide(&mut h, id, Decision::Forward);
            waiting.extend(take_held(&mut h));
        }
        prop_assert_eq!(&h.client.bytes, &expected);
        h.eof(Side::Server);
        prop_assert!(h.client.ended);
        let end = h.relay.end(Timestamp(1));
        prop_assert_eq!(end.held, [0, 0]);
        prop_assert!(end.lost.is_empty());
    }

    /// Any decisions on any held messages leave the receiver a valid stream: the messages
    /// not held and those forwarded as they were, those dropped gone, those replaced
    /// replaced, in the order sent; every ping through.
    #[test]
    fn decisions_leave_a_valid_stream_with_exactly_what_was_decided(
        messages in messages(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        choices in proptest::collection::vec(0u8..3, 0..40),
    ) {
        let wire = valid_stream(&messages, Side::Client);
        let (sent, pings) = data_messages(Direction::ClientToServer, &wire);
        let mut h = Harness::new(websocket(AnalyzerConfig::default()));
        set(&mut h, Side::Client, rule(odd_first_byte(), false));
        let mut choices = choices.into_iter();
        let mut decided = Vec::new();
        let mut decide_all = |h: &mut Harness| {
            for (id, payload) in take_held(h) {
                let (decision, outcome) = match choices.next().unwrap_or(0) {
                    0 => (Decision::Forward, Some(payload)),
                    1 => (Decision::Drop, None),
                    _ => {
                        let edit = [b"edited: ".as_slice(), &payload].concat();
                        (Decision::Replace(edit.clone()), Some(edit))
                    }
                };
                decided.push(outcome);
                decide(h, id, decision);
            }
        };
        for piece in chunks(&wire, &cuts) {
            prop_assert!(h.feed(Side::Client, &piece, 0));
        }
        decide_all(&mut h);
        let expected: Vec<Vec<u8>> = {
            let mut decided = decided.into_iter();
            sent.iter()
                .filter_map(|payload| match payload.first().is_some_and(|b| b % 2 == 1) {
                    true => decided.next().expect("every odd message was held"),
                    false => Some(payload.clone()),
                })
                .collect()
        };
        let (received, received_pings) = data_messages(Direction::ClientToServer, &h.server.bytes);
        prop_assert_eq!(received, expected);
        prop_assert_eq!(received_pings, pings);
    }
}

#[test]
fn a_held_message_stops_reading_once_the_budget_is_full_and_the_end_waits_behind_it() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    let mut small = rule(every_message(), false);
    small.budget = 16;
    set(&mut h, Side::Server, small);
    let first = FrameBuilder::binary().encode(&[1; 20]);
    let second = FrameBuilder::text().encode(b"later");
    assert!(h.feed(Side::Server, &first, 1));
    let held = take_held(&mut h);
    assert_eq!(held.len(), 1);
    assert!(h.client.bytes.is_empty(), "held");
    assert!(!h.relay.wants_read(Side::Server), "the budget is full");
    assert!(h.relay.wants_read(Side::Client), "the other way flows on");
    decide(&mut h, held[0].0, Decision::Forward);
    assert_eq!(h.client.bytes, first);
    assert!(h.relay.wants_read(Side::Server));
    assert!(h.feed(Side::Server, &second, 4));
    h.eof(Side::Server);
    assert!(!h.client.ended, "the end waits behind what is held");
    assert!(!h.relay.is_finished(), "what is held can still go on");
    let held = take_held(&mut h);
    decide(&mut h, held[0].0, Decision::Forward);
    assert_eq!(h.client.bytes, [first, second].concat());
    assert!(h.client.ended);
}

#[test]
fn later_messages_queue_behind_a_held_one_while_pings_pass_and_a_close_keeps_its_place() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    set(&mut h, Side::Server, rule(odd_first_byte(), false));
    let held = FrameBuilder::text().encode(b"a held one");
    let behind = FrameBuilder::text().encode(b"b behind it");
    let ping = FrameBuilder::ping().encode(b"p");
    let close = close_from(Side::Server, 1000);
    h.feed(
        Side::Server,
        &[held.clone(), behind.clone(), ping.clone(), close.clone()].concat(),
        1,
    );
    assert_eq!(h.client.bytes, ping, "the ping went ahead; the rest waits");
    // The close is not taken for sent while it waits: a shutdown still owes a close.
    assert_eq!(
        h.try_command(
            Command::Inject {
                to: Side::Client,
                opcode: Opcode::Text,
                payload: b"from wstap".to_vec(),
            },
            2,
        ),
        Ok(())
    );
    let injected = FrameBuilder::text().encode(b"from wstap");
    assert_eq!(h.client.bytes, [ping.clone(), injected.clone()].concat());
    let (id, payload) = take_held(&mut h).remove(0);
    assert_eq!(payload, b"a held one");
    decide(&mut h, id, Decision::Forward);
    assert_eq!(
        h.client.bytes,
        [ping, injected.clone(), held, behind, close].concat()
    );
    // What wstap built is noted, byte for byte as it went out.
    assert_eq!(
        h.notes,
        [Note::Sent {
            to: Side::Client,
            why: Built::Inject,
            wire: injected
        }]
    );
}

#[test]
fn a_fragmented_message_is_held_whole() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    set(&mut h, Side::Client, rule(every_message(), false));
    let one = FrameBuilder::text().fin(false).mask([1; 4]).encode(b"one ");
    let two = FrameBuilder::continuation().mask([2; 4]).encode(b"two");
    h.feed(Side::Client, &one, 1);
    assert!(h.server.bytes.is_empty());
    assert!(h.notes.is_empty(), "not judged before it is whole");
    h.feed(Side::Client, &two, 2);
    assert!(h.server.bytes.is_empty());
    let (id, payload) = take_held(&mut h).remove(0);
    assert_eq!(payload, b"one two");
    decide(&mut h, id, Decision::Forward);
    assert_eq!(
        h.server.bytes,
        [one, two].concat(),
        "as read, masks and all"
    );
}

#[test]
fn a_replacement_keeps_the_fragmentation_when_the_length_is_the_same() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    set(&mut h, Side::Client, rule(every_message(), false));
    let original = "héllo wörld"; // 13 bytes
    let (a, b) = original.as_bytes().split_at(6);
    let wire = [
        FrameBuilder::text().fin(false).mask([7; 4]).encode(a),
        FrameBuilder::continuation().mask([8; 4]).encode(b),
    ]
    .concat();
    h.feed(Side::Client, &wire, 1);
    let (id, _) = take_held(&mut h).remove(0);
    // The same length, and a two-byte character across the old cut.
    let edit = "hallo wé rld";
    assert_eq!(edit.len(), original.len());
    decide(&mut h, id, Decision::Replace(edit.as_bytes().to_vec()));
    assert_eq!(
        h.notes,
        [Note::Sent {
            to: Side::Server,
            why: Built::Edit(id),
            wire: h.server.bytes.clone()
        }],
        "the edit's frames are noted as they went out"
    );
    let (records, between) = analyze_all(Direction::ClientToServer, &h.server.bytes);
    assert!(between);
    assert_eq!(violations_in(&records), 0);
    let frames: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::Frame(f) => Some(f),
            Record::Message(_) => None,
        })
        .collect();
    assert_eq!(frames.len(), 2, "fragmented as it was");
    assert_eq!(frames[0].header.opcode(), Opcode::Text);
    assert!(
        std::str::from_utf8(&frames[0].payload.data).is_ok(),
        "cut between characters"
    );
    for frame in &frames {
        let key = frame.header.mask().expect("masked toward the server");
        assert!(key != [7; 4] && key != [8; 4], "a fresh key");
        assert_eq!(frame.header.rsv_bits(), 0);
    }
    let Some(Record::Message(m)) = records.last() else {
        panic!("no message");
    };
    assert_eq!(m.data.data, edit.as_bytes());

    // Another length: one frame; toward the client, unmasked.
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    set(&mut h, Side::Server, rule(every_message(), false));
    h.feed(
        Side::Server,
        &[
            FrameBuilder::binary().fin(false).encode(&[1, 2]),
            FrameBuilder::continuation().encode(&[3]),
        ]
        .concat(),
        1,
    );
    let (id, _) = take_held(&mut h).remove(0);
    decide(&mut h, id, Decision::Replace(vec![9; 5]));
    assert_eq!(h.client.bytes, FrameBuilder::binary().encode(&[9; 5]));
    let end = h.relay.end(Timestamp(2));
    assert_eq!(end.dropped[1], 7, "the frames read were not handed on");
}

#[test]
fn a_message_larger_than_the_budget_passes_unjudged_and_the_next_is_judged() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    let mut small = rule(odd_first_byte(), false);
    small.budget = 64;
    set(&mut h, Side::Server, small);
    let big = FrameBuilder::binary().encode(&[1; 200]);
    let next = FrameBuilder::binary().encode(&[3; 10]);
    h.feed(Side::Server, &big[..100], 1);
    assert_eq!(h.client.bytes, &big[..100], "too large to wait for");
    assert_eq!(
        h.notes,
        [Note::TooLarge {
            from: Side::Server,
            kept: 100
        }]
    );
    h.feed(Side::Server, &[&big[100..], &next[..]].concat(), 2);
    assert_eq!(h.client.bytes, big, "the next one, odd, is held");
    assert_eq!(take_held(&mut h).len(), 1);
}

#[test]
fn a_message_cut_short_by_the_end_of_its_stream_goes_on() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    set(&mut h, Side::Server, rule(odd_first_byte(), false));
    let frame = FrameBuilder::binary().encode(&[2; 50]);
    h.feed(Side::Server, &frame[..20], 1);
    assert!(h.client.bytes.is_empty(), "waiting for its verdict");
    h.eof(Side::Server);
    assert_eq!(h.client.bytes, &frame[..20]);
    assert!(h.client.ended);
    assert_eq!(h.relay.end(Timestamp(2)).held, [0, 0]);
}

#[test]
fn a_breakpoint_set_in_the_middle_of_a_message_begins_with_the_next() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    let frame = FrameBuilder::binary().encode(&[1; 30]);
    h.feed(Side::Server, &frame[..10], 1);
    set(&mut h, Side::Server, rule(every_message(), false));
    h.feed(Side::Server, &[&frame[10..], &frame[..]].concat(), 2);
    assert_eq!(
        h.client.bytes, frame,
        "the first went on; the second is held"
    );
    assert_eq!(take_held(&mut h).len(), 1);
}

#[test]
fn a_held_message_times_out_and_goes_on_as_read() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    let mut timed = rule(every_message(), false);
    timed.timeout = Some(Duration::from_millis(5));
    set(&mut h, Side::Client, timed);
    let message = FrameBuilder::text().mask([3; 4]).encode(b"wait");
    h.feed(Side::Client, &message, 1);
    let (id, _) = take_held(&mut h).remove(0);
    h.timeout(1_000);
    assert_eq!(h.relay.poll_timeout(), Some(h.at(6_000)));
    h.timeout(5_999);
    assert!(h.server.bytes.is_empty());
    h.timeout(6_000);
    assert_eq!(h.server.bytes, message);
    assert_eq!(
        h.notes,
        [Note::TimedOut {
            id,
            from: Side::Client
        }]
    );
    assert_eq!(h.relay.poll_timeout(), None);
}

#[test]
fn a_held_close_frame_is_not_taken_for_one_sent_and_is_lost_with_the_session() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    set(&mut h, Side::Server, rule(every_message(), true));
    h.feed(Side::Server, &close_from(Side::Server, 1000), 1);
    assert!(h.client.bytes.is_empty(), "the server's close is held");
    let (id, _) = take_held(&mut h).remove(0);
    h.command(
        Command::Shutdown {
            grace: Duration::from_secs(1),
        },
        2,
    );
    assert_eq!(close_at_end(&h.client.bytes, false).0, 1001);
    assert_eq!(
        h.try_command(
            Command::Decide {
                id,
                decision: Decision::Forward
            },
            3
        ),
        Err(Refused::Ended("client")),
        "nothing goes into a stream that ended"
    );
    let end = h.relay.end(Timestamp(3));
    assert_eq!(end.held[1], close_from(Side::Server, 1000).len() as u64);
    assert_eq!(end.lost, [(Side::Server, id)]);
}

#[test]
fn an_abort_ends_the_relay_at_once_and_names_what_was_held() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    set(&mut h, Side::Client, rule(every_message(), false));
    h.feed(
        Side::Client,
        &FrameBuilder::text().mask([1; 4]).encode(b"x"),
        1,
    );
    let (id, _) = take_held(&mut h).remove(0);
    h.command(Command::Abort, 2);
    assert!(h.relay.is_aborted() && h.relay.is_done());
    assert!(
        !h.client.ended && !h.server.ended,
        "no close, no half-close"
    );
    assert_eq!(
        h.try_command(Command::ForwardAll { from: Side::Client }, 3),
        Err(Refused::Ended("both sides"))
    );
    let end = h.relay.end(Timestamp(3));
    assert_eq!(end.reason, EndReason::Aborted);
    assert!(!end.clean);
    assert_eq!(end.lost, [(Side::Client, id)]);
}

#[test]
fn clearing_a_breakpoint_keeps_what_is_held_and_lets_the_rest_by() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    set(&mut h, Side::Server, rule(every_message(), false));
    let first = FrameBuilder::text().encode(b"1");
    let second = FrameBuilder::text().encode(b"2");
    h.feed(Side::Server, &first, 1);
    h.command(
        Command::Break {
            from: Side::Server,
            rule: None,
        },
        2,
    );
    h.feed(Side::Server, &second, 3);
    assert!(
        h.client.bytes.is_empty(),
        "the second queues behind the first"
    );
    h.command(Command::ForwardAll { from: Side::Server }, 4);
    h.feed(Side::Server, &first, 5);
    assert_eq!(h.client.bytes, [first.clone(), second, first].concat());
    assert!(take_held(&mut h).len() == 1, "only the first was held");
    assert_eq!(
        h.try_command(
            Command::Decide {
                id: HeldId(0),
                decision: Decision::Drop
            },
            6
        ),
        Err(Refused::NotHeld)
    );
}

#[test]
fn breakpoints_and_injections_are_refused_where_they_cannot_work() {
    let mut blind = Harness::new(wstap_relay::RelayConfig::default());
    assert_eq!(
        blind.try_command(
            Command::Break {
                from: Side::Client,
                rule: Some(rule(every_message(), false)),
            },
            0
        ),
        Err(Refused::NotWebSocket)
    );
    assert!(blind.feed(Side::Client, b"no frames here", 1));
    assert_eq!(blind.server.bytes, b"no frames here");

    let foreign = AnalyzerConfig {
        other_extension_bits: 0x20,
        ..AnalyzerConfig::default()
    };
    let mut h = Harness::new(websocket(foreign));
    let inject = Command::Inject {
        to: Side::Server,
        opcode: Opcode::Text,
        payload: b"?".to_vec(),
    };
    assert_eq!(
        h.try_command(inject, 0),
        Err(Refused::ForeignExtension(0x20))
    );
    set(&mut h, Side::Client, rule(every_message(), false));
    h.feed(
        Side::Client,
        &FrameBuilder::text().mask([1; 4]).encode(b"x"),
        1,
    );
    let (id, _) = take_held(&mut h).remove(0);
    assert_eq!(
        h.try_command(
            Command::Decide {
                id,
                decision: Decision::Replace(b"y".to_vec())
            },
            2
        ),
        Err(Refused::ForeignExtension(0x20))
    );
    decide(&mut h, id, Decision::Drop);
    assert!(h.server.bytes.is_empty());
}

/// A sender's stream of compressed text messages (context kept unless `reset`), some cut
/// into fragments, with uncompressed ones between: each message's payload and its frames.
fn compressed_stream(
    texts: &[(String, bool, u8)],
    params: DeflateParams,
    side: Side,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut deflater = wstap_wire::Deflater::new(params, side.sends());
    texts
        .iter()
        .enumerate()
        .map(|(i, (text, compress, fragments))| {
            let data = text.as_bytes().to_vec();
            let payload = match compress {
                true => {
                    let mut out = Vec::new();
                    deflater.compress(&data, &mut out).unwrap();
                    out
                }
                false => data.clone(),
            };
            let pieces: Vec<&[u8]> = payload
                .chunks(
                    payload
                        .len()
                        .div_ceil(usize::from(*fragments).max(1))
                        .max(1),
                )
                .collect();
            let pieces = if pieces.is_empty() {
                vec![&[][..]]
            } else {
                pieces
            };
            let mut wire = Vec::new();
            for (n, piece) in pieces.iter().enumerate() {
                let builder = match n {
                    0 => FrameBuilder::text().rsv1(*compress),
                    _ => FrameBuilder::continuation(),
                }
                .fin(n + 1 == pieces.len());
                let builder = match side {
                    Side::Client => builder.mask([i as u8, 7, 7, 7]),
                    Side::Server => builder,
                };
                wire.extend(builder.encode(piece));
            }
            (data, wire)
        })
        .collect()
}

/// What a receiver that negotiated `params` inflates of `wire` from `direction`: the
/// messages' data, after checking that every one inflated cleanly.
fn inflated_messages(direction: Direction, params: DeflateParams, wire: &[u8]) -> Vec<Vec<u8>> {
    let config = AnalyzerConfig {
        deflate: Some(params),
        max_frame_capture: 1 << 20,
        max_message_capture: 1 << 20,
        ..AnalyzerConfig::default()
    };
    let mut analyzer = StreamAnalyzer::new(direction, config);
    let mut records = Vec::new();
    analyzer.feed(wire, Timestamp(0), &mut records);
    assert!(analyzer.at_frame_boundary() && !analyzer.message_open());
    assert_eq!(violations_in(&records), 0, "{records:?}");
    records
        .into_iter()
        .filter_map(|r| match r {
            Record::Message(m) => Some(m.data.data.to_vec()),
            Record::Frame(_) => None,
        })
        .collect()
}

fn texts() -> impl Strategy<Value = Vec<(String, bool, u8)>> {
    // Repetitive words, so that later messages refer back to earlier ones.
    let word = prop_oneof![
        Just("alpha "),
        Just("beta "),
        Just("gamma "),
        Just("delta ")
    ];
    let text = proptest::collection::vec(word, 1..60).prop_map(|w| w.concat());
    proptest::collection::vec(
        (text, prop_oneof![4 => Just(true), 1 => Just(false)], 1u8..4),
        1..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Under context takeover, drops and edits of compressed messages, decided in any
    /// order, leave the receiver a stream it inflates cleanly into exactly what was
    /// decided: what follows a dropped or edited compressed message is compressed again.
    #[test]
    fn decisions_under_context_takeover_leave_a_stream_the_receiver_inflates(
        texts in texts(),
        choices in proptest::collection::vec(0u8..3, 8),
        order in proptest::collection::vec(any::<prop::sample::Index>(), 8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        from_client in any::<bool>(),
    ) {
        let params = DeflateParams::default();
        let from = if from_client { Side::Client } else { Side::Server };
        let messages = compressed_stream(&texts, params, from);
        let wire: Vec<u8> = messages.iter().flat_map(|(_, w)| w.clone()).collect();
        let mut h = deflating(params);
        set(&mut h, from, rule(every_message(), false));
        for piece in chunks(&wire, &cuts) {
            prop_assert!(h.feed(from, &piece, 0));
        }
        let mut held = take_held(&mut h);
        prop_assert_eq!(held.len(), messages.len());
        // Decide in a shuffled order; note what each message becomes.
        let mut fate: Vec<Option<Vec<u8>>> = messages.iter().map(|(d, _)| Some(d.clone())).collect();
        let mut pending: Vec<usize> = (0..held.len()).collect();
        let mut n = 0;
        while !pending.is_empty() {
            let pick = pending.remove(order[n % order.len()].index(pending.len()));
            let (id, _) = held[pick].clone();
            let decision = match choices[n % choices.len()] {
                0 => Decision::Forward,
                1 => {
                    fate[pick] = None;
                    Decision::Drop
                }
                _ => {
                    let edit = format!("edited {pick}").into_bytes();
                    fate[pick] = Some(edit.clone());
                    Decision::Replace(edit)
                }
            };
            decide(&mut h, id, decision);
            n += 1;
        }
        held.clear();
        let expected: Vec<Vec<u8>> = fate.into_iter().flatten().collect();
        let received = h.received(from.other()).bytes.clone();
        prop_assert_eq!(inflated_messages(from.sends(), params, &received), expected);
    }
}

#[test]
fn without_context_takeover_only_the_touched_message_changes() {
    let params = DeflateParams {
        server_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let texts: Vec<(String, bool, u8)> = ["one one one", "two two two", "three three"]
        .iter()
        .map(|t| (t.to_string(), true, 1))
        .collect();
    let messages = compressed_stream(&texts, params, Side::Server);
    let mut h = deflating(params);
    set(&mut h, Side::Server, rule(every_message(), false));
    let wire: Vec<u8> = messages.iter().flat_map(|(_, w)| w.clone()).collect();
    h.feed(Side::Server, &wire, 1);
    let held = take_held(&mut h);
    decide(&mut h, held[0].0, Decision::Forward);
    decide(&mut h, held[1].0, Decision::Drop);
    decide(&mut h, held[2].0, Decision::Forward);
    assert_eq!(
        h.client.bytes,
        [messages[0].1.clone(), messages[2].1.clone()].concat(),
        "the others byte for byte"
    );
    assert!(h.notes.is_empty(), "nothing re-encoded: {:?}", h.notes);
}

#[test]
fn re_encoding_is_noted_once_from_the_message_that_began_it() {
    let params = DeflateParams::default();
    let texts: Vec<(String, bool, u8)> =
        ["same words", "same words again", "same words", "same words"]
            .iter()
            .map(|t| (t.to_string(), true, 1))
            .collect();
    let messages = compressed_stream(&texts, params, Side::Server);
    let mut h = deflating(params);
    set(&mut h, Side::Server, rule(every_message(), false));
    let wire: Vec<u8> = messages[..3].iter().flat_map(|(_, w)| w.clone()).collect();
    h.feed(Side::Server, &wire, 1);
    let held = take_held(&mut h);
    decide(&mut h, held[0].0, Decision::Forward);
    decide(&mut h, held[1].0, Decision::Drop);
    assert_eq!(
        h.notes,
        [Note::Reencoding {
            from: Side::Server,
            frame: 1
        }]
    );
    h.notes.clear();
    decide(&mut h, held[2].0, Decision::Forward);
    let Some(Note::Sent {
        to: Side::Client,
        why: Built::Recompressed(2),
        wire,
    }) = h.notes.first()
    else {
        panic!(
            "the third message, compressed again, is noted: {:?}",
            h.notes
        );
    };
    assert!(h.client.bytes.ends_with(wire), "as it went out");
    // Later messages, read after, are compressed again too.
    h.feed(Side::Server, &messages[3].1, 2);
    let held = take_held(&mut h);
    decide(&mut h, held[0].0, Decision::Forward);
    assert_eq!(
        inflated_messages(Direction::ServerToClient, params, &h.client.bytes),
        [
            b"same words".to_vec(),
            b"same words".to_vec(),
            b"same words".to_vec()
        ]
    );
    assert!(
        !h.client.bytes.ends_with(&messages[3].1),
        "not as read: the sender's frame refers to a message the client never got"
    );
}

#[test]
fn a_message_its_first_header_rules_out_goes_on_as_it_comes() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    // Holds every message, but a binary one is ruled out from its header; a text one
    // waits for its payload.
    let test = every_message().deciding_at_the_header(|header: &wstap_relay::FirstHeader| {
        (header.first_byte & 0x0F == 2).then_some(false)
    });
    set(&mut h, Side::Server, rule(test, false));
    let binary = FrameBuilder::binary().encode(&[7; 100_000]);
    h.feed(Side::Server, &binary[..1000], 1);
    assert_eq!(
        h.client.bytes,
        &binary[..1000],
        "on its way before it is whole"
    );
    h.feed(Side::Server, &binary[1000..], 2);
    assert_eq!(h.client.bytes, binary);
    let text = FrameBuilder::text().encode(&[b'a'; 5000]);
    h.feed(Side::Server, &text[..1000], 3);
    assert_eq!(h.client.bytes, binary, "the payload decides: it waits");
    h.feed(Side::Server, &text[1000..], 4);
    assert_eq!(take_held(&mut h).len(), 1, "and is held");
    // A fragmented binary message: ruled out once its first frame is in.
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    let test = every_message().deciding_at_the_header(|header: &wstap_relay::FirstHeader| {
        (header.first_byte & 0x0F == 2).then_some(false)
    });
    set(&mut h, Side::Server, rule(test, false));
    let first = FrameBuilder::binary().fin(false).encode(&[1; 10]);
    let rest = FrameBuilder::continuation().encode(&[2; 10]);
    h.feed(Side::Server, &first, 1);
    assert_eq!(h.client.bytes, first);
    h.feed(Side::Server, &rest, 2);
    assert_eq!(h.client.bytes, [first, rest].concat());
    assert!(h.notes.is_empty());
}

#[test]
fn a_breakpoint_set_in_the_middle_of_a_compressed_message_keeps_the_rest_aligned() {
    let params = DeflateParams::default();
    let texts: Vec<(String, bool, u8)> =
        ["first, cut by the breakpoint", "second", "third", "fourth"]
            .iter()
            .map(|t| (t.repeat(20), true, 1))
            .collect();
    let messages = compressed_stream(&texts, params, Side::Server);
    let mut h = deflating(params);
    let first = &messages[0].1;
    h.feed(Side::Server, &first[..first.len() / 2], 1);
    set(&mut h, Side::Server, rule(every_message(), false));
    let rest: Vec<u8> = [
        &first[first.len() / 2..],
        &messages[1].1,
        &messages[2].1,
        &messages[3].1,
    ]
    .concat();
    h.feed(Side::Server, &rest, 2);
    let held = take_held(&mut h);
    assert_eq!(held.len(), 3, "the first went on; the others are held");
    decide(&mut h, held[1].0, Decision::Drop);
    decide(&mut h, held[0].0, Decision::Forward);
    decide(&mut h, held[2].0, Decision::Forward);
    let expected: Vec<Vec<u8>> = [0, 1, 3].iter().map(|&i| messages[i].0.clone()).collect();
    assert_eq!(
        inflated_messages(Direction::ServerToClient, params, &h.client.bytes),
        expected
    );
}

/// A message of `len` repeated bytes, compressed by `deflater`, as one frame from the
/// A relay whose WebSocket negotiated permessage-deflate with `params`.
fn deflating(params: DeflateParams) -> Harness {
    Harness::new(websocket(AnalyzerConfig {
        deflate: Some(params),
        ..AnalyzerConfig::default()
    }))
}

/// server: small on the wire, large inflated.
fn bomb(deflater: &mut wstap_wire::Deflater, len: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    deflater.compress(&vec![b'a'; len], &mut payload).unwrap();
    FrameBuilder::text().rsv1(true).encode(&payload)
}

#[test]
fn what_a_compressed_message_inflates_to_counts_against_the_budget() {
    let params = DeflateParams::default();
    let mut deflater = wstap_wire::Deflater::new(params, Direction::ServerToClient);
    let mut h = deflating(params);
    let mut small = rule(every_message(), false);
    small.budget = 4096;
    set(&mut h, Side::Server, small);
    let big = bomb(&mut deflater, 1 << 20);
    assert!(big.len() < 4096, "small on the wire: {}", big.len());
    let half = big.len() / 2;
    h.feed(Side::Server, &big[..half], 1);
    assert_eq!(
        h.client.bytes,
        &big[..half],
        "too large inflated to keep: it goes on"
    );
    assert!(
        matches!(h.notes[..], [Note::TooLarge { .. }]),
        "{:?}",
        h.notes
    );
    h.feed(Side::Server, &big[half..], 2);
    assert_eq!(h.client.bytes, big);
    // The next one is judged, and held, with its own whole data.
    let next = bomb(&mut deflater, 100);
    h.feed(Side::Server, &next, 3);
    let held = take_held(&mut h);
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].1, vec![b'a'; 100]);
}

#[test]
fn a_compressed_message_too_large_to_compress_again_ends_the_session() {
    let params = DeflateParams::default();
    let mut deflater = wstap_wire::Deflater::new(params, Direction::ServerToClient);
    let mut h = deflating(params);
    let mut small = rule(every_message(), false);
    small.budget = 4096;
    set(&mut h, Side::Server, small);
    h.feed(Side::Server, &bomb(&mut deflater, 10), 1);
    let (id, _) = take_held(&mut h).remove(0);
    decide(&mut h, id, Decision::Drop);
    // From here on the server's messages are compressed again: this one cannot be kept
    // whole within the budget, nor passed as read.
    let big = bomb(&mut deflater, 1 << 20);
    let half = big.len() / 2;
    h.feed(Side::Server, &big[..half], 2);
    assert!(h.relay.is_aborted());
    let end = h.relay.end(Timestamp(3));
    assert_eq!(
        end.reason,
        EndReason::Overflow {
            from: Direction::ServerToClient
        }
    );
    assert!(end.error().unwrap().contains("--break-buffer"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A breakpoint that selects nothing changes nothing: every byte goes on as read, in
    /// order, pings between fragments in their place, however the stream is cut.
    #[test]
    fn a_breakpoint_that_selects_nothing_leaves_the_stream_byte_for_byte(
        messages in messages(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        from_client in any::<bool>(),
    ) {
        let from = if from_client { Side::Client } else { Side::Server };
        let wire = valid_stream(&messages, from);
        let mut h = Harness::new(websocket(AnalyzerConfig::default()));
        set(&mut h, from, rule(MessageTest::new(|_| false), false));
        for piece in chunks(&wire, &cuts) {
            prop_assert!(h.feed(from, &piece, 0));
        }
        prop_assert_eq!(&h.received(from.other()).bytes, &wire);
        prop_assert!(h.notes.is_empty());
    }
}

#[test]
fn a_ping_between_the_fragments_of_a_held_message_goes_ahead_of_it() {
    let mut h = Harness::new(websocket(AnalyzerConfig::default()));
    set(&mut h, Side::Server, rule(every_message(), false));
    let one = FrameBuilder::text().fin(false).encode(b"one ");
    let ping = FrameBuilder::ping().encode(b"?");
    let two = FrameBuilder::continuation().encode(b"two");
    h.feed(Side::Server, &[one.clone(), ping.clone()].concat(), 1);
    assert!(
        h.client.bytes.is_empty(),
        "the ping keeps its place while the message is judged"
    );
    h.feed(Side::Server, &two, 2);
    assert_eq!(h.client.bytes, ping, "held: the ping goes ahead");
    let (id, payload) = take_held(&mut h).remove(0);
    assert_eq!(payload, b"one two");
    decide(&mut h, id, Decision::Forward);
    assert_eq!(h.client.bytes, [ping, one, two].concat());
}
