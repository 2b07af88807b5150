//! The console's payload views: per live session, the view it is read with (a `--view`
//! rule's, else what its handshake or first messages say) and its decoder, so each data
//! message gets its one-line summary (`SIGNALR invocation SendMessage("John", "hi") id=3`).

use std::collections::HashMap;
use wstap_filter::Filter;
use wstap_store::facts::{handshake_view, SessionSummary};
use wstap_trace::view::MessageView;
use wstap_trace::Event;
use wstap_views::{Decoded, Detector, ProtoSchema, SessionDecoder, View};
use wstap_wire::Opcode;

/// `--view` rules: the first whose session filter selects a session gives its view.
pub type ViewRules = Vec<(Filter, View)>;

/// How the console reads payloads: `--view` rules, and the schema the protobuf view
/// names fields by (`--proto-descriptor`).
#[derive(Debug, Clone, Default)]
pub struct ViewSettings {
    /// `--view` rules.
    pub rules: ViewRules,
    /// `--proto-descriptor` and `--proto-type`.
    pub schema: Option<ProtoSchema>,
    /// Views already chosen, by session (a capture's), which rules and detection leave be.
    pub chosen: HashMap<u64, Option<View>>,
}

/// One session's view and decoder.
struct Reading {
    summary: Option<SessionSummary>,
    detector: Detector,
    decoder: SessionDecoder,
    /// The handshake's URL, which says how some views read (Engine.IO's version).
    url: String,
}

impl Reading {
    /// Decodes `m` in its turn; a message cut short ends the stream it was part of.
    fn read(&mut self, m: &MessageView<'_>) -> Decoded {
        let decoded = self
            .decoder
            .decode(m.dir, m.data.data, m.opcode == Opcode::Text);
        if m.data.truncated() {
            self.decoder.lose(m.dir);
        }
        decoded
    }
}

/// The views of the sessions the console is showing.
#[derive(Default)]
pub struct SessionViews {
    settings: ViewSettings,
    sessions: HashMap<u64, Reading>,
}

impl SessionViews {
    /// Views chosen by `settings.rules` first.
    pub fn new(settings: ViewSettings) -> SessionViews {
        SessionViews {
            settings,
            sessions: HashMap::new(),
        }
    }

    /// A decoder reading with `view` the session at `url`.
    fn decoder(schema: &Option<ProtoSchema>, view: Option<View>, url: &str) -> SessionDecoder {
        SessionDecoder::new(view)
            .with_schema(schema.clone())
            .with_url(url)
    }

    /// Takes in a session-level event: a start and a handshake choose the view, an end
    /// forgets the session.
    pub fn event(&mut self, event: &Event) {
        match event {
            Event::SessionStart(start) if !self.settings.rules.is_empty() => {
                let mut summary = SessionSummary::new(start.session);
                summary.apply(event);
                self.sessions.insert(
                    start.session,
                    Reading {
                        summary: Some(summary),
                        detector: Detector::default(),
                        decoder: SessionDecoder::new(None),
                        url: String::new(),
                    },
                );
            }
            Event::Handshake(h) => {
                let id = h.exchange.session;
                let summary = self
                    .sessions
                    .get_mut(&id)
                    .and_then(|reading| reading.summary.take());
                let detector = match self.settings.chosen.get(&id) {
                    Some(view) => Detector::chosen(*view),
                    None => handshake_view(&self.settings.rules, summary, h),
                };
                let url = h.exchange.url.clone();
                let decoder = Self::decoder(&self.settings.schema, detector.view(), &url);
                self.sessions.insert(
                    id,
                    Reading {
                        summary: None,
                        detector,
                        decoder,
                        url,
                    },
                );
            }
            Event::SessionEnd(end) => {
                self.sessions.remove(&end.session);
            }
            _ => {}
        }
    }

    /// A peer's data message, decoded, when its session has a view.
    pub fn decode(&mut self, m: &MessageView<'_>) -> Option<Decoded> {
        Some(self.reading(m)?.read(m))
    }

    /// A peer's data message the console does not show: it may still decide its session's
    /// view, and a view that carries what one message leaves for the next (MQTT's stream,
    /// Socket.IO's attachments) reads it, so the messages shown decode as among all.
    pub fn pass_over(&mut self, m: &MessageView<'_>) {
        let Some(reading) = self.reading(m) else {
            return;
        };
        if matches!(reading.decoder.view(), Some(View::Mqtt | View::SocketIo)) {
            reading.read(m);
        }
    }

    /// The reading of a peer's data message's session, its view decided when this
    /// message decides it; `None` when the message or its session has none.
    fn reading(&mut self, m: &MessageView<'_>) -> Option<&mut Reading> {
        if !m.is_data() || !m.origin.is_wire() || m.data.dropped {
            return None;
        }
        let text = m.opcode == Opcode::Text;
        let reading = self.sessions.get_mut(&m.session)?;
        if !reading.detector.is_settled() && reading.detector.observe(m.data.data, text).is_some() {
            reading.decoder =
                Self::decoder(&self.settings.schema, reading.detector.view(), &reading.url);
        }
        reading.decoder.view()?;
        Some(reading)
    }
}
