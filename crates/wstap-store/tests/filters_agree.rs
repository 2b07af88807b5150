//! The filter language's two evaluators agree: for random sessions of random frames,
//! written through the real writer, and random filters, the store's SQL selects exactly
//! the frames, messages and sessions the in-memory predicate selects.

mod support;

use proptest::prelude::*;
use std::collections::HashMap;
use support::*;
use wstap_filter::{Filter, RecordFacts};
use wstap_store::facts::{frame_facts, message_facts, SessionSummary};
use wstap_store::{Capture, Rows};
use wstap_trace::view::{FrameView, MessageView};
use wstap_trace::{BusEvent, Outcome};
use wstap_wire::{Direction, FrameBuilder, Opcode, Record};

const HOSTS: [&str; 3] = ["chat.example.com", "api.test", "X.org"];
const PATHS: [&str; 3] = ["/", "/chat?room=1", "/ws/Live"];
const WORDS: [&str; 6] = ["hello", "PING", "café", "{}", "ü", "needle"];

fn payload() -> impl Strategy<Value = Vec<u8>> {
    let json = (
        0i64..100,
        prop::sample::select(WORDS.to_vec()),
        any::<bool>(),
        prop::option::of(-5.5f64..5.5),
    )
        .prop_map(|(id, word, flag, real)| {
            let mut value = serde_json::json!({"id": id, "user": {"name": word}, "ok": flag, "tags": [word, id]});
            if let Some(real) = real {
                value["real"] = serde_json::json!(real);
            }
            if id % 7 == 0 {
                value["nothing"] = serde_json::Value::Null;
            }
            serde_json::to_vec(&value).unwrap()
        });
    prop_oneof![
        json,
        prop::sample::select(WORDS.to_vec()).prop_map(|w| format!("say {w} now").into_bytes()),
        prop::collection::vec(any::<u8>(), 0..40),
        Just(b"[1, 2, 3]".to_vec()),
        Just(br#"{"id": "42"}"#.to_vec()),
        protocol_payload(),
    ]
}

/// Messages of the protocols and formats the views decode.
fn protocol_payload() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        b"{\"type\":1,\"invocationId\":\"3\",\"target\":\"SendMessage\",\"arguments\":[\"John\",\"hi\"]}\x1e".to_vec(),
        b"{\"type\":3,\"invocationId\":\"3\",\"result\":1}\x1e{\"type\":6}\x1e".to_vec(),
        b"{\"protocol\":\"json\",\"version\":1}\x1e".to_vec(),
        br#"42["chat","hi"]"#.to_vec(),
        br#"42/admin,7["kick","Adam"]"#.to_vec(),
        b"SEND\ndestination:/topic/chat\n\nhello\x00".to_vec(),
        b"MESSAGE\ndestination:/queue/x\nsubscription:0\n\nhi\x00".to_vec(),
        // MQTT PUBLISH sensors/t1 at QoS 1, id 5; and a SUBSCRIBE to sensors/#.
        b"\x32\x11\x00\x0asensors/t1\x00\x05{}\x00".to_vec(),
        b"\x82\x0e\x00\x09\x00\x09sensors/#\x01".to_vec(),
        br#"{"id":"1","type":"subscribe","payload":{"query":"subscription OnMessage { m }"}}"#.to_vec(),
        br#"{"jsonrpc":"2.0","method":"eth_subscribe","params":[],"id":1}"#.to_vec(),
        br#"[{"jsonrpc":"2.0","result":7,"id":2},{"jsonrpc":"2.0","method":"ping"}]"#.to_vec(),
        // MessagePack {"a": 1, "b": [true]} and CBOR {"n": [1, -2]}.
        b"\x82\xa1a\x01\xa1b\x91\xc3".to_vec(),
        b"\xa1\x61n\x82\x01\x21".to_vec(),
    ])
}

