//! A frame builder that writes any frame, valid or not (RFC 6455 section 5.2).
//!
//! Tests, benchmarks and the demo need frames with exact properties: a chosen masking
//! key, a non-minimal length encoding, a reserved opcode, a length that lies about the
//! payload. [`FrameBuilder`] writes them all; it checks nothing.

use crate::header::{LengthEncoding, Opcode};
use crate::mask::apply_mask;

/// Builds one frame: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameBuilder {
    first_byte: u8,
    mask: Option<[u8; 4]>,
    length_encoding: Option<LengthEncoding>,
    declared_len: Option<u64>,
}

impl FrameBuilder {
    /// A final frame with `opcode`, no RSV bits, unmasked, minimal length encoding.
    pub fn new(opcode: Opcode) -> Self {
        FrameBuilder {
            first_byte: 0x80 | opcode.bits(),
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
        self.bit(0x80, fin)
    }

    /// Sets or clears RSV1.
    pub fn rsv1(self, on: bool) -> Self {
        self.bit(0x40, on)
    }

    /// Sets or clears RSV2.
    pub fn rsv2(self, on: bool) -> Self {
        self.bit(0x20, on)
    }

    /// Sets or clears RSV3.
    pub fn rsv3(self, on: bool) -> Self {
        self.bit(0x10, on)
    }

    /// Masks the payload with `key` (and sets the MASK bit).
    pub fn mask(mut self, key: [u8; 4]) -> Self {
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
    pub fn encode_header(&self, payload_len: u64) -> Vec<u8> {
        let len = self.declared_len.unwrap_or(payload_len);
        let encoding = self
            .length_encoding
            .unwrap_or_else(|| LengthEncoding::minimal_for(len));
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut out = Vec::with_capacity(14);
        out.push(self.first_byte);
        match encoding {
            // A forced 7-bit encoding of a long length keeps the low 7 bits: a lie on purpose.
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
        if let Some(key) = self.mask {
            out.extend_from_slice(&key);
        }
        out
    }

    /// The whole frame: header, then the payload (masked when a key is set).
    pub fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = self.encode_header(payload.len() as u64);
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
}
