//! The payload files: bytes too large to keep inline in the database, appended raw, each
//! referenced from its row by its offset in one run of bytes.
//!
//! SQLite's write-ahead log writes every byte twice (to the log, then to the database at
//! the checkpoint), and a 16 KiB BLOB costs more than its bytes in page overhead. Large
//! payloads therefore go here once, in big sequential writes; rows keep the offset. The
//! writer flushes these files before it commits the rows that point into them, so a
//! committed row never refers to bytes that are not there.
//!
//! The run of bytes is cut into **segments** of a fixed size, one file each
//! (`payloads-000000.bin`, `payloads-000001.bin`, ...; offset `at` lives in segment
//! `at / size` at `at % size`; a payload may cross into the next). A capture bounded by
//! `--capture-max` gives up the oldest payloads by deleting the oldest segment files: the
//! rows stay, and a payload whose segment is gone reads as dropped. Writes stay sequential
//! and a read is one or two positioned reads. Captures of wstap before schema 5 have one
//! file, `payloads.bin`, which is never cut.

use crate::segment::SegmentFile;
use crate::StoreError;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How much the writer buffers before writing to a file.
const BUFFER: usize = 1 << 20;
/// How long a filter's reader keeps a segment open without looking whether it was
/// dropped: the most it keeps a dropped segment's disk space in use (a filter reading a
/// million payloads looks once per this, not once per payload).
const RECHECK: Duration = Duration::from_millis(100);

/// Where a capture keeps its payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PayloadLayout {
    /// One file that holds them all (captures before schema 5).
    Single(PathBuf),
    /// Segment files of `size` bytes in `dir`.
    Segments { dir: PathBuf, size: u64 },
}

impl PayloadLayout {
    /// The file of segment `index`.
    fn segment(dir: &Path, index: u64) -> PathBuf {
        dir.join(format!("payloads-{index:06}.bin"))
    }

    /// The file holding offset `at`, the offset within it, and the bytes it holds from
    /// there on (`None`: to its end, whatever its length).
    fn locate(&self, at: u64) -> (PathBuf, u64, Option<u64>) {
        match self {
            PayloadLayout::Single(path) => (path.clone(), at, None),
            PayloadLayout::Segments { dir, size } => (
                PayloadLayout::segment(dir, at / size),
                at % size,
                Some(size - at % size),
            ),
        }
    }
}

/// Appends payloads to segment files.
pub(crate) struct PayloadWriter {
    dir: PathBuf,
    size: u64,
    /// The segment being written, once a byte went to it.
    out: Option<(u64, SegmentFile)>,
    /// Bytes appended since the capture began: the next offset.
    len: u64,
    /// The oldest segment still on disk.
    first: u64,
}

impl PayloadWriter {
    /// Appends to segments of `size` bytes in `dir`, the first of them empty.
    pub fn create(dir: &Path, size: u64) -> Self {
        PayloadWriter {
            dir: dir.to_owned(),
            size: size.max(1),
            out: None,
            len: 0,
            first: 0,
        }
    }

