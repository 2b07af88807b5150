//! The predicate: a filter evaluated over facts in memory (the live console, breakpoints).
//!
//! Evaluating a term allocates nothing and reads only the facts it names, so a filter is
//! cheap enough to run on every frame. A filter over frames or messages sees a record and
//! its session; a filter over sessions sees a session and, for terms about records, asks
//! whether any of its records passes the term.

use crate::ast::*;
use wstap_wire::Direction;

/// What a filter can know of a session.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts<'a> {
    /// The session number.
    pub id: u64,
    /// The upstream host.
    pub host: &'a str,
    /// The upstream port.
    pub port: u16,
    /// The URL of the handshake (or first exchange), or empty.
    pub url: &'a str,
    /// Its path and query, or empty.
    pub path: &'a str,
    /// The client's address.
    pub client: &'a str,
    /// The subprotocol chosen, if any.
    pub subprotocol: Option<&'a str>,
    /// The names of the extensions accepted, lower case, each with a space before and
    /// after (`" permessage-deflate "`), or empty.
    pub extension_names: &'a str,
    /// Whether wstap terminated TLS.
    pub tls: bool,
    /// The HTTP status of the handshake (or first exchange).
    pub status: Option<u16>,
    /// Where the session stands.
    pub state: State,
    /// What it turned out to be (`websocket`, ...), once it ended.
    pub kind: Option<&'a str>,
    /// The first close frame's code.
    pub close: Option<u16>,
    /// When it began, µs since the epoch.
    pub started_us: i64,
    /// Frames with violations, plus handshake issues.
    pub violations: u64,
}

/// The path and query of an absolute URL (`/` when it has none), or `""`.
pub fn path_of(url: &str) -> &str {
    let Some((_, rest)) = url.split_once("://") else {
        return "";
    };
    match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with('/') => &rest[at..],
        Some(_) | None => "/",
    }
}

/// Extension header values as `" name name "`: lower-case names, each between spaces.
pub fn extension_names(extensions: &[String]) -> String {
    if extensions.is_empty() {
        return String::new();
    }
    let mut names = String::from(" ");
    for extension in extensions {
        let name = extension.split(';').next().unwrap_or_default().trim();
        names.push_str(&name.to_ascii_lowercase());
        names.push(' ');
    }
    names
}

/// A frame or a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// One frame.
    Frame,
    /// One message (a data frame and its continuations, or one control frame).
    Message,
}

/// What a filter can know of one frame or message.
#[derive(Debug, Clone, Copy)]
pub struct RecordFacts<'a> {
    /// Frame or message.
    pub kind: RecordKind,
    /// Which way it went.
    pub dir: Direction,
    /// Its opcode (a message's: its first frame's), 0-15.
    pub opcode: u8,
    /// The first header byte (a message's: its first frame's).
    pub flags: u8,
    /// Whether it (a message's first frame) was masked.
    pub masked: bool,
    /// Payload length: a frame's declared length, a message's data length.
    pub len: u64,
    /// Frames: 1 for a frame.
    pub frames: u64,
    /// Whether the message was compressed (a frame: whether it carries compressed data).
    pub compressed: bool,
    /// The close code, on close frames and messages.
    pub close: Option<u16>,
    /// When its first byte arrived, µs since the epoch.
    pub time_us: i64,
    /// The codes of the rules it breaks.
    pub violations: &'a [&'a str],
    /// Its captured payload: inflated when compressed.
    pub payload: &'a [u8],
    /// For a byte-stream protocol (MQTT) whose packets span messages: the packets that
    /// end in this message (or in the message this frame is all of), earlier messages'
    /// parts included, when they are not its own bytes; protocol fields read these.
    /// `None`: the payload is what they read.
    pub stream: Option<&'a [u8]>,
    /// What became of it, when a breakpoint held it (a message, or the frame that ended
    /// one); `None` for what no breakpoint held, and for a live record, whose fate comes
    /// later.
    pub fate: Option<Fate>,
    /// The tags rules gave it, each between spaces (`" slow vip "`), or empty; a live
    /// record has none yet.
    pub tags: &'a str,
    /// Who made it: every frame and every live record came from a peer.
    pub origin: Origin,
    /// Whether a bounded capture gave its payload up: payload terms cannot match it.
    pub dropped: bool,
}

