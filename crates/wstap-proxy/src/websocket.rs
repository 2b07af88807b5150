//! After a `101`: the WebSocket relay with a tap on each direction, and the session's end.

use crate::exchange::{Client, Upstream};
use crate::relay::{legs, now, relay_both, Leg, PumpEnd, RelayEnd};
use crate::session::{Ending, Session};
use crate::tap::Tap;
use tokio::io::AsyncWriteExt;
use wstap_trace::convert::violation_text;
use wstap_trace::{CutFrame, Dir, Initiator, Outcome, PerDirection, SessionClose};
use wstap_wire::handshake::HandshakeAnalysis;
use wstap_wire::{AnalyzerConfig, Direction, FrameBuilder, PartialFrame};

/// Relays frames between `client` and `upstream` until the connection ends, tapping both
/// directions, then records the session's end.
pub async fn relay_websocket(
    session: Session,
    client: Client,
    upstream: Upstream,
    analysis: Box<HandshakeAnalysis>,
) {
    let config = AnalyzerConfig {
        max_frame_capture: session.shared.config.max_capture,
        max_message_capture: session.shared.config.max_capture,
        deflate: analysis.deflate,
        other_extension_bits: analysis.other_extension_bits,
    };
    let mut c2s_tap = Tap::new(session.id, Direction::ClientToServer, config);
    let mut s2c_tap = Tap::new(session.id, Direction::ServerToClient, config);
    let (mut c2s, mut s2c) = legs(client, upstream);
    let closing = Some(session.shared.closing.clone());
    let (up_tap, down_tap) = (Some(&mut c2s_tap), Some(&mut s2c_tap));
    let strict = session.shared.config.strict;
    let end = relay_both(
        &mut c2s,
        &mut s2c,
        up_tap,
        down_tap,
        session.bus(),
        closing,
        strict,
    )
    .await;
    let shutdown = if end.interrupted {
        Some(close_for_shutdown(&mut c2s, &mut s2c, &c2s_tap, &s2c_tap).await)
    } else {
        close_for_violation(&end, &mut c2s, &mut s2c, &c2s_tap, &s2c_tap).await
    };

    let time = now();
    let mut cut_frames = Vec::new();
    for tap in [&mut c2s_tap, &mut s2c_tap] {
        let (events, partial) = tap.finish(time);
        session.bus().publish(events).await;
        if let Some(partial) = partial {
            cut_frames.push(cut_frame(tap.direction(), tap.frames(), partial));
        }
    }

    let close = first_close(&c2s_tap, &s2c_tap);
    let handshake_done = c2s_tap.first_close.is_some() && s2c_tap.first_close.is_some();
    let clean = handshake_done && cut_frames.is_empty() && shutdown.is_none();
    let error = shutdown.or_else(|| {
        (!clean).then(|| {
            let mut why = vec![
                describe(
                    Direction::ClientToServer,
                    end.c2s.as_ref(),
                    c2s_tap.first_close.is_some(),
                ),
                describe(
                    Direction::ServerToClient,
                    end.s2c.as_ref(),
                    s2c_tap.first_close.is_some(),
                ),
            ];
            why.retain(|w| !w.is_empty());
            why.join("; ")
        })
    });
    let ending = Ending {
        close,
        frames: PerDirection {
            c2s: c2s_tap.frames(),
            s2c: s2c_tap.frames(),
        },
        bytes: PerDirection {
            c2s: end.c2s_bytes,
            s2c: end.s2c_bytes,
        },
        error,
        cut_frames,
    };
    let outcome = if clean {
        Outcome::Closed
    } else {
        Outcome::Aborted
    };
    session.end(outcome, "websocket", ending).await;
}

/// The proxy is stopping: closes both sides with 1001 (Going Away) when both directions
/// are between frames, so no frame is cut; otherwise just closes the connections.
/// Returns what was done, for the session's end.
async fn close_for_shutdown(c2s: &mut Leg, s2c: &mut Leg, c2s_tap: &Tap, s2c_tap: &Tap) -> String {
    let at_boundary = c2s_tap.at_frame_boundary() && s2c_tap.at_frame_boundary();
    send_closes(
        c2s,
        s2c,
        (at_boundary, at_boundary),
        1001,
        "wstap is shutting down",
    )
    .await;
    if at_boundary {
        "wstap shut down: it sent close 1001 (Going Away) to both sides".to_owned()
    } else {
        "wstap shut down in the middle of a frame: it closed both connections without a close frame"
            .to_owned()
    }
}

