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
//! client masked them); [`Transmit::Built`] carries bytes the relay owns (a close frame,
//! an injected frame, or bytes it held, released as they were read);
//! [`Transmit::Shutdown`] ends the destination's stream (a half-close). The driver must
//! write a side's transmits, and say so with [`Relay::transmitted`], before it feeds the
//! other side's next chunk: the ranges refer to that chunk.
//!
//! The relay never reads a clock: every call that can depend on time takes `now`, and
//! [`Relay::poll_timeout`] says when to call [`Relay::handle_timeout`]. Records carry wall
//! time ([`Timestamp`], as the trace writes it); timers run on a monotonic [`Instant`], so
//! a wall clock set back cannot stretch a grace period.
//!
//! What the relay reports is what was written, not what was queued: bytes count and a
//! close frame counts as sent once the driver says it was written ([`Relay::transmitted`]).
//!
//! Interception starts here: [`Command::Break`] sets a breakpoint on a direction, which
//! holds the messages its test passes, exactly as read, each until a [`Command::Decide`]
//! (forward, drop, replace), the direction's later messages queueing behind it;
//! [`Command::Inject`] writes a message of wstap's own at the next message boundary of a
//! stream, never inside a frame or between another message's fragments. Boundaries come
//! from the analyzer ([`wstap_wire::FrameEnd`]), found only while a breakpoint, a held
//! message or an injection needs them: untouched traffic pays nothing for them. What
//! interception has to tell (a message held, one too large to hold, a timeout) comes out
//! as [`Note`]s.

use crate::end::{Closed, Closes, CutOff, EndReason, FirstClose, RelayEnd};
use crate::lane::{Lane, Reading};
use crate::Side;
use intercept::Interception;
pub use intercept::{
    BreakRule, Built, Candidate, Decision, FirstHeader, HeldId, MessageTest, Note, Refused,
};
pub use shape::{After, Conditions, Cut, Cutoff};
use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};
use wstap_wire::mask::random_key;
use wstap_wire::{
    AnalyzerConfig, CloseFrame, Direction, FrameBuilder, FrameHeader, Offence, Opcode, Record,
    Timestamp,
};

mod intercept;
mod shape;

/// How a relay reads its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayConfig {
    /// A WebSocket, read with this analyzer configuration; `None`: bytes pass unread (a
    /// blind tunnel, a protocol other than WebSocket).
    pub websocket: Option<AnalyzerConfig>,
    /// `--strict`: withhold the first frame that breaks the protocol and all that follows
    /// it, and close both sides with 1002 (1007 for bad UTF-8).
    pub strict: bool,
    /// How long those closes wait for the peers to take them, in each of the two steps
    /// of [`Command::Shutdown`]; counted from the first time the relay is told the time
    /// after ([`Relay::handle_timeout`]). `None`: as long as the peers take.
    pub strict_grace: Option<Duration>,
}

