//! Network conditions in the relay core, with plain function calls and a clock of the
//! test's own: latency, jitter, bandwidth, a pause and cut-offs, frame by frame, the
//! bytes unchanged.

mod support;

use proptest::prelude::*;
use std::num::NonZeroU64;
use std::time::Duration;
use support::*;
use wstap_relay::{After, Command, Conditions, Cut, Cutoff, EndReason, Note, Side};
use wstap_wire::{AnalyzerConfig, FrameBuilder, Timestamp};

const MS: u64 = 1000;

fn harness() -> Harness {
    Harness::new(websocket(AnalyzerConfig::default()))
}

fn condition(h: &mut Harness, to: Side, conditions: Conditions, now: u64) {
    h.command(
        Command::Condition {
            to,
            conditions: Some(conditions),
        },
        now,
    );
}

/// A masked binary frame from the client with `len` bytes of payload.
fn client_frame(len: usize, fill: u8) -> Vec<u8> {
    FrameBuilder::binary()
        .mask([1, 2, 3, 4])
        .encode(&vec![fill; len])
}

/// The relay's next deadline, in microseconds from the start, rounded up.
fn deadline_us(h: &Harness) -> Option<u64> {
    h.relay
        .poll_timeout()
        .map(|at| at.duration_since(h.start).as_nanos().div_ceil(1000) as u64)
}

#[test]
fn latency_delays_every_frame_and_changes_no_byte() {
    let mut h = harness();
    condition(
        &mut h,
        Side::Server,
        Conditions {
            latency: Duration::from_millis(100),
            ..Conditions::default()
        },
        0,
    );
    let first = client_frame(10, b'a');
    assert!(h.feed_at(Side::Client, &first, 0));
    let second = client_frame(10, b'b');
    assert!(
        h.feed_at(Side::Client, &second, 30 * MS),
        "pipelined: reading goes on"
    );
    assert!(h.server.bytes.is_empty(), "nothing before its time");
    assert_eq!(deadline_us(&h), Some(100 * MS));
    h.timeout(99 * MS);
    assert!(h.server.bytes.is_empty());
    h.timeout(100 * MS);
    assert_eq!(h.server.bytes, first);
    assert_eq!(deadline_us(&h), Some(130 * MS));
    h.timeout(130 * MS);
    assert_eq!(h.server.bytes, [first, second].concat());
    // The other direction is untouched.
    let answer = FrameBuilder::text().encode(b"hi");
    assert!(h.feed_at(Side::Server, &answer, 131 * MS));
    assert_eq!(h.client.bytes, answer);
}

#[test]
fn bandwidth_paces_each_frame_whole_even_within_one_chunk() {
    let mut h = harness();
    condition(
        &mut h,
        Side::Server,
        Conditions {
            bandwidth: NonZeroU64::new(1000),
            ..Conditions::default()
        },
        0,
    );
    // 94 bytes of payload, 6 of header: 100 bytes, a tenth of a second each.
    let frames: Vec<Vec<u8>> = (0..3).map(|i| client_frame(94, b'x' + i)).collect();
    assert!(h.feed_at(Side::Client, &frames.concat(), 0));
    assert!(h.server.bytes.is_empty());
    for (nth, at) in [100, 200, 300].into_iter().enumerate() {
        h.timeout(at * MS - 1);
        assert_eq!(h.server.bytes, frames[..nth].concat(), "not before {at} ms");
        h.timeout(at * MS);
        assert_eq!(h.server.bytes, frames[..=nth].concat(), "at {at} ms");
    }
}

#[test]
fn a_pause_holds_everything_up_to_the_budget_and_resuming_loses_nothing() {
    let mut h = harness();
    condition(
        &mut h,
        Side::Server,
        Conditions {
            paused: true,
            budget: 500,
            ..Conditions::default()
        },
        0,
    );
    let mut sent = Vec::new();
    let mut fed = 0;
    for i in 0..20 {
        let frame = client_frame(94, i);
        if !h.feed_at(Side::Client, &frame, i as u64 * MS) {
            break;
        }
        sent.extend(frame);
        fed += 1;
    }
    assert_eq!(fed, 5, "reading stops once the line holds its budget");
    assert!(!h.relay.wants_read(Side::Client));
    h.timeout(10_000 * MS);
    assert!(h.server.bytes.is_empty(), "paused: nothing goes");
    assert_eq!(deadline_us(&h), None, "a pause has no deadline");
    h.command(
        Command::Condition {
            to: Side::Server,
            conditions: None,
        },
        10_001 * MS,
    );
    assert_eq!(h.server.bytes, sent, "resumed: all of it, in order");
    assert!(h.relay.wants_read(Side::Client));
    assert!(h.relay.conditions(Side::Server).is_none());
    assert!(
        !h.relay.is_shaped(),
        "a cleared line that went leaves nothing behind"
    );
}

