//! Network namespaces and veth pairs for tests, made with iproute2: uniquely named per test and
//! process, deleted on drop even when the test panics, and a way to run code (open AF_PACKET
//! sockets) inside a namespace from a test thread.
//!
//! Names are `prefix` + the process id (6 hex digits) + a per-process counter (hex), so parallel
//! tests and test binaries never collide. Interface names are limited to 15 bytes: keep prefixes
//! of interfaces at 5 bytes or fewer.
//!
//! ```no_run
//! use vpg_io::netns::{self, NetNs, VethPair};
//! if let Some(why) = netns::unavailable() {
//!     eprintln!("skipping: {why}");
//!     return;
//! }
//! let (a, b) = (NetNs::new("tsta").unwrap(), NetNs::new("tstb").unwrap());
//! let veth = VethPair::new(&a, &b).unwrap();
//! veth.set_addrs("10.9.0.1/24", "10.9.0.2/24").unwrap();
//! let idx = a.run_in(|| vpg_io::afpacket::ifindex(&veth.a)).unwrap().unwrap();
//! assert!(idx > 0);
//! // Both namespaces, and the veth pair inside them, are gone when `a` and `b` drop.
//! ```

use crate::afpacket::enter_netns;
use std::io;
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `prefix`, the pid in 6 hex digits (pids stay below
/// 2^22), then a counter in hex. Fixed-width pids keep two processes' names apart.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{:06x}{n:x}", std::process::id() & 0xff_ffff)
}

/// Runs a command and waits; returns its output, or what it printed on failure.
pub fn run(cmd: &str, args: &[&str]) -> Result<Output, String> {
    let out = Command::new(cmd).args(args).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            format!("`{cmd}` is not installed")
        } else {
            format!("{cmd}: {e}")
        }
    })?;
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

/// Why namespace tests cannot run here, if they cannot: iproute2 missing, or the kernel refusing
/// to create a namespace (not root, no CAP_SYS_ADMIN, namespaces disabled). Tests print it and
/// return; CI runs them as root with iproute2 installed.
pub fn unavailable() -> Option<String> {
    if let Err(e) = run("ip", &["-V"]) {
        return Some(format!(
            "{e} (iproute2 is needed: apt-get install -y iproute2)"
        ));
    }
    let probe = unique("vpgp");
    if let Err(e) = run("ip", &["netns", "add", &probe]) {
        return Some(format!(
            "cannot create a network namespace (needs root or CAP_SYS_ADMIN): {e}"
        ));
    }
    let _ = run("ip", &["netns", "del", &probe]);
    None
}

/// A network namespace, deleted on drop (also while a failing test unwinds).
pub struct NetNs {
    /// Its name (`ip netns` name, file under /var/run/netns).
    pub name: String,
}

