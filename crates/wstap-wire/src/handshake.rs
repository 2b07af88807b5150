//! Opening-handshake analysis (RFC 6455 section 4, RFC 7692 section 5).
//!
//! [`analyze`] takes a request's and a response's headers, as `(name, value)` pairs in
//! wire order, and reports what it finds as data: the key and whether it is well formed,
//! the `Sec-WebSocket-Accept` expected and whether the server sent it, the version, the
//! `Upgrade`/`Connection` tokens, the subprotocol and extensions chosen among those
//! offered, and the permessage-deflate parameters when accepted. Every problem is a
//! [`HandshakeIssue`]; nothing here fails.

use crate::deflate::{parse_extensions, DeflateParams, Extension, PERMESSAGE_DEFLATE};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use std::fmt;

/// The GUID that RFC 6455 section 1.3 appends to the key.
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 section 4.2.2).
pub fn compute_accept(key: &str) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(key.trim().as_bytes());
    sha1.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha1.digest().bytes())
}

/// All values of header `name` (case-insensitive), in order.
pub fn header_values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The comma-separated tokens of every `name` header, trimmed, in order.
pub fn header_tokens<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    header_values(headers, name)
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether `headers` ask for a WebSocket upgrade: an `Upgrade` header naming `websocket`
/// (case-insensitive). `Connection: Upgrade` is checked by [`analyze`], not here, so that a
/// slightly wrong handshake is still forwarded and reported rather than treated as plain HTTP.
pub fn is_websocket_upgrade(headers: &[(String, String)]) -> bool {
    header_tokens(headers, "upgrade").any(|t| t.eq_ignore_ascii_case("websocket"))
}

/// Something wrong with an opening handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeIssue {
    /// The request method is not GET.
    MethodNotGet(String),
    /// No `Sec-WebSocket-Key`.
    MissingKey,
    /// The key is not base64 of 16 bytes.
    MalformedKey(String),
    /// No `Sec-WebSocket-Version`.
    MissingVersion,
    /// A version other than 13.
    UnsupportedVersion(String),
    /// The request's `Upgrade` does not name websocket.
    RequestUpgradeMissing,
    /// The request's `Connection` lacks the `Upgrade` token.
    RequestConnectionMissingUpgrade,
    /// The server did not answer 101.
    NotSwitchingProtocols(u16),
    /// The response's `Upgrade` does not name websocket.
    ResponseUpgradeMissing,
    /// The response's `Connection` lacks the `Upgrade` token.
    ResponseConnectionMissingUpgrade,
    /// No `Sec-WebSocket-Accept` in a 101.
    MissingAccept,
    /// The accept value is not the one the key requires.
    AcceptMismatch {
        /// What the key requires.
        expected: String,
        /// What the server sent.
        received: String,
    },
    /// The server chose a subprotocol the client did not offer.
    SubprotocolNotOffered(String),
    /// The server chose more than one subprotocol.
    SeveralSubprotocols,
    /// The server accepted an extension the client did not offer.
    ExtensionNotOffered(String),
    /// The accepted permessage-deflate parameters are invalid.
    BadDeflateParameters(String),
}

impl fmt::Display for HandshakeIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeIssue::MethodNotGet(m) => write!(f, "method is {m}, not GET"),
            HandshakeIssue::MissingKey => f.write_str("no Sec-WebSocket-Key"),
            HandshakeIssue::MalformedKey(k) => {
                write!(f, "Sec-WebSocket-Key {k:?} is not base64 of 16 bytes")
            }
            HandshakeIssue::MissingVersion => f.write_str("no Sec-WebSocket-Version"),
            HandshakeIssue::UnsupportedVersion(v) => {
                write!(f, "Sec-WebSocket-Version {v} is not 13")
            }
            HandshakeIssue::RequestUpgradeMissing => {
                f.write_str("request Upgrade does not name websocket")
            }
            HandshakeIssue::RequestConnectionMissingUpgrade => {
                f.write_str("request Connection lacks the Upgrade token")
            }
            HandshakeIssue::NotSwitchingProtocols(s) => write!(f, "server answered {s}, not 101"),
            HandshakeIssue::ResponseUpgradeMissing => {
                f.write_str("response Upgrade does not name websocket")
            }
            HandshakeIssue::ResponseConnectionMissingUpgrade => {
                f.write_str("response Connection lacks the Upgrade token")
            }
            HandshakeIssue::MissingAccept => f.write_str("no Sec-WebSocket-Accept"),
            HandshakeIssue::AcceptMismatch { expected, received } => {
                write!(f, "Sec-WebSocket-Accept is {received}, expected {expected}")
            }
            HandshakeIssue::SubprotocolNotOffered(p) => {
                write!(f, "subprotocol {p} was not offered")
            }
            HandshakeIssue::SeveralSubprotocols => {
                f.write_str("server chose more than one subprotocol")
            }
            HandshakeIssue::ExtensionNotOffered(e) => write!(f, "extension {e} was not offered"),
            HandshakeIssue::BadDeflateParameters(why) => write!(f, "permessage-deflate: {why}"),
        }
    }
}

