//! Whole packets of a byte-stream protocol (MQTT over WebSocket), message by message: what
//! filters read of a message whose packets began in earlier messages. A packet belongs to
//! the message where it ends ([`crate::SessionDecoder`] says the same).

use crate::mqtt;
use crate::View;
use wstap_wire::Direction;

/// Joins one session's stream, per direction.
#[derive(Debug, Default)]
pub struct PacketJoiner {
    held: [Vec<u8>; 2],
}

impl PacketJoiner {
    /// A joiner for a session read with `view`, when that view is a byte stream.
    pub fn for_view(view: Option<View>) -> Option<PacketJoiner> {
        (view == Some(View::Mqtt)).then(PacketJoiner::default)
    }

    /// Says the message just pushed going `dir` was not all there: what it began is lost.
    pub fn lose(&mut self, dir: Direction) {
        self.held[usize::from(dir == Direction::ServerToClient)].clear();
    }

    /// Takes the next data message going `dir`: `None` when the packets ending in it are
    /// exactly its bytes (the common case: read the payload itself), else the bytes of
    /// the packets that end in it, earlier messages' parts included (empty: it ends none).
    pub fn push(&mut self, dir: Direction, payload: &[u8]) -> Option<Vec<u8>> {
        let held = &mut self.held[usize::from(dir == Direction::ServerToClient)];
        if held.is_empty() {
            match mqtt::whole_packets(payload) {
                Some(whole) if whole == payload.len() => return None,
                Some(whole) => {
                    held.extend_from_slice(&payload[whole..]);
                    return Some(payload[..whole].to_vec());
                }
                None => return None,
            }
        }
        held.extend_from_slice(payload);
        match mqtt::whole_packets(held) {
            Some(whole) => {
                let rest = held.split_off(whole);
                Some(std::mem::replace(held, rest))
            }
            // Not MQTT after all, or more than a view buffers: start over.
            None => {
                held.clear();
                None
            }
        }
    }
}

/// One session's view as its messages go by: chosen by its handshake (or a person) and
/// else by its first messages, and, for a byte-stream view, the packets each message ends.
/// The capture writer and the filters' in-memory side each keep one per session, so both
/// read a message the same way.
#[derive(Debug, Default)]
pub struct ViewTracker {
    detector: crate::Detector,
    joiner: Option<PacketJoiner>,
}

/// What a data message told a [`ViewTracker`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The view this message decided, if it did.
    pub decided: Option<View>,
    /// The packets that end in it, when they are not its own bytes ([`PacketJoiner::push`]).
    pub joined: Option<Vec<u8>>,
}

impl ViewTracker {
    /// Starts from `detector` (a handshake's, or a chosen view).
    pub fn new(detector: crate::Detector) -> ViewTracker {
        let joiner = PacketJoiner::for_view(detector.view());
        ViewTracker { detector, joiner }
    }

    /// The view so far.
    pub fn view(&self) -> Option<View> {
        self.detector.view()
    }

    /// Takes the next data message going `dir`; `whole`: whether the payload is all
    /// there (a payload the capture cut short ends what it began).
    pub fn message(&mut self, dir: Direction, payload: &[u8], text: bool, whole: bool) -> Seen {
        let mut seen = Seen::default();
        if !self.detector.is_settled() {
            seen.decided = self.detector.observe(payload, text);
            if seen.decided.is_some() {
                self.joiner = PacketJoiner::for_view(seen.decided);
            }
        }
        if let Some(joiner) = self.joiner.as_mut() {
            seen.joined = joiner.push(dir, payload);
            if !whole {
                joiner.lose(dir);
            }
        }
        seen
    }
}
