//! Traces written and read back: the header line, every event type from real wire
//! records, torn last lines, and the exports made from the result.

use chrono::{DateTime, Utc};
use wstap_trace::export::{har::to_har, session::sessions};
use wstap_trace::*;
use wstap_wire::{AnalyzerConfig, Direction, FrameBuilder, Record, StreamAnalyzer, Timestamp};

fn t(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(1_790_000_000_000_000 + micros).unwrap()
}

fn sample_events() -> Vec<Event> {
    let mut events = vec![Event::SessionStart(SessionStart {
        session: 7,
        time: t(0),
        client: "127.0.0.1:5000".into(),
        target: "example.test:80".into(),
        via: Via::Connect,
        listener: Some("127.0.0.1:8888".into()),
        tls: false,
        client_tls: None,
        upstream_tls: None,
        upstream_proxy: Some(ParentHop {
            proxy: "corp.test:3128".into(),
            status_line: "HTTP/1.1 200 Connection established".into(),
            connect_us: 1234,
        }),
    })];
    let mut analyzer = StreamAnalyzer::new(Direction::ClientToServer, AnalyzerConfig::default());
    let mut records = Vec::new();
    let wire = [
        FrameBuilder::text()
            .mask([0x16, 0x39, 0x8f, 0x63])
            .encode(b"hello"),
        FrameBuilder::binary()
            .mask([1, 2, 3, 4])
            .encode(&[0xff, 0x00, 0xfe]),
        FrameBuilder::close()
            .mask([1, 2, 3, 4])
            .encode(b"\x0f\xa1done"),
    ]
    .concat();
    analyzer.feed(&wire, Timestamp(t(5).timestamp_micros()), &mut records);
    for record in records {
        events.push(match record {
            Record::Frame(f) => Event::Frame(Frame::from_record(7, f)),
            Record::Message(m) => Event::Message(Message::from_record(7, m)),
        });
    }
    events.push(Event::SessionEnd(SessionEnd {
        session: 7,
        time: t(9),
        outcome: Outcome::Closed,
        close: Some(SessionClose {
            initiator: Initiator::Client,
            code: Some(4001),
            reason: "done".into(),
        }),
        frames: PerDirection { c2s: 3, s2c: 0 },
        bytes: PerDirection { c2s: 40, s2c: 0 },
        kind: SessionKind::WebSocket,
        error: None,
        cut_frames: vec![],
        withheld: Some(Withheld {
            dir: Direction::ClientToServer,
            frame: 3,
            bytes: 17,
            whole_frame: true,
        }),
        duration_us: 9,
    }));
    events
}

fn write(events: &[Event]) -> Vec<u8> {
    let mut writer = TraceWriter::new(Vec::new(), &TraceHeader::new("wstap test", t(0))).unwrap();
    for e in events {
        writer.write(e).unwrap();
    }
    writer.into_inner().unwrap()
}

#[test]
fn every_line_reads_back_equal_and_carries_contract_fields() {
    let events = sample_events();
    let bytes = write(&events);
    let text = String::from_utf8(bytes.clone()).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            first["type"].as_str(),
            first["format"].as_str(),
            first["version"].as_u64()
        ),
        (Some("trace"), Some("wstap"), Some(1))
    );

    let frame: serde_json::Value = serde_json::from_str(text.lines().nth(2).unwrap()).unwrap();
    assert_eq!(frame["type"], "frame");
    assert_eq!(frame["dir"], "c2s");
    assert_eq!(frame["flags"], "10000001");
    assert_eq!(frame["mask_key"], "16398f63");
    assert_eq!(frame["payload"]["encoding"], "utf8");
    assert_eq!(frame["payload"]["data"], "hello");
    assert_eq!(frame["time"], "2026-09-21T14:13:20.000005Z");

    let (header, reader) = TraceReader::new(bytes.as_slice()).unwrap();
    assert_eq!(header.version, FORMAT_VERSION);
    let back: Vec<Event> = reader.map(Result::unwrap).collect();
    assert_eq!(back, events);
}

#[test]
fn binary_payload_is_base64_and_close_is_parsed() {
    let events = sample_events();
    let binary = events.iter().find_map(|e| match e {
        Event::Frame(f) if f.opcode == 2 => Some(f),
        _ => None,
    });
    let json = serde_json::to_value(binary.unwrap()).unwrap();
    assert_eq!(json["payload"]["encoding"], "base64");
    assert_eq!(json["payload"]["data"], "/wD+");
    let close = events.iter().find_map(|e| match e {
        Event::Frame(f) => f.close.clone(),
        _ => None,
    });
    assert_eq!(
        close,
        Some(CloseInfo {
            code: Some(4001),
            reason: "done".into()
        })
    );
}

