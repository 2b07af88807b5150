//! The wstap engine: an HTTP/1.1 forward proxy that relays WebSocket traffic byte for byte
//! and taps it.
//!
//! Data flows one way: socket bytes -> [`relay`] (forwarded at once) -> [`tap`] (the
//! `wstap-wire` decoder) -> [`events`] -> sinks (the [`trace_sink`], the console, ...).
//!
//! - [`listener`]: accept loops, limits and shutdown; [`conn`]: one client connection,
//!   run as a sequence of [`conn::Stage`]s (request loop, CONNECT, TLS interception,
//!   WebSocket relay, blind tunnel), each its own future; [`tunnel`]: `CONNECT`;
//!   [`exchange`]: one forwarded request/response; [`websocket`]: the relay after `101`.
//! - [`head`] and [`body`]: HTTP/1 heads read raw (so header case and order survive) and
//!   bodies relayed by their framing.
//! - [`mitm`]: the CA and TLS interception; [`page`]: `http://wstap/`; [`guard`]: proxy
//!   authentication and loop refusal.
//!
//! Start a proxy with [`start`], subscribe sinks on the [`EventBus`] first.
#![deny(missing_docs)]

pub mod body;
pub mod config;
pub mod conn;
pub mod error;
pub mod events;
pub mod exchange;
pub mod guard;
pub mod head;
pub mod io;
pub mod listener;
pub mod mitm;
pub mod page;
pub mod relay;
pub mod respond;
pub mod session;
pub mod tap;
pub mod trace_sink;
pub mod tunnel;
pub mod upstream;
pub mod websocket;

pub use config::ProxyConfig;
pub use error::ProxyError;
pub use events::{Batch, BusEvent, DropCounter, EventBus, LosslessReceiver};
pub use listener::{start, RunningProxy};
