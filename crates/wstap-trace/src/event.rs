//! The events of a trace. Field names are a contract, documented in
//! `docs/trace-format.md`; add fields freely, rename none.

use crate::payload::Payload;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
pub use wstap_wire::Direction;

/// The version of the trace format this crate writes.
pub const FORMAT_VERSION: u32 = 1;

/// Header names and values in the order and case the peer sent them.
pub type Headers = Vec<(String, String)>;

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The first line of every trace file.
    Trace(TraceHeader),
    /// A client connection or CONNECT tunnel began.
    SessionStart(SessionStart),
    /// A WebSocket opening handshake (request and the real upstream response).
    Handshake(Handshake),
    /// One WebSocket frame.
    Frame(Frame),
    /// One reassembled WebSocket message.
    Message(Message),
    /// A plain HTTP exchange, or a failed attempt at one.
    Http(HttpExchange),
    /// A session ended.
    SessionEnd(SessionEnd),
    /// The proxy itself reports something about the trace (for example dropped console lines).
    Notice(Notice),
    /// wstap stepped into a live session: a breakpoint held a message, someone decided what
    /// became of it, or sent, closed or aborted something of their own.
    Intervention(Intervention),
}

impl Event {
    /// The session this event belongs to (`None` for trace-wide lines).
    pub fn session(&self) -> Option<u64> {
        match self {
            Event::Trace(_) | Event::Notice(_) => None,
            Event::SessionStart(e) => Some(e.session),
            Event::Handshake(e) => Some(e.exchange.session),
            Event::Frame(e) => Some(e.session),
            Event::Message(e) => Some(e.session),
            Event::Http(e) => Some(e.exchange.session),
            Event::SessionEnd(e) => Some(e.session),
            Event::Intervention(e) => Some(e.session),
        }
    }

    /// The request and response of a handshake or an HTTP exchange.
    pub fn exchange_mut(&mut self) -> Option<&mut Exchange> {
        match self {
            Event::Handshake(e) => Some(&mut e.exchange),
            Event::Http(e) => Some(&mut e.exchange),
            _ => None,
        }
    }
}

/// `{"type":"trace","format":"wstap","version":1,...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// Always `"wstap"`.
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// When the trace began.
    #[serde(with = "crate::time")]
    pub time: DateTime<Utc>,
    /// The program that wrote it, e.g. `"wstap 0.1.0"`.
    pub writer: String,
}

impl TraceHeader {
    /// A header for a trace written now by `writer`.
    pub fn new(writer: impl Into<String>, time: DateTime<Utc>) -> Self {
        TraceHeader {
            format: "wstap".into(),
            version: FORMAT_VERSION,
            time,
            writer: writer.into(),
        }
    }
}

/// How the client reached the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A `CONNECT host:port` tunnel.
    Connect,
    /// Absolute-form requests (`GET http://host/path`).
    Absolute,
    /// A SOCKS5 `CONNECT` tunnel (`--socks5`).
    Socks5,
    /// A reverse-proxy listener (`--reverse`): the client took wstap for the server.
    Reverse,
    /// The HTTP proxy port, before any request said how (neither `CONNECT` nor an
    /// absolute-form request came).
    Proxy,
}

impl Via {
    /// Every way, in the order of the trace format's documentation.
    pub const ALL: [Via; 5] = [
        Via::Connect,
        Via::Absolute,
        Via::Socks5,
        Via::Reverse,
        Via::Proxy,
    ];

    /// The name the trace and the capture write: `"connect"`, `"socks5"`, ...
    pub fn name(self) -> &'static str {
        match self {
            Via::Connect => "connect",
            Via::Absolute => "absolute",
            Via::Socks5 => "socks5",
            Via::Reverse => "reverse",
            Via::Proxy => "proxy",
        }
    }

    /// The way named `name`, as [`Via::name`] writes it.
    pub fn from_name(name: &str) -> Option<Via> {
        Via::ALL.into_iter().find(|via| via.name() == name)
    }
}

