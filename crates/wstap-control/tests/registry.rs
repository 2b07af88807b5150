//! The registry between commanders and a live session's relay core, driven by hand: what a
//! breakpoint holds, what a decision does and records, and what is refused, and why.

use std::time::Instant;
use wstap_control::{
    Control, ControlError, Enrolment, HeldAction, Injection, Mailbox, SessionInfo, Settings,
};
use wstap_filter::Filter;
use wstap_relay::{Refused, Relay, RelayConfig, Side, Transmit};
use wstap_trace::{Action, Decider, Event, Intervention, Message, MessageOrigin};
use wstap_wire::{AnalyzerConfig, FrameBuilder, Opcode, Record, StreamAnalyzer, Timestamp};

fn relay() -> Relay {
    Relay::new(RelayConfig {
        websocket: Some(AnalyzerConfig::default()),
        strict: false,
        strict_grace: None,
    })
}

fn info(id: u64) -> SessionInfo {
    SessionInfo {
        id,
        host: "chat.example".into(),
        port: 80,
        url: "ws://chat.example/room".into(),
        path: "/room".into(),
        client: "127.0.0.1:5000".into(),
        status: Some(101),
        ..SessionInfo::default()
    }
}

/// Feeds `bytes` from `from` and returns what went to the other side, with the records
/// of what the relay noted.
fn feed(
    relay: &mut Relay,
    enrolment: &mut Enrolment,
    from: Side,
    bytes: &[u8],
) -> (Vec<u8>, Vec<Intervention>) {
    relay.feed(from, bytes, Timestamp(1));
    let out = written(relay, from.other(), Some(bytes));
    relay.drain_events().for_each(drop);
    let notes = relay.drain_notes();
    let (records, written) = split(enrolment.noted(notes, chrono::Utc::now()));
    assert!(
        written.is_empty(),
        "a feed makes wstap write nothing of its own"
    );
    (out, records)
}

/// Events as the interventions and the messages wstap wrote.
fn split(events: Vec<Event>) -> (Vec<Intervention>, Vec<Message>) {
    let (mut records, mut written) = (Vec::new(), Vec::new());
    for event in events {
        match event {
            Event::Intervention(record) => records.push(record),
            Event::Message(message) => written.push(message),
            other => panic!("not a record of the registry: {other:?}"),
        }
    }
    (records, written)
}

/// A text message for wstap to send to `to`.
fn text(to: Side, payload: &[u8], resent: Option<u64>) -> Injection {
    Injection {
        to,
        opcode: Opcode::Text,
        payload: payload.to_vec(),
        resent,
    }
}

fn written(relay: &mut Relay, to: Side, fed: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(transmit) = relay.poll_transmit(to) {
        match transmit {
            Transmit::Forward(range) => out.extend_from_slice(&fed.expect("fed")[range]),
            Transmit::Built(bytes) => out.extend(bytes),
            Transmit::Shutdown => {}
        }
        relay.transmitted(to);
    }
    out
}

/// Runs `ask` while the session carries out the order it sends: the answer, the
/// interventions recorded, and the messages it made wstap write.
async fn answered(
    (relay, enrolment, mailbox): (&mut Relay, &mut Enrolment, &mut Mailbox),
    ask: impl std::future::Future<Output = Result<(), ControlError>>,
) -> (Result<(), ControlError>, Vec<Intervention>, Vec<Message>) {
    let session = async {
        let order = mailbox.next().await;
        enrolment.carry_out(order, relay, Instant::now(), chrono::Utc::now())
    };
    let (answer, events) = tokio::join!(ask, session);
    let (records, written) = split(events);
    (answer, records, written)
}

/// The breakpoint orders in the mailbox, carried out.
async fn reconsider(relay: &mut Relay, enrolment: &mut Enrolment, mailbox: &mut Mailbox) {
    let order = mailbox.next().await;
    let records = enrolment.carry_out(order, relay, Instant::now(), chrono::Utc::now());
    assert!(records.is_empty());
}

fn payloads(wire: &[u8], direction: wstap_wire::Direction) -> Vec<Vec<u8>> {
    let mut analyzer = StreamAnalyzer::new(direction, AnalyzerConfig::default());
    let mut records = Vec::new();
    analyzer.feed(wire, Timestamp(0), &mut records);
    records
        .into_iter()
        .filter_map(|r| match r {
            Record::Message(m) => Some(m.data.data.to_vec()),
            Record::Frame(_) => None,
        })
        .collect()
}

