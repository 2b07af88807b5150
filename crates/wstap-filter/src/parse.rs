//! The filter language's parser: text in, an [`Expr`] out, or an error that points.
//!
//! ```text
//! filter   := or?
//! or       := and (("or" | "||") and)*
//! and      := not (("and" | "&&")? not)*          juxtaposition is "and"
//! not      := ("not" | "!" | "-")* primary
//! primary  := "(" or ")" | term
//! term     := name op value | field | json-path (op value)? | word | "quoted phrase"
//! op       := ":" | "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "~"
//! value    := word | "quoted" | value ".." value   (a range, after ":")
//! ```
//!
//! A value runs to the next space or closing parenthesis, so it may hold `:` and `.`
//! (`time>2026-12-01T20:00:00Z`, `host:*.example.com`). A name (letters, digits, `_`, `-`
//! and inner dots) followed by an operator, with or without spaces between, is always a
//! field test: an unknown name there is an error, never a silent search for three words
//! (`lenght > 1000`). Anything else is a word to look for in payloads; to look for text
//! with spaces or `:` in it, quote it.
//!
//! Nesting (parentheses and negations) is bounded by [`MAX_DEPTH`] and the number of
//! terms by [`MAX_TERMS`]; past either, the parse fails with a caret at the place, so no
//! input can drive the parser's recursion (or any later walk of the tree) deeper.

use crate::ast::*;
use crate::error::ParseError;
use crate::value;
use crate::{MAX_DEPTH, MAX_TERMS};
use regex::bytes::{Regex, RegexBuilder};
use wstap_views::{ProtocolField, View};
use wstap_wire::{Direction, Violation};

/// The field names and what they name, aliases included.
const FIELDS: &[(&str, FieldName)] = &[
    ("session", FieldName::Num(NumField::Session)),
    ("port", FieldName::Num(NumField::Port)),
    ("status", FieldName::Num(NumField::Status)),
    ("len", FieldName::Num(NumField::Len)),
    ("length", FieldName::Num(NumField::Len)),
    ("size", FieldName::Num(NumField::Len)),
    ("frames", FieldName::Num(NumField::Frames)),
    ("close", FieldName::Num(NumField::Close)),
    ("code", FieldName::Num(NumField::Close)),
    ("time", FieldName::Num(NumField::Time)),
    ("host", FieldName::Text(TextField::Host)),
    ("url", FieldName::Text(TextField::Url)),
    ("path", FieldName::Text(TextField::Path)),
    ("client", FieldName::Text(TextField::Client)),
    ("subprotocol", FieldName::Text(TextField::Subprotocol)),
    ("protocol", FieldName::Text(TextField::Subprotocol)),
    ("fin", FieldName::Bool(BoolField::Flag(Flag::Fin))),
    ("rsv1", FieldName::Bool(BoolField::Flag(Flag::Rsv1))),
    ("rsv2", FieldName::Bool(BoolField::Flag(Flag::Rsv2))),
    ("rsv3", FieldName::Bool(BoolField::Flag(Flag::Rsv3))),
    ("masked", FieldName::Bool(BoolField::Masked)),
    ("compressed", FieldName::Bool(BoolField::Compressed)),
    ("tls", FieldName::Bool(BoolField::Tls)),
    ("dir", FieldName::Dir),
    ("direction", FieldName::Dir),
    ("op", FieldName::Op),
    ("opcode", FieldName::Op),
    ("extension", FieldName::Extension),
    ("ext", FieldName::Extension),
    ("violation", FieldName::Violation),
    ("violations", FieldName::Violation),
    ("state", FieldName::State),
    ("held", FieldName::Held),
    ("fate", FieldName::Fate),
    ("tag", FieldName::Tag),
    ("origin", FieldName::Origin),
    ("kind", FieldName::Kind),
    ("text", FieldName::Payload),
    ("payload", FieldName::Payload),
];

