//! The wstap engine: an HTTP/1.1 forward proxy that relays WebSocket traffic byte for byte
//! and taps it.
//!
//! Clients reach it as a proxy (HTTP, or SOCKS5 with `socks`) or, on a reverse listener
//! (`reverse`), as if it were the server.
//!
//! Data flows one way: socket bytes -> the drive loop -> the relay core (`wstap-relay`:
//! every decision, and the `wstap-wire` analyzer) -> records on the bus (`wstap-bus`) ->
//! sinks, which live outside the engine and depend only on the event model
//! (`wstap-trace`).
//!
//! The rooms:
//! - `listen/`: accepting connections: the HTTP proxy port, SOCKS5 (`socks`) and reverse
//!   listeners (`reverse`).
//! - `conn`: the one driver of a connection's stages; `stage`: the stages, as data.
//! - `http/`: requests: heads read raw (`head`) so header case and order survive, bodies
//!   relayed by their framing (`body`), routing, exchanges, wstap's own answers and page.
//! - `tunnel`: a `CONNECT` tunnel and the sniffing of its first bytes.
//! - `mitm/`: TLS interception: the CA, the two legs, the handshake.
//! - `upstream/`: dialing, directly or through a parent proxy; `target`: addresses and
//!   URLs as written.
//! - `relay/`: the drive loop that runs the relay core, and what configures it for a
//!   WebSocket (`websocket`) or a blind tunnel (`blind`).
//! - `session`, `error`, `io`, `config`, `clock`: what every room shares. Whatever wstap
//!   answers itself goes through one path (`session::Session::refuse`) with a typed reason
//!   (`error`).
//!
//! No module imports one that imports it back (checked over `use crate::` paths).
//!
//! Start a proxy with [`start`]; subscribe sinks on the [`EventBus`] first.
#![deny(missing_docs)]

mod clock;
mod config;
mod conn;
mod error;
mod http;
mod io;
mod listen;
pub mod mitm;
mod relay;
mod session;
mod stage;
mod target;
mod tunnel;
mod upstream;

pub use config::ProxyConfig;
pub use error::ProxyError;
pub use http::head::{parse_request, Head, HeadError, Request, RequestLine, Response, StatusLine};
pub use http::reverse::{ReverseProxy, ReverseTls};
pub use listen::socks;
pub use listen::{start, RunningProxy};
pub use mitm::TlsConfig;
pub use upstream::parent::ParentProxy;
pub use wstap_bus::EventBus;
