//! What `wstap mock` plays: a recorded session's server side as steps, and how a client's
//! messages are matched with the client messages of the recording. No I/O here.
//!
//! A server message is an **answer** when it began within the answer window after a
//! client message ended (the last one before it): it goes out that long after the client
//! sends the corresponding message. Any other server message is **unprompted**: it goes
//! out at its recorded offset from the opening. Steps go out in recorded order, so the
//! server's side keeps its order whatever the client does.

use crate::compare::remove;
use serde_json::Value;
use std::time::Duration;
use wstap_wire::deflate::Extension;
use wstap_wire::{Direction, Opcode};

/// A recorded message of either side: its number in the session, opcode and data
/// (inflated when it was compressed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub seq: u64,
    pub opcode: Opcode,
    pub data: Vec<u8>,
}

/// A message as read from the capture, before it is sorted into the script.
#[derive(Debug, Clone)]
pub struct Heard {
    pub seq: u64,
    pub dir: Direction,
    pub opcode: Opcode,
    pub data: Vec<u8>,
    pub start_us: i64,
    pub end_us: i64,
}

/// When a server message goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// At this offset from the opening of the connection.
    At(Duration),
    /// This long after the client sends its counterpart of recorded client message
    /// `client` (an index into [`Script::client`]).
    After { client: usize, delay: Duration },
}

/// A server message and when it goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub message: Recorded,
    pub trigger: Trigger,
}

/// One recorded session, ready to be served.
#[derive(Debug, Clone)]
pub struct Script {
    pub session: u64,
    /// The request target the client asked for (path and query).
    pub target: String,
    pub subprotocol: Option<String>,
    /// The `permessage-deflate` the server accepted, as it answered it.
    pub deflate: Option<Extension>,
    /// The client's data messages, in order.
    pub client: Vec<Recorded>,
    /// The server's data messages, and its close if it sent one first.
    pub steps: Vec<Step>,
}

impl Script {
    /// Sorts a session's messages (in order) into client messages and server steps;
    /// `opened_us` is when the handshake was answered.
    pub fn steps_of(
        messages: impl IntoIterator<Item = Heard>,
        opened_us: i64,
        window: Duration,
    ) -> (Vec<Recorded>, Vec<Step>) {
        let mut client = Vec::new();
        let mut steps = Vec::new();
        let mut last_client: Option<(usize, i64)> = None;
        let mut client_closed = false;
        for heard in messages {
            let data_message = matches!(heard.opcode, Opcode::Text | Opcode::Binary);
            let recorded = Recorded {
                seq: heard.seq,
                opcode: heard.opcode,
                data: heard.data,
            };
            match heard.dir {
                Direction::ClientToServer if data_message => {
                    last_client = Some((client.len(), heard.end_us));
                    client.push(recorded);
                }
                Direction::ClientToServer => client_closed |= heard.opcode == Opcode::Close,
                // The server's answer to the client's close is the mock's own to give.
                Direction::ServerToClient if data_message || !client_closed => {
                    if !data_message && heard.opcode != Opcode::Close {
                        continue;
                    }
                    let since = |from_us: i64| micros(heard.start_us - from_us);
                    let trigger = match last_client {
                        Some((index, end_us)) if since(end_us) <= window => Trigger::After {
                            client: index,
                            delay: since(end_us),
                        },
                        _ => Trigger::At(since(opened_us)),
                    };
                    let close = recorded.opcode == Opcode::Close;
                    steps.push(Step {
                        message: recorded,
                        trigger,
                    });
                    if close {
                        break;
                    }
                }
                Direction::ServerToClient => {}
            }
        }
        (client, steps)
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// How a client's messages are paired with the recording's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Matching {
    /// The first recorded client message not yet matched that is equal (byte for byte,
    /// or as the same JSON document, less the `--ignore` paths).
    Content,
    /// The n-th message the client sends is the n-th recorded, whatever it holds.
    Order,
}

/// What a client's message was, against the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// Recorded client message `index`, equal.
    Expected(usize),
    /// Recorded client message `index` by its place, but not equal.
    Differs(usize),
    /// Nothing recorded corresponds.
    Unexpected,
}

/// Pairs a connection's client messages with the recorded ones.
#[derive(Debug)]
pub struct Matcher {
    matching: Matching,
    ignore: Vec<Vec<String>>,
    taken: Vec<bool>,
    next: usize,
}

impl Matcher {
    /// A matcher for `count` recorded client messages; `ignore` are JSON paths
    /// (`id`, `params.0.ts`) left out of comparisons.
    pub fn new(count: usize, matching: Matching, ignore: &[String]) -> Self {
        Matcher {
            matching,
            ignore: ignore
                .iter()
                .map(|path| path.split('.').map(str::to_owned).collect())
                .collect(),
            taken: vec![false; count],
            next: 0,
        }
    }

