//! A hand-written writer for the two hot event types, `frame` and `message`.
//!
//! Under load a trace holds two frame lines and two message lines per echoed message, and
//! going through [`crate::Event`] and serde for each one (building strings, then escaping
//! every byte of them, base64 included) took most of the trace thread's time. These
//! functions write the same JSON straight from `wstap-wire` records: base64 goes into the
//! line without an escape scan, text is escaped in runs, and the timestamp's date part is
//! formatted once per second. The output parses to exactly what the serde path writes; a
//! test holds them to that.

use crate::convert::violation_text;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use std::io::Write;
use wstap_wire::{Capture, FrameRecord, MessageRecord, Timestamp};

/// Caches the formatted date and time down to the second.
#[derive(Debug, Default)]
pub struct TimeCache {
    second: i64,
    prefix: String,
}

impl TimeCache {
    /// Writes `"2026-11-21T19:28:46.576400Z"` (with the quotes) for `time`.
    fn write(&mut self, out: &mut Vec<u8>, time: Timestamp) {
        let second = time.0.div_euclid(1_000_000);
        let micros = time.0.rem_euclid(1_000_000);
        if second != self.second || self.prefix.is_empty() {
            self.second = second;
            let at = chrono::DateTime::from_timestamp(second, 0).unwrap_or_default();
            self.prefix = at.format("%Y-%m-%dT%H:%M:%S").to_string();
        }
        out.push(b'"');
        out.extend_from_slice(self.prefix.as_bytes());
        let _ = write!(out, ".{micros:06}Z\"");
    }
}

/// Writes `s` as a JSON string, escaping what JSON requires.
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_payload(out: &mut Vec<u8>, capture: &Capture) {
    out.extend_from_slice(b"{\"encoding\":");
    match std::str::from_utf8(&capture.data) {
        Ok(text) => {
            out.extend_from_slice(b"\"utf8\",\"data\":");
            write_str(out, text);
        }
        Err(_) => {
            out.extend_from_slice(b"\"base64\",\"data\":\"");
            let start = out.len();
            out.resize(start + capture.data.len().div_ceil(3) * 4, 0);
            let written = BASE64
                .encode_slice(&capture.data, &mut out[start..])
                .unwrap_or(0);
            out.truncate(start + written);
            out.push(b'"');
        }
    }
    let _ = write!(out, ",\"truncated\":{}}}", capture.truncated());
}

fn write_violations(out: &mut Vec<u8>, violations: &[wstap_wire::Violation]) {
    out.push(b'[');
    for (i, v) in violations.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, &violation_text(v));
    }
    out.push(b']');
}

fn dir(direction: wstap_wire::Direction) -> &'static str {
    direction.short()
}

/// Appends one `frame` line (with its newline) for `record` of `session`.
pub fn write_frame(out: &mut Vec<u8>, times: &mut TimeCache, session: u64, r: &FrameRecord) {
    let h = &r.header;
    let _ = write!(out, "{{\"type\":\"frame\",\"session\":{session},\"time\":");
    times.write(out, r.time);
    let _ = write!(
        out,
        ",\"dir\":\"{}\",\"index\":{},\"fin\":{},\"rsv1\":{},\"rsv2\":{},\"rsv3\":{},\"opcode\":{},\"opcode_name\":\"{}\",\"flags\":\"{:08b}\",\"masked\":{},\"mask_key\":",
        dir(r.direction),
        r.index,
        h.fin,
        h.rsv1,
        h.rsv2,
        h.rsv3,
        h.opcode.bits(),
        h.opcode.name(),
        h.first_byte,
        h.mask.is_some()
    );
    match h.mask {
        Some(k) => {
            let _ = write!(out, "\"{:02x}{:02x}{:02x}{:02x}\"", k[0], k[1], k[2], k[3]);
        }
        None => out.extend_from_slice(b"null"),
    }
    let _ = write!(
        out,
        ",\"header_len\":{},\"length_bits\":{},\"payload_len\":{},\"payload\":",
        h.header_len,
        h.length_encoding.bits(),
        h.payload_len
    );
    write_payload(out, &r.payload);
    if let Some(close) = &r.close {
        out.extend_from_slice(b",\"close\":{\"code\":");
        match close.code {
            Some(code) => {
                let _ = write!(out, "{code}");
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"reason\":");
        write_str(out, &close.reason);
        out.push(b'}');
    }
    if let Some(inflated) = &r.inflated {
        let _ = write!(
            out,
            ",\"inflated\":{{\"len\":{},\"payload\":",
            inflated.data.total
        );
        write_payload(out, &inflated.data);
        out.push(b'}');
    }
    out.extend_from_slice(b",\"violations\":");
    write_violations(out, &r.violations);
    out.extend_from_slice(b"}\n");
}

/// Appends one `message` line (with its newline) for `record` of `session`.
pub fn write_message(out: &mut Vec<u8>, times: &mut TimeCache, session: u64, r: &MessageRecord) {
    let _ = write!(
        out,
        "{{\"type\":\"message\",\"session\":{session},\"time\":"
    );
    times.write(out, r.first_time);
    out.extend_from_slice(b",\"end_time\":");
    times.write(out, r.last_time);
    let _ = write!(
        out,
        ",\"dir\":\"{}\",\"opcode\":{},\"opcode_name\":\"{}\",\"frames\":{},\"len\":{},\"wire_len\":{},\"compressed\":{},\"payload\":",
        dir(r.direction),
        r.opcode.bits(),
        r.opcode.name(),
        r.frames,
        r.data.total,
        r.wire_payload_len,
        r.compressed
    );
    write_payload(out, &r.data);
    out.extend_from_slice(b",\"violations\":");
    write_violations(out, &r.violations);
    if r.incomplete {
        out.extend_from_slice(b",\"incomplete\":true");
    }
    out.extend_from_slice(b"}\n");
}
