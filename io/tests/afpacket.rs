//! AF_PACKET rings on a veth pair between two test namespaces (A–B): what B sends arrives in A's
//! RX ring intact and in order; a batch through A's TX device arrives at B; our own
//! transmissions do not come back; oversized frames are counted and dropped; stripped VLAN tags
//! are restored; a refused frame does not stall the TX ring; fanout spreads flows; an idle worker
//! can block on the RX descriptor; and `af-packet-input` → `interface-output` bounces real frames.
//!
//! Runs as root (CI); where the kernel refuses namespaces each test prints why and returns.

use std::fmt;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use vpg_graph::buffer::DATA_SIZE;
use vpg_graph::{
    BufferIndex, BufferPool, Ctx, GraphSpec, InterfaceOutput, Node, NodeRegistration, Runtime,
    RuntimeConfig, Time, TxDevice, Vector, INTERFACE_OUTPUT,
};
use vpg_io::afpacket::{hw_addr, AfPacketRx, RxCounts, RxMeta};
use vpg_io::netns::{self, NetNs, VethPair};
use vpg_io::{AfPacket, AfPacketInput, PacketSocket, RingOptions, AF_PACKET_INPUT};

/// Two namespaces joined by a veth pair, IPv6 off so the kernel sends no chatter of its own.
struct Lab {
    a: NetNs,
    b: NetNs,
    veth: VethPair,
}

fn lab() -> Option<Lab> {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipping AF_PACKET test: {why}");
        return None;
    }
    let a = NetNs::new("vpga").unwrap();
    let b = NetNs::new("vpgb").unwrap();
    for ns in [&a, &b] {
        // Best effort: a kernel without IPv6 has nothing to silence.
        let _ = ns.run_in(|| {
            for k in ["all", "default"] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{k}/disable_ipv6"), "1");
            }
        });
    }
    let veth = VethPair::new(&a, &b).unwrap();
    Some(Lab { a, b, veth })
}

impl Lab {
    fn open_a(&self, opts: &RingOptions) -> AfPacket {
        let dev = self.veth.a.clone();
        self.a
            .run_in(|| AfPacket::open(&dev, opts))
            .unwrap()
            .unwrap()
    }

    fn sock_a(&self) -> PacketSocket {
        let dev = self.veth.a.clone();
        self.a.run_in(|| PacketSocket::open(&dev)).unwrap().unwrap()
    }

    fn sock_b(&self) -> PacketSocket {
        let dev = self.veth.b.clone();
        self.b.run_in(|| PacketSocket::open(&dev)).unwrap().unwrap()
    }
}

const MARK: &[u8; 4] = b"vpg!";

/// A test frame: broadcast, ethertype 0x88b5 (local experimental), the marker, a sequence number
/// and a pattern, `len` bytes in all.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(60)];
    f[0..6].fill(0xff);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14..18].copy_from_slice(MARK);
    f[18..22].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[22..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7) ^ seq as u8;
    }
    f
}

/// The sequence number of one of our frames (the marker may sit anywhere: tags, IP headers).
fn seq_of(f: &[u8]) -> Option<u32> {
    let at = f.windows(4).position(|w| w == MARK)?;
    let s = f.get(at + 4..at + 8)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Reads our frames from an RX ring in bursts of `burst` until `want` arrived or `wait` passed.
fn rx_ours(
    rx: &mut AfPacketRx,
    pool: &mut BufferPool,
    want: usize,
    burst: usize,
    wait: Duration,
) -> (Vec<(Vec<u8>, RxMeta)>, RxCounts) {
    let mut got = Vec::new();
    let mut bis: Vec<BufferIndex> = Vec::new();
    let mut all = RxCounts::default();
    let t0 = Instant::now();
    while got.len() < want && t0.elapsed() < wait {
        let c = rx.rx_burst(pool, burst, |b, bi, m| {
            if seq_of(b.data()).is_some() {
                got.push((b.data().to_vec(), m));
            }
            bis.push(bi);
        });
        pool.free_many(&bis);
        bis.clear();
        all.delivered += c.delivered;
        all.oversized += c.oversized;
        all.runt += c.runt;
        all.truncated += c.truncated;
        all.no_buffers += c.no_buffers;
        all.bad_descriptor += c.bad_descriptor;
        if c.delivered + c.dropped() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    (got, all)
}

/// Receives our frames on a plain socket until `want` arrived or `wait` passed.
fn recv_ours(s: &PacketSocket, want: usize, wait: Duration) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16384];
    let t0 = Instant::now();
    while got.len() < want {
        let left = wait.saturating_sub(t0.elapsed());
        if left.is_zero() {
            break;
        }
        if let Some(n) = s.recv(&mut buf, left).unwrap() {
            let f = &buf[..n.min(buf.len())];
            if seq_of(f).is_some() {
                got.push(f.to_vec());
            }
        }
    }
    got
}

