//! CBOR (RFC 8949), read by `ciborium` (nesting bounded) and shown as JSON: byte strings
//! as hexadecimal strings, tags as `{"tag": n, "value": ...}`, map keys that are not
//! strings written as their JSON (as MessagePack's are).

use super::msgpack::{json_float, key_text, Entries, NESTED_KEY};
use crate::render::hex;
use crate::Problem;
use ciborium::Value as Cbor;
use serde_json::{json, Value};

/// How deeply a value may nest.
const MAX_DEPTH: usize = 64;

/// One CBOR value from the front of `bytes`, and how many bytes it took.
pub(crate) fn read(bytes: &[u8]) -> Result<(Value, usize), Problem> {
    let mut reader = bytes;
    match ciborium::de::from_reader_with_recursion_limit::<Cbor, _>(&mut reader, MAX_DEPTH) {
        Ok(value) => Ok((to_json(&value), bytes.len() - reader.len())),
        Err(e) => {
            let at = match &e {
                ciborium::de::Error::Syntax(at) => *at,
                ciborium::de::Error::Semantic(Some(at), _) => *at,
                _ => bytes.len() - reader.len(),
            };
            Err(Problem::new(at, cbor_error_text(&e)))
        }
    }
}

fn cbor_error_text<T: std::fmt::Debug>(e: &ciborium::de::Error<T>) -> String {
    match e {
        ciborium::de::Error::Io(_) => "the value continues past the payload".to_owned(),
        ciborium::de::Error::Syntax(_) => "not CBOR".to_owned(),
        ciborium::de::Error::Semantic(_, what) => what.clone(),
        ciborium::de::Error::RecursionLimitExceeded => {
            format!("nested deeper than {MAX_DEPTH} levels")
        }
    }
}

/// One CBOR value as JSON.
pub(crate) fn to_json(value: &Cbor) -> Value {
    convert(value, false)
}

/// `value` as JSON; `in_key`: it is (part of) a map key.
fn convert(value: &Cbor, in_key: bool) -> Value {
    match value {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(*b),
        Cbor::Integer(i) => {
            let n = i128::from(*i);
            match (i64::try_from(n), u64::try_from(n)) {
                (Ok(n), _) => Value::from(n),
                (_, Ok(n)) => Value::from(n),
                _ => Value::String(n.to_string()),
            }
        }
        Cbor::Float(f) => json_float(*f),
        Cbor::Text(s) => Value::String(s.clone()),
        Cbor::Bytes(bytes) => Value::String(format!("0x{}", hex(bytes))),
        Cbor::Array(items) => Value::Array(items.iter().map(|v| convert(v, in_key)).collect()),
        Cbor::Map(pairs) => {
            let mut map = Entries::default();
            for (key, value) in pairs {
                let key = match key {
                    Cbor::Text(s) => s.clone(),
                    Cbor::Array(_) | Cbor::Map(_) | Cbor::Tag(..) if in_key => {
                        NESTED_KEY.to_owned()
                    }
                    other => key_text(convert(other, true)),
                };
                map.insert(key, convert(value, in_key));
            }
            map.into_value()
        }
        Cbor::Tag(tag, inner) => json!({ "tag": tag, "value": convert(inner, in_key) }),
        _ => Value::Null,
    }
}