/// A session began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStart {
    /// Session number, unique within the trace.
    pub session: u64,
    /// When the session began.
    #[serde(with = "crate::time")]
    pub time: DateTime<Utc>,
    /// The client's address, `ip:port`.
    pub client: String,
    /// The upstream `host:port`.
    pub target: String,
    /// How the client reached the proxy.
    pub via: Via,
    /// The listener the client connected to, `ip:port`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub listener: Option<String>,
    /// Whether the proxy terminated TLS for this session.
    pub tls: bool,
    /// The TLS connection between the client and wstap, when intercepted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_tls: Option<TlsLeg>,
    /// The TLS connection between wstap and the upstream, when intercepted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upstream_tls: Option<TlsLeg>,
    /// The parent proxy the upstream connection went through (`--upstream-proxy`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upstream_proxy: Option<ParentHop>,
}

/// A parent proxy's answer to wstap's `CONNECT` for a session's upstream connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentHop {
    /// The parent's `host:port`.
    pub proxy: String,
    /// Its answer's status line, e.g. `HTTP/1.1 200 Connection established`.
    pub status_line: String,
    /// From starting to connect to the parent until its answer was read, in µs.
    pub connect_us: u64,
}

/// One TLS connection's negotiated parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsLeg {
    /// Protocol version, e.g. `TLSv1_3`.
    pub version: String,
    /// Cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The server name asked for (SNI), if any.
    pub sni: Option<String>,
    /// The ALPN protocol agreed, if any.
    pub alpn: Option<String>,
    /// The certificate the server presented (on the upstream leg).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub certificate: Option<PeerCertificate>,
}

/// A server's certificate, as people check one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCertificate {
    /// The subject's distinguished name.
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// Valid from (RFC 3339).
    pub not_before: String,
    /// Valid until (RFC 3339).
    pub not_after: String,
    /// The names it is for (subjectAltName: DNS names and IP addresses).
    pub names: Vec<String>,
    /// SHA-256 of the certificate (DER), in hex.
    pub sha256: String,
}

/// A request head as it was on the wire (all empty when there was none to read).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RequestHead {
    /// The method.
    pub method: String,
    /// The request target exactly as sent (absolute-form or origin-form).
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Headers in wire order and case.
    pub headers: Headers,
}

/// A response head as it was on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Headers in wire order and case.
    pub headers: Headers,
}

/// What the proxy changed in a request it forwarded (nothing, inside a tunnel).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Forwarded {
    /// The request target sent upstream, when it differs from the client's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<String>,
    /// Headers removed before forwarding (hop-by-hop and `Proxy-*`), by name.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub removed_headers: Vec<String>,
    /// Headers forwarded with another value (`Host` in reverse mode), old and new.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub rewritten_headers: Vec<RewrittenHeader>,
}

/// A header line forwarded with a value other than the client's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewrittenHeader {
    /// The header's name, as the client sent it.
    pub name: String,
    /// The client's value.
    pub from: String,
    /// The value forwarded.
    pub to: String,
}

/// What every HTTP exchange records, a WebSocket handshake or a plain request: the first
/// keys of both events' lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// Session number.
    pub session: u64,
    /// When the request head was complete.
    #[serde(with = "crate::time")]
    pub time: DateTime<Utc>,
    /// The absolute URL (`ws://` or `wss://` for a handshake).
    pub url: String,
    /// The client's request, as the client sent it.
    pub request: RequestHead,
    /// What the proxy changed when forwarding it.
    #[serde(default)]
    pub forwarded: Forwarded,
    /// The response as it reached the client; `None` when none arrived.
    pub response: Option<ResponseHead>,
    /// The heads' bytes exactly as sent, when the engine has them (never in a trace line).
    #[serde(skip)]
    pub raw: Option<RawHeads>,
}

/// A WebSocket opening handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handshake {
    /// The request and its response. First, so its keys lead the line.
    #[serde(flatten)]
    pub exchange: Exchange,
    /// Whether `Sec-WebSocket-Accept` matched the key.
    pub accept_valid: bool,
    /// The subprotocol chosen.
    pub subprotocol: Option<String>,
    /// The extensions the server accepted, as header values.
    pub extensions: Vec<String>,
    /// permessage-deflate parameters, when accepted.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub deflate: Option<DeflateInfo>,
    /// Extensions accepted that the proxy does not decode.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub undecoded_extensions: Vec<String>,
    /// Every problem found with the handshake.
    pub issues: Vec<String>,
    /// Time from request to response, microseconds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration_us: Option<u64>,
    /// The TCP connection wstap made to the upstream (its own address and the peer's),
    /// when it knows them: what `wstap export --format pcapng` writes the upstream leg as.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub upstream: Option<TcpLeg>,
}

