//! The wstap event model and what is made of it: NDJSON traces, session JSON and HAR.
//!
//! Everything the proxy observes becomes an [`Event`]: a session starting, an HTTP
//! exchange, a WebSocket handshake, a frame, a message, a session ending. Events are
//! plain serde data; the field names documented in `docs/trace-format.md` are a contract.
//!
//! - [`ndjson`]: one event per line, written as it happens ([`TraceWriter`]) and read back
//!   ([`TraceReader`]), tolerating the torn last line a killed writer leaves.
//! - [`export`]: per-session JSON documents and HAR 1.2 that Chrome DevTools imports.
//! - [`convert`]: events from `wstap-wire` records, so the proxy's relay task only moves
//!   data and the JSON work happens wherever the sink runs.
//! - [`sink`]: what the engine publishes to its sinks ([`sink::BusEvent`]) and what a
//!   lossless sink is ([`sink::Sink`]); [`TraceWriter`] is one.
//!
//! The crate does no I/O of its own beyond `std::io::Write`/`BufRead` and knows nothing
//! of tokio.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod convert;
mod direction;
pub mod event;
pub mod export;
pub mod fast;
pub mod ndjson;
mod payload;
pub mod sink;
mod time;
pub mod view;

pub use event::*;
pub use ndjson::{TraceError, TraceFile, TraceReader, TraceWriter};
pub use payload::Payload;
pub use sink::{Batch, BusEvent, Sink};
