//! The translation to SQL: a filter as a `WHERE` condition over a store's tables.
//!
//! The store says where each fact lives ([`SqlSchema`]); this module says how to test it.
//! Records are read through the alias `r` and their session through `s`. The condition
//! is two-valued (a missing value makes a term false, never `NULL`), so `not` means what
//! it means in [`crate::eval`]. Where SQL has no exact equivalent of the predicate's test,
//! the SQL calls the predicate's own code, which the store registers as functions:
//!
//! - `wstap_glob(pattern, text)`: [`crate::eval::glob_matches`];
//! - `wstap_regexp(pattern, value)`: `regex::bytes::Regex::new(pattern).is_match(value)`;
//! - `wstap_text(blob)`: the bytes as TEXT when they are UTF-8, else `NULL` (JSON tests
//!   read payloads through it, as `serde_json` insists on UTF-8);
//! - `wstap_term(term, payload)`: a term of MessagePack, CBOR or a protocol's field
//!   (`msgpack.a == 1`, `signalr.target == "Send"`), written out as the filter language
//!   writes it: [`crate::eval::payload_term_holds`] of the term [`crate::parse_term`]
//!   reads back.
//!
//! JSON tests use SQLite's own JSON functions (`json_valid`, `json_type`, `json_extract`).

use crate::ast::*;
use wstap_views::View;
use wstap_wire::Direction;

/// A fact of a frame or message that filters read (alias `r`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordColumn {
    /// `'c2s'` or `'s2c'`.
    Dir,
    /// Opcode, 0-15.
    Opcode,
    /// First header byte.
    Flags,
    /// 0 or 1.
    Masked,
    /// Payload length (declared, or the message's data length).
    Len,
    /// Frames (1 for frames).
    Frames,
    /// 0 or 1.
    Compressed,
    /// Close code, or `NULL`.
    Close,
    /// µs since the epoch.
    Time,
    /// A JSON array of `{"code": ..., "text": ...}` objects (compact, the code first), or
    /// `NULL` when there are none.
    Violations,
    /// The captured payload as a BLOB (inflated, when compressed).
    Payload,
    /// What became of it when a breakpoint held it ([`Fate::name`]), or `NULL`.
    Fate,
    /// The tags rules gave it, each between spaces (`' slow vip '`), or `NULL`.
    Tags,
    /// Who made it ([`Origin::name`]): `NULL` or `'wire'` for a peer.
    Origin,
    /// Whether the payload [`RecordColumn::Payload`] reads was dropped: 0 or 1.
    Dropped,
    /// The packets a byte-stream protocol's message ends, when they are not its payload
    /// (a BLOB), or `NULL` ([`crate::RecordFacts::stream`]).
    Stream,
}

/// A fact of a session that filters read (alias `s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionColumn {
    /// The session number.
    Id,
    /// Upstream host.
    Host,
    /// Upstream port.
    Port,
    /// URL, or `''`.
    Url,
    /// Path, or `''`.
    Path,
    /// Client address.
    Client,
    /// Subprotocol, or `NULL`.
    Subprotocol,
    /// Extension names, lower case, each with a space before and after, or `''`.
    ExtensionNames,
    /// 0 or 1.
    Tls,
    /// HTTP status, or `NULL`.
    Status,
    /// `'open'`, `'closed'`, `'aborted'` or `'error'`.
    State,
    /// `'websocket'`, ..., or `NULL` while open.
    Kind,
    /// First close code, or `NULL`.
    Close,
    /// Start, µs since the epoch.
    Time,
    /// Frames with violations plus handshake issues.
    Violations,
}

/// Where a store keeps what filters read.
pub trait SqlSchema {
    /// An SQL expression for a record's column, over the alias `r`.
    fn record(&self, column: RecordColumn) -> String;
    /// An SQL expression for a session's column, over the alias `s`.
    fn session(&self, column: SessionColumn) -> String;
    /// The records of the session whose id is the SQL expression `session`, as the text
    /// of a subquery between `FROM` and a further `AND`: the tables, the records aliased
    /// `r`, and the condition that keeps that session's. What a session filter looks into.
    fn session_records(&self, session: &str) -> String;
}

