//! A direction as the trace writes it: `"c2s"` or `"s2c"` (serde `with` module).

use serde::{Deserialize, Deserializer, Serializer};
use wstap_wire::Direction;

pub fn serialize<S: Serializer>(direction: &Direction, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(direction.short())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Direction, D::Error> {
    let text = String::deserialize(d)?;
    Direction::from_short(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown direction {text:?}")))
}
