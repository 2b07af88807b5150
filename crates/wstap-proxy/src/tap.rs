//! The tap: one direction's wire analyzer, fed with bytes after they were forwarded.
//!
//! A [`Tap`] owns a [`StreamAnalyzer`] and turns what it decodes into bus events for one
//! session. It also keeps the few facts the session's end needs: the frame count and the
//! first close frame. It sees bytes only after the relay has written them on, and it
//! unmasks them in the relay's buffer, which is free to change by then; with `--strict`
//! it judges a copy first ([`Tap::judge`]).

use wstap_trace::BusEvent;
use wstap_wire::{
    AnalyzerConfig, CloseFrame, Direction, Opcode, PartialFrame, Record, StreamAnalyzer, Timestamp,
    Verdict,
};

/// One direction's tap: see the module documentation.
#[derive(Debug)]
pub(crate) struct Tap {
    session: u64,
    analyzer: StreamAnalyzer,
    records: Vec<Record>,
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
        self.analyzer.feed(bytes, time, &mut self.records);
        self.drain()
    }

    /// Judges a copy of `bytes` *before* they are forwarded (for `--strict`): returns the
    /// events of the frames up to the first one that breaks the protocol, and the verdict
    /// (how many bytes may be forwarded, and the offending frame). Nothing after that
    /// frame is decoded.
    pub fn judge(&mut self, bytes: &[u8], time: Timestamp) -> (Vec<BusEvent>, Verdict) {
        let verdict = self.analyzer.judge(bytes, time, &mut self.records);
        (self.drain(), verdict)
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
                if frame.header.opcode() == Opcode::Close && self.first_close.is_none() {
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