/// A parameter of the condition, in order of the `?` placeholders.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// An integer.
    Int(i64),
    /// A real number.
    Real(f64),
    /// Text.
    Text(String),
}

/// A condition and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    /// The condition, with `?` placeholders.
    pub condition: String,
    /// One value per placeholder.
    pub params: Vec<SqlValue>,
    /// Whether it reads the session (`s`), so a query over records must join it.
    pub reads_session: bool,
}

/// Which rows a condition selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Frames or messages (alias `r`), each with its session (`s`).
    Records,
    /// Sessions (alias `s`); terms about records ask whether any record passes.
    Sessions,
}

/// Translates `expr` into a condition over `schema` for rows of `scope`.
pub fn to_sql(expr: &Expr, scope: Scope, schema: &dyn SqlSchema) -> Sql {
    let mut out = Builder {
        schema,
        scope,
        params: Vec::new(),
        reads_session: false,
    };
    let condition = out.expr(expr);
    Sql {
        condition,
        params: out.params,
        reads_session: out.reads_session,
    }
}

/// A piece of the condition and the depth of its operators (a term is 0).
struct Nested {
    text: String,
    height: usize,
}

impl Nested {
    fn leaf(text: String) -> Self {
        Nested { text, height: 0 }
    }
}

struct Builder<'a> {
    schema: &'a dyn SqlSchema,
    scope: Scope,
    params: Vec<SqlValue>,
    reads_session: bool,
}

