//! vpgd's configuration file (TOML): workers, buffers, the API socket, the stats segment and the
//! interfaces to create at start. Everything else arrives through the API at run time.
//!
//! ```toml
//! [workers]
//! count = 2
//! cpus = [0, 1]
//!
//! [buffers]
//! per_worker = 16384
//! huge_pages = true
//!
//! [api]
//! socket = "/run/vpg/api.sock"
//!
//! [stats]
//! segment = "/run/vpg/stats"
//!
//! [afpacket]            # ring sizes of every AF_PACKET interface (defaults shown)
//! block_size = 262144   # RX block bytes: a power of two, at least 4096
//! block_count = 16      # RX blocks
//! tx_frames = 1024      # TX frames
//! retire_ms = 1         # hand over a partly filled RX block after this long
//!
//! [esp]                 # optional: keep outbound ESP sequence numbers across restarts
//! sequence_file = "/var/lib/vpg/esp-sequences.json"
//! sequence_reserve = 4194304   # sequence numbers reserved on disk at a time, per SA
//!
//! [[interface]]
//! host_if = "eth1"
//! addresses = ["10.0.1.1/24"]
//! up = true
//!
//! [[vxlan_tunnel]]
//! local = "10.0.1.1"
//! remote = "10.0.1.2"
//! vni = 42
//! addresses = ["10.255.0.1/24"]
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};
use vpg_graph::wire::Ipv4Cidr;

/// The whole file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Worker threads.
    #[serde(default)]
    pub workers: WorkersConfig,
    /// Buffer pools.
    #[serde(default)]
    pub buffers: BuffersConfig,
    /// The control API.
    #[serde(default)]
    pub api: ApiConfig,
    /// The stats segment.
    #[serde(default)]
    pub stats: StatsConfig,
    /// Ring sizes of the AF_PACKET interfaces.
    #[serde(default)]
    pub afpacket: AfPacketConfig,
    /// IPsec ESP.
    #[serde(default)]
    pub esp: EspConfig,
    /// Interfaces created at start.
    #[serde(default, rename = "interface")]
    pub interfaces: Vec<InterfaceConfig>,
    /// VXLAN tunnels created at start, after the interfaces.
    #[serde(default, rename = "vxlan_tunnel")]
    pub vxlan_tunnels: Vec<crate::vxlan::TunnelConfig>,
}

/// `[workers]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// Number of worker threads (1–64).
    #[serde(default = "one")]
    pub count: usize,
    /// CPU per worker (optional; unpinned when empty).
    #[serde(default)]
    pub cpus: Vec<usize>,
}

/// `[buffers]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BuffersConfig {
    /// Buffers per worker (1024–1048576).
    #[serde(default = "default_buffers")]
    pub per_worker: u32,
    /// Put the buffer memory on huge pages when the system offers them.
    #[serde(default = "yes")]
    pub huge_pages: bool,
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Unix socket path (created with mode 0600).
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
}

/// `[stats]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Stats segment file that vpgctl maps.
    #[serde(default = "default_segment")]
    pub segment: PathBuf,
}

/// `[afpacket]`: the ring sizes every AF_PACKET interface gets. The default (4 MiB of RX ring
/// and 2 MiB of TX ring per interface and worker) suits an uplink; a node with hundreds of pod
/// interfaces wants smaller rings, since the kernel holds each ring's memory for the interface's
/// lifetime.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AfPacketConfig {
    /// RX block size in bytes.
    #[serde(default = "default_block_size")]
    pub block_size: u32,
    /// RX blocks per ring.
    #[serde(default = "default_block_count")]
    pub block_count: u32,
    /// TX frames per ring.
    #[serde(default = "default_tx_frames")]
    pub tx_frames: u32,
    /// Milliseconds before the kernel hands over a partly filled RX block.
    #[serde(default = "default_retire_ms")]
    pub retire_ms: u32,
}

