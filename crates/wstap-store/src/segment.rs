//! Writing one payload segment file, past the page cache where the filesystem allows.
//!
//! A buffered `write` copies every payload byte into the page cache, and under load that
//! copy (and the pages it allocates) was the largest single cost of a capture (the
//! profile in docs/performance.md). With `O_DIRECT` the disk reads the bytes straight from
//! our buffer. It asks for aligned writes: the buffer starts on a [`BLOCK`] boundary in
//! memory, every write starts on one in the file and is a whole number of blocks long.
//! So a flush writes the last, partly filled block padded with zeros, trims the file back
//! to its real length, and keeps that block's bytes at the head of the buffer, to be
//! written again, fuller, at the next flush. What a flush wrote is on the device, as a
//! buffered write's would be in the page cache: a process killed after it loses nothing.
//!
//! A filesystem without `O_DIRECT` refuses it at open (or, where it takes the flag but
//! wants another alignment, the first block written as a probe), and a segment that
//! already holds bytes (a capture taken up again) does not start on a block boundary:
//! both are written through a plain buffered writer instead.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The alignment `O_DIRECT` asks of buffers, offsets and lengths (the largest logical
/// block size in use).
const BLOCK: usize = 4096;

/// An open segment file, appended to.
pub(crate) enum SegmentFile {
    /// Written with `O_DIRECT`.
    Direct(DirectWriter),
    /// Written through the page cache.
    Buffered(BufWriter<File>),
}

impl SegmentFile {
    /// Opens the segment at `path` for appending, with a buffer of `buffer` bytes (a
    /// multiple of [`BLOCK`]).
    pub(crate) fn open(path: &Path, buffer: usize) -> std::io::Result<SegmentFile> {
        let empty = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
        if empty {
            let direct = OpenOptions::new()
                .create(true)
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(path);
            if let Ok(file) = direct {
                // A filesystem may take the flag and still refuse our alignment: try one
                // block before relying on it.
                let probe = DirectWriter::new(file, BLOCK);
                let fits = probe
                    .file
                    .write_all_at(&probe.memory[probe.start..probe.start + BLOCK], 0)
                    .and_then(|()| probe.file.set_len(0));
                if fits.is_ok() {
                    return Ok(SegmentFile::Direct(DirectWriter::new(probe.file, buffer)));
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(SegmentFile::Buffered(BufWriter::with_capacity(
            buffer, file,
        )))
    }

    /// Appends `bytes`.
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            SegmentFile::Direct(direct) => direct.write_all(bytes),
            SegmentFile::Buffered(buffered) => buffered.write_all(bytes),
        }
    }

    /// Hands everything appended to the operating system (to the device, for `Direct`).
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        match self {
            SegmentFile::Direct(direct) => direct.flush(),
            SegmentFile::Buffered(buffered) => buffered.flush(),
        }
    }
}

/// Appends to a file opened with `O_DIRECT`: see the module documentation.
pub(crate) struct DirectWriter {
    file: File,
    /// Room for the window and for aligning it.
    memory: Vec<u8>,
    /// Where the aligned window starts in `memory`.
    start: usize,
    /// The window's length: a multiple of [`BLOCK`].
    capacity: usize,
    /// Bytes of data in the window.
    filled: usize,
    /// The file offset of the window's first byte: a multiple of [`BLOCK`].
    base: u64,
}

impl DirectWriter {
    fn new(file: File, buffer: usize) -> DirectWriter {
        let capacity = buffer.div_ceil(BLOCK).max(1) * BLOCK;
        let memory = vec![0u8; capacity + BLOCK];
        let start = memory.as_ptr().align_offset(BLOCK).min(BLOCK);
        DirectWriter {
            file,
            memory,
            start,
            capacity,
            filled: 0,
            base: 0,
        }
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let room = self.capacity - self.filled;
            let take = room.min(bytes.len());
            let at = self.start + self.filled;
            self.memory[at..at + take].copy_from_slice(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled == self.capacity {
                let window = &self.memory[self.start..self.start + self.capacity];
                self.file.write_all_at(window, self.base)?;
                self.base += self.capacity as u64;
                self.filled = 0;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        let padded = self.filled.div_ceil(BLOCK) * BLOCK;
        let window = self.start..self.start + padded;
        self.memory[self.start + self.filled..window.end].fill(0);
        self.file.write_all_at(&self.memory[window], self.base)?;
        let end = self.base + self.filled as u64;
        if padded != self.filled {
            // The padding is not data: the file ends where the bytes do.
            self.file.set_len(end)?;
        }
        // Whole blocks are done with; a partial last block is written again, fuller.
        let whole = self.filled / BLOCK * BLOCK;
        if whole > 0 {
            let head = self.start + whole..self.start + self.filled;
            self.memory.copy_within(head, self.start);
            self.base += whole as u64;
            self.filled -= whole;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends `chunks` with a flush after each, then reads the file back; says whether
    /// it was written with `O_DIRECT`.
    fn written(name: &str, buffer: usize, chunks: &[Vec<u8>]) -> (Vec<u8>, bool) {
        let dir = std::env::temp_dir().join(format!("wstap-segment-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("payloads-000000.bin");
        let mut file = SegmentFile::open(&path, buffer).unwrap();
        let direct = matches!(file, SegmentFile::Direct(_));
        let mut appended = Vec::new();
        for chunk in chunks {
            file.write_all(chunk).unwrap();
            file.flush().unwrap();
            appended.extend_from_slice(chunk);
            // After each flush the file is what was appended, padding trimmed.
            assert!(std::fs::read(&path).unwrap() == appended, "{name}");
        }
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (bytes, direct)
    }

    #[test]
    fn what_is_appended_and_flushed_is_the_file_whatever_the_chunks() {
        let sizes = [1usize, 4095, 1, 4096, 8191, 3, 70_000, 5, 12_288, 0, 100];
        let chunks: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(n, &size)| (0..size).map(|i| (i * 7 + n) as u8).collect())
            .collect();
        let expected: Vec<u8> = chunks.concat();
        // A window smaller than some chunks, and one larger than all of them.
        for buffer in [8192, 1 << 20] {
            // Direct where the temporary folder's filesystem allows it, buffered where it
            // does not: the bytes must be the same.
            let (bytes, direct) = written(&format!("chunks-{buffer}"), buffer, &chunks);
            assert_eq!(
                bytes.len(),
                expected.len(),
                "buffer {buffer}, direct {direct}"
            );
            assert!(bytes == expected, "buffer {buffer}, direct {direct}");
        }
    }

    #[test]
    fn a_segment_that_already_holds_bytes_is_appended_to_through_the_page_cache() {
        let dir = std::env::temp_dir().join(format!("wstap-segment-{}-resume", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("payloads-000000.bin");
        std::fs::write(&path, b"abc").unwrap();
        let mut file = SegmentFile::open(&path, 8192).unwrap();
        assert!(matches!(file, SegmentFile::Buffered(_)));
        file.write_all(b"def").unwrap();
        file.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdef");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
