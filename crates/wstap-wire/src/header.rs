//! The frame header exactly as it appeared on the wire (RFC 6455 section 5.2).
//!
//! [`FrameHeader::parse`] reads the 2 to 14 header bytes and keeps everything an
//! observer may want to show: the raw first byte, every flag, the opcode even when it is
//! reserved, which of the three length encodings the sender chose and the masking key.
//! Parsing never fails on content; it only asks for more bytes when the header is short.

use std::fmt;

/// The largest possible frame header: 2 bytes, 8 bytes of extended length, 4 of key.
pub const MAX_HEADER_LEN: usize = 14;

/// A frame opcode: the low four bits of the first header byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// `0x0`: continues a fragmented message.
    Continuation,
    /// `0x1`: a text message (UTF-8).
    Text,
    /// `0x2`: a binary message.
    Binary,
    /// `0x8`: connection close.
    Close,
    /// `0x9`: ping.
    Ping,
    /// `0xA`: pong.
    Pong,
    /// `0x3`-`0x7` (reserved data) or `0xB`-`0xF` (reserved control).
    Reserved(u8),
}

impl Opcode {
    /// Decodes the low four bits of `bits`.
    pub fn from_bits(bits: u8) -> Opcode {
        match bits & 0x0F {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            other => Opcode::Reserved(other),
        }
    }

    /// The four-bit numeric value.
    pub fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
            Opcode::Reserved(bits) => bits & 0x0F,
        }
    }

    /// Control opcodes have the high bit of the nibble set (`0x8`-`0xF`).
    pub fn is_control(self) -> bool {
        self.bits() & 0x08 != 0
    }

    /// The upper-case name the console and trace use: `TEXT`, `BINARY`, `CONT`, `CLOSE`,
    /// `PING`, `PONG`, or `RESERVED_0x3` style for reserved opcodes.
    pub fn name(self) -> &'static str {
        match self {
            Opcode::Continuation => "CONT",
            Opcode::Text => "TEXT",
            Opcode::Binary => "BINARY",
            Opcode::Close => "CLOSE",
            Opcode::Ping => "PING",
            Opcode::Pong => "PONG",
            Opcode::Reserved(bits) => RESERVED_NAMES[usize::from(bits & 0x0F)],
        }
    }
}

const RESERVED_NAMES: [&str; 16] = [
    "RESERVED_0x0",
    "RESERVED_0x1",
    "RESERVED_0x2",
    "RESERVED_0x3",
    "RESERVED_0x4",
    "RESERVED_0x5",
    "RESERVED_0x6",
    "RESERVED_0x7",
    "RESERVED_0x8",
    "RESERVED_0x9",
    "RESERVED_0xA",
    "RESERVED_0xB",
    "RESERVED_0xC",
    "RESERVED_0xD",
    "RESERVED_0xE",
    "RESERVED_0xF",
];

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which payload-length encoding the sender used (RFC 6455 section 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LengthEncoding {
    /// The length fits in the 7-bit field (0-125).
    Bits7,
    /// The 7-bit field is 126 and a 16-bit length follows.
    Bits16,
    /// The 7-bit field is 127 and a 64-bit length follows.
    Bits64,
}

impl LengthEncoding {
    /// The encoding a conforming sender must use for `len`.
    pub fn minimal_for(len: u64) -> LengthEncoding {
        if len <= 125 {
            LengthEncoding::Bits7
        } else if len <= 0xFFFF {
            LengthEncoding::Bits16
        } else {
            LengthEncoding::Bits64
        }
    }

    /// Number of bytes of extended length after the first two header bytes.
    pub fn extra_bytes(self) -> usize {
        match self {
            LengthEncoding::Bits7 => 0,
            LengthEncoding::Bits16 => 2,
            LengthEncoding::Bits64 => 8,
        }
    }

    /// `7`, `16` or `64`.
    pub fn bits(self) -> u8 {
        match self {
            LengthEncoding::Bits7 => 7,
            LengthEncoding::Bits16 => 16,
            LengthEncoding::Bits64 => 64,
        }
    }
}

/// A client's masking key (RFC 6455 section 5.3): four bytes, XORed over the payload.
pub type MaskingKey = [u8; 4];

/// The FIN bit of the first header byte.
pub const FIN: u8 = 0x80;
/// RSV1 (permessage-deflate's "compressed" bit).
pub const RSV1: u8 = 0x40;
/// RSV2.
pub const RSV2: u8 = 0x20;
/// RSV3.
pub const RSV3: u8 = 0x10;

/// One frame header, with every bit the sender put on the wire.
///
/// The flags and the opcode are read from the raw first byte, which is the only copy kept,
/// so they cannot disagree with it; the header's length follows from the length encoding
/// and the MASK bit in the same way. Build one with [`FrameHeader::parse`] (from the wire)
/// or [`FrameHeader::new`] (to encode, see [`crate::encode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    first_byte: u8,
    mask: Option<MaskingKey>,
    payload_len: u64,
    length_encoding: LengthEncoding,
}