#[test]
fn a_torn_last_line_is_reported_and_earlier_lines_survive() {
    let mut bytes = write(&sample_events());
    bytes.extend_from_slice(b"{\"type\":\"frame\",\"sess");
    let (_, reader) = TraceReader::new(bytes.as_slice()).unwrap();
    let results: Vec<_> = reader.collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        sample_events().len()
    );
    assert!(matches!(
        results.last(),
        Some(Err(TraceError::TornLastLine { .. }))
    ));
}

#[test]
fn session_export_groups_and_counts() {
    let docs = sessions(sample_events(), None);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].frames.len(), 3);
    assert_eq!(docs[0].messages.len(), 3);
    assert_eq!(docs[0].stats.frames.c2s, 3);
    assert_eq!(docs[0].end.as_ref().unwrap().outcome, Outcome::Closed);
    assert!(sessions(sample_events(), Some(8)).is_empty());
}

#[test]
fn har_carries_http_entries_and_websocket_messages() {
    let mut events = sample_events();
    let request = RequestHead {
        method: "GET".into(),
        target: "/chat?room=1".into(),
        version: "HTTP/1.1".into(),
        headers: vec![("Host".into(), "example.test".into())],
    };
    events.push(Event::Handshake(Handshake {
        exchange: Exchange {
            session: 7,
            time: t(1),
            url: "ws://example.test/chat?room=1".into(),
            request: request.clone(),
            forwarded: Forwarded::default(),
            response: Some(ResponseHead {
                status: 101,
                reason: "Switching Protocols".into(),
                version: "HTTP/1.1".into(),
                headers: vec![],
            }),
            raw: None,
        },
        accept_valid: true,
        subprotocol: None,
        extensions: vec![],
        deflate: None,
        undecoded_extensions: vec![],
        issues: vec![],
        duration_us: Some(1500),
        upstream: None,
    }));
    events.push(Event::Http(HttpExchange {
        exchange: Exchange {
            session: 7,
            time: t(0),
            url: "http://example.test/".into(),
            request,
            forwarded: Forwarded::default(),
            response: None,
            raw: None,
        },
        request_body_bytes: 0,
        response_body_bytes: 0,
        duration_us: 10,
        responder: Responder::Proxy,
        error: Some("connection refused".into()),
    }));
    let har = to_har(&sessions(events, None), "0.1.0");
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["response"]["status"], 0);
    let ws = &entries[1];
    assert_eq!(ws["_resourceType"], "websocket");
    assert_eq!(ws["request"]["queryString"][0]["name"], "room");
    // Which session, and how the client came.
    assert_eq!(ws["_wstap"]["session"], 7);
    assert_eq!(ws["_wstap"]["via"], "connect");
    assert_eq!(ws["_wstap"]["listener"], "127.0.0.1:8888");
    assert_eq!(ws["_wstap"]["upstreamProxy"]["proxy"], "corp.test:3128");
    assert_eq!(entries[0]["_wstap"]["session"], 7);
    let messages = ws["_webSocketMessages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        (
            messages[0]["type"].as_str(),
            messages[0]["opcode"].as_u64(),
            messages[0]["data"].as_str()
        ),
        (Some("send"), Some(1), Some("hello"))
    );
    assert_eq!(messages[1]["data"], "/wD+");
    assert!(messages[0]["time"].as_f64().unwrap() > 1.7e9);
}

#[test]
fn a_frame_event_gives_back_the_header_it_was_made_from() {
    use wstap_wire::LengthEncoding;
    let wire = [
        FrameBuilder::text().mask([0, 0, 0, 1]).encode(b"hi"),
        FrameBuilder::binary()
            .fin(false)
            .rsv2(true)
            .length_encoding(LengthEncoding::Bits64)
            .encode(&[1; 3]),
        FrameBuilder::new(wstap_wire::Opcode::Reserved(0xB))
            .rsv1(true)
            .rsv3(true)
            .encode(&[0; 200]),
    ]
    .concat();
    let mut analyzer = StreamAnalyzer::new(Direction::ServerToClient, AnalyzerConfig::default());
    let mut records = Vec::new();
    analyzer.feed(&wire.clone(), Timestamp(0), &mut records);
    let mut seen = 0;
    for record in records {
        if let Record::Frame(f) = record {
            let header = f.header;
            assert_eq!(Frame::from_record(1, f).header(), header);
            seen += 1;
        }
    }
    assert_eq!(seen, 3);
}
