//! Exports: the events of a capture or a trace as NDJSON (trace lines), per-session JSON
//! or HAR, for everything, one session, or what a filter selects.
//!
//! One implementation for every caller (`wstap export`, the inspector's export buttons):
//! the events come from an [`EventSource`], which a capture is and a trace file can be.
//! With a filter, an export keeps the frames and messages it matches, and the session
//! events (start, handshake, exchanges, end) of the sessions it selects: those whose own
//! facts match, and, when the filter is about records, those with a matching record.

use crate::facts::{note_final, note_later, Fates, FinalFacts, Selection};
use crate::{Capture, StoreError};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use wstap_filter::Filter;
use wstap_trace::export::pcapng::PcapngWriter;
use wstap_trace::export::{har::to_har, session::sessions, Redaction};
use wstap_trace::{Event, TraceHeader, TraceWriter};
use wstap_views::{Detector, ProtoSchema, View};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// NDJSON trace lines, as `--trace` writes them (docs/trace-format.md).
    Ndjson,
    /// One JSON document with every session's handshake, frames, messages, end and stats.
    Json,
    /// HAR 1.2, importable into Chrome DevTools.
    Har,
}

impl Format {
    /// The format named `name` (`ndjson`, `json`, `har`).
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "ndjson" => Some(Format::Ndjson),
            "json" => Some(Format::Json),
            "har" => Some(Format::Har),
            _ => None,
        }
    }

    /// The file name extension of an export in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Json => "json",
            Format::Har => "har",
        }
    }

    /// The media type of an export in this format.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Json | Format::Har => "application/json",
        }
    }
}

/// Why an export failed, beyond its source's own errors.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The session asked for is not in the source.
    #[error("no session {0}")]
    NoSuchSession(u64),
    /// An event could not be encoded.
    #[error("cannot encode the export: {0}")]
    Encode(String),
}

/// Where an export's events come from.
pub trait EventSource {
    /// What reading it can fail with; an export's own failures become one of these.
    type Error: From<ExportError>;

    /// Calls `each` with every event (of one session, or all), in the order they happened.
    fn for_each_event(
        &self,
        session: Option<u64>,
        each: &mut dyn FnMut(Event) -> Result<(), Self::Error>,
    ) -> Result<(), Self::Error>;

    /// The view a session's messages are read with, when the source knows it (a capture
    /// does); `None`: the export chooses it as wstap does while recording.
    fn view_of(&self, _session: u64) -> Option<Option<View>> {
        None
    }

    /// The views its writer read each session with, when the source is a capture (what
    /// its protocol filters read by): an in-memory filter reads the same.
    fn recorded_views(&self) -> Result<HashMap<u64, Option<View>>, Self::Error> {
        Ok(HashMap::new())
    }

    /// The schema the protobuf view names fields by, when the source keeps one.
    fn proto_schema(&self) -> Result<Option<ProtoSchema>, Self::Error> {
        Ok(None)
    }
}

impl From<ExportError> for StoreError {
    fn from(e: ExportError) -> Self {
        StoreError::Export(e)
    }
}

impl EventSource for Capture {
    type Error = StoreError;

    fn for_each_event(
        &self,
        session: Option<u64>,
        each: &mut dyn FnMut(Event) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        Capture::for_each_event(self, session, each)
    }

    fn view_of(&self, session: u64) -> Option<Option<View>> {
        self.session(session).ok().flatten().map(|row| row.view)
    }

    fn recorded_views(&self) -> Result<HashMap<u64, Option<View>>, StoreError> {
        Capture::recorded_views(self)
    }

