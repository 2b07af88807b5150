//! Interception: breakpoints that hold messages for a decision, the decisions (forward,
//! drop, replace), and frames of wstap's own injected between messages. Made on the
//! first [`Command::Break`] or [`Command::Inject`] and boxed, so a session nobody
//! intercepts carries one pointer for it.
//!
//! A direction with a breakpoint keeps each message until it is whole (the test judges
//! whole messages: a filter on the payload needs all of it), then:
//! - a message the test passes is *held*: it waits, exactly as read, for a
//!   [`Decision`], and the direction's later messages queue behind it, order kept;
//! - any other message goes on as read when nothing is held before it, else it queues.
//!
//! Pings and pongs pass ahead of what is held unless the rule judges control frames too
//! (`control`); a close frame keeps its place behind the messages before it. A control
//! frame between the fragments of a message being judged keeps its place in it, so a
//! message that goes on goes byte for byte; only if the message is held (or compressed
//! again) do its pings go first and its close after it. What went out always ends between
//! messages, so a frame of wstap's own, a ping passing ahead, or a message replacing a
//! held one can be written at once. A message that grows past the
//! rule's budget before anything is held passes unjudged, as read ([`Note::TooLarge`]);
//! once something is held, reading stops at the budget (backpressure, not memory).
//!
//! [`Command::Break`]: super::Command::Break
//! [`Command::Inject`]: super::Command::Inject

mod route;

use super::{Queued, Relay};
use crate::Side;
use route::Router;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wstap_wire::mask::random_key;
use wstap_wire::{Deflater, Direction, FrameBuilder, FrameEnd, MessageRecord, Opcode};

/// A whole message offered to a breakpoint's test.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Its record, as the capture has it.
    pub message: &'a MessageRecord,
    /// The first header byte of its first frame (FIN, RSV and opcode bits).
    pub first_byte: u8,
    /// Whether its first frame was masked.
    pub masked: bool,
}

/// What a data message's first frame header says, before its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstHeader {
    /// Which way it goes.
    pub direction: Direction,
    /// The first header byte (FIN, RSV and opcode bits).
    pub first_byte: u8,
    /// Whether the frame is masked.
    pub masked: bool,
    /// Whether the message is compressed (RSV1 under permessage-deflate).
    pub compressed: bool,
    /// The message's length, when the header says it: one frame, not compressed.
    pub len: Option<u64>,
}

type WholeTest = dyn Fn(&Candidate<'_>) -> bool + Send + Sync;
type HeaderTest = dyn Fn(&FirstHeader) -> Option<bool> + Send + Sync;

/// A test of a whole message (the filter's in-memory evaluator, for one), and what can
/// be said of a data message from its first header: a message the header test rules out
/// goes on as it comes, without waiting to be whole.
#[derive(Clone)]
pub struct MessageTest {
    whole: Arc<WholeTest>,
    header: Option<Arc<HeaderTest>>,
}

impl MessageTest {
    /// A test that says yes to the messages `test` does.
    pub fn new(test: impl Fn(&Candidate<'_>) -> bool + Send + Sync + 'static) -> MessageTest {
        MessageTest {
            whole: Arc::new(test),
            header: None,
        }
    }

    /// The same test, with `header` saying from a data message's first header whether it
    /// passes (`Some(true)`), cannot (`Some(false)`), or its payload decides (`None`).
    pub fn deciding_at_the_header(
        mut self,
        header: impl Fn(&FirstHeader) -> Option<bool> + Send + Sync + 'static,
    ) -> MessageTest {
        self.header = Some(Arc::new(header));
        self
    }

    fn matches(&self, candidate: &Candidate<'_>) -> bool {
        (self.whole)(candidate)
    }

    /// Whether the header rules the message out.
    fn ruled_out(&self, header: &FirstHeader) -> bool {
        self.header
            .as_ref()
            .is_some_and(|test| test(header) == Some(false))
    }
}

impl fmt::Debug for MessageTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MessageTest")
    }
}