    /// Goes on after the segments of `size` bytes already in `dir` (a capture recorded
    /// before): the next offset follows the last byte of the last segment; when rows
    /// refer to bytes past it (`referenced`: a segment cut short by a crash), the next
    /// segment begins afresh, so nothing is written where an old row points. The oldest
    /// segment on disk is the first kept.
    pub fn resume(dir: &Path, size: u64, referenced: u64) -> Result<Self, StoreError> {
        let size = size.max(1);
        let mut indices = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
            let entry = entry.map_err(|e| StoreError::io(dir, e))?;
            let name = entry.file_name();
            let index = name
                .to_str()
                .and_then(|n| n.strip_prefix("payloads-"))
                .and_then(|n| n.strip_suffix(".bin"))
                .and_then(|n| n.parse::<u64>().ok());
            indices.extend(index);
        }
        // Appending writes at a file's end: a new offset past what is on disk must start
        // a segment of its own.
        let fresh = referenced.div_ceil(size) * size;
        let (Some(&first), Some(&last)) = (indices.iter().min(), indices.iter().max()) else {
            let mut writer = PayloadWriter::create(dir, size);
            writer.len = fresh;
            writer.first = fresh / size;
            return Ok(writer);
        };
        let path = PayloadLayout::segment(dir, last);
        let written = std::fs::metadata(&path)
            .map_err(|e| StoreError::io(&path, e))?
            .len();
        Ok(PayloadWriter {
            dir: dir.to_owned(),
            size,
            out: None,
            len: match last * size + written.min(size) {
                on_disk if on_disk >= referenced => on_disk,
                _ => fresh,
            },
            first,
        })
    }

    /// Appends `bytes`; returns their offset.
    pub fn append(&mut self, bytes: &[u8]) -> Result<u64, StoreError> {
        let at = self.len;
        let mut rest = bytes;
        while !rest.is_empty() {
            let index = self.len / self.size;
            let room = (self.size - self.len % self.size).min(rest.len() as u64) as usize;
            let (now, later) = rest.split_at(room);
            let out = self.segment(index)?;
            out.write_all(now)
                .map_err(|e| StoreError::io(&PayloadLayout::segment(&self.dir, index), e))?;
            self.len += room as u64;
            rest = later;
        }
        Ok(at)
    }

    /// The writer of segment `index`, opened (the last one flushed) when it is new.
    fn segment(&mut self, index: u64) -> Result<&mut SegmentFile, StoreError> {
        match self.out.take() {
            Some((current, out)) if current == index => Ok(&mut self.out.insert((current, out)).1),
            previous => {
                if let Some((current, mut out)) = previous {
                    out.flush().map_err(|e| {
                        StoreError::io(&PayloadLayout::segment(&self.dir, current), e)
                    })?;
                }
                let path = PayloadLayout::segment(&self.dir, index);
                let out = SegmentFile::open(&path, BUFFER).map_err(|e| StoreError::io(&path, e))?;
                Ok(&mut self.out.insert((index, out)).1)
            }
        }
    }

    /// Hands everything appended to the operating system.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        match &mut self.out {
            Some((index, out)) => out
                .flush()
                .map_err(|e| StoreError::io(&PayloadLayout::segment(&self.dir, *index), e)),
            None => Ok(()),
        }
    }

    /// Payload bytes on disk: from the oldest segment kept to the last byte appended.
    pub fn on_disk(&self) -> u64 {
        self.len - (self.first * self.size).min(self.len)
    }

    /// The first offset still kept: every payload before it was dropped.
    pub fn kept_from(&self) -> u64 {
        self.first * self.size
    }

    /// How many of the oldest segments to drop for the payloads on disk to fit in
    /// `room` bytes; never the one being written.
    pub fn to_drop(&self, room: u64) -> u64 {
        let current = self.len / self.size;
        let mut drop = 0;
        while self.first + drop < current && self.on_disk() - drop * self.size > room {
            drop += 1;
        }
        drop
    }

    /// Deletes the `count` oldest segments (once the database says they are dropped).
    pub fn drop_oldest(&mut self, count: u64) -> Result<(), StoreError> {
        for _ in 0..count {
            let path = PayloadLayout::segment(&self.dir, self.first);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&path, e)),
            }
            self.first += 1;
        }
        Ok(())
    }
}

/// Reads payloads, for any number of readers at once (positioned reads).
#[derive(Debug)]
pub(crate) struct PayloadReader {
    layout: PayloadLayout,
    /// The file last read, by path, and when it was last seen there: a segment is read
    /// many times in a row.
    file: Mutex<Option<(PathBuf, File, Instant)>>,
    /// The last read, for the same row asked for again (a JSON test reads it thrice).
    last: Mutex<Option<(u64, usize, Vec<u8>)>>,
    /// How long an open segment is read without looking whether it is still there.
    recheck: Duration,
}

impl PayloadReader {
    /// Reads the payloads laid out as `layout` for a filter (`wstap_bytes`,
    /// `wstap_dropped`): many in a row, looking whether a segment was dropped at most
    /// every [`RECHECK`].
    pub fn for_filters(layout: PayloadLayout) -> Self {
        PayloadReader {
            layout,
            file: Mutex::new(None),
            last: Mutex::new(None),
            recheck: RECHECK,
        }
    }

    /// Reads the payloads laid out as `layout` for the rows of a page: each read looks
    /// whether its segment is still there, so a row that a filter took for dropped never
    /// shows bytes read from a segment the reader still held open.
    pub fn for_pages(layout: PayloadLayout) -> Self {
        PayloadReader {
            recheck: Duration::ZERO,
            ..PayloadReader::for_filters(layout)
        }
    }

