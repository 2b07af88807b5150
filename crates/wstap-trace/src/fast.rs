//! A hand-written writer for the two hot event types, `frame` and `message`.
//!
//! Under load a trace holds two frame lines and two message lines per echoed message, and
//! going through [`crate::Event`] and serde for each one (building strings, then escaping
//! every byte of them, base64 included) took most of the trace thread's time. These
//! functions write the same JSON straight from `wstap-wire` records: base64 goes into the
//! line without an escape scan, text is escaped in runs, numbers and flags are written
//! without `core::fmt`, the timestamp's date part is formatted once per second, and a
//! one-frame message's line copies its frame line's payload instead of encoding it again
//! (see [`LineCache`]). The output parses to exactly what the serde path writes; tests
//! hold them to that. `cargo bench -p wstap-trace` measures the cost per line.

use crate::convert::violation_text;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use wstap_wire::{Capture, FrameRecord, MessageRecord, Opcode, Timestamp};

/// What the line writer keeps between lines so as not to repeat work: the formatted date
/// down to the second, and the payload of the last frame line.
#[derive(Debug, Default)]
pub struct LineCache {
    time: TimeCache,
    frame_payload: PayloadCache,
}

/// The payload of the last frame line, raw and as written. A message of one uncompressed
/// frame carries the same bytes as that frame, and its line (which follows the frame's)
/// copies the frame line's encoding instead of encoding the bytes again.
#[derive(Debug, Default)]
struct PayloadCache {
    data: Vec<u8>,
    truncated: bool,
    json: Vec<u8>,
}

impl PayloadCache {
    /// The JSON written for `capture`, if it is the one remembered.
    fn get(&self, capture: &Capture) -> Option<&[u8]> {
        (!self.json.is_empty()
            && self.truncated == capture.truncated()
            && self.data == capture.data)
            .then_some(self.json.as_slice())
    }

    /// Forgets the remembered payload: the next message line encodes its own.
    fn forget(&mut self) {
        self.json.clear();
    }

    fn remember(&mut self, capture: &Capture, json: &[u8]) {
        self.data.clear();
        self.data.extend_from_slice(&capture.data);
        self.truncated = capture.truncated();
        self.json.clear();
        self.json.extend_from_slice(json);
    }
}

/// Caches the formatted date and time down to the second.
#[derive(Debug, Default)]
struct TimeCache {
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
        out.push(b'.');
        write_digits(out, micros as u64, 6);
        out.extend_from_slice(b"Z\"");
    }
}

