//! The node configuration (`vpg-agent run --config node.toml`): what this node is and where
//! everything lives. Parsed in two steps: TOML into plain fields (unknown keys refused, so a
//! typo is an error rather than a setting silently ignored), then checked into typed values.
//! Every error names the field (`uplink.address: '10.0.0.1' is not a prefix (no /length)`).
//!
//! ```toml
//! node = "node1"
//! vpgd_socket = "/run/vpg/api.sock"
//! cni_data_dir = "/var/lib/vpg/cni"
//! status_socket = "/run/vpg/agent.sock"
//!
//! [uplink]
//! host_if = "eth1"            # the Linux interface vpgd attaches
//! name = "up0"                # vpg's name for it
//! address = "192.168.1.10/24" # the node IP and its prefix
//! gateway = "192.168.1.1"     # the default gateway
//!
//! [pods]
//! cidr = "10.1.1.0/24"        # this node's pod CIDR
//! gateway = "10.1.1.1"        # optional: the pods' gateway (default: first address)
//!
//! [cluster]
//! networks = ["10.1.0.0/16"]  # never NATed (the node network is added)
//!
//! [overlay]
//! vni = 10
//! port = 4789                 # optional
//!
//! [store]                     # embedded (one node) ...
//! embedded = "/var/lib/vpg/agent.redb"
//! manifests = "/etc/vpg/manifests"   # optional: run the reflector on this directory
//! # ... or etcd:  etcd = ["http://127.0.0.1:2379"]
//!
//! [encryption]                # optional: ESP between nodes (docs/agent.md#encryption)
//! enabled = true
//! mode = "transport"          # ESP transport mode around the VXLAN packets (the only mode)
//! sas_per_peer = 1            # SAs per direction per peer (one per vpgd worker scales)
//! switch_delay_ms = 2000      # new key: outbound switches this long after inbound is in
//! grace_s = 30                # old inbound SAs stay this long after the switch
//! tunnel_mtu = 1400           # VXLAN tunnels' MTU (room for ESP on a 1500-byte underlay)
//! id_base = 1000              # the agent's ESP SA and protect-rule ids start here
//! used_keys = "/var/lib/vpg/agent-esp-used.json"  # outbound keys never to reuse
//! ```

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vpg_api::Prefix;

/// Where cluster records come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded redb store at `path`; with `manifests`, the agent runs the reflector on
    /// that directory itself (one machine).
    Embedded {
        /// The store file.
        path: PathBuf,
        /// The manifest directory the in-process reflector reads.
        manifests: Option<PathBuf>,
        /// How often the manifest directory is scanned.
        scan_interval: Duration,
    },
    /// etcd, filled by a `vpg-ksr` elsewhere.
    Etcd {
        /// Endpoints.
        endpoints: Vec<String>,
        /// Request timeout.
        timeout: Duration,
    },
}

/// The uplink: the interface to the default gateway, carrying the node IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uplink {
    /// Linux interface.
    pub host_if: String,
    /// vpg's name.
    pub name: String,
    /// Node IP with the prefix length of the node network.
    pub address: Prefix,
    /// Default gateway.
    pub gateway: Ipv4Addr,
}

/// Timers of the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Quiet time after a change before recomputing (changes arriving meanwhile join).
    pub debounce: Duration,
    /// How often the CNI pod-record directory is scanned.
    pub pod_poll: Duration,
    /// How often vpgd is probed (a restart is noticed within this).
    pub probe: Duration,
    /// Full resync period even when nothing changed (repairs changes made behind our back).
    pub resync: Duration,
    /// Largest retry delay after failures (backoff doubles from 100 ms up to this).
    pub max_backoff: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            debounce: Duration::from_millis(100),
            pod_poll: Duration::from_millis(500),
            probe: Duration::from_secs(1),
            resync: Duration::from_secs(30),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Encryption between nodes: ESP in transport mode around the VXLAN packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encryption {
    /// SAs per direction per peer (the rule lists them; worker w starts with SA w mod n).
    pub sas_per_peer: u8,
    /// How long after a new key is first seen the outbound traffic switches to it (the
    /// other nodes install its inbound SAs meanwhile; no packet arrives for an SA not there).
    pub switch_delay: Duration,
    /// How long the previous key's inbound SAs keep accepting after the switch.
    pub grace: Duration,
    /// The VXLAN tunnels' MTU (the ESP overhead must fit the underlay's MTU).
    pub tunnel_mtu: u16,
    /// The agent's SA and protect-rule ids start here; lower ones are left alone.
    pub id_base: u32,
    /// Fingerprints of the outbound SA keys installed so far: AES-GCM must never see a
    /// (key, sequence number) twice, so a key a vpgd lost (a restart) is not installed again.
    pub used_keys: PathBuf,
}

