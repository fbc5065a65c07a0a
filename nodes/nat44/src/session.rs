//! NAT44 sessions: one table per worker, shared by the worker's NAT nodes (through the runtime's
//! worker-local state), sized once.
//!
//! A session holds two flows: `i`, the flow as it arrived from its initiator, and `o`, what
//! that flow is translated to. A packet of the forward direction matches `i` and becomes `o`;
//! a packet of the reverse direction matches `o` reversed and becomes `i` reversed. The index
//! (open addressing, linear probing, backward-shift deletion) holds both keys of every
//! session, so one probe finds either direction. Expiry is the runtime's timer wheel on the
//! injected clock; a lookup never returns a session whose time has passed, reclaimed or not.

use crate::flow::{proto, Flow};
use crate::ports::PortMap;
use crate::tables::{flow_owner, Nat44Tables};
use std::time::Duration;
use vpg_graph::timer_wheel::{Check, TimerWheel};

/// Session timeouts (VPP's nat44-ed defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// UDP and every protocol without its own timeout.
    pub udp: Duration,
    /// TCP with SYNs seen both ways and no FIN or RST.
    pub tcp_established: Duration,
    /// TCP opening or closing.
    pub tcp_transitory: Duration,
    /// ICMP.
    pub icmp: Duration,
}

impl Timeouts {
    /// UDP, TCP established, TCP transitory and ICMP in nanoseconds (no 128-bit arithmetic on
    /// the packet path).
    pub fn as_nanos(&self) -> [u64; 4] {
        [
            self.udp,
            self.tcp_established,
            self.tcp_transitory,
            self.icmp,
        ]
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            udp: Duration::from_secs(300),
            tcp_established: Duration::from_secs(7440),
            tcp_transitory: Duration::from_secs(240),
            icmp: Duration::from_secs(60),
        }
    }
}

/// What made a session, which decides the node that translates each direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Not in use.
    #[default]
    Free,
    /// Dynamic SNAT from the address pool (made by `nat44-in2out`).
    Dynamic,
    /// SNAT by a static mapping's external address (made by `nat44-in2out`).
    Static,
    /// Destination NAT by a static or load-balanced mapping (made by `nat44-out2in`).
    Dnat,
    /// A load-balanced mapping whose endpoint is the client itself: the source becomes the NAT
    /// loopback address too (made by `nat44-out2in`).
    Loopback,
}

impl Kind {
    /// Whether `nat44-in2out` made it (its forward direction is translated there, after
    /// routing; the reverse on input).
    pub fn is_snat(self) -> bool {
        matches!(self, Kind::Dynamic | Kind::Static)
    }

    /// Name in dumps.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Free => "free",
            Kind::Dynamic => "dynamic",
            Kind::Static => "static",
            Kind::Dnat => "dnat",
            Kind::Loopback => "loopback",
        }
    }
}

/// Which key of a session a packet matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// From the initiator (`i`).
    Fwd,
    /// Towards the initiator (`o` reversed).
    Rev,
}

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// Whether TCP `flags` open a new connection (SYN without ACK).
#[inline]
pub fn is_syn(flags: u8) -> bool {
    flags & (TCP_SYN | TCP_ACK) == TCP_SYN
}

/// What a lookup found for a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A live session this node translates in this direction.
    Hit(u32, Dir),
    /// A session another node translates (the packet passes here untouched).
    Elsewhere,
    /// No usable session.
    Miss,
}

/// One session: a cache line.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
pub struct Session {
    /// The flow as the initiator sent it.
    pub i: Flow,
    /// What it is translated to.
    pub o: Flow,
    /// Last packet (ns).
    pub last: u64,
    /// Bytes, both directions.
    pub bytes: u64,
    /// Packets forward and reverse.
    pub packets: [u32; 2],
    /// Created (s).
    pub created_s: u32,
    /// What made it.
    pub kind: Kind,
    /// TCP flags seen forward and reverse.
    pub tcp: [u8; 2],
}

impl Session {
    /// TCP with SYNs both ways and no FIN or RST.
    pub fn established(&self) -> bool {
        self.tcp[0] & TCP_SYN != 0 && self.tcp[1] & TCP_SYN != 0 && !self.closing()
    }

    /// TCP with a FIN or RST seen.
    pub fn closing(&self) -> bool {
        (self.tcp[0] | self.tcp[1]) & (TCP_FIN | TCP_RST) != 0
    }

    /// Which of [`Timeouts::as_nanos`] applies.
    #[inline]
    pub fn timeout_class(&self) -> usize {
        match self.i.proto {
            proto::TCP if self.established() => 1,
            proto::TCP => 2,
            proto::ICMP => 3,
            _ => 0,
        }
    }

