//! HAR 1.2 (<http://www.softwareishard.com/blog/har-12-spec/>) as Chrome DevTools imports it.
//!
//! Plain HTTP exchanges become ordinary entries. A WebSocket session becomes one entry for
//! its handshake, marked `_resourceType: "websocket"`, whose `_webSocketMessages` list each
//! message as Chrome itself exports them: `type` (`send` or `receive`), `time` (seconds
//! since the epoch, fractional), `opcode`, and `data` (text, or base64 for binary). Every
//! entry also says, under `_wstap`, which session it is and how the client came: `via`
//! (the mode), the `listener` it connected to, and the parent proxy's answer, if any.
//!
//! Where wstap intervened, `_webSocketMessages` lists what each receiver got, in the order
//! it went out: an edit in place of the message it replaced, with
//! `_wstap: {origin: "edited", original, held}`; messages wstap sent of its own with
//! `_wstap: {origin: "injected"}` (or `"resent"`); a dropped or lost message is not there
//! (nobody received it) but is listed under the entry's `_wstapUndelivered`, with its
//! fate. A message whose payload a bounded capture gave up says `_wstapPayloadDropped`.

use super::session::SessionDoc;
use crate::event::*;
use crate::Payload;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::collections::HashMap;

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
    let (messages, undelivered) = delivered_messages(doc);
    let mut entry = json!({
        "startedDateTime": started(&handshake.exchange.time),
        "time": ms,
        "request": request(&handshake.exchange.request, &handshake.exchange.url, 0),
        "response": response(handshake.exchange.response.as_ref(), 0),
        "cache": {},
        "timings": timings(ms),
        "_resourceType": "websocket",
        "_webSocketMessages": messages,
    });
    if !undelivered.is_empty() {
        entry["_wstapUndelivered"] = json!(undelivered);
    }
    entry
}

/// The messages each receiver got, in order, and those nobody did (dropped or lost),
/// from the messages as read, those wstap wrote, and what wstap did to them.
fn delivered_messages(doc: &SessionDoc) -> (Vec<Value>, Vec<Value>) {
    let last_frames = last_frames(doc);
    let decided: HashMap<(Direction, u64), &Intervention> = doc
        .interventions
        .iter()
        .filter(|i| i.held.is_some())
        .filter_map(|i| Some(((i.dir?, i.frame?), i)))
        .collect();
    let mut originals: HashMap<u64, Value> = HashMap::new();
    let mut delivered = Vec::new();
    let mut undelivered = Vec::new();
    for (m, last) in doc.messages.iter().zip(last_frames) {
        let mut entry = websocket_message(m.dir, m.time, m.opcode, &m.payload);
        if !m.origin.is_wire() {
            let mut about = json!({ "origin": m.origin.name() });
            if let Some(held) = m.held {
                about["held"] = json!(held);
                about["original"] = originals.remove(&held).unwrap_or(Value::Null);
            }
            entry["_wstap"] = about;
            delivered.push(entry);
            continue;
        }
        let Some(done) = last.and_then(|frame| decided.get(&(m.dir, frame))) else {
            delivered.push(entry);
            continue;
        };
        let held = done.held;
        match done.action {
            Action::Dropped | Action::Lost => {
                entry["_wstap"] = json!({ "fate": done.action.name(), "held": held });
                undelivered.push(entry);
            }
            // Its receiver got the edit, a message of its own further on.
            Action::Edited => {
                if let Some(held) = held {
                    originals.insert(held, entry["data"].take());
                }
            }
            action => {
                entry["_wstap"] = json!({ "fate": action.name(), "held": held });
                delivered.push(entry);
            }
        }
    }
    (delivered, undelivered)
}

/// The index of each message's last frame in its direction, in the order of
/// `doc.messages`: a control message is the next control frame of its direction, a data
/// message the next `frames` data frames. `None` where the frames do not say.
fn last_frames(doc: &SessionDoc) -> Vec<Option<u64>> {
    use std::collections::VecDeque;
    let mut frames: HashMap<(Direction, bool), VecDeque<u64>> = HashMap::new();
    for f in &doc.frames {
        frames
            .entry((f.dir, f.opcode >= 8))
            .or_default()
            .push_back(f.index);
    }
    doc.messages
        .iter()
        .map(|m| {
            if !m.origin.is_wire() {
                return None;
            }
            let queue = frames.get_mut(&(m.dir, m.opcode >= 8))?;
            let mut last = None;
            for _ in 0..m.frames.max(1) {
                last = queue.pop_front();
            }
            last
        })
        .collect()
}

fn websocket_message(dir: Direction, time: DateTime<Utc>, opcode: u8, payload: &Payload) -> Value {
    let kind = match dir {
        Direction::ClientToServer => "send",
        Direction::ServerToClient => "receive",
    };
    let seconds = time.timestamp_micros() as f64 / 1e6;
    let data = match (opcode, payload.as_text()) {
        (1, Some(text)) => text.to_owned(),
        _ => BASE64.encode(&payload.bytes),
    };
    let mut message = json!({ "type": kind, "time": seconds, "opcode": opcode, "data": data });
    if payload.dropped {
        // Not an empty message: a bounded capture gave its payload up.
        message["_wstapPayloadDropped"] = json!(true);
    }
    message
}
