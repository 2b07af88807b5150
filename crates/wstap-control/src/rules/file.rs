//! The rules file's language (TOML; `docs/rules.md`), read into [`Rule`]s: each
//! `[[rule]]` is a filter (`docs/filters.md`) and what to do with what it selects. Any
//! mistake is reported with its line and column and what was expected. The same text
//! comes from `--rules FILE` and from the inspector's API.

use super::{Outcome, Replacement, Rule, RuleSet, Timer};
use crate::NetworkConditions;
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;
use wstap_filter::Filter;
use wstap_relay::Side;
use wstap_wire::Opcode;

/// A mistake in rules, where it is (1-based line, and column in characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct RulesError {
    /// The line.
    pub line: usize,
    /// The column.
    pub column: usize,
    /// What is wrong, or what was expected, on one line.
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<RuleSpec>,
    #[serde(default)]
    timer: Vec<TimerSpec>,
    #[serde(default)]
    conditions: Vec<ConditionsSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionsSpec {
    name: Option<String>,
    filter: Spanned<String>,
    /// In the language of `--conditions`.
    set: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimerSpec {
    name: Option<String>,
    filter: Spanned<String>,
    /// Milliseconds.
    every: Spanned<u64>,
    inject: Spanned<InjectSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InjectSpec {
    to: Spanned<String>,
    text: Option<String>,
    binary_hex: Option<Spanned<String>>,
    ping: Option<String>,
    pong: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: Option<String>,
    filter: Spanned<String>,
    #[serde(default)]
    control: bool,
    #[serde(default)]
    replace: Vec<Spanned<ReplaceSpec>>,
    /// Milliseconds.
    delay: Option<Spanned<u64>>,
    tag: Option<Spanned<String>>,
    drop: Option<Spanned<bool>>,
    abort: Option<Spanned<bool>>,
    #[serde(rename = "break")]
    hold: Option<Spanned<bool>>,
    close: Option<Spanned<CloseSpec>>,
    respond: Option<Spanned<RespondSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceSpec {
    regex: Option<Spanned<String>>,
    with: Option<String>,
    json: Option<Spanned<String>>,
    value: Option<toml::Value>,
    hex: Option<Spanned<String>>,
    with_hex: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseSpec {
    code: Spanned<u16>,
    #[serde(default)]
    reason: String,
    to: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RespondSpec {
    text: Option<String>,
    binary_hex: Option<Spanned<String>>,
}

/// The rules in `text`, in order.
pub fn parse_rules(text: &str) -> Result<RuleSet, RulesError> {
    parse(text).map_err(|(at, message)| {
        let (line, column) = line_and_column(text, at);
        RulesError {
            line,
            column,
            message,
        }
    })
}

/// A mistake: its byte offset in the file and what is wrong.
type Mistake = (usize, String);

/// The rules in `text`.
fn parse(text: &str) -> Result<RuleSet, Mistake> {
    let file: File = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |span| span.start);
        (at, one_line(e.message()))
    })?;
    Ok(RuleSet {
        rules: numbered(file.rule, rule)?,
        timers: numbered(file.timer, timer)?,
        conditions: numbered(file.conditions, conditions)?,
    })
}

/// Each of `specs` read by `read` with its number in the file (from 1), or the first
/// mistake.
fn numbered<S, T>(
    specs: Vec<S>,
    read: impl Fn(usize, S) -> Result<T, Mistake>,
) -> Result<Vec<T>, Mistake> {
    specs
        .into_iter()
        .enumerate()
        .map(|(n, spec)| read(n + 1, spec))
        .collect()
}

fn conditions(number: usize, spec: ConditionsSpec) -> Result<NetworkConditions, Mistake> {
    // The filter's mistakes point at the filter, the conditions' at `set`.
    sessions_filter_of(&spec.filter, "conditions choose sessions: their filter")?;
    let name = spec.name.unwrap_or_else(|| format!("conditions {number}"));
    NetworkConditions::parse(name, spec.filter.get_ref(), spec.set.get_ref())
        .map_err(|message| (spec.set.span().start, message))
}

/// A filter of sessions (`what` chooses them), or its mistake on one line: one that
/// reads messages is one.
fn sessions_filter_of(source: &Spanned<String>, what: &str) -> Result<Filter, Mistake> {
    let filter = filter_of(source)?;
    if filter.reads_records() {
        return Err((
            source.span().start,
            format!("{what} may use only session fields (host, path, ...)"),
        ));
    }
    Ok(filter)
}

/// A filter as a rule or timer gives it, or its mistake on one line.
fn filter_of(source: &Spanned<String>) -> Result<Filter, Mistake> {
    Filter::parse(source.get_ref()).map_err(|e| {
        // The filter's own message, without the lines that point into the filter.
        let message = e.to_string();
        let first = message.lines().next().unwrap_or_default().to_owned();
        (source.span().start, format!("in the filter: {first}"))
    })
}

/// The shortest period a timer may have, and the longest.
const TIMER_PERIODS_MS: std::ops::RangeInclusive<u64> = 10..=86_400_000;

fn timer(number: usize, spec: TimerSpec) -> Result<Timer, Mistake> {
    let filter = sessions_filter_of(&spec.filter, "a timer's filter chooses sessions: it")?;
    let every = *spec.every.get_ref();
    if !TIMER_PERIODS_MS.contains(&every) {
        return Err((
            spec.every.span().start,
            format!(
                "`every` is {} to {} ms",
                TIMER_PERIODS_MS.start(),
                TIMER_PERIODS_MS.end()
            ),
        ));
    }
    let start = spec.inject.span().start;
    let inject = spec.inject.into_inner();
    let to = match inject.to.get_ref().as_str() {
        "client" => Side::Client,
        "server" => Side::Server,
        other => {
            return Err((
                inject.to.span().start,
                format!("`to` is client or server, not {other:?}"),
            ))
        }
    };
    let (opcode, payload) = match (inject.text, inject.binary_hex, inject.ping, inject.pong) {
        (Some(text), None, None, None) => (Opcode::Text, text.into_bytes()),
        (None, Some(hex), None, None) => (Opcode::Binary, bytes_of(&hex)?),
        (None, None, Some(ping), None) => (Opcode::Ping, ping.into_bytes()),
        (None, None, None, Some(pong)) => (Opcode::Pong, pong.into_bytes()),
        _ => {
            return Err((
                start,
                "inject one of `text`, `binary_hex`, `ping` or `pong`".to_owned(),
            ))
        }
    };
    if opcode.is_control() && payload.len() > 125 {
        return Err((start, "a ping or pong carries at most 125 bytes".to_owned()));
    }
    Ok(Timer {
        name: spec.name.unwrap_or_else(|| format!("timer {number}")),
        filter,
        every: Duration::from_millis(every),
        to,
        opcode,
        payload,
    })
}

fn rule(number: usize, spec: RuleSpec) -> Result<Rule, Mistake> {
    let at = |s: &std::ops::Range<usize>| s.start;
    let filter = filter_of(&spec.filter)?;
    let replace = spec
        .replace
        .into_iter()
        .map(replacement)
        .collect::<Result<Vec<_>, _>>()?;
    /// The longest delay a rule may ask for: a day.
    const MAX_DELAY_MS: u64 = 86_400_000;
    let delay = match spec.delay {
        Some(d) if *d.get_ref() > MAX_DELAY_MS => {
            return Err((
                d.span().start,
                format!("a delay is at most {MAX_DELAY_MS} ms (a day)"),
            ))
        }
        Some(d) => Some(Duration::from_millis(*d.get_ref())),
        None => None,
    };
    let tag = match spec.tag {
        Some(tag) if !wstap_filter::value::is_tag(tag.get_ref()) => {
            return Err((
                tag.span().start,
                format!(
                    "{:?} is not a tag: 1 to 64 letters, digits, '_', '-' or '.'",
                    tag.get_ref()
                ),
            ))
        }
        Some(tag) => Some(tag.into_inner()),
        None => None,
    };
    let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
    let flag = |value: &Option<Spanned<bool>>| {
        value
            .as_ref()
            .filter(|v| *v.get_ref())
            .map(|v| v.span().start)
    };
    if let Some(at) = flag(&spec.drop) {
        outcomes.push((at, Outcome::Drop));
    }
    if let Some(at) = flag(&spec.abort) {
        outcomes.push((at, Outcome::Abort));
    }
    if let Some(at) = flag(&spec.hold) {
        outcomes.push((at, Outcome::Break));
    }
    if let Some(close) = spec.close {
        let start = close.span().start;
        outcomes.push((start, close_outcome(close.into_inner())?));
    }
    if let Some(respond) = spec.respond {
        let start = respond.span().start;
        outcomes.push((start, respond_outcome(start, respond.into_inner())?));
    }
    if let Some((at, _)) = outcomes.get(1) {
        return Err((
            *at,
            "a rule has one outcome: drop, abort, break, close or respond".to_owned(),
        ));
    }
    let outcome = outcomes.pop().map_or(Outcome::Forward, |(_, o)| o);
    if outcome == Outcome::Forward && replace.is_empty() && delay.is_none() && tag.is_none() {
        return Err((
            at(&spec.filter.span()),
            "this rule does nothing: give it replace, delay, tag, drop, abort, break, close or respond"
                .to_owned(),
        ));
    }
    Ok(Rule {
        name: spec.name.unwrap_or_else(|| format!("rule {number}")),
        filter,
        control: spec.control,
        replace,
        delay,
        tag,
        outcome,
    })
}

fn replacement(spec: Spanned<ReplaceSpec>) -> Result<Replacement, Mistake> {
    let start = spec.span().start;
    let spec = spec.into_inner();
    match (spec.regex, spec.json, spec.hex) {
        (Some(regex), None, None) => {
            let with = spec.with.ok_or((start, "a regex replacement needs `with`".to_owned()))?;
            let pattern = regex::Regex::new(regex.get_ref()).map_err(|e| {
                // regex's message draws the pattern over several lines: its last says why.
                let message = e.to_string();
                let why = message.lines().last().unwrap_or_default();
                let why = why.trim().trim_start_matches("error: ");
                (regex.span().start, format!("not a regular expression: {why}"))
            })?;
            Ok(Replacement::Regex { pattern, with })
        }
        (None, Some(json), None) => {
            let value = spec
                .value
                .ok_or((start, "a json replacement needs `value`".to_owned()))?;
            let value = serde_json::to_value(value)
                .map_err(|e| (start, format!("the value has no JSON form: {e}")))?;
            let path = json.get_ref().trim_start_matches('.');
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err((json.span().start, format!("{path:?} is not a path like a.b.0")));
            }
            Ok(Replacement::Json {
                path: path.split('.').map(str::to_owned).collect(),
                value,
            })
        }
        (None, None, Some(hex)) => {
            let find = bytes_of(&hex)?;
            if find.is_empty() {
                return Err((hex.span().start, "`hex` must find at least one byte".to_owned()));
            }
            let with = spec
                .with_hex
                .ok_or((start, "a hex replacement needs `with_hex`".to_owned()))?;
            Ok(Replacement::Bytes {
                find,
                with: bytes_of(&with)?,
            })
        }
        _ => Err((
            start,
            "a replacement has one of `regex` (with `with`), `json` (with `value`) or `hex` (with `with_hex`)"
                .to_owned(),
        )),
    }
}

fn close_outcome(spec: CloseSpec) -> Result<Outcome, Mistake> {
    let code = *spec.code.get_ref();
    if !wstap_wire::close::is_sendable_close_code(code) {
        return Err((
            spec.code.span().start,
            format!(
                "{code} is not a close code an endpoint may send (1000-1003, 1007-1014, 3000-4999)"
            ),
        ));
    }
    if spec.reason.len() > wstap_wire::CloseFrame::MAX_REASON {
        return Err((
            spec.code.span().start,
            format!(
                "a close reason carries at most {} bytes",
                wstap_wire::CloseFrame::MAX_REASON
            ),
        ));
    }
    let to = match spec
        .to
        .as_ref()
        .map(|to| (to.get_ref().as_str(), to.span().start))
    {
        None | Some(("both", _)) => None,
        Some(("client", _)) => Some(Side::Client),
        Some(("server", _)) => Some(Side::Server),
        Some((other, at)) => {
            return Err((at, format!("`to` is client, server or both, not {other:?}")))
        }
    };
    Ok(Outcome::Close {
        to,
        code,
        reason: spec.reason,
    })
}

fn respond_outcome(start: usize, spec: RespondSpec) -> Result<Outcome, Mistake> {
    match (spec.text, spec.binary_hex) {
        (Some(text), None) => Ok(Outcome::Respond {
            opcode: Opcode::Text,
            payload: text.into_bytes(),
        }),
        (None, Some(hex)) => Ok(Outcome::Respond {
            opcode: Opcode::Binary,
            payload: bytes_of(&hex)?,
        }),
        _ => Err((
            start,
            "respond with one of `text` or `binary_hex`".to_owned(),
        )),
    }
}

/// The bytes a hex string spells (spaces allowed between pairs).
fn bytes_of(hex: &Spanned<String>) -> Result<Vec<u8>, Mistake> {
    let digits: String = hex
        .get_ref()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let bad = || {
        (
            hex.span().start,
            format!("{:?} is not hex bytes (like \"01 ff\")", hex.get_ref()),
        )
    };
    if !digits.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).map_err(|_| bad()))
        .collect()
}