fn frame() -> impl Strategy<Value = (Direction, Vec<u8>)> {
    (
        any::<bool>(),
        prop::sample::select(vec![0u8, 1, 1, 2, 8, 9, 10, 3, 11]),
        any::<bool>(),
        0u8..8,
        any::<bool>(),
        payload(),
        prop::sample::select(vec![1000u16, 1001, 1006, 4001]),
    )
        .prop_map(|(c2s, opcode, fin, rsv, masked, payload, code)| {
            let dir = if c2s {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            };
            let mut builder = FrameBuilder::new(Opcode::from_bits(opcode))
                .fin(fin || opcode >= 8)
                .rsv1(rsv & 4 != 0)
                .rsv2(rsv & 2 != 0)
                .rsv3(rsv & 1 != 0);
            if masked {
                builder = builder.mask([9, 8, 7, 6]);
            }
            let payload = match opcode {
                8 => {
                    let mut p = code.to_be_bytes().to_vec();
                    p.extend_from_slice(b"bye");
                    p
                }
                9..=11 => payload.into_iter().take(100).collect(),
                _ => payload,
            };
            (dir, builder.encode(&payload))
        })
}

fn session(id: u64) -> impl Strategy<Value = SessionSpec> {
    (
        prop::sample::select(HOSTS.to_vec()),
        prop::sample::select(vec![443u16, 8080]),
        prop::sample::select(PATHS.to_vec()),
        any::<bool>(),
        prop::sample::select(vec![101u16, 101, 403]),
        prop::option::of(prop::sample::select(vec!["chat", "mqtt"])),
        prop::option::of(prop::sample::select(vec![
            Outcome::Closed,
            Outcome::Aborted,
            Outcome::Error,
        ])),
        prop::collection::vec(frame(), 0..10),
    )
        .prop_map(
            move |(host, port, path, tls, status, subprotocol, outcome, frames)| SessionSpec {
                id,
                host: host.into(),
                port,
                path: path.into(),
                tls,
                status,
                subprotocol: subprotocol.map(Into::into),
                deflate: id.is_multiple_of(2),
                outcome,
                frames,
            },
        )
}

/// An MQTT session whose client writes each packet in pieces, as MQTT.js does: a
/// SUBSCRIBE and a PUBLISH at QoS 1, each cut into messages at `cuts`; protocol fields
/// must read the packets where they end.
fn mqtt_session(id: u64) -> impl Strategy<Value = SessionSpec> {
    prop::collection::vec(1usize..30, 1..5).prop_map(move |cuts| {
        let stream: Vec<u8> = [
            &b"\x82\x0e\x00\x09\x00\x09sensors/#\x01"[..],
            b"\x32\x11\x00\x0asensors/t1\x00\x05{}\x00",
        ]
        .concat();
        let mut frames = Vec::new();
        let mut at = 0;
        for cut in cuts.iter().cycle() {
            if at >= stream.len() {
                break;
            }
            let end = (at + cut).min(stream.len());
            let frame = FrameBuilder::new(Opcode::Binary)
                .fin(true)
                .mask([1, 2, 3, 4])
                .encode(&stream[at..end]);
            frames.push((Direction::ClientToServer, frame));
            at = end;
        }
        SessionSpec {
            id,
            host: "broker.test".into(),
            port: 443,
            path: "/mqtt".into(),
            tls: false,
            status: 101,
            subprotocol: Some("mqtt".into()),
            deflate: false,
            outcome: Some(Outcome::Closed),
            frames,
        }
    })
}

