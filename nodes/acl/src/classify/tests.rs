use super::*;
use crate::classify::linear::first_match;
use proptest::prelude::*;

/// Prefixes drawn from a small pool of nested and overlapping networks, so random rules overlap.
fn prefix() -> impl Strategy<Value = (u32, u32)> {
    let bases = prop::sample::select(vec![
        0x0a00_0000u32,
        0x0a01_0000,
        0x0a01_0100,
        0x0a01_0180,
        0xc0a8_0000,
        0xc0a8_0001,
        0x0000_0000,
        0xffff_ff00,
    ]);
    (
        bases,
        prop::sample::select(vec![0u32, 8, 16, 23, 24, 25, 31, 32]),
    )
        .prop_map(|(b, l)| {
            let host = if l == 0 {
                u32::MAX
            } else {
                (1u32 << (32 - l)) - 1
            };
            let lo = b & !host;
            (lo, lo | host)
        })
}

fn range16() -> impl Strategy<Value = (u16, u16)> {
    let pts = prop::sample::select(vec![0u16, 1, 22, 80, 81, 443, 1024, 8080, 65534, 65535]);
    (pts.clone(), pts).prop_map(|(a, b)| (a.min(b), a.max(b)))
}

fn rule_key() -> impl Strategy<Value = RuleKey> {
    (
        prefix(),
        prefix(),
        prop_oneof![3 => range16(), 1 => Just((0u16, 65535u16))],
        prop_oneof![3 => range16(), 1 => Just((0u16, 65535u16))],
        prop::option::of(prop::sample::select(vec![1u8, 6, 17, 132])),
        prop_oneof![6 => Just((0u8, 0u8)), 1 => Just((0x02u8, 0x12u8)), 1 => Just((0x10u8, 0x10u8))],
    )
        .prop_map(|(src, dst, sport, dport, proto, f)| RuleKey {
            src,
            dst,
            sport,
            dport,
            proto,
            tcp_flags: if proto == Some(6) { f } else { (0, 0) },
        })
}

/// Packets near the rule boundaries (where classifiers go wrong).
fn packet() -> impl Strategy<Value = PacketKey> {
    let addr = prop_oneof![
        prop::sample::select(vec![
            0x0a00_0000u32,
            0x0a01_0000,
            0x0a01_00ff,
            0x0a01_0100,
            0x0a01_017f,
            0x0a01_0180,
            0x0a01_01ff,
            0x0a01_ffff,
            0xc0a8_0000,
            0xc0a8_0001,
            0xc0a8_0002,
            0,
            u32::MAX,
        ]),
        any::<u32>()
    ];
    let port = prop_oneof![
        prop::sample::select(vec![
            0u16, 1, 2, 21, 22, 23, 79, 80, 81, 82, 443, 1023, 1024, 8080, 65534, 65535
        ]),
        any::<u16>()
    ];
    (
        addr.clone(),
        addr,
        port.clone(),
        port,
        prop::sample::select(vec![1u8, 6, 17, 132, 47, 0]),
        any::<u8>(),
    )
        .prop_map(|(src, dst, sport, dport, proto, tcp_flags)| PacketKey {
            src,
            dst,
            sport,
            dport,
            proto,
            tcp_flags,
            icmp_id: 0,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The classifier agrees with a linear first-match scan (differential test).
    #[test]
    fn agrees_with_linear_scan(
        rules in prop::collection::vec(rule_key(), 0..200),
        packets in prop::collection::vec(packet(), 64),
    ) {
        let c = Classifier::compile(&rules);
        let mut out = vec![0u32; packets.len()];
        c.classify_batch(&packets, &mut out);
        for (k, &got) in packets.iter().zip(&out) {
            prop_assert_eq!(got, first_match(&rules, k), "packet {}", k);
            prop_assert_eq!(c.classify(k), got);
        }
    }
}

#[test]
fn more_than_one_aggregate_word_and_separate_l4() {
    // 5,000 single-port rules make the port classes too many to cross (separate L4 path) and
    // the bitmaps span two aggregate words; the match must still be the first rule.
    let mut rules: Vec<RuleKey> = (0..5000u32)
        .map(|i| RuleKey {
            src: (0, u32::MAX),
            dst: (i << 8, (i << 8) | 0xff),
            sport: ((i % 60000) as u16, (i % 60000) as u16),
            dport: ((i * 7 % 65000) as u16, (i * 7 % 65000) as u16),
            proto: Some(if i % 2 == 0 { 6 } else { 17 }),
            tcp_flags: (0, 0),
        })
        .collect();
    rules.push(RuleKey {
        src: (0, u32::MAX),
        dst: (0, u32::MAX),
        sport: (0, 65535),
        dport: (0, 65535),
        proto: None,
        tcp_flags: (0, 0),
    });
    let c = Classifier::compile(&rules);
    assert!(c.shape().l4_classes.is_none(), "{:?}", c.shape());
    for i in [0u32, 1, 63, 64, 4095, 4096, 4999] {
        let k = PacketKey {
            src: 1,
            dst: (i << 8) | 3,
            sport: (i % 60000) as u16,
            dport: (i * 7 % 65000) as u16,
            proto: if i % 2 == 0 { 6 } else { 17 },
            tcp_flags: 0,
            icmp_id: 0,
        };
        assert_eq!(c.classify(&k), i);
        assert_eq!(
            c.classify(&PacketKey {
                sport: k.sport.wrapping_add(1),
                ..k
            }),
            5000
        );
    }
}

#[test]
fn empty_list_matches_nothing() {
    let c = Classifier::compile(&[]);
    assert_eq!(c.classify(&PacketKey::default()), NO_MATCH);
    assert!(c.is_empty());
}