/// Two tests are the same test only when they are one.
impl PartialEq for MessageTest {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.whole, &other.whole)
    }
}

impl Eq for MessageTest {}

/// Which messages of a direction are held, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakRule {
    /// Holds the messages it says yes to.
    pub test: MessageTest,
    /// Whether pings, pongs and closes are judged (and held) too; else pings and pongs
    /// pass ahead of what is held, and a close keeps its place.
    pub control: bool,
    /// While something is held and this many bytes are kept, the direction is not read;
    /// a message that grows to it before anything is held passes unjudged.
    pub budget: usize,
    /// A held message waits this long for a decision, then goes on as read
    /// ([`Note::TimedOut`]); `None`: as long as the session lives.
    pub timeout: Option<Duration>,
}

/// A held message, unique within its relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeldId(pub u64);

/// What becomes of a held message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It goes on exactly as read.
    Forward,
    /// It never goes out.
    Drop,
    /// This payload goes in its place, with its opcode, uncompressed (RSV bits clear);
    /// split as the original was when it had several frames of the same total length,
    /// else one frame; masked with a fresh key toward the server.
    Replace(Vec<u8>),
}

/// What interception tells the engine, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A breakpoint holds this message; nothing of it went out.
    Held {
        /// How to name it in a [`Decision`].
        id: HeldId,
        /// Who sent it.
        from: Side,
        /// Its record (the same as among the relay's records).
        message: MessageRecord,
        /// The index, in its direction, of its last frame.
        frame: u64,
    },
    /// A message grew to the budget before it was whole: it passes as read, unjudged.
    TooLarge {
        /// Who sends it.
        from: Side,
        /// What had been kept of it.
        kept: u64,
    },
    /// A compressed message was dropped or replaced on a direction whose sender keeps its
    /// compression context: from then on, each compressed message of that direction is
    /// inflated and compressed again with a context wstap keeps for the receiver.
    Reencoding {
        /// Whose messages.
        from: Side,
        /// The index, in its direction, of the last frame of the message that began it.
        frame: u64,
    },
    /// wstap built frames of its own for a stream: exactly these bytes (masked toward the
    /// server, compressed where the message is) go out where the message they stand for
    /// goes. Made for each edit, injection and message compressed again: with the bytes
    /// forwarded as read, what each leg carried.
    Sent {
        /// Who gets them.
        to: Side,
        /// Why.
        why: Built,
        /// The frames, as written.
        wire: Vec<u8>,
    },
    /// A held message waited its rule's timeout and went on as read.
    TimedOut {
        /// The message.
        id: HeldId,
        /// Who sent it.
        from: Side,
    },
    /// The network conditions on the stream to `to` cut the connection.
    CutOff {
        /// Whose stream's conditions.
        to: Side,
        /// How.
        cut: super::Cut,
    },
}

/// What frames wstap built stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Built {
    /// An edit of this held message.
    Edit(HeldId),
    /// A message of wstap's own.
    Inject,
    /// The message read that ended with this frame, compressed again (`reencode`).
    Recompressed(u64),
}

