//! `acl-in-ip4` and `acl-out-ip4`: one body, two variants (`AclNode<INPUT>`), on the
//! `ip4-unicast` and `ip4-output` arcs.
//!
//! Per packet: the 5-tuple; the worker's session table (a hit passes without classification);
//! otherwise the interface's compiled list decides: deny drops, permit passes, permit+reflect
//! passes and creates a session. No match denies. Expired sessions are reclaimed at the start of
//! each frame, a bounded amount at a time.

use crate::classify::NO_MATCH;
use crate::rule::{proto, Action, PacketKey};
use crate::session::{SessionKey, SessionTable};
use crate::tables::AclTables;
use std::fmt;
use std::sync::Arc;
use vpg_graph::{ArcId, ConfigSet, Ctx, Node, NodeRegistration, Vector};

vpg_graph::error_counters! {
    /// ACL node counters (verdicts are counted too, as VPP's ACL plugin does).
    pub enum AclError {
        /// Passed by an existing session.
        SessionHit = "session-hit": "packets passed by an existing session",
        /// Permitted by a rule.
        Permit = "permit": "packets permitted by a rule",
        /// A permit+reflect rule created a session.
        SessionCreated = "session-created": "sessions created by permit+reflect",
        /// Denied by a rule.
        Deny = "deny": "packets denied by a rule",
        /// No rule of any ACL in the list matched.
        NoMatch = "no-match": "packets denied: no rule matched",
        /// The worker's session table is full.
        SessionLimit = "session-limit": "packets denied: session table full",
        /// Too short for the headers the ACL reads.
        TooShort = "too-short": "packets too short for their headers",
        /// Sessions reclaimed by the timer wheel.
        SessionExpired = "session-expired": "sessions expired",
        /// A session made under older ACLs was dropped and the packet classified again.
        Reclassified = "reclassified": "sessions reclassified after an ACL change",
    }
}

const NEXT_DROP: u16 = 0;
/// Sessions the timer wheel may check per frame (bounds the work added to one frame).
const EXPIRE_BUDGET: usize = 256;

/// What decided a traced packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// An existing session.
    Session(u32),
    /// A rule: ACL id, rule index, action.
    Rule(u32, u32, Action),
    /// No rule matched.
    NoMatch,
    /// Session table full.
    SessionLimit,
    /// Malformed.
    TooShort,
}

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct AclTrace {
    sw_if: u32,
    input: bool,
    key: PacketKey,
    decision: Decision,
}

impl fmt::Display for AclTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} interface {} {}: ",
            if self.input { "input" } else { "output" },
            self.sw_if,
            self.key
        )?;
        match self.decision {
            Decision::Session(s) => write!(f, "session {s} hit, permit"),
            Decision::Rule(acl, rule, a) => write!(f, "acl {acl} rule {rule}: {a}"),
            Decision::NoMatch => write!(f, "no rule matched: deny"),
            Decision::SessionLimit => write!(f, "session table full: deny"),
            Decision::TooShort => write!(f, "too short: drop"),
        }
    }
}

/// The ACL node; `INPUT` selects `acl-in-ip4` (packets start at the IPv4 header, interface =
/// receive interface) or `acl-out-ip4` (after rewrite: Ethernet header first, interface =
/// transmit interface).
#[derive(Default)]
pub struct AclNode<const INPUT: bool> {
    tables: Arc<AclTables>,
}

/// The input variant.
pub type AclIn = AclNode<true>;
/// The output variant.
pub type AclOut = AclNode<false>;

/// The 5-tuple of the IPv4 packet in `d`, or `None` if too short. Non-first fragments have no
/// L4 header: their ports are 0.
#[inline(always)]
pub fn packet_key(d: &[u8]) -> Option<PacketKey> {
    if d.len() < 20 {
        return None;
    }
    let ihl = ((d[0] & 0x0f) as usize) * 4;
    let p = d[9];
    let first = u16::from_be_bytes([d[6] & 0x1f, d[7]]) == 0;
    let mut k = PacketKey {
        src: u32::from_be_bytes([d[12], d[13], d[14], d[15]]),
        dst: u32::from_be_bytes([d[16], d[17], d[18], d[19]]),
        proto: p,
        ..Default::default()
    };
    if first {
        let l4 = d.get(ihl..)?;
        match p {
            proto::TCP | proto::UDP | proto::SCTP => {
                let h = l4.get(..4)?;
                k.sport = u16::from_be_bytes([h[0], h[1]]);
                k.dport = u16::from_be_bytes([h[2], h[3]]);
                if p == proto::TCP {
                    k.tcp_flags = *l4.get(13)?;
                }
            }
            proto::ICMP => {
                let h = l4.get(..2)?;
                k.sport = h[0] as u16;
                k.dport = h[1] as u16;
                if let Some(id) = l4.get(4..6) {
                    k.icmp_id = u16::from_be_bytes([id[0], id[1]]);
                }
            }
            _ => {}
        }
    }
    Some(k)
}

