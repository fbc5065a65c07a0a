//! The x86_64 kernel: AES-NI for the key schedule and counter mode, PCLMULQDQ for GHASH, SSE
//! (SSSE3 byte shuffles, SSE4.1 lane inserts) around them. The only module of the crate with
//! `unsafe`, and only for what `std::arch` requires it for: calling the `#[target_feature]`
//! functions from code compiled without those features (after [`supported`] said yes), and the
//! unaligned 16-byte loads and stores between byte arrays and registers.
//!
//! # How the work is laid out
//!
//! - **Per SA, once** ([`Key::new`], control side): the round keys (11 or 15), and the GHASH key
//!   in POLYVAL form with its powers H¹…H⁸, so the packet path does no setup at all.
//! - **Counter mode across packets.** A packet of a few blocks is latency-bound (each `aesenc`
//!   waits for the previous round of the same block): the blocks of up to [`LANES`] packets,
//!   their tag masks E(J0) included, go through one queue of [`W`] blocks in flight, so eight
//!   independent AES chains fill the pipeline whatever the packet sizes. A packet's runs of eight
//!   whole blocks skip the queue (they fill the pipeline alone).
//! - **GHASH with aggregated reduction.** Eight blocks are multiplied by H⁸…H¹ and summed
//!   unreduced, then reduced once (Gueron and Kounavis, "Intel Carry-Less Multiplication
//!   Instruction and its Usage for Computing the GCM Mode"). A packet's first chunk takes the
//!   remainder (n mod 8 blocks), so a 64-byte ESP packet (AAD, two ciphertext blocks, lengths)
//!   costs one reduction.
//!
//! # The GHASH representation
//!
//! GHASH's bit order is reflected. Rather than reflect every product (a shift per
//! multiplication), we compute POLYVAL (RFC 8452), whose field elements are plain little-endian
//! integers, and use its identity (RFC 8452, Appendix A):
//! `GHASH(H, X…) = ByteReverse(POLYVAL(mulX(ByteReverse(H)), ByteReverse(X)…))`.
//! A POLYVAL product is `a·b·x⁻¹²⁸ mod P`, P = x¹²⁸ + x¹²⁷ + x¹²⁶ + x¹²¹ + 1: a carry-less
//! 128×128 multiplication and a Montgomery reduction of two more carry-less multiplications by
//! the constant x⁶³ + x⁶² + x⁵⁷ (`0xc2` in the top byte). Each block costs one byte shuffle.

#![allow(unsafe_code)]

use crate::Job;
use core::arch::x86_64::*;

/// Packets processed together (the batch API cuts longer slices into groups of this many).
pub(crate) const LANES: usize = 8;
/// AES blocks in flight in the counter-mode queue: enough independent chains to cover the
/// latency of `aesenc` on the CPUs we run on (4 cycles, two units).
const W: usize = 8;
/// GCM's plaintext limit (NIST SP 800-38D: 2³⁹ − 256 bits).
const MAX_DATA: usize = (1 << 36) - 32;
/// GCM's AAD limit we accept (2⁶¹ − 1 bytes in the specification; a usize bound here).
const MAX_AAD: usize = 1 << 60;

/// Whether this CPU has what the kernel needs.
pub(crate) fn supported() -> bool {
    std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
        && std::arch::is_x86_feature_detected!("ssse3")
        && std::arch::is_x86_feature_detected!("sse4.1")
}

/// An expanded key: round keys and the GHASH key's powers. Only [`Key::new`] makes one, and
/// only on a CPU that [`supported`] approves: holding a `Key` is the proof the kernel may run.
#[derive(Clone)]
pub(crate) struct Key {
    rk: [__m128i; 15],
    rounds: usize,
    /// `h[i]` = H'^(i+1) in POLYVAL's Montgomery form (H' = mulX(ByteReverse(H))).
    h: [__m128i; 8],
}

impl Drop for Key {
    fn drop(&mut self) {
        // Round keys and H are key material: clear them, and keep the stores from being
        // dropped as dead.
        self.rk = [zero(); 15];
        self.h = [zero(); 8];
        std::hint::black_box(&mut self.rk);
        std::hint::black_box(&mut self.h);
    }
}