fn pool_with(buffers: &[Vec<u8>], pool: &mut BufferPool) -> Vec<BufferIndex> {
    buffers
        .iter()
        .map(|d| {
            let bi = pool.alloc().unwrap();
            assert!(pool.get_mut(bi).set_data(d));
            bi
        })
        .collect()
}

const SECS: Duration = Duration::from_secs(5);

#[test]
fn rx_ring_receives_what_the_peer_sends_intact_and_in_order() {
    let Some(l) = lab() else { return };
    let (mut rx, _tx) = l.open_a(&RingOptions::default()).split();
    let b = l.sock_b();
    let mut pool = BufferPool::with_count(512, false).unwrap();
    assert!(!rx.has_packets());
    let sizes = |i: u32| 60 + (i as usize * 37) % (1514 - 60 + 1);
    for i in 0..300 {
        b.send(&frame(i, sizes(i))).unwrap();
    }
    // Small bursts: the read position must survive between calls, mid-block.
    let (got, c) = rx_ours(&mut rx, &mut pool, 300, 7, SECS);
    assert_eq!(got.len(), 300, "all frames arrived ({c:?})");
    for (i, (f, _)) in got.iter().enumerate() {
        assert_eq!(
            f,
            &frame(i as u32, sizes(i as u32)),
            "frame {i} intact, in order"
        );
    }
    assert_eq!(got[0].1.frame, 0, "the first frame opens a block");
    assert!(got
        .iter()
        .all(|(f, m)| m.wire_len as usize == f.len() && !m.vlan_restored));
    assert_eq!(c.dropped(), 0);
    assert_eq!(pool.stats().free, 512, "every buffer back in the pool");
    let k = rx.kernel_stats().unwrap();
    assert!(k.packets >= 300 && k.drops == 0, "{k:?}");
}

#[test]
fn small_ring_wraps_many_times_without_losing_a_frame() {
    let Some(l) = lab() else { return };
    // Four blocks: a burst of 13 needs two, or three when the retire timer closes a block in
    // the middle of it; the test reads everything before sending the next burst.
    let opts = RingOptions {
        block_size: 4096,
        block_count: 4,
        ..RingOptions::default()
    };
    let (mut rx, _tx) = l.open_a(&opts).split();
    let b = l.sock_b();
    let mut pool = BufferPool::with_count(64, false).unwrap();
    let mut seq = 0;
    for _ in 0..80 {
        // A 300-byte frame takes 384 bytes of ring: 10 fill a 4 KiB block, 3 start the next.
        for _ in 0..13 {
            b.send(&frame(seq, 300)).unwrap();
            seq += 1;
        }
        let (got, _) = rx_ours(&mut rx, &mut pool, 13, 5, SECS);
        assert_eq!(got.len(), 13);
        for (k, (f, _)) in got.iter().enumerate() {
            assert_eq!(f, &frame(seq - 13 + k as u32, 300));
        }
    }
    assert_eq!(rx.kernel_stats().unwrap().drops, 0);
}

