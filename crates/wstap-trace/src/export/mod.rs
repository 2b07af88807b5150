//! Exports made from a trace: per-session JSON ([`session`]) and HAR 1.2 ([`har`]).
//!
//! Exports are made to be shared, so by default the values of credential headers
//! (`Authorization`, `Cookie`, `Set-Cookie`, `Proxy-Authorization`) are replaced with
//! `[redacted]`; [`Redaction`] adds names or turns this off. The trace file itself keeps
//! everything, since it stays on the debugging machine.

pub mod har;
pub mod pcapng;
pub mod session;

use crate::event::{Event, Headers};

/// The headers whose values exports hide unless told otherwise.
pub const DEFAULT_REDACTED: [&str; 4] = [
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// Which header values an export hides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    names: Vec<String>,
}

impl Default for Redaction {
    fn default() -> Self {
        Redaction {
            names: DEFAULT_REDACTED.iter().map(|n| (*n).to_owned()).collect(),
        }
    }
}

impl Redaction {
    /// Hides nothing.
    pub fn none() -> Self {
        Redaction { names: Vec::new() }
    }

    /// Also hides `name` (case-insensitive).
    pub fn with(mut self, name: &str) -> Self {
        self.names.push(name.to_ascii_lowercase());
        self
    }

    /// Hides what it hides in `headers`; whether it hid anything.
    fn apply(&self, headers: &mut Headers) -> bool {
        let mut hid = false;
        for (name, value) in headers.iter_mut() {
            if self.names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                *value = REDACTED.to_owned();
                hid = true;
            }
        }
        hid
    }

    /// Redacts the header values in `event`.
    pub fn apply_to(&self, event: &mut Event) {
        if let Some(exchange) = event.exchange_mut() {
            let mut hid = self.apply(&mut exchange.request.headers);
            if let Some(r) = exchange.response.as_mut() {
                hid |= self.apply(&mut r.headers);
            }
            // The heads' bytes as sent hold what was hidden: they go (a pcapng export
            // writes the heads again from the redacted headers).
            if hid {
                exchange.raw = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Exchange, Forwarded, Handshake, RequestHead};

    #[test]
    fn redacts_credentials_by_default_and_extra_names_on_request() {
        let mut event = Event::Handshake(Handshake {
            exchange: Exchange {
                session: 1,
                time: chrono::DateTime::UNIX_EPOCH,
                url: "ws://x/".into(),
                request: RequestHead {
                    method: "GET".into(),
                    target: "/".into(),
                    version: "HTTP/1.1".into(),
                    headers: vec![
                        ("Cookie".into(), "sid=1".into()),
                        ("X-Token".into(), "t".into()),
                        ("Host".into(), "x".into()),
                    ],
                },
                forwarded: Forwarded::default(),
                response: None,
                raw: None,
            },
            accept_valid: false,
            subprotocol: None,
            extensions: vec![],
            deflate: None,
            undecoded_extensions: vec![],
            issues: vec![],
            duration_us: None,
            upstream: None,
        });
        Redaction::default().with("x-token").apply_to(&mut event);
        let Event::Handshake(h) = &event else {
            unreachable!()
        };
        let values: Vec<&str> = h
            .exchange
            .request
            .headers
            .iter()
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(values, [REDACTED, REDACTED, "x"]);
    }
}
