//! How commands reach live sessions: never through the bus (which carries records one
//! way, from the engine to its sinks), but through this registry.
//!
//! - [`Control`] is shared by the engine and whoever commands it (the inspector's API, a
//!   test suite): the breakpoints, the messages held now, and a mailbox per live
//!   WebSocket session.
//! - The engine enrols each WebSocket session as its relay starts ([`Control::enrol`]).
//!   The [`Enrolment`] sets the session's breakpoints on its relay core, turns what the
//!   core notes (a message held, one too large to hold, a timeout) into the trace's
//!   [`Intervention`]s, carries out the orders that reach the session's mailbox on the
//!   core, answering each, and records what they made wstap write as messages of their
//!   own (`edited`, `injected`, `resent`). Dropping it takes the session out of the
//!   registry.
//! - A commander asks ([`Control::decide`], [`Control::inject`], [`Control::close`],
//!   [`Control::abort`]) and awaits the session's answer: done, or why not.
//! - Rules ([`Control::set_rules`]) are breakpoints that decide by themselves: what they
//!   hold gets the orders a person would give, by the session's own mailbox.
//! - Network conditions (a [`RuleSet`]'s, or set on one session:
//!   [`Control::set_session_conditions`]) shape the ways of the sessions they select; each
//!   session applies them as it starts and again whenever they change.
//!
//! No I/O: tokio's channels only. Everything that decides bytes stays in the relay core
//! (`wstap-relay`); this crate decides who may ask what, and records who did.
//!
//! [`Intervention`]: wstap_trace::Intervention
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod breakpoints;
mod conditions;
mod error;
mod held;
mod info;
mod mailbox;
mod rules;
mod session;
mod timers;

pub use breakpoints::BreakpointView;
pub use conditions::{parse_conditions, split_filter_and_spec, NetworkConditions, Toward};
pub use error::ControlError;
pub use held::{HeldAction, HeldView};
pub use info::SessionInfo;
pub use mailbox::Mailbox;
pub use rules::{parse_rules, Outcome, Replacement, Rule, RuleSet, RuleView, RulesError, Timer};
pub use session::{Enrolment, Order};

use breakpoints::Breakpoints;
use held::HeldEntry;
use mailbox::Post;
use session::Request;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use wstap_filter::Filter;
use wstap_relay::Side;
use wstap_trace::Decider;
use wstap_wire::Opcode;

/// How breakpoints hold, for every session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Bytes a session may keep per direction while something is held (`--break-buffer`):
    /// past it, wstap stops reading that side; a message larger than it is not held.
    pub budget: usize,
    /// How long a held message waits for a decision (`--break-timeout`); `None`: as long
    /// as its session lives.
    pub timeout: Option<Duration>,
    /// How long a close wstap sends waits for each side's stream to reach a frame
    /// boundary and take it.
    pub close_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            budget: 16 << 20,
            timeout: None,
            close_grace: Duration::from_secs(5),
        }
    }
}

/// A message of wstap's own to send on a live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// Who gets it.
    pub to: Side,
    /// Text, binary, ping or pong.
    pub opcode: Opcode,
    /// What it carries.
    pub payload: Vec<u8>,
    /// The recorded message it repeats (its id, as the inspector lists it): a resend.
    pub resent: Option<u64>,
}

/// The registry: see the module documentation. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    breakpoints: Breakpoints,
    sessions: Mutex<HashMap<u64, Live>>,
    timers: timers::Timers,
    conditions: conditions::ConditionsInForce,
    rules_source: Mutex<Option<Arc<RulesSource>>>,
    held: Mutex<BTreeMap<u64, HeldEntry>>,
    next_held: std::sync::atomic::AtomicU64,
    /// Counts every change to the breakpoints or to what is held.
    changes: watch::Sender<u64>,
}

/// Where the rules came from, to read them again (SIGHUP, the inspector): its name (a
/// file's path) and how to read it, given by whoever knows (the registry does no I/O).
pub struct RulesSource {
    /// What to call it.
    pub name: String,
    /// Reads it again: its rules and timers, or its mistake on one line.
    pub read: Box<dyn Fn() -> Result<RuleSet, String> + Send + Sync>,
}

impl fmt::Debug for RulesSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RulesSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A live WebSocket session in the registry: where its orders go, and what it is.
struct Live {
    post: Post,
    info: Arc<SessionInfo>,
}

/// A lock whose holder panicked still guards consistent data (every change under it is
/// one statement): carry on with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("settings", &self.inner.settings)
            .field("breakpoints", &self.inner.breakpoints.views().len())
            .field("held", &lock(&self.inner.held).len())
            .finish()
    }
}