/// Whether `expr` matches `record` of `session`.
pub fn record_matches(expr: &Expr, session: &SessionFacts<'_>, record: &RecordFacts<'_>) -> bool {
    match expr {
        Expr::All => true,
        Expr::And(all) => all.iter().all(|e| record_matches(e, session, record)),
        Expr::Or(any) => any.iter().any(|e| record_matches(e, session, record)),
        Expr::Not(a) => !record_matches(a, session, record),
        Expr::Term(term) => term_holds(term, session, Some(record)),
    }
}

/// Whether `expr` matches `session`, whose records are `records`: a term about records
/// holds when any of them passes it.
pub fn session_matches(
    expr: &Expr,
    session: &SessionFacts<'_>,
    records: &[RecordFacts<'_>],
) -> bool {
    match expr {
        Expr::All => true,
        Expr::And(all) => all.iter().all(|e| session_matches(e, session, records)),
        Expr::Or(any) => any.iter().any(|e| session_matches(e, session, records)),
        Expr::Not(a) => !session_matches(a, session, records),
        Expr::Term(term) if term.level() == Level::Record => records
            .iter()
            .any(|record| term_holds(term, session, Some(record))),
        Expr::Term(term) => term_holds(term, session, None),
    }
}

/// What can be said of `session` before its records are known: `Some(true)` or
/// `Some(false)` when the session's own facts decide, `None` when records would.
/// (Three-valued: `a and b` is false when either is, true when both are.)
pub fn session_verdict(expr: &Expr, session: &SessionFacts<'_>) -> Option<bool> {
    verdict(expr, &|term| match term.level() {
        Level::Record => None,
        _ => Some(term_holds(term, session, None)),
    })
}

/// What the first frame's header says of a data message, before its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderFacts {
    /// Which way it goes.
    pub dir: Direction,
    /// The first header byte (FIN, RSV, opcode).
    pub flags: u8,
    /// Whether the frame is masked.
    pub masked: bool,
    /// Whether the message is compressed (RSV1 under permessage-deflate).
    pub compressed: bool,
    /// The message's length, when the header says it: one frame, not compressed.
    pub len: Option<u64>,
}

/// What can be said of a live data message of `session` from its first frame's header
/// ([`HeaderFacts`]): `Some(false)` lets a breakpoint pass it on as it comes, without
/// waiting for the rest. Its direction, opcode, flags, masking and compression are
/// known, its length when the header says it, its fate (none yet), and the session's
/// facts; its payload, violations, time and frame count (unless FIN) are not.
pub fn header_verdict(
    expr: &Expr,
    session: &SessionFacts<'_>,
    header: &HeaderFacts,
) -> Option<bool> {
    let fin = header.flags & 0x80 != 0;
    let record = RecordFacts {
        kind: RecordKind::Message,
        dir: header.dir,
        opcode: header.flags & 0x0F,
        flags: header.flags,
        masked: header.masked,
        len: header.len.unwrap_or(0),
        frames: 1,
        compressed: header.compressed,
        close: None,
        time_us: 0,
        violations: &[],
        payload: &[],
        stream: None,
        fate: None,
        tags: "",
        origin: Origin::Wire,
        dropped: false,
    };
    let known = |term: &Term| Some(term_holds(term, session, Some(&record)));
    verdict(expr, &|term| match term {
        _ if term.level() == Level::Session => Some(term_holds(term, session, None)),
        Term::Dir(_)
        | Term::Op(_)
        | Term::Bool(..)
        | Term::Held(_)
        | Term::Fate(_)
        | Term::Tag(_)
        | Term::Origin(_)
        | Term::Dropped => known(term),
        // A data message has no close code.
        Term::Num(NumField::Close, _) => known(term),
        Term::Num(NumField::Len, _) if header.len.is_some() => known(term),
        Term::Num(NumField::Frames, _) if fin => known(term),
        _ => None,
    })
}

/// The three-valued verdict of `expr`, each term's from `term` (`None`: unknown).
fn verdict(expr: &Expr, term: &dyn Fn(&Term) -> Option<bool>) -> Option<bool> {
    match expr {
        Expr::All => Some(true),
        Expr::And(all) => combine(all, term, false),
        Expr::Or(any) => combine(any, term, true),
        Expr::Not(a) => verdict(a, term).map(|v| !v),
        Expr::Term(t) => term(t),
    }
}

