//! Where one request goes, and what is changed in it on the way.
//!
//! On the proxy's own port a client sends absolute-form requests: they go to the URL's
//! host, with an origin-form target, and lose their hop-by-hop and `Proxy-*` header lines
//! (a WebSocket handshake keeps `Connection` and `Upgrade`, which it needs). Inside a
//! CONNECT tunnel, requests are origin-form and go to the tunnel's target unchanged, byte
//! for byte.

use crate::error::SessionError;
use crate::head::Request;
use crate::target::{parse_absolute, scheme, Target};
use wstap_trace::Forwarded;
use wstap_wire::handshake::is_websocket_upgrade;

/// Where and how to forward one request.
pub(crate) struct Route {
    /// The upstream.
    pub target: Target,
    /// The URL for the log (`http://...` or `ws://...`).
    pub url: String,
    /// The head to send upstream.
    pub head_bytes: Vec<u8>,
    /// What was changed in it.
    pub forwarded: Forwarded,
    /// Inside a CONNECT tunnel: the upstream is fixed and never re-dialled.
    pub fixed: bool,
    /// The upstream speaks TLS (dialled with wstap's upstream TLS settings).
    pub tls: bool,
}

/// Hop-by-hop headers a forward proxy removes (RFC 9110 section 7.6.1), besides those
/// `Connection` names. `Transfer-Encoding` stays: bodies are relayed with their framing.
const HOP_BY_HOP: [&str; 4] = ["connection", "keep-alive", "te", "upgrade"];

fn is_proxy_header(name: &str) -> bool {
    name.len() >= 6 && name[..6].eq_ignore_ascii_case("proxy-")
}

/// The headers `Connection` names, lower-cased (framing headers excepted).
fn named_by_connection(head: &Request) -> Vec<String> {
    head.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "transfer-encoding" && t != "content-length")
        .collect()
}

/// Routes an absolute-form request on the proxy's port; `can_tls` says whether wstap can
/// speak TLS to upstreams (interception is on).
pub(crate) fn proxy_route(head: &Request, can_tls: bool) -> Result<Route, SessionError> {
    let url = parse_absolute(head.target()).map_err(|why| {
        SessionError::BadRequest(format!(
            "this is a proxy: send absolute-form requests (GET http://host/path) or CONNECT ({why})"
        ))
    })?;
    if url.is_tls() && !can_tls {
        return Err(SessionError::NeedsTls { scheme: url.scheme });
    }
    let websocket = is_websocket_upgrade(&head.headers);
    let (head_bytes, removed) = if websocket {
        head.rewrite(Some(&url.path_and_query), is_proxy_header)
    } else {
        let named = named_by_connection(head);
        head.rewrite(Some(&url.path_and_query), |name| {
            is_proxy_header(name)
                || HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
                || named.iter().any(|n| n.eq_ignore_ascii_case(name))
        })
    };
    let scheme = scheme(websocket, url.is_tls());
    Ok(Route {
        tls: url.is_tls(),
        url: format!("{scheme}://{}{}", url.target, url.path_and_query),
        target: url.target,
        forwarded: Forwarded {
            target: Some(url.path_and_query),
            removed_headers: removed,
            rewritten_headers: Vec::new(),
        },
        head_bytes,
        fixed: false,
    })
}

/// Routes a request inside a tunnel to `target`: unchanged.
pub(crate) fn tunnel_route(head: &Request, target: &Target, tls: bool) -> Route {
    let scheme = scheme(is_websocket_upgrade(&head.headers), tls);
    let url = if head.target().starts_with('/') {
        format!("{scheme}://{target}{}", head.target())
    } else {
        head.target().to_owned()
    };
    Route {
        target: target.clone(),
        url,
        head_bytes: head.raw.to_vec(),
        forwarded: Forwarded::default(),
        fixed: true,
        tls,
    }
}
