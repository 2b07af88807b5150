//! Incremental frame decoder for one direction of one connection (RFC 6455 section 5.2).
//!
//! [`FrameDecoder::feed`] takes chunks of any size, down to one byte, with the time each
//! arrived, and reports to a [`FrameHandler`]: a header (stamped with the arrival time of
//! its first byte), payload pieces, unmasked, and the frame's end. It holds at most the 14
//! header bytes between chunks and never buffers payload, so a 2^40-byte frame costs the
//! same memory as an empty one. It judges nothing: see [`crate::analyzer`] for that.
//!
//! The chunk is only read: masked payload is unmasked into a small block on the stack,
//! a block at a time, so a relay can decide about the bytes it read and still forward
//! them exactly as they were (masked as the client sent them).
//!
//! Each frame's end comes with its offset in the chunk, and the handler may stop the
//! decoder there: a relay that withholds a bad frame (`--strict`) forwards exactly the
//! bytes before it and never decodes what it does not forward.

use crate::header::{FrameHeader, MaskingKey, MAX_HEADER_LEN};
use crate::mask::unmask_into;
use crate::Timestamp;
use std::ops::ControlFlow;

/// Receives what a [`FrameDecoder`] finds, in wire order.
pub trait FrameHandler {
    /// A complete header; `time` is when its first byte arrived.
    fn header(&mut self, header: &FrameHeader, time: Timestamp);
    /// The next piece of the current frame's payload, already unmasked.
    fn payload(&mut self, data: &[u8]);
    /// Whether the handler needs the next payload bytes themselves; when it does not, the
    /// decoder tells it only how many there were ([`FrameHandler::skipped`]) and spares
    /// itself the unmasking.
    fn wants_bytes(&self) -> bool {
        true
    }
    /// `len` payload bytes of the current frame passed that the handler did not want.
    fn skipped(&mut self, len: usize) {
        let _ = len;
    }
    /// The current frame's payload is complete; `time` is when its last byte arrived and
    /// `offset` is where in the chunk the frame ends (the index just past its last byte).
    /// `Break` stops decoding there: the rest of the chunk is left unread.
    fn end(&mut self, time: Timestamp, offset: usize) -> ControlFlow<()>;
}

/// Progress through a frame that the stream ended in the middle of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The stream ended between frames.
    Idle,
    /// The stream ended inside a header: `received` of at least `needed` bytes arrived.
    InHeader {
        /// Header bytes received.
        received: usize,
        /// Header bytes needed, as far as the received bytes tell.
        needed: usize,
    },
    /// The stream ended inside a payload.
    InPayload {
        /// The frame's header.
        header: FrameHeader,
        /// Payload bytes received.
        received: u64,
    },
}

#[derive(Debug, Clone, Copy)]
enum State {
    Header,
    Payload { header: FrameHeader, received: u64 },
}

/// The incremental decoder: see the module documentation.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    state: State,
    header_buf: [u8; MAX_HEADER_LEN],
    header_filled: usize,
    header_time: Timestamp,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            state: State::Header,
            header_buf: [0; MAX_HEADER_LEN],
            header_filled: 0,
            header_time: Timestamp::default(),
        }
    }
}

impl FrameDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `chunk`, which arrived at `time`, leaving its bytes as they are. Returns how
    /// many bytes were decoded: all of them, unless the handler stopped at the end of a
    /// frame.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        time: Timestamp,
        handler: &mut impl FrameHandler,
    ) -> usize {
        let total = chunk.len();
        let mut rest = chunk;
        while !rest.is_empty() {
            match self.state {
                State::Header => {
                    let Some((header, used)) = self.take_header(rest, time) else {
                        break;
                    };
                    rest = &rest[used..];
                    handler.header(&header, self.header_time);
                    if header.payload_len() == 0 {
                        if handler.end(time, total - rest.len()).is_break() {
                            break;
                        }
                    } else {
                        self.state = State::Payload {
                            header,
                            received: 0,
                        };
                    }
                }
                State::Payload { header, received } => {
                    let remaining = header.payload_len() - received;
                    let n = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    let (data, after) = rest.split_at(n);
                    match header.mask() {
                        _ if !handler.wants_bytes() => handler.skipped(data.len()),
                        Some(key) => unmask_in_blocks(data, key, received, handler),
                        None => handler.payload(data),
                    }
                    rest = after;
                    let received = received + n as u64;
                    if received == header.payload_len() {
                        self.state = State::Header;
                        if handler.end(time, total - rest.len()).is_break() {
                            break;
                        }
                    } else {
                        self.state = State::Payload { header, received };
                    }
                }
            }
        }
        total - rest.len()
    }

    /// Where the decoder stands: use it when the stream ends to tell how much of the
    /// current frame arrived.
    pub fn progress(&self) -> Progress {
        match self.state {
            State::Header if self.header_filled == 0 => Progress::Idle,
            State::Header => Progress::InHeader {
                received: self.header_filled,
                needed: FrameHeader::parse(&self.header_buf[..self.header_filled])
                    .err()
                    .map_or(self.header_filled, |need| need.header_len),
            },
            State::Payload { header, received } => Progress::InPayload { header, received },
        }
    }

    /// Completes a header from buffered bytes and `chunk`. Returns the header and how many
    /// bytes of `chunk` it used, or `None` after buffering all of `chunk`.
    fn take_header(&mut self, chunk: &[u8], time: Timestamp) -> Option<(FrameHeader, usize)> {
        if self.header_filled == 0 {
            self.header_time = time;
            // Fast path: the whole header is in this chunk.
            if let Ok(header) = FrameHeader::parse(chunk) {
                return Some((header, usize::from(header.header_len())));
            }
        }
        let mut used = 0;
        loop {
            match FrameHeader::parse(&self.header_buf[..self.header_filled]) {
                Ok(header) => {
                    self.header_filled = 0;
                    return Some((header, used));
                }
                Err(need) => {
                    let want = need.header_len - self.header_filled;
                    let take = want.min(chunk.len() - used);
                    if take == 0 {
                        return None;
                    }
                    self.header_buf[self.header_filled..self.header_filled + take]
                        .copy_from_slice(&chunk[used..used + take]);
                    self.header_filled += take;
                    used += take;
                }
            }
        }
    }
}

