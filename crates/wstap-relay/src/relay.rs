//! The relay's state machine: bytes, end of stream, failures, commands and time in;
//! what to write to each side, records and the next deadline out.
//!
//! One [`Relay`] serves a whole session, both directions, because its decisions span
//! both: a shutdown closes each side once *its* stream is between frames, `--strict`
//! answers a bad frame on both sides, and a close sent to one side means nothing more
//! may be read for it from the other. Each direction keeps its own analyzer ([`Lane`]).
//!
//! What to write is queued per destination side as [`Transmit`]s, polled in order:
//! [`Transmit::Forward`] names a range of the chunk last fed from the other side, to be
//! written exactly as read (the fast path: no copy, no re-framing, masked bytes as the
//! client masked them); [`Transmit::Built`] carries bytes the relay made (a close frame);
//! [`Transmit::Shutdown`] ends the destination's stream (a half-close). The driver must
//! write a side's transmits, and say so with [`Relay::transmitted`], before it feeds the
//! other side's next chunk: the ranges refer to that chunk.
//!
//! The relay never reads a clock: every call that can depend on time takes `now`, and
//! [`Relay::poll_timeout`] says when to call [`Relay::handle_timeout`].

use crate::end::{CutOff, EndReason, FirstClose, RelayEnd, Sent};
use crate::lane::{Lane, Reading};
use crate::Side;
use std::collections::VecDeque;
use std::ops::Range;
use std::time::Duration;
use wstap_wire::mask::random_key;
use wstap_wire::{AnalyzerConfig, CloseFrame, Direction, FrameBuilder, Offence, Record, Timestamp};

/// How a relay reads its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayConfig {
    /// A WebSocket, read with this analyzer configuration; `None`: bytes pass unread (a
    /// blind tunnel, a protocol other than WebSocket).
    pub websocket: Option<AnalyzerConfig>,
    /// `--strict`: withhold the first frame that breaks the protocol and all that follows
    /// it, and close both sides with 1002 (1007 for bad UTF-8).
    pub strict: bool,
}

/// What a person or the engine asks of a live relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// wstap is stopping: send `1001 Going Away` to each side as soon as its stream is
    /// between frames, and end the connections; a side whose stream is still in the middle
    /// of a frame when `grace` has passed is closed without a close frame.
    Shutdown {
        /// How long to wait for frame boundaries.
        grace: Duration,
    },
    /// Send a close frame with `code` and `reason` to `to` at its stream's next frame
    /// boundary, then end that stream; nothing more is read from the other side for it.
    Close {
        /// Who gets the close frame.
        to: Side,
        /// The close code.
        code: u16,
        /// The reason (cut to fit a control frame).
        reason: String,
    },
}

/// One thing to write to a side: see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Write these bytes of the chunk last fed from the other side, as they were read.
    Forward(Range<usize>),
    /// Write these bytes, which the relay built.
    Built(Vec<u8>),
    /// End the stream: shut the connection down for writing.
    Shutdown,
}

/// Why the relay closes sides of its own accord.
#[derive(Debug, Clone)]
enum Cause {
    Shutdown,
    Command {
        code: u16,
    },
    Strict {
        from: Direction,
        offence: Offence,
        withheld: u64,
        code: u16,
    },
}

/// Close frames the relay still has to send, and what it sent.
#[derive(Debug, Clone)]
struct Closing {
    cause: Cause,
    /// When sides still waiting for a frame boundary are closed without a close frame.
    deadline: Option<Timestamp>,
    /// The close payload each side (by [`Side::index`]) still waits for.
    pending: [Option<Vec<u8>>; 2],
    sent: Sent,
}

/// The relay core of one session: see the module documentation.
#[derive(Debug)]
pub struct Relay {
    /// By direction: client to server, server to client.
    lanes: [Lane; 2],
    strict: bool,
    /// By destination side.
    queues: [VecDeque<Transmit>; 2],
    /// A transmit polled for the side and not yet reported written.
    in_flight: [bool; 2],
    /// The side's stream has been ended (a `Shutdown` is queued or written).
    shut: [bool; 2],
    events: Vec<Record>,
    closing: Option<Closing>,
    aborted: bool,
}

impl Relay {
    /// A relay at the start of a session.
    pub fn new(config: RelayConfig) -> Relay {
        Relay {
            lanes: [
                Lane::new(Direction::ClientToServer, config.websocket),
                Lane::new(Direction::ServerToClient, config.websocket),
            ],
            strict: config.strict && config.websocket.is_some(),
            queues: [VecDeque::new(), VecDeque::new()],
            in_flight: [false; 2],
            shut: [false; 2],
            events: Vec::new(),
            closing: None,
            aborted: false,
        }
    }

