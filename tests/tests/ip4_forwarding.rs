//! IPv4 forwarding through the graph with the packet generator: rewritten MACs, TTL and
//! checksum; each kind of bad input dropped under its own counter; trace; ARP; ICMP.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use vpg_tests::{arp_request, ping_frame, udp_frame, Harness};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];
const HOST_A: [u8; 6] = [0x02, 0, 0, 0, 1, 0xa];
const HOST_B: [u8; 6] = [0x02, 0, 0, 0, 1, 0xb];

/// Two interfaces: 10.0.1.1/24 (host A at .2) and 10.0.2.1/24 (host B at .2).
fn two_hosts() -> Harness {
    let mut h = Harness::new();
    h.add_interface(0, MAC_A, "10.0.1.1/24");
    h.add_interface(1, MAC_B, "10.0.2.1/24");
    h.add_neighbor(0, "10.0.1.2", HOST_A);
    h.add_neighbor(1, "10.0.2.2", HOST_B);
    h
}

#[test]
fn forwarded_packets_carry_right_macs_ttl_and_checksum() {
    let mut h = two_hosts();
    let payload: Vec<u8> = (0..100u8).collect();
    h.send(
        0,
        vec![udp_frame(MAC_A, HOST_A, "10.0.1.2", "10.0.2.2", 64, &payload); 10],
    );
    let out = h.captured(1);
    assert_eq!(out.len(), 10, "errors: {:?}", h.errors());
    assert!(h.captured(0).is_empty());
    for f in &out {
        assert_eq!(&f[0..6], &HOST_B, "destination MAC is the neighbor's");
        assert_eq!(&f[6..12], &MAC_B, "source MAC is the output interface's");
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(NetSlice::Ipv4(ip)) = p.net else {
            panic!("not ipv4")
        };
        assert_eq!(ip.header().ttl(), 63);
        let hdr = ip.header().to_header();
        assert_eq!(
            hdr.header_checksum,
            hdr.calc_header_checksum(),
            "checksum valid after TTL update"
        );
        let Some(TransportSlice::Udp(udp)) = p.transport else {
            panic!("not udp")
        };
        assert_eq!(udp.payload(), &payload[..]);
    }
    assert!(h.errors().is_empty(), "{:?}", h.errors());
}

#[test]
fn each_bad_input_is_dropped_under_its_own_counter() {
    let mut h = two_hosts();
    let good = udp_frame(MAC_A, HOST_A, "10.0.1.2", "10.0.2.2", 64, b"x");
    let mut bad_csum = good.clone();
    bad_csum[14 + 10] ^= 0xff;
    let mut bad_version = good.clone();
    bad_version[14] = 0x65;
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x44;
    let mut bad_len = good.clone();
    bad_len[14 + 2..14 + 4].copy_from_slice(&2000u16.to_be_bytes());
    let short_ip = good[..14 + 12].to_vec();
    let short_eth = good[..10].to_vec();
    let mut unknown_type = good.clone();
    unknown_type[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    let mut other_mac = good.clone();
    other_mac[0..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
    let ttl1 = udp_frame(MAC_A, HOST_A, "10.0.1.2", "10.0.2.2", 1, b"x");
    let no_route = udp_frame(MAC_A, HOST_A, "10.0.1.2", "192.0.2.1", 64, b"x");
    h.send(
        0,
        vec![
            bad_csum,
            bad_version,
            bad_ihl,
            bad_len,
            short_ip,
            short_eth,
            unknown_type,
            other_mac,
            ttl1,
            no_route,
        ],
    );
    assert_eq!(h.error("ip4-input", "bad-checksum"), 1);
    assert_eq!(h.error("ip4-input", "bad-version"), 1);
    assert_eq!(h.error("ip4-input", "bad-header-length"), 1);
    assert_eq!(h.error("ip4-input", "bad-length"), 1);
    assert_eq!(h.error("ip4-input", "too-short"), 1);
    assert_eq!(h.error("ethernet-input", "too-short"), 1);
    assert_eq!(h.error("ethernet-input", "unknown-ethertype"), 1);
    assert_eq!(h.error("ethernet-input", "l3-mac-mismatch"), 1);
    assert_eq!(h.error("ip4-rewrite", "time-expired"), 1);
    assert_eq!(h.error("ip4-lookup", "no-route"), 1);
    assert!(h.captured(1).is_empty(), "nothing bad is forwarded");
    // TTL 1 gets ICMP time exceeded back to its source, from the receiving interface's address.
    let back = h.captured(0);
    assert_eq!(back.len(), 1);
    let p = SlicedPacket::from_ethernet(&back[0]).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), [10, 0, 1, 1]);
    assert_eq!(ip.header().destination(), [10, 0, 1, 2]);
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!("not icmp")
    };
    assert_eq!(icmp.type_u8(), 11);
    assert_eq!(h.error("ip4-icmp-error", "sent"), 1);
    // Drops are also counted per receiving interface.
    let drops = h.rt.stats().interfaces[0].drops.get();
    assert_eq!(
        drops, 9,
        "9 of the 10 were dropped (ttl 1 became an ICMP reply)"
    );
}

