//! The ring walkers against rings where the test plays the kernel: frame layouts, every drop
//! reason, corrupt descriptors and random garbage.

use super::*;

const BS: usize = 4096;

fn dummy_fd() -> OwnedFd {
    OwnedFd::from(std::fs::File::open("/dev/null").unwrap())
}

fn rx(blocks: usize) -> AfPacketRx {
    rx_bs(BS, blocks)
}

fn rx_bs(bs: usize, blocks: usize) -> AfPacketRx {
    let ring = Ring::anonymous(bs * blocks).unwrap();
    AfPacketRx::with_ring(dummy_fd(), ring, bs, blocks, "test0")
}

/// A frame the fake kernel writes into a block.
struct Fake<'a> {
    data: &'a [u8],
    wire_len: u32,
    status: u32,
    pkttype: u8,
    vlan: Option<(u16, u16)>,
}

fn fake(data: &[u8]) -> Fake<'_> {
    Fake {
        data,
        wire_len: data.len() as u32,
        status: 0,
        pkttype: 0,
        vlan: None,
    }
}

/// Lays frames out like the kernel (header, sockaddr_ll, data at a 16-aligned mac offset)
/// and hands the block to user space.
fn fill_block(r: &mut AfPacketRx, block: usize, frames: &[Fake<'_>]) {
    let base = block * r.block_size;
    let first = 48usize;
    let mut off = first;
    for (i, f) in frames.iter().enumerate() {
        let mac = 80usize;
        let size = (mac + f.data.len() + 15) & !15;
        assert!(off + size <= r.block_size, "test frames fit the block");
        let next = if i + 1 == frames.len() { 0 } else { size };
        let p = base + off;
        let ring = &mut r.ring;
        ring.write(p + PKT_NEXT, &(next as u32).to_ne_bytes());
        ring.write(p + PKT_SNAPLEN, &(f.data.len() as u32).to_ne_bytes());
        ring.write(p + PKT_LEN, &f.wire_len.to_ne_bytes());
        let mut status = f.status | TP_STATUS_USER;
        if let Some((tpid, tci)) = f.vlan {
            status |= TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID;
            ring.write(p + PKT_VLAN_TCI, &(tci as u32).to_ne_bytes());
            ring.write(p + PKT_VLAN_TPID, &tpid.to_ne_bytes());
        }
        ring.write(p + PKT_STATUS, &status.to_ne_bytes());
        ring.write(p + PKT_MAC, &(mac as u16).to_ne_bytes());
        ring.write(p + SLL_PKTTYPE, &[f.pkttype]);
        ring.write(p + mac, f.data);
        off += size;
    }
    r.ring
        .write(base + BLOCK_NUM_PKTS, &(frames.len() as u32).to_ne_bytes());
    r.ring
        .write(base + BLOCK_FIRST_PKT, &(first as u32).to_ne_bytes());
    r.ring.store_status(base + BLOCK_STATUS, TP_STATUS_USER);
}

fn eth(len: usize, tag: u8) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| i as u8 ^ tag).collect();
    if len >= 14 {
        f[12] = 0x08;
        f[13] = 0x00;
    }
    f
}

fn collect(
    r: &mut AfPacketRx,
    pool: &mut BufferPool,
    max: usize,
) -> (RxCounts, Vec<(Vec<u8>, RxMeta)>) {
    let mut got = Vec::new();
    let mut bis = Vec::new();
    let c = r.rx_burst(pool, max, |b, bi, m| {
        got.push((b.data().to_vec(), m));
        bis.push(bi);
    });
    pool.free_many(&bis);
    (c, got)
}