#[test]
fn tx_batch_goes_out_with_one_kick_and_arrives_intact() {
    let Some(l) = lab() else { return };
    let (_rx, mut tx) = l.open_a(&RingOptions::default()).split();
    let b = l.sock_b();
    let mut pool = BufferPool::with_count(1024, false).unwrap();
    let mut seq = 0;
    // Six vectors of 256: more than the ring's 1,044 frames, so it wraps.
    for batch in 0..6 {
        let frames: Vec<Vec<u8>> = (0..256)
            .map(|i| frame(seq + i, 60 + (i as usize * 53) % 1455))
            .collect();
        let bis = pool_with(&frames, &mut pool);
        assert_eq!(tx.tx(&mut pool, &bis), 256, "batch {batch}");
        assert_eq!(tx.counts().kicks, batch + 1, "one kick per batch");
        assert_eq!(pool.stats().free, 1024, "every buffer freed");
        let got = recv_ours(&b, 256, SECS);
        assert_eq!(got.len(), 256, "batch {batch}: {:?}", tx.counts());
        assert_eq!(got, frames, "batch {batch} intact and in order");
        seq += 256;
    }
    let c = tx.counts();
    assert_eq!((c.queued, c.ring_full, c.kick_errors), (1536, 0, 0));
}

#[test]
fn full_tx_ring_stops_frees_the_rest_and_reports_what_was_sent() {
    let Some(l) = lab() else { return };
    let opts = RingOptions {
        tx_frames: 1,
        ..RingOptions::default()
    };
    let (_rx, mut tx) = l.open_a(&opts).split();
    let cap = tx.capacity();
    assert!((1..64).contains(&cap), "one 64 KiB block: {cap}");
    let b = l.sock_b();
    let mut pool = BufferPool::with_count(128, false).unwrap();
    let frames: Vec<Vec<u8>> = (0..cap as u32 + 11).map(|i| frame(i, 100)).collect();
    let bis = pool_with(&frames, &mut pool);
    // Nothing is kicked before the batch is queued, so exactly `cap` fit.
    assert_eq!(tx.tx(&mut pool, &bis), cap);
    assert_eq!(tx.counts().ring_full, 11);
    assert_eq!(pool.stats().free, 128, "sent and refused buffers all freed");
    assert_eq!(recv_ours(&b, cap, SECS), frames[..cap].to_vec());
    // Once the kernel is done with them the frames are free again.
    let more = pool_with(&frames[..cap], &mut pool);
    assert_eq!(tx.tx(&mut pool, &more), cap);
    assert_eq!(recv_ours(&b, cap, SECS).len(), cap);
}

#[test]
fn our_own_transmissions_are_not_received_back() {
    let Some(l) = lab() else { return };
    let (mut rx, mut tx) = l.open_a(&RingOptions::default()).split();
    let b = l.sock_b();
    let mut pool = BufferPool::with_count(256, false).unwrap();
    // Through the TX ring (qdisc bypassed) and through the ordinary stack path on A, which is
    // where the kernel loops outgoing frames back to packet sockets.
    let frames: Vec<Vec<u8>> = (0..100).map(|i| frame(i, 100)).collect();
    let bis = pool_with(&frames, &mut pool);
    assert_eq!(tx.tx(&mut pool, &bis), 100);
    let a_plain = l.sock_a();
    for i in 100..150 {
        a_plain.send(&frame(i, 100)).unwrap();
    }
    assert_eq!(recv_ours(&b, 150, SECS).len(), 150, "B got them all");
    let (echo, _) = rx_ours(&mut rx, &mut pool, 1, 64, Duration::from_millis(300));
    assert!(
        echo.is_empty(),
        "own transmissions came back: {}",
        echo.len()
    );
    // The ring still receives what B sends.
    b.send(&frame(7, 80)).unwrap();
    let (got, _) = rx_ours(&mut rx, &mut pool, 1, 64, SECS);
    assert_eq!(got.len(), 1);
}

#[test]
fn oversized_frames_are_counted_and_dropped_never_cut() {
    let Some(l) = lab() else { return };
    // veth drops frames longer than the receiving end's MTU, so raise both.
    l.veth.set_mtu(9000).unwrap();
    let (mut rx, _tx) = l.open_a(&RingOptions::default()).split();
    let b = l.sock_b();
    let mut pool = BufferPool::with_count(64, false).unwrap();
    for (seq, len) in [
        (0, 100),
        (1, 4000),
        (2, DATA_SIZE),
        (3, DATA_SIZE + 1),
        (4, 200),
    ] {
        b.send(&frame(seq, len)).unwrap();
    }
    let (got, c) = rx_ours(&mut rx, &mut pool, 3, 64, SECS);
    let seqs: Vec<_> = got.iter().map(|(f, _)| seq_of(f).unwrap()).collect();
    assert_eq!(seqs, vec![0, 2, 4], "the fitting frames, whole");
    assert_eq!(
        got[1].0,
        frame(2, DATA_SIZE),
        "exactly a buffer's worth fits"
    );
    assert_eq!(c.oversized, 2, "{c:?}");
    assert_eq!(rx.totals().oversized, 2);
    assert_eq!(pool.stats().free, 64);
}

