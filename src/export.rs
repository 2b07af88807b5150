//! `wstap export`: a trace file as per-session JSON or as HAR.
//!
//! Credential headers are redacted by default, since exports are made to be shared;
//! `--redact NAME` hides more, `--no-redact` keeps everything.

use crate::AppError;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::PathBuf;
use wstap_trace::export::{har::to_har, session::sessions, Redaction};
use wstap_trace::{Event, TraceError, TraceReader};

/// Options of `wstap export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The NDJSON trace written with --trace.
    pub trace: PathBuf,
    /// Export only this session.
    #[arg(long, value_name = "N")]
    pub session: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Write here instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also redact this header's values (repeatable).
    #[arg(long, value_name = "HEADER")]
    pub redact: Vec<String>,
    /// Keep every header value, credentials included.
    #[arg(long, conflicts_with = "redact")]
    pub no_redact: bool,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON document with every session's handshake, frames, messages, end and stats.
    Json,
    /// HAR 1.2, importable into Chrome DevTools.
    Har,
}

/// Runs `wstap export`.
pub fn export(args: &ExportArgs) -> Result<(), AppError> {
    let file = File::open(&args.trace)
        .map_err(|e| AppError::Export(format!("cannot open {}: {e}", args.trace.display())))?;
    let (_, reader) = TraceReader::new(BufReader::new(file))
        .map_err(|e| AppError::Export(format!("{}: {e}", args.trace.display())))?;
    let redaction = if args.no_redact {
        Redaction::none()
    } else {
        args.redact
            .iter()
            .fold(Redaction::default(), |r, name| r.with(name))
    };
    let mut events: Vec<Event> = Vec::new();
    for item in reader {
        match item {
            Ok(mut event) => {
                redaction.apply_to(&mut event);
                events.push(event);
            }
            Err(e @ TraceError::TornLastLine { .. }) => {
                eprintln!(
                    "wstap: warning: {}: {e}; exporting the lines before it",
                    args.trace.display()
                );
            }
            Err(e) => return Err(AppError::Export(format!("{}: {e}", args.trace.display()))),
        }
    }
    let docs = sessions(events, args.session);
    if let Some(n) = args.session {
        if docs.is_empty() {
            return Err(AppError::Export(format!(
                "{} has no session {n}",
                args.trace.display()
            )));
        }
    }
    let value: Value = match args.format {
        Format::Json => json!({ "format": "wstap-sessions", "version": 1, "sessions": docs }),
        Format::Har => to_har(&docs, env!("CARGO_PKG_VERSION")),
    };
    let mut text =
        serde_json::to_string_pretty(&value).map_err(|e| AppError::Export(e.to_string()))?;
    text.push('\n');
    let written = match &args.output {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(|e| format!("cannot write the export: {e}")),
    };
    written.map_err(AppError::Export)
}