    /// The lane carrying what `from` sends.
    fn lane_from(&mut self, from: Side) -> &mut Lane {
        &mut self.lanes[from.index()]
    }

    /// The lane whose stream goes to `to`.
    fn lane_to(&self, to: Side) -> &Lane {
        &self.lanes[to.other().index()]
    }

    /// Whether the driver should read from `from` now.
    pub fn wants_read(&self, from: Side) -> bool {
        !self.aborted && self.lanes[from.index()].is_reading()
    }

    /// `chunk` was read from `from` at `now`. Queues what to write to the other side and
    /// the records the bytes complete. Nothing is read from a side the relay stopped.
    pub fn feed(&mut self, from: Side, chunk: &[u8], now: Timestamp) {
        let to = from.other();
        if chunk.is_empty() || !self.wants_read(from) {
            return;
        }
        debug_assert!(
            !self.in_flight[to.index()]
                && !self.queues[to.index()]
                    .iter()
                    .any(|t| matches!(t, Transmit::Forward(_))),
            "the last chunk from {from:?} is not written yet"
        );
        let strict = self.strict;
        let start = self.events.len();
        let lane = &mut self.lanes[from.index()];
        let mut offence = None;
        let clean = match lane.analyzer.as_mut() {
            None => chunk.len(),
            Some(analyzer) if strict => {
                let verdict = analyzer.judge(chunk, now, &mut self.events);
                offence = verdict
                    .offence
                    .map(|found| (found, (chunk.len() - verdict.clean) as u64));
                verdict.clean
            }
            Some(analyzer) => {
                analyzer.feed(chunk, now, &mut self.events);
                chunk.len()
            }
        };
        lane.note_close(&self.events[start..]);
        if clean > 0 {
            lane.forwarded += clean as u64;
            self.queues[to.index()].push_back(Transmit::Forward(0..clean));
        }
        match offence {
            Some((offence, withheld)) => self.close_for_violation(from, offence, withheld),
            // The stream to `to` may have reached the frame boundary a close waits for.
            None => self.send_pending_close(to),
        }
    }

    /// `from` ended its stream: the other side's stream ends too (a half-close).
    pub fn end_of_stream(&mut self, from: Side) {
        let lane = self.lane_from(from);
        if lane.reading == Reading::Open {
            lane.reading = Reading::Eof;
        }
        self.end_stream(from.other(), None);
    }

    /// Reading from `from` failed: the relay ends at once, the other direction with it.
    pub fn read_failed(&mut self, from: Side, why: String) {
        let lane = self.lane_from(from);
        if lane.reading == Reading::Open {
            lane.reading = Reading::Failed(why);
        }
        self.abort();
    }

    /// Writing to `to` failed: the relay ends at once.
    pub fn write_failed(&mut self, to: Side, why: String) {
        let lane = &mut self.lanes[to.other().index()];
        if matches!(lane.reading, Reading::Open | Reading::Eof) {
            lane.reading = Reading::WriteFailed(why);
        }
        self.abort();
    }

    fn abort(&mut self) {
        self.aborted = true;
        for lane in &mut self.lanes {
            if lane.reading == Reading::Open {
                lane.reading = Reading::Stopped;
            }
        }
        for queue in &mut self.queues {
            queue.clear();
        }
    }

    /// Carries out `command`, at `now`.
    pub fn command(&mut self, command: Command, now: Timestamp) {
        if self.aborted {
            return;
        }
        match command {
            Command::Shutdown { grace } => self.shutdown(grace, now),
            Command::Close { to, code, reason } => {
                if self.closing.is_some() {
                    // Already closing for a reason of its own: what was asked is under way.
                    if let Some(Closing {
                        cause: Cause::Command { .. },
                        pending,
                        ..
                    }) = self.closing.as_mut()
                    {
                        if !self.shut[to.index()] {
                            pending[to.index()] = Some(CloseFrame::encode(code, &reason));
                        }
                    }
                } else {
                    let mut pending = [None, None];
                    pending[to.index()] = Some(CloseFrame::encode(code, &reason));
                    self.closing = Some(Closing {
                        cause: Cause::Command { code },
                        deadline: None,
                        pending,
                        sent: Sent::default(),
                    });
                }
                self.send_pending_close(to);
            }
        }
    }

