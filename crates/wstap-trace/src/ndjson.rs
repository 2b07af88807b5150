//! NDJSON traces: one [`Event`] per line.
//!
//! [`TraceWriter`] writes the `trace` header line first and then one line per event; it
//! buffers, and the caller decides when to [`TraceWriter::flush`] (the proxy flushes
//! whenever it runs out of events to write, and at least every 100 ms). Since every line
//! is written whole, a killed writer leaves at most one torn line at the end.
//!
//! [`TraceReader`] reads lines back. A torn final line is reported as
//! [`TraceError::TornLastLine`] so that readers can warn and carry on.

use crate::event::{Event, TraceHeader};
use crate::sink::{BusEvent, Sink};
use std::io::{self, BufRead, Write};
use wstap_wire::Record;

/// What can go wrong reading or writing a trace.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Reading or writing failed.
    #[error("trace I/O failed: {0}")]
    Io(#[from] io::Error),
    /// A line is not a valid event.
    #[error("line {line}: {source}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// Why it did not parse.
        source: serde_json::Error,
    },
    /// The last line has no newline and does not parse: the writer was killed mid-line.
    #[error("line {line}: the last line is incomplete (the writer stopped mid-line)")]
    TornLastLine {
        /// 1-based line number.
        line: usize,
    },
    /// The first line is not a wstap trace header.
    #[error("not a wstap trace: the first line is not a trace header")]
    NotATrace,
}

/// Writes events as NDJSON: see the module documentation.
pub struct TraceWriter<W: Write> {
    out: io::BufWriter<W>,
    line: Vec<u8>,
    cache: crate::fast::LineCache,
}

impl<W: Write> TraceWriter<W> {
    /// Starts a trace on `out`, writing `header` as its first line.
    pub fn new(out: W, header: &TraceHeader) -> Result<Self, TraceError> {
        let mut writer = TraceWriter {
            out: io::BufWriter::with_capacity(64 * 1024, out),
            line: Vec::with_capacity(1024),
            cache: crate::fast::LineCache::default(),
        };
        writer.write(&Event::Trace(header.clone()))?;
        writer.flush()?;
        Ok(writer)
    }

    /// Writes one event as one line (buffered).
    pub fn write(&mut self, event: &Event) -> Result<(), TraceError> {
        // Serialise into a scratch line first, so the file only ever receives whole lines.
        self.line.clear();
        serde_json::to_writer(&mut self.line, event).map_err(io::Error::from)?;
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        Ok(())
    }

    /// Writes a frame record as one line, without building an [`Event`] (see [`crate::fast`]).
    pub fn write_frame_record(
        &mut self,
        session: u64,
        record: &wstap_wire::FrameRecord,
    ) -> Result<(), TraceError> {
        self.line.clear();
        crate::fast::write_frame(&mut self.line, &mut self.cache, session, record);
        self.out.write_all(&self.line)?;
        Ok(())
    }

    /// Writes a message record as one line, without building an [`Event`].
    pub fn write_message_record(
        &mut self,
        session: u64,
        record: &wstap_wire::MessageRecord,
    ) -> Result<(), TraceError> {
        self.line.clear();
        crate::fast::write_message(&mut self.line, &mut self.cache, session, record);
        self.out.write_all(&self.line)?;
        Ok(())
    }

    /// Pushes buffered lines to the underlying writer.
    pub fn flush(&mut self) -> Result<(), TraceError> {
        self.out.flush()?;
        Ok(())
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(self) -> Result<W, TraceError> {
        self.out
            .into_inner()
            .map_err(|e| TraceError::Io(e.into_error()))
    }
}

/// A trace file as a lossless [`Sink`]: frames and messages are written straight from
/// their records (see [`crate::fast`]), the rest through serde.
pub struct TraceFile {
    writer: TraceWriter<std::fs::File>,
    path: std::path::PathBuf,
}

impl TraceFile {
    /// Creates (truncating) `path` and writes the trace header, naming `writer`.
    pub fn create(path: &std::path::Path, writer: &str) -> Result<TraceFile, TraceError> {
        let file = std::fs::File::create(path)?;
        let header = TraceHeader::new(writer, chrono::Utc::now());
        Ok(TraceFile {
            writer: TraceWriter::new(file, &header)?,
            path: path.to_owned(),
        })
    }
}

impl Sink for TraceFile {
    type Error = TraceError;

    fn what(&self) -> String {
        format!("the trace {}", self.path.display())
    }

    fn write(&mut self, event: &BusEvent) -> Result<(), TraceError> {
        match event {
            BusEvent::Wire {
                session,
                record: Record::Frame(frame),
            } => self.writer.write_frame_record(*session, frame),
            BusEvent::Wire {
                session,
                record: Record::Message(message),
            } => self.writer.write_message_record(*session, message),
            BusEvent::Event(event) => self.writer.write(event),
        }
    }

    fn flush(&mut self) -> Result<(), TraceError> {
        self.writer.flush()
    }
}

/// Reads events back from NDJSON: see the module documentation.
pub struct TraceReader<R: BufRead> {
    input: R,
    line_no: usize,
    buf: String,
}

impl<R: BufRead> TraceReader<R> {
    /// Reads the header line and returns it with a reader for the events after it.
    pub fn new(mut input: R) -> Result<(TraceHeader, Self), TraceError> {
        let mut buf = String::new();
        input.read_line(&mut buf)?;
        match serde_json::from_str::<Event>(buf.trim_end()) {
            Ok(Event::Trace(header)) => Ok((
                header,
                TraceReader {
                    input,
                    line_no: 1,
                    buf,
                },
            )),
            _ => Err(TraceError::NotATrace),
        }
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<Event, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            match self.input.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e.into())),
            }
            self.line_no += 1;
            let complete = self.buf.ends_with('\n');
            let text = self.buf.trim_end();
            if text.is_empty() {
                continue;
            }
            return Some(match serde_json::from_str(text) {
                Ok(event) => Ok(event),
                Err(_) if !complete => Err(TraceError::TornLastLine { line: self.line_no }),
                Err(source) => Err(TraceError::BadLine {
                    line: self.line_no,
                    source,
                }),
            });
        }
    }
}
