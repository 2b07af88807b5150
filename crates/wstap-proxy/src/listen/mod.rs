//! Listening sockets, accepted connections, and stopping.
//!
//! Each listen address gets an accept loop; each accepted connection a task of its own,
//! so one broken session never affects another. [`RunningProxy::shutdown`] stops
//! accepting, gives open sessions a grace period, then drops what is left.

pub(crate) mod reverse;
pub mod socks;

use crate::config::reverse::{ReverseProxy, ReverseTls};
use crate::conn::{run, serve, turn_away, Active};
use crate::listen::reverse::{ListenerTls, ReverseListener};
use crate::session::{Session, Shared};
use crate::{ProxyConfig, ProxyError};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use wstap_bus::EventBus;
use wstap_trace::Via;

/// A proxy that is accepting connections.
#[derive(Debug)]
pub struct RunningProxy {
    addrs: Vec<SocketAddr>,
    socks_addrs: Vec<SocketAddr>,
    reverse_addrs: Vec<(SocketAddr, Arc<ReverseProxy>)>,
    tls: Option<Arc<crate::tls::Interceptor>>,
    stop: watch::Sender<Option<Duration>>,
    shared: Arc<Shared>,
    loops: Vec<JoinHandle<()>>,
}

impl RunningProxy {
    /// The CA in use, when TLS interception is on.
    pub fn ca(&self) -> Option<Arc<crate::tls::ca::CertificateAuthority>> {
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

    /// The reverse listeners: each bound address, with its settings.
    pub fn reverse_listeners(&self) -> impl Iterator<Item = (SocketAddr, &ReverseProxy)> {
        self.reverse_addrs.iter().map(|(addr, r)| (*addr, &**r))
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
    let reverse = config.reverse.iter().enumerate();
    let reverse = reverse.map(|(i, r)| (r.listen, Protocol::Reverse(i)));
    for (addr, protocol) in http.chain(socks).chain(reverse) {
        sockets.push((
            addr,
            protocol,
            bind(addr).map_err(|source| ProxyError::Bind { addr, source })?,
        ));
    }
    let tls = match &config.tls {
        Some(tls) => Some(Arc::new(crate::tls::Interceptor::new(tls)?)),
        None => None,
    };
    let reverse = reverse_listeners(&config.reverse, tls.as_ref())?;
    let mut listeners = Vec::new();
    for (addr, protocol, socket) in sockets {
        let listening = socket.listen(BACKLOG);
        listeners.push((
            listening.map_err(|source| ProxyError::Bind { addr, source })?,
            protocol,
        ));
    }
    let bound = |wanted: fn(&Protocol) -> bool| -> Vec<SocketAddr> {
        listeners
            .iter()
            .filter(|(_, protocol)| wanted(protocol))
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    };
    let addrs = bound(|p| *p == Protocol::Http);
    let socks_addrs = bound(|p| *p == Protocol::Socks5);
    let reverse_addrs = listeners
        .iter()
        .filter_map(|(l, protocol)| match protocol {
            Protocol::Reverse(i) => Some((l.local_addr().ok()?, Arc::clone(&reverse[*i].proxy))),
            _ => None,
        })
        .collect();
    // Loop protection knows every listener: a tunnel to any of them is refused.
    let every: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|(l, _)| l.local_addr().ok())
        .collect();
    let (closing, closing_rx) = watch::channel(false);
    let closing = Arc::new(closing);
    let shared = Arc::new(Shared::new(config, bus, tls.clone(), every, closing_rx));
    let (stop, stopped) = watch::channel(None);
    let mut loops = Vec::new();
    for (listener, protocol) in listeners {
        let serves = match protocol {
            Protocol::Http => Serves::Http,
            Protocol::Socks5 => Serves::Socks5,
            Protocol::Reverse(i) => Serves::Reverse(Arc::clone(&reverse[i])),
        };
        let task = accept_loop(
            listener,
            serves,
            Arc::clone(&shared),
            stopped.clone(),
            Arc::clone(&closing),
        );
        loops.push(tokio::spawn(task));
    }
    Ok(RunningProxy {
        addrs,
        socks_addrs,
        reverse_addrs,
        tls,
        stop,
        shared,
        loops,
    })
}

/// Each reverse listener with the TLS it speaks, checked against what wstap can do: its
/// certificate from the CA, or from its files; TLS to its upstream needs the upstream
/// settings interception brings.
fn reverse_listeners(
    reverse: &[ReverseProxy],
    tls: Option<&Arc<crate::tls::Interceptor>>,
) -> Result<Vec<Arc<ReverseListener>>, ProxyError> {
    let needs = |proxy: &ReverseProxy, needs| ProxyError::ReverseNeedsTls {
        listen: proxy.listen,
        url: proxy.url(),
        needs,
    };
    let mut listeners = Vec::new();
    for proxy in reverse {
        if proxy.upstream_tls() && tls.is_none() {
            return Err(needs(proxy, "speaks TLS to its upstream"));
        }
        let server = match &proxy.tls {
            ReverseTls::Off => None,
            ReverseTls::FromCa => {
                let tls = tls.ok_or_else(|| needs(proxy, "needs a certificate from the CA"))?;
                // Made now, so a host the CA cannot sign for fails at start, not per client.
                tls.server_config(proxy.upstream_host())?;
                Some(ListenerTls::FromCa(Arc::clone(tls)))
            }
            ReverseTls::Files { cert, key } => Some(ListenerTls::Fixed(
                crate::tls::server_config_from_files(cert, key)?,
            )),
        };
        listeners.push(Arc::new(ReverseListener {
            proxy: Arc::new(proxy.clone()),
            tls: server,
        }));
    }
    Ok(listeners)
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

/// What a listen address is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// An HTTP proxy.
    Http,
    /// SOCKS5.
    Socks5,
    /// The reverse listener at this index of the configuration.
    Reverse(usize),
}

/// What an accept loop serves.
enum Serves {
    /// An HTTP proxy.
    Http,
    /// SOCKS5.
    Socks5,
    /// A reverse listener.
    Reverse(Arc<ReverseListener>),
}

impl Serves {
    /// How its clients' tunnels (and sessions that never get further) are recorded.
    fn via(&self) -> Via {
        match self {
            Serves::Http => Via::Connect,
            Serves::Socks5 => Via::Socks5,
            Serves::Reverse(_) => Via::Reverse,
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    serves: Serves,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Option<Duration>>,
    closing: Arc<watch::Sender<bool>>,
) {
    let mut sessions = JoinSet::new();
    // A session records the address it came in on; a listener on port 0 learns its own.
    let Ok(local) = listener.local_addr() else {
        return;
    };
    let grace = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let open = shared.active.load(Ordering::Relaxed);
                    let mut session = Session::new(Arc::clone(&shared), peer, local);
                    session.tunnel_via = serves.via();
                    if shared.config.max_connections.is_some_and(|max| open >= max) {
                        // Answered outside the session set: it is not a session that counts.
                        tokio::spawn(turn_away(session, stream));
                        continue;
                    }
                    match &serves {
                        Serves::Http => sessions.spawn(serve(session, stream)),
                        Serves::Socks5 => sessions.spawn(serve_socks(session, stream)),
                        Serves::Reverse(reverse) => {
                            let reverse = Arc::clone(reverse);
                            sessions.spawn(serve_reverse(session, stream, reverse))
                        }
                    };
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

/// Serves one connection accepted on a SOCKS5 listener: its handshake, then its tunnel.
async fn serve_socks(session: Session, stream: TcpStream) {
    let _active = Active::new(&session.shared);
    if let Some(tunnel) = socks::serve(session, stream).await {
        run(tunnel).await;
    }
}

/// Serves one connection accepted on a reverse listener: its TLS, then its requests.
async fn serve_reverse(session: Session, stream: TcpStream, listener: Arc<ReverseListener>) {
    let _active = Active::new(&session.shared);
    if let Some(requests) = reverse::serve(session, stream, listener).await {
        run(requests).await;
    }
}
