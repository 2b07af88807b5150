//! The Fiddler-style printer: lines for every session, handshake, frame and exchange.
//!
//! ```text
//! 19:28:46.576400 #3 Client->Server (6 bytes)
//!     TYPE: PONG. FLAGS: 10001010 (FIN) DATA: 0 bytes, masked using KEY: 16-39-8F-63.
//! ```
//! Frames and messages are printed from views ([`FrameView`], [`MessageView`]) that borrow
//! either a live wire record or a stored event, so the live console copies no payload and
//! `wstap frames` prints a capture exactly as the console printed it live.

use super::views::{SessionViews, ViewSettings};
use chrono::{DateTime, Local, Utc};
use wstap_trace::convert::to_utc;
use wstap_trace::view::{Bytes, FrameView, MessageView};
use wstap_trace::*;
use wstap_wire::close::close_code_name;
use wstap_wire::handshake::HandshakeIssue;
use wstap_wire::{Opcode, Record, Timestamp};

/// Text payloads longer than this many characters are cut on the console.
const TEXT_WIDTH: usize = 160;
/// Binary payloads show this many bytes as hex.
const HEX_BYTES: usize = 32;

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

/// Whether the console shows a message: a one-frame message would repeat its frame's lines.
fn worth_a_line(m: &MessageView<'_>) -> bool {
    m.frames > 1 || m.incomplete
}

/// ANSI colours.
pub const RED: &str = "31";
const GREEN: &str = "32";
pub const YELLOW: &str = "33";
const CYAN: &str = "36";
const DIM: &str = "2";

/// Turns events into console text: see the module documentation.
pub struct Printer {
    options: ConsoleOptions,
    views: SessionViews,
}

impl Printer {
    /// A printer whose sessions take their views from `settings` (`--view` rules first).
    pub fn with_views(options: ConsoleOptions, settings: ViewSettings) -> Self {
        Printer {
            options,
            views: SessionViews::new(settings),
        }
    }

