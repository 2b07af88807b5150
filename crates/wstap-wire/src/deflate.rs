//! permessage-deflate (RFC 7692): negotiation parameters and a bounded inflater.
//!
//! [`parse_extensions`] reads a `Sec-WebSocket-Extensions` header value into
//! [`Extension`]s; [`DeflateParams::from_extension`] turns an accepted
//! `permessage-deflate` into its four parameters. [`Inflater`] decompresses one
//! direction's messages for display: it appends the `00 00 ff ff` tail per message
//! (section 7.2.2), resets between messages when the sender gave up context takeover,
//! and hands output to a callback through a fixed scratch buffer, so a decompression
//! bomb costs CPU time but never memory.
//!
//! [`Deflater`] is the other way (section 7.2.1), for a relay that must send messages of
//! its own making, or re-encode a direction, in a connection's negotiated terms: it
//! keeps its context between messages unless the sender gave that up, never reaches
//! further back than the window the receiver allowed, and strips the tail.
//!
//! Window bits need no special handling when inflating: a decoder with the full 32 KiB
//! window reads any stream made with a smaller one. They are parsed and reported.

use crate::Direction;
use flate2::{
    Compress, CompressError, Compression, Decompress, FlushCompress, FlushDecompress, Status,
};

/// One extension in a `Sec-WebSocket-Extensions` header: its name and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in the order given; a value-less parameter has `None`.
    pub params: Vec<(String, Option<String>)>,
}

impl Extension {
    /// The extension as it would be written in a header.
    pub fn to_header_value(&self) -> String {
        let mut out = self.name.clone();
        for (key, value) in &self.params {
            out.push_str("; ");
            out.push_str(key);
            if let Some(value) = value {
                out.push('=');
                out.push_str(value);
            }
        }
        out
    }
}

/// Parses a `Sec-WebSocket-Extensions` value (RFC 6455 section 9.1): a comma-separated
/// list of extensions, each with `;`-separated parameters, values optionally quoted.
pub fn parse_extensions(value: &str) -> Vec<Extension> {
    value
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().filter(|n| !n.is_empty())?.to_owned();
            let params = parts
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (
                        k.trim().to_owned(),
                        Some(v.trim().trim_matches('"').to_owned()),
                    ),
                    None => (p.to_owned(), None),
                })
                .collect();
            Some(Extension { name, params })
        })
        .collect()
}

/// The negotiated parameters of permessage-deflate (RFC 7692 section 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeflateParams {
    /// The server resets its compression context after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after each message.
    pub client_no_context_takeover: bool,
    /// The server's LZ77 window, 8-15 bits, when limited.
    pub server_max_window_bits: Option<u8>,
    /// The client's LZ77 window, 8-15 bits, when limited.
    pub client_max_window_bits: Option<u8>,
}

/// The extension token of RFC 7692.
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

impl DeflateParams {
    /// Reads the parameters of an accepted `permessage-deflate` extension, as the server's
    /// response states them. Unknown, repeated or out-of-range parameters are an error
    /// (the client must fail the connection then, section 7.1), described in the `Err`.
    pub fn from_extension(ext: &Extension) -> Result<DeflateParams, String> {
        let mut params = DeflateParams::default();
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in &ext.params {
            if seen.contains(&key.as_str()) {
                return Err(format!("parameter {key} given twice"));
            }
            seen.push(key);
            match key.as_str() {
                "server_no_context_takeover" => params.server_no_context_takeover = true,
                "client_no_context_takeover" => params.client_no_context_takeover = true,
                "server_max_window_bits" => {
                    params.server_max_window_bits = Some(window_bits(key, value.as_deref())?)
                }
                "client_max_window_bits" => {
                    // In an offer the value may be absent; in a response it must be there,
                    // but a missing one is read as the default, 15.
                    params.client_max_window_bits = Some(
                        value
                            .as_deref()
                            .map_or(Ok(15), |v| window_bits(key, Some(v)))?,
                    )
                }
                other => return Err(format!("unknown parameter {other}")),
            }
        }
        Ok(params)
    }

    /// Whether the sender in `direction` resets its context after every message.
    pub fn no_context_takeover(&self, direction: Direction) -> bool {
        match direction {
            Direction::ClientToServer => self.client_no_context_takeover,
            Direction::ServerToClient => self.server_no_context_takeover,
        }
    }