#[test]
fn frames_are_copied_in_order_and_the_position_survives_between_bursts() {
    let mut r = rx(2);
    let mut pool = BufferPool::with_count(64, false).unwrap();
    let frames: Vec<Vec<u8>> = (0..5).map(|i| eth(60 + i * 100, i as u8)).collect();
    let fakes: Vec<_> = frames.iter().map(|f| fake(f)).collect();
    fill_block(&mut r, 0, &fakes);
    assert!(r.has_packets());
    let (c, got) = collect(&mut r, &mut pool, 2);
    assert_eq!(c.delivered, 2);
    assert_eq!(got[0].0, frames[0]);
    assert_eq!(got[1].0, frames[1]);
    assert_eq!((got[1].1.block, got[1].1.frame), (0, 1));
    // Still inside block 0: not given back yet.
    assert_eq!(r.ring.load_status(BLOCK_STATUS), TP_STATUS_USER);
    assert!(r.has_packets());
    let (c, got) = collect(&mut r, &mut pool, 100);
    assert_eq!(c.delivered, 3);
    assert_eq!(
        got.iter().map(|g| &g.0).collect::<Vec<_>>(),
        frames[2..].iter().collect::<Vec<_>>()
    );
    assert_eq!(got[2].1.frame, 4);
    assert_eq!(
        r.ring.load_status(BLOCK_STATUS),
        TP_STATUS_KERNEL,
        "block returned"
    );
    assert!(!r.has_packets());
    // The next block, then around the ring to block 0 again.
    fill_block(&mut r, 1, &[fake(&frames[0])]);
    let (c, got) = collect(&mut r, &mut pool, 100);
    assert_eq!((c.delivered, got[0].1.block), (1, 1));
    fill_block(&mut r, 0, &[fake(&frames[1])]);
    let (c, got) = collect(&mut r, &mut pool, 100);
    assert_eq!((c.delivered, got[0].1.block), (1, 0));
    assert_eq!(pool.stats().free, 64, "every buffer came back");
    assert_eq!(r.totals().delivered, 7);
}

#[test]
fn every_drop_reason_is_counted_and_no_frame_is_cut() {
    let mut r = rx_bs(4 * BS, 1);
    let mut pool = BufferPool::with_count(64, false).unwrap();
    let good = eth(100, 1);
    let max = eth(DATA_SIZE, 2);
    let big = eth(DATA_SIZE + 1, 3);
    let runt = eth(13, 4);
    let mut truncated = fake(&good[..64]);
    truncated.wire_len = 100;
    let mut outgoing = fake(&good);
    outgoing.pkttype = PACKET_OUTGOING;
    // A tagged frame of DATA_SIZE - 3 bytes no longer fits once its tag is back.
    let tagged_big = eth(DATA_SIZE - 3, 5);
    let mut tb = fake(&tagged_big);
    tb.vlan = Some((0x8100, 7));
    fill_block(
        &mut r,
        0,
        &[
            fake(&good),
            fake(&max),
            fake(&big),
            fake(&runt),
            truncated,
            outgoing,
            tb,
        ],
    );
    let (c, got) = collect(&mut r, &mut pool, 100);
    assert_eq!(
        c,
        RxCounts {
            delivered: 2,
            oversized: 2,
            runt: 1,
            truncated: 1,
            outgoing: 1,
            ..Default::default()
        }
    );
    assert_eq!(got[0].0, good);
    assert_eq!(got[1].0, max, "a frame of exactly DATA_SIZE bytes fits");
    assert_eq!(c.dropped(), 4);
}

#[test]
fn an_empty_pool_drops_and_counts() {
    let mut r = rx(1);
    let mut pool = BufferPool::with_count(1, false).unwrap();
    let held = pool.alloc().unwrap();
    let good = eth(100, 1);
    fill_block(&mut r, 0, &[fake(&good), fake(&good)]);
    let (c, got) = collect(&mut r, &mut pool, 100);
    assert_eq!((c.no_buffers, c.delivered, got.len()), (2, 0, 0));
    pool.free(held);
}

#[test]
fn a_stripped_vlan_tag_is_put_back() {
    let mut r = rx(1);
    let mut pool = BufferPool::with_count(8, false).unwrap();
    let untagged = eth(60, 9);
    let mut f = fake(&untagged);
    f.vlan = Some((0x88a8, 0x2064));
    let mut g = fake(&untagged);
    g.status = TP_STATUS_CSUMNOTREADY;
    fill_block(&mut r, 0, &[f, g]);
    let (c, got) = collect(&mut r, &mut pool, 100);
    assert_eq!(c.delivered, 2);
    let mut want = untagged[..12].to_vec();
    want.extend_from_slice(&[0x88, 0xa8, 0x20, 0x64]);
    want.extend_from_slice(&untagged[12..]);
    assert_eq!(got[0].0, want);
    assert!(got[0].1.vlan_restored && !got[0].1.csum_not_ready);
    assert_eq!(got[0].1.wire_len, 60);
    assert_eq!(got[1].0, untagged);
    assert!(got[1].1.csum_not_ready && !got[1].1.vlan_restored);
}

