//! A blind relay: bytes both ways, counted, never looked at. For CONNECT tunnels that carry
//! neither HTTP nor intercepted TLS, and for a `101` to a protocol other than WebSocket.

use crate::io::{Client, Upstream};
use crate::relay::{legs, relay_both};
use crate::session::{Ending, Session};
use crate::stage::Stage;
use wstap_trace::{Outcome, PerDirection, SessionKind};

/// Relays until both sides close (or the proxy stops), then records the counts.
pub(crate) async fn relay(
    session: Session,
    client: Client,
    upstream: Upstream,
    kind: SessionKind,
) -> Stage {
    let (mut c2s, mut s2c) = legs(client, upstream);
    let stop = session.shared.stopping();
    let end = relay_both(&mut c2s, &mut s2c, None, session.bus(), stop).await;
    let ending = Ending {
        bytes: PerDirection {
            c2s: end.c2s_bytes,
            s2c: end.s2c_bytes,
        },
        ..Ending::default()
    };
    let outcome = if end.clean() {
        Outcome::Closed
    } else {
        Outcome::Aborted
    };
    session.end(outcome, kind, ending).await;
    Stage::Done
}
