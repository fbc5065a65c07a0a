//! Outside ports: each worker owns a slice of the pool's port range (so the outside port of a
//! return packet names the worker that holds its session), and counts per address and
//! protocol how many sessions use each port of its slice.
//!
//! Sessions are endpoint-dependent: a port may serve several sessions as long as their remote
//! endpoints differ, and the session index decides whether a given (remote, address, port) is
//! free. The counts serve `show nat44 summary` and give the allocator its last resort: a port
//! no session uses is free for any remote.

use crate::flow::proto;
use std::ops::Range;

/// The pool's port range split among workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSlices {
    /// First port of the range.
    pub lo: u16,
    /// Ports per worker.
    pub per_worker: u16,
    /// Workers.
    pub workers: u16,
}

impl PortSlices {
    /// `lo..=hi` split among `workers` (at least one port each; the caller checked).
    pub fn new(lo: u16, hi: u16, workers: usize) -> Self {
        let workers = workers.max(1) as u32;
        let total = (hi as u32 + 1).saturating_sub(lo as u32);
        PortSlices {
            lo,
            per_worker: (total / workers).clamp(1, u16::MAX as u32) as u16,
            workers: workers as u16,
        }
    }

    /// Worker `w`'s ports.
    pub fn slice(&self, w: usize) -> Range<u32> {
        let start = (self.lo as u32 + w as u32 * self.per_worker as u32).min(65536);
        start..(start + self.per_worker as u32).min(65536)
    }

    /// The worker whose slice holds `port`, if any.
    #[inline]
    pub fn owner(&self, port: u16) -> Option<usize> {
        let off = port.checked_sub(self.lo)? as usize / self.per_worker.max(1) as usize;
        (off < self.workers as usize).then_some(off)
    }
}

/// Protocols with ports: TCP, UDP, ICMP (identifier).
fn class(p: u8) -> Option<usize> {
    match p {
        proto::TCP => Some(0),
        proto::UDP => Some(1),
        proto::ICMP => Some(2),
        _ => None,
    }
}

/// Port use of one address in one worker's slice.
#[derive(Clone, Debug)]
struct PortSet {
    addr: u32,
    refs: [Vec<u16>; 3],
    /// Bit set: no session uses the port.
    unused: [Vec<u64>; 3],
    used: [u32; 3],
}

/// One worker's port use for every pool address.
#[derive(Clone, Debug, Default)]
pub struct PortMap {
    base: u16,
    len: usize,
    sets: Vec<PortSet>,
}

impl PortMap {
    /// Port use for `addrs` over `slice`.
    pub fn new(addrs: &[u32], slice: Range<u32>) -> Self {
        let len = slice.len();
        let words = len.div_ceil(64);
        let mut unused = vec![u64::MAX; words];
        if !len.is_multiple_of(64) {
            if let Some(w) = unused.last_mut() {
                *w = (1u64 << (len % 64)) - 1;
            }
        }
        PortMap {
            base: slice.start.min(65535) as u16,
            len,
            sets: addrs
                .iter()
                .map(|&addr| PortSet {
                    addr,
                    refs: std::array::from_fn(|_| vec![0; len]),
                    unused: std::array::from_fn(|_| unused.clone()),
                    used: [0; 3],
                })
                .collect(),
        }
    }

    /// This worker's ports.
    pub fn slice(&self) -> Range<u32> {
        self.base as u32..self.base as u32 + self.len as u32
    }

    fn set(&mut self, addr: u32) -> Option<&mut PortSet> {
        self.sets.iter_mut().find(|s| s.addr == addr)
    }

    /// Records a session using `port` of `addr` (ignored outside the slice or pool).
    pub fn take(&mut self, addr: u32, p: u8, port: u16) {
        let (Some(c), Some(off)) = (class(p), port.checked_sub(self.base)) else {
            return;
        };
        let len = self.len;
        if let Some(s) = self.set(addr) {
            let off = off as usize;
            if off < len {
                if s.refs[c][off] == 0 {
                    s.unused[c][off / 64] &= !(1 << (off % 64));
                    s.used[c] += 1;
                }
                s.refs[c][off] = s.refs[c][off].saturating_add(1);
            }
        }
    }

