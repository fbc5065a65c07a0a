//! `nat44-in2out` on the `ip4-output` arc of outside interfaces (output-feature mode): after
//! routing and after the output ACLs, it translates the source of traffic that came from an
//! inside interface. A session hit rewrites; a miss creates a session: a two-way static
//! mapping's external address if the source is its local endpoint, else an address and port
//! from the pool. Destinations in never-NAT prefixes (the cluster's pod and node networks) and
//! identity-mapped sources pass untouched.

use crate::flow::{self, Flow, ParseError, Shape};
use crate::session::{Dir, Found, Kind, Refused, SessionTable};
use crate::tables::Nat44Tables;
use crate::translate::rewrite;
use crate::{NatTrace, Outcome, EXPIRE_BUDGET, IN2OUT, PREFETCH_SESSION};
use std::sync::Arc;
use vpg_graph::{ArcId, ConfigSet, Ctx, Node, NodeRegistration, Vector, FRAME_SIZE};

vpg_graph::error_counters! {
    /// `nat44-in2out` counters.
    pub enum In2OutError {
        /// Translated by a session.
        Hit = "hit": "packets translated by a session",
        /// Sessions created.
        Created = "created": "sessions created (dynamic or static)",
        /// Destination in a never-NAT prefix.
        NeverNat = "never-nat": "packets not translated: destination in a never-NAT prefix",
        /// Source identity-mapped.
        Identity = "identity": "packets not translated: identity mapping",
        /// No free port.
        OutOfPorts = "out-of-ports": "packets dropped: no free port in the pool for this destination",
        /// The worker's session table is full.
        SessionLimit = "session-limit": "packets dropped: session table full",
        /// The inside address has its most sessions.
        AddressLimit = "address-limit": "packets dropped: inside address has its most sessions",
        /// Too short.
        TooShort = "too-short": "packets too short for their headers",
        /// Non-first fragments.
        Fragment = "fragment": "non-first fragments (no ports; not reassembled)",
        /// ICMP other than echo and errors.
        UnsupportedIcmp = "unsupported-icmp": "ICMP types NAT44 does not translate",
        /// ICMP error without a session.
        NoSession = "no-session": "ICMP errors or malformed ICMP without a session",
        /// The translated flow's key is held by another session.
        Conflict = "conflict": "packets dropped: translated flow already in use",
        /// Sessions reclaimed by the timer wheel.
        Expired = "expired": "sessions expired",
        /// Stale sessions deleted on lookup.
        Stale = "stale": "timed-out or closed sessions deleted on lookup",
    }
}

const NEXT_DROP: u16 = 0;

/// The IPv4 header follows the Ethernet header on the output arc.
const L3: usize = 14;

/// The node.
#[derive(Default)]
pub struct In2Out {
    tables: Arc<Nat44Tables>,
}

/// Which sessions `nat44-in2out` translates: SNAT ones, forward.
#[inline(always)]
fn here(k: Kind, d: Dir) -> bool {
    k.is_snat() && d == Dir::Fwd
}

