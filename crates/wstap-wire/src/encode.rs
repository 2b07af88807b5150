//! The encoder beside the decoder (RFC 6455 section 5.2): frame headers and whole frames.
//!
//! [`FrameHeader::encode`] writes a header exactly as it describes: any flags, any opcode,
//! the length in the encoding it names (minimal or not) and the masking key. [`FrameBuilder`]
//! builds whole frames on top of it, masked when given a key. Both write frames that break
//! the protocol when asked to (a reserved opcode, a non-minimal length, a length that lies
//! about the payload), because an observer's tools must be able to write anything a peer
//! might: the relay's own close frames, tests, benchmarks, and interception once it lands.
//! [`crate::CloseFrame::encode`] makes close payloads and [`crate::mask::random_key`]
//! masking keys.

use crate::header::{FrameHeader, LengthEncoding, Opcode, FIN, MAX_HEADER_LEN, RSV1, RSV2, RSV3};
use crate::mask::apply_mask;
use crate::MaskingKey;

impl FrameHeader {
    /// Appends the header's 2 to 14 bytes to `out`. A 7-bit or 16-bit encoding of a length
    /// too large for it keeps the low bits: a lie on purpose, for tests that need one.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let len = self.payload_len();
        let mask_bit = if self.mask().is_some() { 0x80 } else { 0 };
        out.reserve(MAX_HEADER_LEN);
        out.push(self.first_byte());
        match self.length_encoding() {
            LengthEncoding::Bits7 => out.push(mask_bit | (len as u8 & 0x7F)),
            LengthEncoding::Bits16 => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            LengthEncoding::Bits64 => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        if let Some(key) = self.mask() {
            out.extend_from_slice(&key);
        }
    }
}

/// Builds one frame: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameBuilder {
    first_byte: u8,
    mask: Option<MaskingKey>,
    length_encoding: Option<LengthEncoding>,
    declared_len: Option<u64>,
}

impl FrameBuilder {
    /// A final frame with `opcode`, no RSV bits, unmasked, minimal length encoding.
    pub fn new(opcode: Opcode) -> Self {
        FrameBuilder {
            first_byte: FIN | opcode.bits(),
            mask: None,
            length_encoding: None,
            declared_len: None,
        }
    }

    /// A final text frame.
    pub fn text() -> Self {
        Self::new(Opcode::Text)
    }

    /// A final binary frame.
    pub fn binary() -> Self {
        Self::new(Opcode::Binary)
    }

    /// A continuation frame (final unless [`FrameBuilder::fin`] says otherwise).
    pub fn continuation() -> Self {
        Self::new(Opcode::Continuation)
    }

    /// A close frame.
    pub fn close() -> Self {
        Self::new(Opcode::Close)
    }

    /// A ping frame.
    pub fn ping() -> Self {
        Self::new(Opcode::Ping)
    }

    /// A pong frame.
    pub fn pong() -> Self {
        Self::new(Opcode::Pong)
    }

    /// Sets or clears FIN.
    pub fn fin(self, fin: bool) -> Self {
        self.bit(FIN, fin)
    }

    /// Sets or clears RSV1.
    pub fn rsv1(self, on: bool) -> Self {
        self.bit(RSV1, on)
    }

    /// Sets or clears RSV2.
    pub fn rsv2(self, on: bool) -> Self {
        self.bit(RSV2, on)
    }

    /// Sets or clears RSV3.
    pub fn rsv3(self, on: bool) -> Self {
        self.bit(RSV3, on)
    }

    /// Masks the payload with `key` (and sets the MASK bit).
    pub fn mask(mut self, key: MaskingKey) -> Self {
        self.mask = Some(key);
        self
    }

    /// Forces a length encoding, minimal or not.
    pub fn length_encoding(mut self, encoding: LengthEncoding) -> Self {
        self.length_encoding = Some(encoding);
        self
    }

    /// Declares a payload length other than the payload's real length.
    pub fn declared_len(mut self, len: u64) -> Self {
        self.declared_len = Some(len);
        self
    }

    fn bit(mut self, bit: u8, on: bool) -> Self {
        if on {
            self.first_byte |= bit;
        } else {
            self.first_byte &= !bit;
        }
        self
    }

    /// The header for a payload of `payload_len` bytes (or the declared length).
    pub fn header(&self, payload_len: u64) -> FrameHeader {
        let len = self.declared_len.unwrap_or(payload_len);
        let encoding = self
            .length_encoding
            .unwrap_or_else(|| LengthEncoding::minimal_for(len));
        FrameHeader::new(self.first_byte, self.mask, len, encoding)
    }

    /// The header's bytes for a payload of `payload_len` bytes (or the declared length).
    pub fn encode_header(&self, payload_len: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_HEADER_LEN);
        self.header(payload_len).encode(&mut out);
        out
    }

    /// The whole frame: header, then the payload (masked when a key is set).
    pub fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_HEADER_LEN + payload.len());
        self.header(payload.len() as u64).encode(&mut out);
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(key) = self.mask {
            apply_mask(&mut out[start..], key, 0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6455_section_5_7_examples_byte_for_byte() {
        assert_eq!(
            FrameBuilder::text().encode(b"Hello"),
            [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        assert_eq!(
            FrameBuilder::text()
                .mask([0x37, 0xfa, 0x21, 0x3d])
                .encode(b"Hello"),
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        assert_eq!(
            FrameBuilder::text().fin(false).encode(b"Hel"),
            [0x01, 0x03, 0x48, 0x65, 0x6c]
        );
        assert_eq!(
            FrameBuilder::continuation().encode(b"lo"),
            [0x80, 0x02, 0x6c, 0x6f]
        );
        assert_eq!(
            FrameBuilder::ping().encode(b"Hello"),
            [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        assert_eq!(
            FrameBuilder::pong()
                .mask([0x37, 0xfa, 0x21, 0x3d])
                .encode(b"Hello"),
            [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        assert_eq!(
            FrameBuilder::binary().encode_header(256),
            [0x82, 0x7E, 0x01, 0x00]
        );
        assert_eq!(
            FrameBuilder::binary().encode_header(65536),
            [0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
        );
    }

    #[test]
    fn every_header_parses_back_to_itself() {
        let encodings = [
            LengthEncoding::Bits7,
            LengthEncoding::Bits16,
            LengthEncoding::Bits64,
        ];
        for first_byte in [0x00, 0x81, 0x7F, 0xC2, 0x8A, 0x0B] {
            for mask in [None, Some([0xde, 0xad, 0xbe, 0xef])] {
                for encoding in encodings {
                    let len = match encoding {
                        LengthEncoding::Bits7 => 125,
                        LengthEncoding::Bits16 => 4,
                        LengthEncoding::Bits64 => 1 << 40,
                    };
                    let header = FrameHeader::new(first_byte, mask, len, encoding);
                    let mut bytes = Vec::new();
                    header.encode(&mut bytes);
                    assert_eq!(bytes.len(), usize::from(header.header_len()));
                    assert_eq!(FrameHeader::parse(&bytes), Ok(header));
                }
            }
        }
    }
}