impl Default for Encryption {
    fn default() -> Self {
        Encryption {
            sas_per_peer: 1,
            switch_delay: Duration::from_secs(2),
            grace: Duration::from_secs(30),
            tunnel_mtu: 1400,
            id_base: 1000,
            used_keys: PathBuf::from("/var/lib/vpg/agent-esp-used.json"),
        }
    }
}

/// A checked node configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// This node's name (as in the node records of the store).
    pub node: String,
    /// vpgd's API socket.
    pub vpgd_socket: PathBuf,
    /// The uplink.
    pub uplink: Uplink,
    /// This node's pod CIDR.
    pub pod_cidr: Prefix,
    /// The pods' gateway address (vpg answers for it on every pod interface).
    pub pod_gateway: Ipv4Addr,
    /// Cluster networks, never NATed (pod and service networks); the node network is added.
    pub cluster_networks: Vec<Prefix>,
    /// VXLAN network identifier of the overlay.
    pub vni: u32,
    /// VXLAN UDP port.
    pub vxlan_port: u16,
    /// The store.
    pub store: StoreConfig,
    /// The CNI plugin's data directory (pod records under `pods/`).
    pub cni_data_dir: PathBuf,
    /// Where `vpg-agent status` asks.
    pub status_socket: PathBuf,
    /// The agent's ACLs use ids from here up; ACLs below are left alone.
    pub acl_base: u32,
    /// Timers.
    pub timing: Timing,
    /// Encryption between nodes (`None`: off).
    pub encryption: Option<Encryption>,
}

/// A configuration error: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {why}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        why: String,
    },
    /// Not TOML of the expected shape (unknown or missing key, wrong type); toml names the key.
    #[error("{0}")]
    Syntax(String),
    /// A field's value is wrong.
    #[error("{field}: {why}")]
    Field {
        /// Dotted field name (`uplink.address`).
        field: String,
        /// What is wrong.
        why: String,
    },
}

