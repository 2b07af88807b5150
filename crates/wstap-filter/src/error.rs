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

impl fmt::Display for ParseError {
    /// `message`, then the filter on a line of its own and a caret under the place.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (column, width) = self.span();
        // The filter is shown on one line: line breaks in it count as one space each.
        let shown: String = self
            .text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        write!(
            f,
            "{}\n  {shown}\n  {}{}",
            self.message,
            " ".repeat(column),
            "^".repeat(width)
        )
    }
}
