//! The wstap event bus: what the engine sees, carried to the sinks.
//!
//! The engine publishes batches of [`BusEvent`]s ([`EventBus::publish`]); sinks subscribe
//! before it starts. A lossless subscriber (the trace file, the capture store) never
//! misses an event and may hold the relay up when it falls too far behind; a lossy one
//! (the console) misses batches rather than slow anyone down, and says how many. A
//! lossless [`Sink`] runs on a thread of its own with [`driver::spawn`].
//!
//! Sinks depend on this crate and the event model (`wstap-trace`), never on the engine.
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod bus;
pub mod driver;

pub use bus::{DropCounter, EventBus, LosslessReceiver};
pub use driver::{yield_to_relay, Cadence, SinkStats};
pub use wstap_trace::{Batch, BusEvent, Sink};