fn term() -> impl Strategy<Value = String> {
    let word = prop::sample::select(WORDS.to_vec());
    prop_oneof![
        prop::sample::select(vec![
            "op:text",
            "op:binary",
            "op:cont",
            "op:close",
            "op:ping,pong",
            "op:control",
            "op:3",
            "dir:c2s",
            "dir:s2c",
            "fin",
            "rsv1",
            "rsv2:false",
            "masked",
            "compressed",
            "tls",
            "violation",
            "violation:unmasked_client_frame",
            "violation:reserved_opcode",
            "violation:invalid_utf8",
            "violation:invalid_close_code",
            "state:open",
            "state:closed",
            "state:error",
            "kind:websocket",
            "status:101",
            "status:400..499",
            "subprotocol:chat",
            "subprotocol:*",
            "extension:permessage-deflate",
            "host:*.example.com",
            "host:x.org",
            "host~^api",
            "path:/chat*",
            "url~room=\\d",
            "client:127.0.0.1:*",
            "port>1000",
            "session:2",
            "session:1..2",
            "close:1000",
            "close:1000..1001",
            "json.id",
            "json.user.name",
            "json.ok == true",
            "json.ok == false",
            "json.nothing == null",
            "json.tags[1]",
            "json.real > 0",
            "json.real <= -1.5",
            "json.id == \"42\"",
            "frames>1",
            "len>20",
            "len:0",
            "len<=5",
            "time>2026-11-30T00:00:00Z",
            "time<2026-01-01",
            "held",
            "held:false",
            "fate:held",
            "fate:forwarded",
            "fate:dropped",
            "fate:edited",
            "fate:timed_out",
            "fate:lost",
            "tag:slow",
            "tag:vip",
            "tag:slow and not tag:vip",
            "origin:wire",
            "origin:edited",
            "origin:injected",
            "origin:resent",
            "-origin:wire",
            "signalr.target == \"SendMessage\"",
            "signalr.type:invocation",
            "signalr.type:handshake",
            "signalr.id == 3",
            "signalr.target",
            "socketio.event == \"chat\"",
            "socketio.namespace:/admin",
            "socketio.ack > 5",
            "mqtt.topic ~ \"^sensors/\"",
            "mqtt.type:publish",
            "mqtt.qos >= 1",
            "mqtt.id == 9",
            "stomp.command:SEND",
            "stomp.destination:/topic/*",
            "stomp.subscription",
            "graphql.type == \"subscribe\"",
            "graphql.operation:OnMessage",
            "jsonrpc.method:eth_*",
            "jsonrpc.id == 2",
            "jsonrpc.type:result",
            "jsonrpc.method != \"ping\"",
            "msgpack.a == 1",
            "msgpack.b[0] == true",
            "msgpack.b",
            "cbor.n[1] < 0",
            "cbor.n",
        ])
        .prop_map(str::to_owned),
        (
            0i64..100,
            prop::sample::select(vec!["==", ">", "<", ">=", "<=", "!="])
        )
            .prop_map(|(n, op)| format!("json.id {op} {n}")),
        word.clone().prop_map(|w| format!("\"{w}\"")),
        word.clone().prop_map(|w| w.to_uppercase()),
        word.clone()
            .prop_map(|w| format!("text~\"(?i){}\"", regex::escape(w))),
        word.prop_map(|w| format!("json.user.name == \"{w}\"")),
    ]
}

fn filter() -> impl Strategy<Value = String> {
    term().prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("-{a} {b}")),
        ]
    })
}

/// What breakpoints did to the messages of `events`: after a message's record, `choices`
/// (one per message, round) say whether it was held, and what became of it then (nothing
/// yet, or a decision), or whether wstap injected (or resent) a message there, as
/// interventions and the messages wstap wrote in the event stream, the way the engine
/// publishes them.
fn with_interventions(events: Vec<BusEvent>, choices: &[u8]) -> Vec<BusEvent> {
    use wstap_trace::{Action, Decider, Event, Intervention, Message, MessageOrigin};
    let mut out = Vec::with_capacity(events.len());
    let mut held = 0;
    let mut choices = choices.iter().cycle();
    let time = chrono::DateTime::from_timestamp_micros(1_796_000_000_000_000).unwrap();
    for event in events {
        let ended = ended_by(out.last(), &event);
        out.push(event);
        let Some((session, dir, frame)) = ended else {
            continue;
        };
        let choice = choices.next().copied().unwrap_or(0);
        let written = |origin, held| {
            let payload = format!("{} {session}/{frame}", MessageOrigin::name(origin));
            let opcode = if choice % 3 == 0 {
                Opcode::Binary
            } else {
                Opcode::Text
            };
            let mut builder = FrameBuilder::new(opcode);
            if dir == Direction::ClientToServer {
                builder = builder.mask([1, 2, 3, 4]);
            }
            let wire = builder.encode(payload.as_bytes());
            let message = Message::built(
                session,
                time,
                dir,
                origin,
                opcode,
                payload.into_bytes(),
                wire,
            );
            BusEvent::Event(Box::new(Event::Message(Message { held, ..message })))
        };
        let decision = match choice % 8 {
            0 => continue,
            1 | 2 => {
                let origin = if choice % 16 < 8 {
                    MessageOrigin::Injected
                } else {
                    MessageOrigin::Resent
                };
                out.push(written(origin, None));
                continue;
            }
            3 => None,
            4 => Some(Action::Forwarded),
            5 => Some(Action::Dropped),
            6 => Some(Action::Edited),
            _ => Some(if frame % 2 == 0 {
                Action::TimedOut
            } else {
                Action::Lost
            }),
        };
        held += 1;
        let record = |action| Intervention {
            session,
            time,
            action,
            by: Decider::Api,
            dir: Some(dir),
            held: Some(held),
            breakpoint: Some(1),
            frame: Some(frame),
            opcode: None,
            payload: None,
            code: None,
            reason: None,
            bytes: None,
            wire: None,
            resent: None,
        };
        for action in std::iter::once(Action::Held).chain(decision) {
            out.push(BusEvent::Event(Box::new(Event::Intervention(record(
                action,
            )))));
            // A rule's hold tags the message: with one tag, or two.
            if action == Action::Held && choice % 3 != 0 {
                let tags: &[&str] = match choice % 3 {
                    1 => &["slow"],
                    _ => &["vip", "slow"],
                };
                for tag in tags {
                    out.push(BusEvent::Event(Box::new(Event::Intervention(
                        Intervention {
                            by: Decider::Rule,
                            held: Some(held),
                            reason: Some((*tag).to_owned()),
                            ..record(Action::Tagged)
                        },
                    ))));
                }
            }
        }
        if decision == Some(Action::Edited) {
            out.push(written(MessageOrigin::Edited, Some(held)));
        }
    }
    out
}

