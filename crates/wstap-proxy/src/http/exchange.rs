//! One HTTP exchange forwarded upstream: the request head and body out, the response
//! head(s) and body back, each byte as it came.
//!
//! The same path serves plain requests and WebSocket handshakes: a handshake is a GET
//! whose upstream happened to answer `101`, and only then does the connection become a
//! WebSocket relay. Whatever the upstream answers (101 or not) is what the client receives;
//! the proxy only speaks for itself when there is no answer to pass on (502), or the
//! request is one it refuses to forward (400).
//!
//! The request body and the response are relayed concurrently, so `Expect: 100-continue`
//! and servers that answer before reading the whole body work.

use crate::error::{SessionError, UpstreamError};
use crate::head::{self, Request, Response};
use crate::http::body::{self, BodyKind};
use crate::http::ending::{end, refuse_at};
use crate::http::route::Route;
use crate::io::{BoxWrite, Incoming};
use crate::session::{Ending, Session};
use crate::stage::{Requests, Stage};
use crate::upstream::dial;
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use wstap_control::SessionInfo;
use wstap_trace::convert::Relayed;
use wstap_trace::{
    Event, Exchange, Handshake, HttpExchange, RawHeads, Responder, SessionKind, Via,
};
use wstap_wire::handshake::{analyze, is_websocket_upgrade, HandshakeAnalysis};

/// Forwards `head` along `route` and returns the connection's next stage. The session
/// is announced (`via` says how the client came) once its upstream connection is made or
/// has failed, so that its record holds how that connection was made.
pub(crate) async fn forward(
    mut requests: Requests,
    head: Request,
    route: Route,
    via: Via,
) -> Stage {
    let record = Record {
        time: Utc::now(),
        started: Instant::now(),
    };
    let body = body::request_body(&head).map_err(SessionError::BadRequest);
    let connected = match body {
        Ok(_) => connect_upstream(&mut requests, &route)
            .await
            .map_err(SessionError::from),
        Err(_) => Ok(()),
    };
    let target = route.target.to_string();
    requests.session.note_target(target, via, false);
    requests.session.announce().await;
    let body = match (body, connected) {
        (Ok(kind), Ok(())) => kind,
        (Err(error), _) | (_, Err(error)) => {
            return refuse_at(requests, error, Some(&head), &route.url).await;
        }
    };
    match transfer(&mut requests, &head, &route, body).await {
        Ok((sent, received)) => answered(requests, head, route, record, sent, received).await,
        Err(Failed::NoResponse(e)) => refuse_at(requests, e.into(), Some(&head), &route.url).await,
        Err(Failed::Broken { sent, why }) => {
            let exchange = record.exchange(&requests, &head, route, None);
            let relayed = Relayed {
                request_body_bytes: sent.unwrap_or(0),
                response_body_bytes: 0,
                responder: Responder::Upstream,
                error: Some(why.to_string()),
            };
            let took = record.elapsed_us();
            publish_http(&mut requests.session, exchange, took, relayed).await;
            end(requests, Ending::default()).await
        }
    }
}

/// When the exchange began, for its record.
struct Record {
    time: DateTime<Utc>,
    started: Instant,
}

impl Record {
    /// Microseconds since the request head was complete.
    fn elapsed_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn exchange(
        &self,
        requests: &Requests,
        head: &Request,
        route: Route,
        response: Option<&Response>,
    ) -> Exchange {
        Exchange {
            session: requests.session.id,
            time: self.time,
            url: route.url,
            request: head.request_head(),
            forwarded: route.forwarded,
            response: response.map(Response::response_head),
            raw: Some(RawHeads {
                request: head.raw.to_vec(),
                response: response.map_or_else(Vec::new, |r| r.raw.to_vec()),
            }),
        }
    }
}

async fn publish_http(session: &mut Session, exchange: Exchange, took_us: u64, relayed: Relayed) {
    let event = Event::Http(HttpExchange::new(exchange, took_us, relayed));
    session.record(event).await;
}

