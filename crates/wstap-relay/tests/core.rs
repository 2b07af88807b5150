//! The relay core's decisions, with plain function calls: byte-exact forwarding of any
//! stream in any chunking, `--strict`, shutdown at frame boundaries, close commands,
//! half-closes, failures and injections. Breakpoints and their decisions: `intercept.rs`.

mod support;

use proptest::prelude::*;
use std::time::Duration;
use support::*;
use wstap_relay::{Closed, Closes, Command, EndReason, Refused, RelayConfig, Side, StreamEnd};
use wstap_wire::{AnalyzerConfig, CloseFrame, Direction, FrameBuilder, Opcode, Record, Timestamp};

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]


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
fn an_injection_waits_for_the_message_in_progress_and_is_refused_on_dead_streams() {
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

    // Into a stream that ended, or one that is not a WebSocket: refused, with the reason.
    h.eof(Side::Server);
    let late = h.try_command(
        Command::Inject {
            to: Side::Client,
            opcode: Opcode::Text,
            payload: b"too late".to_vec(),
        },
        3,
    );
    assert_eq!(late, Err(Refused::Ended("client")));
    assert!(h.client.ended);
    let mut blind = Harness::new(RelayConfig::default());
    let refused = blind.try_command(
        Command::Inject {
            to: Side::Server,
            opcode: Opcode::Text,
            payload: b"not here".to_vec(),
        },
        0,
    );
    assert_eq!(refused, Err(Refused::NotWebSocket));
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
