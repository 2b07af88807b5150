//! The web inspector as the binary starts it: where it listens, and what wstap says about
//! it. The default address is a convenience: when it is taken (another wstap runs), wstap
//! says so and goes on without an inspector; an address the user chose must work.

use crate::AppError;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use wstap_inspector::{Inspector, InspectorConfig, InspectorError, LiveFeed};

/// Where the inspector listens unless told otherwise.
pub const DEFAULT_WEB: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8889);

/// Starts the inspector over `capture` at `chosen` (or the default address); `live` and
/// `control` when a proxy runs.
pub fn start(
    chosen: Option<SocketAddr>,
    capture: &Path,
    live: Option<LiveFeed>,
    control: Option<wstap_control::Control>,
    replayer: Option<wstap_inspector::Replayer>,
) -> Result<Option<Inspector>, AppError> {
    let listen = chosen.unwrap_or(DEFAULT_WEB);
    if !listen.ip().is_loopback() {
        eprintln!(
            "wstap: WARNING: the inspector listens on {listen}: anyone who can reach it and has its token sees everything wstap records"
        );
    }
    let config = InspectorConfig {
        listen,
        capture: capture.to_owned(),
        live,
        control,
        replayer,
    };
    match wstap_inspector::start(config) {
        Ok(inspector) => Ok(Some(inspector)),
        Err(InspectorError::Listen { addr, source }) if chosen.is_none() => {
            eprintln!("wstap: no inspector: cannot listen on {addr} ({source}); pass --web ADDR to serve it elsewhere");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The line that tells where the inspector is.
pub fn announce(inspector: &Inspector) {
    eprintln!("wstap: inspector: {}", inspector.url());
}
