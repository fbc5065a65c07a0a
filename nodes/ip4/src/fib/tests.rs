use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::table;
use super::testgen::{covered_destinations, random_routes};
use super::*;

const DROP: AdjIndex = 0;

fn a(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn d(s: &str) -> u32 {
    u32::from(a(s))
}

/// Naive longest-prefix match over a reference model.
fn naive(model: &BTreeMap<(u32, u8), AdjIndex>, default: AdjIndex, dst: u32) -> AdjIndex {
    model
        .iter()
        .filter(|(&(p, l), _)| dst & mask(l) == p)
        .max_by_key(|(&(_, l), _)| l)
        .map_or(default, |(_, &adj)| adj)
}

/// Checks `lookup` and `lookup_batch` of a fresh snapshot against the model at `addrs`.
fn check_against(
    fib: &Fib,
    model: &BTreeMap<(u32, u8), AdjIndex>,
    default: AdjIndex,
    addrs: &[u32],
) {
    let snap = fib.snapshot();
    let mut out = vec![u32::MAX; addrs.len()];
    snap.lookup_batch(addrs, &mut out);
    for (&dst, &got) in addrs.iter().zip(&out) {
        let want = naive(model, default, dst);
        assert_eq!(snap.lookup(dst), want, "lookup {}", Ipv4Addr::from(dst));
        assert_eq!(got, want, "lookup_batch {}", Ipv4Addr::from(dst));
    }
    assert_eq!(fib.len(), model.len());
    let routes: Vec<_> = fib.routes().collect();
    let want: Vec<_> = model
        .iter()
        .map(|(&(p, l), &adj)| (Ipv4Addr::from(p), l, adj))
        .collect();
    assert_eq!(routes, want);
}

/// Addresses at and around the edges of every route, plus a few fixed ones.
fn edge_addrs(model: &BTreeMap<(u32, u8), AdjIndex>) -> Vec<u32> {
    let mut v = vec![0, u32::MAX, 0x8000_0000, 0x7fff_ffff];
    for &(p, l) in model.keys() {
        let end = p | !mask(l);
        v.extend([
            p,
            end,
            p.wrapping_sub(1),
            end.wrapping_add(1),
            p | (!mask(l) >> 1),
        ]);
    }
    v
}

#[test]
fn empty_returns_default() {
    let fib = Fib::new(7);
    assert!(fib.is_empty());
    assert_eq!(fib.len(), 0);
    let s = fib.snapshot();
    for dst in [0, 1, 0x0a00_0001, u32::MAX] {
        assert_eq!(s.lookup(dst), 7);
    }
    let mut out = [0; 3];
    s.lookup_batch(&[0, 5, u32::MAX], &mut out);
    assert_eq!(out, [7, 7, 7]);
}

#[test]
fn default_route_slash_zero() {
    let mut fib = Fib::new(DROP);
    assert_eq!(fib.insert(a("0.0.0.0"), 0, 9).unwrap(), None);
    assert_eq!(fib.snapshot().lookup(d("203.0.113.9")), 9);
    assert_eq!(fib.snapshot().lookup(u32::MAX), 9);
    fib.insert(a("10.0.0.0"), 8, 3).unwrap();
    assert_eq!(fib.snapshot().lookup(d("10.1.1.1")), 3);
    assert_eq!(fib.snapshot().lookup(d("11.1.1.1")), 9);
    assert_eq!(fib.remove(a("0.0.0.0"), 0), Some(9));
    assert_eq!(fib.snapshot().lookup(d("11.1.1.1")), DROP);
    assert_eq!(fib.snapshot().lookup(d("10.1.1.1")), 3);
}

#[test]
fn host_route_slash_32() {
    let mut fib = Fib::new(DROP);
    fib.insert(a("192.0.2.0"), 24, 1).unwrap();
    fib.insert(a("192.0.2.77"), 32, 2).unwrap();
    let s = fib.snapshot();
    assert_eq!(s.lookup(d("192.0.2.77")), 2);
    assert_eq!(s.lookup(d("192.0.2.76")), 1);
    assert_eq!(s.lookup(d("192.0.2.78")), 1);
    assert_eq!(s.lookup(d("192.0.3.77")), DROP);
    fib.insert(a("255.255.255.255"), 32, 5).unwrap();
    fib.insert(a("0.0.0.0"), 32, 6).unwrap();
    let s = fib.snapshot();
    assert_eq!(s.lookup(u32::MAX), 5);
    assert_eq!(s.lookup(u32::MAX - 1), DROP);
    assert_eq!(s.lookup(0), 6);
    assert_eq!(s.lookup(1), DROP);
}

#[test]
fn overlapping_longest_wins() {
    let mut fib = Fib::new(DROP);
    fib.insert(a("10.0.0.0"), 8, 1).unwrap();
    fib.insert(a("10.1.0.0"), 16, 2).unwrap();
    fib.insert(a("10.1.2.0"), 24, 3).unwrap();
    fib.insert(a("10.1.2.128"), 25, 4).unwrap();
    fib.insert(a("10.1.2.130"), 31, 5).unwrap();
    let s = fib.snapshot();
    assert_eq!(s.lookup(d("10.9.9.9")), 1);
    assert_eq!(s.lookup(d("10.1.9.9")), 2);
    assert_eq!(s.lookup(d("10.1.2.1")), 3);
    assert_eq!(s.lookup(d("10.1.2.129")), 4);
    assert_eq!(s.lookup(d("10.1.2.130")), 5);
    assert_eq!(s.lookup(d("10.1.2.131")), 5);
    assert_eq!(s.lookup(d("10.1.2.132")), 4);
    assert_eq!(s.lookup(d("10.1.3.0")), 2);
}

#[test]
fn replace_returns_old() {
    let mut fib = Fib::new(DROP);
    assert_eq!(fib.insert(a("10.0.0.0"), 8, 1).unwrap(), None);
    assert_eq!(fib.insert(a("10.0.0.0"), 8, 2).unwrap(), Some(1));
    assert_eq!(fib.insert(a("10.0.0.0"), 8, 2).unwrap(), Some(2));
    assert_eq!(fib.len(), 1);
    assert_eq!(fib.get(a("10.0.0.0"), 8), Some(2));
    assert_eq!(fib.snapshot().lookup(d("10.2.3.4")), 2);
}

#[test]
fn remove_restores_covering_route() {
    let mut fib = Fib::new(DROP);
    fib.insert(a("10.0.0.0"), 8, 1).unwrap();
    fib.insert(a("10.1.0.0"), 16, 2).unwrap();
    fib.insert(a("10.1.2.0"), 24, 3).unwrap();
    assert_eq!(fib.remove(a("10.1.0.0"), 16), Some(2));
    let s = fib.snapshot();
    assert_eq!(s.lookup(d("10.1.9.9")), 1);
    assert_eq!(s.lookup(d("10.1.2.9")), 3);
    assert_eq!(fib.remove(a("10.1.2.0"), 24), Some(3));
    assert_eq!(fib.snapshot().lookup(d("10.1.2.9")), 1);
    assert_eq!(fib.remove(a("10.1.2.0"), 24), None);
    assert_eq!(fib.remove(a("10.0.0.0"), 8), Some(1));
    assert_eq!(fib.snapshot().lookup(d("10.1.2.9")), DROP);
    assert!(fib.is_empty());
}

#[test]
fn invalid_prefixes_rejected() {
    let mut fib = Fib::new(DROP);
    assert_eq!(
        fib.insert(a("10.0.0.1"), 8, 1),
        Err(FibError::HostBitsSet {
            prefix: a("10.0.0.1"),
            len: 8
        })
    );
    assert_eq!(
        fib.insert(a("10.0.0.0"), 33, 1),
        Err(FibError::InvalidLength { len: 33 })
    );
    assert_eq!(
        fib.insert(a("0.0.0.1"), 0, 1),
        Err(FibError::HostBitsSet {
            prefix: a("0.0.0.1"),
            len: 0
        })
    );
    assert!(fib.insert(a("10.0.0.1"), 32, 1).is_ok());
    assert!(fib.is_empty() || fib.len() == 1);
    assert_eq!(fib.remove(a("10.0.0.1"), 8), None);
    assert_eq!(fib.remove(a("10.0.0.0"), 200), None);
    assert_eq!(fib.get(a("10.0.0.1"), 255), None);
    assert_eq!(fib.len(), 1);
    assert!(!FibError::InvalidLength { len: 40 }.to_string().is_empty());
}

#[test]
fn large_adjacency_values() {
    let big = u32::MAX;
    let mut fib = Fib::new(big - 1);
    assert_eq!(fib.snapshot().lookup(1), big - 1);
    fib.insert(a("10.0.0.0"), 8, big).unwrap();
    fib.insert(a("10.1.0.0"), 16, 0x8000_0000).unwrap();
    fib.insert(a("10.1.1.0"), 24, 0x7fff_ffff).unwrap();
    let s = fib.snapshot();
    let mut out = [0; 4];
    s.lookup_batch(
        &[d("10.2.0.0"), d("10.1.2.0"), d("10.1.1.1"), d("11.0.0.0")],
        &mut out,
    );
    assert_eq!(out, [big, 0x8000_0000, 0x7fff_ffff, big - 1]);
    assert_eq!(
        fib.insert(a("10.0.0.0"), 8, 0x8000_0000).unwrap(),
        Some(big)
    );
    assert_eq!(fib.remove(a("10.1.0.0"), 16), Some(0x8000_0000));
    assert_eq!(fib.snapshot().lookup(d("10.1.2.0")), 0x8000_0000);
    assert_eq!(fib.snapshot().lookup(d("12.0.0.0")), big - 1);
}

#[test]
fn dense_slash_24_and_slash_16() {
    // Every /32 of a /24 with its own adjacency forces direct plies at both levels.
    let mut fib = Fib::new(DROP);
    let mut model = BTreeMap::new();
    fib.insert(a("10.1.0.0"), 16, 1000).unwrap();
    model.insert((d("10.1.0.0"), 16), 1000);
    for x in 0..256u32 {
        let p = d("10.1.7.0") | x;
        fib.insert(Ipv4Addr::from(p), 32, x + 1).unwrap();
        model.insert((p, 32), x + 1);
    }
    for b in 0..64u32 {
        let p = d("10.1.0.0") | b << 10;
        fib.insert(Ipv4Addr::from(p), 22, 2000 + b).unwrap();
        model.insert((p, 22), 2000 + b);
    }
    let addrs: Vec<u32> = (0..65536u32)
        .map(|x| d("10.1.0.0") | x)
        .chain(edge_addrs(&model))
        .collect();
    check_against(&fib, &model, DROP, &addrs);
    for x in (0..256u32).step_by(3) {
        let p = d("10.1.7.0") | x;
        assert_eq!(fib.remove(Ipv4Addr::from(p), 32), Some(x + 1));
        model.remove(&(p, 32));
    }
    check_against(&fib, &model, DROP, &addrs);
    for b in 0..64u32 {
        let p = d("10.1.0.0") | b << 10;
        assert_eq!(fib.remove(Ipv4Addr::from(p), 22), Some(2000 + b));
        model.remove(&(p, 22));
    }
    for x in 0..256u32 {
        let p = d("10.1.7.0") | x;
        if fib.remove(Ipv4Addr::from(p), 32).is_some() {
            model.remove(&(p, 32));
        }
        if x % 37 == 0 {
            check_against(&fib, &model, DROP, &addrs);
        }
    }
    check_against(&fib, &model, DROP, &addrs);
    assert_eq!(fib.len(), 1);
    // Thinned out, the /16 folds back into a leaf and the nodes return to the free lists.
    assert_eq!(fib.t.root_entry((d("10.1.0.0") >> 16) as usize), 1000);
    assert_eq!(fib.free_ply.len() as u32, fib.next_ply);
    let free: usize = fib
        .free_lines
        .iter()
        .enumerate()
        .map(|(n, v)| v.len() * (n + 1))
        .sum();
    assert_eq!(free as u32, fib.next_line);
}

#[test]
fn one_batch_mixes_every_descriptor_kind() {
    // In one block: leaves, big leaves, lines with 8-, 16- and 32-bit values (some of them big
    // adjacencies), and a dense /16 whose ply slots hold lines and leaves, interleaved so that
    // ply lanes join the line queue behind the others.
    let mut fib = Fib::new(DROP);
    let mut model = BTreeMap::new();
    let mut add = |p: u32, l: u8, adj: AdjIndex| {
        fib.insert(Ipv4Addr::from(p), l, adj).unwrap();
        model.insert((p, l), adj);
    };
    add(d("9.0.0.0"), 8, 0x9000_0000);
    for (net, base) in [
        (d("20.0.0.0"), 1u32),
        (d("30.0.0.0"), 300),
        (d("40.0.0.0"), 70_000),
    ] {
        add(net, 16, base);
        for j in 0..40u32 {
            let adj = if base == 70_000 && j % 3 == 0 {
                0x8000_0000 | j
            } else {
                base + j
            };
            add(net | j << 9, 24, adj);
        }
    }
    add(d("10.1.0.0"), 16, 5);
    for x in 0..256u32 {
        add(d("10.1.7.0") | x, 32, 100 + x);
    }
    for b in 0..64u32 {
        add(d("10.1.0.0") | b << 10, 22, 7 + b);
    }
    let fib = fib;
    let mut addrs: Vec<u32> = Vec::new();
    let mut x = 0x2545_f491u32;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let base = [
            d("9.9.0.0"),
            d("20.0.0.0"),
            d("30.0.0.0"),
            d("40.0.0.0"),
            d("10.1.0.0"),
        ];
        addrs.push(base[(x % 5) as usize] | (x >> 8) & 0xffff);
        addrs.push(d("10.1.7.0") | x & 0xff);
    }
    let snap = fib.snapshot();
    for len in [1, 2, 63, 64, 65, 129, 256, 257, 600, addrs.len()] {
        let mut out = vec![u32::MAX; len];
        snap.lookup_batch(&addrs[..len], &mut out);
        for (&dst, &got) in addrs.iter().zip(&out) {
            assert_eq!(
                got,
                naive(&model, DROP, dst),
                "{} in {len}",
                Ipv4Addr::from(dst)
            );
        }
    }
}