    fn shutdown(&mut self, grace: Duration, now: Timestamp) {
        if matches!(
            self.closing,
            Some(Closing {
                cause: Cause::Shutdown | Cause::Strict { .. },
                ..
            })
        ) {
            return;
        }
        let websocket = self.lanes[0].analyzer.is_some();
        let payload = CloseFrame::encode(1001, "wstap is shutting down");
        let pending = [Side::Client, Side::Server]
            .map(|side| (websocket && !self.shut[side.index()]).then(|| payload.clone()));
        let grace_us = i64::try_from(grace.as_micros()).unwrap_or(i64::MAX);
        self.closing = Some(Closing {
            cause: Cause::Shutdown,
            deadline: Some(Timestamp(now.0.saturating_add(grace_us))),
            pending,
            sent: self.closing.take().map(|c| c.sent).unwrap_or_default(),
        });
        for side in [Side::Server, Side::Client] {
            self.send_pending_close(side);
            if !websocket {
                self.end_stream(side, None);
            }
        }
        if grace.is_zero() {
            self.handle_timeout(now);
        }
    }

    /// Sends the close frame `to` waits for, if its stream is between frames now.
    fn send_pending_close(&mut self, to: Side) {
        let at_boundary = self.lane_to(to).at_frame_boundary();
        let Some(closing) = self.closing.as_mut() else {
            return;
        };
        if !at_boundary || closing.pending[to.index()].is_none() {
            return;
        }
        if let Some(payload) = closing.pending[to.index()].take() {
            closing.sent = closing.sent.with(to);
            self.end_stream(to, Some(close_frame(to, &payload)));
        }
    }

    /// Ends the stream to `to`, after `last` when given; nothing more is read for it.
    fn end_stream(&mut self, to: Side, last: Option<Vec<u8>>) {
        if let Some(closing) = self.closing.as_mut() {
            closing.pending[to.index()] = None;
        }
        if std::mem::replace(&mut self.shut[to.index()], true) {
            return;
        }
        let queue = &mut self.queues[to.index()];
        if let Some(frame) = last {
            queue.push_back(Transmit::Built(frame));
        }
        queue.push_back(Transmit::Shutdown);
        let feeding = &mut self.lanes[to.other().index()];
        if feeding.reading == Reading::Open {
            feeding.reading = Reading::Stopped;
        }
    }

    /// `--strict`: `from` sent `offence`; what came before it is queued, it and `withheld`
    /// bytes after it are not. Closes both sides, each only where its stream is between
    /// frames: the offender's receiver got nothing of the frame when it began in this
    /// chunk; the offender's own stream is as its lane saw it.
    fn close_for_violation(&mut self, from: Side, offence: Offence, withheld: u64) {
        let code = if offence.violation.is_utf8() {
            1007
        } else {
            1002
        };
        let reason = format!("wstap --strict: {}", offence.violation.code());
        let payload = CloseFrame::encode(code, &reason);
        let to_receiver = offence.begins_in_chunk;
        let to_sender = self.lane_to(from).at_frame_boundary();
        let mut sent = Sent::default();
        for side in [Side::Server, Side::Client] {
            let allowed = if side == from { to_sender } else { to_receiver };
            let frame = allowed.then(|| close_frame(side, &payload));
            if frame.is_some() {
                sent = sent.with(side);
            }
            self.end_stream(side, frame);
        }
        self.closing = Some(Closing {
            cause: Cause::Strict {
                from: from.sends(),
                offence,
                withheld,
                code,
            },
            deadline: None,
            pending: [None, None],
            sent,
        });
    }

