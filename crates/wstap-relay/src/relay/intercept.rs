//! What interception keeps of a relay: holds and frames to inject. Made on the first
//! [`Command::Hold`] or [`Command::Inject`] and boxed, so a session nobody intercepts
//! carries one pointer for it.
//!
//! [`Command::Hold`]: super::Command::Hold
//! [`Command::Inject`]: super::Command::Inject

use super::{Queued, Relay};
use crate::Side;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use wstap_wire::mask::random_key;
use wstap_wire::{FrameBuilder, FrameEnd, MessageRecord, Opcode, Record};

/// Which messages a hold keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldAt {
    /// Every message, from the next message boundary on.
    NextMessage,
    /// From the first message the test says yes to, on. Each message waits whole for its
    /// verdict (none of it goes out before), and one the test says no to goes on as it
    /// was read; a message larger than the hold's budget is not held, but passes.
    Matching(MessageTest),
}

/// A test of a whole message, by its record (the filter's in-memory evaluator, for one).
#[derive(Clone)]
pub struct MessageTest(Arc<dyn Fn(&MessageRecord) -> bool + Send + Sync>);

impl MessageTest {
    /// A test that says yes to the messages `test` does.
    pub fn new(test: impl Fn(&MessageRecord) -> bool + Send + Sync + 'static) -> MessageTest {
        MessageTest(Arc::new(test))
    }

    fn matches(&self, message: &MessageRecord) -> bool {
        (self.0)(message)
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
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for MessageTest {}

/// Whether a direction hands on what its sender sends, or keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Hold {
    /// Everything read is handed on.
    #[default]
    Off,
    /// Hand on up to the next message boundary, then hold (or watch, with a test).
    Armed,
    /// Keep each message until it is whole and the test has judged it: hand it on when
    /// it fails, hold from it on when it passes.
    Watching,
    /// Keep what is read, as read, until released.
    Holding,
}

impl Hold {
    /// Whether what is read is kept, not handed on.
    pub fn keeps(self) -> bool {
        matches!(self, Hold::Watching | Hold::Holding)
    }
}

/// One direction's hold.
#[derive(Debug, Default)]
pub(super) struct HeldLane {
    pub hold: Hold,
    /// While holding, reading stops once this many bytes are held.
    pub budget: usize,
    /// What was read while holding, exactly as read; it begins between messages.
    pub held: Vec<u8>,
    /// Where in `held` messages end, in order: what a drop may take.
    pub boundaries: Vec<usize>,
    /// The sender ended its stream while holding: the receiver hears of it on release.
    pub eof_held: bool,
    /// What a watching hold asks of each message.
    pub test: Option<MessageTest>,
}

impl HeldLane {
    /// What a hold becomes at a message boundary: watching with a test, else holding.
    fn keeping(&self) -> Hold {
        match self.test {
            Some(_) => Hold::Watching,
            None => Hold::Holding,
        }
    }
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct Interception {
    /// By direction (client to server first).
    pub lanes: [HeldLane; 2],
    /// By destination side: frames to inject at the stream's next message boundary.
    pub injects: [VecDeque<Vec<u8>>; 2],
    /// Where frames ended in the chunk being fed, while a hold or an injection waits.
    pub ends: Vec<FrameEnd>,
}

impl Relay {
    /// The hold of what `from` sends, if any.
    pub(super) fn held_lane(&self, from: Side) -> Option<&HeldLane> {
        self.intercept.as_ref().map(|i| &i.lanes[from.index()])
    }

    /// Whether what `from` sends is being kept now (held, or watched).
    pub(super) fn holding(&self, from: Side) -> bool {
        self.held_lane(from).is_some_and(|h| h.hold.keeps())
    }

    /// How many bytes from `from` are held.
    pub(super) fn held_len(&self, from: Side) -> usize {
        self.held_lane(from).map_or(0, |h| h.held.len())
    }

    /// Whether the stream to `to` could take a frame of wstap's own now without cutting
    /// one of the sender's: what was handed on ends between frames.
    pub(super) fn between_frames_to(&self, to: Side) -> bool {
        self.holding(to.other()) || self.lane_to(to).at_frame_boundary()
    }

    /// Whether the stream to `to` could take a message of wstap's own now: what was handed
    /// on ends between messages.
    pub(super) fn between_messages_to(&self, to: Side) -> bool {
        self.holding(to.other()) || self.lane_to(to).at_message_boundary()
    }

    /// Whether the next chunk from `from` must be read for its frame ends.
    pub(super) fn steering(&self, from: Side) -> bool {
        self.intercept.as_ref().is_some_and(|i| {
            i.lanes[from.index()].hold != Hold::Off || !i.injects[from.other().index()].is_empty()
        })
    }