/// How many unmasked bytes the decoder hands on at a time: small enough for the stack and
/// the first-level cache, large enough that the per-call cost is lost in the copy.
const UNMASK_BLOCK: usize = 4 * 1024;

/// Hands `data` (masked with `key`, starting `offset` bytes into its payload) to `handler`
/// unmasked, a block at a time, without touching `data`.
fn unmask_in_blocks(data: &[u8], key: MaskingKey, offset: u64, handler: &mut impl FrameHandler) {
    let mut block = [0u8; UNMASK_BLOCK];
    let mut at = offset;
    for piece in data.chunks(UNMASK_BLOCK) {
        if !handler.wants_bytes() {
            handler.skipped(piece.len());
        } else {
            let unmasked = &mut block[..piece.len()];
            unmask_into(piece, unmasked, key, at);
            handler.payload(unmasked);
        }
        at += piece.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::Opcode;

    #[derive(Default)]
    struct Collect {
        frames: Vec<(FrameHeader, Timestamp, Vec<u8>)>,
        ended: usize,
        ends: Vec<usize>,
        stop_after: Option<usize>,
    }

    impl FrameHandler for Collect {
        fn header(&mut self, header: &FrameHeader, time: Timestamp) {
            self.frames.push((*header, time, Vec::new()));
        }
        fn payload(&mut self, data: &[u8]) {
            self.frames.last_mut().unwrap().2.extend_from_slice(data);
        }
        fn end(&mut self, _time: Timestamp, offset: usize) -> ControlFlow<()> {
            self.ended += 1;
            self.ends.push(offset);
            if self.stop_after == Some(self.ended) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }

    #[test]
    fn one_byte_at_a_time_with_first_byte_timestamps() {
        let mut wire = vec![
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        wire.extend_from_slice(&[0x89, 0x00]);
        let mut decoder = FrameDecoder::new();
        let mut out = Collect::default();
        for (i, byte) in wire.iter().enumerate() {
            decoder.feed(&[*byte], Timestamp(i as i64), &mut out);
        }
        assert_eq!(out.ended, 2);
        assert_eq!(out.frames[0].0.opcode(), Opcode::Text);
        assert_eq!(out.frames[0].1, Timestamp(0));
        assert_eq!(out.frames[0].2, b"Hello");
        assert_eq!(out.frames[1].0.opcode(), Opcode::Ping);
        assert_eq!(out.frames[1].1, Timestamp(11));
        assert_eq!(decoder.progress(), Progress::Idle);
    }

    #[test]
    fn huge_declared_frame_needs_no_buffer() {
        let mut header = vec![0x82, 0x7F];
        header.extend_from_slice(&(1u64 << 40).to_be_bytes());
        let mut decoder = FrameDecoder::new();
        let mut out = Collect::default();
        decoder.feed(&header, Timestamp(0), &mut out);
        decoder.feed(&[7u8; 4096], Timestamp(1), &mut out);
        match decoder.progress() {
            Progress::InPayload { header, received } => {
                assert_eq!(header.payload_len(), 1 << 40);
                assert_eq!(received, 4096);
            }
            other => panic!("unexpected progress {other:?}"),
        }
    }

    #[test]
    fn frame_ends_are_reported_as_offsets_and_a_handler_can_stop_there() {
        // Three frames in one chunk: "Hello" (7 bytes), a ping (2), "ab" (4).
        let mut wire = vec![0x81, 0x05];
        wire.extend_from_slice(b"Hello");
        wire.extend_from_slice(&[0x89, 0x00, 0x82, 0x02, b'a', b'b']);
        let mut all = Collect::default();
        assert_eq!(
            FrameDecoder::new().feed(&wire, Timestamp(0), &mut all),
            wire.len()
        );
        assert_eq!(all.ends, [7, 9, 13]);

        let mut two = Collect {
            stop_after: Some(2),
            ..Collect::default()
        };
        let mut decoder = FrameDecoder::new();
        assert_eq!(decoder.feed(&wire, Timestamp(0), &mut two), 9);
        assert_eq!(two.frames.len(), 2, "the third frame is never decoded");
        assert_eq!(decoder.progress(), Progress::Idle);
    }

    #[test]
    fn progress_reports_a_cut_header() {
        let mut decoder = FrameDecoder::new();
        decoder.feed(&[0x82, 0x7E, 0x01], Timestamp(0), &mut Collect::default());
        assert_eq!(
            decoder.progress(),
            Progress::InHeader {
                received: 3,
                needed: 4
            }
        );
    }
}