#[tokio::test]
async fn a_breakpoint_holds_what_it_selects_and_an_edit_goes_out_in_its_place() {
    let control = Control::new(Settings::default());
    let mut relay = relay();
    let (mut session, mut mailbox) = control.enrol(info(7));
    session.apply_breakpoints(&mut relay, Instant::now());
    let (id, ()) = tokio::join!(
        control.add_breakpoint(Filter::parse(r#"text~"secret""#).unwrap(), false),
        reconsider(&mut relay, &mut session, &mut mailbox)
    );

    let plain = FrameBuilder::text().mask([1; 4]).encode(b"hello");
    let secret = FrameBuilder::text()
        .mask([2; 4])
        .encode(b"the secret is 42");
    let (out, records) = feed(
        &mut relay,
        &mut session,
        Side::Client,
        &[plain.clone(), secret].concat(),
    );
    assert_eq!(out, plain, "the first went on; the second is held");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, Action::Held);
    assert_eq!(records[0].breakpoint, Some(id));
    assert_eq!(records[0].frame, Some(1));
    let held = control.held();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].payload, b"the secret is 42");
    assert_eq!(held[0].session, 7);
    assert_eq!(control.breakpoints()[0].hits, 1);

    let edit = HeldAction::Edit {
        payload: b"the secret is safe".to_vec(),
        as_bytes: false,
    };
    let (done, records, made) = answered(
        (&mut relay, &mut session, &mut mailbox),
        control.decide(held[0].id, edit, Decider::Api),
    )
    .await;
    assert_eq!(done, Ok(()));
    assert_eq!(records[0].action, Action::Edited);
    assert_eq!(records[0].by, Decider::Api);
    assert_eq!(
        records[0].payload.as_ref().map(|p| p.bytes.clone()),
        Some(b"the secret is safe".to_vec())
    );
    let out = written(&mut relay, Side::Server, None);
    assert_eq!(
        payloads(&out, wstap_wire::Direction::ClientToServer),
        [b"the secret is safe".to_vec()]
    );
    // The edit is a message of the session, with the frames as written and the held
    // message it replaced.
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].origin, MessageOrigin::Edited);
    assert_eq!(made[0].held, Some(held[0].id));
    assert_eq!(made[0].payload.bytes, b"the secret is safe");
    assert_eq!(made[0].wire.as_ref().map(|w| &w.bytes), Some(&out));
    assert_eq!((made[0].frames, made[0].wire_len), (1, 18));
    assert!(control.held().is_empty());
    assert_eq!(
        control
            .decide(held[0].id, HeldAction::Forward, Decider::Api)
            .await,
        Err(ControlError::NotHeld(held[0].id))
    );
}

/// Whether `future` is done at its first poll.
fn done_at_once<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    future.poll(&mut cx).is_ready()
}

#[tokio::test]
async fn adding_a_breakpoint_answers_once_the_session_has_it_in_force() {
    let control = Control::new(Settings::default());
    let mut relay = relay();
    let (mut session, mut mailbox) = control.enrol(info(11));
    session.apply_breakpoints(&mut relay, Instant::now());
    let mut adding =
        std::pin::pin!(control.add_breakpoint(Filter::parse("dir:s2c").unwrap(), false));
    assert!(
        !done_at_once(adding.as_mut()),
        "answered while the session had not read its order: a message it read then would pass"
    );
    reconsider(&mut relay, &mut session, &mut mailbox).await;
    let id = adding.await;
    let (out, records) = feed(
        &mut relay,
        &mut session,
        Side::Server,
        &FrameBuilder::text().encode(b"next"),
    );
    assert!(out.is_empty(), "the next message is held");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, Action::Held);
    assert_eq!(records[0].breakpoint, Some(id));
}

