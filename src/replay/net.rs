//! Where the replay connects, and how: the target's URL, an HTTP proxy's tunnel, and
//! the head of an HTTP response.

use crate::endpoint::read_head;
use crate::AppError;
use base64::Engine;
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use wstap_proxy::{take_response, Response};

/// A TCP connection to `host:port`, within 10 s.
pub(super) async fn connect(host: &str, port: u16) -> Result<TcpStream, AppError> {
    timeout(Duration::from_secs(10), TcpStream::connect((host, port)))
        .await
        .map_err(|_| AppError::Export(format!("connecting to {host}:{port}: timed out")))?
        .map_err(|e| AppError::Export(format!("connecting to {host}:{port}: {e}")))
}

/// An HTTP proxy to tunnel through: `http://[user:password@]host:port`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ProxyUrl {
    pub(super) host: String,
    pub(super) port: u16,
    /// `user:password`, for `Proxy-Authorization: Basic`.
    pub(super) credentials: Option<String>,
}

impl ProxyUrl {
    pub(super) fn parse(url: &str) -> Result<ProxyUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("--proxy {url}: not an http:// URL"))?;
        let rest = rest.trim_end_matches('/');
        let (credentials, authority) = match rest.rsplit_once('@') {
            Some((credentials, authority)) => (Some(credentials.to_owned()), authority),
            None => (None, rest),
        };
        // The port is required: a proxy has no default one worth guessing.
        let (host, port) = authority
            .rsplit_once(':')
            .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("--proxy {url}: give the proxy's host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("--proxy {url}: no host"));
        }
        Ok(ProxyUrl {
            host: host.to_owned(),
            port,
            credentials,
        })
    }
}

/// Asks `proxy` (already connected on `stream`) for a tunnel to `target`.
pub(super) async fn open_tunnel(
    stream: &mut TcpStream,
    proxy: &ProxyUrl,
    target: &Target,
) -> Result<(), AppError> {
    let host = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let mut request = format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n");
    if let Some(credentials) = &proxy.credentials {
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        request.push_str(&format!("Proxy-Authorization: Basic {encoded}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| AppError::Export(format!("asking the proxy for a tunnel: {e}")))?;
    let (response, rest) = read_response(stream).await?;
    let status = response.status();
    if !(200..300).contains(&status) || !rest.is_empty() {
        return Err(AppError::Export(format!(
            "the proxy answered CONNECT {host} with {status}"
        )));
    }
    Ok(())
}

/// Where to connect: from a ws:// or wss:// URL.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) tls: bool,
    pub(super) host: String,
    pub(super) port: u16,
    /// `host` or `host:port` as the Host header says it.
    pub(super) authority: String,
    /// Path and query.
    pub(super) path: String,
}

impl Target {
    pub(super) fn parse(url: &str) -> Result<Target, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else {
            return Err(format!("{url}: not a ws:// or wss:// URL"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_owned()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_owned()),
        };
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = match authority.strip_prefix('[') {
            // An IPv6 literal: `[::1]` or `[::1]:8080`.
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| format!("{url}: unclosed [ in the host"))?;
                match after.strip_prefix(':') {
                    Some(port) => (host, port),
                    None if after.is_empty() => (host, ""),
                    None => return Err(format!("{url}: bad host")),
                }
            }
            None => authority.split_once(':').unwrap_or((authority, "")),
        };
        let port = match port {
            "" => default_port,
            port => port
                .parse::<u16>()
                .map_err(|_| format!("{url}: bad port {port:?}"))?,
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        Ok(Target {
            tls,
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            path,
        })
    }
}

/// The response head (the proxy's own parser), within 10 s, and the bytes read past it.
pub(super) async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(Response, BytesMut), AppError> {
    read_head(stream, take_response, Some(Duration::from_secs(10)))
        .await
        .map_err(|e| AppError::Export(format!("the answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_urls() {
        assert_eq!(
            Target::parse("wss://example.com/chat?room=1").unwrap(),
            Target {
                tls: true,
                host: "example.com".into(),
                port: 443,
                authority: "example.com".into(),
                path: "/chat?room=1".into(),
            }
        );
        let t = Target::parse("ws://127.0.0.1:9001").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 9001, "/")
        );
        let t = Target::parse("ws://[::1]:8080/x").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("::1", 8080, "[::1]:8080")
        );
        let t = Target::parse("wss://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        assert!(Target::parse("ws://[::1/").is_err());
        let t = Target::parse("ws://host?q=1").unwrap();
        assert_eq!(t.path, "/?q=1");
        assert!(Target::parse("http://host/").is_err());
        assert!(Target::parse("ws://host:99999/").is_err());
        assert!(Target::parse("ws:///path").is_err());
    }

    #[test]
    fn proxies_from_urls() {
        assert_eq!(
            ProxyUrl::parse("http://127.0.0.1:8888").unwrap(),
            ProxyUrl {
                host: "127.0.0.1".into(),
                port: 8888,
                credentials: None
            }
        );
        let p = ProxyUrl::parse("http://ann:s3cret@[::1]:3128/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 3128));
        assert_eq!(p.credentials.as_deref(), Some("ann:s3cret"));
        assert!(ProxyUrl::parse("socks5://127.0.0.1:1080").is_err());
        assert!(ProxyUrl::parse("http://127.0.0.1").is_err());
        assert!(ProxyUrl::parse("http://:8888").is_err());
    }
}
