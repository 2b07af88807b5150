//! The request stage: read one request head, check it, route it, and serve it.
//!
//! On the proxy's port a request may need proxy credentials, may be a `CONNECT` (the next
//! stage opens the tunnel), may ask for `http://wstap/`, and is otherwise forwarded to its
//! URL's host ([`crate::route`]); inside a tunnel it goes to the tunnel's target. Either
//! way the exchange ([`crate::exchange`]) decides the next stage: another request, a
//! WebSocket relay, a blind relay, or the end.

use crate::error::SessionError;
use crate::guard::is_self;
use crate::head::{read_request, HeadError, Request};
use crate::http::ending::{end, refuse_at};
use crate::http::exchange;
use crate::http::page;
use crate::http::reverse::reverse_route;
use crate::http::route::{proxy_route, tunnel_route, Route};
use crate::session::Ending;
use crate::stage::{Requests, Scope, Stage};
use wstap_trace::Via;

/// Reads the next request on `requests`' connection and serves it.
pub(crate) async fn next(mut requests: Requests) -> Stage {
    let head = match read_head(&mut requests).await {
        Ok(Some(head)) => head,
        Ok(None) => return end(requests, Ending::default()).await,
        Err(Stop::ShutDown) => return end(requests, Ending::failed("wstap shut down")).await,
        Err(Stop::Failed(e)) => return refuse(requests, SessionError::Head(e), None).await,
    };
    requests.served += 1;
    let proxy_port = matches!(requests.scope, Scope::Proxy);
    if proxy_port {
        if let Some(auth) = &requests.session.shared.auth {
            if let Err(e) = auth.check(&head) {
                return refuse(requests, e, Some(&head)).await;
            }
        }
    }
    if head.method().eq_ignore_ascii_case("CONNECT") {
        if let Scope::Reverse(reverse) = &requests.scope {
            let why = format!(
                "this is a reverse proxy for {}: it does not serve CONNECT",
                reverse.url()
            );
            return refuse(requests, SessionError::BadRequest(why), Some(&head)).await;
        }
        if !proxy_port {
            return refuse(requests, SessionError::NestedConnect, Some(&head)).await;
        }
        let Requests {
            session, client, ..
        } = requests;
        return Stage::Connect {
            session,
            client,
            head,
        };
    }
    if proxy_port && page::is_for_wstap(&head) {
        let Requests {
            mut session,
            client,
            ..
        } = requests;
        session.note_target(page::HOST, Via::Absolute, false);
        return Stage::Page {
            session,
            client,
            head,
        };
    }
    let route = match route(&requests, &head) {
        Ok(route) => route,
        Err(e) => return refuse(requests, e, Some(&head)).await,
    };
    let via = if proxy_port {
        Via::Absolute
    } else {
        requests.session.tunnel_via
    };
    exchange::forward(requests, head, route, via).await
}

/// Why no request head came.
enum Stop {
    /// The proxy is stopping.
    ShutDown,
    /// The head is bad, or did not come in time.
    Failed(HeadError),
}

/// Reads a request head. `Ok(None)`: the client is done (it closed, or an idle
/// keep-alive connection timed out after at least one request).
async fn read_head(requests: &mut Requests) -> Result<Option<Request>, Stop> {
    let timeout = requests.session.shared.config.handshake_timeout;
    let read = tokio::select! {
        read = read_request(&mut requests.client.incoming, timeout) => read,
        _ = requests.session.shared.stopping() => return Err(Stop::ShutDown),
    };
    match read {
        Ok(head) => Ok(head),
        Err(HeadError::Timeout(_))
            if requests.served > 0 && requests.client.incoming.buf.is_empty() =>
        {
            Ok(None)
        }
        Err(e) => Err(Stop::Failed(e)),
    }
}

/// Where `head` goes from this connection. A tunnel's target was checked when it was
/// opened; a URL's or a reverse upstream's is checked here, as it may name wstap itself.
fn route(requests: &Requests, head: &Request) -> Result<Route, SessionError> {
    let shared = &requests.session.shared;
    let route = match &requests.scope {
        Scope::Proxy => proxy_route(head, shared.tls.is_some())?,
        Scope::Tunnel { target, tls } => return Ok(tunnel_route(head, target, *tls)),
        Scope::Reverse(reverse) => reverse_route(head, reverse)?,
    };
    if is_self(&route.target, &shared.listening) {
        return Err(SessionError::Loop {
            target: route.target,
            tunnel: false,
        });
    }
    Ok(route)
}

/// Answers `head` (if there is one) with `error` and ends the session.
async fn refuse(requests: Requests, error: SessionError, head: Option<&Request>) -> Stage {
    let url = head.map_or(String::new(), |h| h.target().to_owned());
    refuse_at(requests, error, head, &url).await
}