fn field(field: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        why: why.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    node: String,
    #[serde(default = "default_socket")]
    vpgd_socket: PathBuf,
    #[serde(default = "default_cni_dir")]
    cni_data_dir: PathBuf,
    #[serde(default = "default_status")]
    status_socket: PathBuf,
    #[serde(default = "default_acl_base")]
    acl_base: u32,
    uplink: RawUplink,
    pods: RawPods,
    #[serde(default)]
    cluster: RawCluster,
    overlay: RawOverlay,
    store: RawStore,
    #[serde(default)]
    timing: RawTiming,
    #[serde(default)]
    encryption: Option<RawEncryption>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncryption {
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    sas_per_peer: Option<u32>,
    #[serde(default)]
    switch_delay_ms: Option<u64>,
    #[serde(default)]
    grace_s: Option<u64>,
    #[serde(default)]
    tunnel_mtu: Option<u32>,
    #[serde(default)]
    id_base: Option<u32>,
    #[serde(default)]
    used_keys: Option<PathBuf>,
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/vpg/api.sock")
}
fn default_cni_dir() -> PathBuf {
    PathBuf::from("/var/lib/vpg/cni")
}
fn default_status() -> PathBuf {
    PathBuf::from("/run/vpg/agent.sock")
}
fn default_acl_base() -> u32 {
    1000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUplink {
    host_if: String,
    #[serde(default)]
    name: Option<String>,
    address: String,
    gateway: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPods {
    cidr: String,
    #[serde(default)]
    gateway: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    #[serde(default)]
    networks: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOverlay {
    vni: u32,
    #[serde(default)]
    port: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default)]
    embedded: Option<PathBuf>,
    #[serde(default)]
    manifests: Option<PathBuf>,
    #[serde(default)]
    scan_interval_ms: Option<u64>,
    #[serde(default)]
    etcd: Vec<String>,
    #[serde(default)]
    etcd_timeout_ms: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTiming {
    debounce_ms: Option<u64>,
    pod_poll_ms: Option<u64>,
    probe_ms: Option<u64>,
    resync_s: Option<u64>,
    max_backoff_ms: Option<u64>,
}

/// Checks a Linux interface name the way vpgd does (1 to 15 bytes, no `/`, `:` or spaces).
fn ifname(f: &str, name: &str) -> Result<(), ConfigError> {
    vpg_api::interface::check_ifname(f, name).map_err(|e| field(f, e.message))
}

fn prefix(f: &str, s: &str) -> Result<Prefix, ConfigError> {
    s.parse().map_err(|e: String| field(f, e))
}

fn network(f: &str, s: &str) -> Result<Prefix, ConfigError> {
    let p = prefix(f, s)?;
    if !p.is_network() {
        return Err(field(
            f,
            format!("'{s}' has host bits set (did you mean {}?)", p.network()),
        ));
    }
    Ok(p)
}

fn ip(f: &str, s: &str) -> Result<Ipv4Addr, ConfigError> {
    s.parse()
        .map_err(|_| field(f, format!("'{s}' is not an IPv4 address")))
}

fn positive_ms(f: &str, v: Option<u64>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(0) => Err(field(f, "must be at least 1")),
        Some(ms) => Ok(Duration::from_millis(ms)),
    }
}

impl NodeConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        NodeConfig::parse(&text)
    }

    /// Parses and checks the TOML text of a configuration.
    pub fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's message does not always name the key ("invalid type: string, expected
            // u32"): name it from the line the error points at, and keep it on one line.
            let at = span_of(text, e.span());
            match key_at(text, e.span()) {
                Some(k) => ConfigError::Field {
                    field: k,
                    why: format!("{}{at}", e.message()),
                },
                None => ConfigError::Syntax(format!("{}{at}", e.message())),
            }
        })?;
        let node = raw.node.trim().to_string();
        if node.is_empty() {
            return Err(field("node", "is empty"));
        }
        ifname("uplink.host_if", &raw.uplink.host_if)?;
        let up_name = raw
            .uplink
            .name
            .unwrap_or_else(|| raw.uplink.host_if.clone());
        ifname("uplink.name", &up_name)?;
        if crate::desired::is_pod_ifname(&up_name) || crate::desired::is_tunnel_ifname(&up_name) {
            return Err(field(
                "uplink.name",
                format!("'{up_name}' looks like a pod or tunnel interface name the agent manages"),
            ));
        }
        let address = prefix("uplink.address", &raw.uplink.address)?;
        if address.len == 32 || address.len == 0 || address.addr == address.network().addr {
            return Err(field(
                "uplink.address",
                format!(
                    "'{address}' must be the node IP with its network's prefix length (10.0.0.5/24)"
                ),
            ));
        }
        let gateway = ip("uplink.gateway", &raw.uplink.gateway)?;
        if !address.contains(gateway) || gateway == address.addr {
            return Err(field(
                "uplink.gateway",
                format!(
                    "{gateway} is not another address on the uplink's network {}",
                    address.network()
                ),
            ));
        }
        let pod_cidr = network("pods.cidr", &raw.pods.cidr)?;
        if pod_cidr.len > 30 {
            return Err(field("pods.cidr", "must be /30 or larger"));
        }
        let pod_gateway = match &raw.pods.gateway {
            Some(g) => {
                let g = ip("pods.gateway", g)?;
                if !pod_cidr.contains(g) {
                    return Err(field(
                        "pods.gateway",
                        format!("{g} is not inside pods.cidr {pod_cidr}"),
                    ));
                }
                g
            }
            None => Ipv4Addr::from(u32::from(pod_cidr.addr) + 1),
        };
        let mut cluster_networks = Vec::new();
        for (i, n) in raw.cluster.networks.iter().enumerate() {
            cluster_networks.push(network(&format!("cluster.networks[{i}]"), n)?);
        }
        if raw.overlay.vni >= 1 << 24 {
            return Err(field("overlay.vni", "must be below 16777216"));
        }
        let vxlan_port = match raw.overlay.port {
            Some(0) => return Err(field("overlay.port", "must not be 0")),
            Some(p) => p,
            None => 4789,
        };
        let s = raw.store;
        let store = match (s.embedded, s.etcd.is_empty()) {
            (Some(_), false) => {
                return Err(field(
                    "store",
                    "give either `embedded` (a file) or `etcd` (endpoints), not both",
                ))
            }
            (None, true) => {
                return Err(field(
                    "store",
                    "needs `embedded = \"FILE\"` or `etcd = [\"http://HOST:2379\"]`",
                ))
            }
            (Some(path), true) => {
                if path.as_os_str().is_empty() {
                    return Err(field("store.embedded", "is empty"));
                }
                StoreConfig::Embedded {
                    path,
                    manifests: s.manifests,
                    scan_interval: positive_ms(
                        "store.scan_interval_ms",
                        s.scan_interval_ms,
                        Duration::from_millis(500),
                    )?,
                }
            }
            (None, false) => {
                if s.manifests.is_some() {
                    return Err(field(
                        "store.manifests",
                        "only with `embedded` (with etcd, vpg-ksr reflects the cluster)",
                    ));
                }
                for (i, e) in s.etcd.iter().enumerate() {
                    if !(e.starts_with("http://") || e.starts_with("https://")) {
                        return Err(field(
                            &format!("store.etcd[{i}]"),
                            format!("'{e}' is not an http:// or https:// URL"),
                        ));
                    }
                }
                StoreConfig::Etcd {
                    endpoints: s.etcd,
                    timeout: positive_ms(
                        "store.etcd_timeout_ms",
                        s.etcd_timeout_ms,
                        Duration::from_secs(2),
                    )?,
                }
            }
        };
        let d = Timing::default();
        let t = raw.timing;
        let timing = Timing {
            debounce: match t.debounce_ms {
                Some(ms) => Duration::from_millis(ms),
                None => d.debounce,
            },
            pod_poll: positive_ms("timing.pod_poll_ms", t.pod_poll_ms, d.pod_poll)?,
            probe: positive_ms("timing.probe_ms", t.probe_ms, d.probe)?,
            resync: match t.resync_s {
                Some(0) => return Err(field("timing.resync_s", "must be at least 1")),
                Some(s) => Duration::from_secs(s),
                None => d.resync,
            },
            max_backoff: positive_ms("timing.max_backoff_ms", t.max_backoff_ms, d.max_backoff)?,
        };
        if raw.acl_base > u32::MAX - 1_000_000 {
            return Err(field("acl_base", "leaves no room for the node's ACLs"));
        }
        let encryption = match raw.encryption {
            Some(e) if e.enabled => Some(encryption(e)?),
            _ => None,
        };
        Ok(NodeConfig {
            node,
            vpgd_socket: raw.vpgd_socket,
            uplink: Uplink {
                host_if: raw.uplink.host_if,
                name: up_name,
                address,
                gateway,
            },
            pod_cidr,
            pod_gateway,
            cluster_networks,
            vni: raw.overlay.vni,
            vxlan_port,
            store,
            cni_data_dir: raw.cni_data_dir,
            status_socket: raw.status_socket,
            acl_base: raw.acl_base,
            timing,
            encryption,
        })
    }

    /// The node IP.
    pub fn node_ip(&self) -> Ipv4Addr {
        self.uplink.address.addr
    }

    /// The CNI pod-record directory.
    pub fn pods_dir(&self) -> PathBuf {
        self.cni_data_dir.join("pods")
    }
}

