//! Per-session JSON: each session's start, HTTP exchanges, handshake, frames, messages,
//! end and statistics gathered in one document.

use crate::event::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Totals for one session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Frames per direction.
    pub frames: PerDirection,
    /// Messages per direction.
    pub messages: PerDirection,
    /// Payload bytes declared in frame headers, per direction.
    pub payload_bytes: PerDirection,
    /// Frames with at least one violation.
    pub frames_with_violations: u64,
}

/// Everything recorded about one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionDoc {
    /// Session number.
    pub session: u64,
    /// How it began.
    pub start: Option<SessionStart>,
    /// Plain HTTP exchanges, in order.
    pub http: Vec<HttpExchange>,
    /// The WebSocket handshake, if any.
    pub handshake: Option<Handshake>,
    /// Frames in the order recorded.
    pub frames: Vec<Frame>,
    /// Messages in the order recorded.
    pub messages: Vec<Message>,
    /// What wstap did to it (breakpoints, decisions, injections), in order; absent when
    /// nothing.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub interventions: Vec<Intervention>,
    /// How it ended (absent when the trace stops first).
    pub end: Option<SessionEnd>,
    /// Totals.
    pub stats: Stats,
}

impl SessionDoc {
    fn new(session: u64) -> Self {
        SessionDoc {
            session,
            start: None,
            http: Vec::new(),
            handshake: None,
            frames: Vec::new(),
            messages: Vec::new(),
            interventions: Vec::new(),
            end: None,
            stats: Stats::default(),
        }
    }

    fn add(&mut self, event: Event) {
        match event {
            Event::SessionStart(e) => self.start = Some(e),
            Event::Handshake(e) => self.handshake = Some(e),
            Event::Http(e) => self.http.push(e),
            Event::Frame(f) => {
                let (count, bytes) = match f.dir {
                    Direction::ClientToServer => (
                        &mut self.stats.frames.c2s,
                        &mut self.stats.payload_bytes.c2s,
                    ),
                    Direction::ServerToClient => (
                        &mut self.stats.frames.s2c,
                        &mut self.stats.payload_bytes.s2c,
                    ),
                };
                *count += 1;
                *bytes += f.payload_len;
                if !f.violations.is_empty() {
                    self.stats.frames_with_violations += 1;
                }
                self.frames.push(f);
            }
            Event::Message(m) => {
                match m.dir {
                    Direction::ClientToServer => self.stats.messages.c2s += 1,
                    Direction::ServerToClient => self.stats.messages.s2c += 1,
                }
                self.messages.push(m);
            }
            Event::SessionEnd(e) => self.end = Some(e),
            Event::Intervention(e) => self.interventions.push(e),
            Event::Trace(_) | Event::Notice(_) => {}
        }
    }
}

/// Groups events into sessions, ordered by session number; `only` keeps one session.
pub fn sessions(events: impl IntoIterator<Item = Event>, only: Option<u64>) -> Vec<SessionDoc> {
    let mut docs: BTreeMap<u64, SessionDoc> = BTreeMap::new();
    for event in events {
        let Some(id) = event.session() else { continue };
        if only.is_some_and(|want| want != id) {
            continue;
        }
        docs.entry(id)
            .or_insert_with(|| SessionDoc::new(id))
            .add(event);
    }
    docs.into_values().collect()
}
