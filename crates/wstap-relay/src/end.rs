//! How a relay ended, as data: who closed, with which code, what each direction did, and
//! what wstap itself stepped in to do. The engine turns it into the session's record; the
//! sentences a person reads come from [`EndReason`]'s `Display`, never the other way round.

use crate::{HeldId, Side};
use std::fmt;
use wstap_wire::{Direction, Offence, PartialFrame};

/// How one direction's stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The sender ended its stream (end of file); `sent_close` says whether it had sent a
    /// close frame first (always false on a stream that is not a WebSocket).
    Eof {
        /// Whether a close frame came before the end.
        sent_close: bool,
    },
    /// Reading from the sender failed, for this reason.
    ReadFailed(String),
    /// Writing to the receiver failed, for this reason.
    WriteFailed(String),
    /// Still open when the relay ended for a reason of the other direction's.
    Stopped,
}

/// What became of a side wstap set out to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// It got wstap's close frame with this code (written in full), then the end of its
    /// stream.
    CloseFrame(u16),
    /// Its connection was ended without a close frame: its stream was still in the middle
    /// of a frame when the grace ran out, the relay failed before the frame was written,
    /// or the stream is not a WebSocket.
    WithoutCloseFrame,
    /// Nothing more was sent: its stream had already ended, or already carried a close
    /// frame (a second one would break the protocol).
    AlreadyClosed,
}

/// What wstap did to each side when it closed them; `None`: it left that side alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Closes {
    /// The client (a close frame to it is unmasked, as a server sends it).
    pub client: Option<Closed>,
    /// The server (a close frame to it is masked with a fresh key, as a client sends it).
    pub server: Option<Closed>,
}

impl Closes {
    /// What became of `side`.
    pub fn of(&self, side: Side) -> Option<Closed> {
        match side {
            Side::Client => self.client,
            Side::Server => self.server,
        }
    }
}

/// Why a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The peers ended it: each direction's end.
    Peers {
        /// Client to server.
        c2s: StreamEnd,
        /// Server to client.
        s2c: StreamEnd,
    },
    /// wstap was shutting down: it sent `1001 Going Away` to each side whose stream was
    /// between frames in time, and closed the others' connections without a close frame.
    Shutdown {
        /// What became of each side.
        closes: Closes,
    },
    /// A `Close` command ended it toward one side or both.
    Commanded {
        /// The code asked for.
        code: u16,
        /// What became of each side.
        closes: Closes,
    },
    /// `--strict`: a side broke the protocol; the offending frame and everything after it
    /// were withheld, and wstap closed both sides.
    Strict {
        /// Who sent the offending frame.
        from: Direction,
        /// The frame and the first rule it breaks.
        offence: Offence,
        /// Bytes withheld from the read that carried it.
        withheld: u64,
        /// The code sent: 1007 for bad UTF-8, else 1002.
        code: u16,
        /// What became of each side.
        closes: Closes,
    },
    /// An `Abort` command ended it at once: both connections were dropped without close
    /// frames.
    Aborted,
    /// A compressed message grew past the breakpoint's budget after wstap began
    /// compressing its direction again: wstap cannot keep it whole within the bound, nor
    /// pass it as read (the receiver could not inflate it), so it ended the session.
    Overflow {
        /// Who sent it.
        from: Direction,
    },
}

/// The first close frame of the session, and who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstClose {
    /// The side that closed first.
    pub by: Side,
    /// Its code, when the payload had one.
    pub code: Option<u16>,
    /// Its reason.
    pub reason: String,
}

/// A frame the stream ended in the middle of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutOff {
    /// Its direction.
    pub direction: Direction,
    /// The index it would have had.
    pub index: u64,
    /// What arrived of it.
    pub partial: PartialFrame,
}

