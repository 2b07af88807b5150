//! A session: one client connection (or CONNECT tunnel) from accept to close.
//!
//! The session numbers events, announces itself, and ends with exactly one `session_end`,
//! whatever path the connection took. Handlers only note what they learn (where the
//! session goes, how the client asked, the TLS legs and the upstream hop); the session
//! alone turns that into `session_start`, once, at the first of: the stage driver moving
//! on to the next stage, the upstream connection of a request being made, its first
//! event, its end. Nothing of a session therefore reaches the bus before its start. When wstap must answer the
//! client itself, [`Session::refuse`] is the one way it does: it writes the error response,
//! records it as an exchange answered by the proxy, and ends the session as an error.

use crate::error::SessionError;
use crate::guard::ProxyAuth;
use crate::head::Request;
use crate::io::BoxWrite;
use crate::respond::send_error;
use crate::tls::Interceptor;
use crate::ProxyConfig;
use chrono::Utc;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use wstap_bus::EventBus;
use wstap_trace::convert::Relayed;
use wstap_trace::{
    CutFrame, Event, Exchange, Forwarded, HttpExchange, Outcome, ParentHop, PerDirection, RawHeads,
    RequestHead, Responder, SessionClose, SessionEnd, SessionKind, SessionStart, TlsLeg, Via,
    Withheld,
};

/// What every session shares: settings, the bus, the session counter.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Settings.
    pub config: ProxyConfig,
    /// Where events go.
    pub bus: EventBus,
    /// TLS interception, when on.
    pub tls: Option<Arc<Interceptor>>,
    /// Credentials clients must present, when `--proxy-auth` is set.
    pub auth: Option<ProxyAuth>,
    /// The addresses the proxy listens on (requests to them are refused, not looped).
    pub listening: Vec<SocketAddr>,
    /// Client connections open now.
    pub active: AtomicUsize,
    /// Turns true when the proxy stops: sessions still open then wrap up and record their end.
    closing: watch::Receiver<bool>,
    next_session: AtomicU64,
    /// The first number handed out.
    first_session: u64,
}

impl Shared {
    /// Shared state for a proxy with `config`, publishing on `bus`.
    pub fn new(
        config: ProxyConfig,
        bus: EventBus,
        tls: Option<Arc<Interceptor>>,
        listening: Vec<SocketAddr>,
        closing: watch::Receiver<bool>,
    ) -> Self {
        let first_session = config.first_session.max(1);
        Shared {
            closing,
            auth: config.proxy_auth.as_deref().map(ProxyAuth::new),
            config,
            bus,
            tls,
            listening,
            active: AtomicUsize::new(0),
            next_session: AtomicU64::new(first_session),
            first_session,
        }
    }

    /// Session numbers handed out so far.
    pub fn sessions_started(&self) -> u64 {
        self.next_session.load(Ordering::Relaxed) - self.first_session
    }

    /// Resolves once the proxy has told open sessions to wrap up.
    pub async fn stopping(&self) {
        let mut closing = self.closing.clone();
        // An error means the proxy is gone altogether: stopping all the same.
        let _ = closing.wait_for(|closing| *closing).await;
    }
}

/// One session: see the module documentation.
#[derive(Debug)]
pub(crate) struct Session {
    /// Session number.
    pub id: u64,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// The client's address.
    pub client: SocketAddr,
    /// The listener the client connected to, as its index in `shared.listening` (a
    /// session lives as long as its connection: it is kept small).
    listener: u16,
    started: Instant,
    /// The wall time of `started`: `session_start`'s time.
    started_at: chrono::DateTime<Utc>,
    announced: bool,
    /// How a tunnel of this session was asked for: HTTP `CONNECT`, SOCKS5, or a reverse
    /// listener's connection (set by the listener that accepted it).
    pub tunnel_via: Via,
    /// What `session_start` will say of the connections, learnt before it is announced.
    facts: Option<Box<Facts>>,
}

/// Where a session goes and how the client asked, for its `session_start`.
#[derive(Debug)]
struct Destination {
    target: String,
    via: Via,
    /// wstap terminated TLS.
    tls: bool,
}