/// The kinds a session can turn out to be.
const KINDS: [&str; 7] = [
    "websocket",
    "http",
    "tunnel",
    "tls-tunnel",
    "tls",
    "upgraded",
    "empty",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldName {
    Num(NumField),
    Text(TextField),
    Bool(BoolField),
    Dir,
    Op,
    Extension,
    Violation,
    State,
    Held,
    Fate,
    Tag,
    Origin,
    Kind,
    Payload,
}

/// An operator between a field and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Colon,
    Eq,
    Ne,
    Cmp(Cmp),
    Match,
}

/// A field's name as written and where its operator stands, for errors.
struct FieldTest {
    name: String,
    op_start: usize,
    op_end: usize,
}

impl std::fmt::Display for FieldTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// A value as written, and where.
struct Value {
    text: String,
    quoted: bool,
    start: usize,
    end: usize,
}

/// Parses `source` into an expression; the empty filter matches everything.
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser {
        src: source,
        pos: 0,
        depth: 0,
        terms: 0,
    };
    parser.skip_space();
    if parser.at_end() {
        return Ok(Expr::All);
    }
    let expr = parser.or()?;
    parser.skip_space();
    if !parser.at_end() {
        let what = if parser.peek() == Some(')') {
            "a ')' without its '('"
        } else {
            "the end of the filter, or 'and' / 'or'"
        };
        return Err(parser.error_here(format!("expected {what}")));
    }
    Ok(expr)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    /// Parentheses and negations open around `pos`.
    depth: usize,
    /// Terms read so far.
    terms: usize,
}