fn encryption(e: RawEncryption) -> Result<Encryption, ConfigError> {
    let d = Encryption::default();
    match e.mode.as_deref() {
        None | Some("transport") => {}
        Some(m) => {
            return Err(field(
                "encryption.mode",
                format!(
                "'{}' is not supported: \"transport\" (ESP around the VXLAN packets between nodes)",
                m.escape_debug()
            ),
            ))
        }
    }
    let sas_per_peer = match e.sas_per_peer {
        None => d.sas_per_peer,
        Some(n @ 1..=16) => n as u8,
        Some(n) => {
            return Err(field(
                "encryption.sas_per_peer",
                format!("{n} is out of range 1..=16"),
            ))
        }
    };
    let switch_delay = match e.switch_delay_ms {
        None => d.switch_delay,
        Some(ms) if ms <= 600_000 => Duration::from_millis(ms),
        Some(ms) => {
            return Err(field(
                "encryption.switch_delay_ms",
                format!("{ms} is above 600000 (10 minutes)"),
            ))
        }
    };
    let grace = match e.grace_s {
        None => d.grace,
        Some(0) => {
            return Err(field(
                "encryption.grace_s",
                "must be at least 1 (the other nodes switch at their own time)",
            ))
        }
        Some(s) if s <= 86_400 => Duration::from_secs(s),
        Some(s) => {
            return Err(field(
                "encryption.grace_s",
                format!("{s} is above 86400 (a day)"),
            ))
        }
    };
    let tunnel_mtu = match e.tunnel_mtu {
        None => d.tunnel_mtu,
        Some(m @ 576..=9000) => m as u16,
        Some(m) => {
            return Err(field(
                "encryption.tunnel_mtu",
                format!("{m} is out of range 576..=9000"),
            ))
        }
    };
    let id_base = match e.id_base {
        None => d.id_base,
        Some(b) if (1..=u32::MAX - 1_000_000).contains(&b) => b,
        Some(b) => {
            return Err(field(
                "encryption.id_base",
                format!("{b} must be from 1 and leave room for the node's SAs"),
            ))
        }
    };
    let used_keys = match e.used_keys {
        None => d.used_keys,
        Some(p) if p.as_os_str().is_empty() => {
            return Err(field("encryption.used_keys", "is empty"))
        }
        Some(p) => p,
    };
    Ok(Encryption {
        sas_per_peer,
        switch_delay,
        grace,
        tunnel_mtu,
        id_base,
        used_keys,
    })
}