/// What a person or the engine asks of a live relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// wstap is stopping: send `1001 Going Away` to each side as soon as its stream is
    /// between frames, and end the connections. A side whose stream is still in the
    /// middle of a frame when `grace` has passed is closed without a close frame; if after
    /// another `grace` a side has still not taken what was written to it, the relay ends
    /// at once ([`Relay::is_aborted`]): what was not written is dropped. A side whose
    /// stream already ended, or already carried a close frame, gets nothing more.
    Shutdown {
        /// How long to wait for frame boundaries and writes.
        grace: Duration,
    },
    /// Send a close frame with `code` and `reason` to `to` at its stream's next frame
    /// boundary, then end that stream; nothing more is read from the other side for it.
    /// The other direction flows on until its sender ends it. Time runs out as for
    /// `Shutdown`. On a stream that is not a WebSocket, the stream to `to` just ends.
    Close {
        /// Who gets the close frame.
        to: Side,
        /// The close code.
        code: u16,
        /// The reason (cut to fit a control frame).
        reason: String,
        /// How long to wait for the frame boundary and the write.
        grace: Duration,
    },
    /// Set (or, with `None`, clear) the breakpoint on what `from` sends, from its next
    /// message on: each message is kept until it is whole and judged by the rule's test;
    /// one it passes is held, exactly as read, masked as the client masked it, until a
    /// [`Command::Decide`] (a [`Note::Held`] names it), and the later messages of `from`
    /// queue behind it. Clearing leaves what is held held. While something is held and
    /// the rule's budget is full, `from` is not read (backpressure, not memory); an end of
    /// stream from `from` waits behind what is held. What is still held when the relay
    /// ends is counted in [`RelayEnd::held`] and named in [`RelayEnd::lost`]. The records
    /// of kept bytes are made as they are read: they say what the sender sent. Refused on
    /// a stream that is not a WebSocket.
    Break {
        /// Whose messages are judged.
        from: Side,
        /// The breakpoint, or `None` to judge no more.
        rule: Option<BreakRule>,
    },
    /// Decide what becomes of a held message; what queued behind it goes on up to the
    /// next message held. A drop or a replacement is refused on a compressed message of a
    /// sender that keeps its compression context (the receiver would lack what later
    /// messages refer to); a replacement also where an unknown extension was negotiated.
    /// What was read and not handed on counts in [`RelayEnd::dropped`].
    Decide {
        /// The message.
        id: HeldId,
        /// What becomes of it.
        decision: Decision,
    },
    /// Every message held from `from` goes on as read.
    ForwardAll {
        /// Whose held messages.
        from: Side,
    },
    /// End the relay at once: what is queued or held is dropped, and the connections
    /// with it, without close frames (a WebSocket client sees 1006).
    Abort,
    /// Write one frame of wstap's own to `to` at its stream's next message boundary
    /// (never inside a frame, nor between another message's fragments): FIN set, RSV bits
    /// clear (so uncompressed, which permessage-deflate allows of any message and which
    /// leaves both sides' compression contexts as they were), masked with a fresh key
    /// toward the server. The opcode is the caller's, a reserved one included: wstap is a
    /// tool for testing peers. Refused on a stream that ended or carried a close frame, one
    /// that is not a WebSocket, one with an unknown extension, and for a close (that is
    /// [`Command::Close`]).
    Inject {
        /// Who gets the frame.
        to: Side,
        /// Its opcode.
        opcode: Opcode,
        /// Its payload, unmasked.
        payload: Vec<u8>,
    },
    /// Set (or, with `None`, clear) network conditions on the stream to `to`: latency,
    /// jitter, bandwidth, a pause, a cut-off ([`Conditions`]). Everything queued for `to`
    /// from then on goes through a delay line, frame by frame; cleared, what the line holds
    /// still goes at its time (a pause ends). See the `shape` module.
    Condition {
        /// Whose stream.
        to: Side,
        /// The conditions, or `None` for a plain stream again.
        conditions: Option<Conditions>,
    },
}

/// One thing to write to a side: see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Write these bytes of the chunk last fed from the other side, as they were read.
    Forward(Range<usize>),
    /// Write these bytes, which the relay owns: built, or held and released.
    Built(Vec<u8>),
    /// End the stream: shut the connection down for writing.
    Shutdown,
}

/// What the relay has queued for a side.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Queued {
    /// A range of the chunk last fed from the other side.
    Forward(Range<usize>),
    /// A close frame of wstap's.
    Close(Vec<u8>),
    /// A frame injected.
    Inject(Vec<u8>),
    /// Bytes held, released as they were read.
    Released(Vec<u8>),
    /// The end of the stream.
    Shutdown,
}

/// What is being written to a side: polled, not yet reported written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    Forward(u64),
    Released(u64),
    Close,
    Built,
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

/// How far closing one side has come.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Progress {
    /// wstap is not closing it.
    Untouched,
    /// This close (its code and payload) waits for the side's stream to reach a frame
    /// boundary.
    Waiting(u16, Vec<u8>),
    /// The close frame with this code is queued or being written.
    Queued(u16),
    /// Settled.
    Done(Closed),
}

impl Progress {
    /// Whether wstap is closing the side and has not finished.
    fn is_open(&self) -> bool {
        matches!(self, Progress::Waiting(..) | Progress::Queued(_))
    }

    /// What it came to; a close not written by the end was not sent.
    fn outcome(&self) -> Option<Closed> {
        match self {
            Progress::Untouched => None,
            Progress::Waiting(..) | Progress::Queued(_) => Some(Closed::WithoutCloseFrame),
            Progress::Done(closed) => Some(*closed),
        }
    }
}

