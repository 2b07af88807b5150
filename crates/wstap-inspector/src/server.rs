//! The listener: each connection served by hyper, each request checked by the guard, then
//! answered with the page, an asset, the live feed or the API.

use crate::api::{Api, Endpoint};
use crate::assets::{asset, INDEX};
use crate::commands::{Commands, Route, MAX_BODY};
use crate::guard::{Guard, Proof};
use crate::live::{self, LiveFeed};
use crate::query::Query;
use crate::reply::{full, response, text, Body};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, LOCATION, SET_COOKIE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What every request is answered from.
#[derive(Debug)]
pub struct Served {
    /// The checks.
    pub guard: Guard,
    /// The API.
    pub api: Api,
    /// The API that reaches live sessions.
    pub commands: Commands,
    /// The live feed, while a capture is written.
    pub feed: Option<LiveFeed>,
    /// Says when the inspector stops.
    pub stop: watch::Receiver<bool>,
}

/// How long answers in flight get to finish when the inspector stops.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Accepts connections until `stop` says so, then waits (a little) for the connections to
/// finish what they are answering.
pub async fn serve(listener: TcpListener, served: Arc<Served>, mut stop: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
            // Reap finished connections as they end, so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok((stream, _)) = accepted else {
            // Out of descriptors, say: wait a little rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let served = Arc::clone(&served);
        let mut stop = stop.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let served = Arc::clone(&served);
                async move { Ok::<_, std::convert::Infallible>(handle(&served, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop.changed() => {
                    // Answers in flight finish (the live feed says `end`), then it closes.
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
                }
            }
        });
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE * 2, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

async fn handle(served: &Served, request: Request<Incoming>) -> Response<Body> {
    let query = Query::parse(request.uri().query());
    let proof = match served.guard.check(request.headers(), query.get("token")) {
        Ok(proof) => proof,
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::FORBIDDEN);
            return text(status, format!("{}: {}", status.as_u16(), refusal.reason()));
        }
    };
    if let Some(route) = request
        .uri()
        .path()
        .strip_prefix("/api/")
        .and_then(Route::of_path)
    {
        return command(served, route, request).await;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut reply = text(StatusCode::METHOD_NOT_ALLOWED, "405: this path only reads");
        reply
            .headers_mut()
            .insert("allow", HeaderValue::from_static("GET, HEAD"));
        return reply;
    }
    let path = request.uri().path();
    if path == "/" && proof == Proof::Query {
        // The token moves into a cookie, and out of the address bar (and its history).
        let mut reply = response(StatusCode::SEE_OTHER, "text/plain", full(""));
        reply
            .headers_mut()
            .insert(LOCATION, HeaderValue::from_static("/"));
        if let Ok(cookie) = HeaderValue::from_str(&served.guard.set_cookie()) {
            reply.headers_mut().insert(SET_COOKIE, cookie);
        }
        return reply;
    }
    if path == "/" {
        return response(StatusCode::OK, "text/html; charset=utf-8", full(INDEX));
    }
    if let Some(name) = path.strip_prefix("/assets/") {
        return match asset(name) {
            Some(a) => response(StatusCode::OK, a.media_type, full(a.bytes)),
            None => text(StatusCode::NOT_FOUND, "404: no such file"),
        };
    }
    let Some(endpoint) = path.strip_prefix("/api/").and_then(Endpoint::of_path) else {
        return text(StatusCode::NOT_FOUND, "404: no such page");
    };
    if endpoint == Endpoint::Live {
        return live::stream(
            served.feed.as_ref(),
            Arc::clone(&served.api.store),
            served.commands.control.as_ref().map(|c| c.changes()),
            served.stop.clone(),
        );
    }
    match served.api.answer(endpoint, query).await {
        Ok(reply) => reply,
        Err(e) => e.into_response(),
    }
}

/// Answers a request of the API that reaches live sessions, its body read up to
/// [`MAX_BODY`].
async fn command(served: &Served, route: Route, request: Request<Incoming>) -> Response<Body> {
    use http_body_util::BodyExt;
    let (parts, body) = request.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return crate::reply::ApiError::too_large(format!(
                "the body is larger than {MAX_BODY} bytes"
            ))
            .into_response()
        }
        Err(e) => {
            return crate::reply::ApiError::bad_request(format!("the body could not be read: {e}"))
                .into_response()
        }
    };
    match served
        .commands
        .answer(route, &parts.method, &parts.headers, body)
        .await
    {
        Ok(reply) => reply,
        Err(e) => e.into_response(),
    }
}
