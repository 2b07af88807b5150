//! Sessions made of real analyzer records, written through the real writer.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use wstap_store::{CaptureInfo, CaptureWriter};
use wstap_trace::convert::to_utc;
use wstap_trace::*;
use wstap_wire::handshake::analyze;
use wstap_wire::{AnalyzerConfig, Direction, FrameBuilder, Record, StreamAnalyzer, Timestamp};

/// A fresh folder name in the temp directory (not created).
pub fn temp_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("wstap-store-{}-{n}-{name}", std::process::id()))
}

pub fn info() -> CaptureInfo {
    CaptureInfo {
        writer: "wstap test".into(),
        max_capture: 64 * 1024,
        max_bytes: None,
    }
}

pub fn at(micros: i64) -> DateTime<Utc> {
    to_utc(Timestamp(1_796_000_000_000_000 + micros))
}

/// How one test session looks.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub id: u64,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub tls: bool,
    pub status: u16,
    pub subprotocol: Option<String>,
    pub deflate: bool,
    pub outcome: Option<Outcome>,
    /// Frames: (direction, wire bytes).
    pub frames: Vec<(Direction, Vec<u8>)>,
}

impl SessionSpec {
    /// A plain (ws, port 80) session to `host` at `path` that ended with a close, made of
    /// `frames`.
    pub fn plain(id: u64, host: &str, path: &str, frames: Vec<(Direction, Vec<u8>)>) -> Self {
        SessionSpec {
            id,
            host: host.into(),
            port: 80,
            path: path.into(),
            tls: false,
            status: 101,
            subprotocol: None,
            deflate: false,
            outcome: Some(Outcome::Closed),
            frames,
        }
    }
}

