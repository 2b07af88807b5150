//! The event bus: from the relay's taps to the sinks (trace file, console, ...).
//!
//! The relay publishes one batch per read: the records its tap decoded from those bytes.
//! Records travel as `wstap-wire` data ([`BusEvent::Wire`]); turning them into trace
//! events and JSON is the sinks' work, on their own threads, never the relay's.
//!
//! Two kinds of subscriber:
//! - **lossless** (the trace file): bounded; when it is full, the publisher waits, which
//!   slows the relay rather than losing an event;
//! - **lossy** (the console): bounded; when it is full, the batch is dropped for that
//!   subscriber and counted, so a slow terminal never slows traffic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use wstap_trace::{Event, Frame, Message};
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
    /// The trace event for this bus event.
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
}

/// A batch of events, shared by all subscribers.
pub type Batch = Arc<Vec<BusEvent>>;

/// Counts what a lossy subscriber missed.
#[derive(Debug, Default)]
pub struct DropCounter {
    batches: AtomicU64,
    events: AtomicU64,
}

impl DropCounter {
    /// Takes the number of events dropped since the last call.
    pub fn take_events(&self) -> u64 {
        self.batches.swap(0, Ordering::Relaxed);
        self.events.swap(0, Ordering::Relaxed)
    }
}

/// The bus: see the module documentation.
#[derive(Debug, Default)]
pub struct EventBus {
    lossless: Vec<mpsc::Sender<Batch>>,
    lossy: Vec<(mpsc::Sender<Batch>, Arc<DropCounter>)>,
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a subscriber that never misses an event; publishers wait when it lags
    /// `capacity` batches behind.
    pub fn subscribe_lossless(&mut self, capacity: usize) -> mpsc::Receiver<Batch> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.lossless.push(tx);
        rx
    }

    /// Adds a subscriber that misses batches rather than slow anyone down.
    pub fn subscribe_lossy(
        &mut self,
        capacity: usize,
    ) -> (mpsc::Receiver<Batch>, Arc<DropCounter>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counter = Arc::new(DropCounter::default());
        self.lossy.push((tx, Arc::clone(&counter)));
        (rx, counter)
    }

    /// Whether anyone listens (when nobody does, taps may skip building events).
    pub fn has_subscribers(&self) -> bool {
        !self.lossless.is_empty() || !self.lossy.is_empty()
    }

    /// Publishes one event.
    pub async fn publish_one(&self, event: Event) {
        self.publish(vec![BusEvent::Event(Box::new(event))]).await;
    }

    /// Publishes a batch: waits on lossless subscribers, never on lossy ones.
    pub async fn publish(&self, events: Vec<BusEvent>) {
        if events.is_empty() || !self.has_subscribers() {
            return;
        }
        let batch: Batch = Arc::new(events);
        for (tx, dropped) in &self.lossy {
            if tx.try_send(Arc::clone(&batch)).is_err() {
                dropped.batches.fetch_add(1, Ordering::Relaxed);
                dropped
                    .events
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
        for tx in &self.lossless {
            // A closed subscriber has reported its own failure; the relay carries on.
            let _ = tx.send(Arc::clone(&batch)).await;
        }
    }
}