/// Why a command was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// No message by that id is held (decided already, or never held).
    #[error("that message is not held (any more)")]
    NotHeld,
    /// The relay ended, or the stream to that side did.
    #[error("the stream to the {0} has ended")]
    Ended(&'static str),
    /// The stream is not a WebSocket: it has no messages.
    #[error("the connection is not a WebSocket")]
    NotWebSocket,
    /// The sender compresses keeping its context: the receiver needs every compressed
    /// message to inflate the next.
    #[error("the {0} compresses with context takeover: dropping or editing a compressed message would break every later one")]
    ContextTakeover(&'static str),
    /// An extension wstap does not know was negotiated: it cannot frame for it.
    #[error("an extension wstap does not know (RSV bits {0:#04x}) was negotiated: wstap cannot build frames for it")]
    ForeignExtension(u8),
    /// A close frame of wstap's own is [`super::Command::Close`].
    #[error("to send a close frame, close the session")]
    CloseOpcode,
    /// A close frame went to that side already: no message may follow it.
    #[error("a close frame already went to the {0}")]
    AfterClose(&'static str),
}

/// A whole message kept, as read (or, replaced, as built).
#[derive(Debug)]
pub(super) struct Unit {
    pub bytes: Vec<u8>,
    pub fate: Fate,
    /// Whether `bytes` were built by wstap (a replacement), not read.
    pub built: bool,
    pub opcode: Opcode,
    pub compressed: bool,
    /// The data length, when all of it was captured (what an edit of the same length
    /// keeps the fragmentation of).
    pub data_len: Option<u64>,
    /// All of its data, inflated, when it was compressed by a sender that keeps its
    /// context and may have to be compressed again.
    pub whole: Option<Vec<u8>>,
    /// It comes after a compressed message that was dropped or replaced: it goes out
    /// compressed again, with the context wstap keeps for the receiver.
    pub rebuild: bool,
    /// The index of its last frame.
    pub last_frame: u64,
}

/// Whether a kept message waits for a decision or only for those before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    Held {
        id: HeldId,
        timeout: Option<Duration>,
        /// Set the first time the relay is told the time after it was held.
        deadline: Option<Instant>,
    },
    Pass,
}

/// One direction's interception.
#[derive(Debug, Default)]
pub(super) struct HeldLane {
    pub rule: Option<BreakRule>,
    /// The last rule's budget (it still bounds what was held under it).
    pub budget: usize,
    /// Whole messages kept, in order; the first, when any, is held.
    pub units: VecDeque<Unit>,
    /// Memory `units` take, their whole data included: what the budget bounds.
    pub units_len: usize,
    /// Bytes read that `units` keep (not those built in place of what was read): what
    /// was read and not handed on.
    pub units_read: usize,
    /// The complete frames of the data message being read.
    pub open: Vec<u8>,
    /// The frame being read, as far as it came.
    pub partial: Vec<u8>,
    /// The first header byte and masking of the data message being read.
    pub first: Option<(u8, bool)>,
    /// Control frames read between the fragments of that message, kept in their place
    /// (where and how long, in its bytes): if it goes on, all goes as read.
    pub embedded: Vec<(usize, usize)>,
    /// The message being read goes on as read, unjudged, up to the next message boundary
    /// (too large to keep, or begun before the rule).
    pub passing: bool,
    /// The sender ended its stream while something was held: the receiver hears of it
    /// once that goes on.
    pub eof_kept: bool,
    /// From a compressed message dropped or replaced on, the receiver's compression
    /// context is wstap's: each compressed message is compressed again with it.
    pub reencode: Option<Box<Deflater>>,
}

impl HeldLane {
    /// Whether this direction goes through [`route`] rather than straight on.
    pub fn routes(&self) -> bool {
        self.rule.is_some()
            || self.reencode.is_some()
            || self.passing
            || !self.units.is_empty()
            || !self.open.is_empty()
            || !self.partial.is_empty()
    }

    /// Whether what went out of this direction ends between messages, with more kept or
    /// judged behind it.
    pub fn keeps(&self) -> bool {
        self.routes() && !self.passing
    }

    /// Memory kept.
    pub fn kept(&self) -> usize {
        self.units_len + self.open.len() + self.partial.len()
    }

    /// Bytes read and kept, not handed on yet.
    pub fn kept_read(&self) -> usize {
        self.units_read + self.open.len() + self.partial.len()
    }

    /// Whether reading waits for a decision: something is held and the budget is full.
    pub fn full(&self) -> bool {
        !self.units.is_empty() && self.kept() >= self.budget
    }

