//! What a reverse listener (`--reverse`) stands in for, and where a request read on one
//! goes.
//!
//! A reverse listener reads origin-form requests as a server would and forwards each one
//! to the URL it was given. On the way only `Host` changes (to the upstream's authority),
//! `Origin` too when asked, and the path gains the URL's path as a prefix; both the
//! client's values and the new ones are recorded. The listener itself (its TLS, its
//! accepting) is `crate::listen::reverse`.

use crate::error::SessionError;
use crate::http::head::{LineEdit, Request};
use crate::http::route::{scheme, Route};
use crate::target::{parse_absolute, AbsoluteUrl};
use std::net::SocketAddr;
use std::path::PathBuf;
use wstap_trace::{Forwarded, RewrittenHeader};
use wstap_wire::handshake::is_websocket_upgrade;

/// One reverse listener: where it listens and where it forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseProxy {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Give `Origin` the upstream's origin too (`--reverse-rewrite-origin`).
    pub rewrite_origin: bool,
    /// What the listener speaks.
    pub tls: ReverseTls,
    upstream: AbsoluteUrl,
}

/// Whether a reverse listener speaks TLS, and with which certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ReverseTls {
    /// Plain TCP.
    #[default]
    Off,
    /// A certificate for the upstream URL's host, signed by wstap's CA.
    FromCa,
    /// This certificate chain and key (PEM files).
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
}

impl ReverseProxy {
    /// A reverse listener on `listen` forwarding to `url` (`ws://`, `wss://`, `http://`
    /// or `https://`, with an optional path prefix), plain TCP and `Origin` untouched.
    pub fn new(listen: SocketAddr, url: &str) -> Result<ReverseProxy, String> {
        let upstream = parse_absolute(url).map_err(|why| format!("{url:?}: {why}"))?;
        if upstream.path_and_query.contains('?') {
            return Err(format!("{url:?}: a reverse URL has no query"));
        }
        Ok(ReverseProxy {
            listen,
            rewrite_origin: false,
            tls: ReverseTls::Off,
            upstream,
        })
    }

    /// The upstream URL, normalized (`ws://host:port/prefix`).
    pub fn url(&self) -> String {
        let prefix = self.prefix();
        format!(
            "{}://{}{prefix}",
            self.upstream.scheme, self.upstream.target
        )
    }

    /// The URL a client connects to: this listener, with the scheme it speaks.
    pub fn listening_url(&self, bound: SocketAddr) -> String {
        let websocket = matches!(self.upstream.scheme.as_str(), "ws" | "wss");
        let tls = self.tls != ReverseTls::Off;
        format!("{}://{bound}", scheme(websocket, tls))
    }

    /// Whether the upstream speaks TLS.
    pub fn upstream_tls(&self) -> bool {
        self.upstream.is_tls()
    }

    /// The upstream's `host:port`.
    pub(crate) fn upstream_target(&self) -> &crate::target::Target {
        &self.upstream.target
    }

    /// The upstream's host, which a certificate from the CA is made for.
    pub fn upstream_host(&self) -> &str {
        &self.upstream.target.host
    }

    /// The URL's path without its trailing `/`: empty for none.
    fn prefix(&self) -> &str {
        self.upstream.path_and_query.trim_end_matches('/')
    }

    /// The upstream's authority as a `Host` header says it: the port only when it is not
    /// the scheme's default.
    fn authority(&self) -> String {
        let target = &self.upstream.target;
        let default = if self.upstream.is_tls() { 443 } else { 80 };
        match (target.host.contains(':'), target.port == default) {
            (true, true) => format!("[{}]", target.host),
            (false, true) => target.host.clone(),
            (_, false) => target.to_string(),
        }
    }

    /// The upstream's origin, for `Origin`.
    fn origin(&self) -> String {
        let scheme = if self.upstream.is_tls() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.authority())
    }
}

