//! `vpg-render` on a `kubectl get namespaces,pods,networkpolicies -A -o json` dump: the JSON
//! shape is pinned by a golden file, and the rendered tables agree with the reference
//! evaluator on every pair of addresses in the dump.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use vpg_renderer::{kube, reference::Reference, Renderer};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vpg-render"))
        .args(args)
        .output()
        .expect("run vpg-render")
}

#[test]
fn renders_kubectl_dump_as_json() {
    let cluster = golden("cluster.json");
    for node in ["worker-1", "worker-2"] {
        let out = run(&[
            "--cluster",
            cluster.to_str().unwrap(),
            "--node",
            node,
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("default/broken: invalid port"),
            "the invalid policy is reported: {stderr}"
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let path = golden(&format!("cluster.{node}.json"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        assert_eq!(
            text,
            std::fs::read_to_string(&path).unwrap(),
            "{}",
            path.display()
        );
        // The documented shape, key by key.
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["node"], node);
        let rule = &v["global_table"]["rules"][0];
        for k in ["action", "src", "dst", "protocol", "src_ports", "dst_ports"] {
            assert!(rule.get(k).is_some(), "rule has {k}");
        }
        assert_eq!(v.as_object().unwrap().len(), 3);
    }
}

#[test]
fn text_output_and_errors() {
    let cluster = golden("cluster.json");
    let out = run(&["--cluster", cluster.to_str().unwrap(), "--node", "worker-1"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("node worker-1\n"));
    assert!(text.contains("global table gt-"));
    let out = run(&["--cluster", "/nonexistent/cluster.json", "--node", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading /nonexistent/cluster.json"));
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