#[test]
fn corrupt_descriptors_skip_the_block_without_reading_outside_it() {
    let mut pool = BufferPool::with_count(8, false).unwrap();
    let good = eth(100, 1);
    // (field offset from the block or first frame, value, frames delivered before the damage)
    let cases: &[(&str, usize, u32, u64)] = &[
        (
            "first packet beyond the block",
            BLOCK_FIRST_PKT,
            BS as u32,
            0,
        ),
        (
            "first packet inside the block header",
            BLOCK_FIRST_PKT,
            4,
            0,
        ),
        (
            "first packet near the end",
            BLOCK_FIRST_PKT,
            (BS - 8) as u32,
            0,
        ),
        ("next offset beyond the block", 48 + PKT_NEXT, u32::MAX, 1),
        ("next offset zero while frames remain", 48 + PKT_NEXT, 0, 1),
        ("next offset inside the header", 48 + PKT_NEXT, 3, 1),
    ];
    for &(what, at, value, delivered) in cases {
        let mut r = rx(1);
        fill_block(&mut r, 0, &[fake(&good), fake(&good)]);
        r.ring.write(at, &value.to_ne_bytes());
        let (c, _) = collect(&mut r, &mut pool, 100);
        assert_eq!(c.bad_descriptor, 1, "{what}");
        assert_eq!(c.delivered, delivered, "{what}");
        assert_eq!(r.ring.load_status(BLOCK_STATUS), TP_STATUS_KERNEL, "{what}");
    }
    // A frame whose data would run past the block, and one with its data inside its header.
    for (field, value) in [(PKT_MAC, 4000u32), (PKT_MAC, 8)] {
        let mut r = rx(1);
        fill_block(&mut r, 0, &[fake(&good)]);
        r.ring.write(48 + field, &(value as u16).to_ne_bytes());
        let (c, _) = collect(&mut r, &mut pool, 100);
        assert_eq!((c.bad_descriptor, c.delivered), (1, 0));
    }
    // Billions of frames announced: bounded by max, then by the walk leaving the block.
    let mut r = rx(1);
    fill_block(&mut r, 0, &[fake(&good)]);
    r.ring.write(BLOCK_NUM_PKTS, &u32::MAX.to_ne_bytes());
    let (c, _) = collect(&mut r, &mut pool, 100);
    assert_eq!((c.delivered, c.bad_descriptor), (1, 1));
    assert_eq!(pool.stats().free, 8);
}

#[test]
fn random_garbage_in_handed_over_blocks_never_panics() {
    let mut pool = BufferPool::with_count(256, false).unwrap();
    let mut r = rx(4);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let frames: Vec<Vec<u8>> = (0..6).map(|i| eth(14 + i * 97, i as u8)).collect();
    let mut all = RxCounts::default();
    for round in 0..4000 {
        let base = r.block * BS;
        if round % 2 == 0 {
            // Pure junk.
            let mut junk = [0u8; BS];
            for w in junk.chunks_mut(8) {
                w.copy_from_slice(&rnd().to_ne_bytes());
            }
            r.ring.write(base, &junk);
        } else {
            // A well-formed block with a few bytes of its headers flipped.
            let n = 1 + (rnd() % 6) as usize;
            let fakes: Vec<_> = frames[..n].iter().map(|f| fake(f)).collect();
            let block = r.block;
            fill_block(&mut r, block, &fakes);
            for _ in 0..1 + rnd() % 4 {
                let at = (rnd() % 512) as usize;
                r.ring.write(base + at, &[rnd() as u8]);
            }
        }
        r.ring.store_status(base + BLOCK_STATUS, TP_STATUS_USER);
        let (c, got) = collect(&mut r, &mut pool, 1 + (rnd() % 8) as usize);
        assert!(got
            .iter()
            .all(|(d, _)| d.len() >= MIN_FRAME && d.len() <= DATA_SIZE));
        assert_eq!(c.delivered as usize, got.len());
        all.add(&c);
        // Drain whatever is left of this block.
        while r.left > 0 {
            let (c, _) = collect(&mut r, &mut pool, 300);
            all.add(&c);
        }
    }
    assert_eq!(pool.stats().free, 256, "no buffer leaked");
    assert!(all.delivered > 1000 && all.bad_descriptor > 100, "{all:?}");
}

fn tx(frames: usize) -> AfPacketTx {
    let blocks = frames.div_ceil(TX_FRAMES_PER_BLOCK);
    let ring = Ring::anonymous(blocks * TX_BLOCK_SIZE).unwrap();
    AfPacketTx::with_ring(
        dummy_fd(),
        ring,
        blocks * TX_FRAMES_PER_BLOCK,
        false,
        "test0",
    )
}

/// Offset of TX frame `i` as the kernel computes it (frames never cross blocks).
fn tx_off(i: usize) -> usize {
    i / TX_FRAMES_PER_BLOCK * TX_BLOCK_SIZE + i % TX_FRAMES_PER_BLOCK * TX_FRAME_SIZE
}

