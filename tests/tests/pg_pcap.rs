//! The packet generator reads a pcap as input and the capture writes pcap as output: what goes
//! in through a pcap file comes out forwarded in another.

use vpg_graph::pcap;
use vpg_graph::pg::{self, PgInput, Stream, PG_INPUT};
use vpg_tests::{udp_frame, Harness};

#[test]
fn pcap_in_forwarded_pcap_out() {
    let dir = std::env::temp_dir().join(format!("vpg-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.pcap");
    let frames: Vec<Vec<u8>> = (0..20u8)
        .map(|i| {
            udp_frame(
                [2, 0, 0, 0, 0, 0xa],
                [2, 0, 0, 0, 1, 0xa],
                "10.0.1.2",
                "10.0.2.2",
                64,
                &[i; 30],
            )
        })
        .collect();
    pg::write_pcap(&input, &frames).unwrap();

    let mut h = Harness::new();
    h.add_interface(0, [2, 0, 0, 0, 0, 0xa], "10.0.1.1/24");
    h.add_interface(1, [2, 0, 0, 0, 0, 0xb], "10.0.2.1/24");
    h.add_neighbor(1, "10.0.2.2", [2, 0, 0, 0, 1, 0xb]);
    let s = Stream::from_pcap("from-file", 0, &input)
        .unwrap()
        .with_limit(20);
    h.rt.node_mut::<PgInput>(PG_INPUT).unwrap().add_stream(s);
    h.run();
    let out = h.captured(1);
    assert_eq!(out.len(), 20);
    let output = dir.join("out.pcap");
    pg::write_pcap(&output, &out).unwrap();
    let back = pcap::read(std::fs::File::open(&output).unwrap()).unwrap();
    assert_eq!(back.len(), 20);
    for (i, r) in back.iter().enumerate() {
        assert_eq!(&r.data[0..6], &[2, 0, 0, 0, 1, 0xb]);
        assert_eq!(r.data[14 + 8], 63, "TTL decremented");
        assert_eq!(
            &r.data[r.data.len() - 30..],
            &[i as u8; 30][..],
            "payload intact and in order"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pcap_that_is_not_a_pcap_is_an_error() {
    let p = std::env::temp_dir().join(format!("vpg-notpcap-{}", std::process::id()));
    std::fs::write(&p, b"this is not a capture file at all").unwrap();
    assert!(Stream::from_pcap("x", 0, &p).is_err());
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn destination_lists_rewrite_each_packet_with_valid_checksums() {
    let mut h = Harness::new();
    h.add_interface(0, [2, 0, 0, 0, 0, 0xa], "10.0.1.1/24");
    h.add_interface(1, [2, 0, 0, 0, 0, 0xb], "10.0.2.1/24");
    for i in 2..6 {
        h.add_neighbor(1, &format!("10.0.2.{i}"), [2, 0, 0, 0, 1, i]);
    }
    let img = udp_frame(
        [2, 0, 0, 0, 0, 0xa],
        [2, 0, 0, 0, 1, 0xa],
        "10.0.1.2",
        "10.0.2.2",
        64,
        b"payload",
    );
    let dsts: Vec<u32> = (2..6)
        .map(|i| u32::from(std::net::Ipv4Addr::new(10, 0, 2, i)))
        .collect();
    let s = Stream::new("dsts", 0, vec![img])
        .with_destinations(dsts)
        .with_limit(8);
    h.rt.node_mut::<PgInput>(PG_INPUT).unwrap().add_stream(s);
    h.run();
    let out = h.captured(1);
    assert_eq!(out.len(), 8, "{:?}", h.errors());
    for (k, f) in out.iter().enumerate() {
        let d = 2 + (k % 4) as u8;
        assert_eq!(&f[30..34], &[10, 0, 2, d], "destination of packet {k}");
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 1, d], "forwarded to that neighbor");
        assert_eq!(
            vpg_graph::wire::checksum::data(&f[14..34]),
            0,
            "IPv4 checksum valid"
        );
        assert_eq!(
            &f[14 + 20 + 6..14 + 20 + 8],
            &[0, 0],
            "UDP checksum cleared (optional in IPv4)"
        );
    }
}
