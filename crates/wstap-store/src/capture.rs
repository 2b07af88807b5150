//! Reading a capture: sessions, pages of frames and messages by filter, counts, and every
//! event back in the order it happened.
//!
//! A [`Capture`] opens the database read-only, so any number of readers (a second wstap,
//! the inspector, `sqlite3`) can read a capture while it is written; none of them ever
//! writes to it. Pages are found by position (keyset on `(session, seq)`, never `OFFSET`),
//! so the page at the end of a ten-million-frame session costs what the first page costs.

use crate::columns::{FrameMessages, Frames, MessageRows};
use crate::layout;
use crate::payloads::PayloadReader;
use crate::StoreError;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OpenFlags, OptionalExtension, Row};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wstap_filter::{Filter, Scope, SqlSchema, SqlValue, State};
use wstap_trace::convert::to_utc;
use wstap_trace::{
    CloseInfo, Event, Frame, Handshake, HttpExchange, InflatedInfo, Initiator, Message, ParentHop,
    Payload, SessionKind, TlsLeg, Via,
};
use wstap_wire::{Direction, FrameHeader, LengthEncoding, Opcode, Timestamp};

/// Frames or messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Frames.
    Frames,
    /// Messages.
    Messages,
}

/// A table records are read from, as filters and pages see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    /// Every frame.
    Frames,
    /// Messages that are one whole frame: frames with `msg` set.
    FrameMessages,
    /// Messages with a row of their own.
    MessageRows,
}

impl Rows {
    /// The tables these rows are read from.
    fn tables(self) -> &'static [Table] {
        match self {
            Rows::Frames => &[Table::Frames],
            Rows::Messages => &[Table::FrameMessages, Table::MessageRows],
        }
    }
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Frames | Table::FrameMessages => "frames",
            Table::MessageRows => "message_rows",
        }
    }

    fn schema(self) -> &'static dyn SqlSchema {
        match self {
            Table::Frames => &Frames,
            Table::FrameMessages => &FrameMessages,
            Table::MessageRows => &MessageRows,
        }
    }

    /// What a row must be to belong here.
    fn belongs(self) -> &'static str {
        match self {
            Table::FrameMessages => "r.msg IS NOT NULL",
            Table::Frames | Table::MessageRows => "1",
        }
    }

    /// The key rows are paged by: the position within a session, or (across the capture)
    /// the event number, with the expression it is kept in and its offset from that.
    fn key(self, in_session: bool) -> (&'static str, i64) {
        match (self, in_session) {
            (Table::Frames | Table::MessageRows, true) => ("r.seq", 0),
            (Table::FrameMessages, true) => ("r.msg", 0),
            (Table::Frames | Table::MessageRows, false) => ("r.id", 0),
            // A whole frame's message is the event right after the frame.
            (Table::FrameMessages, false) => ("r.id", 1),
        }
    }

    fn columns(self) -> &'static str {
        match self {
            Table::Frames | Table::FrameMessages => FRAME_COLUMNS,
            Table::MessageRows => MESSAGE_COLUMNS,
        }
    }
}

/// Where a page starts, by a row's position: its `seq` within a session, or its event
/// number across the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Rows at this position and after.
    From(u64),
    /// Rows before this position (the page ends just before it).
    Before(u64),
    /// The last rows.
    Last,
}

/// The capture's own record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaptureRow {
    /// When it began, µs.
    pub started_us: i64,
    /// When its writer finished, µs (`None` while written, or if it was killed).
    pub ended_us: Option<i64>,
    /// The program that wrote it.
    pub writer: String,
    /// Payload bytes kept per frame and message.
    pub max_capture: i64,
}

/// Messages and bytes in one slice of a session's time, per direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TimelineBucket {
    /// Where the slice begins, µs.
    pub start_us: i64,
    /// Messages client to server.
    pub messages_c2s: u64,
    /// Messages server to client.
    pub messages_s2c: u64,
    /// Message bytes (inflated) client to server.
    pub bytes_c2s: u64,
    /// Message bytes (inflated) server to client.
    pub bytes_s2c: u64,
}

