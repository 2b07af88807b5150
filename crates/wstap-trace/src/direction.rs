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

/// An optional direction, absent or `"c2s"` / `"s2c"`.
pub mod optional {
    use serde::{Deserialize, Deserializer, Serializer};
    use wstap_wire::Direction;

    pub fn serialize<S: Serializer>(
        direction: &Option<Direction>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match direction {
            Some(direction) => super::serialize(direction, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Direction>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        Direction::from_short(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown direction {text:?}")))
    }
}
