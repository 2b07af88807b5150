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
use wstap_wire::Record;

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

    /// Roughly the heap memory the event holds: its payload captures. Session-level events
    /// are few and small; their size is a guess, on purpose high. A message of one frame
    /// shares that frame's bytes, and is counted as if it did not: high again.
    pub fn heap_bytes(&self) -> usize {
        match self {
            BusEvent::Wire {
                record: Record::Frame(frame),
                ..
            } => {
                frame.payload.data.len() + frame.inflated.as_ref().map_or(0, |i| i.data.data.len())
            }
            BusEvent::Wire {
                record: Record::Message(message),
                ..
            } => message.data.data.len(),
            BusEvent::Event(_) => 1024,
        }
    }
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