/// One session as the sessions list shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow {
    /// The session number.
    pub id: u64,
    /// When it began, µs.
    pub started_us: i64,
    /// When it ended, µs.
    pub ended_us: Option<i64>,
    /// The client's address.
    pub client: String,
    /// The upstream, `host:port`.
    pub target: String,
    /// How the client came (written by its name: `connect`, `absolute`, `socks5`,
    /// `reverse`, or `proxy`: the HTTP proxy port, no request).
    pub via: Via,
    /// The listener it connected to, `ip:port`.
    pub listener: Option<String>,
    /// Whether wstap terminated TLS.
    pub tls: bool,
    /// The client's TLS leg.
    pub client_tls: Option<TlsLeg>,
    /// The upstream's TLS leg.
    pub upstream_tls: Option<TlsLeg>,
    /// The parent proxy's answer, when the upstream connection went through one.
    pub upstream_proxy: Option<ParentHop>,
    /// The handshake's (or first exchange's) URL.
    pub url: Option<String>,
    /// Its HTTP status.
    pub status: Option<u16>,
    /// The subprotocol chosen.
    pub subprotocol: Option<String>,
    /// Extensions accepted, as header values.
    pub extensions: Vec<String>,
    /// What it turned out to be, once it ended.
    pub kind: Option<SessionKind>,
    /// Where it stands (written by its name: `open`, `closed`, `aborted`, `error`).
    #[serde(serialize_with = "state_name")]
    pub state: State,
    /// Who sent the first close frame.
    pub close_initiator: Option<Initiator>,
    /// Its code.
    pub close_code: Option<u16>,
    /// Its reason.
    pub close_reason: Option<String>,
    /// Frames, client to server.
    pub frames_c2s: u64,
    /// Frames, server to client.
    pub frames_s2c: u64,
    /// Messages, client to server.
    pub messages_c2s: u64,
    /// Messages, server to client.
    pub messages_s2c: u64,
    /// Bytes, client to server.
    pub bytes_c2s: u64,
    /// Bytes, server to client.
    pub bytes_s2c: u64,
    /// Frames with violations plus handshake issues.
    pub violations: u64,
    /// What went wrong.
    pub error: Option<String>,
    /// Length, µs, once it ended.
    pub duration_us: Option<u64>,
}

/// A frame with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFrame {
    /// Its event number.
    pub id: i64,
    /// Its position among the session's frames.
    pub seq: u64,
    /// When its last byte arrived, µs.
    pub end_time_us: i64,
    /// Its number among the session's messages, when it is a whole message by itself.
    pub msg: Option<u64>,
    /// The frame, as the trace has it.
    pub frame: Frame,
}

impl StoredFrame {
    /// The message this frame is all of, if it is one.
    pub fn message(&self) -> Option<StoredMessage> {
        let seq = self.msg?;
        let f = &self.frame;
        let (len, payload) = match &f.inflated {
            Some(inflated) => (inflated.len, inflated.payload.clone()),
            None => (f.payload_len, f.payload.clone()),
        };
        let message = Message {
            session: f.session,
            time: f.time,
            end_time: to_utc(Timestamp(self.end_time_us)),
            dir: f.dir,
            opcode: f.opcode,
            opcode_name: f.opcode_name.clone(),
            frames: 1,
            len,
            wire_len: f.payload_len,
            compressed: f.inflated.is_some(),
            payload,
            violations: f
                .violations
                .iter()
                .filter(|v| crate::writer::is_about_message(v))
                .cloned()
                .collect(),
            incomplete: false,
        };
        Some(StoredMessage {
            id: self.id + 1,
            seq,
            first_frame: Some(self.seq),
            last_frame: Some(self.seq),
            flags: f.header().first_byte(),
            message,
        })
    }
}

/// The violations in a frame's JSON list that are about its message, or `None`.
pub(crate) fn message_violations(json: &str) -> Option<Vec<String>> {
    let all: Vec<String> = serde_json::from_str(json).ok()?;
    let about: Vec<String> = all
        .into_iter()
        .filter(|v| crate::writer::is_about_message(v))
        .collect();
    (!about.is_empty()).then_some(about)
}

/// A message with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    /// Its event number.
    pub id: i64,
    /// Its position among the session's messages.
    pub seq: u64,
    /// `seq` of its first frame.
    pub first_frame: Option<u64>,
    /// `seq` of its last frame.
    pub last_frame: Option<u64>,
    /// The flags byte of its first frame.
    pub flags: u8,
    /// The message, as the trace has it.
    pub message: Message,
}

/// A handshake with the heads' bytes as they were sent, when the capture has them.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredHandshake {
    /// The handshake.
    pub handshake: Handshake,
    /// The request head's bytes.
    pub request_raw: Option<Vec<u8>>,
    /// The response head's bytes.
    pub response_raw: Option<Vec<u8>>,
}

/// A capture open for reading: see the module documentation.
#[derive(Debug)]
pub struct Capture {
    conn: Connection,
    dir: PathBuf,
}

