//! Listening sockets, accepted connections, and stopping.
//!
//! Each listen address gets an accept loop; each accepted connection a task of its own,
//! so one broken session never affects another. [`RunningProxy::shutdown`] stops
//! accepting, gives open sessions a grace period, then drops what is left.

use crate::conn::{serve, turn_away};
use crate::session::{Session, Shared};
use crate::{ProxyConfig, ProxyError};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use wstap_bus::EventBus;

/// A proxy that is accepting connections.
#[derive(Debug)]
pub struct RunningProxy {
    addrs: Vec<SocketAddr>,
    socks_addrs: Vec<SocketAddr>,
    tls: Option<Arc<crate::mitm::Interceptor>>,
    stop: watch::Sender<Option<Duration>>,
    shared: Arc<Shared>,
    loops: Vec<JoinHandle<()>>,
}

impl RunningProxy {
    /// The CA in use, when TLS interception is on.
    pub fn ca(&self) -> Option<Arc<crate::mitm::ca::CertificateAuthority>> {
        self.tls.as_ref().map(|t| Arc::clone(&t.ca))
    }

    /// How many leaf certificates were signed so far (0 without interception).
    pub fn certificates_issued(&self) -> u64 {
        self.tls.as_ref().map_or(0, |t| t.certificates_issued())
    }

    /// The bound addresses (with real ports when port 0 was asked for).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The addresses the SOCKS5 listeners are bound to.
    pub fn socks_addrs(&self) -> &[SocketAddr] {
        &self.socks_addrs
    }

    /// Stops accepting, lets open sessions run for up to `grace`, then tells the rest to
    /// close (WebSocket relays send 1001 to both sides) and record their end; whatever has
    /// not finished a few seconds later is dropped. Returns once every session task is
    /// gone, so the bus has no more publishers.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(Some(grace));
        for task in self.loops {
            let _ = task.await;
        }
    }

    /// Sessions started so far (session numbers handed out).
    pub fn sessions_started(&self) -> u64 {
        self.shared.sessions_started()
    }
}

/// Pending connections the kernel queues per listener (as `TcpListener::bind` does).
const BACKLOG: u32 = 1024;

/// Binds every listen address of `config` and starts accepting; events go to `bus`.
///
/// The addresses are bound first, so a taken port fails before anything else happens,
/// but they listen only once the CA is loaded: whoever can connect can use the proxy at
/// once, CA file included.
pub async fn start(config: ProxyConfig, bus: EventBus) -> Result<RunningProxy, ProxyError> {
    let mut sockets = Vec::new();
    let http = config.listen.iter().map(|&addr| (addr, Protocol::Http));
    let socks = config.socks5.iter().map(|&addr| (addr, Protocol::Socks5));
    for (addr, protocol) in http.chain(socks) {
        sockets.push((
            addr,
            protocol,
            bind(addr).map_err(|source| ProxyError::Bind { addr, source })?,
        ));
    }
    let tls = match &config.tls {
        Some(tls) => Some(Arc::new(crate::mitm::Interceptor::new(tls)?)),
        None => None,
    };
    let mut listeners = Vec::new();
    for (addr, protocol, socket) in sockets {
        let listening = socket.listen(BACKLOG);
        listeners.push((
            listening.map_err(|source| ProxyError::Bind { addr, source })?,
            protocol,
        ));
    }
    let bound = |wanted: Protocol| -> Vec<SocketAddr> {
        listeners
            .iter()
            .filter(|(_, protocol)| *protocol == wanted)
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    };
    let (addrs, socks_addrs) = (bound(Protocol::Http), bound(Protocol::Socks5));
    // Loop protection knows every listener: a tunnel to any of them is refused.
    let every: Vec<SocketAddr> = addrs.iter().chain(&socks_addrs).copied().collect();
    let (closing, closing_rx) = watch::channel(false);
    let closing = Arc::new(closing);
    let shared = Arc::new(Shared::new(config, bus, tls.clone(), every, closing_rx));
    let (stop, stopped) = watch::channel(None);
    let mut loops = Vec::new();
    for (listener, protocol) in listeners {
        let task = accept_loop(
            listener,
            protocol,
            Arc::clone(&shared),
            stopped.clone(),
            Arc::clone(&closing),
        );
        loops.push(tokio::spawn(task));
    }
    Ok(RunningProxy {
        addrs,
        socks_addrs,
        tls,
        stop,
        shared,
        loops,
    })
}

/// A socket bound to `addr`, not yet listening.
fn bind(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As TcpListener::bind: a restarted proxy can take its port back at once.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// How long sessions told to close get to record their end before they are dropped.
const WRAP_UP: Duration = Duration::from_secs(3);

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// An HTTP proxy.
    Http,
    /// SOCKS5.
    Socks5,
}

async fn accept_loop(
    listener: TcpListener,
    protocol: Protocol,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Option<Duration>>,
    closing: Arc<watch::Sender<bool>>,
) {
    let mut sessions = JoinSet::new();
    let grace = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let open = shared.active.load(Ordering::Relaxed);
                    let session = Session::new(Arc::clone(&shared), peer);
                    if shared.config.max_connections.is_some_and(|max| open >= max) {
                        // Answered outside the session set: it is not a session that counts.
                        tokio::spawn(turn_away(session, stream));
                    } else if protocol == Protocol::Socks5 {
                        sessions.spawn(crate::conn::serve_socks(session, stream));
                    } else {
                        sessions.spawn(serve(session, stream));
                    }
                }
                // Out of file descriptors and the like: wait a moment rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = sessions.join_next() => {}
            changed = stop.changed() => {
                let grace = if changed.is_ok() { *stop.borrow() } else { Some(Duration::ZERO) };
                if let Some(grace) = grace {
                    break grace;
                }
            }
        }
    };
    drop(listener);
    drop(shared);
    let finished = async { while sessions.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(grace, finished).await;
    let _ = closing.send(true);
    let wrapped_up = async { while sessions.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(WRAP_UP, wrapped_up).await;
    sessions.shutdown().await;
}
