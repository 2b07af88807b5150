//! The record tables a reader pages through (frames, messages) and where each keeps what
//! filters read.

use super::{FRAME_COLUMNS, MESSAGE_COLUMNS};
use crate::columns::{FrameMessages, Frames, MessageRows};
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
    pub(super) fn name(self) -> &'static str {
        match self {
            Table::Frames | Table::FrameMessages => "frames",
            Table::MessageRows => "message_rows",
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

    /// What rows are ordered by when paged by [`Table::key`]: the key itself, except for
    /// whole-frame messages within a session, whose number rises with their frame's `seq`
    /// and which are found through `frames_by_session` (there is no index by number).
    pub(super) fn order(self, in_session: bool) -> &'static str {
        match (self, in_session) {
            (Table::FrameMessages, true) => "r.seq",
            _ => self.key(in_session).0,
        }
    }

    /// The condition (` AND ...`) that keeps the rows on `side` of key value `at`
    /// (already less the key's offset), its parameters pushed onto `params`. Whole-frame
    /// messages of a session are first narrowed to a range of frames by the session's
    /// `message_marks`, so an index range holds them (see the schema's version 6).
    pub(super) fn seek(
        self,
        session: Option<u64>,
        side: Side,
        at: i64,
        params: &mut Vec<Value>,
    ) -> String {
        let (key, _) = self.key(session.is_some());
        let (Table::FrameMessages, Some(session)) = (self, session) else {
            params.push(Value::Integer(at));
            return match side {
                Side::From => format!(" AND {key} >= ?"),
                Side::Before => format!(" AND {key} < ?"),
            };
        };
        params.extend([
            Value::Integer(session as i64),
            Value::Integer(at),
            Value::Integer(at),
        ]);
        match side {
            Side::From => " AND r.seq >= COALESCE((SELECT m.frame FROM message_marks m
                 WHERE m.session = ? AND m.msg <= ? ORDER BY m.msg DESC LIMIT 1), 0)
                 AND r.msg >= ?"
                .to_owned(),
            Side::Before => " AND r.seq < COALESCE((SELECT m.frame FROM message_marks m
                 WHERE m.session = ? AND m.msg >= ? ORDER BY m.msg LIMIT 1), 9223372036854775807)
                 AND r.msg < ?"
                .to_owned(),
        }
    }

    /// The query for the greatest key of a session's rows (one parameter: the session).
    pub(super) fn last_key_sql(self) -> String {
        let (key, _) = self.key(true);
        format!(
            "SELECT {key} FROM {} r WHERE r.session = ? AND {} ORDER BY {} DESC LIMIT 1",
            self.name(),
            self.belongs(),
            self.order(true)
        )
    }

    pub(super) fn columns(self) -> &'static str {
        match self {
            Table::Frames | Table::FrameMessages => FRAME_COLUMNS,
            Table::MessageRows => MESSAGE_COLUMNS,
        }
    }
}
