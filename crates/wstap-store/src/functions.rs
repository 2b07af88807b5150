//! The SQL functions a capture's readers register: what the filter language's SQL calls
//! (see `wstap_filter::sql`), implemented by the predicate's own code, and the payload
//! reader that makes bytes in the payload file look like a column.

use crate::payloads::PayloadReader;
use regex::bytes::Regex;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::Connection;
use std::sync::Arc;

/// Registers `wstap_glob`, `wstap_regexp`, `wstap_term`, `wstap_text`,
/// `wstap_message_violations`, `wstap_bytes` and `wstap_dropped` on `conn`.
pub(crate) fn register(conn: &Connection, payloads: Arc<PayloadReader>) -> rusqlite::Result<()> {
    let pure = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("wstap_glob", 2, pure, |ctx| {
        let pattern = ctx.get::<String>(0)?;
        Ok(match text_of(ctx, 1) {
            Some(text) => wstap_filter::eval::glob_matches(&pattern, &text),
            None => false,
        })
    })?;
    conn.create_scalar_function("wstap_regexp", 2, pure, |ctx| {
        // The compiled pattern is kept with the statement: one compilation per query.
        let regex: Arc<Regex> = ctx.get_or_create_aux(0, |value| -> Result<Regex, BoxError> {
            Ok(Regex::new(value.as_str()?)?)
        })?;
        Ok(match ctx.get_raw(1) {
            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => regex.is_match(bytes),
            _ => false,
        })
    })?;
    // wstap_term(term, payload): a MessagePack, CBOR or protocol-field term, written out
    // by the filter's SQL back end, judged by the predicate's own code.
    conn.create_scalar_function("wstap_term", 2, pure, |ctx| {
        let term: Arc<Option<wstap_filter::ast::Term>> = ctx
            .get_or_create_aux(0, |value| -> Result<_, BoxError> {
                Ok(wstap_filter::parse_term(value.as_str()?))
            })?;
        Ok(match (term.as_ref(), ctx.get_raw(1)) {
            (Some(term), ValueRef::Blob(bytes) | ValueRef::Text(bytes)) => {
                wstap_filter::eval::payload_term_holds(term, bytes)
            }
            _ => false,
        })
    })?;
    conn.create_scalar_function("wstap_text", 1, pure, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => std::str::from_utf8(bytes)
                .ok()
                .map(|text| ToSqlOutput::from(text.to_owned())),
            _ => None,
        })
    })?;
    // A frame's violations (a JSON array) that are about its message as a whole, or NULL.
    conn.create_scalar_function("wstap_message_violations", 1, pure, |ctx| {
        let Some(json) = ctx.get::<Option<String>>(0)? else {
            return Ok(None);
        };
        Ok(crate::rows::message_violations(&json))
    })?;
    // wstap_bytes(inline, offset, kept): the inline BLOB, or the bytes in the payload
    // files; NULL when the capture dropped them.
    let reader = payloads.clone();
    conn.create_scalar_function("wstap_bytes", 3, FunctionFlags::SQLITE_UTF8, move |ctx| {
        if let ValueRef::Blob(bytes) = ctx.get_raw(0) {
            return Ok(Some(bytes.to_vec()));
        }
        let at = ctx.get::<Option<i64>>(1)?;
        let kept = ctx.get::<Option<i64>>(2)?.unwrap_or(0);
        Ok(match at {
            Some(at) if at >= 0 && kept > 0 => reader.read(at as u64, kept as usize),
            _ => Some(Vec::new()),
        })
    })?;
    // wstap_dropped(offset): whether the payload at that offset was dropped (0 for NULL).
    conn.create_scalar_function("wstap_dropped", 1, FunctionFlags::SQLITE_UTF8, move |ctx| {
        let at = ctx.get::<Option<i64>>(0)?;
        Ok(at.is_some_and(|at| at >= 0 && payloads.is_dropped(at as u64)))
    })?;
    Ok(())
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

fn text_of(ctx: &Context<'_>, i: usize) -> Option<String> {
    match ctx.get_raw(i) {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        _ => None,
    }
}