/// Root slots that refer further, counted.
fn refs(fib: &Fib) -> u32 {
    (0..65536)
        .filter(|&c| fib.t.root_entry(c) & NODE != 0)
        .count() as u32
}

#[test]
fn dense_and_sparse_tables_take_both_batch_shapes() {
    // A /17 in the upper half of every /16: every root slot refers to a line, so batches take
    // the one-pass shape; then most are removed and batches take the staged shape.
    let mut fib = Fib::new(DROP);
    let want = |dst: u32, present: &dyn Fn(u32) -> bool| {
        let h = dst >> 16;
        if dst & 0x8000 != 0 && present(h) {
            h + 1
        } else {
            DROP
        }
    };
    for h in 0..65536u32 {
        fib.insert(Ipv4Addr::from(h << 16 | 0x8000), 17, h + 1)
            .unwrap();
    }
    assert_eq!(refs(&fib), 65536);
    assert_eq!(fib.t.refs, 65536);
    assert!(fib.t.refs >= table::DENSE_REFS);
    let mut x = 0x9e37_79b9u32;
    let addrs: Vec<u32> = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        })
        .chain([0, 0x7fff, 0x8000, 0xffff, u32::MAX])
        .collect();
    let check = |fib: &Fib, present: &dyn Fn(u32) -> bool| {
        let snap = fib.snapshot();
        let mut out = vec![u32::MAX; addrs.len()];
        snap.lookup_batch(&addrs, &mut out);
        for (&a, &got) in addrs.iter().zip(&out) {
            assert_eq!(got, want(a, present), "{}", Ipv4Addr::from(a));
            assert_eq!(snap.lookup(a), got);
        }
    };
    check(&fib, &|_| true);
    for h in (0..65536u32).filter(|h| h % 8 != 0) {
        assert_eq!(
            fib.remove(Ipv4Addr::from(h << 16 | 0x8000), 17),
            Some(h + 1)
        );
    }
    assert_eq!(fib.t.refs, refs(&fib));
    assert_eq!(fib.t.refs, 8192);
    check(&fib, &|h| h % 8 == 0);
}

