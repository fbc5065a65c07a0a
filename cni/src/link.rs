//! Interface configuration through iproute2 (`ip`) and `ethtool`, run in the calling thread's
//! network namespace (see crate::netns).
//!
//! Why the tools rather than netlink from Rust: an ADD is a handful of operations, and a netlink
//! crate would bring an async runtime or a large message model into a process that lives for
//! milliseconds; iproute2 is on every Kubernetes node (and installed by scripts/setup.sh), its
//! error text is what an operator would see running the same command, and `ip -batch` does the
//! work of a namespace in one process. State is read back as JSON (`ip -j`), never by parsing
//! human output. The cost is measured in docs/cni.md (an ADD takes tens of milliseconds).

use crate::config::Cidr;
use serde_json::Value;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the tools are.
#[derive(Clone, Debug)]
pub struct Tools {
    ip: PathBuf,
    ethtool: PathBuf,
}

/// Runtimes may run plugins with a minimal PATH (or none): these follow it.
const FALLBACK_PATH: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(FALLBACK_PATH.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Tools {
    /// Finds `ip` and `ethtool`; the error names what is missing.
    pub fn find() -> Result<Self, String> {
        let ip = find("ip").ok_or("`ip` (iproute2) is not installed or not in PATH")?;
        let ethtool = find("ethtool").ok_or("`ethtool` is not installed or not in PATH")?;
        Ok(Self { ip, ethtool })
    }

    fn run(&self, prog: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let cmdline = || format!("{} {}", prog.display(), args.join(" "));
        let mut child = Command::new(prog)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", cmdline()))?;
        if let (Some(input), Some(mut w)) = (stdin, child.stdin.take()) {
            // ip reads the whole batch before exiting; a write error shows in its status.
            let _ = w.write_all(input.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{}: {e}", cmdline()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            let input = stdin.map(|s| format!(" <<< {}", s.trim().replace('\n', "; ")));
            Err(format!(
                "{}{} failed ({}): {}",
                cmdline(),
                input.unwrap_or_default(),
                out.status,
                err.trim()
            ))
        }
    }

    /// Runs one `ip` command with its arguments as given (no batch tokenizing, so a namespace
    /// path may hold any character).
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        self.run(&self.ip, args, None).map(drop)
    }

    /// Runs `ip` commands (each a line of `ip -batch`, without the leading `ip`), stopping at
    /// the first that fails.
    pub fn ip_batch(&self, cmds: &[String]) -> Result<(), String> {
        let mut input = cmds.join("\n");
        input.push('\n');
        self.run(&self.ip, &["-batch", "-"], Some(&input)).map(drop)
    }

    /// The interface `name`, or `None` when it does not exist here.
    pub fn link(&self, name: &str) -> Result<Option<LinkInfo>, String> {
        let present = crate::netns::links()
            .map_err(|e| format!("/proc/thread-self/net/dev: {e}"))?
            .iter()
            .any(|l| l == name);
        if !present {
            return Ok(None);
        }
        let out = match self.run(&self.ip, &["-j", "addr", "show", "dev", name], None) {
            Ok(out) => out,
            // Gone between the two looks: a veth whose peer's namespace the kernel is
            // destroying (asynchronously) disappears on its own.
            Err(e) => {
                let still = crate::netns::links()
                    .map_err(|e| format!("/proc/thread-self/net/dev: {e}"))?
                    .iter()
                    .any(|l| l == name);
                return if still { Err(e) } else { Ok(None) };
            }
        };
        let v: Value = serde_json::from_str(&out).map_err(|e| format!("ip -j addr: {e}"))?;
        v.as_array()
            .and_then(|a| a.first())
            .map(LinkInfo::from_json)
            .transpose()
    }

    /// The IPv4 routes of the main table.
    pub fn routes(&self) -> Result<Vec<Route>, String> {
        let out = self.run(
            &self.ip,
            &["-j", "-4", "route", "show", "table", "main"],
            None,
        )?;
        let v: Value = serde_json::from_str(&out).map_err(|e| format!("ip -j route: {e}"))?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(Route::from_json).collect())
            .unwrap_or_default())
    }

    /// Deletes interface `name` (a veth: its peer goes with it); `false` when it was not there.
    pub fn delete_link(&self, name: &str) -> Result<bool, String> {
        if self.link(name)?.is_none() {
            return Ok(false);
        }
        match self.run(&self.ip, &["link", "del", "dev", name], None) {
            Ok(_) => Ok(true),
            // Gone meanwhile: a veth whose peer's namespace is being destroyed (asynchronously,
            // by the kernel) disappears on its own.
            Err(_) if self.link(name)?.is_none() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Turns TCP segmentation and generic segmentation offload off on `name`: vpg's buffers hold
    /// one frame, so a pod must not hand the veth 64 KiB super-frames.
    pub fn offload_off(&self, name: &str) -> Result<(), String> {
        self.run(
            &self.ethtool,
            &["-K", name, "tso", "off", "gso", "off"],
            None,
        )
        .map(drop)
    }

    /// Whether TSO and GSO are both off on `name` (`ethtool -k`).
    pub fn offload_is_off(&self, name: &str) -> Result<bool, String> {
        let out = self.run(&self.ethtool, &["-k", name], None)?;
        let off = |feature: &str| {
            out.lines().any(|l| {
                l.trim_start()
                    .strip_prefix(feature)
                    .is_some_and(|r| r.trim_start().starts_with("off"))
            })
        };
        Ok(off("tcp-segmentation-offload:") && off("generic-segmentation-offload:"))
    }
}

/// An interface as `ip -j addr show` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// Its name.
    pub name: String,
    /// Its MAC address.
    pub mac: String,
    /// Its MTU.
    pub mtu: u32,
    /// Administratively up.
    pub up: bool,
    /// Its IPv4 addresses with prefix lengths.
    pub addrs: Vec<(Ipv4Addr, u8)>,
}

