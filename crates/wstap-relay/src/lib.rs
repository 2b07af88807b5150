//! The relay core of wstap: every decision of a byte-exact WebSocket relay, with no I/O.
//!
//! A [`Relay`] takes what happened (bytes read from a side, the end of a side's stream, a
//! failed read or write, a [`Command`], the time) and answers with what to do: the
//! [`Transmit`]s to write to each side, in order; the frame and message [`Record`]s the
//! bytes completed; and when it next wants to be woken. It opens no socket, spawns no
//! task and reads no clock, in the manner of `quinn-proto`'s `Connection`: the engine's
//! drive loop reads, feeds, writes what the relay says, publishes its records and sleeps
//! until its deadline, and every decision can be tested with plain function calls.
//!
//! Untouched traffic takes the fast path: a [`Transmit::Forward`] of the very bytes read,
//! masked as the client masked them, never re-framed. Bytes the relay writes of its own
//! are close frames (at shutdown, after a `--strict` violation, on a `Close` command),
//! each written only where its stream is between frames, so no frame is cut, and frames
//! injected between messages ([`Command::Inject`]) or in place of a held message
//! ([`Command::Decide`]); bytes a breakpoint held ([`Command::Break`]) go out as they were
//! read unless a decision changes them.
//! How a relay ended is data ([`RelayEnd`], [`EndReason`]), not prose.
//!
//! [`Record`]: wstap_wire::Record
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod end;
mod lane;
mod relay;

pub use end::{Closed, Closes, CutOff, EndReason, FirstClose, RelayEnd, StreamEnd};
pub use relay::{
    After, BreakRule, Built, Candidate, Command, Conditions, Cut, Cutoff, Decision, FirstHeader,
    HeldId, MessageTest, Note, Refused, Relay, RelayConfig, Transmit,
};

use wstap_wire::Direction;

/// One end of a relayed connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The side that opened the connection (and sent the WebSocket handshake).
    Client,
    /// The side wstap connected to.
    Server,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    /// The direction of what this side sends.
    pub fn sends(self) -> Direction {
        match self {
            Side::Client => Direction::ClientToServer,
            Side::Server => Direction::ServerToClient,
        }
    }

    /// Index in per-side arrays: 0 for the client, 1 for the server. Per-direction arrays
    /// use the same order (client to server first), so a side indexes what it sends.
    fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}
