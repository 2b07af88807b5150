//! What a filter says, once parsed: an expression of terms, each about one fact.
//!
//! `and` and `or` are n-ary: `a or b or c` is one `Or` of three, so the tree is as deep
//! as the filter's nesting (parentheses and `not`), never as its length. The parser bounds
//! that nesting ([`crate::MAX_DEPTH`]), so every walk of the tree recurses a bounded
//! number of times whatever the input.

use regex::bytes::Regex;
use wstap_views::{ProtocolField, View};
use wstap_wire::Direction;

/// A parsed filter expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Matches everything (the empty filter).
    All,
    /// Every one matches (two or more, none of them an `And`).
    And(Vec<Expr>),
    /// Any one matches (two or more, none of them an `Or`).
    Or(Vec<Expr>),
    /// The inner expression does not match.
    Not(Box<Expr>),
    /// One fact.
    Term(Term),
}

/// A comparison of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `=`, `==`, `:`.
    Eq,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

impl Cmp {
    /// The SQL operator.
    pub fn sql(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        }
    }

    /// Whether `left` compares to `right` this way.
    pub fn holds<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            Cmp::Eq => left == right,
            Cmp::Lt => left < right,
            Cmp::Le => left <= right,
            Cmp::Gt => left > right,
            Cmp::Ge => left >= right,
        }
    }
}

/// A test of an integer: a comparison, or an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumTest {
    /// Compared with a value.
    Cmp(Cmp, i64),
    /// Between two values, both included.
    Range(i64, i64),
}

impl NumTest {
    /// Whether `value` passes.
    pub fn holds(self, value: i64) -> bool {
        match self {
            NumTest::Cmp(cmp, right) => cmp.holds(value, right),
            NumTest::Range(low, high) => low <= value && value <= high,
        }
    }
}

/// A number-valued fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumField {
    /// The session number.
    Session,
    /// The upstream port.
    Port,
    /// The HTTP status of the session's handshake (or first exchange).
    Status,
    /// Payload length (frames: declared; messages: data length).
    Len,
    /// Frames in a message (1 for a frame).
    Frames,
    /// A close code: of a close frame or message, or the session's first close.
    Close,
    /// Time, in microseconds since the Unix epoch.
    Time,
}

/// A text-valued fact of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    /// The upstream host.
    Host,
    /// The URL of the handshake (or first exchange).
    Url,
    /// The path of that URL, query included.
    Path,
    /// The client's address, `ip:port`.
    Client,
    /// The subprotocol the server chose.
    Subprotocol,
}

/// A test of a text.
#[derive(Debug, Clone)]
pub enum TextTest {
    /// Equal, ignoring case, where `*` stands for any run of characters.
    Glob(String),
    /// A regular expression finds a match.
    Regex(Regex),
}

/// A flag bit of a frame's first byte (a message's: of its first frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// FIN.
    Fin,
    /// RSV1.
    Rsv1,
    /// RSV2.
    Rsv2,
    /// RSV3.
    Rsv3,
}

impl Flag {
    /// The bit in the first byte.
    pub fn bit(self) -> u8 {
        match self {
            Flag::Fin => 0x80,
            Flag::Rsv1 => 0x40,
            Flag::Rsv2 => 0x20,
            Flag::Rsv3 => 0x10,
        }
    }
}

/// A yes/no fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoolField {
    /// A flag bit.
    Flag(Flag),
    /// The frame (or a message's first frame) is masked.
    Masked,
    /// The message was compressed (permessage-deflate).
    Compressed,
    /// wstap terminated TLS for the session.
    Tls,
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Still open.
    Open,
    /// Both sides closed cleanly.
    Closed,
    /// A side went away without finishing.
    Aborted,
    /// wstap could not do its part.
    Error,
}

impl State {
    /// The name filters and the store use.
    pub fn name(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Closed => "closed",
            State::Aborted => "aborted",
            State::Error => "error",
        }
    }
}

/// What became of a message a breakpoint held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Still held.
    Held,
    /// It went on as read.
    Forwarded,
    /// It never went out.
    Dropped,
    /// An edit went in its place.
    Edited,
    /// Its timeout passed: it went on as read.
    TimedOut,
    /// Its session ended while it was held.
    Lost,
}

impl Fate {
    /// The name filters and the store use (the trace's `intervention` actions).
    pub fn name(self) -> &'static str {
        match self {
            Fate::Held => "held",
            Fate::Forwarded => "forwarded",
            Fate::Dropped => "dropped",
            Fate::Edited => "edited",
            Fate::TimedOut => "timed_out",
            Fate::Lost => "lost",
        }
    }

    /// Every fate, in the order above.
    pub const ALL: [Fate; 6] = [
        Fate::Held,
        Fate::Forwarded,
        Fate::Dropped,
        Fate::Edited,
        Fate::TimedOut,
        Fate::Lost,
    ];
}

/// Who made a message: a peer, or wstap (the trace's message `origin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A peer sent it: every frame, and every message read.
    Wire,
    /// wstap sent it in place of a held message.
    Edited,
    /// wstap sent it of its own.
    Injected,
    /// wstap sent a recorded message again.
    Resent,
}