    /// Keeps `chunk[..clean]` from `from`, which holds or watches, noting where messages
    /// end in it; a watching hold then judges the messages that ended (`verdicts`).
    pub(super) fn keep(
        &mut self,
        from: Side,
        chunk: &[u8],
        clean: usize,
        verdicts: &[(usize, bool)],
    ) {
        let Some(intercept) = self.intercept.as_mut() else {
            return;
        };
        let lane = &mut intercept.lanes[from.index()];
        let base = lane.held.len();
        lane.held.extend_from_slice(&chunk[..clean]);
        lane.boundaries.extend(
            intercept
                .ends
                .iter()
                .filter(|end| !end.message_open && end.offset <= clean && end.offset > 0)
                .map(|end| base + end.offset),
        );
        self.watch(from, verdicts, 0, base);
    }

    /// What a watching (or armed to watch) hold of `from` makes of the messages that ended
    /// whole at a message boundary in this chunk, among `records` (this chunk's): where
    /// each ended, and whether it passed. Empty when nothing is watched.
    pub(super) fn verdicts(
        &self,
        from: Side,
        records: &[Record],
        clean: usize,
    ) -> Vec<(usize, bool)> {
        let Some(intercept) = self.intercept.as_ref() else {
            return Vec::new();
        };
        let lane = &intercept.lanes[from.index()];
        let Some(test) = lane.test.as_ref().filter(|_| lane.hold != Hold::Off) else {
            return Vec::new();
        };
        // A frame's record comes before the record of the message it ends; its end says
        // whether that is at a message boundary (not a control frame between fragments).
        let mut verdicts = Vec::new();
        let mut frames = 0;
        let mut at_boundary = None;
        for record in records {
            match record {
                Record::Frame(_) => {
                    at_boundary = intercept
                        .ends
                        .get(frames)
                        .filter(|end| !end.message_open && end.offset <= clean)
                        .map(|end| end.offset);
                    frames += 1;
                }
                Record::Message(message) => {
                    if let Some(end) = at_boundary.take() {
                        verdicts.push((end, test.matches(message)));
                    }
                }
            }
        }
        verdicts
    }

    /// Drops the whole messages held from `from` (a message still arriving stays held, so
    /// the stream goes on from a boundary). Not on a direction whose sender compresses with
    /// a context it keeps: the receiver would miss what the next messages refer to.
    pub(super) fn drop_held(&mut self, from: Side) {
        if self.lanes[from.index()].keeps_context {
            return;
        }
        let Some(intercept) = self.intercept.as_mut() else {
            return;
        };
        let lane = &mut intercept.lanes[from.index()];
        let Some(&cut) = lane.boundaries.last() else {
            return;
        };
        let start = self.lanes[from.index()].accepted - lane.held.len() as u64;
        lane.held.drain(..cut);
        lane.boundaries.clear();
        self.lanes[from.index()].note_dropped(start, cut as u64);
    }

    pub(super) fn hold(&mut self, from: Side, budget: usize, at: HoldAt) {
        // Only a WebSocket has message boundaries to hold at.
        if self.lanes[from.index()].analyzer.is_none() {
            return;
        }
        let between = self.lanes[from.index()].at_message_boundary();
        let lane = &mut self.intercept.get_or_insert_with(Box::default).lanes[from.index()];
        lane.budget = budget;
        if lane.hold == Hold::Holding {
            return;
        }
        lane.test = match at {
            HoldAt::NextMessage => None,
            HoldAt::Matching(test) => Some(test),
        };
        lane.hold = match (lane.hold, between) {
            (Hold::Watching, _) if lane.test.is_some() => Hold::Watching,
            (Hold::Watching, _) => Hold::Holding,
            (_, true) => lane.keeping(),
            (_, false) => Hold::Armed,
        };
    }

    /// Judges the messages a watching hold of `from` kept whole in this chunk (`verdicts`:
    /// where each ended in the chunk, and whether it passed; `kept_from`: where in the
    /// chunk keeping began, at `base` in what is held), hands on those that failed, and
    /// holds from the first that passed. A message larger than the budget is given up on:
    /// handed on as it comes, and the next one watched.
    pub(super) fn watch(
        &mut self,
        from: Side,
        verdicts: &[(usize, bool)],
        kept_from: usize,
        base: usize,
    ) {
        let Some(intercept) = self.intercept.as_mut() else {
            return;
        };
        let lane = &mut intercept.lanes[from.index()];
        if lane.hold != Hold::Watching {
            return;
        }
        let mut judged = 0;
        for &(end, passed) in verdicts.iter().filter(|(end, _)| *end > kept_from) {
            if passed {
                lane.hold = Hold::Holding;
                break;
            }
            judged = base + end - kept_from;
        }
        if lane.hold == Hold::Watching && lane.held.len() - judged >= lane.budget {
            judged = lane.held.len();
            lane.hold = Hold::Armed;
        }
        self.hand_on_held(from, judged);
    }

