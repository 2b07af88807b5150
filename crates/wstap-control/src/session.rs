//! One live session's side of the registry: its breakpoints, its mailbox, and the record
//! of what wstap did to it.
//!
//! The engine's drive loop owns the [`Enrolment`] beside the session's relay core: it
//! applies the breakpoints when the relay starts, hands over the core's notes after each
//! feed, carries out each [`Order`] from the mailbox on the core, and publishes the events
//! these return with the session's records: [`Intervention`]s, and a [`Message`] for each
//! message an order made wstap write (an edit, an injection), with its frames.

use crate::held::{HeldAction, HeldEntry, HeldView};
use crate::info::SessionInfo;
use crate::rules::{Outcome, Rule};
use crate::{lock, Control};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;
use wstap_relay::{
    BreakRule, Built, Command, Conditions, Cut, Decision, HeldId, MessageTest, Note, Refused,
    Relay, Side,
};
use wstap_trace::{Action, Decider, Event, Intervention, Message, MessageOrigin, Payload};
use wstap_wire::Opcode;

/// What a commander asks of a live session.
#[derive(Debug)]
pub(crate) enum Request {
    /// The breakpoints changed: set them again.
    Reconsider,
    /// A held message's fate.
    Decide {
        held: u64,
        relay_id: HeldId,
        action: HeldAction,
    },
    /// Everything held goes on and the session stops breaking.
    Continue,
    Inject {
        to: Side,
        opcode: Opcode,
        payload: Vec<u8>,
        /// The recorded message it repeats.
        resent: Option<u64>,
    },
    /// `to: None`: both sides.
    Close {
        to: Option<Side>,
        code: u16,
        reason: String,
    },
    Abort,
}

/// A request in a session's mailbox, with who asked and where the answer goes.
#[derive(Debug)]
pub struct Order {
    request: Request,
    by: Decider,
    reply: Option<oneshot::Sender<Result<(), Refused>>>,
}

impl Order {
    pub(crate) fn new(
        request: Request,
        by: Decider,
        reply: Option<oneshot::Sender<Result<(), Refused>>>,
    ) -> Order {
        Order { request, by, reply }
    }
}

/// A live session's membership of the registry: see the module documentation. Dropping
/// it takes the session out, and what it held with it.
pub struct Enrolment {
    control: Control,
    info: Arc<SessionInfo>,
    /// The breakpoint behind each message the test held, in order, until its note.
    matched: Arc<Mutex<VecDeque<u64>>>,
    /// The relay's names of held messages, and the registry's.
    ids: HashMap<HeldId, u64>,
    /// The session stopped breaking ("continue").
    continued: bool,
    /// What the relay was told last: breaking (with control frames or not), or not.
    breaking: Option<bool>,
    /// The conditions on the stream to each side (client, server), by number.
    conditioned: [Option<u64>; 2],
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment")
            .field("session", &self.info.id)
            .field("held", &self.ids.len())
            .field("breaking", &self.breaking)
            .finish()
    }
}

impl Drop for Enrolment {
    fn drop(&mut self) {
        self.control.leave(self.info.id);
    }
}

impl Enrolment {
    pub(crate) fn new(control: Control, info: Arc<SessionInfo>) -> Enrolment {
        Enrolment {
            control,
            info,
            matched: Arc::default(),
            ids: HashMap::new(),
            continued: false,
            breaking: None,
            conditioned: [None; 2],
        }
    }

    /// Sets the session's breakpoints and network conditions on `relay` as the relay
    /// starts, at `now` (`time` on the wall clock): the records of the conditions set.
    pub fn start(&mut self, relay: &mut Relay, now: Instant, time: DateTime<Utc>) -> Vec<Event> {
        self.apply_breakpoints(relay, now);
        self.apply_conditions(relay, now, time, Decider::Rule)
            .into_iter()
            .map(Event::Intervention)
            .collect()
    }