/// Makes sure `requests` has an upstream connection to the route's target: the one it
/// has, when it goes there and may be reused, else a new one (never inside a tunnel,
/// whose upstream is fixed).
async fn connect_upstream(requests: &mut Requests, route: &Route) -> Result<(), UpstreamError> {
    let reuse = requests
        .upstream
        .as_ref()
        .is_some_and(|u| u.target == route.target && u.reusable);
    if reuse {
        return Ok(());
    }
    if route.fixed {
        return Err(UpstreamError::TunnelClosed);
    }
    requests.upstream = None;
    let shared = &requests.session.shared;
    let tls = match route.tls {
        true => Some(shared.tls.as_deref().ok_or(UpstreamError::TlsOff)?),
        false => None,
    };
    let config = &shared.config;
    let dialled = dial(
        &route.target,
        tls,
        config.connect_timeout,
        config.handshake_timeout,
        config.upstream_proxy.as_ref(),
    )
    .await?;
    requests.upstream = Some(dialled.upstream);
    requests.session.note_upstream(dialled.parent, dialled.tls);
    Ok(())
}

/// The response that came back.
struct Received {
    head: Response,
    body_bytes: u64,
    body_kind: BodyKind,
}

/// Why an exchange got no complete answer.
enum Failed {
    /// No final response reached the client: the proxy can still answer 502.
    NoResponse(UpstreamError),
    /// A response was under way when it broke: the client connection must close.
    Broken {
        /// Request body bytes relayed, when that part finished.
        sent: Option<u64>,
        /// What broke.
        why: Broken,
    },
}

/// What broke while a response was being relayed.
#[derive(Debug, thiserror::Error)]
enum Broken {
    #[error("writing the response to the client failed: {0}")]
    ToClient(std::io::Error),
    #[error("response body: {0}")]
    Body(std::io::Error),
}

/// Sends the request head upstream, then relays the request body and the response at
/// once. Returns how the request body went, and the response.
async fn transfer(
    requests: &mut Requests,
    head: &Request,
    route: &Route,
    body: BodyKind,
) -> Result<(std::io::Result<u64>, Received), Failed> {
    let handshake_timeout = requests.session.shared.config.handshake_timeout;
    let upstream = requests
        .upstream
        .as_mut()
        .ok_or(Failed::NoResponse(UpstreamError::TunnelClosed))?;
    if let Err(source) = write_all(&mut upstream.out, &route.head_bytes).await {
        let target = route.target.clone();
        return Err(Failed::NoResponse(UpstreamError::Send { target, source }));
    }
    // A WebSocket handshake must be answered promptly; a plain request may take as long
    // as the server likes (long polls).
    let response_timeout = is_websocket_upgrade(&head.headers).then_some(handshake_timeout);
    let send = body::relay(&mut requests.client.incoming, &mut upstream.out, body);
    let receive = receive_response(
        &mut upstream.incoming,
        &mut requests.client.out,
        head.method(),
        response_timeout,
    );
    let (sent, received) = tokio::join!(send, receive);
    match received {
        Ok(received) => Ok((sent, received)),
        Err(Failed::Broken { why, .. }) => Err(Failed::Broken {
            sent: sent.ok(),
            why,
        }),
        Err(no_response) => Err(no_response),
    }
}

/// What breakpoints know of a WebSocket session once its handshake is done: where it
/// goes (`upstream_at`: host, port, and whether its upstream speaks TLS), and what the
/// handshake said.
fn session_info(
    session: &Session,
    exchange: &Exchange,
    (host, port, tls): (String, u16, bool),
    analysis: &HandshakeAnalysis,
) -> SessionInfo {
    let extensions: Vec<String> = analysis
        .extensions
        .iter()
        .map(|e| e.to_header_value())
        .collect();
    SessionInfo {
        id: session.id,
        host,
        port,
        url: exchange.url.clone(),
        path: wstap_filter::path_of(&exchange.url).to_owned(),
        client: session.client.to_string(),
        subprotocol: analysis.subprotocol.clone(),
        extension_names: wstap_filter::extension_names(&extensions),
        tls,
        status: exchange.response.as_ref().map(|r| r.status),
        started_us: session.started_us(),
    }
}

