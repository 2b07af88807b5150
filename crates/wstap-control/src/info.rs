//! What breakpoints know of a live session: the facts the filter language names, fixed
//! once its handshake is done.

use wstap_filter::{SessionFacts, State};

/// A live WebSocket session, as its breakpoints see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session number.
    pub id: u64,
    /// The upstream host.
    pub host: String,
    /// The upstream port.
    pub port: u16,
    /// The handshake's URL.
    pub url: String,
    /// Its path and query.
    pub path: String,
    /// The client's address.
    pub client: String,
    /// The subprotocol chosen.
    pub subprotocol: Option<String>,
    /// The extensions accepted, as the filter language has them (`" name name "`).
    pub extension_names: String,
    /// Whether wstap terminated TLS.
    pub tls: bool,
    /// The handshake's status.
    pub status: Option<u16>,
    /// When the session began, µs since the epoch.
    pub started_us: i64,
}

impl SessionInfo {
    /// The facts, for a filter: an open session, no violations counted.
    pub fn facts(&self) -> SessionFacts<'_> {
        SessionFacts {
            id: self.id,
            host: &self.host,
            port: self.port,
            url: &self.url,
            path: &self.path,
            client: &self.client,
            subprotocol: self.subprotocol.as_deref(),
            extension_names: &self.extension_names,
            tls: self.tls,
            status: self.status,
            state: State::Open,
            kind: None,
            close: None,
            started_us: self.started_us,
            violations: 0,
        }
    }
}
