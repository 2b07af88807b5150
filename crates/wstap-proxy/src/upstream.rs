//! Where requests go: `host:port` targets, absolute-form URLs, and connecting to them,
//! over TCP or (for `https://` and `wss://` in absolute form) TLS.

use crate::error::UpstreamError;
use crate::io::{split_boxed, Upstream};
use crate::mitm::Interceptor;
use crate::parent::ParentProxy;
use rustls::pki_types::ServerName;
use std::fmt;
use std::time::Duration;
use tokio::net::TcpStream;
use wstap_trace::{ParentHop, TlsLeg};

/// An upstream `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `host:port` or `[v6]:port` as a CONNECT target; the port is required.
pub(crate) fn parse_authority(authority: &str) -> Result<Target, String> {
    if authority.contains("://") || authority.starts_with('/') {
        return Err(format!(
            "CONNECT needs host:port, not a URI ({authority:?})"
        ));
    }
    let (host, port) = split_host_port(authority)
        .ok_or_else(|| format!("CONNECT target {authority:?} has no port"))?;
    let port = parse_port(port, authority)?;
    Ok(Target { host, port })
}

fn split_host_port(authority: &str) -> Option<(String, &str)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        Some((host.to_owned(), port))
    } else {
        let (host, port) = authority.rsplit_once(':')?;
        (!host.contains(':')).then(|| (host.to_owned(), port))
    }
}

fn parse_port(port: &str, whole: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("invalid port in {whole:?}")),
        Ok(p) => Ok(p),
    }
}

/// An absolute-form request target split up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AbsoluteUrl {
    /// `http`, `ws`, `https` or `wss`, lower-cased.
    pub scheme: String,
    /// Host and port (the scheme's default when absent).
    pub target: Target,
    /// The origin-form target to send upstream: path and query, at least `/`.
    pub path_and_query: String,
}

impl AbsoluteUrl {
    /// Whether the scheme needs TLS to the upstream.
    pub fn is_tls(&self) -> bool {
        matches!(self.scheme.as_str(), "https" | "wss")
    }
}

/// Parses an absolute-form request target (`http://host:port/path?query`).
pub(crate) fn parse_absolute(url: &str) -> Result<AbsoluteUrl, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not an absolute URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        other => return Err(format!("unsupported scheme {other:?}")),
    };
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(path_start);
    // Credentials in the URL are not for the upstream's authority.
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let target = match split_host_port(authority) {
        Some((host, port)) => Target {
            host,
            port: parse_port(port, authority)?,
        },
        None => Target {
            host: authority
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: default_port,
        },
    };
    let path_and_query = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    Ok(AbsoluteUrl {
        scheme,
        target,
        path_and_query,
    })
}

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
    let stream = tls_handshake(tls, target, &target.host, stream, handshake_timeout).await?;
    let leg = crate::mitm::tls_leg(stream.get_ref().1, Some(target.host.clone()), true);
    Ok(Dialled {
        upstream: Upstream::from_halves(target.clone(), split_boxed(stream)),
        parent,
        tls: Some(leg),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_targets() {
        assert_eq!(
            parse_authority("example.com:443").unwrap().to_string(),
            "example.com:443"
        );
        assert_eq!(parse_authority("[::1]:8080").unwrap().host, "::1");
        assert!(parse_authority("example.com").is_err());
        assert!(parse_authority("example.com:99999").is_err());
        assert!(parse_authority("example.com:0").is_err());
        assert!(parse_authority("http://example.com:80/").is_err());
    }

    #[test]
    fn absolute_urls() {
        let u = parse_absolute("ws://h/chat?x=1").unwrap();
        assert_eq!(
            (u.target.to_string(), u.path_and_query.as_str()),
            ("h:80".into(), "/chat?x=1")
        );
        let u = parse_absolute("HTTP://user:pw@[::1]:81").unwrap();
        assert_eq!(
            (u.target.to_string(), u.path_and_query.as_str()),
            ("[::1]:81".into(), "/")
        );
        assert!(parse_absolute("wss://h").unwrap().is_tls());
        assert!(parse_absolute("ftp://h/").is_err());
        assert!(parse_absolute("/relative").is_err());
    }
}