/// What [`analyze`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandshakeAnalysis {
    /// The client's `Sec-WebSocket-Key`.
    pub key: Option<String>,
    /// The accept value that key requires.
    pub expected_accept: Option<String>,
    /// The server's `Sec-WebSocket-Accept`.
    pub accept: Option<String>,
    /// Whether the server sent exactly the expected accept value.
    pub accept_valid: bool,
    /// The client's `Sec-WebSocket-Version`.
    pub version: Option<String>,
    /// Subprotocols the client offered.
    pub subprotocols_offered: Vec<String>,
    /// The subprotocol the server chose.
    pub subprotocol: Option<String>,
    /// Extensions the client offered.
    pub extensions_offered: Vec<Extension>,
    /// Extensions the server accepted.
    pub extensions: Vec<Extension>,
    /// permessage-deflate parameters, when accepted and valid.
    pub deflate: Option<DeflateParams>,
    /// RSV bits claimed by accepted extensions other than permessage-deflate (which the
    /// proxy cannot decode, so it must not flag frames for using them).
    pub other_extension_bits: u8,
    /// Everything wrong, in the order found.
    pub issues: Vec<HandshakeIssue>,
}

impl HandshakeAnalysis {
    /// Whether the server switched protocols, so frames will follow.
    pub fn switched(&self) -> bool {
        !self
            .issues
            .iter()
            .any(|i| matches!(i, HandshakeIssue::NotSwitchingProtocols(_)))
    }
}

/// Analyses one opening handshake: see the module documentation.
pub fn analyze(
    method: &str,
    request: &[(String, String)],
    status: u16,
    response: &[(String, String)],
) -> HandshakeAnalysis {
    let mut a = HandshakeAnalysis::default();
    a.read_request(method, request);
    if status != 101 {
        a.issues.push(HandshakeIssue::NotSwitchingProtocols(status));
        return a;
    }
    a.read_response(response);
    a
}

impl HandshakeAnalysis {
    /// The client's side (RFC 6455 section 4.1): method, key, version, upgrade tokens and
    /// what it offers.
    fn read_request(&mut self, method: &str, request: &[(String, String)]) {
        if method != "GET" {
            self.issues
                .push(HandshakeIssue::MethodNotGet(method.to_owned()));
        }
        self.key = header_values(request, "sec-websocket-key")
            .next()
            .map(|k| k.trim().to_owned());
        match &self.key {
            None => self.issues.push(HandshakeIssue::MissingKey),
            Some(key) => {
                if BASE64.decode(key).map_or(true, |raw| raw.len() != 16) {
                    self.issues.push(HandshakeIssue::MalformedKey(key.clone()));
                }
                self.expected_accept = Some(compute_accept(key));
            }
        }
        self.version = header_values(request, "sec-websocket-version")
            .next()
            .map(|v| v.trim().to_owned());
        match self.version.as_deref() {
            None => self.issues.push(HandshakeIssue::MissingVersion),
            Some("13") => {}
            Some(other) => self
                .issues
                .push(HandshakeIssue::UnsupportedVersion(other.to_owned())),
        }
        if !is_websocket_upgrade(request) {
            self.issues.push(HandshakeIssue::RequestUpgradeMissing);
        }
        if !has_upgrade_token(request) {
            self.issues
                .push(HandshakeIssue::RequestConnectionMissingUpgrade);
        }
        self.subprotocols_offered = header_tokens(request, "sec-websocket-protocol")
            .map(str::to_owned)
            .collect();
        self.extensions_offered = header_values(request, "sec-websocket-extensions")
            .flat_map(parse_extensions)
            .collect();
    }

    /// The server's `101` (RFC 6455 section 4.2.2): upgrade tokens, the accept value, and
    /// the subprotocol and extensions chosen.
    fn read_response(&mut self, response: &[(String, String)]) {
        if !is_websocket_upgrade(response) {
            self.issues.push(HandshakeIssue::ResponseUpgradeMissing);
        }
        if !has_upgrade_token(response) {
            self.issues
                .push(HandshakeIssue::ResponseConnectionMissingUpgrade);
        }
        self.accept = header_values(response, "sec-websocket-accept")
            .next()
            .map(|v| v.trim().to_owned());
        match (&self.accept, &self.expected_accept) {
            (None, _) => self.issues.push(HandshakeIssue::MissingAccept),
            (Some(got), Some(expected)) if got == expected => self.accept_valid = true,
            (Some(got), expected) => self.issues.push(HandshakeIssue::AcceptMismatch {
                expected: expected.clone().unwrap_or_default(),
                received: got.clone(),
            }),
        }
        self.read_subprotocol(response);
        self.read_extensions(response);
    }