/// The two ends of a TCP connection, `ip:port` each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpLeg {
    /// This end.
    pub local: String,
    /// The other end.
    pub peer: String,
}

/// A request head and its response head, byte for byte as they crossed wstap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawHeads {
    /// The request head, through its empty line.
    pub request: Vec<u8>,
    /// The response head (the final one), through its empty line; empty when none came.
    pub response: Vec<u8>,
}

/// Negotiated permessage-deflate parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeflateInfo {
    /// `server_no_context_takeover`.
    pub server_no_context_takeover: bool,
    /// `client_no_context_takeover`.
    pub client_no_context_takeover: bool,
    /// `server_max_window_bits`.
    pub server_max_window_bits: Option<u8>,
    /// `client_max_window_bits`.
    pub client_max_window_bits: Option<u8>,
}

/// A close frame's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseInfo {
    /// The status code, when present.
    pub code: Option<u16>,
    /// The reason.
    pub reason: String,
}

/// What a compressed frame inflated to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InflatedInfo {
    /// Inflated bytes this frame yielded.
    pub len: u64,
    /// The captured inflated bytes.
    pub payload: Payload,
}

/// One WebSocket frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Session number.
    pub session: u64,
    /// When the frame's first byte was read.
    #[serde(with = "crate::time")]
    pub time: DateTime<Utc>,
    /// Direction: `"c2s"` or `"s2c"`.
    #[serde(with = "crate::direction")]
    pub dir: Direction,
    /// 0-based frame number in its direction.
    pub index: u64,
    /// FIN.
    pub fin: bool,
    /// RSV1.
    pub rsv1: bool,
    /// RSV2.
    pub rsv2: bool,
    /// RSV3.
    pub rsv3: bool,
    /// Numeric opcode.
    pub opcode: u8,
    /// `TEXT`, `BINARY`, `CONT`, `CLOSE`, `PING`, `PONG` or `RESERVED_0xN`.
    pub opcode_name: String,
    /// The first byte as eight binary digits, e.g. `"10000001"`.
    pub flags: String,
    /// The MASK bit.
    pub masked: bool,
    /// The masking key as eight lower-case hex digits.
    pub mask_key: Option<String>,
    /// Header length in bytes.
    pub header_len: u8,
    /// Which length encoding was used: 7, 16 or 64.
    pub length_bits: u8,
    /// Declared payload length.
    pub payload_len: u64,
    /// The (unmasked) payload, captured up to the limit.
    pub payload: Payload,
    /// On close frames.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub close: Option<CloseInfo>,
    /// On frames of compressed messages.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inflated: Option<InflatedInfo>,
    /// Rules the frame breaks, as `code: description` strings.
    pub violations: Vec<String>,
}

/// One reassembled message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Session number.
    pub session: u64,
    /// When its first byte was read.
    #[serde(with = "crate::time")]
    pub time: DateTime<Utc>,
    /// When its last byte was read.
    #[serde(with = "crate::time")]
    pub end_time: DateTime<Utc>,
    /// Direction: `"c2s"` or `"s2c"`.
    #[serde(with = "crate::direction")]
    pub dir: Direction,
    /// Numeric opcode of its first frame.
    pub opcode: u8,
    /// Name of that opcode.
    pub opcode_name: String,
    /// Number of frames.
    pub frames: u64,
    /// Message length: inflated length when compressed, else payload bytes.
    pub len: u64,
    /// Payload bytes on the wire, summed over the frames.
    pub wire_len: u64,
    /// Whether it was compressed.
    pub compressed: bool,
    /// The message data (inflated when compressed), captured up to the limit.
    pub payload: Payload,
    /// Violations of the message as a whole.
    pub violations: Vec<String>,
    /// Cut short by a new data frame or the end of the connection.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub incomplete: bool,
    /// Who made it: the peer that sent it (`wire`, left out), or wstap.
    #[serde(skip_serializing_if = "MessageOrigin::is_wire", default)]
    pub origin: MessageOrigin,
    /// The frames wstap wrote for a message of its own making, exactly as written (masked
    /// toward the server): a peer's message has its frames as `frame` lines instead.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wire: Option<Payload>,
    /// On an edit: the held message it replaced (the `held` of its interventions).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub held: Option<u64>,
}

