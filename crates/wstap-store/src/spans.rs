//! Where a session's frames are, without an index on `frames`: runs of their ids.
//!
//! Frames are only appended (to `frame_rows`, read as `frames`), in event order, so the
//! frames of one session lie among those of every other session written at the same time. A [`Span`] is a run
//! of one session's frames: from the frame at `first_seq` on, up to the first frame of
//! the session's next span, every one has an id in `first_id..=last_id`. The writer keeps
//! one open span per session and writes it (`frame_spans`) when it closes and at each
//! commit; a reader joins a session's spans to the id ranges they name (see
//! [`SPANNED_FRAMES`]). A span ends where the next frame of its session lies in another
//! block of [`SPAN_BLOCK`] ids or more than [`SPAN_GAP`] ids after the last one, so a
//! reader scans at most a block per span and [`SPAN_GAP`] rows per frame it finds, and a
//! session with a frame now and then costs a span row per frame: the index entry it
//! would have had.

use crate::schema::{SPAN_BLOCK, SPAN_GAP};
use rusqlite::{params, Connection};

/// A session's frames (aliased `r`) through its spans (`sp`), outer loop first: what a
/// reader selects from, with `sp.session = ? AND r.session = sp.session` (the session's
/// spans, and its frames among the rows they span) and an order of `sp.first_seq, r.id`,
/// which is the frames' `seq` order. `CROSS JOIN` keeps the spans the outer loop, so a
/// page reads its spans in order and stops at its limit.
pub(crate) const SPANNED_FRAMES: &str =
    "frame_spans sp CROSS JOIN frames r ON r.id BETWEEN sp.first_id AND sp.last_id";

/// The frames of the session whose id is the SQL expression `session`, as a subquery's
/// text from its `FROM` on: [`SPANNED_FRAMES`] and the condition that keeps its spans and
/// their frames of it.
pub(crate) fn session_frames(session: &str) -> String {
    format!("{SPANNED_FRAMES} WHERE sp.session = {session} AND r.session = {session}")
}

/// The condition (` AND ...`) that starts the spans (`sp`) of `session` at the one
/// holding its frame at `seq` (both SQL expressions, a parameter or a subquery). The
/// frames before `seq` in that span are still the reader's to skip.
pub(crate) fn from_span_of(session: &str, seq: &str) -> String {
    format!(
        " AND sp.first_seq >= COALESCE((SELECT x.first_seq FROM frame_spans x \
         WHERE x.session = {session} AND x.first_seq <= {seq} ORDER BY x.first_seq DESC LIMIT 1), 0)"
    )
}

/// An open run of one session's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    first_seq: u64,
    first_id: i64,
    last_id: i64,
}

/// The span a session is writing, and whether the database has it as it is now.
#[derive(Debug, Default)]
pub(crate) struct OpenSpan {
    span: Option<Span>,
    unwritten: bool,
}

impl OpenSpan {
    /// Takes the frame at `seq` with event number `id` (greater than any before it);
    /// returns the span it closed, if it started a new one.
    pub fn take(&mut self, seq: u64, id: i64) -> Option<Span> {
        self.unwritten = true;
        match &mut self.span {
            Some(span)
                if id / SPAN_BLOCK == span.last_id / SPAN_BLOCK
                    && id - span.last_id <= SPAN_GAP =>
            {
                span.last_id = id;
                None
            }
            open => open.replace(Span {
                first_seq: seq,
                first_id: id,
                last_id: id,
            }),
        }
    }

    /// The open span, if the database does not have it as it is: what a commit writes.
    pub fn unwritten(&mut self) -> Option<Span> {
        std::mem::take(&mut self.unwritten)
            .then_some(self.span)
            .flatten()
    }
}

/// Writes (or rewrites, as it grew) `session`'s `span`.
pub(crate) fn write(conn: &Connection, session: u64, span: Span) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO frame_spans (session, first_seq, first_id, last_id)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        session as i64,
        span.first_seq as i64,
        span.first_id,
        span.last_id
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_ends_at_a_block_or_a_gap() {
        assert_eq!(
            (SPAN_BLOCK, SPAN_GAP),
            (4096, 1024),
            "the numbers below assume these"
        );
        let mut open = OpenSpan::default();
        assert_eq!(open.take(0, 10), None);
        assert_eq!(
            open.take(1, 10 + SPAN_GAP),
            None,
            "a gap of SPAN_GAP is kept"
        );
        let closed = open.take(2, 11 + 2 * SPAN_GAP);
        assert_eq!(
            closed,
            Some(Span {
                first_seq: 0,
                first_id: 10,
                last_id: 10 + SPAN_GAP
            })
        );
        assert_eq!(open.take(3, 3000), None);
        assert_eq!(open.take(4, 3990), None);
        let closed = open.take(5, SPAN_BLOCK).expect("a new block ends it");
        assert_eq!(closed.first_seq, 2);
        assert_eq!(closed.last_id, 3990);
        assert_eq!(
            open.unwritten(),
            Some(Span {
                first_seq: 5,
                first_id: SPAN_BLOCK,
                last_id: SPAN_BLOCK
            })
        );
        assert_eq!(open.unwritten(), None, "written once until it grows");
        open.take(5, SPAN_BLOCK + 1);
        assert_eq!(open.unwritten().map(|s| s.last_id), Some(SPAN_BLOCK + 1));
    }
}