/// Routes a request read on a reverse listener to its upstream.
pub(crate) fn reverse_route(head: &Request, reverse: &ReverseProxy) -> Result<Route, SessionError> {
    let path = if head.target().starts_with('/') {
        head.target().to_owned()
    } else if let Ok(absolute) = parse_absolute(head.target()) {
        absolute.path_and_query
    } else {
        return Err(SessionError::BadRequest(format!(
            "this is a reverse proxy for {}: send origin-form requests (GET /path), not {:?}",
            reverse.url(),
            head.target()
        )));
    };
    let path = format!("{}{path}", reverse.prefix());
    let host = reverse.authority();
    let origin = reverse.rewrite_origin.then(|| reverse.origin());
    let edited = head.edit(Some(&path), |name, value| {
        let wanted = if name.eq_ignore_ascii_case("host") {
            Some(&host)
        } else if name.eq_ignore_ascii_case("origin") {
            origin.as_ref()
        } else {
            None
        };
        match wanted {
            Some(new) if new != value => LineEdit::Replace(new.clone()),
            _ => LineEdit::Keep,
        }
    });
    let websocket = is_websocket_upgrade(&head.headers);
    let upstream = &reverse.upstream;
    Ok(Route {
        url: format!(
            "{}://{}{path}",
            scheme(websocket, upstream.is_tls()),
            upstream.target
        ),
        target: upstream.target.clone(),
        forwarded: Forwarded {
            target: (path != head.target()).then_some(path),
            removed_headers: Vec::new(),
            rewritten_headers: edited
                .replaced
                .into_iter()
                .map(|(name, from, to)| RewrittenHeader { name, from, to })
                .collect(),
        },
        head_bytes: edited.bytes,
        fixed: false,
        tls: upstream.is_tls(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Request {
        crate::http::head::parse_request(raw.as_bytes())
            .unwrap()
            .unwrap()
    }

    fn forwarded(reverse: &ReverseProxy, raw: &str) -> (String, Route) {
        let route = reverse_route(&head(raw), reverse).unwrap();
        (String::from_utf8(route.head_bytes.clone()).unwrap(), route)
    }

    #[test]
    fn host_is_rewritten_and_the_rest_kept_byte_for_byte() {
        let listen = "127.0.0.1:9".parse().unwrap();
        let reverse = ReverseProxy::new(listen, "ws://127.0.0.1:9000").unwrap();
        let (sent, route) = forwarded(
            &reverse,
            "GET /chat HTTP/1.1\r\nhost: localhost:8080\r\nOrigin: http://localhost:8080\r\nX-A:  b \r\n\r\n",
        );
        assert_eq!(
            sent,
            "GET /chat HTTP/1.1\r\nhost: 127.0.0.1:9000\r\nOrigin: http://localhost:8080\r\nX-A:  b \r\n\r\n"
        );
        assert_eq!(route.url, "http://127.0.0.1:9000/chat");
        assert_eq!(route.forwarded.target, None);
        assert_eq!(
            route.forwarded.rewritten_headers,
            vec![RewrittenHeader {
                name: "host".into(),
                from: "localhost:8080".into(),
                to: "127.0.0.1:9000".into()
            }]
        );
        assert!(!route.tls && !route.fixed);
    }

    #[test]
    fn origin_prefix_and_default_ports() {
        let listen = "127.0.0.1:9".parse().unwrap();
        let mut reverse = ReverseProxy::new(listen, "wss://api.example.com/v2/").unwrap();
        reverse.rewrite_origin = true;
        assert_eq!(reverse.url(), "wss://api.example.com:443/v2");
        let (sent, route) = forwarded(
            &reverse,
            "GET /ws?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nOrigin: http://a\r\n\r\n",
        );
        assert!(sent.starts_with("GET /v2/ws?x=1 HTTP/1.1\r\nHost: api.example.com\r\n"));
        assert!(sent.contains("\r\nOrigin: https://api.example.com\r\n"));
        assert_eq!(route.url, "wss://api.example.com:443/v2/ws?x=1");
        assert_eq!(route.forwarded.target.as_deref(), Some("/v2/ws?x=1"));
        assert_eq!(route.forwarded.rewritten_headers.len(), 2);
        assert!(route.tls);
    }

    #[test]
    fn bad_urls_and_targets() {
        let listen = "127.0.0.1:9".parse().unwrap();
        for bad in ["ftp://h", "h:80", "ws://", "ws://h/?q=1"] {
            assert!(ReverseProxy::new(listen, bad).is_err(), "{bad}");
        }
        let reverse = ReverseProxy::new(listen, "http://[::1]:8080").unwrap();
        assert_eq!(reverse.authority(), "[::1]:8080");
        assert!(reverse_route(&head("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), &reverse).is_err());
        let (_, route) = forwarded(&reverse, "GET http://x/y HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(route.url, "http://[::1]:8080/y");
    }
}