#[tokio::test]
async fn a_session_that_reads_no_more_orders_is_not_waited_for() {
    let control = Control::new(Settings::default());
    // Its relay ended (the mailbox is gone) but it has not left the registry yet.
    let (session, mailbox) = control.enrol(info(12));
    drop(mailbox);
    assert!(control.is_live(12));
    let added = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        control.add_breakpoint(Filter::parse("dir:s2c").unwrap(), false),
    )
    .await;
    let id = added.expect("waited on a session that reads no orders");
    let aborted = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        control.abort(12, Decider::Api),
    )
    .await;
    assert_eq!(aborted, Ok(Err(ControlError::Gone(12))));
    drop(session);

    // A session whose relay ends with the order in its mailbox, unread.
    let (session, mailbox) = control.enrol(info(13));
    let mut removing = std::pin::pin!(control.remove_breakpoint(id));
    assert!(!done_at_once(removing.as_mut()), "waits for the session");
    drop(mailbox);
    let removed = tokio::time::timeout(std::time::Duration::from_secs(10), removing).await;
    assert_eq!(removed, Ok(Ok(())));
    drop(session);
}

#[tokio::test]
async fn a_breakpoint_that_cannot_select_a_session_leaves_it_alone() {
    let control = Control::new(Settings::default());
    control
        .add_breakpoint(Filter::parse("host:elsewhere.example").unwrap(), false)
        .await;
    let mut relay = relay();
    let (mut session, _mailbox) = control.enrol(info(1));
    session.apply_breakpoints(&mut relay, Instant::now());
    let frame = FrameBuilder::text().encode(b"anything");
    let (out, records) = feed(&mut relay, &mut session, Side::Server, &frame);
    assert_eq!(out, frame);
    assert!(records.is_empty());
}

#[tokio::test]
async fn invalid_commands_are_refused_before_they_reach_the_session() {
    let control = Control::new(Settings::default());
    let (session, mailbox) = control.enrol(info(3));
    assert!(matches!(
        control
            .inject(3, text(Side::Client, &[0xff], None), Decider::Api)
            .await,
        Err(ControlError::Invalid(_))
    ));
    assert!(matches!(
        control
            .close(3, None, 1005, String::new(), Decider::Api)
            .await,
        Err(ControlError::Invalid(_))
    ));
    assert_eq!(
        control.abort(4, Decider::Api).await,
        Err(ControlError::NoSession(4))
    );
    assert!(control.is_live(3));
    drop((session, mailbox));
    assert!(!control.is_live(3));
    assert_eq!(
        control.abort(3, Decider::Api).await,
        Err(ControlError::NoSession(3))
    );
}

#[tokio::test]
async fn an_injection_and_a_resend_are_messages_of_the_session_with_their_frames() {
    let control = Control::new(Settings::default());
    let mut relay = relay();
    let (mut session, mut mailbox) = control.enrol(info(4));
    session.apply_breakpoints(&mut relay, Instant::now());
    let (done, records, made) = answered(
        (&mut relay, &mut session, &mut mailbox),
        control.inject(4, text(Side::Server, b"hello", None), Decider::Inspector),
    )
    .await;
    assert_eq!(done, Ok(()));
    assert_eq!(records[0].action, Action::Injected);
    assert_eq!(records[0].resent, None);
    let out = written(&mut relay, Side::Server, None);
    assert_eq!(made[0].origin, MessageOrigin::Injected);
    assert_eq!(made[0].dir, wstap_wire::Direction::ClientToServer);
    assert_eq!(made[0].wire.as_ref().map(|w| &w.bytes), Some(&out));
    let header = wstap_wire::FrameHeader::parse(&out).unwrap();
    assert!(header.mask().is_some(), "toward the server, masked");

    let (done, records, made) = answered(
        (&mut relay, &mut session, &mut mailbox),
        control.inject(4, text(Side::Client, b"again", Some(12)), Decider::Api),
    )
    .await;
    assert_eq!(done, Ok(()));
    assert_eq!(records[0].resent, Some(12));
    let out = written(&mut relay, Side::Client, None);
    assert_eq!(made[0].origin, MessageOrigin::Resent);
    assert_eq!(made[0].dir, wstap_wire::Direction::ServerToClient);
    assert_eq!(made[0].payload.bytes, b"again");
    assert_eq!(made[0].wire.as_ref().map(|w| &w.bytes), Some(&out));
    assert_eq!(
        out,
        FrameBuilder::text().encode(b"again"),
        "toward the client, unmasked"
    );
}

