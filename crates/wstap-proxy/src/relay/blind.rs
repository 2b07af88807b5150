//! A blind relay: bytes both ways, counted, never looked at. For CONNECT tunnels that carry
//! neither HTTP nor intercepted TLS, and for a `101` to a protocol other than WebSocket.

use crate::io::{Client, Upstream};
use crate::relay::drive;
use crate::session::{Ending, Session};
use crate::stage::Stage;
use wstap_relay::RelayConfig;
use wstap_trace::{Outcome, PerDirection, SessionKind};

/// Relays until both sides close (or the proxy stops), then records the counts.
pub(crate) async fn relay(
    session: Session,
    client: Client,
    upstream: Upstream,
    kind: SessionKind,
) -> Stage {
    let end = drive(RelayConfig::default(), client, upstream, &session, None).await;
    let ending = Ending {
        bytes: PerDirection {
            c2s: end.bytes[0],
            s2c: end.bytes[1],
        },
        ..Ending::default()
    };
    let outcome = if end.clean {
        Outcome::Closed
    } else {
        Outcome::Aborted
    };
    session.end(outcome, kind, ending).await;
    Stage::Done
}
