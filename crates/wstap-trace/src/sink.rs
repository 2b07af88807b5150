//! What flows from the engine to the sinks, and what a sink is.
//!
//! The relay publishes one [`Batch`] per read: the records its tap decoded from those
//! bytes, as `wstap-wire` data ([`BusEvent::Wire`]). Turning them into trace lines, rows
//! or screens is each sink's work, on its own thread, never the relay's. Session-level
//! events (start, handshake, HTTP exchange, end) travel already in [`Event`] form.
//!
//! A [`Sink`] that must not lose anything (the trace file, the capture store) is driven by
//! the bus's lossless subscription on a thread of its own: it is handed every event in
//! order and told when to make what it has written durable.

use crate::event::{Event, Frame, Message};
use std::sync::Arc;
use wstap_wire::{FrameRecord, MessageRecord, Record};

/// What flows on the bus.
#[derive(Debug, Clone)]
pub enum BusEvent {
    /// A frame or message record from a session's tap.
    Wire {
        /// The session.
        session: u64,
        /// The record.
        record: Record,
    },
    /// Any other event, already in trace form (boxed: these are rare, frames are not).
    Event(Box<Event>),
}

impl BusEvent {
    /// Whether this is a frame or message record (as opposed to a session-level event).
    pub fn is_wire(&self) -> bool {
        matches!(self, BusEvent::Wire { .. })
    }

    /// The session the event belongs to (`None` for notices).
    pub fn session(&self) -> Option<u64> {
        match self {
            BusEvent::Wire { session, .. } => Some(*session),
            BusEvent::Event(event) => event.session(),
        }
    }

    /// The trace event for this bus event (a copy: for readers that want owned events).
    pub fn to_event(&self) -> Event {
        match self {
            BusEvent::Wire {
                session,
                record: Record::Frame(f),
            } => Event::Frame(Frame::from_record(*session, f.clone())),
            BusEvent::Wire {
                session,
                record: Record::Message(m),
            } => Event::Message(Message::from_record(*session, m.clone())),
            BusEvent::Event(e) => (**e).clone(),
        }
    }

    /// Roughly the heap memory the event holds, by itself: its payload captures.
    /// Session-level events are few and small; their size is a guess, on purpose high.
    fn heap_bytes(&self) -> usize {
        match self {
            BusEvent::Wire {
                record: Record::Frame(frame),
                ..
            } => frame_bytes(frame),
            BusEvent::Wire {
                record: Record::Message(message),
                ..
            } => message.data.data.len(),
            BusEvent::Event(_) => 1024,
        }
    }
}

/// The bytes a frame record's captures hold.
fn frame_bytes(frame: &FrameRecord) -> usize {
    frame.payload.data.len() + frame.inflated.as_ref().map_or(0, |i| i.data.data.len())
}

/// Whether `message` holds (a prefix of) `frame`'s bytes rather than its own.
fn shares_bytes(frame: &FrameRecord, message: &MessageRecord) -> bool {
    let data = &message.data.data;
    let held = [
        Some(&frame.payload.data),
        frame.inflated.as_ref().map(|i| &i.data.data),
    ];
    !data.is_empty()
        && held
            .into_iter()
            .flatten()
            .any(|bytes| bytes.as_ptr() == data.as_ptr())
}

/// Roughly the heap memory a batch holds: its events' payload captures summed (a
/// session-level event guessed high), with the bytes a message of one frame shares with
/// that frame (its record comes right after the frame's, in the same batch) counted once.
pub fn batch_heap_bytes(batch: &[BusEvent]) -> usize {
    let mut total = 0;
    let mut last_frame = None;
    for event in batch {
        total += match event {
            BusEvent::Wire {
                record: Record::Message(message),
                ..
            } if last_frame.is_some_and(|frame| shares_bytes(frame, message)) => 0,
            other => other.heap_bytes(),
        };
        last_frame = match event {
            BusEvent::Wire {
                record: Record::Frame(frame),
                ..
            } => Some(frame),
            _ => None,
        };
    }
    total
}

/// A batch of events, shared by all subscribers.
pub type Batch = Arc<Vec<BusEvent>>;

/// A subscriber that records events somewhere durable, one at a time and in order.
pub trait Sink: Send + 'static {
    /// What writing can fail with.
    type Error: std::fmt::Display;

    /// What the sink is, for messages: `"trace"`, `"capture"`.
    fn what(&self) -> String;

    /// Records one event (buffering is the sink's business).
    fn write(&mut self, event: &BusEvent) -> Result<(), Self::Error>;

    /// Records a batch of events, in order, as one read of the relay produced them (a
    /// frame and the message it ends come together). By default, one by one.
    fn write_batch(&mut self, batch: &[BusEvent]) -> Result<(), Self::Error> {
        batch.iter().try_for_each(|event| self.write(event))
    }

    /// Makes everything written so far visible to readers and survive the process being
    /// killed: flush a file, commit a transaction.
    fn flush(&mut self) -> Result<(), Self::Error>;

    /// Flushes for the last time and finishes whatever the sink's format needs finished
    /// (the capture marks itself complete).
    fn close(mut self) -> Result<(), Self::Error>
    where
        Self: Sized,
    {
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wstap_wire::{AnalyzerConfig, Direction, FrameBuilder, StreamAnalyzer, Timestamp};

    /// The bus events of `wire`, read as a client's stream with capture limits `frame`
    /// and `message`.
    fn batch(wire: &[u8], frame: usize, message: usize) -> Vec<BusEvent> {
        let config = AnalyzerConfig {
            max_frame_capture: frame,
            max_message_capture: message,
            ..AnalyzerConfig::default()
        };
        let mut analyzer = StreamAnalyzer::new(Direction::ClientToServer, config);
        let mut records = Vec::new();
        analyzer.feed(wire, Timestamp(0), &mut records);
        records
            .into_iter()
            .map(|record| BusEvent::Wire { session: 1, record })
            .collect()
    }

    #[test]
    fn a_batch_counts_the_bytes_a_message_shares_with_its_frame_once() {
        let masked = |b: FrameBuilder| b.mask([1, 2, 3, 4]);
        let whole = masked(FrameBuilder::binary()).encode(&[7; 1000]);
        let shared = batch(&whole, 1 << 16, 1 << 16);
        assert_eq!(shared.len(), 2);
        assert_eq!(batch_heap_bytes(&shared), 1000);
        // A message that keeps more than its frame gathers bytes of its own.
        let own = batch(&whole, 100, 1 << 16);
        assert_eq!(batch_heap_bytes(&own), 100 + 1000);
        // So does a message of two frames.
        let mut two = masked(FrameBuilder::binary().fin(false)).encode(&[7; 600]);
        two.extend(masked(FrameBuilder::continuation()).encode(&[8; 400]));
        let fragmented = batch(&two, 1 << 16, 1 << 16);
        assert_eq!(fragmented.len(), 3);
        assert_eq!(batch_heap_bytes(&fragmented), 600 + 400 + 1000);
    }
}
