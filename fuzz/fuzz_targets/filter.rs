//! Fuzz the filter language: any text either parses or is an error whose span lies
//! within it, on character boundaries; a filter that parses translates to SQL with one
//! parameter per placeholder and balanced parentheses, and evaluates over facts in
//! memory, without panicking (or overflowing the stack).
//!
//! Besides plain text, an input that starts with 0xFF is a recipe for the deep and long
//! filters a byte-level mutator seldom reaches: two bytes of a count N, then three parts
//! split at 0x00, written as `prefix`×N `middle` `suffix`×N (`(`×N `x` `)`×N, `not `×N
//! `x`, `w or `×N `w`). Run with the dictionary `fuzz/filter.dict`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wstap_filter::sql::{RecordColumn, SessionColumn};
use wstap_filter::{Fate, Filter, Origin, RecordFacts, RecordKind, Scope, SessionFacts, SqlSchema, State};
use wstap_wire::Direction;

/// Columns named after themselves: enough to check the SQL's shape.
struct Names;

impl SqlSchema for Names {
    fn record(&self, column: RecordColumn) -> String {
        format!("r.{column:?}")
    }
    fn session(&self, column: SessionColumn) -> String {
        format!("s.{column:?}")
    }
    fn record_table(&self) -> &str {
        "records"
    }
}

/// The filter text an input stands for: itself, or the expansion of a recipe.
fn source_of(input: &[u8]) -> Option<String> {
    let Some((&0xFF, recipe)) = input.split_first() else {
        return std::str::from_utf8(input).ok().map(str::to_owned);
    };
    let (count, parts) = recipe.split_at_checked(2)?;
    let count = usize::from(u16::from_le_bytes([count[0], count[1]]));
    let mut parts = parts.splitn(3, |b| *b == 0);
    let prefix = std::str::from_utf8(parts.next()?).ok()?;
    let middle = std::str::from_utf8(parts.next().unwrap_or_default()).ok()?;
    let suffix = std::str::from_utf8(parts.next().unwrap_or_default()).ok()?;
    // 16 KiB reach every limit (1000 terms, 256 levels); longer runs only cost time.
    if (prefix.len() + suffix.len()).saturating_mul(count) > 16 << 10 {
        return None;
    }
    Some(format!("{}{middle}{}", prefix.repeat(count), suffix.repeat(count)))
}

fuzz_target!(|input: &[u8]| {
    let Some(source) = source_of(input) else { return };
    let source = source.as_str();
    let filter = match Filter::parse(source) {
        Ok(filter) => filter,
        Err(error) => {
            // The span is in characters: it lies within the filter, or is the one
            // place past its end.
            let (column, width) = error.span();
            let chars = source.chars().count();
            assert!(width >= 1 && column + width <= chars.max(column) + 1, "{column}+{width} of {chars}");
            assert!(!error.message().is_empty());
            // The caret line stands under the shown filter, which is at most ~120 wide.
            let shown = error.to_string();
            let caret = shown.lines().last().unwrap_or_default();
            assert!(caret.trim_start().starts_with('^'), "{shown}");
            assert!(caret.len() <= 2 + 1 + 40 + 40 + 40, "{shown}");
            return;
        }
    };
    for scope in [Scope::Records, Scope::Sessions] {
        let sql = filter.to_sql(scope, &Names);
        let placeholders = sql.condition.matches('?').count();
        assert_eq!(placeholders, sql.params.len(), "{}", sql.condition);
        let opened = sql.condition.matches('(').count();
        let closed = sql.condition.matches(')').count();
        assert_eq!(opened, closed, "{}", sql.condition);
    }
    let session = SessionFacts {
        id: 7,
        host: "chat.example.com",
        port: 443,
        url: "wss://chat.example.com/room?id=1",
        path: "/room?id=1",
        client: "127.0.0.1:50000",
        subprotocol: Some("chat"),
        extension_names: " permessage-deflate ",
        tls: true,
        status: Some(101),
        state: State::Open,
        kind: Some("websocket"),
        close: None,
        started_us: 1_796_000_000_000_000,
        violations: 1,
    };
    let violations = ["invalid_utf8"];
    let record = RecordFacts {
        kind: RecordKind::Message,
        dir: Direction::ServerToClient,
        opcode: 1,
        flags: 0xC1,
        masked: false,
        len: 30,
        frames: 1,
        compressed: true,
        close: None,
        time_us: 1_796_000_000_100_000,
        violations: &violations,
        payload: br#"{"user":{"id":42},"tags":["a"]}"#,
        stream: None,
        fate: Some(Fate::Edited),
        tags: " slow ",
        origin: Origin::Wire,
        dropped: false,
    };
    let _ = filter.matches_record(&session, &record);
    let _ = filter.matches_session(&session, &[record]);
    let _ = filter.matches_session(&session, &[]);
    let _ = filter.session_verdict(&session);
});
