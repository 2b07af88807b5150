//! One intercepted tunnel: read the ClientHello, connect upstream with the same name,
//! answer the client with a certificate for it, then serve the decrypted streams.
//!
//! If the upstream cannot be reached over TLS (a bad certificate, say), the client's
//! handshake is still completed so that its request can be answered with a `502` whose
//! body names the reason: a TLS alert would only tell the user that *something* failed.

use super::Interceptor;
use crate::conn::{Mode, Stage};
use crate::exchange::{Client, Upstream};
use crate::head::read_request;
use crate::io::{split_boxed, Joined};
use crate::session::{Ending, Session};
use crate::upstream::Target;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use tokio_rustls::{LazyConfigAcceptor, TlsConnector};
use wstap_trace::{Outcome, TlsLeg, Via};

/// Intercepts the TLS in a tunnel to `target`.
pub async fn intercept(
    mut session: Session,
    client: Client,
    upstream: Upstream,
    target: Target,
    tls: Arc<Interceptor>,
) -> Stage {
    let timeout = session.shared.config.handshake_timeout;
    let acceptor = LazyConfigAcceptor::new(
        rustls::server::Acceptor::default(),
        Joined::new(client.incoming, client.out),
    );
    let start = match tokio::time::timeout(timeout, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => {
            return fail(
                session,
                &target,
                format!("reading the client's TLS ClientHello failed: {e}"),
            )
            .await
        }
        Err(_) => {
            return fail(
                session,
                &target,
                format!("no TLS ClientHello within {timeout:?}"),
            )
            .await
        }
    };
    let sni = start.client_hello().server_name().map(str::to_owned);
    let name = sni.clone().unwrap_or_else(|| target.host.clone());

    // Upstream first, with the name the client asked for, so its certificate is checked
    // against that name.
    let upstream_io = Joined::new(upstream.incoming, upstream.out);
    let upstream_tls = match ServerName::try_from(name.clone()) {
        Ok(server_name) => {
            let connector = TlsConnector::from(tls.upstream_config());
            tokio::time::timeout(timeout, connector.connect(server_name, upstream_io))
                .await
                .map_err(|_| format!("TLS handshake with {target} timed out after {timeout:?}"))
                .and_then(|r| {
                    r.map_err(|e| format!("TLS handshake with {target} ({name}) failed: {e}"))
                })
        }
        Err(e) => Err(format!("{name:?} is not a valid TLS server name: {e}")),
    };

    let server_config = match tls.server_config(&name) {
        Ok(config) => config,
        Err(e) => {
            return fail(
                session,
                &target,
                format!("cannot make a certificate for {name}: {e}"),
            )
            .await
        }
    };
    let client_tls = match tokio::time::timeout(timeout, start.into_stream(server_config)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            let why = format!("the client refused wstap's certificate for {name} (does it trust the wstap CA?): {e}");
            return fail(session, &target, why).await;
        }
        Err(_) => {
            return fail(
                session,
                &target,
                format!("client TLS handshake timed out after {timeout:?}"),
            )
            .await
        }
    };
    let client_leg = tls_leg(client_tls.get_ref().1, sni.clone());

    match upstream_tls {
        Ok(upstream_tls) => {
            let upstream_leg = tls_leg(upstream_tls.get_ref().1, Some(name));
            session
                .announce_tls(&target.to_string(), client_leg, upstream_leg)
                .await;
            let (incoming, out) = split_boxed(client_tls);
            let (up_incoming, up_out) = split_boxed(upstream_tls);
            let upstream = Upstream {
                target: target.clone(),
                incoming: up_incoming,
                out: up_out,
                reusable: true,
            };
            Stage::Http {
                session,
                client: Client { incoming, out },
                mode: Mode::Tunnel { target, tls: true },
                upstream: Some(upstream),
            }
        }
        Err(why) => {
            session
                .announce(&target.to_string(), Via::Connect, true)
                .await;
            let (mut incoming, mut out) = split_boxed(client_tls);
            let head = read_request(&mut incoming, timeout).await.ok().flatten();
            let url = head.as_ref().map_or(format!("https://{target}/"), |h| {
                format!("https://{target}{}", h.target)
            });
            session
                .answer_and_end(&mut out, (502, &why), &[], &url, head.as_ref(), "tls")
                .await;
            Stage::Done
        }
    }
}

/// What a finished TLS handshake negotiated, for the trace.
fn tls_leg(state: &rustls::CommonState, sni: Option<String>) -> TlsLeg {
    TlsLeg {
        version: state
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default(),
        cipher: state
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite()))
            .unwrap_or_default(),
        sni,
        alpn: state
            .alpn_protocol()
            .map(|a| String::from_utf8_lossy(a).into_owned()),
    }
}

async fn fail(mut session: Session, target: &Target, why: String) -> Stage {
    session
        .announce(&target.to_string(), Via::Connect, true)
        .await;
    let ending = Ending {
        error: Some(why),
        ..Ending::default()
    };
    session.end(Outcome::Error, "tls", ending).await;
    Stage::Done
}
