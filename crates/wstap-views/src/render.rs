//! Small pieces every view's summary and tree are made of: bounded one-line renderings
//! of JSON values and of bytes.

use serde_json::Value;

/// How many characters of a value a summary shows before it says `…`.
pub(crate) const SUMMARY_VALUE_CHARS: usize = 80;

/// How many bytes a hexadecimal tree shows before it stops (the raw tab has them all).
pub(crate) const HEX_TREE_BYTES: usize = 4096;

/// `text`, cut to `max` characters with `…` after, its control characters escaped
/// (`\n`, `\u{1b}`): a summary is one line, and a peer's text must not drive the
/// terminal that shows it.
pub(crate) fn cut(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 2));
    for (n, c) in text.chars().enumerate() {
        if n == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A JSON value on one line, cut to the summary's width.
pub(crate) fn compact(value: &Value) -> String {
    cut(&value.to_string(), SUMMARY_VALUE_CHARS)
}

/// A list of JSON values as call arguments: `("John", "hi")`.
pub(crate) fn arguments(values: &[Value]) -> String {
    let inner: Vec<String> = values.iter().map(Value::to_string).collect();
    format!("({})", cut(&inner.join(", "), SUMMARY_VALUE_CHARS))
}

/// Bytes in lower-case hexadecimal, at most [`HEX_TREE_BYTES`] of them (`…` after).
pub(crate) fn hex(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(HEX_TREE_BYTES)];
    let mut out = String::with_capacity(shown.len() * 2 + 3);
    for byte in shown {
        out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('?'));
        out.push(char::from_digit(u32::from(byte & 15), 16).unwrap_or('?'));
    }
    if bytes.len() > shown.len() {
        out.push('…');
    }
    out
}

/// A byte string as a tree shows it: its text when it is UTF-8, else its hexadecimal.
pub(crate) fn bytes_value(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => Value::String(format!("0x{}", hex(bytes))),
    }
}

/// A JSON value as a short string for a summary: strings without quotes.
pub(crate) fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => cut(s, SUMMARY_VALUE_CHARS),
        other => compact(other),
    }
}
