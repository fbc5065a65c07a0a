//! Reflective sessions: one table per worker, shared by that worker's ACL input and output nodes
//! (through the runtime's worker-local state). A `permit+reflect` match creates a session for the
//! packet's 5-tuple on that interface; the session key is direction-free, so the flow's packets
//! in both directions on that interface pass without classification.
//!
//! The table is sized once (the per-worker session limit): a pool of sessions, an open-addressing
//! index with linear probing and backward-shift deletion, and a [`TimerWheel`] for expiry. No
//! allocation after creation; no lock (one worker owns it).

use crate::rule::{proto, PacketKey};
use crate::wheel::{Check, TimerWheel};
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Session timeouts (VPP's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP before both SYNs were seen, or after a FIN or RST.
    pub tcp_transient: Duration,
    /// TCP with both SYNs seen and no FIN or RST.
    pub tcp_established: Duration,
    /// UDP and every other protocol.
    pub udp: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_transient: Duration::from_secs(120),
            tcp_established: Duration::from_secs(24 * 3600),
            udp: Duration::from_secs(600),
        }
    }
}

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;

/// A direction-free session key: the lower (address, port) endpoint first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// Interface.
    pub sw_if: u32,
    /// Lower endpoint address.
    pub a: u32,
    /// Higher endpoint address.
    pub b: u32,
    /// Lower endpoint port.
    pub a_port: u16,
    /// Higher endpoint port.
    pub b_port: u16,
    /// Protocol.
    pub proto: u8,
}

impl SessionKey {
    /// The key of `k` on `sw_if`, and whether `k` goes from the lower endpoint to the higher.
    #[inline]
    pub fn of(sw_if: u32, k: &PacketKey) -> (SessionKey, bool) {
        // ICMP has no ports. An echo request keys as (source, identifier) -> (destination, 0)
        // and its reply as (source, 0) -> (destination, identifier), so a reply finds the
        // request's session while a request from the other side (its own identifier) does not.
        let (sp, dp) = if k.proto == proto::ICMP {
            match k.sport {
                8 => (k.icmp_id, 0),
                0 => (0, k.icmp_id),
                t => (t, k.dport),
            }
        } else {
            (k.sport, k.dport)
        };
        let fwd = (k.src, sp) <= (k.dst, dp);
        let key = if fwd {
            SessionKey {
                sw_if,
                a: k.src,
                b: k.dst,
                a_port: sp,
                b_port: dp,
                proto: k.proto,
            }
        } else {
            SessionKey {
                sw_if,
                a: k.dst,
                b: k.src,
                a_port: dp,
                b_port: sp,
                proto: k.proto,
            }
        };
        (key, fwd)
    }

    #[inline]
    fn hash(&self) -> u64 {
        let x = (self.a as u64) << 32 | self.b as u64;
        let y = (self.a_port as u64) << 48
            | (self.b_port as u64) << 32
            | (self.proto as u64) << 24
            | self.sw_if as u64 & 0xff_ffff;
        let h = (x ^ y.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ (h >> 31) ^ (self.sw_if as u64 >> 24).wrapping_mul(0xff51_afd7_ed55_8ccd)
    }
}

/// One session.
#[derive(Clone, Copy, Debug, Default)]
pub struct Session {
    /// Key.
    pub key: SessionKey,
    /// Whether the creating packet went from the key's lower endpoint to the higher.
    pub initiator_is_a: bool,
    /// TCP flags seen from the initiator and from the responder.
    pub tcp_seen: [u8; 2],
    /// Created (ns).
    pub created: u64,
    /// Last packet (ns).
    pub last: u64,
    /// Packets seen.
    pub packets: u64,
    /// Policy epoch of the interface's ACLs when the session was made (for reclassification).
    pub epoch: u32,
    in_use: bool,
}

impl Session {
    /// Whether the TCP session is established (both SYNs, no FIN or RST).
    pub fn established(&self) -> bool {
        let all = self.tcp_seen[0] | self.tcp_seen[1];
        self.tcp_seen[0] & TCP_SYN != 0
            && self.tcp_seen[1] & TCP_SYN != 0
            && all & (TCP_FIN | TCP_RST) == 0
    }

