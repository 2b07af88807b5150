//! What a session's messages say, decoded by its view, for exports: a `decoded` object on
//! each data message, the session's `view`, and its `calls` (each call paired with its
//! answer, latency figures per name, and the calls never answered).

use serde_json::{json, Value};
use wstap_trace::export::session::SessionDoc;
use wstap_views::calls::{latency_stats, Answered, Pairer};
use wstap_views::{SessionDecoder, View};

/// Adds to `out` (the session's JSON document) its view, each data message's `decoded`
/// object and the session's `calls`.
pub(crate) fn add_to_session(doc: &SessionDoc, view: Option<View>, out: &mut Value) {
    let mut decoder = SessionDecoder::new(view);
    let mut pairer = Pairer::new();
    let mut answered: Vec<Answered> = Vec::new();
    if let Some(Value::Array(messages)) = out.get_mut("messages") {
        for (n, (m, out)) in doc.messages.iter().zip(messages).enumerate() {
            if m.opcode != 1 && m.opcode != 2 {
                continue;
            }
            let decoded = decoder.decode(m.dir, &m.payload.bytes, m.opcode == 1);
            let time_us = m.time.timestamp_micros();
            for call in decoded.items.iter().filter_map(|item| item.call.as_ref()) {
                answered.extend(pairer.observe(call, m.dir, n as u64, time_us));
            }
            out["decoded"] = decoded.to_json();
        }
    }
    out["view"] = view.map_or(Value::Null, |v| Value::String(v.name().to_owned()));
    let calls = SessionCalls {
        view,
        answered,
        unanswered: pairer.unanswered(),
    };
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
        let view = self.session(id)?.and_then(|row| row.view);
        let mut calls = SessionCalls {
            view,
            ..SessionCalls::default()
        };
        if view.is_none() {
            return Ok(calls);
        }
        let mut decoder = SessionDecoder::new(view);
        let mut pairer = Pairer::new();
        let all = wstap_filter::Filter::default();
        let mut next = 0;
        loop {
            let page = self.messages(Some(id), &all, crate::Position::From(next), 1000)?;
            let Some(last) = page.last() else { break };
            next = last.seq + 1;
            for stored in &page {
                let m = &stored.message;
                if m.opcode != 1 && m.opcode != 2 {
                    continue;
                }
                let decoded = decoder.decode(m.dir, &m.payload.bytes, m.opcode == 1);
                let time_us = m.time.timestamp_micros();
                for call in decoded.items.iter().filter_map(|item| item.call.as_ref()) {
                    calls
                        .answered
                        .extend(pairer.observe(call, m.dir, stored.seq, time_us));
                }
            }
        }
        calls.unanswered = pairer.unanswered();
        Ok(calls)
    }
}
