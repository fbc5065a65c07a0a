//! `ip4-icmp-error`: turns a packet into the ICMP error its `meta.icmp` asks for (time exceeded,
//! fragmentation needed), addressed back to its source, rate-limited per worker.

use crate::tables::Ip4Tables;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::wire::checksum;
use vpg_graph::{ConfigSet, Ctx, Node, NodeRegistration, Time, Vector};

vpg_graph::error_counters! {
    /// ip4-icmp-error errors and counts.
    pub enum IcmpErrorError {
        /// Errors sent (not an error).
        Sent = "sent": "ICMP error messages sent",
        /// Over the rate limit.
        RateLimited = "rate-limited": "ICMP error not sent: rate limit",
        /// Never answer an ICMP error, a fragment or a broadcast with an error (RFC 1122).
        NotAllowed = "not-allowed": "no ICMP error for ICMP errors, fragments or broadcasts",
        /// The receiving interface has no address to send from.
        NoSource = "no-source-address": "receiving interface has no IPv4 address",
    }
}

const NEXT_DROP: u16 = 0;
const NEXT_LOOKUP: u16 = 1;

/// Most bytes of the offending packet quoted (RFC 1812 4.3.2.3: total datagram ≤ 576 bytes).
const MAX_QUOTE: usize = 576 - 28;

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct IcmpErrorTrace {
    kind: u8,
    code: u8,
    to: Ipv4Addr,
}

impl fmt::Display for IcmpErrorTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ICMP error type {} code {} to {}",
            self.kind, self.code, self.to
        )
    }
}

/// Token bucket: `rate` errors per second, bursts of `burst`.
struct RateLimit {
    tokens: f64,
    last: Time,
    rate: f64,
    burst: f64,
}

impl RateLimit {
    fn allow(&mut self, now: Time) -> bool {
        let dt = now.since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The node.
pub struct IcmpError {
    tables: Arc<Ip4Tables>,
    limit: RateLimit,
}

impl Default for IcmpError {
    fn default() -> Self {
        Self {
            tables: Arc::default(),
            limit: RateLimit {
                tokens: 100.0,
                last: Time::ZERO,
                rate: 1000.0,
                burst: 100.0,
            },
        }
    }
}

impl Node for IcmpError {
    type Trace = IcmpErrorTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            "ip4-icmp-error",
            &[vpg_graph::ERROR_DROP, "ip4-lookup"],
            IcmpErrorError::DESCRIPTIONS,
        )
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        if let Some(t) = c.get::<Ip4Tables>() {
            self.tables = t;
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_, IcmpErrorTrace>, v: &mut Vector) {
        for k in 0..v.len {
            let b = cx.buffers.get_mut(v.buffers[k]);
            let icmp = b.hdr.meta.icmp;
            let src = self
                .tables
                .interface(b.hdr.rx_if)
                .and_then(|i| i.primary_address());
            let d = b.data();
            let verdict = if d.len() < 20 {
                Err(IcmpErrorError::NotAllowed)
            } else {
                let ihl = ((d[0] & 0x0f) as usize * 4).max(20);
                let is_icmp_error =
                    d[9] == 1 && d.get(ihl).is_some_and(|&t| !matches!(t, 0 | 8 | 13 | 14));
                let is_frag = u16::from_be_bytes([d[6], d[7]]) & 0x1fff != 0;
                let orig_src = Ipv4Addr::new(d[12], d[13], d[14], d[15]);
                if is_icmp_error
                    || is_frag
                    || orig_src.is_broadcast()
                    || orig_src.is_multicast()
                    || orig_src.is_unspecified()
                {
                    Err(IcmpErrorError::NotAllowed)
                } else if src.is_none() {
                    Err(IcmpErrorError::NoSource)
                } else if !self.limit.allow(cx.now) {
                    Err(IcmpErrorError::RateLimited)
                } else {
                    Ok(orig_src)
                }
            };
            let to = match verdict {
                Ok(to) => to,
                Err(e) => {
                    b.hdr.error = cx.errors.index(e);
                    v.nexts[k] = NEXT_DROP;
                    continue;
                }
            };
            let quote = b.data().len().min(MAX_QUOTE);
            b.set_len(quote);
            let Some(h) = b.prepend(28) else {
                b.hdr.error = cx.errors.index(IcmpErrorError::NotAllowed);
                v.nexts[k] = NEXT_DROP;
                continue;
            };
            let total = (28 + quote) as u16;
            h[..28].fill(0);
            h[0] = 0x45;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[8] = 64;
            h[9] = 1;
            h[12..16].copy_from_slice(&src.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
            h[16..20].copy_from_slice(&to.octets());
            let c = checksum::data(&h[..20]);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            let d = b.data_mut();
            d[20] = icmp.kind;
            d[21] = icmp.code;
            d[26..28].copy_from_slice(&icmp.data.to_be_bytes());
            let c = checksum::data(&d[20..]);
            d[22..24].copy_from_slice(&c.to_be_bytes());
            cx.errors.count(IcmpErrorError::Sent, 1);
            cx.tracer.add(
                &b.hdr,
                IcmpErrorTrace {
                    kind: icmp.kind,
                    code: icmp.code,
                    to,
                },
            );
            v.nexts[k] = NEXT_LOOKUP;
        }
    }
}
