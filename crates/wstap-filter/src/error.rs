//! Parse errors that point at the place: the filter, a caret under the offending part,
//! and what was expected there.

use std::fmt;

/// Why a filter did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    text: String,
    start: usize,
    end: usize,
    message: String,
}

impl ParseError {
    /// An error about `source[start..end]` (byte offsets), saying `message`.
    pub(crate) fn new(source: &str, start: usize, end: usize, message: impl Into<String>) -> Self {
        let start = start.min(source.len());
        ParseError {
            text: source.to_owned(),
            start,
            end: end.clamp(start, source.len()),
            message: message.into(),
        }
    }

    /// What was wrong or expected, in words.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where it went wrong: the character position (0-based) where the offending part
    /// starts, and how many characters it spans (at least one).
    pub fn span(&self) -> (usize, usize) {
        let column = self.text[..self.start].chars().count();
        let width = self.text[self.start..self.end].chars().count().max(1);
        (column, width)
    }
}

/// The most characters of a filter an error shows; a longer one is cut to the part
/// around the mistake, with `…` where text was left out.
const SHOWN_MAX: usize = 100;

/// How much of the context on either side of the mistake a cut filter keeps.
const CONTEXT: usize = 40;

impl fmt::Display for ParseError {
    /// `message`, then the filter on a line of its own and a caret under the place.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (column, width) = self.span();
        // The filter is shown on one line: line breaks in it count as one space each.
        let chars: Vec<char> = self
            .text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let (from, to, width) = if chars.len() <= SHOWN_MAX {
            (0, chars.len(), width)
        } else {
            let width = width.min(CONTEXT);
            let from = column.saturating_sub(CONTEXT);
            (from, (column + width + CONTEXT).min(chars.len()), width)
        };
        let before = if from > 0 { "…" } else { "" };
        let after = if to < chars.len() { "…" } else { "" };
        let shown: String = chars[from..to].iter().collect();
        write!(
            f,
            "{}\n  {before}{shown}{after}\n  {}{}",
            self.message,
            " ".repeat(column - from + before.chars().count()),
            "^".repeat(width)
        )
    }
}
