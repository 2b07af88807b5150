//! A map keyed by session id, for the writer's per-frame lookups.
//!
//! The writer looks a session up twice for every frame it stores. With the standard
//! library's SipHash that hashing was about 1% of the whole proxy's time under the fan-in
//! bench (docs/performance.md). Session ids are numbers wstap hands out itself, never
//! chosen by a peer, so a map keyed by them needs no defence against chosen keys: one
//! multiply spreads them well enough.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map from session ids to `V`.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Hashes a `u64` by one multiply with an odd constant (Fibonacci hashing): distinct ids
/// stay distinct in the low bits, and the high bits are mixed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

/// 2^64 divided by the golden ratio, made odd.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(SPREAD);
    }

    /// Only `u64` keys are hashed here; anything else is folded in a byte at a time.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// Ids handed out in a row land in distinct buckets of a table their size, and
    /// hashbrown's tag (the top 7 bits) varies among them.
    #[test]
    fn ids_in_a_row_spread_over_buckets_and_tags() {
        let hasher = BuildHasherDefault::<IdHasher>::default();
        for start in [0u64, 1, 1_000_000] {
            let hashes: Vec<u64> = (start..start + 1024)
                .map(|id| hasher.hash_one(id))
                .collect();
            let mut buckets: Vec<u64> = hashes.iter().map(|h| h & 1023).collect();
            buckets.sort_unstable();
            buckets.dedup();
            assert_eq!(buckets.len(), 1024, "ids from {start}");
            let mut tags: Vec<u64> = hashes.iter().map(|h| h >> 57).collect();
            tags.sort_unstable();
            tags.dedup();
            assert!(tags.len() > 64, "{} tags for ids from {start}", tags.len());
        }
    }
}
