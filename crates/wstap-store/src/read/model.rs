//! What a reader gives back: a capture's summary, sessions as the list shows them, stored
//! frames and messages with their places, handshakes, timeline buckets, and positions to
//! page from.

use serde::Serialize;
use wstap_filter::State;
use wstap_trace::convert::to_utc;
use wstap_trace::{Frame, Handshake, Initiator, Message, ParentHop, SessionKind, TlsLeg, Via};
use wstap_views::View;
use wstap_wire::Timestamp;

/// Where a page starts, by a row's position: its `seq` within a session, or its event
/// number across the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Rows at this position and after.
    From(u64),
    /// Rows before this position (the page ends just before it).
    Before(u64),
    /// The last rows.
    Last,
}

/// The capture's own record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaptureRow {
    /// When it began, µs.
    pub started_us: i64,
    /// When its writer finished, µs (`None` while written, or if it was killed).
    pub ended_us: Option<i64>,
    /// The program that wrote it.
    pub writer: String,
    /// Payload bytes kept per frame and message.
    pub max_capture: i64,
    /// How large it may grow on disk (`--capture-max`), when bounded.
    pub max_bytes: Option<u64>,
    /// Payload bytes it gave up to stay within that bound.
    pub payloads_dropped: u64,
}

/// Messages and bytes in one slice of a session's time, per direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TimelineBucket {
    /// Where the slice begins, µs.
    pub start_us: i64,
    /// Messages client to server.
    pub messages_c2s: u64,
    /// Messages server to client.
    pub messages_s2c: u64,
    /// Message bytes (inflated) client to server.
    pub bytes_c2s: u64,
    /// Message bytes (inflated) server to client.
    pub bytes_s2c: u64,
}

/// One session as the sessions list shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow {
    /// The session number.
    pub id: u64,
    /// When it began, µs.
    pub started_us: i64,
    /// When it ended, µs.
    pub ended_us: Option<i64>,
    /// The client's address.
    pub client: String,
    /// The upstream, `host:port`.
    pub target: String,
    /// How the client came (written by its name: `connect`, `absolute`, `socks5`,
    /// `reverse`, or `proxy`: the HTTP proxy port, no request).
    pub via: Via,
    /// The listener it connected to, `ip:port`.
    pub listener: Option<String>,
    /// Whether wstap terminated TLS.
    pub tls: bool,
    /// The client's TLS leg.
    pub client_tls: Option<TlsLeg>,
    /// The upstream's TLS leg.
    pub upstream_tls: Option<TlsLeg>,
    /// The parent proxy's answer, when the upstream connection went through one.
    pub upstream_proxy: Option<ParentHop>,
    /// The handshake's (or first exchange's) URL.
    pub url: Option<String>,
    /// Its HTTP status.
    pub status: Option<u16>,
    /// The subprotocol chosen.
    pub subprotocol: Option<String>,
    /// Extensions accepted, as header values.
    pub extensions: Vec<String>,
    /// What it turned out to be, once it ended.
    pub kind: Option<SessionKind>,
    /// Where it stands (written by its name: `open`, `closed`, `aborted`, `error`).
    #[serde(serialize_with = "state_name")]
    pub state: State,
    /// Who sent the first close frame.
    pub close_initiator: Option<Initiator>,
    /// Its code.
    pub close_code: Option<u16>,
    /// Its reason.
    pub close_reason: Option<String>,
    /// Frames, client to server.
    pub frames_c2s: u64,
    /// Frames, server to client.
    pub frames_s2c: u64,
    /// Messages, client to server.
    pub messages_c2s: u64,
    /// Messages, server to client.
    pub messages_s2c: u64,
    /// Bytes, client to server.
    pub bytes_c2s: u64,
    /// Bytes, server to client.
    pub bytes_s2c: u64,
    /// Frames with violations plus handshake issues.
    pub violations: u64,
    /// What went wrong.
    pub error: Option<String>,
    /// Length, µs, once it ended.
    pub duration_us: Option<u64>,
    /// The payload view its messages are read with (`signalr`, `mqtt`, ...): the one a
    /// person chose, else the one wstap chose as it recorded, else the one its handshake
    /// names; `None`: each message as JSON, text or hex.
    #[serde(serialize_with = "view_name")]
    pub view: Option<View>,
}

fn view_name<S: serde::Serializer>(view: &Option<View>, s: S) -> Result<S::Ok, S::Error> {
    match view {
        Some(view) => s.serialize_str(view.name()),
        None => s.serialize_none(),
    }
}

/// A frame with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFrame {
    /// Its event number.
    pub id: i64,
    /// Its position among the session's frames.
    pub seq: u64,
    /// When its last byte arrived, µs.
    pub end_time_us: i64,
    /// Its number among the session's messages, when it is a whole message by itself.
    pub msg: Option<u64>,
    /// What became of the message it ends, when a breakpoint held it (`held`,
    /// `forwarded`, `dropped`, `edited`, `timed_out`, `lost`).
    pub fate: Option<String>,
    /// The frame, as the trace has it.
    pub frame: Frame,
}

impl StoredFrame {
    /// The message this frame is all of, if it is one.
    pub fn message(&self) -> Option<StoredMessage> {
        let seq = self.msg?;
        let f = &self.frame;
        let (len, payload) = match &f.inflated {
            Some(inflated) => (inflated.len, inflated.payload.clone()),
            None => (f.payload_len, f.payload.clone()),
        };
        let message = Message {
            session: f.session,
            time: f.time,
            end_time: to_utc(Timestamp(self.end_time_us)),
            dir: f.dir,
            opcode: f.opcode,
            opcode_name: f.opcode_name.clone(),
            frames: 1,
            len,
            wire_len: f.payload_len,
            compressed: f.inflated.is_some(),
            payload,
            violations: f
                .violations
                .iter()
                .filter(|v| wstap_trace::view::is_about_message(v))
                .cloned()
                .collect(),
            incomplete: false,
            origin: wstap_trace::MessageOrigin::Wire,
            wire: None,
            held: None,
        };
        Some(StoredMessage {
            id: self.id + 1,
            seq,
            first_frame: Some(self.seq),
            last_frame: Some(self.seq),
            flags: f.header().first_byte(),
            fate: self.fate.clone(),
            message,
        })
    }
}

/// Writes a state by its name, as filters and the capture name it.
fn state_name<S: serde::Serializer>(state: &State, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(state.name())
}

/// A message with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    /// Its event number.
    pub id: i64,
    /// Its position among the session's messages.
    pub seq: u64,
    /// `seq` of its first frame.
    pub first_frame: Option<u64>,
    /// `seq` of its last frame.
    pub last_frame: Option<u64>,
    /// The flags byte of its first frame.
    pub flags: u8,
    /// What became of it, when a breakpoint held it.
    pub fate: Option<String>,
    /// The message, as the trace has it.
    pub message: Message,
}

/// A handshake with the heads' bytes as they were sent, when the capture has them.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredHandshake {
    /// The handshake.
    pub handshake: Handshake,
    /// The request head's bytes.
    pub request_raw: Option<Vec<u8>>,
    /// The response head's bytes.
    pub response_raw: Option<Vec<u8>>,
}
