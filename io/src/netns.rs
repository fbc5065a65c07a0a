//! Network namespaces and veth pairs for tests: created with iproute2, uniquely named per test,
//! removed on drop even when the test fails.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process and call (interface names are at most 15 bytes).
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:x}{n:x}", std::process::id() % 0xffff)
}

/// Runs a command; returns its output or a message with what it printed.
pub fn run(cmd: &str, args: &[&str]) -> Result<Output, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why namespace tests cannot run here, if they cannot (not root, no iproute2, the kernel
/// refuses namespaces). Tests print it and return.
pub fn unavailable() -> Option<String> {
    // SAFETY-free check: geteuid via the environment of `id -u`.
    match run("id", &["-u"]) {
        Ok(o) if String::from_utf8_lossy(&o.stdout).trim() == "0" => {}
        _ => return Some("not running as root".into()),
    }
    let probe = unique("vpgp");
    if let Err(e) = run("ip", &["netns", "add", &probe]) {
        return Some(format!("cannot create a network namespace: {e}"));
    }
    let _ = run("ip", &["netns", "del", &probe]);
    None
}

/// A network namespace, deleted on drop.
pub struct NetNs {
    /// Its name.
    pub name: String,
}

impl NetNs {
    /// Creates a namespace with a unique name and brings its loopback up.
    pub fn new(prefix: &str) -> Result<Self, String> {
        let name = unique(prefix);
        run("ip", &["netns", "add", &name])?;
        let ns = Self { name };
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Result<Output, String> {
        let mut a = vec!["netns", "exec", self.name.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Runs a command inside the namespace without waiting (a server).
    pub fn spawn(&self, args: &[&str]) -> std::io::Result<std::process::Child> {
        Command::new("ip")
            .args(["netns", "exec", self.name.as_str()])
            .args(args)
            .spawn()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace destroys the veth ends inside it (and so their peers).
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// Creates a veth pair `a`–`b` with `a` in namespace `ns_a` and `b` in `ns_b`, both up.
pub fn veth(a: &str, ns_a: &NetNs, b: &str, ns_b: &NetNs) -> Result<(), String> {
    run("ip", &["link", "add", a, "type", "veth", "peer", "name", b])?;
    run("ip", &["link", "set", a, "netns", &ns_a.name])?;
    run("ip", &["link", "set", b, "netns", &ns_b.name])?;
    ns_a.exec(&["ip", "link", "set", a, "up"])?;
    ns_b.exec(&["ip", "link", "set", b, "up"])?;
    Ok(())
}

/// The MAC address of `dev` inside `ns`.
pub fn mac_of(ns: &NetNs, dev: &str) -> Result<[u8; 6], String> {
    let o = ns.exec(&["cat", &format!("/sys/class/net/{dev}/address")])?;
    let s = String::from_utf8_lossy(&o.stdout);
    let mut m = [0u8; 6];
    for (i, p) in s.trim().split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(p, 16).map_err(|e| e.to_string())?;
    }
    Ok(m)
}
