//! After a `101`: the WebSocket relay with a tap on each direction, and the session's end.
//!
//! When the relay stops for a reason of wstap's own, wstap closes the WebSocket properly
//! where it can: on shutdown with 1001 (Going Away) to both sides, and with `--strict`
//! after withholding a bad frame with 1002 (1007 for bad UTF-8). A close frame is only
//! written into a stream that is between frames, so none is ever cut.

use crate::clock::now;
use crate::io::{Client, Upstream};
use crate::relay::{legs, relay_both, Leg, PumpEnd, RelayEnd, Taps};
use crate::session::{Ending, Session};
use crate::stage::Stage;
use crate::tap::Tap;
use tokio::io::AsyncWriteExt;
use wstap_trace::convert::violation_text;
use wstap_trace::{
    CutFrame, Initiator, Outcome, PerDirection, SessionClose, SessionKind, Withheld,
};
use wstap_wire::handshake::HandshakeAnalysis;
use wstap_wire::mask::random_key;
use wstap_wire::{AnalyzerConfig, CloseFrame, Direction, FrameBuilder, Offence, PartialFrame};

/// Relays frames between `client` and `upstream` until the connection ends, tapping both
/// directions, then records the session's end.
pub(crate) async fn relay(
    session: Session,
    client: Client,
    upstream: Upstream,
    analysis: Box<HandshakeAnalysis>,
) -> Stage {
    let config = AnalyzerConfig {
        max_frame_capture: session.shared.config.max_capture,
        max_message_capture: session.shared.config.max_capture,
        deflate: analysis.deflate,
        other_extension_bits: analysis.other_extension_bits,
    };
    let mut c2s_tap = Tap::new(session.id, Direction::ClientToServer, config);
    let mut s2c_tap = Tap::new(session.id, Direction::ServerToClient, config);
    let (mut c2s, mut s2c) = legs(client, upstream);
    let taps = Taps {
        c2s: &mut c2s_tap,
        s2c: &mut s2c_tap,
        strict: session.shared.config.strict,
    };
    let stop = session.shared.stopping();
    let end = relay_both(&mut c2s, &mut s2c, Some(taps), session.bus(), stop).await;

    let mut legs = Legs {
        c2s: &mut c2s,
        s2c: &mut s2c,
    };
    let wrapped = legs.wrap_up(&end, [&c2s_tap, &s2c_tap]).await;
    let cut_frames = finish(&session, [&mut c2s_tap, &mut s2c_tap]).await;
    let (outcome, ending) = ending(&end, [&c2s_tap, &s2c_tap], wrapped, cut_frames);
    session.end(outcome, SessionKind::WebSocket, ending).await;
    Stage::Done
}

/// What wstap itself did to end a relay: what it said, and what `--strict` withheld.
#[derive(Default)]
struct WrappedUp {
    said: Option<String>,
    withheld: Option<Withheld>,
}

/// Ends both taps' streams, publishing what they still held; returns the frames cut off.
async fn finish(session: &Session, taps: [&mut Tap; 2]) -> Vec<CutFrame> {
    let time = now();
    let mut cut_frames = Vec::new();
    for tap in taps {
        let (events, partial) = tap.finish(time);
        session.bus().publish(events).await;
        if let Some(partial) = partial {
            cut_frames.push(cut_frame(tap.direction(), tap.frames(), partial));
        }
    }
    cut_frames
}

/// How the session ended, from how the relay ended and what the taps saw: cleanly only
/// when both sides sent a close frame, no frame was cut and wstap did not step in.
fn ending(
    end: &RelayEnd,
    [c2s, s2c]: [&Tap; 2],
    wrapped: WrappedUp,
    cut_frames: Vec<CutFrame>,
) -> (Outcome, Ending) {
    let handshake_done = c2s.first_close.is_some() && s2c.first_close.is_some();
    let clean = handshake_done && cut_frames.is_empty() && wrapped.said.is_none();
    let error = wrapped
        .said
        .or_else(|| (!clean).then(|| why_unclean(end, [c2s, s2c])));
    let ending = Ending {
        close: first_close(c2s, s2c),
        frames: PerDirection {
            c2s: c2s.frames(),
            s2c: s2c.frames(),
        },
        bytes: PerDirection {
            c2s: end.c2s_bytes,
            s2c: end.s2c_bytes,
        },
        error,
        cut_frames,
        withheld: wrapped.withheld,
    };
    let outcome = if clean {
        Outcome::Closed
    } else {
        Outcome::Aborted
    };
    (outcome, ending)
}

/// The direction that ended on a `--strict` violation, the offending frame and the bytes
/// withheld; `None` when no direction did.
fn strict_offence(end: &RelayEnd) -> Option<(Direction, &Offence, u64)> {
    [
        (Direction::ClientToServer, &end.c2s),
        (Direction::ServerToClient, &end.s2c),
    ]
    .into_iter()
    .find_map(|(direction, how)| match how {
        Some(PumpEnd::Violation { offence, withheld }) => Some((direction, offence, *withheld)),
        _ => None,
    })
}

/// The two write ends of the relay, for the close frames wstap sends itself.
struct Legs<'a> {
    c2s: &'a mut Leg,
    s2c: &'a mut Leg,
}

