//! One client connection: read request heads and route each one.
//!
//! On the proxy's own port a client sends absolute-form requests (forwarded to the URL's
//! host, with hop-by-hop and `Proxy-*` headers removed) or `CONNECT` (a tunnel). Inside a
//! tunnel, requests are origin-form and go to the tunnel's target unchanged, byte for
//! byte. Either way, a WebSocket upgrade that the upstream accepts turns the connection
//! into a WebSocket relay.

use crate::exchange::{exchange, Client, Next, Route, Upstream};
use crate::guard::{is_self, AuthFailure};
use crate::head::{read_request, Head, HeadError};
use crate::io::Incoming;
use crate::mitm::intercept::intercept;
use crate::mitm::Interceptor;
use crate::relay::closed;
use crate::session::{Ending, Session, Shared};
use crate::upstream::{parse_absolute, Target};
use crate::{page, tunnel, websocket};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpStream;
use wstap_trace::{Forwarded, Outcome, Via};
use wstap_wire::handshake::is_websocket_upgrade;
use wstap_wire::handshake::HandshakeAnalysis;

/// Where a connection's requests go.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The proxy's own port: absolute-form requests and CONNECT.
    Proxy,
    /// Inside a CONNECT tunnel.
    Tunnel {
        /// The tunnel's target.
        target: Target,
        /// Whether wstap terminated TLS in it.
        tls: bool,
    },
}

/// What a connection does next. Each stage runs as its own boxed future and returns the
/// next one, so a long-lived stage (a WebSocket relay) holds only its own state, not the
/// frames of every stage that led to it: that is what keeps idle sessions small.
pub enum Stage {
    /// Read requests (on the proxy's port, or inside a tunnel).
    Http {
        /// The session.
        session: Session,
        /// The client.
        client: Client,
        /// Proxy port or tunnel.
        mode: Mode,
        /// An upstream connection already open (the tunnel's).
        upstream: Option<Upstream>,
    },
    /// A `CONNECT` request was read.
    Connect {
        /// The session.
        session: Session,
        /// The client.
        client: Client,
        /// The CONNECT request.
        head: Head,
    },
    /// TLS to intercept inside a tunnel.
    Intercept {
        /// The session.
        session: Session,
        /// The client.
        client: Client,
        /// The tunnel's upstream connection.
        upstream: Upstream,
        /// The tunnel's target.
        target: Target,
        /// Interception settings.
        tls: Arc<Interceptor>,
    },
    /// The upstream accepted a WebSocket handshake.
    WebSocket {
        /// The session.
        session: Session,
        /// The client.
        client: Client,
        /// The upstream.
        upstream: Upstream,
        /// What the handshake said.
        analysis: Box<HandshakeAnalysis>,
    },
    /// Relay bytes without looking at them.
    Blind {
        /// The session.
        session: Session,
        /// The client.
        client: Client,
        /// The upstream.
        upstream: Upstream,
        /// The `kind` recorded at the end.
        kind: &'static str,
    },
    /// A request for wstap's own page.
    Page {
        /// The session.
        session: Session,
        /// The client.
        client: Client,
        /// The request.
        head: Head,
    },
    /// The session has ended and recorded its end.
    Done,
}

/// Counts a client connection as open while it lives.
struct Active(Arc<Shared>);

