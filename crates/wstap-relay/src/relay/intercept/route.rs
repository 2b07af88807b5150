//! Routing one chunk of a direction that interception keeps, frame by frame: each frame
//! goes out at once (a ping passing ahead, the rest of a message too large to keep),
//! joins the message being read, or ends it, and then the whole message is judged and
//! goes on, queues, or is held.
//!
//! Bytes are copied only when they must wait: a message that begins and ends in the chunk
//! and goes on is forwarded as a range of the chunk, as untouched traffic is.

use super::{Candidate, Fate, HeldId, HeldLane, Note, Unit};
use crate::relay::Queued;
use crate::Side;
use std::collections::VecDeque;
use std::ops::Range;
use wstap_wire::{FrameEnd, FrameRecord, MessageRecord, Opcode, Record};

/// A frame's or message's bytes: a range of the chunk, or gathered across chunks.
enum Piece {
    Chunk(Range<usize>),
    Kept(Vec<u8>),
}

/// What routing one chunk works on: see the module documentation.
pub(super) struct Router<'a> {
    pub from: Side,
    pub lane: &'a mut HeldLane,
    /// The receiver's queue.
    pub out: &'a mut VecDeque<Queued>,
    /// Frames waiting for the receiver's stream to reach a message boundary.
    pub injects: &'a mut VecDeque<Vec<u8>>,
    pub notes: &'a mut Vec<Note>,
    pub next_id: &'a mut u64,
    pub chunk: &'a [u8],
}

