//! `wstap diff [CAPTURE] A B`: two recorded sessions compared message by message (the
//! server's messages unless `--dir` says otherwise): same, changed (for JSON, which
//! fields), missing from B, extra in B. Exit status 0 only when they are equal.

use crate::captures::{chosen, open_capture, session_messages};
use crate::compare::{compare, Compared, Entry};
use crate::AppError;
use clap::{Args, ValueEnum};
use std::collections::HashMap;
use std::path::PathBuf;
use wstap_wire::{Direction, Opcode};

/// Options of `wstap diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The capture (default: the newest in ~/.wstap/captures); with two session numbers
    /// and no capture, the newest.
    #[arg(num_args = 2..=3, value_name = "[CAPTURE] A B")]
    pub operands: Vec<String>,
    /// A JSON path (`id`, `params.0.ts`) left out of comparisons (repeatable).
    #[arg(long, value_name = "PATH")]
    pub ignore: Vec<String>,
    /// Whose messages to compare.
    #[arg(long, value_enum, default_value_t = Side::Server)]
    pub dir: Side,
}

/// Whose messages are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Side {
    /// The server's (s2c).
    Server,
    /// The client's (c2s).
    Client,
    /// Both, in session order.
    Both,
}

impl Side {
    pub fn keeps(self, dir: Direction) -> bool {
        match self {
            Side::Server => dir == Direction::ServerToClient,
            Side::Client => dir == Direction::ClientToServer,
            Side::Both => true,
        }
    }
}

/// Runs `wstap diff`.
pub fn diff(args: &DiffArgs) -> Result<(), AppError> {
    let (capture, a, b) = match args.operands.as_slice() {
        [a, b] => (None, a, b),
        [capture, a, b] => (Some(PathBuf::from(capture)), a, b),
        _ => return Err(AppError::BadInput("give two session numbers".to_owned())),
    };
    let number = |text: &String| {
        text.parse::<u64>()
            .map_err(|_| AppError::BadInput(format!("{text:?} is not a session number")))
    };
    let (a, b) = (number(a)?, number(b)?);
    let path = chosen(capture.as_deref())?;
    let capture = open_capture(&path)?;
    let first = compared(session_messages(&capture, a)?, args.dir);
    let second = compared(session_messages(&capture, b)?, args.dir);
    println!("session {a} against session {b}: {}", what(args.dir));
    report(&first, &second, &args.ignore)
}

/// The data messages (and closes) a side sent, as compared: what the peers sent, not
/// what wstap wrote in their place or beside them (edits, injections).
pub fn compared(messages: Vec<wstap_store::StoredMessage>, side: Side) -> Vec<Compared> {
    messages
        .into_iter()
        .filter(|m| side.keeps(m.message.dir) && m.message.origin.is_wire())
        .filter(|m| {
            matches!(
                Opcode::from_bits(m.message.opcode),
                Opcode::Text | Opcode::Binary | Opcode::Close
            )
        })
        .map(|m| Compared {
            seq: m.seq,
            opcode: Opcode::from_bits(m.message.opcode),
            data: m.message.payload.bytes,
        })
        .collect()
}

fn what(side: Side) -> &'static str {
    match side {
        Side::Server => "the server's messages",
        Side::Client => "the client's messages",
        Side::Both => "every message",
    }
}

