//! The record tables a reader pages through (frames, messages) and where each keeps what
//! filters read.

use super::{FRAME_COLUMNS, MESSAGE_COLUMNS};
use crate::columns::{FrameMessages, Frames, MessageRows};
use crate::spans::{from_span_of, SPANNED_FRAMES};
use rusqlite::types::Value;
use wstap_filter::SqlSchema;

/// Which side of a key a page's rows lie on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// At or after it.
    From,
    /// Before it.
    Before,
}

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
pub(super) enum Table {
    /// Every frame.
    Frames,
    /// Messages that are one whole frame: frames with `msg` set.
    FrameMessages,
    /// Messages with a row of their own.
    MessageRows,
}

impl Rows {
    /// The tables these rows are read from.
    pub(super) fn tables(self) -> &'static [Table] {
        match self {
            Rows::Frames => &[Table::Frames],
            Rows::Messages => &[Table::FrameMessages, Table::MessageRows],
        }
    }
}

impl Table {
    /// Whether a session's rows of this table are found through its frame spans: the
    /// rows of `frames`, which has no index (see `crate::spans`).
    fn spanned(self, in_session: bool) -> bool {
        in_session && matches!(self, Table::Frames | Table::FrameMessages)
    }

    /// What the rows (`r`) are selected from: the table, or for a session's frames, the
    /// frames its spans (`sp`) hold.
    pub(super) fn source(self, in_session: bool) -> &'static str {
        match self {
            _ if self.spanned(in_session) => SPANNED_FRAMES,
            Table::Frames | Table::FrameMessages => "frames r",
            Table::MessageRows => "message_rows r",
        }
    }

    /// The test that keeps a session's rows, with one parameter: the session.
    pub(super) fn session_test(self) -> &'static str {
        if self.spanned(true) {
            "sp.session = ? AND r.session = sp.session"
        } else {
            "r.session = ?"
        }
    }

    pub(super) fn schema(self) -> &'static dyn SqlSchema {
        match self {
            Table::Frames => &Frames,
            Table::FrameMessages => &FrameMessages,
            Table::MessageRows => &MessageRows,
        }
    }

    /// What a row must be to belong here.
    pub(super) fn belongs(self) -> &'static str {
        match self {
            Table::FrameMessages => "r.msg IS NOT NULL",
            Table::Frames | Table::MessageRows => "1",
        }
    }

    /// The key rows are paged by: the position within a session, or (across the capture)
    /// the event number, with the expression it is kept in and its offset from that.
    pub(super) fn key(self, in_session: bool) -> (&'static str, i64) {
        match (self, in_session) {
            (Table::Frames | Table::MessageRows, true) => ("r.seq", 0),
            (Table::FrameMessages, true) => ("r.msg", 0),
            (Table::Frames | Table::MessageRows, false) => ("r.id", 0),
            // A whole frame's message is the event right after the frame.
            (Table::FrameMessages, false) => ("r.id", 1),
        }
    }

    /// The `ORDER BY` terms that put rows in the order of [`Table::key`]: the key itself,
    /// except for a session's frames and whole-frame messages, which come in `seq` order
    /// (a whole-frame message's number rises with its frame's) as their spans hold them:
    /// span by span, and by id within a span.
    pub(super) fn order_by(self, in_session: bool, descending: bool) -> String {
        let way = if descending { "DESC" } else { "ASC" };
        if self.spanned(in_session) {
            format!("sp.first_seq {way}, r.id {way}")
        } else {
            format!("{} {way}", self.key(in_session).0)
        }
    }

    /// The condition (` AND ...`) that keeps the rows on `side` of key value `at`
    /// (already less the key's offset), its parameters pushed onto `params`. A session's
    /// frames start at the span holding the frame at `at`, its whole-frame messages at the
    /// span holding the frame its `message_marks` give for `at` (see the schema's
    /// versions 6 and 8); spans that start past that frame hold none before it.
    pub(super) fn seek(
        self,
        session: Option<u64>,
        side: Side,
        at: i64,
        params: &mut Vec<Value>,
    ) -> String {
        let (key, _) = self.key(session.is_some());
        let session = match session {
            Some(session) if self.spanned(true) => Value::Integer(session as i64),
            _ => {
                params.push(Value::Integer(at));
                return match side {
                    Side::From => format!(" AND {key} >= ?"),
                    Side::Before => format!(" AND {key} < ?"),
                };
            }
        };
        let at = Value::Integer(at);
        match (self, side) {
            (Table::FrameMessages, Side::From) => {
                params.extend([session.clone(), session, at.clone(), at]);
                from_span_of(
                    "?",
                    "COALESCE((SELECT m.frame FROM message_marks m \
                     WHERE m.session = ? AND m.msg <= ? ORDER BY m.msg DESC LIMIT 1), 0)",
                ) + " AND r.msg >= ?"
            }
            (Table::FrameMessages, Side::Before) => {
                params.extend([session, at.clone(), at]);
                " AND sp.first_seq < COALESCE((SELECT m.frame FROM message_marks m \
                 WHERE m.session = ? AND m.msg >= ? ORDER BY m.msg LIMIT 1), 9223372036854775807) \
                 AND r.msg < ?"
                    .to_owned()
            }
            (_, Side::From) => {
                params.extend([session, at.clone(), at]);
                from_span_of("?", "?") + " AND r.seq >= ?"
            }
            (_, Side::Before) => {
                params.extend([at.clone(), at]);
                " AND sp.first_seq < ? AND r.seq < ?".to_owned()
            }
        }
    }

    /// The query for the greatest key of a session's rows (one parameter: the session).
    pub(super) fn last_key_sql(self) -> String {
        let (key, _) = self.key(true);
        format!(
            "SELECT {key} FROM {} WHERE {} AND {} ORDER BY {} LIMIT 1",
            self.source(true),
            self.session_test(),
            self.belongs(),
            self.order_by(true, true)
        )
    }

    pub(super) fn columns(self) -> &'static str {
        match self {
            Table::Frames | Table::FrameMessages => FRAME_COLUMNS,
            Table::MessageRows => MESSAGE_COLUMNS,
        }
    }
}