impl Router<'_> {
    /// Routes `chunk[..clean]`, whose frames ended at `ends` and made `records`.
    pub fn route(mut self, records: &[Record], ends: &[FrameEnd], clean: usize) {
        let mut pos = 0;
        // Complete frames of the data message being read, still only in the chunk.
        let mut open_here: Option<Range<usize>> = None;
        let mut ends = ends.iter().filter(|end| end.offset <= clean);
        let mut records = records.iter().peekable();
        while let Some(record) = records.next() {
            let Record::Frame(frame) = record else {
                continue;
            };
            let message = match records.peek() {
                Some(Record::Message(message)) => {
                    records.next();
                    Some(message)
                }
                _ => None,
            };
            let Some(end) = ends.next() else {
                break;
            };
            let piece = self.take_frame(pos..end.offset);
            pos = end.offset;
            self.frame(frame, message, end, piece, &mut open_here);
        }
        if self.lane.passing {
            self.emit(Piece::Chunk(pos..clean));
            return;
        }
        if let Some(range) = open_here {
            self.lane.open.extend_from_slice(&self.chunk[range]);
        }
        self.lane.partial.extend_from_slice(&self.chunk[pos..clean]);
        self.give_up_on_large();
    }

    /// The bytes of a frame that ends at `range.end`, begun in this chunk or before.
    fn take_frame(&mut self, range: Range<usize>) -> Piece {
        if self.lane.partial.is_empty() {
            return Piece::Chunk(range);
        }
        let mut bytes = std::mem::take(&mut self.lane.partial);
        bytes.extend_from_slice(&self.chunk[range]);
        Piece::Kept(bytes)
    }

    fn frame(
        &mut self,
        frame: &FrameRecord,
        message: Option<&MessageRecord>,
        end: &FrameEnd,
        piece: Piece,
        open_here: &mut Option<Range<usize>>,
    ) {
        let marks = (frame.header.first_byte(), frame.header.mask().is_some());
        if self.lane.passing {
            self.emit(piece);
            if !end.message_open {
                self.lane.passing = false;
                self.lane.first = None;
                self.out.extend(self.injects.drain(..).map(Queued::Inject));
            }
            return;
        }
        let opcode = frame.header.opcode();
        if opcode.is_control() {
            let judged = self.lane.rule.as_ref().is_some_and(|rule| rule.control);
            if !judged && opcode != Opcode::Close {
                // What went out ends between messages: a ping or pong may go first.
                self.emit(piece);
                return;
            }
            let held = judged && message.is_some_and(|m| self.test(m, marks));
            self.whole(piece, (opcode, frame.index), message, held);
            return;
        }
        let first = *self.lane.first.get_or_insert(marks);
        self.join_open(piece, open_here);
        if end.message_open {
            return;
        }
        self.lane.first = None;
        let held = message.is_some_and(|m| self.test(m, first));
        let bytes = match open_here.take() {
            Some(range) if self.lane.open.is_empty() => Piece::Chunk(range),
            here => {
                if let Some(range) = here {
                    self.lane.open.extend_from_slice(&self.chunk[range]);
                }
                Piece::Kept(std::mem::take(&mut self.lane.open))
            }
        };
        let opcode = message.map_or(opcode, |m| m.opcode);
        self.whole(bytes, (opcode, frame.index), message, held);
    }

    /// Adds a data frame to the message being read.
    fn join_open(&mut self, piece: Piece, open_here: &mut Option<Range<usize>>) {
        match piece {
            Piece::Chunk(range) if self.lane.open.is_empty() => match open_here {
                None => *open_here = Some(range),
                Some(here) if here.end == range.start => here.end = range.end,
                Some(here) => {
                    // A ping went out from between its frames: the message is gathered.
                    self.lane.open.extend_from_slice(&self.chunk[here.clone()]);
                    self.lane.open.extend_from_slice(&self.chunk[range]);
                    *open_here = None;
                }
            },
            Piece::Chunk(range) => self.lane.open.extend_from_slice(&self.chunk[range]),
            Piece::Kept(bytes) => {
                if let Some(here) = open_here.take() {
                    self.lane.open.extend_from_slice(&self.chunk[here]);
                }
                self.lane.open.extend_from_slice(&bytes);
            }
        }
    }

    /// A whole message, of `opcode`, that ended with frame `last`: it goes on when nothing
    /// is kept before it and it is not held; else it is kept, held or in line.
    fn whole(
        &mut self,
        piece: Piece,
        (opcode, last): (Opcode, u64),
        message: Option<&MessageRecord>,
        held: bool,
    ) {
        if !held && self.lane.units.is_empty() {
            self.emit(piece);
            return;
        }
        let bytes = match piece {
            Piece::Chunk(range) => self.chunk[range].to_vec(),
            Piece::Kept(bytes) => bytes,
        };
        let fate = match message.filter(|_| held) {
            Some(message) => {
                let id = HeldId(*self.next_id);
                *self.next_id += 1;
                self.notes.push(Note::Held {
                    id,
                    from: self.from,
                    message: message.clone(),
                    frame: last,
                });
                Fate::Held {
                    id,
                    timeout: self.lane.rule.as_ref().and_then(|rule| rule.timeout),
                    deadline: None,
                }
            }
            None => Fate::Pass,
        };
        self.lane.units_len += bytes.len();
        self.lane.units.push_back(Unit {
            bytes,
            fate,
            built: false,
            opcode,
            compressed: message.is_some_and(|m| m.compressed),
            data_len: message
                .filter(|m| m.data.data.len() as u64 == m.data.total)
                .map(|m| m.data.total),
        });
    }

    fn test(&self, message: &MessageRecord, (first_byte, masked): (u8, bool)) -> bool {
        self.lane.rule.as_ref().is_some_and(|rule| {
            rule.test.matches(&Candidate {
                message,
                first_byte,
                masked,
            })
        })
    }

    /// Queues `piece` for the receiver now, as read.
    fn emit(&mut self, piece: Piece) {
        match piece {
            Piece::Chunk(range) if range.is_empty() => {}
            Piece::Chunk(range) => match self.out.back_mut() {
                // Neighbouring ranges go as one write.
                Some(Queued::Forward(last)) if last.end == range.start => last.end = range.end,
                _ => self.out.push_back(Queued::Forward(range)),
            },
            Piece::Kept(bytes) if bytes.is_empty() => {}
            Piece::Kept(bytes) => self.out.push_back(Queued::Released(bytes)),
        }
    }

    /// With nothing held before it, the message being read goes on unjudged, as read,
    /// once it reaches the budget, or at once when no rule is left to judge it.
    fn give_up_on_large(&mut self) {
        let lane = &mut *self.lane;
        let kept = lane.open.len() + lane.partial.len();
        if !lane.units.is_empty() || kept == 0 {
            return;
        }
        let judging = lane.rule.is_some();
        if judging && kept < lane.budget {
            return;
        }
        if judging {
            self.notes.push(Note::TooLarge {
                from: self.from,
                kept: kept as u64,
            });
        }
        let mut bytes = std::mem::take(&mut lane.open);
        bytes.append(&mut lane.partial);
        lane.passing = true;
        self.emit(Piece::Kept(bytes));
    }
}
