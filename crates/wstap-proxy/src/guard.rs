//! Who may use the proxy, and where it may not send them.
//!
//! - [`ProxyAuth`]: Basic `Proxy-Authorization` (RFC 9110 section 11.7.1), checked in
//!   constant time. The header is a hop-by-hop `Proxy-*` header, so it is never forwarded.
//! - [`is_self`]: a request whose target is the proxy's own listening address would loop
//!   through the proxy forever; it is refused instead.

use crate::error::SessionError;
use crate::head::Request;
use crate::target::Target;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use std::net::{IpAddr, SocketAddr};

/// The credentials clients must present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAuth {
    expected: Vec<u8>,
}

impl ProxyAuth {
    /// Credentials from `user:password`.
    pub fn new(user_colon_password: &str) -> Self {
        ProxyAuth {
            expected: user_colon_password.as_bytes().to_vec(),
        }
    }

    /// Checks `head`'s `Proxy-Authorization`: missing, or not Basic, not base64 or not the
    /// right credentials, is an error the client is answered with (407).
    pub fn check(&self, head: &Request) -> Result<(), SessionError> {
        let value = head
            .header("proxy-authorization")
            .ok_or(SessionError::AuthMissing)?;
        let (scheme, token) = value
            .trim()
            .split_once(' ')
            .ok_or(SessionError::AuthWrong)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(SessionError::AuthWrong);
        }
        let presented = BASE64
            .decode(token.trim())
            .map_err(|_| SessionError::AuthWrong)?;
        if constant_time_eq(&presented, &self.expected) {
            Ok(())
        } else {
            Err(SessionError::AuthWrong)
        }
    }
}

/// Compares without an early exit, so timing does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..len {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// Whether `target` is one of the proxy's own listening addresses.
pub fn is_self(target: &Target, listening: &[SocketAddr]) -> bool {
    let host = target.host.as_str();
    let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) if host.eq_ignore_ascii_case("localhost") => vec![
            [127, 0, 0, 1].into(),
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ],
        Err(_) => return false,
    };
    listening.iter().any(|addr| {
        addr.port() == target.port
            && ips.iter().any(|ip| {
                *ip == addr.ip()
                    || (addr.ip().is_unspecified() && (ip.is_loopback() || ip.is_unspecified()))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"user:pw", b"user:pw"));
        assert!(!constant_time_eq(b"user:pw", b"user:px"));
        assert!(!constant_time_eq(b"user:pw", b"user:pw2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn self_targets() {
        let listening: Vec<SocketAddr> = vec![
            "127.0.0.1:8888".parse().unwrap(),
            "[::]:9000".parse().unwrap(),
        ];
        let t = |host: &str, port| Target {
            host: host.into(),
            port,
        };
        assert!(is_self(&t("127.0.0.1", 8888), &listening));
        assert!(is_self(&t("localhost", 8888), &listening));
        assert!(is_self(&t("::1", 9000), &listening));
        assert!(!is_self(&t("127.0.0.1", 8889), &listening));
        assert!(!is_self(&t("example.com", 8888), &listening));
    }
}
