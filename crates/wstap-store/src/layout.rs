//! A capture on disk: one folder, to copy and share as it is.
//!
//! ```text
//! <capture>/capture.db      the SQLite database (with capture.db-wal and -shm while open)
//! <capture>/payloads-000000.bin, payloads-000001.bin, ...
//!                           payload bytes too large to keep inline, appended, raw, in
//!                           segments (one payloads.bin before schema 5)
//! <capture>/writer.lock     held (flock) by the one process writing the capture
//! ```

use crate::StoreError;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// The database's file name.
pub const DATABASE: &str = "capture.db";
/// The payload file's name, in captures before schema 5.
pub const PAYLOADS: &str = "payloads.bin";
/// The payload segment files' names (`payloads-000000.bin`, ...), as the capture records
/// them.
pub const PAYLOAD_SEGMENTS: &str = "payloads-NNNNNN.bin";
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

/// Bytes free for an unprivileged writer on the file system that holds `path`.
#[cfg(unix)]
pub fn free_space(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `name` is a NUL-terminated path and `stats` a buffer statvfs fills in; it is
    // read only when the call says it succeeded.
    let done = unsafe { libc::statvfs(name.as_ptr(), stats.as_mut_ptr()) };
    if done != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded, so it filled `stats` in.
    let stats = unsafe { stats.assume_init() };
    // The fields' types differ between platforms (u64 on Linux, u32 elsewhere).
    #[allow(clippy::unnecessary_cast)]
    Some((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// Bytes free on the file system that holds `path` (unknown off Unix).
#[cfg(not(unix))]
pub fn free_space(_path: &Path) -> Option<u64> {
    None
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
