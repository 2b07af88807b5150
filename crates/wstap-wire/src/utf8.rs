//! Incremental UTF-8 validation across fragments (RFC 6455 section 8.1).
//!
//! A text message may be split into fragments, and a fragment may end in the middle of
//! a multi-byte code point. [`Utf8Validator`] carries at most three bytes of an unfinished
//! code point from one chunk to the next and leans on `std::str::from_utf8` (which is
//! fast) for everything else.

/// The verdict so far on a stream of bytes that should be UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Utf8State {
    /// Everything fed so far is valid UTF-8 or a valid prefix of it.
    Valid,
    /// An invalid sequence was seen; the stream can never become valid.
    Invalid,
}

/// Validates a stream of UTF-8 fed in arbitrary pieces.
#[derive(Debug, Clone)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
    state: Utf8State,
}

impl Default for Utf8Validator {
    fn default() -> Self {
        Utf8Validator {
            pending: [0; 4],
            pending_len: 0,
            state: Utf8State::Valid,
        }
    }
}

impl Utf8Validator {
    /// A validator at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The verdict so far.
    pub fn state(&self) -> Utf8State {
        self.state
    }

    /// Feeds the next piece of the stream.
    pub fn feed(&mut self, mut data: &[u8]) -> Utf8State {
        if self.state == Utf8State::Invalid {
            return self.state;
        }
        // Finish a code point left over from the previous piece, byte by byte.
        while self.pending_len > 0 {
            let Some((&byte, rest)) = data.split_first() else {
                return self.state;
            };
            self.pending[usize::from(self.pending_len)] = byte;
            self.pending_len += 1;
            data = rest;
            match std::str::from_utf8(&self.pending[..usize::from(self.pending_len)]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => {
                    self.state = Utf8State::Invalid;
                    return self.state;
                }
                Err(_) if self.pending_len == 4 => {
                    self.state = Utf8State::Invalid;
                    return self.state;
                }
                Err(_) => {}
            }
        }
        match std::str::from_utf8(data) {
            Ok(_) => {}
            Err(e) => match e.error_len() {
                Some(_) => self.state = Utf8State::Invalid,
                None => {
                    let tail = &data[e.valid_up_to()..];
                    self.pending[..tail.len()].copy_from_slice(tail);
                    // An incomplete sequence is at most three bytes long.
                    self.pending_len = tail.len() as u8;
                }
            },
        }
        self.state
    }

    /// Ends the stream: `true` when everything fed was complete, valid UTF-8.
    pub fn finish(&mut self) -> FinishedUtf8 {
        let verdict = match (self.state, self.pending_len) {
            (Utf8State::Invalid, _) => FinishedUtf8::Invalid,
            (Utf8State::Valid, 0) => FinishedUtf8::Valid,
            (Utf8State::Valid, _) => FinishedUtf8::Truncated,
        };
        *self = Self::default();
        verdict
    }
}

/// The verdict on a finished stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishedUtf8 {
    /// Valid, complete UTF-8.
    Valid,
    /// An invalid sequence somewhere.
    Invalid,
    /// Valid so far, but the stream ended inside a code point.
    Truncated,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn verdict(pieces: &[&[u8]]) -> FinishedUtf8 {
        let mut v = Utf8Validator::new();
        for p in pieces {
            v.feed(p);
        }
        v.finish()
    }

    #[test]
    fn code_point_split_across_pieces_is_valid() {
        let euro = "€".as_bytes();
        assert_eq!(
            verdict(&[&euro[..1], &euro[1..2], &euro[2..]]),
            FinishedUtf8::Valid
        );
        assert_eq!(
            verdict(&[b"a", &euro[..2], &euro[2..], b"b"]),
            FinishedUtf8::Valid
        );
    }

    #[test]
    fn invalid_and_truncated_are_told_apart() {
        assert_eq!(verdict(&[b"\xff"]), FinishedUtf8::Invalid);
        assert_eq!(verdict(&[b"ok\xe2\x82"]), FinishedUtf8::Truncated);
        assert_eq!(verdict(&[b"\xe2", b"\x28"]), FinishedUtf8::Invalid);
        assert_eq!(
            verdict(&[b"\xed\xa0\x80"]),
            FinishedUtf8::Invalid,
            "surrogate"
        );
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_verdict_as_std(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            cuts in proptest::collection::vec(0usize..64, 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut v = Utf8Validator::new();
            let mut at = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                v.feed(&data[at..cut]);
                at = cut;
            }
            let expected = std::str::from_utf8(&data).is_ok();
            prop_assert_eq!(v.finish() == FinishedUtf8::Valid, expected);
        }
    }
}
