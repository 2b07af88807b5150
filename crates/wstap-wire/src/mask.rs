//! Client-to-server masking (RFC 6455 section 5.3).
//!
//! [`apply_mask`] is the fast path: it XORs eight bytes at a time with the key repeated
//! into a `u64`, which the compiler turns into vector instructions. [`apply_mask_naive`]
//! is the obvious byte loop, kept beside it as the oracle the property tests compare
//! against. Both take the offset into the payload at which `buf` starts, so a payload
//! that arrives in pieces can be unmasked piece by piece. [`unmask_into`] is the fast
//! path for a reader that must leave the bytes it was given as they are. [`random_key`] makes keys for the
//! frames wstap writes itself.

/// A fresh masking key from the operating system's random source (RFC 6455 section 5.3
/// asks for unpredictable keys). Should that source fail, a key mixed from the clock is
/// used instead: any key masks correctly, and wstap's own frames carry no secret.
pub fn random_key() -> crate::MaskingKey {
    let mut key = [0u8; 4];
    if getrandom::getrandom(&mut key).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9, |d| d.subsec_nanos());
        key = nanos.wrapping_mul(0x9E37_79B9).to_le_bytes();
    }
    key
}

/// Unmasks (or masks: XOR is its own inverse) `buf` in place, word at a time.
///
/// `offset` is the position of `buf[0]` within the frame's payload.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: u64) {
    let shift = (offset % 4) as usize;
    let rotated = [
        key[shift],
        key[(shift + 1) % 4],
        key[(shift + 2) % 4],
        key[(shift + 3) % 4],
    ];
    let word = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // Whole words keep the key phase, so the tail starts at phase 0 of `rotated`.
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= rotated[i % 4];
    }
}

/// Writes `src` unmasked (or masked) into `dst`, word at a time: one pass, where copying
/// and then [`apply_mask`] would take two. `dst` must be exactly as long as `src`;
/// `offset` is the position of `src[0]` within the frame's payload.
pub fn unmask_into(src: &[u8], dst: &mut [u8], key: [u8; 4], offset: u64) {
    debug_assert_eq!(src.len(), dst.len());
    let shift = (offset % 4) as usize;
    let rotated = [
        key[shift],
        key[(shift + 1) % 4],
        key[(shift + 2) % 4],
        key[(shift + 3) % 4],
    ];
    let word = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2],
        rotated[3],
    ]);
    let mut from = src.chunks_exact(8);
    let mut to = dst.chunks_exact_mut(8);
    for (s, d) in (&mut from).zip(&mut to) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(s);
        d.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // Whole words keep the key phase, so the tail starts at phase 0 of `rotated`.
    for (i, (s, d)) in from.remainder().iter().zip(to.into_remainder()).enumerate() {
        *d = s ^ rotated[i % 4];
    }
}

/// The reference implementation: one byte at a time, straight from the RFC.
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4], offset: u64) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[((offset + i as u64) % 4) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_6455_section_5_7_masked_hello() {
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }

    proptest! {
        #[test]
        fn fast_unmask_matches_naive_for_every_length_and_alignment(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            key in any::<[u8; 4]>(),
            offset in 0u64..16,
            start in 0usize..8,
        ) {
            let start = start.min(data.len());
            let mut fast = data.clone();
            let mut naive = data;
            let mut into = vec![0u8; fast.len() - start];
            unmask_into(&fast[start..], &mut into, key, offset);
            apply_mask(&mut fast[start..], key, offset);
            apply_mask_naive(&mut naive[start..], key, offset);
            prop_assert_eq!(&fast, &naive);
            prop_assert_eq!(&into[..], &naive[start..]);
        }
    }
}
