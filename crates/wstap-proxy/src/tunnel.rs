//! `CONNECT host:port`: a tunnel, and a look at its first bytes.
//!
//! The proxy dials the target before answering `200`, so an unreachable target gets a 502
//! with the reason. Then it waits for whichever side speaks first:
//! - the client sends an HTTP request: the tunnel carries HTTP, served by the same loop as
//!   proxy requests (WebSocket upgrades included), always to the tunnel's target;
//! - the client sends a TLS ClientHello: intercepted ([`crate::mitm`]) unless
//!   interception is off or `--ignore-hosts` matches the target, then relayed blind;
//! - anything else, or the server speaking first: a blind tunnel, bytes counted.

use crate::conn::{Mode, Stage};
use crate::exchange::{Client, Upstream};
use crate::guard::is_self;
use crate::head::Head;
use crate::io::Incoming;
use crate::relay::{legs, relay_both};
use crate::respond::CONNECT_ESTABLISHED;
use crate::session::{Ending, Session};
use crate::upstream::{connect, parse_authority};
use tokio::io::AsyncWriteExt;
use wstap_trace::{Outcome, PerDirection, Via};

/// What the first client bytes in a tunnel look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// An HTTP/1 request line.
    Http,
    /// A TLS handshake record.
    Tls,
    /// Something else.
    Other,
}

/// Classifies the first bytes, or `None` when more are needed to tell.
pub fn classify(bytes: &[u8]) -> Option<Protocol> {
    match bytes {
        [] => None,
        [0x16] => None,
        [0x16, 0x03, ..] => Some(Protocol::Tls),
        _ => {
            for (i, &b) in bytes.iter().enumerate().take(24) {
                match b {
                    b'A'..=b'Z' => continue,
                    b' ' if i > 0 => return Some(Protocol::Http),
                    _ => return Some(Protocol::Other),
                }
            }
            (bytes.len() >= 24).then_some(Protocol::Other)
        }
    }
}

/// Handles a CONNECT request on `client`.
pub async fn handle_connect(mut session: Session, mut client: Client, head: Head) -> Stage {
    let connect_timeout = session.shared.config.connect_timeout;
    let target = match parse_authority(&head.target) {
        Ok(target) => target,
        Err(why) => {
            session.announce(&head.target, Via::Connect, false).await;
            fail(session, client, &head, 400, why).await;
            return Stage::Done;
        }
    };
    let label = target.to_string();
    if is_self(&target, &session.shared.listening) {
        session.announce(&label, Via::Connect, false).await;
        let why = format!("{label} is wstap itself: tunnelling to it would loop");
        fail(session, client, &head, 508, why).await;
        return Stage::Done;
    }
    let stream = match connect(&target, connect_timeout).await {
        Ok(stream) => stream,
        Err(why) => {
            session.announce(&label, Via::Connect, false).await;
            fail(session, client, &head, 502, why).await;
            return Stage::Done;
        }
    };
    let mut upstream = Upstream::from_tcp(target.clone(), stream);
    let answered =
        client.out.write_all(CONNECT_ESTABLISHED).await.is_ok() && client.out.flush().await.is_ok();
    if !answered {
        session.announce(&label, Via::Connect, false).await;
        session
            .end(Outcome::Aborted, "tunnel", Ending::default())
            .await;
        return Stage::Done;
    }

    let protocol = tokio::select! {
        sniffed = sniff(&mut client.incoming) => sniffed,
        // The server spoke first: not HTTP, relay blind.
        _ = upstream.incoming.fill() => Some(Protocol::Other),
    };
    let interceptor = session
        .shared
        .tls
        .clone()
        .filter(|tls| !tls.ignores(&label));
    if let (Some(Protocol::Tls), Some(tls)) = (protocol, interceptor) {
        return Stage::Intercept {
            session,
            client,
            upstream,
            target,
            tls,
        };
    }
    session.announce(&label, Via::Connect, false).await;
    let kind = match protocol {
        Some(Protocol::Http) => {
            return Stage::Http {
                session,
                client,
                mode: Mode::Tunnel { target, tls: false },
                upstream: Some(upstream),
            };
        }
        Some(Protocol::Tls) => "tls-tunnel",
        Some(Protocol::Other) => "tunnel",
        None => {
            session
                .end(Outcome::Closed, "tunnel", Ending::default())
                .await;
            return Stage::Done;
        }
    };
    Stage::Blind {
        session,
        client,
        upstream,
        kind,
    }
}

/// Reads until the first bytes can be classified; `None` when the client closed first.
async fn sniff(incoming: &mut Incoming) -> Option<Protocol> {
    loop {
        if let Some(protocol) = classify(&incoming.buf) {
            return Some(protocol);
        }
        match incoming.fill().await {
            Ok(0) | Err(_) if incoming.buf.is_empty() => return None,
            Ok(0) | Err(_) => return Some(Protocol::Other),
            Ok(_) => {}
        }
    }
}

async fn fail(session: Session, mut client: Client, head: &Head, status: u16, why: String) {
    let target = head.target.as_str();
    session
        .answer_and_end(
            &mut client.out,
            (status, &why),
            &[],
            target,
            Some(head),
            "tunnel",
        )
        .await;
}

/// Relays bytes both ways without looking at them, and records the counts.
pub async fn blind(session: Session, client: Client, upstream: Upstream, kind: &str) {
    let (mut c2s, mut s2c) = legs(client, upstream);
    let closing = Some(session.shared.closing.clone());
    let end = relay_both(
        &mut c2s,
        &mut s2c,
        None,
        None,
        session.bus(),
        closing,
        false,
    )
    .await;
    let clean = end.c2s.as_ref().is_some_and(|e| !e.is_error())
        && end.s2c.as_ref().is_some_and(|e| !e.is_error());
    let ending = Ending {
        bytes: PerDirection {
            c2s: end.c2s_bytes,
            s2c: end.s2c_bytes,
        },
        ..Ending::default()
    };
    let outcome = if clean {
        Outcome::Closed
    } else {
        Outcome::Aborted
    };
    session.end(outcome, kind, ending).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_first_bytes() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http));
        assert_eq!(classify(b"GE"), None);
        assert_eq!(classify(b"\x16\x03\x01\x02\x00"), Some(Protocol::Tls));
        assert_eq!(classify(b"\x16"), None);
        assert_eq!(classify(b"SSH-2.0-OpenSSH"), Some(Protocol::Other));
        assert_eq!(classify(b"\x00\x01"), Some(Protocol::Other));
    }
}
