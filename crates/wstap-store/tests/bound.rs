//! A bounded capture (`--capture-max`): past its bound it gives up the oldest payload
//! segments, keeps every record, and says which payloads are gone wherever they are read.

mod support;

use support::*;
use wstap_filter::Filter;
use wstap_store::{Capture, CaptureInfo, CaptureWriter, Position, Rows, StoreError};
use wstap_trace::{BusEvent, Sink};
use wstap_wire::FrameBuilder;

/// 300 binary messages of 20,000 bytes from the server, each numbered in its first bytes.
fn busy(id: u64) -> SessionSpec {
    let frames = (0..300u32)
        .map(|n| {
            let mut payload = vec![b'.'; 20_000];
            payload[..4].copy_from_slice(&n.to_be_bytes());
            server(FrameBuilder::binary(), &payload)
        })
        .chain([client_text("the last word")])
        .collect();
    SessionSpec::plain(id, "busy.example", "/feed", frames)
}

/// Writes `events` bounded at `bound` bytes, committing every `batch` events, and
/// returns the largest size on disk a commit reported.
fn write_bounded(dir: &std::path::Path, events: &[BusEvent], bound: u64, batch: usize) -> u64 {
    let info = CaptureInfo {
        max_bytes: Some(bound),
        ..info()
    };
    let mut writer = CaptureWriter::create(dir, &info).expect("a new capture");
    let largest = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = largest.clone();
    writer.on_commit(move |committed| {
        assert_eq!(committed.size.bound, Some(bound));
        seen.fetch_max(committed.size.bytes, std::sync::atomic::Ordering::Relaxed);
    });
    for chunk in events.chunks(batch) {
        Sink::write_batch(&mut writer, chunk).expect("written");
        Sink::flush(&mut writer).expect("committed");
    }
    writer.finish().expect("finished");
    largest.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
fn past_its_bound_a_capture_drops_the_oldest_payloads_and_keeps_every_record() {
    let dir = temp_dir("bounded");
    let bound = 2 << 20;
    let segment = wstap_store::bound::segment_for(Some(bound));
    let events = session_events(&busy(1));
    let largest = write_bounded(&dir, &events, bound, 10);
    assert!(
        largest <= bound + segment,
        "{largest} bytes on disk at a commit, bound {bound}"
    );

    let capture = Capture::open(&dir).unwrap();
    let size = capture.size().unwrap();
    assert!(size.bytes <= bound + segment, "{size:?}");
    assert!(
        size.dropped > 4 << 20,
        "most of 6 MB of payloads went: {size:?}"
    );
    let all = Filter::default();
    let frames = capture
        .frames(Some(1), &all, Position::From(0), 1000)
        .unwrap();
    assert_eq!(frames.len(), 301, "every frame is still recorded");
    let (first, last) = (&frames[0].frame, &frames[299].frame);
    assert!(first.payload.dropped && first.payload.bytes.is_empty());
    assert!(first.payload.truncated);
    assert_eq!(first.payload_len, 20_000, "its facts stay");
    assert!(!last.payload.dropped);
    assert_eq!(last.payload.bytes[..4], 299u32.to_be_bytes());
    assert_eq!(frames[300].frame.payload.bytes, b"the last word");

    // The filter selects what is gone, in SQL and in the export's own evaluation alike.
    let dropped = Filter::parse("payload:dropped").unwrap();
    let ids = capture.matching_ids(Rows::Frames, &dropped).unwrap();
    let gone = frames.iter().filter(|f| f.frame.payload.dropped).count();
    assert_eq!(ids.len(), gone);
    assert!(gone > 200 && gone < 300, "{gone} dropped");
    let messages = capture.matching_ids(Rows::Messages, &dropped).unwrap();
    assert_eq!(
        messages.len(),
        gone,
        "one-frame messages, dropped with their frames"
    );
    // A payload search cannot match what is gone, nor its negation pretend it did.
    let dots = Filter::parse("text~\"\\\\.\\\\.\\\\.\"").unwrap();
    assert_eq!(
        capture.matching_ids(Rows::Frames, &dots).unwrap().len(),
        300 - gone
    );
    let word = Filter::parse("payload:\"dropped\"").unwrap();
    assert!(capture
        .matching_ids(Rows::Frames, &word)
        .unwrap()
        .is_empty());

    let ndjson = export_ndjson(&capture, "payload:dropped");
    let exported: Vec<serde_json::Value> = ndjson
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|event: &serde_json::Value| event["type"] == "frame")
        .collect();
    assert_eq!(exported.len(), gone);
    assert_eq!(exported[0]["payload"]["dropped"], true);
    assert_eq!(exported[0]["payload"]["data"], "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn records_that_alone_outgrow_the_bound_stop_the_capture_and_say_so() {
    let dir = temp_dir("full");
    let info = CaptureInfo {
        max_bytes: Some(64 << 10),
        ..info()
    };
    let mut writer = CaptureWriter::create(&dir, &info).expect("a new capture");
    let events: Vec<BusEvent> = (1..=40).flat_map(|id| session_events(&busy(id))).collect();
    let mut failed = None;
    for chunk in events.chunks(50) {
        let done = Sink::write_batch(&mut writer, chunk).and_then(|()| Sink::flush(&mut writer));
        if let Err(e) = done {
            failed = Some(e);
            break;
        }
    }
    let error = failed.expect("the records outgrew 64 KiB");
    assert!(matches!(error, StoreError::Full { bound } if bound == 64 << 10));
    assert!(error.to_string().contains("--capture-max"), "{error}");
    drop(writer);
    // What was committed reads back.
    let capture = Capture::open(&dir).unwrap();
    assert!(!capture
        .frames(None, &Filter::default(), Position::From(0), 10)
        .unwrap()
        .is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unbounded_capture_drops_nothing() {
    let dir = temp_dir("unbounded");
    write(&dir, &session_events(&busy(1)), 10);
    let capture = Capture::open(&dir).unwrap();
    let size = capture.size().unwrap();
    assert_eq!((size.bound, size.dropped), (None, 0));
    let dropped = Filter::parse("payload:dropped").unwrap();
    assert!(capture
        .matching_ids(Rows::Frames, &dropped)
        .unwrap()
        .is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