    /// Records a session no longer using `port` of `addr`.
    pub fn put(&mut self, addr: u32, p: u8, port: u16) {
        let (Some(c), Some(off)) = (class(p), port.checked_sub(self.base)) else {
            return;
        };
        let len = self.len;
        if let Some(s) = self.set(addr) {
            let off = off as usize;
            if off < len && s.refs[c][off] > 0 {
                s.refs[c][off] -= 1;
                if s.refs[c][off] == 0 {
                    s.unused[c][off / 64] |= 1 << (off % 64);
                    s.used[c] -= 1;
                }
            }
        }
    }

    /// Sessions using `port` of `addr` for protocol `p`.
    pub fn refs(&self, addr: u32, p: u8, port: u16) -> u16 {
        let (Some(c), Some(off)) = (class(p), port.checked_sub(self.base)) else {
            return 0;
        };
        self.sets
            .iter()
            .find(|s| s.addr == addr)
            .and_then(|s| s.refs[c].get(off as usize).copied())
            .unwrap_or(0)
    }

    /// A port of `addr` that no session uses for `p`, searching from `start` (an offset into
    /// the slice) and wrapping; `skip` rejects ports reserved by static mappings.
    pub fn unused_port(
        &self,
        addr: u32,
        p: u8,
        start: usize,
        skip: impl Fn(u16) -> bool,
    ) -> Option<u16> {
        let c = class(p)?;
        let s = self.sets.iter().find(|s| s.addr == addr)?;
        let words = &s.unused[c];
        let n = words.len();
        if n == 0 {
            return None;
        }
        let first = (start % self.len.max(1)) / 64;
        for k in 0..=n {
            let w = (first + k) % n;
            let mut bits = words[w];
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let port = self.base + (w * 64 + b) as u16;
                if !skip(port) {
                    return Some(port);
                }
            }
        }
        None
    }

    /// Ports in use per address, as (address, [tcp, udp, icmp]).
    pub fn usage(&self) -> Vec<(u32, [u32; 3])> {
        self.sets.iter().map(|s| (s.addr, s.used)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_range_and_name_their_owner() {
        let s = PortSlices::new(1024, 65535, 2);
        assert_eq!(s.slice(0), 1024..33280);
        assert_eq!(s.slice(1), 33280..65536);
        assert_eq!(s.owner(1024), Some(0));
        assert_eq!(s.owner(33279), Some(0));
        assert_eq!(s.owner(33280), Some(1));
        assert_eq!(s.owner(65535), Some(1));
        assert_eq!(s.owner(80), None);
        let one = PortSlices::new(1024, 1027, 1);
        assert_eq!(one.slice(0), 1024..1028);
    }

    #[test]
    fn counts_and_the_unused_search() {
        let mut m = PortMap::new(&[7], 1024..1028);
        m.take(7, 17, 1024);
        m.take(7, 17, 1024);
        m.take(7, 17, 1025);
        assert_eq!(m.refs(7, 17, 1024), 2);
        assert_eq!(m.usage(), vec![(7, [0, 2, 0])]);
        assert_eq!(m.unused_port(7, 17, 0, |_| false), Some(1026));
        assert_eq!(m.unused_port(7, 17, 0, |p| p == 1026), Some(1027));
        assert_eq!(
            m.unused_port(7, 6, 0, |_| false),
            Some(1024),
            "per protocol"
        );
        m.take(7, 17, 1026);
        m.take(7, 17, 1027);
        assert_eq!(m.unused_port(7, 17, 0, |_| false), None);
        m.put(7, 17, 1024);
        m.put(7, 17, 1024);
        assert_eq!(m.unused_port(7, 17, 3, |_| false), Some(1024));
        assert_eq!(
            m.unused_port(8, 17, 0, |_| false),
            None,
            "not a pool address"
        );
    }
}
