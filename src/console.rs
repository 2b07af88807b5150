//! The live log: Fiddler-style lines for every session, handshake, frame and exchange.
//!
//! The printer runs on a thread of its own, fed by a *lossy* bus subscription: when the
//! terminal cannot keep up, batches are dropped (and the printer says how many events it
//! missed) instead of slowing the relay. The trace file, if any, still has them all.
//!
//! ```text
//! 19:28:46.576400 #3 Client->Server (6 bytes)
//!     TYPE: PONG. FLAGS: 10001010 (FIN) DATA: 0 bytes, masked using KEY: 16-39-8F-63.
//! ```
//! Colour is used only when stdout is a terminal and `NO_COLOR` is not set.

use crate::RunArgs;
use chrono::{DateTime, Local, Utc};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use tokio::sync::mpsc;
use wstap_proxy::{Batch, BusEvent, DropCounter};
use wstap_trace::*;
use wstap_wire::close::close_code_name;
use wstap_wire::Record;

/// Text payloads longer than this many characters are cut on the console.
const TEXT_WIDTH: usize = 160;
/// Binary payloads show this many bytes as hex.
const HEX_BYTES: usize = 32;
/// How long the printer naps after catching up.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(10);

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleOptions {
    /// Show full headers.
    pub verbose: bool,
    /// Only errors.
    pub quiet: bool,
    /// Use ANSI colours.
    pub color: bool,
}

