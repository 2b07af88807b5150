//! A session's messages are found by number without an index by number: through the
//! session's `message_marks` and its frames in `seq` order. Long sessions of every kind of
//! message (whole frames, fragments with pings between them, messages wstap wrote, two
//! sessions interleaved) page, seek and list exactly as the `messages` view numbers them,
//! whether the marks were written by the writer or made by the migration from schema 5.

mod support;

use support::*;
use wstap_filter::Filter;
use wstap_store::{layout, Capture, Position, Rows, StoredMessage};
use wstap_trace::{BusEvent, Event, Message, MessageOrigin};
use wstap_wire::{Direction, FrameBuilder, Opcode};

/// A small deterministic generator: the sessions are the same in every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// The frames of a long session: mostly whole messages both ways, and now and then a
/// message in fragments with a ping between them, or one that never ends.
fn long_session(id: u64, rng: &mut Lcg) -> SessionSpec {
    let mut frames = Vec::new();
    while frames.len() < 2_500 {
        let n = frames.len();
        match rng.next() % 10 {
            0 => {
                frames.push(server(FrameBuilder::binary().fin(false), &[1, 2]));
                frames.push(server(FrameBuilder::ping(), b"p"));
                for _ in 0..rng.next() % 4 {
                    frames.push(server(FrameBuilder::continuation().fin(false), &[3]));
                }
                frames.push(server(FrameBuilder::continuation(), &[4]));
            }
            1..=4 => frames.push(server(FrameBuilder::text(), format!("s{n}").as_bytes())),
            _ => frames.push(client_text(&format!("c{n}"))),
        }
    }
    SessionSpec::plain(id, "seek.test", "/", frames)
}

/// A message wstap wrote itself (no frame of it was read).
fn injected(session: u64, n: usize) -> BusEvent {
    let payload = format!("injected {n}");
    let wire = FrameBuilder::text().encode(payload.as_bytes());
    let message = Message::built(
        session,
        at(0),
        Direction::ServerToClient,
        MessageOrigin::Injected,
        Opcode::Text,
        payload.into_bytes(),
        wire,
    );
    BusEvent::Event(Box::new(Event::Message(message)))
}

/// Two long sessions, their events interleaved, with injected messages among them.
fn events(rng: &mut Lcg) -> Vec<BusEvent> {
    let one = session_events(&long_session(1, rng));
    let two = session_events(&long_session(2, rng));
    let mut events = Vec::new();
    let (mut a, mut b) = (one.into_iter().peekable(), two.into_iter().peekable());
    let mut n = 0;
    while a.peek().is_some() || b.peek().is_some() {
        let next = if rng.next().is_multiple_of(2) {
            a.next()
        } else {
            b.next()
        };
        let Some(event) = next.or_else(|| a.next()).or_else(|| b.next()) else {
            break;
        };
        // Not between the start and the handshake, nor after the end.
        let session = match &event {
            BusEvent::Wire { session, .. } => Some(*session),
            _ => None,
        };
        events.push(event);
        n += 1;
        if let Some(session) = session {
            if rng.next().is_multiple_of(40) {
                events.push(injected(session, n));
            }
        }
    }
    events
}

