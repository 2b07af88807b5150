//! A reverse listener's setting (`--reverse LISTEN=URL`): where it listens, what it
//! speaks, and the upstream it stands in for. Where each request then goes is
//! `crate::http::reverse`.

use crate::target::{parse_absolute, scheme, AbsoluteUrl};
use std::net::SocketAddr;
use std::path::PathBuf;

/// One reverse listener: where it listens and where it forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseProxy {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// Give `Origin` the upstream's origin too (`--reverse-rewrite-origin`).
    pub rewrite_origin: bool,
    /// What the listener speaks.
    pub tls: ReverseTls,
    pub(crate) upstream: AbsoluteUrl,
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
    pub(crate) fn prefix(&self) -> &str {
        self.upstream.path_and_query.trim_end_matches('/')
    }

    /// The upstream's authority as a `Host` header says it: the port only when it is not
    /// the scheme's default.
    pub(crate) fn authority(&self) -> String {
        let target = &self.upstream.target;
        let default = if self.upstream.is_tls() { 443 } else { 80 };
        match (target.host.contains(':'), target.port == default) {
            (true, true) => format!("[{}]", target.host),
            (false, true) => target.host.clone(),
            (_, false) => target.to_string(),
        }
    }

    /// The upstream's origin, for `Origin`.
    pub(crate) fn origin(&self) -> String {
        let scheme = if self.upstream.is_tls() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.authority())
    }
}
