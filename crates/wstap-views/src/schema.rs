//! Protocol Buffers with a schema: a descriptor set (what `protoc --descriptor_set_out=FILE
//! --include_imports` writes) and the message type each direction carries, so the
//! protobuf view names fields and enum values rather than numbering them.
//!
//! `prost-reflect` does the decoding; this module turns what it decodes into the JSON
//! tree every view gives (bytes as `0x…` hexadecimal, enum values by name, map keys as
//! strings, fields the schema does not know as `#N`, read as without a schema). A payload
//! that is not a message of its type says why and is read without the schema.

use crate::formats::msgpack::json_float;
use crate::formats::{self, protobuf};
use crate::render::{compact, hex};
use crate::{Decoded, Item, Problem, View};
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MapKey, MessageDescriptor};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;
use wstap_wire::Direction;

/// How many type names an error about an unknown type lists.
const TYPES_LISTED: usize = 12;

/// Why a descriptor set or a message type could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    /// The bytes are not a `FileDescriptorSet`, or one whose files do not fit together.
    #[error(
        "not a protobuf descriptor set ({0}); protoc --descriptor_set_out=FILE --include_imports makes one"
    )]
    BadDescriptorSet(String),
    /// The set has no message of that name.
    #[error("the descriptor set has no message type {name} (it has {known})")]
    UnknownType {
        /// The name asked for.
        name: String,
        /// Some of the names it has.
        known: String,
    },
    /// A type was given in a form other than `TYPE`, `c2s=TYPE` or `s2c=TYPE`.
    #[error("bad message type {0:?}: give TYPE (both ways), c2s=TYPE or s2c=TYPE")]
    BadTypeSpec(String),
    /// A descriptor set without any message type to read with it.
    #[error("a descriptor set needs a message type to read messages as (--proto-type)")]
    NoType,
}

/// The message types the two directions carry, as a person names them
/// (`chat.ClientMessage`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtoTypes {
    /// What the client sends.
    pub c2s: Option<String>,
    /// What the server sends.
    pub s2c: Option<String>,
}

impl ProtoTypes {
    /// Takes one `--proto-type` value: `TYPE` for both directions, or `c2s=TYPE` /
    /// `s2c=TYPE` for one.
    pub fn add(&mut self, spec: &str) -> Result<(), SchemaError> {
        let bad = || SchemaError::BadTypeSpec(spec.to_owned());
        let name = |text: &str| {
            let text = text.trim().trim_start_matches('.');
            let valid = !text.is_empty()
                && text.split('.').all(|part| {
                    !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_')
                });
            valid.then(|| text.to_owned())
        };
        match spec.split_once('=') {
            Some(("c2s", ty)) => self.c2s = Some(name(ty).ok_or_else(bad)?),
            Some(("s2c", ty)) => self.s2c = Some(name(ty).ok_or_else(bad)?),
            Some(_) => return Err(bad()),
            None => {
                let ty = name(spec).ok_or_else(bad)?;
                self.c2s = Some(ty.clone());
                self.s2c = Some(ty);
            }
        }
        Ok(())
    }

    /// Whether neither direction has a type.
    pub fn is_empty(&self) -> bool {
        self.c2s.is_none() && self.s2c.is_none()
    }
}

/// A descriptor set and the message type of each direction: see the module
/// documentation. Cheap to clone.
#[derive(Clone)]
pub struct ProtoSchema {
    descriptor_set: Arc<[u8]>,
    types: ProtoTypes,
    /// The types, resolved: client to server, then server to client.
    messages: [Option<MessageDescriptor>; 2],
}

impl fmt::Debug for ProtoSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtoSchema")
            .field("descriptor_set_bytes", &self.descriptor_set.len())
            .field("types", &self.types)
            .finish()
    }
}