    /// Sets on `relay` the network conditions that apply now, where they changed: a
    /// record of each change (`cleared_by` took away conditions that no longer apply).
    fn apply_conditions(
        &mut self,
        relay: &mut Relay,
        now: Instant,
        time: DateTime<Utc>,
        cleared_by: Decider,
    ) -> Vec<Intervention> {
        let applying = self.control.inner.conditions.applying(&self.info);
        let mut records = Vec::new();
        for (to, entry) in [Side::Client, Side::Server].into_iter().zip(applying) {
            let id = entry.as_ref().map(|e| e.id);
            if self.conditioned[slot(to)] == id {
                continue;
            }
            let conditions = entry.as_ref().map(|entry| Conditions {
                budget: self.control.settings().budget,
                ..entry.spec.conditions.clone()
            });
            let described = crate::conditions::describe(conditions.as_ref());
            // Refused only once the relay ended: nothing to shape then.
            if relay
                .command(Command::Condition { to, conditions }, now)
                .is_err()
            {
                continue;
            }
            self.conditioned[slot(to)] = id;
            let by = match &entry {
                Some(entry) => {
                    entry
                        .shaped
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    entry.by
                }
                None => cleared_by,
            };
            records.push(Intervention {
                dir: Some(to.other().sends()),
                breakpoint: id,
                reason: Some(described),
                ..self.record(Action::Conditioned, by, time)
            });
        }
        records
    }

    /// The session's number.
    pub fn session(&self) -> u64 {
        self.info.id
    }

    /// Sets the session's breakpoints on `relay` as they stand: on both directions when
    /// an enabled breakpoint could select a message of the session, else none. Call as
    /// the relay starts; orders call it again when the breakpoints change.
    pub fn apply_breakpoints(&mut self, relay: &mut Relay, now: Instant) {
        let reach = match self.continued {
            true => None,
            false => self.control.inner.breakpoints.reach(&self.info),
        };
        if reach == self.breaking {
            return;
        }
        self.breaking = reach;
        let settings = self.control.settings();
        let rule = reach.map(|control| BreakRule {
            test: self.test(),
            control,
            budget: settings.budget,
            timeout: settings.timeout,
        });
        for from in [Side::Client, Side::Server] {
            let rule = rule.clone();
            // Refused only on a stream that is not a WebSocket, which is never enrolled.
            let _ = relay.command(Command::Break { from, rule }, now);
        }
    }

    /// The test the relay asks of each whole message: does an enabled breakpoint select
    /// it? The breakpoint that did waits for the note of the message it held. A data
    /// message no breakpoint can select by its first header goes on as it comes.
    fn test(&self) -> MessageTest {
        let (control, info) = (self.control.clone(), self.info.clone());
        let matched = self.matched.clone();
        let whole = MessageTest::new(move |candidate| {
            let hit = control.inner.breakpoints.first_match(&info, candidate);
            if let Some(id) = hit {
                lock(&matched).push_back(id);
            }
            hit.is_some()
        });
        let (control, info) = (self.control.clone(), self.info.clone());
        whole.deciding_at_the_header(move |header| {
            control.inner.breakpoints.header_verdict(&info, header)
        })
    }

    fn record(&self, action: Action, by: Decider, time: DateTime<Utc>) -> Intervention {
        Intervention {
            session: self.info.id,
            time,
            action,
            by,
            dir: None,
            held: None,
            breakpoint: None,
            frame: None,
            opcode: None,
            payload: None,
            code: None,
            reason: None,
            bytes: None,
            wire: None,
            resent: None,
        }
    }

    /// A record about held message `view`.
    fn about(
        &self,
        view: &HeldView,
        action: Action,
        by: Decider,
        time: DateTime<Utc>,
    ) -> Intervention {
        Intervention {
            dir: Some(view.dir),
            held: Some(view.id),
            breakpoint: view.breakpoint,
            frame: Some(view.frame),
            ..self.record(action, by, time)
        }
    }

    /// Takes held message `relay_id` out of the registry.
    fn settle(&mut self, relay_id: HeldId) -> Option<HeldView> {
        let held = self.ids.remove(&relay_id)?;
        let entry = lock(&self.control.inner.held).remove(&held);
        self.control.changed();
        entry.map(|entry| entry.view)
    }

    /// Takes what the relay noted after a feed or a timeout, at `time`: held messages join
    /// the registry. Returns the records to publish, after the feed's own.
    pub fn noted(&mut self, notes: Vec<Note>, time: DateTime<Utc>) -> Vec<Event> {
        let records = self.noted_records(notes, time);
        records.into_iter().map(Event::Intervention).collect()
    }