    fn proto_schema(&self) -> Result<Option<ProtoSchema>, StoreError> {
        Capture::proto_schema(self)
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct Export<'a> {
    /// The format.
    pub format: Format,
    /// Only this session.
    pub session: Option<u64>,
    /// Only what this filter selects.
    pub filter: Option<&'a Filter>,
    /// Header values to hide.
    pub redaction: &'a Redaction,
    /// The first line of an NDJSON export.
    pub header: TraceHeader,
    /// The exporting program's version, for HAR's `creator`.
    pub version: &'a str,
    /// The schema protobuf messages are read with, in place of the source's.
    pub proto_schema: Option<&'a ProtoSchema>,
}

/// The export of `source` that `what` describes.
pub fn export<S: EventSource>(source: &S, what: &Export<'_>) -> Result<Vec<u8>, S::Error> {
    let mut filtered = match what.filter {
        Some(filter) if !filter.is_all() => {
            let known = Foreknowledge::read(source, what.session)?;
            let kept = selected_sessions(source, what.session, filter, &known)?;
            Some((known.selection(filter.clone()), kept))
        }
        _ => None,
    };
    let mut keep = |event: &Event| -> bool {
        let Some((selection, kept)) = filtered.as_mut() else {
            return true;
        };
        match event {
            Event::Frame(_) | Event::Message(_) => selection.event(event),
            other => {
                selection.session_event(other);
                other.session().is_some_and(|s| kept.contains(&s))
            }
        }
    };
    let encode = |e: wstap_trace::TraceError| ExportError::Encode(e.to_string());
    match what.format {
        Format::Ndjson => {
            let mut writer = TraceWriter::new(Vec::new(), &what.header).map_err(encode)?;
            source.for_each_event(what.session, &mut |mut event| {
                if keep(&event) {
                    what.redaction.apply_to(&mut event);
                    writer.write(&event).map_err(encode)?;
                }
                Ok(())
            })?;
            Ok(writer.into_inner().map_err(encode)?)
        }
        Format::Json | Format::Har => {
            let mut events = Vec::new();
            source.for_each_event(what.session, &mut |mut event| {
                if keep(&event) {
                    what.redaction.apply_to(&mut event);
                    events.push(event);
                }
                Ok(())
            })?;
            let docs = sessions(events, what.session);
            if let (Some(n), true) = (what.session, docs.is_empty()) {
                return Err(ExportError::NoSuchSession(n).into());
            }
            let value: Value = match what.format {
                Format::Har => to_har(&docs, what.version),
                _ => {
                    let mut value =
                        json!({ "format": "wstap-sessions", "version": 1, "sessions": docs });
                    if let Some(Value::Array(out)) = value.get_mut("sessions") {
                        let schema = match what.proto_schema {
                            Some(schema) => Some(schema.clone()),
                            None => source.proto_schema()?,
                        };
                        for (doc, out) in docs.iter().zip(out) {
                            let view = source.view_of(doc.session).unwrap_or_else(|| view_of(doc));
                            crate::decoded::add_to_session(doc, view, schema.as_ref(), out);
                        }
                    }
                    value
                }
            };
            let mut text = serde_json::to_string_pretty(&value)
                .map_err(|e| ExportError::Encode(e.to_string()))?;
            text.push('\n');
            Ok(text.into_bytes())
        }
    }
}

/// Writes the pcapng export of `source` (one session, or the sessions `filter` selects,
/// each whole: a TCP stream needs all its bytes) to `out`, event by event, the heads'
/// header values `redaction` names hidden; returns how many packets it wrote. See
/// `wstap_trace::export::pcapng`.
pub fn export_pcapng<S: EventSource, W: std::io::Write>(
    source: &S,
    session: Option<u64>,
    filter: Option<&Filter>,
    redaction: &Redaction,
    application: &str,
    out: W,
) -> Result<(W, u64), S::Error> {
    // What breakpoints did comes after the frames: read it first.
    let known = Foreknowledge::read(source, session)?;
    let kept = match filter {
        Some(filter) if !filter.is_all() => {
            Some(selected_sessions(source, session, filter, &known)?)
        }
        _ => None,
    };
    let write_failed = |e: std::io::Error| ExportError::Encode(e.to_string());
    let mut writer = PcapngWriter::new(out, application).map_err(write_failed)?;
    for ((session, c2s, frame), later) in &known.fates {
        use wstap_filter::Fate;
        if matches!(later.fate, Some(Fate::Dropped | Fate::Edited | Fate::Lost)) {
            let dir = if *c2s {
                wstap_wire::Direction::ClientToServer
            } else {
                wstap_wire::Direction::ServerToClient
            };
            writer.not_forwarded(*session, dir, *frame);
        }
    }
    let mut found = false;
    source.for_each_event(session, &mut |mut event| {
        let Some(id) = event.session() else {
            return Ok(());
        };
        if kept.as_ref().is_some_and(|kept| !kept.contains(&id)) {
            return Ok(());
        }
        found = true;
        redaction.apply_to(&mut event);
        writer.write(&event).map_err(write_failed)?;
        Ok(())
    })?;
    if let (Some(n), false) = (session, found) {
        return Err(ExportError::NoSuchSession(n).into());
    }
    let packets = writer.packets();
    let out = writer.finish().map_err(write_failed)?;
    Ok((out, packets))
}

/// The view wstap would choose for a session: from its handshake, then its first
/// messages.
fn view_of(doc: &wstap_trace::export::session::SessionDoc) -> Option<View> {
    let (subprotocol, url) = match &doc.handshake {
        Some(h) => (h.subprotocol.as_deref(), h.exchange.url.as_str()),
        None => (None, ""),
    };
    let mut detector = Detector::from_handshake(subprotocol, url);
    // As the writer does: a peer's data messages (not what wstap wrote).
    let read = |m: &&wstap_trace::Message| m.origin.is_wire() && (m.opcode == 1 || m.opcode == 2);
    for m in doc.messages.iter().filter(read) {
        if detector.is_settled() {
            break;
        }
        detector.observe(&m.payload.bytes, m.opcode == 1);
    }
    detector.view()
}

/// The sessions a filter selects (by their own facts, or by a matching record), read
/// with what a first reading of the source (`known`) learnt.
fn selected_sessions<S: EventSource>(
    source: &S,
    session: Option<u64>,
    filter: &Filter,
    known: &Foreknowledge,
) -> Result<HashSet<u64>, S::Error> {
    let mut selection = known.selection(filter.clone());
    let mut verdicts: HashMap<u64, Option<bool>> = HashMap::new();
    let mut with_records: HashSet<u64> = HashSet::new();
    source.for_each_event(session, &mut |event| {
        match &event {
            Event::Frame(_) | Event::Message(_) => {
                if selection.event(&event) {
                    with_records.extend(event.session());
                }
            }
            other => {
                let verdict = selection.session_event(other);
                if let Some(id) = other.session() {
                    verdicts.insert(id, verdict);
                }
            }
        }
        Ok(())
    })?;
    let kept = verdicts
        .into_iter()
        .filter(|(id, verdict)| {
            *verdict == Some(true) || (verdict.is_none() && with_records.contains(id))
        })
        .map(|(id, _)| id)
        .chain(with_records.iter().copied())
        .collect();
    Ok(kept)
}

/// What a first reading of a source learns that its events only say later: what became
/// of each held message and the tags rules gave it, each session's facts at its end, and
/// (for a capture) the views its sessions were recorded with that their own detection
/// would not reach. A filter that knows it selects what the capture's SQL selects.
#[derive(Debug, Default)]
pub struct Foreknowledge {
    fates: Fates,
    finals: std::sync::Arc<FinalFacts>,
    views: HashMap<u64, Option<View>>,
}

impl Foreknowledge {
    /// Reads `session`'s events of `source` (or all of them) once.
    pub fn read<S: EventSource>(source: &S, session: Option<u64>) -> Result<Self, S::Error> {
        let recorded = source.recorded_views()?;
        let mut fates = Fates::new();
        let mut finals = FinalFacts::new();
        // The view each recorded session's handshake and first messages choose, as the
        // writer's detection reads them.
        let mut detected: HashMap<u64, Detector> = HashMap::new();
        source.for_each_event(session, &mut |event| {
            note_later(&mut fates, &event);
            note_final(&mut finals, &event);
            match &event {
                Event::Handshake(h) if recorded.contains_key(&h.exchange.session) => {
                    let detector =
                        Detector::from_handshake(h.subprotocol.as_deref(), &h.exchange.url);
                    detected.insert(h.exchange.session, detector);
                }
                Event::Message(m) if m.origin.is_wire() && matches!(m.opcode, 1 | 2) => {
                    if let Some(detector) = detected.get_mut(&m.session) {
                        detector.observe(&m.payload.bytes, m.opcode == 1);
                    }
                }
                _ => {}
            }
            Ok(())
        })?;
        // A view detection reaches is read as the writer read it: chosen at the handshake,
        // or at the message that decided it. Only one it does not reach (a `--view`
        // rule's) is the session's from its first message. (A rule's view that detection
        // also reaches, from a later message, reads as detected: the capture does not say
        // which it was.) No view recorded is no rule's: detection reads such a session,
        // as it may have decided since the views were read, in a capture being written.
        let views = recorded
            .into_iter()
            .filter(|(id, view)| {
                view.is_some() && detected.get(id).map(Detector::view) != Some(*view)
            })
            .collect();
        Ok(Foreknowledge {
            fates,
            finals: std::sync::Arc::new(finals),
            views,
        })
    }

    /// A selection by `filter` that knows all this.
    pub fn selection(&self, filter: Filter) -> Selection {
        Selection::new(filter)
            .with_fates(self.fates.clone())
            .with_final_facts(std::sync::Arc::clone(&self.finals))
            .with_views(self.views.clone())
    }
}
