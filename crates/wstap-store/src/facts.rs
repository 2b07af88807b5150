//! What filters know of sessions and records, gathered from events as they pass: the
//! live console builds them this way, and so do the tests that hold the store's SQL to the
//! predicate. The store's columns are made by the same functions ([`split_target`],
//! [`path_of`], [`extension_names`]), so both sides see the same facts.

use wstap_filter::{Origin, RecordFacts, RecordKind, SessionFacts, State};
use wstap_trace::view::{Bytes, FrameView, MessageView};
use wstap_trace::{Event, Exchange, MessageOrigin, Outcome};
use wstap_wire::Opcode;

/// A session's facts, kept up to date from its events.
#[derive(Debug, Clone, Default)]
pub struct SessionSummary {
    /// The session number.
    pub id: u64,
    /// Upstream host.
    pub host: String,
    /// Upstream port.
    pub port: u16,
    /// URL of the handshake or first exchange.
    pub url: String,
    /// Its path and query.
    pub path: String,
    /// The client's address.
    pub client: String,
    /// The subprotocol chosen.
    pub subprotocol: Option<String>,
    /// `" name name "`, lower case.
    pub extension_names: String,
    /// Whether wstap terminated TLS.
    pub tls: bool,
    /// The HTTP status of the handshake or first exchange.
    pub status: Option<u16>,
    /// How it ended, once it did.
    pub outcome: Option<Outcome>,
    /// What it turned out to be, once it ended.
    pub kind: Option<&'static str>,
    /// The first close code.
    pub close: Option<u16>,
    /// When it began, µs.
    pub started_us: i64,
    /// Frames with violations plus handshake issues.
    pub violations: u64,
    seen_url: bool,
}

impl SessionSummary {
    /// An empty summary for session `id`.
    pub fn new(id: u64) -> Self {
        SessionSummary {
            id,
            host: "-".into(),
            ..SessionSummary::default()
        }
    }

    /// The store's name for an outcome.
    pub fn outcome_name(outcome: Outcome) -> &'static str {
        match outcome {
            Outcome::Closed => "closed",
            Outcome::Aborted => "aborted",
            Outcome::Error => "error",
        }
    }

    /// Takes the URL and status of a handshake or an HTTP exchange.
    fn learn_exchange(&mut self, exchange: &Exchange) {
        self.url = exchange.url.clone();
        self.path = path_of(&exchange.url).to_owned();
        self.status = exchange.response.as_ref().map(|r| r.status);
    }

    /// Takes in a session-level event of this session.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::SessionStart(s) => {
                let (host, port) = split_target(&s.target);
                self.host = host.to_owned();
                self.port = port;
                self.client = s.client.clone();
                self.tls = s.tls;
                self.started_us = s.time.timestamp_micros();
            }
            Event::Handshake(h) => {
                self.learn_exchange(&h.exchange);
                self.subprotocol = h.subprotocol.clone();
                self.extension_names = extension_names(&h.extensions);
                self.violations += h.issues.len() as u64;
                self.seen_url = true;
            }
            Event::Http(h) if !self.seen_url => {
                self.learn_exchange(&h.exchange);
                self.seen_url = true;
            }
            Event::SessionEnd(e) => {
                self.outcome = Some(e.outcome);
                self.kind = Some(e.kind.name());
                self.close = e.close.as_ref().and_then(|c| c.code);
            }
            _ => {}
        }
    }

    /// Counts a frame's violations.
    pub fn count_frame(&mut self, has_violations: bool) {
        if has_violations {
            self.violations += 1;
        }
    }

    /// The facts, for a filter.
    pub fn facts(&self) -> SessionFacts<'_> {
        SessionFacts {
            id: self.id,
            host: &self.host,
            port: self.port,
            url: &self.url,
            path: &self.path,
            client: &self.client,
            subprotocol: self.subprotocol.as_deref(),
            extension_names: &self.extension_names,
            tls: self.tls,
            status: self.status,
            state: match self.outcome {
                None => State::Open,
                Some(Outcome::Closed) => State::Closed,
                Some(Outcome::Aborted) => State::Aborted,
                Some(Outcome::Error) => State::Error,
            },
            kind: self.kind,
            close: self.close,
            started_us: self.started_us,
            violations: self.violations,
        }
    }
}

