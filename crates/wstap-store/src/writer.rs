//! The writer: every event of a run, in order, into a capture.
//!
//! It is a [`Sink`]: the bus's lossless driver hands it events on a thread of its own and
//! tells it when to make them durable. Events go into one transaction until
//! [`Sink::flush`], which first hands the payload file to the operating system and then
//! commits, so committed rows only point at written bytes. Each event gets a number in
//! arrival order: the rowid of frames and messages, a column elsewhere, so a capture can
//! give its events back in the order they happened.
//!
//! Payloads of up to [`INLINE_MAX`] bytes are kept inline as BLOBs (so `sqlite3` shows
//! them); larger ones go to the payload file once. A message that is one whole frame (the
//! common case) is not written again at all: the frame's row says it is a message
//! (`frames.msg`), and every fact of the message follows from the frame's. The writer
//! sees a frame and its message together in the bus's batch, and checks that this holds
//! before it relies on it (fact for fact; the bytes by length when both records come from
//! the analyzer, whose contract that is, and byte for byte when they come from a trace);
//! any other message gets a row of its own (`message_rows`).
//!
//! `frames` has no index: each frame row extends its session's run of ids, which the
//! writer keeps in `frame_spans` ([`crate::spans`]) and readers find its frames by.
//!
//! Memory is bounded by the sessions open at once (a few counters each), whatever the
//! length of the run. Disk is bounded by `CaptureInfo::max_bytes`, when set: after each
//! commit, and as payloads are appended between commits, the writer deletes the oldest
//! payload segments the bound has no room for beside the database (a payload whose
//! segment is gone reads as dropped; `captures.payloads_from` says up to where), and if
//! the records alone outgrow it, it stops with [`StoreError::Full`].

use crate::bound::{self, CaptureSize};
use crate::facts::SessionSummary;
use crate::ids::IdMap;
use crate::layout::{self, WriterLock};
use crate::payloads::PayloadWriter;
use crate::pending::{Cell, PendingFrames};
use crate::rows::{dir_name, frame_head, rare_json, violations_json};
use crate::schema::{self, MARK_EVERY};
use crate::spans::{self, OpenSpan};
use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use wstap_filter::Filter;
use wstap_trace::view::{Form, FrameView, MessageView, Part};
use wstap_trace::{BusEvent, Event, Handshake, HttpExchange, SessionEnd, SessionStart, Sink};
use wstap_views::{ProtoSchema, View, ViewTracker};
use wstap_wire::{Direction, FrameHeader, Opcode, Record};

/// Payloads up to this many bytes are kept inline in the database.
///
/// Inline bytes are written twice (the WAL, then the checkpoint) and checksummed; the
/// payload file writes them once. 512 is where the two measured alike (docs/performance.md).
pub const INLINE_MAX: usize = 512;

/// What a capture records about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureInfo {
    /// The program writing it, e.g. `wstap 0.1.0`.
    pub writer: String,
    /// Payload bytes kept per frame and per message (`--max-capture`).
    pub max_capture: usize,
    /// How large the capture may grow on disk (`--capture-max`); `None`: no bound.
    pub max_bytes: Option<u64>,
}

/// What a commit made visible, for whoever follows a capture live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The number of the last event committed.
    pub last_event: i64,
    /// Sessions with new rows or new counts, ascending.
    pub sessions: Vec<u64>,
    /// The capture's size on disk then, against its bound.
    pub size: CaptureSize,
}

/// A callback told of every commit.
type CommitHook = Box<dyn FnMut(&Committed) + Send>;

/// Writes a capture: see the module documentation.
pub struct CaptureWriter {
    conn: Connection,
    /// `--view` rules: the first whose session filter selects a session gives its view.
    views: Vec<(Filter, View)>,
    payloads: PayloadWriter,
    dir: PathBuf,
    open: IdMap<OpenSession>,
    next_event: i64,
    in_transaction: bool,
    touched: Vec<u64>,
    on_commit: Option<CommitHook>,
    pending: PendingFrames,
    bound: Option<u64>,
    /// The database's size on disk at the last commit.
    database: u64,
    _lock: WriterLock,
}

impl std::fmt::Debug for CaptureWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("dir", &self.dir)
            .field("open_sessions", &self.open.len())
            .finish_non_exhaustive()
    }
}

/// Where stored bytes are: inline, in the payload file, or nowhere (none kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    /// Offset in the payload file, when they went there.
    at: Option<i64>,
    /// Bytes kept.
    kept: usize,
    /// Bytes there were.
    total: u64,
}

/// What a message takes from its first and last frames.
#[derive(Debug, Clone, Copy)]
struct FrameMark {
    seq: u64,
    flags: u8,
    masked: bool,
}

/// What the writer tracks of one direction of an open session.
#[derive(Debug, Default)]
struct DirState {
    /// The first and the last frame of the data message being read.
    data_first: Option<FrameMark>,
    data_last: Option<FrameMark>,
    /// The last control (or reserved) frame: a message of its own.
    control: Option<FrameMark>,
    frames: u64,
    messages: u64,
    bytes: u64,
}