#[test]
fn a_cutoff_after_messages_delivers_exactly_those_then_aborts() {
    let mut h = harness();
    condition(
        &mut h,
        Side::Server,
        Conditions {
            latency: Duration::from_millis(10),
            cutoff: Some(Cutoff {
                after: After::Messages(2),
                cut: Cut::Abort,
            }),
            ..Conditions::default()
        },
        0,
    );
    // A ping between the messages is not a message.
    let ping = FrameBuilder::ping().mask([9; 4]).encode(b"p");
    let frames: Vec<Vec<u8>> = (0..4).map(|i| client_frame(5, b'a' + i)).collect();
    let wire = [&frames[0][..], &ping, &frames[1], &frames[2], &frames[3]].concat();
    assert!(h.feed_at(Side::Client, &wire, 0));
    assert!(
        !h.relay.wants_read(Side::Client),
        "nothing is read past a cut"
    );
    h.timeout(10 * MS);
    assert_eq!(h.server.bytes, [&frames[0][..], &ping, &frames[1]].concat());
    // Its stream ends after them; the connections drop once the server could read them
    // (an abort at once could reset the connection before it did).
    h.timeout(20 * MS);
    assert!(
        h.server.ended,
        "the stream to the server ends after the messages"
    );
    assert!(!h.relay.is_aborted());
    assert_eq!(deadline_us(&h), Some(210 * MS));
    h.timeout(210 * MS);
    assert!(h.relay.is_aborted(), "cut once they could be read");
    assert_eq!(
        h.notes,
        [Note::CutOff {
            to: Side::Server,
            cut: Cut::Abort
        }]
    );
    let end = h.relay.end(Timestamp(0));
    assert_eq!(end.reason, EndReason::Aborted);
}

#[test]
fn a_cutoff_can_close_both_sides_with_a_code() {
    let mut h = harness();
    condition(
        &mut h,
        Side::Client,
        Conditions {
            cutoff: Some(Cutoff {
                after: After::Messages(1),
                cut: Cut::Close {
                    code: 4000,
                    reason: "network gone".into(),
                    grace: Duration::from_secs(1),
                },
            }),
            ..Conditions::default()
        },
        0,
    );
    let answers = [
        FrameBuilder::text().encode(b"one"),
        FrameBuilder::text().encode(b"two"),
    ];
    assert!(h.feed_at(Side::Server, &answers.concat(), 0));
    h.timeout(MS);
    assert!(h.client.bytes.starts_with(&answers[0]));
    assert_eq!(
        close_at_end(&h.client.bytes[answers[0].len()..], false),
        (4000, "network gone".into())
    );
    assert_eq!(
        close_at_end(&h.server.bytes, true),
        (4000, "network gone".into())
    );
}

#[test]
fn a_timed_cutoff_aborts_at_its_time() {
    let mut h = harness();
    condition(
        &mut h,
        Side::Server,
        Conditions {
            cutoff: Some(Cutoff {
                after: After::Time(Duration::from_millis(200)),
                cut: Cut::Abort,
            }),
            ..Conditions::default()
        },
        50 * MS,
    );
    assert!(h.feed_at(Side::Client, &client_frame(3, 1), 60 * MS));
    assert_eq!(h.server.bytes, client_frame(3, 1), "no delay was set");
    assert_eq!(deadline_us(&h), Some(250 * MS));
    h.timeout(249 * MS);
    assert!(!h.relay.is_aborted());
    h.timeout(250 * MS);
    assert!(h.relay.is_aborted());
}