/// How a session's view is chosen once its handshake is in: the first of `rules`
/// (`--view FILTER=VIEW`) whose filter selects the session (`summary`: its facts so far,
/// kept only when there are rules), else what the handshake's subprotocol or URL says,
/// else what its first messages will (the detector goes on).
pub fn handshake_view(
    rules: &[(wstap_filter::Filter, wstap_views::View)],
    summary: Option<SessionSummary>,
    h: &wstap_trace::Handshake,
) -> wstap_views::Detector {
    let chosen = summary.and_then(|mut summary| {
        summary.apply(&Event::Handshake(h.clone()));
        let facts = summary.facts();
        rules
            .iter()
            .find(|(filter, _)| filter.session_verdict(&facts) == Some(true))
            .map(|(_, view)| *view)
    });
    match chosen {
        Some(view) => wstap_views::Detector::chosen(Some(view)),
        None => wstap_views::Detector::from_handshake(h.subprotocol.as_deref(), &h.exchange.url),
    }
}

/// A frame's facts; `codes` are its violations' codes (`view.violations.codes()`).
pub fn frame_facts<'a>(f: &FrameView<'a>, codes: &'a [&'a str]) -> RecordFacts<'a> {
    let h = &f.header;
    RecordFacts {
        kind: RecordKind::Frame,
        dir: f.dir,
        opcode: h.opcode().bits(),
        flags: h.first_byte(),
        masked: h.mask().is_some(),
        len: h.payload_len(),
        frames: 1,
        compressed: f.inflated.is_some(),
        close: f.close.and_then(|(code, _)| code),
        time_us: f.time_us,
        violations: codes,
        payload: f.data().data,
        stream: None,
        fate: None,
        tags: "",
        origin: Origin::Wire,
        dropped: f.data().dropped,
    }
}

/// A message's facts, given its first frame's flags byte and mask; `codes` are its
/// violations' codes.
pub fn message_facts<'a>(
    m: &MessageView<'a>,
    first_flags: u8,
    first_masked: bool,
    codes: &'a [&'a str],
) -> RecordFacts<'a> {
    RecordFacts {
        kind: RecordKind::Message,
        dir: m.dir,
        opcode: m.opcode.bits(),
        flags: first_flags,
        masked: first_masked,
        len: m.data.total,
        frames: m.frames,
        compressed: m.compressed,
        close: m.close_code(),
        time_us: m.time_us,
        violations: codes,
        payload: m.data.data,
        stream: None,
        fate: None,
        tags: "",
        origin: origin(m.origin),
        dropped: m.data.dropped,
    }
}

/// An origin as filters name it.
fn origin(origin: MessageOrigin) -> Origin {
    match origin {
        MessageOrigin::Wire => Origin::Wire,
        MessageOrigin::Edited => Origin::Edited,
        MessageOrigin::Injected => Origin::Injected,
        MessageOrigin::Resent => Origin::Resent,
    }
}

/// `host:port` (or `[v6]:port`) as host and port; anything else as itself, port 0.
pub fn split_target(target: &str) -> (&str, u16) {
    if let Some(rest) = target.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once("]:") {
            return (host, port.parse().unwrap_or(0));
        }
    }
    match target.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(port) => (host, port),
            Err(_) => (target, 0),
        },
        _ => (target, 0),
    }
}

pub use wstap_filter::{extension_names, path_of};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_urls_and_extensions() {
        assert_eq!(split_target("example.com:443"), ("example.com", 443));
        assert_eq!(split_target("[::1]:8080"), ("::1", 8080));
        assert_eq!(split_target("-"), ("-", 0));
        assert_eq!(path_of("wss://h:1/chat?x=1"), "/chat?x=1");
        assert_eq!(path_of("http://h"), "/");
        assert_eq!(path_of("http://h?q"), "/");
        assert_eq!(path_of(""), "");
        assert_eq!(
            extension_names(&["permessage-deflate; client_max_window_bits=12".into()]),
            " permessage-deflate "
        );
    }
}

/// What interventions said of records after them, by session, direction (`true`: client
/// to server) and the index of the message's last frame: a held message's fate, and the
/// tags rules gave it.
pub type Fates = std::collections::HashMap<(u64, bool, u64), Later>;

/// What interventions said of one message after it went by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Later {
    /// What became of it, when a breakpoint held it (the latest word).
    pub fate: Option<wstap_filter::Fate>,
    /// The tags rules gave it, each between spaces (`" slow vip "`), or empty.
    pub tags: String,
}

