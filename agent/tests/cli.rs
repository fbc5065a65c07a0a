//! `vpg-agent render` on a `kubectl get namespaces,pods,networkpolicies -A -o json` dump: the
//! JSON shape of issue 8 item 6 is pinned by golden files (`UPDATE_GOLDEN=1` rewrites them), the
//! text output, and errors. The dump itself is the renderer's fixture
//! (`renderer/tests/golden/cluster.json`, whose tables the renderer's `tests/dump.rs` checks
//! against the reference evaluator).

use std::path::PathBuf;
use std::process::Command;

fn cluster() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../renderer/tests/golden/cluster.json")
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vpg-agent"))
        .args(args)
        .output()
        .expect("run vpg-agent")
}

#[test]
fn renders_kubectl_dump_as_json() {
    let cluster = cluster();
    for node in ["worker-1", "worker-2"] {
        let out = run(&[
            "render",
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
        assert_eq!(v.as_object().unwrap().len(), 3);
        let g = v["global_table"].as_object().unwrap();
        assert_eq!(g.keys().collect::<Vec<_>>(), ["id", "rules"]);
        let tables = v["local_tables"].as_array().unwrap();
        assert!(!tables.is_empty(), "the dump has isolated pods on {node}");
        for t in tables {
            let t = t.as_object().unwrap();
            assert_eq!(t.keys().collect::<Vec<_>>(), ["id", "pods", "rules"]);
            assert!(
                t["pods"][0].as_str().unwrap().contains('/'),
                "pods are ns/name"
            );
        }
        for rule in tables.iter().flat_map(|t| t["rules"].as_array().unwrap()) {
            let r = rule.as_object().unwrap();
            assert_eq!(r.len(), 6);
            assert!(["permit", "deny"].contains(&r["action"].as_str().unwrap()));
            for k in ["src", "dst"] {
                assert!(r[k].as_str().unwrap().contains('/'), "{k} is a CIDR");
            }
            for k in ["src_ports", "dst_ports"] {
                let p = r[k].as_array().unwrap();
                assert_eq!(p.len(), 2);
                assert!(p[0].as_u64().unwrap() <= p[1].as_u64().unwrap());
            }
            let proto = &r["protocol"];
            assert!(
                proto.as_u64().is_some()
                    || ["any", "tcp", "udp", "sctp"].contains(&proto.as_str().unwrap())
            );
        }
    }
}

#[test]
fn text_output_and_errors() {
    let cluster = cluster();
    let out = run(&[
        "render",
        "--cluster",
        cluster.to_str().unwrap(),
        "--node",
        "worker-1",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("node worker-1\n"));
    assert!(text.contains("global table gt-"));

    let out = run(&[
        "render",
        "--cluster",
        "/nonexistent/cluster.json",
        "--node",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading /nonexistent/cluster.json"));

    let dir = std::env::temp_dir().join(format!("vpg-agent-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"kind\": \"List\", \"items\": 7}").unwrap();
    let out = run(&["render", "--cluster", bad.to_str().unwrap(), "--node", "x"]);
    assert_eq!(out.status.code(), Some(2), "unreadable input exits 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("loading"));
    std::fs::remove_dir_all(&dir).unwrap();

    // No subcommand: usage error.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn run_refuses_a_bad_configuration_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"node = "n1"
[uplink]
host_if = "eth1"
address = "192.168.1.10/24"
gateway = "192.168.1.1"
[pods]
cidr = "10.1.1.0/24"
[overlay]
vni = 10
[store]
embedded = "/tmp/x.redb"
"#;
    let path = dir.path().join("node.toml");
    std::fs::write(&path, good).unwrap();
    let out = run(&["run", "--check", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    for (bad, want) in [
        (good.replace("/24\"", "\""), "uplink.address"),
        (good.replace("vni = 10", "vni = -1"), "overlay.vni"),
        (good.replace("[pods]", "[podz]"), "podz"),
    ] {
        std::fs::write(&path, &bad).unwrap();
        let out = run(&["run", "--config", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{want:?} not in {err}");
        assert!(err.starts_with("vpg-agent: "), "{err}");
    }
    let out = run(&["run", "--config", "/nonexistent/node.toml"]);
    assert_eq!(out.status.code(), Some(2));
    // No agent behind the socket: a clear error, not a hang.
    let out = run(&[
        "status",
        "--socket",
        dir.path().join("none.sock").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is vpg-agent running"));
}
