//! Protocol Buffers without a schema: the wire format alone (field numbers and wire
//! types). A length-delimited field is shown as a nested message when its bytes parse as
//! one, else as text when they are UTF-8, else as hexadecimal. Groups (wire types 3 and 4,
//! long deprecated) are reported, not decoded.

use crate::render::hex;
use crate::Problem;
use serde_json::{Map, Value};

/// How deeply nested messages are tried.
const MAX_DEPTH: usize = 32;

/// The whole of `bytes` as one message: `{"FIELD": value or [values]}`.
pub(crate) fn read(bytes: &[u8]) -> Result<(Value, usize), Problem> {
    Ok((message(bytes, 0)?, bytes.len()))
}

fn message(bytes: &[u8], depth: usize) -> Result<Value, Problem> {
    let mut fields = Map::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let key = varint(bytes, &mut at).ok_or_else(|| Problem::new(start, "cut-off field key"))?;
        let number = key >> 3;
        if number == 0 {
            return Err(Problem::new(start, "field number 0"));
        }
        let value = match key & 7 {
            0 => {
                let n = varint(bytes, &mut at).ok_or_else(|| Problem::new(at, "cut-off varint"))?;
                Value::from(n)
            }
            1 => Value::from(u64::from_le_bytes(fixed::<8>(bytes, &mut at)?)),
            5 => Value::from(u32::from_le_bytes(fixed::<4>(bytes, &mut at)?)),
            2 => {
                let len_at = at;
                let len = varint(bytes, &mut at)
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| Problem::new(len_at, "cut-off length"))?;
                let end = at
                    .checked_add(len)
                    .filter(|&end| end <= bytes.len())
                    .ok_or_else(|| {
                        Problem::new(len_at, format!("length {len} runs past the end"))
                    })?;
                let inner = &bytes[at..end];
                at = end;
                length_delimited(inner, depth)
            }
            wire => {
                return Err(Problem::new(
                    start,
                    format!("wire type {wire} (groups are not decoded)"),
                ))
            }
        };
        let name = number.to_string();
        match fields.get_mut(&name) {
            Some(Value::Array(values)) => values.push(value),
            Some(first) => {
                let first = first.take();
                fields.insert(name, Value::Array(vec![first, value]));
            }
            None => {
                fields.insert(name, value);
            }
        }
    }
    Ok(Value::Object(fields))
}

/// A length-delimited field: a nested message, text, or bytes.
fn length_delimited(inner: &[u8], depth: usize) -> Value {
    if depth < MAX_DEPTH && !inner.is_empty() {
        if let Ok(nested @ Value::Object(_)) = message(inner, depth + 1) {
            // Printable text parses as a message surprisingly often: prefer text when
            // every byte is printable.
            let printable = inner.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
            if !printable {
                return nested;
            }
        }
    }
    match std::str::from_utf8(inner) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => Value::String(format!("0x{}", hex(inner))),
    }
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in 0..10 {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << (shift * 7);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn fixed<const N: usize>(bytes: &[u8], at: &mut usize) -> Result<[u8; N], Problem> {
    let slice = bytes
        .get(*at..*at + N)
        .ok_or_else(|| Problem::new(*at, format!("cut-off {}-bit field", N * 8)))?;
    *at += N;
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    Ok(out)
}