const SESSION_COLUMNS: &str = "s.id, s.started_us, s.ended_us, s.client, s.target, s.via, s.tls, \
    s.client_tls, s.upstream_tls, s.url, s.status, s.subprotocol, s.extensions, s.kind, s.state, \
    s.close_initiator, s.close_code, s.close_reason, s.frames_c2s, s.frames_s2c, s.messages_c2s, \
    s.messages_s2c, s.bytes_c2s, s.bytes_s2c, s.violations, s.error, s.duration_us, s.listener, \
    s.upstream_proxy";

const FRAME_COLUMNS: &str = "r.id, r.session, r.seq, r.dir, r.idx, r.time_us, r.end_time_us, \
    r.flags, r.mask_key, r.length_bits, r.payload_len, r.payload, r.payload_at, r.payload_kept, \
    r.close_code, r.close_reason, r.inflated_len, r.inflated, r.inflated_at, r.inflated_kept, \
    r.violations, r.msg";

const MESSAGE_COLUMNS: &str = "r.id, r.session, r.seq, r.dir, r.opcode, r.frames, r.time_us, \
    r.end_time_us, r.len, r.wire_len, r.compressed, r.data, r.data_at, r.data_kept, \
    r.violations, r.incomplete, r.first_frame, r.last_frame, r.flags";

