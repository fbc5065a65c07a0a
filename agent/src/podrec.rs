//! The CNI plugin's pod records: how vpg-cni hands a pod's interface to the agent.
//!
//! vpg-cni writes one JSON file per attachment, `<cni data dir>/pods/<containerid>@<ifname>.json`,
//! atomically (temporary file, then rename), and removes it on DEL (docs/cni.md). The agent
//! reads the directory whole on every change: the records *are* the set of local pods, so a
//! restart needs nothing else. Fields the agent uses (camelCase, as vpg-cni writes them):
//! `version` (1), `containerId`, `podNamespace`, `podName`, `hostIfname` (the host end of the
//! veth, which vpgd attaches), `mac` (the pod's MAC), `ip`, `prefixLen`, `mtu`. Other fields
//! are ignored, so the plugin may add some.
//!
//! A record that does not parse, or that another record contradicts (the same address or host
//! interface twice), is reported and left out; it never stops the others.

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::SystemTime;

use serde::Deserialize;
use vpg_api::Mac;

/// The record format version this agent reads.
pub const RECORD_VERSION: u32 = 1;

/// A local pod as the agent uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPod {
    /// The record's file name (for messages).
    pub file: String,
    /// The pod sandbox.
    pub container_id: String,
    /// `namespace/name` when the runtime passed them (policies need them).
    pub key: Option<(String, String)>,
    /// The host end of the pod's veth.
    pub host_if: String,
    /// The pod's MAC (installed as a static neighbor: no ARP towards the pod).
    pub mac: Mac,
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// Its prefix length inside the pod.
    pub prefix_len: u8,
    /// The veth's MTU.
    pub mtu: Option<u16>,
}