    fn held_ids(&self) -> impl Iterator<Item = HeldId> + '_ {
        self.units.iter().filter_map(|unit| match unit.fate {
            Fate::Held { id, .. } => Some(id),
            Fate::Pass => None,
        })
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct Interception {
    /// By direction (client to server first).
    pub lanes: [HeldLane; 2],
    /// By destination side: frames to inject at the stream's next message boundary.
    pub injects: [VecDeque<Vec<u8>>; 2],
    /// Where frames ended in the chunk being fed, while routing or an injection waits.
    pub ends: Vec<FrameEnd>,
    pub notes: Vec<Note>,
    pub next_id: u64,
}

/// A side's name, for refusals.
fn name(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Server => "server",
    }
}

impl Relay {
    /// The interception of what `from` sends, if any.
    pub(super) fn held_lane(&self, from: Side) -> Option<&HeldLane> {
        self.intercept.as_ref().map(|i| &i.lanes[from.index()])
    }

    /// Whether what `from` sends is kept or judged before it goes on: what went out of it
    /// ends between messages.
    pub(super) fn keeping(&self, from: Side) -> bool {
        self.held_lane(from).is_some_and(HeldLane::keeps)
    }

    /// How many bytes from `from` are kept.
    pub(super) fn held_len(&self, from: Side) -> usize {
        self.held_lane(from).map_or(0, HeldLane::kept_read)
    }

    /// Whether the stream to `to` could take a frame of wstap's own now without cutting
    /// one of the sender's: what was handed on ends between frames.
    pub(super) fn between_frames_to(&self, to: Side) -> bool {
        self.keeping(to.other()) || self.lane_to(to).at_frame_boundary()
    }

    /// Whether the stream to `to` could take a message of wstap's own now: what was handed
    /// on ends between messages.
    pub(super) fn between_messages_to(&self, to: Side) -> bool {
        self.keeping(to.other()) || self.lane_to(to).at_message_boundary()
    }

    /// Whether what `from` sends goes through the router.
    pub(super) fn routing(&self, from: Side) -> bool {
        self.held_lane(from).is_some_and(HeldLane::routes)
    }

    /// Whether the next chunk from `from` must be read for its frame ends: interception
    /// routes it, an injection waits for a boundary, or the line of network conditions
    /// times its frames.
    pub(super) fn steering(&self, from: Side) -> bool {
        self.shaped(from.other())
            || self.intercept.as_ref().is_some_and(|i| {
                i.lanes[from.index()].routes() || !i.injects[from.other().index()].is_empty()
            })
    }

    /// Takes what interception has to tell since the last call.
    pub fn drain_notes(&mut self) -> Vec<Note> {
        let mut notes = self
            .intercept
            .as_mut()
            .map(|i| std::mem::take(&mut i.notes))
            .unwrap_or_default();
        notes.extend(self.drain_line_notes());
        notes
    }

    /// Whether anything waits in [`Relay::drain_notes`].
    pub fn has_notes(&self) -> bool {
        self.intercept.as_ref().is_some_and(|i| !i.notes.is_empty()) || self.has_line_notes()
    }

    /// The messages held now, by who sent them.
    pub fn held(&self) -> Vec<(Side, HeldId)> {
        [Side::Client, Side::Server]
            .into_iter()
            .flat_map(|from| {
                self.held_lane(from)
                    .into_iter()
                    .flat_map(HeldLane::held_ids)
                    .map(move |id| (from, id))
            })
            .collect()
    }

    pub(super) fn set_break(&mut self, from: Side, rule: Option<BreakRule>) -> Result<(), Refused> {
        if self.lanes[from.index()].analyzer.is_none() {
            return Err(Refused::NotWebSocket);
        }
        let between = self.lanes[from.index()].at_message_boundary();
        let lane = &mut self.intercept.get_or_insert_with(Box::default).lanes[from.index()];
        if let Some(rule) = &rule {
            // What was read of a message before the rule went on already: the rest follows
            // it, and the rule begins with the next message.
            if !lane.routes() && !between {
                lane.passing = true;
            }
            lane.budget = rule.budget;
        }
        lane.rule = rule;
        // A held message of a sender that keeps its context may be dropped or replaced:
        // what follows it must then be compressed again, from all its data.
        let relay_lane = &mut self.lanes[from.index()];
        if relay_lane.keeps_context && lane.rule.is_some() {
            if let Some(analyzer) = relay_lane.analyzer.as_mut() {
                analyzer.keep_whole();
            }
        }
        Ok(())
    }