#[test]
fn trace_shows_each_packets_path() {
    let mut h = two_hosts();
    h.rt.trace_add("pg-input", 2).unwrap();
    let good = udp_frame(MAC_A, HOST_A, "10.0.1.2", "10.0.2.2", 64, b"x");
    let mut bad = good.clone();
    bad[14 + 10] ^= 0xff;
    h.send(0, vec![good.clone(), bad, good]);
    let t = h.trace();
    let p1 = t
        .split("Packet 1")
        .nth(1)
        .unwrap()
        .split("Packet 2")
        .next()
        .unwrap();
    let p2 = t.split("Packet 2").nth(1).unwrap();
    let order = [
        "pg-input",
        "ethernet-input",
        "ip4-input",
        "ip4-lookup",
        "ip4-rewrite",
        "interface-output",
    ];
    let mut at = 0;
    for node in order {
        let pos = p1[at..]
            .find(&format!(": {node}\n"))
            .unwrap_or_else(|| panic!("{node} missing in\n{p1}"));
        at += pos;
    }
    assert!(p1.contains("UDP: 10.0.1.2 -> 10.0.2.2 ttl 64"), "{p1}");
    assert!(
        p2.contains("error-drop") && p2.contains("bad-checksum"),
        "{p2}"
    );
    assert!(!t.contains("Packet 3"), "only 2 packets traced:\n{t}");
}

#[test]
fn arp_for_own_and_proxy_addresses_and_learning() {
    let mut h = two_hosts();
    let (tx, rx) = crossbeam_channel::bounded(16);
    h.rt.node_mut::<vpg_ip4::arp_input::ArpInput>("arp-input")
        .unwrap()
        .set_learn_sender(tx);
    h.ip4
        .set_proxy_arp(0, vec!["10.0.1.0/24".parse().unwrap()])
        .unwrap();
    h.commit();
    h.send(
        0,
        vec![
            arp_request(HOST_A, "10.0.1.2", "10.0.1.1"),
            arp_request(HOST_A, "10.0.1.2", "10.0.1.77"),
            arp_request(HOST_A, "10.0.1.2", "10.0.1.2"),
            arp_request(HOST_A, "10.0.1.2", "172.16.0.1"),
        ],
    );
    let replies = h.captured(0);
    assert_eq!(
        replies.len(),
        2,
        "own address and proxy prefix; not the sender's own, not foreign"
    );
    for (r, asked) in replies.iter().zip([[10, 0, 1, 1], [10, 0, 1, 77]]) {
        assert_eq!(&r[0..6], &HOST_A);
        assert_eq!(&r[6..12], &MAC_A);
        assert_eq!(&r[20..22], &[0, 2], "ARP reply");
        assert_eq!(&r[22..28], &MAC_A);
        assert_eq!(&r[28..32], &asked);
        assert_eq!(&r[32..38], &HOST_A);
    }
    assert_eq!(h.error("arp-input", "replies-sent"), 1);
    assert_eq!(h.error("arp-input", "proxy-replies-sent"), 1);
    assert_eq!(h.error("arp-input", "not-for-us"), 2);
    let learned: Vec<_> = rx.try_iter().collect();
    assert_eq!(learned.len(), 4);
    assert!(learned
        .iter()
        .all(|l| l.sw_if == 0 && l.ip.octets() == [10, 0, 1, 2] && l.mac.0 == HOST_A));
}

