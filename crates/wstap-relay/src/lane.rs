//! One direction of a relay: what it has read, what its analyzer made of it, and whether
//! it still reads.

use crate::end::StreamEnd;
use wstap_wire::{
    AnalyzerConfig, CloseFrame, Direction, Opcode, PartialFrame, Record, StreamAnalyzer, Timestamp,
};

/// Whether a lane hands on what its sender sends, or keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hold {
    /// Everything read is handed on.
    Off,
    /// Hand on up to the next message boundary, then hold.
    Armed,
    /// Keep what is read, as read, until released.
    Holding,
}

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
    /// How many bytes must be written for that close frame to have been delivered.
    close_by: u64,
    pub hold: Hold,
    /// While holding, reading stops once this many bytes are held.
    pub budget: usize,
    /// What was read while holding, exactly as read.
    pub held: Vec<u8>,
    /// The sender ended its stream while the lane held: the receiver hears of it on release.
    pub eof_held: bool,
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
            hold: Hold::Off,
            budget: 0,
            held: Vec::new(),
            eof_held: false,
        }
    }

    pub fn is_reading(&self) -> bool {
        self.reading == Reading::Open
    }

    /// Whether a frame of wstap's own could be written into this direction's stream now
    /// without cutting one of the sender's: nothing of a next frame has been handed on.
    /// (A holding lane handed on up to a message boundary.)
    pub fn at_frame_boundary(&self) -> bool {
        self.hold == Hold::Holding
            || self
                .analyzer
                .as_ref()
                .is_none_or(StreamAnalyzer::at_frame_boundary)
    }

    /// Whether a message of wstap's own could be written into this direction's stream now
    /// without cutting one of the sender's frames or messages.
    pub fn at_message_boundary(&self) -> bool {
        self.hold == Hold::Holding
            || self
                .analyzer
                .as_ref()
                .is_none_or(|a| a.at_frame_boundary() && !a.message_open())
    }

    /// Whether the lane holds as much as it may: its sender is not read meanwhile.
    pub fn held_full(&self) -> bool {
        self.hold == Hold::Holding && self.held.len() >= self.budget
    }

    /// Whether this direction's first close frame reached its receiver.
    pub fn close_delivered(&self) -> bool {
        self.first_close.is_some() && self.forwarded >= self.close_by
    }

    /// Notes the first close frame among `records` (this lane's, decoded from bytes up to
    /// [`Lane::accepted`]).
    pub fn note_close(&mut self, records: &[Record]) {
        if self.first_close.is_some() {
            return;
        }
        for record in records {
            if let Record::Frame(frame) = record {
                if frame.header.opcode() == Opcode::Close {
                    if let Some(close) = &frame.close {
                        self.first_close = Some((frame.time, close.clone()));
                        self.close_by = self.accepted;
                        return;
                    }
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
        self.note_close(&out[start..]);
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