/// Every message number of `session`, in order, as the `messages` view has them.
fn numbers(dir: &std::path::Path, session: u64) -> Vec<u64> {
    let db = rusqlite::Connection::open(layout::database(dir)).unwrap();
    let mut stmt = db
        .prepare("SELECT seq FROM messages WHERE session = ?1 ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map([session as i64], |row| row.get::<_, i64>(0))
        .unwrap();
    rows.map(|seq| seq.unwrap() as u64).collect()
}

fn seqs(page: &[StoredMessage]) -> Vec<u64> {
    page.iter().map(|m| m.seq).collect()
}

/// Pages, seeks, positions and the extent of both sessions agree with the view.
fn check(dir: &std::path::Path) {
    let capture = Capture::open(dir).unwrap();
    let all = Filter::default();
    for session in [1, 2] {
        let expected = numbers(dir, session);
        assert!(expected.len() > 2_000, "{}", expected.len());
        assert_eq!(
            expected,
            (0..expected.len() as u64).collect::<Vec<_>>(),
            "numbers run 0..n"
        );
        let n = expected.len() as u64;
        assert_eq!(capture.extent(Rows::Messages, session).unwrap(), n);
        // Around every mark and at a stride, both ways.
        let probes = (0..n)
            .filter(|p| p % 256 < 3 || p % 256 > 253 || p % 97 == 0)
            .chain([n - 1, n, n + 5]);
        for p in probes {
            let from = capture
                .messages(Some(session), &all, Position::From(p), 7)
                .unwrap();
            let want: Vec<u64> = (p..(p + 7).min(n)).collect();
            assert_eq!(seqs(&from), want, "session {session} from {p}");
            let before = capture
                .messages(Some(session), &all, Position::Before(p), 7)
                .unwrap();
            let want: Vec<u64> = (p.min(n).saturating_sub(7)..p.min(n)).collect();
            assert_eq!(seqs(&before), want, "session {session} before {p}");
        }
        let last = capture
            .messages(Some(session), &all, Position::Last, 3)
            .unwrap();
        assert_eq!(seqs(&last), [n - 3, n - 2, n - 1]);
        // Known positions, close together and far apart, read as the pages read them.
        for stride in [1, 3, 255, 256, 257, 700] {
            let wanted: Vec<u64> = (5..n).step_by(stride).take(40).collect();
            let read = capture.messages_at(session, &wanted).unwrap();
            assert_eq!(seqs(&read), wanted, "session {session} stride {stride}");
            for message in &read {
                let page = capture
                    .messages(Some(session), &all, Position::From(message.seq), 1)
                    .unwrap();
                assert_eq!(page.as_slice(), std::slice::from_ref(message));
            }
        }
        // A filtered view's positions from anywhere.
        let filter = Filter::parse("dir:s2c op:text").unwrap();
        let hits = capture
            .messages(Some(session), &filter, Position::From(0), 100_000)
            .unwrap();
        assert!(hits.len() > 500, "{}", hits.len());
        for from in [0, 255, 256, 1_000, n - 10] {
            let positions = capture
                .positions(Rows::Messages, session, &filter, from)
                .unwrap();
            let want: Vec<u64> = seqs(&hits).into_iter().filter(|&s| s >= from).collect();
            assert_eq!(positions, want, "session {session} positions from {from}");
        }
    }
}

#[test]
fn messages_are_found_by_number_through_the_marks() {
    let dir = temp_dir("seek");
    let events = events(&mut Lcg(7));
    write(&dir, &events, 61);
    check(&dir);
    let db = rusqlite::Connection::open(layout::database(&dir)).unwrap();
    let marks: i64 = db
        .query_row("SELECT count(*) FROM message_marks", [], |row| row.get(0))
        .unwrap();
    assert!(marks >= 16, "{marks} marks");
    let indexes: Vec<String> = db
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index'
               AND tbl_name IN ('frames', 'frame_rows')",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        indexes.is_empty(),
        "no index on frames (schema 8): {indexes:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_migration_from_schema_5_makes_the_marks_the_writer_makes() {
    let dir = temp_dir("seek-v5");
    write(&dir, &events(&mut Lcg(11)), 97);
    let marks = |dir: &std::path::Path| -> Vec<(i64, i64, i64)> {
        let db = rusqlite::Connection::open(layout::database(dir)).unwrap();
        let mut stmt = db
            .prepare("SELECT session, msg, frame FROM message_marks ORDER BY session, msg")
            .unwrap();
        let rows = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    let written = marks(&dir);
    // As a capture of schema 5 was: no marks, an index by message number and one by
    // session (and nothing of schema 7's views).
    let db = rusqlite::Connection::open(layout::database(&dir)).unwrap();
    as_schema_8(&db);
    db.execute_batch(
        "DROP TABLE message_marks;
         DROP TABLE frame_spans;
         CREATE INDEX frames_by_session ON frames(session, seq);
         CREATE INDEX frames_by_message ON frames(session, msg) WHERE msg IS NOT NULL;
         ALTER TABLE sessions DROP COLUMN view;
         DROP TABLE view_choices;
         DROP TABLE stream_packets;
         DROP TABLE proto_schema;
         PRAGMA user_version = 5;",
    )
    .unwrap();
    drop(db);
    check(&dir);
    let migrated = marks(&dir);
    // The writer marks a message wstap wrote at the frame after it; the migration at the
    // frame after the last one written before it: the same frame.
    assert_eq!(migrated, written);
    let _ = std::fs::remove_dir_all(&dir);
}
