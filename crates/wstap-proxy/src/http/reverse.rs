//! Where a request read on a reverse listener (`--reverse`) goes.
//!
//! A reverse listener reads origin-form requests as a server would and forwards each one
//! to the URL it was given. On the way only `Host` changes (to the upstream's authority),
//! `Origin` too when asked, and the path gains the URL's path as a prefix; both the
//! client's values and the new ones are recorded. What a listener stands in for is its
//! setting (`crate::config::reverse`); the listener itself (its TLS, its accepting) is
//! `crate::listen::reverse`.

use crate::config::reverse::ReverseProxy;
use crate::error::SessionError;
use crate::head::{LineEdit, Request};
use crate::http::route::Route;
use crate::target::{parse_absolute, scheme};
use wstap_trace::{Forwarded, RewrittenHeader};
use wstap_wire::handshake::is_websocket_upgrade;

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
