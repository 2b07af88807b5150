//! One HTTP exchange forwarded upstream: the request head and body out, the response
//! head(s) and body back, each byte as it came.
//!
//! The same path serves plain requests and WebSocket handshakes: a handshake is a GET
//! whose upstream happened to answer `101`, and only then does the caller switch the
//! connection to the WebSocket relay. Whatever the upstream answers (101 or not) is what
//! the client receives; the proxy only speaks for itself when there is no answer to pass
//! on (502), or the request is one it refuses to forward (400).
//!
//! The request body and the response are relayed concurrently, so `Expect: 100-continue`
//! and servers that answer before reading the whole body work.

use crate::body::{self, BodyKind};
use crate::head::{self, Head};
use crate::io::{BoxWrite, Incoming};
use crate::respond::send_error;
use crate::session::{request_head, response_head, Session};
use crate::upstream::{connect, Target};
use chrono::Utc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use wstap_trace::{Event, Forwarded, Handshake, HttpExchange};
use wstap_wire::handshake::{analyze, is_websocket_upgrade, HandshakeAnalysis};

/// The client side of a connection.
pub struct Client {
    /// Reads from the client.
    pub incoming: Incoming,
    /// Writes to the client.
    pub out: BoxWrite,
}

/// A connection to an upstream.
pub struct Upstream {
    /// Where it goes.
    pub target: Target,
    /// Reads from the upstream.
    pub incoming: Incoming,
    /// Writes to the upstream.
    pub out: BoxWrite,
    /// Whether another request may follow on it.
    pub reusable: bool,
}

impl Upstream {
    /// Wraps a connected TCP stream.
    pub fn from_tcp(target: Target, stream: TcpStream) -> Self {
        let (read, write) = stream.into_split();
        Upstream {
            target,
            incoming: Incoming::new(Box::new(read)),
            out: Box::new(write),
            reusable: true,
        }
    }
}

/// Where and how to forward one request.
pub struct Route {
    /// The upstream.
    pub target: Target,
    /// The URL for the log (`http://...` or `ws://...`).
    pub url: String,
    /// The head to send upstream.
    pub head_bytes: Vec<u8>,
    /// What was changed in it.
    pub forwarded: Forwarded,
    /// Inside a CONNECT tunnel: the upstream is fixed and never re-dialled.
    pub fixed: bool,
    /// The upstream speaks TLS (dialled with wstap's upstream TLS settings).
    pub tls: bool,
}

/// What the connection does after an exchange.
pub enum Next {
    /// Read the client's next request.
    KeepAlive,
    /// Close the client connection.
    Close,
    /// The upstream accepted a WebSocket handshake: relay frames.
    WebSocket(Upstream, Box<HandshakeAnalysis>),
    /// The upstream switched to some other protocol: relay bytes blind.
    Tunnel(Upstream),
}

/// The response that came back.
struct Received {
    head: Head,
    body_bytes: u64,
    body_kind: BodyKind,
}

enum ReceiveError {
    /// No final response reached the client: the proxy can still answer 502.
    NoResponse(String),
    /// A response was under way when it broke: the client connection must close.
    Broken(String),
}

/// Forwards `head` along `route`, using the connection in `slot` when it goes to the same
/// target, else dialling a new one there.
pub async fn exchange(
    session: &Session,
    client: &mut Client,
    slot: &mut Option<Upstream>,
    head: Head,
    route: Route,
) -> Next {
    let time = Utc::now();
    let started = Instant::now();
    let config = &session.shared.config;

    let body_kind = match body::request_body(&head) {
        Ok(kind) => kind,
        Err(why) => return refuse(session, client, time, &route.url, &head, 400, &why).await,
    };
    let websocket = is_websocket_upgrade(&head.headers);

    let reuse = slot
        .as_ref()
        .is_some_and(|u| u.target == route.target && u.reusable);
    if !reuse {
        if route.fixed {
            let why = "the tunnel's upstream connection is closed";
            return refuse(session, client, time, &route.url, &head, 502, why).await;
        }
        *slot = None;
        match dial(session, &route).await {
            Ok(upstream) => *slot = Some(upstream),
            Err(why) => return refuse(session, client, time, &route.url, &head, 502, &why).await,
        }
    }
    let Some(upstream) = slot.as_mut() else {
        return Next::Close;
    };
    if let Err(e) = write_all(&mut upstream.out, &route.head_bytes).await {
        let why = format!("sending the request to {} failed: {e}", route.target);
        return refuse(session, client, time, &route.url, &head, 502, &why).await;
    }

    // A WebSocket handshake must be answered promptly; a plain request may take as long
    // as the server likes (long polls).
    let response_timeout = websocket.then_some(config.handshake_timeout);
    let send = body::relay(&mut client.incoming, &mut upstream.out, body_kind);
    let receive = receive_response(
        &mut upstream.incoming,
        &mut client.out,
        &head.method,
        response_timeout,
    );
    let (sent, received) = tokio::join!(send, receive);

    let received = match received {
        Ok(received) => received,
        Err(ReceiveError::NoResponse(why)) => {
            return refuse(session, client, time, &route.url, &head, 502, &why).await;
        }
        Err(ReceiveError::Broken(why)) => {
            record_http(
                session,
                time,
                started,
                &head,
                route,
                None,
                sent.as_ref().ok().copied(),
                0,
                Some(why),
            )
            .await;
            return Next::Close;
        }
    };
    let duration_us = started.elapsed().as_micros() as u64;

    if websocket {
        let analysis = analyze(
            &head.method,
            &head.headers,
            received.head.status,
            &received.head.headers,
        );
        let mut event = Handshake {
            session: session.id,
            time,
            url: route.url,
            request: request_head(&head),
            forwarded: route.forwarded,
            response: Some(response_head(&received.head)),
            accept_valid: false,
            subprotocol: None,
            extensions: Vec::new(),
            deflate: None,
            undecoded_extensions: Vec::new(),
            issues: Vec::new(),
            duration_us: Some(duration_us),
        };
        event.apply_analysis(&analysis);
        session.bus().publish_one(Event::Handshake(event)).await;
        if received.head.status == 101 {
            return slot
                .take()
                .map_or(Next::Close, |u| Next::WebSocket(u, Box::new(analysis)));
        }
    } else {
        let error = sent.as_ref().err().map(|e| format!("request body: {e}"));
        record_http(
            session,
            time,
            started,
            &head,
            route,
            Some(&received.head),
            sent.as_ref().ok().copied(),
            received.body_bytes,
            error,
        )
        .await;
        if received.head.status == 101 {
            return slot.take().map_or(Next::Close, Next::Tunnel);
        }
    }

    let response_closes = received.body_kind == BodyKind::UntilClose
        || received.head.has_token("connection", "close")
        || (received.head.minor_version == 0
            && !received.head.has_token("connection", "keep-alive"));
    if let Some(upstream) = slot.as_mut() {
        upstream.reusable = !response_closes;
    }
    let client_closes = head.has_token("connection", "close")
        || head.has_token("proxy-connection", "close")
        || (head.minor_version == 0 && !head.has_token("connection", "keep-alive"));
    if sent.is_err() || response_closes || client_closes {
        let _ = client.out.shutdown().await;
        Next::Close
    } else {
        Next::KeepAlive
    }
}