/// Whether `c` ends a word: white space and parentheses.
fn ends_word(c: char) -> bool {
    c.is_whitespace() || c == '(' || c == ')'
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn skip_space(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    fn error(&self, start: usize, end: usize, message: impl Into<String>) -> ParseError {
        ParseError::new(self.src, start, end, message)
    }

    /// An error at the next character (or the end).
    fn error_here(&self, message: impl Into<String>) -> ParseError {
        let end = self.pos + self.peek().map_or(0, char::len_utf8);
        self.error(self.pos, end, message)
    }

    /// The word starting here, without consuming it.
    fn word_ahead(&self) -> &str {
        let rest = &self.src[self.pos..];
        let end = rest.find(ends_word).unwrap_or(rest.len());
        &rest[..end]
    }

    /// Consumes `keyword` (case-insensitive) when it stands alone here.
    fn keyword(&mut self, keywords: &[&str]) -> bool {
        let word = self.word_ahead();
        if keywords.iter().any(|k| word.eq_ignore_ascii_case(k)) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut parts = vec![self.and()?];
        loop {
            self.skip_space();
            if !self.keyword(&["or", "||"]) {
                return Ok(group(parts, Join::Or));
            }
            parts.push(self.and()?);
        }
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut parts = vec![self.not()?];
        loop {
            self.skip_space();
            if self.at_end() || self.peek() == Some(')') {
                return Ok(group(parts, Join::And));
            }
            let word = self.word_ahead();
            if word.eq_ignore_ascii_case("or") || word == "||" {
                return Ok(group(parts, Join::And));
            }
            self.keyword(&["and", "&&"]);
            parts.push(self.not()?);
        }
    }

    /// Any number of negations, then a primary: a loop, so a long run of `not` costs no
    /// stack; each counts as a level of nesting.
    fn not(&mut self) -> Result<Expr, ParseError> {
        let mut negations = 0;
        loop {
            self.skip_space();
            let at = self.pos;
            if !self.keyword(&["not"]) {
                // `!x` and `-x` negate; a lone `-` is a word, a lone `!` negates what follows.
                let Some(c @ ('!' | '-')) = self.peek() else {
                    break;
                };
                let next = self.src[self.pos + 1..].chars().next();
                if !(next.is_some_and(|n| !ends_word(n)) || c == '!') {
                    break;
                }
                self.pos += 1;
            }
            self.enter(at, self.pos)?;
            negations += 1;
        }
        let mut expr = self.primary()?;
        for _ in 0..negations {
            expr = Expr::Not(Box::new(expr));
        }
        self.depth -= negations;
        Ok(expr)
    }

    /// One more level of nesting, opened by the parenthesis or negation at `at..end`.
    fn enter(&mut self, at: usize, end: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                at,
                end,
                format!(
                    "the filter nests too deeply here: at most {MAX_DEPTH} levels of parentheses and 'not'"
                ),
            ));
        }
        Ok(())
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        self.skip_space();
        match self.peek() {
            None => Err(self.error_here("expected a term: a field test like len>100, or a word")),
            Some('(') => {
                let open = self.pos;
                self.enter(open, open + 1)?;
                self.pos += 1;
                self.skip_space();
                if self.peek() == Some(')') {
                    return Err(self.error_here("expected a term inside the parentheses"));
                }
                let inner = self.or()?;
                self.skip_space();
                if self.peek() != Some(')') {
                    return Err(self.error(open, open + 1, "this '(' is never closed"));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Some(')') => Err(self.error_here("expected a term before ')'")),
            Some(_) => {
                self.terms += 1;
                if self.terms > MAX_TERMS {
                    let width = self.word_ahead().len().max(1);
                    return Err(self.error(
                        self.pos,
                        self.pos + width,
                        format!("the filter is too long: at most {MAX_TERMS} terms"),
                    ));
                }
                self.term()
            }
        }
    }

    /// A name of letters, digits and `_` here (possibly empty), consumed.
    fn name(&mut self) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek().filter(|c| is_name_char(*c)) {
            self.pos += c.len_utf8();
        }
        &self.src[start..self.pos]
    }

    /// The rest of a name that may be a field's, consumed: `-` and dots between name
    /// characters (`socketio.event`, `x-api-key`). A trailing dot is not part of it.
    fn name_rest(&mut self) {
        loop {
            let mut ahead = self.src[self.pos..].chars();
            match (ahead.next(), ahead.next()) {
                (Some('.' | '-'), Some(c)) if is_name_char(c) => self.pos += 1,
                (Some(c), _) if is_name_char(c) => self.pos += 1,
                _ => return,
            }
        }
    }

    /// An operator here, consumed.
    fn op(&mut self) -> Option<Op> {
        let rest = &self.src[self.pos..];
        let (op, len) = if rest.starts_with("==") {
            (Op::Eq, 2)
        } else if rest.starts_with("!=") {
            (Op::Ne, 2)
        } else if rest.starts_with("<=") {
            (Op::Cmp(Cmp::Le), 2)
        } else if rest.starts_with(">=") {
            (Op::Cmp(Cmp::Ge), 2)
        } else {
            match rest.chars().next()? {
                ':' => (Op::Colon, 1),
                '=' => (Op::Eq, 1),
                '<' => (Op::Cmp(Cmp::Lt), 1),
                '>' => (Op::Cmp(Cmp::Gt), 1),
                '~' => (Op::Match, 1),
                _ => return None,
            }
        };
        self.pos += len;
        Some(op)
    }

    /// A quoted string here (the opening quote at `self.pos`), with `\"` and `\\`.
    fn quoted(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut text = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error(start, start + 1, "this quote is never closed"));
            };
            self.pos += c.len_utf8();
            match c {
                '"' => break,
                '\\' => match self.peek() {
                    Some(escaped @ ('"' | '\\')) => {
                        self.pos += 1;
                        text.push(escaped);
                    }
                    _ => text.push('\\'),
                },
                c => text.push(c),
            }
        }
        Ok(Value {
            text,
            quoted: true,
            start,
            end: self.pos,
        })
    }

    /// The value after an operator.
    fn value(&mut self, after: &str) -> Result<Value, ParseError> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let start = self.pos;
        let word = self.word_ahead().to_owned();
        if word.is_empty() {
            return Err(self.error_here(format!("expected a value after '{after}'")));
        }
        self.pos += word.len();
        Ok(Value {
            text: word,
            quoted: false,
            start,
            end: self.pos,
        })
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == Some('"') {
            let phrase = self.quoted()?;
            let regex = self.literal(contains(&phrase.text), &phrase)?;
            return Ok(Expr::Term(Term::Payload(regex)));
        }
        let start = self.pos;
        let name = self.name().to_ascii_lowercase();
        if matches!(self.peek(), Some('.' | '[')) {
            match name.as_str() {
                "json" => return self.json(start, None),
                "msgpack" => return self.json(start, Some(View::MsgPack)),
                "cbor" => return self.json(start, Some(View::Cbor)),
                _ => {}
            }
        }
        self.name_rest();
        let name_end = self.pos;
        let written = self.src[start..name_end].to_owned();
        if let Some((prefix, field)) = written.split_once('.') {
            if let Some(view) = ProtocolField::protocol(prefix) {
                match ProtocolField::find(view, field) {
                    Ok(field) => return self.protocol_term(start, field),
                    // Compared, it must be a field; alone, a dotted word to look for
                    // (`mqtt.org`).
                    Err(e) if self.op_follows() => {
                        return Err(self.error(start, name_end, e.to_string()))
                    }
                    Err(_) => {}
                }
            }
        }
        let field = FIELDS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&written))
            .map(|(_, f)| *f);
        // An operator after a name, with or without spaces, makes a field test.
        self.skip_space();
        let op_start = self.pos;
        let op = if written.is_empty() { None } else { self.op() };
        match (field, op) {
            (Some(field), Some(op)) => {
                let test = FieldTest {
                    name: written,
                    op_start,
                    op_end: self.pos,
                };
                let after = self.src[start..self.pos].to_owned();
                self.skip_space();
                let value = self.value(&after)?;
                if op == Op::Ne {
                    let term = self.field_term(field, Op::Eq, &test, value)?;
                    return Ok(Expr::Not(Box::new(Expr::Term(term))));
                }
                self.field_term(field, op, &test, value).map(Expr::Term)
            }
            (None, Some(_)) => Err(self.error(start, name_end, unknown_field(&written))),
            (field, None) => {
                // No operator: a field that stands alone, or a word to look for.
                self.pos = start;
                let word = self.word_ahead().to_owned();
                if word.is_empty() {
                    return Err(self.error_here("expected a term"));
                }
                let written = Value {
                    text: word.clone(),
                    quoted: false,
                    start,
                    end: start + word.len(),
                };
                self.pos += word.len();
                let alone = field.filter(|_| word.eq_ignore_ascii_case(&name));
                Ok(Expr::Term(match alone {
                    Some(FieldName::Bool(b)) => Term::Bool(b, true),
                    Some(FieldName::Held) => Term::Held(true),
                    Some(FieldName::Violation) => Term::Violation(None),
                    _ => Term::Payload(self.literal(contains(&word), &written)?),
                }))
            }
        }
    }

    /// The term for `field op value`; `!=` was turned into `not (field = value)` already.
    fn field_term(
        &self,
        field: FieldName,
        op: Op,
        written: &FieldTest,
        value: Value,
    ) -> Result<Term, ParseError> {
        let wrong_op = |allowed: &str| {
            Err(self.error(
                written.op_start,
                written.op_end,
                format!("{written} takes {allowed}"),
            ))
        };
        let bad_value = |expected: &str| {
            Err(self.error(
                value.start,
                value.end,
                format!(
                    "expected {expected} after '{written}', not {:?}",
                    value.text
                ),
            ))
        };
        let equals = matches!(op, Op::Colon | Op::Eq);
        Ok(match field {
            FieldName::Num(num) => Term::Num(num, self.num_test(num, op, written, &value)?),
            FieldName::Text(text) => match op {
                Op::Colon | Op::Eq => Term::Text(text, TextTest::Glob(value.text.to_lowercase())),
                Op::Match => Term::Text(text, TextTest::Regex(self.regex(&value)?)),
                _ => {
                    return wrong_op(
                        "':' (equal, ignoring case; * stands for any text) or '~' (a regular expression)",
                    )
                }
            },
            FieldName::Bool(b) => match (equals, value::boolean(&value.text)) {
                (true, Some(v)) => Term::Bool(b, v),
                (true, None) => return bad_value("true or false"),
                (false, _) => return wrong_op("':' and true or false"),
            },
            FieldName::Dir => match (equals, value.text.to_ascii_lowercase().as_str()) {
                (true, "c2s" | "client") => Term::Dir(Direction::ClientToServer),
                (true, "s2c" | "server") => Term::Dir(Direction::ServerToClient),
                (true, _) => return bad_value("c2s or s2c"),
                (false, _) => return wrong_op("':' and c2s or s2c"),
            },
            FieldName::Op => match (equals, value::opcodes(&value.text)) {
                (true, Some(mask)) => Term::Op(mask),
                (true, None) => {
                    return bad_value(
                        "text, binary, cont, close, ping, pong, data, control or 0-15 (a comma list for several)",
                    )
                }
                (false, _) => return wrong_op("':' and an opcode"),
            },
            FieldName::Extension if equals => Term::Extension(value.text.to_ascii_lowercase()),
            FieldName::Extension => return wrong_op("':' and an extension name"),
            FieldName::Violation if !equals => {
                return wrong_op("':' and a violation code, or nothing")
            }
            FieldName::Violation => {
                let wanted = value.text.to_ascii_lowercase();
                match Violation::CODES.iter().find(|c| **c == wanted) {
                    Some(code) => Term::Violation(Some(code)),
                    None if wanted == "any" => Term::Violation(None),
                    None => {
                        return bad_value(&format!("any, or one of {}", Violation::CODES.join(", ")))
                    }
                }
            }
            FieldName::State => match (equals, value::state(&value.text)) {
                (true, Some(state)) => Term::State(state),
                (true, None) => return bad_value("open, closed, aborted or error"),
                (false, _) => return wrong_op("':' and a state"),
            },
            FieldName::Held => match (equals, value::boolean(&value.text)) {
                (true, Some(v)) => Term::Held(v),
                (true, None) => return bad_value("true or false"),
                (false, _) => return wrong_op("':' and true or false"),
            },
            FieldName::Fate => match (equals, value::fate(&value.text)) {
                (true, Some(fate)) => Term::Fate(fate),
                (true, None) => {
                    return bad_value("held, forwarded, dropped, edited, timed_out or lost")
                }
                (false, _) => return wrong_op("':' and a fate"),
            },
            FieldName::Tag => match (equals, value::is_tag(&value.text)) {
                (true, true) => Term::Tag(value.text.clone()),
                (true, false) => return bad_value("a tag: letters, digits, '_', '-' or '.'"),
                (false, _) => return wrong_op("':' and a tag"),
            },
            FieldName::Origin => match (equals, value::origin(&value.text)) {
                (true, Some(origin)) => Term::Origin(origin),
                (true, None) => return bad_value("wire, edited, injected or resent"),
                (false, _) => return wrong_op("':' and an origin"),
            },
            FieldName::Kind => {
                let kind = value.text.to_ascii_lowercase();
                match (equals, KINDS.contains(&kind.as_str())) {
                    (true, true) => Term::Kind(kind),
                    (true, false) => return bad_value(&KINDS.join(", ")),
                    (false, _) => return wrong_op("':' and a kind"),
                }
            }
            // `payload:dropped` (unquoted) asks whether a bounded capture gave the payload
            // up; `payload:"dropped"` searches for the word.
            FieldName::Payload if op == Op::Colon && !value.quoted && value.text == "dropped" => {
                Term::Dropped
            }
            FieldName::Payload => match op {
                Op::Colon => Term::Payload(self.literal(contains(&value.text), &value)?),
                Op::Eq => Term::Payload(self.literal(exactly(&value.text), &value)?),
                Op::Match => Term::Payload(self.regex(&value)?),
                _ => {
                    return wrong_op(
                        "':' (contains, ignoring case), '==' (is exactly) or '~' (a regular expression)",
                    )
                }
            },
        })
    }

    fn num_test(
        &self,
        field: NumField,
        op: Op,
        written: &FieldTest,
        value: &Value,
    ) -> Result<NumTest, ParseError> {
        let parse_one = |text: &str, start: usize, end: usize| -> Result<value::Span, ParseError> {
            let parsed = match field {
                NumField::Time => value::time(text),
                NumField::Len => value::size(text).map(value::Span::exact),
                _ => value::integer(text).map(value::Span::exact),
            };
            parsed.ok_or_else(|| {
                let expected = match field {
                    NumField::Time => {
                        "a time like 2026-12-01, 2026-12-01T20:15 or 2026-12-01T20:15:30.5Z"
                    }
                    NumField::Len => "a length like 100, 16k or 1MiB",
                    _ => "a whole number",
                };
                self.error(
                    start,
                    end,
                    format!("expected {expected} after '{written}', not {text:?}"),
                )
            })
        };
        let (start, end) = (value.start, value.end);
        if op == Op::Colon && !value.quoted {
            if let Some((low, high)) = value.text.split_once("..") {
                let low_end = start + low.len();
                let low = parse_one(low, start, low_end)?;
                let high = parse_one(high, low_end + 2, end)?;
                return Ok(NumTest::Range(low.first, high.last));
            }
        }
        let one = parse_one(&value.text, start, end)?;
        match op {
            // A time names a span (a day, a minute): `:` matches all of it.
            Op::Colon | Op::Eq => Ok(if one.first == one.last {
                NumTest::Cmp(Cmp::Eq, one.first)
            } else {
                NumTest::Range(one.first, one.last)
            }),
            Op::Cmp(cmp) => Ok(NumTest::Cmp(
                cmp,
                match cmp {
                    Cmp::Gt | Cmp::Le => one.last,
                    _ => one.first,
                },
            )),
            Op::Ne | Op::Match => Err(self.error(
                written.op_start,
                written.op_end,
                format!("{written} is a number: it takes ':', '<', '<=', '>' or '>='"),
            )),
        }
    }

    /// A search for literal text, or why it cannot be searched for.
    fn literal(
        &self,
        built: Result<Regex, regex::Error>,
        value: &Value,
    ) -> Result<Regex, ParseError> {
        built.map_err(|e| {
            let why = e.to_string();
            let last = why.lines().last().unwrap_or("invalid").trim().to_owned();
            self.error(
                value.start,
                value.end,
                format!("cannot search for this text: {last}"),
            )
        })
    }

    fn regex(&self, value: &Value) -> Result<Regex, ParseError> {
        RegexBuilder::new(&value.text)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                let why = e.to_string();
                let last = why.lines().last().unwrap_or("invalid").trim().to_owned();
                self.error(
                    value.start,
                    value.end,
                    format!("expected a regular expression: {last}"),
                )
            })
    }

    /// Whether an operator follows (spaces allowed before it), consuming nothing.
    fn op_follows(&mut self) -> bool {
        let at = self.pos;
        self.skip_space();
        let follows = self.op().is_some();
        self.pos = at;
        follows
    }

    /// A test of a protocol's field, its name read (up to `self.pos`).
    fn protocol_term(&mut self, start: usize, field: ProtocolField) -> Result<Expr, ParseError> {
        let name_end = self.pos;
        self.skip_space();
        let Some(op) = self.op() else {
            self.pos = name_end;
            return Ok(Expr::Term(Term::Protocol {
                field,
                test: ProtocolTest::Exists,
                source: field.to_string(),
            }));
        };
        let after = self.src[start..self.pos].to_owned();
        self.skip_space();
        let value = self.value(&after)?;
        let (test, op_text) = match op {
            Op::Colon => (ProtocolTest::Glob(value.text.to_lowercase()), ":"),
            Op::Match => (ProtocolTest::Regex(self.regex(&value)?), "~"),
            Op::Eq | Op::Ne => (ProtocolTest::Cmp(Cmp::Eq, json_literal(&value)), "=="),
            Op::Cmp(cmp) => (ProtocolTest::Cmp(cmp, json_literal(&value)), cmp_text(cmp)),
        };
        let term = Expr::Term(Term::Protocol {
            field,
            test,
            source: format!("{field} {op_text} {}", written_out(&value)),
        });
        Ok(match op {
            Op::Ne => Expr::Not(Box::new(term)),
            _ => term,
        })
    }

    /// A JSON path test: of the payload as JSON (`format` `None`: `json.PATH`), or as
    /// one MessagePack or CBOR value (`msgpack.PATH`, `cbor.PATH`).
    fn json(&mut self, start: usize, format: Option<View>) -> Result<Expr, ParseError> {
        let mut path = Vec::new();
        loop {
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    let key_start = self.pos;
                    let key = if self.peek() == Some('"') {
                        let quoted = self.quoted()?;
                        if quoted.text.contains('"') {
                            return Err(self.error(
                                key_start,
                                self.pos,
                                "a JSON key may not hold '\"'",
                            ));
                        }
                        quoted.text
                    } else {
                        while let Some(c) = self
                            .peek()
                            .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-' || *c == '$')
                        {
                            self.pos += c.len_utf8();
                        }
                        self.src[key_start..self.pos].to_owned()
                    };
                    if key.is_empty() {
                        return Err(self.error_here("expected a key after '.' in the JSON path"));
                    }
                    path.push(JsonStep::Key(key));
                }
                Some('[') => {
                    let open = self.pos;
                    self.pos += 1;
                    let digits_start = self.pos;
                    while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        self.pos += 1;
                    }
                    let index = self.src[digits_start..self.pos].parse::<usize>();
                    if self.peek() != Some(']') || index.is_err() {
                        return Err(self.error(
                            open,
                            self.pos.max(open + 1),
                            "expected an index like [0] in the JSON path",
                        ));
                    }
                    self.pos += 1;
                    path.push(JsonStep::Index(index.unwrap_or_default()));
                }
                _ => break,
            }
        }
        let written = self.src[start..self.pos].to_owned();
        let path_end = self.pos;
        if self
            .peek()
            .is_some_and(|c| !ends_word(c) && !":=!<>~".contains(c))
        {
            return Err(self.error_here(format!(
                "expected an operator (==, !=, <, >, ...) or the end of {written}"
            )));
        }
        self.skip_space();
        let op_at = self.pos;
        let term = |test: JsonTest, source: String| {
            Expr::Term(match format {
                None => Term::Json {
                    path: path.clone(),
                    test,
                },
                Some(view) => Term::Decoded {
                    view,
                    path: path.clone(),
                    test,
                    source,
                },
            })
        };
        let Some(op) = self.op() else {
            self.pos = path_end;
            return Ok(term(JsonTest::Exists, written));
        };
        let after = self.src[start..self.pos].to_owned();
        self.skip_space();
        let value = self.value(&after)?;
        let literal = json_literal(&value);
        let test = |cmp| {
            let source = format!("{written} {} {}", cmp_text(cmp), written_out(&value));
            term(JsonTest::Cmp(cmp, literal.clone()), source)
        };
        match op {
            Op::Colon | Op::Eq => Ok(test(Cmp::Eq)),
            Op::Ne => Ok(Expr::Not(Box::new(test(Cmp::Eq)))),
            Op::Cmp(cmp) => Ok(test(cmp)),
            Op::Match => Err(self.error(
                op_at,
                op_at + 1,
                format!("{written} takes ==, !=, <, <=, > or >="),
            )),
        }
    }
}

