//! `wstap import TRACE -o CAPTURE`: a capture built from an NDJSON trace, holding what
//! the capture of the same run would hold (the raw heads aside, which traces do not keep).

use crate::captures::read_trace;
use crate::AppError;
use clap::Args;
use std::path::PathBuf;
use wstap_store::{CaptureInfo, CaptureWriter};

/// Events written per transaction, and looked at together.
const IMPORT_BATCH: usize = 4096;

/// Options of `wstap import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The NDJSON trace, as `--trace` writes it.
    pub trace: PathBuf,
    /// The capture folder to create (it must not exist, or be empty).
    #[arg(short, long, value_name = "CAPTURE")]
    pub output: PathBuf,
}

/// Runs `wstap import`.
pub fn import(args: &ImportArgs) -> Result<(), AppError> {
    // Read the whole trace's header before anything is created: a bad file changes nothing.
    let events = read_trace(&args.trace)?;
    let existed = args.output.exists();
    let info = CaptureInfo {
        writer: format!("wstap {} (import)", env!("CARGO_PKG_VERSION")),
        max_capture: 0,
        max_bytes: None,
    };
    let mut writer = CaptureWriter::create(&args.output, &info)
        .map_err(|e| AppError::BadInput(e.to_string()))?;
    let mut count = 0u64;
    let written: Result<(), AppError> = (|| {
        // In batches, so that a frame and the message it ends are written together.
        let mut batch = Vec::with_capacity(IMPORT_BATCH);
        let mut events = events.peekable();
        while let Some(event) = events.next() {
            batch.push(event?);
            if batch.len() >= IMPORT_BATCH || events.peek().is_none() {
                writer
                    .write_events(&batch)
                    .and_then(|()| wstap_trace::Sink::flush(&mut writer))
                    .map_err(|e| AppError::BadInput(e.to_string()))?;
                count += batch.len() as u64;
                batch.clear();
            }
        }
        Ok(())
    })();
    match written {
        Ok(()) => {
            writer
                .finish()
                .map_err(|e| AppError::BadInput(e.to_string()))?;
            eprintln!(
                "wstap: imported {count} events from {} into {}",
                args.trace.display(),
                args.output.display()
            );
            Ok(())
        }
        Err(e) => {
            // Leave nothing half-made behind.
            drop(writer);
            if !existed {
                let _ = std::fs::remove_dir_all(&args.output);
            } else {
                remove_contents(&args.output);
            }
            Err(e)
        }
    }
}

/// Empties a folder that was empty before the import began.
fn remove_contents(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let _ = std::fs::remove_file(entry.path());
    }
}
