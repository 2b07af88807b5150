//! Rules: breakpoints that decide by themselves. A rule selects messages with a filter,
//! as a breakpoint does, and the message it holds is then rewritten, delayed, dropped,
//! answered, or its session closed or aborted, with no person at the keyboard; a rule
//! that says `break` leaves the message held for one. Everything a rule does goes through
//! the session's mailbox as the orders a person would give, so it is carried out, kept
//! byte-exact where nothing changed, and recorded (decided `by: rule`) the same way.
//!
//! A timer is a rule that acts on time rather than on a message: every `every`, each live
//! session its filter selects gets a message of wstap's own (a ping every 5 s, say).

mod file;

pub use file::{parse_rules, RulesError};
use serde_json::Value;
use std::time::Duration;
use wstap_filter::Filter;
use wstap_relay::Side;
use wstap_wire::Opcode;

/// A rule: see the module documentation. What it does to a message it selects, in this
/// order: its replacements, its delay, then its outcome.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its name, as the rules file gives it (or `rule N`).
    pub name: String,
    /// The messages it selects.
    pub filter: Filter,
    /// Whether it selects pings, pongs and closes too.
    pub control: bool,
    /// Rewrites of the payload, in order.
    pub replace: Vec<Replacement>,
    /// How long the message waits before its outcome (later messages of its direction
    /// wait behind it: order is kept).
    pub delay: Option<Duration>,
    /// A label it gives the message, which the filter `tag:NAME` selects in the capture.
    pub tag: Option<String>,
    /// What becomes of it.
    pub outcome: Outcome,
}

/// One rewrite of a payload.
#[derive(Debug, Clone)]
pub enum Replacement {
    /// In a text message, every match of `pattern` by `with` (`$1`, `${name}`: groups).
    Regex {
        /// What to find.
        pattern: regex::Regex,
        /// What replaces it.
        with: String,
    },
    /// In a text message holding a JSON document, the value at `path` (`a.b.0`) set to
    /// `value` (made if missing under an object).
    Json {
        /// Where.
        path: Vec<String>,
        /// What.
        value: Value,
    },
    /// In a binary message, every occurrence of `find` by `with`.
    Bytes {
        /// What to find (not empty).
        find: Vec<u8>,
        /// What replaces it.
        with: Vec<u8>,
    },
}

/// What becomes of a message a rule selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It goes on (rewritten, if a replacement changed it).
    Forward,
    /// It never goes out.
    Drop,
    /// It never goes out; `opcode` and `payload` go back to its sender instead (a mock
    /// of one call).
    Respond {
        /// Text or binary.
        opcode: Opcode,
        /// The answer.
        payload: Vec<u8>,
    },
    /// It goes on, then the session is closed toward `to` (`None`: both sides).
    Close {
        /// Who gets the close.
        to: Option<Side>,
        /// Its code.
        code: u16,
        /// Its reason.
        reason: String,
    },
    /// It never goes out, and both connections are dropped without a close (the client
    /// sees 1006).
    Abort,
    /// It stays held for a person, as a breakpoint holds it.
    Break,
}

impl Rule {
    /// The payload after the replacements (the same bytes when none applied).
    pub fn rewrite(&self, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut out = payload.to_vec();
        for replacement in &self.replace {
            out = replacement.apply(opcode, &out).unwrap_or(out);
        }
        out
    }
}

impl Replacement {
    /// The rewritten payload, or `None` when this replacement does not apply to it.
    fn apply(&self, opcode: Opcode, payload: &[u8]) -> Option<Vec<u8>> {
        match self {
            Replacement::Regex { pattern, with } => {
                let text = std::str::from_utf8(payload)
                    .ok()
                    .filter(|_| opcode == Opcode::Text)?;
                Some(
                    pattern
                        .replace_all(text, with.as_str())
                        .into_owned()
                        .into_bytes(),
                )
            }
            Replacement::Json { path, value } => {
                if opcode != Opcode::Text {
                    return None;
                }
                let mut document: Value = serde_json::from_slice(payload).ok()?;
                set(&mut document, path, value.clone()).then_some(())?;
                serde_json::to_vec(&document).ok()
            }
            Replacement::Bytes { find, with } => {
                if opcode != Opcode::Binary || find.is_empty() {
                    return None;
                }
                let mut out = Vec::with_capacity(payload.len());
                let mut at = 0;
                while at < payload.len() {
                    if payload[at..].starts_with(find) {
                        out.extend_from_slice(with);
                        at += find.len();
                    } else {
                        out.push(payload[at]);
                        at += 1;
                    }
                }
                Some(out)
            }
        }
    }
}

