//! The messages held now, across sessions, and what may become of one.

use crate::error::ControlError;
use chrono::{DateTime, Utc};
use wstap_relay::HeldId;
use wstap_wire::{Direction, Opcode};

/// What a person or a client decides for a held message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldAction {
    /// It goes on exactly as read.
    Forward,
    /// It never goes out.
    Drop,
    /// `payload` goes in its place, with its opcode. A text message's edit must be valid
    /// UTF-8 unless `as_bytes` says to send it anyway.
    Edit {
        /// The new payload.
        payload: Vec<u8>,
        /// Send it even when it is not valid for the opcode (invalid UTF-8 as text).
        as_bytes: bool,
    },
    /// It and everything else held in its session go on, and the session stops breaking.
    Continue,
}

/// A held message as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldView {
    /// Its number (unique in the run).
    pub id: u64,
    /// Its session.
    pub session: u64,
    /// Which way it goes.
    pub dir: Direction,
    /// Its opcode.
    pub opcode: Opcode,
    /// Its data (inflated when compressed), as far as the capture limit.
    pub payload: Vec<u8>,
    /// Its whole length.
    pub len: u64,
    /// Whether it was compressed.
    pub compressed: bool,
    /// When it was held.
    pub since: DateTime<Utc>,
    /// The breakpoint that held it.
    pub breakpoint: Option<u64>,
    /// The index, in its direction, of its last frame.
    pub frame: u64,
}

/// One held message in the registry.
#[derive(Debug, Clone)]
pub(crate) struct HeldEntry {
    pub view: HeldView,
    pub session: u64,
    /// How its relay names it.
    pub relay_id: HeldId,
}

impl HeldEntry {
    pub fn view(&self) -> HeldView {
        self.view.clone()
    }

    /// Whether `payload` may replace this message.
    pub fn check_edit(&self, payload: &[u8], as_bytes: bool) -> Result<(), ControlError> {
        let view = &self.view;
        if (view.payload.len() as u64) < view.len {
            return Err(ControlError::Invalid(format!(
                "only {} of its {} bytes were captured (--max-capture): it can be forwarded or dropped, not edited",
                view.payload.len(),
                view.len
            )));
        }
        if view.opcode == Opcode::Text && !as_bytes && std::str::from_utf8(payload).is_err() {
            return Err(ControlError::Invalid(
                "the edit is not valid UTF-8, which a text message must be (send it as bytes to send it anyway)".into(),
            ));
        }
        if view.opcode.is_control() && payload.len() > 125 {
            return Err(ControlError::Invalid(format!(
                "a {} carries at most 125 bytes, not {}",
                view.opcode.name(),
                payload.len()
            )));
        }
        if view.opcode == Opcode::Close && !as_bytes {
            check_close(payload)?;
        }
        Ok(())
    }
}

/// Whether `payload` is a close frame's payload an endpoint may send: empty, or a code
/// it may send and a UTF-8 reason (RFC 6455 section 5.5.1).
fn check_close(payload: &[u8]) -> Result<(), ControlError> {
    match payload {
        [] => Ok(()),
        [_] => Err(ControlError::Invalid(
            "a close payload is empty or a two-byte code and a reason, not one byte".into(),
        )),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !wstap_wire::close::is_sendable_close_code(code) {
                return Err(ControlError::Invalid(format!(
                    "{code} is not a close code an endpoint may send (send as bytes to send it anyway)"
                )));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(ControlError::Invalid(
                    "a close reason must be UTF-8 (send as bytes to send it anyway)".into(),
                ));
            }
            Ok(())
        }
    }
}