/// Who made a message. A peer's message is recorded as read; the others are what wstap
/// wrote in its place or beside it, each recorded when its frames went out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageOrigin {
    /// A peer sent it.
    #[default]
    Wire,
    /// wstap sent it in place of a held message (the `edited` intervention).
    Edited,
    /// wstap sent it of its own (the `injected` intervention).
    Injected,
    /// wstap sent it again: an injection that repeats a recorded message, as it was or
    /// edited (the `injected` intervention with `resent`).
    Resent,
}

impl MessageOrigin {
    /// Every origin, in the order above.
    pub const ALL: [MessageOrigin; 4] = [
        MessageOrigin::Wire,
        MessageOrigin::Edited,
        MessageOrigin::Injected,
        MessageOrigin::Resent,
    ];

    /// The name in traces, the store and filters.
    pub fn name(self) -> &'static str {
        match self {
            MessageOrigin::Wire => "wire",
            MessageOrigin::Edited => "edited",
            MessageOrigin::Injected => "injected",
            MessageOrigin::Resent => "resent",
        }
    }

    /// The origin named `name`.
    pub fn from_name(name: &str) -> Option<MessageOrigin> {
        MessageOrigin::ALL.into_iter().find(|o| o.name() == name)
    }

    /// Whether a peer sent it.
    pub fn is_wire(&self) -> bool {
        *self == MessageOrigin::Wire
    }
}

/// A plain HTTP exchange through the proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpExchange {
    /// The request and its response. First, so its keys lead the line.
    #[serde(flatten)]
    pub exchange: Exchange,
    /// Request body bytes relayed.
    pub request_body_bytes: u64,
    /// Response body bytes relayed.
    pub response_body_bytes: u64,
    /// Time from request head to the end of the response, microseconds.
    pub duration_us: u64,
    /// Who produced the response: the upstream, or the proxy (an error it answered, or
    /// its own page).
    pub responder: Responder,
    /// What went wrong, when the proxy answered for the upstream.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// Who produced an HTTP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Responder {
    /// The upstream server; the proxy relayed its answer.
    Upstream,
    /// The proxy itself.
    Proxy,
}

/// What a session turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SessionKind {
    /// Plain HTTP exchanges (also a session that ended before any request was answered).
    #[serde(rename = "http")]
    Http,
    /// A WebSocket relayed and decoded after a `101`.
    #[serde(rename = "websocket")]
    WebSocket,
    /// A CONNECT tunnel relayed blind (not HTTP, not TLS).
    #[serde(rename = "tunnel")]
    Tunnel,
    /// A CONNECT tunnel carrying TLS that was not intercepted (`--ignore-hosts`,
    /// `--no-tls-intercept`).
    #[serde(rename = "tls-tunnel")]
    TlsTunnel,
    /// A CONNECT tunnel whose TLS interception failed before any request.
    #[serde(rename = "tls")]
    Tls,
    /// A `101` to a protocol other than WebSocket, relayed blind.
    #[serde(rename = "upgraded")]
    Upgraded,
    /// The client closed before sending a request.
    #[serde(rename = "empty")]
    Empty,
}

impl SessionKind {
    /// Every kind.
    pub const ALL: [SessionKind; 7] = [
        SessionKind::Http,
        SessionKind::WebSocket,
        SessionKind::Tunnel,
        SessionKind::TlsTunnel,
        SessionKind::Tls,
        SessionKind::Upgraded,
        SessionKind::Empty,
    ];

    /// The kind named `name`, as [`SessionKind::name`] writes it.
    pub fn from_name(name: &str) -> Option<SessionKind> {
        SessionKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
    }