/// Connects to the route's target, over TLS when the route says so.
async fn dial(session: &Session, route: &Route) -> Result<Upstream, String> {
    let config = &session.shared.config;
    let stream = connect(&route.target, config.connect_timeout).await?;
    if !route.tls {
        return Ok(Upstream::from_tcp(route.target.clone(), stream));
    }
    let tls = session
        .shared
        .tls
        .as_ref()
        .ok_or_else(|| "TLS interception is off".to_owned())?;
    let name = rustls::pki_types::ServerName::try_from(route.target.host.clone()).map_err(|e| {
        format!(
            "{:?} is not a valid TLS server name: {e}",
            route.target.host
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(tls.upstream_config());
    let stream = tokio::time::timeout(config.handshake_timeout, connector.connect(name, stream))
        .await
        .map_err(|_| format!("TLS handshake with {} timed out", route.target))?
        .map_err(|e| format!("TLS handshake with {} failed: {e}", route.target))?;
    let (incoming, out) = crate::io::split_boxed(stream);
    Ok(Upstream {
        target: route.target.clone(),
        incoming,
        out,
        reusable: true,
    })
}

async fn write_all(out: &mut BoxWrite, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes).await?;
    out.flush().await
}

async fn receive_response(
    upstream: &mut Incoming,
    client: &mut BoxWrite,
    method: &str,
    timeout: Option<Duration>,
) -> Result<Received, ReceiveError> {
    // "No timeout" is a very long one; the client decides how long it waits.
    let timeout = timeout.unwrap_or(Duration::from_secs(24 * 3600));
    loop {
        let head = match head::read_response(upstream, timeout).await {
            Ok(Some(head)) => head,
            Ok(None) => {
                return Err(ReceiveError::NoResponse(
                    "the upstream closed the connection without responding".into(),
                ))
            }
            Err(e) => return Err(ReceiveError::NoResponse(format!("upstream response: {e}"))),
        };
        write_all(client, &head.raw).await.map_err(|e| {
            ReceiveError::Broken(format!("writing the response to the client failed: {e}"))
        })?;
        if head.status == 101 {
            return Ok(Received {
                head,
                body_bytes: 0,
                body_kind: BodyKind::Empty,
            });
        }
        if head.status < 200 {
            continue; // An interim response, passed on; the final one follows.
        }
        let body_kind = body::response_body(&head, method);
        let body_bytes = body::relay(upstream, client, body_kind)
            .await
            .map_err(|e| ReceiveError::Broken(format!("response body: {e}")))?;
        return Ok(Received {
            head,
            body_bytes,
            body_kind,
        });
    }
}

/// Answers the client with an error, records it, and closes.
async fn refuse(
    session: &Session,
    client: &mut Client,
    time: chrono::DateTime<Utc>,
    url: &str,
    head: &Head,
    status: u16,
    why: &str,
) -> Next {
    let response = send_error(&mut client.out, status, why).await;
    session
        .record_proxy_answer(time, url, Some(head), response, why)
        .await;
    Next::Close
}

#[allow(clippy::too_many_arguments)]
async fn record_http(
    session: &Session,
    time: chrono::DateTime<Utc>,
    started: Instant,
    head: &Head,
    route: Route,
    response: Option<&Head>,
    request_body_bytes: Option<u64>,
    response_body_bytes: u64,
    error: Option<String>,
) {
    let event = Event::Http(HttpExchange {
        session: session.id,
        time,
        url: route.url,
        request: request_head(head),
        forwarded: route.forwarded,
        response: response.map(response_head),
        request_body_bytes: request_body_bytes.unwrap_or(0),
        response_body_bytes,
        duration_us: started.elapsed().as_micros() as u64,
        responder: "upstream".into(),
        error,
    });
    session.bus().publish_one(event).await;
}