impl Capture {
    /// Opens the capture at `path` (its folder, or its `capture.db`) for reading.
    pub fn open(path: &Path) -> Result<Capture, StoreError> {
        let dir = if path.is_dir() {
            path.to_owned()
        } else if path.file_name().is_some_and(|n| n == layout::DATABASE) {
            path.parent().unwrap_or(Path::new(".")).to_owned()
        } else if path.exists() {
            return Err(StoreError::not_a_capture(path, "not a capture folder"));
        } else {
            return Err(StoreError::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            ));
        };
        let database = layout::database(&dir);
        if !database.is_file() {
            return Err(StoreError::not_a_capture(&dir, "it holds no capture.db"));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&database, flags).map_err(|e| damaged(&dir, e))?;
        crate::schema::check(&conn, &dir).map_err(|e| match e {
            StoreError::Sqlite(e) => damaged(&dir, e),
            other => other,
        })?;
        let payloads = Arc::new(PayloadReader::open(&dir.join(layout::PAYLOADS)));
        crate::functions::register(&conn, payloads)?;
        let capture = Capture { conn, dir };
        capture.info().map_err(|e| match e {
            StoreError::Sqlite(e) => damaged(&capture.dir, e),
            other => other,
        })?;
        Ok(capture)
    }

    /// The capture's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The capture's own record.
    pub fn info(&self) -> Result<CaptureRow, StoreError> {
        Ok(self.conn.query_row(
            "SELECT started_us, ended_us, writer, max_capture FROM captures WHERE id = 1",
            [],
            |row| {
                Ok(CaptureRow {
                    started_us: row.get(0)?,
                    ended_us: row.get(1)?,
                    writer: row.get(2)?,
                    max_capture: row.get(3)?,
                })
            },
        )?)
    }

    /// Up to `limit` sessions matching `filter`, numbered after `after`, in order.
    pub fn sessions(
        &self,
        filter: &Filter,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<SessionRow>, StoreError> {
        let sql = filter.to_sql(Scope::Sessions, &Frames);
        let query = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.id > ? AND ({}) ORDER BY s.id LIMIT ?",
            sql.condition
        );
        let mut params = vec![Value::Integer(after.map_or(-1, |a| a as i64))];
        params.extend(sql.params.into_iter().map(value));
        params.push(Value::Integer(limit as i64));
        let mut stmt = self.conn.prepare_cached(&query)?;
        let rows = stmt.query_map(params_from_iter(params), session_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The numbers of the sessions matching `filter`, after `after`, ascending.
    pub fn session_ids(&self, filter: &Filter, after: Option<u64>) -> Result<Vec<u64>, StoreError> {
        let sql = filter.to_sql(Scope::Sessions, &Frames);
        let query = format!(
            "SELECT s.id FROM sessions s WHERE s.id > ? AND ({}) ORDER BY s.id",
            sql.condition
        );
        let mut params = vec![Value::Integer(after.map_or(-1, |a| a as i64))];
        params.extend(sql.params.into_iter().map(value));
        let mut stmt = self.conn.prepare_cached(&query)?;
        let ids = stmt.query_map(params_from_iter(params), |row| row.get::<_, i64>(0))?;
        Ok(ids
            .map(|id| id.map(|id| id as u64))
            .collect::<Result<_, _>>()?)
    }

    /// How many sessions match `filter`.
    pub fn count_sessions(&self, filter: &Filter) -> Result<u64, StoreError> {
        let sql = filter.to_sql(Scope::Sessions, &Frames);
        let query = format!("SELECT count(*) FROM sessions s WHERE {}", sql.condition);
        let params: Vec<Value> = sql.params.into_iter().map(value).collect();
        let count: i64 = self
            .conn
            .prepare_cached(&query)?
            .query_row(params_from_iter(params), |row| row.get(0))?;
        Ok(count as u64)
    }

    /// One session.
    pub fn session(&self, id: u64) -> Result<Option<SessionRow>, StoreError> {
        let query = format!("SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.id = ?");
        Ok(self
            .conn
            .prepare_cached(&query)?
            .query_row([id as i64], session_row)
            .optional()?)
    }

    /// The newest session number, if any.
    pub fn last_session(&self) -> Result<Option<u64>, StoreError> {
        let last: Option<i64> = self
            .conn
            .query_row("SELECT max(id) FROM sessions", [], |row| row.get(0))?;
        Ok(last.map(|id| id as u64))
    }

    /// A query over one table: `select` of the rows of `session` (or all) that match
    /// `filter`, and its parameters.
    fn record_query(
        &self,
        table: Table,
        select: &str,
        session: Option<u64>,
        filter: &Filter,
    ) -> (String, Vec<Value>) {
        let sql = filter.to_sql(Scope::Records, table.schema());
        let join = if sql.reads_session {
            " JOIN sessions s ON s.id = r.session"
        } else {
            ""
        };
        let mut params = Vec::new();
        let session_test = match session {
            Some(id) => {
                params.push(Value::Integer(id as i64));
                "r.session = ?"
            }
            None => "1",
        };
        params.extend(sql.params.into_iter().map(value));
        let query = format!(
            "SELECT {select} FROM {} r{join} WHERE {session_test} AND {} AND ({})",
            table.name(),
            table.belongs(),
            sql.condition
        );
        (query, params)
    }

    /// A page of one table: up to `limit` matching rows from `position`, in key order
    /// (descending for `Before` and `Last`), each with its key.
    fn page_of<T>(
        &self,
        table: Table,
        session: Option<u64>,
        filter: &Filter,
        position: Position,
        limit: usize,
        read: impl Fn(&Row<'_>, &PayloadReader) -> rusqlite::Result<T>,
    ) -> Result<Vec<(i64, T)>, StoreError> {
        let (query, mut params) = self.record_query(table, table.columns(), session, filter);
        let (key, offset) = table.key(session.is_some());
        let (test, order) = match position {
            Position::From(at) => {
                params.push(Value::Integer(at as i64 - offset));
                (format!(" AND {key} >= ?"), "ASC")
            }
            Position::Before(at) => {
                params.push(Value::Integer(at as i64 - offset));
                (format!(" AND {key} < ?"), "DESC")
            }
            Position::Last => (String::new(), "DESC"),
        };
        params.push(Value::Integer(limit as i64));
        let query = format!("{query}{test} ORDER BY {key} {order} LIMIT ?");
        let payloads = self.payloads();
        let mut stmt = self.conn.prepare_cached(&query)?;
        let rows = stmt.query_map(params_from_iter(params), |row| read(row, &payloads))?;
        let found = rows.collect::<Result<Vec<T>, _>>()?;
        Ok(found.into_iter().map(|row| (0, row)).collect())
    }

    /// Up to `limit` frames of `session` (or of the capture) matching `filter`, from
    /// `position` (a `seq` within the session, an event number across the capture), in order.
    pub fn frames(
        &self,
        session: Option<u64>,
        filter: &Filter,
        position: Position,
        limit: usize,
    ) -> Result<Vec<StoredFrame>, StoreError> {
        let mut page: Vec<StoredFrame> = self
            .page_of(Table::Frames, session, filter, position, limit, frame_row)?
            .into_iter()
            .map(|(_, frame)| frame)
            .collect();
        if !matches!(position, Position::From(_)) {
            page.reverse();
        }
        Ok(page)
    }

    /// Up to `limit` messages of `session` (or of the capture) matching `filter`, from
    /// `position` (a `seq` within the session, an event number across the capture), in
    /// order: those that are one whole frame and those with rows of their own, merged.
    pub fn messages(
        &self,
        session: Option<u64>,
        filter: &Filter,
        position: Position,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let whole = self.page_of(
            Table::FrameMessages,
            session,
            filter,
            position,
            limit,
            |row, payloads| frame_row(row, payloads).map(|f| f.message()),
        )?;
        let rows = self.page_of(
            Table::MessageRows,
            session,
            filter,
            position,
            limit,
            message_row,
        )?;
        let key = |m: &StoredMessage| {
            if session.is_some() {
                m.seq as i64
            } else {
                m.id
            }
        };
        let mut all: Vec<StoredMessage> = whole
            .into_iter()
            .filter_map(|(_, m)| m)
            .chain(rows.into_iter().map(|(_, m)| m))
            .collect();
        all.sort_by_key(key);
        match position {
            Position::From(_) => all.truncate(limit),
            Position::Before(_) | Position::Last => {
                let skip = all.len().saturating_sub(limit);
                all.drain(..skip);
            }
        }
        Ok(all)
    }

    /// How many frames or messages of `session` (or of the capture) match `filter`.
    pub fn count(
        &self,
        rows: Rows,
        session: Option<u64>,
        filter: &Filter,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        for &table in rows.tables() {
            let (query, params) = self.record_query(table, "count(*)", session, filter);
            let count: i64 = self
                .conn
                .prepare_cached(&query)?
                .query_row(params_from_iter(params), |row| row.get(0))?;
            total += count as u64;
        }
        Ok(total)
    }

    /// The ids (event numbers) of the frames or messages matching `filter`, in order: for
    /// tests and tools that compare selections.
    pub fn matching_ids(&self, rows: Rows, filter: &Filter) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::new();
        for &table in rows.tables() {
            let (_, offset) = table.key(false);
            let (query, params) = self.record_query(table, "r.id", None, filter);
            let mut stmt = self.conn.prepare(&query)?;
            let found = stmt.query_map(params_from_iter(params), |row| row.get::<_, i64>(0))?;
            for id in found {
                ids.push(id? + offset);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// The positions (`seq`) of `session`'s frames or messages that match `filter`, from
    /// position `from` on, ascending: what a view of a filtered session scrolls through.
    pub fn positions(
        &self,
        rows: Rows,
        session: u64,
        filter: &Filter,
        from: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let mut found = Vec::new();
        for &table in rows.tables() {
            let (key, _) = table.key(true);
            let (query, mut params) = self.record_query(table, key, Some(session), filter);
            params.push(Value::Integer(from as i64));
            let query = format!("{query} AND {key} >= ? ORDER BY {key}");
            let mut stmt = self.conn.prepare_cached(&query)?;
            let keys = stmt.query_map(params_from_iter(params), |row| row.get::<_, i64>(0))?;
            for key in keys {
                found.push(key? as u64);
            }
        }
        if rows.tables().len() > 1 {
            found.sort_unstable();
        }
        Ok(found)
    }

    /// `session`'s frames at exactly these positions, in order: a page of a filtered view
    /// whose positions are known, read without running the filter again.
    pub fn frames_at(
        &self,
        session: u64,
        positions: &[u64],
    ) -> Result<Vec<StoredFrame>, StoreError> {
        let found = self.rows_at(Table::Frames, session, positions, frame_row)?;
        Ok(found.into_iter().map(|(_, f)| f).collect())
    }

    /// `session`'s messages at exactly these positions, in order.
    pub fn messages_at(
        &self,
        session: u64,
        positions: &[u64],
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let whole = self.rows_at(Table::FrameMessages, session, positions, |row, payloads| {
            frame_row(row, payloads).map(|f| f.message())
        })?;
        let rows = self.rows_at(Table::MessageRows, session, positions, message_row)?;
        let mut all: Vec<(u64, StoredMessage)> = whole
            .into_iter()
            .filter_map(|(key, m)| m.map(|m| (key, m)))
            .chain(rows)
            .collect();
        all.sort_by_key(|(key, _)| *key);
        Ok(all.into_iter().map(|(_, m)| m).collect())
    }

    /// The rows of one table at these positions (its key within a session), with their keys.
    fn rows_at<T>(
        &self,
        table: Table,
        session: u64,
        positions: &[u64],
        read: impl Fn(&Row<'_>, &PayloadReader) -> rusqlite::Result<T>,
    ) -> Result<Vec<(u64, T)>, StoreError> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let (key, _) = table.key(true);
        let all = Filter::default();
        // The key comes last, so the row readers find their columns where they expect.
        let select = format!("{}, {key}", table.columns());
        let (query, mut params) = self.record_query(table, &select, Some(session), &all);
        let marks = vec!["?"; positions.len()].join(", ");
        params.extend(positions.iter().map(|&p| Value::Integer(p as i64)));
        let query = format!("{query} AND {key} IN ({marks}) ORDER BY {key}");
        let payloads = self.payloads();
        let mut stmt = self.conn.prepare(&query)?;
        let rows = stmt.query_map(params_from_iter(params), |row| {
            let key: i64 = row.get(row.as_ref().column_count() - 1)?;
            Ok((key as u64, read(row, &payloads)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many frames or messages `session` has: positions run from 0 to this, less one.
    pub fn extent(&self, rows: Rows, session: u64) -> Result<u64, StoreError> {
        let mut extent = 0u64;
        for &table in rows.tables() {
            let (key, _) = table.key(true);
            let query = format!(
                "SELECT max({key}) FROM {} r WHERE r.session = ? AND {}",
                table.name(),
                table.belongs()
            );
            let last: Option<i64> = self
                .conn
                .prepare_cached(&query)?
                .query_row([session as i64], |row| row.get(0))?;
            if let Some(last) = last {
                extent = extent.max(last as u64 + 1);
            }
        }
        Ok(extent)
    }

    /// `session`'s messages and their bytes per direction, in buckets of `width_us` from
    /// `start_us`: the session's timeline.
    pub fn timeline(
        &self,
        session: u64,
        start_us: i64,
        width_us: i64,
    ) -> Result<Vec<TimelineBucket>, StoreError> {
        let width_us = width_us.max(1);
        let query = "SELECT b, dir, count(*), sum(len) FROM (
                SELECT (time_us - ?2) / ?3 AS b, dir, COALESCE(inflated_len, payload_len) AS len
                  FROM frames WHERE session = ?1 AND msg IS NOT NULL
                UNION ALL
                SELECT (time_us - ?2) / ?3 AS b, dir, len FROM message_rows WHERE session = ?1
            ) GROUP BY b, dir ORDER BY b";
        let mut stmt = self.conn.prepare_cached(query)?;
        let rows = stmt.query_map(
            rusqlite::params![session as i64, start_us, width_us],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Option<i64>>(3)?,
                ))
            },
        )?;
        let mut buckets: Vec<TimelineBucket> = Vec::new();
        for row in rows {
            let (bucket, dir, count, bytes) = row?;
            let start = start_us + bucket * width_us;
            if buckets.last().is_none_or(|b| b.start_us != start) {
                buckets.push(TimelineBucket {
                    start_us: start,
                    ..TimelineBucket::default()
                });
            }
            if let Some(last) = buckets.last_mut() {
                let (messages, total) = if direction(&dir) == Direction::ClientToServer {
                    (&mut last.messages_c2s, &mut last.bytes_c2s)
                } else {
                    (&mut last.messages_s2c, &mut last.bytes_s2c)
                };
                *messages += count as u64;
                *total += bytes.unwrap_or(0) as u64;
            }
        }
        Ok(buckets)
    }

    /// The session's handshake, with the heads' bytes.
    pub fn handshake(&self, session: u64) -> Result<Option<StoredHandshake>, StoreError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT event, request_raw, response_raw FROM handshakes WHERE session = ?",
            )?
            .query_row([session as i64], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<Vec<u8>>>(1)?,
                    row.get::<_, Option<Vec<u8>>>(2)?,
                ))
            })
            .optional()?;
        let Some((event, request_raw, response_raw)) = row else {
            return Ok(None);
        };
        match parse_event("handshakes", session as i64, &event)? {
            Event::Handshake(handshake) => Ok(Some(StoredHandshake {
                handshake,
                request_raw,
                response_raw,
            })),
            _ => Err(bad_row("handshakes", session as i64, "not a handshake")),
        }
    }

    /// The session's plain HTTP exchanges, in order.
    pub fn http(&self, session: u64) -> Result<Vec<HttpExchange>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, event FROM http WHERE session = ? ORDER BY id")?;
        let rows = stmt.query_map([session as i64], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, event) = row?;
            if let Event::Http(http) = parse_event("http", id, &event)? {
                out.push(http);
            }
        }
        Ok(out)
    }

    /// Calls `each` with every event of the capture (or of one session) in the order the
    /// events happened, as the trace of the same run has them.
    pub fn for_each_event(
        &self,
        session: Option<u64>,
        mut each: impl FnMut(Event) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let payloads = self.payloads();
        let mut sources: Vec<Source> = SourceKind::ALL
            .into_iter()
            .map(|kind| Source::new(kind, session))
            .collect();
        loop {
            for source in &mut sources {
                if source.buffer.is_empty() && !source.done {
                    source.refill(&self.conn, &payloads)?;
                }
            }
            let next = sources
                .iter()
                .enumerate()
                .filter_map(|(i, source)| source.buffer.front().map(|(ev, _)| (*ev, i)))
                .min();
            let Some((_, i)) = next else {
                return Ok(());
            };
            if let Some((_, event)) = sources[i].buffer.pop_front() {
                each(event)?;
            }
        }
    }

    fn payloads(&self) -> PayloadReader {
        PayloadReader::open(&self.dir.join(layout::PAYLOADS))
    }
}

