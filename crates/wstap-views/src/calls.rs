//! Pairs calls with their answers within a session: each item that makes a call (a
//! JSON-RPC request, a SignalR invocation, an MQTT PUBLISH at QoS 1, ...) waits for the
//! first item coming the other way with the same key ([`crate::Call::key`]), and the time
//! between them is the call's latency. Sans-IO: the caller gives each message's time.

use crate::{Call, Role};
use std::collections::HashMap;
use wstap_wire::Direction;

/// A call that was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// What was called (a method, target, event, topic), or the key's kind.
    pub name: String,
    /// The message that made the call, as the caller numbers messages.
    pub call: u64,
    /// The message that answered it.
    pub answer: u64,
    /// Microseconds between them.
    pub latency_us: i64,
}

/// A call not (yet) answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unanswered {
    /// What was called.
    pub name: String,
    /// The message that made the call.
    pub call: u64,
    /// When, µs since the epoch.
    pub time_us: i64,
}

#[derive(Debug)]
struct Waiting {
    name: String,
    message: u64,
    time_us: i64,
}

/// Pairs one session's calls and answers, message by message, in order. Each side
/// numbers its own calls (an MQTT client and its broker may both PUBLISH with id 1), so a
/// call waits under its key and its direction.
#[derive(Debug, Default)]
pub struct Pairer {
    waiting: HashMap<(String, bool), Waiting>,
}

fn c2s(dir: Direction) -> bool {
    dir == Direction::ClientToServer
}

impl Pairer {
    /// A pairer with nothing waiting.
    pub fn new() -> Pairer {
        Pairer::default()
    }

    /// Takes an item's call of `message` going `dir` at `time_us`; returns the pair when
    /// it answers a call waiting.
    pub fn observe(
        &mut self,
        call: &Call,
        dir: Direction,
        message: u64,
        time_us: i64,
    ) -> Option<Answered> {
        match call.role {
            Role::Call => {
                let name = call
                    .name
                    .clone()
                    .unwrap_or_else(|| kind_of(&call.key).to_owned());
                // A key used again before its answer: the newer call is the one waiting.
                self.waiting.insert(
                    (call.key.clone(), c2s(dir)),
                    Waiting {
                        name,
                        message,
                        time_us,
                    },
                );
                None
            }
            Role::Answer => {
                // An answer answers a call made the other way.
                let waiting = self.waiting.remove(&(call.key.clone(), !c2s(dir)))?;
                Some(Answered {
                    name: waiting.name,
                    call: waiting.message,
                    answer: message,
                    latency_us: time_us - waiting.time_us,
                })
            }
        }
    }

    /// The calls still waiting, oldest first.
    pub fn unanswered(&self) -> Vec<Unanswered> {
        let mut list: Vec<Unanswered> = self
            .waiting
            .values()
            .map(|w| Unanswered {
                name: w.name.clone(),
                call: w.message,
                time_us: w.time_us,
            })
            .collect();
        list.sort_by_key(|u| (u.time_us, u.call));
        list
    }
}

/// The protocol part of a key (`jsonrpc` of `jsonrpc:7`).
fn kind_of(key: &str) -> &str {
    key.split(':').next().unwrap_or(key)
}

/// Latency figures of one name's answered calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyStats {
    /// What was called.
    pub name: String,
    /// How many calls were answered.
    pub count: usize,
    /// Median latency, µs.
    pub p50_us: i64,
    /// 99th percentile, µs.
    pub p99_us: i64,
    /// The longest, µs.
    pub max_us: i64,
}

/// Per name, the latency figures of `answered` (names in order of first appearance).
pub fn latency_stats(answered: &[Answered]) -> Vec<LatencyStats> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_name: HashMap<&str, Vec<i64>> = HashMap::new();
    for a in answered {
        by_name
            .entry(&a.name)
            .or_insert_with(|| {
                order.push(&a.name);
                Vec::new()
            })
            .push(a.latency_us);
    }
    order
        .into_iter()
        .map(|name| {
            let mut latencies = by_name.remove(name).unwrap_or_default();
            latencies.sort_unstable();
            LatencyStats {
                name: name.to_owned(),
                count: latencies.len(),
                p50_us: percentile(&latencies, 50),
                p99_us: percentile(&latencies, 99),
                max_us: latencies.last().copied().unwrap_or(0),
            }
        })
        .collect()
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}
