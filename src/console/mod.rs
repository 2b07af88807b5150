//! The live log: the [`printer`]'s lines for everything the proxy sees, on a thread of
//! its own.
//!
//! The printer is fed by a *lossy* bus subscription: when the terminal cannot keep up,
//! batches are dropped (and the printer says how many events it missed) instead of slowing
//! the relay. The trace file, if any, still has them all. Colour is used
//! only when stdout is a terminal and `NO_COLOR` is not set.

pub mod printer;

use crate::RunArgs;
use printer::{ConsoleOptions, Printer, YELLOW};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use tokio::sync::mpsc;
use wstap_bus::{Batch, DropCounter};

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

/// Prints batches until the bus closes. Blocking: run it on its own thread.
pub fn print(mut rx: mpsc::Receiver<Batch>, dropped: Arc<DropCounter>, options: ConsoleOptions) {
    let printer = Printer::new(options);
    let stdout = std::io::stdout();
    let mut text = String::new();
    while let Some(batch) = rx.blocking_recv() {
        text.clear();
        let missed = dropped.take_events();
        if missed > 0 && !options.quiet {
            let line = format!(
                "[console fell behind: {missed} events not shown here; the trace file has them]"
            );
            text.push_str(&printer.paint(YELLOW, &line));
            text.push('\n');
        }
        for event in batch.iter() {
            printer.bus_event(event, &mut text);
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