impl Origin {
    /// The name filters and the store use.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Wire => "wire",
            Origin::Edited => "edited",
            Origin::Injected => "injected",
            Origin::Resent => "resent",
        }
    }

    /// Every origin, in the order above.
    pub const ALL: [Origin; 4] = [
        Origin::Wire,
        Origin::Edited,
        Origin::Injected,
        Origin::Resent,
    ];
}

/// A JSON value to compare with.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonLiteral {
    /// A string.
    Str(String),
    /// A number.
    Num(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// One step of a JSON path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonStep {
    /// `.key`.
    Key(String),
    /// `[n]`.
    Index(usize),
}

/// A test of the value at a JSON path.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTest {
    /// The path exists.
    Exists,
    /// The value is of the literal's type and compares to it so.
    Cmp(Cmp, JsonLiteral),
}

/// A test of a protocol field's value (`signalr.target == "Send"`, `mqtt.topic ~ "^s/"`).
#[derive(Debug, Clone)]
pub enum ProtocolTest {
    /// The field is there (`signalr.target` alone).
    Exists,
    /// `:`: its text equals the pattern ignoring case, `*` standing for any run.
    Glob(String),
    /// `~`: a regular expression finds a match in its text.
    Regex(Regex),
    /// `==`, `<`, ...: compared as JSON values are, except that `==` also finds a
    /// number written as text (`signalr.id == 3` finds the invocation id `"3"`).
    Cmp(Cmp, JsonLiteral),
}

/// One fact a filter tests.
#[derive(Debug, Clone)]
pub enum Term {
    /// A number.
    Num(NumField, NumTest),
    /// A text of the session.
    Text(TextField, TextTest),
    /// A yes/no fact.
    Bool(BoolField, bool),
    /// The direction of a frame or message.
    Dir(Direction),
    /// The opcode is one of these (bit `n` for opcode `n`).
    Op(u16),
    /// The session accepted an extension of this name (lower case).
    Extension(String),
    /// A violation: any (`None`), or one of this code.
    Violation(Option<&'static str>),
    /// The session's state.
    State(State),
    /// Whether a breakpoint held the message (or the frame that ended it).
    Held(bool),
    /// What became of a message a breakpoint held.
    Fate(Fate),
    /// A rule tagged the message (or the frame that ended it) with this tag.
    Tag(String),
    /// Who made the message.
    Origin(Origin),
    /// A bounded capture gave up the payload (`payload:dropped`).
    Dropped,
    /// What the session turned out to be (`websocket`, `http`, ...).
    Kind(String),
    /// The payload (inflated, when compressed) matches: a case-insensitive substring
    /// search or a regular expression, both over bytes.
    Payload(Regex),
    /// The payload is JSON and the value at `path` passes `test`.
    Json {
        /// The path, from the top.
        path: Vec<JsonStep>,
        /// The test.
        test: JsonTest,
    },
    /// The payload is one value of a binary format (MessagePack, CBOR) and the value at
    /// `path` passes `test`, as `json.PATH` tests JSON.
    Decoded {
        /// The format.
        view: View,
        /// The path, from the top.
        path: Vec<JsonStep>,
        /// The test.
        test: JsonTest,
        /// The term written out, as the SQL back end hands it to the predicate's code.
        source: String,
    },
    /// The payload, read as a protocol, has an item whose field passes `test`.
    Protocol {
        /// The field.
        field: ProtocolField,
        /// The test.
        test: ProtocolTest,
        /// The term written out, as the SQL back end hands it to the predicate's code.
        source: String,
    },
}

/// Whether a term is about the session, about one frame or message, or either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A fact of the session (host, url, status, ...).
    Session,
    /// A fact of a frame or a message (dir, op, len, payload, ...).
    Record,
    /// Both have one (`close`, `violation`, `time`): the record's, when there is one.
    Either,
}

impl Term {
    /// What the term is about.
    pub fn level(&self) -> Level {
        match self {
            Term::Num(field, _) => match field {
                NumField::Session | NumField::Port | NumField::Status => Level::Session,
                NumField::Len | NumField::Frames => Level::Record,
                NumField::Close | NumField::Time => Level::Either,
            },
            Term::Text(..) | Term::Extension(_) | Term::State(_) | Term::Kind(_) => Level::Session,
            Term::Held(_) | Term::Fate(_) | Term::Tag(_) | Term::Origin(_) | Term::Dropped => {
                Level::Record
            }
            Term::Bool(BoolField::Tls, _) => Level::Session,
            Term::Bool(..)
            | Term::Dir(_)
            | Term::Op(_)
            | Term::Payload(_)
            | Term::Json { .. }
            | Term::Decoded { .. }
            | Term::Protocol { .. } => Level::Record,
            // Any violation: the record's, or the session's count. One kind: records only.
            Term::Violation(None) => Level::Either,
            Term::Violation(Some(_)) => Level::Record,
        }
    }
}