    /// Whether it has timed out at `now` (ns) under timeouts `ns` ([`Timeouts::as_nanos`]).
    #[inline]
    pub fn expired_ns(&self, ns: &[u64; 4], now: u64) -> bool {
        now >= self.last.saturating_add(ns[self.timeout_class()])
    }

    /// Its timeout under `t`.
    pub fn timeout(&self, t: &Timeouts) -> Duration {
        match self.i.proto {
            proto::TCP if self.established() => t.tcp_established,
            proto::TCP => t.tcp_transitory,
            proto::ICMP => t.icmp,
            _ => t.udp,
        }
    }

    /// Whether it has timed out at `now` (ns).
    #[inline]
    pub fn expired(&self, t: &Timeouts, now: u64) -> bool {
        now >= self.last.saturating_add(self.timeout(t).as_nanos() as u64)
    }

    /// State name for dumps.
    pub fn state(&self) -> &'static str {
        match self.i.proto {
            proto::TCP if self.established() => "established",
            proto::TCP if self.closing() => "closing",
            proto::TCP => "transitory",
            _ => "active",
        }
    }

    /// The flow a packet of direction `d` becomes.
    #[inline]
    pub fn target(&self, d: Dir) -> Flow {
        match d {
            Dir::Fwd => self.o,
            Dir::Rev => self.i.reverse(),
        }
    }
}

/// Protocol classes counted per worker.
pub const PROTO_CLASSES: [&str; 4] = ["tcp", "udp", "icmp", "other"];

/// The protocol class index of `p`.
#[inline]
pub fn proto_class(p: u8) -> usize {
    match p {
        proto::TCP => 0,
        proto::UDP => 1,
        proto::ICMP => 2,
        _ => 3,
    }
}

/// Reverse-key index entries are 32 bits: an 8-bit hash tag and a 24-bit session slot.
type Entry = u32;
const EMPTY: Entry = Entry::MAX;
const SLOT_MASK: Entry = (1 << 24) - 1;
/// Most sessions per worker (the session slots, twice as many, must fit 24 bits with the
/// all-ones value unused).
pub const MAX_SESSIONS: usize = 1 << 22;

#[inline(always)]
fn tag_of(h: u64) -> Entry {
    (h >> 56) as Entry
}

/// Why a session could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The worker's table is full of live sessions.
    Full,
    /// The inside address has its limit of sessions.
    AddressLimit,
}

/// Sessions per inside address: a fixed-size open-addressing map (no allocation once built).
struct AddressCounts {
    slots: Vec<(u32, u32)>,
    mask: usize,
}

impl AddressCounts {
    const NONE: u32 = 0;

    fn new(capacity: usize) -> Self {
        let n = (capacity * 2).next_power_of_two().max(16);
        Self {
            slots: vec![(0, Self::NONE); n],
            mask: n - 1,
        }
    }

    #[inline]
    fn home(&self, a: u32) -> usize {
        (a.wrapping_mul(0x9e37_79b9) as usize ^ (a >> 16) as usize) & self.mask
    }

