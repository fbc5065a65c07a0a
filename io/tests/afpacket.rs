//! AF_PACKET rings on a veth pair between two test namespaces: frames sent on one end arrive on
//! the other intact, our own transmissions do not come back, oversized frames are flagged, and
//! the input node puts received frames into buffers.

use std::time::{Duration, Instant};
use vpg_io::afpacket::{enter_netns, open, AfPacketRx, AfPacketTx, RingOptions};
use vpg_io::netns::{self, NetNs};

fn open_in(ns: &NetNs, dev: &str) -> (AfPacketRx, AfPacketTx) {
    let (name, dev) = (ns.name.clone(), dev.to_string());
    std::thread::spawn(move || {
        enter_netns(&name).unwrap();
        open(&dev, &RingOptions::default()).unwrap()
    })
    .join()
    .unwrap()
}

/// A test frame: broadcast, ethertype 0x88b5 (local experimental), a marker and a sequence number.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(60)];
    f[0..6].fill(0xff);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14..18].copy_from_slice(b"vpg!");
    f[18..22].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[22..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7);
    }
    f
}

/// Collects test frames (ours, by ethertype and marker) for up to `wait`.
fn collect(rx: &mut AfPacketRx, want: usize, wait: Duration) -> (Vec<Vec<u8>>, Vec<u32>) {
    let mut got = Vec::new();
    let mut wire = Vec::new();
    let t0 = Instant::now();
    while got.len() < want && t0.elapsed() < wait {
        rx.rx_burst(256, |f| {
            if f.data.len() >= 18 && f.data[12..14] == [0x88, 0xb5] && &f.data[14..18] == b"vpg!" {
                got.push(f.data.to_vec());
                wire.push(f.wire_len);
            }
        });
        std::thread::sleep(Duration::from_millis(1));
    }
    (got, wire)
}

fn pair() -> Option<(NetNs, NetNs, String, String)> {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipping AF_PACKET test: {why}");
        return None;
    }
    let a = NetNs::new("vpga").unwrap();
    let b = NetNs::new("vpgb").unwrap();
    let (va, vb) = (netns::unique("va"), netns::unique("vb"));
    netns::veth(&va, &a, &vb, &b).unwrap();
    Some((a, b, va, vb))
}

#[test]
fn frames_cross_the_veth_both_ways_intact_and_not_echoed() {
    let Some((a, b, va, vb)) = pair() else { return };
    let (mut rx_a, mut tx_a) = open_in(&a, &va);
    let (mut rx_b, mut tx_b) = open_in(&b, &vb);
    // B -> A, 500 frames in batches of 50 with one kick each.
    for batch in 0..10u32 {
        for i in 0..50 {
            assert!(tx_b.queue(&frame(batch * 50 + i, 60 + (i as usize * 29) % 1400)));
        }
        tx_b.kick();
    }
    let (got, _) = collect(&mut rx_a, 500, Duration::from_secs(10));
    assert_eq!(got.len(), 500, "all frames arrived");
    for (i, f) in got.iter().enumerate() {
        assert_eq!(
            f,
            &frame(i as u32, 60 + (i % 50 * 29) % 1400),
            "frame {i} intact and in order"
        );
    }
    // A -> B, through the TxDevice interface.
    for i in 0..100 {
        assert!(tx_a.queue(&frame(1000 + i, 100)));
    }
    tx_a.kick();
    let (got, _) = collect(&mut rx_b, 100, Duration::from_secs(10));
    assert_eq!(got.len(), 100);
    // A does not receive its own transmissions.
    let (echo, _) = collect(&mut rx_a, 1, Duration::from_millis(300));
    assert!(
        echo.is_empty(),
        "own transmissions came back: {}",
        echo.len()
    );
}

#[test]
fn hardware_address_is_read_in_the_threads_namespace() {
    let Some((a, _b, va, _vb)) = pair() else {
        return;
    };
    let want = netns::mac_of(&a, &va).unwrap();
    let (name, dev) = (a.name.clone(), va.clone());
    let got = std::thread::spawn(move || {
        enter_netns(&name).unwrap();
        vpg_io::afpacket::hw_addr(&dev).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(got, want);
    assert!(vpg_io::afpacket::hw_addr("no-such-if0").is_err());
}

#[test]
fn oversized_frames_are_reported_with_their_wire_length() {
    let Some((a, b, va, vb)) = pair() else { return };
    a.exec(&["ip", "link", "set", &va, "mtu", "9000"]).unwrap();
    b.exec(&["ip", "link", "set", &vb, "mtu", "9000"]).unwrap();
    let (mut rx_a, _tx_a) = open_in(&a, &va);
    let (_rx_b, mut tx_b) = open_in(&b, &vb);
    // The TX ring's frames hold 2 KiB: a jumbo frame is refused there, and counted.
    assert!(!tx_b.queue(&frame(0, 4000)));
    assert_eq!(tx_b.too_big, 1);
    assert!(tx_b.queue(&frame(1, 2000)));
    tx_b.kick();
    let (got, wire) = collect(&mut rx_a, 1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    assert_eq!(wire[0], 2000);
    assert!(
        wire[0] as usize <= vpg_graph::buffer::DATA_SIZE,
        "fits a buffer"
    );
}