impl<const INPUT: bool> AclNode<INPUT> {
    /// The node's name.
    pub const NAME: &'static str = if INPUT { "acl-in-ip4" } else { "acl-out-ip4" };
    const ARC: ArcId = if INPUT {
        ArcId::Ip4Unicast
    } else {
        ArcId::Ip4Output
    };
    const L3: usize = if INPUT { 0 } else { 14 };
}

impl<const INPUT: bool> Node for AclNode<INPUT> {
    type Trace = AclTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(Self::NAME, &[vpg_graph::ERROR_DROP], AclError::DESCRIPTIONS)
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        if let Some(t) = c.get::<AclTables>() {
            self.tables = t;
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_, AclTrace>, v: &mut Vector) {
        let t = &*self.tables;
        let now = cx.now.as_nanos();
        let cfg = t.sessions;
        let sessions = cx
            .locals
            .get_or_insert_with(|| SessionTable::new(cfg.max_per_worker, cfg.timeouts, now));
        if sessions.capacity() != cfg.max_per_worker {
            // The limit changed (control-plane action): the table is rebuilt, sessions restart.
            *sessions = SessionTable::new(cfg.max_per_worker, cfg.timeouts, now);
        }
        sessions.timeouts = cfg.timeouts;
        if !sessions.is_empty() {
            let n = sessions.expire(now, EXPIRE_BUDGET);
            cx.errors.count(AclError::SessionExpired, n as u64);
        }
        let n = v.len;
        // Pass 1: every packet's 5-tuple and interface; session index slots prefetched.
        let mut keys = [PacketKey::default(); vpg_graph::FRAME_SIZE];
        let mut sw = [0u32; vpg_graph::FRAME_SIZE];
        let mut ok = [false; vpg_graph::FRAME_SIZE];
        let mut skeys = [(SessionKey::default(), false); vpg_graph::FRAME_SIZE];
        let check_sessions = !sessions.is_empty();
        for k in 0..n {
            if k + 2 < n {
                cx.buffers.prefetch(v.buffers[k + 2]);
            }
            let b = cx.buffers.get(v.buffers[k]);
            sw[k] = if INPUT { b.hdr.rx_if } else { b.hdr.tx_if };
            if let Some(key) = b.data().get(Self::L3..).and_then(packet_key) {
                keys[k] = key;
                ok[k] = true;
                skeys[k] = SessionKey::of(sw[k], &key);
                if check_sessions {
                    sessions.prefetch(&skeys[k].0);
                }
            }
        }
        // Pass 2: sessions, then one batched classification per run of packets that share an
        // interface list (a frame usually comes from or goes to one interface).
        let mut verdict = [NO_MATCH; vpg_graph::FRAME_SIZE];
        let mut miss = [0u8; vpg_graph::FRAME_SIZE];
        let mut miss_keys = [PacketKey::default(); vpg_graph::FRAME_SIZE];
        let mut miss_out = [NO_MATCH; vpg_graph::FRAME_SIZE];
        let mut session_of = [u32::MAX; vpg_graph::FRAME_SIZE];
        let (mut hit, mut permit, mut created) = (0u64, 0u64, 0u64);
        let mut k = 0;
        while k < n {
            let list = t.list(sw[k], INPUT);
            let list_ptr = list.map(Arc::as_ptr);
            let mut m = 0;
            let mut end = k;
            while end < n && t.list(sw[end], INPUT).map(Arc::as_ptr) == list_ptr {
                if ok[end] && list.is_some() {
                    let (skey, fwd) = skeys[end];
                    let found = if check_sessions {
                        sessions.find(&skey)
                    } else {
                        None
                    };
                    let stale = found.is_some_and(|s| {
                        cfg.reclassify
                            && list.is_some_and(|l| {
                                sessions.get(s).is_some_and(|x| x.epoch != l.epoch)
                            })
                    });
                    match found {
                        Some(s) if !stale => {
                            sessions.touch(s, fwd, keys[end].tcp_flags, now);
                            session_of[end] = s;
                            hit += 1;
                        }
                        _ => {
                            if let Some(s) = found {
                                sessions.delete(s);
                                cx.errors.count(AclError::Reclassified, 1);
                            }
                            miss[m] = end as u8;
                            miss_keys[m] = keys[end];
                            m += 1;
                        }
                    }
                }
                end += 1;
            }
            if let Some(l) = list {
                l.classifier
                    .classify_batch(&miss_keys[..m], &mut miss_out[..m]);
                for j in 0..m {
                    verdict[miss[j] as usize] = miss_out[j];
                }
            }
            k = end;
        }
        // Pass 3: act on the verdicts.
        let (mut last_if, mut last_next) = (u32::MAX, 0u16);
        for k in 0..n {
            let b = cx.buffers.get_mut(v.buffers[k]);
            let sw_if = sw[k];
            let key = keys[k];
            let list = t.list(sw_if, INPUT);
            let decision;
            let mut pass = false;
            if !ok[k] {
                b.hdr.error = cx.errors.index(AclError::TooShort);
                decision = Decision::TooShort;
            } else if let Some(l) = list {
                if session_of[k] != u32::MAX {
                    b.hdr.meta.acl.session = session_of[k];
                    pass = true;
                    decision = Decision::Session(session_of[k]);
                } else {
                    let r = verdict[k];
                    match l.rules.get(r as usize) {
                        Some(rr) => {
                            if let Some(c) = l.counters.get(rr.position as usize) {
                                c.hit(cx.worker, rr.rule);
                            }
                            let acl = l.acl_ids.get(rr.position as usize).copied().unwrap_or(0);
                            let mut d = Decision::Rule(acl, rr.rule, rr.action);
                            match rr.action {
                                Action::Deny => b.hdr.error = cx.errors.index(AclError::Deny),
                                Action::Permit => {
                                    permit += 1;
                                    pass = true;
                                }
                                Action::PermitReflect => {
                                    let (skey, fwd) = skeys[k];
                                    // An earlier packet of this frame may have made the session.
                                    let s = match sessions.find(&skey) {
                                        Some(s) => {
                                            sessions.touch(s, fwd, key.tcp_flags, now);
                                            Ok(s)
                                        }
                                        None => sessions
                                            .create(skey, fwd, key.tcp_flags, l.epoch, now)
                                            .inspect(|_| created += 1),
                                    };
                                    match s {
                                        Ok(s) => {
                                            b.hdr.meta.acl.session = s;
                                            permit += 1;
                                            pass = true;
                                        }
                                        Err(_) => {
                                            b.hdr.error = cx.errors.index(AclError::SessionLimit);
                                            d = Decision::SessionLimit;
                                        }
                                    }
                                }
                            }
                            decision = d;
                        }
                        None => {
                            b.hdr.error = cx.errors.index(AclError::NoMatch);
                            decision = Decision::NoMatch;
                        }
                    }
                }
            } else {
                // The feature is on but the interface has no list in this direction: pass.
                pass = true;
                decision = Decision::NoMatch;
            }
            if b.is_traced() && (list.is_some() || !ok[k]) {
                cx.tracer.add(
                    &b.hdr,
                    AclTrace {
                        sw_if,
                        input: INPUT,
                        key,
                        decision,
                    },
                );
            }
            if pass {
                if sw_if != last_if {
                    last_if = sw_if;
                    last_next = cx.arcs.next(Self::ARC, sw_if);
                }
                v.nexts[k] = last_next;
            } else {
                v.nexts[k] = NEXT_DROP;
            }
        }
        cx.errors.count(AclError::SessionHit, hit);
        cx.errors.count(AclError::Permit, permit);
        cx.errors.count(AclError::SessionCreated, created);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes: a key or `None`, never a panic; ports only when the L4 header is there.
        #[test]
        fn packet_key_never_panics(d in prop::collection::vec(any::<u8>(), 0..80)) {
            if let Some(k) = packet_key(&d) {
                prop_assert!(d.len() >= 20);
                prop_assert_eq!(k.proto, d[9]);
            }
        }
    }

    #[test]
    fn ports_flags_and_fragments() {
        let mut d = vec![0u8; 40];
        d[0] = 0x45;
        d[9] = 6;
        d[20..22].copy_from_slice(&1234u16.to_be_bytes());
        d[22..24].copy_from_slice(&80u16.to_be_bytes());
        d[33] = 0x12;
        let k = packet_key(&d).unwrap();
        assert_eq!((k.sport, k.dport, k.tcp_flags), (1234, 80, 0x12));
        assert!(
            packet_key(&d[..30]).is_none(),
            "TCP header cut before the flags"
        );
        d[7] = 1; // fragment offset 8: no L4 header in this fragment
        let k = packet_key(&d[..24]).unwrap();
        assert_eq!((k.sport, k.dport), (0, 0));
    }
}
