//! The capture, as the async server reads it: a few read-only connections, used on
//! tokio's blocking threads so that a slow query never stalls the listener.

use crate::reply::ApiError;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use wstap_store::Capture;

/// Connections kept open between requests.
const IDLE_CONNECTIONS: usize = 4;

/// The capture being inspected.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    idle: Mutex<Vec<Capture>>,
}

impl Store {
    /// The capture at `dir`; it is opened (and checked) at once.
    pub fn open(dir: PathBuf) -> Result<Arc<Store>, wstap_store::StoreError> {
        let first = Capture::open(&dir)?;
        Ok(Arc::new(Store {
            dir,
            idle: Mutex::new(vec![first]),
        }))
    }

    /// Runs `read` with a connection, on a blocking thread.
    pub async fn read<T, F>(self: &Arc<Self>, read: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Capture) -> Result<T, ApiError> + Send + 'static,
    {
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let capture = store.take()?;
            let result = read(&capture);
            store.give(capture);
            result
        })
        .await
        .map_err(|_| ApiError::bad_request("the query was cancelled"))?
    }

    fn take(&self) -> Result<Capture, ApiError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(capture) => Ok(capture),
            None => Ok(Capture::open(&self.dir)?),
        }
    }

    fn give(&self, capture: Capture) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(capture);
            }
        }
    }
}
