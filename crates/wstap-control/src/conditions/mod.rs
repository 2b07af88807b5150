//! Network conditions in force: for the sessions a filter selects, what a bad network
//! does to one way of the session or both (latency, jitter, bandwidth, a pause, a
//! cut-off), carried out frame by frame by the relay core (`wstap-relay`'s
//! `Command::Condition`).
//!
//! Conditions come from `--conditions FILTER=SPEC`, a rules file's `[[conditions]]`, the
//! API, or a person in the inspector setting them on one session (those come first).
//! For each way of a session, the first conditions in force that select the session and
//! cover that way apply; a session takes them as it starts, and again whenever the
//! conditions in force change, while it lives. Each change is recorded on the session
//! (`conditioned`, what they are, who set them).

mod spec;

pub use spec::{describe, parse_conditions, split_filter_and_spec};

use crate::info::SessionInfo;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, PoisonError, RwLock};
use wstap_filter::Filter;
use wstap_relay::{Conditions, Side};
use wstap_trace::Decider;

/// Which ways of a session conditions shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Toward {
    /// What the client sends, on its way to the server.
    Server,
    /// What the server sends, on its way to the client.
    Client,
    /// Both ways.
    Both,
}

impl Toward {
    /// Whether the stream to `to` is shaped.
    pub fn covers(self, to: Side) -> bool {
        matches!(
            (self, to),
            (Toward::Both, _) | (Toward::Server, Side::Server) | (Toward::Client, Side::Client)
        )
    }

    /// Its name in the language of conditions.
    pub fn name(self) -> &'static str {
        match self {
            Toward::Server => "server",
            Toward::Client => "client",
            Toward::Both => "both",
        }
    }
}

/// Network conditions for the sessions a filter selects.
#[derive(Debug, Clone)]
pub struct NetworkConditions {
    /// Their name (`conditions N` unless given).
    pub name: String,
    /// The sessions they apply to: session fields only.
    pub filter: Filter,
    /// Which ways.
    pub toward: Toward,
    /// What they are (the budget is the registry's `--break-buffer`).
    pub conditions: Conditions,
}

impl NetworkConditions {
    /// `--conditions FILTER=SPEC` and the API's form: the filter, then the spec.
    pub fn parse(name: String, filter: &str, spec: &str) -> Result<NetworkConditions, String> {
        let filter = session_filter(filter)?;
        let (toward, conditions) = parse_conditions(spec)?;
        let conditions =
            conditions.ok_or("`none` sets no conditions: remove them instead".to_owned())?;
        Ok(NetworkConditions {
            name,
            filter,
            toward,
            conditions,
        })
    }

    /// What they are, in their own language.
    pub fn describe(&self) -> String {
        let what = describe(Some(&self.conditions));
        match self.toward {
            Toward::Both => what,
            toward => format!("to:{}, {what}", toward.name()),
        }
    }
}

/// `text` as a filter of sessions, or why not.
pub(crate) fn session_filter(text: &str) -> Result<Filter, String> {
    let filter = Filter::parse(text).map_err(|e| {
        let message = e.to_string();
        format!(
            "in the filter: {}",
            message.lines().next().unwrap_or_default()
        )
    })?;
    if filter.reads_records() {
        return Err(
            "conditions choose sessions: their filter may use only session fields (host, path, ...)"
                .to_owned(),
        );
    }
    Ok(filter)
}

/// Conditions in force, numbered, with where they came from.
#[derive(Debug)]
pub(crate) struct Entry {
    pub id: u64,
    pub spec: NetworkConditions,
    /// Who set them: recorded on each session they shape.
    pub by: Decider,
    /// Set on this one session by a person (or the API): such entries come first.
    pub session: Option<u64>,
    /// Sessions they shaped.
    pub shaped: AtomicU64,
}

impl Entry {
    pub fn selects(&self, info: &SessionInfo) -> bool {
        match self.session {
            Some(session) => session == info.id,
            None => self.spec.filter.session_verdict(&info.facts()) == Some(true),
        }
    }
}

/// The conditions in force, in order: those set on one session first.
#[derive(Debug, Default)]
pub(crate) struct ConditionsInForce {
    list: RwLock<Vec<Arc<Entry>>>,
}

impl ConditionsInForce {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Entry>>> {
        self.list.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Entry>>> {
        self.list.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `entries` in place of the conditions there were, except those set on one
    /// session.
    pub fn replace(&self, entries: Vec<Arc<Entry>>) {
        let mut list = self.write();
        list.retain(|entry| entry.session.is_some());
        list.extend(entries);
    }

    /// Adds `entries` after those in force.
    pub fn add(&self, entries: Vec<Arc<Entry>>) {
        self.write().extend(entries);
    }

    /// Puts `entry` (set on one session) first, in place of what was set on that session
    /// before; `None` removes that.
    pub fn set_on_session(&self, session: u64, entry: Option<Arc<Entry>>) {
        let mut list = self.write();
        list.retain(|e| e.session != Some(session));
        if let Some(entry) = entry {
            list.insert(0, entry);
        }
    }

    /// Removes `id`; whether there was such an entry.
    pub fn remove(&self, id: u64) -> bool {
        let mut list = self.write();
        let before = list.len();
        list.retain(|e| e.id != id);
        list.len() != before
    }

    /// For each way of the session `info` describes (client, server), the conditions
    /// that apply.
    pub fn applying(&self, info: &SessionInfo) -> [Option<Arc<Entry>>; 2] {
        let list = self.read();
        [Side::Client, Side::Server].map(|to| {
            list.iter()
                .find(|entry| entry.spec.toward.covers(to) && entry.selects(info))
                .cloned()
        })
    }

    /// Everything in force, in order.
    pub fn all(&self) -> Vec<Arc<Entry>> {
        self.read().clone()
    }

    /// Forgets what was set on session `session` (it ended).
    pub fn session_ended(&self, session: u64) {
        let mut list = self.write();
        if list.iter().any(|e| e.session == Some(session)) {
            list.retain(|e| e.session != Some(session));
        }
    }
}