/// What the writer tracks of an open session.
#[derive(Debug, Default)]
struct OpenSession {
    next_frame: u64,
    next_message: u64,
    dirs: [DirState; 2],
    violations: u64,
    touched: bool,
    /// What `--view` rules read of it, until its handshake is in.
    summary: Option<SessionSummary>,
    /// Its view (chosen from its first messages, until that is settled), and the packets
    /// a byte-stream view's messages end.
    view: Option<ViewTracker>,
    /// Where its latest frames are (`frame_spans`).
    span: OpenSpan,
}

fn slot(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl CaptureWriter {
    /// Creates a capture in `dir` (made if missing; it must be empty) and takes the
    /// writer's lock on it.
    pub fn create(dir: &Path, info: &CaptureInfo) -> Result<CaptureWriter, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let not_empty = std::fs::read_dir(dir)
            .map_err(|e| StoreError::io(dir, e))?
            .next()
            .is_some();
        if not_empty {
            return Err(StoreError::Exists {
                path: dir.to_owned(),
            });
        }
        let lock = WriterLock::take(dir)?;
        let mut conn = Connection::open(layout::database(dir))?;
        schema::tune_writer(&conn, info.max_bytes)?;
        schema::create(&mut conn)?;
        let segment = bound::segment_for(info.max_bytes);
        conn.execute(
            "INSERT INTO captures (id, started_us, writer, max_capture, inline_max, payload_file,
                 payload_segment, max_bytes)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                chrono::Utc::now().timestamp_micros(),
                info.writer,
                info.max_capture as i64,
                INLINE_MAX as i64,
                layout::PAYLOAD_SEGMENTS,
                segment as i64,
                info.max_bytes.map(|b| b as i64),
            ],
        )?;
        let payloads = PayloadWriter::create(dir, segment);
        Ok(CaptureWriter {
            conn,
            payloads,
            dir: dir.to_owned(),
            open: IdMap::default(),
            views: Vec::new(),
            next_event: 1,
            in_transaction: false,
            touched: Vec::new(),
            on_commit: None,
            pending: PendingFrames::new(),
            bound: info.max_bytes,
            database: 0,
            _lock: lock,
        })
    }

    /// Opens the capture in `dir`, recorded before (finished or cut short), to record
    /// more sessions into it (`wstap replay`): brings it to this schema, takes the
    /// writer's lock (a capture a running wstap writes is refused: `InUse`), and goes on
    /// after its last event and its payloads, within its bound. Returns the writer and the
    /// number its next session takes.
    pub fn append(dir: &Path) -> Result<(CaptureWriter, u64), StoreError> {
        // Opening it as a reader checks it and brings an older one up to date.
        drop(crate::Capture::open(dir)?);
        let lock = WriterLock::take(dir)?;
        let conn = Connection::open(layout::database(dir))?;
        let cannot = |why: &str| StoreError::CannotAppend {
            path: dir.to_owned(),
            why: why.to_owned(),
        };
        let (segment, max_bytes): (Option<i64>, Option<i64>) = conn.query_row(
            "SELECT payload_segment, max_bytes FROM captures WHERE id = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let segment = segment.and_then(|s| u64::try_from(s).ok()).ok_or_else(|| {
            cannot("it keeps its payloads in one file (a wstap before capture schema 5)")
        })?;
        let max_bytes = max_bytes.and_then(|b| u64::try_from(b).ok());
        // Every event number the capture used, whichever table holds it; a whole-frame
        // message's own number is its frame's plus one.
        let last_event: i64 = conn.query_row(
            "SELECT max(n) FROM (
                 SELECT max(ev_start) AS n FROM sessions UNION ALL SELECT max(ev_end) FROM sessions
                 UNION ALL SELECT max(ev) FROM handshakes UNION ALL SELECT max(ev) FROM http
                 UNION ALL SELECT max(id) + 1 FROM frames UNION ALL SELECT max(id) FROM message_rows
                 UNION ALL SELECT max(id) FROM notices UNION ALL SELECT max(id) FROM interventions)",
            [],
            |row| Ok(row.get::<_, Option<i64>>(0)?.unwrap_or(0)),
        )?;
        let last_session: i64 =
            conn.query_row("SELECT COALESCE(max(id), 0) FROM sessions", [], |row| {
                row.get(0)
            })?;
        // The end of the payload bytes rows refer to: new payloads go after it, whatever
        // a segment file says of its own length (one cut short by a crash must not be
        // written over where old rows point).
        let referenced: i64 = conn.query_row(
            "SELECT COALESCE(max(e), 0) FROM (
                 SELECT max(payload_at + payload_kept) AS e FROM frames WHERE payload_at IS NOT NULL
                 UNION ALL SELECT max(inflated_at + inflated_kept) FROM frames WHERE inflated_at IS NOT NULL
                 UNION ALL SELECT max(data_at + data_kept) FROM message_rows WHERE data_at IS NOT NULL)",
            [],
            |row| row.get(0),
        )?;
        schema::tune_writer(&conn, max_bytes)?;
        let payloads = PayloadWriter::resume(dir, segment, u64::try_from(referenced).unwrap_or(0))?;
        let writer = CaptureWriter {
            conn,
            payloads,
            dir: dir.to_owned(),
            open: IdMap::default(),
            views: Vec::new(),
            next_event: last_event + 1,
            in_transaction: false,
            touched: Vec::new(),
            on_commit: None,
            pending: PendingFrames::new(),
            bound: max_bytes,
            database: 0,
            _lock: lock,
        };
        Ok((writer, last_session as u64 + 1))
    }

    /// The capture's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Calls `hook` after every commit (from the writer's thread).
    pub fn on_commit(&mut self, hook: impl FnMut(&Committed) + Send + 'static) {
        self.on_commit = Some(Box::new(hook));
    }

    /// Records events in trace form, in order (what `wstap import` feeds).
    pub fn write_events(&mut self, events: &[Event]) -> Result<(), StoreError> {
        self.write_items(events.iter().map(Item::of_event))
    }

    /// Gives the sessions the first of `rules` selects (a session-only filter) that
    /// view, rather than the one their handshake or first messages would choose.
    pub fn choose_views(&mut self, rules: Vec<(Filter, View)>) {
        self.views = rules;
    }

    /// Keeps in the capture the schema its protobuf view names fields by, for every
    /// reader after it.
    pub fn keep_proto_schema(&mut self, schema: &ProtoSchema) -> Result<(), StoreError> {
        crate::proto::keep(&self.conn, schema)
    }

    /// Records items in order, a frame and the message it wholly is as one row.
    fn write_items<'e>(&mut self, items: impl Iterator<Item = Item<'e>>) -> Result<(), StoreError> {
        self.begin()?;
        let mut items = items.peekable();
        while let Some(item) = items.next() {
            let ev = self.take_event_number();
            match item {
                Item::Frame(frame) => {
                    let whole = match items.peek() {
                        Some(Item::Message(m)) => is_whole(&frame, m),
                        _ => false,
                    };
                    if whole {
                        if let Some(Item::Message(message)) = items.next() {
                            let _message_ev = self.take_event_number();
                            self.frame(ev, &frame, Some(&message))?;
                        }
                    } else {
                        self.frame(ev, &frame, None)?;
                    }
                }
                Item::Message(message) => self.message(ev, &message)?,
                Item::Event(event) => self.event(ev, event)?,
            }
        }
        Ok(())
    }

    /// A session-level event.
    fn event(&mut self, ev: i64, event: &Event) -> Result<(), StoreError> {
        match event {
            Event::SessionStart(start) => self.session_start(ev, start),
            Event::Handshake(handshake) => self.handshake(ev, handshake),
            Event::Http(http) => self.http(ev, http),
            Event::SessionEnd(end) => self.session_end(ev, end),
            Event::Notice(notice) => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO notices (id, time_us, message) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![ev, notice.time.timestamp_micros(), notice.message])?;
                Ok(())
            }
            Event::Intervention(done) => {
                let line = serde_json::to_string(event).map_err(|e| StoreError::BadRow {
                    table: "interventions",
                    id: ev,
                    why: e.to_string(),
                })?;
                self.conn
                    .prepare_cached(
                        "INSERT INTO interventions (id, session, time_us, action, by, dir, held, frame, event)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?
                    .execute(params![
                        ev,
                        done.session as i64,
                        done.time.timestamp_micros(),
                        done.action.name(),
                        done.by.name(),
                        done.dir.map(|d| d.short()),
                        done.held.map(|h| h as i64),
                        done.frame.map(|f| f as i64),
                        line,
                    ])?;
                Ok(())
            }
            // Records come as items of their own; the trace header is not an event.
            Event::Trace(_) | Event::Frame(_) | Event::Message(_) => Ok(()),
        }
    }

    fn take_event_number(&mut self) -> i64 {
        let ev = self.next_event;
        self.next_event += 1;
        ev
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        if !self.in_transaction {
            self.conn.execute_batch("BEGIN")?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Keeps `bytes`: inline when small (returned for the row), else in the payload file.
    fn store<'b>(
        &mut self,
        bytes: &'b [u8],
        total: u64,
    ) -> Result<(Option<&'b [u8]>, Stored), StoreError> {
        let kept = bytes.len();
        if kept == 0 {
            return Ok((
                None,
                Stored {
                    at: None,
                    kept,
                    total,
                },
            ));
        }
        if kept <= INLINE_MAX {
            return Ok((
                Some(bytes),
                Stored {
                    at: None,
                    kept,
                    total,
                },
            ));
        }
        let at = self.payloads.append(bytes)? as i64;
        if let Some(bound) = self.bound {
            // Between commits too: a burst must not carry the capture past its bound.
            self.make_room(bound.saturating_sub(self.database))?;
        }
        Ok((
            None,
            Stored {
                at: Some(at),
                kept,
                total,
            },
        ))
    }

    fn session(&mut self, id: u64) -> &mut OpenSession {
        let session = self.open.entry(id).or_default();
        if !session.touched {
            session.touched = true;
            self.touched.push(id);
        }
        session
    }

    fn session_start(&mut self, ev: i64, start: &SessionStart) -> Result<(), StoreError> {
        let (host, port) = crate::facts::split_target(&start.target);
        let leg = |leg: &Option<wstap_trace::TlsLeg>| {
            leg.as_ref().and_then(|l| serde_json::to_string(l).ok())
        };
        let event = serde_json::to_string(&Event::SessionStart(start.clone())).map_err(|e| {
            StoreError::BadRow {
                table: "sessions",
                id: start.session as i64,
                why: e.to_string(),
            }
        })?;
        let via = start.via.name();
        let parent = start
            .upstream_proxy
            .as_ref()
            .and_then(|hop| serde_json::to_string(hop).ok());
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (id, ev_start, started_us, client, target, host, port, via, tls,
                     client_tls, upstream_tls, start_event, listener, upstream_proxy)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                 ON CONFLICT(id) DO UPDATE SET ev_start = excluded.ev_start,
                     started_us = excluded.started_us, client = excluded.client,
                     target = excluded.target, host = excluded.host, port = excluded.port,
                     via = excluded.via, tls = excluded.tls, client_tls = excluded.client_tls,
                     upstream_tls = excluded.upstream_tls, start_event = excluded.start_event,
                     listener = excluded.listener, upstream_proxy = excluded.upstream_proxy",
            )?
            .execute(params![
                start.session as i64,
                ev,
                start.time.timestamp_micros(),
                start.client,
                start.target,
                host,
                port,
                via,
                start.tls,
                leg(&start.client_tls),
                leg(&start.upstream_tls),
                event,
                start.listener,
                parent
            ])?;
        let has_rules = !self.views.is_empty();
        self.reopen(start.session)?;
        let session = self.session(start.session);
        if has_rules {
            let mut summary = SessionSummary::new(start.session);
            summary.apply(&Event::SessionStart(start.clone()));
            session.summary = Some(summary);
        }
        Ok(())
    }

    /// Chooses a session's view once its handshake is in: a `--view` rule's, else what
    /// the subprotocol or the URL says, else what its first messages will say.
    fn choose_view(&mut self, h: &Handshake) -> Result<(), StoreError> {
        let id = h.exchange.session;
        let summary = self.open.get_mut(&id).and_then(|s| s.summary.take());
        let detector = crate::facts::handshake_view(&self.views, summary, h);
        if let Some(view) = detector.view() {
            self.set_view(id, view)?;
        }
        self.session(id).view = Some(ViewTracker::new(detector));
        Ok(())
    }

    /// Shows a data message (number `msg` of its session; `frame`, the frame that is all
    /// of it, if one is) to the session's view: it may decide the view, and a byte-stream
    /// view keeps the packets it ends, found by message and by frame.
    fn read_view(
        &mut self,
        m: &MessageView<'_>,
        msg: u64,
        frame: Option<u64>,
    ) -> Result<(), StoreError> {
        if !m.is_data() || !m.origin.is_wire() {
            return Ok(());
        }
        let Some(tracker) = self.open.get_mut(&m.session).and_then(|s| s.view.as_mut()) else {
            return Ok(());
        };
        let whole = !m.data.truncated() && !m.data.dropped;
        let seen = tracker.message(m.dir, m.data.data, m.opcode == Opcode::Text, whole);
        if let Some(view) = seen.decided {
            self.set_view(m.session, view)?;
        }
        if let Some(bytes) = seen.joined {
            self.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO stream_packets (session, msg, frame, bytes)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    m.session as i64,
                    msg as i64,
                    frame.map(|seq| seq as i64),
                    bytes
                ])?;
        }
        Ok(())
    }

    fn set_view(&mut self, session: u64, view: View) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE sessions SET view = ?2 WHERE id = ?1")?
            .execute(params![session as i64, view.name()])?;
        Ok(())
    }

    /// Makes sure a row exists for a session whose start was never seen (an imported
    /// trace that begins mid-run).
    fn ensure_session(&mut self, id: u64, time_us: i64, ev: i64) -> Result<(), StoreError> {
        if self.open.contains_key(&id) {
            return Ok(());
        }
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO sessions (id, ev_start, started_us, client, target, host, port,
                     via, tls, start_event)
                 VALUES (?1, ?2, ?3, '', '-', '-', 0, 'absolute', 0, '')",
            )?
            .execute(params![id as i64, ev, time_us])?;
        self.reopen(id)
    }

    /// Opens session `id` for writing, if it is not open. One seen before, whose end came
    /// and then more of it (a trace may say so), numbers its frames and messages on from
    /// those it has: no two share a position, and its frames' spans start where its
    /// last one ended.
    fn reopen(&mut self, id: u64) -> Result<(), StoreError> {
        if self.open.contains_key(&id) {
            return Ok(());
        }
        let seen: bool = self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM frame_spans WHERE session = ?1)
                     OR EXISTS (SELECT 1 FROM message_rows WHERE session = ?1)",
            )?
            .query_row([id as i64], |row| row.get(0))?;
        let (frames, messages) = if seen {
            // Its last frames may still wait to be inserted.
            self.flush_frames()?;
            written_so_far(&self.conn, id)?
        } else {
            (0, 0)
        };
        let session = self.session(id);
        session.next_frame = frames;
        session.next_message = messages;
        Ok(())
    }

    fn handshake(&mut self, ev: i64, h: &Handshake) -> Result<(), StoreError> {
        let exchange = &h.exchange;
        let time_us = exchange.time.timestamp_micros();
        self.ensure_session(exchange.session, time_us, ev)?;
        let event = serde_json::to_string(&Event::Handshake(h.clone())).unwrap_or_default();
        let status = exchange.response.as_ref().map(|r| r.status);
        let issues =
            (!h.issues.is_empty()).then(|| serde_json::to_string(&h.issues).unwrap_or_default());
        let raw = exchange.raw.as_ref();
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO handshakes (session, ev, time_us, url, status, accept_valid,
                     subprotocol, issues, request_raw, response_raw, event)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                exchange.session as i64,
                ev,
                time_us,
                exchange.url,
                status,
                h.accept_valid,
                h.subprotocol,
                issues,
                raw.map(|r| r.request.as_slice()),
                raw.map(|r| r.response.as_slice()),
                event
            ])?;
        let names = crate::facts::extension_names(&h.extensions);
        let extensions = serde_json::to_string(&h.extensions).unwrap_or_default();
        self.conn
            .prepare_cached(
                "UPDATE sessions SET url = ?2, path = ?3, status = ?4, subprotocol = ?5,
                     extensions = ?6, extension_names = ?7, violations = violations + ?8
                 WHERE id = ?1",
            )?
            .execute(params![
                exchange.session as i64,
                exchange.url,
                crate::facts::path_of(&exchange.url),
                status,
                h.subprotocol,
                extensions,
                names,
                h.issues.len() as i64
            ])?;
        self.session(exchange.session).violations += h.issues.len() as u64;
        self.choose_view(h)
    }

    fn http(&mut self, ev: i64, h: &HttpExchange) -> Result<(), StoreError> {
        let exchange = &h.exchange;
        let time_us = exchange.time.timestamp_micros();
        self.ensure_session(exchange.session, time_us, ev)?;
        let event = serde_json::to_string(&Event::Http(h.clone())).unwrap_or_default();
        let status = exchange.response.as_ref().map(|r| r.status);
        let responder = match h.responder {
            wstap_trace::Responder::Upstream => "upstream",
            wstap_trace::Responder::Proxy => "proxy",
        };
        let raw = exchange.raw.as_ref();
        self.conn
            .prepare_cached(
                "INSERT INTO http (session, ev, time_us, url, method, status, responder, error,
                     request_raw, response_raw, event)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                exchange.session as i64,
                ev,
                time_us,
                exchange.url,
                exchange.request.method,
                status,
                responder,
                h.error,
                raw.map(|r| r.request.as_slice()),
                raw.map(|r| r.response.as_slice()),
                event
            ])?;
        self.touched.push(exchange.session);
        // The first exchange names the session's URL, unless a handshake did.
        self.conn
            .prepare_cached(
                "UPDATE sessions SET url = ?2, path = ?3, status = ?4
                 WHERE id = ?1 AND url IS NULL",
            )?
            .execute(params![
                exchange.session as i64,
                exchange.url,
                crate::facts::path_of(&exchange.url),
                status
            ])?;
        Ok(())
    }

    /// A frame's row; `whole` is the message the frame is all of, if it is one.
    fn frame(
        &mut self,
        ev: i64,
        f: &FrameView<'_>,
        whole: Option<&MessageView<'_>>,
    ) -> Result<(), StoreError> {
        self.ensure_session(f.session, f.time_us, ev)?;
        let header = f.header;
        let (payload_inline, payload) = self.store(f.payload.data, header.payload_len())?;
        let (inflated_inline, inflated) = match f.inflated {
            Some(bytes) => {
                let (inline, stored) = self.store(bytes.data, bytes.total)?;
                (inline, Some(stored))
            }
            None => (None, None),
        };
        let session = self.session(f.session);
        let seq = session.next_frame;
        session.next_frame += 1;
        let closed_span = session.span.take(seq, ev);
        if !f.violations.is_empty() {
            session.violations += 1;
        }
        let mark = FrameMark {
            seq,
            flags: header.first_byte(),
            masked: header.mask().is_some(),
        };
        let dir = &mut session.dirs[slot(f.dir)];
        dir.frames += 1;
        dir.bytes += header.wire_len();
        match f.part() {
            Part::DataStart => {
                dir.data_first = Some(mark);
                dir.data_last = Some(mark);
            }
            Part::DataContinued => {
                dir.data_first.get_or_insert(mark);
                dir.data_last = Some(mark);
            }
            Part::Own => dir.control = Some(mark),
        }
        let msg = whole.map(|message| Self::account_message(session, message).0);
        if let (Some(message), Some(msg)) = (whole, msg) {
            self.read_view(message, msg, Some(seq))?;
        }
        if let Some(msg) = msg {
            // A whole-frame message precedes every later message's frames, and follows
            // every earlier one's: its own frame is its mark.
            self.mark_message(f.session, msg, seq)?;
        }
        if let Some(closed) = closed_span {
            spans::write(&self.conn, f.session, closed)?;
        }
        let rare = rare_json(f.close, &f.violations);
        // In the order of `pending::FRAME_ROW_COLUMNS`.
        let row = [
            Cell::Int(ev),
            Cell::Int(f.session as i64),
            Cell::Int(seq as i64),
            Cell::Int(f.index as i64),
            Cell::Int(f.time_us),
            Cell::Int(f.end_time_us.saturating_sub(f.time_us)),
            Cell::Int(frame_head(f.dir, &header)),
            Cell::Int(header.payload_len() as i64),
            self.pending.bytes(payload_inline),
            Cell::from(payload.at),
            Cell::Int(payload.kept as i64),
            Cell::from(msg.map(|m| m as i64)),
            Cell::from(inflated.map(|i| i.total as i64)),
            self.pending.bytes(inflated_inline),
            Cell::from(inflated.and_then(|i| i.at)),
            Cell::from(inflated.map(|i| i.kept as i64)),
            rare.map_or(Cell::Null, Cell::Text),
        ];
        if self.pending.push(row) {
            self.flush_frames()?;
        }
        Ok(())
    }

    /// Inserts the frame rows waiting.
    fn flush_frames(&mut self) -> Result<(), StoreError> {
        Ok(self.pending.flush(&self.conn)?)
    }

    /// Counts a message of `session` and takes its first and last frames' marks; returns
    /// its number and those marks.
    fn account_message(
        session: &mut OpenSession,
        m: &MessageView<'_>,
    ) -> (u64, Option<FrameMark>, Option<FrameMark>) {
        let seq = session.next_message;
        session.next_message += 1;
        let dir = &mut session.dirs[slot(m.dir)];
        dir.messages += 1;
        let (first, last) = if !m.origin.is_wire() {
            // wstap wrote it: no frame of it was read.
            (None, None)
        } else if m.is_data() {
            (dir.data_first.take(), dir.data_last.take())
        } else {
            let control = dir.control.take();
            (control, control)
        };
        (seq, first, last)
    }

    /// Keeps message `msg` of `session` in `message_marks` when it is one of the
    /// marked (`frame`: see the schema's version 6).
    fn mark_message(&mut self, session: u64, msg: u64, frame: u64) -> Result<(), StoreError> {
        if msg.is_multiple_of(MARK_EVERY) {
            self.conn
                .prepare_cached(
                    "INSERT INTO message_marks (session, msg, frame) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![session as i64, msg as i64, frame as i64])?;
        }
        Ok(())
    }

    /// A message that is not one whole frame: a row of its own.
    fn message(&mut self, ev: i64, m: &MessageView<'_>) -> Result<(), StoreError> {
        self.ensure_session(m.session, m.time_us, ev)?;
        let session = self.session(m.session);
        let (seq, first, last) = Self::account_message(session, m);
        // Every frame so far belongs to this message or an earlier one, every later frame
        // to a later one: the next frame is its mark.
        let next_frame = session.next_frame;
        // A one-frame message the batch gave apart from its frame: still that frame's.
        let only_frame = (m.frames == 1).then_some(last).flatten().map(|f| f.seq);
        self.read_view(m, seq, only_frame)?;
        self.mark_message(m.session, seq, next_frame)?;
        let (data_inline, data) = self.store(m.data.data, m.data.total)?;
        let violations = violations_json(&m.violations);
        let built = BuiltHeader::of(m);
        self.conn
            .prepare_cached(
                "INSERT INTO message_rows VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
                     ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
            )?
            .execute(params![
                ev,
                m.session as i64,
                seq as i64,
                dir_name(m.dir),
                m.opcode.bits(),
                first.map_or(built.flags, |f| f.flags),
                first.map_or(built.masked, |f| f.masked),
                m.frames as i64,
                first.map(|f| f.seq as i64),
                last.map(|f| f.seq as i64),
                m.time_us,
                m.end_time_us,
                m.data.total as i64,
                m.wire_len as i64,
                m.compressed,
                m.close_code(),
                data_inline,
                data.at,
                m.data.data.len() as i64,
                violations,
                m.incomplete,
                (!m.origin.is_wire()).then(|| m.origin.name()),
                m.wire,
                m.held.map(|held| held as i64),
            ])?;
        Ok(())
    }

    fn session_end(&mut self, ev: i64, end: &SessionEnd) -> Result<(), StoreError> {
        let ended_us = end.time.timestamp_micros();
        self.ensure_session(end.session, ended_us, ev)?;
        let event = serde_json::to_string(&Event::SessionEnd(end.clone())).unwrap_or_default();
        let outcome = SessionSummary::outcome_name(end.outcome);
        let close = end.close.as_ref();
        let initiator = close.map(|c| match c.initiator {
            wstap_trace::Initiator::Client => "client",
            wstap_trace::Initiator::Server => "server",
        });
        let (messages, violations) = self.open.get(&end.session).map_or(([0, 0], 0), |s| {
            ([s.dirs[0].messages, s.dirs[1].messages], s.violations)
        });
        if let Some(span) = self
            .open
            .get_mut(&end.session)
            .and_then(|s| s.span.unwritten())
        {
            spans::write(&self.conn, end.session, span)?;
        }
        self.conn
            .prepare_cached(
                "UPDATE sessions SET ev_end = ?2, ended_us = ?3, kind = ?4, outcome = ?5,
                     close_initiator = ?6, close_code = ?7, close_reason = ?8,
                     frames_c2s = ?9, frames_s2c = ?10, bytes_c2s = ?11, bytes_s2c = ?12,
                     messages_c2s = ?13, messages_s2c = ?14, error = ?15, duration_us = ?16,
                     end_event = ?17, violations = max(violations, ?18)
                 WHERE id = ?1",
            )?
            .execute(params![
                end.session as i64,
                ev,
                ended_us,
                end.kind.name(),
                outcome,
                initiator,
                close.and_then(|c| c.code),
                close.map(|c| c.reason.as_str()),
                end.frames.c2s as i64,
                end.frames.s2c as i64,
                end.bytes.c2s as i64,
                end.bytes.s2c as i64,
                messages[0] as i64,
                messages[1] as i64,
                end.error,
                end.duration_us as i64,
                event,
                violations as i64
            ])?;
        // The end's counts are final; the running ones are not needed any more. The
        // commit announces the session whether or not anything else of it was new.
        self.open.remove(&end.session);
        self.touched.push(end.session);
        Ok(())
    }

    /// Writes the running counts of the sessions touched since the last commit, and where
    /// their latest frames are.
    fn update_counts(&mut self) -> Result<(), StoreError> {
        let mut update = self.conn.prepare_cached(
            "UPDATE sessions SET frames_c2s = ?2, frames_s2c = ?3, messages_c2s = ?4,
                 messages_s2c = ?5, bytes_c2s = ?6, bytes_s2c = ?7, violations = ?8
             WHERE id = ?1 AND outcome IS NULL",
        )?;
        for id in &self.touched {
            if let Some(session) = self.open.get_mut(id) {
                session.touched = false;
                let [c2s, s2c] = &session.dirs;
                update.execute(params![
                    *id as i64,
                    c2s.frames as i64,
                    s2c.frames as i64,
                    c2s.messages as i64,
                    s2c.messages as i64,
                    c2s.bytes as i64,
                    s2c.bytes as i64,
                    session.violations as i64
                ])?;
                if let Some(span) = session.span.unwritten() {
                    spans::write(&self.conn, *id, span)?;
                }
            }
        }
        Ok(())
    }

    /// Commits what was written: payload file first, then the transaction.
    fn commit(&mut self) -> Result<(), StoreError> {
        if !self.in_transaction {
            return Ok(());
        }
        self.flush_frames()?;
        self.update_counts()?;
        self.payloads.flush()?;
        self.conn.execute_batch("COMMIT")?;
        self.in_transaction = false;
        let size = self.keep_within_bound()?;
        let mut sessions = std::mem::take(&mut self.touched);
        sessions.sort_unstable();
        sessions.dedup();
        let committed = Committed {
            last_event: self.next_event - 1,
            sessions,
            size,
        };
        if let Some(hook) = self.on_commit.as_mut() {
            hook(&committed);
        }
        Ok(())
    }

    /// After a commit: fails when the database alone outgrew the bound, else drops the
    /// oldest payload segments there is no room for beside it. Returns the size then.
    fn keep_within_bound(&mut self) -> Result<CaptureSize, StoreError> {
        self.database = self.database_bytes();
        if let Some(bound) = self.bound {
            if self.database > bound {
                return Err(StoreError::Full { bound });
            }
            self.make_room(bound - self.database)?;
        }
        Ok(CaptureSize {
            bytes: self.database + self.payloads.on_disk(),
            bound: self.bound,
            // Every payload before the first segment kept was dropped.
            dropped: self.payloads.kept_from(),
        })
    }

    /// Drops the oldest payload segments that do not fit in `room` bytes. A reader takes
    /// a payload whose segment file is gone for dropped, so no row ever points at bytes
    /// that read wrong, whenever a crash comes; `captures.payloads_from` says up to where
    /// (in the transaction open, or at once).
    fn make_room(&mut self, room: u64) -> Result<(), StoreError> {
        let drop = self.payloads.to_drop(room);
        if drop == 0 {
            return Ok(());
        }
        self.payloads.drop_oldest(drop)?;
        self.conn.execute(
            "UPDATE captures SET payloads_from = ?1 WHERE id = 1",
            params![self.payloads.kept_from() as i64],
        )?;
        Ok(())
    }

    /// The database and its write-ahead log, on disk.
    fn database_bytes(&self) -> u64 {
        let database = layout::database(&self.dir);
        let wal = self.dir.join(format!("{}-wal", layout::DATABASE));
        [database, wal]
            .iter()
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Commits, marks the capture finished, and folds the write-ahead log back into the
    /// database for good (rollback-journal mode from then on), so that the folder holds
    /// just the database, the payloads and the lock, and readers need create nothing.
    /// While someone is reading the capture that switch must wait; the log is then only
    /// checkpointed, and the capture stays in WAL mode.
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.commit()?;
        self.conn.execute(
            "UPDATE captures SET ended_us = ?1 WHERE id = 1",
            params![chrono::Utc::now().timestamp_micros()],
        )?;
        let switched: rusqlite::Result<String> =
            self.conn
                .query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0));
        if !matches!(switched.as_deref(), Ok("delete")) {
            let _: Option<i64> = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
                .optional()?;
        }
        Ok(())
    }
}

