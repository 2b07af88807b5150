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
    /// Whether this is a frame or message record (as opposed to a session-level event).
    pub fn is_wire(&self) -> bool {
        matches!(self, BusEvent::Wire { .. })
    }

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
    lossy: Vec<LossySubscriber>,
}

#[derive(Debug)]
struct LossySubscriber {
    tx: mpsc::Sender<Batch>,
    dropped: Arc<DropCounter>,
    /// Whether it wants frame and message records, or only session-level events.
    wire: bool,
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

    /// Adds a subscriber that misses batches rather than slow anyone down. With `wire`
    /// false it only gets batches holding session-level events (a quiet console).
    pub fn subscribe_lossy(
        &mut self,
        capacity: usize,
        wire: bool,
    ) -> (mpsc::Receiver<Batch>, Arc<DropCounter>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(DropCounter::default());
        self.lossy.push(LossySubscriber {
            tx,
            dropped: Arc::clone(&dropped),
            wire,
        });
        (rx, dropped)
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
        let only_wire = events.iter().all(BusEvent::is_wire);
        let batch: Batch = Arc::new(events);
        for sub in &self.lossy {
            if only_wire && !sub.wire {
                continue;
            }
            if sub.tx.try_send(Arc::clone(&batch)).is_err() {
                sub.dropped.batches.fetch_add(1, Ordering::Relaxed);
                let lost = batch.len() as u64;
                sub.dropped.events.fetch_add(lost, Ordering::Relaxed);
            }
        }
        for tx in &self.lossless {
            // A closed subscriber has reported its own failure; the relay carries on.
            let _ = tx.send(Arc::clone(&batch)).await;
        }
    }
}
