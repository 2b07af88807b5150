//! The inspector's *Replay*: the binary knows how to play a recorded session's client side
//! again (`wstap replay`), so it hands the inspector a [`Replayer`]; the API's
//! `POST /api/sessions/N/replay` runs it and answers with the comparison of the server's
//! answers now with the recording, which the page shows side by side.

use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What the page asks of a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    /// The recorded session.
    pub session: u64,
    /// Each client message as soon as the server has answered the one before as often
    /// as it did in the recording; else at its recorded offset.
    pub fast: bool,
    /// JSON paths the comparison leaves out (`id`, `params.0.ts`).
    pub ignore: Vec<String>,
}

/// Why a replay did not run, on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The session cannot be replayed (not a WebSocket session, nothing recorded): 400.
    #[error("{0}")]
    Refused(String),
    /// It could not be played: the server, the proxy or TLS failed (502).
    #[error("{0}")]
    Failed(String),
}

/// A replay running: the comparison as JSON, or why it did not run.
pub type Replaying = Pin<Box<dyn Future<Output = Result<Value, ReplayError>> + Send>>;

type Run = dyn Fn(ReplayRequest) -> Replaying + Send + Sync;

/// Plays a session again and compares, as whoever made it knows how. Cheap to clone.
#[derive(Clone)]
pub struct Replayer(Arc<Run>);

impl Replayer {
    /// A replayer that runs `run`.
    pub fn new(run: impl Fn(ReplayRequest) -> Replaying + Send + Sync + 'static) -> Replayer {
        Replayer(Arc::new(run))
    }

    pub(crate) async fn replay(&self, request: ReplayRequest) -> Result<Value, ReplayError> {
        (self.0)(request).await
    }
}

impl fmt::Debug for Replayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Replayer")
    }
}
