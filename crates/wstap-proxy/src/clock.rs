//! The one clock the engine reads: wall time in microseconds, as the wire crate counts it
//! and the trace writes it.

use wstap_wire::Timestamp;

/// The time now.
pub(crate) fn now() -> Timestamp {
    Timestamp(chrono::Utc::now().timestamp_micros())
}
