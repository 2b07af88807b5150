//! Where the replay connects: the target's URL, a TCP connection, and the head of an
//! HTTP response.

use crate::endpoint::read_head;
use crate::AppError;
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::AsyncRead;
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
}