    fn noted_records(&mut self, notes: Vec<Note>, time: DateTime<Utc>) -> Vec<Intervention> {
        let mut records = Vec::with_capacity(notes.len());
        for note in notes {
            match note {
                Note::Held {
                    id,
                    from: _,
                    message,
                    frame,
                } => {
                    let breakpoint = lock(&self.matched).pop_front();
                    let held = self
                        .control
                        .inner
                        .next_held
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let view = HeldView {
                        id: held,
                        session: self.info.id,
                        dir: message.direction,
                        opcode: message.opcode,
                        len: message.data.total,
                        payload: message.data.data.to_vec(),
                        compressed: message.compressed,
                        since: time,
                        breakpoint,
                        frame,
                    };
                    let rule = breakpoint.and_then(|b| self.control.inner.breakpoints.rule(b));
                    let by = match rule {
                        Some(_) => Decider::Rule,
                        None => Decider::Breakpoint,
                    };
                    records.push(self.about(&view, Action::Held, by, time));
                    if let Some(tag) = rule.as_ref().and_then(|rule| rule.tag.clone()) {
                        records.push(Intervention {
                            reason: Some(tag),
                            ..self.about(&view, Action::Tagged, Decider::Rule, time)
                        });
                    }
                    if let Some(rule) = rule {
                        self.fire(&rule, &view, id);
                    }
                    self.ids.insert(id, held);
                    let entry = HeldEntry {
                        view,
                        session: self.info.id,
                        relay_id: id,
                    };
                    lock(&self.control.inner.held).insert(held, entry);
                    self.control.changed();
                }
                Note::TooLarge { from, kept } => records.push(Intervention {
                    dir: Some(from.sends()),
                    bytes: Some(kept),
                    ..self.record(Action::TooLarge, Decider::Breakpoint, time)
                }),
                Note::Reencoding { from, frame } => records.push(Intervention {
                    dir: Some(from.sends()),
                    frame: Some(frame),
                    ..self.record(Action::Reencoded, Decider::Breakpoint, time)
                }),
                Note::Sent {
                    to,
                    why: Built::Recompressed(frame),
                    wire,
                } => records.push(Intervention {
                    dir: Some(to.other().sends()),
                    frame: Some(frame),
                    wire: Some(Payload::all(wire)),
                    ..self.record(Action::Recompressed, Decider::Breakpoint, time)
                }),
                // An edit's or an injection's frames are the message of the order that
                // made them (`carry_out`), whose command notes them at once.
                Note::Sent { .. } => {}
                Note::CutOff { to, cut } => {
                    let (action, code, reason) = match cut {
                        Cut::Abort => (Action::Aborted, None, None),
                        Cut::Close { code, reason, .. } => {
                            (Action::Closed, Some(code), Some(reason))
                        }
                    };
                    records.push(Intervention {
                        dir: Some(to.other().sends()),
                        breakpoint: self.conditioned[slot(to)],
                        code,
                        reason,
                        ..self.record(action, Decider::Conditions, time)
                    });
                }
                Note::TimedOut { id, from: _ } => {
                    if let Some(view) = self.settle(id) {
                        records.push(self.about(&view, Action::TimedOut, Decider::Timeout, time));
                    }
                }
            }
        }
        records
    }

