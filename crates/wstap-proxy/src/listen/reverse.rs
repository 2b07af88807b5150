//! Reverse mode (`--reverse`): a listener that clients take for the server itself.
//!
//! A client with a hard-coded `ws://` or `wss://` URL cannot be pointed at a proxy, but it
//! can be pointed at another address. A reverse listener reads origin-form requests as a
//! server would and forwards each one to the URL it was given, over TCP or TLS, through
//! the parent proxy when there is one (`crate::http::reverse` says where each request
//! goes and what of its head changes). Everything after the head is relayed and decoded
//! exactly as in forward mode.
//!
//! With TLS on the listener (`--reverse-tls`), wstap presents a certificate signed by its
//! CA for the name the client asks for (its SNI; the URL's host when it names none), or
//! the certificate and key given in PEM files.

use crate::io::{split_boxed, Client};
use crate::session::Session;
use crate::stage::{Requests, Scope, Stage};
use crate::tls::Interceptor;
use rustls::ServerConfig;
use std::sync::Arc;
use tokio::net::TcpStream;
use wstap_trace::{SessionKind, Via};

use crate::config::reverse::ReverseProxy;

/// A reverse listener ready to serve: its settings and the TLS it speaks.
#[derive(Debug)]
pub(crate) struct ReverseListener {
    /// Its settings.
    pub proxy: Arc<ReverseProxy>,
    /// The TLS the listener speaks, when it does.
    pub tls: Option<ListenerTls>,
}

/// Where a TLS reverse listener's certificate comes from.
#[derive(Debug)]
pub(crate) enum ListenerTls {
    /// The CA signs one for the name the client asks for (SNI), else for the URL's host.
    FromCa(Arc<Interceptor>),
    /// The user's own, from `--reverse-cert` and `--reverse-key`.
    Fixed(Arc<ServerConfig>),
}

/// Takes one connection accepted on a reverse listener as far as its requests: its TLS
/// first, when it speaks TLS. `None` when that failed (the session is then recorded).
pub(crate) async fn serve(
    mut session: Session,
    stream: TcpStream,
    listener: Arc<ReverseListener>,
) -> Option<Stage> {
    let _ = stream.set_nodelay(true);
    let client = match &listener.tls {
        None => Client::from_tcp(stream),
        Some(tls) => {
            match accept_tls(&mut session, stream, tls, listener.proxy.upstream_host()).await {
                Ok(client) => client,
                Err(why) => {
                    let target = listener.proxy.upstream_target().to_string();
                    session.note_target(target, Via::Reverse, true);
                    session.abandon(SessionKind::Tls, why).await;
                    return None;
                }
            }
        }
    };
    Some(Stage::Requests(Requests {
        session,
        client,
        scope: Scope::Reverse(Arc::clone(&listener.proxy)),
        upstream: None,
        served: 0,
    }))
}

/// Completes the client's TLS handshake within the handshake timeout and notes its leg.
async fn accept_tls(
    session: &mut Session,
    stream: TcpStream,
    tls: &ListenerTls,
    host: &str,
) -> Result<Client, String> {
    let timeout = session.shared.config.handshake_timeout;
    let handshake = async {
        let hello = crate::tls::read_client_hello(stream).await?;
        let config = match tls {
            ListenerTls::Fixed(config) => Arc::clone(config),
            ListenerTls::FromCa(ca) => {
                let name = hello
                    .client_hello()
                    .server_name()
                    .unwrap_or(host)
                    .to_owned();
                ca.server_config(&name)
                    .map_err(|e| format!("cannot make a certificate for {name}: {e}"))?
            }
        };
        hello.into_stream(config).await.map_err(|e| {
            format!("the client's TLS handshake failed (does it trust the certificate?): {e}")
        })
    };
    let tls = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(why)) => return Err(why),
        Err(_) => return Err(format!("client TLS handshake timed out after {timeout:?}")),
    };
    let state = tls.get_ref().1;
    let sni = state.server_name().map(str::to_owned);
    session.note_client_tls(crate::tls::tls_leg(state, sni, false));
    let (incoming, out) = split_boxed(tls);
    Ok(Client { incoming, out })
}
