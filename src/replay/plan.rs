//! What the client did in a recorded session, as the replay plays it again.

use std::time::Duration;
use wstap_store::StoredMessage;
use wstap_wire::{Direction, Opcode};

/// The client's side of the recording.
pub(super) struct Plan {
    /// Its data messages.
    pub(super) messages: Vec<Planned>,
    /// How many data messages the server sent.
    pub(super) expected: usize,
    /// Its close's payload.
    pub(super) close: Vec<u8>,
}

/// A client message to send, and when.
pub(super) struct Planned {
    pub(super) opcode: Opcode,
    pub(super) data: Vec<u8>,
    pub(super) offset: Duration,
    /// Server messages recorded before it.
    pub(super) after_server: usize,
}

impl Plan {
    /// What the client did in `messages` (a session's, in order), from `opened_us`.
    pub(super) fn of(messages: &[StoredMessage], opened_us: i64) -> Result<Plan, String> {
        let mut planned = Vec::new();
        let mut server_before = 0;
        // The client's close as recorded (a close with no code stays one), else 1000.
        let mut close = None;
        for m in messages {
            let message = &m.message;
            let opcode = Opcode::from_bits(message.opcode);
            let data_message = matches!(opcode, Opcode::Text | Opcode::Binary);
            let from_the_peer = message.origin.is_wire();
            match message.dir {
                Direction::ServerToClient if data_message && from_the_peer => server_before += 1,
                Direction::ClientToServer if opcode == Opcode::Close && from_the_peer => {
                    close.get_or_insert_with(|| message.payload.bytes.clone());
                }
                Direction::ClientToServer if data_message && from_the_peer => {
                    if message.payload.truncated || message.payload.dropped {
                        return Err(format!(
                            "client message {} was not kept whole in the capture",
                            m.seq
                        ));
                    }
                    let offset = message.time.timestamp_micros() - opened_us;
                    planned.push(Planned {
                        opcode,
                        data: message.payload.bytes.clone(),
                        offset: Duration::from_micros(u64::try_from(offset).unwrap_or(0)),
                        after_server: server_before,
                    });
                }
                _ => {}
            }
        }
        Ok(Plan {
            messages: planned,
            expected: server_before,
            close: close.unwrap_or_else(|| 1000u16.to_be_bytes().to_vec()),
        })
    }
}