#[test]
fn snapshot_is_isolated_from_later_changes() {
    let mut fib = Fib::new(DROP);
    let routes = random_routes(2000, 1);
    for (i, &(p, l)) in routes.iter().enumerate() {
        fib.insert(p, l, i as u32 + 1).unwrap();
    }
    let dsts = covered_destinations(&routes, 4096, 2);
    let before = fib.snapshot();
    let mut want = vec![0; dsts.len()];
    before.lookup_batch(&dsts, &mut want);
    for &(p, l) in routes.iter().step_by(2) {
        fib.remove(p, l);
    }
    fib.insert(a("0.0.0.0"), 0, 77).unwrap();
    let mut got = vec![0; dsts.len()];
    before.lookup_batch(&dsts, &mut got);
    assert_eq!(got, want);
    let after = fib.snapshot();
    after.lookup_batch(&dsts, &mut got);
    assert_ne!(got, want);
}

#[test]
fn batch_lengths_and_blocks() {
    let mut fib = Fib::new(DROP);
    let routes = random_routes(500, 3);
    for (i, &(p, l)) in routes.iter().enumerate() {
        fib.insert(p, l, i as u32).unwrap();
    }
    let s = fib.snapshot();
    let dsts = covered_destinations(&routes, 1000, 4);
    let mut out = vec![u32::MAX; 1003];
    s.lookup_batch(&dsts, &mut out);
    for (i, &dst) in dsts.iter().enumerate() {
        assert_eq!(out[i], s.lookup(dst));
    }
    assert_eq!(&out[1000..], &[u32::MAX; 3]);
    let mut short = [u32::MAX; 10];
    s.lookup_batch(&dsts, &mut short);
    assert_eq!(short[9], s.lookup(dsts[9]));
    s.lookup_batch(&[], &mut short);
}

