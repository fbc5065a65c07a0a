//! The network configuration read from stdin: the spec's fields (`cniVersion`, `name`, `type`,
//! `prevResult`, `cni.dev/valid-attachments`) and vpg-cni's (`podCIDR`, `gateway`, `mtu`,
//! `dataDir`, `hostNetns`).
//!
//! Errors name the field: text that is not JSON, or a field of the wrong JSON type, is code 6
//! (decode); a missing required field or a bad value is code 7 (invalid configuration); a
//! `cniVersion` we do not speak is code 1. Unknown fields are ignored, as runtimes pass fields
//! of other plugins and conventions through.

use crate::error::{CniError, Code, Result};
use serde_json::{Map, Value};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The spec versions this plugin speaks, oldest first (VERSION reports them).
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest version we speak: used for VERSION and for errors before the configuration's
/// version is known.
pub const LATEST: &str = "1.1.0";

/// The default MTU of the pod interface: 1500 less VXLAN's 50 bytes of outer headers, so a
/// pod's full-size packet still fits the underlay when it crosses nodes.
pub const DEFAULT_MTU: u32 = 1450;

/// Where IPAM state and pod records live unless `dataDir` says otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/vpg/cni";

/// A CNI spec version, compared numerically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u16, pub u16, pub u16);

impl Version {
    /// Parses `MAJOR.MINOR.PATCH`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split('.').map(|p| p.parse::<u16>().ok());
        let v = Version(it.next()??, it.next()??, it.next()??);
        it.next().is_none().then_some(v)
    }

    /// Whether this plugin speaks version `self`.
    pub fn supported(self) -> bool {
        SUPPORTED_VERSIONS
            .iter()
            .any(|s| Version::parse(s) == Some(self))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// An IPv4 prefix with no host bits set (`10.1.1.0/24`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0..=32.
    pub len: u8,
}

impl Cidr {
    /// Parses `A.B.C.D/LEN`; the error says what is wrong.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not an IPv4 prefix like 10.1.1.0/24"))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("'{a}' is not an IPv4 address"))?;
        let len: u8 = l
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("'{l}' is not a prefix length (0..=32)"))?;
        let c = Cidr { addr, len };
        if c.network() != addr {
            return Err(format!(
                "'{s}' has host bits set (the network is {}/{len})",
                c.network()
            ));
        }
        Ok(c)
    }

    /// The netmask as a number.
    pub fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    /// The network address (host bits cleared).
    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The broadcast address (host bits set).
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// Whether `ip` is inside the prefix.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An attachment named in GC's `cni.dev/valid-attachments`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attachment {
    /// The container id.
    pub container_id: String,
    /// The interface name inside the container.
    pub ifname: String,
}

/// The parsed network configuration.
#[derive(Clone, Debug)]
pub struct NetConf {
    /// `cniVersion`: the version of this request (and of our reply).
    pub version: Version,
    /// `name`: the network's name; it keys the IPAM directory.
    pub name: String,
    /// `podCIDR`: the node's pod subnet, from which pod addresses are allocated.
    pub pod_cidr: Cidr,
    /// `gateway`: the pods' next hop (vpg answers ARP for it); default the first address of the
    /// pod CIDR.
    pub gateway: Ipv4Addr,
    /// `mtu`: of both veth ends.
    pub mtu: u32,
    /// `dataDir`: IPAM files, pod records and the lock.
    pub data_dir: PathBuf,
    /// `hostNetns`: the namespace of the host end (where vpgd runs) as a path; `None` is the
    /// plugin's own namespace.
    pub host_netns: Option<PathBuf>,
    /// `prevResult`: the result of the ADD, given for CHECK and DEL.
    pub prev_result: Option<Value>,
    /// `cni.dev/valid-attachments` (GC only; libcni also sends it as `cni.dev/attachments`).
    pub valid_attachments: Option<Vec<Attachment>>,
}

fn decode(field: &str, want: &str, got: &Value) -> CniError {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    CniError::new(
        Code::Decode,
        format!("{field}: expected {want}, found {kind}"),
    )
}

fn invalid(field: &str, why: impl fmt::Display) -> CniError {
    CniError::new(Code::InvalidConfig, format!("{field}: {why}"))
}

/// The string field `key`, if present (null counts as absent).
fn opt_str<'a>(o: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(decode(key, "a string", v)),
    }
}

fn req_str<'a>(o: &'a Map<String, Value>, key: &str) -> Result<&'a str> {
    opt_str(o, key)?.ok_or_else(|| invalid(key, "missing (required)"))
}

/// Whether `s` is a valid network name (the spec's rule: it is also a directory name here).
fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '.' | '-'))
}

/// Reads the `cniVersion` of a configuration without validating the rest, so an error about
/// the rest can still be answered in the runtime's version.
pub fn peek_version(stdin: &[u8]) -> Option<Version> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    Version::parse(v.get("cniVersion")?.as_str()?).filter(|v| v.supported())
}

