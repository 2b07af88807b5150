//! After a `101`: the WebSocket relay, and the session's end.
//!
//! Every decision about the bytes (forwarding, `--strict`, the close frames wstap sends
//! at shutdown) is the relay core's ([`wstap_relay`]); this module configures it from the
//! handshake and the proxy's settings, runs it through the drive loop, and turns how it
//! ended into the session's record.

use crate::io::{Client, Upstream};
use crate::relay::drive;
use crate::session::{Ending, Session};
use crate::stage::Stage;
use std::future::Future;
use wstap_control::SessionInfo;
use wstap_relay::{CutOff, EndReason, RelayConfig, RelayEnd, Side};
use wstap_trace::convert::violation_text;
use wstap_trace::{
    CutFrame, Initiator, Outcome, PerDirection, SessionClose, SessionKind, Withheld,
};
use wstap_wire::handshake::HandshakeAnalysis;
use wstap_wire::{AnalyzerConfig, PartialFrame};

/// Relays frames between `client` and `upstream` until the connection ends, recording
/// every frame and message, then records the session's end. (Not an `async fn`, so the
/// handshake's analysis is not kept for the session's life: only the relay's settings.)
pub(crate) fn relay(
    session: Session,
    client: Client,
    upstream: Upstream,
    analysis: Box<HandshakeAnalysis>,
    info: Option<Box<SessionInfo>>,
) -> impl Future<Output = Stage> + Send {
    let config = RelayConfig {
        websocket: Some(AnalyzerConfig {
            max_frame_capture: session.shared.config.max_capture,
            max_message_capture: session.shared.config.max_capture,
            deflate: analysis.deflate,
            other_extension_bits: analysis.other_extension_bits,
        }),
        strict: session.shared.config.strict,
        strict_grace: Some(super::SHUTDOWN_GRACE),
    };
    drop(analysis);
    // Commands reach the session through the registry from here on.
    let enrolled = match (&session.shared.config.control, info) {
        (Some(control), Some(info)) => Some(control.enrol(*info)),
        _ => None,
    };
    async move {
        let end = drive(config, client, upstream, &session, enrolled).await;
        let (outcome, ending) = ending(end);
        session.end(outcome, SessionKind::WebSocket, ending).await;
        Stage::Done
    }
}

/// The session's record of how its relay ended.
fn ending(end: RelayEnd) -> (Outcome, Ending) {
    let withheld = match &end.reason {
        EndReason::Strict {
            from,
            offence,
            withheld,
            ..
        } => Some(Withheld {
            dir: *from,
            frame: offence.index,
            bytes: *withheld,
            whole_frame: offence.begins_in_chunk,
        }),
        _ => None,
    };
    let outcome = if end.clean {
        Outcome::Closed
    } else {
        Outcome::Aborted
    };
    let ending = Ending {
        close: end.first_close.as_ref().map(|first| SessionClose {
            initiator: match first.by {
                Side::Client => Initiator::Client,
                Side::Server => Initiator::Server,
            },
            code: first.code,
            reason: first.reason.clone(),
        }),
        frames: PerDirection {
            c2s: end.frames[0],
            s2c: end.frames[1],
        },
        bytes: PerDirection {
            c2s: end.bytes[0],
            s2c: end.bytes[1],
        },
        error: end.error(),
        cut_frames: end.cut_off.into_iter().map(cut_frame).collect(),
        withheld,
    };
    (outcome, ending)
}

fn cut_frame(cut: CutOff) -> CutFrame {
    let CutOff {
        direction: dir,
        index,
        partial,
    } = cut;
    match partial {
        PartialFrame::Header { received, needed } => CutFrame {
            dir,
            index,
            header_received: received,
            header_len: needed,
            payload_received: 0,
            payload_len: None,
            violations: Vec::new(),
        },
        PartialFrame::Payload {
            header,
            received,
            violations,
        } => CutFrame {
            dir,
            index,
            header_received: usize::from(header.header_len()),
            header_len: usize::from(header.header_len()),
            payload_received: received,
            payload_len: Some(header.payload_len()),
            violations: violations.iter().map(violation_text).collect(),
        },
    }
}
