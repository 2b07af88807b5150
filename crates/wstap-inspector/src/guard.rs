//! Who may use the inspector: the holder of its token, through a `Host` that is the
//! listener's own, from a page of its own origin.
//!
//! The inspector shows everything wstap saw, so a request must carry the token (in the
//! query once, then in a cookie, or as `Authorization: Bearer` for scripts). A `Host`
//! that is not an IP literal or `localhost` with the listener's port is refused, which
//! defeats DNS rebinding (a rebound name arrives as that name). A request with an
//! `Origin` must come from the inspector's own origin: another site's page cannot read the
//! live feed or, later, change anything.

use hyper::header::{HeaderMap, AUTHORIZATION, COOKIE, HOST, ORIGIN};
use std::net::{IpAddr, SocketAddr};

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or a wrong one: 401.
    NoToken,
    /// A `Host` that is not this listener: 403.
    ForeignHost,
    /// An `Origin` that is not this inspector: 403.
    ForeignOrigin,
}

impl Refusal {
    /// The HTTP status of the refusal.
    pub fn status(self) -> u16 {
        match self {
            Refusal::NoToken => 401,
            Refusal::ForeignHost | Refusal::ForeignOrigin => 403,
        }
    }

    /// What the refusal says.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NoToken => {
                "this inspector needs its token: open the URL wstap printed at start (it ends in ?token=...)"
            }
            Refusal::ForeignHost => {
                "the Host header does not name this inspector's listener (a DNS rebinding attempt?)"
            }
            Refusal::ForeignOrigin => "requests from another site's pages are refused",
        }
    }
}

/// The checks of one listener.
#[derive(Debug, Clone)]
pub struct Guard {
    token: String,
    port: u16,
    cookie: String,
}

/// How a request proved it holds the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// In the query string: the page answers by moving it into a cookie.
    Query,
    /// In the cookie or the `Authorization` header.
    Held,
}

impl Guard {
    /// The guard of a listener at `addr` with `token`.
    pub fn new(addr: SocketAddr, token: String) -> Guard {
        Guard {
            cookie: format!("wstap_token_{}", addr.port()),
            token,
            port: addr.port(),
        }
    }

    /// The `Set-Cookie` value that keeps the token for later requests.
    pub fn set_cookie(&self) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie, self.token
        )
    }

    /// Checks a request's `Host`, `Origin` and token, in that order.
    pub fn check(&self, headers: &HeaderMap, query_token: Option<&str>) -> Result<Proof, Refusal> {
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        if !host.is_some_and(|h| self.is_own_host(h)) {
            return Err(Refusal::ForeignHost);
        }
        if let Some(origin) = headers.get(ORIGIN) {
            let own = origin
                .to_str()
                .ok()
                .and_then(|o| o.strip_prefix("http://"))
                .is_some_and(|h| self.is_own_host(h));
            if !own {
                return Err(Refusal::ForeignOrigin);
            }
        }
        if self.held(headers) {
            return Ok(Proof::Held);
        }
        match query_token {
            Some(token) if constant_time_eq(token.as_bytes(), self.token.as_bytes()) => {
                Ok(Proof::Query)
            }
            _ => Err(Refusal::NoToken),
        }
    }

    /// Whether the cookie or a bearer header carries the token.
    fn held(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), self.token.as_bytes()));
        bearer
            || headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .any(|(name, value)| {
                    name == self.cookie && constant_time_eq(value.as_bytes(), self.token.as_bytes())
                })
    }

    /// An IP literal or `localhost`, with this listener's port.
    fn is_own_host(&self, host: &str) -> bool {
        let Some((name, port)) = host.rsplit_once(':') else {
            return false;
        };
        if port.parse::<u16>().ok() != Some(self.port) {
            return false;
        }
        let name = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
    }
}

/// A fresh random token: 128 bits, in hex.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares without stopping at the first difference, so timing tells nothing of a token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn guard() -> Guard {
        Guard::new("127.0.0.1:8889".parse().unwrap(), "abc123".into())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_token_is_needed_in_the_query_a_cookie_or_a_bearer_header() {
        let g = guard();
        let host = ("host", "127.0.0.1:8889");
        assert_eq!(g.check(&headers(&[host]), None), Err(Refusal::NoToken));
        assert_eq!(
            g.check(&headers(&[host]), Some("wrong")),
            Err(Refusal::NoToken)
        );
        assert_eq!(g.check(&headers(&[host]), Some("abc123")), Ok(Proof::Query));
        let cookie = ("cookie", "a=b; wstap_token_8889=abc123");
        assert_eq!(g.check(&headers(&[host, cookie]), None), Ok(Proof::Held));
        let other_port = ("cookie", "wstap_token_9999=abc123");
        assert_eq!(
            g.check(&headers(&[host, other_port]), None),
            Err(Refusal::NoToken)
        );
        let bearer = ("authorization", "Bearer abc123");
        assert_eq!(g.check(&headers(&[host, bearer]), None), Ok(Proof::Held));
    }

    #[test]
    fn hosts_must_be_ip_literals_or_localhost_with_the_port() {
        let g = guard();
        for ok in [
            "127.0.0.1:8889",
            "localhost:8889",
            "[::1]:8889",
            "LOCALHOST:8889",
        ] {
            assert_eq!(
                g.check(&headers(&[("host", ok)]), Some("abc123")),
                Ok(Proof::Query),
                "{ok}"
            );
        }
        for bad in [
            "evil.example:8889",
            "127.0.0.1:80",
            "127.0.0.1",
            "localhost.evil:8889",
        ] {
            assert_eq!(
                g.check(&headers(&[("host", bad)]), Some("abc123")),
                Err(Refusal::ForeignHost),
                "{bad}"
            );
        }
        assert_eq!(
            g.check(&HeaderMap::new(), Some("abc123")),
            Err(Refusal::ForeignHost)
        );
    }

    #[test]
    fn a_foreign_origin_is_refused_even_with_the_token() {
        let g = guard();
        let host = ("host", "127.0.0.1:8889");
        let token = Some("abc123");
        let own = ("origin", "http://127.0.0.1:8889");
        assert_eq!(g.check(&headers(&[host, own]), token), Ok(Proof::Query));
        for bad in [
            "http://evil.example",
            "https://127.0.0.1:8889",
            "null",
            "http://127.0.0.1:1",
        ] {
            let origin = ("origin", bad);
            assert_eq!(
                g.check(&headers(&[host, origin]), token),
                Err(Refusal::ForeignOrigin),
                "{bad}"
            );
        }
    }

    #[test]
    fn tokens_are_fresh_and_long() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
