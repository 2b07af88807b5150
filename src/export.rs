//! `wstap export SOURCE`: a capture or a trace as NDJSON (trace lines), per-session JSON,
//! HAR or pcapng, for everything, one session, or what a filter selects.
//!
//! What a filter keeps is `wstap_store::export`'s to say; this module reads the command
//! line and writes the result.
//! Credential headers are redacted by default, since exports are made to be shared;
//! `--redact NAME` hides more, `--no-redact` keeps everything.

use crate::captures::Source;
use crate::AppError;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use wstap_filter::Filter;
use wstap_store::export::{self, Export};
use wstap_trace::export::Redaction;
use wstap_trace::TraceHeader;

/// Options of `wstap export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A capture folder, or an NDJSON trace written with --trace.
    pub source: PathBuf,
    /// Export only this session.
    #[arg(long, value_name = "N")]
    pub session: Option<u64>,
    /// Export only what this filter selects (docs/filters.md).
    #[arg(long, value_name = "EXPR", value_parser = crate::FilterParser)]
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
    /// Read protobuf messages with this schema rather than the one the capture keeps
    /// (the JSON export's decoded objects).
    #[command(flatten)]
    pub proto: crate::proto::ProtoArgs,
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
    /// pcapng: each WebSocket session's decrypted traffic as TCP streams (client leg and
    /// upstream leg) that Wireshark and tshark decode.
    Pcapng,
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
    let proto_schema = args.proto.load()?;
    if proto_schema.is_some() && args.format != Format::Json {
        return Err(AppError::BadInput(
            "--proto-descriptor reads the decoded objects of --format json; other formats carry none".to_owned(),
        ));
    }
    let Some(format) = args.format.document() else {
        return pcapng(args, &source, &redaction);
    };
    let what = Export {
        format,
        session: args.session,
        filter: args.filter.as_ref(),
        redaction: &redaction,
        header: header(&source)?,
        version: env!("CARGO_PKG_VERSION"),
        proto_schema: proto_schema.as_ref(),
    };
    let text = export::export(&source, &what).map_err(|e| match e {
        AppError::NoSuchSession(n) => {
            AppError::BadInput(format!("{} has no session {n}", args.source.display()))
        }
        other => other,
    })?;
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

/// Writes the pcapng export, streaming: to `-o FILE` or standard output.
fn pcapng(args: &ExportArgs, source: &Source, redaction: &Redaction) -> Result<(), AppError> {
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| AppError::Export(format!("cannot write {}: {e}", path.display())))?;
            stream_pcapng(args, source, redaction, file, &path.display().to_string())
        }
        None => stream_pcapng(
            args,
            source,
            redaction,
            std::io::stdout().lock(),
            "the export",
        ),
    }
}

/// Streams the pcapng export into `out` (called `name` in errors).
fn stream_pcapng(
    args: &ExportArgs,
    source: &Source,
    redaction: &Redaction,
    out: impl Write,
    name: &str,
) -> Result<(), AppError> {
    let application = format!("wstap {}", env!("CARGO_PKG_VERSION"));
    let filter = args.filter.as_ref();
    let out = std::io::BufWriter::new(out);
    let session = args.session;
    let (out, _) = export::export_pcapng(source, session, filter, redaction, &application, out)
        .map_err(|e| match e {
            AppError::NoSuchSession(n) => {
                AppError::BadInput(format!("{} has no session {n}", args.source.display()))
            }
            other => other,
        })?;
    out.into_inner()
        .map(|_| ())
        .map_err(|e| AppError::Export(format!("cannot write {name}: {}", e.error())))
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

impl Format {
    /// The store's document format; `None` for pcapng, which streams packets instead.
    fn document(self) -> Option<export::Format> {
        match self {
            Format::Ndjson => Some(export::Format::Ndjson),
            Format::Json => Some(export::Format::Json),
            Format::Har => Some(export::Format::Har),
            Format::Pcapng => None,
        }
    }
}
