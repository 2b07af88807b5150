//! Protocol violations: data, not errors.
//!
//! An observer must relay and record whatever the peers send. When a frame breaks RFC 6455
//! or RFC 7692 the analyzer attaches a [`Violation`] to the frame's record and carries on.
//! Each variant names the rule it breaks; [`Violation::code`] is a stable identifier for
//! machines, `Display` a sentence for people.

use crate::header::LengthEncoding;
use std::fmt;

/// One way a frame, or the sequence it is part of, breaks the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Violation {
    /// Opcode 0x3-0x7 or 0xB-0xF (RFC 6455 section 5.2).
    ReservedOpcode(u8),
    /// An RSV bit is set that no negotiated extension defines (section 5.2).
    ReservedBitSet {
        /// The RSV bits as they appear in the first byte (`0x40`, `0x20`, `0x10` or a mix).
        bits: u8,
    },
    /// A control frame with more than 125 bytes of payload (section 5.5).
    ControlFrameTooLong(u64),
    /// A control frame without FIN (section 5.5).
    FragmentedControlFrame,
    /// A length encoded in more bytes than needed (section 5.2).
    NonMinimalLength {
        /// The encoding the sender used.
        used: LengthEncoding,
        /// The declared length.
        len: u64,
    },
    /// A 64-bit length with the most significant bit set (section 5.2).
    LengthHighBitSet,
    /// A frame from the client without the MASK bit (section 5.1).
    UnmaskedClientFrame,
    /// A frame from the server with the MASK bit (section 5.1).
    MaskedServerFrame,
    /// A continuation frame when no fragmented message is open (section 5.4).
    ContinuationWithoutMessage,
    /// A new text or binary frame while a fragmented message is still open (section 5.4).
    DataFrameInsideFragmentedMessage,
    /// A text message whose payload is not valid UTF-8 (section 8.1).
    InvalidUtf8,
    /// A text message that ends inside a multi-byte UTF-8 sequence (section 8.1).
    TruncatedUtf8,
    /// A close frame with exactly one byte of payload (section 5.5.1).
    CloseOneByte,
    /// A close code that may not be sent (section 7.4).
    InvalidCloseCode(u16),
    /// A close reason that is not valid UTF-8 (section 5.5.1).
    InvalidUtf8CloseReason,
    /// A frame sent after this direction already sent a close frame (section 5.5.1).
    FrameAfterClose,
    /// RSV1 on a continuation or control frame under permessage-deflate (RFC 7692 section 6).
    CompressedBitMisplaced,
    /// The compressed payload could not be inflated (RFC 7692 section 7.2.2).
    InflateFailed(String),
}

impl Violation {
    /// Every [`Violation::code`], in the order of the variants.
    pub const CODES: [&'static str; 18] = [
        "reserved_opcode",
        "reserved_bit_set",
        "control_frame_too_long",
        "fragmented_control_frame",
        "non_minimal_length",
        "length_high_bit_set",
        "unmasked_client_frame",
        "masked_server_frame",
        "continuation_without_message",
        "data_frame_inside_fragmented_message",
        "invalid_utf8",
        "truncated_utf8",
        "close_one_byte",
        "invalid_close_code",
        "invalid_utf8_close_reason",
        "frame_after_close",
        "compressed_bit_misplaced",
        "inflate_failed",
    ];