impl Key {
    /// Expands a 16- or 32-byte AES key; `None` for another length or an unsupported CPU.
    pub(crate) fn new(key: &[u8]) -> Option<Key> {
        if !supported() || !(key.len() == 16 || key.len() == 32) {
            return None;
        }
        // SAFETY: `supported()` confirmed aes, pclmulqdq, ssse3 and sse4.1 on this CPU.
        Some(unsafe { expand(key) })
    }

    /// 128 or 256.
    pub(crate) fn bits(&self) -> u16 {
        if self.rounds == 10 {
            128
        } else {
            256
        }
    }

    /// Seals each job in place (see [`crate::GcmKey::seal_batch`]).
    pub(crate) fn seal_batch(&self, jobs: &mut [Job<'_>]) {
        for group in jobs.chunks_mut(LANES) {
            // SAFETY: a Key exists only where `supported()` held (Key::new).
            unsafe {
                if self.rounds == 10 {
                    seal_group::<10>(self, group)
                } else {
                    seal_group::<14>(self, group)
                }
            }
        }
    }

    /// Opens each job in place (see [`crate::GcmKey::open_batch`]).
    pub(crate) fn open_batch(&self, jobs: &mut [Job<'_>]) {
        for group in jobs.chunks_mut(LANES) {
            // SAFETY: as in seal_batch.
            unsafe {
                if self.rounds == 10 {
                    open_group::<10>(self, group)
                } else {
                    open_group::<14>(self, group)
                }
            }
        }
    }
}

/// The zero block, outside `#[target_feature]` code.
#[inline(always)]
fn zero() -> __m128i {
    // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 CPU has it.
    unsafe { _mm_setzero_si128() }
}

/// Unaligned load of 16 bytes.
#[inline(always)]
fn load(b: &[u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement (SSE2, which every
    // x86_64 CPU has).
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

/// Unaligned store of 16 bytes.
#[inline(always)]
fn store(b: &mut [u8; 16], x: __m128i) {
    // SAFETY: `b` is 16 writable bytes, exclusively borrowed; `storeu` needs no alignment.
    unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), x) }
}

/// Up to 8 bytes as a little-endian integer (zero-extended), without a trip through memory.
#[inline(always)]
fn le_partial(b: &[u8]) -> u64 {
    if let Some(x) = b.first_chunk::<8>() {
        return u64::from_le_bytes(*x);
    }
    let (mut v, mut shift, mut rest) = (0u64, 0, b);
    if let Some((x, r)) = rest.split_first_chunk::<4>() {
        v = u64::from(u32::from_le_bytes(*x));
        (shift, rest) = (32, r);
    }
    if let Some((x, r)) = rest.split_first_chunk::<2>() {
        v |= u64::from(u16::from_le_bytes(*x)) << shift;
        shift += 16;
        rest = r;
    }
    if let Some(&x) = rest.first() {
        v |= u64::from(x) << shift;
    }
    v
}

/// Loads up to 16 bytes, zero-padded. Built from two integers: a copy into a stack block and
/// a 16-byte load of it would stall on store forwarding (the ESP AAD is 8 or 12 bytes).
#[inline]
#[target_feature(enable = "sse2")]
fn load_partial(b: &[u8]) -> __m128i {
    let (lo, hi) = match b.split_first_chunk::<8>() {
        Some((lo, rest)) => (u64::from_le_bytes(*lo), le_partial(rest)),
        None => (le_partial(b), 0),
    };
    _mm_set_epi64x(hi as i64, lo as i64)
}

/// Stores the first `b.len()` (at most 16) bytes of `x`.
#[inline]
#[target_feature(enable = "sse2")]
fn store_partial(b: &mut [u8], x: __m128i) {
    let lo = (_mm_cvtsi128_si64(x) as u64).to_le_bytes();
    let hi = (_mm_cvtsi128_si64(_mm_unpackhi_epi64(x, x)) as u64).to_le_bytes();
    for (d, s) in b.iter_mut().zip(lo.iter().chain(&hi)) {
        *d = *s;
    }
}

/// The byte-reversing shuffle (GHASH blocks ↔ POLYVAL elements).
#[inline]
#[target_feature(enable = "ssse3")]
fn bswap(x: __m128i) -> __m128i {
    let m = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    _mm_shuffle_epi8(x, m)
}

// ---------------------------------------------------------------------------------------------
// Key schedule (FIPS 197 §5.2, with AESKEYGENASSIST as in Intel's AES-NI white paper).

/// One AES-128 step: the previous round key and the assist word of it.
#[inline]
#[target_feature(enable = "sse2")]
fn step128(k: __m128i, assist: __m128i) -> __m128i {
    let t = _mm_shuffle_epi32::<0xff>(assist);
    let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
    let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
    let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
    _mm_xor_si128(k, t)
}

/// The second half-step of AES-256 (SubWord without RotWord or round constant).
#[inline]
#[target_feature(enable = "sse2")]
fn step256b(k: __m128i, assist: __m128i) -> __m128i {
    let t = _mm_shuffle_epi32::<0xaa>(assist);
    let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
    let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
    let k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
    _mm_xor_si128(k, t)
}

/// Expands `key` and derives the GHASH powers.
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
fn expand(key: &[u8]) -> Key {
    let mut rk = [_mm_setzero_si128(); 15];
    let rounds;
    if key.len() == 16 {
        rounds = 10;
        let mut k = load_partial(key);
        rk[0] = k;
        macro_rules! r128 {
            ($i:expr, $rcon:expr) => {
                k = step128(k, _mm_aeskeygenassist_si128::<$rcon>(k));
                rk[$i] = k;
            };
        }
        r128!(1, 0x01);
        r128!(2, 0x02);
        r128!(3, 0x04);
        r128!(4, 0x08);
        r128!(5, 0x10);
        r128!(6, 0x20);
        r128!(7, 0x40);
        r128!(8, 0x80);
        r128!(9, 0x1b);
        r128!(10, 0x36);
    } else {
        rounds = 14;
        let mut a = load_partial(&key[..16]);
        let mut b = load_partial(&key[16..]);
        rk[0] = a;
        rk[1] = b;
        macro_rules! r256 {
            ($i:expr, $rcon:expr) => {
                a = step128(a, _mm_aeskeygenassist_si128::<$rcon>(b));
                rk[$i] = a;
                b = step256b(b, _mm_aeskeygenassist_si128::<0>(a));
                rk[$i + 1] = b;
            };
        }
        r256!(2, 0x01);
        r256!(4, 0x02);
        r256!(6, 0x04);
        r256!(8, 0x08);
        r256!(10, 0x10);
        r256!(12, 0x20);
        // The last round key needs only the first half-step.
        rk[14] = step128(a, _mm_aeskeygenassist_si128::<0x40>(b));
    }
    // H = E(K, 0¹²⁸), then H' = mulX(ByteReverse(H)) and its powers.
    let mut x = [_mm_setzero_si128()];
    aes_blocks_dyn(&rk, rounds, &mut x);
    let h1 = mul_x(bswap(x[0]));
    let mut h = [h1; 8];
    for i in 1..8 {
        h[i] = gf_mul(h[i - 1], h1);
    }
    Key { rk, rounds, h }
}

/// x · a in POLYVAL's field (a shift, and P folded in when x¹²⁷ carries out).
#[inline]
#[target_feature(enable = "sse2")]
fn mul_x(a: __m128i) -> __m128i {
    let lo = _mm_cvtsi128_si64(a) as u64;
    let hi = _mm_cvtsi128_si64(_mm_unpackhi_epi64(a, a)) as u64;
    let v = (u128::from(hi) << 64) | u128::from(lo);
    let mut r = v << 1;
    if v >> 127 == 1 {
        r ^= (1u128 << 127) | (1u128 << 126) | (1u128 << 121) | 1;
    }
    _mm_set_epi64x((r >> 64) as u64 as i64, r as u64 as i64)
}

/// AES encryption of a few blocks with a run-time round count (key setup only).
#[target_feature(enable = "aes")]
fn aes_blocks_dyn<const N: usize>(rk: &[__m128i; 15], rounds: usize, x: &mut [__m128i; N]) {
    for s in x.iter_mut() {
        *s = _mm_xor_si128(*s, rk[0]);
    }
    for k in &rk[1..rounds] {
        for s in x.iter_mut() {
            *s = _mm_aesenc_si128(*s, *k);
        }
    }
    for s in x.iter_mut() {
        *s = _mm_aesenclast_si128(*s, rk[rounds]);
    }
}

// ---------------------------------------------------------------------------------------------
// AES and counter blocks.

/// AES encryption of `N` independent blocks, interleaved round by round.
#[inline]
#[target_feature(enable = "aes")]
fn aes_blocks<const NR: usize, const N: usize>(rk: &[__m128i; 15], x: &mut [__m128i; N]) {
    for s in x.iter_mut() {
        *s = _mm_xor_si128(*s, rk[0]);
    }
    for k in &rk[1..NR] {
        for s in x.iter_mut() {
            *s = _mm_aesenc_si128(*s, *k);
        }
    }
    for s in x.iter_mut() {
        *s = _mm_aesenclast_si128(*s, rk[NR]);
    }
}

/// The counter block `nonce ‖ BE32(c)`: `base` holds the nonce in bytes 0..12.
#[inline]
#[target_feature(enable = "sse4.1")]
fn ctr_block(base: __m128i, c: u32) -> __m128i {
    _mm_insert_epi32::<3>(base, c.swap_bytes() as i32)
}

/// The nonce in the first 12 bytes of a block.
#[inline]
#[target_feature(enable = "sse2")]
fn nonce_base(nonce: &[u8; 12]) -> __m128i {
    load_partial(nonce)
}

// ---------------------------------------------------------------------------------------------
// GHASH (as POLYVAL).

/// An unreduced 256-bit sum of products: low, middle (cross terms) and high 128 bits.
#[derive(Clone, Copy)]
struct Wide {
    lo: __m128i,
    mid: __m128i,
    hi: __m128i,
}

/// Adds the carry-less product a·b to `w`.
#[inline]
#[target_feature(enable = "pclmulqdq")]
fn mul_acc(w: &mut Wide, a: __m128i, b: __m128i) {
    w.lo = _mm_xor_si128(w.lo, _mm_clmulepi64_si128::<0x00>(a, b));
    w.hi = _mm_xor_si128(w.hi, _mm_clmulepi64_si128::<0x11>(a, b));
    w.mid = _mm_xor_si128(w.mid, _mm_clmulepi64_si128::<0x01>(a, b));
    w.mid = _mm_xor_si128(w.mid, _mm_clmulepi64_si128::<0x10>(a, b));
}

/// Montgomery reduction: the 256-bit `w` times x⁻¹²⁸ modulo P. Two steps, each cancelling 64
/// low bits by adding a multiple of P (P ≡ 1 mod x⁶⁴, and P − 1 − x¹²⁸ = x⁶⁴·c).
#[inline]
#[target_feature(enable = "pclmulqdq,sse2")]
fn reduce(w: Wide) -> __m128i {
    let lo = _mm_xor_si128(w.lo, _mm_slli_si128::<8>(w.mid));
    let hi = _mm_xor_si128(w.hi, _mm_srli_si128::<8>(w.mid));
    let c = _mm_set_epi64x(0, 0xc200_0000_0000_0000u64 as i64);
    // Step 1: word 0 (W0) times c lands on words 1–2; W0 itself moves to word 2.
    let q = _mm_clmulepi64_si128::<0x00>(lo, c);
    let m = _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(lo), q);
    // Step 2: the new word 1 likewise onto words 2–3.
    let q = _mm_clmulepi64_si128::<0x00>(m, c);
    _mm_xor_si128(hi, _mm_xor_si128(_mm_shuffle_epi32::<0x4e>(m), q))
}

/// a·b·x⁻¹²⁸ (one POLYVAL multiplication).
#[inline]
#[target_feature(enable = "pclmulqdq,sse2")]
fn gf_mul(a: __m128i, b: __m128i) -> __m128i {
    let z = _mm_setzero_si128();
    let mut w = Wide {
        lo: z,
        mid: z,
        hi: z,
    };
    mul_acc(&mut w, a, b);
    reduce(w)
}

/// GHASH(H, A, C) in POLYVAL order (byte-reverse it for the tag).
///
/// The blocks (A and C zero-padded, then the lengths) form chunks: the first takes `n mod 8`
/// blocks (or 8), every later one 8. Each block is multiplied by the power of H its distance to
/// the end of its chunk calls for, the products summed unreduced and the sum reduced once per
/// chunk; the reduced value joins the next chunk's first block. One function with the state in
/// locals (a macro per block), so the accumulators stay in registers.
#[inline]
#[target_feature(enable = "pclmulqdq,ssse3")]
// The last block's bookkeeping (a fresh chunk after the final reduction) is never read.
#[allow(unused_assignments)]
fn ghash(h: &[__m128i; 8], aad: &[u8], ct: &[u8]) -> __m128i {
    let n = ghash_blocks(aad, ct);
    let z = _mm_setzero_si128();
    let mut w = Wide {
        lo: z,
        mid: z,
        hi: z,
    };
    // The running value, zero except before a chunk's first block.
    let mut s = z;
    // Blocks left in the current chunk.
    let mut rem = (n - 1) % 8 + 1;
    macro_rules! push {
        ($x:expr) => {{
            let x = _mm_xor_si128($x, s);
            s = z;
            mul_acc(&mut w, x, h[(rem - 1) & 7]);
            rem -= 1;
            if rem == 0 {
                s = reduce(w);
                w = Wide {
                    lo: z,
                    mid: z,
                    hi: z,
                };
                rem = 8;
            }
        }};
    }
    let (blocks, tail) = aad.as_chunks::<16>();
    for x in blocks {
        push!(bswap(load(x)));
    }
    if !tail.is_empty() {
        push!(bswap(load_partial(tail)));
    }
    let (mut blocks, tail) = ct.as_chunks::<16>();
    while let Some((x, rest)) = blocks.split_first() {
        if rem == 8 {
            if let Some((eight, rest)) = blocks.split_first_chunk::<8>() {
                // A whole chunk: fixed powers, one reduction.
                let x0 = _mm_xor_si128(bswap(load(&eight[0])), s);
                mul_acc(&mut w, x0, h[7]);
                for (x, hp) in eight[1..].iter().zip(h[..7].iter().rev()) {
                    mul_acc(&mut w, bswap(load(x)), *hp);
                }
                s = reduce(w);
                w = Wide {
                    lo: z,
                    mid: z,
                    hi: z,
                };
                blocks = rest;
                continue;
            }
        }
        push!(bswap(load(x)));
        blocks = rest;
    }
    if !tail.is_empty() {
        push!(bswap(load_partial(tail)));
    }
    // The lengths block BE64(bits of A) ‖ BE64(bits of C), byte-reversed: C's in the low half.
    push!(_mm_set_epi64x(
        (aad.len() as u64).wrapping_mul(8) as i64,
        (ct.len() as u64).wrapping_mul(8) as i64,
    ));
    // The lengths block ends the last chunk: `s` holds the reduced result.
    s
}

/// GHASH blocks of a message: AAD and ciphertext zero-padded, and the lengths block.
#[inline(always)]
fn ghash_blocks(aad: &[u8], ct: &[u8]) -> usize {
    aad.len().div_ceil(16) + ct.len().div_ceil(16) + 1
}

/// For a message of at most 8 GHASH blocks (one chunk): the unreduced sum of its blocks times
/// H^n…H¹. Reducing it ([`reduce`]) gives [`ghash`]; a group of small packets computes every
/// sum first and then the reductions back to back, so their latencies overlap.
#[inline]
#[target_feature(enable = "pclmulqdq,ssse3")]
fn ghash_unreduced(h: &[__m128i; 8], aad: &[u8], ct: &[u8]) -> Wide {
    let z = _mm_setzero_si128();
    let mut w = Wide {
        lo: z,
        mid: z,
        hi: z,
    };
    // The power for the next block: H^i, counting down to H¹ for the lengths block.
    let mut i = ghash_blocks(aad, ct);
    macro_rules! push {
        ($x:expr) => {{
            i -= 1;
            mul_acc(&mut w, $x, h[i & 7]);
        }};
    }
    for bytes in [aad, ct] {
        let (blocks, tail) = bytes.as_chunks::<16>();
        for x in blocks {
            push!(bswap(load(x)));
        }
        if !tail.is_empty() {
            push!(bswap(load_partial(tail)));
        }
    }
    push!(_mm_set_epi64x(
        (aad.len() as u64).wrapping_mul(8) as i64,
        (ct.len() as u64).wrapping_mul(8) as i64,
    ));
    w
}

/// GHASH of every valid job of a group, in POLYVAL order: small messages as unreduced sums
/// first and their reductions after, others one by one.
#[inline]
#[target_feature(enable = "pclmulqdq,ssse3")]
fn ghash_group(h: &[__m128i; 8], jobs: &[Job<'_>], valid: &[bool; LANES]) -> [__m128i; LANES] {
    let z = _mm_setzero_si128();
    let mut s = [z; LANES];
    let mut w = [Wide {
        lo: z,
        mid: z,
        hi: z,
    }; LANES];
    let mut small = [false; LANES];
    for (l, j) in jobs.iter().enumerate().take(LANES) {
        if !valid[l] {
            continue;
        }
        if ghash_blocks(j.aad, j.data) <= 8 {
            small[l] = true;
            w[l] = ghash_unreduced(h, j.aad, j.data);
        } else {
            s[l] = ghash(h, j.aad, j.data);
        }
    }
    for l in 0..LANES {
        if small[l] {
            s[l] = reduce(w[l]);
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Counter mode over a group of packets.

/// Where a queued block's keystream goes.
#[derive(Clone, Copy, Default)]
struct Slot {
    lane: u8,
    /// 0: the tag mask E(J0); b ≥ 1: data block b − 1.
    block: u32,
}

/// The queue of blocks of several packets that share the pipeline.
struct Queue {
    ctr: [__m128i; W],
    slot: [Slot; W],
    n: usize,
}

/// Counter mode over every valid job of a group (encrypts or decrypts in place); the tag
/// masks E(J0) go to `ej0`.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1")]
fn ctr_group<const NR: usize>(
    key: &Key,
    jobs: &mut [Job<'_>],
    valid: &[bool; LANES],
    ej0: &mut [__m128i; LANES],
) {
    let rk = &key.rk;
    // Packets of the same few blocks (a frame of small packets): row by row, block b of every
    // packet together, with no queue to keep.
    let nb = jobs.first().map_or(0, |j| j.data.len().div_ceil(16));
    if nb < 8
        && jobs
            .iter()
            .zip(valid)
            .all(|(j, &v)| v && j.data.len().div_ceil(16) == nb)
    {
        // As many AES chains as packets (a lone packet must not pay for eight).
        match jobs.len() {
            1 => ctr_rows::<NR, 1>(rk, jobs, nb, ej0),
            2 => ctr_rows::<NR, 2>(rk, jobs, nb, ej0),
            3 | 4 => ctr_rows::<NR, 4>(rk, jobs, nb, ej0),
            _ => ctr_rows::<NR, LANES>(rk, jobs, nb, ej0),
        }
        return;
    }
    let mut q = Queue {
        ctr: [_mm_setzero_si128(); W],
        slot: [Slot::default(); W],
        n: 0,
    };
    for l in 0..jobs.len() {
        if !valid[l] {
            continue;
        }
        let base = nonce_base(&jobs[l].nonce);
        let len = jobs[l].data.len();
        let nblocks = len.div_ceil(16);
        // Runs of eight whole blocks of this packet go straight through.
        let runs = (len / 16) / 8;
        let (blocks, _) = jobs[l].data.as_chunks_mut::<16>();
        let (eights, _) = blocks.as_chunks_mut::<8>();
        for (r, e) in eights.iter_mut().enumerate().take(runs) {
            let c0 = 2 + (r * 8) as u32;
            let mut x = [_mm_setzero_si128(); 8];
            for (i, xi) in x.iter_mut().enumerate() {
                *xi = ctr_block(base, c0 + i as u32);
            }
            aes_blocks::<NR, 8>(rk, &mut x);
            for (b, xi) in e.iter_mut().zip(x) {
                store(b, _mm_xor_si128(load(b), xi));
            }
        }
        // The rest, and the tag mask, share the queue with the other packets.
        for block in core::iter::once(0).chain(runs * 8 + 1..nblocks + 1) {
            q.ctr[q.n] = ctr_block(base, block as u32 + 1);
            q.slot[q.n] = Slot {
                lane: l as u8,
                block: block as u32,
            };
            q.n += 1;
            if q.n == W {
                flush::<NR>(rk, &mut q, jobs, ej0);
            }
        }
    }
    if q.n > 0 {
        flush::<NR>(rk, &mut q, jobs, ej0);
    }
}

/// Counter mode for up to `N` packets of `nb` (< 8) blocks each: row 0 the tag masks, row
/// b ≥ 1 every packet's block b − 1, `N` AES chains per row.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1")]
fn ctr_rows<const NR: usize, const N: usize>(
    rk: &[__m128i; 15],
    jobs: &mut [Job<'_>],
    nb: usize,
    ej0: &mut [__m128i; LANES],
) {
    let mut base = [_mm_setzero_si128(); N];
    for (b, j) in base.iter_mut().zip(jobs.iter()) {
        *b = nonce_base(&j.nonce);
    }
    let mut x = [_mm_setzero_si128(); N];
    for (xi, b) in x.iter_mut().zip(base) {
        *xi = ctr_block(b, 1);
    }
    aes_blocks::<NR, N>(rk, &mut x);
    for (e, xi) in ej0.iter_mut().zip(x) {
        *e = xi;
    }
    for row in 0..nb {
        for (xi, b) in x.iter_mut().zip(base) {
            *xi = ctr_block(b, row as u32 + 2);
        }
        aes_blocks::<NR, N>(rk, &mut x);
        for (j, ks) in jobs.iter_mut().zip(x) {
            let Some(data) = j.data.get_mut(row * 16..) else {
                continue;
            };
            match data.first_chunk_mut::<16>() {
                Some(b) => store(b, _mm_xor_si128(load(b), ks)),
                None => store_partial(data, _mm_xor_si128(load_partial(data), ks)),
            }
        }
    }
}

/// Runs the queued blocks through AES and delivers each keystream block.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1")]
fn flush<const NR: usize>(
    rk: &[__m128i; 15],
    q: &mut Queue,
    jobs: &mut [Job<'_>],
    ej0: &mut [__m128i; LANES],
) {
    let mut x = q.ctr;
    aes_blocks::<NR, W>(rk, &mut x);
    for (s, ks) in q.slot[..q.n].iter().zip(x) {
        let l = s.lane as usize;
        if s.block == 0 {
            ej0[l] = ks;
            continue;
        }
        let off = (s.block as usize - 1) * 16;
        let Some(data) = jobs.get_mut(l).and_then(|j| j.data.get_mut(off..)) else {
            continue;
        };
        match data.first_chunk_mut::<16>() {
            Some(b) => store(b, _mm_xor_si128(load(b), ks)),
            // The packet's last, partial block.
            None => store_partial(data, _mm_xor_si128(load_partial(data), ks)),
        }
    }
    q.n = 0;
}

/// Which jobs of a group GCM can take (lengths within its limits).
#[inline(always)]
fn validate(jobs: &[Job<'_>]) -> [bool; LANES] {
    let mut v = [false; LANES];
    for (v, j) in v.iter_mut().zip(jobs) {
        *v = j.data.len() <= MAX_DATA && j.aad.len() <= MAX_AAD;
    }
    v
}

/// Seals up to [`LANES`] jobs: counter mode for all, then each one's GHASH and tag.
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
fn seal_group<const NR: usize>(key: &Key, jobs: &mut [Job<'_>]) {
    let valid = validate(jobs);
    let mut ej0 = [_mm_setzero_si128(); LANES];
    ctr_group::<NR>(key, jobs, &valid, &mut ej0);
    let s = ghash_group(&key.h, jobs, &valid);
    for (l, j) in jobs.iter_mut().enumerate() {
        if !valid[l] {
            // Beyond GCM's limits: nothing readable leaves, and the job says it failed.
            j.data.fill(0);
            j.tag = [0; 16];
            j.ok = false;
            continue;
        }
        store(&mut j.tag, _mm_xor_si128(bswap(s[l]), ej0[l]));
        j.ok = true;
    }
}

/// Opens up to [`LANES`] jobs: each one's GHASH over its ciphertext, counter mode for all,
/// then the tag comparisons (constant time in the tag's contents).
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
fn open_group<const NR: usize>(key: &Key, jobs: &mut [Job<'_>]) {
    let valid = validate(jobs);
    let s = ghash_group(&key.h, jobs, &valid);
    let mut ej0 = [_mm_setzero_si128(); LANES];
    ctr_group::<NR>(key, jobs, &valid, &mut ej0);
    for (l, j) in jobs.iter_mut().enumerate() {
        let want = _mm_xor_si128(bswap(s[l]), ej0[l]);
        let eq = _mm_movemask_epi8(_mm_cmpeq_epi8(want, load(&j.tag)));
        j.ok = valid[l] && eq == 0xffff;
    }
}
