//! The wstap filter language: one syntax for the console, the command line, the capture
//! store, the web inspector and (later) breakpoints.
//!
//! ```text
//! op:text and len>1000          dir:c2s text~"^ping"        close:1006
//! host:*.example.com            json.user.id == 42          not op:ping,pong
//! violation:unmasked_client_frame or (tls and status:101)   "exact phrase"   hello
//! time:2026-12-01T20:15..2026-12-01T20:30                    session:3..7
//! ```
//!
//! Terms are `field:value`, comparisons (`len>1000`), regular expressions (`text~"^ping"`),
//! JSON paths (`json.a.b == "x"`) and bare words (the payload contains them, ignoring
//! case), joined by `and` (or nothing), `or`, `not` and parentheses. `docs/filters.md`
//! lists every field.
//!
//! A [`Filter`] is parsed once and then evaluated two ways that must agree: a predicate
//! over facts in memory ([`eval`]: cheap enough for every live frame) and a condition for
//! SQL ([`sql`]: for the capture store). A parse error ([`ParseError`]) points at the
//! place with a caret and says what was expected there. The crate does no I/O.
//!
//! Input cannot drive any recursion here past a bound: a filter nests at most
//! [`MAX_DEPTH`] levels and holds at most [`MAX_TERMS`] terms (longer ones are parse
//! errors), and `and`/`or` chains are flat, so a long filter is wide, not deep.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod ast;
mod error;
pub mod eval;
mod parse;
pub mod sql;
pub mod value;

pub use ast::{Fate, Origin, State};
pub use error::ParseError;
pub use eval::{extension_names, path_of, HeaderFacts, RecordFacts, RecordKind, SessionFacts};
pub use sql::{Scope, Sql, SqlSchema, SqlValue};

use ast::{Expr, Level, Term};

/// How deeply a filter may nest: parentheses and negations (`not`, `!`, `-`) together.
/// A person never writes more; the bound keeps every walk of a filter shallow.
pub const MAX_DEPTH: usize = 256;

/// How many terms (field tests, words, phrases) a filter may hold.
pub const MAX_TERMS: usize = 1000;

/// The one term `source` writes, if it is one term: how the SQL back end's
/// `wstap_term` reads back a payload term it wrote out (see [`sql`]).
pub fn parse_term(source: &str) -> Option<Term> {
    match parse::parse(source).ok()? {
        Expr::Term(term) => Some(term),
        _ => None,
    }
}

/// A parsed filter: see the crate documentation.
#[derive(Debug, Clone)]
pub struct Filter {
    expr: Expr,
    source: String,
}

impl Default for Filter {
    /// The filter that matches everything (the empty filter).
    fn default() -> Self {
        Filter {
            expr: Expr::All,
            source: String::new(),
        }
    }
}

impl Filter {
    /// Parses `source`; the empty filter (or only spaces) matches everything.
    pub fn parse(source: &str) -> Result<Filter, ParseError> {
        Ok(Filter {
            expr: parse::parse(source)?,
            source: source.to_owned(),
        })
    }

    /// The filter as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed expression.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether the filter matches everything.
    pub fn is_all(&self) -> bool {
        matches!(self.expr, Expr::All)
    }

    /// Whether it tests anything about frames or messages (as opposed to sessions only).
    pub fn reads_records(&self) -> bool {
        fn walk(expr: &Expr) -> bool {
            match expr {
                Expr::All => false,
                Expr::And(parts) | Expr::Or(parts) => parts.iter().any(walk),
                Expr::Not(a) => walk(a),
                Expr::Term(t) => t.level() != Level::Session,
            }
        }
        walk(&self.expr)
    }

    /// A payload search every record the filter selects passes (a `text:`, `text~`,
    /// `payload=` or bare word it cannot match without), as its regular expression's
    /// source, flags inline: a caller judging many filters can search a payload for all
    /// of them in one pass (a `RegexSet`) and skip those whose search finds nothing.
    /// `None` when no single search is required.
    pub fn required_payload_pattern(&self) -> Option<&str> {
        fn walk(expr: &Expr) -> Option<&str> {
            match expr {
                Expr::Term(Term::Payload(regex)) => Some(regex.as_str()),
                Expr::And(parts) => parts.iter().find_map(walk),
                Expr::All | Expr::Or(_) | Expr::Not(_) | Expr::Term(_) => None,
            }
        }
        walk(&self.expr)
    }

    /// Whether it matches `record` of `session`.
    pub fn matches_record(&self, session: &SessionFacts<'_>, record: &RecordFacts<'_>) -> bool {
        eval::record_matches(&self.expr, session, record)
    }

    /// Whether it matches `session` with its `records` (a term about records holds when
    /// any record passes it).
    pub fn matches_session(&self, session: &SessionFacts<'_>, records: &[RecordFacts<'_>]) -> bool {
        eval::session_matches(&self.expr, session, records)
    }

    /// What the session's own facts decide (`None`: it depends on its records).
    pub fn session_verdict(&self, session: &SessionFacts<'_>) -> Option<bool> {
        eval::session_verdict(&self.expr, session)
    }

    /// What a live data message's first frame header decides (`None`: its payload, or
    /// something else not known yet, would).
    pub fn header_verdict(&self, session: &SessionFacts<'_>, header: &HeaderFacts) -> Option<bool> {
        eval::header_verdict(&self.expr, session, header)
    }

    /// The filter as an SQL condition over `schema`.
    pub fn to_sql(&self, scope: Scope, schema: &dyn SqlSchema) -> Sql {
        sql::to_sql(&self.expr, scope, schema)
    }
}