    /// The window bits the sender in `direction` may use (15 when unlimited).
    pub fn window_bits(&self, direction: Direction) -> u8 {
        match direction {
            Direction::ClientToServer => self.client_max_window_bits,
            Direction::ServerToClient => self.server_max_window_bits,
        }
        .unwrap_or(15)
    }
}

fn window_bits(key: &str, value: Option<&str>) -> Result<u8, String> {
    let value = value.ok_or_else(|| format!("{key} needs a value"))?;
    match value.parse::<u8>() {
        Ok(bits @ 8..=15) => Ok(bits),
        _ => Err(format!("{key}={value} is not in 8..=15")),
    }
}

/// The empty stored block a sender strips from each message (RFC 7692 section 7.2.1).
pub const MESSAGE_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

const SCRATCH_LEN: usize = 8 * 1024;

/// Inflates one direction's compressed messages: see the module documentation.
///
/// For a complete, valid message the output depends on the bytes only, never on how they
/// were split into calls: the appended tail flushes everything. Two cases can vary with the
/// split, found by fuzzing: a message cut off before its end (the inflater may still hold
/// decoded bytes back), and corrupt data (what was decoded inside the call that fails may
/// not surface, and zlib's message may differ: the same bytes fail at once with "invalid
/// distance too far back", or pass one call and fail the next with "repeated call with
/// bad state"; the frame is flagged `inflate_failed` either way).
pub struct Inflater {
    decompress: Decompress,
    no_context_takeover: bool,
    stream_ended: bool,
    broken: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .field("stream_ended", &self.stream_ended)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// An inflater for a sender that does (`false`) or does not (`true`) keep its
    /// compression context between messages.
    pub fn new(no_context_takeover: bool) -> Self {
        Inflater {
            decompress: Decompress::new(false),
            no_context_takeover,
            stream_ended: false,
            broken: false,
        }
    }

    /// Call at the first frame of each compressed message.
    pub fn begin_message(&mut self) {
        if self.no_context_takeover || self.stream_ended || self.broken {
            self.decompress.reset(false);
            self.stream_ended = false;
            self.broken = false;
        }
    }

    /// Inflates the next piece of a compressed message, handing output to `out` in pieces.
    pub fn inflate(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) -> Result<(), String> {
        if self.broken {
            return Ok(());
        }
        let mut scratch = [0u8; SCRATCH_LEN];
        let mut input = input;
        while !self.stream_ended {
            let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
            // A sync flush hands out everything decodable so far, so what comes out depends on
            // the bytes, never on how they were cut into calls.
            let result = self
                .decompress
                .decompress(input, &mut scratch, FlushDecompress::Sync);
            let consumed = (self.decompress.total_in() - in_before) as usize;
            let produced = (self.decompress.total_out() - out_before) as usize;
            // Bytes decoded before an error in the same call are still real output.
            out(&scratch[..produced]);
            let status = result.map_err(|e| {
                self.broken = true;
                e.to_string()
            })?;
            input = &input[consumed..];
            if status == Status::StreamEnd {
                self.stream_ended = true;
            }
            let output_full = produced == scratch.len();
            if (input.is_empty() && !output_full) || (consumed == 0 && produced == 0) {
                break;
            }
        }
        Ok(())
    }

    /// Call after the last frame of a compressed message: inflates the implied tail.
    pub fn end_message(&mut self, out: &mut impl FnMut(&[u8])) -> Result<(), String> {
        self.inflate(&MESSAGE_TAIL, out)
    }
}

/// Compresses one direction's messages: see the module documentation.
pub struct Deflater {
    compress: Compress,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

impl Deflater {
    /// A deflater for the sender in `direction` of a connection that negotiated
    /// `params`.
    pub fn new(params: DeflateParams, direction: Direction) -> Self {
        let bits = params.window_bits(direction);
        // zlib makes no raw stream with an 8-bit window (it would use 9). Stored blocks,
        // which refer back to nothing, suit a receiver with any window.
        let (level, bits) = if bits < 9 {
            (Compression::none(), 9)
        } else {
            (Compression::default(), bits)
        };
        Deflater {
            compress: Compress::new_with_window_bits(level, false, bits),
            no_context_takeover: params.no_context_takeover(direction),
        }
    }