/// A message of several lines as one (`; ` between them).
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join("; ")
}

/// The 1-based line and column (in characters) of byte offset `at` in `text`.
fn line_and_column(text: &str, at: usize) -> (usize, usize) {
    let mut end = at.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mistake in `text`, as `line:column: message`.
    fn mistake(text: &str) -> String {
        let (at, message) = parse(text).expect_err("a mistake");
        let (line, column) = line_and_column(text, at);
        format!("{line}:{column}: {message}")
    }

    #[test]
    fn a_file_of_every_kind_of_rule_reads() {
        let set = parse(
            r#"
# comments are fine
[[rule]]
name = "no secrets"
filter = 'dir:c2s text~"secret"'
drop = true

[[rule]]
filter = "dir:c2s op:text"
replace = [
  { regex = "hello (\\w+)", with = "HELLO $1" },
  { json = "user.name", value = "anon" },
  { hex = "01 02", with_hex = "ff" },
]
delay = 250
tag = "rewritten"

[[rule]]
filter = 'json.type == "bye"'
close = { code = 4001, reason = "bye", to = "client" }

[[rule]]
filter = 'json.op == "ping"'
respond = { text = '{"op":"pong"}' }

[[rule]]
filter = 'text:"crash me"'
abort = true

[[rule]]
filter = 'op:close'
control = true
break = true

[[timer]]
name = "keepalive"
filter = 'host:chat.example'
every = 5000
inject = { to = "server", ping = "still here" }

[[conditions]]
name = "slow mobile"
filter = 'host:chat.example'
set = "to:client, latency:200ms, jitter:20ms, bandwidth:64KiB/s"
"#,
        )
        .unwrap();
        assert_eq!(set.conditions.len(), 1);
        let slow = &set.conditions[0];
        assert_eq!(slow.name, "slow mobile");
        assert_eq!(
            slow.describe(),
            "to:client, latency:200ms, jitter:20ms, bandwidth:65536B/s"
        );
        assert_eq!(set.timers.len(), 1);
        let timer = &set.timers[0];
        assert_eq!(
            (timer.name.as_str(), timer.every, timer.to, timer.opcode),
            (
                "keepalive",
                Duration::from_secs(5),
                Side::Server,
                Opcode::Ping
            )
        );
        assert_eq!(timer.payload, b"still here");
        let rules = set.rules;
        assert_eq!(rules.len(), 6);
        assert_eq!(rules[0].name, "no secrets");
        assert_eq!(rules[0].outcome, Outcome::Drop);
        assert_eq!(rules[1].name, "rule 2");
        assert_eq!(rules[1].replace.len(), 3);
        assert_eq!(rules[1].delay, Some(Duration::from_millis(250)));
        assert_eq!(rules[1].tag.as_deref(), Some("rewritten"));
        assert_eq!(rules[1].outcome, Outcome::Forward);
        assert_eq!(
            rules[1].rewrite(Opcode::Text, br#"hello world"#),
            b"HELLO world"
        );
        assert_eq!(
            rules[2].outcome,
            Outcome::Close {
                to: Some(Side::Client),
                code: 4001,
                reason: "bye".into()
            }
        );
        assert!(matches!(
            rules[3].outcome,
            Outcome::Respond {
                opcode: Opcode::Text,
                ..
            }
        ));
        assert_eq!(rules[4].outcome, Outcome::Abort);
        assert_eq!(rules[5].outcome, Outcome::Break);
        assert!(rules[5].control);
        assert!(parse("").unwrap().is_empty());
        let unnamed =
            parse("[[timer]]\nfilter = ''\nevery = 10\ninject = { to = 'client', text = 't' }")
                .unwrap();
        assert_eq!(unnamed.timers[0].name, "timer 1");
    }

    #[test]
    fn every_kind_of_mistake_says_where_and_what_was_expected() {
        let cases: &[(&str, &str)] = &[
            // TOML itself.
            ("[[rule]\nfilter = 'x'", "1:7: "),
            // An unknown key.
            (
                "[[rule]]\nfilter = 'op:text'\ndorp = true",
                "3:1: unknown field `dorp`",
            ),
            // A missing filter.
            ("[[rule]]\ndrop = true", "1:1: missing field `filter`"),
            // A bad filter.
            (
                "[[rule]]\nfilter = 'op:nonsense'\ndrop = true",
                "2:10: in the filter:",
            ),
            // A bad regex.
            (
                "[[rule]]\nfilter = ''\nreplace = [{ regex = '(', with = 'x' }]",
                "3:22: not a regular expression: unclosed group",
            ),
            // A regex without its replacement.
            (
                "[[rule]]\nfilter = ''\nreplace = [{ regex = 'a' }]",
                "3:12: a regex replacement needs `with`",
            ),
            // Two kinds in one replacement.
            (
                "[[rule]]\nfilter = ''\nreplace = [{ regex = 'a', json = 'b', with = 'c' }]",
                "3:12: a replacement has one of",
            ),
            // Bad hex.
            (
                "[[rule]]\nfilter = ''\nreplace = [{ hex = '0g', with_hex = '' }]",
                "3:20: \"0g\" is not hex bytes",
            ),
            // A bad close code, and a bad side.
            (
                "[[rule]]\nfilter = ''\nclose = { code = 1005 }",
                "3:18: 1005 is not a close code",
            ),
            (
                "[[rule]]\nfilter = ''\nclose = { code = 1000, to = 'all' }",
                "3:29: `to` is client, server or both",
            ),
            // Two outcomes.
            (
                "[[rule]]\nfilter = ''\ndrop = true\nabort = true",
                "4:9: a rule has one outcome",
            ),
            // Nothing to do.
            (
                "[[rule]]\nfilter = 'op:text'",
                "2:10: this rule does nothing",
            ),
            // A tag that is not one.
            (
                "[[rule]]\nfilter = ''\ntag = 'not one'",
                "3:7: \"not one\" is not a tag",
            ),
            // A wrong type, and a delay past a day.
            ("[[rule]]\nfilter = ''\ndelay = 'soon'", "3:9: invalid type"),
            (
                "[[rule]]\nfilter = ''\ndelay = 86400001",
                "3:9: a delay is at most 86400000 ms",
            ),
            // A respond with neither.
            (
                "[[rule]]\nfilter = ''\nrespond = {}",
                "3:11: respond with one of",
            ),
            // Timers: a filter that reads messages, a period out of range, a side, two payloads.
            (
                "[[timer]]\nfilter = 'op:text'\nevery = 100\ninject = { to = 'client', text = 'x' }",
                "2:10: a timer's filter chooses sessions",
            ),
            (
                "[[timer]]\nfilter = ''\nevery = 1\ninject = { to = 'client', text = 'x' }",
                "3:9: `every` is 10 to 86400000 ms",
            ),
            (
                "[[timer]]\nfilter = ''\nevery = 100\ninject = { to = 'both', text = 'x' }",
                "4:17: `to` is client or server",
            ),
            (
                "[[timer]]\nfilter = ''\nevery = 100\ninject = { to = 'client', text = 'x', ping = '' }",
                "4:10: inject one of",
            ),
            (
                "[[timer]]\nfilter = ''\ninject = { to = 'client', text = 'x' }",
                "1:1: missing field `every`",
            ),
            // Conditions: a filter that reads messages, a mistake in what they set.
            (
                "[[conditions]]\nfilter = 'op:text'\nset = 'latency:1ms'",
                "2:10: conditions choose sessions",
            ),
            (
                "[[conditions]]\nfilter = ''\nset = 'latency:1ms, jiter:2ms'",
                "3:7: unknown condition \"jiter\"",
            ),
            // A JSON path with a hole.
            (
                "[[rule]]\nfilter = ''\nreplace = [{ json = 'a..b', value = 1 }]",
                "3:21: \"a..b\" is not a path",
            ),
        ];
        for (text, expected) in cases {
            let got = mistake(text);
            assert!(
                got.starts_with(expected),
                "{text:?}\n  got: {got}\n want: {expected}"
            );
            assert_eq!(got.lines().count(), 1, "one line: {got}");
        }
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_eq!(line_and_column("é\nab", 4), (2, 2));
        assert_eq!(line_and_column("éé", 2), (1, 2));
        assert_eq!(line_and_column("x", 99), (1, 2));
    }

    #[test]
    fn no_input_makes_the_parser_panic() {
        // A small deterministic fuzz: every prefix of a rules file, and bytes flipped in it.
        let file = r#"[[rule]]
name = "n"
filter = 'dir:c2s json.a == 1'
replace = [{ regex = "a(b)", with = "$1" }, { json = "x.0", value = [1, {a = 2}] }]
delay = 5
close = { code = 4000, reason = "r", to = "server" }
"#;
        for end in 0..=file.len() {
            if file.is_char_boundary(end) {
                let _ = parse(&file[..end]);
            }
        }
        let mut state = 0x2545_f491_u64;
        for _ in 0..2000 {
            let mut bytes = file.as_bytes().to_vec();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % bytes.len() as u64) as usize;
                const ALPHABET: &[u8] = b" =[]{}'\"\n.,#01az\\";
                bytes[at] = ALPHABET[(state >> 20) as usize % ALPHABET.len()];
            }
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = parse(text);
            }
        }
    }
}
