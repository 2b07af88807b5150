//! Dialing upstreams: connecting to a [`Target`] over TCP, directly or through a parent
//! proxy ([`parent`]), and the TLS handshake for `https://` and `wss://` in absolute form.

use crate::error::UpstreamError;
use crate::io::{split_boxed, Upstream};
use crate::tls::Interceptor;
pub(crate) mod parent;

use crate::target::Target;
use parent::ParentProxy;
use rustls::pki_types::ServerName;
use std::time::Duration;
use tokio::net::TcpStream;
use wstap_trace::{ParentHop, TlsLeg};

/// Connects to `target` within `timeout`, with Nagle's algorithm off (a relay must not
/// hold back small frames): through `parent` unless it bypasses the target's host, in
/// which case the parent's answer comes back too.
pub(crate) async fn connect(
    target: &Target,
    timeout: Duration,
    parent: Option<&ParentProxy>,
) -> Result<(TcpStream, Option<ParentHop>), UpstreamError> {
    if let Some(parent) = parent.filter(|p| !p.bypasses(&target.host)) {
        let (stream, hop) = parent.tunnel(target, timeout).await?;
        return Ok((stream, Some(hop)));
    }
    let attempt = TcpStream::connect((target.host.as_str(), target.port));
    let stream = tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| UpstreamError::ConnectTimeout {
            target: target.clone(),
            after: timeout,
        })?
        .map_err(|source| UpstreamError::Connect {
            target: target.clone(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    Ok((stream, None))
}

/// Opens TLS to `target` over `io` with wstap's upstream settings, verifying the
/// certificate for `name`, within `timeout`.
pub(crate) async fn tls_handshake<IO>(
    tls: &Interceptor,
    target: &Target,
    name: &str,
    io: IO,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<IO>, UpstreamError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|e| UpstreamError::ServerName {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
    let connector = tokio_rustls::TlsConnector::from(tls.upstream_config());
    tokio::time::timeout(timeout, connector.connect(server_name, io))
        .await
        .map_err(|_| UpstreamError::TlsTimeout {
            target: target.clone(),
            after: timeout,
        })?
        .map_err(|source| UpstreamError::Tls {
            target: target.clone(),
            name: name.to_owned(),
            source,
        })
}

/// An upstream connection just made, and how it was made.
pub(crate) struct Dialled {
    /// The connection.
    pub upstream: Upstream,
    /// The parent proxy's answer, when it went through one.
    pub parent: Option<ParentHop>,
    /// The TLS leg to the upstream, when it speaks TLS.
    pub tls: Option<TlsLeg>,
}

/// Connects to `target`, over TLS (verified for its host name) when `tls` is given.
pub(crate) async fn dial(
    target: &Target,
    tls: Option<&Interceptor>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    parent: Option<&ParentProxy>,
) -> Result<Dialled, UpstreamError> {
    let (stream, parent) = connect(target, connect_timeout, parent).await?;
    let Some(tls) = tls else {
        let upstream = Upstream::from_tcp(target.clone(), stream);
        return Ok(Dialled {
            upstream,
            parent,
            tls: None,
        });
    };
    let addresses = crate::io::tcp_leg(&stream);
    let stream = tls_handshake(tls, target, &target.host, stream, handshake_timeout).await?;
    let leg = crate::tls::tls_leg(stream.get_ref().1, Some(target.host.clone()), true);
    Ok(Dialled {
        upstream: Upstream::from_halves(target.clone(), split_boxed(stream))
            .with_addresses(addresses),
        parent,
        tls: Some(leg),
    })
}