/// Two handles are equal when they are one registry.
impl PartialEq for Control {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Control {}

impl Control {
    /// A registry with no breakpoints and nothing held.
    pub fn new(settings: Settings) -> Control {
        Control {
            inner: Arc::new(Inner {
                settings,
                breakpoints: Breakpoints::default(),
                sessions: Mutex::new(HashMap::new()),
                timers: timers::Timers::default(),
                conditions: conditions::ConditionsInForce::default(),
                rules_source: Mutex::new(None),
                held: Mutex::new(BTreeMap::new()),
                next_held: std::sync::atomic::AtomicU64::new(1),
                changes: watch::channel(0).0,
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> Settings {
        self.inner.settings
    }

    /// A receiver that sees a change each time the breakpoints or what is held change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    fn changed(&self) {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Enrols the live WebSocket session `info` describes: its mailbox opens, and the
    /// enrolment sets its breakpoints. Enrol each session once.
    pub fn enrol(&self, info: SessionInfo) -> (Enrolment, Mailbox) {
        let (post, mailbox) = Mailbox::new();
        let info = Arc::new(info);
        for timer in self.inner.timers.selecting(&info) {
            timers::start(self, timer, info.id, post.clone());
        }
        let live = Live {
            post,
            info: Arc::clone(&info),
        };
        lock(&self.inner.sessions).insert(info.id, live);
        (Enrolment::new(self.clone(), info), mailbox)
    }

    /// Starts `entries` on every live session they select.
    fn start_timers(&self, entries: &[Arc<timers::TimerEntry>]) {
        let sessions = lock(&self.inner.sessions);
        for live in sessions.values() {
            for entry in entries.iter().filter(|e| e.selects(&live.info)) {
                timers::start(self, Arc::clone(entry), live.info.id, live.post.clone());
            }
        }
    }

    /// The timers of `set`, numbered.
    fn number_timers(&self, set: Vec<Timer>) -> Vec<Arc<timers::TimerEntry>> {
        set.into_iter()
            .map(|timer| timers::TimerEntry::new(self.inner.breakpoints.next_id(), timer))
            .collect()
    }

    /// Takes session `id` out (its enrolment ended): what it held goes with it.
    fn leave(&self, id: u64) {
        lock(&self.inner.sessions).remove(&id);
        self.inner.conditions.session_ended(id);
        lock(&self.inner.held).retain(|_, entry| entry.session != id);
        self.changed();
    }

    /// Whether session `id` is live and enrolled.
    pub fn is_live(&self, id: u64) -> bool {
        lock(&self.inner.sessions).contains_key(&id)
    }

    /// Tells every live session that the breakpoints or conditions changed (`by` whom:
    /// recorded where conditions are taken away), and returns once each has the change in
    /// force, so that a message a session reads after the caller answers is judged by it.
    /// A session that ends meanwhile is not waited for.
    async fn reconsider_all(&self, by: Decider) {
        let answers: Vec<_> = lock(&self.inner.sessions)
            .values()
            .map(|live| {
                let (reply, answer) = oneshot::channel();
                live.post
                    .send(Order::new(Request::Reconsider, by, Some(reply)));
                answer
            })
            .collect();
        self.changed();
        for answer in answers {
            // An error says only that the session ended: nothing is left to wait for.
            let _ = answer.await;
        }
    }

    /// Adds a breakpoint on the messages `filter` selects (control frames too when
    /// `control`). Returns its id once every live session has it in force: each judges
    /// the next message it reads by it.
    pub async fn add_breakpoint(&self, filter: Filter, control: bool) -> u64 {
        let id = self.inner.breakpoints.add(filter, control);
        self.reconsider_all(Decider::Api).await;
        id
    }

    /// Puts `set` in place of the rules and timers there were (all of them: a rules file
    /// read again); the timers start on the live sessions they select. Returns their ids
    /// once every live session has the rules in force, from the next message it reads.
    pub async fn set_rules(&self, set: RuleSet) -> Vec<u64> {
        self.put_rules(set, true).await
    }

    /// Adds `set`'s rules after the rules there are (ahead of the breakpoints) and its
    /// timers (started on the live sessions they select). Returns their ids once every
    /// live session has the rules in force.
    pub async fn add_rules(&self, set: RuleSet) -> Vec<u64> {
        self.put_rules(set, false).await
    }

    /// Puts `set` in force, in place of the rules and timers there were (`replace`) or
    /// after them; starts its timers; returns their ids.
    async fn put_rules(&self, set: RuleSet, replace: bool) -> Vec<u64> {
        let timers = self.number_timers(set.timers);
        let conditions: Vec<Arc<conditions::Entry>> = set
            .conditions
            .into_iter()
            .map(|spec| {
                Arc::new(conditions::Entry {
                    id: self.inner.breakpoints.next_id(),
                    spec,
                    by: Decider::Rule,
                    session: None,
                    shaped: Default::default(),
                })
            })
            .collect();
        let condition_ids: Vec<u64> = conditions.iter().map(|c| c.id).collect();
        let mut ids = if replace {
            self.inner.timers.replace(&timers);
            self.inner.conditions.replace(conditions);
            self.inner.breakpoints.set_rules(set.rules)
        } else {
            self.inner.timers.add(&timers);
            self.inner.conditions.add(conditions);
            self.inner.breakpoints.add_rules(set.rules)
        };
        self.start_timers(&timers);
        ids.extend(timers.iter().map(|t| t.id));
        ids.extend(condition_ids);
        self.reconsider_all(Decider::Rule).await;
        ids
    }

    /// Removes rule, timer or conditions `id`, once every live session has the change in
    /// force; what a rule holds for a person stays held.
    pub async fn remove_rule(&self, id: u64) -> Result<(), ControlError> {
        if !self.inner.breakpoints.remove_rule(id)
            && !self.inner.timers.remove(id)
            && !self.inner.conditions.remove(id)
        {
            return Err(ControlError::NoRule(id));
        }
        self.reconsider_all(Decider::Api).await;
        Ok(())
    }

    /// Sets network conditions on live session `session` alone, ahead of any others that
    /// select it, in place of what was set on it before (`None`: removes that). `by` is
    /// recorded. Returns their number once the session has them in force: a pause set
    /// here holds the next message the session reads, not one some time later.
    pub async fn set_session_conditions(
        &self,
        session: u64,
        set: Option<(Toward, wstap_relay::Conditions)>,
        by: Decider,
    ) -> Result<Option<u64>, ControlError> {
        if !self.is_live(session) {
            return Err(ControlError::NoSession(session));
        }
        let entry = set.map(|(toward, conditions)| {
            Arc::new(conditions::Entry {
                id: self.inner.breakpoints.next_id(),
                spec: NetworkConditions {
                    name: format!("session {session}"),
                    filter: wstap_filter::Filter::parse(&format!("session:{session}"))
                        .unwrap_or_default(),
                    toward,
                    conditions,
                },
                by,
                session: Some(session),
                shaped: Default::default(),
            })
        });
        let id = entry.as_ref().map(|e| e.id);
        self.inner.conditions.set_on_session(session, entry);
        self.changed();
        // They apply to this session alone: it is the one to wait for.
        self.ask(session, Request::Reconsider, by).await?;
        Ok(id)
    }

    /// The network conditions that apply to live session `session`, by the side its
    /// stream goes to (client, then server).
    pub fn session_conditions(&self, session: u64) -> Result<[Option<RuleView>; 2], ControlError> {
        let info = lock(&self.inner.sessions)
            .get(&session)
            .map(|live| Arc::clone(&live.info))
            .ok_or(ControlError::NoSession(session))?;
        Ok(self
            .inner
            .conditions
            .applying(&info)
            .map(|entry| entry.map(|entry| conditions_view(&entry))))
    }

    /// Says where the rules came from, so that [`Control::reload_rules`] can read them
    /// again.
    pub fn set_rules_source(&self, source: RulesSource) {
        *lock(&self.inner.rules_source) = Some(Arc::new(source));
    }

    /// The name of where the rules came from, when they can be read again.
    pub fn rules_source(&self) -> Option<String> {
        lock(&self.inner.rules_source)
            .as_ref()
            .map(|source| source.name.clone())
    }

    /// Reads the rules again from where they came from and puts them in place of those in
    /// force; returns how many are in force now. A mistake leaves the rules in force.
    pub async fn reload_rules(&self) -> Result<usize, ControlError> {
        let source = lock(&self.inner.rules_source).clone();
        let source = source.ok_or(ControlError::NoRulesSource)?;
        let set = (source.read)().map_err(ControlError::Invalid)?;
        let count = set.len();
        self.set_rules(set).await;
        Ok(count)
    }

    /// The rules, in order, then the timers, with how often each fired.
    pub fn rules(&self) -> Vec<RuleView> {
        let mut views = self.inner.breakpoints.rule_views();
        views.extend(self.inner.timers.views());
        views.extend(
            self.inner
                .conditions
                .all()
                .iter()
                .map(|e| conditions_view(e)),
        );
        views
    }

    /// The breakpoints, in the order added.
    pub fn breakpoints(&self) -> Vec<BreakpointView> {
        self.inner.breakpoints.views()
    }

    /// Enables or disables breakpoint `id`; returns once every live session has the
    /// change in force.
    pub async fn set_breakpoint_enabled(&self, id: u64, enabled: bool) -> Result<(), ControlError> {
        if !self.inner.breakpoints.set_enabled(id, enabled) {
            return Err(ControlError::NoBreakpoint(id));
        }
        self.reconsider_all(Decider::Api).await;
        Ok(())
    }

    /// Removes breakpoint `id`, once every live session has the change in force; what it
    /// held stays held.
    pub async fn remove_breakpoint(&self, id: u64) -> Result<(), ControlError> {
        if !self.inner.breakpoints.remove(id) {
            return Err(ControlError::NoBreakpoint(id));
        }
        self.reconsider_all(Decider::Api).await;
        Ok(())
    }

    /// The messages held now, oldest first.
    pub fn held(&self) -> Vec<HeldView> {
        lock(&self.inner.held)
            .values()
            .map(HeldEntry::view)
            .collect()
    }

    /// Decides what becomes of held message `held`, and waits for its session to do it.
    pub async fn decide(
        &self,
        held: u64,
        action: HeldAction,
        by: Decider,
    ) -> Result<(), ControlError> {
        let (session, request) = {
            let entries = lock(&self.inner.held);
            let entry = entries.get(&held).ok_or(ControlError::NotHeld(held))?;
            let request = match action {
                HeldAction::Continue => Request::Continue,
                action => {
                    if let HeldAction::Edit { payload, as_bytes } = &action {
                        entry.check_edit(payload, *as_bytes)?;
                    }
                    Request::Decide {
                        held,
                        relay_id: entry.relay_id,
                        action,
                    }
                }
            };
            (entry.session, request)
        };
        self.ask(session, request, by).await
    }

    /// Sends a message of wstap's own on live session `session`, at its stream's next
    /// message boundary.
    pub async fn inject(
        &self,
        session: u64,
        injection: Injection,
        by: Decider,
    ) -> Result<(), ControlError> {
        let Injection {
            to,
            opcode,
            payload,
            resent,
        } = injection;
        if opcode == Opcode::Text && std::str::from_utf8(&payload).is_err() {
            return Err(ControlError::Invalid(
                "a text message must be valid UTF-8".into(),
            ));
        }
        if opcode.is_control() && payload.len() > 125 {
            return Err(ControlError::Invalid(format!(
                "a {} carries at most 125 bytes, not {}",
                opcode.name(),
                payload.len()
            )));
        }
        let request = Request::Inject {
            to,
            opcode,
            payload,
            resent,
        };
        self.ask(session, request, by).await
    }

    /// Closes live session `session` toward `to` (`None`: both sides) with `code` and
    /// `reason`: a close frame at each stream's next frame boundary.
    pub async fn close(
        &self,
        session: u64,
        to: Option<Side>,
        code: u16,
        reason: String,
        by: Decider,
    ) -> Result<(), ControlError> {
        if !wstap_wire::close::is_sendable_close_code(code) {
            return Err(ControlError::Invalid(format!(
                "{code} is not a close code an endpoint may send (1000-1003, 1007-1014, 3000-4999)"
            )));
        }
        if reason.len() > wstap_wire::CloseFrame::MAX_REASON {
            return Err(ControlError::Invalid(format!(
                "a close reason carries at most {} bytes, not {}",
                wstap_wire::CloseFrame::MAX_REASON,
                reason.len()
            )));
        }
        self.ask(session, Request::Close { to, code, reason }, by)
            .await
    }

    /// Drops both connections of live session `session` at once, without close frames.
    pub async fn abort(&self, session: u64, by: Decider) -> Result<(), ControlError> {
        self.ask(session, Request::Abort, by).await
    }

    async fn ask(&self, session: u64, request: Request, by: Decider) -> Result<(), ControlError> {
        let (reply, answer) = oneshot::channel();
        let order = Order::new(request, by, Some(reply));
        {
            let sessions = lock(&self.inner.sessions);
            let live = sessions
                .get(&session)
                .ok_or(ControlError::NoSession(session))?;
            live.post.send(order);
        }
        let answered = answer.await.map_err(|_| ControlError::Gone(session))?;
        answered.map_err(ControlError::from)
    }
}

/// Conditions in force as the API shows them: `hits` counts the sessions they shaped.
fn conditions_view(entry: &conditions::Entry) -> RuleView {
    RuleView {
        id: entry.id,
        name: entry.spec.name.clone(),
        filter: entry.spec.filter.source().to_owned(),
        hits: entry.shaped.load(std::sync::atomic::Ordering::Relaxed),
        every: None,
        conditions: Some(entry.spec.describe()),
    }
}