/// A `hostNetns` value as a path: a name is looked up under /var/run/netns like `ip netns`.
pub fn netns_path(s: &str) -> PathBuf {
    if s.contains('/') {
        PathBuf::from(s)
    } else {
        PathBuf::from("/var/run/netns").join(s)
    }
}

impl NetConf {
    /// Parses and validates a configuration.
    pub fn parse(stdin: &[u8]) -> Result<Self> {
        let v: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::with_details(
                Code::Decode,
                "network configuration on stdin is not valid JSON",
                e.to_string(),
            )
        })?;
        let Value::Object(o) = &v else {
            return Err(decode("network configuration", "an object", &v));
        };
        let vs = req_str(o, "cniVersion")?;
        let version = Version::parse(vs)
            .ok_or_else(|| invalid("cniVersion", format!("'{vs}' is not a version like 1.0.0")))?;
        if !version.supported() {
            return Err(CniError::new(
                Code::IncompatibleVersion,
                format!(
                    "cniVersion: '{vs}' is not supported; vpg-cni supports {}",
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ));
        }
        let name = req_str(o, "name")?;
        if !valid_name(name) {
            return Err(invalid(
                "name",
                format!("'{name}' must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"),
            ));
        }
        let ty = req_str(o, "type")?;
        if ty.is_empty() {
            return Err(invalid("type", "empty"));
        }
        let cs = req_str(o, "podCIDR")?;
        let pod_cidr = Cidr::parse(cs).map_err(|e| invalid("podCIDR", e))?;
        if pod_cidr.len > 30 {
            return Err(invalid(
                "podCIDR",
                format!(
                    "{pod_cidr} is too small: a /30 or larger leaves room for a gateway and a pod"
                ),
            ));
        }
        let gateway = match opt_str(o, "gateway")? {
            None => Ipv4Addr::from(u32::from(pod_cidr.network()) + 1),
            Some(g) => {
                let ip: Ipv4Addr = g
                    .parse()
                    .map_err(|_| invalid("gateway", format!("'{g}' is not an IPv4 address")))?;
                if !pod_cidr.contains(ip) || ip == pod_cidr.network() || ip == pod_cidr.broadcast()
                {
                    return Err(invalid(
                        "gateway",
                        format!("{ip} is not a host address of podCIDR {pod_cidr}"),
                    ));
                }
                ip
            }
        };
        let mtu = match o.get("mtu") {
            None | Some(Value::Null) => DEFAULT_MTU,
            Some(Value::Number(n)) => n
                .as_u64()
                .filter(|m| (68..=65535).contains(m))
                .map(|m| m as u32)
                .ok_or_else(|| invalid("mtu", format!("{n} is not an MTU (68..=65535)")))?,
            Some(v) => return Err(decode("mtu", "a number", v)),
        };
        let data_dir = match opt_str(o, "dataDir")? {
            None => PathBuf::from(DEFAULT_DATA_DIR),
            Some("") => return Err(invalid("dataDir", "empty")),
            Some(d) => PathBuf::from(d),
        };
        let host_netns = match opt_str(o, "hostNetns")? {
            None | Some("") => None,
            Some(h) => Some(netns_path(h)),
        };
        let prev_result = match o.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(p @ Value::Object(_)) => Some(p.clone()),
            Some(p) => return Err(decode("prevResult", "an object", p)),
        };
        let valid_attachments = match o
            .get("cni.dev/valid-attachments")
            .or_else(|| o.get("cni.dev/attachments"))
        {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let f = format!("cni.dev/valid-attachments[{i}]");
                        let Value::Object(e) = e else {
                            return Err(decode(&f, "an object", e));
                        };
                        let cid = req_str(e, "containerID").map_err(|x| prefix(&f, x))?;
                        let ifn = req_str(e, "ifname").map_err(|x| prefix(&f, x))?;
                        Ok(Attachment {
                            container_id: cid.to_string(),
                            ifname: ifn.to_string(),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(a) => return Err(decode("cni.dev/valid-attachments", "an array", a)),
        };
        Ok(NetConf {
            version,
            name: name.to_string(),
            pod_cidr,
            gateway,
            mtu,
            data_dir,
            host_netns,
            prev_result,
            valid_attachments,
        })
    }
}