impl ConsoleOptions {
    /// Options from the command line and the environment.
    pub fn from_args(args: &RunArgs) -> Self {
        ConsoleOptions {
            verbose: args.verbose,
            quiet: args.quiet,
            color: std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }
}

/// Prints batches until the bus closes. Blocking: run it on its own thread.
pub fn print(mut rx: mpsc::Receiver<Batch>, dropped: Arc<DropCounter>, options: ConsoleOptions) {
    let printer = Printer { options };
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
            printer.event(event, &mut text);
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

const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const CYAN: &str = "36";
const DIM: &str = "2";

struct Printer {
    options: ConsoleOptions,
}

impl Printer {
    fn paint(&self, color: &str, text: &str) -> String {
        if self.options.color {
            format!("\x1b[{color}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn event(&self, event: &BusEvent, out: &mut String) {
        if self.options.quiet {
            // Frames are never errors of the proxy: skip them without converting.
            if let BusEvent::Event(e) = event {
                self.error_only(e, out);
            }
            return;
        }
        match event {
            BusEvent::Wire {
                session,
                record: Record::Frame(f),
            } => self.frame(&Frame::from_record(*session, f.clone()), out),
            BusEvent::Wire {
                session,
                record: Record::Message(m),
            } => {
                // Single-frame messages would repeat their frame's line.
                if m.frames > 1 || m.incomplete {
                    self.message(&Message::from_record(*session, m.clone()), out);
                }
            }
            BusEvent::Event(e) => self.trace_event(e, out),
        }
    }

    fn error_only(&self, event: &Event, out: &mut String) {
        match event {
            Event::Http(h) if h.responder == "proxy" && h.error.is_some() => self.http(h, out),
            Event::SessionEnd(e) if e.outcome == Outcome::Error => self.session_end(e, out),
            _ => {}
        }
    }

    fn trace_event(&self, event: &Event, out: &mut String) {
        match event {
            Event::SessionStart(s) => {
                let via = match s.via {
                    Via::Connect => "CONNECT",
                    Via::Absolute => "PROXY",
                };
                let line = format!("{} {} from {}", via, s.target, s.client);
                self.line(&s.time, s.session, &self.paint(DIM, &line), out);
            }
            Event::Handshake(h) => self.handshake(h, out),
            Event::Frame(f) => self.frame(f, out),
            Event::Message(m) => self.message(m, out),
            Event::Http(h) => self.http(h, out),
            Event::SessionEnd(e) => self.session_end(e, out),
            Event::Notice(n) => {
                out.push_str(&self.paint(YELLOW, &format!("[{}]", n.message)));
                out.push('\n');
            }
            Event::Trace(_) => {}
        }
    }

    fn line(&self, time: &DateTime<Utc>, session: u64, rest: &str, out: &mut String) {
        let local = time.with_timezone(&Local).format("%H:%M:%S%.6f");
        out.push_str(&format!("{local} #{session} {rest}\n"));
    }

    fn detail(&self, text: &str, out: &mut String) {
        out.push_str("    ");
        out.push_str(text);
        out.push('\n');
    }

    fn headers(&self, title: &str, first_line: &str, headers: &Headers, out: &mut String) {
        self.detail(&self.paint(DIM, &format!("{title}: {first_line}")), out);
        for (name, value) in headers {
            self.detail(&self.paint(DIM, &format!("  {name}: {value}")), out);
        }
    }

    /// The full request and response heads, for `-v`.
    fn heads(&self, request: &RequestHead, response: Option<&ResponseHead>, out: &mut String) {
        let first = format!("{} {} {}", request.method, request.target, request.version);
        self.headers("REQUEST", &first, &request.headers, out);
        if let Some(r) = response {
            let first = format!("{} {} {}", r.version, r.status, r.reason);
            self.headers("RESPONSE", &first, &r.headers, out);
        }
    }

    fn handshake(&self, h: &Handshake, out: &mut String) {
        self.line(&h.time, h.session, &self.paint(CYAN, &h.url), out);
        let status = h.response.as_ref().map_or("no response".to_owned(), |r| {
            format!("{} {}", r.status, r.reason)
        });
        let mut parts = vec![format!("HANDSHAKE: {status}")];
        if let Some(p) = &h.subprotocol {
            parts.push(format!("subprotocol {p}"));
        }
        if !h.extensions.is_empty() {
            parts.push(format!("extensions {}", h.extensions.join(", ")));
        }
        let switched = h.response.as_ref().is_some_and(|r| r.status == 101);
        if switched {
            parts.push(if h.accept_valid {
                self.paint(GREEN, "Sec-WebSocket-Accept valid")
            } else {
                self.paint(RED, "Sec-WebSocket-Accept INVALID")
            });
        }
        self.detail(&parts.join("; "), out);
        for name in &h.undecoded_extensions {
            self.detail(
                &self.paint(
                    YELLOW,
                    &format!("NOTE: extension {name} is relayed but not decoded"),
                ),
                out,
            );
        }
        for issue in &h.issues {
            // A refused upgrade is already told by the status.
            if !switched && issue.starts_with("server answered") {
                continue;
            }
            self.detail(&self.paint(RED, &format!("HANDSHAKE ISSUE: {issue}")), out);
        }
        if self.options.verbose {
            self.heads(&h.request, h.response.as_ref(), out);
        }
    }

    fn frame(&self, f: &Frame, out: &mut String) {
        let wire = u64::from(f.header_len) + f.payload_len;
        self.line(
            &f.time,
            f.session,
            &format!("{} ({wire} bytes)", f.dir.arrow()),
            out,
        );
        let mut flag_names: Vec<&str> = Vec::new();
        for (set, name) in [
            (f.fin, "FIN"),
            (f.rsv1, "RSV1"),
            (f.rsv2, "RSV2"),
            (f.rsv3, "RSV3"),
        ] {
            if set {
                flag_names.push(name);
            }
        }
        let flags = if flag_names.is_empty() {
            f.flags.clone()
        } else {
            format!("{} ({})", f.flags, flag_names.join(" "))
        };
        let mask = match &f.mask_key {
            Some(key) => format!(", masked using KEY: {}", dashed_key(key)),
            None => String::new(),
        };
        let type_name = f
            .opcode_name
            .strip_prefix("RESERVED_")
            .map_or(f.opcode_name.clone(), |n| format!("RESERVED {n}"));
        self.detail(
            &format!(
                "TYPE: {type_name}. FLAGS: {flags} DATA: {} bytes{mask}.",
                f.payload_len
            ),
            out,
        );
        if let Some(close) = &f.close {
            let code = close
                .code
                .map_or("no code".to_owned(), |c| match close_code_name(c) {
                    Some(name) => format!("{c} {name}"),
                    None => c.to_string(),
                });
            self.detail(&format!("CLOSE: {code} {:?}", close.reason), out);
        } else if let Some(inflated) = &f.inflated {
            self.detail(
                &format!("INFLATED: {} -> {} bytes", f.payload_len, inflated.len),
                out,
            );
            self.payload(f.opcode, &inflated.payload, out);
        } else if f.payload_len > 0 {
            self.payload(f.opcode, &f.payload, out);
        }
        for v in &f.violations {
            self.detail(&self.paint(RED, &format!("VIOLATION: {v}")), out);
        }
    }

    fn payload(&self, opcode: u8, payload: &Payload, out: &mut String) {
        let text = (opcode != 2).then(|| payload.as_text()).flatten();
        let shown = match text {
            Some(text) => {
                let mut cut: String = text.chars().take(TEXT_WIDTH).collect();
                let more = payload.truncated || cut.len() < text.len();
                cut = format!("{cut:?}");
                if more {
                    cut.push_str(" ...");
                }
                cut
            }
            None => {
                let hex: Vec<String> = payload
                    .bytes
                    .iter()
                    .take(HEX_BYTES)
                    .map(|b| format!("{b:02X}"))
                    .collect();
                let more = payload.truncated || payload.bytes.len() > HEX_BYTES;
                format!("{}{}", hex.join(" "), if more { " ..." } else { "" })
            }
        };
        self.detail(&shown, out);
    }

    fn message(&self, m: &Message, out: &mut String) {
        let state = if m.incomplete { ", INCOMPLETE" } else { "" };
        let line = format!(
            "MESSAGE ({}): {}, {} frames, {} bytes{state}",
            m.dir.short(),
            m.opcode_name,
            m.frames,
            m.len
        );
        self.detail(&self.paint(DIM, &line), out);
        self.payload(m.opcode, &m.payload, out);
        for v in &m.violations {
            self.detail(&self.paint(RED, &format!("VIOLATION: {v}")), out);
        }
    }

    fn http(&self, h: &HttpExchange, out: &mut String) {
        let status = match &h.response {
            Some(r) => format!("{} {}", r.status, r.reason),
            None => "no response".to_owned(),
        };
        let method = if h.request.method.is_empty() {
            "?"
        } else {
            &h.request.method
        };
        let line = format!(
            "{method} {} -> {status} ({} bytes, {:.1} ms)",
            h.url,
            h.response_body_bytes,
            h.duration_us as f64 / 1000.0
        );
        // The proxy's own errors stand out; its page (no error) reads like any exchange.
        if let (true, Some(why)) = (h.responder == "proxy", h.error.as_deref()) {
            self.line(
                &h.time,
                h.session,
                &self.paint(RED, &format!("{line} from wstap: {why}")),
                out,
            );
        } else {
            self.line(&h.time, h.session, &line, out);
            if let Some(e) = &h.error {
                self.detail(&self.paint(RED, e), out);
            }
        }
        if self.options.verbose {
            self.heads(&h.request, h.response.as_ref(), out);
        }
    }

    fn session_end(&self, e: &SessionEnd, out: &mut String) {
        let outcome = match e.outcome {
            Outcome::Closed => "closed",
            Outcome::Aborted => "aborted",
            Outcome::Error => "error",
        };
        let mut line = format!("END {} ({outcome})", e.kind);
        if let Some(close) = &e.close {
            let who = match close.initiator {
                Initiator::Client => "client",
                Initiator::Server => "server",
            };
            let code = close.code.map_or("no code".to_owned(), |c| c.to_string());
            line.push_str(&format!(", closed by {who} {code} {:?}", close.reason));
        }
        if e.kind == "websocket" {
            line.push_str(&format!(
                ", frames c2s {} s2c {}",
                e.frames.c2s, e.frames.s2c
            ));
        }
        // An HTTP session's bytes are counted per exchange (its `http` lines), not here.
        if e.kind != "http" {
            line.push_str(&format!(", bytes c2s {} s2c {}", e.bytes.c2s, e.bytes.s2c));
        }
        line.push_str(&format!(", {:.3} s", e.duration_us as f64 / 1e6));
        let color = if e.outcome == Outcome::Closed {
            DIM
        } else {
            YELLOW
        };
        self.line(&e.time, e.session, &self.paint(color, &line), out);
        if let Some(error) = &e.error {
            self.detail(&self.paint(RED, error), out);
        }
        for cut in &e.cut_frames {
            let of = cut
                .payload_len
                .map_or(String::new(), |n| format!(" of {n}"));
            let text = format!(
                "CUT FRAME ({}) #{}: {} of {} header bytes, {}{of} payload bytes arrived",
                cut.dir.short(),
                cut.index,
                cut.header_received,
                cut.header_len,
                cut.payload_received
            );
            self.detail(&self.paint(RED, &text), out);
        }
    }
}

/// `16398f63` as `16-39-8F-63`.
fn dashed_key(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_line(kind: &str) -> String {
        let printer = Printer {
            options: ConsoleOptions {
                verbose: false,
                quiet: false,
                color: false,
            },
        };
        let end = SessionEnd {
            session: 3,
            time: Utc::now(),
            outcome: Outcome::Closed,
            close: None,
            frames: PerDirection { c2s: 2, s2c: 2 },
            bytes: PerDirection { c2s: 40, s2c: 30 },
            kind: kind.to_owned(),
            error: None,
            cut_frames: Vec::new(),
            duration_us: 1_500_000,
        };
        let mut out = String::new();
        printer.session_end(&end, &mut out);
        out
    }

    #[test]
    fn a_relay_session_ends_with_its_byte_counts() {
        let line = end_line("websocket");
        assert!(
            line.contains(
                "END websocket (closed), frames c2s 2 s2c 2, bytes c2s 40 s2c 30, 1.500 s"
            ),
            "{line}"
        );
        assert!(end_line("tunnel").contains("bytes c2s 40 s2c 30"));
    }

    #[test]
    fn an_http_session_leaves_bytes_to_its_exchanges() {
        let line = end_line("http");
        assert!(line.contains("END http (closed), 1.500 s"), "{line}");
        assert!(!line.contains("bytes"), "{line}");
    }
}