/// The session, direction and last frame of the message `event` records, when `before`
/// is the record of that frame: what an intervention names it by. (A message cut short
/// by a new data frame is recorded before that frame, after others; it gets none.)
fn ended_by(before: Option<&BusEvent>, event: &BusEvent) -> Option<(u64, Direction, u64)> {
    let BusEvent::Wire {
        session,
        record: Record::Message(m),
    } = event
    else {
        return None;
    };
    let Some(BusEvent::Wire {
        session: s,
        record: Record::Frame(f),
    }) = before
    else {
        return None;
    };
    let same_kind = f.header.opcode().is_control() == m.opcode.is_control();
    (s == session && f.direction == m.direction && same_kind).then_some((
        *session,
        m.direction,
        f.index,
    ))
}

/// Everything the predicate needs, gathered from the events as a live reader would.
struct Observed {
    summaries: HashMap<u64, SessionSummary>,
    /// With what the session's view reads of it, when it is a whole message of a
    /// byte-stream view (as its message reads).
    frames: Vec<(i64, u64, wstap_wire::FrameRecord, Option<Vec<u8>>)>,
    /// With the index of the message's last frame, when the frame's record came just
    /// before it, and the packets it ends when its session's view is a byte stream.
    #[allow(clippy::type_complexity)]
    messages: Vec<(
        i64,
        u64,
        wstap_wire::MessageRecord,
        u8,
        bool,
        Option<u64>,
        Option<Vec<u8>>,
    )>,
    /// What became of held messages, by session, direction and last frame.
    fates: HashMap<(u64, bool, u64), wstap_filter::Fate>,
    /// The tags rules gave them, each between spaces.
    tags: HashMap<(u64, bool, u64), String>,
    /// The messages wstap wrote.
    written: Vec<(i64, wstap_trace::Message)>,
}

impl Observed {
    fn tags(&self, session: u64, dir: Direction, frame: Option<u64>) -> &str {
        frame
            .and_then(|frame| {
                self.tags
                    .get(&(session, dir == Direction::ClientToServer, frame))
            })
            .map_or("", String::as_str)
    }

    fn fate(&self, session: u64, dir: Direction, frame: Option<u64>) -> Option<wstap_filter::Fate> {
        self.fates
            .get(&(session, dir == Direction::ClientToServer, frame?))
            .copied()
    }
}

