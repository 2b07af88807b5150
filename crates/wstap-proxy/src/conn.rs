//! One accepted client connection, from its first request to the end of its last stage:
//! the one driver of the stages ([`run`]), whichever listener accepted the connection.

use crate::error::SessionError;
use crate::http::{page, requests};
use crate::io::{BoxWrite, Client};
use crate::relay::{blind, websocket};
use crate::session::{Session, Shared};
use crate::stage::{Requests, Scope, Stage};
use crate::{intercept, tunnel};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpStream;
use wstap_trace::SessionKind;

/// Counts a client connection as open while it lives.
pub(crate) struct Active(Arc<Shared>);

impl Active {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        shared.active.fetch_add(1, Ordering::Relaxed);
        Active(Arc::clone(shared))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one accepted connection until it closes: runs its stages one after another.
/// The session was numbered when the connection was accepted, so numbers follow the
/// order in which clients connected.
pub(crate) async fn serve(session: Session, stream: TcpStream) {
    let _active = Active::new(&session.shared);
    let _ = stream.set_nodelay(true);
    run(Stage::Requests(Requests {
        session,
        client: Client::from_tcp(stream),
        scope: Scope::Proxy,
        upstream: None,
        served: 0,
    }))
    .await;
}

/// A running stage. Each step's own future is boxed, never wrapped in another: a wrapper
/// would keep a second copy of the step's arguments for as long as the step runs.
type StageFuture = Pin<Box<dyn Future<Output = Stage> + Send>>;

/// Runs stages one after another until the session is done: the one stage loop. Before
/// each stage the session announces itself, once it knows where it goes: so a relay's
/// first frame comes after it, and a quiet tunnel is seen at once.
pub(crate) async fn run(mut stage: Stage) {
    loop {
        if let Some(session) = stage.session_mut().filter(|s| s.start_is_due()) {
            // Boxed: held in place, announcing would make every stage's loop (a long-lived
            // relay's too) as large as a publication to the bus.
            Box::pin(session.announce()).await;
        }
        let Some(running) = start(stage) else {
            return;
        };
        stage = running.await;
    }
}

/// Starts `stage`'s step; `None` once the session is done.
fn start(stage: Stage) -> Option<StageFuture> {
    Some(match stage {
        Stage::Requests(requests) => Box::pin(requests::next(requests)),
        Stage::Connect {
            session,
            client,
            head,
        } => Box::pin(tunnel::handle(session, client, head)),
        Stage::InterceptTls {
            session,
            client,
            upstream,
            tls,
        } => Box::pin(intercept::intercept(session, client, upstream, tls)),
        Stage::WebSocket {
            session,
            client,
            upstream,
            analysis,
            info,
        } => Box::pin(websocket::relay(session, client, upstream, analysis, info)),
        Stage::Blind {
            session,
            client,
            upstream,
            kind,
        } => Box::pin(blind::relay(session, client, upstream, kind)),
        Stage::Page {
            session,
            client,
            head,
        } => Box::pin(page::serve(session, client, head)),
        Stage::Done => return None,
    })
}

/// Answers a connection beyond `--max-connections` with 503 and records it.
pub(crate) async fn turn_away(session: Session, stream: TcpStream) {
    let (_read, write) = stream.into_split();
    let mut out: BoxWrite = Box::new(write);
    let max = session.shared.config.max_connections.unwrap_or(0);
    let error = SessionError::TooManyConnections(max);
    session
        .refuse(&mut out, error, None, "", SessionKind::Http)
        .await;
}
