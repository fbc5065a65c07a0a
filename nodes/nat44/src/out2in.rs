//! `nat44-out2in` on the `ip4-unicast` arc, before routing: translates return traffic of SNAT
//! sessions back to the inside host, creates and translates DNAT sessions for traffic towards a
//! mapping's external address (services, NodePorts, 1:1 mappings), and translates the replies
//! of DNAT sessions back to the external address. Unsolicited traffic to a pool address is
//! dropped; ICMP echo requests to it go on to the node.
//!
//! Only packets that can concern NAT are looked up: towards a pool, external or loopback
//! address, or from a mapping's endpoint. Two passes over the frame: parse; then decide and
//! rewrite, with the reverse-index slot and then the session of later packets prefetched (return
//! traffic is found through the reverse index).

use crate::flow::{self, Flow, ParseError, Parsed, Shape};
use crate::session::{Dir, Found, Kind, SessionTable};
use crate::tables::Nat44Tables;
use crate::translate::rewrite;
use crate::{NatTrace, Outcome, EXPIRE_BUDGET, OUT2IN, PREFETCH_INDEX, PREFETCH_SESSION};
use std::sync::Arc;
use vpg_graph::{ArcId, ConfigSet, Ctx, Node, NodeRegistration, Vector, FRAME_SIZE};

vpg_graph::error_counters! {
    /// `nat44-out2in` counters.
    pub enum Out2InError {
        /// Translated by a session.
        Hit = "hit": "packets translated by a session",
        /// DNAT sessions created from mappings.
        Created = "created": "sessions created by static or load-balanced mappings",
        /// Unsolicited traffic to a pool address.
        NoSession = "no-session": "packets to a pool address without a session",
        /// Too short for its headers.
        TooShort = "too-short": "packets too short for their headers",
        /// Non-first fragments towards NAT addresses.
        Fragment = "fragment": "non-first fragments (no ports; not reassembled)",
        /// An ICMP error whose quoted packet cannot be read.
        BadIcmpError = "bad-icmp-error": "ICMP errors with an unreadable quoted packet",
        /// The worker's session table is full of live sessions.
        SessionLimit = "session-limit": "packets dropped: session table full",
        /// The translated flow's key is held by another session.
        Conflict = "conflict": "packets dropped: translated flow already in use",
        /// No free port for a loopback session.
        OutOfPorts = "out-of-ports": "packets dropped: no loopback port free",
        /// Sessions reclaimed by the timer wheel.
        Expired = "expired": "sessions expired",
        /// Stale sessions deleted on lookup.
        Stale = "stale": "timed-out or closed sessions deleted on lookup",
        /// Sessions dropped because their address or mapping went away.
        Purged = "purged": "sessions deleted by a configuration change",
    }
}

const NEXT_DROP: u16 = 0;

/// The node.
#[derive(Default)]
pub struct Out2In {
    tables: Arc<Nat44Tables>,
}

/// Whether a packet from `src` to `dst` can concern NAT on input.
#[inline(always)]
fn candidate(t: &Nat44Tables, src: u32, dst: u32) -> bool {
    t.is_nat_addr(dst) || t.is_local_addr(src)
}

#[inline(always)]
fn addrs(d: &[u8]) -> Option<(u32, u32)> {
    let s = d.get(12..20)?;
    Some((
        u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        u32::from_be_bytes([s[4], s[5], s[6], s[7]]),
    ))
}

