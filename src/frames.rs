//! `wstap frames [CAPTURE] --session N`: a session as the live log showed it, from the
//! capture: its start, handshake and exchanges, every frame (or, with `--messages`, every
//! message) the filter selects, and its end.

use crate::captures::{chosen, open_capture};
use crate::console::color_wanted;
use crate::console::printer::{ConsoleOptions, Printer};
use crate::console::views::ViewSettings;
use crate::AppError;
use clap::Args;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use wstap_filter::Filter;
use wstap_store::export::Foreknowledge;
use wstap_store::facts::Selection;
use wstap_store::Capture;
use wstap_trace::Event;

/// Options of `wstap frames`.
#[derive(Debug, Args)]
pub struct FramesArgs {
    /// The capture (default: the newest in ~/.wstap/captures).
    pub capture: Option<PathBuf>,
    /// The session to show.
    #[arg(long, value_name = "N")]
    pub session: u64,
    /// Only the frames (or messages) this filter matches (docs/filters.md).
    #[arg(long, value_name = "EXPR", value_parser = crate::FilterParser)]
    pub filter: Option<Filter>,
    /// Show messages (reassembled, inflated) instead of frames.
    #[arg(long)]
    pub messages: bool,
    /// Show full handshake and HTTP headers.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Runs `wstap frames`.
pub fn frames(args: &FramesArgs) -> Result<(), AppError> {
    let path = chosen(args.capture.as_deref())?;
    let capture = open_capture(&path)?;
    let found = capture
        .session(args.session)
        .map_err(|e| AppError::BadInput(e.to_string()))?;
    let Some(found) = found else {
        return Err(AppError::BadInput(format!(
            "{} has no session {}",
            path.display(),
            args.session
        )));
    };
    // Its messages read as the capture reads them: with the view it chose (or a person
    // did) and the protobuf schema it keeps.
    let views = ViewSettings {
        rules: Vec::new(),
        schema: capture
            .proto_schema()
            .map_err(|e| AppError::BadInput(e.to_string()))?,
        chosen: HashMap::from([(args.session, found.view)]),
    };
    let mut printer = Printer::with_views(
        ConsoleOptions {
            verbose: args.verbose,
            quiet: false,
            color: color_wanted(),
        },
        views,
    );
    let mut selection = match &args.filter {
        Some(filter) => Some(knowing_the_end(&capture, args.session, filter)?),
        None => None,
    };
    let mut out = std::io::stdout().lock();
    let mut text = String::new();
    let shown = capture.for_each_event(Some(args.session), |event| {
        let keep = match &event {
            // In message mode frames are not shown, but still teach the selection what
            // their messages are made of.
            Event::Frame(_) if args.messages => {
                if let Some(selection) = selection.as_mut() {
                    selection.event(&event);
                }
                false
            }
            _ => selection.as_mut().is_none_or(|s| s.event(&event)),
        };
        if !keep {
            printer.hidden_event(&event);
            return Ok(());
        }
        text.clear();
        match &event {
            Event::Message(m) if args.messages => printer.message_block(m, &mut text),
            other => printer.event(other, &mut text),
        }
        out.write_all(text.as_bytes())
            .map_err(|source| wstap_store::StoreError::Io {
                path: PathBuf::from("standard output"),
                source,
            })
    });
    match shown {
        // A reader that stopped reading (`| head`) is not an error of ours.
        Err(wstap_store::StoreError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.map_err(|e| AppError::BadInput(e.to_string()))?,
    }
    Ok(())
}

/// A selection by `filter` of session `id`'s events that knows, as the capture's SQL
/// does, what each record's held message became and the session's facts at its end (its
/// events read once beforehand), and reads the session's payloads as the capture's writer
/// read them (see `Foreknowledge`).
fn knowing_the_end(capture: &Capture, id: u64, filter: &Filter) -> Result<Selection, AppError> {
    let known =
        Foreknowledge::read(capture, Some(id)).map_err(|e| AppError::BadInput(e.to_string()))?;
    Ok(known.selection(filter.clone()))
}
