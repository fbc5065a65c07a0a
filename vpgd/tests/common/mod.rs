//! Helpers shared by the namespace tests.
// Each test binary uses a part of these helpers.
#![allow(dead_code)]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub use vpg_io::netns::terminate;

/// A vpgd process in its own network namespace, with its API socket and stats segment in a
/// private directory; stopped and cleaned up on drop.
pub struct Vpgd {
    /// The namespace vpgd runs in.
    pub ns: vpg_io::netns::NetNs,
    /// Its directory (config, socket, stats segment).
    pub dir: std::path::PathBuf,
    child: Option<Child>,
}

impl Vpgd {
    /// Starts vpgd in `ns` with `workers` workers and the config sections `body`
    /// (`[[interface]]`, `[[vxlan_tunnel]]`, …). The namespace's own kernel must neither route
    /// nor answer for what vpgd owns: forwarding and IPv6 are turned off there.
    pub fn start(ns: vpg_io::netns::NetNs, workers: u32, body: &str) -> Self {
        let dir = std::env::temp_dir().join(vpg_io::netns::unique("vpgd-test-"));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = format!(
            "[workers]\ncount = {workers}\n[buffers]\nper_worker = 8192\n[api]\nsocket = \"{d}/api.sock\"\n[stats]\nsegment = \"{d}/stats\"\n{body}",
            d = dir.display()
        );
        std::fs::write(dir.join("vpgd.toml"), cfg).unwrap();
        ns.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=0"])
            .unwrap();
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            .unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                env!("CARGO_BIN_EXE_vpgd"),
                "--config",
            ])
            .arg(dir.join("vpgd.toml"))
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let sock = dir.join("api.sock");
        let t0 = Instant::now();
        while !sock.exists() {
            assert!(t0.elapsed() < Duration::from_secs(20), "vpgd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            ns,
            dir,
            child: Some(child),
        }
    }

    /// Runs vpgctl against this vpgd.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_vpgctl"))
            .arg("--socket")
            .arg(self.dir.join("api.sock"))
            .arg("--stats")
            .arg(self.dir.join("stats"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs vpgctl, asserting success; its standard output.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "vpgctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    }

    /// `vpgctl --json ARGS`, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ctl_ok(&a)).unwrap()
    }
}

impl Drop for Vpgd {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