fn prefix(field: &str, mut e: CniError) -> CniError {
    e.msg = format!("{field}.{}", e.msg);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<NetConf> {
        NetConf::parse(s.as_bytes())
    }

    const OK: &str =
        r#"{"cniVersion":"1.0.0","name":"vpg","type":"vpg-cni","podCIDR":"10.1.1.0/24"}"#;

    #[test]
    fn defaults_follow_the_pod_cidr() {
        let c = parse(OK).unwrap();
        assert_eq!(c.version, Version(1, 0, 0));
        assert_eq!(c.gateway, Ipv4Addr::new(10, 1, 1, 1));
        assert_eq!(c.mtu, 1450);
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/vpg/cni"));
        assert_eq!(c.host_netns, None);
        assert!(c.prev_result.is_none());
    }

    #[test]
    fn all_fields() {
        let c = parse(
            r#"{"cniVersion":"1.1.0","name":"k8s-pod.net","type":"vpg-cni","podCIDR":"10.1.2.0/23",
            "gateway":"10.1.3.254","mtu":9000,"dataDir":"/tmp/x","hostNetns":"vr1",
            "prevResult":{"ips":[]},"cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
            "somethingElse":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(c.gateway, Ipv4Addr::new(10, 1, 3, 254));
        assert_eq!(c.mtu, 9000);
        assert_eq!(c.host_netns, Some(PathBuf::from("/var/run/netns/vr1")));
        assert_eq!(c.valid_attachments.unwrap().len(), 1);
        let c = parse(&OK.replace('}', r#","hostNetns":"/proc/1/ns/net"}"#)).unwrap();
        assert_eq!(c.host_netns, Some(PathBuf::from("/proc/1/ns/net")));
    }

    fn err(s: &str) -> CniError {
        parse(s).unwrap_err()
    }

    #[test]
    fn errors_name_the_field_with_the_right_code() {
        let e = err("{not json");
        assert_eq!(e.code, Code::Decode);
        assert_eq!(err("[1]").code, Code::Decode);
        let e = err(&OK.replace("10.1.1.0/24", "10.1.1.0/33"));
        assert_eq!(e.code, Code::InvalidConfig);
        assert!(e.msg.starts_with("podCIDR:"), "{e}");
        let e = err(&OK.replace("10.1.1.0/24", "10.1.1.5/24"));
        assert!(e.msg.contains("host bits"), "{e}");
        let e = err(&OK.replace("10.1.1.0/24", "10.1.1.0/31"));
        assert!(e.msg.contains("too small"), "{e}");
        let e = err(&OK.replace(r#""podCIDR":"10.1.1.0/24""#, r#""podCIDR":7"#));
        assert_eq!(e.code, Code::Decode);
        assert_eq!(e.msg, "podCIDR: expected a string, found a number");
        let e = err(&OK.replace('}', r#","mtu":"big"}"#));
        assert_eq!(
            (e.code, e.msg.as_str()),
            (Code::Decode, "mtu: expected a number, found a string")
        );
        let e = err(&OK.replace('}', r#","mtu":40}"#));
        assert_eq!(e.code, Code::InvalidConfig);
        assert!(e.msg.starts_with("mtu:"));
        let e = err(&OK.replace('}', r#","gateway":"10.1.2.1"}"#));
        assert!(e.msg.starts_with("gateway:"), "{e}");
        let e = err(&OK.replace('}', r#","gateway":"10.1.1.255"}"#));
        assert!(e.msg.starts_with("gateway:"), "{e}");
        let e = err(&OK.replace(r#""cniVersion":"1.0.0","#, ""));
        assert_eq!(
            (e.code, e.msg.as_str()),
            (Code::InvalidConfig, "cniVersion: missing (required)")
        );
        let e = err(&OK.replace("1.0.0", "2.0.0"));
        assert_eq!(e.code, Code::IncompatibleVersion);
        let e = err(&OK.replace("1.0.0", "0.2.0"));
        assert_eq!(e.code, Code::IncompatibleVersion);
        let e = err(&OK.replace("1.0.0", "one"));
        assert_eq!(e.code, Code::InvalidConfig);
        let e = err(&OK.replace(r#""name":"vpg""#, r#""name":"../x""#));
        assert!(e.msg.starts_with("name:"), "{e}");
        let e = err(&OK.replace('}', r#","cni.dev/valid-attachments":[{"ifname":"eth0"}]}"#));
        assert_eq!(
            e.msg,
            "cni.dev/valid-attachments[0].containerID: missing (required)"
        );
        let e = err(&OK.replace('}', r#","prevResult":[]}"#));
        assert_eq!(e.code, Code::Decode);
    }

    #[test]
    fn versions() {
        assert!(Version(1, 0, 0) > Version(0, 4, 0));
        assert!(Version(0, 4, 0) > Version(0, 3, 1));
        assert_eq!(Version::parse("1.1.0"), Some(Version(1, 1, 0)));
        assert_eq!(Version::parse("1.1"), None);
        assert_eq!(Version::parse("1.1.0.0"), None);
        assert_eq!(peek_version(OK.as_bytes()), Some(Version(1, 0, 0)));
        assert_eq!(peek_version(b"{\"cniVersion\":\"9.0.0\"}"), None);
    }

    #[test]
    fn cidr_arithmetic() {
        let c = Cidr::parse("10.1.1.0/24").unwrap();
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 1, 1, 255));
        assert!(c.contains(Ipv4Addr::new(10, 1, 1, 9)));
        assert!(!c.contains(Ipv4Addr::new(10, 1, 2, 9)));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(Cidr::parse("10.1.1.0").is_err());
        assert!(Cidr::parse("10.1.1/24").is_err());
    }
}
