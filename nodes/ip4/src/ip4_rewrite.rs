//! `ip4-rewrite`: decrements TTL with an incremental checksum update (RFC 1624), checks the MTU,
//! prepends the adjacency's precomputed Ethernet header into headroom and puts the packet on the
//! `ip4-output` feature arc.

use crate::tables::{Adjacency, Ip4Tables};
use std::fmt;
use std::sync::Arc;
use vpg_graph::buffer::IcmpMeta;
use vpg_graph::wire::EthernetAddress;
use vpg_graph::{ArcId, ConfigSet, Ctx, Node, NodeRegistration, Vector};

vpg_graph::error_counters! {
    /// ip4-rewrite errors.
    pub enum Ip4RewriteError {
        /// TTL would reach zero: an ICMP time-exceeded is sent.
        TimeExpired = "time-expired": "TTL expired in transit (ICMP time exceeded sent)",
        /// Larger than the MTU with DF set: an ICMP fragmentation-needed is sent.
        FragNeeded = "fragmentation-needed": "larger than the MTU with DF set (ICMP sent)",
        /// Larger than the MTU without DF: vpg does not fragment.
        MtuExceeded = "mtu-exceeded": "larger than the MTU (fragmentation not supported)",
        /// The adjacency is not a rewrite (changed under the packet).
        BadAdjacency = "bad-adjacency": "adjacency is not a rewrite",
        /// No headroom for the Ethernet header.
        NoHeadroom = "no-headroom": "no headroom for the Ethernet header",
    }
}

const NEXT_DROP: u16 = 0;
const NEXT_ICMP_ERROR: u16 = 1;

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct Ip4RewriteTrace {
    tx_if: u32,
    adj: u32,
    dst_mac: EthernetAddress,
    ttl: u8,
}

impl fmt::Display for Ip4RewriteTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tx interface {} adj {} dst mac {} ttl now {}",
            self.tx_if, self.adj, self.dst_mac, self.ttl
        )
    }
}

/// The node.
#[derive(Default)]
pub struct Ip4Rewrite {
    tables: Arc<Ip4Tables>,
}

impl Node for Ip4Rewrite {
    type Trace = Ip4RewriteTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            "ip4-rewrite",
            &[vpg_graph::ERROR_DROP, "ip4-icmp-error"],
            Ip4RewriteError::DESCRIPTIONS,
        )
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        if let Some(t) = c.get::<Ip4Tables>() {
            self.tables = t;
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_, Ip4RewriteTrace>, v: &mut Vector) {
        let adjs = &self.tables.adjacencies;
        // The output arc's next node depends only on the interface: computed once per interface.
        let (mut last_if, mut last_next) = (u32::MAX, 0u16);
        for k in 0..v.len {
            if k + 2 < v.len {
                cx.buffers.prefetch(v.buffers[k + 2]);
            }
            let b = cx.buffers.get_mut(v.buffers[k]);
            let adj = b.hdr.meta.ip4.adj_index;
            let Some(Adjacency::Rewrite {
                sw_if,
                rewrite,
                mtu,
                ..
            }) = adjs.get(adj as usize)
            else {
                b.hdr.error = cx.errors.index(Ip4RewriteError::BadAdjacency);
                v.nexts[k] = NEXT_DROP;
                continue;
            };
            let len = b.hdr.current_length as usize;
            let d = b.data_mut();
            if d.len() < 20 {
                b.hdr.error = cx.errors.index(Ip4RewriteError::BadAdjacency);
                v.nexts[k] = NEXT_DROP;
                continue;
            }
            let ttl = d[8];
            if ttl <= 1 {
                cx.errors.count(Ip4RewriteError::TimeExpired, 1);
                b.hdr.meta.icmp = IcmpMeta {
                    kind: 11,
                    code: 0,
                    data: 0,
                };
                v.nexts[k] = NEXT_ICMP_ERROR;
                continue;
            }
            let (sw_if, mtu) = (*sw_if, *mtu);
            if len > mtu as usize {
                if d[6] & 0x40 != 0 {
                    cx.errors.count(Ip4RewriteError::FragNeeded, 1);
                    b.hdr.meta.icmp = IcmpMeta {
                        kind: 3,
                        code: 4,
                        data: mtu,
                    };
                    v.nexts[k] = NEXT_ICMP_ERROR;
                } else {
                    b.hdr.error = cx.errors.index(Ip4RewriteError::MtuExceeded);
                    v.nexts[k] = NEXT_DROP;
                }
                continue;
            }
            //= https://www.rfc-editor.org/rfc/rfc1624#section-3
            //# HC' = ~(~HC + ~m + m')
            // TTL is the high byte of the 16-bit word at offset 8, so m' = m - 0x0100.
            let old = u16::from_be_bytes([d[8], d[9]]);
            let csum = u16::from_be_bytes([d[10], d[11]]);
            let new = old.wrapping_sub(0x0100);
            let mut s = (!csum) as u32 + (!old) as u32 + new as u32;
            s = (s & 0xffff) + (s >> 16);
            s = (s & 0xffff) + (s >> 16);
            d[8] = ttl - 1;
            d[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
            let Some(l2) = b.prepend(14) else {
                b.hdr.error = cx.errors.index(Ip4RewriteError::NoHeadroom);
                v.nexts[k] = NEXT_DROP;
                continue;
            };
            l2.copy_from_slice(rewrite);
            b.hdr.tx_if = sw_if;
            if b.is_traced() {
                let dst_mac = EthernetAddress([
                    rewrite[0], rewrite[1], rewrite[2], rewrite[3], rewrite[4], rewrite[5],
                ]);
                cx.tracer.add(
                    &b.hdr,
                    Ip4RewriteTrace {
                        tx_if: sw_if,
                        adj,
                        dst_mac,
                        ttl: ttl - 1,
                    },
                );
            }
            if sw_if != last_if {
                last_if = sw_if;
                last_next = cx.arcs.next(ArcId::Ip4Output, sw_if);
            }
            v.nexts[k] = last_next;
        }
    }
}
