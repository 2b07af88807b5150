//! The live log: the [`printer`]'s lines for everything the proxy sees, on a thread of
//! its own.
//!
//! The printer is fed by a *lossy* bus subscription: when the terminal cannot keep up,
//! batches are dropped (and the printer says how many events it missed) instead of slowing
//! the relay. The capture and the trace file, if any, still have them all. With `--filter`,
//! the console shows only what the filter selects ([`Selection`]). Colour is used
//! only when stdout is a terminal and `NO_COLOR` is not set.

pub mod printer;
pub mod views;

use crate::RunArgs;
use printer::{ConsoleOptions, Printer, YELLOW};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use tokio::sync::mpsc;
use wstap_bus::{Batch, BusEvent, DropCounter};
use wstap_filter::Filter;
use wstap_store::facts::Selection;
use wstap_trace::view::{FrameView, MessageView};
use wstap_wire::Record;

/// How long the printer naps after catching up.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(10);

impl ConsoleOptions {
    /// Options from the command line and the environment.
    pub fn from_args(args: &RunArgs) -> Self {
        ConsoleOptions {
            verbose: args.verbose,
            quiet: args.quiet,
            color: color_wanted(),
        }
    }
}

/// Whether stdout takes colour: a terminal, and `NO_COLOR` unset or empty.
pub fn color_wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether the console shows `event`: all of them without a filter; with one, the frames
/// and messages it matches and the session lines it does not rule out.
fn shown(selection: &mut Option<Selection>, event: &BusEvent) -> bool {
    let Some(selection) = selection else {
        return true;
    };
    match event {
        BusEvent::Wire {
            session,
            record: Record::Frame(frame),
        } => selection.frame(&FrameView::of_record(*session, frame)),
        BusEvent::Wire {
            session,
            record: Record::Message(message),
        } => selection.message(&MessageView::of_record(*session, message)),
        BusEvent::Event(event) => selection.session_event(event) != Some(false),
    }
}

/// Prints batches until the bus closes. Blocking: run it on its own thread.
pub fn print(
    mut rx: mpsc::Receiver<Batch>,
    dropped: Arc<DropCounter>,
    options: ConsoleOptions,
    filter: Option<Filter>,
    views: views::ViewSettings,
) {
    let mut selection =
        filter.map(|filter| Selection::new(filter).with_view_rules(views.rules.clone()));
    let mut printer = Printer::with_views(options, views);
    let stdout = std::io::stdout();
    let mut text = String::new();
    while let Some(batch) = rx.blocking_recv() {
        text.clear();
        let missed = dropped.take_events();
        if missed > 0 && !options.quiet {
            let line = format!(
                "[console fell behind: {missed} events not shown here; a capture or trace, when on, has them all]"
            );
            text.push_str(&printer.paint(YELLOW, &line));
            text.push('\n');
        }
        for event in batch.iter() {
            if shown(&mut selection, event) {
                printer.bus_event(event, &mut text);
            } else {
                printer.hidden_bus_event(event);
            }
        }
        if !text.is_empty() {
            let mut out = stdout.lock();
            // A closed stdout (a pipe whose reader left) must not stop the proxy.
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        // Let batches gather: a person cannot read faster, and every wake-up costs the
        // relay a context switch on a small machine.
        if rx.is_empty() {
            std::thread::sleep(COALESCE);
        }
    }
}
