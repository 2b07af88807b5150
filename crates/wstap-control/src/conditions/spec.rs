//! The short language of network conditions, as `--conditions FILTER=SPEC`, the API and
//! the inspector write them: items separated by commas, e.g.
//! `to:client, latency:200ms, jitter:50ms, bandwidth:64KiB/s, drop-after:30s`.
//!
//! - `latency:D`, `jitter:D`: a duration, `ms` or `s` (a bare number is milliseconds);
//! - `bandwidth:R`: bytes per second, `B/s`, `KB/s` (1000), `KiB/s` (1024), `MB/s`, `MiB/s`
//!   (a bare number is bytes per second);
//! - `pause`: nothing goes that way until the conditions change;
//! - `drop-after:N` (messages) or `drop-after:D` (a duration): both connections are cut
//!   then, without close frames (a client sees 1006);
//! - `close-after:N|D[:CODE[:REASON]]`: a close frame to each side instead (1001 unless
//!   said);
//! - `to:server|client|both`: which way (`both` unless said): `to:client` shapes what
//!   the server sends;
//! - `none`: no conditions (clears them).
//!
//! [`describe`] writes conditions back in the same language, which is how the inspector
//! and the capture show them.

use super::Toward;
use std::num::NonZeroU64;
use std::time::Duration;
use wstap_relay::{After, Conditions, Cut, Cutoff};

/// How long a close sent by a cut-off waits for a frame boundary and the writes.
pub(crate) const CUT_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The longest latency or jitter: an hour.
const LONGEST: Duration = Duration::from_secs(3600);

/// What a spec says: which way, and the conditions (`None`: `none`).
pub type Spec = (Toward, Option<Conditions>);

/// Reads `text` (see the module documentation), or says what is wrong on one line.
pub fn parse_conditions(text: &str) -> Result<Spec, String> {
    let mut toward = Toward::Both;
    let mut conditions = Conditions::default();
    let mut none = false;
    let mut any = false;
    for item in text.split(',').map(str::trim) {
        if item.is_empty() {
            continue;
        }
        any = true;
        let (key, value) = match item.split_once(':') {
            Some((key, value)) => (key.trim(), Some(value.trim())),
            None => (item, None),
        };
        let needs = || {
            value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("`{key}` needs a value: `{key}:...`"))
        };
        match key {
            "none" | "pause" if value.is_some() => {
                return Err(format!("`{key}` takes no value"));
            }
            "none" => none = true,
            "pause" => conditions.paused = true,
            "latency" => conditions.latency = duration(needs()?)?,
            "jitter" => conditions.jitter = duration(needs()?)?,
            "bandwidth" => conditions.bandwidth = Some(rate(needs()?)?),
            "to" => {
                toward = match needs()? {
                    "server" => Toward::Server,
                    "client" => Toward::Client,
                    "both" => Toward::Both,
                    other => return Err(format!("`to` is server, client or both, not {other:?}")),
                }
            }
            "drop-after" => {
                conditions.cutoff = Some(Cutoff {
                    after: after(needs()?)?,
                    cut: Cut::Abort,
                })
            }
            "close-after" => conditions.cutoff = Some(close_after(needs()?)?),
            other => {
                return Err(format!(
                    "unknown condition {other:?}: the conditions are latency, jitter, bandwidth, pause, drop-after, close-after, to and none"
                ))
            }
        }
    }
    if !any {
        return Err("no conditions: say `none` to clear them".to_owned());
    }
    if none {
        let only_none = text
            .split(',')
            .map(str::trim)
            .all(|i| i.is_empty() || i == "none");
        if !only_none {
            return Err("`none` stands alone".to_owned());
        }
        return Ok((toward, None));
    }
    Ok((toward, Some(conditions)))
}

/// A duration: `250ms`, `1.5s`, or a bare number of milliseconds.
fn duration(text: &str) -> Result<Duration, String> {
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1e-3)
    };
    let seconds = number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n * scale)
        .ok_or_else(|| format!("{text:?} is not a duration (say 250ms or 1.5s)"))?;
    let duration = Duration::from_secs_f64(seconds);
    if duration > LONGEST {
        return Err(format!("{text:?} is longer than an hour"));
    }
    Ok(duration)
}

/// Bytes per second: `64KiB/s`, `1MB/s`, `500B/s`, or a bare number.
fn rate(text: &str) -> Result<NonZeroU64, String> {
    let bare = text.strip_suffix("/s").unwrap_or(text);
    let units: [(&str, u64); 6] = [
        ("KiB", 1024),
        ("MiB", 1 << 20),
        ("KB", 1000),
        ("kB", 1000),
        ("MB", 1_000_000),
        ("B", 1),
    ];
    let (number, scale) = units
        .iter()
        .find_map(|(unit, scale)| bare.strip_suffix(unit).map(|n| (n, *scale)))
        .unwrap_or((bare, 1));
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 1.0)
        .and_then(|n| NonZeroU64::new((n * scale as f64) as u64))
        .ok_or_else(|| format!("{text:?} is not a bandwidth (say 64KiB/s, at least 1B/s)"))
}

/// A cut-off's when: a count of messages, or a duration.
fn after(text: &str) -> Result<After, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("a cut-off after 0 messages: say at least 1".to_owned()),
        Ok(messages) => Ok(After::Messages(messages)),
        Err(_) => duration(text)
            .map(After::Time)
            .map_err(|_| format!("{text:?} is neither a number of messages nor a duration")),
    }
}