/// Prints the comparison of `a` (the reference) with `b`, a line per message and a
/// summary; an error (exit status 1) when they differ.
pub fn report(a: &[Compared], b: &[Compared], ignore: &[String]) -> Result<(), AppError> {
    let entries = compare(a, b, ignore);
    let by_seq = |messages: &[Compared]| -> HashMap<u64, usize> {
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.seq, i))
            .collect()
    };
    let (index_a, index_b) = (by_seq(a), by_seq(b));
    let preview = |messages: &[Compared], index: &HashMap<u64, usize>, seq: u64| {
        index.get(&seq).map_or_else(String::new, |&i| {
            preview(messages[i].opcode, &messages[i].data)
        })
    };
    let mut counts = [0usize; 4];
    for entry in &entries {
        match entry {
            Entry::Same { a: x, b: y } => {
                counts[0] += 1;
                println!("  = #{x:<6} #{y:<6} {}", preview(a, &index_a, *x));
            }
            Entry::Changed { a: x, b: y, fields } => {
                counts[1] += 1;
                println!("  ~ #{x:<6} #{y:<6} {}", fields.join(", "));
                println!("      was: {}", preview(a, &index_a, *x));
                println!("      now: {}", preview(b, &index_b, *y));
            }
            Entry::Missing { a: x } => {
                counts[2] += 1;
                println!("  - #{x:<6} {:<7} {}", "", preview(a, &index_a, *x));
            }
            Entry::Extra { b: y } => {
                counts[3] += 1;
                println!("  + {:<7} #{y:<6} {}", "", preview(b, &index_b, *y));
            }
        }
    }
    let summary = format!(
        "{} same, {} changed, {} missing, {} extra",
        counts[0], counts[1], counts[2], counts[3]
    );
    println!("{summary}");
    if counts[1..].iter().all(|&n| n == 0) {
        Ok(())
    } else {
        Err(AppError::Differs(summary))
    }
}

/// A message on one line: a close's code and reason, a binary message's first bytes in
/// hex, text's first characters (also the mock's report of what a client sent).
pub fn preview(opcode: Opcode, data: &[u8]) -> String {
    match opcode {
        Opcode::Close => {
            let close = wstap_wire::CloseFrame::parse(data, &mut Vec::new());
            match close.code {
                Some(code) => format!("close {code} {}", close.reason)
                    .trim_end()
                    .to_owned(),
                None => "close (no code)".to_owned(),
            }
        }
        Opcode::Binary => {
            let hex: Vec<String> = data.iter().take(24).map(|b| format!("{b:02x}")).collect();
            let more = if data.len() > 24 { " …" } else { "" };
            format!("binary {} bytes: {}{more}", data.len(), hex.join(" "))
        }
        _ => {
            let text = String::from_utf8_lossy(data).replace(['\n', '\r'], " ");
            let mut out: String = text.chars().take(70).collect();
            if text.chars().count() > 70 {
                out.push('…');
            }
            out
        }
    }
}

/// The comparison of `a` (the recording) with `b` as the inspector shows it side by side:
/// a row per message (`status` same, changed, missing or extra; each side's `seq`,
/// opcode and text, cut at [`SIDE_BY_SIDE_TEXT`] characters; a changed JSON message's
/// `fields`) and the counts.
pub fn comparison_json(a: &[Compared], b: &[Compared], ignore: &[String]) -> serde_json::Value {
    use serde_json::json;
    let side = |messages: &[Compared], seq: u64| {
        messages.iter().find(|m| m.seq == seq).map(|m| {
            let text = match m.opcode {
                Opcode::Text => {
                    let text = String::from_utf8_lossy(&m.data);
                    let cut: String = text.chars().take(SIDE_BY_SIDE_TEXT).collect();
                    match cut.len() < text.len() {
                        true => format!("{cut}…"),
                        false => cut,
                    }
                }
                opcode => preview(opcode, &m.data),
            };
            json!({ "seq": seq, "type": m.opcode.name().to_ascii_lowercase(), "text": text })
        })
    };
    let mut counts = [0u64; 4];
    let rows: Vec<serde_json::Value> = compare(a, b, ignore)
        .into_iter()
        .map(|entry| {
            let (status, x, y, fields, slot) = match entry {
                Entry::Same { a: x, b: y } => ("same", Some(x), Some(y), Vec::new(), 0),
                Entry::Changed { a: x, b: y, fields } => ("changed", Some(x), Some(y), fields, 1),
                Entry::Missing { a: x } => ("missing", Some(x), None, Vec::new(), 2),
                Entry::Extra { b: y } => ("extra", None, Some(y), Vec::new(), 3),
            };
            counts[slot] += 1;
            json!({
                "status": status,
                "recorded": x.and_then(|x| side(a, x)),
                "replayed": y.and_then(|y| side(b, y)),
                "fields": fields,
            })
        })
        .collect();
    json!({
        "rows": rows,
        "same": counts[0],
        "changed": counts[1],
        "missing": counts[2],
        "extra": counts[3],
    })
}

/// How much of a text message the side-by-side view shows.
pub const SIDE_BY_SIDE_TEXT: usize = 2000;
