//! Where filters find their facts in a capture: the expressions `wstap_filter::sql`
//! builds its conditions from, one schema per kind of row.

use crate::spans;
use wstap_filter::sql::{RecordColumn, SessionColumn, SqlSchema};

/// A session's facts, shared by every schema.
fn session(column: SessionColumn) -> String {
    match column {
        SessionColumn::Id => "s.id",
        SessionColumn::Host => "s.host",
        SessionColumn::Port => "s.port",
        SessionColumn::Url => "COALESCE(s.url, '')",
        SessionColumn::Path => "COALESCE(s.path, '')",
        SessionColumn::Client => "s.client",
        SessionColumn::Subprotocol => "s.subprotocol",
        SessionColumn::ExtensionNames => "COALESCE(s.extension_names, '')",
        SessionColumn::Tls => "s.tls",
        SessionColumn::Status => "s.status",
        SessionColumn::State => "s.state",
        SessionColumn::Kind => "s.kind",
        SessionColumn::Close => "s.close_code",
        SessionColumn::Time => "s.started_us",
        SessionColumn::Violations => "s.violations",
    }
    .to_owned()
}

/// Frames (`frames r`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Frames;

/// A frame's payload as filters read it: the inflated bytes when there are some.
pub(crate) const FRAME_PAYLOAD: &str = "(CASE WHEN r.inflated_len IS NULL \
     THEN wstap_bytes(r.payload, r.payload_at, r.payload_kept) \
     ELSE wstap_bytes(r.inflated, r.inflated_at, r.inflated_kept) END)";

/// The packets a byte-stream protocol's message ends, when they are not its payload: of a
/// frame that is a whole message, and so of that message (whether or not the writer
/// could store the two as one row).
const FRAME_STREAM: &str =
    "(SELECT p.bytes FROM stream_packets p WHERE p.session = r.session AND p.frame = r.seq)";

/// Whether the payload a filter reads of a frame (`FRAME_PAYLOAD`) was dropped.
pub(crate) const FRAME_DROPPED: &str = "wstap_dropped(CASE WHEN r.inflated_len IS NULL \
     THEN r.payload_at ELSE r.inflated_at END)";

/// The `idx` of a message row's (`r`'s) last frame, an SQL expression: found among the
/// rows of the span that holds its `seq` (`frames` has no index; see `crate::spans`).
/// A literal, so the row queries' column lists can hold it.
macro_rules! last_frame_idx {
    () => {
        "(SELECT f.idx FROM frame_spans x CROSS JOIN frames f \
         ON f.id BETWEEN x.first_id AND x.last_id \
         WHERE x.session = r.session AND x.first_seq = (SELECT y.first_seq FROM frame_spans y \
         WHERE y.session = r.session AND y.first_seq <= r.last_frame \
         ORDER BY y.first_seq DESC LIMIT 1) \
         AND f.session = r.session AND f.seq = r.last_frame LIMIT 1)"
    };
}
pub(crate) use last_frame_idx;

/// What became of the held message whose last frame is index `$frame` (an SQL
/// expression) of `r.dir` in `r.session`: the latest of its interventions that says
/// (`held` while it waits). A literal, so the row queries' column lists can hold it.
macro_rules! fate_of {
    ($frame:expr) => {
        concat!(
            "(SELECT i.action FROM interventions i ",
            "WHERE i.session = r.session AND i.dir = r.dir AND i.frame = ",
            $frame,
            " AND i.held IS NOT NULL ",
            "AND i.action IN ('held', 'forwarded', 'dropped', 'edited', 'timed_out', 'lost') ",
            "ORDER BY i.id DESC LIMIT 1)"
        )
    };
}
pub(crate) use fate_of;

/// The tags rules gave the message whose last frame is index `$frame` of `r.dir` in
/// `r.session`, each between spaces (`' slow vip '`), or `NULL`: the `tagged`
/// interventions' reasons.
macro_rules! tags_of {
    ($frame:expr) => {
        concat!(
            "(SELECT ' ' || group_concat(json_extract(i.event, '$.reason'), ' ') || ' ' ",
            "FROM interventions i ",
            "WHERE i.session = r.session AND i.dir = r.dir AND i.frame = ",
            $frame,
            " AND i.action = 'tagged')"
        )
    };
}