    /// Routes `chunk[..clean]` from `from` through interception; `first_record` is where
    /// the chunk's records begin.
    pub(super) fn route(&mut self, from: Side, chunk: &[u8], clean: usize, first_record: usize) {
        let to = from.other();
        let Some(intercept) = self.intercept.as_deref_mut() else {
            return;
        };
        let Interception {
            lanes,
            injects,
            ends,
            notes,
            next_id,
        } = intercept;
        let lane = &mut self.lanes[from.index()];
        let deflate = lane.deflate.is_some();
        let whole_so_far = lane.analyzer.as_ref().map_or(0, |a| a.whole_so_far());
        // The whole data of the compressed messages this chunk ended, when kept.
        let mut wholes: VecDeque<Vec<u8>> = match lane.analyzer.as_mut() {
            Some(analyzer) => std::iter::from_fn(|| analyzer.take_whole()).collect(),
            None => VecDeque::new(),
        };
        let routed = Router {
            from,
            lane: &mut lanes[from.index()],
            out: &mut self.queues[to.index()],
            injects: &mut injects[to.index()],
            notes,
            next_id,
            chunk,
            wholes: &mut wholes,
            deflate,
            whole_so_far,
        }
        .route(&self.events[first_record..], ends, clean);
        if routed.rebuilt > 0 {
            lane.note_dropped(routed.rebuilt, false);
        }
        if routed.skip_whole {
            if let Some(analyzer) = lane.analyzer.as_mut() {
                analyzer.skip_whole();
            }
        }
        if routed.overflow {
            self.overflowed = Some(from.sends());
            self.abort();
        }
    }

    /// A direction that nothing routes any more needs no whole messages: the analyzer
    /// stops keeping them (and what it kept goes).
    pub(super) fn stop_keeping_whole(&mut self, from: Side) {
        if let Some(analyzer) = self.lanes[from.index()].analyzer.as_mut() {
            analyzer.stop_keeping_whole();
        }
    }

    /// Finds the held message `id`: who sent it and where it is among what is kept.
    fn find_held(&self, id: HeldId) -> Option<(Side, usize)> {
        [Side::Client, Side::Server].into_iter().find_map(|from| {
            let lane = self.held_lane(from)?;
            let at = lane
                .units
                .iter()
                .position(|u| matches!(u.fate, Fate::Held { id: held, .. } if held == id))?;
            Some((from, at))
        })
    }

