//! One accepted client connection, from its first request to the end of its last stage.

use crate::error::SessionError;
use crate::io::{BoxWrite, Client};
use crate::session::{Session, Shared};
use crate::stage::{Requests, Scope, Stage};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpStream;
use wstap_trace::SessionKind;

/// Counts a client connection as open while it lives.
struct Active(Arc<Shared>);

impl Active {
    fn new(shared: &Arc<Shared>) -> Self {
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
    let mut stage = Stage::Requests(Requests {
        session,
        client: Client::from_tcp(stream),
        scope: Scope::Proxy,
        upstream: None,
        served: 0,
    });
    while let Some(running) = stage.run() {
        stage = running.await;
    }
}

/// Serves one connection accepted on a SOCKS5 listener.
pub(crate) async fn serve_socks(session: Session, stream: TcpStream) {
    let _active = Active::new(&session.shared);
    crate::socks::serve(session, stream).await;
}

/// Serves one connection accepted on a reverse listener.
pub(crate) async fn serve_reverse(
    session: Session,
    stream: TcpStream,
    listener: Arc<crate::reverse::ReverseListener>,
) {
    let _active = Active::new(&session.shared);
    crate::reverse::serve(session, stream, listener).await;
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