    fn read_subprotocol(&mut self, response: &[(String, String)]) {
        let chosen: Vec<&str> = header_tokens(response, "sec-websocket-protocol").collect();
        if chosen.len() > 1 {
            self.issues.push(HandshakeIssue::SeveralSubprotocols);
        }
        if let Some(protocol) = chosen.first() {
            if !self.subprotocols_offered.iter().any(|p| p == protocol) {
                self.issues.push(HandshakeIssue::SubprotocolNotOffered(
                    (*protocol).to_owned(),
                ));
            }
            self.subprotocol = Some((*protocol).to_owned());
        }
    }

    fn read_extensions(&mut self, response: &[(String, String)]) {
        self.extensions = header_values(response, "sec-websocket-extensions")
            .flat_map(parse_extensions)
            .collect();
        for ext in &self.extensions {
            if !self
                .extensions_offered
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&ext.name))
            {
                self.issues
                    .push(HandshakeIssue::ExtensionNotOffered(ext.name.clone()));
            }
            if ext.name.eq_ignore_ascii_case(PERMESSAGE_DEFLATE) && self.deflate.is_none() {
                match DeflateParams::from_extension(ext) {
                    Ok(params) => self.deflate = Some(params),
                    Err(why) => self.issues.push(HandshakeIssue::BadDeflateParameters(why)),
                }
            } else {
                // An extension we cannot decode may use any RSV bit.
                self.other_extension_bits = 0x70;
            }
        }
    }
}

/// Whether `Connection` lists the `Upgrade` token.
fn has_upgrade_token(headers: &[(String, String)]) -> bool {
    header_tokens(headers, "connection").any(|t| t.eq_ignore_ascii_case("upgrade"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn rfc_request() -> Vec<(String, String)> {
        headers(&[
            ("Host", "server.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive, Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Protocol", "chat, superchat"),
            ("Sec-WebSocket-Version", "13"),
            (
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            ),
        ])
    }

    #[test]
    fn rfc_6455_section_1_3_accept_value() {
        assert_eq!(
            compute_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn valid_handshake_has_no_issues() {
        let response = headers(&[
            ("upgrade", "WebSocket"),
            ("connection", "upgrade"),
            ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ("Sec-WebSocket-Protocol", "chat"),
            (
                "Sec-WebSocket-Extensions",
                "permessage-deflate; server_no_context_takeover",
            ),
        ]);
        let a = analyze("GET", &rfc_request(), 101, &response);
        assert_eq!(a.issues, []);
        assert!(a.accept_valid && a.switched());
        assert_eq!(a.subprotocol.as_deref(), Some("chat"));
        assert_eq!(a.subprotocols_offered, ["chat", "superchat"]);
        assert!(a.deflate.unwrap().server_no_context_takeover);
    }

    #[test]
    fn wrong_accept_and_unoffered_choices_are_reported() {
        let response = headers(&[
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ("Sec-WebSocket-Protocol", "mqtt"),
            ("Sec-WebSocket-Extensions", "x-webkit-deflate-frame"),
        ]);
        let a = analyze("GET", &rfc_request(), 101, &response);
        assert!(!a.accept_valid);
        assert!(a.issues.contains(&HandshakeIssue::AcceptMismatch {
            expected: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(),
            received: "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
        }));
        assert!(a
            .issues
            .contains(&HandshakeIssue::SubprotocolNotOffered("mqtt".into())));
        assert!(a.issues.contains(&HandshakeIssue::ExtensionNotOffered(
            "x-webkit-deflate-frame".into()
        )));
        assert_eq!(a.other_extension_bits, 0x70);
    }

    #[test]
    fn malformed_request_is_reported_and_non_101_stops_there() {
        let request = headers(&[
            ("Upgrade", "h2c"),
            ("Sec-WebSocket-Key", "short"),
            ("Sec-WebSocket-Version", "8"),
        ]);
        let a = analyze("POST", &request, 403, &[]);
        assert_eq!(
            a.issues,
            [
                HandshakeIssue::MethodNotGet("POST".into()),
                HandshakeIssue::MalformedKey("short".into()),
                HandshakeIssue::UnsupportedVersion("8".into()),
                HandshakeIssue::RequestUpgradeMissing,
                HandshakeIssue::RequestConnectionMissingUpgrade,
                HandshakeIssue::NotSwitchingProtocols(403),
            ]
        );
        assert!(!a.switched());
    }

    #[test]
    fn upgrade_detection_reads_comma_lists_case_insensitively() {
        assert!(is_websocket_upgrade(&headers(&[(
            "UPGRADE",
            "foo, WebSocket"
        )])));
        assert!(!is_websocket_upgrade(&headers(&[("Upgrade", "h2c")])));
    }
}