    /// Which recorded message the client's `data` (of `opcode`) corresponds to.
    pub fn hear(&mut self, recorded: &[Recorded], opcode: Opcode, data: &[u8]) -> Match {
        match self.matching {
            Matching::Order => {
                let index = self.next;
                let Some(expected) = recorded.get(index) else {
                    return Match::Unexpected;
                };
                self.next += 1;
                self.taken[index] = true;
                if expected.opcode == opcode && self.equal(&expected.data, data) {
                    Match::Expected(index)
                } else {
                    Match::Differs(index)
                }
            }
            Matching::Content => {
                let found = recorded.iter().enumerate().position(|(i, r)| {
                    !self.taken[i] && r.opcode == opcode && self.equal(&r.data, data)
                });
                match found {
                    Some(index) => {
                        self.taken[index] = true;
                        Match::Expected(index)
                    }
                    None => Match::Unexpected,
                }
            }
        }
    }

    /// Byte for byte, or as JSON documents (spacing and key order aside) less the
    /// ignored paths.
    fn equal(&self, a: &[u8], b: &[u8]) -> bool {
        if a == b {
            return true;
        }
        match (
            serde_json::from_slice::<Value>(a),
            serde_json::from_slice::<Value>(b),
        ) {
            (Ok(mut a), Ok(mut b)) => {
                for path in &self.ignore {
                    remove(&mut a, path);
                    remove(&mut b, path);
                }
                a == b
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heard(seq: u64, dir: Direction, opcode: Opcode, text: &str, at_ms: i64) -> Heard {
        Heard {
            seq,
            dir,
            opcode,
            data: text.as_bytes().to_vec(),
            start_us: at_ms * 1000,
            end_us: at_ms * 1000 + 10,
        }
    }

    #[test]
    fn answers_follow_their_client_message_and_the_rest_keep_their_offsets() {
        use Direction::{ClientToServer as C, ServerToClient as S};
        let messages = vec![
            heard(0, S, Opcode::Text, "welcome", 5),
            heard(1, C, Opcode::Text, "hello", 100),
            heard(2, S, Opcode::Text, "hi there", 130),
            heard(3, S, Opcode::Ping, "", 140),
            heard(4, S, Opcode::Text, "tick", 3_000),
            heard(5, S, Opcode::Close, "\u{3}\u{e8}", 3_100),
            heard(6, C, Opcode::Close, "\u{3}\u{e8}", 3_110),
        ];
        let (client, steps) = Script::steps_of(messages, 0, Duration::from_secs(1));
        assert_eq!(client.len(), 1);
        assert_eq!(client[0].data, b"hello");
        let triggers: Vec<Trigger> = steps.iter().map(|s| s.trigger).collect();
        assert_eq!(
            triggers,
            [
                Trigger::At(Duration::from_millis(5)),
                Trigger::After {
                    client: 0,
                    delay: Duration::from_micros(29_990)
                },
                Trigger::At(Duration::from_millis(3_000)),
                Trigger::At(Duration::from_millis(3_100)),
            ]
        );
        assert_eq!(steps[3].message.opcode, Opcode::Close);
    }

    #[test]
    fn the_servers_answer_to_a_client_close_is_not_played() {
        use Direction::{ClientToServer as C, ServerToClient as S};
        let messages = vec![
            heard(0, C, Opcode::Close, "", 10),
            heard(1, S, Opcode::Close, "", 11),
        ];
        let (_, steps) = Script::steps_of(messages, 0, Duration::from_secs(1));
        assert!(steps.is_empty());
    }

    fn recorded(texts: &[&str]) -> Vec<Recorded> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| Recorded {
                seq: i as u64,
                opcode: Opcode::Text,
                data: t.as_bytes().to_vec(),
            })
            .collect()
    }

    #[test]
    fn content_matching_takes_each_recorded_message_once_and_ignores_paths() {
        let client = recorded(&[r#"{"id":1,"op":"a"}"#, r#"{"id":2,"op":"b"}"#, "ping"]);
        let mut matcher = Matcher::new(3, Matching::Content, &["id".to_owned()]);
        let hear = |m: &mut Matcher, text: &str| m.hear(&client, Opcode::Text, text.as_bytes());
        assert_eq!(
            hear(&mut matcher, r#"{"op":"b","id":77}"#),
            Match::Expected(1)
        );
        assert_eq!(
            hear(&mut matcher, r#"{"op":"b","id":78}"#),
            Match::Unexpected
        );
        assert_eq!(hear(&mut matcher, "ping"), Match::Expected(2));
        assert_eq!(
            hear(&mut matcher, r#"{"id":9,"op":"a"}"#),
            Match::Expected(0)
        );
        let mut strict = Matcher::new(3, Matching::Content, &[]);
        assert_eq!(hear(&mut strict, r#"{"op":"a","id":2}"#), Match::Unexpected);
        assert_eq!(
            hear(&mut strict, r#"{ "op": "a", "id": 1 }"#),
            Match::Expected(0)
        );
        assert_eq!(hear(&mut strict, "pong"), Match::Unexpected);
    }

    #[test]
    fn order_matching_pairs_by_place_and_says_when_content_differs() {
        let client = recorded(&["a", "b"]);
        let mut matcher = Matcher::new(2, Matching::Order, &[]);
        assert_eq!(
            matcher.hear(&client, Opcode::Text, b"a"),
            Match::Expected(0)
        );
        assert_eq!(matcher.hear(&client, Opcode::Text, b"x"), Match::Differs(1));
        assert_eq!(matcher.hear(&client, Opcode::Text, b"b"), Match::Unexpected);
    }
}