    /// Hands on the first `len` bytes held from `from`, as read.
    pub(super) fn hand_on_held(&mut self, from: Side, len: usize) {
        let to = from.other();
        let Some(intercept) = self.intercept.as_mut() else {
            return;
        };
        if len == 0 || self.shut[to.index()] {
            return;
        }
        let lane = &mut intercept.lanes[from.index()];
        let bytes: Vec<u8> = lane.held.drain(..len).collect();
        lane.boundaries.retain_mut(|b| {
            *b = b.saturating_sub(len);
            *b > 0
        });
        self.queues[to.index()].push_back(Queued::Released(bytes));
    }

    pub(super) fn release(&mut self, from: Side) {
        let to = from.other();
        // Into a stream that ended nothing more goes: what is held stays counted as held.
        if self.shut[to.index()] {
            return;
        }
        let Some(intercept) = self.intercept.as_mut() else {
            return;
        };
        let lane = &mut intercept.lanes[from.index()];
        lane.hold = Hold::Off;
        lane.test = None;
        lane.boundaries.clear();
        let held = std::mem::take(&mut lane.held);
        let eof = std::mem::take(&mut lane.eof_held);
        if !held.is_empty() {
            self.queues[to.index()].push_back(Queued::Released(held));
        }
        if eof {
            self.end_stream(to, None);
        }
        self.send_pending_close(to);
    }

    pub(super) fn inject(&mut self, to: Side, opcode: Opcode, payload: &[u8]) {
        // Not into a stream that ended or carried a close frame already, nor into one that
        // is not a WebSocket; a close frame of wstap's own is `Command::Close`.
        if self.shut[to.index()]
            || self.close_went_to(to)
            || self.lane_to(to).analyzer.is_none()
            || opcode == Opcode::Close
        {
            return;
        }
        let builder = FrameBuilder::new(opcode);
        let frame = match to {
            Side::Server => builder.mask(random_key()).encode(payload),
            Side::Client => builder.encode(payload),
        };
        let now = self.between_messages_to(to);
        let intercept = self.intercept.get_or_insert_with(Box::default);
        if now && intercept.injects[to.index()].is_empty() {
            self.queues[to.index()].push_back(Queued::Inject(frame));
        } else {
            intercept.injects[to.index()].push_back(frame);
        }
    }

    /// Hands on `chunk[..clean]` from `from`, stopping at its message boundaries (the
    /// start, when `between_before`, and where the analyzer said a message ended) to inject
    /// what waits and to start a hold that is armed.
    pub(super) fn steer(
        &mut self,
        from: Side,
        chunk: &[u8],
        clean: usize,
        between_before: bool,
        verdicts: &[(usize, bool)],
    ) {
        let to = from.other();
        let queue = &mut self.queues[to.index()];
        let Some(intercept) = self.intercept.as_mut() else {
            // Not reached: steering needs interception's state. Forward as untouched.
            if clean > 0 {
                queue.push_back(Queued::Forward(0..clean));
            }
            return;
        };
        let boundaries = between_before.then_some(0).into_iter().chain(
            intercept
                .ends
                .iter()
                .filter(|end| !end.message_open && end.offset <= clean)
                .map(|end| end.offset),
        );
        let lane = &mut intercept.lanes[from.index()];
        let injects = &mut intercept.injects[to.index()];
        let mut handed = 0;
        // Once the hold begins: where in the chunk, and where that is in what is held.
        let mut holding_from = None;
        for boundary in boundaries {
            if let Some((start, base)) = holding_from {
                if boundary > start {
                    lane.boundaries.push(base + boundary - start);
                }
                continue;
            }
            if injects.is_empty() && lane.hold != Hold::Armed {
                break;
            }
            if boundary > handed {
                queue.push_back(Queued::Forward(handed..boundary));
                handed = boundary;
            }
            queue.extend(injects.drain(..).map(Queued::Inject));
            if lane.hold == Hold::Armed {
                lane.hold = lane.keeping();
                let base = lane.held.len();
                lane.held.extend_from_slice(&chunk[boundary..clean]);
                holding_from = Some((boundary, base));
            }
        }
        if let Some((start, base)) = holding_from {
            self.watch(from, verdicts, start, base);
            return;
        }
        if clean > handed {
            queue.push_back(Queued::Forward(handed..clean));
        }
    }
}
