//! `ip4-glean`: a packet whose next hop has no known MAC becomes an ARP request for it (the packet
//! itself is dropped, as VPP does), at most one request per address per second.

use crate::tables::{Adjacency, Ip4Tables};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::{ConfigSet, Ctx, Node, NodeRegistration, Time, Vector, INTERFACE_OUTPUT};

vpg_graph::error_counters! {
    /// ip4-glean errors and counts.
    pub enum Ip4GleanError {
        /// Requests sent (the packet that caused each is not forwarded).
        RequestsSent = "requests-sent": "ARP requests sent (packet to unresolved neighbor consumed)",
        /// A request for the address went out less than a second ago.
        Throttled = "throttled": "packet to unresolved neighbor dropped, ARP request throttled",
        /// The interface has no address to ask from.
        NoSource = "no-source-address": "interface has no IPv4 address to send ARP from",
        /// The adjacency is not a glean.
        BadAdjacency = "bad-adjacency": "adjacency is not a glean",
    }
}

const NEXT_DROP: u16 = 0;
const NEXT_OUTPUT: u16 = 1;
const THROTTLE_SLOTS: usize = 1024;
const THROTTLE_NS: u64 = 1_000_000_000;

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct GleanTrace {
    target: Ipv4Addr,
    sw_if: u32,
    sent: bool,
}

impl fmt::Display for GleanTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.sent {
            "ARP request sent"
        } else {
            "throttled"
        };
        write!(
            f,
            "glean {} on interface {}: {what}",
            self.target, self.sw_if
        )
    }
}

/// The node.
pub struct Ip4Glean {
    tables: Arc<Ip4Tables>,
    /// Last request time per (hashed) address.
    last: Box<[(u32, Time); THROTTLE_SLOTS]>,
}

impl Default for Ip4Glean {
    fn default() -> Self {
        Self {
            tables: Arc::default(),
            last: Box::new([(0, Time::ZERO); THROTTLE_SLOTS]),
        }
    }
}

impl Node for Ip4Glean {
    type Trace = GleanTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            "ip4-glean",
            &[vpg_graph::ERROR_DROP, INTERFACE_OUTPUT],
            Ip4GleanError::DESCRIPTIONS,
        )
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        if let Some(t) = c.get::<Ip4Tables>() {
            self.tables = t;
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_, GleanTrace>, v: &mut Vector) {
        for k in 0..v.len {
            let b = cx.buffers.get_mut(v.buffers[k]);
            let adj = self.tables.adjacency(b.hdr.meta.ip4.adj_index);
            let Adjacency::Glean { sw_if, next_hop } = *adj else {
                b.hdr.error = cx.errors.index(Ip4GleanError::BadAdjacency);
                v.nexts[k] = NEXT_DROP;
                continue;
            };
            let dst = b
                .data()
                .get(16..20)
                .map(|a| Ipv4Addr::new(a[0], a[1], a[2], a[3]));
            let target = next_hop.or(dst).unwrap_or(Ipv4Addr::UNSPECIFIED);
            let itf = self.tables.interface(sw_if);
            let source = itf.and_then(|i| {
                i.addresses
                    .iter()
                    .find(|c| c.network().contains(target))
                    .or(i.addresses.first())
                    .map(|c| (c.address(), i.mac))
            });
            let Some((spa, mac)) = source else {
                b.hdr.error = cx.errors.index(Ip4GleanError::NoSource);
                v.nexts[k] = NEXT_DROP;
                continue;
            };
            let t = u32::from(target);
            let slot =
                &mut self.last[(t.wrapping_mul(0x9e37_79b1) >> 22) as usize % THROTTLE_SLOTS];
            let recent = slot.0 == t
                && slot.1 != Time::ZERO
                && cx.now.as_nanos().saturating_sub(slot.1.as_nanos()) < THROTTLE_NS;
            cx.tracer.add(
                &b.hdr,
                GleanTrace {
                    target,
                    sw_if,
                    sent: !recent,
                },
            );
            if recent {
                b.hdr.error = cx.errors.index(Ip4GleanError::Throttled);
                v.nexts[k] = NEXT_DROP;
                continue;
            }
            *slot = (t, Time(cx.now.as_nanos().max(1)));
            let mut req = [0u8; 42];
            req[0..6].fill(0xff);
            req[6..12].copy_from_slice(&mac.0);
            req[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
            req[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
            req[22..28].copy_from_slice(&mac.0);
            req[28..32].copy_from_slice(&spa.octets());
            req[38..42].copy_from_slice(&target.octets());
            b.set_data(&req);
            b.hdr.tx_if = sw_if;
            cx.errors.count(Ip4GleanError::RequestsSent, 1);
            v.nexts[k] = NEXT_OUTPUT;
        }
    }
}
