//! Captured payload bytes and their JSON form.
//!
//! In memory a [`Payload`] is raw bytes; in JSON it is
//! `{"encoding": "utf8" | "base64", "data": ..., "truncated": bool}`: UTF-8 text when the
//! captured bytes are valid UTF-8, base64 otherwise, so nothing is lost either way. A
//! payload a bounded capture gave up (`--capture-max`) says so: `"dropped": true`, no
//! data.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Captured bytes of a payload, and whether more existed than were kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payload {
    /// The captured bytes.
    pub bytes: Vec<u8>,
    /// Whether the real payload was longer.
    pub truncated: bool,
    /// Whether the capture kept these bytes once and gave them up to stay within its
    /// bound: `bytes` is empty then, and `truncated` true (unless there were none).
    pub dropped: bool,
}

impl Payload {
    /// All of `bytes`.
    pub fn all(bytes: Vec<u8>) -> Payload {
        Payload {
            bytes,
            truncated: false,
            dropped: false,
        }
    }

    /// The bytes as text, when they are valid UTF-8.
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }
}

#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    encoding: &'a str,
    data: std::borrow::Cow<'a, str>,
    truncated: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    dropped: bool,
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let wire = match self.as_text() {
            Some(text) => Wire {
                encoding: "utf8",
                data: text.into(),
                truncated: self.truncated,
                dropped: self.dropped,
            },
            None => Wire {
                encoding: "base64",
                data: BASE64.encode(&self.bytes).into(),
                truncated: self.truncated,
                dropped: self.dropped,
            },
        };
        wire.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Owned {
            encoding: String,
            data: String,
            #[serde(default)]
            truncated: bool,
            #[serde(default)]
            dropped: bool,
        }
        let owned = Owned::deserialize(d)?;
        let bytes = match owned.encoding.as_str() {
            "utf8" => owned.data.into_bytes(),
            "base64" => BASE64
                .decode(owned.data)
                .map_err(serde::de::Error::custom)?,
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown payload encoding {other:?}"
                )))
            }
        };
        Ok(Payload {
            bytes,
            truncated: owned.truncated,
            dropped: owned.dropped,
        })
    }
}