#[test]
fn a_vlan_tag_the_kernel_strips_is_restored() {
    let Some(l) = lab() else { return };
    let (mut rx, _tx) = l.open_a(&RingOptions::default()).split();
    let b = l.sock_b();
    let mut pool = BufferPool::with_count(64, false).unwrap();
    let mut tagged = frame(5, 100);
    tagged.splice(12..12, [0x81, 0x00, 0x20, 0x64]); // 802.1Q, PCP 1, VID 100
    b.send(&tagged).unwrap();
    let (got, _) = rx_ours(&mut rx, &mut pool, 1, 64, SECS);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, tagged, "tag back in place, bytes intact");
    // The receive path moves the tag out of the frame before packet sockets see it.
    assert!(got[0].1.vlan_restored, "{:?}", got[0].1);
    assert_eq!(got[0].1.wire_len as usize, tagged.len() - 4);
}

#[test]
fn a_frame_the_kernel_refuses_does_not_stall_the_tx_ring() {
    let Some(l) = lab() else { return };
    let (_rx, mut tx) = l.open_a(&RingOptions::default()).split();
    let b = l.sock_b();
    let mut pool = BufferPool::with_count(64, false).unwrap();
    // 1,600 bytes on a 1,500-byte MTU: the kernel refuses it (EMSGSIZE) inside the kick.
    let mut frames = vec![frame(0, 1600)];
    frames.extend((1..11).map(|i| frame(i, 100)));
    let bis = pool_with(&frames, &mut pool);
    tx.tx(&mut pool, &bis);
    let got = recv_ours(&b, 10, SECS);
    assert_eq!(got, frames[1..].to_vec(), "the frames after it went out");
    let bis = pool_with(&frames[1..], &mut pool);
    assert_eq!(tx.tx(&mut pool, &bis), 10);
    assert_eq!(
        recv_ours(&b, 10, SECS).len(),
        10,
        "and the ring keeps going"
    );
}

/// A UDP/IPv4 frame of flow `flow` carrying the marker and `seq`.
fn udp_frame(flow: u16, seq: u32) -> Vec<u8> {
    let mut payload = MARK.to_vec();
    payload.extend_from_slice(&seq.to_be_bytes());
    payload.resize(40, 0);
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 1, 0, 1], [10, 1, 0, 2], 64)
        .udp(10_000 + flow, 4789)
        .write(&mut f, &payload)
        .unwrap();
    f
}

#[test]
fn fanout_spreads_flows_across_sockets_and_keeps_each_flow_on_one() {
    let Some(l) = lab() else { return };
    let opts = RingOptions {
        fanout_group: Some((std::process::id() & 0x7fff) as u16),
        ..RingOptions::default()
    };
    let (mut rx1, _t1) = l.open_a(&opts).split();
    let (mut rx2, _t2) = l.open_a(&opts).split();
    let b = l.sock_b();
    let mut pool = BufferPool::with_count(1024, false).unwrap();
    let flows = 64u16;
    for rep in 0..4u32 {
        for flow in 0..flows {
            b.send(&udp_frame(flow, rep << 16 | flow as u32)).unwrap();
        }
    }
    let total = 4 * flows as usize;
    let mut got1 = Vec::new();
    let mut got2 = Vec::new();
    let t0 = Instant::now();
    while got1.len() + got2.len() < total && t0.elapsed() < SECS {
        got1.extend(rx_ours(&mut rx1, &mut pool, total, 64, Duration::from_millis(5)).0);
        got2.extend(rx_ours(&mut rx2, &mut pool, total, 64, Duration::from_millis(5)).0);
    }
    assert_eq!(got1.len() + got2.len(), total, "each frame exactly once");
    let flows_of = |g: &[(Vec<u8>, RxMeta)]| -> std::collections::BTreeSet<u16> {
        g.iter().map(|(f, _)| seq_of(f).unwrap() as u16).collect()
    };
    let (f1, f2) = (flows_of(&got1), flows_of(&got2));
    assert!(f1.is_disjoint(&f2), "a flow stays on one socket");
    assert!(
        !f1.is_empty() && !f2.is_empty(),
        "both sockets get flows: {} / {}",
        f1.len(),
        f2.len()
    );
}