    fn get(&self, a: u32) -> u32 {
        let mut i = self.home(a);
        loop {
            let (k, n) = self.slots[i];
            if n == Self::NONE {
                return 0;
            }
            if k == a {
                return n;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn incr(&mut self, a: u32) {
        let mut i = self.home(a);
        loop {
            let (k, n) = self.slots[i];
            if n == Self::NONE {
                self.slots[i] = (a, 1);
                return;
            }
            if k == a {
                self.slots[i].1 += 1;
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    fn decr(&mut self, a: u32) {
        let mut i = self.home(a);
        loop {
            let (k, n) = self.slots[i];
            if n == Self::NONE {
                return;
            }
            if k == a {
                break;
            }
            i = (i + 1) & self.mask;
        }
        self.slots[i].1 -= 1;
        if self.slots[i].1 > 0 {
            return;
        }
        // Backward-shift deletion.
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        loop {
            let (k, n) = self.slots[j];
            if n == Self::NONE {
                break;
            }
            let h = self.home(k);
            if (j.wrapping_sub(h) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.slots[hole] = (0, Self::NONE);
    }
}

/// A large table: on (transparent) huge pages, or a plain `Vec` when no mapping can be made.
enum Table<T> {
    Huge(vpg_graph::sys::HugeArray<T>),
    Plain(Vec<T>),
}

fn table<T: Clone>(len: usize, v: T) -> Table<T> {
    match vpg_graph::sys::HugeArray::new(len, v.clone()) {
        Ok(a) => Table::Huge(a),
        Err(_) => Table::Plain(vec![v; len]),
    }
}

impl<T> std::ops::Deref for Table<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Table::Huge(a) => a,
            Table::Plain(v) => v,
        }
    }
}

impl<T> std::ops::DerefMut for Table<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Table::Huge(a) => a,
            Table::Plain(v) => v,
        }
    }
}

/// One worker's sessions.
///
/// Sessions live in an open-addressing table keyed by their forward flow (`i`): a forward
/// lookup reads the session's own line and nothing else, so the prefetch needs no dependent
/// load. Reverse keys (`o` reversed) sit in a separate index of 32-bit entries pointing at the
/// session's slot. Deletion shifts later sessions of the same cluster back (no tombstones), and
/// a moved session takes its reverse entry and timer with it. A session's number is its slot:
/// it can change when another session is deleted.
pub struct SessionTable {
    sessions: Table<Session>,
    smask: usize,
    limit: usize,
    index: Table<Entry>,
    mask: usize,
    wheel: TimerWheel,
    per_address: AddressCounts,
    /// Timeouts in force.
    timeouts: Timeouts,
    timeouts_ns: [u64; 4],
    /// Most sessions per inside address (0: no limit but the table's).
    pub max_per_address: u32,
    /// Configuration generation the sessions were checked against.
    pub generation: u64,
    /// Port use of this worker's slice.
    pub ports: PortMap,
    live: usize,
    by_proto: [usize; 4],
}

impl SessionTable {
    /// A table for at most `limit` sessions, its clock starting at `now` (ns).
    pub fn new(limit: usize, timeouts: Timeouts, now: u64) -> Self {
        let limit = limit.clamp(1, MAX_SESSIONS);
        // Both tables at most half full: with one cache line per session slot, a second probe
        // is a second miss, so the load is kept low (measured: at 1M sessions a table at most
        // two-thirds full cost 205–211 clocks per hit against 157–173 at most half full).
        let nslots = (limit * 2).next_power_of_two();
        let slots = (limit * 2).next_power_of_two();
        Self {
            sessions: table(nslots, Session::default()),
            smask: nslots - 1,
            limit,
            index: table(slots, EMPTY),
            mask: slots - 1,
            wheel: TimerWheel::new(nslots, now),
            per_address: AddressCounts::new(limit),
            timeouts,
            timeouts_ns: timeouts.as_nanos(),
            max_per_address: 0,
            generation: 0,
            ports: PortMap::default(),
            live: 0,
            by_proto: [0; 4],
        }
    }

    /// Sets the timeouts.
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.timeouts = t;
        self.timeouts_ns = t.as_nanos();
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Whether session `x` has timed out at `now`.
    #[inline]
    pub fn expired(&self, x: &Session, now: u64) -> bool {
        x.expired_ns(&self.timeouts_ns, now)
    }

    /// Most sessions.
    pub fn capacity(&self) -> usize {
        self.limit
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Live sessions per protocol class ([`PROTO_CLASSES`]).
    pub fn by_proto(&self) -> [usize; 4] {
        self.by_proto
    }

    /// Sessions of inside address `a` (SNAT sessions only).
    pub fn of_address(&self, a: u32) -> u32 {
        self.per_address.get(a)
    }

    /// The reverse key of the session a reverse-index entry points at.
    #[inline]
    fn rev_key_of(&self, e: Entry) -> Option<Flow> {
        let x = self.sessions.get((e & SLOT_MASK) as usize)?;
        Some(x.o.reverse())
    }

    /// The session and direction `f` matches, whether or not it has timed out.
    #[inline]
    pub fn find(&self, f: &Flow) -> Option<(u32, Dir)> {
        self.find_hashed(f, f.hash())
    }

    /// [`Self::find`] with `f.hash()` already computed.
    #[inline]
    pub fn find_hashed(&self, f: &Flow, h: u64) -> Option<(u32, Dir)> {
        self.find_forward(f, h)
            .map(|s| (s, Dir::Fwd))
            .or_else(|| self.find_reverse(f, h).map(|s| (s, Dir::Rev)))
    }

    /// [`Self::find_hashed`] looking at the reverse keys first (return traffic).
    #[inline]
    pub fn find_hashed_reverse_first(&self, f: &Flow, h: u64) -> Option<(u32, Dir)> {
        self.find_reverse(f, h)
            .map(|s| (s, Dir::Rev))
            .or_else(|| self.find_forward(f, h).map(|s| (s, Dir::Fwd)))
    }

    /// The session whose forward flow is `f`.
    #[inline]
    fn find_forward(&self, f: &Flow, h: u64) -> Option<u32> {
        let mut i = h as usize & self.smask;
        loop {
            let x = self.sessions.get(i)?;
            if x.kind == Kind::Free {
                return None;
            }
            if x.i.same(f) {
                return Some(i as u32);
            }
            i = (i + 1) & self.smask;
        }
    }

    /// The session whose reverse key (`o` reversed) is `f`.
    #[inline]
    fn find_reverse(&self, f: &Flow, h: u64) -> Option<u32> {
        let tag = tag_of(h);
        let mut i = h as usize & self.mask;
        loop {
            let e = *self.index.get(i)?;
            if e == EMPTY {
                return None;
            }
            if e >> 24 == tag {
                let s = e & SLOT_MASK;
                if self
                    .sessions
                    .get(s as usize)
                    .is_some_and(|x| x.o.same_reversed(f))
                {
                    return Some(s);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Prefetches the session slot a forward flow with hash `h` starts at (the one line a
    /// forward hit reads: no dependent load).
    #[inline]
    pub fn prefetch_forward(&self, h: u64) {
        if let Some(p) = self.sessions.get(h as usize & self.smask) {
            vpg_graph::sys::prefetch(p);
        }
    }

    /// Prefetches the reverse-index slot of a flow with hash `h`.
    #[inline]
    pub fn prefetch_index(&self, h: u64) {
        if let Some(p) = self.index.get(h as usize & self.mask) {
            vpg_graph::sys::prefetch(p);
        }
    }

    /// Prefetches the session the reverse-index slot of hash `h` points at, if the slot is
    /// filled (the slot should have been prefetched a while before).
    #[inline]
    pub fn prefetch_session(&self, h: u64) {
        if let Some(&e) = self.index.get(h as usize & self.mask) {
            if e != EMPTY {
                if let Some(x) = self.sessions.get((e & SLOT_MASK) as usize) {
                    vpg_graph::sys::prefetch(x);
                }
            }
        }
    }

    /// Session `s`, if in use.
    pub fn get(&self, s: u32) -> Option<&Session> {
        self.sessions
            .get(s as usize)
            .filter(|x| x.kind != Kind::Free)
    }

    /// Records a packet of `len` bytes in direction `d` at `now`.
    #[inline]
    pub fn touch(&mut self, s: u32, d: Dir, tcp_flags: u8, len: u32, now: u64) {
        if let Some(x) = self.sessions.get_mut(s as usize) {
            x.last = now;
            x.bytes += len as u64;
            let k = (d == Dir::Rev) as usize;
            x.packets[k] = x.packets[k].wrapping_add(1);
            x.tcp[k] |= tcp_flags;
        }
    }

    /// The session for a packet of flow `f` with TCP `flags` at `now`, for a node that
    /// translates what `here` accepts. A session whose time has passed, or a TCP SYN that
    /// cannot belong to the session it matched (a SYN from the responder's side, or a new
    /// connection after a close), deletes the stale session and counts it in `stale`: an old
    /// session never rewrites unrelated later traffic.
    #[inline]
    pub fn lookup<const REVERSE_FIRST: bool>(
        &mut self,
        (f, h): (&Flow, u64),
        flags: u8,
        now: u64,
        here: impl Fn(Kind, Dir) -> bool,
        stale: &mut u64,
    ) -> Found {
        let found = if REVERSE_FIRST {
            self.find_hashed_reverse_first(f, h)
        } else {
            self.find_hashed(f, h)
        };
        let Some((s, d)) = found else {
            return Found::Miss;
        };
        let x = &self.sessions[s as usize];
        if !here(x.kind, d) {
            return Found::Elsewhere;
        }
        let reopen = f.proto == proto::TCP && is_syn(flags) && (d == Dir::Rev || x.closing());
        if x.expired_ns(&self.timeouts_ns, now) || reopen {
            self.delete(s);
            *stale += 1;
            return Found::Miss;
        }
        Found::Hit(s, d)
    }

    /// Applies hit `(s, d)` to the IPv4 packet `ip` (parsed as `p`): rewrites it to the flow
    /// the session makes of it and counts it on the session. Returns the session's kind and
    /// that flow (for the trace).
    #[inline]
    pub fn apply_hit(
        &mut self,
        ip: &mut [u8],
        p: &crate::flow::Parsed,
        (s, d): (u32, Dir),
        now: u64,
    ) -> (Kind, Flow) {
        let (to, kind) = self
            .get(s)
            .map(|x| (x.target(d), x.kind))
            .unwrap_or_default();
        crate::translate::rewrite(ip, p, &to);
        self.touch(s, d, p.tcp_flags, ip.len() as u32, now);
        (kind, to)
    }

    /// Whether `f`'s key is taken (by any session, live or not yet reclaimed).
    #[inline]
    pub fn taken(&self, f: &Flow) -> bool {
        self.find(f).is_some()
    }

    /// Whether inside address `a` may have another SNAT session.
    pub fn address_has_room(&self, a: u32) -> bool {
        self.max_per_address == 0 || self.per_address.get(a) < self.max_per_address
    }

    /// Makes a session translating `i` to `o` (neither key present). When the table is full,
    /// expired sessions are reclaimed first; live ones are never evicted.
    pub fn create(
        &mut self,
        kind: Kind,
        i: Flow,
        o: Flow,
        tcp_flags: u8,
        len: u32,
        now: u64,
    ) -> Result<u32, Refused> {
        if kind.is_snat() && !self.address_has_room(i.src) {
            return Err(Refused::AddressLimit);
        }
        if self.live >= self.limit {
            self.expire(now, usize::MAX);
            if self.live >= self.limit {
                return Err(Refused::Full);
            }
        }
        // The first free slot from the forward key's home (the table is never full).
        let mut slot = i.hash() as usize & self.smask;
        while self.sessions[slot].kind != Kind::Free {
            slot = (slot + 1) & self.smask;
        }
        let s = slot as u32;
        let x = Session {
            i,
            o,
            last: now,
            bytes: len as u64,
            packets: [1, 0],
            created_s: (now / 1_000_000_000) as u32,
            kind,
            tcp: [tcp_flags, 0],
        };
        let deadline = now.saturating_add(self.timeouts_ns[x.timeout_class()]);
        self.sessions[s as usize] = x;
        self.insert_key(&o.reverse(), s);
        self.wheel.insert(s, deadline);
        if kind.is_snat() {
            self.per_address.incr(i.src);
        }
        if kind == Kind::Dynamic {
            self.ports.take(o.src, o.proto, o.sport);
        }
        self.by_proto[proto_class(i.proto)] += 1;
        self.live += 1;
        Ok(s)
    }

    fn insert_key(&mut self, f: &Flow, v: Entry) {
        let h = f.hash();
        let mut i = h as usize & self.mask;
        while self.index[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.index[i] = tag_of(h) << 24 | v;
    }

    /// Deletes session `s`.
    pub fn delete(&mut self, s: u32) {
        if self.get(s).is_none() {
            return;
        }
        self.release(s);
    }

    /// Frees session `s` (its timer is taken off too) and shifts the rest of its cluster back.
    fn release(&mut self, s: u32) {
        let x = self.sessions[s as usize];
        self.wheel.remove(s);
        self.remove_key(&x.o.reverse(), s);
        if x.kind.is_snat() {
            self.per_address.decr(x.i.src);
        }
        if x.kind == Kind::Dynamic {
            self.ports.put(x.o.src, x.o.proto, x.o.sport);
        }
        self.by_proto[proto_class(x.i.proto)] -= 1;
        self.live -= 1;
        // Backward-shift deletion in the session table: a later session whose home is at or
        // before the hole moves into it, with its reverse entry and its timer.
        let m = self.smask;
        let mut hole = s as usize;
        let mut j = (hole + 1) & m;
        loop {
            let y = self.sessions[j];
            if y.kind == Kind::Free {
                break;
            }
            let home = y.i.hash() as usize & m;
            if (j.wrapping_sub(home) & m) >= (j.wrapping_sub(hole) & m) {
                self.sessions[hole] = y;
                self.repoint_key(&y.o.reverse(), j as u32, hole as u32);
                let linked = self.wheel.contains(j as u32);
                self.wheel.remove(j as u32);
                if linked {
                    let deadline = y.last.saturating_add(self.timeouts_ns[y.timeout_class()]);
                    self.wheel.insert(hole as u32, deadline);
                }
                hole = j;
            }
            j = (j + 1) & m;
        }
        self.sessions[hole].kind = Kind::Free;
    }

    /// Points the reverse entry of key `f` from slot `from` to slot `to`.
    fn repoint_key(&mut self, f: &Flow, from: u32, to: u32) {
        let mut i = f.hash() as usize & self.mask;
        loop {
            let e = self.index[i];
            if e == EMPTY {
                return;
            }
            if e & SLOT_MASK == from {
                self.index[i] = (e & !SLOT_MASK) | to;
                return;
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Removes the index entry `v` of key `f` with backward-shift deletion.
    fn remove_key(&mut self, f: &Flow, v: Entry) {
        let h = f.hash();
        let mut i = h as usize & self.mask;
        loop {
            let e = self.index[i];
            if e == EMPTY {
                return;
            }
            if e & SLOT_MASK == v {
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
            let home = match self.rev_key_of(e) {
                Some(k) => k.hash() as usize & self.mask,
                None => j,
            };
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.index[hole] = e;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.index[hole] = EMPTY;
    }

    /// Reclaims timed-out sessions up to `now`, checking at most `budget`; returns how many.
    pub fn expire(&mut self, now: u64, budget: usize) -> usize {
        let ns = self.timeouts_ns;
        let mut total = 0;
        let mut remaining = budget;
        while remaining > 0 {
            // The wheel decides from read-only session state; the expired ones are released
            // after each step of at most 64 (a fixed array: no allocation).
            let step = remaining.min(64);
            // Kept by forward key: releasing one may move another to a new slot.
            let mut dead = [Flow::default(); 64];
            let (mut nd, mut checked) = (0, 0);
            let sessions = &self.sessions;
            self.wheel.advance(now, step, |e| {
                checked += 1;
                match sessions.get(e as usize) {
                    Some(x) if x.kind != Kind::Free && !x.expired_ns(&ns, now) => {
                        Check::Alive(x.last.saturating_add(ns[x.timeout_class()]))
                    }
                    Some(x) if x.kind != Kind::Free => {
                        if let Some(d) = dead.get_mut(nd) {
                            *d = x.i;
                            nd += 1;
                        }
                        Check::Expired
                    }
                    _ => Check::Expired,
                }
            });
            for f in &dead[..nd] {
                if let Some(s) = self.find_forward(f, f.hash()) {
                    self.release(s);
                    total += 1;
                }
            }
            remaining -= step;
            if checked < step {
                break;
            }
        }
        total
    }

    /// Deletes every session `doomed` says must go (a configuration change took its address
    /// or mapping away); returns how many.
    pub fn purge(&mut self, mut doomed: impl FnMut(&Session) -> bool) -> usize {
        let mut n = 0;
        let mut s = 0;
        while s < self.sessions.len() {
            let x = &self.sessions[s];
            if x.kind != Kind::Free && doomed(x) {
                // A later session may shift into this slot: look at it again.
                self.release(s as u32);
                n += 1;
            } else {
                s += 1;
            }
        }
        n
    }

    /// Brings the table in line with a new snapshot: rebuilt when the session limit changed;
    /// when the pool, port range or mappings changed, the sessions that lost their address or
    /// mapping are deleted and the port counts redone. Returns the sessions dropped.
    pub fn sync(&mut self, t: &Nat44Tables, worker: usize, now: u64) -> usize {
        self.set_timeouts(t.timeouts);
        self.max_per_address = t.limits.sessions_per_address;
        if self.capacity() != t.limits.sessions_per_worker {
            let n = self.live;
            *self = SessionTable::new(t.limits.sessions_per_worker, t.timeouts, now);
            self.max_per_address = t.limits.sessions_per_address;
            self.ports = PortMap::new(&t.pool, t.slices.slice(worker));
            self.generation = t.generation;
            return n;
        }
        if self.generation == t.generation {
            return 0;
        }
        self.generation = t.generation;
        let n = self.purge(|x| !t.session_valid(x));
        self.ports = PortMap::new(&t.pool, t.slices.slice(worker));
        for s in 0..self.sessions.len() {
            let x = self.sessions[s];
            if x.kind == Kind::Dynamic {
                self.ports.take(x.o.src, x.o.proto, x.o.sport);
            }
        }
        n
    }

    /// An outside address and port for a new dynamic session of inside flow `i` on worker
    /// `worker`: the inside host's usual pool address first; its own source port if that is in
    /// this worker's slice and free towards the remote end; else a few random ports; else a
    /// port no session uses. `None` when the pool has nothing free for this remote end.
    pub fn allocate(&self, t: &Nat44Tables, i: &Flow, seed: u64) -> Option<(u32, u16)> {
        let n = t.pool.len();
        if n == 0 {
            return None;
        }
        let first = flow_owner(i.src, 0, n);
        let slice = self.ports.slice();
        for k in 0..n {
            let addr = t.pool[(first + k) % n];
            let key = |p: u16| Flow {
                src: i.dst,
                dst: addr,
                sport: i.dport,
                dport: p,
                proto: i.proto,
            };
            if !i.has_ports() {
                if !self.taken(&key(0)) {
                    return Some((addr, 0));
                }
                continue;
            }
            let ok = |p: u16| !t.reserved(addr, p, i.proto) && !self.taken(&key(p));
            if slice.contains(&(i.sport as u32)) && ok(i.sport) {
                return Some((addr, i.sport));
            }
            let len = slice.len() as u64;
            if len == 0 {
                continue;
            }
            let mut x = seed;
            for _ in 0..16 {
                x = splitmix(x);
                let p = (slice.start + (x % len) as u32) as u16;
                if ok(p) {
                    return Some((addr, p));
                }
            }
            if let Some(p) = self
                .ports
                .unused_port(addr, i.proto, x as usize, |p| !ok(p))
            {
                return Some((addr, p));
            }
        }
        None
    }

    /// A source port for a loopback session whose reverse key is `rev` with the port to be
    /// chosen as its destination port: free, not reserved, and hashing to worker `worker` of
    /// `workers` (so both directions find the same worker).
    pub fn allocate_loopback(
        &self,
        t: &Nat44Tables,
        rev: Flow,
        (worker, workers): (usize, usize),
        seed: u64,
    ) -> Option<u16> {
        let mut x = seed;
        for _ in 0..4096 {
            x = splitmix(x);
            let p = 1024 + (x % (65536 - 1024)) as u16;
            let key = Flow { dport: p, ..rev };
            if flow_owner(rev.dst, p, workers) == worker
                && !t.reserved(rev.dst, p, rev.proto)
                && !self.taken(&key)
            {
                return Some(p);
            }
        }
        None
    }

    /// Live sessions with their indices.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Session)> {
        self.sessions
            .iter()
            .enumerate()
            .filter(|(_, x)| x.kind != Kind::Free)
            .map(|(s, x)| (s as u32, x))
    }
}

#[inline]
fn splitmix(x: u64) -> u64 {
    let z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const S: u64 = 1_000_000_000;

    fn flow(src: u32, sport: u16, dst: u32, dport: u16, p: u8) -> Flow {
        Flow {
            src,
            dst,
            sport,
            dport,
            proto: p,
        }
    }

    #[test]
    fn both_directions_find_the_session_and_expiry_reclaims() {
        let mut t = SessionTable::new(8, Timeouts::default(), 0);
        let i = flow(1, 1000, 9, 53, proto::UDP);
        let o = flow(100, 2000, 9, 53, proto::UDP);
        let s = t.create(Kind::Dynamic, i, o, 0, 60, S).unwrap();
        assert_eq!(t.find(&i), Some((s, Dir::Fwd)));
        assert_eq!(t.find(&o.reverse()), Some((s, Dir::Rev)));
        assert_eq!(t.find(&o), None, "the translated flow itself is no key");
        assert_eq!(t.of_address(1), 1);
        assert_eq!(t.expire(200 * S, usize::MAX), 0);
        assert_eq!(t.expire(302 * S, usize::MAX), 1, "UDP: 300 s");
        assert!(t.is_empty());
        assert_eq!(t.find(&i), None);
        assert_eq!(t.of_address(1), 0);
    }

    #[test]
    fn tcp_timeouts_follow_state() {
        let mut t = SessionTable::new(8, Timeouts::default(), 0);
        let i = flow(1, 1000, 9, 80, proto::TCP);
        let o = flow(100, 1000, 9, 80, proto::TCP);
        let s = t.create(Kind::Dynamic, i, o, TCP_SYN, 60, 0).unwrap();
        let x = *t.get(s).unwrap();
        assert_eq!(x.state(), "transitory");
        assert!(x.expired(&t.timeouts(), 240 * S));
        t.touch(s, Dir::Rev, TCP_SYN | TCP_ACK, 60, S);
        let x = *t.get(s).unwrap();
        assert_eq!(x.state(), "established");
        assert!(!x.expired(&t.timeouts(), 7000 * S));
        assert!(x.expired(&t.timeouts(), 7441 * S));
        t.touch(s, Dir::Fwd, TCP_FIN | TCP_ACK, 60, 2 * S);
        assert_eq!(t.get(s).unwrap().state(), "closing");
    }

    #[test]
    fn limits_per_table_and_per_address() {
        let mut t = SessionTable::new(3, Timeouts::default(), 0);
        t.max_per_address = 2;
        let mk = |src, sport| (flow(src, sport, 9, 53, 17), flow(100, sport, 9, 53, 17));
        for p in 0..2 {
            let (i, o) = mk(1, p);
            t.create(Kind::Dynamic, i, o, 0, 0, 0).unwrap();
        }
        let (i, o) = mk(1, 7);
        assert_eq!(
            t.create(Kind::Dynamic, i, o, 0, 0, 0),
            Err(Refused::AddressLimit)
        );
        let (i, o) = mk(2, 7);
        t.create(Kind::Dynamic, i, o, 0, 0, 0).unwrap();
        let (i, o) = mk(3, 7);
        assert_eq!(t.create(Kind::Dynamic, i, o, 0, 0, S), Err(Refused::Full));
        // Once the old ones have timed out, a full table reclaims them for the new session.
        assert!(t.create(Kind::Dynamic, i, o, 0, 0, 400 * S).is_ok());
        assert_eq!(t.len(), 1);
    }

    proptest! {
        /// Port allocation against a model of the live sessions: a new session never gets an
        /// (address, port) already used towards the same remote end, and the per-port counts
        /// match the sessions.
        #[test]
        fn allocation_never_hands_out_a_port_in_use(
            ops in prop::collection::vec((any::<bool>(), 0u8..4, 1020u16..1034, 0u8..3, any::<u64>()), 1..200)
        ) {
            let mut c = crate::control::Nat44Control::new(1);
            for a in [0x6440_0001u32, 0x6440_0002] {
                c.add_pool(crate::control::PoolEntry::Address(std::net::Ipv4Addr::from_bits(a)), |_| true).unwrap();
            }
            c.set_port_range(1024, 1031).unwrap();
            let t = c.tables(&|_| None);
            let mut st = SessionTable::new(1024, Timeouts::default(), 0);
            st.sync(&t, 0, 0);
            let mut live: Vec<(u32, Flow, Flow)> = Vec::new();
            for (create, host, sport, remote, seed) in ops {
                if create {
                    let i = flow(0x0a00_0000 + host as u32, sport, 0x0808_0800 + remote as u32, 53, 17);
                    if st.find(&i).is_some() {
                        continue;
                    }
                    match st.allocate(&t, &i, seed) {
                        Some((a, p)) => {
                            prop_assert!((1024..=1031).contains(&p));
                            prop_assert!(
                                !live.iter().any(|(_, _, o)| o.src == a && o.sport == p && o.dst == i.dst && o.dport == i.dport),
                                "port {} of {:x} handed out twice towards {:x}", p, a, i.dst
                            );
                            let o = Flow { src: a, sport: p, ..i };
                            let s = st.create(Kind::Dynamic, i, o, 0, 0, 0).unwrap();
                            live.push((s, i, o));
                        }
                        None => {
                            // Only when every (address, port) towards this remote end is taken.
                            let used = live.iter().filter(|(_, _, o)| o.dst == i.dst).count();
                            prop_assert_eq!(used, 16);
                        }
                    }
                } else if !live.is_empty() {
                    let (s, _, _) = live.swap_remove(seed as usize % live.len());
                    st.delete(s);
                }
                for a in [0x6440_0001u32, 0x6440_0002] {
                    for p in 1024..=1031u16 {
                        let n = live.iter().filter(|(_, _, o)| o.src == a && o.sport == p).count();
                        prop_assert_eq!(st.ports.refs(a, 17, p) as usize, n);
                    }
                }
            }
        }

        /// The index against a map: creates and deletes in any order, every key of every live
        /// session found, nothing else.
        #[test]
        fn index_matches_a_model(
            ops in prop::collection::vec((0u8..3, 0u32..40), 1..300),
        ) {
            // A small table, so clusters form and deletions move sessions.
            let mut t = SessionTable::new(48, Timeouts::default(), 0);
            let mut model: HashSet<u32> = HashSet::new(); // live flow ids
            let mut now = 0;
            for (op, id) in ops {
                let i = flow(id % 5, id as u16, 7, 80, 6);
                let o = flow(100, 1000 + id as u16, 7, 80, 6);
                match op {
                    0 if !model.contains(&id) => {
                        t.create(Kind::Dynamic, i, o, 0, 0, now).unwrap();
                        model.insert(id);
                    }
                    1 if model.remove(&id) => {
                        let (s, d) = t.find(&i).unwrap();
                        prop_assert_eq!(d, Dir::Fwd);
                        t.delete(s);
                    }
                    2 => {
                        // Time passes: sessions idle for 240 s (transitory TCP) expire, and
                        // the expiry count matches what the lookups no longer find.
                        now += 100 * S;
                        let n = t.expire(now, usize::MAX);
                        let before = model.len();
                        model.retain(|&id| {
                            let i = flow(id % 5, id as u16, 7, 80, 6);
                            t.find(&i).is_some()
                        });
                        prop_assert_eq!(before - model.len(), n);
                    }
                    _ => {}
                }
                for id in 0..40u32 {
                    let i = flow(id % 5, id as u16, 7, 80, 6);
                    let o = flow(100, 1000 + id as u16, 7, 80, 6);
                    let fwd = t.find(&i);
                    let rev = t.find(&o.reverse());
                    prop_assert_eq!(fwd.is_some(), model.contains(&id));
                    prop_assert_eq!(fwd.map(|x| x.0), rev.map(|x| x.0), "both keys, one session");
                    if let Some((s, _)) = fwd {
                        prop_assert_eq!(t.get(s).map(|x| x.i), Some(i));
                    }
                }
                prop_assert_eq!(t.len(), model.len());
            }
        }
    }
}
