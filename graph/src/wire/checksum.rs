//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Partial sums are `u32` values no larger than `0xffff`, so callers can add many of them
//! (payload, pseudo header) with plain `+` and [`fold`] once at the end. Partial sums of
//! separate slices combine correctly only when every slice but the last has even length.

use std::net::Ipv4Addr;

/// Ones-complement sum of `data` as big-endian 16-bit words, folded to at most `0xffff`.
///
/// An odd trailing byte is padded with a zero byte, as RFC 1071 says.
pub fn sum(data: &[u8]) -> u32 {
    // Adding 64-bit big-endian words with end-around carry gives the same ones-complement sum
    // as adding 16-bit words, since 2^16 ≡ 1 (mod 0xffff); it does a quarter of the additions.
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let word = u64::from_be_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        let (sum, carry) = acc.overflowing_add(word);
        acc = sum + u64::from(carry);
    }
    let mut rest = words.remainder().chunks_exact(2);
    for pair in &mut rest {
        acc += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// Folds a sum of partial sums into 16 bits with end-around carry (not complemented).
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `data`: the complement of its folded ones-complement sum.
///
/// A buffer that already holds its checksum field verifies when this returns 0.
pub fn data(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Partial sum of the IPv4 pseudo header that TCP and UDP checksums cover.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u32 {
    let (s, d) = (u32::from(src), u32::from(dst));
    (s >> 16)
        + (s & 0xffff)
        + (d >> 16)
        + (d & 0xffff)
        + u32::from(protocol)
        + (length >> 16)
        + (length & 0xffff)
}

//= https://www.rfc-editor.org/rfc/rfc1624#section-3
//# In one's complement, there are two representations of zero: the all
//# zero and the all one bit values, often referred to as +0 and -0.

//= https://www.rfc-editor.org/rfc/rfc1624#section-3
//# The problem is avoided by not assuming this property.  The correct
//# equation is given below:
//#
//#        HC' = ~(C + (-m) + m')    --    [Eqn. 3]
//#            = ~(~HC + ~m + m')

/// New checksum after a 16-bit field changes from `old` to `new` (RFC 1624, eqn. 3).
///
/// Equals a full recomputation unless the whole covered data becomes zero, where the two
/// encodings of zero differ; no IPv4, UDP or TCP header can be all zero.
pub fn update_u16(old_checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u32::from(!old_checksum) + u32::from(!old) + u32::from(new))
}

/// New checksum after a 32-bit field (an IPv4 address) changes, as two eqn. 3 steps in one.
pub fn update_u32(old_checksum: u16, old: u32, new: u32) -> u16 {
    let (old_hi, old_lo) = ((old >> 16) as u16, old as u16);
    let (new_hi, new_lo) = ((new >> 16) as u16, new as u16);
    !fold(
        u32::from(!old_checksum)
            + u32::from(!old_hi)
            + u32::from(!old_lo)
            + u32::from(new_hi)
            + u32::from(new_lo),
    )
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1071, by the book: one 16-bit word at a time.
    fn naive(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            acc += u32::from(word);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    fn words(words: &[u16]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&bytes)), 0xddf2);
        assert_eq!(data(&bytes), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12]), 0x1200);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(sum(&[]), 0);
        assert_eq!(data(&[]), 0xffff);
    }

    #[test]
    fn fold_carries_around() {
        assert_eq!(fold(0x1_fffe), 0xffff);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(0), 0);
    }

    #[test]
    fn pseudo_header_matches_bytes() {
        let (src, dst) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 7));
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&[0, 17, 0x01, 0x2c]);
        assert_eq!(fold(pseudo_header_v4(src, dst, 17, 300)), fold(sum(&bytes)));
    }

    //= https://www.rfc-editor.org/rfc/rfc1624#section-3
    //# HC' = ~(~HC + ~m + m')
    #[test]
    fn rfc1624_minus_zero_example() {
        // RFC 1624 section 4: the other words sum to 0xCD7A; m = 0x5555 becomes m' = 0x3285.
        // Recomputing gives ~(0xCD7A + 0x3285) = ~0xFFFF = 0x0000; eqn. 2 would give 0xFFFF.
        let before = words(&[0xcd7a, 0x5555]);
        let after = words(&[0xcd7a, 0x3285]);
        assert_eq!(data(&before), 0xdd2f);
        assert_eq!(data(&after), 0x0000);
        assert_eq!(update_u16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn rfc1624_unchanged_field_keeps_zero_checksum() {
        // Errata 4782 worries that m == m' with HC = 0x0000 yields 0xFFFF; with end-around
        // carry, ~(0xFFFF + 0xAAAA + 0x5555) = ~0xFFFF = 0x0000, so HC is kept.
        assert_eq!(update_u16(0x0000, 0x5555, 0x5555), 0x0000);
        assert_eq!(update_u32(0x0000, 0x5555_5555, 0x5555_5555), 0x0000);
        for hc in [0x0001, 0x1234, 0xfffe] {
            assert_eq!(update_u16(hc, 0xabcd, 0xabcd), hc);
        }
    }

    #[test]
    fn all_zero_result_is_the_one_exception() {
        // Covered data becoming all zero: recomputation says +0 (0xFFFF), eqn. 3 says -0.
        assert_eq!(data(&words(&[0, 0])), 0xffff);
        assert_eq!(update_u16(data(&words(&[0, 7])), 7, 0), 0x0000);
    }

    proptest! {
        #[test]
        fn sum_matches_naive(bytes in proptest::collection::vec(any::<u8>(), 0..200), skip in 0usize..8) {
            let bytes = &bytes[skip.min(bytes.len())..];
            prop_assert_eq!(data(bytes), naive(bytes));
        }

        #[test]
        fn update_u16_equals_recompute(
            mut ws in proptest::collection::vec(any::<u16>(), 1..40),
            at in any::<prop::sample::Index>(),
            new in prop_oneof![any::<u16>(), Just(0u16), Just(0xffffu16)],
        ) {
            let at = at.index(ws.len());
            let hc = data(&words(&ws));
            let old = ws[at];
            ws[at] = new;
            prop_assume!(ws.iter().any(|&w| w != 0));
            prop_assert_eq!(update_u16(hc, old, new), data(&words(&ws)));
        }

        #[test]
        fn update_u32_equals_recompute(
            mut ws in proptest::collection::vec(any::<u16>(), 2..40),
            at in any::<prop::sample::Index>(),
            new in any::<u32>(),
        ) {
            let at = at.index(ws.len() - 1);
            let hc = data(&words(&ws));
            let old = (u32::from(ws[at]) << 16) | u32::from(ws[at + 1]);
            ws[at] = (new >> 16) as u16;
            ws[at + 1] = new as u16;
            prop_assume!(ws.iter().any(|&w| w != 0));
            prop_assert_eq!(update_u32(hc, old, new), data(&words(&ws)));
        }

        #[test]
        fn updated_checksum_verifies(
            mut ws in proptest::collection::vec(any::<u16>(), 2..40),
            at in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            // Word 0 holds the checksum; a receiver sums everything and expects 0.
            let at = 1 + at.index(ws.len() - 1);
            ws[0] = 0;
            ws[0] = data(&words(&ws));
            let old = ws[at];
            ws[at] = new;
            prop_assume!(ws[1..].iter().any(|&w| w != 0));
            ws[0] = update_u16(ws[0], old, new);
            prop_assert_eq!(data(&words(&ws)), 0);
        }
    }
}