#[test]
fn an_idle_worker_can_block_on_the_rx_descriptor() {
    let Some(l) = lab() else { return };
    let (mut rx, _tx) = l.open_a(&RingOptions::default()).split();
    let mut input = AfPacketInput::new("ethernet-input");
    let b = l.sock_b();
    let mut pool = BufferPool::with_count(64, false).unwrap();
    let fd = rx.as_raw_fd();
    assert!(!rx.has_packets());
    assert_eq!(
        vpg_graph::sys::poll_fds(&[fd], Duration::from_millis(50)).unwrap(),
        0
    );
    let t0 = Instant::now();
    b.send(&frame(1, 60)).unwrap();
    assert_eq!(
        vpg_graph::sys::poll_fds(&[fd], SECS).unwrap(),
        1,
        "woken by the frame"
    );
    let woke = t0.elapsed();
    assert!(woke < Duration::from_millis(500), "woken after {woke:?}");
    assert!(rx.has_packets());
    let (got, _) = rx_ours(&mut rx, &mut pool, 1, 64, SECS);
    assert_eq!(got.len(), 1);
    assert!(!rx.has_packets(), "nothing left once read");
    // The node reports the same through is_idle and wait_fds.
    input.add_interface(3, rx);
    assert!(input.is_idle());
    let mut fds = Vec::new();
    input.wait_fds(&mut fds);
    assert_eq!(fds, vec![fd]);
    b.send(&frame(2, 60)).unwrap();
    let t0 = Instant::now();
    while input.is_idle() && t0.elapsed() < SECS {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!input.is_idle());
    assert!(input.remove_interface(3));
    assert!(input.is_idle() && input.interfaces().is_empty());
}

/// Sends every packet back out of the interface it came in on, MAC addresses swapped.
struct Bounce;

#[derive(Clone, Copy)]
struct BounceTrace(u32);

impl fmt::Display for BounceTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bounce to {}", self.0)
    }
}

impl Node for Bounce {
    type Trace = BounceTrace;
    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal("bounce", &[INTERFACE_OUTPUT], &[])
    }
    fn process(&mut self, cx: &mut Ctx<'_, BounceTrace>, v: &mut Vector) {
        for k in 0..v.len {
            let b = cx.buffers.get_mut(v.buffers[k]);
            let d = b.data_mut();
            for i in 0..6 {
                d.swap(i, 6 + i);
            }
            b.hdr.tx_if = b.hdr.rx_if;
            cx.tracer.add(&b.hdr, BounceTrace(b.hdr.tx_if));
            v.nexts[k] = 0;
        }
    }
}

fn bounced(f: &[u8]) -> Vec<u8> {
    let mut f = f.to_vec();
    for i in 0..6 {
        f.swap(i, 6 + i);
    }
    f
}