    /// The name the trace writes: `"websocket"`, `"tls-tunnel"`, ...
    pub fn name(self) -> &'static str {
        match self {
            SessionKind::Http => "http",
            SessionKind::WebSocket => "websocket",
            SessionKind::Tunnel => "tunnel",
            SessionKind::TlsTunnel => "tls-tunnel",
            SessionKind::Tls => "tls",
            SessionKind::Upgraded => "upgraded",
            SessionKind::Empty => "empty",
        }
    }

    /// Whether the session relayed bytes it counted (a WebSocket or a blind relay), as
    /// opposed to HTTP exchanges, which count their bodies one by one.
    pub fn relays_bytes(self) -> bool {
        !matches!(
            self,
            SessionKind::Http | SessionKind::Tls | SessionKind::Empty
        )
    }
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Both sides closed cleanly (a completed close handshake, or HTTP finished).
    Closed,
    /// A side went away without finishing (no close handshake, a reset, a cut frame).
    Aborted,
    /// The proxy could not do its part (upstream unreachable, I/O error).
    Error,
}

/// Who sent the first close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Initiator {
    /// The client.
    Client,
    /// The server.
    Server,
}

impl Initiator {
    /// The name the trace and the capture write: `"client"` or `"server"`.
    pub fn name(self) -> &'static str {
        match self {
            Initiator::Client => "client",
            Initiator::Server => "server",
        }
    }

    /// The side named `name`.
    pub fn from_name(name: &str) -> Option<Initiator> {
        [Initiator::Client, Initiator::Server]
            .into_iter()
            .find(|side| side.name() == name)
    }
}

/// The close handshake as seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClose {
    /// Who closed first.
    pub initiator: Initiator,
    /// The first close frame's code.
    pub code: Option<u16>,
    /// The first close frame's reason.
    pub reason: String,
}

/// A count per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PerDirection {
    /// Client to server.
    pub c2s: u64,
    /// Server to client.
    pub s2c: u64,
}

/// A frame cut off by the end of the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CutFrame {
    /// Direction: `"c2s"` or `"s2c"`.
    #[serde(with = "crate::direction")]
    pub dir: Direction,
    /// 0-based index the frame would have had.
    pub index: u64,
    /// Header bytes received (all of them when the payload was reached).
    pub header_received: usize,
    /// Header bytes the frame needed.
    pub header_len: usize,
    /// Payload bytes received.
    pub payload_received: u64,
    /// Payload length declared, when the header was complete.
    pub payload_len: Option<u64>,
    /// Violations its header broke.
    pub violations: Vec<String>,
}

/// What `--strict` kept from the other side: the offending frame and everything the same
/// side sent after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withheld {
    /// Who sent the bytes.
    #[serde(with = "crate::direction")]
    pub dir: Direction,
    /// Index of the first frame withheld (the offending one) in its direction.
    pub frame: u64,
    /// Bytes withheld from the read that carried it (nothing more was read after it).
    pub bytes: u64,
    /// Whether the offending frame began in that read: then the other side received
    /// every frame before it whole, and nothing of it.
    pub whole_frame: bool,
}

/// A session ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEnd {
    /// Session number.
    pub session: u64,
    /// When it ended.
    #[serde(with = "crate::time")]
    pub time: DateTime<Utc>,
    /// How it ended.
    pub outcome: Outcome,
    /// The close handshake, when one began.
    pub close: Option<SessionClose>,
    /// Frames per direction.
    pub frames: PerDirection,
    /// Bytes relayed per direction (after the handshake, for WebSockets; all, for tunnels).
    pub bytes: PerDirection,
    /// What kind of session it turned out to be.
    pub kind: SessionKind,
    /// What went wrong, for `aborted` and `error`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// Frames cut off mid-way by the end of the connection.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub cut_frames: Vec<CutFrame>,
    /// `--strict`: the bytes wstap withheld instead of relaying them.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub withheld: Option<Withheld>,
    /// Session length in microseconds.
    pub duration_us: u64,
}

/// Something the proxy says about the trace itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// When.
    #[serde(with = "crate::time")]
    pub time: DateTime<Utc>,
    /// What.
    pub message: String,
}