/// Facts of a session's connections, gathered until its `session_start`.
#[derive(Debug, Default)]
struct Facts {
    destination: Option<Destination>,
    client_tls: Option<TlsLeg>,
    upstream_tls: Option<TlsLeg>,
    upstream_proxy: Option<ParentHop>,
}

/// How a session ended, for its `session_end` event.
#[derive(Debug, Default)]
pub(crate) struct Ending {
    /// The close handshake, if one began.
    pub close: Option<SessionClose>,
    /// Frames per direction.
    pub frames: PerDirection,
    /// Bytes per direction.
    pub bytes: PerDirection,
    /// What went wrong.
    pub error: Option<String>,
    /// Frames cut off.
    pub cut_frames: Vec<CutFrame>,
    /// What `--strict` withheld.
    pub withheld: Option<Withheld>,
}

impl Ending {
    /// An ending that says what went wrong and nothing else.
    pub fn failed(why: impl Into<String>) -> Self {
        Ending {
            error: Some(why.into()),
            ..Ending::default()
        }
    }
}

impl Session {
    /// A new session for a client at `client` that connected to `listener` (one of
    /// `shared.listening`).
    pub fn new(shared: Arc<Shared>, client: SocketAddr, listener: SocketAddr) -> Self {
        let id = shared.next_session.fetch_add(1, Ordering::Relaxed);
        let listener = shared
            .listening
            .iter()
            .position(|&addr| addr == listener)
            .and_then(|i| u16::try_from(i).ok())
            .unwrap_or(u16::MAX);
        Session {
            id,
            shared,
            client,
            listener,
            started: Instant::now(),
            started_at: Utc::now(),
            announced: false,
            tunnel_via: Via::Connect,
            facts: None,
        }
    }

    fn facts(&mut self) -> &mut Facts {
        self.facts.get_or_insert_with(Box::default)
    }

    /// Notes the TLS connection the client made with wstap, for `session_start`.
    pub fn note_client_tls(&mut self, leg: TlsLeg) {
        self.facts().client_tls = Some(leg);
    }

    /// Notes how the (first) upstream connection was made, for `session_start`.
    pub fn note_upstream(&mut self, parent: Option<ParentHop>, tls: Option<TlsLeg>) {
        if self.announced || (parent.is_none() && tls.is_none()) {
            return;
        }
        let facts = self.facts();
        facts.upstream_proxy = facts.upstream_proxy.take().or(parent);
        facts.upstream_tls = facts.upstream_tls.take().or(tls);
    }

    /// When the session began, µs since the epoch.
    pub fn started_us(&self) -> i64 {
        self.started_at.timestamp_micros()
    }

    /// The bus.
    pub fn bus(&self) -> &EventBus {
        &self.shared.bus
    }

    /// Notes where the session goes, how the client asked (`via`), and whether wstap
    /// terminated TLS: what `session_start` will say. The first note stands.
    pub fn note_target(&mut self, target: impl Into<String>, via: Via, tls: bool) {
        if self.announced {
            return;
        }
        let facts = self.facts();
        if facts.destination.is_none() {
            facts.destination = Some(Destination {
                target: target.into(),
                via,
                tls,
            });
        }
    }

    /// Notes an intercepted TLS tunnel's target, with both legs' parameters.
    pub fn note_tls_tunnel(&mut self, target: &str, client: TlsLeg, upstream: TlsLeg) {
        self.note_client_tls(client);
        self.note_upstream(None, Some(upstream));
        self.note_target(target, self.tunnel_via, true);
    }

    /// Whether `session_start` is due: not published yet, and a target was noted.
    pub fn start_is_due(&self) -> bool {
        !self.announced
            && self
                .facts
                .as_ref()
                .is_some_and(|facts| facts.destination.is_some())
    }

    /// Publishes `session_start` if it is due: once, and only when a target was noted.
    pub async fn announce(&mut self) {
        if !self.start_is_due() {
            return;
        }
        if let Some(event) = self.start_event() {
            self.shared.bus.publish_one(event).await;
        }
    }

