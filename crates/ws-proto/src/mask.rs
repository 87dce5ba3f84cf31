//! Payload masking (RFC 6455 section 5.3).

/// XORs `data` with the 4-byte masking `key`, as if `data` started `offset`
/// bytes into the payload. Masking and unmasking are the same operation.
///
/// Works a machine word at a time in safe code, which the compiler
/// vectorises; with `std` on x86-64, the same loop compiled for AVX2 is used
/// when the CPU has it.
#[inline]
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if data.len() >= wide::MIN_LEN && wide::apply_mask_avx2(data, key, offset) {
        return;
    }
    apply_mask_words(data, key, offset);
}

/// Bytes per unrolled block of the masking loops (a multiple of 8, so the
/// key's phase is the same at every block and word).
const UNROLL: usize = 512;

/// The portable loop. Always inlined, so that [`wide`] can compile it with
/// wider vectors; the ASCII test that [`unmask_words_is_ascii`] adds is
/// dead code here and compiled away.
#[inline(always)]
fn apply_mask_words(data: &mut [u8], key: [u8; 4], offset: usize) {
    unmask_words_is_ascii(data, key, offset);
}

/// Unmasks `data` like [`apply_mask`] and reports whether every unmasked
/// byte is ASCII, in the same pass: text that is ASCII (most JSON) then
/// needs no separate UTF-8 validation pass.
#[inline]
pub(crate) fn unmask_is_ascii(data: &mut [u8], key: [u8; 4], offset: usize) -> bool {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if data.len() >= wide::MIN_LEN
        && let Some(ascii) = wide::unmask_is_ascii_avx2(data, key, offset)
    {
        return ascii;
    }
    unmask_words_is_ascii(data, key, offset)
}

/// The portable masking loop, which also ORs the unmasked words together to
/// test their high bits at the end (the loop of [`unmask_is_ascii`]).
#[inline(always)]
fn unmask_words_is_ascii(data: &mut [u8], key: [u8; 4], offset: usize) -> bool {
    let key = rotate_key(key, offset);
    // The key twice, in memory order.
    let half = u64::from(u32::from_ne_bytes(key));
    let wide = half | (half << 32);
    let mut seen = 0u64;
    // 512-byte blocks whose inner loop the compiler unrolls completely:
    // fewer loop-control instructions per byte than its own unrolling.
    let (blocks, rest) = data.as_chunks_mut::<UNROLL>();
    for block in blocks {
        for word in block.as_chunks_mut::<8>().0 {
            let unmasked = u64::from_ne_bytes(*word) ^ wide;
            *word = unmasked.to_ne_bytes();
            seen |= unmasked;
        }
    }
    let (words, rest) = rest.as_chunks_mut::<8>();
    for word in words {
        let unmasked = u64::from_ne_bytes(*word) ^ wide;
        *word = unmasked.to_ne_bytes();
        seen |= unmasked;
    }
    let mut seen_rest = 0u8;
    for (byte, k) in rest.iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
        seen_rest |= *byte;
    }
    seen & 0x8080_8080_8080_8080 == 0 && seen_rest < 0x80
}

/// The masking loops compiled for AVX2, chosen at run time.
///
/// One of the crate's three audited `unsafe` modules, kept to two calls: measured with
/// valgrind, unmasking was 57% of a server's instructions per 1 MiB echo
/// (0.29 instructions per byte with 16-byte SSE2 vectors, the baseline
/// x86-64 target); 32-byte AVX2 vectors halve that. The code itself is the
/// portable safe loops; only the calls into `#[target_feature]` functions
/// need `unsafe`, and they are made only after the CPU was checked.
#[cfg(all(feature = "std", target_arch = "x86_64"))]
#[allow(unsafe_code)]
mod wide {
    /// Shorter payloads are not worth the feature check.
    pub(super) const MIN_LEN: usize = 64;

    /// Masks `data` with AVX2 and returns true, or returns false (doing
    /// nothing) if the CPU lacks AVX2.
    #[inline]
    pub(super) fn apply_mask_avx2(data: &mut [u8], key: [u8; 4], offset: usize) -> bool {
        if !std::is_x86_feature_detected!("avx2") {
            return false;
        }
        // SAFETY: `avx2_words` may use AVX2 instructions and nothing else
        // beyond the baseline; the check above proved this CPU has AVX2.
        unsafe { avx2_words(data, key, offset) };
        true
    }

