//! What interception keeps of a relay: holds and frames to inject. Made on the first
//! [`Command::Hold`] or [`Command::Inject`] and boxed, so a session nobody intercepts
//! carries one pointer for it.
//!
//! [`Command::Hold`]: super::Command::Hold
//! [`Command::Inject`]: super::Command::Inject

use super::{Queued, Relay};
use crate::Side;
use std::collections::VecDeque;
use wstap_wire::mask::random_key;
use wstap_wire::{FrameBuilder, FrameEnd, Opcode};

/// Whether a direction hands on what its sender sends, or keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Hold {
    /// Everything read is handed on.
    #[default]
    Off,
    /// Hand on up to the next message boundary, then hold.
    Armed,
    /// Keep what is read, as read, until released.
    Holding,
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

    /// Whether what `from` sends is being held now.
    pub(super) fn holding(&self, from: Side) -> bool {
        self.held_lane(from)
            .is_some_and(|h| h.hold == Hold::Holding)
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

    /// Keeps `chunk[..clean]` from `from`, which holds, noting where messages end in it.
    pub(super) fn keep(&mut self, from: Side, chunk: &[u8], clean: usize) {
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

    pub(super) fn hold(&mut self, from: Side, budget: usize) {
        // Only a WebSocket has message boundaries to hold at.
        if self.lanes[from.index()].analyzer.is_none() {
            return;
        }
        let between = self.lanes[from.index()].at_message_boundary();
        let lane = &mut self.intercept.get_or_insert_with(Box::default).lanes[from.index()];
        lane.budget = budget;
        if lane.hold == Hold::Off {
            lane.hold = match between {
                true => Hold::Holding,
                false => Hold::Armed,
            };
        }
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
    pub(super) fn steer(&mut self, from: Side, chunk: &[u8], clean: usize, between_before: bool) {
        let to = from.other();
        let queue = &mut self.queues[to.index()];
        let Some(intercept) = self.intercept.as_mut() else {
            queue.push_back(Queued::Forward(0..clean));
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
                lane.hold = Hold::Holding;
                let base = lane.held.len();
                lane.held.extend_from_slice(&chunk[boundary..clean]);
                holding_from = Some((boundary, base));
            }
        }
        if holding_from.is_some() {
            return;
        }
        if clean > handed {
            queue.push_back(Queued::Forward(handed..clean));
        }
    }
}
