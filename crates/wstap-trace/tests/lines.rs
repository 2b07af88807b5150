//! Trace lines of HTTP exchange events, byte for byte: the key order and the optional
//! fields left out are part of the format (docs/trace-format.md), and comparing parsed
//! JSON would not see a change to either.

use chrono::{DateTime, Utc};
use wstap_trace::*;

fn t(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(1_790_000_000_000_000 + micros).unwrap()
}

fn request() -> RequestHead {
    RequestHead {
        method: "GET".into(),
        target: "/chat".into(),
        version: "HTTP/1.1".into(),
        headers: vec![("Host".into(), "example.test".into())],
    }
}

fn switching() -> ResponseHead {
    ResponseHead {
        status: 101,
        reason: "Switching Protocols".into(),
        version: "HTTP/1.1".into(),
        headers: vec![("Upgrade".into(), "websocket".into())],
    }
}

/// `event` as a trace line, which reads back as the same event.
fn line(event: Event) -> String {
    let text = serde_json::to_string(&event).unwrap();
    let back: Event = serde_json::from_str(&text).unwrap();
    assert_eq!(back, event, "{text}");
    text
}

#[test]
fn a_handshake_line_keeps_its_keys_in_order() {
    let event = Event::Handshake(Handshake {
        exchange: Exchange {
            session: 3,
            time: t(1),
            url: "ws://example.test/chat".into(),
            request: request(),
            forwarded: Forwarded::default(),
            response: Some(switching()),
            raw: None,
        },
        accept_valid: true,
        subprotocol: Some("chat".into()),
        extensions: vec!["permessage-deflate".into()],
        deflate: None,
        undecoded_extensions: vec![],
        issues: vec!["one issue".into()],
        duration_us: Some(1500),
        upstream: None,
    });
    assert_eq!(
        line(event),
        r#"{"type":"handshake","session":3,"time":"2026-09-21T14:13:20.000001Z","url":"ws://example.test/chat","request":{"method":"GET","target":"/chat","version":"HTTP/1.1","headers":[["Host","example.test"]]},"forwarded":{},"response":{"status":101,"reason":"Switching Protocols","version":"HTTP/1.1","headers":[["Upgrade","websocket"]]},"accept_valid":true,"subprotocol":"chat","extensions":["permessage-deflate"],"issues":["one issue"],"duration_us":1500}"#
    );
}

#[test]
fn an_http_line_without_a_response_keeps_its_keys_in_order() {
    let event = Event::Http(HttpExchange {
        exchange: Exchange {
            session: 4,
            time: t(2),
            url: "http://example.test/".into(),
            request: request(),
            forwarded: Forwarded::default(),
            response: None,
            raw: None,
        },
        request_body_bytes: 5,
        response_body_bytes: 0,
        duration_us: 10,
        responder: Responder::Proxy,
        error: Some("connection refused".into()),
    });
    assert_eq!(
        line(event),
        r#"{"type":"http","session":4,"time":"2026-09-21T14:13:20.000002Z","url":"http://example.test/","request":{"method":"GET","target":"/chat","version":"HTTP/1.1","headers":[["Host","example.test"]]},"forwarded":{},"response":null,"request_body_bytes":5,"response_body_bytes":0,"duration_us":10,"responder":"proxy","error":"connection refused"}"#
    );
}