    /// Gives the orders `rule` makes for the message it held (`view`; the relay's
    /// `relay_id`), through the session's own mailbox, after the rule's delay: the order
    /// of messages is kept, since those behind it wait.
    fn fire(&self, rule: &Rule, view: &HeldView, relay_id: HeldId) {
        if rule.outcome == Outcome::Break {
            return;
        }
        let held = view.id;
        // Only a message held whole can be rewritten.
        let whole = view.payload.len() as u64 == view.len;
        let payload = whole.then(|| rule.rewrite(view.opcode, &view.payload));
        let kept = match payload {
            Some(payload) if payload != view.payload => HeldAction::Edit {
                payload,
                as_bytes: false,
            },
            _ => HeldAction::Forward,
        };
        let decide = |action| Request::Decide {
            held,
            relay_id,
            action,
        };
        let sender = match view.dir {
            wstap_wire::Direction::ClientToServer => Side::Client,
            wstap_wire::Direction::ServerToClient => Side::Server,
        };
        let requests = match &rule.outcome {
            Outcome::Forward | Outcome::Break => vec![decide(kept)],
            Outcome::Drop => vec![decide(HeldAction::Drop)],
            Outcome::Respond { opcode, payload } => vec![
                Request::Inject {
                    to: sender,
                    opcode: *opcode,
                    payload: payload.clone(),
                    resent: None,
                },
                decide(HeldAction::Drop),
            ],
            Outcome::Close { to, code, reason } => vec![
                decide(kept),
                Request::Close {
                    to: *to,
                    code: *code,
                    reason: reason.clone(),
                },
            ],
            Outcome::Abort => vec![decide(HeldAction::Drop), Request::Abort],
        };
        let Some(post) = lock(&self.control.inner.sessions)
            .get(&self.info.id)
            .map(|live| live.post.clone())
        else {
            return;
        };
        let orders = requests
            .into_iter()
            .map(|request| Order::new(request, Decider::Rule, None));
        match rule.delay {
            None => orders.for_each(|order| {
                post.send(order);
            }),
            Some(delay) => {
                let orders: Vec<Order> = orders.collect();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    for order in orders {
                        post.send(order);
                    }
                });
            }
        }
    }

    /// The session ended with `lost` still held: each is recorded as never sent.
    pub fn ended(&mut self, lost: &[(Side, HeldId)], time: DateTime<Utc>) -> Vec<Event> {
        let views: Vec<HeldView> = lost.iter().filter_map(|(_, id)| self.settle(*id)).collect();
        views
            .iter()
            .map(|view| Event::Intervention(self.about(view, Action::Lost, Decider::Session, time)))
            .collect()
    }

    /// Carries out `order` on `relay` at `now` (`time` on the wall clock), answers it, and
    /// returns the records of what was done: its interventions, then the message it made
    /// wstap write, if any.
    pub fn carry_out(
        &mut self,
        order: Order,
        relay: &mut Relay,
        now: Instant,
        time: DateTime<Utc>,
    ) -> Vec<Event> {
        let Order { request, by, reply } = order;
        let done = self.request(request, by, relay, now, time);
        let (answer, mut records, made) = match done {
            Ok((records, made)) => (Ok(()), records, made),
            Err(refused) => (Err(refused), Vec::new(), None),
        };
        // The frames an edit or an injection made are the message it records; what else
        // the command set off (re-encoding a direction) was decided by who asked.
        let mut notes = relay.drain_notes();
        let mut written = None;
        notes.retain(|note| match note {
            Note::Sent {
                why: Built::Edit(_) | Built::Inject,
                wire,
                ..
            } => {
                written = Some(wire.clone());
                false
            }
            _ => true,
        });
        records.extend(
            self.noted_records(notes, time)
                .into_iter()
                .map(|mut record| {
                    if record.action == Action::Reencoded {
                        record.by = by;
                    }
                    record
                }),
        );
        let mut events: Vec<Event> = records.into_iter().map(Event::Intervention).collect();
        if let (Some(made), Some(wire)) = (made, written) {
            events.push(Event::Message(made.message(self.info.id, time, wire)));
        }
        if let Some(reply) = reply {
            // A commander who stopped waiting needs no answer.
            let _ = reply.send(answer);
        }
        events
    }

    fn request(
        &mut self,
        request: Request,
        by: Decider,
        relay: &mut Relay,
        now: Instant,
        time: DateTime<Utc>,
    ) -> Result<(Vec<Intervention>, Option<Made>), Refused> {
        let toward = |side: Side| side.other().sends();
        match request {
            Request::Reconsider => {
                self.apply_breakpoints(relay, now);
                Ok((self.apply_conditions(relay, now, time, by), None))
            }
            Request::Decide {
                held,
                relay_id,
                action,
            } => {
                let (decision, done, sent) = match action {
                    HeldAction::Forward | HeldAction::Continue => {
                        (Decision::Forward, Action::Forwarded, None)
                    }
                    HeldAction::Drop => (Decision::Drop, Action::Dropped, None),
                    HeldAction::Edit { payload, .. } => (
                        Decision::Replace(payload.clone()),
                        Action::Edited,
                        Some(payload),
                    ),
                };
                if self.ids.get(&relay_id) != Some(&held) {
                    return Err(Refused::NotHeld);
                }
                relay.command(
                    Command::Decide {
                        id: relay_id,
                        decision,
                    },
                    now,
                )?;
                let Some(view) = self.settle(relay_id) else {
                    return Ok((Vec::new(), None));
                };
                let mut record = self.about(&view, done, by, time);
                let made = sent.map(|payload| {
                    record.opcode = Some(view.opcode.bits());
                    record.payload = Some(Payload::all(payload.clone()));
                    Made {
                        origin: MessageOrigin::Edited,
                        dir: view.dir,
                        opcode: view.opcode,
                        data: payload,
                        held: Some(view.id),
                    }
                });
                Ok((vec![record], made))
            }
            Request::Continue => {
                self.continued = true;
                self.apply_breakpoints(relay, now);
                for from in [Side::Client, Side::Server] {
                    relay.command(Command::ForwardAll { from }, now)?;
                }
                let held: Vec<HeldId> = relay.held().into_iter().map(|(_, id)| id).collect();
                let forwarded: Vec<HeldId> = self
                    .ids
                    .keys()
                    .copied()
                    .filter(|id| !held.contains(id))
                    .collect();
                let mut views: Vec<HeldView> = forwarded
                    .into_iter()
                    .filter_map(|id| self.settle(id))
                    .collect();
                views.sort_by_key(|view| view.id);
                let mut records: Vec<Intervention> = views
                    .iter()
                    .map(|view| self.about(view, Action::Forwarded, by, time))
                    .collect();
                records.push(self.record(Action::Continued, by, time));
                Ok((records, None))
            }
            Request::Inject {
                to,
                opcode,
                payload,
                resent,
            } => {
                relay.command(
                    Command::Inject {
                        to,
                        opcode,
                        payload: payload.clone(),
                    },
                    now,
                )?;
                let record = Intervention {
                    dir: Some(toward(to)),
                    opcode: Some(opcode.bits()),
                    payload: Some(Payload::all(payload.clone())),
                    resent,
                    ..self.record(Action::Injected, by, time)
                };
                let made = Made {
                    origin: match resent {
                        Some(_) => MessageOrigin::Resent,
                        None => MessageOrigin::Injected,
                    },
                    dir: toward(to),
                    opcode,
                    data: payload,
                    held: None,
                };
                Ok((vec![record], Some(made)))
            }
            Request::Close { to, code, reason } => {
                let grace = self.control.settings().close_grace;
                let sides = match to {
                    Some(side) => vec![side],
                    None => vec![Side::Server, Side::Client],
                };
                for side in sides {
                    let command = Command::Close {
                        to: side,
                        code,
                        reason: reason.clone(),
                        grace,
                    };
                    relay.command(command, now)?;
                }
                let record = Intervention {
                    dir: to.map(toward),
                    code: Some(code),
                    reason: Some(reason),
                    ..self.record(Action::Closed, by, time)
                };
                Ok((vec![record], None))
            }
            Request::Abort => {
                relay.command(Command::Abort, now)?;
                Ok((vec![self.record(Action::Aborted, by, time)], None))
            }
        }
    }
}

/// Where a side's entry is in a pair kept by side (client, server).
fn slot(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

/// A message an order makes wstap write, until its frames are known.
#[derive(Debug)]
struct Made {
    origin: MessageOrigin,
    dir: wstap_wire::Direction,
    opcode: Opcode,
    data: Vec<u8>,
    /// The held message an edit replaces.
    held: Option<u64>,
}

impl Made {
    /// Its record in session `session`, written at `time` as `wire`.
    fn message(self, session: u64, time: DateTime<Utc>, wire: Vec<u8>) -> Message {
        let message = Message::built(
            session,
            time,
            self.dir,
            self.origin,
            self.opcode,
            self.data,
            wire,
        );
        Message {
            held: self.held,
            ..message
        }
    }
}
