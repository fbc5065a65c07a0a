//! Helpers shared by the agent's namespace tests: the binaries, the config files of a one-node
//! lab, and stopping a process (vpg-io's `terminate`).
// Each test binary uses a part of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub const AGENT: &str = env!("CARGO_BIN_EXE_vpg-agent");

/// The lab's two nodes: n1 (this one, pods in 10.1.1.0/24, 192.0.2.1) and n2 (known only from
/// this record: a tunnel and a route towards 10.1.2.0/24 at 192.0.2.2).
pub const NODES: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: n1}
spec: {podCIDR: 10.1.1.0/24}
status: {addresses: [{type: InternalIP, address: 192.0.2.1}]}
---
apiVersion: v1
kind: Node
metadata: {name: n2}
spec: {podCIDR: 10.1.2.0/24}
status: {addresses: [{type: InternalIP, address: 192.0.2.2}]}
"#;

/// vpgd and vpgctl as the workspace builds them now (a stale binary would lack what the agent
/// asks of it).
pub fn bins() -> (PathBuf, PathBuf) {
    let dir = Path::new(AGENT).parent().unwrap().to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "-p", "vpgd", "--bin", "vpgd", "--bin", "vpgctl"]);
    if dir.ends_with("release") {
        build.arg("--release");
    }
    let ok = build.status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "cannot build vpgd and vpgctl for this test");
    (dir.join("vpgd"), dir.join("vpgctl"))
}

/// Writes `dir/vpgd.toml` (one worker, socket and stats segment in `dir`).
pub fn write_vpgd_toml(dir: &Path, per_worker: u32) {
    std::fs::write(
        dir.join("vpgd.toml"),
        format!(
            "[workers]\ncount = 1\n[buffers]\nper_worker = {per_worker}\n[api]\nsocket = \"{d}/api.sock\"\n[stats]\nsegment = \"{d}/stats\"\n[esp]\nsequence_file = \"{d}/esp-seq.json\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
}

/// Writes `dir/node.toml` for node n1 (uplink `up` at 192.0.2.1/24, pods in 10.1.1.0/24, the
/// embedded store fed from `dir/m`, quick timings), reaching vpgd at `dir/<vpgd_socket>`;
/// `extra` is appended (it continues the `[timing]` section).
pub fn write_node_toml(dir: &Path, vpgd_socket: &str, up: &str, extra: &str) {
    std::fs::write(
        dir.join("node.toml"),
        format!(
            r#"node = "n1"
vpgd_socket = "{d}/{vpgd_socket}"
cni_data_dir = "{d}/cni"
status_socket = "{d}/agent.sock"
[uplink]
host_if = "{up}"
name = "up0"
address = "192.0.2.1/24"
gateway = "192.0.2.254"
[pods]
cidr = "10.1.1.0/24"
[cluster]
networks = ["10.1.0.0/16", "10.96.0.0/12"]
[overlay]
vni = 10
[store]
embedded = "{d}/agent.redb"
manifests = "{d}/m"
scan_interval_ms = 100
[timing]
debounce_ms = 50
pod_poll_ms = 100
probe_ms = 100
{extra}"#,
            d = dir.display()
        ),
    )
    .unwrap();
}

pub use vpg_io::netns::terminate;