    /// Its timeout under `t`.
    pub fn timeout(&self, t: &Timeouts) -> Duration {
        if self.key.proto != proto::TCP {
            t.udp
        } else if self.established() {
            t.tcp_established
        } else {
            t.tcp_transient
        }
    }

    /// The state's name for dumps.
    pub fn state(&self) -> &'static str {
        if self.key.proto != proto::TCP {
            "active"
        } else if self.established() {
            "established"
        } else {
            "transient"
        }
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.key;
        let (src, sp, dst, dp) = if self.initiator_is_a {
            (k.a, k.a_port, k.b, k.b_port)
        } else {
            (k.b, k.b_port, k.a, k.a_port)
        };
        write!(
            f,
            "if {} proto {} {}:{} -> {}:{} {} packets {}",
            k.sw_if,
            k.proto,
            Ipv4Addr::from_bits(src),
            sp,
            Ipv4Addr::from_bits(dst),
            dp,
            self.state(),
            self.packets
        )
    }
}

const EMPTY: u64 = u64::MAX;

/// Why a session could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// The per-worker limit is reached.
    Limit,
}

/// One worker's sessions.
pub struct SessionTable {
    sessions: Vec<Session>,
    free: Vec<u32>,
    /// Slots: `hash tag << 32 | session index`, or EMPTY.
    index: Vec<u64>,
    mask: usize,
    wheel: TimerWheel,
    /// Timeouts in force.
    pub timeouts: Timeouts,
    live: usize,
}

impl SessionTable {
    /// A table for at most `limit` sessions, its clock starting at `now` (ns).
    pub fn new(limit: usize, timeouts: Timeouts, now: u64) -> Self {
        let limit = limit.max(1);
        let slots = (limit * 2).next_power_of_two();
        Self {
            sessions: vec![Session::default(); limit],
            free: (0..limit as u32).rev().collect(),
            index: vec![EMPTY; slots],
            mask: slots - 1,
            wheel: TimerWheel::new(limit, now),
            timeouts,
            live: 0,
        }
    }

    /// The limit.
    pub fn capacity(&self) -> usize {
        self.sessions.len()
    }

