//! A capture on the underlay while the matrix runs: an AF_PACKET socket (vpg-io's
//! `PacketSocket`) on each node's port of the bridge, in the internet namespace, counting what
//! the nodes send each other. With encryption on, everything between the node IPs must be ESP:
//! no VXLAN (UDP 4789) in clear, no IPv4 header carrying a pod address, and never the marker
//! the demo's pings carry (`ping -p`), which would only show if an inner packet leaked.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

/// The pattern the demo's pings carry (16 bytes, repeated by ping through the payload).
pub const MARKER: [u8; 16] = [
    0x5e, 0xc2, 0xe7, 0x5e, 0xc2, 0xe7, 0x5e, 0xc2, 0xe7, 0x5e, 0xc2, 0xe7, 0x5e, 0xc2, 0xe7, 0x5e,
];

/// `MARKER` as `ping -p` takes it.
pub fn marker_hex() -> String {
    MARKER.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the capture saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames read.
    pub frames: u64,
    /// ESP (IP protocol 50) between the two node IPs.
    pub esp: u64,
    /// VXLAN (UDP to 4789) in clear.
    pub vxlan_clear: u64,
    /// IPv4 headers with a pod address as source or destination (outer or inside clear
    /// VXLAN).
    pub pod_addr_clear: u64,
    /// Frames containing the pings' marker.
    pub marker: u64,
    /// Other IPv4 between the node IPs (neither ESP nor VXLAN).
    pub other_between_nodes: u64,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.frames += o.frames;
        self.esp += o.esp;
        self.vxlan_clear += o.vxlan_clear;
        self.pod_addr_clear += o.pod_addr_clear;
        self.marker += o.marker;
        self.other_between_nodes += o.other_between_nodes;
    }

    /// Whether the capture shows encrypted traffic between the nodes and nothing in clear.
    pub fn encrypted(&self) -> bool {
        self.esp > 0
            && self.vxlan_clear == 0
            && self.pod_addr_clear == 0
            && self.marker == 0
            && self.other_between_nodes == 0
    }

    /// One line for the matrix.
    pub fn summary(&self) -> String {
        format!(
            "{} frames: {} ESP, {} VXLAN in clear, {} with a pod address, {} marker, {} other",
            self.frames,
            self.esp,
            self.vxlan_clear,
            self.pod_addr_clear,
            self.marker,
            self.other_between_nodes
        )
    }
}

/// What to classify by.
#[derive(Clone, Copy, Debug)]
pub struct Filter {
    /// The two node IPs.
    pub nodes: [Ipv4Addr; 2],
    /// The pod network (address, prefix length).
    pub pods: (Ipv4Addr, u8),
}

impl Filter {
    fn is_pod(&self, a: [u8; 4]) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.pods.1))
            .unwrap_or(0);
        u32::from_be_bytes(a) & mask == u32::from(self.pods.0) & mask
    }

    /// Classifies one Ethernet frame.
    pub fn classify(&self, f: &[u8], s: &mut Stats) {
        s.frames += 1;
        if f.windows(MARKER.len()).any(|w| w == MARKER) {
            s.marker += 1;
        }
        if f.len() < 34 || f[12..14] != [0x08, 0x00] {
            return;
        }
        let ip = &f[14..];
        let ihl = usize::from(ip[0] & 15) * 4;
        let (proto, src, dst) = (
            ip[9],
            [ip[12], ip[13], ip[14], ip[15]],
            [ip[16], ip[17], ip[18], ip[19]],
        );
        if self.is_pod(src) || self.is_pod(dst) {
            s.pod_addr_clear += 1;
        }
        let nodes = self.nodes.map(|n| n.octets());
        let between = nodes.contains(&src) && nodes.contains(&dst) && src != dst;
        let dport = ip
            .get(ihl + 2..ihl + 4)
            .map(|p| u16::from_be_bytes([p[0], p[1]]));
        if proto == 17 && dport == Some(4789) {
            s.vxlan_clear += 1;
            // The inner IPv4 header: Ethernet (14) after UDP (8) and VXLAN (8).
            let inner = ihl + 16 + 14;
            if let Some(h) = ip.get(inner..inner + 20) {
                let (a, b) = ([h[12], h[13], h[14], h[15]], [h[16], h[17], h[18], h[19]]);
                if self.is_pod(a) || self.is_pod(b) {
                    s.pod_addr_clear += 1;
                }
            }
        } else if between && proto == 50 {
            s.esp += 1;
        } else if between {
            s.other_between_nodes += 1;
        }
    }
}

