//! The breakpoints: filters (the language of `docs/filters.md`) that hold the messages
//! they select. Evaluated on the live record of each whole message, in the relay's
//! thread, by the in-memory evaluator: no allocation, no lock held for long. Rules are
//! breakpoints too, with what to do with what they hold ([`crate::rules`]); they come
//! first, in their file's order.
//!
//! Many filters that each search the payload (ten rules of `text~"..."`, say) would read
//! a large message ten times: the searches they require are gathered into one
//! `RegexSet` ([`Prefilter`]), which reads it once, and a breakpoint whose required
//! search found nothing is passed over without evaluating its filter.

use crate::info::SessionInfo;
use crate::rules::{Rule, RuleView};
use regex::bytes::{RegexSet, RegexSetBuilder, SetMatches};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use wstap_filter::{Filter, HeaderFacts, Origin, RecordFacts, RecordKind};
use wstap_relay::{Candidate, FirstHeader};
use wstap_wire::Opcode;

/// One breakpoint.
#[derive(Debug)]
struct Breakpoint {
    id: u64,
    filter: Filter,
    /// Whether it holds pings, pongs and closes too.
    control: bool,
    enabled: AtomicBool,
    hits: AtomicU64,
    /// For a rule: what it does with what it holds.
    rule: Option<Arc<Rule>>,
}

/// A breakpoint as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakpointView {
    /// Its number.
    pub id: u64,
    /// Its filter, as written.
    pub filter: String,
    /// Whether it holds control frames too.
    pub control: bool,
    /// Whether it holds now.
    pub enabled: bool,
    /// Messages it has held.
    pub hits: u64,
}

/// The list, behind a lock taken briefly: readers (every judged message) share it.
#[derive(Debug, Default)]
pub(crate) struct Breakpoints {
    list: RwLock<Vec<Arc<Breakpoint>>>,
    /// The payload searches of the list, in one set; rebuilt after every change.
    prefilter: RwLock<Option<Arc<Prefilter>>>,
    next: AtomicU64,
}

/// The payload searches several breakpoints require, gathered in one set that reads a
/// payload once; by breakpoint, the index of its search in the set.
#[derive(Debug)]
struct Prefilter {
    set: RegexSet,
    searches: HashMap<u64, usize>,
}

impl Prefilter {
    /// The prefilter of `list`, when two or more of its breakpoints require a search
    /// (one search is as fast alone).
    fn of(list: &[Arc<Breakpoint>]) -> Option<Prefilter> {
        let required: Vec<(u64, &str)> = list
            .iter()
            .filter_map(|b| Some((b.id, b.filter.required_payload_pattern()?)))
            .collect();
        if required.len() < 2 {
            return None;
        }
        let set = RegexSetBuilder::new(required.iter().map(|(_, pattern)| *pattern))
            .size_limit(1 << 22)
            .build()
            .ok()?;
        let searches = required
            .iter()
            .enumerate()
            .map(|(index, (id, _))| (*id, index))
            .collect();
        Some(Prefilter { set, searches })
    }
}