/// The three-valued verdict of an `and` (`decisive` false) or an `or` (`decisive` true):
/// `decisive` when any part is, the other value when all parts are, else unknown.
fn combine(parts: &[Expr], term: &dyn Fn(&Term) -> Option<bool>, decisive: bool) -> Option<bool> {
    let mut known = true;
    for part in parts {
        match verdict(part, term) {
            Some(v) if v == decisive => return Some(decisive),
            Some(_) => {}
            None => known = false,
        }
    }
    known.then_some(!decisive)
}

/// One term, of a record (when given) or of the session.
fn term_holds(term: &Term, s: &SessionFacts<'_>, r: Option<&RecordFacts<'_>>) -> bool {
    match term {
        Term::Num(field, test) => num(*field, s, r).is_some_and(|v| test.holds(v)),
        Term::Text(field, test) => {
            let value = match field {
                TextField::Host => Some(s.host),
                TextField::Url => Some(s.url),
                TextField::Path => Some(s.path),
                TextField::Client => Some(s.client),
                TextField::Subprotocol => s.subprotocol,
            };
            value.is_some_and(|v| match test {
                TextTest::Glob(pattern) => glob_matches(pattern, v),
                TextTest::Regex(regex) => regex.is_match(v.as_bytes()),
            })
        }
        Term::Bool(BoolField::Tls, want) => s.tls == *want,
        Term::Bool(field, want) => r.is_some_and(|r| {
            let value = match field {
                BoolField::Flag(flag) => r.flags & flag.bit() != 0,
                BoolField::Masked => r.masked,
                BoolField::Compressed => r.compressed,
                BoolField::Tls => s.tls,
            };
            value == *want
        }),
        Term::Dir(dir) => r.is_some_and(|r| r.dir == *dir),
        Term::Op(mask) => r.is_some_and(|r| (mask >> (r.opcode & 0x0F)) & 1 == 1),
        Term::Extension(name) => extension_listed(s.extension_names, name),
        Term::Violation(None) => match r {
            Some(r) => !r.violations.is_empty(),
            None => s.violations > 0,
        },
        Term::Violation(Some(code)) => r.is_some_and(|r| r.violations.contains(code)),
        Term::State(state) => s.state == *state,
        Term::Held(held) => r.is_some_and(|r| r.fate.is_some() == *held),
        Term::Fate(fate) => r.is_some_and(|r| r.fate == Some(*fate)),
        Term::Tag(tag) => r.is_some_and(|r| r.tags.split(' ').any(|t| t == tag)),
        Term::Origin(origin) => r.is_some_and(|r| r.origin == *origin),
        Term::Kind(kind) => s.kind == Some(kind.as_str()),
        Term::Dropped => r.is_some_and(|r| r.dropped),
        Term::Payload(regex) => r.is_some_and(|r| !r.dropped && regex.is_match(r.payload)),
        Term::Json { path, test } => r.is_some_and(|r| json_holds(r.payload, path, test)),
        Term::Decoded {
            view, path, test, ..
        } => r.is_some_and(|r| decoded_holds(*view, r.payload, path, test)),
        Term::Protocol { field, test, .. } => r.is_some_and(|r| {
            // Only MQTT is read as a stream (the packets joined across messages).
            let bytes = match field.view() {
                wstap_views::View::Mqtt => r.stream.unwrap_or(r.payload),
                _ => r.payload,
            };
            field_holds(field, test, bytes)
        }),
    }
}

/// Whether `term` (a payload term: text, JSON, format or protocol) holds of `payload` (for
/// a protocol term: the packets the message ends, [`RecordFacts::stream`], when it has
/// them). The SQL back end's `wstap_term` calls this with the term it wrote out.
pub fn payload_term_holds(term: &Term, payload: &[u8]) -> bool {
    match term {
        Term::Payload(regex) => regex.is_match(payload),
        Term::Json { path, test } => json_holds(payload, path, test),
        Term::Decoded {
            view, path, test, ..
        } => decoded_holds(*view, payload, path, test),
        Term::Protocol { field, test, .. } => field_holds(field, test, payload),
        _ => false,
    }
}

/// Whether `payload` is one MessagePack or CBOR value whose value at `path` passes `test`.
fn decoded_holds(
    view: wstap_views::View,
    payload: &[u8],
    path: &[JsonStep],
    test: &JsonTest,
) -> bool {
    wstap_views::field::format_value(view, payload)
        .is_some_and(|root| value_holds(&root, path, test))
}