#[test]
fn tx_fills_frames_where_the_kernel_reads_them_and_stops_when_full() {
    let mut t = tx(1);
    let n = t.capacity();
    assert_eq!(n, TX_FRAMES_PER_BLOCK);
    let mut pool = BufferPool::with_count(2 * n as u32, false).unwrap();
    let bis: Vec<_> = (0..n + 5)
        .map(|i| {
            let bi = pool.alloc().unwrap();
            pool.get_mut(bi).set_data(&eth(60 + i, i as u8));
            bi
        })
        .collect();
    assert_eq!(t.tx(&mut pool, &bis), n, "ring full after capacity frames");
    assert_eq!(
        pool.stats().free,
        2 * n as u32,
        "every buffer freed, sent or not"
    );
    let c = t.counts();
    assert_eq!((c.queued, c.ring_full, c.kicks), (n as u64, 5, 1));
    assert_eq!(c.kick_errors, 1, "/dev/null is no socket");
    for i in [0, 1, n - 1] {
        let off = tx_off(i);
        assert_eq!(t.ring.load_status(off), TP_STATUS_SEND_REQUEST);
        assert_eq!(t.ring.read_u32(off + TX_LEN), Some(60 + i as u32));
        assert_eq!(
            t.ring.bytes(off + TX_DATA_OFFSET, 60 + i).unwrap(),
            &eth(60 + i, i as u8)[..]
        );
    }
    // The kernel sends frame 0 (AVAILABLE with a timestamp bit) and refuses frame 1.
    t.ring.store_status(tx_off(0), 1 << 29);
    t.ring.store_status(tx_off(1), 1 << 2);
    assert_eq!(t.queue(&eth(70, 1)), Ok(()));
    assert_eq!(t.queue(&eth(70, 1)), Ok(()));
    assert_eq!(t.queue(&eth(70, 1)), Err(TxRefused::RingFull));
}

#[test]
fn tx_refuses_runts_and_frames_longer_than_a_buffer_can_be() {
    let mut t = tx(64);
    assert!(t.capacity() >= 64);
    assert_eq!(t.queue(&[0; 13]), Err(TxRefused::Runt));
    assert_eq!(
        t.queue(&vec![0; HEADROOM + DATA_SIZE + 1]),
        Err(TxRefused::TooBig)
    );
    assert_eq!(t.queue(&vec![0; HEADROOM + DATA_SIZE]), Ok(()));
    // Frames of the second block start at its boundary.
    for _ in 1..=TX_FRAMES_PER_BLOCK {
        t.queue(&eth(60, 0)).unwrap();
    }
    assert_eq!(t.next_off, tx_off(TX_FRAMES_PER_BLOCK + 1));
    assert_eq!(t.ring.load_status(TX_BLOCK_SIZE), TP_STATUS_SEND_REQUEST);
    let c = t.counts();
    assert_eq!(
        (c.runt, c.too_big, c.queued),
        (1, 1, 1 + TX_FRAMES_PER_BLOCK as u64)
    );
}

#[test]
fn classify_boundaries() {
    assert_eq!(classify(14, 14, false), Ok(14));
    assert_eq!(classify(13, 13, false), Err(Reject::Runt));
    assert_eq!(classify(2048, 2048, false), Ok(2048));
    assert_eq!(classify(2044, 2044, true), Ok(2048));
    assert_eq!(classify(2045, 2045, true), Err(Reject::Oversized));
    assert_eq!(classify(100, 4000, false), Err(Reject::Oversized));
    assert_eq!(classify(99, 100, false), Err(Reject::Truncated));
    assert_eq!(classify(0, 0, false), Err(Reject::Runt));
    assert_eq!(classify(u32::MAX, u32::MAX, true), Err(Reject::Oversized));
}

#[test]
fn options_are_checked_by_name() {
    let bad = [
        RingOptions {
            block_size: 3000,
            ..Default::default()
        },
        RingOptions {
            block_size: 2048,
            ..Default::default()
        },
        RingOptions {
            block_count: 0,
            ..Default::default()
        },
        RingOptions {
            block_count: 1 << 20,
            ..Default::default()
        },
        RingOptions {
            tx_frames: 0,
            ..Default::default()
        },
    ];
    for o in bad {
        let e = o.check("eth9").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().starts_with("eth9: ring options:"), "{e}");
    }
    RingOptions::default().check("eth9").unwrap();
    assert!(ifindex("").is_err());
    assert!(ifindex("a-name-longer-than-15").is_err());
    assert!(ifindex("nul\0").is_err());
    let e = ifindex("vpgnosuchif0").unwrap_err();
    assert!(e.to_string().contains("vpgnosuchif0"), "{e}");
}
