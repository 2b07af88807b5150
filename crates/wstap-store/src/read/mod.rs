//! Reading a capture: sessions, pages of frames and messages by filter, counts, and every
//! event back in the order it happened.
//!
//! A [`Capture`] opens the database read-only, so any number of readers (a second wstap,
//! the inspector, `sqlite3`) can read a capture while it is written; none of them ever
//! writes to it. Pages are found by position (keyset on `(session, seq)`, never `OFFSET`),
//! so the page at the end of a ten-million-frame session costs what the first page costs.
//!
//! The jobs, one file each: the [`Capture`] and its queries (here), the record tables
//! (`tables`), what comes back (`model`), rows decoded into values (`decode`), and every
//! event streamed in order (`events`).

mod decode;
mod events;
mod model;
mod tables;

use crate::bound::CaptureSize;
use crate::columns::Frames;
use crate::layout;
use crate::payloads::{PayloadLayout, PayloadReader};
use crate::schema::MARK_EVERY;
use crate::StoreError;
use decode::{
    bad_row, damaged, direction, frame_row, message_row, parse_event, session_row, value,
};
use events::{Source, SourceKind};
pub use model::{
    CaptureRow, Position, SessionRow, StoredFrame, StoredHandshake, StoredMessage, TimelineBucket,
};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OpenFlags, OptionalExtension, Row};
use std::path::{Path, PathBuf};
use std::sync::Arc;
pub use tables::Rows;
use tables::{Side, Table};
use wstap_filter::{Filter, Scope};
use wstap_trace::{Event, HttpExchange, Intervention};
use wstap_views::View;
use wstap_wire::Direction;

/// A capture open for reading: see the module documentation.
#[derive(Debug)]
pub struct Capture {
    conn: Connection,
    dir: PathBuf,
    layout: PayloadLayout,
    /// The protobuf schema last read, parsed.
    proto_schema: std::sync::Mutex<Option<Box<wstap_views::ProtoSchema>>>,
}

pub(super) const SESSION_COLUMNS: &str =
    "s.id, s.started_us, s.ended_us, s.client, s.target, s.via, s.tls, \
    s.client_tls, s.upstream_tls, s.url, s.status, s.subprotocol, s.extensions, s.kind, s.state, \
    s.close_initiator, s.close_code, s.close_reason, s.frames_c2s, s.frames_s2c, s.messages_c2s, \
    s.messages_s2c, s.bytes_c2s, s.bytes_s2c, s.violations, s.error, s.duration_us, s.listener, \
    s.upstream_proxy, COALESCE((SELECT c.view FROM view_choices c WHERE c.session = s.id), s.view)";

pub(super) const FRAME_COLUMNS: &str = concat!(
    "r.id, r.session, r.seq, r.dir, r.idx, r.time_us, r.end_time_us, \
    r.flags, r.mask_key, r.length_bits, r.payload_len, r.payload, r.payload_at, r.payload_kept, \
    r.close_code, r.close_reason, r.inflated_len, r.inflated, r.inflated_at, r.inflated_kept, \
    r.violations, r.msg, ",
    crate::columns::fate_of!("r.idx")
);

