//! Every event of a capture (or of one session) back in the order it happened, merged
//! from the tables a page at a time, so a capture of any size streams out in bounded
//! memory.

use super::decode::{frame_row, message_row, parse_event};
use super::{FRAME_COLUMNS, MESSAGE_COLUMNS};
use crate::payloads::PayloadReader;
use crate::spans::{from_span_of, session_frames};
use crate::StoreError;
use rusqlite::Connection;
use wstap_trace::convert::to_utc;
use wstap_trace::Event;
use wstap_wire::Timestamp;

/// Where events come from: each kind is read in event order, a page at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceKind {
    Starts,
    Ends,
    Handshakes,
    Http,
    Frames,
    Messages,
    Notices,
    Interventions,
}

impl SourceKind {
    pub(super) const ALL: [SourceKind; 8] = [
        SourceKind::Starts,
        SourceKind::Ends,
        SourceKind::Handshakes,
        SourceKind::Http,
        SourceKind::Frames,
        SourceKind::Messages,
        SourceKind::Notices,
        SourceKind::Interventions,
    ];
}

/// Events read from one source and not handed on yet.
pub(super) struct Source {
    pub(super) kind: SourceKind,
    pub(super) session: Option<u64>,
    /// The key of the last row read: an event number, or a frame's or message's `seq`
    /// within a session.
    pub(super) after: i64,
    pub(super) buffer: std::collections::VecDeque<(i64, Event)>,
    pub(super) done: bool,
}

/// Rows read per page: payloads make frames heavy, so their pages are short.
pub(super) const EVENT_PAGE: i64 = 512;

impl Source {
    pub(super) fn new(kind: SourceKind, session: Option<u64>) -> Self {
        Source {
            kind,
            session,
            after: -1,
            buffer: std::collections::VecDeque::new(),
            done: false,
        }
    }

    pub(super) fn refill(
        &mut self,
        conn: &Connection,
        payloads: &PayloadReader,
    ) -> Result<(), StoreError> {
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
            SourceKind::Starts
            | SourceKind::Ends
            | SourceKind::Handshakes
            | SourceKind::Http
            | SourceKind::Interventions => {
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
                        json_query(
                            "ev",
                            "event, request_raw, response_raw",
                            "handshakes",
                            "session",
                            "",
                        ),
                    ),
                    SourceKind::Interventions => (
                        "interventions",
                        json_query("id", "event", "interventions", "session", ""),
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
                    let mut event = parse_event(table, ev, &json)?;
                    if let Event::Handshake(h) = &mut event {
                        // The heads' bytes as they were sent (for a pcapng export).
                        let request: Option<Vec<u8>> = row.get(2)?;
                        let response: Option<Vec<u8>> = row.get(3)?;
                        h.exchange.raw = request.map(|request| wstap_trace::RawHeads {
                            request,
                            response: response.unwrap_or_default(),
                        });
                    }
                    self.buffer.push_back((ev, event));
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
                let frames = self.kind == SourceKind::Frames;
                let columns = if frames {
                    FRAME_COLUMNS
                } else {
                    MESSAGE_COLUMNS
                };
                // Within a session, `seq` follows the event order: a session's frames are
                // found through its spans (see `crate::spans`), its message rows through
                // their index.
                let query = match (self.session, frames) {
                    (Some(_), true) => format!(
                        "SELECT {columns} FROM {}{} AND r.seq > ?2 \
                         ORDER BY sp.first_seq, r.id LIMIT ?3",
                        session_frames("?1"),
                        from_span_of("?1", "?2 + 1")
                    ),
                    (Some(_), false) => format!(
                        "SELECT {columns} FROM message_rows r \
                         WHERE r.session = ?1 AND r.seq > ?2 ORDER BY r.seq LIMIT ?3"
                    ),
                    (None, true) => format!(
                        "SELECT {columns} FROM frames r WHERE ?1 < 0 AND r.id > ?2 ORDER BY r.id LIMIT ?3"
                    ),
                    (None, false) => format!(
                        "SELECT {columns} FROM message_rows r \
                         WHERE ?1 < 0 AND r.id > ?2 ORDER BY r.id LIMIT ?3"
                    ),
                };
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