impl LinkInfo {
    fn from_json(v: &Value) -> Result<Self, String> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
        let up = v
            .get("flags")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == "UP"));
        let addrs = v
            .get("addr_info")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|i| i.get("family").and_then(Value::as_str) == Some("inet"))
                    .filter_map(|i| {
                        let ip = i.get("local")?.as_str()?.parse().ok()?;
                        let len = u8::try_from(i.get("prefixlen")?.as_u64()?).ok()?;
                        Some((ip, len))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(LinkInfo {
            name: s("ifname").to_string(),
            mac: s("address").to_string(),
            mtu: v
                .get("mtu")
                .and_then(Value::as_u64)
                .and_then(|m| u32::try_from(m).ok())
                .unwrap_or(0),
            up,
            addrs,
        })
    }
}

/// An IPv4 route as `ip -j route show` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The destination (`default` is 0.0.0.0/0).
    pub dst: Cidr,
    /// The next hop, if any.
    pub gateway: Option<Ipv4Addr>,
    /// The output device.
    pub dev: Option<String>,
    /// `link` for on-link routes; `None` is global.
    pub scope: Option<String>,
}

impl Route {
    fn from_json(v: &Value) -> Option<Self> {
        let d = v.get("dst")?.as_str()?;
        let dst = if d == "default" {
            Cidr {
                addr: Ipv4Addr::UNSPECIFIED,
                len: 0,
            }
        } else if d.contains('/') {
            Cidr::parse(d).ok()?
        } else {
            Cidr {
                addr: d.parse().ok()?,
                len: 32,
            }
        };
        Some(Route {
            dst,
            gateway: v
                .get("gateway")
                .and_then(Value::as_str)
                .and_then(|g| g.parse().ok()),
            dev: v.get("dev").and_then(Value::as_str).map(String::from),
            scope: v.get("scope").and_then(Value::as_str).map(String::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json() {
        let v: Value = serde_json::from_str(r#"{"ifindex":2,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1450,"operstate":"UP","address":"aa:bb:cc:dd:ee:ff","addr_info":[{"family":"inet","local":"10.1.1.2","prefixlen":32},{"family":"inet6","local":"fe80::1","prefixlen":64}]}"#).unwrap();
        let l = LinkInfo::from_json(&v).unwrap();
        assert_eq!(l.name, "eth0");
        assert_eq!(l.mac, "aa:bb:cc:dd:ee:ff");
        assert_eq!(l.mtu, 1450);
        assert!(l.up);
        assert_eq!(l.addrs, [(Ipv4Addr::new(10, 1, 1, 2), 32)]);
        let r: Vec<Route> = serde_json::from_str::<Value>(
            r#"[{"dst":"default","gateway":"10.1.1.1","dev":"eth0","flags":["onlink"]},{"dst":"10.1.1.1","dev":"eth0","scope":"link","flags":[]},{"dst":"192.0.2.0/24","dev":"x","scope":"link"}]"#,
        )
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Route::from_json)
        .collect();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].dst.len, 0);
        assert_eq!(r[0].gateway, Some(Ipv4Addr::new(10, 1, 1, 1)));
        assert_eq!(
            r[1].dst,
            Cidr {
                addr: Ipv4Addr::new(10, 1, 1, 1),
                len: 32
            }
        );
        assert_eq!(r[1].scope.as_deref(), Some("link"));
        assert_eq!(r[2].dst.len, 24);
    }
}