/// Whether `payload`, read as `field`'s protocol, has an item whose field passes `test`.
fn field_holds(field: &wstap_views::ProtocolField, test: &ProtocolTest, payload: &[u8]) -> bool {
    use serde_json::Value;
    // An equality the payload's bytes already rule out needs no decoding.
    if let ProtocolTest::Cmp(Cmp::Eq, JsonLiteral::Str(text)) = test {
        if !field.may_be(payload, text) {
            return false;
        }
    }
    field.values(payload).iter().any(|value| {
        let text = || match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match test {
            ProtocolTest::Exists => true,
            ProtocolTest::Glob(pattern) => glob_matches(pattern, &text()),
            ProtocolTest::Regex(regex) => regex.is_match(text().as_bytes()),
            ProtocolTest::Cmp(Cmp::Eq, JsonLiteral::Num(n)) if value.is_string() => {
                text().trim().parse::<f64>().is_ok_and(|v| v == *n)
            }
            ProtocolTest::Cmp(cmp, literal) => literal_holds(value, *cmp, literal),
        }
    })
}

fn num(field: NumField, s: &SessionFacts<'_>, r: Option<&RecordFacts<'_>>) -> Option<i64> {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    match (field, r) {
        (NumField::Session, _) => Some(clamp(s.id)),
        (NumField::Port, _) => Some(i64::from(s.port)),
        (NumField::Status, _) => s.status.map(i64::from),
        (NumField::Len, r) => r.map(|r| clamp(r.len)),
        (NumField::Frames, r) => r.map(|r| clamp(r.frames)),
        (NumField::Close, Some(r)) => r.close.map(i64::from),
        (NumField::Close, None) => s.close.map(i64::from),
        (NumField::Time, Some(r)) => Some(r.time_us),
        (NumField::Time, None) => Some(s.started_us),
    }
}

/// Whether `names` (`" a b "`) lists `name`.
fn extension_listed(names: &str, name: &str) -> bool {
    names
        .split(' ')
        .any(|listed| !listed.is_empty() && listed == name)
}

/// Case-insensitive equality where `*` in `pattern` (lower case already) stands for any
/// run of characters, possibly empty. The SQL back end calls this very function.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let text = text.to_lowercase();
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether `payload` is JSON whose value at `path` passes `test`.
pub fn json_holds(payload: &[u8], path: &[JsonStep], test: &JsonTest) -> bool {
    let Ok(root) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return false;
    };
    value_holds(&root, path, test)
}

/// Whether the value at `path` in `root` passes `test`.
fn value_holds(root: &serde_json::Value, path: &[JsonStep], test: &JsonTest) -> bool {
    let mut at = root;
    for step in path {
        let next = match step {
            JsonStep::Key(key) => at.as_object().and_then(|o| o.get(key)),
            JsonStep::Index(i) => at.as_array().and_then(|a| a.get(*i)),
        };
        match next {
            Some(value) => at = value,
            None => return false,
        }
    }
    match test {
        JsonTest::Exists => true,
        JsonTest::Cmp(cmp, literal) => literal_holds(at, *cmp, literal),
    }
}

/// Whether `value` is of the literal's type and compares to it so.
fn literal_holds(value: &serde_json::Value, cmp: Cmp, literal: &JsonLiteral) -> bool {
    use serde_json::Value;
    match (value, literal) {
        (Value::String(s), JsonLiteral::Str(l)) => cmp.holds(s.as_str(), l.as_str()),
        (Value::Number(n), JsonLiteral::Num(l)) => n.as_f64().is_some_and(|f| cmp.holds(f, *l)),
        (Value::Bool(b), JsonLiteral::Bool(l)) => cmp == Cmp::Eq && b == l,
        (Value::Null, JsonLiteral::Null) => cmp == Cmp::Eq,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_is_case_insensitive_with_stars() {
        assert!(glob_matches("example.com", "Example.COM"));
        assert!(glob_matches("*.example.com", "api.example.com"));
        assert!(!glob_matches("*.example.com", "example.com"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("ab*ab", "ab"[..].repeat(2).as_str()));
        assert!(!glob_matches("aba*aba", "aba"));
    }
}
