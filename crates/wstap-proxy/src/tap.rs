//! The tap: one direction's wire analyzer, fed with bytes after they were forwarded.
//!
//! A [`Tap`] owns a [`StreamAnalyzer`] and turns what it decodes into bus events for one
//! session. It also keeps the few facts the session's end needs: frame and byte counts and
//! the first close frame. It sees bytes only after the relay has written them on, and it
//! unmasks them in the relay's buffer, which is free to change by then.

use crate::events::BusEvent;
use wstap_wire::{
    AnalyzerConfig, CloseFrame, Direction, Opcode, PartialFrame, Record, StreamAnalyzer, Timestamp,
    Violation,
};

/// One direction's tap: see the module documentation.
#[derive(Debug)]
pub struct Tap {
    session: u64,
    analyzer: StreamAnalyzer,
    records: Vec<Record>,
    /// Bytes observed.
    pub bytes: u64,
    /// The first close frame this direction sent, and when.
    pub first_close: Option<(Timestamp, CloseFrame)>,
}

impl Tap {
    /// A tap for `direction` of `session`.
    pub fn new(session: u64, direction: Direction, config: AnalyzerConfig) -> Self {
        Tap {
            session,
            analyzer: StreamAnalyzer::new(direction, config),
            records: Vec::new(),
            bytes: 0,
            first_close: None,
        }
    }

    /// The direction tapped.
    pub fn direction(&self) -> Direction {
        self.analyzer.direction()
    }

    /// Whether this direction is between frames.
    pub fn at_frame_boundary(&self) -> bool {
        self.analyzer.at_frame_boundary()
    }

    /// Complete frames seen.
    pub fn frames(&self) -> u64 {
        self.analyzer.frames_seen()
    }

    /// Decodes `bytes` (which arrived at `time`) and returns the events they complete.
    pub fn observe(&mut self, bytes: &mut [u8], time: Timestamp) -> Vec<BusEvent> {
        self.bytes += bytes.len() as u64;
        self.analyzer.feed(bytes, time, &mut self.records);
        self.drain()
    }

    /// Decodes a copy of `bytes` *before* they are forwarded (for `--strict`): returns the
    /// events and the first violation the bytes complete or begin, if any. The caller then
    /// forwards `bytes` unchanged, or withholds them.
    pub fn inspect(&mut self, bytes: &[u8], time: Timestamp) -> (Vec<BusEvent>, Option<Violation>) {
        let mut copy = bytes.to_vec();
        let events = self.observe(&mut copy, time);
        let in_records = events.iter().find_map(|e| match e {
            BusEvent::Wire {
                record: Record::Frame(frame),
                ..
            } => frame.violations.first().cloned(),
            _ => None,
        });
        let violation = in_records.or_else(|| self.analyzer.pending_violations().first().cloned());
        (events, violation)
    }

    /// Ends the stream: events for a message left open, and a frame cut off, if any.
    pub fn finish(&mut self, time: Timestamp) -> (Vec<BusEvent>, Option<PartialFrame>) {
        let partial = self.analyzer.finish(time, &mut self.records);
        (self.drain(), partial)
    }

    fn drain(&mut self) -> Vec<BusEvent> {
        if self.records.is_empty() {
            return Vec::new();
        }
        let session = self.session;
        let mut events = Vec::with_capacity(self.records.len());
        for record in self.records.drain(..) {
            if let Record::Frame(frame) = &record {
                if frame.header.opcode == Opcode::Close && self.first_close.is_none() {
                    if let Some(close) = &frame.close {
                        self.first_close = Some((frame.time, close.clone()));
                    }
                }
            }
            events.push(BusEvent::Wire { session, record });
        }
        events
    }
}
