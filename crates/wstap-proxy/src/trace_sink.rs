//! The trace file: a lossless bus subscriber on a thread of its own.
//!
//! The writer thread turns bus events into trace events and NDJSON lines. It flushes
//! whenever it has caught up with the bus, and at least every [`FLUSH_INTERVAL`] while it
//! has not, so a killed proxy leaves a file whose every complete line parses.
//!
//! If writing fails later (a full disk), the thread says so loudly once on stderr and
//! keeps draining the bus, so the relay never blocks on a dead file.

use crate::events::{BusEvent, LosslessReceiver};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wstap_trace::{TraceHeader, TraceWriter};
use wstap_wire::Record;

/// The longest a written event waits in the buffer while events keep coming.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// After catching up, the writer naps this long before looking again, so that a busy
/// relay hands it many batches per wake-up instead of waking it for every one.
pub const COALESCE: Duration = Duration::from_millis(2);

/// What the writer thread did, returned when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceStats {
    /// Events written.
    pub events: u64,
    /// The first write error, if writing failed.
    pub error: Option<String>,
}

/// Creates (truncating) `path` and starts the writer thread on `rx`.
pub fn spawn(
    path: &Path,
    writer_name: &str,
    rx: LosslessReceiver,
) -> Result<JoinHandle<TraceStats>, crate::ProxyError> {
    let file = File::create(path).map_err(|source| crate::ProxyError::Trace {
        path: path.to_owned(),
        source,
    })?;
    let header = TraceHeader::new(writer_name, chrono::Utc::now());
    let writer = TraceWriter::new(file, &header).map_err(|e| crate::ProxyError::Trace {
        path: path.to_owned(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let path = path.to_owned();
    std::thread::Builder::new()
        .name("wstap-trace".into())
        .spawn(move || run(writer, rx, path))
        .map_err(|source| crate::ProxyError::Trace {
            path: PathBuf::from("<thread>"),
            source,
        })
}

fn run(mut writer: TraceWriter<File>, mut rx: LosslessReceiver, path: PathBuf) -> TraceStats {
    let mut stats = TraceStats::default();
    let mut last_flush = Instant::now();
    let fail = |stats: &mut TraceStats, e: wstap_trace::TraceError| {
        if stats.error.is_none() {
            eprintln!(
                "wstap: ERROR: writing the trace {} failed: {e}. Traffic is still relayed, but trace events are being lost.",
                path.display()
            );
            stats.error = Some(e.to_string());
        }
    };
    while let Some(batch) = rx.blocking_recv() {
        let mut next = Some(batch);
        while let Some(batch) = next.take() {
            if stats.error.is_none() {
                for event in batch.iter() {
                    // Frames and messages, the bulk of a trace, are written straight from
                    // their records (see wstap_trace::fast); the rest goes through serde.
                    let written = match event {
                        BusEvent::Wire {
                            session,
                            record: Record::Frame(frame),
                        } => writer.write_frame_record(*session, frame),
                        BusEvent::Wire {
                            session,
                            record: Record::Message(message),
                        } => writer.write_message_record(*session, message),
                        BusEvent::Event(event) => writer.write(event),
                    };
                    match written {
                        Ok(()) => stats.events += 1,
                        Err(e) => {
                            fail(&mut stats, e);
                            break;
                        }
                    }
                }
            }
            if last_flush.elapsed() >= FLUSH_INTERVAL {
                if let Err(e) = writer.flush() {
                    fail(&mut stats, e);
                }
                last_flush = Instant::now();
            }
            next = rx.try_recv();
        }
        // Caught up with the bus: everything written so far goes to the file now.
        if stats.error.is_none() {
            if let Err(e) = writer.flush() {
                fail(&mut stats, e);
            }
            last_flush = Instant::now();
        }
        std::thread::sleep(COALESCE);
    }
    if stats.error.is_none() {
        if let Err(e) = writer.flush() {
            fail(&mut stats, e);
        }
    }
    stats
}
