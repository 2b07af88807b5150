//! One intercepted tunnel: read the ClientHello, connect upstream with the same name,
//! answer the client with a certificate for it, then serve the decrypted streams.
//!
//! If the upstream cannot be reached over TLS (a bad certificate, say), the client's
//! handshake is still completed so that its request can be answered with a `502` whose
//! body names the reason: a TLS alert would only tell the user that *something* failed.

use super::Interceptor;
use crate::error::SessionError;
use crate::head::read_request;
use crate::io::{split_boxed, Client, Joined, Upstream};
use crate::session::Session;
use crate::stage::{Requests, Scope, Stage};
use crate::upstream::{tls_handshake, Target};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{LazyConfigAcceptor, StartHandshake};
use wstap_trace::{PeerCertificate, SessionKind, TlsLeg};

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
            session
                .announce_tls(&target.to_string(), client_leg, upstream_leg)
                .await;
            let (incoming, out) = split_boxed(client_tls);
            let upstream = Upstream::from_halves(target.clone(), split_boxed(upstream_tls));
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
            session.announce(&target.to_string(), via, true).await;
            answer_first_request(session, client_tls, &target, error.into(), timeout).await;
            Stage::Done
        }
    }
}

/// Reads the client's ClientHello within `timeout`.
async fn client_hello(client: Client, timeout: Duration) -> Result<StartHandshake<Joined>, String> {
    let acceptor = LazyConfigAcceptor::new(
        rustls::server::Acceptor::default(),
        Joined::new(client.incoming, client.out),
    );
    match tokio::time::timeout(timeout, acceptor).await {
        Ok(Ok(start)) => Ok(start),
        Ok(Err(e)) => Err(format!("reading the client's TLS ClientHello failed: {e}")),
        Err(_) => Err(format!("no TLS ClientHello within {timeout:?}")),
    }
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
    let path = head.as_ref().map_or("/", |h| h.target.as_str());
    let url = format!("https://{target}{path}");
    session
        .refuse(&mut out, error, head.as_ref(), &url, SessionKind::Tls)
        .await;
}

/// What a finished TLS handshake negotiated, for the trace: with the peer's certificate
/// when `with_certificate` (the upstream leg; a client presents none).
fn tls_leg(state: &rustls::CommonState, sni: Option<String>, with_certificate: bool) -> TlsLeg {
    let certificate = with_certificate
        .then(|| state.peer_certificates().and_then(|chain| chain.first()))
        .flatten()
        .and_then(|der| peer_certificate(der.as_ref()));
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
        certificate,
    }
}

/// The facts of a certificate people check: who, by whom, when, for which names, and its
/// fingerprint. `None` for bytes that do not parse (rustls verified them, or `--insecure`
/// let them through).
fn peer_certificate(der: &[u8]) -> Option<PeerCertificate> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let time = |t: &x509_parser::time::ASN1Time| {
        chrono::DateTime::from_timestamp(t.timestamp(), 0)
            .map(|d| d.to_rfc3339())
            .unwrap_or_default()
    };
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                GeneralName::IPAddress(ip) => ip_text(ip),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    Some(PeerCertificate {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: time(&cert.validity().not_before),
        not_after: time(&cert.validity().not_after),
        names,
        sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// An IP address from a certificate's 4 or 16 bytes.
fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

/// The client's TLS handshake did not complete: there is nobody to answer, so the reason
/// goes into the session's end.
async fn abandon(mut session: Session, target: &Target, why: String) -> Stage {
    let via = session.tunnel_via;
    session.announce(&target.to_string(), via, true).await;
    session.abandon(SessionKind::Tls, why).await;
    Stage::Done
}