/// What a miss becomes.
enum Miss {
    Pass(&'static str),
    Drop(Out2InError, &'static str),
    Create(Kind, Flow),
}

/// Which sessions `nat44-out2in` translates: SNAT ones backwards, DNAT ones both ways.
#[inline(always)]
fn here(k: Kind, d: Dir) -> bool {
    !k.is_snat() || d == Dir::Rev
}

/// Decides what to do with a packet that has no session: a mapping makes one.
fn miss(t: &Nat44Tables, st: &SessionTable, p: &Parsed, (worker, workers): (usize, usize)) -> Miss {
    let f = &p.flow;
    if t.identity(f.dst, f.dport, f.proto) {
        return Miss::Pass("identity");
    }
    if let Shape::IcmpError { .. } = p.shape {
        return if t.in_pool(f.dst) {
            Miss::Drop(Out2InError::NoSession, "no session")
        } else {
            Miss::Pass("no session")
        };
    }
    if let Some((_, m)) = t.by_external(f) {
        let (ea, ep) = if m.m.proto.is_some() {
            m.choose(f.hash())
        } else {
            (m.m.locals[0].addr.to_bits(), f.dport)
        };
        if ea == f.src {
            // The client is the endpoint chosen: it must see another source, or its own
            // kernel would take the packet for one it sent itself.
            let lb = t.loopback_for(m);
            let rev = Flow {
                src: ea,
                dst: lb,
                sport: ep,
                dport: 0,
                proto: f.proto,
            };
            let port = if f.has_ports() {
                st.allocate_loopback(t, rev, (worker, workers), f.hash())
            } else {
                Some(0)
            };
            return match port {
                Some(lp) => Miss::Create(
                    Kind::Loopback,
                    Flow {
                        src: lb,
                        dst: ea,
                        sport: lp,
                        dport: ep,
                        proto: f.proto,
                    },
                ),
                None => Miss::Drop(Out2InError::OutOfPorts, "no loopback port"),
            };
        }
        return Miss::Create(
            Kind::Dnat,
            Flow {
                dst: ea,
                dport: ep,
                ..*f
            },
        );
    }
    if t.in_pool(f.dst) {
        if p.shape == Shape::EchoRequest {
            return Miss::Pass("echo request to the node");
        }
        return Miss::Drop(Out2InError::NoSession, "no session");
    }
    Miss::Pass("no session")
}

impl Node for Out2In {
    type Trace = NatTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(OUT2IN, &[vpg_graph::ERROR_DROP], Out2InError::DESCRIPTIONS)
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        if let Some(t) = c.get::<Nat44Tables>() {
            self.tables = t;
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_, NatTrace>, v: &mut Vector) {
        let t = &*self.tables;
        let now = cx.now.as_nanos();
        let worker = cx.worker;
        let workers = cx.handoff.workers().max(1);
        let st = cx.locals.get_or_insert_with(|| {
            SessionTable::new(t.limits.sessions_per_worker, t.timeouts, now)
        });
        let purged = st.sync(t, worker, now);
        cx.errors.count(Out2InError::Purged, purged as u64);
        if !st.is_empty() {
            let n = st.expire(now, EXPIRE_BUDGET);
            cx.errors.count(Out2InError::Expired, n as u64);
        }
        let n = v.len;
        // Pass 1: parse the packets that can concern NAT.
        let mut parsed = [Err(ParseError::TooShort); FRAME_SIZE];
        let mut cand = [false; FRAME_SIZE];
        let mut hashes = [0u64; FRAME_SIZE];
        for k in 0..n {
            // Pass 1 does little per packet: the packet it will parse must be asked for
            // several packets ahead.
            if k + 8 < n {
                cx.buffers.prefetch(v.buffers[k + 8]);
            }
            let d = cx.buffers.get(v.buffers[k]).data();
            let Some((src, dst)) = addrs(d) else {
                cand[k] = true;
                continue;
            };
            if candidate(t, src, dst) {
                cand[k] = true;
                parsed[k] = flow::parse(d);
                if let Ok(p) = &parsed[k] {
                    hashes[k] = p.flow.hash();
                }
            }
        }
        // Pass 2: translate, with the reverse-index slot of the packet PREFETCH_INDEX ahead and the
        // session of the packet PREFETCH_SESSION ahead on their way (two dependent misses per
        // packet; a few at a time, as the core has only so many line-fill buffers).
        for &h in hashes[..n.min(PREFETCH_INDEX)].iter() {
            st.prefetch_index(h);
        }
        let (mut hits, mut created, mut stale) = (0u64, 0u64, 0u64);
        let (mut last_if, mut last_next) = (u32::MAX, 0u16);
        for k in 0..n {
            if cand.get(k + PREFETCH_INDEX) == Some(&true) {
                st.prefetch_index(hashes[k + PREFETCH_INDEX]);
            }
            if cand.get(k + PREFETCH_SESSION) == Some(&true) {
                st.prefetch_session(hashes[k + PREFETCH_SESSION]);
            }
            let b = cx.buffers.get_mut(v.buffers[k]);
            let sw_if = b.hdr.rx_if;
            let mut pass = true;
            // The common case first: a session hit, translated with nothing else looked at.
            let mut found = Found::Miss;
            if let (true, Ok(p)) = (cand[k], &parsed[k]) {
                found = st.lookup::<true>((&p.flow, hashes[k]), p.tcp_flags, now, here, &mut stale);
                if let Found::Hit(s, d) = found {
                    let (kind, to) = st.apply_hit(b.data_mut(), p, (s, d), now);
                    hits += 1;
                    b.hdr.meta.nat.session = s;
                    if d == Dir::Rev && !kind.is_snat() {
                        b.hdr.meta.nat.flags |= vpg_graph::buffer::NAT_DNAT_REPLY;
                    }
                    if b.is_traced() {
                        let outcome = Outcome::Hit {
                            session: s,
                            kind,
                            reverse: d == Dir::Rev,
                        };
                        let (before, after) = (p.flow, to);
                        cx.tracer.add(
                            &b.hdr,
                            NatTrace {
                                sw_if,
                                before,
                                after,
                                outcome,
                            },
                        );
                    }
                    if sw_if != last_if {
                        last_if = sw_if;
                        last_next = cx.arcs.next(ArcId::Ip4Unicast, sw_if);
                    }
                    v.nexts[k] = last_next;
                    continue;
                }
            }
            if cand[k] {
                let outcome = match parsed[k] {
                    Err(ParseError::TooShort) => Err((Out2InError::TooShort, "too short")),
                    Err(ParseError::Fragment) => Err((Out2InError::Fragment, "fragment")),
                    Err(ParseError::BadInner) => Err((Out2InError::BadIcmpError, "bad ICMP error")),
                    Err(ParseError::UnsupportedIcmp) => Ok((Outcome::Pass("ICMP type"), None)),
                    Ok(p) => {
                        let len = b.data().len() as u32;
                        match found {
                            // Handled above.
                            Found::Hit(..) => Ok((Outcome::Pass("session"), None)),
                            Found::Elsewhere => Ok((Outcome::Pass("SNAT forward"), None)),
                            Found::Miss => match miss(t, st, &p, (worker, workers)) {
                                Miss::Pass(why) => Ok((Outcome::Pass(why), None)),
                                Miss::Drop(e, why) => Err((e, why)),
                                Miss::Create(kind, o) => {
                                    if st.taken(&o.reverse()) {
                                        Err((Out2InError::Conflict, "translated flow in use"))
                                    } else {
                                        match st.create(kind, p.flow, o, p.tcp_flags, len, now) {
                                            Ok(s) => {
                                                rewrite(b.data_mut(), &p, &o);
                                                created += 1;
                                                Ok((Outcome::Created { session: s, kind }, Some(o)))
                                            }
                                            Err(_) => Err((
                                                Out2InError::SessionLimit,
                                                "session table full",
                                            )),
                                        }
                                    }
                                }
                            },
                        }
                    }
                };
                let before = parsed[k].map(|p| p.flow).unwrap_or_default();
                let trace = match outcome {
                    Ok((o, after)) => {
                        if let Outcome::Hit { session, .. } | Outcome::Created { session, .. } = o {
                            b.hdr.meta.nat.session = session;
                        }
                        (o, after.unwrap_or(before))
                    }
                    Err((e, why)) => {
                        b.hdr.error = cx.errors.index(e);
                        pass = false;
                        (Outcome::Drop(why), before)
                    }
                };
                if b.is_traced() {
                    let (outcome, after) = trace;
                    cx.tracer.add(
                        &b.hdr,
                        NatTrace {
                            sw_if,
                            before,
                            after,
                            outcome,
                        },
                    );
                }
            }
            if pass {
                if sw_if != last_if {
                    last_if = sw_if;
                    last_next = cx.arcs.next(ArcId::Ip4Unicast, sw_if);
                }
                v.nexts[k] = last_next;
            } else {
                v.nexts[k] = NEXT_DROP;
            }
        }
        cx.errors.count(Out2InError::Hit, hits);
        cx.errors.count(Out2InError::Created, created);
        cx.errors.count(Out2InError::Stale, stale);
    }
}