/// Why [`FrameHeader::parse`] could not produce a header yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeedMore {
    /// The total number of header bytes needed, as far as is known so far.
    pub header_len: usize,
}

impl FrameHeader {
    /// A header with this first byte (FIN, RSV1-3 and opcode), masking key, payload length
    /// and length encoding. The encoding need not be the minimal one: an observer's tools
    /// must be able to write what a peer could.
    pub fn new(
        first_byte: u8,
        mask: Option<MaskingKey>,
        payload_len: u64,
        length_encoding: LengthEncoding,
    ) -> Self {
        FrameHeader {
            first_byte,
            mask,
            payload_len,
            length_encoding,
        }
    }

    /// Parses a header from the start of `bytes`.
    ///
    /// Returns the header, or how many bytes the header needs in total when `bytes` is
    /// shorter than that (at most [`MAX_HEADER_LEN`]). Never fails otherwise: any bit
    /// pattern is a header, and judging it is the analyzer's job.
    pub fn parse(bytes: &[u8]) -> Result<FrameHeader, NeedMore> {
        let [b0, b1, ..] = *bytes else {
            return Err(NeedMore { header_len: 2 });
        };
        let masked = b1 & 0x80 != 0;
        let length_encoding = match b1 & 0x7F {
            126 => LengthEncoding::Bits16,
            127 => LengthEncoding::Bits64,
            _ => LengthEncoding::Bits7,
        };
        let len_end = 2 + length_encoding.extra_bytes();
        let header_len = len_end + if masked { 4 } else { 0 };
        if bytes.len() < header_len {
            return Err(NeedMore { header_len });
        }
        let payload_len = match length_encoding {
            LengthEncoding::Bits7 => u64::from(b1 & 0x7F),
            LengthEncoding::Bits16 => u64::from(u16::from_be_bytes([bytes[2], bytes[3]])),
            LengthEncoding::Bits64 => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&bytes[2..10]);
                u64::from_be_bytes(raw)
            }
        };
        let mask = masked.then(|| {
            let mut key = [0u8; 4];
            key.copy_from_slice(&bytes[len_end..len_end + 4]);
            key
        });
        Ok(FrameHeader::new(b0, mask, payload_len, length_encoding))
    }

    /// The raw first byte: FIN, RSV1-3 and the opcode.
    pub fn first_byte(&self) -> u8 {
        self.first_byte
    }

    /// FIN: this frame ends its message.
    pub fn fin(&self) -> bool {
        self.first_byte & FIN != 0
    }

    /// RSV1 (permessage-deflate's "compressed" bit).
    pub fn rsv1(&self) -> bool {
        self.first_byte & RSV1 != 0
    }

    /// RSV2.
    pub fn rsv2(&self) -> bool {
        self.first_byte & RSV2 != 0
    }

    /// RSV3.
    pub fn rsv3(&self) -> bool {
        self.first_byte & RSV3 != 0
    }

    /// The three RSV bits as they sit in the first byte (`0x70` when all are set).
    pub fn rsv_bits(&self) -> u8 {
        self.first_byte & (RSV1 | RSV2 | RSV3)
    }

    /// The opcode, reserved values included.
    pub fn opcode(&self) -> Opcode {
        Opcode::from_bits(self.first_byte)
    }

    /// The masking key, when the MASK bit is set.
    pub fn mask(&self) -> Option<MaskingKey> {
        self.mask
    }

    /// The payload length as declared.
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// The length encoding the sender chose.
    pub fn length_encoding(&self) -> LengthEncoding {
        self.length_encoding
    }

    /// Header length in bytes (2 to 14).
    pub fn header_len(&self) -> u8 {
        // At most 2 + 8 + 4 = 14, so the cast cannot truncate.
        (2 + self.length_encoding.extra_bytes() + if self.mask.is_some() { 4 } else { 0 }) as u8
    }

    /// The first byte as eight binary digits, FIN first: `"10000001"` for a final text frame.
    pub fn flags(&self) -> String {
        format!("{:08b}", self.first_byte)
    }

    /// The flag names that are set, in wire order: e.g. `["FIN", "RSV1"]`.
    pub fn flag_names(&self) -> Vec<&'static str> {
        flag_names(self.first_byte)
    }

    /// Header plus payload length: the frame's size on the wire.
    pub fn wire_len(&self) -> u64 {
        u64::from(self.header_len()).saturating_add(self.payload_len)
    }

    /// The masking key as the console shows it: `16-39-8F-63`.
    pub fn mask_key_dashed(&self) -> Option<String> {
        self.mask.map(|k| mask_key_dashed(&k))
    }

    /// The masking key as the trace stores it: eight lower-case hex digits.
    pub fn mask_key_hex(&self) -> Option<String> {
        self.mask
            .map(|k| format!("{:02x}{:02x}{:02x}{:02x}", k[0], k[1], k[2], k[3]))
    }
}

