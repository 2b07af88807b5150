//! `wstap`: a Fiddler-style WebSocket debugging proxy.
//!
//! This file parses the command line and dispatches; each subcommand lives in its own
//! module.

use clap::Parser;

/// A WebSocket debugging proxy: byte-exact relay, per-frame log, JSON and HAR traces.
#[derive(Debug, Parser)]
#[command(name = "wstap", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