    pub(super) fn decide(&mut self, id: HeldId, decision: Decision) -> Result<(), Refused> {
        let (from, at) = self.find_held(id).ok_or(Refused::NotHeld)?;
        let to = from.other();
        if self.shut[to.index()] {
            return Err(Refused::Ended(name(to)));
        }
        let lane = &self.lanes[from.index()];
        let (keeps_context, foreign) = (lane.keeps_context, lane.foreign_extension_bits);
        let deflate = lane.deflate;
        let Some(intercept) = self.intercept.as_mut() else {
            return Err(Refused::NotHeld);
        };
        let held = &mut intercept.lanes[from.index()];
        let unit = &held.units[at];
        let last_frame = unit.last_frame;
        // Taking a compressed message out of a stream whose sender keeps its context
        // leaves the receiver without what the later ones refer to: they are compressed
        // again, from their whole data.
        let desync = decision != Decision::Forward && unit.compressed && keeps_context;
        let params = match (desync, deflate) {
            (false, _) => None,
            (true, Some(params))
                if held
                    .units
                    .iter()
                    .skip(at + 1)
                    .all(|u| !u.compressed || u.whole.is_some() || u.built) =>
            {
                Some(params)
            }
            (true, _) => return Err(Refused::ContextTakeover(name(from))),
        };
        if let (Decision::Replace(_), true) = (&decision, foreign != 0) {
            return Err(Refused::ForeignExtension(foreign));
        }
        if let Some(params) = params {
            if held.reencode.is_none() {
                held.reencode = Some(Box::new(Deflater::new(params, from.sends())));
                intercept.notes.push(Note::Reencoding {
                    from,
                    frame: last_frame,
                });
            }
            for unit in held.units.iter_mut().skip(at + 1) {
                unit.rebuild |= unit.compressed && !unit.built;
            }
        }
        match decision {
            Decision::Forward => held.units[at].fate = Fate::Pass,
            Decision::Drop => {
                let Some(unit) = held.units.remove(at) else {
                    return Err(Refused::NotHeld);
                };
                held.units_len -= unit.size();
                held.units_read -= unit.read_len();
                let close = unit.opcode == Opcode::Close;
                self.lanes[from.index()].note_dropped(unit.bytes.len() as u64, close);
            }
            Decision::Replace(payload) => {
                let unit = &mut held.units[at];
                let size = unit.size();
                held.units_read -= unit.read_len();
                let built = rebuild(to, unit, &payload);
                intercept.notes.push(Note::Sent {
                    to,
                    why: Built::Edit(id),
                    wire: built.clone(),
                });
                let read = std::mem::replace(&mut unit.bytes, built);
                unit.whole = None;
                unit.rebuild = false;
                held.units_len = held.units_len - size + unit.size();
                unit.built = true;
                unit.fate = Fate::Pass;
                // A close frame still goes out: edited, it is not taken for dropped.
                self.lanes[from.index()].note_dropped(read.len() as u64, false);
            }
        }
        self.flush(from);
        Ok(())
    }

    /// Every message held from `from` goes on as read.
    pub(super) fn forward_all(&mut self, from: Side) {
        let Some(intercept) = self.intercept.as_mut() else {
            return;
        };
        for unit in &mut intercept.lanes[from.index()].units {
            unit.fate = Fate::Pass;
        }
        self.flush(from);
    }

    /// Hands on what is kept from `from` up to the first message held; past the last, the
    /// end of stream it kept, if any.
    pub(super) fn flush(&mut self, from: Side) {
        let to = from.other();
        if self.shut[to.index()] {
            return;
        }
        let Some(intercept) = self.intercept.as_mut() else {
            return;
        };
        let lane = &mut intercept.lanes[from.index()];
        let queue = &mut self.queues[to.index()];
        while lane.units.front().is_some_and(|u| u.fate == Fate::Pass) {
            let Some(mut unit) = lane.units.pop_front() else {
                break;
            };
            lane.units_len -= unit.size();
            lane.units_read -= unit.read_len();
            if let (true, Some(deflater), Some(whole)) =
                (unit.rebuild, lane.reencode.as_mut(), unit.whole.as_ref())
            {
                let read = unit.bytes.len() as u64;
                unit.bytes = recompress(deflater, to, unit.opcode, whole);
                unit.built = true;
                self.lanes[from.index()].note_dropped(read, false);
                intercept.notes.push(Note::Sent {
                    to,
                    why: Built::Recompressed(unit.last_frame),
                    wire: unit.bytes.clone(),
                });
            }
            queue.push_back(match unit.built {
                true => Queued::Inject(unit.bytes),
                false => Queued::Released(unit.bytes),
            });
        }
        let eof = lane.units.is_empty() && std::mem::take(&mut lane.eof_kept);
        if eof {
            self.hand_on_open(from);
            self.end_stream(to, None);
        }
        self.send_pending_close(to);
    }

    /// Hands on the message being read from `from` as far as it came, unjudged: its
    /// stream ended, or it is too large to keep.
    pub(super) fn hand_on_open(&mut self, from: Side) {
        let to = from.other();
        let Some(intercept) = self.intercept.as_mut() else {
            return;
        };
        let lane = &mut intercept.lanes[from.index()];
        let mut bytes = std::mem::take(&mut lane.open);
        bytes.append(&mut lane.partial);
        lane.first = None;
        if !bytes.is_empty() && !self.shut[to.index()] {
            self.queues[to.index()].push_back(Queued::Released(bytes));
        }
    }