/// Sides the relay closes of its own accord, why, and by when.
///
/// Time runs out in two steps of `grace` each: at the first deadline, sides whose stream
/// is still in the middle of a frame are closed without a close frame; at the second,
/// if a side is still not closed (what was written to it is not taken), the relay ends
/// at once.
#[derive(Debug, Clone)]
struct Closing {
    cause: Cause,
    /// The next step's deadline.
    deadline: Option<Instant>,
    grace: Duration,
    /// Whether the first deadline has passed.
    waited_out: bool,
    /// A grace to start the next time the relay is told the time (a close that began
    /// with bytes, which come without a monotonic time).
    arm: Option<Duration>,
    /// By side ([`Side::index`]).
    sides: [Progress; 2],
}

impl Closing {
    fn new(cause: Cause) -> Closing {
        Closing {
            cause,
            deadline: None,
            grace: Duration::ZERO,
            waited_out: false,
            arm: None,
            sides: [Progress::Untouched, Progress::Untouched],
        }
    }

    /// Forgets the deadline of a close that is over.
    fn restart(&mut self) {
        self.deadline = None;
        self.waited_out = false;
    }

    /// Starts the steps over from `now` with `grace` if that ends sooner.
    fn due_by(&mut self, now: Instant, grace: Duration) {
        let at = now + grace;
        if self.deadline.is_none_or(|deadline| at < deadline) {
            self.deadline = Some(at);
            self.grace = grace;
            self.waited_out = false;
        }
    }

    fn closes(&self) -> Closes {
        Closes {
            client: self.sides[Side::Client.index()].outcome(),
            server: self.sides[Side::Server.index()].outcome(),
        }
    }
}

