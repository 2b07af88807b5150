//! Events from `wstap-wire` records and analyses.
//!
//! These conversions only move and copy small fields; the payload vectors move without
//! copying. JSON encoding happens later, wherever the event is written.

use crate::event::*;
use crate::payload::Payload;
use chrono::{DateTime, Utc};
use wstap_wire::handshake::HandshakeAnalysis;
use wstap_wire::{Capture, Direction, FrameRecord, MessageRecord, Timestamp, Violation};

/// A wire timestamp as a UTC time (the epoch for values out of range).
pub fn to_utc(time: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(time.0).unwrap_or_default()
}

/// A UTC time as a wire timestamp.
pub fn from_utc(time: DateTime<Utc>) -> Timestamp {
    Timestamp(time.timestamp_micros())
}

impl From<Direction> for Dir {
    fn from(d: Direction) -> Dir {
        match d {
            Direction::ClientToServer => Dir::ClientToServer,
            Direction::ServerToClient => Dir::ServerToClient,
        }
    }
}

impl Dir {
    /// `"c2s"` or `"s2c"`.
    pub fn short(self) -> &'static str {
        match self {
            Dir::ClientToServer => "c2s",
            Dir::ServerToClient => "s2c",
        }
    }

    /// `Client->Server` or `Server->Client`.
    pub fn arrow(self) -> &'static str {
        match self {
            Dir::ClientToServer => "Client->Server",
            Dir::ServerToClient => "Server->Client",
        }
    }
}

/// A violation as the trace writes it: `code: description`.
pub fn violation_text(v: &Violation) -> String {
    format!("{}: {v}", v.code())
}

fn payload(capture: Capture) -> Payload {
    let truncated = capture.truncated();
    Payload {
        bytes: capture.data,
        truncated,
    }
}

impl Frame {
    /// The event for a frame record of `session`.
    pub fn from_record(session: u64, r: FrameRecord) -> Frame {
        let h = r.header;
        Frame {
            session,
            time: to_utc(r.time),
            dir: r.direction.into(),
            index: r.index,
            fin: h.fin,
            rsv1: h.rsv1,
            rsv2: h.rsv2,
            rsv3: h.rsv3,
            opcode: h.opcode.bits(),
            opcode_name: h.opcode.name().to_owned(),
            flags: h.flags(),
            masked: h.mask.is_some(),
            mask_key: h.mask_key_hex(),
            header_len: h.header_len,
            length_bits: h.length_encoding.bits(),
            payload_len: h.payload_len,
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

impl Message {
    /// The event for a message record of `session`.
    pub fn from_record(session: u64, r: MessageRecord) -> Message {
        Message {
            session,
            time: to_utc(r.first_time),
            end_time: to_utc(r.last_time),
            dir: r.direction.into(),
            opcode: r.opcode.bits(),
            opcode_name: r.opcode.name().to_owned(),
            frames: r.frames,
            len: r.data.total,
            wire_len: r.wire_payload_len,
            compressed: r.compressed,
            payload: payload(r.data),
            violations: r.violations.iter().map(violation_text).collect(),
            incomplete: r.incomplete,
        }
    }
}

impl Handshake {
    /// Fills the analysis fields of a handshake event from `analysis`.
    pub fn apply_analysis(&mut self, analysis: &HandshakeAnalysis) {
        self.accept_valid = analysis.accept_valid;
        self.subprotocol = analysis.subprotocol.clone();
        self.extensions = analysis
            .extensions
            .iter()
            .map(|e| e.to_header_value())
            .collect();
        self.deflate = analysis.deflate.map(|d| DeflateInfo {
            server_no_context_takeover: d.server_no_context_takeover,
            client_no_context_takeover: d.client_no_context_takeover,
            server_max_window_bits: d.server_max_window_bits,
            client_max_window_bits: d.client_max_window_bits,
        });
        self.undecoded_extensions = analysis
            .extensions
            .iter()
            .filter(|e| {
                !e.name
                    .eq_ignore_ascii_case(wstap_wire::deflate::PERMESSAGE_DEFLATE)
            })
            .map(|e| e.name.clone())
            .collect();
        self.issues = analysis.issues.iter().map(ToString::to_string).collect();
    }
}
