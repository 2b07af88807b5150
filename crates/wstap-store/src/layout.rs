//! A capture on disk: one folder, to copy and share as it is.
//!
//! ```text
//! <capture>/capture.db      the SQLite database (with capture.db-wal and -shm while open)
//! <capture>/payloads.bin    payload bytes too large to keep inline, appended, raw
//! <capture>/writer.lock     held (flock) by the one process writing the capture
//! ```

use crate::StoreError;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// The database's file name.
pub const DATABASE: &str = "capture.db";
/// The payload file's name.
pub const PAYLOADS: &str = "payloads.bin";
/// The writer's lock file.
pub const LOCK: &str = "writer.lock";

/// The database of the capture at `dir`.
pub fn database(dir: &Path) -> PathBuf {
    dir.join(DATABASE)
}

/// Whether `dir` looks like a capture (it holds a database file).
pub fn is_capture(dir: &Path) -> bool {
    database(dir).is_file()
}

/// The writer's claim on a capture: an exclusive `flock` held as long as this lives.
#[derive(Debug)]
pub(crate) struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock of the capture at `dir`, or says who has it.
    pub fn take(dir: &Path) -> Result<WriterLock, StoreError> {
        let path = dir.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        if !try_lock(&file) {
            return Err(StoreError::InUse {
                path: dir.to_owned(),
            });
        }
        Ok(WriterLock { _file: file })
    }
}

/// Whether a writer holds the capture at `dir` now.
pub fn is_being_written(dir: &Path) -> bool {
    match File::open(dir.join(LOCK)) {
        // The lock is released when its holder exits, however it exits.
        Ok(file) => !try_lock(&file),
        Err(_) => false,
    }
}

#[cfg(unix)]
fn try_lock(file: &File) -> bool {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor this File owns; the lock goes when the File closes.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> bool {
    true
}
