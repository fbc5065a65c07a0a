//! The packet views as a node crate sees them: only the public `vpg_graph::wire` API.

use std::net::Ipv4Addr;

use vpg_graph::wire::{
    checksum, walk, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Cidr,
    Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Emits Ethernet / IPv4 / UDP with `payload`, the way an emit path does: `new_unchecked`.
fn udp_frame(payload: &[u8]) -> Vec<u8> {
    let udp = UdpRepr {
        src_port: 1234,
        dst_port: 53,
        payload_len: payload.len(),
    };
    let ip = Ipv4Repr {
        src_addr: A,
        dst_addr: B,
        protocol: IpProtocol::Udp,
        payload_len: 8 + payload.len(),
        ttl: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
        ethertype: EtherType::Ipv4,
    };
    let mut buf = vec![0u8; eth.buffer_len() + ip.buffer_len() + udp.buffer_len() + payload.len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet);
    let mut datagram = UdpPacket::new_unchecked(packet.payload_mut());
    udp.emit(&mut datagram);
    datagram.payload_mut().copy_from_slice(payload);
    datagram.fill_checksum(A, B);
    buf
}

#[test]
fn receive_path_reads_what_emit_wrote() {
    let buf = udp_frame(b"hello");
    assert_eq!(walk(&buf), 3);
    let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
    let ip = Ipv4Packet::new_checked(frame.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(
        ip.to_string(),
        "IPv4 10.0.0.1 > 10.0.0.2 ttl 64 proto UDP len 33"
    );
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert!(udp.verify_checksum(ip.src_addr(), ip.dst_addr()));
    assert_eq!(udp.payload(), b"hello");
    assert!("10.0.0.0/24"
        .parse::<Ipv4Cidr>()
        .unwrap()
        .contains(ip.dst_addr()));
}

#[test]
fn nat_style_rewrite_patches_both_checksums_incrementally() {
    let mut buf = udp_frame(b"hello");
    let new_src = Ipv4Addr::new(192, 0, 2, 9);
    let mut frame = EthernetFrame::new_checked(&mut buf[..]).unwrap();
    let mut ip = Ipv4Packet::new_checked(frame.payload_mut()).unwrap();
    let old_src = ip.src_u32();
    ip.set_src_addr(new_src);
    let ip_sum = checksum::update_u32(ip.checksum(), old_src, new_src.into());
    ip.set_checksum(ip_sum);
    ip.decrement_ttl();
    let dst = ip.dst_addr();
    let mut udp = UdpPacket::new_checked(ip.payload_mut()).unwrap();
    let udp_sum = checksum::update_u16(
        checksum::update_u32(udp.checksum(), old_src, new_src.into()),
        1234,
        4321,
    );
    udp.set_src_port(4321);
    udp.set_checksum(udp_sum);
    assert!(udp.verify_checksum(new_src, dst));

    let ip = Ipv4Packet::new_checked(&buf[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.ttl()), (new_src, 63));
}
