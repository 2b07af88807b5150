//! Frames and messages on their way into the store, from either of their two forms: a
//! live wire record (from the bus) or a trace event (from `wstap import`). Both become
//! the same row, so a capture of a run and the import of its trace hold the same data.

use wstap_trace::convert::violation_text;
use wstap_trace::{Frame, Message};
use wstap_wire::{Direction, FrameHeader, FrameRecord, MessageRecord, Opcode};

/// Where a frame or message comes from, which decides what the writer may take on trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Straight from the analyzer of `wstap-wire`, whose records keep its contracts (a
    /// one-frame message holds its frame's bytes: see `MessageRecord::data`).
    Analyzer,
    /// Read back from a trace, which anyone may have written.
    Trace,
}

/// A frame, borrowed.
pub(crate) struct FrameIn<'a> {
    pub source: Source,
    pub session: u64,
    pub dir: Direction,
    pub index: u64,
    pub time_us: i64,
    pub end_time_us: i64,
    pub header: FrameHeader,
    pub payload: &'a [u8],
    pub close: Option<(Option<u16>, &'a str)>,
    pub inflated: Option<(u64, &'a [u8])>,
    pub violations: Vec<String>,
}

impl<'a> FrameIn<'a> {
    pub fn of_record(session: u64, r: &'a FrameRecord) -> Self {
        FrameIn {
            source: Source::Analyzer,
            session,
            dir: r.direction,
            index: r.index,
            time_us: r.time.0,
            end_time_us: r.end_time.0,
            header: r.header,
            payload: &r.payload.data,
            close: r.close.as_ref().map(|c| (c.code, c.reason.as_str())),
            inflated: r
                .inflated
                .as_ref()
                .map(|i| (i.data.total, i.data.data.as_slice())),
            violations: r.violations.iter().map(violation_text).collect(),
        }
    }

    pub fn of_event(f: &'a Frame) -> Self {
        let time_us = f.time.timestamp_micros();
        FrameIn {
            source: Source::Trace,
            session: f.session,
            dir: f.dir,
            index: f.index,
            time_us,
            end_time_us: time_us,
            header: f.header(),
            payload: &f.payload.bytes,
            close: f.close.as_ref().map(|c| (c.code, c.reason.as_str())),
            inflated: f
                .inflated
                .as_ref()
                .map(|i| (i.len, i.payload.bytes.as_slice())),
            violations: f.violations.clone(),
        }
    }

    /// What the frame's message is made of: whether it starts a data message, continues
    /// one, or is a message of its own (control frames and reserved opcodes).
    pub fn part(&self) -> Part {
        match self.header.opcode() {
            Opcode::Text | Opcode::Binary => Part::DataStart,
            Opcode::Continuation => Part::DataContinued,
            _ => Part::Own,
        }
    }
}

/// A frame's place in the messages of its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    DataStart,
    DataContinued,
    Own,
}

/// A message, borrowed.
pub(crate) struct MessageIn<'a> {
    pub source: Source,
    pub session: u64,
    pub dir: Direction,
    pub opcode: Opcode,
    pub frames: u64,
    pub time_us: i64,
    pub end_time_us: i64,
    pub len: u64,
    pub wire_len: u64,
    pub compressed: bool,
    pub data: &'a [u8],
    pub violations: Vec<String>,
    pub incomplete: bool,
}

impl<'a> MessageIn<'a> {
    pub fn of_record(session: u64, r: &'a MessageRecord) -> Self {
        MessageIn {
            source: Source::Analyzer,
            session,
            dir: r.direction,
            opcode: r.opcode,
            frames: r.frames,
            time_us: r.first_time.0,
            end_time_us: r.last_time.0,
            len: r.data.total,
            wire_len: r.wire_payload_len,
            compressed: r.compressed,
            data: &r.data.data,
            violations: r.violations.iter().map(violation_text).collect(),
            incomplete: r.incomplete,
        }
    }

    pub fn of_event(m: &'a Message) -> Self {
        MessageIn {
            source: Source::Trace,
            session: m.session,
            dir: m.dir,
            opcode: Opcode::from_bits(m.opcode),
            frames: m.frames,
            time_us: m.time.timestamp_micros(),
            end_time_us: m.end_time.timestamp_micros(),
            len: m.len,
            wire_len: m.wire_len,
            compressed: m.compressed,
            data: &m.payload.bytes,
            violations: m.violations.clone(),
            incomplete: m.incomplete,
        }
    }

    /// Whether it is a data message (text, binary, or continuations without a start).
    pub fn is_data(&self) -> bool {
        matches!(
            self.opcode,
            Opcode::Text | Opcode::Binary | Opcode::Continuation
        )
    }
}

/// The close code a close message's data carries, when at least two bytes of it were kept.
pub fn close_code_of(opcode: Opcode, data: &[u8]) -> Option<u16> {
    match (opcode, data) {
        (Opcode::Close, [hi, lo, ..]) => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

/// Violations as the store keeps them: a JSON array of `code: description`, or `None`.
pub(crate) fn violations_json(violations: &[String]) -> Option<String> {
    (!violations.is_empty()).then(|| serde_json::to_string(violations).unwrap_or_default())
}

/// A direction's name in the store.
pub(crate) fn dir_name(dir: Direction) -> &'static str {
    dir.short()
}