/// Notes in `fates` what `event` says of a message, if it is an intervention that says
/// something: a held message's fate, or a tag.
pub fn note_later(fates: &mut Fates, event: &Event) {
    let Event::Intervention(i) = event else {
        return;
    };
    let (Some(dir), Some(frame)) = (i.dir, i.frame) else {
        return;
    };
    let key = (
        i.session,
        dir == wstap_wire::Direction::ClientToServer,
        frame,
    );
    if i.action == wstap_trace::Action::Tagged {
        if let Some(tag) = &i.reason {
            let later = fates.entry(key).or_default();
            if later.tags.is_empty() {
                later.tags.push(' ');
            }
            later.tags.push_str(tag);
            later.tags.push(' ');
        }
        return;
    }
    if i.held.is_none() {
        return;
    }
    if let Some(fate) = wstap_filter::Fate::ALL
        .into_iter()
        .find(|f| f.name() == i.action.name())
    {
        fates.entry(key).or_default().fate = Some(fate);
    }
}

/// Each session's facts as its last event leaves them: what a reader that goes through
/// its source twice knows before it selects (and what the capture's SQL reads).
pub type FinalFacts = std::collections::HashMap<u64, SessionSummary>;

/// Takes `event` into `finals` (see [`FinalFacts`]).
pub fn note_final(finals: &mut FinalFacts, event: &Event) {
    let Some(id) = event.session() else {
        return;
    };
    let summary = finals.entry(id).or_insert_with(|| SessionSummary::new(id));
    match event {
        Event::Frame(f) => summary.count_frame(!f.violations.is_empty()),
        other => summary.apply(other),
    }
}

/// A filter applied to a stream of events as they pass (the live console, exports of a
/// trace): records are kept when they match; a session's own events are shown unless the
/// session's facts already rule it out. A record's fate comes after it, so a live stream
/// knows none; an export that read the interventions first passes them in
/// ([`Selection::with_fates`]).
#[derive(Debug)]
pub struct Selection {
    filter: wstap_filter::Filter,
    sessions: std::collections::HashMap<u64, SessionSummary>,
    /// The first frame (flags byte, masked) of the message being read, per session and
    /// direction, and the last control frame: what message facts take from frames.
    firsts: std::collections::HashMap<(u64, bool), (u8, bool)>,
    controls: std::collections::HashMap<(u64, bool), (u8, bool)>,
    /// The index of the last data frame (`false`) and control frame (`true`) per session
    /// and direction: the last frame of a message that ends now.
    last_frames: std::collections::HashMap<(u64, bool, bool), u64>,
    fates: Fates,
    /// Each session's view, and the packets a byte-stream view's messages end (what
    /// protocol fields read), as the capture writer keeps them.
    views: std::collections::HashMap<u64, wstap_views::ViewTracker>,
    /// What the view read of a frame that is a whole message, for that message (which
    /// comes right after it), per session and direction.
    whole: std::collections::HashMap<(u64, bool), Option<Vec<u8>>>,
    /// The views a capture recorded, by session: what its writer read the messages with.
    recorded: std::collections::HashMap<u64, Option<wstap_views::View>>,
    /// `--view` rules, for a live stream: how its capture writer chooses a session's view.
    view_rules: Vec<(wstap_filter::Filter, wstap_views::View)>,
    /// What the rules judge a session by at its handshake, as the writer keeps it: the
    /// facts of its start, for a session whose start went by (used once).
    rules_pending: std::collections::HashMap<u64, SessionSummary>,
    /// The sessions' facts at their end, when the reader knows them: records are judged
    /// with those rather than with what the stream has told so far.
    finals: std::sync::Arc<FinalFacts>,
}

impl Selection {
    /// A selection by `filter`.
    pub fn new(filter: wstap_filter::Filter) -> Self {
        Selection {
            filter,
            sessions: std::collections::HashMap::new(),
            firsts: std::collections::HashMap::new(),
            controls: std::collections::HashMap::new(),
            last_frames: std::collections::HashMap::new(),
            fates: Fates::new(),
            views: std::collections::HashMap::new(),
            whole: std::collections::HashMap::new(),
            recorded: std::collections::HashMap::new(),
            view_rules: Vec::new(),
            rules_pending: std::collections::HashMap::new(),
            finals: std::sync::Arc::default(),
        }
    }