impl Active {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.active.fetch_add(1, Ordering::Relaxed);
        Active(Arc::clone(shared))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers a connection beyond `--max-connections` with 503 and records it.
pub async fn turn_away(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let (_read, write) = stream.into_split();
    let mut out: crate::io::BoxWrite = Box::new(write);
    let max = shared.config.max_connections.unwrap_or(0);
    let why =
        format!("too many connections: wstap serves at most {max} at once (--max-connections)");
    let session = Session::new(shared, peer);
    session
        .answer_and_end(&mut out, (503, &why), &[], "", None, "http")
        .await;
}

/// Serves one accepted connection until it closes.
pub async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _active = Active::new(&shared);
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let client = Client {
        incoming: Incoming::new(Box::new(read)),
        out: Box::new(write),
    };
    let mut stage = Stage::Http {
        session: Session::new(shared, peer),
        client,
        mode: Mode::Proxy,
        upstream: None,
    };
    loop {
        stage = match stage {
            Stage::Http {
                session,
                client,
                mode,
                upstream,
            } => Box::pin(http_loop(session, client, mode, upstream)).await,
            Stage::Connect {
                session,
                client,
                head,
            } => Box::pin(tunnel::handle_connect(session, client, head)).await,
            Stage::Intercept {
                session,
                client,
                upstream,
                target,
                tls,
            } => Box::pin(intercept(session, client, upstream, target, tls)).await,
            Stage::WebSocket {
                session,
                client,
                upstream,
                analysis,
            } => {
                Box::pin(websocket::relay_websocket(
                    session, client, upstream, analysis,
                ))
                .await;
                Stage::Done
            }
            Stage::Blind {
                session,
                client,
                upstream,
                kind,
            } => {
                Box::pin(tunnel::blind(session, client, upstream, kind)).await;
                Stage::Done
            }
            Stage::Page {
                session,
                client,
                head,
            } => {
                Box::pin(page::serve(session, client, head)).await;
                Stage::Done
            }
            Stage::Done => return,
        };
    }
}

/// Reads and routes requests until the connection closes or changes stage.
pub async fn http_loop(
    mut session: Session,
    mut client: Client,
    mode: Mode,
    mut upstream: Option<Upstream>,
) -> Stage {
    let timeout = session.shared.config.handshake_timeout;
    let mut served = 0u64;
    loop {
        let read = tokio::select! {
            read = read_request(&mut client.incoming, timeout) => read,
            _ = closed(Some(session.shared.closing.clone())) => {
                let ending = Ending {
                    error: Some("wstap shut down".to_owned()),
                    ..Ending::default()
                };
                session.end(Outcome::Closed, "http", ending).await;
                return Stage::Done;
            }
        };
        let head = match read {
            Ok(Some(head)) => head,
            Ok(None) => {
                session
                    .end(Outcome::Closed, "http", Ending::default())
                    .await;
                return Stage::Done;
            }
            // An idle keep-alive connection timing out is a normal end.
            Err(HeadError::Timeout(_)) if served > 0 && client.incoming.buf.is_empty() => {
                session
                    .end(Outcome::Closed, "http", Ending::default())
                    .await;
                return Stage::Done;
            }
            Err(e) => {
                let why = e.to_string();
                let (out, status) = (&mut client.out, e.status());
                session
                    .answer_and_end(out, (status, &why), &[], "", None, "http")
                    .await;
                return Stage::Done;
            }
        };
        served += 1;

        if let (Mode::Proxy, Some(auth)) = (&mode, &session.shared.auth) {
            if let Err(failure) = auth.check(&head) {
                let why = match failure {
                    AuthFailure::Missing => "proxy authentication required (--proxy-auth is set)",
                    AuthFailure::Wrong => "wrong proxy credentials",
                };
                let challenge = [("Proxy-Authenticate", "Basic realm=\"wstap\"")];
                let (out, target) = (&mut client.out, head.target.as_str());
                session
                    .answer_and_end(out, (407, why), &challenge, target, Some(&head), "http")
                    .await;
                return Stage::Done;
            }
        }

        if head.method.eq_ignore_ascii_case("CONNECT") {
            if let Mode::Proxy = mode {
                return Stage::Connect {
                    session,
                    client,
                    head,
                };
            }
            refuse(
                session,
                client,
                &head,
                400,
                "CONNECT inside a CONNECT tunnel",
            )
            .await;
            return Stage::Done;
        }
        if matches!(mode, Mode::Proxy) && page::is_for_wstap(&head) {
            session.announce(page::HOST, Via::Absolute, false).await;
            return Stage::Page {
                session,
                client,
                head,
            };
        }
        let route = match &mode {
            Mode::Proxy => match proxy_route(&head, session.shared.tls.is_some()) {
                Ok(route) => route,
                Err((status, why)) => {
                    refuse(session, client, &head, status, &why).await;
                    return Stage::Done;
                }
            },
            Mode::Tunnel { target, tls } => tunnel_route(&head, target, *tls),
        };
        if matches!(mode, Mode::Proxy) && is_self(&route.target, &session.shared.listening) {
            let why = format!("{} is wstap itself: forwarding it would loop", route.target);
            refuse(session, client, &head, 508, &why).await;
            return Stage::Done;
        }
        let via = if matches!(mode, Mode::Proxy) {
            Via::Absolute
        } else {
            Via::Connect
        };
        session
            .announce(&route.target.to_string(), via, false)
            .await;

        match exchange(&session, &mut client, &mut upstream, head, route).await {
            Next::KeepAlive => continue,
            Next::Close => {
                session
                    .end(Outcome::Closed, "http", Ending::default())
                    .await;
                return Stage::Done;
            }
            Next::WebSocket(upstream, analysis) => {
                return Stage::WebSocket {
                    session,
                    client,
                    upstream,
                    analysis,
                };
            }
            Next::Tunnel(upstream) => {
                return Stage::Blind {
                    session,
                    client,
                    upstream,
                    kind: "upgraded",
                };
            }
        }
    }
}

