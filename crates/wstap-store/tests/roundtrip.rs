//! A capture gives back what was written: every event in order, payloads written once,
//! pages by position, and clear errors for what is not a capture.

mod support;

use support::*;
use wstap_filter::Filter;
use wstap_store::{layout, Capture, CaptureWriter, Position, Rows, StoreError, INLINE_MAX};
use wstap_trace::{BusEvent, Event, Outcome, Sink};
use wstap_wire::{DeflateParams, Deflater, Direction, FrameBuilder, Opcode};

fn chat(id: u64) -> SessionSpec {
    let big = "x".repeat(20_000);
    SessionSpec {
        id,
        host: "chat.example.com".into(),
        port: 443,
        path: "/room?id=1".into(),
        tls: true,
        status: 101,
        subprotocol: Some("chat".into()),
        deflate: false,
        outcome: Some(Outcome::Closed),
        frames: vec![
            client_text("hello"),
            server(FrameBuilder::text(), b"{\"user\":{\"id\":42}}"),
            client_text(&big),
            server(FrameBuilder::binary().fin(false), &[1, 2, 3]),
            server(FrameBuilder::ping(), b"are you there?"),
            server(FrameBuilder::continuation(), &[4, 5]),
            server(FrameBuilder::text(), "é".repeat(250).as_bytes()),
            (
                Direction::ClientToServer,
                FrameBuilder::text().encode(b"unmasked!"),
            ),
            server(FrameBuilder::close(), b"\x03\xe8bye"),
        ],
    }
}

fn events_of(capture: &Capture, session: Option<u64>) -> Vec<Event> {
    let mut events = Vec::new();
    capture
        .for_each_event(session, |e| {
            events.push(e);
            Ok(())
        })
        .unwrap();
    events
}