/// Sets the value at `path` in `document`; whether it could (the path runs through
/// objects, made as needed, and arrays' existing elements).
fn set(document: &mut Value, path: &[String], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        *document = value;
        return true;
    };
    let mut at = document;
    for key in parents {
        let next = match at {
            Value::Object(map) => Some(
                map.entry(key.clone())
                    .or_insert(Value::Object(Default::default())),
            ),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(next) => at = next,
            None => return false,
        }
    }
    match at {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            true
        }
        Value::Array(items) => match last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
            Some(item) => {
                *item = value;
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// A timer: see the module documentation.
#[derive(Debug, Clone)]
pub struct Timer {
    /// Its name, as the rules file gives it (or `timer N`).
    pub name: String,
    /// The sessions it sends on (session fields only: it reads no message).
    pub filter: Filter,
    /// How often.
    pub every: Duration,
    /// Who gets the message.
    pub to: Side,
    /// Text, binary, ping or pong.
    pub opcode: Opcode,
    /// What it carries.
    pub payload: Vec<u8>,
}

/// Rules and timers, as a rules file (or the API) gives them, in order.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// The rules.
    pub rules: Vec<Rule>,
    /// The timers.
    pub timers: Vec<Timer>,
    /// Network conditions (`[[conditions]]`).
    pub conditions: Vec<crate::NetworkConditions>,
}

impl RuleSet {
    /// How many rules, timers and conditions.
    pub fn len(&self) -> usize {
        self.rules.len() + self.timers.len() + self.conditions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A rule or a timer as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleView {
    /// Its number (shared with breakpoints: the `breakpoint` of what it held).
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its filter, as written.
    pub filter: String,
    /// Messages it has selected, or (a timer) sent.
    pub hits: u64,
    /// A timer's period.
    pub every: Option<Duration>,
    /// Network conditions: what they are, in their own language (`to:client, latency:200ms`).
    pub conditions: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(replace: Vec<Replacement>) -> Rule {
        Rule {
            name: "test".into(),
            filter: Filter::parse("").unwrap(),
            control: false,
            replace,
            delay: None,
            tag: None,
            outcome: Outcome::Forward,
        }
    }

    #[test]
    fn replacements_apply_in_order_to_the_messages_they_fit() {
        let r = rule(vec![
            Replacement::Regex {
                pattern: regex::Regex::new(r"qty=(\d+)").unwrap(),
                with: "qty=1$1".into(),
            },
            Replacement::Regex {
                pattern: regex::Regex::new("buy").unwrap(),
                with: "sell".into(),
            },
        ]);
        assert_eq!(r.rewrite(Opcode::Text, b"buy qty=5"), b"sell qty=15");
        // Not text: left alone.
        assert_eq!(r.rewrite(Opcode::Binary, b"buy qty=5"), b"buy qty=5");
        assert_eq!(r.rewrite(Opcode::Text, &[0xff, 0xfe]), [0xff, 0xfe]);
    }

    #[test]
    fn a_json_path_is_set_where_it_runs_and_nothing_else_changes() {
        let r = rule(vec![Replacement::Json {
            path: vec!["order".into(), "qty".into()],
            value: serde_json::json!(1),
        }]);
        let out = r.rewrite(Opcode::Text, br#"{"order":{"qty":5,"sku":"x"}}"#);
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value, serde_json::json!({"order": {"qty": 1, "sku": "x"}}));
        let made = r.rewrite(Opcode::Text, br#"{"other":1}"#);
        let value: Value = serde_json::from_slice(&made).unwrap();
        assert_eq!(value, serde_json::json!({"other": 1, "order": {"qty": 1}}));
        // Not JSON, or a path through a string: unchanged.
        assert_eq!(r.rewrite(Opcode::Text, b"not json"), b"not json");
        assert_eq!(
            r.rewrite(Opcode::Text, br#"{"order":"x"}"#),
            br#"{"order":"x"}"#
        );
        let in_array = rule(vec![Replacement::Json {
            path: vec!["1".into()],
            value: serde_json::json!("b"),
        }]);
        assert_eq!(
            in_array.rewrite(Opcode::Text, br#"["a","x"]"#),
            br#"["a","b"]"#
        );
        assert_eq!(in_array.rewrite(Opcode::Text, br#"["a"]"#), br#"["a"]"#);
    }

    #[test]
    fn bytes_are_replaced_in_binary_messages_only() {
        let r = rule(vec![Replacement::Bytes {
            find: vec![1, 2],
            with: vec![9],
        }]);
        assert_eq!(r.rewrite(Opcode::Binary, &[1, 2, 3, 1, 2, 1]), [9, 3, 9, 1]);
        assert_eq!(r.rewrite(Opcode::Text, &[1, 2]), [1, 2]);
    }
}