#[test]
fn graph_bounces_real_frames_from_af_packet_input_through_interface_output() {
    let Some(l) = lab() else { return };
    l.veth.set_mtu(9000).unwrap();
    let mut g = GraphSpec::new();
    g.node(|| AfPacketInput::new("bounce")).node(|| Bounce);
    let layout = g.build().unwrap();
    let mut rt = Runtime::new(
        &layout,
        0,
        BufferPool::with_count(2048, false).unwrap(),
        &RuntimeConfig::default(),
    );
    let (rx, tx) = l.open_a(&RingOptions::default()).split();
    const SW_IF: u32 = 1;
    rt.node_mut::<AfPacketInput>(AF_PACKET_INPUT)
        .unwrap()
        .add_interface(SW_IF, rx);
    rt.node_mut::<InterfaceOutput>(INTERFACE_OUTPUT)
        .unwrap()
        .set_device(SW_IF, Some(Box::new(tx)));
    rt.trace_add(AF_PACKET_INPUT, 3).unwrap();
    let b = l.sock_b();
    let frames: Vec<Vec<u8>> = (0..600)
        .map(|i| frame(i, 60 + (i as usize * 13) % 1400))
        .collect();
    for f in &frames {
        b.send(f).unwrap();
    }
    b.send(&frame(9999, 3000)).unwrap(); // oversized: counted, not bounced
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    let t0 = Instant::now();
    while got.len() < frames.len() && t0.elapsed() < SECS {
        rt.dispatch(Time::ZERO);
        while let Some(n) = b.recv(&mut buf, Duration::ZERO).unwrap() {
            if seq_of(&buf[..n]).is_some() {
                got.push(buf[..n].to_vec());
            }
        }
    }
    let want: Vec<Vec<u8>> = frames.iter().map(|f| bounced(f)).collect();
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want, "bounced in order, bytes intact");
    let stats = rt.stats().clone();
    let ifc = &stats.interfaces[SW_IF as usize];
    assert_eq!(ifc.rx_packets.get(), 600);
    assert_eq!(ifc.tx_packets.get(), 600);
    assert_eq!(ifc.drops.get(), 1, "the oversized frame");
    let errors = vpg_graph::show::error_rows(&**rt.layout(), std::slice::from_ref(&stats));
    let oversized = errors
        .iter()
        .find(|e| e.node == AF_PACKET_INPUT && e.name == "oversized")
        .map(|e| e.count);
    assert_eq!(oversized, Some(1), "{errors:?}");
    // Vectors: 600 frames arrive in blocks, so the node fills vectors of many packets.
    let node = layout.node_index(AF_PACKET_INPUT).unwrap() as usize;
    let c = &stats.nodes[node];
    assert!(
        c.vectors.get() == 600,
        "vectors count packets: {}",
        c.vectors.get()
    );
    let trace = rt.trace_lines();
    assert_eq!(trace.len(), 3);
    for (_, lines) in &trace {
        let nodes: Vec<_> = lines.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(nodes, vec![AF_PACKET_INPUT, "bounce", INTERFACE_OUTPUT]);
        assert!(
            lines[0]
                .1
                .text
                .starts_with("af_packet: rx interface 1 len "),
            "{}",
            lines[0].1.text
        );
    }
    assert_eq!(rt.pool_stats().free, 2048, "no buffer leaked");
}

#[test]
fn errors_name_the_interface_and_the_step() {
    let Some(l) = lab() else { return };
    let e =
        l.a.run_in(|| AfPacket::open("nosuchif0", &RingOptions::default()))
            .unwrap()
            .err()
            .unwrap();
    assert!(e.to_string().starts_with("nosuchif0: "), "{e}");
    let bad = RingOptions {
        block_size: 1000,
        ..RingOptions::default()
    };
    let dev = l.veth.a.clone();
    let e =
        l.a.run_in(|| AfPacket::open(&dev, &bad))
            .unwrap()
            .err()
            .unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains(&l.veth.a), "{e}");
    assert!(l.a.run_in(|| ()).is_ok());
    assert!(netns::run_in_netns("vpg-no-such-namespace", || ()).is_err());
}

#[test]
fn hardware_address_is_read_in_the_threads_namespace() {
    let Some(l) = lab() else { return };
    let want = netns::mac_of(&l.a, &l.veth.a).unwrap();
    let dev = l.veth.a.clone();
    assert_eq!(l.a.run_in(|| hw_addr(&dev)).unwrap().unwrap(), want);
    assert!(hw_addr("no-such-if0").is_err());
    let ab = l.open_a(&RingOptions::default());
    assert_eq!(ab.ifname(), l.veth.a);
}

#[test]
fn a_namespace_is_deleted_even_when_the_test_panics() {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipping: {why}");
        return;
    }
    let name = std::sync::Mutex::new(String::new());
    let r = std::panic::catch_unwind(|| {
        let ns = NetNs::new("vpgx").unwrap();
        *name.lock().unwrap() = ns.name.clone();
        assert!(std::path::Path::new(&format!("/var/run/netns/{}", ns.name)).exists());
        // A panic inside run_in comes back to the caller's thread.
        ns.run_in(|| panic!("inside the namespace")).unwrap();
    });
    assert!(r.is_err());
    let name = name.into_inner().unwrap();
    assert!(!name.is_empty());
    assert!(
        !std::path::Path::new(&format!("/var/run/netns/{name}")).exists(),
        "{name} removed on unwind"
    );
}