    /// Publishes `event` of this session, after its `session_start`.
    pub async fn record(&mut self, event: Event) {
        self.announce_anyway().await;
        self.shared.bus.publish_one(event).await;
    }

    /// Publishes `session_start` if it has not been: a session that never got as far as
    /// a target goes nowhere (`-`), and on the HTTP port no request said how it meant to
    /// use the proxy.
    async fn announce_anyway(&mut self) {
        let via = match self.tunnel_via {
            Via::Connect => Via::Proxy,
            listener => listener,
        };
        self.note_target("-", via, false);
        self.announce().await;
    }

    /// The `session_start` event, the first time only. Built outside `announce`'s future,
    /// so that the futures of long-lived stages, which await it at their end, stay small.
    fn start_event(&mut self) -> Option<Event> {
        if self.announced {
            return None;
        }
        self.announced = true;
        let facts = self.facts.take().map(|facts| *facts).unwrap_or_default();
        let Destination { target, via, tls } = facts.destination?;
        Some(Event::SessionStart(SessionStart {
            session: self.id,
            // When the connection was accepted: before anything of the session happened,
            // however late the start is announced.
            time: self.started_at,
            client: self.client.to_string(),
            target,
            via,
            listener: self
                .shared
                .listening
                .get(usize::from(self.listener))
                .map(ToString::to_string),
            tls: tls || facts.client_tls.is_some(),
            client_tls: facts.client_tls,
            upstream_tls: facts.upstream_tls,
            upstream_proxy: facts.upstream_proxy,
        }))
    }

    /// Publishes `session_end`.
    pub async fn end(mut self, outcome: Outcome, kind: SessionKind, ending: Ending) {
        self.announce_anyway().await;
        let event = Event::SessionEnd(SessionEnd {
            session: self.id,
            time: Utc::now(),
            outcome,
            close: ending.close,
            frames: ending.frames,
            bytes: ending.bytes,
            kind,
            error: ending.error,
            cut_frames: ending.cut_frames,
            withheld: ending.withheld,
            duration_us: self.started.elapsed().as_micros() as u64,
        });
        self.shared.bus.publish_one(event).await;
    }

    /// Ends a session that failed where no answer can reach the client (a TLS handshake
    /// that did not complete): the reason goes into `session_end` only.
    pub async fn abandon(self, kind: SessionKind, why: String) {
        self.end(Outcome::Error, kind, Ending::failed(why)).await;
    }

    /// Answers the client with `error` (its status, and why in words), records the answer
    /// as an exchange of `request` at `url` answered by the proxy, and ends the session
    /// as an error of `kind`.
    pub async fn refuse(
        mut self,
        out: &mut BoxWrite,
        error: SessionError,
        request: Option<&Request>,
        url: &str,
        kind: SessionKind,
    ) {
        if let Some(head) = request.filter(|_| self.tunnel_via == Via::Connect) {
            // A request on the proxy port said how it meant to use the proxy.
            let via = if head.method().eq_ignore_ascii_case("CONNECT") {
                Via::Connect
            } else if head.target().contains("://") {
                Via::Absolute
            } else {
                Via::Proxy
            };
            self.note_target("-", via, false);
        }
        let time = Utc::now();
        let why = error.to_string();
        let (response, response_raw) =
            send_error(out, error.status(), &why, error.extra_headers()).await;
        let took_us = (Utc::now() - time).num_microseconds().unwrap_or(0).max(0) as u64;
        let exchange = Exchange {
            session: self.id,
            time,
            url: url.to_owned(),
            request: request.map_or_else(RequestHead::default, Request::request_head),
            forwarded: Forwarded::default(),
            response: Some(response),
            raw: Some(RawHeads {
                request: request.map_or_else(Vec::new, |h| h.raw.to_vec()),
                response: response_raw,
            }),
        };
        let relayed = Relayed {
            request_body_bytes: 0,
            response_body_bytes: 0,
            responder: Responder::Proxy,
            error: Some(why.clone()),
        };
        let event = Event::Http(HttpExchange::new(exchange, took_us, relayed));
        self.record(event).await;
        self.end(Outcome::Error, kind, Ending::failed(why)).await;
    }
}