    /// A stable snake_case identifier, for filters and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Violation::ReservedOpcode(_) => "reserved_opcode",
            Violation::ReservedBitSet { .. } => "reserved_bit_set",
            Violation::ControlFrameTooLong(_) => "control_frame_too_long",
            Violation::FragmentedControlFrame => "fragmented_control_frame",
            Violation::NonMinimalLength { .. } => "non_minimal_length",
            Violation::LengthHighBitSet => "length_high_bit_set",
            Violation::UnmaskedClientFrame => "unmasked_client_frame",
            Violation::MaskedServerFrame => "masked_server_frame",
            Violation::ContinuationWithoutMessage => "continuation_without_message",
            Violation::DataFrameInsideFragmentedMessage => "data_frame_inside_fragmented_message",
            Violation::InvalidUtf8 => "invalid_utf8",
            Violation::TruncatedUtf8 => "truncated_utf8",
            Violation::CloseOneByte => "close_one_byte",
            Violation::InvalidCloseCode(_) => "invalid_close_code",
            Violation::InvalidUtf8CloseReason => "invalid_utf8_close_reason",
            Violation::FrameAfterClose => "frame_after_close",
            Violation::CompressedBitMisplaced => "compressed_bit_misplaced",
            Violation::InflateFailed(_) => "inflate_failed",
        }
    }

    /// Whether this violation is about a message as a whole (its text, its compression),
    /// as opposed to one frame's header or place: these go on the message's record too,
    /// in the order they were found.
    pub fn is_about_message(&self) -> bool {
        matches!(
            self,
            Violation::InvalidUtf8 | Violation::TruncatedUtf8 | Violation::InflateFailed(_)
        )
    }

    /// The codes of the violations that are about a message as a whole.
    pub const MESSAGE_CODES: [&'static str; 3] =
        ["invalid_utf8", "truncated_utf8", "inflate_failed"];

    /// Whether this violation is about UTF-8 (a strict endpoint closes with 1007 for these,
    /// and with 1002 for everything else).
    pub fn is_utf8(&self) -> bool {
        matches!(
            self,
            Violation::InvalidUtf8 | Violation::TruncatedUtf8 | Violation::InvalidUtf8CloseReason
        )
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::ReservedOpcode(op) => write!(f, "reserved opcode 0x{op:X}"),
            Violation::ReservedBitSet { bits } => {
                let names: Vec<&str> = [(0x40, "RSV1"), (0x20, "RSV2"), (0x10, "RSV3")]
                    .into_iter()
                    .filter(|(bit, _)| bits & bit != 0)
                    .map(|(_, name)| name)
                    .collect();
                write!(f, "{} set without a negotiated extension", names.join("+"))
            }
            Violation::ControlFrameTooLong(len) => {
                write!(f, "control frame payload of {len} bytes exceeds 125")
            }
            Violation::FragmentedControlFrame => f.write_str("control frame without FIN"),
            Violation::NonMinimalLength { used, len } => write!(
                f,
                "length {len} sent in the {}-bit encoding, not the minimal one",
                used.bits()
            ),
            Violation::LengthHighBitSet => f.write_str("64-bit length has its top bit set"),
            Violation::UnmaskedClientFrame => f.write_str("client frame is not masked"),
            Violation::MaskedServerFrame => f.write_str("server frame is masked"),
            Violation::ContinuationWithoutMessage => {
                f.write_str("continuation frame with no fragmented message open")
            }
            Violation::DataFrameInsideFragmentedMessage => {
                f.write_str("new data frame while a fragmented message is open")
            }
            Violation::InvalidUtf8 => f.write_str("text message is not valid UTF-8"),
            Violation::TruncatedUtf8 => f.write_str("text message ends inside a UTF-8 sequence"),
            Violation::CloseOneByte => f.write_str("close frame payload of 1 byte"),
            Violation::InvalidCloseCode(code) => write!(f, "close code {code} may not be sent"),
            Violation::InvalidUtf8CloseReason => f.write_str("close reason is not valid UTF-8"),
            Violation::FrameAfterClose => f.write_str("frame sent after a close frame"),
            Violation::CompressedBitMisplaced => {
                f.write_str("RSV1 set on a continuation or control frame")
            }
            Violation::InflateFailed(why) => {
                write!(f, "permessage-deflate data does not inflate: {why}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_lists_every_variant_once() {
        let all = [
            Violation::ReservedOpcode(3),
            Violation::ReservedBitSet { bits: 0x40 },
            Violation::ControlFrameTooLong(200),
            Violation::FragmentedControlFrame,
            Violation::NonMinimalLength {
                used: LengthEncoding::Bits16,
                len: 5,
            },
            Violation::LengthHighBitSet,
            Violation::UnmaskedClientFrame,
            Violation::MaskedServerFrame,
            Violation::ContinuationWithoutMessage,
            Violation::DataFrameInsideFragmentedMessage,
            Violation::InvalidUtf8,
            Violation::TruncatedUtf8,
            Violation::CloseOneByte,
            Violation::InvalidCloseCode(1005),
            Violation::InvalidUtf8CloseReason,
            Violation::FrameAfterClose,
            Violation::CompressedBitMisplaced,
            Violation::InflateFailed(String::new()),
        ];
        let codes: Vec<&str> = all.iter().map(Violation::code).collect();
        assert_eq!(codes, Violation::CODES);
        let about_message: Vec<&str> = all
            .iter()
            .filter(|v| v.is_about_message())
            .map(Violation::code)
            .collect();
        assert_eq!(about_message, Violation::MESSAGE_CODES);
    }
}
