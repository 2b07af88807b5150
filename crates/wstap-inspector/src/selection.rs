//! Filtered views by index: the positions of the rows a filter selects in a session,
//! computed once per filter and extended as the session grows.
//!
//! A view scrolls by index (row 0 to row N-1 of what it shows). Unfiltered, a row's index
//! is its position in the session, so any page is a keyset query. Filtered, the index of a
//! row is its place in the list of matching positions, kept here: 8 bytes a row, a few
//! recent filters, so scrolling to the middle of a million matches is a lookup, not an
//! `OFFSET` scan. Records never change once written, so a cached list only grows.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use wstap_store::Rows;

/// Filtered views kept.
const KEPT: usize = 8;

/// What a list of positions is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The session.
    pub session: u64,
    /// Frames or messages.
    pub rows: RowsKey,
    /// The filter's text.
    pub filter: String,
}

/// [`Rows`], comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsKey {
    /// Frames.
    Frames,
    /// Messages.
    Messages,
}

impl From<RowsKey> for Rows {
    fn from(key: RowsKey) -> Rows {
        match key {
            RowsKey::Frames => Rows::Frames,
            RowsKey::Messages => Rows::Messages,
        }
    }
}

/// The positions a filter selected, up to the extent scanned. Shared, so a page request
/// does not copy a million positions.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    /// Matching positions, ascending.
    pub positions: Arc<Vec<u64>>,
    /// Positions below this were scanned.
    pub scanned: u64,
}

/// The recent filtered views.
#[derive(Debug, Default)]
pub struct Selections {
    recent: Mutex<VecDeque<(Key, Positions)>>,
}

impl Selections {
    /// The positions for `key` scanned up to `extent`, scanning what is missing with
    /// `scan(from)` (which returns the matching positions from `from` on).
    pub fn get<E>(
        &self,
        key: Key,
        extent: u64,
        scan: impl FnOnce(u64) -> Result<Vec<u64>, E>,
    ) -> Result<Positions, E> {
        let cached = self.recent.lock().ok().and_then(|mut recent| {
            let at = recent.iter().position(|(k, _)| *k == key)?;
            recent.remove(at)
        });
        let mut found = cached.map(|(_, p)| p).unwrap_or_default();
        if extent > found.scanned {
            let more = scan(found.scanned)?;
            Arc::make_mut(&mut found.positions).extend(more.into_iter().filter(|&p| p < extent));
            found.scanned = extent;
        }
        if let Ok(mut recent) = self.recent.lock() {
            recent.push_front((key, found.clone()));
            recent.truncate(KEPT);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(filter: &str) -> Key {
        Key {
            session: 1,
            rows: RowsKey::Frames,
            filter: filter.into(),
        }
    }

    #[test]
    fn a_list_is_scanned_once_then_only_extended() {
        let selections = Selections::default();
        let evens = |from: u64, to: u64| (from..to).filter(|p| p % 2 == 0).collect::<Vec<_>>();
        let first = selections
            .get(key("even"), 10, |from| Ok::<_, ()>(evens(from, 12)))
            .unwrap();
        assert_eq!(*first.positions, vec![0, 2, 4, 6, 8]);
        let again = selections
            .get(key("even"), 10, |_| -> Result<Vec<u64>, ()> {
                panic!("scanned twice")
            })
            .unwrap();
        assert_eq!(again.positions, first.positions);
        let grown = selections
            .get(key("even"), 14, |from| {
                assert_eq!(from, 10);
                Ok::<_, ()>(evens(from, 14))
            })
            .unwrap();
        assert_eq!(*grown.positions, vec![0, 2, 4, 6, 8, 10, 12]);
    }

    #[test]
    fn only_the_recent_filters_are_kept() {
        let selections = Selections::default();
        for n in 0..=KEPT {
            selections
                .get(key(&n.to_string()), 1, |_| Ok::<_, ()>(vec![0]))
                .unwrap();
        }
        let mut rescanned = false;
        selections
            .get(key("0"), 1, |_| {
                rescanned = true;
                Ok::<_, ()>(vec![0])
            })
            .unwrap();
        assert!(rescanned, "the oldest filter was dropped");
    }
}
