//! `ip4-lookup`: longest-prefix match of every destination in the vector in one batched FIB
//! lookup, then dispatch by adjacency.

use crate::fib::AdjIndex;
use crate::tables::{Adjacency, Ip4Tables};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::{ConfigSet, Ctx, Node, NodeRegistration, Vector, FRAME_SIZE};

vpg_graph::error_counters! {
    /// ip4-lookup errors.
    pub enum Ip4LookupError {
        /// The route is a drop route, or there is none.
        NoRoute = "no-route": "no route to the destination",
    }
}

const NEXT_DROP: u16 = 0;
const NEXT_REWRITE: u16 = 1;
const NEXT_LOCAL: u16 = 2;
const NEXT_GLEAN: u16 = 3;

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct Ip4LookupTrace {
    dst: Ipv4Addr,
    adj: AdjIndex,
    kind: Adjacency,
}

impl fmt::Display for Ip4LookupTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dst {} adj {}: {}", self.dst, self.adj, self.kind)
    }
}

/// The node.
pub struct Ip4Lookup {
    tables: Arc<Ip4Tables>,
    dsts: Box<[u32; FRAME_SIZE]>,
    adjs: Box<[AdjIndex; FRAME_SIZE]>,
}

impl Default for Ip4Lookup {
    fn default() -> Self {
        Self {
            tables: Arc::default(),
            dsts: Box::new([0; FRAME_SIZE]),
            adjs: Box::new([0; FRAME_SIZE]),
        }
    }
}

impl Node for Ip4Lookup {
    type Trace = Ip4LookupTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            "ip4-lookup",
            &[
                vpg_graph::ERROR_DROP,
                "ip4-rewrite",
                "ip4-local",
                "ip4-glean",
            ],
            Ip4LookupError::DESCRIPTIONS,
        )
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        if let Some(t) = c.get::<Ip4Tables>() {
            self.tables = t;
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_, Ip4LookupTrace>, v: &mut Vector) {
        let n = v.len;
        // Pass 1: gather destinations (ip4-input validated the header length).
        for k in 0..n {
            let d = cx.buffers.get(v.buffers[k]).data();
            self.dsts[k] = match d.get(16..20) {
                Some(a) => u32::from_be_bytes([a[0], a[1], a[2], a[3]]),
                None => 0,
            };
        }
        // Pass 2: one batched lookup, which prefetches ahead through the FIB.
        self.tables
            .fib
            .lookup_batch(&self.dsts[..n], &mut self.adjs[..n]);
        // Pass 3: dispatch by adjacency.
        let adjs = &self.tables.adjacencies;
        for k in 0..n {
            let adj = self.adjs[k];
            let b = cx.buffers.get_mut(v.buffers[k]);
            b.hdr.meta.ip4.adj_index = adj;
            let kind = adjs.get(adj as usize).copied().unwrap_or(Adjacency::Drop);
            v.nexts[k] = match kind {
                Adjacency::Rewrite { .. } => NEXT_REWRITE,
                Adjacency::Local => NEXT_LOCAL,
                Adjacency::Glean { .. } => NEXT_GLEAN,
                Adjacency::Drop => {
                    b.hdr.error = cx.errors.index(Ip4LookupError::NoRoute);
                    NEXT_DROP
                }
            };
            if b.is_traced() {
                cx.tracer.add(
                    &b.hdr,
                    Ip4LookupTrace {
                        dst: Ipv4Addr::from(self.dsts[k]),
                        adj,
                        kind,
                    },
                );
            }
        }
    }
}
