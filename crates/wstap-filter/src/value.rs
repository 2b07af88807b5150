//! Values as filters write them: booleans, opcodes, lengths, states, fates, origins and
//! times.

use crate::ast::{Fate, Origin, State};
use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// `true`/`false` and friends.
pub fn boolean(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A comma list of opcodes as a bit set (bit `n` for opcode `n`).
pub fn opcodes(text: &str) -> Option<u16> {
    let mut mask = 0u16;
    for name in text.split(',') {
        mask |= match name.trim().to_ascii_lowercase().as_str() {
            "text" => 1 << 0x1,
            "binary" => 1 << 0x2,
            "cont" | "continuation" => 1 << 0x0,
            "close" => 1 << 0x8,
            "ping" => 1 << 0x9,
            "pong" => 1 << 0xA,
            "data" => 0x00FF,
            "control" => 0xFF00,
            number => {
                let n = match number.strip_prefix("0x") {
                    Some(hex) => u8::from_str_radix(hex, 16).ok()?,
                    None => number.parse::<u8>().ok()?,
                };
                if n > 15 {
                    return None;
                }
                1 << n
            }
        };
    }
    Some(mask)
}

/// A session state.
pub fn state(text: &str) -> Option<State> {
    Some(match text.to_ascii_lowercase().as_str() {
        "open" => State::Open,
        "closed" => State::Closed,
        "aborted" => State::Aborted,
        "error" => State::Error,
        _ => return None,
    })
}

/// A fate, by its name.
pub fn fate(text: &str) -> Option<Fate> {
    let text = text.to_ascii_lowercase();
    Fate::ALL.into_iter().find(|f| f.name() == text)
}

/// Whether `text` can be a tag a rule gives a message: 1 to 64 letters, digits, `_`,
/// `-` or `.`.
pub fn is_tag(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// An origin, by its name.
pub fn origin(text: &str) -> Option<Origin> {
    let text = text.to_ascii_lowercase();
    Origin::ALL.into_iter().find(|o| o.name() == text)
}

/// A whole number (decimal, or hex with `0x`).
pub fn integer(text: &str) -> Option<i64> {
    match text.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// A length: a number with an optional `k`/`kb`/`kib`, `m`/`mb`/`mib` or `g` (powers of
/// 1024, as payload sizes are counted).
pub fn size(text: &str) -> Option<i64> {
    let lower = text.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(digits_end);
    let n: i64 = digits.parse().ok()?;
    let factor: i64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// A span of time in microseconds since the epoch, both ends included; an exact value
/// is a span of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The first microsecond.
    pub first: i64,
    /// The last microsecond.
    pub last: i64,
}

impl Span {
    /// The span of one value.
    pub fn exact(value: i64) -> Span {
        Span {
            first: value,
            last: value,
        }
    }
}

/// A time, as precise as it is written: `2026-12-01` is that whole day, `2026-12-01T20:15`
/// that minute, `2026-12-01T20:15:30.25` that instant. Without a zone (`Z`, `+01:00`) it is
/// local time.
pub fn time(text: &str) -> Option<Span> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(Span::exact(at.with_timezone(&Utc).timestamp_micros()));
    }
    let (naive, unit) = naive_time(text)?;
    let first = Local
        .from_local_datetime(&naive)
        .earliest()?
        .with_timezone(&Utc)
        .timestamp_micros();
    Some(Span {
        first,
        last: first + unit - 1,
    })
}

/// A local date and time without a zone, and the length of the unit it names (µs).
fn naive_time(text: &str) -> Option<(NaiveDateTime, i64)> {
    const SECOND: i64 = 1_000_000;
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some((date.and_time(NaiveTime::MIN), 86_400 * SECOND));
    }
    let text = text.replacen(' ', "T", 1);
    for (format, unit) in [
        ("%Y-%m-%dT%H:%M", 60 * SECOND),
        ("%Y-%m-%dT%H:%M:%S", SECOND),
        ("%Y-%m-%dT%H:%M:%S%.f", 1),
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(&text, format) {
            return Some((at, unit));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_in_powers_of_1024() {
        assert_eq!(size("100"), Some(100));
        assert_eq!(size("16k"), Some(16 << 10));
        assert_eq!(size("1MiB"), Some(1 << 20));
        assert_eq!(size("1x"), None);
        assert_eq!(size("k"), None);
    }

    #[test]
    fn a_time_is_as_wide_as_it_is_written() {
        let day = time("2026-12-01").unwrap();
        assert_eq!(day.last - day.first + 1, 86_400_000_000);
        let minute = time("2026-12-01T20:15").unwrap();
        assert_eq!(minute.last - minute.first + 1, 60_000_000);
        let exact = time("2026-12-01T20:15:30Z").unwrap();
        assert_eq!(exact.first, exact.last);
        assert_eq!(exact.first, 1_796_156_130_000_000);
        assert!(time("yesterday").is_none());
    }

    #[test]
    fn opcodes_by_name_number_and_group() {
        assert_eq!(opcodes("text"), Some(0b10));
        assert_eq!(opcodes("text,binary"), Some(0b110));
        assert_eq!(opcodes("0xA"), Some(1 << 10));
        assert_eq!(opcodes("control"), Some(0xFF00));
        assert_eq!(opcodes("16"), None);
        assert_eq!(opcodes("nope"), None);
    }
}
