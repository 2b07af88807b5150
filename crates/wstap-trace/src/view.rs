//! One reading of a frame or a message, whichever form it comes in: a live record of the
//! wire crate (from the bus) or a trace event (read back from a trace or a capture).
//!
//! The console, the capture writer and the filter's facts all take frames and messages in
//! both forms. Each used to turn both into a view of its own; now each reads these views,
//! made in one place, so the two forms cannot drift apart in one reader and not another.
//! A view borrows: making one copies no payload.

use crate::convert::violation_text;
use crate::event::{Frame, Message, MessageOrigin};
use std::borrow::Cow;
use wstap_wire::{Direction, FrameHeader, FrameRecord, MessageRecord, Opcode, Violation};

/// Where a frame or a message comes from, which decides what a reader may take on trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Straight from the analyzer of `wstap-wire`, whose records keep its contracts (a
    /// one-frame message holds its frame's bytes: see `MessageRecord::data`).
    Analyzer,
    /// Read back from a trace, which anyone may have written.
    Trace,
}

/// Captured bytes, and how many there were in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes<'a> {
    /// What was captured.
    pub data: &'a [u8],
    /// The whole length.
    pub total: u64,
    /// Whether a bounded capture gave up what it had captured (`data` is empty then).
    pub dropped: bool,
}

impl Bytes<'_> {
    /// Whether the capture holds less than the whole.
    pub fn truncated(&self) -> bool {
        (self.data.len() as u64) < self.total
    }
}

/// The rules a frame or message breaks, as its form keeps them.
#[derive(Debug, Clone, Copy)]
pub enum Violations<'a> {
    /// A record's violations.
    Wire(&'a [Violation]),
    /// An event's, as `code: description` strings.
    Trace(&'a [String]),
}

impl<'a> Violations<'a> {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        match self {
            Violations::Wire(v) => v.is_empty(),
            Violations::Trace(v) => v.is_empty(),
        }
    }

    /// Their codes, in order.
    pub fn codes(&self) -> Vec<&'a str> {
        match self {
            Violations::Wire(v) => v.iter().map(Violation::code).collect(),
            Violations::Trace(v) => v.iter().map(|text| code_of(text)).collect(),
        }
    }

    /// Each as its code and its description, in order.
    pub fn described(&self) -> Vec<(&'a str, Cow<'a, str>)> {
        match self {
            Violations::Wire(v) => v
                .iter()
                .map(|v| (v.code(), Cow::Owned(v.to_string())))
                .collect(),
            Violations::Trace(v) => v
                .iter()
                .map(|text| {
                    let (code, description) = split_violation(text);
                    (code, Cow::Borrowed(description))
                })
                .collect(),
        }
    }

    /// Each as `code: description`, in order.
    pub fn texts(&self) -> Vec<Cow<'a, str>> {
        match self {
            Violations::Wire(v) => v.iter().map(|v| Cow::Owned(violation_text(v))).collect(),
            Violations::Trace(v) => v.iter().map(|text| Cow::Borrowed(text.as_str())).collect(),
        }
    }

    /// Those about a message as a whole (bad UTF-8, a failed inflate), as texts.
    pub fn about_message(&self) -> Vec<Cow<'a, str>> {
        self.texts()
            .into_iter()
            .filter(|text| is_about_message(text))
            .collect()
    }
}

/// The code of a `code: description` text.
pub fn code_of(text: &str) -> &str {
    split_violation(text).0
}

/// A `code: description` text as its code (up to the first colon, or all of it) and its
/// description (after the colon and one space).
pub fn split_violation(text: &str) -> (&str, &str) {
    match text.split_once(':') {
        Some((code, rest)) => (code, rest.strip_prefix(' ').unwrap_or(rest)),
        None => (text, ""),
    }
}

/// Whether a `code: description` text is about a message as a whole.
pub fn is_about_message(text: &str) -> bool {
    Violation::MESSAGE_CODES.contains(&code_of(text))
}

/// A frame's place in the messages of its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// It starts a data message.
    DataStart,
    /// It continues one.
    DataContinued,
    /// It is a message of its own: a control frame or a reserved opcode.
    Own,
}

/// A frame, borrowed: see the module documentation.
#[derive(Debug, Clone)]
pub struct FrameView<'a> {
    /// Where it comes from.
    pub form: Form,
    /// Session number.
    pub session: u64,
    /// Which way it went.
    pub dir: Direction,
    /// Its index in its direction.
    pub index: u64,
    /// When its first byte arrived, µs since the epoch.
    pub time_us: i64,
    /// When its last byte arrived (a trace keeps only the first time).
    pub end_time_us: i64,
    /// Its header, bit for bit.
    pub header: FrameHeader,
    /// Its (unmasked) payload; the whole is the declared length.
    pub payload: Bytes<'a>,
    /// Code and reason, on close frames.
    pub close: Option<(Option<u16>, &'a str)>,
    /// Its part of the inflated message, on frames of compressed messages.
    pub inflated: Option<Bytes<'a>>,
    /// Rules it breaks.
    pub violations: Violations<'a>,
}