/// Writes the last `width` decimal digits of `value`, zero-padded.
fn write_digits(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Writes an integer in decimal.
fn write_int(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn write_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

const HEX: &[u8; 16] = b"0123456789abcdef";

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
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
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
    out.extend_from_slice(b",\"truncated\":");
    write_bool(out, capture.truncated());
    out.push(b'}');
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

/// Writes `"dir":"c2s"` and the like, preceded by a comma.
fn write_dir(out: &mut Vec<u8>, direction: wstap_wire::Direction) {
    out.extend_from_slice(b",\"dir\":\"");
    out.extend_from_slice(direction.short().as_bytes());
    out.push(b'"');
}

/// Writes `,"opcode":1,"opcode_name":"TEXT"`.
fn write_opcode(out: &mut Vec<u8>, opcode: wstap_wire::Opcode) {
    out.extend_from_slice(b",\"opcode\":");
    write_int(out, opcode.bits());
    out.extend_from_slice(b",\"opcode_name\":\"");
    out.extend_from_slice(opcode.name().as_bytes());
    out.push(b'"');
}

/// Appends one `frame` line (with its newline) for `record` of `session`.
pub fn write_frame(out: &mut Vec<u8>, cache: &mut LineCache, session: u64, r: &FrameRecord) {
    let times = &mut cache.time;
    let h = &r.header;
    out.extend_from_slice(b"{\"type\":\"frame\",\"session\":");
    write_int(out, session);
    out.extend_from_slice(b",\"time\":");
    times.write(out, r.time);
    write_dir(out, r.direction);
    out.extend_from_slice(b",\"index\":");
    write_int(out, r.index);
    for (name, bit) in [
        (&b",\"fin\":"[..], h.fin()),
        (b",\"rsv1\":", h.rsv1()),
        (b",\"rsv2\":", h.rsv2()),
        (b",\"rsv3\":", h.rsv3()),
    ] {
        out.extend_from_slice(name);
        write_bool(out, bit);
    }
    write_opcode(out, h.opcode());
    out.extend_from_slice(b",\"flags\":\"");
    for shift in (0..8).rev() {
        out.push(b'0' + ((h.first_byte() >> shift) & 1));
    }
    out.extend_from_slice(b"\",\"masked\":");
    write_bool(out, h.mask().is_some());
    out.extend_from_slice(b",\"mask_key\":");
    match h.mask() {
        Some(key) => {
            out.push(b'"');
            for byte in key {
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            }
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"header_len\":");
    write_int(out, h.header_len());
    out.extend_from_slice(b",\"length_bits\":");
    write_int(out, h.length_encoding().bits());
    out.extend_from_slice(b",\"payload_len\":");
    write_int(out, h.payload_len());
    out.extend_from_slice(b",\"payload\":");
    let payload_start = out.len();
    write_payload(out, &r.payload);
    // Only a final, uncompressed frame that starts its message can be a whole message
    // whose line repeats this payload; copying any other frame's payload is wasted work.
    if h.fin() && !h.rsv1() && h.opcode() != Opcode::Continuation {
        cache
            .frame_payload
            .remember(&r.payload, &out[payload_start..]);
    } else {
        cache.frame_payload.forget();
    }
    if let Some(close) = &r.close {
        out.extend_from_slice(b",\"close\":{\"code\":");
        match close.code {
            Some(code) => write_int(out, code),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"reason\":");
        write_str(out, &close.reason);
        out.push(b'}');
    }
    if let Some(inflated) = &r.inflated {
        out.extend_from_slice(b",\"inflated\":{\"len\":");
        write_int(out, inflated.data.total);
        out.extend_from_slice(b",\"payload\":");
        write_payload(out, &inflated.data);
        out.push(b'}');
    }
    out.extend_from_slice(b",\"violations\":");
    write_violations(out, &r.violations);
    out.extend_from_slice(b"}\n");
}

/// Appends one `message` line (with its newline) for `record` of `session`.
pub fn write_message(out: &mut Vec<u8>, cache: &mut LineCache, session: u64, r: &MessageRecord) {
    let times = &mut cache.time;
    out.extend_from_slice(b"{\"type\":\"message\",\"session\":");
    write_int(out, session);
    out.extend_from_slice(b",\"time\":");
    times.write(out, r.first_time);
    out.extend_from_slice(b",\"end_time\":");
    times.write(out, r.last_time);
    write_dir(out, r.direction);
    write_opcode(out, r.opcode);
    out.extend_from_slice(b",\"frames\":");
    write_int(out, r.frames);
    out.extend_from_slice(b",\"len\":");
    write_int(out, r.data.total);
    out.extend_from_slice(b",\"wire_len\":");
    write_int(out, r.wire_payload_len);
    out.extend_from_slice(b",\"compressed\":");
    write_bool(out, r.compressed);
    out.extend_from_slice(b",\"payload\":");
    let same_as_frame = (r.frames == 1 && !r.compressed)
        .then(|| cache.frame_payload.get(&r.data))
        .flatten();
    match same_as_frame {
        Some(json) => out.extend_from_slice(json),
        None => write_payload(out, &r.data),
    }
    out.extend_from_slice(b",\"violations\":");
    write_violations(out, &r.violations);
    if r.incomplete {
        out.extend_from_slice(b",\"incomplete\":true");
    }
    out.extend_from_slice(b"}\n");
}