pub(super) const MESSAGE_COLUMNS: &str = concat!(
    "r.id, r.session, r.seq, r.dir, r.opcode, r.frames, r.time_us, \
    r.end_time_us, r.len, r.wire_len, r.compressed, r.data, r.data_at, r.data_kept, \
    r.violations, r.incomplete, r.first_frame, r.last_frame, r.flags, ",
    crate::columns::fate_of!(crate::columns::last_frame_idx!()),
    ", r.origin, r.wire, r.held"
);

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
        let open = || -> Result<(Connection, i64), StoreError> {
            let conn =
                Connection::open_with_flags(&database, flags).map_err(|e| damaged(&dir, e))?;
            let version = crate::schema::check(&conn, &dir).map_err(|e| match e {
                StoreError::Sqlite(e) => damaged(&dir, e),
                other => other,
            })?;
            Ok((conn, version))
        };
        let (mut conn, version) = open()?;
        if version < crate::schema::SCHEMA_VERSION {
            // Written by an older wstap: brought forward once, then read as any other.
            drop(conn);
            crate::schema::migrate(&dir, &database).map_err(|e| match e {
                // Being written by an older wstap still: say so as it is.
                StoreError::InUse { .. } => e,
                other => StoreError::Migration {
                    path: dir.clone(),
                    found: version,
                    why: other.to_string(),
                },
            })?;
            conn = open()?.0;
        }
        let layout = payload_layout(&conn, &dir).map_err(|e| damaged(&dir, e))?;
        let payloads = Arc::new(PayloadReader::for_filters(layout.clone()));
        crate::functions::register(&conn, payloads)?;
        let capture = Capture {
            conn,
            dir,
            layout,
            proto_schema: std::sync::Mutex::new(None),
        };
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
            "SELECT started_us, ended_us, writer, max_capture, max_bytes, payloads_from
               FROM captures WHERE id = 1",
            [],
            |row| {
                Ok(CaptureRow {
                    started_us: row.get(0)?,
                    ended_us: row.get(1)?,
                    writer: row.get(2)?,
                    max_capture: row.get(3)?,
                    max_bytes: row.get::<_, Option<i64>>(4)?.map(|b| b as u64),
                    payloads_dropped: row.get::<_, i64>(5)? as u64,
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

    /// The packets of a byte-stream view (MQTT) that end in session `id`'s messages
    /// numbered `from` to `to` (both included), for those whose packets are not their own
    /// bytes (`stream_packets`), by message number.
    pub fn stream_packets(
        &self,
        id: u64,
        from: u64,
        to: u64,
    ) -> Result<std::collections::HashMap<u64, Vec<u8>>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT msg, bytes FROM stream_packets WHERE session = ?1 AND msg BETWEEN ?2 AND ?3",
        )?;
        let rows = stmt.query_map(
            rusqlite::params![id as i64, from as i64, to as i64],
            |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, Vec<u8>>(1)?)),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The view the writer read each session with (`sessions.view`; a person's later
    /// choice aside): what the capture's protocol filters read by.
    pub fn recorded_views(
        &self,
    ) -> Result<std::collections::HashMap<u64, Option<View>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, view FROM sessions WHERE start_event != ''")?;
        let rows = stmt.query_map([], |row| {
            let view: Option<String> = row.get(1)?;
            Ok((
                row.get::<_, i64>(0)? as u64,
                view.and_then(|v| View::from_name(&v)),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a person's choice of view for session `id` (`None`: back to the one wstap
    /// chose), which readers prefer from then on. The one write a reader makes: through a
    /// connection of its own, waiting for the writer's transaction if one is open.
    pub fn choose_view(&self, id: u64, view: Option<View>) -> Result<(), StoreError> {
        if self.session(id)?.is_none() {
            return Err(crate::export::ExportError::NoSuchSession(id).into());
        }
        let conn = self.write_connection()?;
        match view {
            Some(view) => conn.execute(
                "INSERT OR REPLACE INTO view_choices (session, view, time_us) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    id as i64,
                    view.name(),
                    chrono::Utc::now().timestamp_micros()
                ],
            )?,
            None => conn.execute("DELETE FROM view_choices WHERE session = ?1", [id as i64])?,
        };
        Ok(())
    }

    /// The schema the protobuf view names fields by, when the capture keeps one.
    pub fn proto_schema(&self) -> Result<Option<wstap_views::ProtoSchema>, StoreError> {
        crate::proto::read(&self.conn, &self.proto_schema)
    }

    /// Keeps `schema` in the capture for every reader from then on (`wstap view
    /// --proto-descriptor`): like [`Capture::choose_view`], a write of its own.
    pub fn keep_proto_schema(&self, schema: &wstap_views::ProtoSchema) -> Result<(), StoreError> {
        crate::proto::keep(&self.write_connection()?, schema)
    }

    /// A connection that may write, for the few writes a reader makes; it waits for the
    /// writer's transaction if one is open.
    fn write_connection(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            layout::database(&self.dir),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(conn)
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
                table.session_test()
            }
            None => "1",
        };
        params.extend(sql.params.into_iter().map(value));
        let query = format!(
            "SELECT {select} FROM {}{join} WHERE {session_test} AND {} AND ({})",
            table.source(session.is_some()),
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
        let (_, offset) = table.key(session.is_some());
        let (test, descending) = match position {
            Position::From(at) => (
                table.seek(session, Side::From, at as i64 - offset, &mut params),
                false,
            ),
            Position::Before(at) => (
                table.seek(session, Side::Before, at as i64 - offset, &mut params),
                true,
            ),
            Position::Last => (String::new(), true),
        };
        params.push(Value::Integer(limit as i64));
        let order = table.order_by(session.is_some(), descending);
        let query = format!("{query}{test} ORDER BY {order} LIMIT ?");
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
            let test = table.seek(Some(session), Side::From, from as i64, &mut params);
            let query = format!("{query}{test} ORDER BY {}", table.order_by(true, false));
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
        let payloads = self.payloads();
        let mut found = Vec::with_capacity(positions.len());
        // Positions close together are read with one query over the range they span;
        // far apart, each with its own (a range is scanned, not looked up, for some tables).
        for run in runs(positions) {
            let (query, mut params) = self.record_query(table, &select, Some(session), &all);
            let (first, last) = (run[0] as i64, run[run.len() - 1] as i64);
            let from = table.seek(Some(session), Side::From, first, &mut params);
            let before = table.seek(Some(session), Side::Before, last + 1, &mut params);
            let marks = vec!["?"; run.len()].join(", ");
            params.extend(run.iter().map(|&p| Value::Integer(p as i64)));
            let query = format!(
                "{query}{from}{before} AND {key} IN ({marks}) ORDER BY {}",
                table.order_by(true, false)
            );
            let mut stmt = self.conn.prepare(&query)?;
            let rows = stmt.query_map(params_from_iter(params), |row| {
                let key: i64 = row.get(row.as_ref().column_count() - 1)?;
                Ok((key as u64, read(row, &payloads)?))
            })?;
            for row in rows {
                found.push(row?);
            }
        }
        Ok(found)
    }

    /// How many frames or messages `session` has: positions run from 0 to this, less one.
    pub fn extent(&self, rows: Rows, session: u64) -> Result<u64, StoreError> {
        let mut extent = 0u64;
        for &table in rows.tables() {
            let last: Option<i64> = self
                .conn
                .prepare_cached(&table.last_key_sql())?
                .query_row([session as i64], |row| row.get(0))
                .optional()?;
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
        let query = format!(
            "SELECT b, dir, count(*), sum(len) FROM (
                SELECT (r.time_us - ?2) / ?3 AS b, r.dir, COALESCE(r.inflated_len, r.payload_len) AS len
                  FROM {} AND r.msg IS NOT NULL
                UNION ALL
                SELECT (time_us - ?2) / ?3 AS b, dir, len FROM message_rows WHERE session = ?1
            ) GROUP BY b, dir ORDER BY b",
            crate::spans::session_frames("?1")
        );
        let mut stmt = self.conn.prepare_cached(&query)?;
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
        self.session_lines(LineTable::Http, session, |event| match event {
            Event::Http(http) => Some(http),
            _ => None,
        })
    }

    /// What wstap did to a session (breakpoints, decisions, injections), in order.
    pub fn interventions(&self, session: u64) -> Result<Vec<Intervention>, StoreError> {
        self.session_lines(LineTable::Interventions, session, |event| match event {
            Event::Intervention(done) => Some(done),
            _ => None,
        })
    }

    /// The events a table keeps as trace lines (`id`, `event`) for `session`, in order,
    /// each as `pick` takes it.
    fn session_lines<T>(
        &self,
        table: LineTable,
        session: u64,
        pick: impl Fn(Event) -> Option<T>,
    ) -> Result<Vec<T>, StoreError> {
        let name = table.name();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, event FROM {name} WHERE session = ? ORDER BY id"
        ))?;
        let rows = stmt.query_map([session as i64], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, event) = row?;
            out.extend(pick(parse_event(name, id, &event)?));
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
        PayloadReader::for_pages(self.layout.clone())
    }

    /// The capture's size on disk: the database (and its log) and the payload files.
    pub fn size(&self) -> Result<CaptureSize, StoreError> {
        let info = self.info()?;
        let bytes = std::fs::read_dir(&self.dir)
            .map_err(|e| StoreError::io(&self.dir, e))?
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name() != layout::LOCK)
            .filter_map(|entry| entry.metadata().ok())
            .filter(|meta| meta.is_file())
            .map(|meta| meta.len())
            .sum();
        Ok(CaptureSize {
            bytes,
            bound: info.max_bytes,
            dropped: info.payloads_dropped,
        })
    }
}

