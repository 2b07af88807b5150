//! MessagePack, read by `rmpv` (nesting bounded) and shown as JSON: binary as
//! hexadecimal strings, extension types as `{"ext": type, "data": hex}`, map keys that are
//! not strings written as their JSON (see [`key_text`]).

use crate::render::{cut, hex};
use crate::Problem;
use rmpv::Value as Pack;
use serde_json::{json, Map, Value};

/// How deeply a value may nest.
const MAX_DEPTH: usize = 64;

/// One MessagePack value from the front of `bytes`, and how many bytes it took.
pub(crate) fn read(bytes: &[u8]) -> Result<(Value, usize), Problem> {
    let mut reader = bytes;
    match rmpv::decode::read_value_with_max_depth(&mut reader, MAX_DEPTH) {
        Ok(value) => Ok((to_json(&value), bytes.len() - reader.len())),
        Err(e) => Err(Problem::new(bytes.len() - reader.len(), e.to_string())),
    }
}

/// One MessagePack value, as rmpv has it, as JSON.
pub(crate) fn to_json(value: &Pack) -> Value {
    convert(value, false)
}

/// `value` as JSON; `in_key`: it is (part of) a map key.
fn convert(value: &Pack, in_key: bool) -> Value {
    match value {
        Pack::Nil => Value::Null,
        Pack::Boolean(b) => Value::Bool(*b),
        Pack::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) => Value::from(n),
            (None, Some(n)) => Value::from(n),
            (None, None) => Value::Null,
        },
        Pack::F32(f) => json_float(f64::from(*f)),
        Pack::F64(f) => json_float(*f),
        Pack::String(s) => match s.as_str() {
            Some(text) => Value::String(text.to_owned()),
            None => Value::String(format!("0x{}", hex(s.as_bytes()))),
        },
        Pack::Binary(bytes) => Value::String(format!("0x{}", hex(bytes))),
        Pack::Array(items) => Value::Array(items.iter().map(|v| convert(v, in_key)).collect()),
        Pack::Map(pairs) => {
            let mut map = Entries::default();
            for (key, value) in pairs {
                let key = match key {
                    Pack::String(s) if s.as_str().is_some() => {
                        s.as_str().unwrap_or_default().to_owned()
                    }
                    Pack::Array(_) | Pack::Map(_) if in_key => NESTED_KEY.to_owned(),
                    other => key_text(convert(other, true)),
                };
                map.insert(key, convert(value, in_key));
            }
            map.into_value()
        }
        Pack::Ext(kind, data) => json!({ "ext": kind, "data": format!("0x{}", hex(data)) }),
    }
}

/// How a map or array used as a key within a key shows: not spelt out, since each level
/// of keys written as JSON escapes the one inside it again (doubling its length).
pub(crate) const NESTED_KEY: &str = "…";

/// The most characters of a key written as JSON.
const KEY_CHARS: usize = 256;

/// A map read from a binary format, whose keys may repeat, or read alike once written as
/// text (`…`, a key cut short): a key already there gets `#2`, `#3`, ... after it, so no
/// entry hides another. Linear in its entries, however many share a key.
#[derive(Default)]
pub(crate) struct Entries {
    map: Map<String, Value>,
    /// The next number to try after each key that came more than once.
    next: std::collections::HashMap<String, usize>,
}

impl Entries {
    /// Adds an entry.
    pub(crate) fn insert(&mut self, key: String, value: Value) {
        if !self.map.contains_key(&key) {
            self.map.insert(key, value);
            return;
        }
        let n = self.next.entry(key.clone()).or_insert(2);
        let mut numbered = format!("{key}#{n}");
        while self.map.contains_key(&numbered) {
            *n += 1;
            numbered = format!("{key}#{n}");
        }
        *n += 1;
        self.map.insert(numbered, value);
    }

    /// The map, as JSON.
    pub(crate) fn into_value(self) -> Value {
        Value::Object(self.map)
    }
}

/// A map key that is not a string, as its JSON (within it, a map or array key is
/// [`NESTED_KEY`]), cut to [`KEY_CHARS`].
pub(crate) fn key_text(key: Value) -> String {
    cut(&key.to_string(), KEY_CHARS)
}

/// A float as JSON (NaN and the infinities, which JSON lacks, as strings).
pub(crate) fn json_float(f: f64) -> Value {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(f.to_string()))
}