impl AfPacketConfig {
    /// The ring options for vpg-io.
    pub fn ring_options(&self) -> vpg_io::RingOptions {
        vpg_io::RingOptions {
            block_size: self.block_size,
            block_count: self.block_count,
            retire_ms: self.retire_ms,
            tx_frames: self.tx_frames,
            fanout_group: None,
        }
    }
}

fn default_block_size() -> u32 {
    vpg_io::RingOptions::default().block_size
}
fn default_block_count() -> u32 {
    vpg_io::RingOptions::default().block_count
}
fn default_tx_frames() -> u32 {
    vpg_io::RingOptions::default().tx_frames
}
fn default_retire_ms() -> u32 {
    vpg_io::RingOptions::default().retire_ms
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        Self {
            block_size: default_block_size(),
            block_count: default_block_count(),
            tx_frames: default_tx_frames(),
            retire_ms: default_retire_ms(),
        }
    }
}

/// `[esp]`: where outbound sequence numbers are reserved. AES-GCM's nonce is the SA's
/// sequence number, so an SA whose key was used before must never start again at 1: with a
/// sequence file, vpgd reserves numbers on disk ahead of use (`sequence_reserve` at a time,
/// extended when half is used) and a restarted vpgd continues each recorded key after its
/// reservation. Without one, a key cannot be taken back after a restart (vpg-agent then waits
/// for a key rotation).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EspConfig {
    /// The sequence file (none: sequence numbers are not kept).
    pub sequence_file: Option<PathBuf>,
    /// Sequence numbers reserved at a time per outbound SA (a restart skips at most this many).
    #[serde(default = "default_sequence_reserve")]
    pub sequence_reserve: u64,
}

fn default_sequence_reserve() -> u64 {
    1 << 22
}

impl Default for EspConfig {
    fn default() -> Self {
        Self {
            sequence_file: None,
            sequence_reserve: default_sequence_reserve(),
        }
    }
}

/// `[[interface]]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    /// The Linux interface to attach with AF_PACKET.
    pub host_if: String,
    /// vpg's name for it (default: the host name).
    pub name: Option<String>,
    /// MAC address (default: the host interface's).
    pub mac: Option<String>,
    /// Addresses with prefix length.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// MTU (68–9000).
    pub mtu: Option<u16>,
    /// Admin up.
    #[serde(default = "yes")]
    pub up: bool,
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn default_buffers() -> u32 {
    16384
}
fn default_socket() -> PathBuf {
    PathBuf::from("/run/vpg/api.sock")
}
fn default_segment() -> PathBuf {
    PathBuf::from("/run/vpg/stats")
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            count: 1,
            cpus: Vec::new(),
        }
    }
}
impl Default for BuffersConfig {
    fn default() -> Self {
        Self {
            per_worker: default_buffers(),
            huge_pages: true,
        }
    }
}
impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            socket: default_socket(),
        }
    }
}
impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            segment: default_segment(),
        }
    }
}

/// A configuration error: which field, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {why}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        why: String,
    },
    /// TOML syntax or a field of the wrong type or name (the parser's message names the field
    /// and the line).
    #[error("{0}")]
    Parse(String),
    /// A field with a value out of range.
    #[error("{field}: {why}")]
    Invalid {
        /// The field, as a path (`workers.count`, `interface[1].addresses[0]`).
        field: String,
        /// Why it is refused.
        why: String,
    },
}