/// wstap stepped into a live session: see [`Action`]. The frames and messages of the
/// session are always what was read from the sender; an intervention says what went out
/// instead (or that nothing did), who decided and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intervention {
    /// Session number.
    pub session: u64,
    /// When.
    #[serde(with = "crate::time")]
    pub time: DateTime<Utc>,
    /// What happened.
    pub action: Action,
    /// Who decided.
    pub by: Decider,
    /// The direction of the message concerned: a held message's, or that of what wstap
    /// sent (`c2s`: to the server); absent for what concerns both sides.
    #[serde(
        with = "crate::direction::optional",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub dir: Option<Direction>,
    /// The held message's number (unique in the run), on everything about one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub held: Option<u64>,
    /// The breakpoint that held it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub breakpoint: Option<u64>,
    /// The index, in its direction, of the held message's last frame: the recorded
    /// message it is.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub frame: Option<u64>,
    /// The opcode of what wstap sent (an edit, an injection).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub opcode: Option<u8>,
    /// The payload wstap sent (unmasked, uncompressed).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payload: Option<Payload>,
    /// The close code wstap sent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<u16>,
    /// The close reason wstap sent.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// Bytes: of a message too large to hold, what had been kept of it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
    /// The frames wstap built, exactly as it wrote them (masked toward the server,
    /// compressed): for a message compressed again. An edit's or an injection's frames are
    /// on the message it made (`origin`), recorded when they went out.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wire: Option<Payload>,
    /// On an injection that repeats a recorded message: that message's id, as the
    /// inspector lists it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub resent: Option<u64>,
}

/// What wstap did to a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A breakpoint holds a message: nothing of it has gone out.
    Held,
    /// A held message went on exactly as read.
    Forwarded,
    /// A held message was dropped: nothing of it went out.
    Dropped,
    /// A held message was replaced by `payload` (its opcode kept).
    Edited,
    /// A held message waited its timeout and went on as read.
    TimedOut,
    /// A held message never went out: its session ended first.
    Lost,
    /// A message grew past the breakpoint buffer before it was whole: it went on
    /// unjudged, as read.
    TooLarge,
    /// The session stopped breaking (its held messages went on).
    Continued,
    /// A compressed message was dropped or edited on a direction whose sender keeps its
    /// compression context: from the message after it (`frame` is its last frame) on,
    /// wstap compresses that direction's messages again, with a context of its own.
    Reencoded,
    /// The message ending with `frame` went out compressed again (`wire`), after
    /// `reencoded`.
    Recompressed,
    /// wstap sent a message of its own (`opcode`, `payload`).
    Injected,
    /// wstap closed a side (`code`, `reason`) or both.
    Closed,
    /// wstap dropped both connections at once.
    Aborted,
    /// Network conditions were set on the stream toward the side `dir` goes to
    /// (`reason`: what they are, as `--conditions` writes them; `none` when cleared);
    /// `breakpoint` is the number of the conditions in force.
    Conditioned,
    /// A rule (`breakpoint`: its number) tagged the message ending with `frame`:
    /// `reason` is the tag, which the filter `tag:NAME` selects.
    Tagged,
}

impl Action {
    /// The name in traces and the store.
    pub fn name(self) -> &'static str {
        match self {
            Action::Held => "held",
            Action::Forwarded => "forwarded",
            Action::Dropped => "dropped",
            Action::Edited => "edited",
            Action::TimedOut => "timed_out",
            Action::Lost => "lost",
            Action::TooLarge => "too_large",
            Action::Continued => "continued",
            Action::Reencoded => "reencoded",
            Action::Recompressed => "recompressed",
            Action::Injected => "injected",
            Action::Closed => "closed",
            Action::Aborted => "aborted",
            Action::Conditioned => "conditioned",
            Action::Tagged => "tagged",
        }
    }
}

/// Who decided an intervention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decider {
    /// A breakpoint's filter (holding).
    Breakpoint,
    /// A person in the inspector.
    Inspector,
    /// A client of the inspector's API.
    Api,
    /// A breakpoint's timeout.
    Timeout,
    /// The session's end.
    Session,
    /// A rule (`--rules`): the intervention's `breakpoint` is its number.
    Rule,
    /// Network conditions (`--conditions`, a rules file's `[[conditions]]`): a cut-off
    /// they set.
    Conditions,
}

impl Decider {
    /// The name in traces and the store.
    pub fn name(self) -> &'static str {
        match self {
            Decider::Breakpoint => "breakpoint",
            Decider::Inspector => "inspector",
            Decider::Api => "api",
            Decider::Timeout => "timeout",
            Decider::Session => "session",
            Decider::Rule => "rule",
            Decider::Conditions => "conditions",
        }
    }
}
