//! `wstap export SOURCE`: a capture or a trace as NDJSON (trace lines), per-session JSON
//! or HAR, for everything, one session, or what a filter selects.
//!
//! With a filter, an export keeps the frames and messages it matches, and the session
//! events (start, handshake, exchanges, end) of the sessions it selects: those whose own
//! facts match, and, when the filter is about records, those with a matching record.
//! Credential headers are redacted by default, since exports are made to be shared;
//! `--redact NAME` hides more, `--no-redact` keeps everything.

use crate::captures::Source;
use crate::AppError;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use wstap_filter::Filter;
use wstap_store::facts::Selection;
use wstap_trace::export::{har::to_har, session::sessions, Redaction};
use wstap_trace::{Event, TraceHeader, TraceWriter};

/// Options of `wstap export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A capture folder, or an NDJSON trace written with --trace.
    pub source: PathBuf,
    /// Export only this session.
    #[arg(long, value_name = "N")]
    pub session: Option<u64>,
    /// Export only what this filter selects (docs/filters.md).
    #[arg(long, value_name = "EXPR", value_parser = crate::parse_filter)]
    pub filter: Option<Filter>,
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
    /// NDJSON trace lines, as `--trace` writes them (docs/trace-format.md).
    Ndjson,
    /// One JSON document with every session's handshake, frames, messages, end and stats.
    Json,
    /// HAR 1.2, importable into Chrome DevTools.
    Har,
}

/// Runs `wstap export`.
pub fn export(args: &ExportArgs) -> Result<(), AppError> {
    let source = Source::open(&args.source)?;
    let redaction = if args.no_redact {
        Redaction::none()
    } else {
        args.redact
            .iter()
            .fold(Redaction::default(), |r, name| r.with(name))
    };
    let kept = match &args.filter {
        Some(filter) if !filter.is_all() => Some(selected_sessions(&source, args, filter)?),
        _ => None,
    };
    let mut selection = args.filter.clone().map(Selection::new);
    let mut keep = |event: &Event| -> bool {
        let (Some(selection), Some(kept)) = (selection.as_mut(), kept.as_ref()) else {
            return true;
        };
        match event {
            Event::Frame(_) | Event::Message(_) => selection.event(event),
            other => {
                selection.session_event(other);
                other.session().is_some_and(|s| kept.contains(&s))
            }
        }
    };
    let text = match args.format {
        Format::Ndjson => {
            let mut writer = TraceWriter::new(Vec::new(), &header(&source)?)
                .map_err(|e| AppError::Export(e.to_string()))?;
            source.for_each_event(args.session, |mut event| {
                if keep(&event) {
                    redaction.apply_to(&mut event);
                    writer
                        .write(&event)
                        .map_err(|e| AppError::Export(e.to_string()))?;
                }
                Ok(())
            })?;
            writer
                .into_inner()
                .map_err(|e| AppError::Export(e.to_string()))?
        }
        Format::Json | Format::Har => {
            let mut events = Vec::new();
            source.for_each_event(args.session, |mut event| {
                if keep(&event) {
                    redaction.apply_to(&mut event);
                    events.push(event);
                }
                Ok(())
            })?;
            let docs = sessions(events, args.session);
            if let Some(n) = args.session {
                if docs.is_empty() {
                    return Err(AppError::BadInput(format!(
                        "{} has no session {n}",
                        args.source.display()
                    )));
                }
            }
            let value: Value = match args.format {
                Format::Har => to_har(&docs, env!("CARGO_PKG_VERSION")),
                _ => json!({ "format": "wstap-sessions", "version": 1, "sessions": docs }),
            };
            let mut text = serde_json::to_string_pretty(&value)
                .map_err(|e| AppError::Export(e.to_string()))?;
            text.push('\n');
            text.into_bytes()
        }
    };
    let written = match &args.output {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => std::io::stdout()
            .write_all(&text)
            .map_err(|e| format!("cannot write the export: {e}")),
    };
    written.map_err(AppError::Export)
}

/// The sessions a filter selects: by their own facts, or by a matching record.
fn selected_sessions(
    source: &Source,
    args: &ExportArgs,
    filter: &Filter,
) -> Result<HashSet<u64>, AppError> {
    let mut selection = Selection::new(filter.clone());
    let mut verdicts: HashMap<u64, Option<bool>> = HashMap::new();
    let mut with_records: HashSet<u64> = HashSet::new();
    source.for_each_event(args.session, |event| {
        match &event {
            Event::Frame(_) | Event::Message(_) => {
                if selection.event(&event) {
                    with_records.extend(event.session());
                }
            }
            other => {
                let verdict = selection.session_event(other);
                if let Some(id) = other.session() {
                    verdicts.insert(id, verdict);
                }
            }
        }
        Ok(())
    })?;
    Ok(verdicts
        .into_iter()
        .filter(|(id, verdict)| {
            *verdict == Some(true) || (verdict.is_none() && with_records.contains(id))
        })
        .map(|(id, _)| id)
        .chain(with_records.iter().copied())
        .collect())
}

/// The first line of an NDJSON export: the trace's own, or one for the capture.
fn header(source: &Source) -> Result<TraceHeader, AppError> {
    match source {
        Source::Trace(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| AppError::BadInput(format!("cannot open {}: {e}", path.display())))?;
            let (header, _) = wstap_trace::TraceReader::new(std::io::BufReader::new(file))
                .map_err(|e| AppError::BadInput(format!("{}: {e}", path.display())))?;
            Ok(header)
        }
        Source::Capture(capture) => {
            let info = capture
                .info()
                .map_err(|e| AppError::BadInput(e.to_string()))?;
            let time = chrono::DateTime::from_timestamp_micros(info.started_us).unwrap_or_default();
            Ok(TraceHeader::new(info.writer, time))
        }
    }
}