    /// `len` bytes at `at`; fewer when the file ends sooner (a capture cut short by a
    /// crash before the payloads reached the disk). `None`: the capture dropped them to
    /// stay within its bound (their segment is gone).
    pub fn read(&self, at: u64, len: usize) -> Option<Vec<u8>> {
        if let Ok(last) = self.last.lock() {
            if let Some((last_at, last_len, bytes)) = last.as_ref() {
                if *last_at == at && *last_len == len {
                    return Some(bytes.clone());
                }
            }
        }
        let mut bytes = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let (path, offset, room) = self.layout.locate(at + done as u64);
            let want = room.map_or(len - done, |room| (room as usize).min(len - done));
            match self.read_from(&path, offset, &mut bytes[done..done + want]) {
                Some(read) => {
                    done += read;
                    if read < want {
                        break;
                    }
                }
                // A segment that is gone was dropped; a single file that is missing is a
                // capture whose payloads never reached the disk.
                None if matches!(self.layout, PayloadLayout::Segments { .. }) => return None,
                None => break,
            }
        }
        bytes.truncate(done);
        if let Ok(mut last) = self.last.lock() {
            *last = Some((at, len, bytes.clone()));
        }
        Some(bytes)
    }

    /// Whether the bytes at `at` were dropped.
    pub fn is_dropped(&self, at: u64) -> bool {
        match &self.layout {
            PayloadLayout::Single(_) => false,
            PayloadLayout::Segments { .. } => !self.layout.locate(at).0.exists(),
        }
    }

    /// Reads `buf` from `path` at `offset`: the bytes read, or `None` when there is no
    /// such file. The file stays open for the next reads, and is looked for again every
    /// `recheck` (a dropped segment must not be kept on disk by a reader holding it).
    fn read_from(&self, path: &Path, offset: u64, buf: &mut [u8]) -> Option<usize> {
        let mut cached = self.file.lock().ok()?;
        let now = Instant::now();
        let fresh = match cached.as_mut() {
            Some((open, _, seen)) if open == path => {
                if now.duration_since(*seen) >= self.recheck {
                    *seen = now;
                    path.exists()
                } else {
                    true
                }
            }
            _ => false,
        };
        if !fresh {
            *cached = None;
            let file = File::open(path).ok()?;
            *cached = Some((path.to_owned(), file, now));
        }
        let (_, file, _) = cached.as_ref()?;
        Some(read_at(file, offset, buf))
    }
}

#[cfg(unix)]
fn read_at(file: &File, at: u64, buf: &mut [u8]) -> usize {
    use std::os::unix::fs::FileExt;
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
fn read_at(_file: &File, _at: u64, _buf: &mut [u8]) -> usize {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_goes_on_after_the_last_byte_or_past_what_rows_refer_to() {
        let dir = std::env::temp_dir().join(format!("wstap-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(PayloadLayout::segment(&dir, 0), [7u8; 10]).unwrap();
        // The rows refer to bytes within what is on disk: go on after its last byte.
        let mut writer = PayloadWriter::resume(&dir, 64, 10).unwrap();
        assert_eq!(writer.append(b"abc").unwrap(), 10);
        writer.flush().unwrap();
        drop(writer);
        // Rows refer past the segment's end (cut short): a new segment, not the gap.
        let mut writer = PayloadWriter::resume(&dir, 64, 40).unwrap();
        assert_eq!(writer.append(b"xyz").unwrap(), 64);
        writer.flush().unwrap();
        assert_eq!(
            std::fs::read(PayloadLayout::segment(&dir, 0))
                .unwrap()
                .len(),
            13
        );
        assert_eq!(
            std::fs::read(PayloadLayout::segment(&dir, 1)).unwrap(),
            b"xyz"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A writer of 64-byte segments in a new folder, with `bytes` appended and flushed.
    fn written(name: &str, bytes: &[u8]) -> (PathBuf, PayloadLayout) {
        let dir =
            std::env::temp_dir().join(format!("wstap-payloads-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut writer = PayloadWriter::create(&dir, 64);
        writer.append(bytes).unwrap();
        writer.flush().unwrap();
        let layout = PayloadLayout::Segments {
            dir: dir.clone(),
            size: 64,
        };
        (dir, layout)
    }

    #[test]
    fn a_page_never_reads_a_segment_dropped_while_it_was_open() {
        let (dir, layout) = written("pages", &[7u8; 100]);
        let page = PayloadReader::for_pages(layout.clone());
        let filter = PayloadReader::for_filters(layout.clone());
        assert_eq!(page.read(0, 10), Some(vec![7u8; 10]));
        assert_eq!(filter.read(0, 10), Some(vec![7u8; 10]));
        std::fs::remove_file(PayloadLayout::segment(&dir, 0)).unwrap();
        // The filter's reader may read on from its open segment for a moment (it looks
        // again within RECHECK); the page's reader and the dropped test see it gone now.
        assert!(filter.is_dropped(0));
        assert_eq!(
            page.read(10, 10),
            None,
            "a page reads what a filter calls dropped"
        );
        assert_eq!(
            page.read(64, 10),
            Some(vec![7u8; 10]),
            "the next segment is kept"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
