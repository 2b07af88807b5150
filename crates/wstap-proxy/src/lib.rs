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
//! The rooms, from the top: each imports only from rooms below it.
//! - `listen/`: accepting connections: the HTTP proxy port, SOCKS5 (`socks`) and reverse
//!   listeners (`reverse`).
//! - `conn`: the one driver of a connection's stages.
//! - The stage handlers: `http/` (requests: bodies relayed by their framing, routing,
//!   exchanges, wstap's page), `tunnel` (a `CONNECT` tunnel and the sniffing of its first
//!   bytes), `intercept` (one intercepted TLS tunnel), `relay/` (the drive loop that runs
//!   the relay core, configured for a WebSocket or a blind tunnel).
//! - `stage`: the stages, as data.
//! - `session` (a connection's record, and `Session::refuse`, the one way wstap answers
//!   for itself) and `upstream/` (dialing, directly or through a parent proxy).
//! - What every room shares: `head` (heads read raw so header case and order survive),
//!   `respond`, `guard`, `tls/` (the CA, the interceptor, the legs), `config/`, `target`,
//!   `error`, `io`, `clock`.
//!
//! No module imports one that imports it back, file by file or room by room (checked
//! over `use crate::`, `crate::` and `super::` paths).
//!
//! Start a proxy with [`start`]; subscribe sinks on the [`EventBus`] first.
#![deny(missing_docs)]

mod clock;
mod config;
mod conn;
mod error;
mod guard;
mod head;
mod http;
mod intercept;
mod io;
mod listen;
mod relay;
mod respond;
mod session;
mod stage;
mod target;
pub mod tls;
mod tunnel;
mod upstream;

pub use config::reverse::{ReverseProxy, ReverseTls};
pub use config::ProxyConfig;
pub use error::ProxyError;
pub use head::{
    parse_request, take_request, take_response, Head, HeadError, Request, RequestLine, Response,
    StatusLine, MAX_HEAD, MAX_HEADERS, MAX_REQUEST_LINE,
};
pub use listen::socks;
pub use listen::{start, RunningProxy};
pub use tls::TlsConfig;
pub use upstream::parent::ParentProxy;
pub use wstap_bus::EventBus;
