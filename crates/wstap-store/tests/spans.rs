//! A session's frames are found through its spans (schema 8: `frames` has no index).
//! Three sessions written at once, one busy, one now and then, one rarely (each of its
//! frames a span of its own), page, seek, count, filter and read back in order exactly as
//! a scan of the whole table has them, whether the writer made the spans or the migration
//! from schema 7 did; a fragmented message's tags are found by its last frame, across
//! spans.

mod support;

use support::*;
use wstap_filter::Filter;
use wstap_store::{layout, Capture, Position, Rows, StoredFrame};
use wstap_trace::{Action, BusEvent, Decider, Event, Intervention};
use wstap_wire::{Direction, FrameBuilder};

/// The blocks no span crosses, and the gap that ends one (`wstap_store::schema`).
const BLOCK: i64 = 4096;
const GAP: i64 = 1024;

/// A session's events in units: what comes before its first frame, then each frame's
/// records (the frame and the message it ends), then its end.
fn units(events: Vec<BusEvent>) -> Vec<Vec<BusEvent>> {
    let mut units: Vec<Vec<BusEvent>> = vec![Vec::new()];
    for event in events {
        let starts_unit = matches!(&event, BusEvent::Wire { record, .. } if is_frame(record))
            || matches!(&event, BusEvent::Event(e) if matches!(**e, Event::SessionEnd(_)));
        if starts_unit {
            units.push(Vec::new());
        }
        if let Some(unit) = units.last_mut() {
            unit.push(event);
        }
    }
    units
}

/// A tag a rule gave the message whose last frame is server frame `idx` of `session`.
fn tagged(session: u64, idx: u64) -> BusEvent {
    BusEvent::Event(Box::new(Event::Intervention(Intervention {
        session,
        time: at(5),
        action: Action::Tagged,
        by: Decider::Rule,
        dir: Some(Direction::ServerToClient),
        held: Some(idx),
        breakpoint: None,
        frame: Some(idx),
        opcode: None,
        payload: None,
        code: None,
        reason: Some("frag".to_owned()),
        bytes: None,
        wire: None,
        resent: None,
    })))
}

/// A session of `messages` messages: client texts, server texts, and every ninth a
/// server message in three fragments. Returns its units, each fragmented message's tag
/// after the unit of its last frame.
fn session(id: u64, messages: usize) -> Vec<Vec<BusEvent>> {
    let mut frames = Vec::new();
    // After which frame (its position in `frames`) a tag follows, and the tag.
    let mut tags = Vec::new();
    let mut server_frames = 0u64;
    for n in 0..messages {
        if n % 9 == 4 {
            frames.push(server(FrameBuilder::text().fin(false), b"a"));
            frames.push(server(FrameBuilder::continuation().fin(false), b"b"));
            frames.push(server(FrameBuilder::continuation(), b"c"));
            server_frames += 3;
            tags.push((frames.len() - 1, tagged(id, server_frames - 1)));
        } else if n % 2 == 0 {
            frames.push(client_text(&format!("c{n}")));
        } else {
            frames.push(server(FrameBuilder::text(), format!("s{n}").as_bytes()));
            server_frames += 1;
        }
    }
    let mut units = units(session_events(&SessionSpec::plain(
        id,
        "spans.test",
        "/",
        frames,
    )));
    for (frame, tag) in tags {
        // Unit 0 is the start and the handshake.
        units[frame + 1].push(tag);
    }
    units
}

/// The busy session 1 every step, session 2 every 7th, session 3 every 600th (its frames
/// more than `GAP` events apart).
fn events() -> Vec<BusEvent> {
    let mut sessions: Vec<std::collections::VecDeque<Vec<BusEvent>>> =
        [(1, 10_000), (2, 900), (3, 12)]
            .into_iter()
            .map(|(id, messages)| session(id, messages).into())
            .collect();
    let mut events = Vec::new();
    for step in 0usize.. {
        if sessions.iter().all(|s| s.is_empty()) {
            break;
        }
        for (i, every) in [1, 7, 600].into_iter().enumerate() {
            if step.is_multiple_of(every) {
                events.extend(sessions[i].pop_front().into_iter().flatten());
            }
        }
    }
    events
}

