//! wstap's web inspector: a page, served by wstap itself on a loopback listener of its
//! own, over the capture store, live while the capture is written.
//!
//! The server ([`start`]) answers the page and its modules (embedded, see `static/`),
//! a JSON API over the capture (`docs/inspector.md`), and a live feed of server-sent
//! events fed by the capture writer's commits ([`LiveFeed`]). Every request needs the
//! run's token and a `Host` naming the listener; anything with a foreign `Origin` is
//! refused. The browser holds only what is on screen: the server pages by index over
//! keyset queries, and sends what changed, never everything again.
#![deny(missing_docs)]

mod api;
mod assets;
mod commands;
mod guard;
mod live;
mod query;
mod replay;
mod reply;
mod selection;
mod server;
mod store;
mod views;

pub use live::LiveFeed;
pub use replay::{ReplayError, ReplayRequest, Replayer, Replaying};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// What the inspector serves, and where.
#[derive(Debug, Clone)]
pub struct InspectorConfig {
    /// The address to listen on (`127.0.0.1:8889` by default in the binary).
    pub listen: SocketAddr,
    /// The capture to show.
    pub capture: PathBuf,
    /// Its writer's commits, when it is being written.
    pub live: Option<LiveFeed>,
    /// The running proxy's registry of live sessions, when there is one: breakpoints,
    /// held messages and commands.
    pub control: Option<wstap_control::Control>,
    /// Plays a recorded session again and compares (the page's *Replay*), when the
    /// binary can.
    pub replayer: Option<Replayer>,
}

/// Why the inspector could not start.
#[derive(Debug, thiserror::Error)]
pub enum InspectorError {
    /// The listener could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The capture could not be opened.
    #[error(transparent)]
    Capture(#[from] wstap_store::StoreError),
    /// No randomness for the token.
    #[error("cannot make a token: {0}")]
    Token(getrandom::Error),
    /// Its thread or runtime could not start.
    #[error("cannot start: {0}")]
    Runtime(std::io::Error),
}

/// A running inspector.
#[derive(Debug)]
pub struct Inspector {
    addr: SocketAddr,
    token: String,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Inspector {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token every request must carry.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The address to open in a browser, token included.
    pub fn url(&self) -> String {
        format!("http://{}/?token={}", self.addr, self.token)
    }

    /// Stops listening, lets answers in flight finish (the live feed says `end`), and
    /// waits for the inspector's thread.
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the inspector on a thread of its own, with a runtime of its own, at a lower
/// priority than the relay: a page that reads a lot takes the CPU the relay leaves, not
/// the relay's. Returns once it listens.
pub fn start(config: InspectorConfig) -> Result<Inspector, InspectorError> {
    let store = store::Store::open(config.capture)?;
    let listen_error = |source| InspectorError::Listen {
        addr: config.listen,
        source,
    };
    let listener = std::net::TcpListener::bind(config.listen).map_err(listen_error)?;
    listener.set_nonblocking(true).map_err(listen_error)?;
    let addr = listener.local_addr().map_err(listen_error)?;
    let token = guard::new_token().map_err(InspectorError::Token)?;
    let (stop, stopped) = watch::channel(false);
    let served = Arc::new(server::Served {
        guard: guard::Guard::new(addr, token.clone()),
        api: api::Api {
            store: Arc::clone(&store),
            selections: Arc::default(),
            live: config.live.is_some(),
        },
        commands: commands::Commands {
            control: config.control,
            replayer: config.replayer,
            store,
        },
        feed: config.live,
        stop: stopped.clone(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("wstap-inspector")
        .max_blocking_threads(4)
        .build()
        .map_err(InspectorError::Runtime)?;
    let thread = std::thread::Builder::new()
        .name("wstap-inspector".into())
        .spawn(move || {
            wstap_bus::yield_to_relay();
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => server::serve(listener, served, stopped).await,
                    Err(e) => eprintln!("wstap: the inspector cannot listen: {e}"),
                }
            });
        })
        .map_err(InspectorError::Runtime)?;
    Ok(Inspector {
        addr,
        token,
        stop,
        thread: Some(thread),
    })
}
