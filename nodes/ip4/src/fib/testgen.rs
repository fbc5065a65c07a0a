//! Deterministic route and destination generators for tests and benchmarks (the `fib`
//! criterion bench and the `ip4-forward-*` scenarios of `vpg-bench`).
//!
//! Generation uses a self-contained SplitMix64 stream (this crate has no `rand` dependency),
//! so a seed gives the same routes on every platform and version.
//!
//! All prefixes are unicast: the first octet is in `1..=223` and is never `127`, so that
//! destinations inside them are forwarded rather than dropped as martians or multicast.

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// Upper bound on the number of routes [`random_routes`] generates (far below the number of
/// distinct unicast prefixes of length 8 to 32, so generation always terminates).
pub const MAX_ROUTES: usize = 1 << 30;

/// SplitMix64 (Steele, Lea, Flood 2014).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift.
    fn below(&mut self, n: u64) -> u64 {
        (((self.next() >> 32) * n) >> 32).min(n.saturating_sub(1))
    }

    /// A random unicast address: first octet uniform over `1..=223` without `127`.
    fn unicast(&mut self) -> u32 {
        let mut first = 1 + self.below(222) as u32;
        if first >= 127 {
            first += 1;
        }
        (first << 24) | (self.next() as u32 & 0x00ff_ffff)
    }
}

/// `min(n, MAX_ROUTES)` distinct random unicast prefixes in generation order, with lengths
/// drawn uniformly from `/8..=/32` and addresses uniformly at random (a drawn prefix that is
/// already in the set is drawn again, so the shortest lengths saturate: there are only 222
/// unicast /8s).
///
/// `n == 1` is the single-route scenario and returns one random /8.
pub fn random_routes(n: usize, seed: u64) -> Vec<(Ipv4Addr, u8)> {
    let n = n.min(MAX_ROUTES);
    let mut rng = SplitMix(seed);
    if n == 1 {
        let a = rng.unicast() & 0xff00_0000;
        return vec![(Ipv4Addr::from(a), 8)];
    }
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = 8 + rng.below(25) as u8;
        let a = rng.unicast() & (u32::MAX << (32 - u32::from(len)));
        if seen.insert((a, len)) {
            out.push((Ipv4Addr::from(a), len));
        }
    }
    out
}

/// `n` destinations (as `u32::from(Ipv4Addr)` values), each a uniformly random address inside a
/// uniformly chosen route of `routes`; empty if `routes` is empty. Prefix lengths above 32 are
/// treated as 32.
pub fn covered_destinations(routes: &[(Ipv4Addr, u8)], n: usize, seed: u64) -> Vec<u32> {
    if routes.is_empty() {
        return Vec::new();
    }
    let mut rng = SplitMix(seed ^ 0x005e_ed0f_d057);
    (0..n)
        .map(|_| {
            let (p, len) = routes[rng.below(routes.len() as u64) as usize];
            let len = u32::from(len.min(32));
            let host = if len == 0 {
                u32::MAX
            } else {
                !(u32::MAX << (32 - len))
            };
            (u32::from(p) & !host) | (rng.next() as u32 & host)
        })
        .collect()
}