    /// Sessions alive.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The session with `key`.
    #[inline]
    pub fn find(&self, key: &SessionKey) -> Option<u32> {
        let h = key.hash();
        let tag = h >> 32;
        let mut i = h as usize & self.mask;
        loop {
            let e = *self.index.get(i)?;
            if e == EMPTY {
                return None;
            }
            if e >> 32 == tag {
                let s = e as u32;
                if self.sessions.get(s as usize).is_some_and(|x| x.key == *key) {
                    return Some(s);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Prefetches the index slot of `key` (the first line a `find` reads).
    #[inline]
    pub fn prefetch(&self, key: &SessionKey) {
        if let Some(p) = self.index.get(key.hash() as usize & self.mask) {
            vpg_graph::sys::prefetch(p);
        }
    }

    /// Records a packet of session `s` (direction `fwd`: from the key's lower endpoint) at `now`.
    #[inline]
    pub fn touch(&mut self, s: u32, fwd: bool, tcp_flags: u8, now: u64) {
        if let Some(x) = self.sessions.get_mut(s as usize) {
            x.last = now;
            x.packets += 1;
            let from_initiator = fwd == x.initiator_is_a;
            x.tcp_seen[usize::from(!from_initiator)] |= tcp_flags;
        }
    }

    /// The session `s`.
    pub fn get(&self, s: u32) -> Option<&Session> {
        self.sessions.get(s as usize).filter(|x| x.in_use)
    }

    /// Creates a session for `key` (not present) at `now`; when full, first reclaims what has
    /// expired.
    pub fn create(
        &mut self,
        key: SessionKey,
        fwd: bool,
        tcp_flags: u8,
        epoch: u32,
        now: u64,
    ) -> Result<u32, Full> {
        if self.free.is_empty() {
            self.expire(now, usize::MAX);
        }
        let s = self.free.pop().ok_or(Full::Limit)?;
        let x = Session {
            key,
            initiator_is_a: fwd,
            tcp_seen: [tcp_flags, 0],
            created: now,
            last: now,
            packets: 1,
            epoch,
            in_use: true,
        };
        let deadline = now + x.timeout(&self.timeouts).as_nanos() as u64;
        self.sessions[s as usize] = x;
        let h = key.hash();
        let mut i = h as usize & self.mask;
        while self.index[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.index[i] = (h >> 32) << 32 | s as u64;
        self.wheel.insert(s, deadline);
        self.live += 1;
        Ok(s)
    }

    /// Deletes session `s`.
    pub fn delete(&mut self, s: u32) {
        if self.get(s).is_none() {
            return;
        }
        self.wheel.remove(s);
        self.release(s);
    }

    /// Removes `s` from the index with backward-shift deletion (no tombstones, so lookups of
    /// absent keys stay short).
    fn unindex(&mut self, key: &SessionKey, s: u32) {
        let mut i = key.hash() as usize & self.mask;
        loop {
            let e = self.index[i];
            if e == EMPTY {
                return;
            }
            if e as u32 == s {
                break;
            }
            i = (i + 1) & self.mask;
        }
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        loop {
            let e = self.index[j];
            if e == EMPTY {
                break;
            }
            let home = self.sessions[(e as u32) as usize].key.hash() as usize & self.mask;
            // Move e into the hole if its home is not cyclically in (hole, j].
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.index[hole] = e;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.index[hole] = EMPTY;
    }

    /// Reclaims expired sessions, checking at most `budget`; returns how many expired.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let mut total = 0;
        let mut remaining = budget;
        while remaining > 0 {
            // The wheel decides with read-only session state; the expired ones are unindexed
            // after each pass of at most 64.
            let step = remaining.min(64);
            let mut dead = [0u32; 64];
            let mut nd = 0;
            let (sessions, timeouts) = (&self.sessions, &self.timeouts);
            let n = self.wheel.advance(now, step, |e| {
                let Some(x) = sessions.get(e as usize) else {
                    return Check::Expired;
                };
                let deadline = x.last + x.timeout(timeouts).as_nanos() as u64;
                if deadline <= now {
                    if let Some(d) = dead.get_mut(nd) {
                        *d = e;
                        nd += 1;
                    }
                    Check::Expired
                } else {
                    Check::Alive(deadline)
                }
            });
            for &e in &dead[..nd] {
                self.release(e);
            }
            total += n;
            remaining -= step;
            if n < step {
                break;
            }
        }
        total
    }

    /// Frees session `s`, already off the wheel.
    fn release(&mut self, s: u32) {
        let Some(x) = self.sessions.get(s as usize).copied().filter(|x| x.in_use) else {
            return;
        };
        self.unindex(&x.key, s);
        self.sessions[s as usize].in_use = false;
        self.free.push(s);
        self.live -= 1;
    }

    /// Every live session.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Session)> {
        self.sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.in_use)
            .map(|(i, s)| (i as u32, s))
    }

    /// Deletes the sessions `pred` selects; returns how many.
    pub fn clear(&mut self, mut pred: impl FnMut(&Session) -> bool) -> usize {
        let doomed: Vec<u32> = self
            .iter()
            .filter(|(_, s)| pred(s))
            .map(|(i, _)| i)
            .collect();
        for &s in &doomed {
            self.delete(s);
        }
        doomed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pk(src: u32, sp: u16, dst: u32, dp: u16, proto: u8, flags: u8) -> PacketKey {
        PacketKey {
            src,
            dst,
            sport: sp,
            dport: dp,
            proto,
            tcp_flags: flags,
            icmp_id: 0,
        }
    }

    #[test]
    fn both_directions_find_one_session() {
        let mut t = SessionTable::new(8, Timeouts::default(), 0);
        let out = pk(1, 1000, 2, 80, 6, TCP_SYN);
        let (k, fwd) = SessionKey::of(3, &out);
        let s = t.create(k, fwd, out.tcp_flags, 0, 0).unwrap();
        let back = pk(2, 80, 1, 1000, 6, TCP_SYN | 0x10);
        let (k2, fwd2) = SessionKey::of(3, &back);
        assert_eq!(k, k2);
        assert_ne!(fwd, fwd2);
        assert_eq!(t.find(&k2), Some(s));
        assert!(
            t.find(&SessionKey::of(4, &back).0).is_none(),
            "other interface"
        );
        assert!(!t.get(s).unwrap().established());
        t.touch(s, fwd2, back.tcp_flags, 1);
        assert!(t.get(s).unwrap().established());
        assert_eq!(
            t.get(s).unwrap().timeout(&t.timeouts),
            Duration::from_secs(86400)
        );
        t.touch(s, fwd, TCP_FIN, 2);
        assert_eq!(t.get(s).unwrap().state(), "transient");
    }

    #[test]
    fn icmp_echo_reply_matches_but_reverse_request_does_not() {
        let mut t = SessionTable::new(8, Timeouts::default(), 0);
        let req = PacketKey {
            icmp_id: 77,
            ..pk(1, 8, 2, 0, 1, 0)
        };
        let (k, fwd) = SessionKey::of(0, &req);
        let s = t.create(k, fwd, 0, 0, 0).unwrap();
        let reply = PacketKey {
            icmp_id: 77,
            ..pk(2, 0, 1, 0, 1, 0)
        };
        assert_eq!(t.find(&SessionKey::of(0, &reply).0), Some(s));
        let other = PacketKey {
            icmp_id: 5,
            ..pk(2, 8, 1, 0, 1, 0)
        };
        assert_eq!(t.find(&SessionKey::of(0, &other).0), None);
    }

    #[test]
    fn expiry_follows_timeouts_and_activity() {
        let sec = 1_000_000_000u64;
        let mut t = SessionTable::new(8, Timeouts::default(), 0);
        let udp = pk(1, 53, 2, 53, 17, 0);
        let (k, fwd) = SessionKey::of(0, &udp);
        let s = t.create(k, fwd, 0, 0, 0).unwrap();
        t.touch(s, fwd, 0, 500 * sec);
        assert_eq!(
            t.expire(1000 * sec, usize::MAX),
            0,
            "active at 500 s: lives to 1100 s"
        );
        assert_eq!(t.expire(1099 * sec, usize::MAX), 0);
        assert_eq!(t.expire(1100 * sec, usize::MAX), 1);
        assert!(t.find(&k).is_none());
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_reclaims_expired_then_refuses() {
        let sec = 1_000_000_000u64;
        let mut t = SessionTable::new(4, Timeouts::default(), 0);
        for i in 0..4 {
            let (k, f) = SessionKey::of(0, &pk(i, 1, 100, 2, 17, 0));
            t.create(k, f, 0, 0, 0).unwrap();
        }
        let (k, f) = SessionKey::of(0, &pk(9, 1, 100, 2, 17, 0));
        assert_eq!(t.create(k, f, 0, 0, sec), Err(Full::Limit));
        assert!(
            t.create(k, f, 0, 0, 601 * sec).is_ok(),
            "old ones expired and were reclaimed"
        );
        assert_eq!(t.len(), 1);
    }

    /// Random creates and deletes against a HashMap: the open-addressing index (with
    /// backward-shift deletion) never loses or invents a session.
    #[test]
    fn index_matches_a_reference_map() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut t = SessionTable::new(256, Timeouts::default(), 0);
        let mut m = std::collections::HashMap::new();
        for _ in 0..20_000 {
            let k = pk(
                rng.gen_range(0..40),
                rng.gen_range(0..4),
                rng.gen_range(0..40),
                7,
                17,
                0,
            );
            let (key, fwd) = SessionKey::of(rng.gen_range(0..2), &k);
            match (t.find(&key), m.get(&key)) {
                (Some(s), Some(&ms)) => {
                    assert_eq!(s, ms);
                    if rng.gen_bool(0.5) {
                        t.delete(s);
                        m.remove(&key);
                    }
                }
                (None, None) => {
                    if let Ok(s) = t.create(key, fwd, 0, 0, 0) {
                        m.insert(key, s);
                    } else {
                        assert_eq!(m.len(), 256);
                    }
                }
                (a, b) => panic!("table {a:?} vs reference {b:?} for {key:?}"),
            }
            assert_eq!(t.len(), m.len());
        }
    }
}
