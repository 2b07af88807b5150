//! `wstap sessions [CAPTURE]`: a capture's sessions as a table (or JSON lines), by filter.

use crate::captures::{chosen, open_capture};
use crate::AppError;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use wstap_filter::Filter;
use wstap_trace::SessionKind;

/// Options of `wstap sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// The capture (default: the newest in ~/.wstap/captures).
    pub capture: Option<PathBuf>,
    /// Only the sessions this filter matches (docs/filters.md).
    #[arg(long, value_name = "EXPR", value_parser = crate::FilterParser)]
    pub filter: Option<Filter>,
    /// One JSON object per session instead of a table.
    #[arg(long)]
    pub json: bool,
    /// For each session whose view numbers its calls (JSON-RPC, SignalR, GraphQL,
    /// Socket.IO acks, MQTT, STOMP receipts): calls answered per method or target, with
    /// p50, p99 and max latency, and the calls never answered.
    #[arg(long)]
    pub stats: bool,
}

/// Runs `wstap sessions`.
pub fn sessions(args: &SessionsArgs) -> Result<(), AppError> {
    let path = chosen(args.capture.as_deref())?;
    let capture = open_capture(&path)?;
    let all = Filter::parse("").map_err(|e| AppError::BadInput(e.to_string()))?;
    let filter = args.filter.as_ref().unwrap_or(&all);
    let mut out = std::io::stdout().lock();
    let write_failed = |e: std::io::Error| AppError::Export(format!("cannot write: {e}"));
    let mut table = vec![HEADINGS.map(str::to_owned)];
    let mut after = None;
    loop {
        let page = capture
            .sessions(filter, after, 500)
            .map_err(|e| AppError::BadInput(e.to_string()))?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for s in &page {
            if args.stats {
                let calls = capture
                    .calls(s.id)
                    .map_err(|e| AppError::BadInput(e.to_string()))?;
                if args.json {
                    let mut line =
                        serde_json::to_value(s).map_err(|e| AppError::Export(e.to_string()))?;
                    line["calls"] = calls.to_json();
                    writeln!(out, "{line}").map_err(write_failed)?;
                } else {
                    write!(out, "{}", stats_text(s, &calls)).map_err(write_failed)?;
                }
            } else if args.json {
                let line = serde_json::to_string(s).map_err(|e| AppError::Export(e.to_string()))?;
                writeln!(out, "{line}").map_err(write_failed)?;
            } else {
                table.push(columns(s));
            }
        }
    }
    if args.stats {
        return Ok(());
    }
    if !args.json {
        let widths: Vec<usize> = (0..HEADINGS.len())
            .map(|i| {
                table
                    .iter()
                    .map(|row| row[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &table {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if RIGHT_ALIGNED.contains(&i) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
                line.push_str("  ");
            }
            writeln!(out, "{}", line.trim_end()).map_err(write_failed)?;
        }
    }
    Ok(())
}

/// A session's calls as text: a line for the session, one per name called, one per call
/// never answered (nothing for a session without a view).
fn stats_text(s: &wstap_store::SessionRow, calls: &wstap_store::decoded::SessionCalls) -> String {
    // A session read with no view makes and answers no calls.
    if calls.view.is_none() {
        return String::new();
    }
    let url = s.url.clone().unwrap_or_else(|| s.target.clone());
    let view = calls
        .view
        .map_or("no view".to_owned(), |v| format!("view {v}"));
    let mut text = format!(
        "#{} {} ({view}): {} calls answered, {} unanswered\n",
        s.id,
        cut(&url, 60),
        calls.answered.len(),
        calls.unanswered.len()
    );
    let stats = wstap_views::calls::latency_stats(&calls.answered);
    let width = stats
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    for s in &stats {
        text.push_str(&format!(
            "  {:<width$}  {:>6} calls  p50 {}  p99 {}  max {}\n",
            s.name,
            s.count,
            millis(s.p50_us),
            millis(s.p99_us),
            millis(s.max_us)
        ));
    }
    for u in &calls.unanswered {
        text.push_str(&format!("  unanswered: {} (message {})\n", u.name, u.call));
    }
    text
}

/// Microseconds as milliseconds, three decimals.
fn millis(us: i64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

const HEADINGS: [&str; 11] = [
    "#", "start", "client", "via", "url", "state", "status", "frames", "bytes", "duration", "notes",
];

/// The columns aligned to the right (numbers).
const RIGHT_ALIGNED: [usize; 5] = [0, 6, 7, 8, 9];

/// One session's cells.
fn columns(s: &wstap_store::SessionRow) -> [String; 11] {
    let start = chrono::DateTime::from_timestamp_micros(s.started_us)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%H:%M:%S%.3f")
                .to_string()
        })
        .unwrap_or_default();
    let url = s.url.clone().unwrap_or_else(|| s.target.clone());
    let status = s.status.map_or("-".to_owned(), |c| c.to_string());
    let duration = s
        .duration_us
        .map_or("-".to_owned(), |d| format!("{:.3} s", d as f64 / 1e6));
    let mut notes = Vec::new();
    if s.tls {
        notes.push("tls".to_owned());
    }
    if let Some(p) = &s.subprotocol {
        notes.push(format!("subprotocol {p}"));
    }
    if let Some(view) = s.view.filter(|v| v.is_protocol()) {
        notes.push(view.name().to_owned());
    }
    for e in &s.extensions {
        notes.push(e.split(';').next().unwrap_or_default().trim().to_owned());
    }
    if s.violations > 0 {
        notes.push(format!("{} violations", s.violations));
    }
    if let Some(kind) = s.kind.filter(|k| *k != SessionKind::WebSocket) {
        notes.push(kind.name().to_owned());
    }
    if let Some(hop) = &s.upstream_proxy {
        notes.push(format!("through {}", hop.proxy));
    }
    let via = match &s.listener {
        Some(listener) => format!("{} {listener}", s.via.name()),
        None => s.via.name().to_owned(),
    };
    [
        s.id.to_string(),
        start,
        s.client.clone(),
        via,
        cut(&url, 60),
        s.state.name().to_owned(),
        status,
        format!("{} / {}", s.frames_c2s, s.frames_s2c),
        format!("{} / {}", s.bytes_c2s, s.bytes_s2c),
        duration,
        notes.join(", "),
    ]
}

/// `text`, cut to `width` characters with an ellipsis.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}
