//! The engine's settings.

pub mod reverse;

use crate::tls::TlsConfig;
use crate::upstream::parent::ParentProxy;
use reverse::ReverseProxy;
use std::net::SocketAddr;
use std::time::Duration;

/// How the proxy runs. `Default` is what `wstap` with no options uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Payload bytes captured per frame and per message for the log and trace.
    pub max_capture: usize,
    /// How long a client may take to send a complete request head, and an upstream to
    /// answer a WebSocket handshake.
    pub handshake_timeout: Duration,
    /// How long connecting to an upstream may take.
    pub connect_timeout: Duration,
    /// TLS interception; `None` relays TLS tunnels blind.
    pub tls: Option<TlsConfig>,
    /// At most this many client connections at once; more get `503`.
    pub max_connections: Option<usize>,
    /// `user:password` that clients must present with Basic `Proxy-Authorization`.
    pub proxy_auth: Option<String>,
    /// Close both sides (1002, or 1007 for bad UTF-8) at the first violation instead of
    /// relaying it.
    pub strict: bool,
    /// A parent HTTP proxy every upstream connection goes through (but those it bypasses).
    pub upstream_proxy: Option<ParentProxy>,
    /// Addresses to listen on for SOCKS5 clients.
    pub socks5: Vec<SocketAddr>,
    /// Reverse listeners, each forwarding to its URL.
    pub reverse: Vec<ReverseProxy>,
    /// Where breakpoints and commands reach live WebSocket sessions; `None`: sessions
    /// cannot be intercepted (and pay nothing for it).
    pub control: Option<wstap_control::Control>,
    /// The number of the first session (1; more when the capture it records into holds
    /// sessions already).
    pub first_session: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8888))],
            max_capture: 64 * 1024,
            handshake_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            tls: None,
            max_connections: None,
            proxy_auth: None,
            strict: false,
            upstream_proxy: None,
            socks5: Vec::new(),
            reverse: Vec::new(),
            control: None,
            first_session: 1,
        }
    }
}
