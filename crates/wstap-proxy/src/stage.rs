//! A connection as a sequence of stages, as data.
//!
//! A client connection starts by reading requests; a `CONNECT` turns it into a tunnel,
//! whose first bytes decide between more requests (plain HTTP inside), TLS interception
//! and a blind relay; a WebSocket handshake the upstream accepts turns it into a WebSocket
//! relay. Each [`Stage`] holds exactly what its step needs; the one driver
//! (`crate::conn`) starts that step as a boxed future of its own that returns the next
//! stage. A long-lived stage (a WebSocket relay) therefore holds only its own state, not
//! the frames of every stage that led to it: that is what keeps idle sessions small (28
//! KiB before, 5.5 KiB after). This module only names the stages: the handlers import it,
//! it imports none of them.

use crate::head::Request;
use crate::io::{Client, Upstream};
use crate::session::Session;
use crate::target::Target;
use crate::tls::Interceptor;
use std::sync::Arc;
use wstap_control::SessionInfo;
use wstap_trace::SessionKind;
use wstap_wire::handshake::HandshakeAnalysis;

/// Where a connection's requests come from, which decides where they go.
#[derive(Debug, Clone)]
pub(crate) enum Scope {
    /// The proxy's own port: absolute-form requests (forwarded to their URL's host) and
    /// CONNECT.
    Proxy,
    /// Inside a CONNECT tunnel: origin-form requests, always to the tunnel's target.
    Tunnel {
        /// The tunnel's target.
        target: Target,
        /// Whether wstap terminated TLS in it.
        tls: bool,
    },
    /// A reverse listener: origin-form requests, to its upstream URL.
    Reverse(Arc<crate::config::reverse::ReverseProxy>),
}

/// The request stage: a connection that reads requests (one per run).
pub(crate) struct Requests {
    /// The session.
    pub session: Session,
    /// The client.
    pub client: Client,
    /// Proxy port or tunnel.
    pub scope: Scope,
    /// An upstream connection already open (the tunnel's, or one kept alive).
    pub upstream: Option<Upstream>,
    /// Requests served so far on this connection.
    pub served: u64,
}

/// What a connection does next: see the module documentation.
pub(crate) enum Stage {
    /// Read the next request and answer it.
    Requests(Requests),
    /// A `CONNECT` request was read: dial its target, answer, see what comes.
    Connect {
        /// The session.
        session: Session,
        /// The client.
        client: Client,
        /// The CONNECT request.
        head: Request,
    },
    /// A tunnel carries TLS that wstap intercepts.
    InterceptTls {
        /// The session.
        session: Session,
        /// The client.
        client: Client,
        /// The tunnel's upstream connection.
        upstream: Upstream,
        /// Interception settings.
        tls: Arc<Interceptor>,
    },
    /// The upstream accepted a WebSocket handshake: relay and decode frames.
    WebSocket {
        /// The session.
        session: Session,
        /// The client.
        client: Client,
        /// The upstream.
        upstream: Upstream,
        /// What the handshake said.
        analysis: Box<HandshakeAnalysis>,
        /// What breakpoints know of the session, when it can be intercepted.
        info: Option<Box<SessionInfo>>,
    },
    /// Relay bytes without looking at them.
    Blind {
        /// The session.
        session: Session,
        /// The client.
        client: Client,
        /// The upstream.
        upstream: Upstream,
        /// What the session is recorded as.
        kind: SessionKind,
    },
    /// A request for wstap's own page.
    Page {
        /// The session.
        session: Session,
        /// The client.
        client: Client,
        /// The request.
        head: Request,
    },
    /// The session has ended and recorded its end.
    Done,
}

impl Stage {
    /// The session the stage serves; `None` once it is done.
    pub(crate) fn session_mut(&mut self) -> Option<&mut Session> {
        match self {
            Stage::Requests(Requests { session, .. })
            | Stage::Connect { session, .. }
            | Stage::InterceptTls { session, .. }
            | Stage::WebSocket { session, .. }
            | Stage::Blind { session, .. }
            | Stage::Page { session, .. } => Some(session),
            Stage::Done => None,
        }
    }
}