impl Legs<'_> {
    /// Closes the WebSocket where wstap ended the relay itself: at shutdown, or after
    /// withholding a bad frame.
    async fn wrap_up(&mut self, end: &RelayEnd, taps: [&Tap; 2]) -> WrappedUp {
        if end.interrupted {
            let said = Some(self.close_for_shutdown(taps).await);
            return WrappedUp {
                said,
                withheld: None,
            };
        }
        let Some((direction, offence, withheld)) = strict_offence(end) else {
            return WrappedUp::default();
        };
        let said = Some(self.close_for_violation(direction, offence, taps).await);
        let withheld = Some(Withheld {
            dir: direction,
            frame: offence.index,
            bytes: withheld,
            whole_frame: offence.begins_in_chunk,
        });
        WrappedUp { said, withheld }
    }

    /// The proxy is stopping: closes both sides with 1001 (Going Away) when both
    /// directions are between frames, so no frame is cut; otherwise just closes the
    /// connections. Returns what was done, for the session's end.
    async fn close_for_shutdown(&mut self, [c2s, s2c]: [&Tap; 2]) -> String {
        let at_boundary = c2s.at_frame_boundary() && s2c.at_frame_boundary();
        let send = (at_boundary, at_boundary);
        self.send_closes(send, 1001, "wstap is shutting down").await;
        if at_boundary {
            "wstap shut down: it sent close 1001 (Going Away) to both sides".to_owned()
        } else {
            "wstap shut down in the middle of a frame: it closed both connections without a close frame"
                .to_owned()
        }
    }

    /// `--strict`: `from` broke the protocol and its offending frame was withheld. Closes
    /// both sides with 1002 (1007 for bad UTF-8), each only where its stream is between
    /// frames, and says what was done.
    async fn close_for_violation(
        &mut self,
        from: Direction,
        offence: &Offence,
        [c2s, s2c]: [&Tap; 2],
    ) -> String {
        let violation = &offence.violation;
        let code = if violation.is_utf8() { 1007 } else { 1002 };
        // The receiver of the bad frame got nothing of it when it began in the read
        // that was judged; the sender's own stream is as its tap saw it.
        let receiver_ok = offence.begins_in_chunk;
        let (to_server, to_client) = match from {
            Direction::ClientToServer => (receiver_ok, s2c.at_frame_boundary()),
            Direction::ServerToClient => (c2s.at_frame_boundary(), receiver_ok),
        };
        let reason = format!("wstap --strict: {}", violation.code());
        self.send_closes((to_server, to_client), code, &reason)
            .await;
        let from = from.sender();
        let whole = if offence.begins_in_chunk {
            "nothing of it"
        } else {
            "only its first bytes"
        };
        format!(
            "--strict: the {from} sent a frame that breaks the protocol ({}: {violation}); it was not relayed (frame {} on; the other side received {whole}), and wstap closed both sides with {code}",
            violation.code(),
            offence.index,
        )
    }

    /// Writes a close frame with `code` and `reason` to the server (masked, as a client
    /// would) and/or the client (as a server would), then shuts both connections down.
    async fn send_closes(&mut self, (to_server, to_client): (bool, bool), code: u16, reason: &str) {
        let payload = CloseFrame::encode(code, reason);
        if to_server {
            let frame = FrameBuilder::close().mask(random_key()).encode(&payload);
            let _ = self.c2s.dst.write_all(&frame).await;
        }
        if to_client {
            let frame = FrameBuilder::close().encode(&payload);
            let _ = self.s2c.dst.write_all(&frame).await;
        }
        let _ = self.c2s.dst.shutdown().await;
        let _ = self.s2c.dst.shutdown().await;
    }
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

/// Why a relay that ended by itself did not end cleanly: a sentence per direction.
fn why_unclean(end: &RelayEnd, [c2s, s2c]: [&Tap; 2]) -> String {
    let why: Vec<String> = [
        (Direction::ClientToServer, end.c2s.as_ref(), c2s),
        (Direction::ServerToClient, end.s2c.as_ref(), s2c),
    ]
    .into_iter()
    .map(|(direction, how, tap)| describe(direction, how, tap.first_close.is_some()))
    .filter(|w| !w.is_empty())
    .collect();
    why.join("; ")
}

/// A sentence on how one direction ended, empty when it ended well.
fn describe(direction: Direction, end: Option<&PumpEnd>, sent_close: bool) -> String {
    let (from, to) = (direction.sender(), direction.receiver());
    match end {
        None => format!("{from}->{to} stopped when the other direction failed"),
        Some(PumpEnd::ReadFailed(e)) => format!("reading from the {from} failed: {e}"),
        Some(PumpEnd::WriteFailed(e)) => format!("writing to the {to} failed: {e}"),
        Some(PumpEnd::Eof) if !sent_close => {
            format!("the {from} closed the connection without a close frame")
        }
        Some(PumpEnd::Eof) => String::new(),
        Some(PumpEnd::Violation { offence, .. }) => {
            format!("the {from} broke the protocol: {}", offence.violation)
        }
    }
}

fn cut_frame(direction: Direction, index: u64, partial: PartialFrame) -> CutFrame {
    match partial {
        PartialFrame::Header { received, needed } => CutFrame {
            dir: direction,
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
            dir: direction,
            index,
            header_received: usize::from(header.header_len()),
            header_len: usize::from(header.header_len()),
            payload_received: received,
            payload_len: Some(header.payload_len()),
            violations: violations.iter().map(violation_text).collect(),
        },
    }
}