#[test]
fn testgen_shapes() {
    let one = random_routes(1, 9);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].1, 8);
    let first = one[0].0.octets()[0];
    assert!((1..=223).contains(&first) && first != 127);
    let r = random_routes(5000, 9);
    assert_eq!(r, random_routes(5000, 9));
    let set: std::collections::HashSet<_> = r.iter().collect();
    assert_eq!(set.len(), r.len());
    for &(p, l) in &r {
        assert!((8..=32).contains(&l));
        assert_eq!(u32::from(p) & !mask(l), 0);
    }
    let dst = covered_destinations(&r, 1000, 1);
    assert_eq!(dst.len(), 1000);
    for x in dst {
        assert!(r.iter().any(|&(p, l)| x & mask(l) == u32::from(p)));
    }
    assert!(covered_destinations(&[], 10, 1).is_empty());
}

#[test]
fn large_random_table_matches_model() {
    let routes = random_routes(20_000, 11);
    let mut fib = Fib::new(DROP);
    let mut model = BTreeMap::new();
    for (i, &(p, l)) in routes.iter().enumerate() {
        let adj = (i % 50) as u32 + 1;
        fib.insert(p, l, adj).unwrap();
        model.insert((u32::from(p), l), adj);
    }
    // Sorted model for a fast reference: scan all lengths from the longest.
    let by_len: Vec<std::collections::HashMap<u32, u32>> = (0..=32u8)
        .map(|l| {
            model
                .iter()
                .filter(|(k, _)| k.1 == l)
                .map(|(k, &v)| (k.0, v))
                .collect()
        })
        .collect();
    let lpm = |dst: u32| {
        (0..=32u8)
            .rev()
            .find_map(|l| by_len[usize::from(l)].get(&(dst & mask(l))).copied())
            .unwrap_or(DROP)
    };
    let s = fib.snapshot();
    let dsts = covered_destinations(&routes, 50_000, 12);
    let mut out = vec![0; dsts.len()];
    s.lookup_batch(&dsts, &mut out);
    for (&dst, &got) in dsts.iter().zip(&out) {
        assert_eq!(got, lpm(dst));
        assert_eq!(s.lookup(dst), got);
    }
}

