//! Rows back into values: sessions, frames and messages from their columns (payloads
//! inline or from the payload file), events from their JSON, and the errors a damaged
//! row or database gives.

use super::model::{SessionRow, StoredFrame, StoredMessage};
use crate::payloads::PayloadReader;
use crate::StoreError;
use rusqlite::types::Value;
use rusqlite::Row;
use std::path::Path;
use wstap_filter::SqlValue;
use wstap_trace::convert::to_utc;
use wstap_trace::{
    CloseInfo, Event, Frame, InflatedInfo, Initiator, Message, MessageOrigin, Payload, SessionKind,
    TlsLeg, Via,
};
use wstap_views::{Detector, View};
use wstap_wire::{Direction, FrameHeader, LengthEncoding, Opcode, Timestamp};

pub(super) fn value(v: SqlValue) -> Value {
    match v {
        SqlValue::Int(i) => Value::Integer(i),
        SqlValue::Real(r) => Value::Real(r),
        SqlValue::Text(t) => Value::Text(t),
    }
}

/// SQLite's word that the file is not a database, or is damaged, as a capture error.
pub(super) fn damaged(dir: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => {
            StoreError::not_a_capture(dir, "its capture.db is not an SQLite database")
        }
        Some(ErrorCode::DatabaseCorrupt) => {
            StoreError::not_a_capture(dir, "its capture.db is damaged (cut short, or overwritten)")
        }
        _ => StoreError::Sqlite(e),
    }
}

pub(super) fn bad_row(table: &'static str, id: i64, why: &str) -> StoreError {
    StoreError::BadRow {
        table,
        id,
        why: why.to_owned(),
    }
}

pub(super) fn parse_event(table: &'static str, id: i64, json: &str) -> Result<Event, StoreError> {
    serde_json::from_str(json).map_err(|e| bad_row(table, id, &e.to_string()))
}

pub(super) fn direction(text: &str) -> Direction {
    Direction::from_short(text).unwrap_or(Direction::ClientToServer)
}

pub(super) fn violations(json: Option<String>) -> Vec<String> {
    crate::rows::violation_texts(json.as_deref())
}

/// A stored payload of `total` bytes: the inline BLOB, or the payload files' `kept`
/// bytes at an offset, or none when the capture dropped them.
pub(super) fn stored_payload(
    inline: Option<Vec<u8>>,
    at: Option<i64>,
    kept: i64,
    total: u64,
    payloads: &PayloadReader,
) -> Payload {
    let read = match (inline, at) {
        (Some(bytes), _) => Some(bytes),
        (None, Some(at)) if at >= 0 && kept > 0 => payloads.read(at as u64, kept as usize),
        _ => Some(Vec::new()),
    };
    match read {
        Some(bytes) => Payload {
            truncated: (bytes.len() as u64) < total,
            bytes,
            dropped: false,
        },
        None => Payload {
            bytes: Vec::new(),
            truncated: total > 0,
            dropped: true,
        },
    }
}

/// Column `i` of `row`, a name that `parse` reads (`None` when the column is `NULL`); a
/// name it does not know is a conversion error, as a wrong type would be.
pub(super) fn named<T>(
    row: &Row<'_>,
    i: usize,
    parse: fn(&str) -> Option<T>,
) -> rusqlite::Result<Option<T>> {
    let Some(name) = row.get::<_, Option<String>>(i)? else {
        return Ok(None);
    };
    parse(&name).map(Some).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown name {name:?}").into(),
        )
    })
}

/// Column `i` of `row`, a name that `parse` reads; `NULL` is a conversion error.
pub(super) fn named_required<T>(
    row: &Row<'_>,
    i: usize,
    parse: fn(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    named(row, i, parse)?.ok_or(rusqlite::Error::InvalidColumnType(
        i,
        "a name".into(),
        rusqlite::types::Type::Null,
    ))
}

pub(super) fn session_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
    let json = |i: usize| -> rusqlite::Result<Option<TlsLeg>> {
        Ok(row
            .get::<_, Option<String>>(i)?
            .and_then(|j| serde_json::from_str(&j).ok()))
    };
    Ok(SessionRow {
        id: row.get::<_, i64>(0)? as u64,
        started_us: row.get(1)?,
        ended_us: row.get(2)?,
        client: row.get(3)?,
        target: row.get(4)?,
        via: named_required(row, 5, Via::from_name)?,
        tls: row.get(6)?,
        client_tls: json(7)?,
        upstream_tls: json(8)?,
        url: row.get(9)?,
        status: row.get(10)?,
        subprotocol: row.get(11)?,
        extensions: row
            .get::<_, Option<String>>(12)?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
        kind: named(row, 13, SessionKind::from_name)?,
        state: named_required(row, 14, wstap_filter::value::state)?,
        close_initiator: named(row, 15, Initiator::from_name)?,
        close_code: row.get(16)?,
        close_reason: row.get(17)?,
        frames_c2s: row.get::<_, i64>(18)? as u64,
        frames_s2c: row.get::<_, i64>(19)? as u64,
        messages_c2s: row.get::<_, i64>(20)? as u64,
        messages_s2c: row.get::<_, i64>(21)? as u64,
        bytes_c2s: row.get::<_, i64>(22)? as u64,
        bytes_s2c: row.get::<_, i64>(23)? as u64,
        violations: row.get::<_, i64>(24)? as u64,
        error: row.get(25)?,
        duration_us: row.get::<_, Option<i64>>(26)?.map(|d| d as u64),
        listener: row.get(27)?,
        upstream_proxy: row
            .get::<_, Option<String>>(28)?
            .and_then(|j| serde_json::from_str(&j).ok()),
        view: session_view(row)?,
    })
}