impl<'a> FrameView<'a> {
    /// A live frame record of `session`.
    pub fn of_record(session: u64, r: &'a FrameRecord) -> Self {
        FrameView {
            form: Form::Analyzer,
            session,
            dir: r.direction,
            index: r.index,
            time_us: r.time.0,
            end_time_us: r.end_time.0,
            header: r.header,
            payload: Bytes {
                data: &r.payload.data,
                total: r.payload.total,
                dropped: false,
            },
            close: r.close.as_ref().map(|c| (c.code, c.reason.as_str())),
            inflated: r.inflated.as_ref().map(|i| Bytes {
                data: &i.data.data,
                total: i.data.total,
                dropped: false,
            }),
            violations: Violations::Wire(&r.violations),
        }
    }

    /// A frame event.
    pub fn of_event(f: &'a Frame) -> Self {
        let time_us = f.time.timestamp_micros();
        FrameView {
            form: Form::Trace,
            session: f.session,
            dir: f.dir,
            index: f.index,
            time_us,
            end_time_us: time_us,
            header: f.header(),
            payload: Bytes {
                data: &f.payload.bytes,
                total: f.payload_len,
                dropped: f.payload.dropped,
            },
            close: f.close.as_ref().map(|c| (c.code, c.reason.as_str())),
            inflated: f.inflated.as_ref().map(|i| Bytes {
                data: &i.payload.bytes,
                total: i.len,
                dropped: i.payload.dropped,
            }),
            violations: Violations::Trace(&f.violations),
        }
    }

    /// What the frame's message is made of.
    pub fn part(&self) -> Part {
        match self.header.opcode() {
            Opcode::Text | Opcode::Binary => Part::DataStart,
            Opcode::Continuation => Part::DataContinued,
            _ => Part::Own,
        }
    }

    /// What the frame carries of its message: its inflated part when compressed, else its
    /// payload.
    pub fn data(&self) -> Bytes<'a> {
        self.inflated.unwrap_or(self.payload)
    }
}

/// A message, borrowed: see the module documentation.
#[derive(Debug, Clone)]
pub struct MessageView<'a> {
    /// Where it comes from.
    pub form: Form,
    /// Who made it.
    pub origin: MessageOrigin,
    /// The frames wstap wrote, for a message it made.
    pub wire: Option<&'a [u8]>,
    /// The held message an edit replaced.
    pub held: Option<u64>,
    /// Session number.
    pub session: u64,
    /// Which way it went.
    pub dir: Direction,
    /// The opcode of its first frame.
    pub opcode: Opcode,
    /// How many frames it took.
    pub frames: u64,
    /// When its first frame began, µs since the epoch.
    pub time_us: i64,
    /// When its last frame ended.
    pub end_time_us: i64,
    /// Payload bytes on the wire (compressed, when compressed).
    pub wire_len: u64,
    /// Whether it was compressed.
    pub compressed: bool,
    /// Its data (inflated, when compressed); the whole is the message's length.
    pub data: Bytes<'a>,
    /// Rules the message as a whole breaks.
    pub violations: Violations<'a>,
    /// Whether it was cut short.
    pub incomplete: bool,
}

impl<'a> MessageView<'a> {
    /// A live message record of `session`.
    pub fn of_record(session: u64, r: &'a MessageRecord) -> Self {
        MessageView {
            form: Form::Analyzer,
            origin: MessageOrigin::Wire,
            wire: None,
            held: None,
            session,
            dir: r.direction,
            opcode: r.opcode,
            frames: r.frames,
            time_us: r.first_time.0,
            end_time_us: r.last_time.0,
            wire_len: r.wire_payload_len,
            compressed: r.compressed,
            data: Bytes {
                data: &r.data.data,
                total: r.data.total,
                dropped: false,
            },
            violations: Violations::Wire(&r.violations),
            incomplete: r.incomplete,
        }
    }

    /// A message event.
    pub fn of_event(m: &'a Message) -> Self {
        MessageView {
            form: Form::Trace,
            origin: m.origin,
            wire: m.wire.as_ref().map(|wire| &wire.bytes[..]),
            held: m.held,
            session: m.session,
            dir: m.dir,
            opcode: Opcode::from_bits(m.opcode),
            frames: m.frames,
            time_us: m.time.timestamp_micros(),
            end_time_us: m.end_time.timestamp_micros(),
            wire_len: m.wire_len,
            compressed: m.compressed,
            data: Bytes {
                data: &m.payload.bytes,
                total: m.len,
                dropped: m.payload.dropped,
            },
            violations: Violations::Trace(&m.violations),
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

    /// The close code a close message carries, when at least two bytes of it were kept.
    pub fn close_code(&self) -> Option<u16> {
        close_code_of(self.opcode, self.data.data)
    }
}

/// The close code in the data of a message with `opcode`, when at least two bytes of it
/// were kept.
pub fn close_code_of(opcode: Opcode, data: &[u8]) -> Option<u16> {
    match (opcode, data) {
        (Opcode::Close, [hi, lo, ..]) => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}