    /// Colours `text` when colour is on.
    pub fn paint(&self, color: &str, text: &str) -> String {
        if self.options.color {
            format!("\x1b[{color}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// Appends the lines for one bus event.
    pub fn bus_event(&mut self, event: &BusEvent, out: &mut String) {
        if self.options.quiet {
            // Frames are never errors of the proxy: skip them without looking.
            if let BusEvent::Event(e) = event {
                self.error_only(e, out);
            }
            return;
        }
        match event {
            BusEvent::Wire {
                session,
                record: Record::Frame(f),
            } => self.frame(&FrameView::of_record(*session, f), out),
            BusEvent::Wire {
                session,
                record: Record::Message(m),
            } => self.message(&MessageView::of_record(*session, m), out),
            BusEvent::Event(e) => self.event(e, out),
        }
    }

    /// An event the filter hides: nothing is printed, but the views still read it, so the
    /// messages shown decode as they would among all (an MQTT packet begun in a hidden
    /// message, the packet a Socket.IO attachment belongs to).
    pub fn hidden_bus_event(&mut self, event: &BusEvent) {
        match event {
            _ if self.options.quiet => {}
            BusEvent::Wire {
                session,
                record: Record::Message(m),
            } => self.views.pass_over(&MessageView::of_record(*session, m)),
            BusEvent::Wire { .. } => {}
            BusEvent::Event(e) => self.hidden_event(e),
        }
    }

    /// An event of a capture the filter hides (see [`Printer::hidden_bus_event`]).
    pub fn hidden_event(&mut self, event: &Event) {
        match event {
            Event::Message(m) => self.views.pass_over(&MessageView::of_event(m)),
            Event::Frame(_) => {}
            other => self.views.event(other),
        }
    }

    fn error_only(&self, event: &Event, out: &mut String) {
        match event {
            Event::Http(h) if h.responder == Responder::Proxy && h.error.is_some() => {
                self.http(h, out)
            }
            Event::SessionEnd(e) if e.outcome == Outcome::Error => self.session_end(e, out),
            _ => {}
        }
    }

    /// Appends the lines for one event.
    pub fn event(&mut self, event: &Event, out: &mut String) {
        self.views.event(event);
        match event {
            Event::SessionStart(s) => {
                let via = match s.via {
                    Via::Connect => "CONNECT",
                    Via::Absolute => "PROXY",
                    Via::Socks5 => "SOCKS5",
                    Via::Reverse => "REVERSE",
                    Via::Proxy => "PROXY",
                };
                let mut line = format!("{} {} from {}", via, s.target, s.client);
                if let Some(listener) = &s.listener {
                    line.push_str(&format!(" on {listener}"));
                }
                if let Some(hop) = &s.upstream_proxy {
                    line.push_str(&format!(
                        " through {} ({:?} in {:.1} ms)",
                        hop.proxy,
                        hop.status_line,
                        hop.connect_us as f64 / 1000.0
                    ));
                }
                self.line(&s.time, s.session, &self.paint(DIM, &line), out);
            }
            Event::Handshake(h) => self.handshake(h, out),
            Event::Frame(f) => self.frame(&FrameView::of_event(f), out),
            Event::Message(m) => self.message(&MessageView::of_event(m), out),
            Event::Http(h) => self.http(h, out),
            Event::SessionEnd(e) => self.session_end(e, out),
            Event::Notice(n) => {
                out.push_str(&self.paint(YELLOW, &format!("[{}]", n.message)));
                out.push('\n');
            }
            Event::Intervention(i) => self.intervention(i, out),
            Event::Trace(_) => {}
        }
    }

    /// What wstap did to a live session, on a line of its own: held messages and every
    /// decision stand out from the traffic.
    fn intervention(&self, i: &Intervention, out: &mut String) {
        let mut line = i.action.name().to_uppercase().replace('_', " ");
        if let Some(dir) = i.dir {
            line.push_str(&format!(" ({})", dir.short()));
        }
        if let Some(held) = i.held {
            line.push_str(&format!(" held message {held}"));
        }
        if let Some(frame) = i.frame {
            line.push_str(&format!(", ending with frame {frame}"));
        }
        if let Some(breakpoint) = i.breakpoint {
            line.push_str(&format!(", breakpoint {breakpoint}"));
        }
        if let Some(opcode) = i.opcode {
            line.push_str(&format!(": {}", Opcode::from_bits(opcode).name()));
        }
        if let Some(code) = i.code {
            line.push_str(&format!(" {code}"));
            if let Some(reason) = i.reason.as_deref().filter(|r| !r.is_empty()) {
                line.push_str(&format!(" {reason:?}"));
            }
        }
        if let Some(bytes) = i.bytes {
            line.push_str(&format!(" ({bytes} bytes kept when it was let go)"));
        }
        if let Some(wire) = &i.wire {
            line.push_str(&format!(", {} bytes written", wire.bytes.len()));
        }
        line.push_str(&format!(" [by {}]", i.by.name()));
        let color = match i.action {
            Action::Held => YELLOW,
            Action::Lost | Action::Aborted | Action::Dropped => RED,
            _ => CYAN,
        };
        self.line(&i.time, i.session, &self.paint(color, &line), out);
        if let Some(payload) = &i.payload {
            let opcode = i.opcode.map_or(Opcode::Binary, Opcode::from_bits);
            let total = payload.bytes.len() as u64;
            self.payload(
                opcode,
                Bytes {
                    data: &payload.bytes,
                    total,
                    dropped: false,
                },
                out,
            );
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
        let exchange = &h.exchange;
        self.line(
            &exchange.time,
            exchange.session,
            &self.paint(CYAN, &exchange.url),
            out,
        );
        let status = h
            .exchange
            .response
            .as_ref()
            .map_or("no response".to_owned(), |r| {
                format!("{} {}", r.status, r.reason)
            });
        let mut parts = vec![format!("HANDSHAKE: {status}")];
        if let Some(p) = &h.subprotocol {
            parts.push(format!("subprotocol {p}"));
        }
        if !h.extensions.is_empty() {
            parts.push(format!("extensions {}", h.extensions.join(", ")));
        }
        let status = exchange.response.as_ref().map(|r| r.status);
        let switched = status == Some(101);
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
        // A refused upgrade is already told by the status line above.
        let refusal = status
            .filter(|_| !switched)
            .map(|s| HandshakeIssue::NotSwitchingProtocols(s).to_string());
        for issue in h.issues.iter().filter(|i| Some(*i) != refusal.as_ref()) {
            self.detail(&self.paint(RED, &format!("HANDSHAKE ISSUE: {issue}")), out);
        }
        if self.options.verbose {
            self.heads(&exchange.request, exchange.response.as_ref(), out);
        }
    }

    fn frame(&self, f: &FrameView<'_>, out: &mut String) {
        let h = &f.header;
        let rest = format!("{} ({} bytes)", f.dir.arrow(), h.wire_len());
        self.line(&to_utc(Timestamp(f.time_us)), f.session, &rest, out);
        let names = h.flag_names();
        let flags = if names.is_empty() {
            h.flags()
        } else {
            format!("{} ({})", h.flags(), names.join(" "))
        };
        let mask = match h.mask_key_dashed() {
            Some(key) => format!(", masked using KEY: {key}"),
            None => String::new(),
        };
        let opcode = h.opcode();
        let type_name = match opcode {
            Opcode::Reserved(bits) => format!("RESERVED 0x{bits:X}"),
            other => other.name().to_owned(),
        };
        self.detail(
            &format!(
                "TYPE: {type_name}. FLAGS: {flags} DATA: {} bytes{mask}.",
                h.payload_len()
            ),
            out,
        );
        if let Some((code, reason)) = f.close {
            let code = code.map_or("no code".to_owned(), |c| match close_code_name(c) {
                Some(name) => format!("{c} {name}"),
                None => c.to_string(),
            });
            self.detail(&format!("CLOSE: {code} {reason:?}"), out);
        } else if let Some(inflated) = f.inflated {
            self.detail(
                &format!("INFLATED: {} -> {} bytes", h.payload_len(), inflated.total),
                out,
            );
            self.payload(opcode, inflated, out);
        } else if h.payload_len() > 0 {
            self.payload(opcode, f.payload, out);
        }
        for v in f.violations.texts() {
            self.detail(&self.paint(RED, &format!("VIOLATION: {v}")), out);
        }
    }

    fn payload(&self, opcode: Opcode, payload: Bytes<'_>, out: &mut String) {
        if payload.dropped {
            let why = "(payload dropped to keep the capture within its bound: --capture-max)";
            return self.detail(&self.paint(DIM, why), out);
        }
        let text = (opcode != Opcode::Binary)
            .then(|| std::str::from_utf8(payload.data).ok())
            .flatten();
        let shown = match text {
            Some(text) => {
                let mut cut: String = text.chars().take(TEXT_WIDTH).collect();
                let more = payload.truncated() || cut.len() < text.len();
                cut = format!("{cut:?}");
                if more {
                    cut.push_str(" ...");
                }
                cut
            }
            None => {
                let hex: Vec<String> = payload
                    .data
                    .iter()
                    .take(HEX_BYTES)
                    .map(|b| format!("{b:02X}"))
                    .collect();
                let more = payload.truncated() || payload.data.len() > HEX_BYTES;
                format!("{}{}", hex.join(" "), if more { " ..." } else { "" })
            }
        };
        self.detail(&shown, out);
    }

    /// A message as a block of its own (`wstap frames --messages`): a line for it, then
    /// its data and violations.
    pub fn message_block(&mut self, m: &Message, out: &mut String) {
        let view = MessageView::of_event(m);
        let mut line = format!(
            "{} MESSAGE {}, {} frame{}, {} bytes",
            m.dir.arrow(),
            view.opcode.name(),
            m.frames,
            if m.frames == 1 { "" } else { "s" },
            m.len
        );
        if m.compressed {
            line.push_str(&format!(" (inflated from {})", m.wire_len));
        }
        if m.incomplete {
            line.push_str(", INCOMPLETE");
        }
        if !m.origin.is_wire() {
            line.push_str(&format!(", {} by wstap", m.origin.name().to_uppercase()));
        }
        self.line(&m.time, m.session, &line, out);
        self.payload(view.opcode, view.data, out);
        for v in view.violations.texts() {
            self.detail(&self.paint(RED, &format!("VIOLATION: {v}")), out);
        }
        self.decoded(&view, out);
    }

    /// A message's lines; nothing for a one-frame message, whose frame said it all.
    fn message(&mut self, m: &MessageView<'_>, out: &mut String) {
        if !m.origin.is_wire() {
            return self.written(m, out);
        }
        if !worth_a_line(m) {
            return self.decoded(m, out);
        }
        let state = if m.incomplete { ", INCOMPLETE" } else { "" };
        let line = format!(
            "MESSAGE ({}): {}, {} frames, {} bytes{state}",
            m.dir.short(),
            m.opcode.name(),
            m.frames,
            m.data.total
        );
        self.detail(&self.paint(DIM, &line), out);
        self.payload(m.opcode, m.data, out);
        for v in m.violations.texts() {
            self.detail(&self.paint(RED, &format!("VIOLATION: {v}")), out);
        }
        self.decoded(m, out);
    }

    /// A data message's decoded summary, when its session has a view (`-v`: the whole
    /// decode, as indented JSON).
    fn decoded(&mut self, m: &MessageView<'_>, out: &mut String) {
        let Some(decoded) = self.views.decode(m) else {
            return;
        };
        let summary = decoded.summary();
        if !summary.is_empty() {
            self.detail(&self.paint(CYAN, &summary), out);
        }
        if self.options.verbose {
            let items = decoded.to_json()["items"].clone();
            let tree = serde_json::to_string_pretty(&items).unwrap_or_default();
            for line in tree.lines() {
                self.detail(line, out);
            }
        }
    }

    /// A message wstap wrote: a line of its own (its payload is on the intervention's
    /// line just before it).
    fn written(&self, m: &MessageView<'_>, out: &mut String) {
        let mut line = format!(
            "WROTE ({}) {} message, {}: {} frame{}, {} bytes",
            m.dir.short(),
            m.origin.name(),
            m.opcode.name(),
            m.frames,
            if m.frames == 1 { "" } else { "s" },
            m.wire.map_or(0, <[u8]>::len)
        );
        if let Some(held) = m.held {
            line.push_str(&format!(" in place of held message {held}"));
        }
        let time = DateTime::from_timestamp_micros(m.time_us).unwrap_or_default();
        self.line(&time, m.session, &self.paint(CYAN, &line), out);
    }

    fn http(&self, h: &HttpExchange, out: &mut String) {
        let exchange = &h.exchange;
        let status = match &exchange.response {
            Some(r) => format!("{} {}", r.status, r.reason),
            None => "no response".to_owned(),
        };
        let method = if exchange.request.method.is_empty() {
            "?"
        } else {
            &exchange.request.method
        };
        let line = format!(
            "{method} {} -> {status} ({} bytes, {:.1} ms)",
            exchange.url,
            h.response_body_bytes,
            h.duration_us as f64 / 1000.0
        );
        // The proxy's own errors stand out; its page (no error) reads like any exchange.
        match (h.responder, h.error.as_deref()) {
            (Responder::Proxy, Some(why)) => {
                let line = format!("{line} from wstap: {why}");
                self.line(
                    &exchange.time,
                    exchange.session,
                    &self.paint(RED, &line),
                    out,
                );
            }
            (_, error) => {
                self.line(&exchange.time, exchange.session, &line, out);
                if let Some(e) = error {
                    self.detail(&self.paint(RED, e), out);
                }
            }
        }
        if self.options.verbose {
            self.heads(&exchange.request, exchange.response.as_ref(), out);
        }
    }

    fn session_end(&self, e: &SessionEnd, out: &mut String) {
        let outcome = match e.outcome {
            Outcome::Closed => "closed",
            Outcome::Aborted => "aborted",
            Outcome::Error => "error",
        };
        let mut line = format!("END {} ({outcome})", e.kind.name());
        if let Some(close) = &e.close {
            let who = match close.initiator {
                Initiator::Client => "client",
                Initiator::Server => "server",
            };
            let code = close.code.map_or("no code".to_owned(), |c| c.to_string());
            line.push_str(&format!(", closed by {who} {code} {:?}", close.reason));
        }
        if e.kind == SessionKind::WebSocket {
            line.push_str(&format!(
                ", frames c2s {} s2c {}",
                e.frames.c2s, e.frames.s2c
            ));
        }
        // An HTTP session's bytes are counted per exchange (its `http` lines), not here.
        if e.kind.relays_bytes() {
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
        if let Some(w) = &e.withheld {
            let text = format!(
                "WITHHELD ({}): {} bytes from frame #{} on",
                w.dir.short(),
                w.bytes,
                w.frame
            );
            self.detail(&self.paint(RED, &text), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end_line(kind: SessionKind) -> String {
        let printer = Printer::with_views(
            ConsoleOptions {
                verbose: false,
                quiet: false,
                color: false,
            },
            ViewSettings::default(),
        );
        let end = SessionEnd {
            session: 3,
            time: Utc::now(),
            outcome: Outcome::Closed,
            close: None,
            frames: PerDirection { c2s: 2, s2c: 2 },
            bytes: PerDirection { c2s: 40, s2c: 30 },
            kind,
            error: None,
            cut_frames: Vec::new(),
            withheld: None,
            duration_us: 1_500_000,
        };
        let mut out = String::new();
        printer.session_end(&end, &mut out);
        out
    }

    #[test]
    fn a_relay_session_ends_with_its_byte_counts() {
        let line = end_line(SessionKind::WebSocket);
        assert!(
            line.contains(
                "END websocket (closed), frames c2s 2 s2c 2, bytes c2s 40 s2c 30, 1.500 s"
            ),
            "{line}"
        );
        assert!(end_line(SessionKind::Tunnel).contains("bytes c2s 40 s2c 30"));
    }

    #[test]
    fn an_http_session_leaves_bytes_to_its_exchanges() {
        let line = end_line(SessionKind::Http);
        assert!(line.contains("END http (closed), 1.500 s"), "{line}");
        assert!(!line.contains("bytes"), "{line}");
    }
}
