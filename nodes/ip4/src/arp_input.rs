//! `arp-input`: answers ARP requests for the interface's own addresses and, as a pod gateway must,
//! for its proxy-ARP prefixes; reports senders on a connected subnet to the control side so it
//! can learn them as neighbors (a bounded queue: the packet path never waits for control).

use crate::tables::Ip4Tables;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::wire::{ArpOperation, ArpPacket, EthernetAddress};
use vpg_graph::{ConfigSet, Ctx, Node, NodeRegistration, Vector, INTERFACE_OUTPUT};

vpg_graph::error_counters! {
    /// arp-input errors and counts.
    pub enum ArpInputError {
        /// Replies sent for our own addresses (not an error).
        Replies = "replies-sent": "ARP replies sent for own addresses",
        /// Replies sent for proxy-ARP prefixes (not an error).
        ProxyReplies = "proxy-replies-sent": "ARP replies sent for proxy-ARP prefixes",
        /// Not Ethernet/IPv4 ARP, or truncated.
        Malformed = "malformed": "malformed or non-IPv4 ARP packet",
        /// A request for an address we neither own nor proxy.
        NotForUs = "not-for-us": "ARP request for an address not ours",
        /// A reply (consumed after learning).
        RepliesReceived = "replies-received": "ARP replies received",
        /// Senders reported to control for learning (not an error).
        Learned = "learned": "neighbors reported for learning",
        /// The learning queue was full.
        LearnQueueFull = "learn-queue-full": "neighbor learning queue full, not learned",
    }
}

const NEXT_DROP: u16 = 0;
const NEXT_OUTPUT: u16 = 1;

/// A neighbor seen in ARP, for the control side to install.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnedNeighbor {
    /// Interface.
    pub sw_if: u32,
    /// Address.
    pub ip: Ipv4Addr,
    /// MAC.
    pub mac: EthernetAddress,
    /// When the worker saw it: the control side ignores a report older than the interface
    /// (its index may have been reused since).
    pub seen: vpg_graph::Time,
}

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct ArpTrace {
    op: u16,
    sender: Ipv4Addr,
    target: Ipv4Addr,
    replied: bool,
}

impl fmt::Display for ArpTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.op == 1 { "request" } else { "reply" };
        let what = if self.replied { ", replied" } else { "" };
        write!(
            f,
            "ARP {op} who-has {} tell {}{what}",
            self.target, self.sender
        )
    }
}

/// The node.
#[derive(Default)]
pub struct ArpInput {
    tables: Arc<Ip4Tables>,
    learn: Option<crossbeam_channel::Sender<LearnedNeighbor>>,
}

impl ArpInput {
    /// Sends learned neighbors to `tx` (a bounded channel; full means not learned, counted).
    pub fn set_learn_sender(&mut self, tx: crossbeam_channel::Sender<LearnedNeighbor>) {
        self.learn = Some(tx);
    }
}

impl Node for ArpInput {
    type Trace = ArpTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            "arp-input",
            &[vpg_graph::ERROR_DROP, INTERFACE_OUTPUT],
            ArpInputError::DESCRIPTIONS,
        )
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        if let Some(t) = c.get::<Ip4Tables>() {
            self.tables = t;
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_, ArpTrace>, v: &mut Vector) {
        for k in 0..v.len {
            let b = cx.buffers.get_mut(v.buffers[k]);
            let rx_if = b.hdr.rx_if;
            let Some(itf) = self.tables.interface(rx_if) else {
                b.hdr.error = cx.errors.index(ArpInputError::NotForUs);
                v.nexts[k] = NEXT_DROP;
                continue;
            };
            let parsed = ArpPacket::new_checked(b.data()).ok().filter(|p| {
                p.hardware_type() == 1
                    && p.hardware_len() == 6
                    && p.protocol_len() == 4
                    && u16::from(p.protocol_type()) == 0x0800
            });
            let Some(p) = parsed else {
                b.hdr.error = cx.errors.index(ArpInputError::Malformed);
                v.nexts[k] = NEXT_DROP;
                continue;
            };
            let (op, sha, spa, tpa) = (
                p.operation(),
                p.source_hardware_addr(),
                p.source_protocol_addr(),
                p.target_protocol_addr(),
            );
            // Learn senders on our subnets (not ourselves, not gratuitous nonsense from 0.0.0.0).
            if !spa.is_unspecified()
                && !itf.owns(spa)
                && itf.addresses.iter().any(|c| c.network().contains(spa))
            {
                if let Some(tx) = &self.learn {
                    match tx.try_send(LearnedNeighbor {
                        sw_if: rx_if,
                        ip: spa,
                        mac: sha,
                        seen: cx.now,
                    }) {
                        Ok(()) => cx.errors.count(ArpInputError::Learned, 1),
                        Err(_) => cx.errors.count(ArpInputError::LearnQueueFull, 1),
                    }
                }
            }
            let own = itf.owns(tpa);
            let proxy = !own && tpa != spa && itf.proxy_arp.iter().any(|c| c.contains(tpa));
            let reply = op == ArpOperation::Request && (own || proxy);
            cx.tracer.add(
                &b.hdr,
                ArpTrace {
                    op: u16::from(op),
                    sender: spa,
                    target: tpa,
                    replied: reply,
                },
            );
            if op != ArpOperation::Request {
                b.hdr.error = cx.errors.index(ArpInputError::RepliesReceived);
                v.nexts[k] = NEXT_DROP;
                continue;
            }
            if !reply {
                b.hdr.error = cx.errors.index(ArpInputError::NotForUs);
                v.nexts[k] = NEXT_DROP;
                continue;
            }
            let mac = itf.mac;
            let mut p = ArpPacket::new_unchecked(b.data_mut());
            p.set_operation(ArpOperation::Reply);
            p.set_target_hardware_addr(sha);
            p.set_target_protocol_addr(spa);
            p.set_source_hardware_addr(mac);
            p.set_source_protocol_addr(tpa);
            // Re-expose the Ethernet header ethernet-input stripped and address it back.
            if let Some(eth) = b.prepend(14) {
                eth[0..6].copy_from_slice(&sha.0);
                eth[6..12].copy_from_slice(&mac.0);
                eth[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
            }
            b.hdr.tx_if = rx_if;
            cx.errors.count(
                if own {
                    ArpInputError::Replies
                } else {
                    ArpInputError::ProxyReplies
                },
                1,
            );
            v.nexts[k] = NEXT_OUTPUT;
        }
    }
}
