//! The JSON the page reads: rows of the frames and messages tables (small: a preview, not
//! the payload), and the detail of one record (every byte kept, in base64).
//!
//! Everything here came from a peer. It leaves as JSON strings, and the page renders it
//! as text, never as HTML.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};
use wstap_store::{StoredFrame, StoredHandshake, StoredMessage};
use wstap_trace::Payload;
use wstap_views::Decoded;
use wstap_wire::header::flag_names;
use wstap_wire::Opcode;

/// Characters of text a row's preview shows.
const PREVIEW_CHARS: usize = 160;
/// Bytes of binary a row's preview shows, in hex.
const PREVIEW_BYTES: usize = 48;

/// A frame as a row of the frames table, at `index` in the view.
pub fn frame_row(index: u64, stored: &StoredFrame) -> Value {
    let f = &stored.frame;
    let header = f.header();
    let shown = f.inflated.as_ref().map_or(&f.payload, |i| &i.payload);
    json!({
        "index": index,
        "seq": stored.seq,
        "id": stored.id,
        "time_us": f.time.timestamp_micros(),
        "end_time_us": stored.end_time_us,
        "dir": f.dir.short(),
        "opcode": f.opcode,
        "opcode_name": f.opcode_name,
        "flags_byte": header.first_byte(),
        "flags": flag_names(header.first_byte()),
        "mask_key": header.mask_key_dashed(),
        "header_len": f.header_len,
        "len": f.payload_len,
        "inflated_len": f.inflated.as_ref().map(|i| i.len),
        "preview": preview(Opcode::from_bits(f.opcode), shown),
        "close": f.close.as_ref().map(|c| json!({ "code": c.code, "reason": c.reason })),
        "violations": f.violations,
        "message": stored.msg,
        "fate": stored.fate,
    })
}

/// A message as a row of the messages table, at `index` in the view.
pub fn message_row(index: u64, stored: &StoredMessage) -> Value {
    let m = &stored.message;
    json!({
        "index": index,
        "seq": stored.seq,
        "id": stored.id,
        "time_us": m.time.timestamp_micros(),
        "end_time_us": m.end_time.timestamp_micros(),
        "dir": m.dir.short(),
        "opcode": m.opcode,
        "opcode_name": m.opcode_name,
        "flags_byte": stored.flags,
        "flags": flag_names(stored.flags),
        "frames": m.frames,
        "first_frame": stored.first_frame,
        "last_frame": stored.last_frame,
        "len": m.len,
        "wire_len": m.wire_len,
        "compressed": m.compressed,
        "preview": preview(Opcode::from_bits(m.opcode), &m.payload),
        "close": close_of(m.opcode, &m.payload.bytes),
        "violations": m.violations,
        "incomplete": m.incomplete,
        "fate": stored.fate,
        "origin": (!m.origin.is_wire()).then(|| m.origin.name()),
        "held": m.held,
    })
}

/// Adds a message row's decoded summary (`decoded`: its view, its one line, and the
/// calls it makes or answers, by key) to `row`.
pub fn add_decoded(row: &mut Value, decoded: &Decoded) {
    let calls: Vec<Value> = decoded
        .items
        .iter()
        .filter_map(|item| item.call.as_ref())
        .map(|call| json!({ "key": call.key, "role": call.role.name() }))
        .collect();
    row["decoded"] = json!({
        "view": decoded.view.name(),
        "summary": decoded.summary(),
        "problem": decoded.problem.is_some(),
        "calls": calls,
    });
}

/// A frame with every byte kept: its row, its payload and (when compressed) the inflated
/// bytes.
pub fn frame_detail(stored: &StoredFrame) -> Value {
    let f = &stored.frame;
    let mut detail = frame_row(stored.seq, stored);
    detail["masked"] = json!(f.masked);
    detail["length_bits"] = json!(f.length_bits);
    detail["fin"] = json!(f.fin);
    detail["rsv"] = json!([f.rsv1, f.rsv2, f.rsv3]);
    detail["wire"] = bytes(&f.payload, f.payload_len);
    detail["data"] = match &f.inflated {
        Some(inflated) => bytes(&inflated.payload, inflated.len),
        None => bytes(&f.payload, f.payload_len),
    };
    detail
}

/// A message with every byte kept: its row, its data (inflated, when compressed) and the
/// bytes its frames carried on the wire.
pub fn message_detail(stored: &StoredMessage, wire: Option<(&[u8], bool)>) -> Value {
    let m = &stored.message;
    let mut detail = message_row(stored.seq, stored);
    detail["data"] = bytes(&m.payload, m.len);
    detail["wire"] = match wire {
        Some((wire, truncated)) => json!({
            "base64": BASE64.encode(wire),
            "len": m.wire_len,
            "truncated": truncated || (wire.len() as u64) < m.wire_len,
        }),
        None => Value::Null,
    };
    detail
}

/// The handshake as the session view shows it: the heads as sent, and the verdicts.
pub fn handshake(stored: &StoredHandshake) -> Value {
    let h = &stored.handshake;
    let head = |raw: &Option<Vec<u8>>| {
        raw.as_deref()
            .map(|r| String::from_utf8_lossy(r).into_owned())
    };
    json!({
        "url": h.exchange.url,
        "time_us": h.exchange.time.timestamp_micros(),
        "request_raw": head(&stored.request_raw),
        "response_raw": head(&stored.response_raw),
        "request": h.exchange.request,
        "response": h.exchange.response,
        "forwarded": h.exchange.forwarded,
        "accept_valid": h.accept_valid,
        "subprotocol": h.subprotocol,
        "extensions": h.extensions,
        "deflate": h.deflate,
        "undecoded_extensions": h.undecoded_extensions,
        "issues": h.issues,
        "duration_us": h.duration_us,
    })
}

/// Kept bytes in base64, with the length they had on the wire.
fn bytes(payload: &Payload, len: u64) -> Value {
    json!({
        "base64": BASE64.encode(&payload.bytes),
        "len": len,
        "truncated": payload.truncated,
        "dropped": payload.dropped,
    })
}

/// The close code and reason a close message carries.
fn close_of(opcode: u8, data: &[u8]) -> Value {
    if Opcode::from_bits(opcode) != Opcode::Close {
        return Value::Null;
    }
    match data {
        [hi, lo, reason @ ..] => json!({
            "code": u16::from_be_bytes([*hi, *lo]),
            "reason": String::from_utf8_lossy(reason),
        }),
        _ => json!({ "code": null, "reason": "" }),
    }
}

/// The start of a payload for a table row: text as text (line breaks shown as symbols),
/// anything else as hex.
fn preview(opcode: Opcode, payload: &Payload) -> Value {
    if payload.dropped {
        return json!({ "dropped": true });
    }
    let bytes = &payload.bytes;
    let text = match opcode {
        Opcode::Binary => None,
        _ => std::str::from_utf8(bytes).ok(),
    };
    match text {
        Some(text) => {
            let shown: String = text
                .chars()
                .take(PREVIEW_CHARS)
                .map(|c| match c {
                    '\n' => '\u{23ce}',
                    c if c.is_control() => '\u{b7}',
                    c => c,
                })
                .collect();
            json!({ "text": shown, "more": text.chars().count() > PREVIEW_CHARS || payload.truncated })
        }
        None => {
            let hex: Vec<String> = bytes
                .iter()
                .take(PREVIEW_BYTES)
                .map(|b| format!("{b:02x}"))
                .collect();
            json!({ "hex": hex.join(" "), "more": bytes.len() > PREVIEW_BYTES || payload.truncated })
        }
    }
}
