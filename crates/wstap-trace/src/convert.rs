//! Events from `wstap-wire` records and analyses.
//!
//! These conversions only move and copy small fields; the payload vectors move without
//! copying. JSON encoding happens later, wherever the event is written.

use crate::event::*;
use crate::payload::Payload;
use chrono::{DateTime, Utc};
use wstap_wire::handshake::HandshakeAnalysis;
use wstap_wire::{
    Capture, Direction, FrameHeader, FrameRecord, LengthEncoding, MaskingKey, MessageRecord,
    Opcode, Timestamp, Violation,
};

/// A wire timestamp as a UTC time (the epoch for values out of range).
pub fn to_utc(time: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.0).unwrap_or_default()
}

/// A UTC time as a wire timestamp.
pub fn from_utc(time: DateTime<Utc>) -> Timestamp {
    Timestamp(time.timestamp_micros())
}

/// A violation as the trace writes it: `code: description`.
pub fn violation_text(v: &Violation) -> String {
    format!("{}: {v}", v.code())
}

fn payload(capture: Capture) -> Payload {
    let truncated = capture.truncated();
    Payload {
        bytes: capture.data.to_vec(),
        truncated,
        dropped: false,
    }
}

impl Frame {
    /// The event for a frame record of `session`.
    pub fn from_record(session: u64, r: FrameRecord) -> Frame {
        let h = r.header;
        Frame {
            session,
            time: to_utc(r.time),
            dir: r.direction,
            index: r.index,
            fin: h.fin(),
            rsv1: h.rsv1(),
            rsv2: h.rsv2(),
            rsv3: h.rsv3(),
            opcode: h.opcode().bits(),
            opcode_name: h.opcode().name().to_owned(),
            flags: h.flags(),
            masked: h.mask().is_some(),
            mask_key: h.mask_key_hex(),
            header_len: h.header_len(),
            length_bits: h.length_encoding().bits(),
            payload_len: h.payload_len(),
            payload: payload(r.payload),
            close: r.close.map(|c| CloseInfo {
                code: c.code,
                reason: c.reason,
            }),
            inflated: r.inflated.map(|i| InflatedInfo {
                len: i.data.total,
                payload: payload(i.data),
            }),
            violations: r.violations.iter().map(violation_text).collect(),
        }
    }
}

impl Frame {
    /// The header this event describes, bit for bit (what [`Frame::from_record`] took
    /// apart, put back together).
    pub fn header(&self) -> FrameHeader {
        let bit = |set: bool, bit: u8| if set { bit } else { 0 };
        let first_byte = bit(self.fin, 0x80)
            | bit(self.rsv1, 0x40)
            | bit(self.rsv2, 0x20)
            | bit(self.rsv3, 0x10)
            | (self.opcode & 0x0F);
        let mask = self.mask_key.as_deref().and_then(parse_mask_key);
        let encoding = match self.length_bits {
            16 => LengthEncoding::Bits16,
            64 => LengthEncoding::Bits64,
            _ => LengthEncoding::Bits7,
        };
        FrameHeader::new(first_byte, mask, self.payload_len, encoding)
    }
}

/// Eight hex digits as a masking key.
fn parse_mask_key(hex: &str) -> Option<MaskingKey> {
    let value = u32::from_str_radix(hex, 16).ok()?;
    (hex.len() == 8).then(|| value.to_be_bytes())
}

impl Message {
    /// The event for a message record of `session`.
    pub fn from_record(session: u64, r: MessageRecord) -> Message {
        Message {
            session,
            time: to_utc(r.first_time),
            end_time: to_utc(r.last_time),
            dir: r.direction,
            opcode: r.opcode.bits(),
            opcode_name: r.opcode.name().to_owned(),
            frames: r.frames,
            len: r.data.total,
            wire_len: r.wire_payload_len,
            compressed: r.compressed,
            payload: payload(r.data),
            violations: r.violations.iter().map(violation_text).collect(),
            incomplete: r.incomplete,
            origin: MessageOrigin::Wire,
            wire: None,
            held: None,
        }
    }

    /// The event for a message wstap made (`origin`) and wrote to `dir`'s receiver at
    /// `time`: `data` is what it carries (unmasked, uncompressed), `wire` its frames as
    /// written, from which the frame count, the wire length and the compression are read.
    pub fn built(
        session: u64,
        time: DateTime<Utc>,
        dir: Direction,
        origin: MessageOrigin,
        opcode: Opcode,
        data: Vec<u8>,
        wire: Vec<u8>,
    ) -> Message {
        let (mut frames, mut wire_len, mut compressed, mut rest) = (0, 0, false, &wire[..]);
        while let Ok(header) = FrameHeader::parse(rest) {
            compressed |= frames == 0 && header.rsv1();
            frames += 1;
            wire_len += header.payload_len();
            let end = (header.header_len() as u64).saturating_add(header.payload_len());
            rest = rest
                .get(usize::try_from(end).unwrap_or(usize::MAX)..)
                .unwrap_or(&[]);
        }
        Message {
            session,
            time,
            end_time: time,
            dir,
            opcode: opcode.bits(),
            opcode_name: opcode.name().to_owned(),
            frames,
            len: data.len() as u64,
            wire_len,
            compressed,
            payload: Payload::all(data),
            violations: Vec::new(),
            incomplete: false,
            origin,
            wire: Some(Payload::all(wire)),
            held: None,
        }
    }
}

impl Handshake {
    /// The event for a WebSocket handshake that took `duration_us`, with the verdicts of
    /// `analysis`.
    pub fn new(exchange: Exchange, duration_us: u64, analysis: &HandshakeAnalysis) -> Handshake {
        Handshake {
            exchange,
            accept_valid: analysis.accept_valid,
            subprotocol: analysis.subprotocol.clone(),
            extensions: analysis
                .extensions
                .iter()
                .map(|e| e.to_header_value())
                .collect(),
            deflate: analysis.deflate.map(|d| DeflateInfo {
                server_no_context_takeover: d.server_no_context_takeover,
                client_no_context_takeover: d.client_no_context_takeover,
                server_max_window_bits: d.server_max_window_bits,
                client_max_window_bits: d.client_max_window_bits,
            }),
            undecoded_extensions: analysis
                .extensions
                .iter()
                .filter(|e| {
                    !e.name
                        .eq_ignore_ascii_case(wstap_wire::deflate::PERMESSAGE_DEFLATE)
                })
                .map(|e| e.name.clone())
                .collect(),
            issues: analysis.issues.iter().map(ToString::to_string).collect(),
            duration_us: Some(duration_us),
            upstream: None,
        }
    }
}

/// Body sizes of a plain HTTP exchange, who answered it, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayed {
    /// Request body bytes relayed.
    pub request_body_bytes: u64,
    /// Response body bytes relayed.
    pub response_body_bytes: u64,
    /// Who produced the response.
    pub responder: Responder,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

impl HttpExchange {
    /// The event for a plain HTTP exchange that took `duration_us`.
    pub fn new(exchange: Exchange, duration_us: u64, relayed: Relayed) -> HttpExchange {
        HttpExchange {
            exchange,
            request_body_bytes: relayed.request_body_bytes,
            response_body_bytes: relayed.response_body_bytes,
            duration_us,
            responder: relayed.responder,
            error: relayed.error,
        }
    }
}
