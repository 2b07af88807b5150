//! Routing one chunk of a direction that interception keeps, frame by frame: each frame
//! goes out at once (a ping passing ahead, the rest of a message too large to keep),
//! joins the message being read, or ends it, and then the whole message is judged and
//! goes on, queues, or is held.
//!
//! Bytes are copied only when they must wait: a message that begins and ends in the chunk
//! and goes on is forwarded as a range of the chunk, as untouched traffic is.

use super::{recompress, Built, Candidate, Fate, FirstHeader, HeldId, HeldLane, Note, Unit};
use crate::relay::Queued;
use crate::Side;
use std::collections::VecDeque;
use std::ops::Range;
use wstap_wire::{FrameEnd, FrameHeader, FrameRecord, MessageRecord, Opcode, Record};

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
    /// The whole data of the compressed messages the chunk ended, oldest first, when the
    /// analyzer keeps it.
    pub wholes: &'a mut VecDeque<Vec<u8>>,
    /// Whether permessage-deflate was negotiated (RSV1 then marks a compressed message).
    pub deflate: bool,
    /// How much of the compressed message being read the analyzer keeps whole so far.
    pub whole_so_far: usize,
}

/// What routing a chunk asks of the relay besides its queue.
#[derive(Debug, Default)]
pub(super) struct Routed {
    /// Bytes read that went out compressed again rather than as read.
    pub rebuilt: u64,
    /// The message being read passes unjudged: the analyzer need not keep it whole.
    pub skip_whole: bool,
    /// A compressed message grew past the budget after re-encoding began: it cannot be
    /// compressed again within the bound.
    pub overflow: bool,
}