impl Sink for CaptureWriter {
    type Error = StoreError;

    fn what(&self) -> String {
        format!("the capture {}", self.dir.display())
    }

    fn write(&mut self, event: &BusEvent) -> Result<(), StoreError> {
        self.write_items(std::iter::once(Item::of_bus(event)))
    }

    /// A batch as it came off the bus: a frame and the message it wholly is come in the
    /// same batch, one after the other, and are written as one row.
    fn write_batch(&mut self, batch: &[BusEvent]) -> Result<(), StoreError> {
        self.write_items(batch.iter().map(Item::of_bus))
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.commit()
    }

    fn close(self) -> Result<(), StoreError> {
        self.finish()
    }
}

/// How many frames and messages of `session` the capture has: none for a new session.
fn written_so_far(conn: &Connection, session: u64) -> Result<(u64, u64), StoreError> {
    let frames = spans::session_frames("?1");
    let last_span = "(SELECT max(first_seq) FROM frame_spans WHERE session = ?1)";
    let from_last_mark = spans::from_span_of(
        "?1",
        "COALESCE((SELECT frame FROM message_marks WHERE session = ?1 ORDER BY msg DESC LIMIT 1), 0)",
    );
    let (frames, messages): (i64, i64) = conn.query_row(
        &format!(
            "SELECT (SELECT COALESCE(max(r.seq) + 1, 0) FROM {frames} AND sp.first_seq = {last_span}),
                    (SELECT COALESCE(max(n) + 1, 0) FROM (
                         SELECT max(seq) AS n FROM message_rows WHERE session = ?1
                         UNION ALL SELECT max(r.msg) FROM {frames}{from_last_mark}))"
        ),
        [session as i64],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok((frames.max(0) as u64, messages.max(0) as u64))
}

/// An event on its way in, with frames and messages in the form rows are made from.
enum Item<'e> {
    Frame(FrameView<'e>),
    Message(MessageView<'e>),
    Event(&'e Event),
}

impl<'e> Item<'e> {
    fn of_bus(event: &'e BusEvent) -> Item<'e> {
        match event {
            BusEvent::Wire {
                session,
                record: Record::Frame(frame),
            } => Item::Frame(FrameView::of_record(*session, frame)),
            BusEvent::Wire {
                session,
                record: Record::Message(message),
            } => Item::Message(MessageView::of_record(*session, message)),
            BusEvent::Event(event) => Item::of_event(event),
        }
    }

    fn of_event(event: &'e Event) -> Item<'e> {
        match event {
            Event::Frame(frame) => Item::Frame(FrameView::of_event(frame)),
            Event::Message(message) => Item::Message(MessageView::of_event(message)),
            other => Item::Event(other),
        }
    }
}

/// The first header of a message wstap wrote, from its frames: its flags byte and
/// whether it was masked.
struct BuiltHeader {
    flags: u8,
    masked: bool,
}

impl BuiltHeader {
    fn of(m: &MessageView<'_>) -> BuiltHeader {
        match m.wire.map(FrameHeader::parse) {
            Some(Ok(header)) => BuiltHeader {
                flags: header.first_byte(),
                masked: header.mask().is_some(),
            },
            _ => BuiltHeader {
                flags: 0x80 | m.opcode.bits(),
                masked: false,
            },
        }
    }
}

/// Whether `m` is exactly the message that frame `f` makes on its own, fact for fact, so
/// that the frame's row can stand for it (see `Capture::messages`, which makes it back).
fn is_whole(f: &FrameView<'_>, m: &MessageView<'_>) -> bool {
    let header = &f.header;
    let data = f.data();
    m.origin.is_wire()
        && m.session == f.session
        && m.dir == f.dir
        && m.frames == 1
        && !m.incomplete
        && m.opcode == header.opcode()
        && m.time_us == f.time_us
        && m.end_time_us == f.end_time_us
        && m.wire_len == header.payload_len()
        && m.compressed == f.inflated.is_some()
        && m.data.total == data.total
        && m.data.data.len() == data.data.len()
        // The analyzer's records are the same bytes when of the same length (its contract,
        // property-tested in wstap-wire): comparing 16 KiB payloads cost the writer a
        // fifth of its time, so only debug builds check it. A trace's are compared.
        && if (f.form, m.form) == (Form::Analyzer, Form::Analyzer) {
            debug_assert_eq!(m.data.data, data.data, "a one-frame message holds its frame's bytes");
            true
        } else {
            m.data.data == data.data
        }
        && m.violations.texts() == f.violations.about_message()
}