impl Builder<'_> {
    fn param(&mut self, value: SqlValue) -> &'static str {
        self.params.push(value);
        "?"
    }

    fn r(&self, column: RecordColumn) -> String {
        self.schema.record(column)
    }

    fn s(&mut self, column: SessionColumn) -> String {
        self.reads_session = true;
        self.schema.session(column)
    }

    fn expr(&mut self, expr: &Expr) -> String {
        self.nested(expr).text
    }

    /// `expr` as SQL, with how deep its operators nest.
    fn nested(&mut self, expr: &Expr) -> Nested {
        match expr {
            Expr::All => Nested::leaf("1".into()),
            Expr::And(parts) => self.joined(parts, "AND"),
            Expr::Or(parts) => self.joined(parts, "OR"),
            Expr::Not(a) => {
                let inner = self.nested(a);
                Nested {
                    text: format!("(NOT {})", inner.text),
                    height: inner.height + 1,
                }
            }
            Expr::Term(term) => {
                let test = match (self.scope, term.level()) {
                    (Scope::Sessions, Level::Record) => {
                        let inner = self.term(term, true);
                        format!(
                            "EXISTS (SELECT 1 FROM {} AND {inner})",
                            self.schema.session_records(&self.s(SessionColumn::Id))
                        )
                    }
                    (Scope::Sessions, _) => self.term(term, false),
                    (Scope::Records, _) => self.term(term, true),
                };
                Nested::leaf(format!("COALESCE({test}, 0)"))
            }
        }
    }

    /// `parts` joined by `op`, shallow: SQLite's parser builds `a OR b OR c ...` as a
    /// chain as deep as it is long and refuses an expression deeper than 1,000, so the
    /// parts are paired off, always the neighbouring pair whose deeper half is shallowest.
    /// That nests n equal parts log2(n) deep, and a deep part (a parenthesised filter
    /// inside) only one level deeper than it is. Only neighbours are paired, so the
    /// text, and its parameters, keep the filter's order.
    fn joined(&mut self, parts: &[Expr], op: &str) -> Nested {
        let mut parts: Vec<Nested> = parts.iter().map(|part| self.nested(part)).collect();
        while parts.len() > 1 {
            let Some(at) =
                (0..parts.len() - 1).min_by_key(|&i| parts[i].height.max(parts[i + 1].height))
            else {
                break;
            };
            let right = parts.remove(at + 1);
            let left = &mut parts[at];
            left.text = format!("({} {op} {})", left.text, right.text);
            left.height = left.height.max(right.height) + 1;
        }
        // No parts is never parsed; it is what `all` and `any` of nothing are.
        parts
            .pop()
            .unwrap_or_else(|| Nested::leaf((if op == "AND" { "1" } else { "0" }).into()))
    }

    /// One term; `record` says whether a record is at hand (else the session's facts).
    fn term(&mut self, term: &Term, record: bool) -> String {
        match term {
            Term::Num(field, test) => {
                let column = match (field, record) {
                    (NumField::Session, _) => self.s(SessionColumn::Id),
                    (NumField::Port, _) => self.s(SessionColumn::Port),
                    (NumField::Status, _) => self.s(SessionColumn::Status),
                    (NumField::Len, _) => self.r(RecordColumn::Len),
                    (NumField::Frames, _) => self.r(RecordColumn::Frames),
                    (NumField::Close, true) => self.r(RecordColumn::Close),
                    (NumField::Close, false) => self.s(SessionColumn::Close),
                    (NumField::Time, true) => self.r(RecordColumn::Time),
                    (NumField::Time, false) => self.s(SessionColumn::Time),
                };
                match *test {
                    NumTest::Cmp(cmp, value) => {
                        let p = self.param(SqlValue::Int(value));
                        format!("({column} {} {p})", cmp.sql())
                    }
                    NumTest::Range(low, high) => {
                        self.params.push(SqlValue::Int(low));
                        self.params.push(SqlValue::Int(high));
                        format!("({column} BETWEEN ? AND ?)")
                    }
                }
            }
            Term::Text(field, test) => {
                let column = self.s(match field {
                    TextField::Host => SessionColumn::Host,
                    TextField::Url => SessionColumn::Url,
                    TextField::Path => SessionColumn::Path,
                    TextField::Client => SessionColumn::Client,
                    TextField::Subprotocol => SessionColumn::Subprotocol,
                });
                match test {
                    TextTest::Glob(pattern) => {
                        let p = self.param(SqlValue::Text(pattern.clone()));
                        format!("wstap_glob({p}, {column})")
                    }
                    TextTest::Regex(regex) => {
                        let p = self.param(SqlValue::Text(regex.as_str().to_owned()));
                        format!("wstap_regexp({p}, {column})")
                    }
                }
            }
            Term::Bool(BoolField::Tls, want) => {
                format!("({} = {})", self.s(SessionColumn::Tls), i64::from(*want))
            }
            Term::Bool(field, want) => {
                let value = match field {
                    BoolField::Flag(flag) => {
                        format!("(({} & {}) != 0)", self.r(RecordColumn::Flags), flag.bit())
                    }
                    BoolField::Masked => self.r(RecordColumn::Masked),
                    BoolField::Compressed => self.r(RecordColumn::Compressed),
                    BoolField::Tls => self.s(SessionColumn::Tls),
                };
                format!("({value} = {})", i64::from(*want))
            }
            Term::Dir(dir) => {
                let name = match dir {
                    Direction::ClientToServer => "'c2s'",
                    Direction::ServerToClient => "'s2c'",
                };
                format!("({} = {name})", self.r(RecordColumn::Dir))
            }
            Term::Op(mask) => format!("((({mask} >> {}) & 1) = 1)", self.r(RecordColumn::Opcode)),
            Term::Extension(name) => {
                let p = self.param(SqlValue::Text(format!(" {name} ")));
                format!(
                    "(instr({}, {p}) > 0)",
                    self.s(SessionColumn::ExtensionNames)
                )
            }
            Term::Violation(None) if record => {
                format!("({} IS NOT NULL)", self.r(RecordColumn::Violations))
            }
            Term::Violation(None) => format!("({} > 0)", self.s(SessionColumn::Violations)),
            Term::Violation(Some(code)) => {
                // Each violation is stored as `{"code":"...","text":"..."}`: a quote inside
                // a text is escaped, so this finds the code and nothing else.
                let p = self.param(SqlValue::Text(format!("{{\"code\":\"{code}\"")));
                format!("(instr({}, {p}) > 0)", self.r(RecordColumn::Violations))
            }
            Term::State(state) => {
                let p = self.param(SqlValue::Text(state.name().to_owned()));
                format!("({} = {p})", self.s(SessionColumn::State))
            }
            Term::Kind(kind) => {
                let p = self.param(SqlValue::Text(kind.clone()));
                format!("({} = {p})", self.s(SessionColumn::Kind))
            }
            Term::Held(true) => format!("({} IS NOT NULL)", self.r(RecordColumn::Fate)),
            Term::Held(false) => format!("({} IS NULL)", self.r(RecordColumn::Fate)),
            Term::Dropped => format!("({} = 1)", self.r(RecordColumn::Dropped)),
            Term::Origin(origin) => {
                let p = self.param(SqlValue::Text(origin.name().to_owned()));
                format!("(COALESCE({}, 'wire') = {p})", self.r(RecordColumn::Origin))
            }
            Term::Fate(fate) => {
                let p = self.param(SqlValue::Text(fate.name().to_owned()));
                format!("COALESCE({} = {p}, 0)", self.r(RecordColumn::Fate))
            }
            Term::Tag(tag) => {
                let p = self.param(SqlValue::Text(format!(" {tag} ")));
                format!(
                    "(instr(COALESCE({}, ''), {p}) > 0)",
                    self.r(RecordColumn::Tags)
                )
            }
            Term::Payload(regex) => {
                let p = self.param(SqlValue::Text(regex.as_str().to_owned()));
                format!("wstap_regexp({p}, {})", self.r(RecordColumn::Payload))
            }
            Term::Json { path, test } => self.json(path, test),
            // No SQL equivalent: the predicate's own code reads the payload, given the term
            // as written out (it parses it once per statement).
            Term::Decoded { source, .. } => {
                let p = self.param(SqlValue::Text(source.clone()));
                format!("wstap_term({p}, {})", self.r(RecordColumn::Payload))
            }
            // Only MQTT is read as a stream: its fields read the packets the capture
            // joined, when there are some.
            Term::Protocol { source, field, .. } if field.view() == View::Mqtt => {
                let p = self.param(SqlValue::Text(source.clone()));
                let stream = self.r(RecordColumn::Stream);
                let payload = self.r(RecordColumn::Payload);
                format!("wstap_term({p}, COALESCE({stream}, {payload}))")
            }
            Term::Protocol { source, .. } => {
                let p = self.param(SqlValue::Text(source.clone()));
                format!("wstap_term({p}, {})", self.r(RecordColumn::Payload))
            }
        }
    }

    fn json(&mut self, path: &[JsonStep], test: &JsonTest) -> String {
        let text = format!("wstap_text({})", self.r(RecordColumn::Payload));
        let path = json_path(path);
        let kind = |builder: &mut Self| {
            let p = builder.param(SqlValue::Text(path.clone()));
            format!("json_type({text}, {p})")
        };
        let test = match test {
            JsonTest::Exists => format!("({} IS NOT NULL)", kind(self)),
            JsonTest::Cmp(cmp, literal) => match literal {
                JsonLiteral::Str(value) => {
                    let kind = kind(self);
                    let p = self.param(SqlValue::Text(path.clone()));
                    let v = self.param(SqlValue::Text(value.clone()));
                    format!(
                        "({kind} = 'text' AND json_extract({text}, {p}) {} {v})",
                        cmp.sql()
                    )
                }
                JsonLiteral::Num(value) => {
                    let kind = kind(self);
                    let p = self.param(SqlValue::Text(path.clone()));
                    let v = self.param(SqlValue::Real(*value));
                    format!(
                        "({kind} IN ('integer', 'real') AND json_extract({text}, {p}) {} {v})",
                        cmp.sql()
                    )
                }
                JsonLiteral::Bool(value) if *cmp == Cmp::Eq => {
                    format!("({} = '{value}')", kind(self))
                }
                JsonLiteral::Null if *cmp == Cmp::Eq => format!("({} = 'null')", kind(self)),
                JsonLiteral::Bool(_) | JsonLiteral::Null => "0".to_owned(),
            },
        };
        // CASE, not AND: SQLite may evaluate both sides of an AND, and the JSON functions
        // raise an error on text that is not JSON.
        format!("(CASE WHEN json_valid({text}) THEN {test} ELSE 0 END)")
    }
}

/// A path as SQLite's JSON functions write it: `$.a."b c"[0]`.
fn json_path(path: &[JsonStep]) -> String {
    let mut out = String::from("$");
    for step in path {
        match step {
            JsonStep::Key(key) => {
                let plain = key
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if plain {
                    out.push('.');
                    out.push_str(key);
                } else {
                    out.push_str(".\"");
                    out.push_str(key);
                    out.push('"');
                }
            }
            JsonStep::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}