/// Address strategy biased towards a few dense regions so that prefixes overlap.
fn addr() -> impl Strategy<Value = u32> {
    prop_oneof![
        2 => any::<u32>(),
        3 => (0u32..0x1_0000).prop_map(|x| 0x0a01_0000 | x),
        3 => (0u32..0x100).prop_map(|x| 0x0a01_0700 | x),
        1 => (0u32..0x100).prop_map(|x| 0xffff_ff00 | x),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u32, u8, AdjIndex),
    Remove(u32, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![
        1 => 0u8..=32,
        2 => 16u8..=32,
        3 => 24u8..=32,
    ];
    let adj = prop_oneof![
        8 => 1u32..6,
        2 => 250u32..70_000,
        1 => any::<u32>(),
        1 => 0x8000_0000u32..0x8000_0004
    ];
    prop_oneof![
        3 => (addr(), len.clone(), adj).prop_map(|(p, l, a)| Op::Insert(p & mask(l), l, a)),
        1 => (addr(), len).prop_map(|(p, l)| Op::Remove(p & mask(l), l)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn matches_naive_lpm(
        default in prop_oneof![Just(0u32), any::<u32>()],
        ops in prop::collection::vec(op(), 0..160),
        probes in prop::collection::vec(addr(), 0..200),
    ) {
        let mut fib = Fib::new(default);
        let mut model = BTreeMap::new();
        let mut snaps = Vec::new();
        for (i, o) in ops.iter().enumerate() {
            match *o {
                Op::Insert(p, l, adj) => {
                    let old = fib.insert(Ipv4Addr::from(p), l, adj).unwrap();
                    prop_assert_eq!(old, model.insert((p, l), adj));
                }
                Op::Remove(p, l) => {
                    prop_assert_eq!(fib.remove(Ipv4Addr::from(p), l), model.remove(&(p, l)));
                }
            }
            if i % 40 == 0 {
                snaps.push((fib.snapshot(), model.clone()));
            }
        }
        for (&(p, l), &adj) in &model {
            prop_assert_eq!(fib.get(Ipv4Addr::from(p), l), Some(adj));
        }
        let mut addrs = probes.clone();
        addrs.extend(edge_addrs(&model));
        check_against(&fib, &model, default, &addrs);
        // Earlier snapshots still answer with the routes of their time.
        for (snap, m) in &snaps {
            for &dst in &addrs {
                prop_assert_eq!(snap.lookup(dst), naive(m, default, dst));
            }
        }
    }
}

#[test]
fn snapshot_is_send_sync_and_cheap_to_clone() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<FibSnapshot>();
    send_sync::<Fib>();
    let fib = Fib::new(3);
    let a = fib.snapshot();
    let b = a.clone();
    assert_eq!(b.lookup(7), 3);
    assert_eq!(a.memory_bytes(), b.memory_bytes());
}