fn invalid(field: impl Into<String>, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        why: why.into(),
    }
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        Self::parse(&text)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let c: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Parse(e.to_string().trim_end().to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Checks ranges and formats that the types do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=64).contains(&self.workers.count) {
            return Err(invalid(
                "workers.count",
                format!("{} is out of range 1..=64", self.workers.count),
            ));
        }
        if !self.workers.cpus.is_empty() && self.workers.cpus.len() != self.workers.count {
            return Err(invalid(
                "workers.cpus",
                format!(
                    "lists {} CPUs for {} workers",
                    self.workers.cpus.len(),
                    self.workers.count
                ),
            ));
        }
        if !(1024..=1_048_576).contains(&self.buffers.per_worker) {
            return Err(invalid(
                "buffers.per_worker",
                format!("{} is out of range 1024..=1048576", self.buffers.per_worker),
            ));
        }
        let a = &self.afpacket;
        if !a.block_size.is_power_of_two() || !(4096..=1 << 24).contains(&a.block_size) {
            return Err(invalid(
                "afpacket.block_size",
                format!("{} is not a power of two in 4096..=16777216", a.block_size),
            ));
        }
        if !(1..=1024).contains(&a.block_count) {
            return Err(invalid(
                "afpacket.block_count",
                format!("{} is out of range 1..=1024", a.block_count),
            ));
        }
        if u64::from(a.block_size) * u64::from(a.block_count) > 1 << 30 {
            return Err(invalid(
                "afpacket.block_count",
                "block_size × block_count is over 1 GiB",
            ));
        }
        if !(32..=65536).contains(&a.tx_frames) {
            return Err(invalid(
                "afpacket.tx_frames",
                format!("{} is out of range 32..=65536", a.tx_frames),
            ));
        }
        if a.retire_ms > 1000 {
            return Err(invalid(
                "afpacket.retire_ms",
                format!("{} is out of range 0..=1000", a.retire_ms),
            ));
        }
        // At least a few milliseconds of a fast SA (one write per half), and a jump a receiver's
        // ESN inference takes (well under 2^31).
        if !(1024..=1 << 30).contains(&self.esp.sequence_reserve) {
            return Err(invalid(
                "esp.sequence_reserve",
                format!(
                    "{} is out of range 1024..=1073741824",
                    self.esp.sequence_reserve
                ),
            ));
        }
        if self
            .esp
            .sequence_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty() || p.is_dir())
        {
            return Err(invalid(
                "esp.sequence_file",
                "must name a file (it is created when missing)",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, itf) in self.interfaces.iter().enumerate() {
            let f = |s: &str| format!("interface[{i}].{s}");
            if itf.host_if.is_empty() || itf.host_if.len() > 15 {
                return Err(invalid(
                    f("host_if"),
                    "must be a Linux interface name of 1 to 15 bytes",
                ));
            }
            let name = itf.name.clone().unwrap_or_else(|| itf.host_if.clone());
            if name.is_empty() || !names.insert(name.clone()) {
                return Err(invalid(
                    f("name"),
                    format!("'{name}' is empty or used by another interface"),
                ));
            }
            if let Some(m) = &itf.mac {
                parse_mac(m).ok_or_else(|| {
                    invalid(
                        f("mac"),
                        format!("'{m}' is not a MAC address like 02:00:00:00:00:01"),
                    )
                })?;
            }
            for (j, a) in itf.addresses.iter().enumerate() {
                a.parse::<Ipv4Cidr>().map_err(|_| {
                    invalid(
                        f(&format!("addresses[{j}]")),
                        format!("'{a}' is not an IPv4 address with prefix length"),
                    )
                })?;
            }
            if let Some(m) = itf.mtu {
                if !(68..=9000).contains(&m) {
                    return Err(invalid(f("mtu"), format!("{m} is out of range 68..=9000")));
                }
            }
        }
        for (i, t) in self.vxlan_tunnels.iter().enumerate() {
            crate::vxlan::validate_config(i, t)?;
        }
        Ok(())
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for o in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_full_file() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.workers.count, 1);
        assert_eq!(c.api.socket, PathBuf::from("/run/vpg/api.sock"));
        let c = Config::parse(
            r#"
            [workers]
            count = 2
            cpus = [0, 1]
            [buffers]
            per_worker = 4096
            huge_pages = false
            [api]
            socket = "/tmp/x.sock"
            [[interface]]
            host_if = "veth0"
            mac = "02:00:00:00:00:01"
            addresses = ["10.0.1.1/24"]
            mtu = 1400
            "#,
        )
        .unwrap();
        assert_eq!(c.interfaces[0].addresses, vec!["10.0.1.1/24"]);
        assert!(c.interfaces[0].up);
        assert_eq!(c.afpacket.ring_options(), vpg_io::RingOptions::default());
    }

    #[test]
    fn afpacket_ring_sizes() {
        let c = Config::parse(
            "[afpacket]\nblock_size = 65536\nblock_count = 4\ntx_frames = 256\nretire_ms = 2\n",
        )
        .unwrap();
        let o = c.afpacket.ring_options();
        assert_eq!(
            (o.block_size, o.block_count, o.tx_frames, o.retire_ms),
            (65536, 4, 256, 2)
        );
        for (text, field) in [
            ("block_size = 5000", "afpacket.block_size"),
            ("block_size = 2048", "afpacket.block_size"),
            ("block_count = 0", "afpacket.block_count"),
            (
                "block_size = 16777216\nblock_count = 128",
                "afpacket.block_count",
            ),
            ("tx_frames = 8", "afpacket.tx_frames"),
            ("retire_ms = 5000", "afpacket.retire_ms"),
        ] {
            let e = Config::parse(&format!("[afpacket]\n{text}\n")).unwrap_err();
            assert!(e.to_string().starts_with(field), "{text}: {e}");
        }
        assert!(Config::parse("[afpacket]\nblocks = 4\n").is_err());
    }

    #[test]
    fn esp_sequence_file() {
        let c = Config::parse("").unwrap();
        assert_eq!(
            (c.esp.sequence_file, c.esp.sequence_reserve),
            (None, 1 << 22)
        );
        let c = Config::parse("[esp]\nsequence_file = \"/var/lib/vpg/s.json\"\n").unwrap();
        assert_eq!(
            c.esp.sequence_file,
            Some(PathBuf::from("/var/lib/vpg/s.json"))
        );
        for (text, field) in [
            ("sequence_reserve = 10", "esp.sequence_reserve"),
            ("sequence_reserve = 4294967296", "esp.sequence_reserve"),
            ("sequence_file = \"\"", "esp.sequence_file"),
            ("sequence_file = \"/tmp\"", "esp.sequence_file"),
        ] {
            let e = Config::parse(&format!("[esp]\n{text}\n")).unwrap_err();
            assert!(e.to_string().starts_with(field), "{text}: {e}");
        }
        assert!(Config::parse("[esp]\nsequence = 4\n").is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::parse("[workers]\ncount = 0\n").unwrap_err();
        assert_eq!(e.to_string(), "workers.count: 0 is out of range 1..=64");
        let e = Config::parse("[workers]\ncuont = 2\n").unwrap_err();
        assert!(e.to_string().contains("cuont"), "{e}");
        let e = Config::parse("[workers]\ncount = \"two\"\n").unwrap_err();
        assert!(e.to_string().contains("count"), "{e}");
        let e = Config::parse("[[interface]]\nhost_if = \"a\"\naddresses = [\"10.0.0.1\"]\n")
            .unwrap_err();
        assert!(
            e.to_string().starts_with("interface[0].addresses[0]:"),
            "{e}"
        );
        let e = Config::parse("[[interface]]\nhost_if = \"a\"\nmac = \"zz\"\n").unwrap_err();
        assert!(e.to_string().starts_with("interface[0].mac:"), "{e}");
        let e = Config::parse("[[interface]]\nhost_if = \"a\"\n[[interface]]\nhost_if = \"a\"\n")
            .unwrap_err();
        assert!(e.to_string().starts_with("interface[1].name:"), "{e}");
        let e = Config::parse("[workers]\ncount = 2\ncpus = [1]\n").unwrap_err();
        assert!(e.to_string().starts_with("workers.cpus:"), "{e}");
        assert!(Config::parse("this is [not toml").is_err());
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:01"), None);
        assert_eq!(parse_mac("0x:00:00:00:00:00"), None);
    }
}