/// `positions` sorted, in runs whose neighbours lie at most a mark's spacing apart: each
/// run is read with one query over the range it spans.
fn runs(positions: &[u64]) -> Vec<Vec<u64>> {
    let mut sorted = positions.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut runs: Vec<Vec<u64>> = Vec::new();
    for position in sorted {
        match runs.last_mut() {
            Some(run)
                if run
                    .last()
                    .is_some_and(|&last| position - last <= MARK_EVERY) =>
            {
                run.push(position)
            }
            _ => runs.push(vec![position]),
        }
    }
    runs
}

/// Where the capture behind `conn`, in `dir`, keeps its payloads: segment files since
/// schema 5, one file before.
fn payload_layout(conn: &Connection, dir: &Path) -> rusqlite::Result<PayloadLayout> {
    let segment: Option<i64> = conn.query_row(
        "SELECT payload_segment FROM captures WHERE id = 1",
        [],
        |row| row.get(0),
    )?;
    Ok(match segment {
        Some(size) if size > 0 => PayloadLayout::Segments {
            dir: dir.to_owned(),
            size: size as u64,
        },
        _ => PayloadLayout::Single(dir.join(layout::PAYLOADS)),
    })
}

/// The tables that keep a session's events as trace lines.
#[derive(Debug, Clone, Copy)]
enum LineTable {
    Http,
    Interventions,
}

impl LineTable {
    fn name(self) -> &'static str {
        match self {
            LineTable::Http => "http",
            LineTable::Interventions => "interventions",
        }
    }
}