    #[target_feature(enable = "avx2")]
    fn avx2_words(data: &mut [u8], key: [u8; 4], offset: usize) {
        super::apply_mask_words(data, key, offset);
    }

    /// [`super::unmask_is_ascii`] with AVX2, or `None` (doing nothing) if
    /// the CPU lacks AVX2.
    #[inline]
    pub(super) fn unmask_is_ascii_avx2(
        data: &mut [u8],
        key: [u8; 4],
        offset: usize,
    ) -> Option<bool> {
        if !std::is_x86_feature_detected!("avx2") {
            return None;
        }
        // SAFETY: as above, `avx2_words_is_ascii` needs AVX2 only, and the
        // CPU has it.
        Some(unsafe { avx2_words_is_ascii(data, key, offset) })
    }

    #[target_feature(enable = "avx2")]
    fn avx2_words_is_ascii(data: &mut [u8], key: [u8; 4], offset: usize) -> bool {
        super::unmask_words_is_ascii(data, key, offset)
    }
}

/// Byte-at-a-time masking: the reference that [`apply_mask`] is tested against.
pub fn apply_mask_bytewise(data: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte ^= key[offset.wrapping_add(i) % 4];
    }
}

/// The key as seen from `offset` bytes into the payload.
#[inline]
fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    // Byte `i` of the result is byte `(i + offset) % 4` of the key: with the
    // first byte as the least significant, a right rotation of the word.
    let word = u32::from_le_bytes(key).rotate_right(8 * (offset % 4) as u32);
    word.to_le_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_bytewise_for_all_offsets_and_lengths() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..40 {
            for offset in 0..8 {
                let mut fast: Vec<u8> = (0..len as u8).collect();
                let mut slow = fast.clone();
                apply_mask(&mut fast, key, offset);
                apply_mask_bytewise(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn every_path_matches_bytewise_around_the_wide_threshold() {
        // Lengths around the AVX2 threshold and vector widths, all offsets:
        // exercises both the wide path (when the CPU has it) and the portable one.
        let key = [0xA1, 0x02, 0xF3, 0x44];
        for len in [63, 64, 65, 95, 96, 127, 128, 129, 1000, 4099] {
            for offset in 0..4 {
                let mut fast: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                let mut slow = fast.clone();
                apply_mask(&mut fast, key, offset);
                apply_mask_bytewise(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
                apply_mask_words(&mut fast, key, offset);
                apply_mask_bytewise(&mut slow, key, offset);
                assert_eq!(fast, slow, "portable, len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn unmask_is_ascii_unmasks_and_tells_ascii_apart() {
        let key = [0xA1, 0x02, 0xF3, 0x44];
        for len in [0usize, 1, 7, 8, 9, 63, 64, 65, 100, 1000, 4099] {
            for offset in 0..4 {
                for high_at in [None, Some(0), Some(len / 2), Some(len.saturating_sub(1))] {
                    let plain: Vec<u8> = (0..len)
                        .map(|i| {
                            if Some(i) == high_at {
                                0xC3
                            } else {
                                b'a' + (i % 26) as u8
                            }
                        })
                        .collect();
                    let mut data = plain.clone();
                    apply_mask_bytewise(&mut data, key, offset);
                    let ascii = unmask_is_ascii(&mut data, key, offset);
                    assert_eq!(data, plain, "len {len} offset {offset}");
                    assert_eq!(ascii, plain.is_ascii(), "len {len} high at {high_at:?}");
                    let mut portable = plain.clone();
                    apply_mask_bytewise(&mut portable, key, offset);
                    assert_eq!(
                        unmask_words_is_ascii(&mut portable, key, offset),
                        plain.is_ascii()
                    );
                    assert_eq!(portable, plain);
                }
            }
        }
    }

    #[test]
    fn rfc_hello_example() {
        // RFC 6455 section 5.7: masked "Hello".
        let mut payload = *b"Hello";
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn split_masking_equals_whole() {
        let key = [1, 2, 3, 4];
        let mut whole: Vec<u8> = (0..100).collect();
        let mut parts = whole.clone();
        apply_mask(&mut whole, key, 0);
        let (a, b) = parts.split_at_mut(13);
        apply_mask(a, key, 0);
        apply_mask(b, key, 13);
        assert_eq!(whole, parts);
    }
}
