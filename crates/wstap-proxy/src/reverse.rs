//! Reverse mode (`--reverse`): a listener that clients take for the server itself.
//!
//! A client with a hard-coded `ws://` or `wss://` URL cannot be pointed at a proxy, but it
//! can be pointed at another address. A reverse listener reads origin-form requests as a
//! server would and forwards each one to the URL it was given, over TCP or TLS, through
//! the parent proxy when there is one. On the way only `Host` changes (to the upstream's
//! authority), `Origin` too when asked, and the path gains the URL's path as a prefix;
//! both the client's values and the new ones are recorded. Everything after the head is
//! relayed and decoded exactly as in forward mode.
//!
//! With TLS on the listener (`--reverse-tls`), wstap presents a certificate signed by its
//! CA for the name the client asks for (its SNI; the URL's host when it names none), or
//! the certificate and key given in PEM files.

use crate::error::SessionError;
use crate::head::{Head, LineEdit};
use crate::io::{split_boxed, Client};
use crate::mitm::Interceptor;
use crate::route::{scheme, Route};
use crate::session::Session;
use crate::stage::{Requests, Scope, Stage};
use crate::upstream::{parse_absolute, AbsoluteUrl};
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use wstap_trace::{Forwarded, RewrittenHeader, SessionKind, Via};
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

/// Routes a request read on a reverse listener to its upstream.
pub(crate) fn reverse_route(head: &Head, reverse: &ReverseProxy) -> Result<Route, SessionError> {
    let path = if head.target.starts_with('/') {
        head.target.clone()
    } else if let Ok(absolute) = parse_absolute(&head.target) {
        absolute.path_and_query
    } else {
        return Err(SessionError::BadRequest(format!(
            "this is a reverse proxy for {}: send origin-form requests (GET /path), not {:?}",
            reverse.url(),
            head.target
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
            target: (path != head.target).then_some(path),
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

/// Serves one connection accepted on a reverse listener: its TLS first, when it speaks
/// TLS, then its requests.
pub(crate) async fn serve(mut session: Session, stream: TcpStream, listener: Arc<ReverseListener>) {
    let _ = stream.set_nodelay(true);
    let client = match &listener.tls {
        None => Client::from_tcp(stream),
        Some(tls) => {
            match accept_tls(&mut session, stream, tls, listener.proxy.upstream_host()).await {
                Ok(client) => client,
                Err(why) => {
                    let target = listener.proxy.upstream.target.to_string();
                    session.announce(&target, Via::Reverse, true).await;
                    session.abandon(SessionKind::Tls, why).await;
                    return;
                }
            }
        }
    };
    let mut stage = Stage::Requests(Requests {
        session,
        client,
        scope: Scope::Reverse(Arc::clone(&listener.proxy)),
        upstream: None,
        served: 0,
    });
    while let Some(running) = stage.run() {
        stage = running.await;
    }
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
        let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
        let hello = acceptor
            .await
            .map_err(|e| format!("reading the client's TLS ClientHello failed: {e}"))?;
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
    session.note_client_tls(crate::mitm::tls_leg(state, sni, false));
    let (incoming, out) = split_boxed(tls);
    Ok(Client { incoming, out })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head {
        crate::head::parse_request(raw.as_bytes()).unwrap().unwrap()
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