/// Where events come from: each kind is read in event order, a page at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    Starts,
    Ends,
    Handshakes,
    Http,
    Frames,
    Messages,
    Notices,
}

impl SourceKind {
    const ALL: [SourceKind; 7] = [
        SourceKind::Starts,
        SourceKind::Ends,
        SourceKind::Handshakes,
        SourceKind::Http,
        SourceKind::Frames,
        SourceKind::Messages,
        SourceKind::Notices,
    ];
}

/// Events read from one source and not handed on yet.
struct Source {
    kind: SourceKind,
    session: Option<u64>,
    /// The key of the last row read: an event number, or a frame's or message's `seq`
    /// within a session.
    after: i64,
    buffer: std::collections::VecDeque<(i64, Event)>,
    done: bool,
}

/// Rows read per page: payloads make frames heavy, so their pages are short.
const EVENT_PAGE: i64 = 512;

impl Source {
    fn new(kind: SourceKind, session: Option<u64>) -> Self {
        Source {
            kind,
            session,
            after: -1,
            buffer: std::collections::VecDeque::new(),
            done: false,
        }
    }

    fn refill(&mut self, conn: &Connection, payloads: &PayloadReader) -> Result<(), StoreError> {
        let only = self.session.map_or(-1, |s| s as i64);
        let json_query = |key: &str, column: &str, table: &str, session: &str, extra: &str| {
            format!(
                "SELECT {key}, {column} FROM {table} WHERE (?1 < 0 OR {session} = ?1) {extra}
                 AND {key} > ?2 ORDER BY {key} LIMIT ?3"
            )
        };
        let params = rusqlite::params![only, self.after, EVENT_PAGE];
        let mut rows_read = 0usize;
        match self.kind {
            SourceKind::Starts | SourceKind::Ends | SourceKind::Handshakes | SourceKind::Http => {
                let (table, query) = match self.kind {
                    SourceKind::Starts => (
                        "sessions",
                        json_query(
                            "ev_start",
                            "start_event",
                            "sessions",
                            "id",
                            "AND start_event != ''",
                        ),
                    ),
                    SourceKind::Ends => (
                        "sessions",
                        json_query(
                            "ev_end",
                            "end_event",
                            "sessions",
                            "id",
                            "AND end_event IS NOT NULL",
                        ),
                    ),
                    SourceKind::Handshakes => (
                        "handshakes",
                        json_query("ev", "event", "handshakes", "session", ""),
                    ),
                    _ => ("http", json_query("ev", "event", "http", "session", "")),
                };
                let mut stmt = conn.prepare_cached(&query)?;
                let mut rows = stmt.query(params)?;
                while let Some(row) = rows.next()? {
                    rows_read += 1;
                    let ev: i64 = row.get(0)?;
                    let json: String = row.get(1)?;
                    self.after = ev;
                    self.buffer.push_back((ev, parse_event(table, ev, &json)?));
                }
            }
            SourceKind::Notices => {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, time_us, message FROM notices WHERE ?1 < 0 AND id > ?2 ORDER BY id LIMIT ?3",
                )?;
                let mut rows = stmt.query(params)?;
                while let Some(row) = rows.next()? {
                    rows_read += 1;
                    let id: i64 = row.get(0)?;
                    self.after = id;
                    let notice = wstap_trace::Notice {
                        time: to_utc(Timestamp(row.get(1)?)),
                        message: row.get(2)?,
                    };
                    self.buffer.push_back((id, Event::Notice(notice)));
                }
            }
            SourceKind::Frames | SourceKind::Messages => {
                let (columns, table) = match self.kind {
                    SourceKind::Frames => (FRAME_COLUMNS, "frames"),
                    _ => (MESSAGE_COLUMNS, "message_rows"),
                };
                // Within a session, `seq` follows the event order and has an index.
                let (test, key) = match self.session {
                    Some(_) => ("r.session = ?1 AND r.seq > ?2", "r.seq"),
                    None => ("?1 < 0 AND r.id > ?2", "r.id"),
                };
                let query =
                    format!("SELECT {columns} FROM {table} r WHERE {test} ORDER BY {key} LIMIT ?3");
                let mut stmt = conn.prepare_cached(&query)?;
                let mut rows = stmt.query(params)?;
                while let Some(row) = rows.next()? {
                    rows_read += 1;
                    let (id, seq) = match self.kind {
                        SourceKind::Frames => {
                            let f = frame_row(row, payloads)?;
                            // A frame that is a whole message stands for that message
                            // too, the event right after it.
                            let message = f.message();
                            self.buffer.push_back((f.id, Event::Frame(f.frame)));
                            if let Some(m) = message {
                                self.buffer.push_back((m.id, Event::Message(m.message)));
                            }
                            (f.id, f.seq)
                        }
                        _ => {
                            let m = message_row(row, payloads)?;
                            self.buffer.push_back((m.id, Event::Message(m.message)));
                            (m.id, m.seq)
                        }
                    };
                    self.after = if self.session.is_some() {
                        seq as i64
                    } else {
                        id
                    };
                }
            }
        }
        self.done = rows_read < EVENT_PAGE as usize;
        Ok(())
    }
}

