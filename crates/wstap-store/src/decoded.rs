//! What a session's messages say, decoded by its view: for exports, a `decoded` object on
//! each data message, the session's `view`, and its `calls` (each call paired with its
//! answer, latency figures per name, and the calls never answered); for `wstap sessions
//! --stats` and the inspector, [`crate::Capture::calls`].

use serde_json::{json, Value};
use wstap_trace::export::session::SessionDoc;
use wstap_views::calls::{latency_stats, Answered, Pairer};
use wstap_views::{ProtoSchema, SessionDecoder, View};

/// A session's messages read in order: each decoded, its calls paired with their answers.
struct Reading {
    decoder: SessionDecoder,
    pairer: Pairer,
    answered: Vec<Answered>,
}

impl Reading {
    fn new(view: Option<View>, schema: Option<&ProtoSchema>, url: Option<&str>) -> Reading {
        Reading {
            decoder: SessionDecoder::new(view)
                .with_schema(schema.cloned())
                .with_url(url.unwrap_or_default()),
            pairer: Pairer::new(),
            answered: Vec::new(),
        }
    }

    /// Message `m`, number `n` of its session, decoded (a data message only).
    fn read(&mut self, m: &wstap_trace::Message, n: u64) -> Option<wstap_views::Decoded> {
        if m.opcode != 1 && m.opcode != 2 {
            return None;
        }
        let decoded = self.decoder.decode(m.dir, &m.payload.bytes, m.opcode == 1);
        if m.payload.truncated || m.payload.dropped {
            self.decoder.lose(m.dir);
        }
        let time_us = m.time.timestamp_micros();
        for call in decoded.items.iter().filter_map(|item| item.call.as_ref()) {
            self.answered
                .extend(self.pairer.observe(call, m.dir, n, time_us));
        }
        Some(decoded)
    }

    fn calls(self, view: Option<View>) -> SessionCalls {
        SessionCalls {
            view,
            unanswered: self.pairer.unanswered(),
            answered: self.answered,
        }
    }
}

/// Adds to `out` (the session's JSON document) its view, each data message's `decoded`
/// object (protobuf read with `schema`, when there is one) and the session's `calls`.
pub(crate) fn add_to_session(
    doc: &SessionDoc,
    view: Option<View>,
    schema: Option<&ProtoSchema>,
    out: &mut Value,
) {
    let url = doc.handshake.as_ref().map(|h| h.exchange.url.as_str());
    let mut reading = Reading::new(view, schema, url);
    if let Some(Value::Array(messages)) = out.get_mut("messages") {
        for (n, (m, out)) in doc.messages.iter().zip(messages).enumerate() {
            if let Some(decoded) = reading.read(m, n as u64) {
                out["decoded"] = decoded.to_json();
            }
        }
    }
    out["view"] = view.map_or(Value::Null, |v| Value::String(v.name().to_owned()));
    let calls = reading.calls(view);
    if !calls.answered.is_empty() || !calls.unanswered.is_empty() {
        out["calls"] = calls.to_json();
    }
}

/// A session's calls, each paired with its answer, as its stored messages tell.
#[derive(Debug, Clone, Default)]
pub struct SessionCalls {
    /// The view the messages were read with.
    pub view: Option<View>,
    /// The calls answered, in the order of their answers (`call` and `answer` are the
    /// messages' numbers in the session).
    pub answered: Vec<Answered>,
    /// The calls never answered, oldest first.
    pub unanswered: Vec<wstap_views::calls::Unanswered>,
}

impl SessionCalls {
    /// As JSON, as exports have it.
    pub fn to_json(&self) -> Value {
        let stats: Vec<Value> = latency_stats(&self.answered)
            .into_iter()
            .map(|s| {
                json!({ "name": s.name, "count": s.count, "p50_us": s.p50_us,
                        "p99_us": s.p99_us, "max_us": s.max_us })
            })
            .collect();
        let pairs: Vec<Value> = self
            .answered
            .iter()
            .map(|a| json!({ "name": a.name, "call": a.call, "answer": a.answer, "latency_us": a.latency_us }))
            .collect();
        let unanswered: Vec<Value> = self
            .unanswered
            .iter()
            .map(|u| json!({ "name": u.name, "call": u.call }))
            .collect();
        json!({ "by_name": stats, "answered": pairs, "unanswered": unanswered })
    }
}

impl crate::Capture {
    /// Session `id`'s calls and answers: its messages read in order with its view.
    pub fn calls(&self, id: u64) -> Result<SessionCalls, crate::StoreError> {
        let Some(row) = self.session(id)? else {
            return Ok(SessionCalls::default());
        };
        let view = row.view;
        if view.is_none() {
            return Ok(SessionCalls::default());
        }
        // Calls are numbered by protocols, never by protobuf fields: no schema needed.
        let mut reading = Reading::new(view, None, row.url.as_deref());
        let all = wstap_filter::Filter::default();
        let mut next = 0;
        loop {
            let page = self.messages(Some(id), &all, crate::Position::From(next), 1000)?;
            let Some(last) = page.last() else { break };
            next = last.seq + 1;
            for stored in &page {
                reading.read(&stored.message, stored.seq);
            }
        }
        Ok(reading.calls(view))
    }
}
