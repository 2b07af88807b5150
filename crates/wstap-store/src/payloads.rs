//! The payload file: bytes too large to keep inline in the database, appended raw, each
//! referenced from its row by offset and length.
//!
//! SQLite's write-ahead log writes every byte twice (to the log, then to the database at
//! the checkpoint), and a 16 KiB BLOB costs more than its bytes in page overhead. Large
//! payloads therefore go here once, in big sequential writes; rows keep the offset. The
//! writer flushes this file before it commits the rows that point into it, so a committed
//! row never refers to bytes that are not in the file.

use crate::StoreError;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How much the writer buffers before writing to the file.
const BUFFER: usize = 1 << 20;

/// Appends payloads.
pub(crate) struct PayloadWriter {
    out: BufWriter<File>,
    len: u64,
    path: PathBuf,
}

impl PayloadWriter {
    /// Creates (or continues) the payload file at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| StoreError::io(path, e))?;
        let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
        Ok(PayloadWriter {
            out: BufWriter::with_capacity(BUFFER, file),
            len,
            path: path.to_owned(),
        })
    }

    /// Appends `bytes`; returns their offset.
    pub fn append(&mut self, bytes: &[u8]) -> Result<u64, StoreError> {
        let at = self.len;
        self.out
            .write_all(bytes)
            .map_err(|e| StoreError::io(&self.path, e))?;
        self.len += bytes.len() as u64;
        Ok(at)
    }

    /// Hands everything appended to the operating system.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        self.out.flush().map_err(|e| StoreError::io(&self.path, e))
    }
}

/// Reads payloads, for any number of readers at once (positioned reads).
#[derive(Debug)]
pub(crate) struct PayloadReader {
    file: Option<File>,
    /// The last read, for the same row asked for again (a JSON test reads it thrice).
    last: Mutex<Option<(u64, usize, Vec<u8>)>>,
}

impl PayloadReader {
    /// Opens the payload file at `path`; a capture without one reads as empty payloads.
    pub fn open(path: &Path) -> Self {
        PayloadReader {
            file: File::open(path).ok(),
            last: Mutex::new(None),
        }
    }

    /// `len` bytes at `at`; fewer when the file ends sooner (a capture cut short by a
    /// crash before the payloads reached the disk).
    pub fn read(&self, at: u64, len: usize) -> Vec<u8> {
        if let Ok(last) = self.last.lock() {
            if let Some((last_at, last_len, bytes)) = last.as_ref() {
                if *last_at == at && *last_len == len {
                    return bytes.clone();
                }
            }
        }
        let mut bytes = vec![0u8; len];
        let read = self.read_into(at, &mut bytes);
        bytes.truncate(read);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((at, len, bytes.clone()));
        }
        bytes
    }

    #[cfg(unix)]
    fn read_into(&self, at: u64, buf: &mut [u8]) -> usize {
        use std::os::unix::fs::FileExt;
        let Some(file) = &self.file else { return 0 };
        let mut done = 0;
        while done < buf.len() {
            match file.read_at(&mut buf[done..], at + done as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => done += n,
            }
        }
        done
    }

    #[cfg(not(unix))]
    fn read_into(&self, _at: u64, _buf: &mut [u8]) -> usize {
        0
    }
}
