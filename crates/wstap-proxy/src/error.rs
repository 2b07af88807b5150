//! The engine's errors.
//!
//! - [`ProxyError`]: what stops the proxy from starting. Public.
//! - [`SessionError`]: why wstap answers a client itself instead of relaying an upstream's
//!   answer. Each variant knows the status it is answered with ([`SessionError::status`],
//!   as [`HeadError::status`] does for bad heads) and says why in words, which become the
//!   answer's body, its `X-Wstap-Error` header and the record. Problems of single sessions
//!   are never errors of the proxy: they are answered and recorded, and the proxy serves on.
//! - [`UpstreamError`]: why an upstream could not be reached or did not answer (502).

use crate::head::HeadError;
use crate::target::Target;
use std::net::SocketAddr;
use std::time::Duration;

/// Why the proxy could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS interception could not be set up (the CA, `--upstream-ca`, `--ignore-hosts`).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsSetupError),
    /// A reverse listener needs TLS that is not there.
    #[error("the reverse listener on {listen} for {url} {needs}, and TLS interception is off")]
    ReverseNeedsTls {
        /// The listener.
        listen: SocketAddr,
        /// Its upstream URL.
        url: String,
        /// What it needs the CA or the upstream TLS settings for.
        needs: &'static str,
    },
}

/// Why wstap answers a request itself: see the module documentation.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// The request head could not be read.
    #[error(transparent)]
    Head(#[from] HeadError),
    /// The request is not one a proxy can forward as it is.
    #[error("{0}")]
    BadRequest(String),
    /// `CONNECT` inside a `CONNECT` tunnel.
    #[error("CONNECT inside a CONNECT tunnel")]
    NestedConnect,
    /// `--proxy-auth` is set and the request has no credentials.
    #[error("proxy authentication required (--proxy-auth is set)")]
    AuthMissing,
    /// The credentials are not the ones `--proxy-auth` names.
    #[error("wrong proxy credentials")]
    AuthWrong,
    /// The request is addressed to the proxy itself.
    #[error("{target} is wstap itself: {} it would loop", if *.tunnel { "tunnelling to" } else { "forwarding" })]
    Loop {
        /// The target.
        target: Target,
        /// Whether a tunnel was asked for (else a forwarded request).
        tunnel: bool,
    },
    /// `https://` or `wss://` in absolute form with interception off.
    #[error("{scheme}:// in absolute form needs TLS to the upstream, and TLS interception is off")]
    NeedsTls {
        /// The URL's scheme.
        scheme: String,
    },
    /// The upstream could not be reached or did not answer.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// `--max-connections` connections are open already.
    #[error("too many connections: wstap serves at most {0} at once (--max-connections)")]
    TooManyConnections(usize),
}

impl SessionError {
    /// The status code wstap answers with.
    pub fn status(&self) -> u16 {
        match self {
            SessionError::Head(e) => e.status(),
            SessionError::BadRequest(_) | SessionError::NestedConnect => 400,
            SessionError::AuthMissing | SessionError::AuthWrong => 407,
            SessionError::Loop { .. } => 508,
            SessionError::NeedsTls { .. } => 501,
            SessionError::Upstream(_) => 502,
            SessionError::TooManyConnections(_) => 503,
        }
    }

    /// Header lines the answer must carry besides the usual ones.
    pub fn extra_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            SessionError::AuthMissing | SessionError::AuthWrong => {
                &[("Proxy-Authenticate", "Basic realm=\"wstap\"")]
            }
            _ => &[],
        }
    }
}

/// Why an upstream could not be reached, or did not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// Connecting failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// Where to.
        target: Target,
        /// Why.
        source: std::io::Error,
    },
    /// Connecting took longer than `--connect-timeout`.
    #[error("connecting to {target} timed out after {after:?}")]
    ConnectTimeout {
        /// Where to.
        target: Target,
        /// The limit.
        after: Duration,
    },
    /// An `https://` or `wss://` request needs TLS to the upstream, and interception is off.
    #[error("TLS interception is off")]
    TlsOff,
    /// The host cannot be a TLS server name.
    #[error("{name:?} is not a valid TLS server name: {reason}")]
    ServerName {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The TLS handshake with the upstream took longer than `--handshake-timeout`.
    #[error("TLS handshake with {target} timed out after {after:?}")]
    TlsTimeout {
        /// Where to.
        target: Target,
        /// The limit.
        after: Duration,
    },
    /// The TLS handshake with the upstream failed (its certificate, say).
    #[error("TLS handshake with {target} ({name}) failed: {source}")]
    Tls {
        /// Where to.
        target: Target,
        /// The server name asked for.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// The parent proxy (`--upstream-proxy`) could not be reached, or did not answer.
    #[error("the upstream proxy {parent} cannot be used: {reason}")]
    ParentUnreachable {
        /// The parent.
        parent: String,
        /// Why.
        reason: String,
    },
    /// The parent proxy refused to open a tunnel.
    #[error("the upstream proxy {parent} answered CONNECT {target} with {status_line:?}{}", because.as_ref().map(|b| format!(": {b}")).unwrap_or_default())]
    ParentRefused {
        /// The parent.
        parent: String,
        /// Where to.
        target: Target,
        /// Its status line, as sent.
        status_line: String,
        /// The first line of its answer's body, when it said why.
        because: Option<String>,
    },
    /// Inside a CONNECT tunnel the upstream is fixed, and it closed.
    #[error("the tunnel's upstream connection is closed")]
    TunnelClosed,
    /// Writing the request upstream failed.
    #[error("sending the request to {target} failed: {source}")]
    Send {
        /// Where to.
        target: Target,
        /// Why.
        source: std::io::Error,
    },
    /// The upstream closed without answering.
    #[error("the upstream closed the connection without responding")]
    NoResponse,
    /// The upstream's answer is not an HTTP response head (or took too long).
    #[error("upstream response: {0}")]
    BadResponse(HeadError),
}