fn value(v: SqlValue) -> Value {
    match v {
        SqlValue::Int(i) => Value::Integer(i),
        SqlValue::Real(r) => Value::Real(r),
        SqlValue::Text(t) => Value::Text(t),
    }
}

/// SQLite's word that the file is not a database, or is damaged, as a capture error.
fn damaged(dir: &Path, e: rusqlite::Error) -> StoreError {
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

fn bad_row(table: &'static str, id: i64, why: &str) -> StoreError {
    StoreError::BadRow {
        table,
        id,
        why: why.to_owned(),
    }
}

fn parse_event(table: &'static str, id: i64, json: &str) -> Result<Event, StoreError> {
    serde_json::from_str(json).map_err(|e| bad_row(table, id, &e.to_string()))
}

fn direction(text: &str) -> Direction {
    Direction::from_short(text).unwrap_or(Direction::ClientToServer)
}

fn violations(json: Option<String>) -> Vec<String> {
    json.and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default()
}

/// Stored bytes: the inline BLOB, or the payload file's bytes at an offset.
fn bytes(inline: Option<Vec<u8>>, at: Option<i64>, kept: i64, payloads: &PayloadReader) -> Vec<u8> {
    match (inline, at) {
        (Some(bytes), _) => bytes,
        (None, Some(at)) if at >= 0 && kept > 0 => payloads.read(at as u64, kept as usize),
        _ => Vec::new(),
    }
}

/// Writes a state by its name, as filters and the capture name it.
fn state_name<S: serde::Serializer>(state: &State, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(state.name())
}

/// Column `i` of `row`, a name that `parse` reads (`None` when the column is `NULL`); a
/// name it does not know is a conversion error, as a wrong type would be.
fn named<T>(row: &Row<'_>, i: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<Option<T>> {
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
fn named_required<T>(row: &Row<'_>, i: usize, parse: fn(&str) -> Option<T>) -> rusqlite::Result<T> {
    named(row, i, parse)?.ok_or(rusqlite::Error::InvalidColumnType(
        i,
        "a name".into(),
        rusqlite::types::Type::Null,
    ))
}

fn session_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
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
    })
}