/// Everything the session's end needs to know about its relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayEnd {
    /// Why it ended.
    pub reason: EndReason,
    /// Whether it ended cleanly: a WebSocket with a close frame each way and no frame cut
    /// (however its connections went afterwards); another stream, ended by both senders.
    pub clean: bool,
    /// The first close frame, if any.
    pub first_close: Option<FirstClose>,
    /// Complete frames, client to server and server to client.
    pub frames: [u64; 2],
    /// Bytes handed on, client to server and server to client.
    pub bytes: [u64; 2],
    /// Bytes kept by interception ([`crate::Command::Break`]) and never handed on, client
    /// to server and server to client: lost with the session.
    pub held: [u64; 2],
    /// The messages held and never decided: lost with the session.
    pub lost: Vec<(Side, HeldId)>,
    /// Bytes read and not handed on, dropped or replaced ([`crate::Command::Decide`]),
    /// client to server and server to client.
    pub dropped: [u64; 2],
    /// Frames cut off by the end of their stream.
    pub cut_off: Vec<CutOff>,
}

impl RelayEnd {
    /// What went wrong or what wstap did, in words; `None` for a clean end.
    pub fn error(&self) -> Option<String> {
        if self.clean {
            return None;
        }
        let text = self.reason.to_string();
        (!text.is_empty()).then_some(text)
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::Peers { c2s, s2c } => {
                let parts: Vec<String> = [
                    (Direction::ClientToServer, c2s),
                    (Direction::ServerToClient, s2c),
                ]
                .into_iter()
                .filter_map(|(direction, end)| describe(direction, end))
                .collect();
                f.write_str(&parts.join("; "))
            }
            EndReason::Shutdown { closes } => {
                f.write_str("wstap shut down: ")?;
                f.write_str(&what_became_of(closes))
            }
            EndReason::Commanded { closes, .. } => {
                f.write_str("closed from wstap: ")?;
                f.write_str(&what_became_of(closes))
            }
            EndReason::Aborted => f.write_str(
                "aborted from wstap: both connections were dropped without close frames",
            ),
            EndReason::Overflow { from } => write!(
                f,
                "a compressed message from the {} grew past --break-buffer after wstap began compressing that direction again; it could be neither kept whole nor passed as read, so wstap ended the session",
                from.sender()
            ),
            EndReason::Strict {
                from,
                offence,
                code,
                ..
            } => {
                let violation = &offence.violation;
                let whole = if offence.begins_in_chunk {
                    "nothing of it"
                } else {
                    "only its first bytes"
                };
                write!(
                    f,
                    "--strict: the {} sent a frame that breaks the protocol ({}: {violation}); it was not relayed (frame {} on; the other side received {whole}), and wstap closed both sides with {code}",
                    from.sender(),
                    violation.code(),
                    offence.index,
                )
            }
        }
    }
}

/// What wstap did to each side it closed, in words.
fn what_became_of(closes: &Closes) -> String {
    let say = |closed: Closed, peer: &str| {
        match closed {
        Closed::CloseFrame(1001) => format!("it sent close 1001 (Going Away) to {peer}"),
        Closed::CloseFrame(code) => format!("it sent close {code} to {peer}"),
        Closed::WithoutCloseFrame => format!(
            "it ended the connection to {peer} without a close frame (in the middle of a frame, or not a WebSocket)"
        ),
        Closed::AlreadyClosed => {
            format!("the stream to {peer} had already closed, so it sent nothing more")
        }
    }
    };
    match (closes.client, closes.server) {
        (Some(client), Some(server)) if client == server => say(client, "both sides"),
        (client, server) => {
            let parts: Vec<String> = [(client, "the client"), (server, "the server")]
                .into_iter()
                .filter_map(|(closed, peer)| closed.map(|closed| say(closed, peer)))
                .collect();
            parts.join("; ")
        }
    }
}

/// A sentence on how one direction ended, `None` when it ended well.
fn describe(direction: Direction, end: &StreamEnd) -> Option<String> {
    let (from, to) = (direction.sender(), direction.receiver());
    match end {
        StreamEnd::Stopped => Some(format!(
            "{from}->{to} stopped when the other direction failed"
        )),
        StreamEnd::ReadFailed(e) => Some(format!("reading from the {from} failed: {e}")),
        StreamEnd::WriteFailed(e) => Some(format!("writing to the {to} failed: {e}")),
        StreamEnd::Eof { sent_close: false } => Some(format!(
            "the {from} closed the connection without a close frame"
        )),
        StreamEnd::Eof { sent_close: true } => None,
    }
}
