//! Why a command did not reach, or was not carried out on, a live session.

use wstap_relay::Refused;

/// Why a command was not carried out. The inspector's API answers the first three and
/// `Refused` and `NoRulesSource` with 409 (the state says no), `NoBreakpoint` and
/// `NoRule` with 404 and `Invalid` with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The session is not live: it ended, or it is not a WebSocket relayed by wstap.
    #[error("session {0} is not a live WebSocket session (it ended, or never was one)")]
    NoSession(u64),
    /// The message is not held: decided already, or its session ended.
    #[error("message {0} is not held (it was decided already, or its session ended)")]
    NotHeld(u64),
    /// The session ended before it answered.
    #[error("session {0} ended before it carried the command out")]
    Gone(u64),
    /// The session's relay refused.
    #[error("{0}")]
    Refused(#[from] Refused),
    /// No breakpoint has that number.
    #[error("there is no breakpoint {0}")]
    NoBreakpoint(u64),
    /// No rule has that number.
    #[error("there is no rule {0}")]
    NoRule(u64),
    /// The rules came from no file to read again.
    #[error("wstap was started without --rules: there is no rules file to read again")]
    NoRulesSource,
    /// What was asked for cannot be sent as asked.
    #[error("{0}")]
    Invalid(String),
}