fn frame_row(row: &Row<'_>, payloads: &PayloadReader) -> rusqlite::Result<StoredFrame> {
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
    let payload = bytes(row.get(11)?, row.get(12)?, kept, payloads);
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
            let data = bytes(row.get(17)?, row.get(18)?, kept, payloads);
            Some(InflatedInfo {
                len: len as u64,
                payload: Payload {
                    truncated: (data.len() as u64) < len as u64,
                    bytes: data,
                },
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
        payload: Payload {
            truncated: (payload.len() as u64) < payload_len,
            bytes: payload,
        },
        close,
        inflated,
        violations: violations(row.get(20)?),
    };
    Ok(StoredFrame {
        id: row.get(0)?,
        seq: row.get::<_, i64>(2)? as u64,
        end_time_us: row.get(6)?,
        msg: row.get::<_, Option<i64>>(21)?.map(|m| m as u64),
        frame,
    })
}

fn message_row(row: &Row<'_>, payloads: &PayloadReader) -> rusqlite::Result<StoredMessage> {
    let opcode = Opcode::from_bits(row.get(4)?);
    let len = row.get::<_, i64>(8)? as u64;
    let data = bytes(row.get(11)?, row.get(12)?, row.get(13)?, payloads);
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
        payload: Payload {
            truncated: (data.len() as u64) < len,
            bytes: data,
        },
        violations: violations(row.get(14)?),
        incomplete: row.get(15)?,
    };
    Ok(StoredMessage {
        id: row.get(0)?,
        seq: row.get::<_, i64>(2)? as u64,
        first_frame: row.get::<_, Option<i64>>(16)?.map(|s| s as u64),
        last_frame: row.get::<_, Option<i64>>(17)?.map(|s| s as u64),
        flags: row.get(18)?,
        message,
    })
}
