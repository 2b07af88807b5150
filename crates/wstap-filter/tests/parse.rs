//! The language as a person types it: what parses, what it means, and how errors point.

use wstap_filter::{Filter, RecordFacts, RecordKind, SessionFacts, State};
use wstap_wire::Direction;

fn session() -> SessionFacts<'static> {
    SessionFacts {
        id: 7,
        host: "api.example.com",
        port: 443,
        url: "wss://api.example.com/chat?room=1",
        path: "/chat?room=1",
        client: "127.0.0.1:50000",
        subprotocol: Some("chat"),
        extension_names: " permessage-deflate ",
        tls: true,
        status: Some(101),
        state: State::Open,
        kind: None,
        close: None,
        started_us: 1_796_156_130_000_000,
        violations: 0,
    }
}

fn text_frame(payload: &'static [u8]) -> RecordFacts<'static> {
    RecordFacts {
        kind: RecordKind::Frame,
        dir: Direction::ClientToServer,
        opcode: 1,
        flags: 0x81,
        masked: true,
        len: payload.len() as u64,
        frames: 1,
        compressed: false,
        close: None,
        time_us: 1_796_156_131_000_000,
        violations: &[],
        payload,
        stream: None,
        fate: None,
        tags: "",
        origin: wstap_filter::Origin::Wire,
        dropped: false,
    }
}

fn matches(filter: &str, record: &RecordFacts<'_>) -> bool {
    Filter::parse(filter)
        .unwrap_or_else(|e| panic!("{filter:?} should parse:\n{e}"))
        .matches_record(&session(), record)
}

#[test]
fn fields_comparisons_words_and_logic() {
    let hello = text_frame(br#"{"user":{"id":42,"name":"Ronald"},"tags":["a","b"]}"#);
    for (filter, expected) in [
        ("", true),
        ("op:text", true),
        ("op:binary", false),
        ("op:text,binary", true),
        ("op:data", true),
        ("not op:control", true),
        ("dir:c2s", true),
        ("dir:s2c", false),
        ("fin", true),
        ("rsv1", false),
        ("not rsv1", true),
        ("masked:yes", true),
        ("len>10", true),
        ("len>1k", false),
        ("len:1..1000", true),
        ("session:7", true),
        ("session!=7", false),
        ("session:1..5", false),
        ("host:api.example.com", true),
        ("host:API.EXAMPLE.COM", true),
        ("host:*.example.com", true),
        ("host:example.com", false),
        ("url~room=\\d", true),
        ("path:/chat*", true),
        ("subprotocol:chat", true),
        ("extension:permessage-deflate", true),
        ("extension:x-webkit", false),
        ("tls", true),
        ("status:101", true),
        ("state:open", true),
        ("ronald", true),
        ("RONALD", true),
        ("text:\"\\\"name\\\":\\\"Ronald\\\"\"", true),
        ("text~\"id.:4\\d\"", true),
        ("json.user.id == 42", true),
        ("json.user.id==42", true),
        ("len > 10", true),
        ("len >10 and op : text", true),
        ("json.user.id > 41", true),
        ("json.user.id:41", false),
        ("json.user.name == \"Ronald\"", true),
        ("json.user.name == Ronald", true),
        ("json.tags[1] == \"b\"", true),
        ("json.user", true),
        ("json.nobody", false),
        ("json.user.id != 42", false),
        ("violation", false),
        ("close:1000", false),
        ("op:text and len>10", true),
        ("op:text len>10", true),
        ("op:binary or ronald", true),
        ("op:binary or (dir:c2s and not masked)", false),
        ("-ronald", false),
        ("!ronald", false),
        ("time:2026-12-01", time_is_on_that_local_day()),
        ("time>2026-12-01T20:15:30Z", true),
        ("time<2026-12-01T20:15:30Z", false),
    ] {
        assert_eq!(matches(filter, &hello), expected, "{filter}");
    }
}

/// The fixed test time is 2026-12-01T20:15:31Z; which local day that is depends on the
/// machine's zone, as `time:DATE` reads a local date.
fn time_is_on_that_local_day() -> bool {
    use chrono::TimeZone;
    let at = chrono::Local
        .timestamp_micros(1_796_156_131_000_000)
        .single()
        .unwrap();
    at.format("%Y-%m-%d").to_string() == "2026-12-01"
}

#[test]
fn violations_by_kind_and_close_codes() {
    let mut close = text_frame(b"\x03\xee");
    close.opcode = 8;
    close.flags = 0x88;
    close.close = Some(1006);
    close.violations = &["invalid_close_code"];
    assert!(matches("close:1006", &close));
    assert!(matches("op:close close:1000..1010", &close));
    assert!(matches("violation", &close));
    assert!(matches("violation:invalid_close_code", &close));
    assert!(!matches("violation:unmasked_client_frame", &close));
}

#[test]
fn a_session_filter_reads_its_records_term_by_term() {
    let filter = Filter::parse("host:*.example.com and op:binary").unwrap();
    let text = text_frame(b"x");
    let mut binary = text_frame(b"y");
    binary.opcode = 2;
    assert!(!filter.matches_session(&session(), &[text]));
    assert!(filter.matches_session(&session(), &[text, binary]));
    assert_eq!(filter.session_verdict(&session()), None);
    let other_host = Filter::parse("host:other.org and op:binary").unwrap();
    assert_eq!(other_host.session_verdict(&session()), Some(false));
    assert!(!Filter::parse("tls").unwrap().reads_records());
    assert!(Filter::parse("tls and len>1").unwrap().reads_records());
}

#[test]
fn errors_point_at_the_place_and_say_what_was_expected() {
    for (filter, message, column, width) in [
        ("len>", "expected a value after 'len>'", 4, 1),
        (
            "len>big",
            "expected a length like 100, 16k or 1MiB after 'len', not \"big\"",
            4,
            3,
        ),
        ("op:text and (dir:c2s", "this '(' is never closed", 12, 1),
        ("op:nonsense", "expected text, binary", 3, 8),
        ("nope:1", "unknown field 'nope'", 0, 4),
        (
            "dir:sideways",
            "expected c2s or s2c after 'dir', not \"sideways\"",
            4,
            8,
        ),
        (
            "violation:weird",
            "expected any, or one of reserved_opcode",
            10,
            5,
        ),
        ("text~\"(\"", "expected a regular expression", 5, 3),
        ("\"open", "this quote is never closed", 0, 1),
        ("a )", "expected a ')' without its '('", 2, 1),
        ("host>x", "host takes ':'", 4, 1),
        ("time:tomorrow", "expected a time like", 5, 8),
        ("json.a ~ x", "json.a takes ==, !=, <, <=, > or >=", 7, 1),
        ("json.a+1", "expected an operator", 6, 1),
    ] {
        let error = Filter::parse(filter).expect_err(filter);
        assert!(
            error.message().contains(message),
            "{filter:?}: {:?} should say {message:?}",
            error.message()
        );
        assert_eq!(error.span(), (column, width), "{filter:?}: {}", error);
        let shown = error.to_string();
        let caret_line = shown.lines().last().unwrap();
        assert_eq!(
            caret_line,
            format!("  {}{}", " ".repeat(column), "^".repeat(width)),
            "{shown}"
        );
    }
}

#[test]
fn held_and_fate_select_what_breakpoints_held() {
    use wstap_filter::Fate;
    let plain = text_frame(b"hello");
    let dropped = RecordFacts {
        fate: Some(Fate::Dropped),
        ..text_frame(b"hello")
    };
    assert!(!matches("held", &plain));
    assert!(matches("held", &dropped));
    assert!(matches("held:false", &plain));
    assert!(matches("fate:dropped", &dropped));
    assert!(!matches("fate:edited", &dropped));
    assert!(matches("not fate:edited and held", &dropped));
    let wrong = Filter::parse("fate:gone").unwrap_err();
    assert!(wrong.to_string().contains("timed_out"), "{wrong}");
}

#[test]
fn a_first_header_decides_what_does_not_read_the_payload() {
    use wstap_filter::HeaderFacts;
    let header = HeaderFacts {
        dir: Direction::ServerToClient,
        flags: 0x82, // FIN, binary
        masked: false,
        compressed: false,
        len: Some(100_000),
    };
    let verdict = |filter: &str| {
        Filter::parse(filter)
            .unwrap()
            .header_verdict(&session(), &header)
    };
    assert_eq!(verdict("dir:c2s"), Some(false));
    assert_eq!(verdict("op:text"), Some(false));
    assert_eq!(verdict("op:binary and len>64k"), Some(true));
    assert_eq!(verdict("len<10"), Some(false));
    assert_eq!(verdict("held"), Some(false));
    assert_eq!(verdict(r#"text~"secret""#), None, "the payload decides");
    assert_eq!(
        verdict(r#"dir:c2s and text~"secret""#),
        Some(false),
        "unless the rest rules it out"
    );
    assert_eq!(verdict(r#"op:binary or json.a"#), Some(true));
    assert_eq!(verdict("violation"), None);
    let unknown_length = HeaderFacts {
        flags: 0x02,
        len: None,
        ..header
    };
    let filter = Filter::parse("len<10 or frames>1").unwrap();
    assert_eq!(filter.header_verdict(&session(), &unknown_length), None);
}

#[test]
fn protocol_fields_and_binary_format_paths_read_the_decoded_payload() {
    let invocation = text_frame(
        b"{\"type\":1,\"invocationId\":\"3\",\"target\":\"SendMessage\",\"arguments\":[\"John\",\"hi\"]}\x1e",
    );
    let publish = text_frame(b"\x32\x11\x00\x0asensors/t1\x00\x05{}\x00");
    let event = text_frame(br#"42/admin,7["chat","hi"]"#);
    let pack = text_frame(b"\x82\xa1a\x01\xa1b\x91\xc3");
    // The target escaped in JSON: not its bytes, but the same text.
    let escaped = text_frame(b"{\"type\":1,\"target\":\"Send\\u004dessage\",\"arguments\":[]}\x1e");
    for (filter, record, expected) in [
        ("signalr.target == \"SendMessage\"", &escaped, true),
        ("signalr.target == \"SendMessage\"", &invocation, true),
        ("signalr.target == \"sendmessage\"", &invocation, false),
        ("signalr.target:send*", &invocation, true),
        ("signalr.type:invocation", &invocation, true),
        ("signalr.id == 3", &invocation, true),
        ("signalr.id == 4", &invocation, false),
        ("signalr.target != \"SendMessage\"", &invocation, false),
        ("signalr.target", &publish, false),
        ("mqtt.topic ~ \"^sensors/\"", &publish, true),
        (
            "mqtt.type:publish and mqtt.qos >= 1 and mqtt.id == 5",
            &publish,
            true,
        ),
        ("mqtt.qos > 1", &publish, false),
        (
            "socketio.event == \"chat\" and socketio.namespace:/admin",
            &event,
            true,
        ),
        ("socketio.ack == 7", &event, true),
        ("jsonrpc.method", &event, false),
        ("msgpack.a == 1 and msgpack.b[0] == true", &pack, true),
        ("msgpack.a > 1", &pack, false),
        ("cbor.a", &pack, false),
    ] {
        assert_eq!(matches(filter, record), expected, "{filter}");
    }
}