    /// `from` ended its stream: whether the end must wait behind what is held.
    pub(super) fn eof_waits(&mut self, from: Side) -> bool {
        let Some(intercept) = self.intercept.as_mut() else {
            return false;
        };
        let lane = &mut intercept.lanes[from.index()];
        if !lane.units.is_empty() {
            lane.eof_kept = true;
            return true;
        }
        lane.passing = false;
        // A message cut short is never judged: what was kept of it goes on.
        self.hand_on_open(from);
        false
    }

    /// The earliest deadline of a held message.
    pub(super) fn held_deadline(&self) -> Option<Instant> {
        let intercept = self.intercept.as_ref()?;
        intercept
            .lanes
            .iter()
            .flat_map(|lane| &lane.units)
            .filter_map(|unit| match unit.fate {
                Fate::Held { deadline, .. } => deadline,
                Fate::Pass => None,
            })
            .min()
    }

    /// Time has come to `now`: held messages get their deadline, and those past it go on.
    pub(super) fn time_out_held(&mut self, now: Instant) {
        let Some(intercept) = self.intercept.as_mut() else {
            return;
        };
        let mut expired = [false; 2];
        for (lane, from) in intercept.lanes.iter_mut().zip([Side::Client, Side::Server]) {
            for unit in &mut lane.units {
                let Fate::Held {
                    id,
                    timeout: Some(timeout),
                    deadline,
                } = &mut unit.fate
                else {
                    continue;
                };
                match *deadline {
                    None => *deadline = Some(now + *timeout),
                    Some(at) if at <= now => {
                        intercept.notes.push(Note::TimedOut { id: *id, from });
                        unit.fate = Fate::Pass;
                        expired[from.index()] = true;
                    }
                    Some(_) => {}
                }
            }
        }
        for from in [Side::Client, Side::Server] {
            if expired[from.index()] {
                self.flush(from);
            }
        }
    }

    /// The ids of the messages still held: at the end, lost with the session.
    pub(super) fn lost(&self) -> Vec<(Side, HeldId)> {
        self.held()
    }

    pub(super) fn inject(
        &mut self,
        to: Side,
        opcode: Opcode,
        payload: &[u8],
    ) -> Result<(), Refused> {
        let lane = self.lane_to(to);
        if lane.analyzer.is_none() {
            return Err(Refused::NotWebSocket);
        }
        if lane.foreign_extension_bits != 0 {
            return Err(Refused::ForeignExtension(lane.foreign_extension_bits));
        }
        if opcode == Opcode::Close {
            return Err(Refused::CloseOpcode);
        }
        if self.shut[to.index()] || self.aborted {
            return Err(Refused::Ended(name(to)));
        }
        if self.close_went_to(to) {
            return Err(Refused::AfterClose(name(to)));
        }
        let frame = build(to, FrameBuilder::new(opcode), payload);
        let now = self.between_messages_to(to);
        let intercept = self.intercept.get_or_insert_with(Box::default);
        intercept.notes.push(Note::Sent {
            to,
            why: Built::Inject,
            wire: frame.clone(),
        });
        if now && intercept.injects[to.index()].is_empty() {
            self.queues[to.index()].push_back(Queued::Inject(frame));
        } else {
            intercept.injects[to.index()].push_back(frame);
        }
        Ok(())
    }