impl Router<'_> {
    /// Routes `chunk[..clean]`, whose frames ended at `ends` and made `records`.
    pub fn route(mut self, records: &[Record], ends: &[FrameEnd], clean: usize) -> Routed {
        let mut rebuilt = 0;
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
            rebuilt += self.frame(frame, message, end, piece, &mut open_here);
        }
        let mut routed = Routed {
            rebuilt,
            ..Routed::default()
        };
        if self.lane.passing {
            self.emit(Piece::Chunk(pos..clean));
            return routed;
        }
        if let Some(range) = open_here {
            self.lane.open.extend_from_slice(&self.chunk[range]);
        }
        self.lane.partial.extend_from_slice(&self.chunk[pos..clean]);
        self.pass_if_ruled_out();
        self.give_up_on_large(&mut routed);
        routed.skip_whole |= self.lane.passing;
        routed
    }

    /// With nothing held before it, a data message whose first header rules it out goes
    /// on as it comes: what was kept of it now, the rest as it is read. (One that ends in
    /// the chunk was judged whole already.)
    fn pass_if_ruled_out(&mut self) {
        let lane = &mut *self.lane;
        if !lane.units.is_empty() || lane.passing {
            return;
        }
        let Some(test) = lane.rule.as_ref().map(|rule| &rule.test) else {
            return;
        };
        let header = match lane.first {
            // A fragmented message, its first frame read.
            Some((first_byte, masked)) => Some((first_byte, masked, None)),
            // A message just begun: its first frame's header, once it is all there.
            None => FrameHeader::parse(&lane.partial).ok().and_then(|h| {
                let opcode = h.opcode();
                (!opcode.is_control() && opcode != Opcode::Continuation).then(|| {
                    let len = h.fin().then_some(h.payload_len());
                    (h.first_byte(), h.mask().is_some(), len)
                })
            }),
        };
        let Some((first_byte, masked, len)) = header else {
            return;
        };
        let compressed = self.deflate && first_byte & 0x40 != 0;
        let header = FirstHeader {
            direction: self.from.sends(),
            first_byte,
            masked,
            compressed,
            len: len.filter(|_| !compressed),
        };
        // Once the receiver's context is wstap's, a compressed message is compressed again,
        // whole.
        if (compressed && lane.reencode.is_some()) || !test.ruled_out(&header) {
            return;
        }
        let mut bytes = std::mem::take(&mut lane.open);
        bytes.append(&mut lane.partial);
        lane.passing = true;
        lane.first = None;
        self.emit(Piece::Kept(bytes));
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

    /// Routes one frame; returns how many bytes read went out compressed again.
    fn frame(
        &mut self,
        frame: &FrameRecord,
        message: Option<&MessageRecord>,
        end: &FrameEnd,
        piece: Piece,
        open_here: &mut Option<Range<usize>>,
    ) -> u64 {
        let marks = (frame.header.first_byte(), frame.header.mask().is_some());
        // A data message ends with this frame, or was cut short after it by a new one
        // (its record comes then, and names this frame as its last).
        let ended = !end.message_open || message.is_some_and(|m| !m.opcode.is_control());
        if self.lane.passing {
            self.emit(piece);
            // Its whole data, kept in case it had to be compressed again, is not needed.
            if message.is_some_and(|m| m.compressed) {
                self.wholes.pop_front();
            }
            if ended {
                self.lane.passing = false;
                self.lane.first = None;
                self.out.extend(self.injects.drain(..).map(Queued::Inject));
            }
            return 0;
        }
        let opcode = frame.header.opcode();
        if opcode.is_control() {
            let judged = self.lane.rule.as_ref().is_some_and(|rule| rule.control);
            if !judged && self.lane.first.is_some() && self.lane.units.is_empty() {
                // Between the fragments of a message being read, with nothing held: it
                // keeps its place, so a message that goes on goes byte for byte.
                let at = self.lane.open.len() + open_here.as_ref().map_or(0, Range::len);
                let len = match &piece {
                    Piece::Chunk(range) => range.len(),
                    Piece::Kept(bytes) => bytes.len(),
                };
                self.lane.embedded.push((at, len));
                self.join_open(piece, open_here);
                return 0;
            }
            if !judged && opcode != Opcode::Close {
                // What went out ends between messages: a ping or pong may go first.
                self.emit(piece);
                return 0;
            }
            let held = judged && message.is_some_and(|m| self.test(m, marks));
            return self.whole(piece, (opcode, frame.index), message, held);
        }
        let first = *self.lane.first.get_or_insert(marks);
        self.join_open(piece, open_here);
        if !ended {
            return 0;
        }
        self.lane.first = None;
        let embedded = std::mem::take(&mut self.lane.embedded);
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
        let rebuild = message.is_some_and(|m| m.compressed) && self.lane.reencode.is_some();
        if embedded.is_empty() || (!held && !rebuild && self.lane.units.is_empty()) {
            return self.whole(bytes, (opcode, frame.index), message, held);
        }
        // Held, or compressed again: the control frames between its fragments go apart,
        // pings and pongs first (nothing held is before them), a close after it.
        let mut bytes = match bytes {
            Piece::Chunk(range) => self.chunk[range].to_vec(),
            Piece::Kept(bytes) => bytes,
        };
        let mut controls = Vec::with_capacity(embedded.len());
        for (at, len) in embedded.into_iter().rev() {
            controls.push(bytes.drain(at..at + len).collect::<Vec<u8>>());
        }
        controls.reverse();
        let (closes, others): (Vec<Vec<u8>>, Vec<Vec<u8>>) = controls
            .into_iter()
            .partition(|c| c.first().is_some_and(|b| b & 0x0F == Opcode::Close.bits()));
        self.out.extend(others.into_iter().map(Queued::Released));
        let rebuilt = self.whole(Piece::Kept(bytes), (opcode, frame.index), message, held);
        for close in closes {
            if self.lane.units.is_empty() {
                self.out.push_back(Queued::Released(close));
                continue;
            }
            self.lane.units_read += close.len();
            self.lane.units_len += close.len();
            self.lane.units.push_back(Unit {
                bytes: close,
                fate: Fate::Pass,
                built: false,
                opcode: Opcode::Close,
                compressed: false,
                data_len: None,
                whole: None,
                rebuild: false,
                last_frame: frame.index,
            });
        }
        rebuilt
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
                if self.lane.open.is_empty() {
                    // A frame gathered across reads begins the message: no copy.
                    self.lane.open = bytes;
                } else {
                    self.lane.open.extend_from_slice(&bytes);
                }
            }
        }
    }

    /// A whole message, of `opcode`, that ended with frame `last`: it goes on when nothing
    /// is kept before it and it is not held; else it is kept, held or in line. Once the
    /// receiver's context is wstap's, a compressed one is compressed again (returns the
    /// bytes read that this replaced).
    fn whole(
        &mut self,
        piece: Piece,
        (opcode, last): (Opcode, u64),
        message: Option<&MessageRecord>,
        held: bool,
    ) -> u64 {
        let compressed = message.is_some_and(|m| m.compressed);
        let whole = match compressed {
            true => self.wholes.pop_front(),
            false => None,
        };
        let rebuild = compressed && self.lane.reencode.is_some();
        if !held && self.lane.units.is_empty() {
            if let (true, Some(deflater), Some(whole)) =
                (rebuild, self.lane.reencode.as_mut(), whole.as_ref())
            {
                let read = match &piece {
                    Piece::Chunk(range) => range.len(),
                    Piece::Kept(bytes) => bytes.len(),
                };
                let to = self.from.other();
                let wire = recompress(deflater, to, opcode, whole);
                self.notes.push(Note::Sent {
                    to,
                    why: Built::Recompressed(last),
                    wire: wire.clone(),
                });
                self.out.push_back(Queued::Inject(wire));
                return read as u64;
            }
            self.emit(piece);
            return 0;
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
        let unit = Unit {
            bytes,
            fate,
            built: false,
            opcode,
            compressed,
            data_len: message
                .filter(|m| m.data.data.len() as u64 == m.data.total)
                .map(|m| m.data.total),
            whole,
            rebuild,
            last_frame: last,
        };
        self.lane.units_len += unit.size();
        self.lane.units_read += unit.read_len();
        self.lane.units.push_back(unit);
        0
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
    /// Its size counts what the analyzer keeps of it whole. Once the receiver's context
    /// is wstap's, a compressed message must be whole to be compressed again: it is kept
    /// up to the budget, and past it the relay cannot go on within the bound
    /// ([`Routed::overflow`]).
    fn give_up_on_large(&mut self, routed: &mut Routed) {
        let lane = &mut *self.lane;
        let kept = lane.open.len() + lane.partial.len();
        if !lane.units.is_empty() || kept == 0 {
            return;
        }
        let size = kept + self.whole_so_far;
        let judging = lane.rule.is_some();
        if judging && size < lane.budget {
            return;
        }
        let first_byte = lane.first.map(|(byte, _)| byte).or_else(|| {
            FrameHeader::parse(&lane.partial)
                .ok()
                .map(|header| header.first_byte())
        });
        // Not knowing yet, take it for compressed: it is only a header's few bytes.
        let compressed = self.deflate && first_byte.is_none_or(|byte| byte & 0x40 != 0);
        if lane.reencode.is_some() && compressed {
            routed.overflow = size >= lane.budget;
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