/// The dotted key of the `key = value` line a toml error span points into (`overlay.vni`).
fn key_at(text: &str, span: Option<std::ops::Range<usize>>) -> Option<String> {
    let start = span?.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
    Some(match section {
        Some(s) => format!("{s}.{key}"),
        None => key.to_string(),
    })
}

/// ` (line L, column C)` for a toml error span.
fn span_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(r) = span else {
        return String::new();
    };
    let before = &text[..r.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!(" (line {line}, column {col})")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const GOOD: &str = r#"
node = "node1"
vpgd_socket = "/tmp/api.sock"
[uplink]
host_if = "eth1"
name = "up0"
address = "192.168.1.10/24"
gateway = "192.168.1.1"
[pods]
cidr = "10.1.1.0/24"
[cluster]
networks = ["10.1.0.0/16", "10.96.0.0/12"]
[overlay]
vni = 10
[store]
embedded = "/tmp/a.redb"
manifests = "/tmp/m"
"#;

    #[test]
    fn good_config_and_defaults() {
        let c = NodeConfig::parse(GOOD).unwrap();
        assert_eq!(c.node, "node1");
        assert_eq!(c.uplink.name, "up0");
        assert_eq!(c.node_ip(), Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(c.pod_gateway, Ipv4Addr::new(10, 1, 1, 1));
        assert_eq!(c.vxlan_port, 4789);
        assert_eq!(c.acl_base, 1000);
        assert_eq!(c.cluster_networks.len(), 2);
        assert_eq!(c.pods_dir(), PathBuf::from("/var/lib/vpg/cni/pods"));
        assert!(matches!(
            c.store,
            StoreConfig::Embedded {
                manifests: Some(_),
                ..
            }
        ));
        assert_eq!(c.timing, Timing::default());
        assert_eq!(c.encryption, None);
        let on = NodeConfig::parse(&format!("{GOOD}[encryption]\nenabled = true\n")).unwrap();
        assert_eq!(on.encryption, Some(Encryption::default()));
        let off = NodeConfig::parse(&format!(
            "{GOOD}[encryption]\nenabled = false\nsas_per_peer = 2\n"
        ))
        .unwrap();
        assert_eq!(off.encryption, None);
        let e = NodeConfig::parse(&format!(
            "{GOOD}[encryption]\nenabled = true\nsas_per_peer = 2\nswitch_delay_ms = 500\ngrace_s = 3\ntunnel_mtu = 1380\nid_base = 50\nused_keys = \"/tmp/u\"\n"
        ))
        .unwrap()
        .encryption
        .unwrap();
        assert_eq!(
            (
                e.sas_per_peer,
                e.switch_delay,
                e.grace,
                e.tunnel_mtu,
                e.id_base
            ),
            (
                2,
                Duration::from_millis(500),
                Duration::from_secs(3),
                1380,
                50
            )
        );
        assert_eq!(e.used_keys, PathBuf::from("/tmp/u"));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (GOOD.replace("vni = 10", "vni = 10\nvnii = 3"), "vnii"),
            (GOOD.replace("node = \"node1\"\n", ""), "node"),
            (
                GOOD.replace("192.168.1.10/24", "192.168.1.10"),
                "uplink.address: '192.168.1.10' is not a prefix",
            ),
            (
                GOOD.replace("192.168.1.10/24", "192.168.1.0/24"),
                "uplink.address",
            ),
            (
                GOOD.replace("\"192.168.1.1\"", "\"192.168.2.1\""),
                "uplink.gateway: 192.168.2.1 is not another address",
            ),
            (
                GOOD.replace("10.1.1.0/24", "10.1.1.5/24"),
                "pods.cidr: '10.1.1.5/24' has host bits set (did you mean 10.1.1.0/24?)",
            ),
            (
                GOOD.replace("\"10.96.0.0/12\"", "\"10.96.0.0/33\""),
                "cluster.networks[1]",
            ),
            (GOOD.replace("vni = 10", "vni = 16777216"), "overlay.vni"),
            (
                GOOD.replace("embedded = \"/tmp/a.redb\"", "etcd = [\"x\"]"),
                "store.manifests",
            ),
            (
                GOOD.replace(
                    "embedded = \"/tmp/a.redb\"\nmanifests = \"/tmp/m\"",
                    "etcd = [\"127.0.0.1:2379\"]",
                ),
                "store.etcd[0]: '127.0.0.1:2379' is not an http",
            ),
            (
                GOOD.replace("embedded = \"/tmp/a.redb\"\nmanifests = \"/tmp/m\"", ""),
                "store: needs",
            ),
            (
                GOOD.replace("name = \"up0\"", "name = \"a/b\""),
                "uplink.name",
            ),
            (
                GOOD.replace("name = \"up0\"", "name = \"vx0a000001\""),
                "uplink.name",
            ),
            (
                GOOD.replace("vni = 10", "vni = \"ten\""),
                "overlay.vni: invalid type: string \"ten\", expected u32 (line 14",
            ),
            (
                GOOD.replace("node = \"node1\"", "node = 3"),
                "node: invalid type",
            ),
        ];
        let enc = |extra: &str| format!("{GOOD}[encryption]\nenabled = true\n{extra}\n");
        let cases: Vec<(String, &str)> = cases
            .into_iter()
            .chain([
                (
                    enc("mode = \"tunnel\""),
                    "encryption.mode: 'tunnel' is not supported",
                ),
                (
                    enc("sas_per_peer = 0"),
                    "encryption.sas_per_peer: 0 is out of range",
                ),
                (enc("sas_per_peer = 17"), "encryption.sas_per_peer"),
                (enc("grace_s = 0"), "encryption.grace_s: must be at least 1"),
                (
                    enc("switch_delay_ms = 700000"),
                    "encryption.switch_delay_ms",
                ),
                (enc("tunnel_mtu = 100"), "encryption.tunnel_mtu"),
                (enc("id_base = 0"), "encryption.id_base"),
                (enc("used_keys = \"\""), "encryption.used_keys: is empty"),
                (enc("keys = 3"), "keys"),
                (
                    enc("grace_s = \"long\""),
                    "encryption.grace_s: invalid type",
                ),
            ])
            .collect();
        for (text, want) in cases {
            let e = NodeConfig::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
        let e = NodeConfig::load(Path::new("/nonexistent/node.toml")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/node.toml: "), "{e}");
    }
}
