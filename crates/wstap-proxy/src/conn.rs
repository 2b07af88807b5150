//! One accepted client connection, from its first request to the end of its last stage.

use crate::error::SessionError;
use crate::io::{BoxWrite, Client};
use crate::session::{Session, Shared};
use crate::stage::{Requests, Scope, Stage};
use std::net::SocketAddr;
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
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _active = Active::new(&shared);
    let _ = stream.set_nodelay(true);
    let mut stage = Stage::Requests(Requests {
        session: Session::new(shared, peer),
        client: Client::from_tcp(stream),
        scope: Scope::Proxy,
        upstream: None,
        served: 0,
    });
    while let Some(running) = stage.run() {
        stage = running.await;
    }
}

/// Answers a connection beyond `--max-connections` with 503 and records it.
pub(crate) async fn turn_away(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let (_read, write) = stream.into_split();
    let mut out: BoxWrite = Box::new(write);
    let max = shared.config.max_connections.unwrap_or(0);
    let session = Session::new(shared, peer);
    let error = SessionError::TooManyConnections(max);
    session
        .refuse(&mut out, error, None, "", SessionKind::Http)
        .await;
}
