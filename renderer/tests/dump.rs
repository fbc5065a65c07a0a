//! A `kubectl get namespaces,pods,networkpolicies -A -o json` dump (`tests/golden/cluster.json`,
//! also the input of `vpg-agent render`'s CLI tests): its tables agree with the reference
//! evaluator on every pair of addresses in the dump.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use vpg_renderer::{kube, reference::Reference, Renderer};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

#[test]
fn dump_tables_agree_with_reference() {
    let text = std::fs::read_to_string(golden("cluster.json")).unwrap();
    let c = kube::load_cluster(&text).unwrap().cluster;
    let tables: HashMap<String, _> = ["worker-1", "worker-2"]
        .iter()
        .map(|n| (n.to_string(), Renderer::render(n, &c).tables()))
        .collect();
    let reference = Reference::new(&c);
    let mut addrs = common::addresses(&c);
    addrs.push("10.9.9.9".parse().unwrap());
    let mut allowed = 0;
    for &src in &addrs {
        for &dst in &addrs {
            if src == dst {
                continue;
            }
            for proto in [6u8, 17, 132] {
                for dport in [53u16, 80, 443, 5432, 5433, 5434, 8080, 9090, 9153] {
                    let want = reference.allowed(src, dst, proto, dport);
                    let got = common::tables_allow(&c, &tables, src, dst, proto, dport);
                    assert_eq!(got, want, "{src} -> {dst} {proto}/{dport}");
                    allowed += usize::from(want);
                }
            }
        }
    }
    assert!(allowed > 10, "the dump allows some connections ({allowed})");
}
