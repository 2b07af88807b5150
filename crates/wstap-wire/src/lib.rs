//! Sans-IO WebSocket codec for observers (RFC 6455, RFC 7692).
//!
//! `wstap-wire` is the protocol core of the wstap debugging proxy, usable on its own by
//! anything that has WebSocket bytes in hand (a proxy's tap, a pcap reader, a test). It
//! takes byte chunks and the time each chunk arrived *in*, and gives frame headers,
//! unmasked payload, reassembled messages, inflated data and protocol violations *out*;
//! and it encodes frames, valid or not, for whoever needs to write one. It opens no socket,
//! reads no clock and spawns nothing, in the manner of `quinn-proto` (the one exception:
//! [`mask::random_key`] asks the operating system for random bytes).
//!
//! Unlike a WebSocket *endpoint* library, this crate never rejects input: a frame that
//! breaks the RFC is annotated with [`Violation`]s and decoding carries on, because an
//! observer's job is to report what was on the wire, not to police it.
//!
//! Layers, bottom up:
//! - [`header`]: the frame header as it appeared on the wire ([`FrameHeader`]), and
//!   [`encode`]: the same header (and whole frames) written back, bit for bit.
//! - [`mask`]: client-to-server masking, a fast path and its naive oracle.
//! - [`decoder`]: an incremental frame decoder for one direction ([`FrameDecoder`]) that
//!   reports where in each chunk every frame ends.
//! - [`utf8`], [`close`]: incremental UTF-8 validation and close-frame payloads.
//! - [`deflate`]: permessage-deflate negotiation, a bounded per-direction inflater, and
//!   a deflater for messages a relay sends in a connection's negotiated terms.
//! - [`analyzer`]: the per-direction [`StreamAnalyzer`] combining all of the above into
//!   [`FrameRecord`]s and [`MessageRecord`]s with bounded payload captures, or judging a
//!   chunk for a relay that withholds the first frame breaking the protocol ([`Verdict`]).
//! - [`handshake`]: opening-handshake analysis (`Sec-WebSocket-Accept` and friends).
//!
//! Memory per direction is bounded by the 14-byte header buffer, the configured capture
//! limits and (with permessage-deflate) one inflater; no payload is ever buffered whole.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod analyzer;
pub mod close;
pub mod decoder;
pub mod deflate;
pub mod encode;
pub mod handshake;
pub mod header;
pub mod mask;
pub mod utf8;
pub mod violation;

pub use analyzer::{
    AnalyzerConfig, Capture, FrameEnd, FrameRecord, Inflated, MessageRecord, Offence, PartialFrame,
    Record, StreamAnalyzer, Verdict,
};
pub use close::CloseFrame;
pub use decoder::{FrameDecoder, FrameHandler};
pub use deflate::{DeflateParams, Deflater};
pub use encode::FrameBuilder;
pub use handshake::{HandshakeAnalysis, HandshakeIssue};
pub use header::{FrameHeader, LengthEncoding, MaskingKey, Opcode};
pub use violation::Violation;

/// Which way bytes travel on a WebSocket connection.
///
/// The direction decides the masking rule (RFC 6455 section 5.1): every frame from the
/// client must be masked and no frame from the server may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (the side that sent the opening handshake) to the server.
    ClientToServer,
    /// From the server to the client.
    ServerToClient,
}

impl Direction {
    /// The short form used in traces: `"c2s"` or `"s2c"`.
    pub fn short(self) -> &'static str {
        match self {
            Direction::ClientToServer => "c2s",
            Direction::ServerToClient => "s2c",
        }
    }

    /// Reads the short form back: `"c2s"` or `"s2c"`.
    pub fn from_short(short: &str) -> Option<Direction> {
        match short {
            "c2s" => Some(Direction::ClientToServer),
            "s2c" => Some(Direction::ServerToClient),
            _ => None,
        }
    }

    /// The sender's name: `"client"` or `"server"`.
    pub fn sender(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client",
            Direction::ServerToClient => "server",
        }
    }

    /// The receiver's name: `"server"` or `"client"`.
    pub fn receiver(self) -> &'static str {
        self.reverse().sender()
    }

    /// The form used on the console: `"Client->Server"` or `"Server->Client"`.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::ClientToServer => "Client->Server",
            Direction::ServerToClient => "Server->Client",
        }
    }

    /// The other direction.
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ClientToServer => Direction::ServerToClient,
            Direction::ServerToClient => Direction::ClientToServer,
        }
    }
}

/// A point in time, in microseconds since the Unix epoch, supplied by the caller.
///
/// The crate never reads a clock: the caller stamps each chunk as it arrives and the
/// decoder attributes to every frame the stamp of the chunk holding its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);