/// The names of the flag bits set in a frame's first byte, in wire order.
pub fn flag_names(first_byte: u8) -> Vec<&'static str> {
    [(FIN, "FIN"), (RSV1, "RSV1"), (RSV2, "RSV2"), (RSV3, "RSV3")]
        .into_iter()
        .filter_map(|(bit, name)| (first_byte & bit != 0).then_some(name))
        .collect()
}

/// A masking key as the console shows it: `16-39-8F-63`.
pub fn mask_key_dashed(key: &MaskingKey) -> String {
    format!(
        "{:02X}-{:02X}-{:02X}-{:02X}",
        key[0], key[1], key[2], key[3]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_length_encoding() {
        let h = FrameHeader::parse(&[0x81, 0x05]).unwrap();
        assert_eq!(
            (h.payload_len(), h.length_encoding(), h.header_len()),
            (5, LengthEncoding::Bits7, 2)
        );
        let h = FrameHeader::parse(&[0x82, 0x7E, 0x01, 0x00]).unwrap();
        assert_eq!(
            (h.payload_len(), h.length_encoding(), h.header_len()),
            (256, LengthEncoding::Bits16, 4)
        );
        let h = FrameHeader::parse(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]).unwrap();
        assert_eq!(
            (h.payload_len(), h.length_encoding(), h.header_len()),
            (65536, LengthEncoding::Bits64, 10)
        );
    }

    #[test]
    fn short_input_says_how_much_is_needed() {
        assert_eq!(FrameHeader::parse(&[]), Err(NeedMore { header_len: 2 }));
        assert_eq!(FrameHeader::parse(&[0x81]), Err(NeedMore { header_len: 2 }));
        assert_eq!(
            FrameHeader::parse(&[0x81, 0xFF]),
            Err(NeedMore { header_len: 14 })
        );
        assert_eq!(
            FrameHeader::parse(&[0x81, 0xFE, 0]),
            Err(NeedMore { header_len: 8 })
        );
    }

    #[test]
    fn keeps_mask_key_flags_and_reserved_opcode() {
        let h = FrameHeader::parse(&[0x73, 0x80, 0x16, 0x39, 0x8F, 0x63]).unwrap();
        assert_eq!(h.opcode(), Opcode::Reserved(3));
        assert_eq!(h.opcode().name(), "RESERVED_0x3");
        assert!(!h.fin() && h.rsv1() && h.rsv2() && h.rsv3());
        assert_eq!(h.flags(), "01110011");
        assert_eq!(h.mask_key_dashed().as_deref(), Some("16-39-8F-63"));
        assert_eq!(h.mask_key_hex().as_deref(), Some("16398f63"));
        assert_eq!(h.flag_names(), ["RSV1", "RSV2", "RSV3"]);
    }

    #[test]
    fn opcode_round_trips_all_sixteen_values() {
        for bits in 0..16u8 {
            assert_eq!(Opcode::from_bits(bits).bits(), bits);
            assert_eq!(Opcode::from_bits(bits).is_control(), bits >= 8);
        }
    }
}