#[test]
fn a_close_and_the_end_of_the_stream_wait_behind_the_line() {
    let mut h = harness();
    condition(
        &mut h,
        Side::Server,
        Conditions {
            latency: Duration::from_millis(50),
            ..Conditions::default()
        },
        0,
    );
    let frame = client_frame(4, 7);
    let close = close_from(Side::Client, 1000);
    assert!(h.feed_at(Side::Client, &[&frame[..], &close].concat(), 0));
    h.eof(Side::Client);
    assert!(!h.server.ended, "the end keeps its place behind the line");
    h.timeout(50 * MS);
    assert_eq!(h.server.bytes, [frame, close].concat());
    assert!(h.server.ended);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the chunking, the latency, jitter and bandwidth: every byte arrives, in
    /// order, unchanged; no frame arrives before its latency less the jitter, and none
    /// overtakes another.
    #[test]
    fn shaped_streams_arrive_whole_and_in_order(
        messages in messages(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        latency in 0u64..50,
        jitter in 0u64..20,
        bandwidth in proptest::option::of(1_000u64..100_000),
    ) {
        let wire = valid_stream(&messages, Side::Client);
        let mut h = harness();
        condition(&mut h, Side::Server, Conditions {
            latency: Duration::from_millis(latency),
            jitter: Duration::from_millis(jitter),
            bandwidth: bandwidth.and_then(NonZeroU64::new),
            ..Conditions::default()
        }, 0);
        let mut now = 0;
        for chunk in chunks(&wire, &cuts) {
            let before = h.server.bytes.len();
            prop_assert!(h.feed_at(Side::Client, &chunk, now));
            if latency > jitter {
                prop_assert_eq!(h.server.bytes.len(), before, "nothing goes at once");
            }
            now += MS;
            h.timeout(now);
        }
        // Time enough for everything.
        while let Some(at) = deadline_us(&h) {
            now = now.max(at);
            h.timeout(now);
        }
        prop_assert_eq!(&h.server.bytes, &wire);
    }
}

#[test]
fn conditions_set_while_a_range_waits_behind_a_write_let_it_go_first() {
    let mut h = harness();
    // The server takes nothing for now: an injection goes in flight and stays there.
    h.stuck.push(Side::Server);
    h.command(
        Command::Inject {
            to: Side::Server,
            opcode: wstap_wire::Opcode::Text,
            payload: b"mine".to_vec(),
        },
        0,
    );
    let frame = client_frame(4, 9);
    assert!(h.feed_at(Side::Client, &frame, 0));
    // Conditions come while the client's frame waits, as a range of its chunk.
    condition(
        &mut h,
        Side::Server,
        Conditions {
            latency: Duration::from_millis(50),
            ..Conditions::default()
        },
        MS,
    );
    // The injection is written at last; the frame goes next, as queued.
    h.stuck.clear();
    let injected = h.notes.iter().find_map(|note| match note {
        Note::Sent { wire, .. } => Some(wire.clone()),
        _ => None,
    });
    h.server
        .bytes
        .extend(injected.expect("the injection's frame"));
    h.relay.transmitted(Side::Server);
    h.write_all(Some((Side::Client, &frame)));
    assert!(
        h.server.bytes.ends_with(&frame),
        "the client's frame is not lost"
    );
}

#[test]
fn a_chunk_read_while_the_line_filled_up_is_taken() {
    let mut h = harness();
    condition(
        &mut h,
        Side::Server,
        Conditions {
            paused: true,
            budget: 100,
            ..Conditions::default()
        },
        0,
    );
    let first = client_frame(150, 1);
    assert!(h.feed_at(Side::Client, &first, 0));
    assert!(!h.relay.wants_read(Side::Client), "full: no more reads");
    // A read already made when the line filled up is taken, not thrown away.
    let second = client_frame(10, 2);
    h.relay
        .feed_at(Side::Client, &second, Timestamp(0), h.at(MS));
    h.write_all(Some((Side::Client, &second)));
    h.command(
        Command::Condition {
            to: Side::Server,
            conditions: None,
        },
        2 * MS,
    );
    assert_eq!(h.server.bytes, [first, second].concat());
}

#[test]
fn a_cutoffs_close_waits_for_the_latency_before_its_grace_runs_out() {
    let mut h = harness();
    condition(
        &mut h,
        Side::Server,
        Conditions {
            latency: Duration::from_secs(3),
            cutoff: Some(Cutoff {
                after: After::Messages(1),
                cut: Cut::Close {
                    code: 4000,
                    reason: "slow".into(),
                    grace: Duration::from_secs(1),
                },
            }),
            ..Conditions::default()
        },
        0,
    );
    let frame = client_frame(4, 3);
    assert!(h.feed_at(Side::Client, &frame, 0));
    h.timeout(3000 * MS);
    assert_eq!(h.server.bytes, frame, "the message, then the cut");
    // The close to the server waits its three seconds on the line: no abort meanwhile.
    while let Some(at) = deadline_us(&h) {
        if at > 10_000 * MS {
            break;
        }
        h.timeout(at);
    }
    assert!(!h.relay.is_aborted(), "closed, not dropped");
    assert_eq!(
        close_at_end(&h.server.bytes[frame.len()..], true),
        (4000, "slow".into())
    );
}