    /// Compresses one whole `message`, appending to `out` the payload to send with RSV1
    /// set on its first frame (the `00 00 ff ff` tail removed).
    pub fn compress(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<(), CompressError> {
        if self.no_context_takeover {
            self.compress.reset();
        }
        let start = out.len();
        let first_in = self.compress.total_in();
        loop {
            let consumed = usize::try_from(self.compress.total_in() - first_in).unwrap_or(0);
            let rest = message.get(consumed..).unwrap_or_default();
            out.reserve(rest.len() / 2 + 64);
            self.compress.compress_vec(rest, out, FlushCompress::Sync)?;
            // Done once all input is in and the flush ended with room to spare (a full
            // buffer may hold back more of it).
            let all_in = self.compress.total_in() - first_in == message.len() as u64;
            if all_in && out.len() < out.capacity() {
                break;
            }
        }
        if out[start..].ends_with(&MESSAGE_TAIL) {
            out.truncate(out.len() - MESSAGE_TAIL.len());
        }
        if out.len() == start {
            // Nothing new since the last flush (an empty message): zlib emits nothing, but
            // the receiver appends the tail to what it gets, so it needs the empty stored
            // block's header byte before it (section 7.2.3.6: the payload is `00`). The
            // stream is byte-aligned after a flush, and an empty block changes no history.
            out.push(0x00);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_message(inflater: &mut Inflater, compressed: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        inflater.begin_message();
        inflater
            .inflate(compressed, &mut |d| out.extend_from_slice(d))
            .unwrap();
        inflater
            .end_message(&mut |d| out.extend_from_slice(d))
            .unwrap();
        out
    }

    #[test]
    fn rfc_7692_7_2_3_1_a_message_compressed_using_one_block() {
        let mut inflater = Inflater::new(false);
        let out = inflate_message(&mut inflater, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn rfc_7692_7_2_3_2_sharing_the_window_across_messages() {
        let mut inflater = Inflater::new(false);
        let first = inflate_message(&mut inflater, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let second = inflate_message(&mut inflater, &[0xf2, 0x00, 0x11, 0x00, 0x00]);
        assert_eq!(
            (first.as_slice(), second.as_slice()),
            (&b"Hello"[..], &b"Hello"[..])
        );
    }

    #[test]
    fn rfc_7692_7_2_3_3_no_compression_block() {
        let mut inflater = Inflater::new(false);
        let out = inflate_message(
            &mut inflater,
            &[
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ],
        );
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn rfc_7692_7_2_3_4_bfinal_set() {
        let mut inflater = Inflater::new(false);
        let out = inflate_message(
            &mut inflater,
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
        );
        assert_eq!(out, b"Hello");
        // The next message starts a fresh stream.
        let again = inflate_message(&mut inflater, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        assert_eq!(again, b"Hello");
    }

    #[test]
    fn rfc_7692_7_2_3_5_two_deflate_blocks_in_one_message() {
        let mut inflater = Inflater::new(false);
        let out = inflate_message(
            &mut inflater,
            &[
                0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
            ],
        );
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut inflater = Inflater::new(true);
        inflater.begin_message();
        assert!(inflater
            .inflate(&[0xff, 0xff, 0xff, 0xff], &mut |_| {})
            .is_err());
        // The next message starts afresh.
        assert_eq!(
            inflate_message(&mut inflater, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]),
            b"Hello"
        );
    }

    #[test]
    fn parses_offers_and_all_four_parameters() {
        let exts = parse_extensions(
            "permessage-deflate; client_max_window_bits, permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=\"12\", x-other",
        );
        assert_eq!(exts.len(), 3);
        assert_eq!(
            exts[0].params,
            [("client_max_window_bits".to_owned(), None)]
        );
        let p = DeflateParams::from_extension(&exts[1]).unwrap();
        assert_eq!(
            p,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: Some(10),
                client_max_window_bits: Some(12),
            }
        );
        assert!(p.no_context_takeover(Direction::ClientToServer));
        assert_eq!(p.window_bits(Direction::ServerToClient), 10);
        assert_eq!(exts[2].name, "x-other");
    }

    #[test]
    fn rejects_bad_parameters() {
        for value in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        ] {
            let ext = &parse_extensions(value)[0];
            assert!(DeflateParams::from_extension(ext).is_err(), "{value}");
        }
    }
}
