//! The timers in force ([`crate::rules`]), and the task that sends a timer's message on
//! one live session it selects: one task per session and timer, which ends when either
//! does (it looks before every send).

use crate::info::SessionInfo;
use crate::mailbox::Post;
use crate::rules::{RuleView, Timer};
use crate::session::{Order, Request};
use crate::Control;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use wstap_trace::Decider;

/// A timer in force, with its number and how often it sent.
#[derive(Debug)]
pub(crate) struct TimerEntry {
    pub id: u64,
    pub timer: Timer,
    sent: AtomicU64,
}

impl TimerEntry {
    pub fn new(id: u64, timer: Timer) -> Arc<TimerEntry> {
        Arc::new(TimerEntry {
            id,
            timer,
            sent: AtomicU64::new(0),
        })
    }

    /// Whether it sends on the session `info` describes.
    pub fn selects(&self, info: &SessionInfo) -> bool {
        self.timer.filter.session_verdict(&info.facts()) == Some(true)
    }
}

/// The list, behind a lock taken briefly.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    list: RwLock<Vec<Arc<TimerEntry>>>,
}

impl Timers {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<TimerEntry>>> {
        self.list.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<TimerEntry>>> {
        self.list.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `entries` in place of the timers there were.
    pub fn replace(&self, entries: &[Arc<TimerEntry>]) {
        *self.write() = entries.to_vec();
    }

    /// Adds `entries` after the timers there are.
    pub fn add(&self, entries: &[Arc<TimerEntry>]) {
        self.write().extend(entries.iter().cloned());
    }

    /// Removes timer `id`; whether there was one.
    pub fn remove(&self, id: u64) -> bool {
        let mut list = self.write();
        let before = list.len();
        list.retain(|t| t.id != id);
        list.len() != before
    }

    /// Whether timer `id` is still in force.
    pub fn has(&self, id: u64) -> bool {
        self.read().iter().any(|t| t.id == id)
    }

    /// The timers that send on the session `info` describes.
    pub fn selecting(&self, info: &SessionInfo) -> Vec<Arc<TimerEntry>> {
        self.read()
            .iter()
            .filter(|t| t.selects(info))
            .cloned()
            .collect()
    }

    pub fn views(&self) -> Vec<RuleView> {
        self.read()
            .iter()
            .map(|t| RuleView {
                id: t.id,
                name: t.timer.name.clone(),
                filter: t.timer.filter.source().to_owned(),
                hits: t.sent.load(Ordering::Relaxed),
                every: Some(t.timer.every),
                conditions: None,
            })
            .collect()
    }
}

/// Sends `entry`'s message on session `session` (through `post`) every period, until the
/// timer or the session goes. Needs a tokio runtime; without one (no live session can be
/// either) nothing starts.
pub(crate) fn start(control: &Control, entry: Arc<TimerEntry>, session: u64, post: Post) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let control = control.clone();
    runtime.spawn(async move {
        let every = entry.timer.every;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if !control.inner.timers.has(entry.id) || !control.is_live(session) {
                return;
            }
            let request = Request::Inject {
                to: entry.timer.to,
                opcode: entry.timer.opcode,
                payload: entry.timer.payload.clone(),
                resent: None,
            };
            if !post.send(Order::new(request, Decider::Rule, None)) {
                // The session reads no more orders: nothing was sent, and never will be.
                return;
            }
            entry.sent.fetch_add(1, Ordering::Relaxed);
        }
    });
}
