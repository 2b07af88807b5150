//! One direction of a relay: what it has read, what its analyzer made of it, and whether
//! it still reads.

use crate::end::StreamEnd;
use wstap_wire::{
    AnalyzerConfig, CloseFrame, DeflateParams, Direction, FrameEnd, Opcode, PartialFrame, Record,
    StreamAnalyzer, Timestamp,
};

/// Whether a lane still reads, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reading {
    /// Bytes are welcome.
    Open,
    /// The sender ended its stream.
    Eof,
    /// Reading failed.
    Failed(String),
    /// Writing its bytes on failed.
    WriteFailed(String),
    /// The relay stopped reading it: its receiver was closed, it broke the protocol under
    /// `--strict`, or the other direction failed.
    Stopped,
}

/// One direction: see the module documentation.
#[derive(Debug)]
pub(crate) struct Lane {
    pub direction: Direction,
    /// `None` on a stream that is not a WebSocket: bytes pass unread.
    pub analyzer: Option<StreamAnalyzer>,
    pub reading: Reading,
    /// Bytes queued for the receiver.
    pub accepted: u64,
    /// Bytes written to the receiver (as the driver reports).
    pub forwarded: u64,
    /// The first close frame this direction carried, and when.
    pub first_close: Option<(Timestamp, CloseFrame)>,
    /// How many bytes of the stream go up to the end of that close frame.
    close_by: u64,
    /// Bytes read and dropped (never to be handed on).
    pub dropped: u64,
    /// Whether the first close frame was among them.
    close_dropped: bool,
    /// Whether the sender compresses with a context it keeps across messages: then the
    /// receiver needs every compressed message to inflate the next.
    pub keeps_context: bool,
    /// The RSV bits of extensions negotiated that wstap does not know: it cannot build
    /// frames for them.
    pub foreign_extension_bits: u8,
    /// permessage-deflate's parameters, when negotiated.
    pub deflate: Option<DeflateParams>,
}

impl Lane {
    pub fn new(direction: Direction, websocket: Option<AnalyzerConfig>) -> Lane {
        Lane {
            direction,
            analyzer: websocket.map(|config| StreamAnalyzer::new(direction, config)),
            reading: Reading::Open,
            accepted: 0,
            forwarded: 0,
            first_close: None,
            close_by: 0,
            dropped: 0,
            close_dropped: false,
            keeps_context: websocket
                .and_then(|config| config.deflate)
                .is_some_and(|deflate| !deflate.no_context_takeover(direction)),
            foreign_extension_bits: websocket.map_or(0, |config| config.other_extension_bits),
            deflate: websocket.and_then(|config| config.deflate),
        }
    }

    pub fn is_reading(&self) -> bool {
        self.reading == Reading::Open
    }

    /// Whether what the analyzer has read of this direction ends between frames.
    pub fn at_frame_boundary(&self) -> bool {
        self.analyzer
            .as_ref()
            .is_none_or(StreamAnalyzer::at_frame_boundary)
    }

    /// Whether what the analyzer has read of this direction ends between messages.
    pub fn at_message_boundary(&self) -> bool {
        self.analyzer
            .as_ref()
            .is_none_or(|a| a.at_frame_boundary() && !a.message_open())
    }

    /// Whether this direction's first close frame reached its receiver.
    pub fn close_delivered(&self) -> bool {
        self.first_close.is_some()
            && !self.close_dropped
            && self.forwarded + self.dropped >= self.close_by
    }

    /// Whether this direction's first close frame was handed on to its receiver (queued
    /// to be written), `held` bytes at the end of what was read being kept back. (A close
    /// frame dropped was not.)
    pub fn close_handed_on(&self, held: usize) -> bool {
        self.first_close.is_some()
            && !self.close_dropped
            && self.accepted.saturating_sub(held as u64) >= self.close_by
    }

    /// `len` bytes read are not handed on (dropped, or replaced); `close` says whether they
    /// were a close frame (a sender sends one, and nothing after it).
    pub fn note_dropped(&mut self, len: u64, close: bool) {
        self.dropped += len;
        if close && self.first_close.is_some() {
            self.close_dropped = true;
        }
    }

    /// Notes the first close frame among `records`, this lane's, decoded from a chunk
    /// that began at stream offset `chunk_start`; `ends` says where in the chunk each of
    /// its frames ended, when known (else the close is taken to end with the chunk).
    pub fn note_close(&mut self, records: &[Record], chunk_start: u64, ends: &[FrameEnd]) {
        if self.first_close.is_some() {
            return;
        }
        let frames = records.iter().filter_map(|record| match record {
            Record::Frame(frame) => Some(frame),
            Record::Message(_) => None,
        });
        for (nth, frame) in frames.enumerate() {
            if frame.header.opcode() == Opcode::Close {
                if let Some(close) = &frame.close {
                    self.first_close = Some((frame.time, close.clone()));
                    self.close_by = ends
                        .get(nth)
                        .map_or(self.accepted, |end| chunk_start + end.offset as u64);
                    return;
                }
            }
        }
    }

    pub fn frames(&self) -> u64 {
        self.analyzer
            .as_ref()
            .map_or(0, StreamAnalyzer::frames_seen)
    }

    /// Ends the analysis: records for a message left open go to `out`; returns a frame
    /// cut off, if any.
    pub fn finish(&mut self, time: Timestamp, out: &mut Vec<Record>) -> Option<PartialFrame> {
        let analyzer = self.analyzer.as_mut()?;
        let start = out.len();
        let partial = analyzer.finish(time, out);
        let accepted = self.accepted;
        self.note_close(&out[start..], accepted, &[]);
        partial
    }

    /// How this direction ended, for the record.
    pub fn end(&self) -> StreamEnd {
        match &self.reading {
            Reading::Open | Reading::Stopped => StreamEnd::Stopped,
            Reading::Eof => StreamEnd::Eof {
                sent_close: self.first_close.is_some(),
            },
            Reading::Failed(why) => StreamEnd::ReadFailed(why.clone()),
            Reading::WriteFailed(why) => StreamEnd::WriteFailed(why.clone()),
        }
    }
}
