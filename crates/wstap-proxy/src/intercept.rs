//! One intercepted tunnel: read the ClientHello, connect upstream with the same name,
//! answer the client with a certificate for it, then serve the decrypted streams.
//!
//! If the upstream cannot be reached over TLS (a bad certificate, say), the client's
//! handshake is still completed so that its request can be answered with a `502` whose
//! body names the reason: a TLS alert would only tell the user that *something* failed.

use crate::error::SessionError;
use crate::head::read_request;
use crate::io::{split_boxed, Client, Joined, Upstream};
use crate::session::Session;
use crate::stage::{Requests, Scope, Stage};
use crate::target::Target;
use crate::tls::tls_leg;
use crate::tls::Interceptor;
use crate::upstream::tls_handshake;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::server::TlsStream;
use tokio_rustls::StartHandshake;
use wstap_trace::SessionKind;

/// Intercepts the TLS in a tunnel to `upstream`.
pub(crate) async fn intercept(
    mut session: Session,
    client: Client,
    upstream: Upstream,
    tls: Arc<Interceptor>,
) -> Stage {
    let timeout = session.shared.config.handshake_timeout;
    let target = upstream.target.clone();
    let hello = match client_hello(client, timeout).await {
        Ok(hello) => hello,
        Err(why) => return abandon(session, &target, why).await,
    };
    let sni = hello.client_hello().server_name().map(str::to_owned);
    let name = sni.clone().unwrap_or_else(|| target.host.clone());

    // Upstream first, with the name the client asked for, so its certificate is checked
    // against that name.
    let addresses = upstream.addresses.clone();
    let upstream_io = Joined::new(upstream.incoming, upstream.out);
    let upstream_tls = tls_handshake(&tls, &target, &name, upstream_io, timeout).await;

    let client_tls = match answer_client(hello, &tls, &name, timeout).await {
        Ok(stream) => stream,
        Err(why) => return abandon(session, &target, why).await,
    };
    let client_leg = tls_leg(client_tls.get_ref().1, sni, false);
    match upstream_tls {
        Ok(upstream_tls) => {
            let upstream_leg = tls_leg(upstream_tls.get_ref().1, Some(name), true);
            session.note_tls_tunnel(&target.to_string(), client_leg, upstream_leg);
            let (incoming, out) = split_boxed(client_tls);
            let upstream = Upstream::from_halves(target.clone(), split_boxed(upstream_tls))
                .with_addresses(addresses);
            Stage::Requests(Requests {
                session,
                client: Client { incoming, out },
                scope: Scope::Tunnel { target, tls: true },
                upstream: Some(upstream),
                served: 0,
            })
        }
        Err(error) => {
            let via = session.tunnel_via;
            session.note_target(target.to_string(), via, true);
            answer_first_request(session, client_tls, &target, error.into(), timeout).await;
            Stage::Done
        }
    }
}

/// Reads the client's ClientHello within `timeout`.
async fn client_hello(client: Client, timeout: Duration) -> Result<StartHandshake<Joined>, String> {
    let hello = crate::tls::read_client_hello(Joined::new(client.incoming, client.out));
    tokio::time::timeout(timeout, hello)
        .await
        .unwrap_or_else(|_| Err(format!("no TLS ClientHello within {timeout:?}")))
}

/// Completes the client's handshake with a certificate for `name`.
async fn answer_client(
    hello: StartHandshake<Joined>,
    tls: &Interceptor,
    name: &str,
    timeout: Duration,
) -> Result<TlsStream<Joined>, String> {
    let config = tls
        .server_config(name)
        .map_err(|e| format!("cannot make a certificate for {name}: {e}"))?;
    match tokio::time::timeout(timeout, hello.into_stream(config)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(format!(
            "the client refused wstap's certificate for {name} (does it trust the wstap CA?): {e}"
        )),
        Err(_) => Err(format!("client TLS handshake timed out after {timeout:?}")),
    }
}

/// The upstream could not be reached over TLS: answers the client's first request (over
/// the TLS wstap completed with it) with a 502 that says why, and ends the session.
async fn answer_first_request(
    session: Session,
    client_tls: TlsStream<Joined>,
    target: &Target,
    error: SessionError,
    timeout: Duration,
) {
    let (mut incoming, mut out) = split_boxed(client_tls);
    let head = read_request(&mut incoming, timeout).await.ok().flatten();
    let path = head.as_ref().map_or("/", |h| h.target());
    let url = format!("https://{target}{path}");
    session
        .refuse(&mut out, error, head.as_ref(), &url, SessionKind::Tls)
        .await;
}

/// The client's TLS handshake did not complete: there is nobody to answer, so the reason
/// goes into the session's end.
async fn abandon(mut session: Session, target: &Target, why: String) -> Stage {
    let via = session.tunnel_via;
    session.note_target(target.to_string(), via, true);
    session.abandon(SessionKind::Tls, why).await;
    Stage::Done
}