/// A value compared with JSON: quoted, a string; else `true`, `false`, `null`, a number,
/// or a string.
fn json_literal(value: &Value) -> JsonLiteral {
    if value.quoted {
        return JsonLiteral::Str(value.text.clone());
    }
    match value.text.as_str() {
        "true" => JsonLiteral::Bool(true),
        "false" => JsonLiteral::Bool(false),
        "null" => JsonLiteral::Null,
        text => match text.parse::<f64>() {
            Ok(n) if n.is_finite() => JsonLiteral::Num(n),
            _ => JsonLiteral::Str(text.to_owned()),
        },
    }
}

/// How a comparison is written.
fn cmp_text(cmp: Cmp) -> &'static str {
    match cmp {
        Cmp::Eq => "==",
        Cmp::Lt => "<",
        Cmp::Le => "<=",
        Cmp::Gt => ">",
        Cmp::Ge => ">=",
    }
}

/// A value written out so that it reads back the same: quoted (with `\` and `\"`)
/// when it was quoted, as it was otherwise.
fn written_out(value: &Value) -> String {
    if !value.quoted {
        return value.text.clone();
    }
    let escaped = value.text.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// Whether `c` may stand in a field's name.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// How the parts of a chain are joined.
#[derive(Debug, Clone, Copy)]
enum Join {
    And,
    Or,
}

/// `parts` as one `and` or `or`: a single part stands alone, and a part that is already
/// of the same kind (a group in parentheses) is spliced in, so chains stay flat.
fn group(parts: Vec<Expr>, join: Join) -> Expr {
    let mut flat = Vec::with_capacity(parts.len());
    for part in parts {
        match (join, part) {
            (Join::And, Expr::And(inner)) | (Join::Or, Expr::Or(inner)) => flat.extend(inner),
            (_, part) => flat.push(part),
        }
    }
    if flat.len() == 1 {
        return flat.swap_remove(0);
    }
    match join {
        Join::And => Expr::And(flat),
        Join::Or => Expr::Or(flat),
    }
}

/// The error for a test of a field that does not exist, with the nearest names.
fn unknown_field(written: &str) -> String {
    let lower = written.to_ascii_lowercase();
    let nearest = FIELDS.iter().map(|(n, _)| edit_distance(&lower, n)).min();
    let mut close: Vec<String> = match nearest {
        Some(distance) if distance <= 2 => FIELDS
            .iter()
            .filter(|(n, _)| edit_distance(&lower, n) == distance)
            .map(|(n, _)| (*n).to_owned())
            .collect(),
        _ => Vec::new(),
    };
    if let Some((first, rest)) = lower.split_once('.') {
        let prefixes = ["json", "msgpack", "cbor"].into_iter().chain(
            View::ALL
                .iter()
                .filter(|v| v.is_protocol())
                .map(|v| v.name()),
        );
        for prefix in prefixes {
            if close.is_empty() && edit_distance(first, prefix) <= 2 {
                close.push(format!("{prefix}.{rest}"));
            }
        }
    }
    let suggestion = if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean '{}'?)", close.join("' or '"))
    };
    let known: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
    format!(
        "unknown field '{written}'{suggestion}; the fields are {}, json.PATH, msgpack.PATH, cbor.PATH and PROTOCOL.FIELD (signalr, socketio, mqtt, stomp, graphql, jsonrpc); to look for text with ':', spaces or an operator in it, quote it",
        known.join(", ")
    )
}

/// Levenshtein distance of two short ASCII names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// A case-insensitive search for `text` in payload bytes. The flag is written into the
/// pattern (`(?i)`), so the pattern's text alone means the same to the SQL back end.
fn contains(text: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("(?i){}", regex::escape(text)))
}

/// The whole payload is exactly `text`.
fn exactly(text: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!(r"\A(?:{})\z", regex::escape(text)))
}
