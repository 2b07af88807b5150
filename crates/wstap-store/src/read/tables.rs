//! The record tables a reader pages through (frames, messages) and where each keeps what
//! filters read.

use super::{FRAME_COLUMNS, MESSAGE_COLUMNS};
use crate::columns::{FrameMessages, Frames, MessageRows};
use wstap_filter::SqlSchema;

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

    pub(super) fn columns(self) -> &'static str {
        match self {
            Table::Frames | Table::FrameMessages => FRAME_COLUMNS,
            Table::MessageRows => MESSAGE_COLUMNS,
        }
    }
}