/// The upstream answered: records the exchange (as a handshake or a plain one) and
/// decides what the connection does next.
async fn answered(
    mut requests: Requests,
    head: Request,
    route: Route,
    record: Record,
    sent: std::io::Result<u64>,
    received: Received,
) -> Stage {
    let switched = received.head.status() == 101;
    let upstream_at = (route.target.host.clone(), route.target.port, route.tls);
    let exchange = record.exchange(&requests, &head, route, Some(&received.head));
    let took = record.elapsed_us();
    if is_websocket_upgrade(&head.headers) {
        let analysis = analyze(
            head.method(),
            &head.headers,
            received.head.status(),
            &received.head.headers,
        );
        let info = requests.session.shared.config.control.as_ref().map(|_| {
            Box::new(session_info(
                &requests.session,
                &exchange,
                upstream_at,
                &analysis,
            ))
        });
        let mut handshake = Handshake::new(exchange, took, &analysis);
        handshake.upstream = requests.upstream.as_ref().and_then(|u| u.addresses.clone());
        let event = Event::Handshake(handshake);
        requests.session.record(event).await;
        if let (true, Some(upstream)) = (switched, requests.upstream.take()) {
            let Requests {
                session, client, ..
            } = requests;
            let analysis = Box::new(analysis);
            return Stage::WebSocket {
                session,
                client,
                upstream,
                analysis,
                info,
            };
        }
    } else {
        let relayed = Relayed {
            request_body_bytes: *sent.as_ref().unwrap_or(&0),
            response_body_bytes: received.body_bytes,
            responder: Responder::Upstream,
            error: sent.as_ref().err().map(|e| format!("request body: {e}")),
        };
        publish_http(&mut requests.session, exchange, took, relayed).await;
        if let (true, Some(upstream)) = (switched, requests.upstream.take()) {
            let Requests {
                session, client, ..
            } = requests;
            let kind = SessionKind::Upgraded;
            return Stage::Blind {
                session,
                client,
                upstream,
                kind,
            };
        }
    }

    let response_closes =
        received.body_kind == BodyKind::UntilClose || received.head.wants_close(None);
    if let Some(upstream) = requests.upstream.as_mut() {
        upstream.reusable = !response_closes;
    }
    let client_closes = head.wants_close(Some("proxy-connection"));
    if sent.is_err() || response_closes || client_closes {
        let _ = requests.client.out.shutdown().await;
        end(requests, Ending::default()).await
    } else {
        Stage::Requests(requests)
    }
}

async fn write_all(out: &mut BoxWrite, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes).await?;
    out.flush().await
}

/// Reads response heads from the upstream and passes them to the client, interim ones
/// (1xx) included, then the final response's body.
async fn receive_response(
    upstream: &mut Incoming,
    client: &mut BoxWrite,
    method: &str,
    timeout: Option<Duration>,
) -> Result<Received, Failed> {
    // "No timeout" is a very long one; the client decides how long it waits.
    let timeout = timeout.unwrap_or(Duration::from_secs(24 * 3600));
    let broken = |why| Failed::Broken { sent: None, why };
    loop {
        let head = match head::read_response(upstream, timeout).await {
            Ok(Some(head)) => head,
            Ok(None) => return Err(Failed::NoResponse(UpstreamError::NoResponse)),
            Err(e) => return Err(Failed::NoResponse(UpstreamError::BadResponse(e))),
        };
        write_all(client, &head.raw)
            .await
            .map_err(|e| broken(Broken::ToClient(e)))?;
        if head.status() == 101 {
            return Ok(Received {
                head,
                body_bytes: 0,
                body_kind: BodyKind::Empty,
            });
        }
        if head.status() < 200 {
            continue; // An interim response, passed on; the final one follows.
        }
        let body_kind = body::response_body(&head, method);
        let body_bytes = body::relay(upstream, client, body_kind)
            .await
            .map_err(|e| broken(Broken::Body(e)))?;
        return Ok(Received {
            head,
            body_bytes,
            body_kind,
        });
    }
}