impl LocalPod {
    /// `namespace/name`, or the container id when the record has no pod name.
    pub fn display_name(&self) -> String {
        match &self.key {
            Some((ns, n)) => format!("{ns}/{n}"),
            None => format!("container {}", self.container_id),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    version: u32,
    container_id: String,
    #[serde(default)]
    pod_namespace: Option<String>,
    #[serde(default)]
    pod_name: Option<String>,
    host_ifname: String,
    mac: String,
    ip: String,
    #[serde(default = "thirty_two")]
    prefix_len: u8,
    #[serde(default)]
    mtu: Option<u32>,
}

fn thirty_two() -> u8 {
    32
}

/// The pods of a directory, and the records that were left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodScan {
    /// Usable records, sorted by file name.
    pub pods: Vec<LocalPod>,
    /// `(file, why)` of every record left out.
    pub errors: Vec<(String, String)>,
}

/// Parses one record's bytes.
pub fn parse(file: &str, bytes: &[u8]) -> Result<LocalPod, String> {
    let r: Record = serde_json::from_slice(bytes).map_err(|e| format!("not a pod record: {e}"))?;
    if r.version != RECORD_VERSION {
        return Err(format!(
            "record version {} (this agent reads {RECORD_VERSION})",
            r.version
        ));
    }
    vpg_api::interface::check_ifname("hostIfname", &r.host_ifname).map_err(|e| e.message)?;
    let ip: Ipv4Addr =
        r.ip.parse()
            .map_err(|_| format!("ip '{}' is not an IPv4 address", r.ip))?;
    let mac: Mac = r.mac.parse().map_err(|e| format!("mac '{}': {e}", r.mac))?;
    if !mac.is_unicast() {
        return Err(format!("mac {mac} is not a unicast address"));
    }
    if r.prefix_len == 0 || r.prefix_len > 32 {
        return Err(format!("prefixLen {} is not 1 to 32", r.prefix_len));
    }
    let mtu = match r.mtu {
        None => None,
        Some(m) if (576..=9000).contains(&m) => Some(m as u16),
        Some(m) => return Err(format!("mtu {m} is not 576 to 9000")),
    };
    let key = match (r.pod_namespace, r.pod_name) {
        (Some(ns), Some(n)) if !ns.is_empty() && !n.is_empty() => Some((ns, n)),
        _ => None,
    };
    Ok(LocalPod {
        file: file.to_string(),
        container_id: r.container_id,
        key,
        host_if: r.host_ifname,
        mac,
        ip,
        prefix_len: r.prefix_len,
        mtu,
    })
}

fn record_files(dir: &Path) -> io::Result<Vec<(String, std::fs::Metadata)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        // Hidden names are vpg-cni's temporary files, renamed into place when complete.
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        match e.metadata() {
            Ok(m) if m.is_file() => out.push((name, m)),
            // Removed between the listing and now: it is gone.
            _ => {}
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// A cheap fingerprint of the directory (names, sizes, modification times): the loop rereads
/// the records only when it changes.
pub fn signature(dir: &Path) -> io::Result<Vec<(String, u64, Option<SystemTime>)>> {
    Ok(record_files(dir)?
        .into_iter()
        .map(|(n, m)| (n, m.len(), m.modified().ok()))
        .collect())
}

/// Reads every record of `dir` (a missing directory has none).
pub fn scan(dir: &Path) -> io::Result<PodScan> {
    let mut out = PodScan::default();
    let mut by_ip: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    let mut by_if: BTreeMap<String, String> = BTreeMap::new();
    for (name, _) in record_files(dir)? {
        let bytes = match std::fs::read(dir.join(&name)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.errors.push((name, e.to_string()));
                continue;
            }
        };
        match parse(&name, &bytes) {
            Ok(p) => {
                if let Some(other) = by_ip.get(&p.ip) {
                    out.errors
                        .push((name, format!("address {} is also in {other}", p.ip)));
                } else if let Some(other) = by_if.get(&p.host_if) {
                    out.errors.push((
                        name,
                        format!("host interface {} is also in {other}", p.host_if),
                    ));
                } else {
                    by_ip.insert(p.ip, name.clone());
                    by_if.insert(p.host_if.clone(), name.clone());
                    out.pods.push(p);
                }
            }
            Err(why) => out.errors.push((name, why)),
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record as vpg-cni writes it (docs/cni.md).
    pub fn record_json(container: &str, ns: &str, name: &str, host_if: &str, ip: &str) -> String {
        serde_json::json!({
            "version": 1, "network": "vpg", "containerId": container,
            "podNamespace": ns, "podName": name, "podUid": null,
            "netns": "/var/run/netns/x", "ifname": "eth0",
            "mac": "02:00:00:00:00:01", "hostIfname": host_if,
            "hostMac": "02:00:00:00:00:02", "hostNetns": null,
            "ip": ip, "prefixLen": 32, "podCidr": "10.1.1.0/24",
            "gateway": "10.1.1.1", "mtu": 1450, "created": "2024-01-01T00:00:00Z"
        })
        .to_string()
    }

    #[test]
    fn reads_records_and_reports_bad_ones() {
        let d = tempfile::tempdir().unwrap();
        let w = |n: &str, s: &str| std::fs::write(d.path().join(n), s).unwrap();
        assert_eq!(scan(&d.path().join("missing")).unwrap(), PodScan::default());
        w(
            "c1@eth0.json",
            &record_json("c1", "default", "web", "vpg000000000001", "10.1.1.2"),
        );
        w(
            "c2@eth0.json",
            &record_json("c2", "default", "db", "vpg000000000002", "10.1.1.2"),
        );
        w("c3@eth0.json", "{not json");
        w(
            "c4@eth0.json",
            &record_json("c4", "", "", "vpg000000000004", "10.1.1.4"),
        );
        w(
            "c5@eth0.json",
            &record_json("c5", "a", "b", "vpg000000000005", "10.1.1.5")
                .replace("\"version\":1", "\"version\":2"),
        );
        w(".c6@eth0.json.tmp", "partial");
        w("notes.txt", "ignored");
        let s = scan(d.path()).unwrap();
        let names: Vec<_> = s.pods.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(names, ["c1@eth0.json", "c4@eth0.json"]);
        assert_eq!(s.pods[0].key, Some(("default".into(), "web".into())));
        assert_eq!(s.pods[0].mtu, Some(1450));
        assert_eq!(s.pods[0].mac.to_string(), "02:00:00:00:00:01");
        assert_eq!(s.pods[1].key, None);
        assert_eq!(s.pods[1].display_name(), "container c4");
        let errs: Vec<_> = s.errors.iter().map(|(f, w)| format!("{f}: {w}")).collect();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("c2@eth0.json: address 10.1.1.2 is also in c1@eth0.json"));
        assert!(errs[1].contains("c3@eth0.json: not a pod record"));
        assert!(errs[2].contains("record version 2"));
        let sig = signature(d.path()).unwrap();
        assert_eq!(sig.len(), 5);
    }
}