#[test]
fn unresolved_neighbor_sends_throttled_arp_requests() {
    let mut h = Harness::new();
    h.add_interface(0, MAC_A, "10.0.1.1/24");
    h.add_interface(1, MAC_B, "10.0.2.1/24");
    h.add_neighbor(0, "10.0.1.2", HOST_A);
    h.send(
        0,
        vec![udp_frame(MAC_A, HOST_A, "10.0.1.2", "10.0.2.9", 64, b"x"); 3],
    );
    let req = h.captured(1);
    assert_eq!(req.len(), 1, "one request, the rest throttled");
    assert_eq!(&req[0][0..6], &[0xff; 6]);
    assert_eq!(&req[0][38..42], &[10, 0, 2, 9]);
    assert_eq!(&req[0][28..32], &[10, 0, 2, 1]);
    assert_eq!(h.error("ip4-glean", "throttled"), 2);
    h.now = h.now + std::time::Duration::from_secs(2);
    h.send(
        0,
        vec![udp_frame(MAC_A, HOST_A, "10.0.1.2", "10.0.2.9", 64, b"x")],
    );
    assert_eq!(h.captured(1).len(), 1, "a second later it asks again");
}

#[test]
fn ping_to_interface_address_is_answered() {
    let mut h = two_hosts();
    h.send(
        0,
        vec![ping_frame(MAC_A, HOST_A, "10.0.1.2", "10.0.2.1", 64)],
    );
    let out = h.captured(0);
    assert_eq!(out.len(), 1, "{:?}", h.errors());
    let p = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!()
    };
    assert_eq!(ip.header().source(), [10, 0, 2, 1]);
    assert_eq!(ip.header().destination(), [10, 0, 1, 2]);
    let hdr = ip.header().to_header();
    assert_eq!(hdr.header_checksum, hdr.calc_header_checksum());
    let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
        panic!()
    };
    assert_eq!(icmp.type_u8(), 0, "echo reply");
    let raw = icmp.slice();
    assert_eq!(
        vpg_graph::wire::checksum::data(raw),
        0,
        "ICMP checksum valid"
    );
}

#[test]
fn down_interface_drops_and_feature_arcs_are_skipped_when_disabled() {
    let mut h = two_hosts();
    h.ip4.set_admin_up(0, false).unwrap();
    h.commit();
    h.send(
        0,
        vec![udp_frame(MAC_A, HOST_A, "10.0.1.2", "10.0.2.2", 64, b"x")],
    );
    assert_eq!(h.error("ethernet-input", "interface-down"), 1);
    assert!(h.captured(1).is_empty());
}

#[test]
fn big_packets_with_df_get_fragmentation_needed() {
    let mut h = two_hosts();
    h.ip4.set_mtu(1, 576).unwrap();
    h.commit();
    let with_df = |df: bool| {
        let mut f = udp_frame(MAC_A, HOST_A, "10.0.1.2", "10.0.2.2", 64, &[7u8; 1000]);
        f[14 + 6] = if df {
            f[14 + 6] | 0x40
        } else {
            f[14 + 6] & !0x40
        };
        f[14 + 10..14 + 12].fill(0);
        let c = vpg_graph::wire::checksum::data(&f[14..34]);
        f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
        f
    };
    let (f, no_df) = (with_df(true), with_df(false));
    h.send(0, vec![f, no_df]);
    assert_eq!(h.error("ip4-rewrite", "fragmentation-needed"), 1);
    assert_eq!(h.error("ip4-rewrite", "mtu-exceeded"), 1);
    let back = h.captured(0);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0][14 + 20], 3, "destination unreachable");
    assert_eq!(back[0][14 + 21], 4, "fragmentation needed");
    assert_eq!(
        u16::from_be_bytes([back[0][14 + 26], back[0][14 + 27]]),
        576,
        "next-hop MTU"
    );
}