/// The bus events a session makes: start, handshake, the analyzer's records for its
/// frames, and (when it ended) its end.
pub fn session_events(spec: &SessionSpec) -> Vec<BusEvent> {
    let t0 = (spec.id as i64) * 1_000_000;
    let target = format!("{}:{}", spec.host, spec.port);
    let mut events = vec![BusEvent::Event(Box::new(Event::SessionStart(
        SessionStart {
            session: spec.id,
            time: at(t0),
            client: format!("127.0.0.1:{}", 40000 + spec.id),
            target,
            via: Via::Connect,
            listener: Some("127.0.0.1:8888".into()),
            tls: spec.tls,
            client_tls: None,
            upstream_tls: None,
            upstream_proxy: None,
        },
    )))];
    let mut request = vec![
        ("Host".to_owned(), spec.host.clone()),
        ("Upgrade".to_owned(), "websocket".to_owned()),
        ("Connection".to_owned(), "Upgrade".to_owned()),
        (
            "Sec-WebSocket-Key".to_owned(),
            "dGhlIHNhbXBsZSBub25jZQ==".to_owned(),
        ),
        ("Sec-WebSocket-Version".to_owned(), "13".to_owned()),
    ];
    let mut response = vec![
        ("Upgrade".to_owned(), "websocket".to_owned()),
        ("Connection".to_owned(), "Upgrade".to_owned()),
        (
            "Sec-WebSocket-Accept".to_owned(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_owned(),
        ),
    ];
    if let Some(p) = &spec.subprotocol {
        request.push(("Sec-WebSocket-Protocol".to_owned(), format!("{p}, other")));
        response.push(("Sec-WebSocket-Protocol".to_owned(), p.clone()));
    }
    if spec.deflate {
        request.push((
            "Sec-WebSocket-Extensions".to_owned(),
            "permessage-deflate".to_owned(),
        ));
        response.push((
            "Sec-WebSocket-Extensions".to_owned(),
            "permessage-deflate".to_owned(),
        ));
    }
    let analysis = analyze("GET", &request, spec.status, &response);
    let scheme = if spec.tls { "wss" } else { "ws" };
    let exchange = Exchange {
        session: spec.id,
        time: at(t0 + 10),
        url: format!("{scheme}://{}:{}{}", spec.host, spec.port, spec.path),
        request: RequestHead {
            method: "GET".into(),
            target: spec.path.clone(),
            version: "HTTP/1.1".into(),
            headers: request,
        },
        forwarded: Forwarded::default(),
        response: Some(ResponseHead {
            status: spec.status,
            reason: "Switching Protocols".into(),
            version: "HTTP/1.1".into(),
            headers: response,
        }),
        raw: Some(RawHeads {
            request: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            response: b"HTTP/1.1 101 OK\r\n\r\n".to_vec(),
        }),
    };
    events.push(BusEvent::Event(Box::new(Event::Handshake(Handshake::new(
        exchange, 100, &analysis,
    )))));
    let config = AnalyzerConfig {
        deflate: analysis.deflate,
        ..AnalyzerConfig::default()
    };
    let mut analyzers = [
        StreamAnalyzer::new(Direction::ClientToServer, config),
        StreamAnalyzer::new(Direction::ServerToClient, config),
    ];
    for (i, (dir, wire)) in spec.frames.iter().enumerate() {
        let analyzer = &mut analyzers[usize::from(*dir == Direction::ServerToClient)];
        let mut records = Vec::new();
        let time = Timestamp(1_796_000_000_000_000 + t0 + 1000 * (i as i64 + 1));
        analyzer.feed(&wire.clone(), time, &mut records);
        events.extend(records.into_iter().map(|record| BusEvent::Wire {
            session: spec.id,
            record,
        }));
    }
    if let Some(outcome) = spec.outcome {
        let time = Timestamp(1_796_000_000_000_000 + t0 + 900_000);
        for analyzer in &mut analyzers {
            let mut records = Vec::new();
            analyzer.finish(time, &mut records);
            events.extend(records.into_iter().map(|record| BusEvent::Wire {
                session: spec.id,
                record,
            }));
        }
        events.push(BusEvent::Event(Box::new(Event::SessionEnd(SessionEnd {
            session: spec.id,
            time: to_utc(time),
            outcome,
            close: None,
            frames: PerDirection::default(),
            bytes: PerDirection::default(),
            kind: SessionKind::WebSocket,
            error: None,
            cut_frames: Vec::new(),
            withheld: None,
            duration_us: 900_000,
        }))));
    }
    events
}

/// Writes `events` into a new capture at `dir` in batches of `batch` events, each
/// committed, as the bus's driver would (a frame and its message split between two
/// batches are written apart, as they may be).
pub fn write(dir: &std::path::Path, events: &[BusEvent], batch: usize) {
    let mut writer = CaptureWriter::create(dir, &info()).expect("a new capture");
    for chunk in events.chunks(batch.max(1)) {
        Sink::write_batch(&mut writer, chunk).expect("written");
        Sink::flush(&mut writer).expect("committed");
    }
    writer.finish().expect("finished");
}

/// A masked text frame, as a client sends.
pub fn client_text(text: &str) -> (Direction, Vec<u8>) {
    (
        Direction::ClientToServer,
        FrameBuilder::text()
            .mask([1, 2, 3, 4])
            .encode(text.as_bytes()),
    )
}

/// An unmasked frame, as a server sends.
pub fn server(builder: FrameBuilder, payload: &[u8]) -> (Direction, Vec<u8>) {
    (Direction::ServerToClient, builder.encode(payload))
}

/// Compares events as their trace lines (the raw heads are not part of them).
pub fn as_json(events: &[Event]) -> Vec<serde_json::Value> {
    events
        .iter()
        .map(|e| serde_json::to_value(e).expect("serializes"))
        .collect()
}

/// The records' data kept in a record capture that `Record` equality would compare.
pub fn is_frame(record: &Record) -> bool {
    matches!(record, Record::Frame(_))
}

/// The NDJSON export of `capture` by `filter` (nothing redacted).
pub fn export_ndjson(capture: &wstap_store::Capture, filter: &str) -> String {
    let filter = wstap_filter::Filter::parse(filter).expect("a filter");
    let redaction = wstap_trace::export::Redaction::none();
    let what = wstap_store::export::Export {
        format: wstap_store::export::Format::Ndjson,
        session: None,
        filter: Some(&filter),
        redaction: &redaction,
        header: wstap_trace::TraceHeader::new("test", chrono::Utc::now()),
        version: "test",
        proto_schema: None,
    };
    String::from_utf8(wstap_store::export::export(capture, &what).expect("exported"))
        .expect("UTF-8")
}

/// Turns a capture of this version back into one of schema 8, as an older wstap left it:
/// frames in a table of their own, with their flag bits as generated columns. For the
/// tests of migrations from older versions, which take a capture back further from there.
pub fn as_schema_8(db: &rusqlite::Connection) {
    let messages: String = db
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = 'messages'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    db.execute_batch(&format!(
        "CREATE TABLE frames_v8 (
             id             INTEGER PRIMARY KEY,
             session        INTEGER NOT NULL,
             seq            INTEGER NOT NULL,
             dir            TEXT NOT NULL,
             idx            INTEGER NOT NULL,
             time_us        INTEGER NOT NULL,
             end_time_us    INTEGER NOT NULL,
             flags          INTEGER NOT NULL,
             mask_key       INTEGER,
             length_bits    INTEGER NOT NULL,
             payload_len    INTEGER NOT NULL,
             payload        BLOB,
             payload_at     INTEGER,
             payload_kept   INTEGER NOT NULL,
             close_code     INTEGER,
             close_reason   TEXT,
             inflated_len   INTEGER,
             inflated       BLOB,
             inflated_at    INTEGER,
             inflated_kept  INTEGER,
             violations     TEXT,
             msg            INTEGER,
             fin            INTEGER GENERATED ALWAYS AS ((flags >> 7) & 1) VIRTUAL,
             rsv1           INTEGER GENERATED ALWAYS AS ((flags >> 6) & 1) VIRTUAL,
             rsv2           INTEGER GENERATED ALWAYS AS ((flags >> 5) & 1) VIRTUAL,
             rsv3           INTEGER GENERATED ALWAYS AS ((flags >> 4) & 1) VIRTUAL,
             opcode         INTEGER GENERATED ALWAYS AS (flags & 15) VIRTUAL,
             header_len     INTEGER GENERATED ALWAYS AS (2 + CASE length_bits WHEN 16 THEN 2
                                WHEN 64 THEN 8 ELSE 0 END
                                + CASE WHEN mask_key IS NULL THEN 0 ELSE 4 END) VIRTUAL
         );
         INSERT INTO frames_v8 SELECT id, session, seq, dir, idx, time_us, end_time_us, flags,
             mask_key, length_bits, payload_len, payload, payload_at, payload_kept, close_code,
             close_reason, inflated_len, inflated, inflated_at, inflated_kept, violations, msg
           FROM frames;
         DROP VIEW messages;
         DROP VIEW frames;
         DROP TABLE frame_rows;
         ALTER TABLE frames_v8 RENAME TO frames;
         {messages};
         PRAGMA user_version = 8;"
    ))
    .unwrap();
}
