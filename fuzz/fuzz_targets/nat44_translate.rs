//! NAT44's packet parser and rewrite: any bytes parse or fail cleanly; a parsed packet rewritten
//! to another flow parses back to exactly that flow (for the shapes whose key is the packet's own
//! header), and neither step panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vpg_nat44::flow::{parse, Shape};

fuzz_target!(|data: &[u8]| {
    if data.len() < 13 {
        return;
    }
    let (head, packet) = data.split_at(13);
    let mut d = packet.to_vec();
    let Ok(p) = parse(&d) else { return };
    let to = vpg_nat44::Flow {
        src: u32::from_be_bytes([head[0], head[1], head[2], head[3]]),
        dst: u32::from_be_bytes([head[4], head[5], head[6], head[7]]),
        sport: u16::from_be_bytes([head[8], head[9]]),
        dport: u16::from_be_bytes([head[10], head[11]]),
        proto: p.flow.proto,
    };
    // Echo keys carry the identifier on one side only.
    let to = match p.shape {
        Shape::EchoRequest => vpg_nat44::Flow { dport: 0, ..to },
        Shape::EchoReply => vpg_nat44::Flow { sport: 0, ..to },
        Shape::Other => vpg_nat44::Flow { sport: 0, dport: 0, ..to },
        _ => to,
    };
    vpg_nat44::translate::rewrite(&mut d, &p, &to);
    if !matches!(p.shape, Shape::IcmpError { .. }) {
        assert_eq!(parse(&d).map(|q| q.flow), Ok(to));
    }
});