#[test]
fn every_event_comes_back_in_order_as_the_trace_has_it() {
    let dir = temp_dir("events");
    let mut events: Vec<BusEvent> = Vec::new();
    // Two sessions, their events interleaved as two live sessions' would be.
    let (a, b) = (session_events(&chat(1)), session_events(&chat(2)));
    let mut a = a.into_iter();
    let mut b = b.into_iter();
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => events.extend(x.into_iter().chain(y)),
        }
    }
    // What wstap did to a session comes back in its place too.
    let edited = wstap_trace::Intervention {
        session: 1,
        time: chrono::DateTime::from_timestamp_micros(1_700_000_000_000_123).unwrap(),
        action: wstap_trace::Action::Edited,
        by: wstap_trace::Decider::Inspector,
        dir: Some(Direction::ServerToClient),
        held: Some(3),
        breakpoint: Some(1),
        frame: Some(0),
        opcode: Some(1),
        payload: Some(wstap_trace::Payload::all(b"edited".to_vec())),
        code: None,
        reason: None,
        bytes: None,
        wire: None,
        resent: None,
    };
    // ... and the message it made wstap write, with its frames, among the messages read.
    let written = wstap_trace::Message {
        held: Some(3),
        ..wstap_trace::Message::built(
            1,
            edited.time,
            Direction::ServerToClient,
            wstap_trace::MessageOrigin::Edited,
            wstap_wire::Opcode::Text,
            b"edited".to_vec(),
            vec![0x81, 0x06, b'e', b'd', b'i', b't', b'e', b'd'],
        )
    };
    assert_eq!((written.frames, written.wire_len), (1, 6));
    events.insert(7, BusEvent::Event(Box::new(Event::Intervention(edited))));
    events.insert(8, BusEvent::Event(Box::new(Event::Message(written))));
    write(&dir, &events, 5);
    let capture = Capture::open(&dir).unwrap();
    let expected: Vec<Event> = events.iter().map(BusEvent::to_event).collect();
    assert_eq!(as_json(&events_of(&capture, None)), as_json(&expected));
    let only_two: Vec<Event> = expected
        .iter()
        .filter(|e| e.session() == Some(2))
        .cloned()
        .collect();
    assert_eq!(as_json(&events_of(&capture, Some(2))), as_json(&only_two));
    let handshake = capture.handshake(1).unwrap().expect("a handshake");
    assert_eq!(
        handshake.request_raw.as_deref(),
        Some(&b"GET / HTTP/1.1\r\n\r\n"[..])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn big_payloads_are_written_once_and_small_ones_inline() {
    let dir = temp_dir("once");
    let events = session_events(&chat(1));
    write(&dir, &events, 100);
    // The only payload over the inline limit is the 20,000-byte text: its frame and its
    // one-frame message share the same bytes in the (first) payload segment.
    let file = std::fs::metadata(dir.join("payloads-000000.bin"))
        .unwrap()
        .len();
    assert_eq!(file, 20_000);
    const { assert!(500 <= INLINE_MAX, "the 500-byte text of é stays inline") };
    let capture = Capture::open(&dir).unwrap();
    let all = Filter::parse("").unwrap();
    let messages = capture
        .messages(Some(1), &all, Position::From(0), 100)
        .unwrap();
    let big = messages
        .iter()
        .find(|m| m.message.len == 20_000)
        .expect("the big message");
    assert_eq!(big.message.payload.bytes, "x".repeat(20_000).as_bytes());
    let fragmented = messages.iter().find(|m| m.message.frames == 2).unwrap();
    assert_eq!(fragmented.message.payload.bytes, [1, 2, 3, 4, 5]);
    assert_eq!(
        (fragmented.first_frame, fragmented.last_frame),
        (Some(3), Some(5))
    );
    let session = capture.session(1).unwrap().unwrap();
    assert_eq!(session.state, wstap_filter::State::Closed);
    assert_eq!(session.via, wstap_trace::Via::Connect);
    assert_eq!(session.kind, Some(wstap_trace::SessionKind::WebSocket));
    // The inspector's JSON names them as the capture's columns do.
    let json = serde_json::to_value(&session).unwrap();
    assert_eq!(
        (&json["state"], &json["via"], &json["kind"]),
        (
            &serde_json::json!("closed"),
            &serde_json::json!("connect"),
            &serde_json::json!("websocket")
        )
    );
    assert_eq!(session.subprotocol.as_deref(), Some("chat"));
    assert_eq!(session.violations, 1, "the unmasked client frame");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pages_start_anywhere_and_filters_select() {
    let dir = temp_dir("pages");
    let mut spec = chat(1);
    spec.frames = (0..1000).map(|i| client_text(&format!("m{i}"))).collect();
    write(&dir, &session_events(&spec), 64);
    let capture = Capture::open(&dir).unwrap();
    let all = Filter::parse("").unwrap();
    let page = capture
        .frames(Some(1), &all, Position::From(500), 10)
        .unwrap();
    let seqs: Vec<u64> = page.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (500..510).collect::<Vec<_>>());
    assert_eq!(page[0].frame.payload.bytes, b"m500");
    let last = capture.frames(Some(1), &all, Position::Last, 3).unwrap();
    assert_eq!(
        last.iter().map(|f| f.seq).collect::<Vec<_>>(),
        [997, 998, 999]
    );
    let before = capture
        .frames(Some(1), &all, Position::Before(3), 10)
        .unwrap();
    assert_eq!(before.iter().map(|f| f.seq).collect::<Vec<_>>(), [0, 1, 2]);
    let filter = Filter::parse("text~\"^m9\\d$\"").unwrap();
    assert_eq!(capture.count(Rows::Messages, Some(1), &filter).unwrap(), 10);
    let hits = capture
        .messages(Some(1), &filter, Position::From(0), 100)
        .unwrap();
    assert_eq!(hits.len(), 10);
    assert_eq!(
        capture
            .count_sessions(&Filter::parse("host:*.example.com").unwrap())
            .unwrap(),
        1
    );
    assert_eq!(
        capture
            .count_sessions(&Filter::parse("text:m999").unwrap())
            .unwrap(),
        1
    );
    assert_eq!(
        capture
            .count_sessions(&Filter::parse("text:m1000").unwrap())
            .unwrap(),
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rows_at_known_positions_are_the_filtered_pages_rows() {
    let dir = temp_dir("positions");
    write(&dir, &session_events(&chat(1)), 3);
    let capture = Capture::open(&dir).unwrap();
    for text in [
        "",
        "dir:s2c",
        "op:text",
        "op:binary,cont",
        "len>100",
        "not op:control",
        "text~\"bye\"",
    ] {
        let filter = Filter::parse(text).unwrap();
        let page = capture
            .messages(Some(1), &filter, Position::From(0), 1000)
            .unwrap();
        let positions = capture.positions(Rows::Messages, 1, &filter, 0).unwrap();
        let seqs: Vec<u64> = page.iter().map(|m| m.seq).collect();
        assert_eq!(positions, seqs, "messages, {text:?}");
        assert_eq!(
            capture.messages_at(1, &positions).unwrap(),
            page,
            "messages, {text:?}"
        );

        let page = capture
            .frames(Some(1), &filter, Position::From(0), 1000)
            .unwrap();
        let positions = capture.positions(Rows::Frames, 1, &filter, 0).unwrap();
        let seqs: Vec<u64> = page.iter().map(|f| f.seq).collect();
        assert_eq!(positions, seqs, "frames, {text:?}");
        assert_eq!(
            capture.frames_at(1, &positions).unwrap(),
            page,
            "frames, {text:?}"
        );
    }
    // The fragmented binary message has a row of its own; the rest are whole frames.
    let all = capture
        .positions(Rows::Messages, 1, &Filter::default(), 0)
        .unwrap();
    assert_eq!(
        all,
        (0..all.len() as u64).collect::<Vec<_>>(),
        "positions run 0..n"
    );
    assert_eq!(capture.extent(Rows::Messages, 1).unwrap(), all.len() as u64);
    assert!(capture.messages_at(1, &[]).unwrap().is_empty());
    assert!(
        capture.frames_at(1, &[999]).unwrap().is_empty(),
        "no such position"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn each_commit_names_the_sessions_it_changed() {
    let dir = temp_dir("commits");
    let events = session_events(&chat(1));
    let mut writer = CaptureWriter::create(&dir, &info()).unwrap();
    let announced = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = std::sync::Arc::clone(&announced);
    writer.on_commit(move |c| kept.lock().unwrap().push(c.clone()));
    // One event per commit: each commit must name the session, its end included.
    for event in &events {
        Sink::write(&mut writer, event).unwrap();
        Sink::flush(&mut writer).unwrap();
    }
    let announced = announced.lock().unwrap().clone();
    assert_eq!(announced.len(), events.len(), "a commit per event");
    for (i, commit) in announced.iter().enumerate() {
        assert_eq!(commit.sessions, [1], "commit {i} names session 1");
        assert_eq!(commit.last_event, i as i64 + 1, "commit {i}");
    }
    writer.finish().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_capture_is_readable_while_it_is_written_and_then_complete() {
    let dir = temp_dir("live");
    let events = session_events(&chat(1));
    let mut writer = CaptureWriter::create(&dir, &info()).unwrap();
    let (first, rest) = events.split_at(6);
    for event in first {
        Sink::write(&mut writer, event).unwrap();
    }
    Sink::flush(&mut writer).unwrap();
    let reader = Capture::open(&dir).unwrap();
    assert_eq!(reader.info().unwrap().ended_us, None, "still being written");
    let seen = events_of(&reader, None).len();
    assert_eq!(seen, 6);
    assert!(layout::is_being_written(&dir));
    assert!(matches!(
        CaptureWriter::create(&dir, &info()),
        Err(StoreError::Exists { .. })
    ));
    for event in rest {
        Sink::write(&mut writer, event).unwrap();
    }
    writer.finish().unwrap();
    assert!(!layout::is_being_written(&dir));
    assert_eq!(events_of(&reader, None).len(), events.len());
    assert!(Capture::open(&dir)
        .unwrap()
        .info()
        .unwrap()
        .ended_us
        .is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn what_is_not_a_capture_says_so_and_is_left_alone() {
    let dir = temp_dir("not");
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.txt");
    std::fs::write(&junk, "hello").unwrap();
    let error = Capture::open(&junk).unwrap_err().to_string();
    assert!(error.contains("is not a wstap capture"), "{error}");
    assert!(Capture::open(&dir)
        .unwrap_err()
        .to_string()
        .contains("no capture.db"));
    std::fs::write(
        dir.join("capture.db"),
        "not sqlite at all, just some text here",
    )
    .unwrap();
    let error = Capture::open(&dir).unwrap_err().to_string();
    assert!(error.contains("not an SQLite database"), "{error}");
    assert_eq!(
        std::fs::read(dir.join("capture.db")).unwrap(),
        b"not sqlite at all, just some text here",
        "nothing changed on disk"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_traced_message_unlike_its_frame_keeps_its_own_bytes() {
    // A trace is anybody's file: a one-frame message whose bytes differ from its frame's
    // (same length) is not taken for the frame; both come back as written.
    let dir = temp_dir("unlike");
    let mut events: Vec<Event> = session_events(&chat(1))
        .iter()
        .map(BusEvent::to_event)
        .collect();
    let message = events
        .iter_mut()
        .find_map(|e| match e {
            Event::Message(m) if m.frames == 1 && !m.payload.bytes.is_empty() => Some(m),
            _ => None,
        })
        .expect("a one-frame message");
    message.payload.bytes[0] ^= 0x20;
    let mut writer = CaptureWriter::create(&dir, &info()).unwrap();
    writer.write_events(&events).unwrap();
    Sink::flush(&mut writer).unwrap();
    writer.finish().unwrap();
    let capture = Capture::open(&dir).unwrap();
    assert_eq!(as_json(&events_of(&capture, None)), as_json(&events));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn filters_at_the_languages_limits_run_in_sqlite() {
    use wstap_filter::{MAX_DEPTH, MAX_TERMS};
    let dir = temp_dir("limits");
    write(&dir, &session_events(&chat(1)), 64);
    let capture = Capture::open(&dir).unwrap();
    let count = |source: &str| {
        let filter = Filter::parse(source).unwrap();
        let sessions = capture.count_sessions(&filter).unwrap();
        let messages = capture.count(Rows::Messages, Some(1), &filter).unwrap();
        let frames = capture
            .frames(Some(1), &filter, Position::From(0), 100)
            .unwrap()
            .len() as u64;
        (sessions, messages, frames)
    };
    // As many terms as allowed, one of which matches the first message only.
    let mut words: Vec<String> = (1..MAX_TERMS).map(|i| format!("absent{i}")).collect();
    words.push("hello".into());
    assert_eq!(count(&words.join(" or ")), (1, 1, 1));
    assert_eq!(count(&words.join(" ")), (0, 0, 0));
    // As deep as allowed: `not (hello or not (hello or ... unmasked))`. Innermost, a
    // record saying neither is selected; each level out flips that, except for hello,
    // which every level rules out. After an even number of levels only the record that
    // says `unmasked` is left; the session, which says hello, is not selected.
    let levels = MAX_DEPTH / 2;
    assert_eq!(levels % 2, 0);
    let deep = format!(
        "{}unmasked{}",
        "not (hello or ".repeat(levels),
        ")".repeat(levels)
    );
    assert_eq!(count(&deep), (0, 1, 1));
    let parens = format!("{}hello{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(count(&parens), (1, 1, 1));
    // Deep and full at once, in the shapes that nest SQL deepest: four terms a level,
    // as many levels as the term limit leaves. Each is `hello` at every level.
    let nest = |level: &str| {
        let opens = level.matches('(').count();
        let levels = ((MAX_TERMS - 1) / 4).min(MAX_DEPTH / opens);
        format!(
            "{}hello{}",
            level.repeat(levels),
            ")".repeat(levels * opens)
        )
    };
    for shape in [
        "(absent or absent or hello and hello and ",
        "(hello and hello and hello and ",
        "(absent or absent or absent or ",
        "(absent or hello and (absent or ",
    ] {
        let filter = nest(shape);
        assert_eq!(count(&filter), (1, 1, 1), "{shape}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_session_row_with_a_name_nobody_wrote_is_an_error_not_a_panic() {
    let dir = temp_dir("bad-names");
    write(&dir, &session_events(&chat(1)), 64);
    let db = rusqlite::Connection::open(layout::database(&dir)).unwrap();
    db.execute("UPDATE sessions SET via = 'teleport' WHERE id = 1", [])
        .unwrap();
    drop(db);
    let capture = Capture::open(&dir).unwrap();
    let error = capture.session(1).unwrap_err().to_string();
    assert!(error.contains("teleport"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A copy of the version-1 capture in `tests/fixtures/v1`.
fn v1_capture(name: &str) -> std::path::PathBuf {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    let dir = temp_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    for file in [layout::DATABASE, layout::PAYLOADS] {
        std::fs::copy(fixture.join(file), dir.join(file)).unwrap();
    }
    dir
}

#[test]
fn a_capture_of_an_older_wstap_is_brought_forward_when_opened() {
    let dir = v1_capture("v1");
    let capture = Capture::open(&dir).unwrap();
    let count = |rows: Rows, source: &str| {
        capture
            .count(rows, Some(1), &Filter::parse(source).unwrap())
            .unwrap()
    };
    assert_eq!(count(Rows::Frames, "violation"), 3);
    assert_eq!(count(Rows::Frames, "violation:unmasked_client_frame"), 1);
    assert_eq!(count(Rows::Messages, "violation"), 2);
    assert_eq!(count(Rows::Messages, "violation:invalid_utf8"), 1);
    assert_eq!(count(Rows::Messages, "violation:truncated_utf8"), 1);
    assert_eq!(count(Rows::Messages, "violation:unmasked_client_frame"), 0);
    let violations: Vec<String> = events_of(&capture, Some(1))
        .into_iter()
        .flat_map(|event| match event {
            Event::Frame(f) => f.violations,
            Event::Message(m) => m.violations,
            _ => Vec::new(),
        })
        .collect();
    assert!(
        violations.contains(&"unmasked_client_frame: client frame is not masked".to_owned()),
        "{violations:?}"
    );
    assert!(violations.contains(&"invalid_utf8: text message is not valid UTF-8".to_owned()));
    drop(capture);
    let db = rusqlite::Connection::open(layout::database(&dir)).unwrap();
    let version: i64 = db
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, wstap_store::SCHEMA_VERSION);
    let stored: String = db
        .query_row(
            "SELECT violations FROM frames WHERE violations LIKE '%unmasked%'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        stored,
        r#"[{"code":"unmasked_client_frame","text":"client frame is not masked"}]"#
    );
    drop(db);
    // Opened again, it is read as it is.
    assert_eq!(
        Capture::open(&dir)
            .unwrap()
            .count(Rows::Frames, None, &Filter::parse("violation").unwrap())
            .unwrap(),
        3
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn violations_of_any_spelling_survive_the_migration_as_the_reader_splits_them() {
    let dir = v1_capture("v1-odd");
    let db = rusqlite::Connection::open(layout::database(&dir)).unwrap();
    let set = |seq: i64, value: &str| {
        db.execute(
            "UPDATE frames SET violations = ?2 WHERE session = 1 AND seq = ?1",
            rusqlite::params![seq, value],
        )
        .unwrap()
    };
    set(0, r#"["oddity","a:b: c","x:y"]"#);
    set(1, "not json");
    drop(db);
    let capture = Capture::open(&dir).unwrap();
    // The frames' violations in the session's order (seq 0, 1, ...).
    let frames: Vec<Vec<String>> = events_of(&capture, Some(1))
        .into_iter()
        .filter_map(|event| match event {
            Event::Frame(f) => Some(f.violations),
            _ => None,
        })
        .collect();
    let violations_of = |seq: usize| frames[seq].clone();
    // Split as the reader splits them, and given back as the trace spells them.
    assert_eq!(violations_of(0), ["oddity", "a: b: c", "x: y"]);
    // Not JSON: left as it was, and read as no violations, as version 1 read it.
    assert!(violations_of(1).is_empty());
    drop(capture);
    let db = rusqlite::Connection::open(layout::database(&dir)).unwrap();
    let stored: String = db
        .query_row("SELECT violations FROM frames WHERE seq = 0", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(
        stored,
        r#"[{"code":"oddity","text":""},{"code":"a","text":"b: c"},{"code":"x","text":"y"}]"#
    );
    let not_json: String = db
        .query_row("SELECT violations FROM frames WHERE seq = 1", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(not_json, "not json");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_capture_takes_more_sessions_after_its_own_and_gives_back_both() {
    let dir = temp_dir("append");
    write(&dir, &session_events(&chat(1)), 100);
    let before = events_of(&Capture::open(&dir).unwrap(), Some(1));

    let (mut writer, next) = CaptureWriter::append(&dir).unwrap();
    assert_eq!(next, 2, "the next session after the one recorded");
    // While it is written, no other writer may open it.
    assert!(matches!(
        CaptureWriter::append(&dir),
        Err(StoreError::InUse { .. })
    ));
    for chunk in session_events(&chat(2)).chunks(100) {
        Sink::write_batch(&mut writer, chunk).unwrap();
        Sink::flush(&mut writer).unwrap();
    }
    writer.finish().unwrap();

    let capture = Capture::open(&dir).unwrap();
    let all = Filter::parse("").unwrap();
    assert_eq!(capture.session_ids(&all, None).unwrap(), [1, 2]);
    // The first session is as it was; the second has the same events, its own number.
    let first: Vec<Event> = events_of(&capture, Some(1));
    assert!(first == before, "the first session is as it was");
    let second: Vec<Event> = events_of(&capture, Some(2));
    assert_eq!(second.len(), first.len());
    assert!(
        second.iter().all(|e| e.session() == Some(2)),
        "the second session's events are its own"
    );
    // Its big payload went after the first's, in the same segment, and reads back whole.
    let messages = capture
        .messages(Some(2), &all, Position::From(0), 100)
        .unwrap();
    let big = messages
        .iter()
        .find(|m| m.message.len == 20_000)
        .expect("the big message");
    assert_eq!(big.message.payload.bytes, "x".repeat(20_000).as_bytes());
    let file = std::fs::metadata(dir.join("payloads-000000.bin"))
        .unwrap()
        .len();
    assert_eq!(file, 40_000, "each session's big payload, once");
    // The whole capture reads in order: the first session's events, then the second's.
    let mut sessions_in_order = Vec::new();
    capture
        .for_each_event(None, |e| {
            sessions_in_order.extend(e.session());
            Ok(())
        })
        .unwrap();
    let switch = sessions_in_order.iter().position(|&s| s == 2).unwrap();
    assert!(sessions_in_order[..switch].iter().all(|&s| s == 1));
    assert!(sessions_in_order[switch..].iter().all(|&s| s == 2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `"type"` of each line of an NDJSON export of `capture` by `filter`, and the
/// session it belongs to.
fn exported(capture: &Capture, filter: &str) -> Vec<(String, u64)> {
    let text = export_ndjson(capture, filter);
    text.lines()
        .skip(1)
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                value["type"].as_str().unwrap().to_owned(),
                value["session"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_session_field_known_only_at_its_end_exports_the_sessions_records_as_sql_selects_them() {
    let dir = temp_dir("late-facts");
    let open = SessionSpec {
        outcome: None,
        ..chat(2)
    };
    let events: Vec<BusEvent> = session_events(&chat(1))
        .into_iter()
        .chain(session_events(&open))
        .collect();
    write(&dir, &events, 7);
    let capture = Capture::open(&dir).unwrap();
    let count = |lines: &[(String, u64)], kind: &str, session: u64| {
        lines
            .iter()
            .filter(|(k, s)| k == kind && *s == session)
            .count()
    };
    let everything = exported(&capture, "");
    // A session filter selects whole sessions: every record of the closed one, though
    // its state is only known at its end, and nothing of the open one.
    let closed = exported(&capture, "state:closed");
    for kind in ["frame", "message"] {
        assert!(count(&everything, kind, 1) > 0);
        assert_eq!(
            count(&closed, kind, 1),
            count(&everything, kind, 1),
            "{kind}"
        );
        assert_eq!(count(&closed, kind, 2), 0, "{kind}");
    }
    // With a record test beside it: what the capture's SQL selects, record for record.
    let source = "state:closed and op:text";
    let texts = exported(&capture, source);
    let filter = Filter::parse(source).unwrap();
    for (rows, kind) in [(Rows::Frames, "frame"), (Rows::Messages, "message")] {
        let selected = capture.matching_ids(rows, &filter).unwrap().len();
        assert!(selected > 0);
        assert_eq!(
            texts.iter().filter(|(k, _)| k == kind).count(),
            selected,
            "{kind}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An MQTT PUBLISH split across two client messages of a session at `/plain`, which
/// nothing but a `--view path:/plain=mqtt` rule calls MQTT: its fields read only where
/// the packet ends, in the second message (`PUBLISH_TAIL` bytes).
fn split_publish() -> (Vec<BusEvent>, Vec<(Filter, wstap_views::View)>) {
    let publish = b"\x32\x11\x00\x0asensors/t1\x00\x05{}\x00";
    let spec = SessionSpec::plain(
        1,
        "broker.test",
        "/plain",
        vec![client_binary(&publish[..7]), client_binary(&publish[7..])],
    );
    let rules = vec![(
        Filter::parse("path:/plain").unwrap(),
        wstap_views::View::Mqtt,
    )];
    (session_events(&spec), rules)
}
const PUBLISH_TAIL: u64 = 12;

/// A masked binary frame, as a client sends.
fn client_binary(bytes: &[u8]) -> (Direction, Vec<u8>) {
    let frame = FrameBuilder::binary().mask([1, 2, 3, 4]).encode(bytes);
    (Direction::ClientToServer, frame)
}

/// The messages of `capture` that `filter` selects, by SQL and by an NDJSON export's
/// in-memory filter (their lengths, in order), after checking that the two select as
/// many frames; and how many frames.
fn selected_by_sql_and_export(capture: &Capture, filter: &str) -> (usize, Vec<u64>, usize) {
    let parsed = Filter::parse(filter).unwrap();
    let lines: Vec<serde_json::Value> = export_ndjson(capture, filter)
        .lines()
        .skip(1)
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let frames = capture.matching_ids(Rows::Frames, &parsed).unwrap();
    let exported_frames = lines.iter().filter(|line| line["type"] == "frame").count();
    assert_eq!(frames.len(), exported_frames, "frames, {filter}");
    let by_sql = capture.matching_ids(Rows::Messages, &parsed).unwrap();
    let exported = lines
        .iter()
        .filter(|line| line["type"] == "message")
        .map(|line| line["len"].as_u64().unwrap())
        .collect();
    (by_sql.len(), exported, frames.len())
}

/// A `--view` rule's view is the capture's testimony of how a session was read: an
/// export's in-memory filter reads the session with it as SQL does, not with what the
/// handshake alone would have chosen.
#[test]
fn an_export_filter_reads_a_session_with_the_view_its_capture_recorded() {
    let dir = temp_dir("recorded-view");
    let (events, rules) = split_publish();
    let mut writer = CaptureWriter::create(&dir, &info()).expect("a new capture");
    writer.choose_views(rules);
    Sink::write_batch(&mut writer, &events).expect("written");
    writer.finish().expect("finished");
    let capture = Capture::open(&dir).unwrap();

    let (by_sql, exported, frames) = selected_by_sql_and_export(&capture, "mqtt.type:publish");
    assert_eq!(
        frames, 1,
        "the frame where the packet ends, which is all its message"
    );
    assert_eq!(by_sql, 1, "SQL reads the packet where it ends");
    assert_eq!(
        exported,
        [PUBLISH_TAIL],
        "the export selects that message too"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A view its writer detected from a session's messages reads as the writer read it:
/// from the message that decided it. Here a binary message that is no MQTT comes before
/// the CONNECT that decides the view; read as MQTT, its bytes would begin a packet (type
/// 6, 101 bytes long) and swallow the CONNECT.
#[test]
fn an_export_filter_reads_a_detected_view_from_the_message_that_decided_it() {
    let dir = temp_dir("detected-view");
    let connect = b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03abc";
    let spec = SessionSpec::plain(
        1,
        "broker.test",
        "/plain",
        vec![client_binary(b"hello, no packet"), client_binary(connect)],
    );
    write(&dir, &session_events(&spec), 100);
    let capture = Capture::open(&dir).unwrap();
    assert_eq!(
        capture.session(1).unwrap().map(|s| s.view),
        Some(Some(wstap_views::View::Mqtt)),
        "the writer detected MQTT"
    );
    let (by_sql, exported, frames) = selected_by_sql_and_export(&capture, "mqtt.type:connect");
    assert_eq!(frames, 1, "the CONNECT's frame");
    assert_eq!(by_sql, 1, "SQL reads the CONNECT as its own bytes");
    assert_eq!(
        exported,
        [connect.len() as u64],
        "the export selects it too"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A live filter (the console's) given the `--view` rules reads a session as the capture
/// writer beside it does; without them, as the handshake says.
#[test]
fn a_live_selection_reads_sessions_with_the_view_rules() {
    use wstap_store::facts::Selection;
    use wstap_trace::view::MessageView;
    use wstap_wire::Record;
    let (events, rules) = split_publish();
    let selected = |mut selection: Selection| -> Vec<u64> {
        let mut lens = Vec::new();
        for event in &events {
            match event {
                BusEvent::Event(event) => {
                    selection.session_event(event);
                }
                BusEvent::Wire {
                    session,
                    record: Record::Message(m),
                } => {
                    if selection.message(&MessageView::of_record(*session, m)) {
                        lens.push(m.wire_payload_len);
                    }
                }
                BusEvent::Wire { .. } => {}
            }
        }
        lens
    };
    let filter = Filter::parse("mqtt.type:publish").unwrap();
    assert_eq!(
        selected(Selection::new(filter.clone()).with_view_rules(rules)),
        [PUBLISH_TAIL]
    );
    assert_eq!(selected(Selection::new(filter)), Vec::<u64>::new());
}

/// Every column of every frame, as `SELECT * FROM frames` gives them, in order.
fn frames_table(dir: &std::path::Path) -> Vec<Vec<rusqlite::types::Value>> {
    let db = rusqlite::Connection::open(layout::database(dir)).unwrap();
    let mut statement = db.prepare("SELECT * FROM frames ORDER BY id").unwrap();
    let columns = statement.column_count();
    let rows = statement
        .query_map([], |row| {
            (0..columns)
                .map(|i| row.get::<_, rusqlite::types::Value>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn the_migration_from_schema_8_keeps_every_column_of_every_frame() {
    use rusqlite::types::Value::{Integer, Null, Text};
    let dir = temp_dir("frames-v8");
    let mut compressed = Vec::new();
    Deflater::new(DeflateParams::default(), Direction::ServerToClient)
        .compress(b"hello hello hello", &mut compressed)
        .unwrap();
    // What each column of a frame row holds: masked and unmasked frames, the three
    // length encodings, payloads inline and out of line, a compressed one, close frames
    // with and without a code, violations.
    let spec = SessionSpec {
        deflate: true,
        ..SessionSpec::plain(
            1,
            "migrate.test",
            "/",
            vec![
                client_text("hi"),
                client_text(&"z".repeat(300)),
                server(FrameBuilder::text(), "y".repeat(70_000).as_bytes()),
                server(FrameBuilder::text().rsv1(true), &compressed),
                server(FrameBuilder::new(Opcode::from_bits(3)), b"?"),
                (Direction::ClientToServer, FrameBuilder::close().encode(b"")),
                server(FrameBuilder::close(), b"\x03\xe8bye"),
                (
                    Direction::ClientToServer,
                    FrameBuilder::text()
                        .mask([0xF0, 1, 2, 3])
                        .encode(b"a key above 2^31"),
                ),
                server(FrameBuilder::close(), b"\x03\xe9say \"bye\" \\ \xc3\xa9"),
            ],
        )
    };
    let events = session_events(&spec);
    write(&dir, &events, 3);
    let written = frames_table(&dir);
    // The view spells each of them as schema 8 stored it. Columns: dir 3, flags 7,
    // mask_key 8, length_bits 9, close_code 14, close_reason 15, inflated_len 16,
    // violations 20, opcode 26, header_len 27.
    let column = |frame: usize, i: usize| written[frame][i].clone();
    assert_eq!(written.len(), 9);
    assert_eq!(column(0, 3), Text("c2s".into()));
    assert_eq!(column(0, 8), Integer(0x0102_0304));
    assert_eq!(column(0, 27), Integer(6));
    assert_eq!(column(1, 9), Integer(16));
    assert_eq!(column(2, 3), Text("s2c".into()));
    assert_eq!(column(2, 8), Null);
    assert_eq!(column(2, 9), Integer(64));
    assert_eq!(column(2, 27), Integer(10));
    assert_eq!(column(3, 7), Integer(0xC1));
    assert_eq!(column(3, 16), Integer(17));
    assert!(matches!(column(4, 20), Text(v) if v.contains("reserved_opcode")));
    assert_eq!(column(4, 26), Integer(3));
    assert_eq!(column(5, 14), Null);
    assert_eq!(column(5, 15), Text(String::new()));
    assert!(matches!(column(5, 20), Text(v) if v.contains("unmasked_client_frame")));
    assert_eq!(column(6, 14), Integer(1000));
    assert_eq!(column(6, 15), Text("bye".into()));
    assert_eq!(column(6, 20), Null);
    assert_eq!(column(7, 8), Integer(0xF001_0203));
    assert_eq!(column(8, 14), Integer(1001));
    assert_eq!(column(8, 15), Text("say \"bye\" \\ é".into()));
    // Typed as the table's columns were: text compares as it did.
    let db = rusqlite::Connection::open(layout::database(&dir)).unwrap();
    let closes: i64 = db
        .query_row(
            "SELECT count(*) FROM frames WHERE opcode = '8' AND close_code = '1000'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(closes, 1);
    drop(db);
    // Taken back to schema 8, each frame in a table of its own, and opened again.
    let db = rusqlite::Connection::open(layout::database(&dir)).unwrap();
    as_schema_8(&db);
    drop(db);
    assert_eq!(frames_table(&dir), written, "schema 8's table");
    let read = events_of(&Capture::open(&dir).unwrap(), Some(1));
    let db = rusqlite::Connection::open(layout::database(&dir)).unwrap();
    let version: i64 = db
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, wstap_store::SCHEMA_VERSION);
    // The old table's pages were given back.
    let free: i64 = db
        .pragma_query_value(None, "freelist_count", |row| row.get(0))
        .unwrap();
    assert_eq!(free, 0);
    drop(db);
    assert_eq!(frames_table(&dir), written, "the migrated view");
    // And read back as the events written.
    let expected: Vec<Event> = events.iter().map(BusEvent::to_event).collect();
    assert_eq!(as_json(&read), as_json(&expected));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The frames of `tests/fixtures/v8/trace.ndjson` written by this version's writer, as
/// `wstap import` writes a trace.
fn imported_fixture_trace(dir: &std::path::Path) {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v8");
    let file = std::fs::File::open(fixture.join("trace.ndjson")).unwrap();
    let (_, reader) = wstap_trace::TraceReader::new(std::io::BufReader::new(file)).unwrap();
    let events: Vec<Event> = reader.map(Result::unwrap).collect();
    let info = wstap_store::CaptureInfo {
        max_capture: 0,
        ..info()
    };
    let mut writer = CaptureWriter::create(dir, &info).unwrap();
    writer.write_events(&events).unwrap();
    writer.finish().unwrap();
}

#[test]
fn a_capture_of_schema_8_migrated_holds_what_this_version_writes() {
    // The capture wstap 39ab2c4 made of the trace (`wstap import`), copied, and opened.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v8");
    let migrated = temp_dir("v8");
    std::fs::create_dir_all(&migrated).unwrap();
    for file in [layout::DATABASE, "payloads-000000.bin"] {
        std::fs::copy(fixture.join(file), migrated.join(file)).unwrap();
    }
    let before = frames_table(&migrated);
    let capture = Capture::open(&migrated).unwrap();
    let read = events_of(&capture, None);
    drop(capture);
    let after = frames_table(&migrated);
    // The same trace, written now.
    let written = temp_dir("v8-written");
    imported_fixture_trace(&written);
    assert_eq!(after, frames_table(&written));
    assert_eq!(
        after, before,
        "every column of every frame as schema 8 held it"
    );
    assert_eq!(
        as_json(&read),
        as_json(&events_of(&Capture::open(&written).unwrap(), None))
    );
    for dir in [migrated, written] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
