//! A session: one client connection (or CONNECT tunnel) from accept to close.
//!
//! The session numbers events, announces itself once its target is known, and ends with
//! exactly one `session_end`, whatever path the connection took.

use crate::events::EventBus;
use crate::guard::ProxyAuth;
use crate::head::Head;
use crate::io::BoxWrite;
use crate::mitm::Interceptor;
use crate::respond::send_error_with;
use crate::ProxyConfig;
use chrono::{DateTime, Utc};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use wstap_trace::*;

/// What every session shares: settings, the bus, the session counter.
#[derive(Debug)]
pub struct Shared {
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
    pub closing: watch::Receiver<bool>,
    next_session: AtomicU64,
}

impl Shared {
    /// Shared state for a proxy with `config`, publishing on `bus`.
    pub fn new(
        config: ProxyConfig,
        bus: EventBus,
        tls: Option<Arc<Interceptor>>,
        closing: watch::Receiver<bool>,
    ) -> Self {
        Shared {
            closing,
            auth: config.proxy_auth.as_deref().map(ProxyAuth::new),
            config,
            bus,
            tls,
            listening: Vec::new(),
            active: AtomicUsize::new(0),
            next_session: AtomicU64::new(1),
        }
    }
}

impl Shared {
    /// Session numbers handed out so far.
    pub fn sessions_started(&self) -> u64 {
        self.next_session.load(Ordering::Relaxed) - 1
    }
}

/// One session: see the module documentation.
#[derive(Debug)]
pub struct Session {
    /// Session number.
    pub id: u64,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// The client's address.
    pub client: SocketAddr,
    started: Instant,
    announced: bool,
}

/// How a session ended, for its `session_end` event.
#[derive(Debug, Default)]
pub struct Ending {
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
}

impl Session {
    /// A new session for a client at `client`.
    pub fn new(shared: Arc<Shared>, client: SocketAddr) -> Self {
        let id = shared.next_session.fetch_add(1, Ordering::Relaxed);
        Session {
            id,
            shared,
            client,
            started: Instant::now(),
            announced: false,
        }
    }

    /// The bus.
    pub fn bus(&self) -> &EventBus {
        &self.shared.bus
    }

    /// Microseconds since the session began.
    pub fn elapsed_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Publishes `session_start` (once; later calls do nothing).
    pub async fn announce(&mut self, target: &str, via: Via, tls: bool) {
        self.announce_with(target, via, tls, None).await;
    }

    /// Publishes `session_start` for an intercepted TLS tunnel, with both legs' parameters.
    pub async fn announce_tls(&mut self, target: &str, client: TlsLeg, upstream: TlsLeg) {
        self.announce_with(target, Via::Connect, true, Some((client, upstream)))
            .await;
    }

    async fn announce_with(
        &mut self,
        target: &str,
        via: Via,
        tls: bool,
        legs: Option<(TlsLeg, TlsLeg)>,
    ) {
        if self.announced {
            return;
        }
        let (client_tls, upstream_tls) = legs.map_or((None, None), |(c, u)| (Some(c), Some(u)));
        self.announced = true;
        let event = Event::SessionStart(SessionStart {
            session: self.id,
            time: Utc::now(),
            client: self.client.to_string(),
            target: target.to_owned(),
            via,
            tls,
            client_tls,
            upstream_tls,
        });
        self.shared.bus.publish_one(event).await;
    }

    /// Publishes `session_end`.
    pub async fn end(mut self, outcome: Outcome, kind: &str, ending: Ending) {
        self.announce("-", Via::Absolute, false).await;
        let event = Event::SessionEnd(SessionEnd {
            session: self.id,
            time: Utc::now(),
            outcome,
            close: ending.close,
            frames: ending.frames,
            bytes: ending.bytes,
            kind: kind.to_owned(),
            error: ending.error,
            cut_frames: ending.cut_frames,
            duration_us: self.elapsed_us(),
        });
        self.shared.bus.publish_one(event).await;
    }

    /// Answers the client with an error (`status`, `why`, and any `extra` header lines),
    /// records that answer, and ends the session as an error of `kind`.
    pub async fn answer_and_end(
        self,
        out: &mut BoxWrite,
        (status, why): (u16, &str),
        extra: &[(&str, &str)],
        url: &str,
        request: Option<&Head>,
        kind: &str,
    ) {
        let time = Utc::now();
        let response = send_error_with(out, status, why, extra).await;
        self.record_proxy_answer(time, url, request, response, why)
            .await;
        let ending = Ending {
            error: Some(why.to_owned()),
            ..Ending::default()
        };
        self.end(Outcome::Error, kind, ending).await;
    }

    /// Records an exchange the proxy answered itself (an error), for `request`.
    pub async fn record_proxy_answer(
        &self,
        time: DateTime<Utc>,
        url: &str,
        request: Option<&Head>,
        response: ResponseHead,
        error: &str,
    ) {
        let request = request.map(request_head).unwrap_or_else(|| RequestHead {
            method: String::new(),
            target: String::new(),
            version: String::new(),
            headers: Vec::new(),
        });
        let event = Event::Http(HttpExchange {
            session: self.id,
            time,
            url: url.to_owned(),
            request,
            forwarded: Forwarded::default(),
            response: Some(response),
            request_body_bytes: 0,
            response_body_bytes: 0,
            duration_us: (Utc::now() - time).num_microseconds().unwrap_or(0).max(0) as u64,
            responder: "proxy".to_owned(),
            error: Some(error.to_owned()),
        });
        self.shared.bus.publish_one(event).await;
    }
}

/// A request head in trace form.
pub fn request_head(head: &Head) -> RequestHead {
    RequestHead {
        method: head.method.clone(),
        target: head.target.clone(),
        version: head.version(),
        headers: head.headers.clone(),
    }
}

/// A response head in trace form.
pub fn response_head(head: &Head) -> ResponseHead {
    ResponseHead {
        status: head.status,
        reason: head.reason.clone(),
        version: head.version(),
        headers: head.headers.clone(),
    }
}