/// A running capture.
pub struct Capture {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<Stats>>>,
}

/// Starts capturing on `ifs` in namespace `netns`; returns once every socket is open.
pub fn start(netns: &str, ifs: &[&str], filter: Filter) -> Result<Capture> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for &ifname in ifs {
        let (netns, ifname, stop) = (netns.to_string(), ifname.to_string(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        threads.push(std::thread::spawn(move || -> Result<Stats> {
            // Only this thread enters the namespace; its socket stays there.
            let open = vpg_io::afpacket::enter_netns(&netns)
                .and_then(|()| vpg_io::PacketSocket::open(&ifname))
                .with_context(|| format!("capture on {ifname} in {netns}"));
            let sock = match open {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow!("{e:#}")));
                    return Err(e);
                }
            };
            let mut s = Stats::default();
            let mut buf = vec![0u8; 9216];
            while !stop.load(Ordering::Relaxed) {
                if let Some(n) = sock.recv(&mut buf, Duration::from_millis(50))? {
                    filter.classify(&buf[..n.min(buf.len())], &mut s);
                }
            }
            // What arrived before the stop was asked for.
            while let Some(n) = sock.recv(&mut buf, Duration::from_millis(1))? {
                filter.classify(&buf[..n.min(buf.len())], &mut s);
            }
            Ok(s)
        }));
        ready_rx
            .recv()
            .map_err(|_| anyhow!("capture thread on {ifs:?} ended"))??;
    }
    Ok(Capture { stop, threads })
}

impl Capture {
    /// Stops and sums what every socket saw.
    pub fn finish(self) -> Result<Stats> {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Stats::default();
        for t in self.threads {
            let s = t.join().map_err(|_| anyhow!("capture thread panicked"))??;
            total.add(&s);
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(src: [u8; 4], dst: [u8; 4], proto: u8, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 8;
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
        ip.extend(src);
        ip.extend(dst);
        f.extend(ip);
        f.extend([0x30, 0x39]);
        f.extend(dport.to_be_bytes());
        f.extend([0, 0, 0, 0]);
        f.extend(payload);
        f
    }

    #[test]
    fn frames_are_told_apart() {
        let flt = Filter {
            nodes: [
                "192.168.100.1".parse().unwrap(),
                "192.168.100.2".parse().unwrap(),
            ],
            pods: ("10.1.0.0".parse().unwrap(), 16),
        };
        let (n1, n2) = ([192, 168, 100, 1], [192, 168, 100, 2]);
        let mut s = Stats::default();
        flt.classify(&frame(n1, n2, 50, 0, &[1; 40]), &mut s);
        assert!(s.encrypted(), "{s:?}");
        // Clear VXLAN carrying a pod packet: both counted.
        let mut inner = vec![0u8; 8 + 14];
        inner.extend([
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 1, 1, 2, 10, 1, 2, 2,
        ]);
        flt.classify(&frame(n1, n2, 17, 4789, &inner), &mut s);
        assert_eq!((s.vxlan_clear, s.pod_addr_clear), (1, 1));
        flt.classify(&frame([10, 1, 1, 2], [203, 0, 113, 1], 6, 80, &[]), &mut s);
        assert_eq!(s.pod_addr_clear, 2);
        flt.classify(&frame(n1, n2, 1, 0, &MARKER), &mut s);
        assert_eq!((s.marker, s.other_between_nodes), (1, 1));
        assert!(!s.encrypted());
        // SNATed internet traffic and ARP are neither.
        let mut t = Stats::default();
        flt.classify(&frame(n1, [203, 0, 113, 1], 6, 80, &[]), &mut t);
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[8, 6]);
        flt.classify(&arp, &mut t);
        assert_eq!(
            t,
            Stats {
                frames: 2,
                ..Stats::default()
            }
        );
        assert_eq!(marker_hex().len(), 32);
    }
}
