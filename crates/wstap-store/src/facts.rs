//! What filters know of sessions and records, gathered from events as they pass: the
//! live console builds them this way, and so do the tests that hold the store's SQL to the
//! predicate. The store's columns are made by the same functions ([`split_target`],
//! [`path_of`], [`extension_names`]), so both sides see the same facts.

use wstap_filter::{RecordFacts, RecordKind, SessionFacts, State};
use wstap_trace::{Event, Outcome};
use wstap_wire::{FrameRecord, MessageRecord, Opcode};

/// A session's facts, kept up to date from its events.
#[derive(Debug, Clone, Default)]
pub struct SessionSummary {
    /// The session number.
    pub id: u64,
    /// Upstream host.
    pub host: String,
    /// Upstream port.
    pub port: u16,
    /// URL of the handshake or first exchange.
    pub url: String,
    /// Its path and query.
    pub path: String,
    /// The client's address.
    pub client: String,
    /// The subprotocol chosen.
    pub subprotocol: Option<String>,
    /// `" name name "`, lower case.
    pub extension_names: String,
    /// Whether wstap terminated TLS.
    pub tls: bool,
    /// The HTTP status of the handshake or first exchange.
    pub status: Option<u16>,
    /// How it ended, once it did.
    pub outcome: Option<Outcome>,
    /// What it turned out to be, once it ended.
    pub kind: Option<&'static str>,
    /// The first close code.
    pub close: Option<u16>,
    /// When it began, µs.
    pub started_us: i64,
    /// Frames with violations plus handshake issues.
    pub violations: u64,
    seen_url: bool,
}

impl SessionSummary {
    /// An empty summary for session `id`.
    pub fn new(id: u64) -> Self {
        SessionSummary {
            id,
            host: "-".into(),
            ..SessionSummary::default()
        }
    }

    /// The store's name for an outcome.
    pub fn outcome_name(outcome: Outcome) -> &'static str {
        match outcome {
            Outcome::Closed => "closed",
            Outcome::Aborted => "aborted",
            Outcome::Error => "error",
        }
    }

    /// Takes in a session-level event of this session.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::SessionStart(s) => {
                let (host, port) = split_target(&s.target);
                self.host = host.to_owned();
                self.port = port;
                self.client = s.client.clone();
                self.tls = s.tls;
                self.started_us = s.time.timestamp_micros();
            }
            Event::Handshake(h) => {
                self.url = h.url.clone();
                self.path = path_of(&h.url).to_owned();
                self.status = h.response.as_ref().map(|r| r.status);
                self.subprotocol = h.subprotocol.clone();
                self.extension_names = extension_names(&h.extensions);
                self.violations += h.issues.len() as u64;
                self.seen_url = true;
            }
            Event::Http(h) if !self.seen_url => {
                self.url = h.url.clone();
                self.path = path_of(&h.url).to_owned();
                self.status = h.response.as_ref().map(|r| r.status);
                self.seen_url = true;
            }
            Event::SessionEnd(e) => {
                self.outcome = Some(e.outcome);
                self.kind = Some(e.kind.name());
                self.close = e.close.as_ref().and_then(|c| c.code);
            }
            _ => {}
        }
    }

    /// Counts a frame's violations.
    pub fn count_frame(&mut self, has_violations: bool) {
        if has_violations {
            self.violations += 1;
        }
    }

    /// The facts, for a filter.
    pub fn facts(&self) -> SessionFacts<'_> {
        SessionFacts {
            id: self.id,
            host: &self.host,
            port: self.port,
            url: &self.url,
            path: &self.path,
            client: &self.client,
            subprotocol: self.subprotocol.as_deref(),
            extension_names: &self.extension_names,
            tls: self.tls,
            status: self.status,
            state: match self.outcome {
                None => State::Open,
                Some(Outcome::Closed) => State::Closed,
                Some(Outcome::Aborted) => State::Aborted,
                Some(Outcome::Error) => State::Error,
            },
            kind: self.kind,
            close: self.close,
            started_us: self.started_us,
            violations: self.violations,
        }
    }
}

/// The codes of a record's violations, for [`RecordFacts::violations`].
pub fn violation_codes(violations: &[wstap_wire::Violation]) -> Vec<&'static str> {
    violations.iter().map(wstap_wire::Violation::code).collect()
}

/// A frame record's facts; `codes` are [`violation_codes`] of its violations.
pub fn frame_facts<'a>(r: &'a FrameRecord, codes: &'a [&'a str]) -> RecordFacts<'a> {
    let h = &r.header;
    RecordFacts {
        kind: RecordKind::Frame,
        dir: r.direction,
        opcode: h.opcode().bits(),
        flags: h.first_byte(),
        masked: h.mask().is_some(),
        len: h.payload_len(),
        frames: 1,
        compressed: r.inflated.is_some(),
        close: r.close.as_ref().and_then(|c| c.code),
        time_us: r.time.0,
        violations: codes,
        payload: match &r.inflated {
            Some(inflated) => &inflated.data.data,
            None => &r.payload.data,
        },
    }
}

/// A message record's facts, given its first frame's flags byte and mask.
pub fn message_facts<'a>(
    r: &'a MessageRecord,
    first_flags: u8,
    first_masked: bool,
    codes: &'a [&'a str],
) -> RecordFacts<'a> {
    RecordFacts {
        kind: RecordKind::Message,
        dir: r.direction,
        opcode: r.opcode.bits(),
        flags: first_flags,
        masked: first_masked,
        len: r.data.total,
        frames: r.frames,
        compressed: r.compressed,
        close: crate::rows::close_code_of(r.opcode, &r.data.data),
        time_us: r.first_time.0,
        violations: codes,
        payload: &r.data.data,
    }
}

/// `host:port` (or `[v6]:port`) as host and port; anything else as itself, port 0.
pub fn split_target(target: &str) -> (&str, u16) {
    if let Some(rest) = target.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once("]:") {
            return (host, port.parse().unwrap_or(0));
        }
    }
    match target.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, port),
            Err(_) => (target, 0),
        },
        _ => (target, 0),
    }
}

/// The path and query of an absolute URL (`/` when it has none), or `""`.
pub fn path_of(url: &str) -> &str {
    let Some((_, rest)) = url.split_once("://") else {
        return "";
    };
    match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('/') => &rest[at..],
        Some(_) | None => "/",
    }
}

/// Extension header values as `" name name "`: lower-case names, each between spaces.
pub fn extension_names(extensions: &[String]) -> String {
    if extensions.is_empty() {
        return String::new();
    }
    let mut names = String::from(" ");
    for extension in extensions {
        let name = extension.split(';').next().unwrap_or_default().trim();
        names.push_str(&name.to_ascii_lowercase());
        names.push(' ');
    }
    names
}

/// The opcode of a frame's first byte.
pub fn opcode_of(flags: u8) -> Opcode {
    Opcode::from_bits(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_urls_and_extensions() {
        assert_eq!(split_target("example.com:443"), ("example.com", 443));
        assert_eq!(split_target("[::1]:8080"), ("::1", 8080));
        assert_eq!(split_target("-"), ("-", 0));
        assert_eq!(path_of("wss://h:1/chat?x=1"), "/chat?x=1");
        assert_eq!(path_of("http://h"), "/");
        assert_eq!(path_of("http://h?q"), "/");
        assert_eq!(path_of(""), "");
        assert_eq!(
            extension_names(&["permessage-deflate; client_max_window_bits=12".into()]),
            " permessage-deflate "
        );
    }
}