impl Node for In2Out {
    type Trace = NatTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(IN2OUT, &[vpg_graph::ERROR_DROP], In2OutError::DESCRIPTIONS)
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
        let st = cx.locals.get_or_insert_with(|| {
            SessionTable::new(t.limits.sessions_per_worker, t.timeouts, now)
        });
        // Purges are counted by nat44-out2in; both nodes keep the table in step.
        st.sync(t, worker, now);
        if !st.is_empty() {
            let n = st.expire(now, EXPIRE_BUDGET);
            cx.errors.count(In2OutError::Expired, n as u64);
        }
        let n = v.len;
        // Pass 1: parse what came from inside.
        let mut parsed = [Err(ParseError::TooShort); FRAME_SIZE];
        let mut cand = [false; FRAME_SIZE];
        let mut hashes = [0u64; FRAME_SIZE];
        for k in 0..n {
            // Pass 1 does little per packet: the packet it will parse must be asked for
            // several packets ahead.
            if k + 8 < n {
                cx.buffers.prefetch(v.buffers[k + 8]);
            }
            let b = cx.buffers.get(v.buffers[k]);
            // A service's reply already has its source (the VIP): no SNAT on top.
            let dnat_reply = b.hdr.meta.nat.flags & vpg_graph::buffer::NAT_DNAT_REPLY != 0;
            if t.is_inside(b.hdr.rx_if) && !dnat_reply {
                cand[k] = true;
                parsed[k] = flow::parse(b.data().get(L3..).unwrap_or(&[]));
                if let Ok(p) = &parsed[k] {
                    hashes[k] = p.flow.hash();
                }
            }
        }
        // Pass 2: translate, with the session slot of the packet PREFETCH_SESSION ahead on its
        // way (a forward hit reads that one line; a few at a time, as the core has only so many
        // line-fill buffers).
        for &h in hashes[..n.min(PREFETCH_SESSION)].iter() {
            st.prefetch_forward(h);
        }
        let (mut hits, mut created, mut stale) = (0u64, 0u64, 0u64);
        let (mut last_if, mut last_next) = (u32::MAX, 0u16);
        for k in 0..n {
            if cand.get(k + PREFETCH_SESSION) == Some(&true) {
                st.prefetch_forward(hashes[k + PREFETCH_SESSION]);
            }
            let b = cx.buffers.get_mut(v.buffers[k]);
            let sw_if = b.hdr.tx_if;
            let mut pass = true;
            // The common case first: a session hit, translated with nothing else looked at.
            let mut found = Found::Miss;
            if let (true, Ok(p)) = (cand[k], &parsed[k]) {
                found =
                    st.lookup::<false>((&p.flow, hashes[k]), p.tcp_flags, now, here, &mut stale);
                if let Found::Hit(s, d) = found {
                    // The header was parsed from this slice, so it is there.
                    let ip = b.data_mut().get_mut(L3..).unwrap_or(&mut []);
                    let (kind, to) = st.apply_hit(ip, p, (s, d), now);
                    hits += 1;
                    b.hdr.meta.nat.session = s;
                    if b.is_traced() {
                        let outcome = Outcome::Hit {
                            session: s,
                            kind,
                            reverse: false,
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
                        last_next = cx.arcs.next(ArcId::Ip4Output, sw_if);
                    }
                    v.nexts[k] = last_next;
                    continue;
                }
            }
            if cand[k] {
                let before = parsed[k].map(|p| p.flow).unwrap_or_default();
                let res: Result<(Outcome, Flow), (In2OutError, &'static str)> = match parsed[k] {
                    Err(ParseError::TooShort) => Err((In2OutError::TooShort, "too short")),
                    Err(ParseError::Fragment) => Err((In2OutError::Fragment, "fragment")),
                    Err(ParseError::UnsupportedIcmp) => {
                        Err((In2OutError::UnsupportedIcmp, "ICMP type"))
                    }
                    Err(ParseError::BadInner) => Err((In2OutError::NoSession, "bad ICMP error")),
                    Ok(p) => {
                        let len = (b.data().len() - L3.min(b.data().len())) as u32;
                        let f = p.flow;
                        match found {
                            // Handled above.
                            Found::Hit(..) => Ok((Outcome::Pass("session"), f)),
                            Found::Elsewhere => Ok((Outcome::Pass("DNAT session"), f)),
                            Found::Miss if t.never_nat(f.dst) => {
                                cx.errors.count(In2OutError::NeverNat, 1);
                                Ok((Outcome::Pass("never-NAT destination"), f))
                            }
                            Found::Miss if t.identity(f.src, f.sport, f.proto) => {
                                cx.errors.count(In2OutError::Identity, 1);
                                Ok((Outcome::Pass("identity"), f))
                            }
                            Found::Miss if matches!(p.shape, Shape::IcmpError { .. }) => {
                                Err((In2OutError::NoSession, "ICMP error without a session"))
                            }
                            Found::Miss => {
                                let target = match t.by_local(&f) {
                                    Some((_, m)) => Some((
                                        Kind::Static,
                                        Flow {
                                            src: m.m.external.to_bits(),
                                            sport: if m.m.proto.is_some() {
                                                m.m.external_port
                                            } else {
                                                f.sport
                                            },
                                            ..f
                                        },
                                    )),
                                    None => st.allocate(t, &f, f.hash() ^ now).map(|(a, port)| {
                                        (
                                            Kind::Dynamic,
                                            Flow {
                                                src: a,
                                                sport: if f.has_ports() { port } else { 0 },
                                                ..f
                                            },
                                        )
                                    }),
                                };
                                match target {
                                    None => Err((In2OutError::OutOfPorts, "out of ports")),
                                    Some((_, o)) if st.taken(&o.reverse()) => {
                                        Err((In2OutError::Conflict, "translated flow in use"))
                                    }
                                    Some((kind, o)) => {
                                        match st.create(kind, f, o, p.tcp_flags, len, now) {
                                            Ok(s) => {
                                                if let Some(ip) = b.data_mut().get_mut(L3..) {
                                                    rewrite(ip, &p, &o);
                                                }
                                                created += 1;
                                                Ok((Outcome::Created { session: s, kind }, o))
                                            }
                                            Err(Refused::Full) => Err((
                                                In2OutError::SessionLimit,
                                                "session table full",
                                            )),
                                            Err(Refused::AddressLimit) => Err((
                                                In2OutError::AddressLimit,
                                                "inside address limit",
                                            )),
                                        }
                                    }
                                }
                            }
                        }
                    }
                };
                let (outcome, after) = match res {
                    Ok((o, after)) => {
                        if let Outcome::Hit { session, .. } | Outcome::Created { session, .. } = o {
                            b.hdr.meta.nat.session = session;
                        }
                        (o, after)
                    }
                    Err((e, why)) => {
                        b.hdr.error = cx.errors.index(e);
                        pass = false;
                        (Outcome::Drop(why), before)
                    }
                };
                if b.is_traced() {
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
                    last_next = cx.arcs.next(ArcId::Ip4Output, sw_if);
                }
                v.nexts[k] = last_next;
            } else {
                v.nexts[k] = NEXT_DROP;
            }
        }
        cx.errors.count(In2OutError::Hit, hits);
        cx.errors.count(In2OutError::Created, created);
        cx.errors.count(In2OutError::Stale, stale);
    }
}