impl ProtoSchema {
    /// The schema of a serialized `FileDescriptorSet` and the types its messages are read
    /// as; every type must be in the set.
    pub fn new(descriptor_set: &[u8], types: ProtoTypes) -> Result<ProtoSchema, SchemaError> {
        if types.is_empty() {
            return Err(SchemaError::NoType);
        }
        let pool = DescriptorPool::decode(descriptor_set)
            .map_err(|e| SchemaError::BadDescriptorSet(e.to_string()))?;
        let resolve = |name: &Option<String>| -> Result<Option<MessageDescriptor>, SchemaError> {
            let Some(name) = name else { return Ok(None) };
            pool.get_message_by_name(name).map(Some).ok_or_else(|| {
                let mut known: Vec<String> = pool
                    .all_messages()
                    .filter(|m| !m.is_map_entry() && !m.full_name().starts_with("google.protobuf."))
                    .map(|m| m.full_name().to_owned())
                    .collect();
                known.sort();
                let more = known.len().saturating_sub(TYPES_LISTED);
                known.truncate(TYPES_LISTED);
                let mut known = if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                };
                if more > 0 {
                    known.push_str(&format!(" and {more} more"));
                }
                SchemaError::UnknownType {
                    name: name.clone(),
                    known,
                }
            })
        };
        let messages = [resolve(&types.c2s)?, resolve(&types.s2c)?];
        Ok(ProtoSchema {
            descriptor_set: descriptor_set.into(),
            types,
            messages,
        })
    }

    /// The descriptor set it was made of, as given.
    pub fn descriptor_set(&self) -> &[u8] {
        &self.descriptor_set
    }

    /// The message types, as given.
    pub fn types(&self) -> &ProtoTypes {
        &self.types
    }

    /// Decodes a message going `dir` as that direction's type; `None` when the direction
    /// has none.
    pub(crate) fn decode(&self, dir: Direction, payload: &[u8]) -> Option<Decoded> {
        let descriptor = match dir {
            Direction::ClientToServer => self.messages[0].as_ref(),
            Direction::ServerToClient => self.messages[1].as_ref(),
        }?;
        Some(match DynamicMessage::decode(descriptor.clone(), payload) {
            Ok(message) => {
                let tree = message_json(&message);
                let summary = format!(
                    "{} {} {}",
                    View::Protobuf.tag(),
                    descriptor.name(),
                    compact(&tree)
                );
                Decoded {
                    view: View::Protobuf,
                    items: vec![Item {
                        summary,
                        tree,
                        call: None,
                    }],
                    problem: None,
                }
            }
            Err(e) => {
                // Still worth reading without the schema: say why it is not its type.
                let without = formats::binary_format(View::Protobuf, payload, protobuf::read);
                Decoded {
                    problem: Some(Problem::new(
                        0,
                        format!("not a {}: {e}", descriptor.full_name()),
                    )),
                    ..without
                }
            }
        })
    }
}

/// A decoded message as a JSON object, fields by name.
fn message_json(message: &DynamicMessage) -> Value {
    let mut object = Map::new();
    for (field, value) in message.fields() {
        object.insert(field.name().to_owned(), value_json(&field.kind(), value));
    }
    // Fields the schema does not know, read as the view reads them without one.
    let mut unknown = Vec::new();
    for field in message.unknown_fields() {
        field.encode(&mut unknown);
    }
    if let Ok((Value::Object(numbered), _)) = protobuf::read(&unknown) {
        for (number, value) in numbered {
            object.insert(format!("#{number}"), value);
        }
    }
    Value::Object(object)
}

/// One value of a field of `kind` (for a list, each element's kind; for a map, the map
/// entry's).
fn value_json(kind: &Kind, value: &prost_reflect::Value) -> Value {
    use prost_reflect::Value as V;
    match value {
        V::Bool(b) => Value::Bool(*b),
        V::I32(n) => Value::from(*n),
        V::I64(n) => Value::from(*n),
        V::U32(n) => Value::from(*n),
        V::U64(n) => Value::from(*n),
        V::F32(n) => json_float(f64::from(*n)),
        V::F64(n) => json_float(*n),
        V::String(text) => Value::String(text.clone()),
        V::Bytes(bytes) => Value::String(format!("0x{}", hex(bytes))),
        V::EnumNumber(n) => match kind.as_enum().and_then(|e| e.get_value(*n)) {
            Some(named) => Value::String(named.name().to_owned()),
            None => Value::from(*n),
        },
        V::Message(message) => message_json(message),
        V::List(values) => Value::Array(values.iter().map(|v| value_json(kind, v)).collect()),
        V::Map(entries) => {
            let value_kind = match kind {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                other => other.clone(),
            };
            // A JSON object keeps its keys sorted: no order to set here.
            Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| (map_key(key), value_json(&value_kind, value)))
                    .collect(),
            )
        }
    }
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(text) => text.clone(),
    }
}