fn observe(events: &[BusEvent]) -> Observed {
    let mut observed = Observed {
        summaries: HashMap::new(),
        frames: Vec::new(),
        messages: Vec::new(),
        fates: HashMap::new(),
        tags: HashMap::new(),
        written: Vec::new(),
    };
    // The first frame of the message being read, per session and direction; a control
    // frame is its own.
    let mut firsts: HashMap<(u64, bool), (u8, bool)> = HashMap::new();
    let mut controls: HashMap<(u64, bool), (u8, bool)> = HashMap::new();
    // Each session's view, as the writer keeps it: what a byte-stream view's messages end.
    let mut views: HashMap<u64, wstap_views::ViewTracker> = HashMap::new();
    for (i, event) in events.iter().enumerate() {
        let ev = i as i64 + 1;
        let ended = ended_by(i.checked_sub(1).map(|before| &events[before]), event);
        match event {
            BusEvent::Event(e) if matches!(**e, wstap_trace::Event::Intervention(_)) => {
                let wstap_trace::Event::Intervention(i) = &**e else {
                    continue;
                };
                let (Some(dir), Some(frame)) = (i.dir, i.frame) else {
                    continue;
                };
                if let (wstap_trace::Action::Tagged, Some(tag)) = (i.action, &i.reason) {
                    let tags = observed
                        .tags
                        .entry((i.session, dir == Direction::ClientToServer, frame))
                        .or_insert_with(|| " ".to_owned());
                    tags.push_str(tag);
                    tags.push(' ');
                    continue;
                }
                if let Some(fate) = wstap_filter::Fate::ALL
                    .into_iter()
                    .find(|f| f.name() == i.action.name())
                {
                    observed
                        .fates
                        .insert((i.session, dir == Direction::ClientToServer, frame), fate);
                }
            }
            BusEvent::Event(e) if matches!(**e, wstap_trace::Event::Message(_)) => {
                let wstap_trace::Event::Message(m) = &**e else {
                    continue;
                };
                observed.written.push((ev, m.clone()));
            }
            BusEvent::Event(e) => {
                let id = e.session().unwrap();
                if let wstap_trace::Event::Handshake(h) = &**e {
                    let detector = wstap_views::Detector::from_handshake(
                        h.subprotocol.as_deref(),
                        &h.exchange.url,
                    );
                    views.insert(id, wstap_views::ViewTracker::new(detector));
                }
                observed
                    .summaries
                    .entry(id)
                    .or_insert_with(|| SessionSummary::new(id))
                    .apply(e);
            }
            BusEvent::Wire {
                session,
                record: Record::Frame(f),
            } => {
                let key = (*session, f.direction == Direction::ClientToServer);
                let mark = (f.header.first_byte(), f.header.mask().is_some());
                match f.header.opcode() {
                    Opcode::Text | Opcode::Binary => {
                        firsts.insert(key, mark);
                    }
                    Opcode::Continuation => {
                        firsts.entry(key).or_insert(mark);
                    }
                    _ => {
                        controls.insert(key, mark);
                    }
                }
                observed
                    .summaries
                    .get_mut(session)
                    .unwrap()
                    .count_frame(!f.violations.is_empty());
                observed.frames.push((ev, *session, f.clone(), None));
            }
            BusEvent::Wire {
                session,
                record: Record::Message(m),
            } => {
                let key = (*session, m.direction == Direction::ClientToServer);
                let data = matches!(
                    m.opcode,
                    Opcode::Text | Opcode::Binary | Opcode::Continuation
                );
                let (flags, masked) = if data {
                    firsts.remove(&key)
                } else {
                    controls.remove(&key)
                }
                .unwrap_or((0x80 | m.opcode.bits(), false));
                let last = ended.map(|(_, _, frame)| frame);
                let view = MessageView::of_record(*session, m);
                let stream = match views.get_mut(session) {
                    Some(tracker) if view.is_data() => {
                        tracker
                            .message(
                                view.dir,
                                view.data.data,
                                view.opcode == Opcode::Text,
                                !view.data.truncated() && !view.data.dropped,
                            )
                            .joined
                    }
                    _ => None,
                };
                // A message that is one whole frame: the frame reads as its message.
                if let (Some(_), 1) = (ended, m.frames) {
                    if let Some(frame) = observed.frames.last_mut() {
                        frame.3 = stream.clone();
                    }
                }
                observed
                    .messages
                    .push((ev, *session, m.clone(), flags, masked, last, stream));
            }
        }
    }
    observed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sql_and_the_predicate_select_the_same_rows(
        specs in (session(1), session(2), session(3), mqtt_session(4)).prop_map(|(a, b, c, d)| vec![a, b, c, d]),
        filters in prop::collection::vec(filter(), 8),
        choices in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let events: Vec<BusEvent> = specs.iter().flat_map(session_events).collect();
        let events = with_interventions(events, &choices);
        let dir = temp_dir("agree");
        write(&dir, &events, 7);
        let capture = Capture::open(&dir).unwrap();
        let observed = observe(&events);
        for source in &filters {
            let filter = Filter::parse(source).unwrap_or_else(|e| panic!("{source}: {e}"));
            let facts_of = |id: u64| observed.summaries[&id].facts();

            let frames: Vec<FrameView<'_>> = observed.frames.iter().map(|(_, s, f, _)| FrameView::of_record(*s, f)).collect();
            let frame_codes: Vec<Vec<&str>> = frames.iter().map(|f| f.violations.codes()).collect();
            let expected: Vec<i64> = observed.frames.iter().zip(frames.iter().zip(&frame_codes))
                .filter(|((_, s, record, stream), (f, codes))| {
                    let facts = RecordFacts { fate: observed.fate(*s, f.dir, Some(record.index)), tags: observed.tags(*s, f.dir, Some(record.index)), stream: stream.as_deref(), ..frame_facts(f, codes) };
                    filter.matches_record(&facts_of(*s), &facts)
                })
                .map(|((ev, _, _, _), _)| *ev)
                .collect();
            prop_assert_eq!(capture.matching_ids(Rows::Frames, &filter).unwrap(), expected, "frames, {}", source);

            let messages: Vec<MessageView<'_>> = observed.messages.iter().map(|(_, s, m, _, _, _, _)| MessageView::of_record(*s, m)).collect();
            let message_codes: Vec<Vec<&str>> = messages.iter().map(|m| m.violations.codes()).collect();
            let mut expected: Vec<i64> = observed.messages.iter().zip(messages.iter().zip(&message_codes))
                .filter(|((_, s, _, flags, masked, last, stream), (m, codes))| {
                    let facts = RecordFacts { fate: observed.fate(*s, m.dir, *last), tags: observed.tags(*s, m.dir, *last), stream: stream.as_deref(), ..message_facts(m, *flags, *masked, codes) };
                    filter.matches_record(&facts_of(*s), &facts)
                })
                .map(|((ev, _, _, _, _, _, _), _)| *ev)
                .collect();
            // wstap's own messages: their first frames are those it wrote; nothing held them.
            expected.extend(observed.written.iter().filter(|(_, m)| {
                let view = MessageView::of_event(m);
                let header = wstap_wire::FrameHeader::parse(view.wire.unwrap()).unwrap();
                let facts = message_facts(&view, header.first_byte(), header.mask().is_some(), &[]);
                filter.matches_record(&facts_of(m.session), &facts)
            }).map(|(ev, _)| *ev));
            expected.sort_unstable();
            prop_assert_eq!(capture.matching_ids(Rows::Messages, &filter).unwrap(), expected, "messages, {}", source);

            let mut expected_sessions: Vec<u64> = Vec::new();
            for spec in &specs {
                let records: Vec<RecordFacts<'_>> = frames.iter().zip(&frame_codes).zip(&observed.frames)
                    .filter(|((f, _), _)| f.session == spec.id)
                    .map(|((f, codes), (_, s, record, stream))| RecordFacts { fate: observed.fate(*s, f.dir, Some(record.index)), tags: observed.tags(*s, f.dir, Some(record.index)), stream: stream.as_deref(), ..frame_facts(f, codes) })
                    .collect();
                if filter.matches_session(&facts_of(spec.id), &records) {
                    expected_sessions.push(spec.id);
                }
            }
            let sessions: Vec<u64> = capture.sessions(&filter, None, 100).unwrap().iter().map(|s| s.id).collect();
            prop_assert_eq!(sessions, expected_sessions, "sessions, {}", source);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