/// The view a person chose or wstap recorded, else (a capture of an older wstap) the
/// one its handshake names.
fn session_view(row: &Row<'_>) -> rusqlite::Result<Option<View>> {
    if let Some(name) = row.get::<_, Option<String>>(29)? {
        return Ok(View::from_name(&name));
    }
    let subprotocol: Option<String> = row.get(11)?;
    let url: Option<String> = row.get(9)?;
    Ok(Detector::from_handshake(subprotocol.as_deref(), url.as_deref().unwrap_or("")).view())
}

pub(super) fn frame_row(row: &Row<'_>, payloads: &PayloadReader) -> rusqlite::Result<StoredFrame> {
    let flags: u8 = row.get(7)?;
    let mask = row
        .get::<_, Option<i64>>(8)?
        .map(|k| (k as u32).to_be_bytes());
    let encoding = match row.get::<_, u8>(9)? {
        16 => LengthEncoding::Bits16,
        64 => LengthEncoding::Bits64,
        _ => LengthEncoding::Bits7,
    };
    let payload_len = row.get::<_, i64>(10)? as u64;
    let header = FrameHeader::new(flags, mask, payload_len, encoding);
    let kept: i64 = row.get(13)?;
    let payload = stored_payload(row.get(11)?, row.get(12)?, kept, payload_len, payloads);
    let close = row
        .get::<_, Option<String>>(15)?
        .map(|reason| -> rusqlite::Result<CloseInfo> {
            Ok(CloseInfo {
                code: row.get(14)?,
                reason,
            })
        })
        .transpose()?;
    let inflated = match row.get::<_, Option<i64>>(16)? {
        Some(len) => {
            let kept: i64 = row.get::<_, Option<i64>>(19)?.unwrap_or(0);
            Some(InflatedInfo {
                len: len as u64,
                payload: stored_payload(row.get(17)?, row.get(18)?, kept, len as u64, payloads),
            })
        }
        None => None,
    };
    let h = header;
    let frame = Frame {
        session: row.get::<_, i64>(1)? as u64,
        time: to_utc(Timestamp(row.get(5)?)),
        dir: direction(&row.get::<_, String>(3)?),
        index: row.get::<_, i64>(4)? as u64,
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
        payload_len,
        payload,
        close,
        inflated,
        violations: violations(row.get(20)?),
    };
    Ok(StoredFrame {
        id: row.get(0)?,
        seq: row.get::<_, i64>(2)? as u64,
        end_time_us: row.get(6)?,
        msg: row.get::<_, Option<i64>>(21)?.map(|m| m as u64),
        fate: row.get(22)?,
        frame,
    })
}

pub(super) fn message_row(
    row: &Row<'_>,
    payloads: &PayloadReader,
) -> rusqlite::Result<StoredMessage> {
    let opcode = Opcode::from_bits(row.get(4)?);
    let len = row.get::<_, i64>(8)? as u64;
    let data = stored_payload(row.get(11)?, row.get(12)?, row.get(13)?, len, payloads);
    let message = Message {
        session: row.get::<_, i64>(1)? as u64,
        time: to_utc(Timestamp(row.get(6)?)),
        end_time: to_utc(Timestamp(row.get(7)?)),
        dir: direction(&row.get::<_, String>(3)?),
        opcode: opcode.bits(),
        opcode_name: opcode.name().to_owned(),
        frames: row.get::<_, i64>(5)? as u64,
        len,
        wire_len: row.get::<_, i64>(9)? as u64,
        compressed: row.get(10)?,
        payload: data,
        violations: violations(row.get(14)?),
        incomplete: row.get(15)?,
        origin: row
            .get::<_, Option<String>>(20)?
            .as_deref()
            .and_then(MessageOrigin::from_name)
            .unwrap_or_default(),
        wire: row.get::<_, Option<Vec<u8>>>(21)?.map(Payload::all),
        held: row.get::<_, Option<i64>>(22)?.map(|h| h as u64),
    };
    Ok(StoredMessage {
        id: row.get(0)?,
        seq: row.get::<_, i64>(2)? as u64,
        first_frame: row.get::<_, Option<i64>>(16)?.map(|s| s as u64),
        last_frame: row.get::<_, Option<i64>>(17)?.map(|s| s as u64),
        flags: row.get(18)?,
        fate: row.get(19)?,
        message,
    })
}
