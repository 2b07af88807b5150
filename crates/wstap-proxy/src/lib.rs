//! The wstap engine: an HTTP/1.1 forward proxy that relays WebSocket traffic byte for byte
//! and taps it.
//!
//! Clients reach it as a proxy (HTTP, or SOCKS5 with `socks`) or, on a reverse listener
//! (`reverse`), as if it were the server.
//!
//! Data flows one way: socket bytes -> the relay (forwarded at once) -> the tap (the
//! `wstap-wire` analyzer) -> records on the bus (`wstap-bus`) -> sinks, which live outside
//! the engine and depend only on the event model (`wstap-trace`).
//!
//! Inside, a connection is a sequence of stages (`stage`): requests (`requests`, `route`,
//! `exchange`), a `CONNECT` tunnel (`connect`), TLS interception (`mitm`), the WebSocket
//! relay (`websocket`, `relay`, `tap`) and the blind relay (`blind`); each runs as a
//! future of its own. Heads are read raw (`head`) so header case and order survive, and
//! bodies are relayed by their framing (`body`). Whatever wstap answers itself goes
//! through one path (`session::Session::refuse`) with a typed reason (`error`).
//!
//! Start a proxy with [`start`]; subscribe sinks on the [`EventBus`] first.
#![deny(missing_docs)]

mod blind;
mod body;
mod clock;
mod config;
mod conn;
mod connect;
mod error;
mod exchange;
mod guard;
mod head;
mod io;
mod listener;
pub mod mitm;
mod page;
mod parent;
mod relay;
mod requests;
mod respond;
mod reverse;
mod route;
mod session;
pub mod socks;
mod stage;
mod upstream;
mod websocket;

pub use config::ProxyConfig;
pub use error::ProxyError;
pub use head::{parse_request, Head, HeadError};
pub use listener::{start, RunningProxy};
pub use mitm::TlsConfig;
pub use parent::ParentProxy;
pub use reverse::{ReverseProxy, ReverseTls};
pub use wstap_bus::EventBus;