impl NetNs {
    /// Creates a namespace named `unique(prefix)` and brings its loopback up.
    pub fn new(prefix: &str) -> Result<Self, String> {
        // A namespace leaked by an earlier, killed process with the same pid holds the name:
        // move on to the next counter value.
        let mut last = String::new();
        for _ in 0..8 {
            let name = unique(prefix);
            match run("ip", &["netns", "add", &name]) {
                Ok(_) => {
                    let ns = Self { name };
                    ns.ip(&["link", "set", "lo", "up"])?;
                    return Ok(ns);
                }
                Err(e) if e.contains("exists") => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Runs a command inside the namespace (`ip netns exec NAME ...`) and waits.
    pub fn exec(&self, args: &[&str]) -> Result<Output, String> {
        let mut a = vec!["netns", "exec", self.name.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Pings `dst` `count` times from inside (0.2 s apart, 1 s timeout each) and returns the
    /// replies received (ping's exit status is ignored: losses are what tests measure).
    pub fn ping(&self, dst: &str, count: u32) -> u32 {
        let n = count.to_string();
        let args = [
            "netns",
            "exec",
            self.name.as_str(),
            "ping",
            "-n",
            "-q",
            "-c",
            &n,
            "-i",
            "0.2",
            "-W",
            "1",
            dst,
        ];
        let Ok(o) = Command::new("ip").args(args).output() else {
            return 0;
        };
        let s = String::from_utf8_lossy(&o.stdout);
        s.split(", ")
            .find_map(|p| {
                p.strip_suffix(" received")
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Runs `ip -n NAME ...` (iproute2 without entering the namespace) and waits.
    pub fn ip(&self, args: &[&str]) -> Result<Output, String> {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Starts a command inside the namespace without waiting (a server). The caller kills and
    /// waits for it: a process inside keeps the namespace's interfaces alive after drop.
    pub fn spawn(&self, args: &[&str]) -> io::Result<std::process::Child> {
        Command::new("ip")
            .args(["netns", "exec", self.name.as_str()])
            .args(args)
            .spawn()
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result. Sockets
    /// `f` opens (AF_PACKET rings on interfaces inside) stay in the namespace and may be used
    /// from any thread afterwards. A panic in `f` is resumed on the caller's thread.
    pub fn run_in<R: Send>(&self, f: impl FnOnce() -> R + Send) -> io::Result<R> {
        run_in_netns(&self.name, f)
    }
}

/// Stops a daemon a test started (in a namespace or not) the way an operator would: SIGTERM,
/// up to 10 s for a clean exit, then SIGKILL; reaped either way.
pub fn terminate(mut c: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(10) {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace destroys the veth ends inside it, and so their peers.
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// Runs `f` on a new thread that has entered network namespace `name` (see [`NetNs::run_in`]).
/// The calling thread's namespace never changes.
pub fn run_in_netns<R: Send>(name: &str, f: impl FnOnce() -> R + Send) -> io::Result<R> {
    std::thread::scope(|s| {
        let h = s.spawn(move || -> io::Result<R> {
            enter_netns(name)?;
            Ok(f())
        });
        match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// A veth pair with end `a` in one namespace and end `b` in another, both up. It lives as long as
/// its namespaces (deleting either destroys both ends).
#[derive(Clone, Debug)]
pub struct VethPair {
    /// The end in the first namespace.
    pub a: String,
    /// The end in the second namespace.
    pub b: String,
    ns_a: String,
    ns_b: String,
}

impl VethPair {
    /// A pair with unique names (`va…` in `ns_a`, `vb…` in `ns_b`).
    pub fn new(ns_a: &NetNs, ns_b: &NetNs) -> Result<Self, String> {
        Self::with_names(&unique("va"), ns_a, &unique("vb"), ns_b)
    }

    /// A pair with the given names (at most 15 bytes each).
    pub fn with_names(a: &str, ns_a: &NetNs, b: &str, ns_b: &NetNs) -> Result<Self, String> {
        // Created directly inside the namespaces, so nothing is ever left in the caller's
        // namespace, even if a later step fails.
        ns_a.ip(&[
            "link", "add", a, "type", "veth", "peer", "name", b, "netns", &ns_b.name,
        ])?;
        ns_a.ip(&["link", "set", a, "up"])?;
        ns_b.ip(&["link", "set", b, "up"])?;
        Ok(Self {
            a: a.into(),
            b: b.into(),
            ns_a: ns_a.name.clone(),
            ns_b: ns_b.name.clone(),
        })
    }

    /// Adds an address (CIDR, `10.0.0.1/24`) to each end.
    pub fn set_addrs(&self, a: &str, b: &str) -> Result<(), String> {
        run("ip", &["-n", &self.ns_a, "addr", "add", a, "dev", &self.a])?;
        run("ip", &["-n", &self.ns_b, "addr", "add", b, "dev", &self.b])?;
        Ok(())
    }

    /// Sets the MTU of both ends (veth drops frames longer than the receiving end's MTU).
    pub fn set_mtu(&self, mtu: u32) -> Result<(), String> {
        let m = mtu.to_string();
        run("ip", &["-n", &self.ns_a, "link", "set", &self.a, "mtu", &m])?;
        run("ip", &["-n", &self.ns_b, "link", "set", &self.b, "mtu", &m])?;
        Ok(())
    }
}

/// Creates a veth pair `a`–`b` with `a` in namespace `ns_a` and `b` in `ns_b`, both up.
pub fn veth(a: &str, ns_a: &NetNs, b: &str, ns_b: &NetNs) -> Result<(), String> {
    VethPair::with_names(a, ns_a, b, ns_b).map(|_| ())
}

/// The MAC address of `dev` inside `ns`.
pub fn mac_of(ns: &NetNs, dev: &str) -> Result<[u8; 6], String> {
    let o = ns.exec(&["cat", &format!("/sys/class/net/{dev}/address")])?;
    let s = String::from_utf8_lossy(&o.stdout);
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(format!("{dev}: unexpected address '{}'", s.trim()));
    }
    let mut m = [0u8; 6];
    for (d, p) in m.iter_mut().zip(parts) {
        *d = u8::from_str_radix(p, 16).map_err(|e| format!("{dev}: {e}"))?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::unique;

    #[test]
    fn unique_names_are_distinct_and_short_enough_for_interfaces() {
        let a = unique("vb");
        let b = unique("vb");
        assert_ne!(a, b);
        assert!(a.len() <= 15 && a.starts_with("vb"), "{a}");
        assert!(a.len() > 2 + 6, "fixed-width pid, then the counter: {a}");
    }
}