    /// The same selection, reading each session in `recorded` with that view from its
    /// first message: a capture's views that its sessions' handshakes and first messages
    /// would not have chosen (a `--view` rule's; [`crate::export::Foreknowledge`] finds
    /// them), as the capture writer read them.
    pub fn with_views(
        mut self,
        recorded: std::collections::HashMap<u64, Option<wstap_views::View>>,
    ) -> Self {
        self.recorded = recorded;
        self
    }

    /// The same selection, reading a live stream's sessions with the views `rules`
    /// (`--view FILTER=VIEW`) give them, as the capture writer beside it does.
    pub fn with_view_rules(
        mut self,
        rules: Vec<(wstap_filter::Filter, wstap_views::View)>,
    ) -> Self {
        self.view_rules = rules;
        self
    }

    /// The same selection, knowing each session's facts at its end (a session field
    /// learnt late, such as `kind` or `close`, then selects the session's records too).
    pub fn with_final_facts(mut self, finals: std::sync::Arc<FinalFacts>) -> Self {
        self.finals = finals;
        self
    }

    /// The facts a record of session `id` is judged with: its final ones when known, else
    /// the stream's so far (which `summary(id)` made sure exist).
    fn session_facts(&self, id: u64) -> SessionFacts<'_> {
        self.finals
            .get(&id)
            .unwrap_or_else(|| &self.sessions[&id])
            .facts()
    }

    /// The same selection, knowing what became of the held messages.
    pub fn with_fates(mut self, fates: Fates) -> Self {
        self.fates = fates;
        self
    }

    /// The filter.
    pub fn filter(&self) -> &wstap_filter::Filter {
        &self.filter
    }

    fn summary(&mut self, id: u64) -> &mut SessionSummary {
        self.sessions
            .entry(id)
            .or_insert_with(|| SessionSummary::new(id))
    }

    /// Takes in a session-level event and returns what the session's facts say of the
    /// session now: `Some(true)` or `Some(false)` when they decide, `None` when its
    /// records would. Show the event unless it is `Some(false)`. A session's end forgets
    /// the session, after deciding.
    pub fn session_event(&mut self, event: &Event) -> Option<bool> {
        let Some(id) = event.session() else {
            return Some(true);
        };
        if let (Event::SessionStart(_), false) = (event, self.view_rules.is_empty()) {
            let mut summary = SessionSummary::new(id);
            summary.apply(event);
            self.rules_pending.insert(id, summary);
        }
        if let Event::Handshake(h) = event {
            let detector = self.handshake_detector(id, h);
            self.views
                .insert(id, wstap_views::ViewTracker::new(detector));
        }
        self.summary(id).apply(event);
        let verdict = self.filter.session_verdict(&self.session_facts(id));
        if let Event::SessionEnd(_) = event {
            self.forget(id);
        }
        verdict
    }

    /// How session `id` is read from its handshake `h` on, as the capture writer read or
    /// reads it: with the view recorded for it when that is known, else as the writer
    /// chooses one (a `--view` rule judging the facts of the session's start, then the
    /// handshake, then the first messages).
    fn handshake_detector(&mut self, id: u64, h: &wstap_trace::Handshake) -> wstap_views::Detector {
        if let Some(view) = self.recorded.get(&id) {
            return wstap_views::Detector::chosen(*view);
        }
        let summary = self.rules_pending.remove(&id);
        handshake_view(&self.view_rules, summary, h)
    }

    fn forget(&mut self, id: u64) {
        self.sessions.remove(&id);
        self.firsts.retain(|(s, _), _| *s != id);
        self.controls.retain(|(s, _), _| *s != id);
        self.last_frames.retain(|(s, _, _), _| *s != id);
        self.views.remove(&id);
        self.rules_pending.remove(&id);
        self.whole.retain(|(s, _), _| *s != id);
    }

    /// The view's reading of a data message going `dir` (`None`: its payload as it is).
    fn read_view(
        &mut self,
        session: u64,
        dir: wstap_wire::Direction,
        data: Bytes<'_>,
        text: bool,
    ) -> Option<Vec<u8>> {
        let whole = !data.truncated() && !data.dropped;
        self.views
            .get_mut(&session)
            .and_then(|tracker| tracker.message(dir, data.data, text, whole).joined)
    }

    /// Notes a frame's flags for the message it belongs to.
    fn mark(&mut self, session: u64, c2s: bool, opcode: Opcode, mark: (u8, bool)) {
        let key = (session, c2s);
        match opcode {
            Opcode::Text | Opcode::Binary => {
                self.firsts.insert(key, mark);
            }
            Opcode::Continuation => {
                self.firsts.entry(key).or_insert(mark);
            }
            _ => {
                self.controls.insert(key, mark);
            }
        }
    }

    /// The first frame's marks for a message that ends now.
    fn take_mark(&mut self, session: u64, c2s: bool, opcode: Opcode) -> (u8, bool) {
        let key = (session, c2s);
        let data = matches!(opcode, Opcode::Text | Opcode::Binary | Opcode::Continuation);
        let taken = if data {
            self.firsts.remove(&key)
        } else {
            self.controls.remove(&key)
        };
        taken.unwrap_or((0x80 | opcode.bits(), false))
    }

    /// Whether a frame matches.
    pub fn frame(&mut self, f: &FrameView<'_>) -> bool {
        let c2s = f.dir == wstap_wire::Direction::ClientToServer;
        let mark = (f.header.first_byte(), f.header.mask().is_some());
        self.mark(f.session, c2s, f.header.opcode(), mark);
        let control = f.header.opcode().is_control();
        self.last_frames.insert((f.session, c2s, control), f.index);
        self.summary(f.session)
            .count_frame(!f.violations.is_empty());
        let codes = f.violations.codes();
        // A frame that is a whole data message: its message, next, reads the same.
        let opcode = f.header.opcode();
        let whole =
            f.header.first_byte() & 0x80 != 0 && matches!(opcode, Opcode::Text | Opcode::Binary);
        let joined = match whole {
            true => {
                let joined = self.read_view(f.session, f.dir, f.data(), opcode == Opcode::Text);
                self.whole.insert((f.session, c2s), joined.clone());
                joined
            }
            false => None,
        };
        let later = self.fates.get(&(f.session, c2s, f.index));
        let facts = RecordFacts {
            fate: later.and_then(|later| later.fate),
            tags: later.map_or("", |later| later.tags.as_str()),
            stream: joined.as_deref(),
            ..frame_facts(f, &codes)
        };
        self.filter
            .matches_record(&self.session_facts(f.session), &facts)
    }

    /// Whether a message matches.
    pub fn message(&mut self, m: &MessageView<'_>) -> bool {
        let c2s = m.dir == wstap_wire::Direction::ClientToServer;
        if !m.origin.is_wire() {
            // wstap wrote it: no frame was read, and no breakpoint held it.
            let (flags, masked) = match m.wire.map(wstap_wire::FrameHeader::parse) {
                Some(Ok(header)) => (header.first_byte(), header.mask().is_some()),
                _ => (0x80 | m.opcode.bits(), false),
            };
            self.summary(m.session);
            let codes = m.violations.codes();
            let facts = message_facts(m, flags, masked, &codes);
            return self
                .filter
                .matches_record(&self.session_facts(m.session), &facts);
        }
        let (flags, masked) = self.take_mark(m.session, c2s, m.opcode);
        self.summary(m.session);
        let joined = match self.whole.remove(&(m.session, c2s)) {
            Some(read) if m.frames == 1 => read,
            _ if m.is_data() => self.read_view(m.session, m.dir, m.data, m.opcode == Opcode::Text),
            _ => None,
        };
        let codes = m.violations.codes();
        let last = self
            .last_frames
            .get(&(m.session, c2s, m.opcode.is_control()));
        let later = last.and_then(|frame| self.fates.get(&(m.session, c2s, *frame)));
        let facts = RecordFacts {
            fate: later.and_then(|later| later.fate),
            tags: later.map_or("", |later| later.tags.as_str()),
            stream: joined.as_deref(),
            ..message_facts(m, flags, masked, &codes)
        };
        self.filter
            .matches_record(&self.session_facts(m.session), &facts)
    }

    /// Whether any event matches (records) or is shown (session-level events).
    pub fn event(&mut self, event: &Event) -> bool {
        match event {
            Event::Frame(f) => self.frame(&FrameView::of_event(f)),
            Event::Message(m) => self.message(&MessageView::of_event(m)),
            other => self.session_event(other) != Some(false),
        }
    }
}