    /// Hands on `chunk[..clean]` from `from`, which nothing keeps, stopping at its message
    /// boundaries (the start, when `between_before`, and where the analyzer said a message
    /// ended) to inject what waits for the stream to `from.other()`.
    pub(super) fn steer(&mut self, from: Side, clean: usize, between_before: bool) {
        let to = from.other();
        let queue = &mut self.queues[to.index()];
        let mut handed = 0;
        if let Some(intercept) = self.intercept.as_mut() {
            let boundaries = between_before.then_some(0).into_iter().chain(
                intercept
                    .ends
                    .iter()
                    .filter(|end| !end.message_open && end.offset <= clean)
                    .map(|end| end.offset),
            );
            let injects = &mut intercept.injects[to.index()];
            for boundary in boundaries {
                if injects.is_empty() {
                    break;
                }
                if boundary > handed {
                    queue.push_back(Queued::Forward(handed..boundary));
                    handed = boundary;
                }
                queue.extend(injects.drain(..).map(Queued::Inject));
            }
        }
        if clean > handed {
            queue.push_back(Queued::Forward(handed..clean));
        }
    }
}

impl Unit {
    /// The memory it takes: its bytes, and its whole data when kept.
    pub fn size(&self) -> usize {
        self.bytes.len() + self.whole.as_ref().map_or(0, Vec::len)
    }

    /// The bytes of it that were read (none, once built in place of what was read).
    pub fn read_len(&self) -> usize {
        match self.built {
            true => 0,
            false => self.bytes.len(),
        }
    }
}

/// `whole`, a message's data, compressed again with the context wstap keeps for `to`, as
/// one frame of `opcode` with RSV1 set (uncompressed, RSV1 clear, should compressing
/// fail, which leaves the receiver's context as it was).
pub(super) fn recompress(
    deflater: &mut Deflater,
    to: Side,
    opcode: Opcode,
    whole: &[u8],
) -> Vec<u8> {
    let mut payload = Vec::with_capacity(whole.len() / 2 + 16);
    match deflater.compress(whole, &mut payload) {
        Ok(()) => build(to, FrameBuilder::new(opcode).rsv1(true), &payload),
        Err(_) => build(to, FrameBuilder::new(opcode), whole),
    }
}

/// A frame for `to` from `builder`: masked with a fresh key toward the server, as a client
/// sends it; unmasked toward the client, as a server sends it.
fn build(to: Side, builder: FrameBuilder, payload: &[u8]) -> Vec<u8> {
    match to {
        Side::Server => builder.mask(random_key()).encode(payload),
        Side::Client => builder.encode(payload),
    }
}

/// The frames that carry `payload` in place of `unit` to `to`: its opcode, uncompressed;
/// its fragmentation when it had several frames and the data is as long as it was (a text
/// fragment ends only where a character does), else one frame.
fn rebuild(to: Side, unit: &Unit, payload: &[u8]) -> Vec<u8> {
    let sizes = match unit.data_len {
        Some(len) if !unit.compressed && len == payload.len() as u64 => payload_sizes(&unit.bytes),
        _ => Vec::new(),
    };
    if sizes.len() < 2 {
        return build(to, FrameBuilder::new(unit.opcode), payload);
    }
    let text = unit.opcode == Opcode::Text;
    let mut out = Vec::with_capacity(payload.len() + 14 * sizes.len());
    let mut start = 0;
    for (nth, size) in sizes.iter().enumerate() {
        let last = nth + 1 == sizes.len();
        let mut end = if last {
            payload.len()
        } else {
            (start + *size as usize).min(payload.len())
        };
        while text && !last && end > start && !ends_a_character(payload, end) {
            end -= 1;
        }
        let opcode = if nth == 0 {
            unit.opcode
        } else {
            Opcode::Continuation
        };
        out.extend(build(
            to,
            FrameBuilder::new(opcode).fin(last),
            &payload[start..end],
        ));
        start = end;
    }
    out
}

/// The payload lengths of the frames in `bytes`, which holds whole frames.
fn payload_sizes(bytes: &[u8]) -> Vec<u64> {
    super::frame_headers(bytes)
        .map(|header| header.payload_len())
        .collect()
}

/// Whether a text fragment may end at `at` of `text`: not inside a character (a
/// continuation byte, `10xxxxxx`, never begins one).
fn ends_a_character(text: &[u8], at: usize) -> bool {
    text.get(at).is_none_or(|b| b & 0xC0 != 0x80)
}