#[tokio::test]
async fn continue_forwards_everything_held_and_stops_breaking() {
    let control = Control::new(Settings::default());
    control
        .add_breakpoint(Filter::parse("dir:s2c").unwrap(), false)
        .await;
    let mut relay = relay();
    let (mut session, mut mailbox) = control.enrol(info(5));
    session.apply_breakpoints(&mut relay, Instant::now());
    let one = FrameBuilder::text().encode(b"one");
    let two = FrameBuilder::text().encode(b"two");
    let (out, records) = feed(
        &mut relay,
        &mut session,
        Side::Server,
        &[one.clone(), two.clone()].concat(),
    );
    assert!(out.is_empty());
    assert_eq!(records.len(), 2);
    let first = control.held()[0].id;
    let (done, records, made) = answered(
        (&mut relay, &mut session, &mut mailbox),
        control.decide(first, HeldAction::Continue, Decider::Inspector),
    )
    .await;
    assert!(made.is_empty(), "forwarding writes nothing of wstap's own");
    assert_eq!(done, Ok(()));
    let actions: Vec<Action> = records.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [Action::Forwarded, Action::Forwarded, Action::Continued]
    );
    assert_eq!(
        written(&mut relay, Side::Client, None),
        [one.clone(), two].concat()
    );
    let (out, records) = feed(&mut relay, &mut session, Side::Server, &one);
    assert_eq!(out, one, "no more breaking on this session");
    assert!(records.is_empty());
}

#[tokio::test]
async fn an_abort_is_recorded_and_what_was_held_is_lost_with_the_session() {
    let control = Control::new(Settings::default());
    control
        .add_breakpoint(Filter::parse("opcode:text").unwrap(), false)
        .await;
    let mut relay = relay();
    let (mut session, mut mailbox) = control.enrol(info(9));
    session.apply_breakpoints(&mut relay, Instant::now());
    feed(
        &mut relay,
        &mut session,
        Side::Server,
        &FrameBuilder::text().encode(b"x"),
    );
    let (done, records, _) = answered(
        (&mut relay, &mut session, &mut mailbox),
        control.abort(9, Decider::Api),
    )
    .await;
    assert_eq!(done, Ok(()));
    assert_eq!(records[0].action, Action::Aborted);
    assert!(relay.is_aborted());
    let (again, records, made) = answered(
        (&mut relay, &mut session, &mut mailbox),
        control.inject(9, text(Side::Server, b"late", None), Decider::Api),
    )
    .await;
    assert!(
        records.is_empty() && made.is_empty(),
        "what is refused is not recorded"
    );
    assert_eq!(
        again,
        Err(ControlError::Refused(Refused::Ended("both sides")))
    );
    let end = relay.end(Timestamp(2));
    let (records, _) = split(session.ended(&end.lost, chrono::Utc::now()));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].action, Action::Lost);
    assert_eq!(records[0].by, Decider::Session);
    assert!(control.held().is_empty());
}

#[tokio::test]
async fn a_message_no_breakpoint_can_select_by_its_header_goes_on_as_it_comes() {
    let control = Control::new(Settings::default());
    control
        .add_breakpoint(
            Filter::parse(r#"op:text and text~"secret""#).unwrap(),
            false,
        )
        .await;
    let mut relay = relay();
    let (mut session, _mailbox) = control.enrol(info(4));
    session.apply_breakpoints(&mut relay, Instant::now());
    let binary = FrameBuilder::binary().encode(&[1; 50_000]);
    let (out, _) = feed(&mut relay, &mut session, Side::Server, &binary[..2000]);
    assert_eq!(out, &binary[..2000], "binary: ruled out at its header");
    let (out, _) = feed(&mut relay, &mut session, Side::Server, &binary[2000..]);
    assert_eq!(out, &binary[2000..]);
    let text = FrameBuilder::text().encode(&[b'x'; 5000]);
    let (out, _) = feed(&mut relay, &mut session, Side::Server, &text[..2000]);
    assert!(out.is_empty(), "text: its payload decides");
    let (out, records) = feed(&mut relay, &mut session, Side::Server, &text[2000..]);
    assert_eq!(out, text, "and it says no");
    assert!(records.is_empty());
}