/// `N|D[:CODE[:REASON]]`.
fn close_after(text: &str) -> Result<Cutoff, String> {
    let mut parts = text.splitn(3, ':');
    let when = after(parts.next().unwrap_or_default())?;
    let code = match parts.next() {
        None => 1001,
        Some(code) => code
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|code| wstap_wire::close::is_sendable_close_code(*code))
            .ok_or_else(|| {
                format!("{code:?} is not a close code an endpoint may send (1000-1003, 1007-1014, 3000-4999)")
            })?,
    };
    let reason = parts
        .next()
        .unwrap_or("network conditions")
        .trim()
        .to_owned();
    if reason.len() > wstap_wire::CloseFrame::MAX_REASON {
        return Err(format!(
            "a close reason carries at most {} bytes",
            wstap_wire::CloseFrame::MAX_REASON
        ));
    }
    Ok(Cutoff {
        after: when,
        cut: Cut::Close {
            code,
            reason,
            grace: CUT_CLOSE_GRACE,
        },
    })
}

/// `conditions` in the language [`parse_conditions`] reads (without `to`).
pub fn describe(conditions: Option<&Conditions>) -> String {
    let Some(conditions) = conditions else {
        return "none".to_owned();
    };
    let mut items = Vec::new();
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    if !conditions.latency.is_zero() {
        items.push(format!("latency:{}", ms(conditions.latency)));
    }
    if !conditions.jitter.is_zero() {
        items.push(format!("jitter:{}", ms(conditions.jitter)));
    }
    if let Some(rate) = conditions.bandwidth {
        items.push(format!("bandwidth:{}B/s", rate.get()));
    }
    if conditions.paused {
        items.push("pause".to_owned());
    }
    if let Some(cutoff) = &conditions.cutoff {
        let when = match cutoff.after {
            After::Messages(n) => n.to_string(),
            After::Time(d) => ms(d),
        };
        items.push(match &cutoff.cut {
            Cut::Abort => format!("drop-after:{when}"),
            Cut::Close { code, reason, .. } => format!("close-after:{when}:{code}:{reason}"),
        });
    }
    match items.is_empty() {
        true => "none".to_owned(),
        false => items.join(", "),
    }
}

/// `--conditions FILTER=SPEC`: the filter and the spec, split at the last `=` (a spec has
/// none; a filter may).
pub fn split_filter_and_spec(text: &str) -> Result<(&str, &str), String> {
    text.rsplit_once('=')
        .map(|(filter, spec)| (filter.trim(), spec.trim()))
        .ok_or_else(|| "write FILTER=CONDITIONS, e.g. 'host:example.com=latency:200ms'".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_reads_and_describes_back() {
        let (toward, conditions) = parse_conditions(
            "to:client, latency:200ms, jitter:0.05s, bandwidth:64KiB/s, pause, close-after:10:4000:bye",
        )
        .unwrap();
        assert_eq!(toward, Toward::Client);
        let conditions = conditions.unwrap();
        assert_eq!(conditions.latency, Duration::from_millis(200));
        assert_eq!(conditions.jitter, Duration::from_millis(50));
        assert_eq!(conditions.bandwidth, NonZeroU64::new(65536));
        assert!(conditions.paused);
        let described = describe(Some(&conditions));
        assert_eq!(
            described,
            "latency:200ms, jitter:50ms, bandwidth:65536B/s, pause, close-after:10:4000:bye"
        );
        assert_eq!(parse_conditions(&described).unwrap().1.unwrap(), conditions);
        let (_, dropped) = parse_conditions("drop-after:1.5s").unwrap();
        assert_eq!(
            dropped.unwrap().cutoff.unwrap().after,
            After::Time(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_conditions("latency:300").unwrap().1.unwrap().latency,
            Duration::from_millis(300)
        );
        assert_eq!(parse_conditions(" none ").unwrap(), (Toward::Both, None));
        assert_eq!(describe(None), "none");
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        for (text, says) in [
            ("latncy:200ms", "unknown condition \"latncy\""),
            ("latency", "`latency` needs a value"),
            ("latency:fast", "is not a duration"),
            ("latency:2h", "is not a duration"),
            ("latency:7200s", "longer than an hour"),
            ("bandwidth:0", "is not a bandwidth"),
            ("bandwidth:lots", "is not a bandwidth"),
            ("to:up", "`to` is server, client or both"),
            ("drop-after:0", "at least 1"),
            (
                "drop-after:soon",
                "neither a number of messages nor a duration",
            ),
            ("close-after:3:1005", "not a close code"),
            ("pause:1", "takes no value"),
            ("none, latency:1ms", "`none` stands alone"),
            ("", "no conditions"),
        ] {
            let error = parse_conditions(text).unwrap_err();
            assert!(error.contains(says), "{text:?}: {error}");
        }
    }

    #[test]
    fn the_filter_is_what_comes_before_the_last_equals_sign() {
        assert_eq!(
            split_filter_and_spec("url == \"a=b\"=latency:1ms").unwrap(),
            ("url == \"a=b\"", "latency:1ms")
        );
        assert!(split_filter_and_spec("latency:1ms").is_err());
    }
}