/// `--strict`: a direction broke the protocol and its bytes were withheld. Closes both
/// sides with 1002 (1007 for bad UTF-8), each only where its stream is between frames, and
/// says what was done. `None` when no direction ended on a violation.
async fn close_for_violation(
    end: &RelayEnd,
    c2s: &mut Leg,
    s2c: &mut Leg,
    c2s_tap: &Tap,
    s2c_tap: &Tap,
) -> Option<String> {
    let (from, violation, receiver_ok, sender_ok) = match (&end.c2s, &end.s2c) {
        (
            Some(PumpEnd::Violation {
                violation,
                at_boundary,
            }),
            _,
        ) => (
            "client",
            violation,
            *at_boundary,
            s2c_tap.at_frame_boundary(),
        ),
        (
            _,
            Some(PumpEnd::Violation {
                violation,
                at_boundary,
            }),
        ) => (
            "server",
            violation,
            *at_boundary,
            c2s_tap.at_frame_boundary(),
        ),
        _ => return None,
    };
    let code = if violation.is_utf8() { 1007 } else { 1002 };
    // (to the server, to the client): the receiver of the bad frame, and its sender.
    let targets = if from == "client" {
        (receiver_ok, sender_ok)
    } else {
        (sender_ok, receiver_ok)
    };
    let reason = format!("wstap --strict: {}", violation.code());
    send_closes(c2s, s2c, targets, code, &reason).await;
    Some(format!(
        "--strict: the {from} sent a frame that breaks the protocol ({}: {violation}); it was not relayed, and wstap closed both sides with {code}",
        violation.code()
    ))
}

/// Writes a close frame with `code` and `reason` to the server (masked, as a client
/// would) and/or the client (as a server would), then shuts both connections down.
async fn send_closes(
    c2s: &mut Leg,
    s2c: &mut Leg,
    (to_server, to_client): (bool, bool),
    code: u16,
    reason: &str,
) {
    let mut payload = code.to_be_bytes().to_vec();
    // A control frame carries at most 125 bytes.
    let cut = reason
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take_while(|&end| end <= 123)
        .last()
        .unwrap_or(0);
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    if to_server {
        let mut key = [0u8; 4];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key);
        let _ = c2s
            .dst
            .write_all(&FrameBuilder::close().mask(key).encode(&payload))
            .await;
    }
    if to_client {
        let _ = s2c
            .dst
            .write_all(&FrameBuilder::close().encode(&payload))
            .await;
    }
    let _ = c2s.dst.shutdown().await;
    let _ = s2c.dst.shutdown().await;
}

fn first_close(c2s: &Tap, s2c: &Tap) -> Option<SessionClose> {
    let client = c2s
        .first_close
        .as_ref()
        .map(|(t, c)| (*t, Initiator::Client, c));
    let server = s2c
        .first_close
        .as_ref()
        .map(|(t, c)| (*t, Initiator::Server, c));
    let first = match (client, server) {
        (Some(c), Some(s)) => Some(if s.0 < c.0 { s } else { c }),
        (c, s) => c.or(s),
    };
    first.map(|(_, initiator, close)| SessionClose {
        initiator,
        code: close.code,
        reason: close.reason.clone(),
    })
}

/// A sentence on how one direction ended, empty when it ended well.
fn describe(direction: Direction, end: Option<&PumpEnd>, sent_close: bool) -> String {
    let (from, to) = match direction {
        Direction::ClientToServer => ("client", "server"),
        Direction::ServerToClient => ("server", "client"),
    };
    match end {
        None => format!("{from}->{to} stopped when the other direction failed"),
        Some(PumpEnd::ReadFailed(e)) => format!("reading from the {from} failed: {e}"),
        Some(PumpEnd::WriteFailed(e)) => format!("writing to the {to} failed: {e}"),
        Some(PumpEnd::Eof) if !sent_close => {
            format!("the {from} closed the connection without a close frame")
        }
        Some(PumpEnd::Eof) => String::new(),
        Some(PumpEnd::Violation { violation, .. }) => {
            format!("the {from} broke the protocol: {violation}")
        }
    }
}

fn cut_frame(direction: Direction, index: u64, partial: PartialFrame) -> CutFrame {
    let dir = Dir::from(direction);
    match partial {
        PartialFrame::Header { received, needed } => CutFrame {
            dir,
            index,
            header_received: received,
            header_len: needed,
            payload_received: 0,
            payload_len: None,
            violations: Vec::new(),
        },
        PartialFrame::Payload {
            header,
            received,
            violations,
        } => CutFrame {
            dir,
            index,
            header_received: usize::from(header.header_len),
            header_len: usize::from(header.header_len),
            payload_received: received,
            payload_len: Some(header.payload_len),
            violations: violations.iter().map(violation_text).collect(),
        },
    }
}
