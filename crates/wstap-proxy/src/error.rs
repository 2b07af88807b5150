//! Errors that stop the proxy from starting or running. Problems of single sessions are
//! never errors of the proxy: they are answered (4xx/502) and recorded.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the proxy could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS interception could not be set up (the CA, `--upstream-ca`, `--ignore-hosts`).
    #[error(transparent)]
    Tls(#[from] crate::mitm::TlsSetupError),
    /// The trace file could not be created or written.
    #[error("cannot write the trace file {path}: {source}")]
    Trace {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