fn query_ints(dir: &std::path::Path, sql: &str, session: u64) -> Vec<i64> {
    let db = rusqlite::Connection::open(layout::database(dir)).unwrap();
    let mut stmt = db.prepare(sql).unwrap();
    let rows = stmt.query_map([session as i64], |row| row.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

fn spans(dir: &std::path::Path) -> Vec<(i64, i64, i64, i64)> {
    let db = rusqlite::Connection::open(layout::database(dir)).unwrap();
    let mut stmt = db
        .prepare("SELECT session, first_seq, first_id, last_id FROM frame_spans ORDER BY session, first_seq")
        .unwrap();
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn seqs(page: &[StoredFrame]) -> Vec<u64> {
    page.iter().map(|f| f.seq).collect()
}

/// The spans keep their rules and hold every frame; every way of reading a session's
/// frames agrees with a scan of the table.
fn check(dir: &std::path::Path) {
    let all_spans = spans(dir);
    for session in [1u64, 2, 3] {
        // The truth: the table in event order.
        let truth = query_ints(
            dir,
            "SELECT seq FROM frames WHERE session = ?1 ORDER BY id",
            session,
        );
        let n = truth.len() as u64;
        assert_eq!(
            truth,
            (0..n as i64).collect::<Vec<_>>(),
            "seq runs 0..n in id order"
        );
        let ids = query_ints(
            dir,
            "SELECT id FROM frames WHERE session = ?1 ORDER BY id",
            session,
        );
        let mine: Vec<_> = all_spans.iter().filter(|s| s.0 == session as i64).collect();
        for (k, &&(_, first_seq, first_id, last_id)) in mine.iter().enumerate() {
            assert_eq!(
                first_id / BLOCK,
                last_id / BLOCK,
                "a span stays in its block"
            );
            let end = mine.get(k + 1).map_or(n as i64, |next| next.1);
            let held = &ids[first_seq as usize..end as usize];
            assert_eq!(held.first(), Some(&first_id), "session {session} span {k}");
            assert_eq!(held.last(), Some(&last_id), "session {session} span {k}");
            assert!(
                held.windows(2).all(|w| w[1] - w[0] <= GAP),
                "no gap past GAP"
            );
        }
        match session {
            1 => assert!(mine.len() >= 3, "{} spans", mine.len()),
            3 => assert_eq!(
                mine.len() as u64,
                n,
                "a rare session's frames are spans of their own"
            ),
            _ => {}
        }

        let capture = Capture::open(dir).unwrap();
        let all = Filter::default();
        assert_eq!(capture.extent(Rows::Frames, session).unwrap(), n);
        assert_eq!(capture.count(Rows::Frames, Some(session), &all).unwrap(), n);
        let starts = mine.iter().flat_map(|s| {
            let at = s.1 as u64;
            [at.saturating_sub(1), at, at + 1]
        });
        let probes: Vec<u64> = starts
            .chain((0..n).step_by(97))
            .chain([n - 1, n, n + 5])
            .collect();
        for &p in &probes {
            let from = capture
                .frames(Some(session), &all, Position::From(p), 7)
                .unwrap();
            let want: Vec<u64> = (p..(p + 7).min(n)).collect();
            assert_eq!(seqs(&from), want, "session {session} from {p}");
            assert!(from.iter().all(|f| f.frame.session == session));
            let before = capture
                .frames(Some(session), &all, Position::Before(p), 7)
                .unwrap();
            let want: Vec<u64> = (p.min(n).saturating_sub(7)..p.min(n)).collect();
            assert_eq!(seqs(&before), want, "session {session} before {p}");
        }
        let last = capture
            .frames(Some(session), &all, Position::Last, 3)
            .unwrap();
        assert_eq!(seqs(&last), [n - 3, n - 2, n - 1]);
        for stride in [1, 5, 300, 2_000] {
            let wanted: Vec<u64> = (1..n).step_by(stride).take(40).collect();
            let read = capture.frames_at(session, &wanted).unwrap();
            assert_eq!(seqs(&read), wanted, "session {session} stride {stride}");
        }

        // Filtered: counts and positions as the scan has them.
        let filter = Filter::parse("dir:s2c").unwrap();
        let s2c = query_ints(
            dir,
            "SELECT seq FROM frames WHERE session = ?1 AND dir = 's2c' ORDER BY id",
            session,
        );
        assert_eq!(
            capture.count(Rows::Frames, Some(session), &filter).unwrap(),
            s2c.len() as u64
        );
        for &from in &probes {
            let positions = capture
                .positions(Rows::Frames, session, &filter, from)
                .unwrap();
            let want: Vec<u64> = s2c
                .iter()
                .map(|&s| s as u64)
                .filter(|&s| s >= from)
                .collect();
            assert_eq!(positions, want, "session {session} positions from {from}");
        }

        // A fragmented message's tag, found by its last frame through the spans.
        let fragmented = query_ints(
            dir,
            "SELECT seq FROM messages WHERE session = ?1 AND frames > 1 ORDER BY seq",
            session,
        );
        let tag = Filter::parse("tag:frag").unwrap();
        let found = capture
            .messages(Some(session), &tag, Position::From(0), 100_000)
            .unwrap();
        let found: Vec<i64> = found.iter().map(|m| m.seq as i64).collect();
        assert_eq!(found, fragmented, "session {session} tagged messages");
        assert!(!fragmented.is_empty());

        // Every event of the session, in order.
        let mut frames = Vec::new();
        capture
            .for_each_event(Some(session), |event| {
                if let Event::Frame(f) = event {
                    frames.push(f.index);
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(frames.len() as u64, n, "session {session} events");

        // The timeline counts every message.
        let messages = query_ints(
            dir,
            "SELECT count(*) FROM messages WHERE session = ?1",
            session,
        )[0];
        let buckets = capture.timeline(session, 0, i64::MAX / 4).unwrap();
        let counted: u64 = buckets
            .iter()
            .map(|b| b.messages_c2s + b.messages_s2c)
            .sum();
        assert_eq!(counted as i64, messages, "session {session} timeline");
    }
}

#[test]
fn a_sessions_frames_are_found_through_its_spans() {
    let dir = temp_dir("spans");
    write(&dir, &events(), 53);
    check(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_migration_from_schema_7_makes_the_spans_the_writer_makes() {
    let dir = temp_dir("spans-v7");
    write(&dir, &events(), 1_000);
    let written = spans(&dir);
    let db = rusqlite::Connection::open(layout::database(&dir)).unwrap();
    as_schema_8(&db);
    db.execute_batch(
        "DROP TABLE frame_spans;
         CREATE INDEX frames_by_session ON frames(session, seq);
         PRAGMA user_version = 7;",
    )
    .unwrap();
    drop(db);
    drop(Capture::open(&dir).expect("migrated"));
    assert_eq!(spans(&dir), written);
    check(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn frames_after_a_sessions_end_number_on_from_its_last() {
    // A trace may hold more of a session after its end: its frames and messages go on
    // from the last ones written, and every frame stays where readers look.
    let dir = temp_dir("spans-after-end");
    let frames = |from: usize| -> Vec<_> {
        (from..from + 300)
            .map(|n| client_text(&format!("c{n}")))
            .collect()
    };
    let mut events = session_events(&SessionSpec::plain(4, "spans.test", "/", frames(0)));
    let more = session_events(&SessionSpec::plain(4, "spans.test", "/", frames(300)));
    events.extend(
        more.into_iter()
            .filter(|e| matches!(e, BusEvent::Wire { .. })),
    );
    write(&dir, &events, 37);
    let truth = query_ints(
        &dir,
        "SELECT seq FROM frames WHERE session = ?1 ORDER BY id",
        4,
    );
    assert_eq!(
        truth,
        (0..600).collect::<Vec<i64>>(),
        "frames number on after the end"
    );
    let messages = query_ints(
        &dir,
        "SELECT seq FROM messages WHERE session = ?1 ORDER BY seq",
        4,
    );
    assert_eq!(messages, (0..600).collect::<Vec<i64>>(), "and messages");
    let capture = Capture::open(&dir).unwrap();
    let all = Filter::default();
    let read = capture
        .frames(Some(4), &all, Position::From(0), 1_000)
        .unwrap();
    assert_eq!(seqs(&read), (0..600).collect::<Vec<u64>>());
    assert_eq!(capture.extent(Rows::Messages, 4).unwrap(), 600);
    let _ = std::fs::remove_dir_all(&dir);
}