/// The relay core of one session: see the module documentation.
#[derive(Debug)]
pub struct Relay {
    /// By direction: client to server, server to client.
    lanes: [Lane; 2],
    strict: bool,
    strict_grace: Option<Duration>,
    /// By destination side.
    queues: [VecDeque<Queued>; 2],
    /// By destination side.
    in_flight: [Option<InFlight>; 2],
    /// The side's stream has been ended (a `Shutdown` is queued or written).
    shut: [bool; 2],
    events: Vec<Record>,
    /// Boxed, as [`Interception`] is: rare, and the relay lives as long as its session.
    closing: Option<Box<Closing>>,
    intercept: Option<Box<Interception>>,
    /// Network conditions, boxed: rare.
    shaping: Option<Box<shape::Shaping>>,
    aborted: bool,
    /// The relay was aborted by [`Command::Abort`], not by a failure.
    commanded_abort: bool,
    /// The relay ended because a compressed message from this direction could not be
    /// compressed again within the breakpoint's budget.
    overflowed: Option<Direction>,
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
            strict_grace: config.strict_grace,
            queues: [VecDeque::new(), VecDeque::new()],
            in_flight: [None; 2],
            shut: [false; 2],
            events: Vec::new(),
            closing: None,
            intercept: None,
            shaping: None,
            aborted: false,
            commanded_abort: false,
            overflowed: None,
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
        self.takes(from) && !self.line_full(from.other())
    }

    /// Whether a chunk read from `from` is taken: a full line of network conditions stops
    /// the next read, not one already made (an injection or a release may fill the line
    /// while the driver reads).
    fn takes(&self, from: Side) -> bool {
        let full = self.held_lane(from).is_some_and(|h| h.full());
        !self.aborted && self.lanes[from.index()].is_reading() && !full
    }

    /// [`Relay::feed`], with the monotonic time of the read: a stream with network
    /// conditions times its frames from it (plain `feed` times them from the last time
    /// the relay was told).
    pub fn feed_at(&mut self, from: Side, chunk: &[u8], now: Timestamp, at: Instant) {
        self.tell_time(at);
        self.feed(from, chunk, now);
    }

    /// `chunk` was read from `from` at `now`. Queues what to write to the other side and
    /// the records the bytes complete. Nothing is read from a side the relay stopped.
    pub fn feed(&mut self, from: Side, chunk: &[u8], now: Timestamp) {
        let to = from.other();
        if chunk.is_empty() || !self.takes(from) {
            return;
        }
        debug_assert!(
            !matches!(self.in_flight[to.index()], Some(InFlight::Forward(_)))
                && !self.queues[to.index()]
                    .iter()
                    .any(|t| matches!(t, Queued::Forward(_))),
            "the last chunk from {from:?} is not written yet"
        );
        let strict = self.strict;
        let start = self.events.len();
        // Where the stream stands before this chunk, and whether its frame ends matter.
        let between_before = self.between_messages_to(to);
        let steer = self.steering(from);
        let routing = self.routing(from);
        let mut no_ends = Vec::new();
        let ends = match (self.intercept.as_mut(), self.shaping.as_mut()) {
            (Some(intercept), _) if steer => &mut intercept.ends,
            (None, Some(shaping)) if steer => &mut shaping.ends,
            _ => &mut no_ends,
        };
        ends.clear();
        let lane = &mut self.lanes[from.index()];
        let chunk_start = lane.accepted;
        let mut offence = None;
        let clean = match lane.analyzer.as_mut() {
            None => chunk.len(),
            Some(analyzer) if strict => {
                let verdict = match steer {
                    true => analyzer.judge_marking_ends(chunk, now, &mut self.events, ends),
                    false => analyzer.judge(chunk, now, &mut self.events),
                };
                offence = verdict
                    .offence
                    .map(|found| (found, (chunk.len() - verdict.clean) as u64));
                verdict.clean
            }
            Some(analyzer) => {
                match steer {
                    true => analyzer.feed_marking_ends(chunk, now, &mut self.events, ends),
                    false => analyzer.feed(chunk, now, &mut self.events),
                }
                chunk.len()
            }
        };
        lane.accepted += clean as u64;
        lane.note_close(&self.events[start..], chunk_start, ends);
        if routing {
            self.route(from, chunk, clean, start);
        } else {
            if self.intercept.is_some() {
                // Nothing routes this direction (any more): no whole messages are needed.
                self.stop_keeping_whole(from);
            }
            if steer {
                self.steer(from, clean, between_before);
            } else if clean > 0 {
                self.queues[to.index()].push_back(Queued::Forward(0..clean));
            }
        }
        match offence {
            Some((offence, withheld)) => self.close_for_violation(from, offence, withheld),
            // The stream to `to` may have reached the frame boundary a close waits for.
            None => self.send_pending_close(to),
        }
        if self.shaping.is_some() {
            self.admit(to, Some(chunk));
            self.admit(from, None);
        }
    }

    /// `from` ended its stream: the other side's stream ends too (a half-close), once
    /// what is held from `from` is released.
    pub fn end_of_stream(&mut self, from: Side) {
        let lane = self.lane_from(from);
        if lane.reading == Reading::Open {
            lane.reading = Reading::Eof;
        }
        // Its end waits behind what is held.
        if self.eof_waits(from) {
            return;
        }
        let to = from.other();
        if let Some(closing) = self.closing.as_mut() {
            // A close still waiting for a frame boundary never gets one now.
            if let Progress::Waiting(..) = closing.sides[to.index()] {
                closing.sides[to.index()] = Progress::Done(Closed::AlreadyClosed);
            }
        }
        self.end_stream(to, None);
        self.admit_all();
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
        self.clear_lines();
    }

    /// Whether `to` has something queued or being written.
    fn writing_to(&self, to: Side) -> bool {
        !self.queues[to.index()].is_empty()
            || self.in_flight[to.index()].is_some()
            || self.line_holds(to)
    }

    /// Whether a stream has carried a close frame to `to` already (handed on, not held):
    /// it must get no other.
    fn close_went_to(&self, to: Side) -> bool {
        self.lane_to(to).close_handed_on(self.held_len(to.other()))
    }

    /// Carries out `command`, at `now`, or says why not. Nothing is carried out once the
    /// relay ended at once.
    pub fn command(&mut self, command: Command, now: Instant) -> Result<(), Refused> {
        if self.aborted {
            return Err(Refused::Ended("both sides"));
        }
        self.tell_time(now);
        let done = self.carry_out(command, now);
        self.admit_all();
        done
    }

    fn carry_out(&mut self, command: Command, now: Instant) -> Result<(), Refused> {
        match command {
            Command::Shutdown { grace } => self.shutdown(grace, now),
            Command::Close {
                to,
                code,
                reason,
                grace,
            } => self.close(to, code, &reason, now, grace),
            Command::Break { from, rule } => return self.set_break(from, rule),
            Command::Decide { id, decision } => return self.decide(id, decision),
            Command::ForwardAll { from } => self.forward_all(from),
            Command::Inject {
                to,
                opcode,
                payload,
            } => return self.inject(to, opcode, &payload),
            Command::Abort => {
                self.commanded_abort = true;
                self.abort();
            }
            Command::Condition { to, conditions } => self.condition(to, conditions, now),
        }
        Ok(())
    }

    fn shutdown(&mut self, grace: Duration, now: Instant) {
        let unfinished = self.closing_unfinished();
        let mut closing = match self.closing.take() {
            Some(mut closing) => {
                // Already closing both sides for a violation: only the deadline is new. A
                // shutdown takes over from a close command, keeping what it did.
                if !matches!(closing.cause, Cause::Strict { .. }) {
                    closing.cause = Cause::Shutdown;
                }
                closing
            }
            None => Box::new(Closing::new(Cause::Shutdown)),
        };
        if !unfinished {
            // What was closed before is done: its deadline, passed or not, is not this one's.
            closing.restart();
        }
        closing.due_by(now, grace);
        self.closing = Some(closing);
        let payload = CloseFrame::encode(1001, "wstap is shutting down");
        for side in [Side::Server, Side::Client] {
            self.begin_close(side, 1001, &payload);
        }
        if grace.is_zero() {
            self.handle_timeout(now);
        }
    }

    fn close(&mut self, to: Side, code: u16, reason: &str, now: Instant, grace: Duration) {
        let unfinished = self.closing_unfinished();
        let closing = self
            .closing
            .get_or_insert_with(|| Box::new(Closing::new(Cause::Command { code })));
        if !unfinished {
            closing.restart();
        }
        closing.due_by(now, grace);
        self.begin_close(to, code, &CloseFrame::encode(code, reason));
    }

    /// Starts closing `to` with `payload`, unless it is being closed already.
    fn begin_close(&mut self, to: Side, code: u16, payload: &[u8]) {
        let websocket = self.lane_to(to).analyzer.is_some();
        let already = self.shut[to.index()] || self.close_went_to(to);
        let Some(closing) = self.closing.as_mut() else {
            return;
        };
        let progress = &mut closing.sides[to.index()];
        if *progress != Progress::Untouched {
            return;
        }
        *progress = if already {
            Progress::Done(Closed::AlreadyClosed)
        } else if websocket {
            Progress::Waiting(code, payload.to_vec())
        } else {
            Progress::Done(Closed::WithoutCloseFrame)
        };
        if !matches!(progress, Progress::Waiting(..)) {
            self.end_stream(to, None);
        }
        self.send_pending_close(to);
    }

    /// Sends the close frame `to` waits for, if its stream is between frames now.
    fn send_pending_close(&mut self, to: Side) {
        if !self.between_frames_to(to) {
            return;
        }
        // A close frame from the peer went to it meanwhile: it must get no second one.
        let already = self.close_went_to(to);
        let Some(closing) = self.closing.as_mut() else {
            return;
        };
        let progress = &mut closing.sides[to.index()];
        let Progress::Waiting(code, payload) = progress else {
            return;
        };
        let code = *code;
        let frame = (!already).then(|| close_frame(to, payload));
        *progress = match frame {
            Some(_) => Progress::Queued(code),
            None => Progress::Done(Closed::AlreadyClosed),
        };
        self.end_stream(to, frame);
    }

    /// Ends the stream to `to`, after `last` when given; nothing more is read for it.
    fn end_stream(&mut self, to: Side, last: Option<Vec<u8>>) {
        if std::mem::replace(&mut self.shut[to.index()], true) {
            return;
        }
        let queue = &mut self.queues[to.index()];
        if let Some(frame) = last {
            queue.push_back(Queued::Close(frame));
        }
        queue.push_back(Queued::Shutdown);
        let feeding = &mut self.lanes[to.other().index()];
        if feeding.reading == Reading::Open {
            feeding.reading = Reading::Stopped;
        }
    }

    /// `--strict`: `from` sent `offence`; what came before it is queued (or held, and then
    /// lost with the session), it and `withheld` bytes after it are not. Closes both sides, each only where its stream is between
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
        let to_sender = self.between_frames_to(from);
        let mut closing = Box::new(Closing::new(Cause::Strict {
            from: from.sends(),
            offence,
            withheld,
            code,
        }));
        // A shutdown's deadline set before stays; else the relay's own grace starts.
        match self.closing.take() {
            Some(before) => {
                closing.deadline = before.deadline;
                closing.grace = before.grace;
                closing.waited_out = before.waited_out;
            }
            None => closing.arm = self.strict_grace,
        }
        for side in [Side::Server, Side::Client] {
            let allowed = if side == from { to_sender } else { to_receiver };
            let (progress, frame) = if self.shut[side.index()] || self.close_went_to(side) {
                (Progress::Done(Closed::AlreadyClosed), None)
            } else if allowed {
                (Progress::Queued(code), Some(close_frame(side, &payload)))
            } else {
                (Progress::Done(Closed::WithoutCloseFrame), None)
            };
            closing.sides[side.index()] = progress;
            self.end_stream(side, frame);
        }
        self.closing = Some(closing);
    }

    /// Whether a side the relay closes is not closed yet: its close frame waits or is
    /// unwritten, or something else to it is.
    fn closing_unfinished(&self) -> bool {
        let Some(closing) = self.closing.as_ref() else {
            return false;
        };
        [Side::Client, Side::Server].into_iter().any(|side| {
            let progress = &closing.sides[side.index()];
            progress.is_open() || (*progress != Progress::Untouched && self.writing_to(side))
        })
    }

    /// When [`Relay::handle_timeout`] wants to be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.aborted {
            return None;
        }
        let closing = self
            .closing
            .as_ref()
            .filter(|_| self.closing_unfinished())
            .and_then(|closing| closing.deadline);
        [closing, self.held_deadline(), self.lines_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time has come to `now`: see [`Command::Shutdown`] for what happens past a deadline,
    /// and [`BreakRule::timeout`]. Call it also when told of anything else (it is cheap),
    /// and after a feed that made notes: a close that began with bytes starts its grace
    /// then, and a message held its timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.aborted {
            self.time_out_held(now);
            self.cut_due(now);
        }
        if let Some(closing) = self.closing.as_mut() {
            if let Some(grace) = closing.arm.take() {
                closing.due_by(now, grace);
            }
        }
        if self.aborted || !self.closing_unfinished() {
            return;
        }
        let Some(closing) = self.closing.as_mut() else {
            return;
        };
        if closing.deadline.is_none_or(|deadline| deadline > now) {
            return;
        }
        if closing.waited_out {
            self.abort();
            return;
        }
        closing.waited_out = true;
        closing.deadline = Some(now + closing.grace);
        let mut cut = Vec::new();
        for side in [Side::Server, Side::Client] {
            let progress = &mut closing.sides[side.index()];
            if let Progress::Waiting(..) = progress {
                *progress = Progress::Done(Closed::WithoutCloseFrame);
                cut.push(side);
            }
        }
        for side in cut {
            self.end_stream(side, None);
        }
    }

    /// The next thing to write to `to`, if any. Report it written with
    /// [`Relay::transmitted`] before polling again.
    pub fn poll_transmit(&mut self, to: Side) -> Option<Transmit> {
        if self.in_flight[to.index()].is_some() {
            return None;
        }
        // A range of the chunk last fed that was queued before the stream had a line
        // goes first, as queued: the line takes what follows it from the next chunk on.
        let queued = match self.shaped(to) && !self.forward_queued(to) {
            true => {
                self.admit(to, None);
                self.take_due(to)?
            }
            false => self.queues[to.index()].pop_front()?,
        };
        let (in_flight, transmit) = match queued {
            Queued::Forward(range) => (
                InFlight::Forward(range.len() as u64),
                Transmit::Forward(range),
            ),
            Queued::Close(frame) => (InFlight::Close, Transmit::Built(frame)),
            Queued::Inject(bytes) => (InFlight::Built, Transmit::Built(bytes)),
            Queued::Released(bytes) => (
                InFlight::Released(bytes.len() as u64),
                Transmit::Built(bytes),
            ),
            Queued::Shutdown => (InFlight::Shutdown, Transmit::Shutdown),
        };
        self.in_flight[to.index()] = Some(in_flight);
        Some(transmit)
    }

    /// Whether something waits to be written to `to`.
    pub fn has_transmit(&self, to: Side) -> bool {
        match self.shaped(to) && !self.forward_queued(to) {
            true => self.line_due(to),
            false => !self.queues[to.index()].is_empty(),
        }
    }

    /// Whether a range of the chunk last fed waits in the queue to `to`.
    fn forward_queued(&self, to: Side) -> bool {
        self.queues[to.index()]
            .iter()
            .any(|queued| matches!(queued, Queued::Forward(_)))
    }

    /// The transmit last polled for `to` has been written.
    pub fn transmitted(&mut self, to: Side) {
        match self.in_flight[to.index()].take() {
            Some(InFlight::Forward(len) | InFlight::Released(len)) => {
                self.lanes[to.other().index()].forwarded += len
            }
            Some(InFlight::Close) => {
                if let Some(closing) = self.closing.as_mut() {
                    let side = &mut closing.sides[to.index()];
                    if let Progress::Queued(code) = *side {
                        *side = Progress::Done(Closed::CloseFrame(code));
                    }
                }
            }
            Some(InFlight::Built | InFlight::Shutdown) | None => {}
        }
        self.line_written();
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

    /// Whether nothing more will be read from either side, nor released.
    pub fn is_finished(&self) -> bool {
        [Side::Client, Side::Server]
            .into_iter()
            .all(|from| !self.lanes[from.index()].is_reading() && !self.releasable(from))
    }

    /// Whether something held from `from` could still be given to the other side.
    fn releasable(&self, from: Side) -> bool {
        self.held_lane(from)
            .is_some_and(|h| !h.units.is_empty() && !self.shut[from.other().index()])
    }

    /// Whether the relay ended at once, dropping what was queued to write: a read or a
    /// write failed, or a side it was closing was not closed by the deadline. A write in
    /// progress should give up.
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// Whether the relay is over: finished and every transmit written, or ended at once
    /// by a failure.
    pub fn is_done(&self) -> bool {
        self.aborted
            || (self.is_finished()
                && self.queues.iter().all(VecDeque::is_empty)
                && self.in_flight.iter().all(Option::is_none)
                && !self.line_holds(Side::Client)
                && !self.line_holds(Side::Server))
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
        let closes = c2s.close_delivered() && s2c.close_delivered();
        // A WebSocket ended cleanly when each side's close frame was delivered and no frame
        // was cut,
        // however its connections went afterwards (a peer may reset its connection once
        // the close handshake is done, or skip TLS's close_notify). Another stream ended
        // cleanly when both senders ended it.
        let clean = self.closing.is_none()
            && !self.commanded_abort
            && self.overflowed.is_none()
            && if websocket {
                closes && cut_off.is_empty()
            } else {
                both_ended
            };
        let reason = match (self.commanded_abort, self.overflowed, self.closing.as_ref()) {
            (true, ..) => EndReason::Aborted,
            (_, Some(from), _) => EndReason::Overflow { from },
            (_, _, None) => EndReason::Peers {
                c2s: c2s.end(),
                s2c: s2c.end(),
            },
            (_, _, Some(closing)) => match &closing.cause {
                Cause::Shutdown => EndReason::Shutdown {
                    closes: closing.closes(),
                },
                Cause::Command { code } => EndReason::Commanded {
                    code: *code,
                    closes: closing.closes(),
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
                    closes: closing.closes(),
                },
            },
        };
        RelayEnd {
            reason,
            clean,
            first_close: first_close(c2s, s2c),
            frames: [c2s.frames(), s2c.frames()],
            bytes: [c2s.forwarded, s2c.forwarded],
            held: [Side::Client, Side::Server].map(|from| self.held_len(from) as u64),
            lost: self.lost(),
            dropped: [c2s.dropped, s2c.dropped],
            cut_off,
        }
    }
}

/// The headers of the frames in `bytes`, which holds whole frames as read (a frame cut
/// short ends the walk).
fn frame_headers(mut bytes: &[u8]) -> impl Iterator<Item = FrameHeader> + '_ {
    std::iter::from_fn(move || {
        let header = FrameHeader::parse(bytes).ok()?;
        bytes = usize::try_from(header.wire_len())
            .ok()
            .and_then(|len| bytes.get(len..))
            .unwrap_or_default();
        Some(header)
    })
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
