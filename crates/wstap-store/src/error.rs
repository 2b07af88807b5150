//! What can go wrong with a capture.

use std::path::{Path, PathBuf};

/// Why a capture could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("capture database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file of the capture could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The path is not a wstap capture (or an NDJSON trace, where one is accepted).
    #[error("{path} is not a wstap capture: {why}")]
    NotACapture {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        why: String,
    },
    /// The capture was written by a newer wstap.
    #[error("{path} has schema version {found}; this wstap reads version {known} (upgrade wstap to read it)")]
    NewerSchema {
        /// The capture.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The version this crate knows.
        known: i64,
    },
    /// Another process is writing the capture.
    #[error("{path} is being written by another wstap")]
    InUse {
        /// The capture.
        path: PathBuf,
    },
    /// A capture of an older wstap could not be brought to this version.
    #[error(
        "{path} was written by an older wstap (capture schema version {found}) and could not be brought up to date: {why}"
    )]
    Migration {
        /// The capture.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// What failed.
        why: String,
    },
    /// A capture that cannot take more sessions.
    #[error("{path} cannot take more sessions: {why}")]
    CannotAppend {
        /// The capture.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The path holds something already: a new capture needs a new folder.
    #[error("{path} exists and is not empty: a new capture needs a new folder")]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// An export could not be made.
    #[error(transparent)]
    Export(crate::export::ExportError),
    /// The records alone outgrew the capture's bound: recording stopped.
    #[error(
        "the capture's records alone reached its bound of {} (--capture-max): it stopped recording, and keeps what it has",
        crate::bound::size_text(*bound)
    )]
    Full {
        /// The bound, bytes.
        bound: u64,
    },
    /// A stored event does not read back.
    #[error("capture row {table}#{id}: {why}")]
    BadRow {
        /// The table.
        table: &'static str,
        /// The row.
        id: i64,
        /// Why.
        why: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn not_a_capture(path: &Path, why: &str) -> Self {
        StoreError::NotACapture {
            path: path.to_owned(),
            why: why.to_owned(),
        }
    }
}