impl Breakpoints {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Breakpoint>>> {
        self.list.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Breakpoint>>> {
        self.list.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gathers the list's searches again, after a change. A reader between the change
    /// and this sees a breakpoint the prefilter does not know, which it evaluates whole.
    fn refilter(&self) {
        let prefilter = Prefilter::of(&self.read()).map(Arc::new);
        *self
            .prefilter
            .write()
            .unwrap_or_else(PoisonError::into_inner) = prefilter;
    }

    /// A new number for a breakpoint, rule or timer.
    pub fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn add(&self, filter: Filter, control: bool) -> u64 {
        let id = self.next_id();
        self.write().push(Arc::new(Breakpoint {
            id,
            filter,
            control,
            enabled: AtomicBool::new(true),
            hits: AtomicU64::new(0),
            rule: None,
        }));
        self.refilter();
        id
    }

    /// Puts `rules` in place of the rules there were, ahead of the breakpoints, in order;
    /// returns their ids.
    pub fn set_rules(&self, rules: Vec<Rule>) -> Vec<u64> {
        self.write().retain(|b| b.rule.is_none());
        self.add_rules(rules)
    }

    /// Adds `rules` after the rules there are, ahead of the breakpoints; returns their ids.
    pub fn add_rules(&self, rules: Vec<Rule>) -> Vec<u64> {
        let mut list = self.write();
        let mut ids = Vec::with_capacity(rules.len());
        let rules: Vec<Arc<Breakpoint>> = rules
            .into_iter()
            .map(|rule| {
                let id = self.next_id();
                ids.push(id);
                Arc::new(Breakpoint {
                    id,
                    filter: rule.filter.clone(),
                    control: rule.control,
                    enabled: AtomicBool::new(true),
                    hits: AtomicU64::new(0),
                    rule: Some(Arc::new(rule)),
                })
            })
            .collect();
        let after_rules = list.iter().take_while(|b| b.rule.is_some()).count();
        list.splice(after_rules..after_rules, rules);
        drop(list);
        self.refilter();
        ids
    }

    /// Removes rule `id`; whether there was one.
    pub fn remove_rule(&self, id: u64) -> bool {
        let mut list = self.write();
        let before = list.len();
        list.retain(|b| b.id != id || b.rule.is_none());
        let removed = list.len() != before;
        drop(list);
        self.refilter();
        removed
    }

    /// Rule `id`, if it is one.
    pub fn rule(&self, id: u64) -> Option<Arc<Rule>> {
        self.read()
            .iter()
            .find(|b| b.id == id)
            .and_then(|b| b.rule.clone())
    }

    pub fn rule_views(&self) -> Vec<RuleView> {
        self.read()
            .iter()
            .filter_map(|b| {
                let rule = b.rule.as_ref()?;
                Some(RuleView {
                    id: b.id,
                    name: rule.name.clone(),
                    filter: b.filter.source().to_owned(),
                    hits: b.hits.load(Ordering::Relaxed),
                    every: None,
                    conditions: None,
                })
            })
            .collect()
    }

    pub fn set_enabled(&self, id: u64, enabled: bool) -> bool {
        self.read()
            .iter()
            .find(|b| b.id == id && b.rule.is_none())
            .map(|b| b.enabled.store(enabled, Ordering::Relaxed))
            .is_some()
    }

    pub fn remove(&self, id: u64) -> bool {
        let mut list = self.write();
        let before = list.len();
        list.retain(|b| b.id != id || b.rule.is_some());
        let removed = list.len() != before;
        drop(list);
        self.refilter();
        removed
    }

    pub fn views(&self) -> Vec<BreakpointView> {
        self.read()
            .iter()
            .filter(|b| b.rule.is_none())
            .map(|b| BreakpointView {
                id: b.id,
                filter: b.filter.source().to_owned(),
                control: b.control,
                enabled: b.enabled.load(Ordering::Relaxed),
                hits: b.hits.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Whether any enabled breakpoint could select a message of the session `info`
    /// describes (its facts alone do not rule it out), and whether any such holds
    /// control frames.
    pub fn reach(&self, info: &SessionInfo) -> Option<bool> {
        let facts = info.facts();
        let mut reach = None;
        for b in self.read().iter() {
            if b.enabled.load(Ordering::Relaxed) && b.filter.session_verdict(&facts) != Some(false)
            {
                reach = Some(reach.unwrap_or(false) || b.control);
            }
        }
        reach
    }

    /// What the enabled breakpoints make of a data message of the session `info`
    /// describes from its first `header`: `Some(false)` when none can select it (it goes
    /// on as it comes), `Some(true)` when one surely does, `None` when its payload decides.
    pub fn header_verdict(&self, info: &SessionInfo, header: &FirstHeader) -> Option<bool> {
        let facts = info.facts();
        let header = HeaderFacts {
            dir: header.direction,
            flags: header.first_byte,
            masked: header.masked,
            compressed: header.compressed,
            len: header.len,
        };
        let mut verdict = Some(false);
        for b in self
            .read()
            .iter()
            .filter(|b| b.enabled.load(Ordering::Relaxed))
        {
            match b.filter.header_verdict(&facts, &header) {
                Some(true) => return Some(true),
                Some(false) => {}
                None => verdict = None,
            }
        }
        verdict
    }

    /// The first enabled breakpoint that selects `candidate` of the session `info`
    /// describes, its hit counted.
    pub fn first_match(&self, info: &SessionInfo, candidate: &Candidate<'_>) -> Option<u64> {
        let message = candidate.message;
        let control = message.opcode.is_control();
        let codes: Vec<&str> = message.violations.iter().map(|v| v.code()).collect();
        let record = RecordFacts {
            kind: RecordKind::Message,
            dir: message.direction,
            opcode: message.opcode.bits(),
            flags: candidate.first_byte,
            masked: candidate.masked,
            len: message.data.total,
            frames: message.frames,
            compressed: message.compressed,
            close: close_code(message.opcode, &message.data.data),
            time_us: message.first_time.0,
            violations: &codes,
            payload: &message.data.data,
            stream: None,
            // A live message has no fate yet: it is what is being decided.
            fate: None,
            // Nor tags: a rule that tags it is one that selects it now.
            tags: "",
            origin: Origin::Wire,
            dropped: false,
        };
        let facts = info.facts();
        let prefilter = self
            .prefilter
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // The searches, in one pass over the payload, done once a breakpoint needs them.
        let mut found: Option<SetMatches> = None;
        let list = self.read();
        let hit = list.iter().find(|b| {
            let judges = b.enabled.load(Ordering::Relaxed) && (b.control || !control);
            if !judges {
                return false;
            }
            let search = prefilter
                .as_ref()
                .and_then(|p| Some((p, *p.searches.get(&b.id)?)));
            if let Some((prefilter, index)) = search {
                let found = found.get_or_insert_with(|| prefilter.set.matches(record.payload));
                if !found.matched(index) {
                    return false;
                }
            }
            b.filter.matches_record(&facts, &record)
        })?;
        hit.hits.fetch_add(1, Ordering::Relaxed);
        Some(hit.id)
    }
}

/// The code of a close message's payload.
fn close_code(opcode: Opcode, payload: &[u8]) -> Option<u16> {
    match (opcode, payload) {
        (Opcode::Close, [high, low, ..]) => Some(u16::from_be_bytes([*high, *low])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wstap_wire::{Capture, Direction, MessageRecord, Timestamp};

    fn message(payload: &[u8]) -> MessageRecord {
        MessageRecord {
            direction: Direction::ClientToServer,
            opcode: Opcode::Text,
            frames: 1,
            first_time: Timestamp(0),
            last_time: Timestamp(0),
            compressed: false,
            wire_payload_len: payload.len() as u64,
            data: Capture {
                data: payload.to_vec().into(),
                total: payload.len() as u64,
            },
            violations: Vec::new(),
            incomplete: false,
        }
    }

    /// The first of `filters` that selects `payload`, each evaluated whole.
    fn plainly(filters: &[&str], payload: &[u8]) -> Option<usize> {
        let info = SessionInfo::default();
        let record = message(payload);
        let candidate = Candidate {
            message: &record,
            first_byte: 0x81,
            masked: true,
        };
        filters.iter().position(|f| {
            let one = Breakpoints::default();
            one.add(Filter::parse(f).unwrap(), false);
            one.first_match(&info, &candidate).is_some()
        })
    }

    #[test]
    fn searching_once_for_every_filter_picks_what_each_filter_alone_would() {
        let filters = [
            r#"text~"no message says this 1""#,
            "dir:s2c and text:alpha",
            "text:ALPHA",
            r#"text~"be+ta""#,
            "op:binary or text:gamma",
            r#"payload="delta""#,
            "not text:omega",
        ];
        let together = Breakpoints::default();
        let ids: Vec<u64> = filters
            .iter()
            .map(|f| together.add(Filter::parse(f).unwrap(), false))
            .collect();
        let prefilter = together.prefilter.read().unwrap().clone();
        assert_eq!(
            prefilter.map(|p| p.searches.len()),
            Some(5),
            "five filters require a search"
        );
        let info = SessionInfo::default();
        for payload in [
            &b"alpha"[..],
            b"xx Alpha xx",
            b"beeeta",
            b"BETA",
            b"gamma",
            b"delta",
            b"delta!",
            b"omega",
            b"",
            b"no message says this 1",
        ] {
            let record = message(payload);
            let candidate = Candidate {
                message: &record,
                first_byte: 0x81,
                masked: true,
            };
            let hit = together.first_match(&info, &candidate);
            let expected = plainly(&filters, payload).map(|i| ids[i]);
            assert_eq!(hit, expected, "{:?}", String::from_utf8_lossy(payload));
        }
        // Removed, it is gathered again without it.
        assert!(together.remove(ids[2]));
        let prefilter = together.prefilter.read().unwrap().clone();
        assert_eq!(prefilter.map(|p| p.searches.len()), Some(4));
    }
}
