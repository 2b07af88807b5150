//! `CONNECT host:port`: a tunnel, and a look at its first bytes.
//!
//! The proxy dials the target before answering `200`, so an unreachable target gets a 502
//! with the reason. Then it waits for whichever side speaks first:
//! - the client sends an HTTP request: the tunnel carries HTTP, served by the same request
//!   stage as the proxy's port (WebSocket upgrades included), always to the tunnel's target;
//! - the client sends a TLS ClientHello: intercepted (`crate::tls`) unless
//!   interception is off or `--ignore-hosts` matches the target, then relayed blind;
//! - anything else, or the server speaking first: a blind relay, bytes counted.

use crate::error::SessionError;
use crate::guard::is_self;
use crate::head::Request;
use crate::io::{Client, Incoming, Upstream};
use crate::respond::CONNECT_ESTABLISHED;
use crate::session::{Ending, Session};
use crate::stage::{Requests, Scope, Stage};
use crate::target::{parse_authority, Target};
use crate::upstream::connect;
use tokio::io::AsyncWriteExt;
use wstap_trace::{Outcome, SessionKind, Via};

/// What the first client bytes in a tunnel look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// An HTTP/1 request line.
    Http,
    /// A TLS handshake record.
    Tls,
    /// Something else.
    Other,
}

/// Classifies the first bytes, or `None` when more are needed to tell.
fn classify(bytes: &[u8]) -> Option<Protocol> {
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

/// Opens the tunnel `head` asks for and returns the stage its first bytes call for.
pub(crate) async fn handle(mut session: Session, mut client: Client, head: Request) -> Stage {
    let (target, upstream) = match open(&mut session, &head).await {
        Ok(opened) => opened,
        Err(error) => {
            session.note_target(head.target(), Via::Connect, false);
            let url = head.target().to_owned();
            let kind = SessionKind::Tunnel;
            session
                .refuse(&mut client.out, error, Some(&head), &url, kind)
                .await;
            return Stage::Done;
        }
    };
    let label = target.to_string();
    let answered =
        client.out.write_all(CONNECT_ESTABLISHED).await.is_ok() && client.out.flush().await.is_ok();
    if !answered {
        session.note_target(label, Via::Connect, false);
        let kind = SessionKind::Tunnel;
        session.end(Outcome::Aborted, kind, Ending::default()).await;
        return Stage::Done;
    }
    first_stage(session, client, upstream, target).await
}

/// The stage an open tunnel's first bytes call for (a tunnel its client was told is
/// open: by `200` here, or by SOCKS5).
pub(crate) async fn first_stage(
    session: Session,
    mut client: Client,
    mut upstream: Upstream,
    target: Target,
) -> Stage {
    let protocol = tokio::select! {
        sniffed = sniff(&mut client.incoming) => sniffed,
        // The server spoke first: not HTTP, relay blind.
        _ = upstream.incoming.fill() => Some(Protocol::Other),
    };
    next_stage(session, client, upstream, target, protocol).await
}

/// The stage for a tunnel whose first bytes look like `protocol` (`None`: the client
/// closed before sending any).
async fn next_stage(
    mut session: Session,
    client: Client,
    upstream: Upstream,
    target: Target,
    protocol: Option<Protocol>,
) -> Stage {
    let label = target.to_string();
    let interceptor = session
        .shared
        .tls
        .clone()
        .filter(|tls| !tls.ignores(&label));
    if let (Some(Protocol::Tls), Some(tls)) = (protocol, interceptor) {
        return Stage::InterceptTls {
            session,
            client,
            upstream,
            tls,
        };
    }
    let via = session.tunnel_via;
    session.note_target(label.as_str(), via, false);
    let kind = match protocol {
        Some(Protocol::Http) => {
            return Stage::Requests(Requests {
                session,
                client,
                scope: Scope::Tunnel { target, tls: false },
                upstream: Some(upstream),
                served: 0,
            });
        }
        Some(Protocol::Tls) => SessionKind::TlsTunnel,
        Some(Protocol::Other) => SessionKind::Tunnel,
        None => {
            let kind = SessionKind::Tunnel;
            session.end(Outcome::Closed, kind, Ending::default()).await;
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

/// Checks the CONNECT target and connects to it.
async fn open(session: &mut Session, head: &Request) -> Result<(Target, Upstream), SessionError> {
    let target = parse_authority(head.target()).map_err(SessionError::BadRequest)?;
    if is_self(&target, &session.shared.listening) {
        return Err(SessionError::Loop {
            target,
            tunnel: true,
        });
    }
    let config = &session.shared.config;
    let (stream, parent) = connect(
        &target,
        config.connect_timeout,
        config.upstream_proxy.as_ref(),
    )
    .await?;
    session.note_upstream(parent, None);
    let upstream = Upstream::from_tcp(target.clone(), stream);
    Ok((target, upstream))
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