async fn refuse(session: Session, mut client: Client, head: &Head, status: u16, why: &str) {
    let target = head.target.as_str();
    session
        .answer_and_end(
            &mut client.out,
            (status, why),
            &[],
            target,
            Some(head),
            "http",
        )
        .await;
}

/// Hop-by-hop headers a forward proxy removes (RFC 9110 section 7.6.1), besides those
/// `Connection` names. `Transfer-Encoding` stays: bodies are relayed with their framing.
const HOP_BY_HOP: [&str; 4] = ["connection", "keep-alive", "te", "upgrade"];

fn is_proxy_header(name: &str) -> bool {
    name.len() >= 6 && name[..6].eq_ignore_ascii_case("proxy-")
}

/// Routes an absolute-form request on the proxy's port.
fn proxy_route(head: &Head, can_tls: bool) -> Result<Route, (u16, String)> {
    let url = parse_absolute(&head.target).map_err(|why| {
        (
            400,
            format!("this is a proxy: send absolute-form requests (GET http://host/path) or CONNECT ({why})"),
        )
    })?;
    if url.is_tls() && !can_tls {
        return Err((
            501,
            format!(
                "{}:// in absolute form needs TLS to the upstream, and TLS interception is off",
                url.scheme
            ),
        ));
    }
    let websocket = is_websocket_upgrade(&head.headers);
    let (head_bytes, removed) = if websocket {
        head.rewrite(Some(&url.path_and_query), is_proxy_header)
    } else {
        let named: Vec<String> = head
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty() && t != "transfer-encoding" && t != "content-length")
            .collect();
        head.rewrite(Some(&url.path_and_query), |name| {
            is_proxy_header(name)
                || HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
                || named.iter().any(|n| n.eq_ignore_ascii_case(name))
        })
    };
    let scheme = scheme(websocket, url.is_tls());
    Ok(Route {
        tls: url.is_tls(),
        url: format!("{scheme}://{}{}", url.target, url.path_and_query),
        target: url.target,
        forwarded: Forwarded {
            target: Some(url.path_and_query),
            removed_headers: removed,
        },
        head_bytes,
        fixed: false,
    })
}

fn scheme(websocket: bool, tls: bool) -> &'static str {
    match (websocket, tls) {
        (true, false) => "ws",
        (true, true) => "wss",
        (false, false) => "http",
        (false, true) => "https",
    }
}

/// Routes a request inside a tunnel: unchanged, to the tunnel's target.
fn tunnel_route(head: &Head, target: &Target, tls: bool) -> Route {
    let scheme = scheme(is_websocket_upgrade(&head.headers), tls);
    let url = if head.target.starts_with('/') {
        format!("{scheme}://{target}{}", head.target)
    } else {
        head.target.clone()
    };
    Route {
        target: target.clone(),
        url,
        head_bytes: head.raw.to_vec(),
        forwarded: Forwarded::default(),
        fixed: true,
        tls,
    }
}
