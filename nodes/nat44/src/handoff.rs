//! `nat44-out2in-handoff` and `nat44-in2out-handoff`: with more than one worker, each NAT
//! session lives on one worker; these features, just before the NAT nodes on their arcs, send a
//! packet that arrived on another worker to the owner (through the runtime's handoff queue),
//! where it enters the NAT node directly. Ownership: the outside port for return traffic of
//! dynamic SNAT (ports are sliced per worker); a hash of the endpoint both directions share for
//! static and service sessions; the receiving worker for new dynamic SNAT.

use crate::flow;
use crate::tables::Nat44Tables;
use crate::{IN2OUT, IN2OUT_HANDOFF, OUT2IN, OUT2IN_HANDOFF};
use std::fmt;
use std::sync::Arc;
use vpg_graph::{ArcId, ConfigSet, Ctx, Node, NodeRegistration, Vector, NEXT_CONSUMED};

vpg_graph::error_counters! {
    /// Handoff counters.
    pub enum HandoffError {
        /// Sent to the owning worker.
        HandedOff = "handed-off": "packets sent to the worker owning their session",
        /// Processed here.
        Local = "local": "packets whose session belongs to this worker",
    }
}

/// Trace: where a packet went.
#[derive(Clone, Copy, Debug)]
pub struct HandoffTrace {
    from: usize,
    to: usize,
}

impl fmt::Display for HandoffTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker {} -> worker {}", self.from, self.to)
    }
}

/// The NAT node, next 0 of both handoff nodes.
const NEXT_NAT: u16 = 0;

/// The shared body: `INPUT` selects out2in (IPv4 header first, receive interface) or in2out
/// (Ethernet first, transmit interface; only traffic from inside interfaces).
#[derive(Default)]
pub struct NatHandoff<const INPUT: bool> {
    tables: Arc<Nat44Tables>,
}

/// `nat44-out2in-handoff`.
pub type Out2InHandoff = NatHandoff<true>;
/// `nat44-in2out-handoff`.
pub type In2OutHandoff = NatHandoff<false>;

impl<const INPUT: bool> NatHandoff<INPUT> {
    const NAME: &'static str = if INPUT {
        OUT2IN_HANDOFF
    } else {
        IN2OUT_HANDOFF
    };
    const ARC: ArcId = if INPUT {
        ArcId::Ip4Unicast
    } else {
        ArcId::Ip4Output
    };
}

impl<const INPUT: bool> Node for NatHandoff<INPUT> {
    type Trace = HandoffTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            Self::NAME,
            &[if INPUT { OUT2IN } else { IN2OUT }],
            HandoffError::DESCRIPTIONS,
        )
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        if let Some(t) = c.get::<Nat44Tables>() {
            self.tables = t;
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_, HandoffTrace>, v: &mut Vector) {
        let t = &*self.tables;
        let this = cx.worker;
        let workers = cx.handoff.workers();
        let (mut sent, mut local) = (0u64, 0u64);
        for k in 0..v.len {
            let bi = v.buffers[k];
            let b = cx.buffers.get(bi);
            let sw_if = if INPUT { b.hdr.rx_if } else { b.hdr.tx_if };
            let owner = if workers < 2 {
                this
            } else if INPUT {
                flow::parse(b.data())
                    .ok()
                    .and_then(|p| t.owner_out2in(&p.flow, workers))
                    .unwrap_or(this)
            } else if t.is_inside(b.hdr.rx_if)
                && b.hdr.meta.nat.flags & vpg_graph::buffer::NAT_DNAT_REPLY == 0
            {
                flow::parse(b.data().get(14..).unwrap_or(&[]))
                    .map_or(this, |p| t.owner_in2out(&p.flow, this, workers))
            } else {
                this
            };
            if b.is_traced() {
                let hdr = b.hdr;
                cx.tracer.add(
                    &hdr,
                    HandoffTrace {
                        from: this,
                        to: owner,
                    },
                );
            }
            if owner != this && cx.handoff.send(cx.buffers, owner, NEXT_NAT, bi) {
                v.nexts[k] = NEXT_CONSUMED;
                sent += 1;
            } else {
                v.nexts[k] = cx.arcs.next(Self::ARC, sw_if);
                local += 1;
            }
        }
        cx.errors.count(HandoffError::HandedOff, sent);
        cx.errors.count(HandoffError::Local, local);
    }
}
