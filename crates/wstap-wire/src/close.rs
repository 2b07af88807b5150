//! Close-frame payloads (RFC 6455 sections 5.5.1 and 7.4).
//!
//! A close payload is empty, or a two-byte status code followed by a UTF-8 reason.
//! [`CloseFrame::parse`] reads what is there and lists what is wrong with it;
//! [`CloseFrame::encode`] writes one, with the reason cut to fit a control frame.

use crate::violation::Violation;

/// A parsed close-frame payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code, when the payload has at least two bytes.
    pub code: Option<u16>,
    /// The reason, decoded lossily when it is not valid UTF-8.
    pub reason: String,
}

impl CloseFrame {
    /// Parses a whole close payload (control frames are at most 125 bytes when valid),
    /// appending any violations to `violations`.
    pub fn parse(payload: &[u8], violations: &mut Vec<Violation>) -> CloseFrame {
        match payload {
            [] => CloseFrame {
                code: None,
                reason: String::new(),
            },
            [_] => {
                violations.push(Violation::CloseOneByte);
                CloseFrame {
                    code: None,
                    reason: String::new(),
                }
            }
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                if !is_sendable_close_code(code) {
                    violations.push(Violation::InvalidCloseCode(code));
                }
                let reason = match std::str::from_utf8(reason) {
                    Ok(text) => text.to_owned(),
                    Err(_) => {
                        violations.push(Violation::InvalidUtf8CloseReason);
                        String::from_utf8_lossy(reason).into_owned()
                    }
                };
                CloseFrame {
                    code: Some(code),
                    reason,
                }
            }
        }
    }
}

impl CloseFrame {
    /// The longest reason a close frame can carry: a control frame's 125 bytes less the code.
    pub const MAX_REASON: usize = 123;

    /// A close payload with `code` and as much of `reason` as fits, cut between characters.
    pub fn encode(code: u16, reason: &str) -> Vec<u8> {
        let cut = reason
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .take_while(|&end| end <= Self::MAX_REASON)
            .last()
            .unwrap_or(0);
        let mut payload = Vec::with_capacity(2 + cut);
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(&reason.as_bytes()[..cut]);
        payload
    }
}

/// Whether an endpoint may put `code` in a close frame (RFC 6455 section 7.4 and the IANA
/// registry): 1000-1003, 1007-1014, and the 3000-4999 ranges for libraries and
/// applications. 1004-1006 and 1015 are reserved or for local use only.
pub fn is_sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The registered meaning of a close code, for display.
pub fn close_code_name(code: u16) -> Option<&'static str> {
    Some(match code {
        1000 => "Normal Closure",
        1001 => "Going Away",
        1002 => "Protocol Error",
        1003 => "Unsupported Data",
        1005 => "No Status Received",
        1006 => "Abnormal Closure",
        1007 => "Invalid Payload Data",
        1008 => "Policy Violation",
        1009 => "Message Too Big",
        1010 => "Mandatory Extension",
        1011 => "Internal Error",
        1012 => "Service Restart",
        1013 => "Try Again Later",
        1014 => "Bad Gateway",
        1015 => "TLS Handshake",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(payload: &[u8]) -> (CloseFrame, Vec<Violation>) {
        let mut v = Vec::new();
        (CloseFrame::parse(payload, &mut v), v)
    }

    #[test]
    fn code_and_reason() {
        let (close, v) = parse(b"\x0f\xa1bye now");
        assert_eq!(close.code, Some(4001));
        assert_eq!(close.reason, "bye now");
        assert!(v.is_empty());
    }

    #[test]
    fn empty_payload_has_no_code() {
        let (close, v) = parse(b"");
        assert_eq!(close.code, None);
        assert!(v.is_empty());
    }

    #[test]
    fn one_byte_payload_is_a_violation() {
        assert_eq!(parse(b"\x03").1, [Violation::CloseOneByte]);
    }

    #[test]
    fn reserved_and_out_of_range_codes_are_violations() {
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            let (_, v) = parse(&code.to_be_bytes());
            assert_eq!(v, [Violation::InvalidCloseCode(code)], "code {code}");
        }
        for code in [1000u16, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert!(parse(&code.to_be_bytes()).1.is_empty(), "code {code}");
        }
    }

    #[test]
    fn encode_cuts_a_long_reason_between_characters_and_parses_back() {
        let reason = "é".repeat(70); // 140 bytes
        let payload = CloseFrame::encode(1001, &reason);
        assert!(payload.len() <= 125);
        let (close, v) = parse(&payload);
        assert!(v.is_empty());
        assert_eq!(close.code, Some(1001));
        assert_eq!(close.reason, "é".repeat(61));
        assert_eq!(CloseFrame::encode(1000, "bye"), b"\x03\xe8bye");
    }

    #[test]
    fn invalid_utf8_reason_is_a_violation_and_shown_lossily() {
        let (close, v) = parse(b"\x03\xe8ab\xff");
        assert_eq!(v, [Violation::InvalidUtf8CloseReason]);
        assert_eq!(close.reason, "ab\u{fffd}");
    }
}
