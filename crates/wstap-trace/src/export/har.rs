//! HAR 1.2 (<http://www.softwareishard.com/blog/har-12-spec/>) as Chrome DevTools imports it.
//!
//! Plain HTTP exchanges become ordinary entries. A WebSocket session becomes one entry for
//! its handshake, marked `_resourceType: "websocket"`, whose `_webSocketMessages` list each
//! message as Chrome itself exports them: `type` (`send` or `receive`), `time` (seconds
//! since the epoch, fractional), `opcode`, and `data` (text, or base64 for binary). Every
//! entry also says, under `_wstap`, which session it is and how the client came: `via`
//! (the mode), the `listener` it connected to, and the parent proxy's answer, if any.

use super::session::SessionDoc;
use crate::event::*;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// A HAR document for `sessions`.
pub fn to_har(sessions: &[SessionDoc], creator_version: &str) -> Value {
    let mut entries = Vec::new();
    for doc in sessions {
        let session = wstap_fields(doc);
        for http in &doc.http {
            let mut entry = http_entry(http);
            entry["_wstap"] = session.clone();
            entries.push(entry);
        }
        if let Some(handshake) = &doc.handshake {
            let mut entry = websocket_entry(handshake, doc);
            entry["_wstap"] = session;
            entries.push(entry);
        }
    }
    json!({
        "log": {
            "version": "1.2",
            "creator": { "name": "wstap", "version": creator_version },
            "pages": [],
            "entries": entries,
        }
    })
}

/// What an entry says of its session: its number, mode, listener and parent proxy.
fn wstap_fields(doc: &SessionDoc) -> Value {
    let start = doc.start.as_ref();
    json!({
        "session": doc.session,
        "via": start.map(|s| s.via),
        "listener": start.and_then(|s| s.listener.as_deref()),
        "client": start.map(|s| s.client.as_str()),
        "upstreamProxy": start.and_then(|s| s.upstream_proxy.as_ref()),
    })
}

fn started(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn headers(list: &Headers) -> Value {
    Value::Array(
        list.iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect(),
    )
}

fn header<'a>(list: &'a Headers, name: &str) -> Option<&'a str> {
    list.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn query_string(url: &str) -> Value {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split('#').next().unwrap_or("");
    Value::Array(
        query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                json!({ "name": name, "value": value })
            })
            .collect(),
    )
}

fn request(head: &RequestHead, url: &str, body_size: u64) -> Value {
    json!({
        "method": head.method,
        "url": url,
        "httpVersion": head.version,
        "cookies": [],
        "headers": headers(&head.headers),
        "queryString": query_string(url),
        "headersSize": -1,
        "bodySize": body_size,
    })
}

fn response(head: Option<&ResponseHead>, body_size: u64) -> Value {
    let empty = Headers::new();
    let (status, reason, version, list) = match head {
        Some(r) => (r.status, r.reason.as_str(), r.version.as_str(), &r.headers),
        // HAR has no "no response": status 0 is what browsers write for a failed request.
        None => (0, "", "", &empty),
    };
    json!({
        "status": status,
        "statusText": reason,
        "httpVersion": version,
        "cookies": [],
        "headers": headers(list),
        "content": {
            "size": body_size,
            "mimeType": header(list, "content-type").unwrap_or("x-unknown"),
        },
        "redirectURL": header(list, "location").unwrap_or(""),
        "headersSize": -1,
        "bodySize": body_size,
    })
}

fn timings(wait_ms: f64) -> Value {
    json!({ "blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0, "wait": wait_ms, "receive": 0 })
}

fn http_entry(http: &HttpExchange) -> Value {
    let ms = http.duration_us as f64 / 1000.0;
    json!({
        "startedDateTime": started(&http.exchange.time),
        "time": ms,
        "request": request(&http.exchange.request, &http.exchange.url, http.request_body_bytes),
        "response": response(http.exchange.response.as_ref(), http.response_body_bytes),
        "cache": {},
        "timings": timings(ms),
    })
}

fn websocket_entry(handshake: &Handshake, doc: &SessionDoc) -> Value {
    let ms = handshake.duration_us.unwrap_or(0) as f64 / 1000.0;
    let messages: Vec<Value> = doc.messages.iter().map(websocket_message).collect();
    json!({
        "startedDateTime": started(&handshake.exchange.time),
        "time": ms,
        "request": request(&handshake.exchange.request, &handshake.exchange.url, 0),
        "response": response(handshake.exchange.response.as_ref(), 0),
        "cache": {},
        "timings": timings(ms),
        "_resourceType": "websocket",
        "_webSocketMessages": messages,
    })
}

fn websocket_message(m: &Message) -> Value {
    let kind = match m.dir {
        Direction::ClientToServer => "send",
        Direction::ServerToClient => "receive",
    };
    let seconds = m.time.timestamp_micros() as f64 / 1e6;
    let data = match (m.opcode, m.payload.as_text()) {
        (1, Some(text)) => text.to_owned(),
        _ => BASE64.encode(&m.payload.bytes),
    };
    json!({ "type": kind, "time": seconds, "opcode": m.opcode, "data": data })
}