/// A frame's tags: by its own index.
const FRAME_TAGS: &str = tags_of!("r.idx");
/// A message row's tags: by its last frame's index.
const MESSAGE_TAGS: &str = tags_of!(last_frame_idx!());

/// A frame's fate: by its own index.
pub(crate) const FRAME_FATE: &str = fate_of!("r.idx");
/// A message row's fate: by its last frame's index.
pub(crate) const MESSAGE_FATE: &str = fate_of!(last_frame_idx!());

/// A whole-frame message's violations: its frame's that are about the message.
pub(crate) const FRAME_MESSAGE_VIOLATIONS: &str = "wstap_message_violations(r.violations)";

impl SqlSchema for Frames {
    fn record(&self, column: RecordColumn) -> String {
        match column {
            RecordColumn::Dir => "r.dir",
            RecordColumn::Opcode => "(r.flags & 15)",
            RecordColumn::Flags => "r.flags",
            RecordColumn::Masked => "(r.mask_key IS NOT NULL)",
            RecordColumn::Len => "r.payload_len",
            RecordColumn::Frames => "1",
            RecordColumn::Compressed => "(r.inflated_len IS NOT NULL)",
            RecordColumn::Close => "r.close_code",
            RecordColumn::Time => "r.time_us",
            RecordColumn::Violations => "r.violations",
            RecordColumn::Payload => FRAME_PAYLOAD,
            RecordColumn::Fate => FRAME_FATE,
            RecordColumn::Tags => FRAME_TAGS,
            RecordColumn::Origin => "'wire'",
            RecordColumn::Dropped => FRAME_DROPPED,
            // A frame that is a whole message is read as its message is.
            RecordColumn::Stream => FRAME_STREAM,
        }
        .to_owned()
    }

    fn session(&self, column: SessionColumn) -> String {
        session(column)
    }

    fn session_records(&self, session: &str) -> String {
        spans::session_frames(session)
    }
}

/// Messages that are one whole frame, read from their frame (`frames r`, `r.msg` set).
#[derive(Debug, Clone, Copy, Default)]
pub struct FrameMessages;

impl SqlSchema for FrameMessages {
    fn record(&self, column: RecordColumn) -> String {
        match column {
            RecordColumn::Len => "COALESCE(r.inflated_len, r.payload_len)".to_owned(),
            RecordColumn::Violations => FRAME_MESSAGE_VIOLATIONS.to_owned(),
            other => Frames.record(other),
        }
    }

    fn session(&self, column: SessionColumn) -> String {
        session(column)
    }

    fn session_records(&self, session: &str) -> String {
        spans::session_frames(session)
    }
}

/// Messages with a row of their own (`message_rows r`): fragmented, cut short, or
/// otherwise not one whole frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageRows;

impl SqlSchema for MessageRows {
    fn record(&self, column: RecordColumn) -> String {
        match column {
            RecordColumn::Dir => "r.dir",
            RecordColumn::Opcode => "r.opcode",
            RecordColumn::Flags => "r.flags",
            RecordColumn::Masked => "r.masked",
            RecordColumn::Len => "r.len",
            RecordColumn::Frames => "r.frames",
            RecordColumn::Compressed => "r.compressed",
            RecordColumn::Close => "r.close_code",
            RecordColumn::Time => "r.time_us",
            RecordColumn::Violations => "r.violations",
            RecordColumn::Payload => "wstap_bytes(r.data, r.data_at, r.data_kept)",
            RecordColumn::Fate => MESSAGE_FATE,
            RecordColumn::Tags => MESSAGE_TAGS,
            RecordColumn::Origin => "r.origin",
            RecordColumn::Dropped => "wstap_dropped(r.data_at)",
            RecordColumn::Stream => {
                "(SELECT p.bytes FROM stream_packets p WHERE p.session = r.session AND p.msg = r.seq)"
            }
        }
        .to_owned()
    }

    fn session(&self, column: SessionColumn) -> String {
        session(column)
    }

    fn session_records(&self, session: &str) -> String {
        format!("message_rows r WHERE r.session = {session}")
    }
}