    /// When [`Relay::handle_timeout`] wants to be called, if ever.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let closing = self.closing.as_ref()?;
        closing
            .pending
            .iter()
            .any(Option::is_some)
            .then_some(closing.deadline)
            .flatten()
    }

    /// Time has come to `now`: sides still waiting for a frame boundary past the deadline
    /// are closed without a close frame.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let due = self
            .closing
            .as_ref()
            .and_then(|c| c.deadline)
            .is_some_and(|deadline| deadline <= now);
        if !due {
            return;
        }
        for side in [Side::Server, Side::Client] {
            let waiting = self
                .closing
                .as_ref()
                .is_some_and(|c| c.pending[side.index()].is_some());
            if waiting {
                self.end_stream(side, None);
            }
        }
    }

    /// The next thing to write to `to`, if any. Report it written with
    /// [`Relay::transmitted`] before polling again.
    pub fn poll_transmit(&mut self, to: Side) -> Option<Transmit> {
        if self.in_flight[to.index()] {
            return None;
        }
        let next = self.queues[to.index()].pop_front();
        self.in_flight[to.index()] = next.is_some();
        next
    }

    /// Whether something waits to be written to `to`.
    pub fn has_transmit(&self, to: Side) -> bool {
        !self.queues[to.index()].is_empty()
    }

    /// The transmit last polled for `to` has been written.
    pub fn transmitted(&mut self, to: Side) {
        self.in_flight[to.index()] = false;
    }

    /// Takes the records decoded so far, in wire order per direction (the relay keeps
    /// its buffer for the next ones).
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Record> {
        self.events.drain(..)
    }

    /// Whether anything waits in [`Relay::drain_events`].
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Whether nothing more will be read from either side.
    pub fn is_finished(&self) -> bool {
        self.lanes.iter().all(|lane| !lane.is_reading())
    }

    /// Whether a failed read or write ended the relay at once (what was queued to write
    /// was dropped).
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// Whether the relay is over: finished and every transmit written, or ended at once
    /// by a failure.
    pub fn is_done(&self) -> bool {
        self.aborted
            || (self.is_finished()
                && self.queues.iter().all(VecDeque::is_empty)
                && !self.in_flight.iter().any(|f| *f))
    }

    /// Ends the relay at `now`: records for messages left open and frames cut off join
    /// the events, and the end is described.
    pub fn end(&mut self, now: Timestamp) -> RelayEnd {
        let mut cut_off = Vec::new();
        for lane in &mut self.lanes {
            if let Some(partial) = lane.finish(now, &mut self.events) {
                cut_off.push(CutOff {
                    direction: lane.direction,
                    index: lane.frames(),
                    partial,
                });
            }
        }
        let [c2s, s2c] = &self.lanes;
        let websocket = c2s.analyzer.is_some();
        let both_ended = c2s.reading == Reading::Eof && s2c.reading == Reading::Eof;
        let closes = c2s.first_close.is_some() && s2c.first_close.is_some();
        // A WebSocket ended cleanly when each side sent a close frame and no frame was cut,
        // however its connections went afterwards (a peer may reset its connection once
        // the close handshake is done, or skip TLS's close_notify). Another stream ended
        // cleanly when both senders ended it.
        let clean = self.closing.is_none()
            && if websocket {
                closes && cut_off.is_empty()
            } else {
                both_ended
            };
        let reason = match self.closing.as_ref() {
            None => EndReason::Peers {
                c2s: c2s.end(),
                s2c: s2c.end(),
            },
            Some(closing) => match &closing.cause {
                Cause::Shutdown => EndReason::Shutdown { sent: closing.sent },
                Cause::Command { code } => EndReason::Commanded {
                    code: *code,
                    sent: closing.sent,
                },
                Cause::Strict {
                    from,
                    offence,
                    withheld,
                    code,
                } => EndReason::Strict {
                    from: *from,
                    offence: offence.clone(),
                    withheld: *withheld,
                    code: *code,
                    sent: closing.sent,
                },
            },
        };
        RelayEnd {
            reason,
            clean,
            first_close: first_close(c2s, s2c),
            frames: [c2s.frames(), s2c.frames()],
            bytes: [c2s.forwarded, s2c.forwarded],
            cut_off,
        }
    }
}

/// A close frame for `to`: masked with a fresh key toward the server, as a client sends
/// it; unmasked toward the client, as a server sends it.
fn close_frame(to: Side, payload: &[u8]) -> Vec<u8> {
    match to {
        Side::Server => FrameBuilder::close().mask(random_key()).encode(payload),
        Side::Client => FrameBuilder::close().encode(payload),
    }
}

/// The earlier of the two directions' first close frames (the client's on a tie).
fn first_close(c2s: &Lane, s2c: &Lane) -> Option<FirstClose> {
    let client = c2s.first_close.as_ref().map(|(t, c)| (*t, Side::Client, c));
    let server = s2c.first_close.as_ref().map(|(t, c)| (*t, Side::Server, c));
    let first = match (client, server) {
        (Some(c), Some(s)) => Some(if s.0 < c.0 { s } else { c }),
        (c, s) => c.or(s),
    };
    first.map(|(_, by, close)| FirstClose {
        by,
        code: close.code,
        reason: close.reason.clone(),
    })
}
