//! NAT44 messages: the address pool, interface roles, static / load-balanced / identity
//! mappings, settings (never-NAT prefixes, loopback address, port range, timeouts, limits),
//! and the dumps behind `vpgctl show nat44 addresses|interfaces|mappings|sessions|summary`.
//!
//! Protocols are IP protocol numbers (6 TCP, 17 UDP, 1 ICMP). The stateless checks here refuse
//! malformed items; overlaps, unknown interfaces and the like are refused by vpgd against its
//! tables, and either way nothing is applied.

use crate::interface::check_host_ip;
use crate::types::Prefix;
use crate::ApiError;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// A pool entry: a fixed address, or whatever address an interface has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat44PoolEntry {
    /// A fixed address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// An interface whose first address is used (followed when it changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sw_if: Option<u32>,
}

/// A mapping's local endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat44Local {
    /// Address.
    pub address: Ipv4Addr,
    /// Port (0 for an address-only mapping).
    #[serde(default)]
    pub port: u16,
    /// Share of new connections (default 1; 0 is refused).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// A static mapping: address-only (no `proto`), address and port, or load-balanced (several
/// locals: a Kubernetes service).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat44Mapping {
    /// External address (service VIP, node address for a NodePort).
    pub external: Ipv4Addr,
    /// Protocol (6 or 17); absent maps the whole address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u8>,
    /// External port (with `proto`).
    #[serde(default)]
    pub external_port: u16,
    /// Local endpoints.
    pub locals: Vec<Nat44Local>,
    /// Translate only connections towards the external side (default: true with more than one
    /// local, else false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out2in_only: Option<bool>,
    /// Free text (the service it came from).
    #[serde(default)]
    pub tag: String,
}

/// Which mapping: external address, protocol, port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat44MappingKey {
    /// External address.
    pub external: Ipv4Addr,
    /// Protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u8>,
    /// External port.
    #[serde(default)]
    pub external_port: u16,
}

/// An identity mapping: traffic of this address (protocol, port) is never translated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat44Identity {
    /// Address.
    pub address: Ipv4Addr,
    /// Protocol (absent: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u8>,
    /// Port (0: all).
    #[serde(default)]
    pub port: u16,
    /// Free text.
    #[serde(default)]
    pub tag: String,
}

/// Timeouts in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat44Timeouts {
    /// UDP and other protocols (default 300).
    pub udp: u32,
    /// TCP established (default 7440).
    pub tcp_established: u32,
    /// TCP opening or closing (default 240).
    pub tcp_transitory: u32,
    /// ICMP (default 60).
    pub icmp: u32,
}

/// Settings; absent fields keep their value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat44Settings {
    /// Destinations never translated (the cluster's pod and node networks); replaces the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_nat: Option<Vec<Prefix>>,
    /// The source a pod sees when a service sends it its own connection (default: the
    /// service address); `0.0.0.0` resets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loopback: Option<Ipv4Addr>,
    /// Ports for dynamic translations, `[first, last]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<[u16; 2]>,
    /// Timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Nat44Timeouts>,
    /// Sessions per worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_per_worker: Option<u32>,
    /// SNAT sessions per inside address and worker (0: no limit of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_per_address: Option<u32>,
}

/// How errors and dumps name a mapping: `10.96.0.10:80/tcp`, `192.0.2.7` (address only).
pub fn mapping_name(a: Ipv4Addr, proto: Option<u8>, port: u16) -> String {
    match proto {
        None if port == 0 => format!("nat44 mapping {a}"),
        None => format!("nat44 mapping {a}:{port}"),
        Some(6) => format!("nat44 mapping {a}:{port}/tcp"),
        Some(17) => format!("nat44 mapping {a}:{port}/udp"),
        Some(p) => format!("nat44 mapping {a}:{port}/proto {p}"),
    }
}

/// Checks a pool entry: exactly one of address and interface; a host address.
pub fn check_pool_entry(e: &Nat44PoolEntry) -> Result<(), ApiError> {
    match (e.address, e.sw_if) {
        (Some(a), None) => check_host_ip("address", a),
        (None, Some(_)) => Ok(()),
        _ => Err(ApiError::bad_request(
            "address",
            "give exactly one of address and sw_if",
        )),
    }
}

fn check_proto(p: Option<u8>, port: u16, what: &str) -> Result<(), ApiError> {
    match p {
        None if port != 0 => Err(ApiError::bad_request(
            "proto",
            format!("{what}: a port needs proto 6 (TCP) or 17 (UDP)"),
        )),
        Some(p) if p != 6 && p != 17 => Err(ApiError::bad_request(
            "proto",
            format!("{what}: proto {p} has no ports (6 TCP or 17 UDP)"),
        )),
        _ => Ok(()),
    }
}

/// Checks a mapping on its own (overlaps are vpgd's).
pub fn check_mapping(m: &Nat44Mapping) -> Result<(), ApiError> {
    check_host_ip("external", m.external)?;
    if m.proto.is_some() && m.external_port == 0 {
        return Err(ApiError::bad_request(
            "external_port",
            "a port mapping needs an external port",
        ));
    }
    check_proto(m.proto, m.external_port, "mapping")?;
    if m.locals.is_empty() {
        return Err(ApiError::bad_request("locals", "no local endpoint"));
    }
    for (i, l) in m.locals.iter().enumerate() {
        check_host_ip("locals", l.address)
            .map_err(|e| ApiError::bad_request("locals", format!("local {i}: {}", e.message)))?;
        if l.weight == 0 {
            return Err(ApiError::bad_request(
                "locals",
                format!("local {i} ({}) has weight 0", l.address),
            ));
        }
        if m.proto.is_some() != (l.port != 0) {
            return Err(ApiError::bad_request(
                "locals",
                format!("local {i}: a port exactly when the mapping has a protocol"),
            ));
        }
    }
    if m.locals.len() > 1 && m.out2in_only == Some(false) {
        return Err(ApiError::bad_request(
            "out2in_only",
            "a load-balanced mapping is out2in-only",
        ));
    }
    Ok(())
}

/// Checks an identity mapping: any protocol without a port (ESP, protocol 50, to the node IP),
/// a port only with TCP or UDP.
pub fn check_identity(m: &Nat44Identity) -> Result<(), ApiError> {
    check_host_ip("address", m.address)?;
    match m.proto {
        Some(0) => Err(ApiError::bad_request(
            "proto",
            "identity mapping: proto 0 is not a protocol (omit proto for every protocol)",
        )),
        Some(p) if m.port == 0 && p != 6 && p != 17 => Ok(()),
        _ => check_proto(m.proto, m.port, "identity mapping"),
    }
}

/// Checks settings.
pub fn check_settings(s: &Nat44Settings) -> Result<(), ApiError> {
    if let Some([lo, hi]) = s.port_range {
        if lo == 0 || lo > hi {
            return Err(ApiError::bad_request(
                "port_range",
                format!(
                    "port range {lo}-{hi}: the first port must be 1 or more and at most the last"
                ),
            ));
        }
    }
    if let Some(t) = s.timeouts {
        if [t.udp, t.tcp_established, t.tcp_transitory, t.icmp].contains(&0) {
            return Err(ApiError::bad_request(
                "timeouts",
                "timeouts must be at least 1 s",
            ));
        }
    }
    if s.sessions_per_worker == Some(0) {
        return Err(ApiError::bad_request(
            "sessions_per_worker",
            "sessions per worker must be at least 1",
        ));
    }
    for p in s.never_nat.iter().flatten() {
        crate::route::check_route_prefix(*p).map_err(|mut e| {
            e.field = Some("never_nat".into());
            e
        })?;
    }
    Ok(())
}

/// A pool address, as dumped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat44AddressDetails {
    /// The address in use (absent when an interface has none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// The interface it follows, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sw_if: Option<u32>,
    /// Ports in use over all workers: TCP, UDP, ICMP identifiers.
    pub ports_tcp: u32,
    /// UDP ports in use.
    pub ports_udp: u32,
    /// ICMP identifiers in use.
    pub ports_icmp: u32,
    /// Dynamic sessions on it.
    pub sessions: u64,
}

/// An interface's role, as dumped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat44InterfaceDetails {
    /// Interface.
    pub sw_if: u32,
    /// Inside.
    pub inside: bool,
    /// Outside (output-feature SNAT).
    pub outside: bool,
}

/// A mapping, as dumped, with its live sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat44MappingDetails {
    /// The mapping (with `out2in_only` resolved).
    pub mapping: Nat44Mapping,
    /// Sessions it made, over all workers.
    pub sessions: u64,
}

/// Which sessions a dump or clear selects (all given fields must match).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat44SessionFilter {
    /// An address of either flow (inside or translated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<Ipv4Addr>,
    /// A port of either flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u8>,
    /// Kind: `dynamic`, `static`, `dnat`, `loopback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<usize>,
}

/// An endpoint pair of a flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat44Flow {
    /// Source.
    pub src: Ipv4Addr,
    /// Source port (ICMP echo request: identifier).
    pub sport: u16,
    /// Destination.
    pub dst: Ipv4Addr,
    /// Destination port (ICMP echo reply: identifier).
    pub dport: u16,
}

/// A session, as dumped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat44SessionDetails {
    /// Worker holding it.
    pub worker: usize,
    /// Its index there.
    pub index: u32,
    /// `dynamic`, `static`, `dnat` or `loopback`.
    pub kind: String,
    /// Protocol.
    pub proto: u8,
    /// The flow as its initiator sent it.
    pub inside: Nat44Flow,
    /// What that flow is translated to.
    pub outside: Nat44Flow,
    /// `established`, `transitory`, `closing` (TCP) or `active`.
    pub state: String,
    /// Packets from the initiator.
    pub packets_fwd: u64,
    /// Packets towards the initiator.
    pub packets_rev: u64,
    /// Bytes, both ways.
    pub bytes: u64,
    /// Seconds since its last packet.
    pub idle_s: u64,
    /// Seconds until it times out unless traffic comes.
    pub expires_in_s: u64,
    /// The mapping that made it (`external:port`), for DNAT and static sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<String>,
}

/// Sessions of one worker, as summed up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat44WorkerSummary {
    /// Worker.
    pub worker: usize,
    /// Live sessions.
    pub sessions: u64,
    /// Its limit.
    pub capacity: u64,
    /// TCP sessions.
    pub tcp: u64,
    /// UDP sessions.
    pub udp: u64,
    /// ICMP sessions.
    pub icmp: u64,
    /// Other protocols.
    pub other: u64,
    /// Its port slice, `[first, last]`.
    pub ports: [u16; 2],
}

/// One drop reason of a NAT node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat44Counter {
    /// Node.
    pub node: String,
    /// Counter.
    pub name: String,
    /// Count over all workers.
    pub count: u64,
}

/// `show nat44 summary`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nat44SummaryDetails {
    /// Per worker.
    pub workers: Vec<Nat44WorkerSummary>,
    /// Pool addresses with ports in use.
    pub addresses: Vec<Nat44AddressDetails>,
    /// Non-zero counters of the NAT nodes (drops by reason, hits, creations).
    pub counters: Vec<Nat44Counter>,
    /// Settings in force.
    pub settings: Nat44Settings,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(locals: Vec<Nat44Local>) -> Nat44Mapping {
        Nat44Mapping {
            external: "10.96.0.10".parse().unwrap(),
            proto: Some(6),
            external_port: 80,
            locals,
            out2in_only: None,
            tag: String::new(),
        }
    }

    fn local(a: &str, port: u16, weight: u32) -> Nat44Local {
        Nat44Local {
            address: a.parse().unwrap(),
            port,
            weight,
        }
    }

    #[test]
    fn checks_name_the_field() {
        check_mapping(&mapping(vec![local("10.1.1.2", 8080, 1)])).unwrap();
        let cases = [
            (mapping(vec![]), "locals"),
            (mapping(vec![local("10.1.1.2", 8080, 0)]), "locals"),
            (mapping(vec![local("10.1.1.2", 0, 1)]), "locals"),
            (
                Nat44Mapping {
                    proto: Some(1),
                    ..mapping(vec![local("10.1.1.2", 8080, 1)])
                },
                "proto",
            ),
            (
                Nat44Mapping {
                    external_port: 0,
                    ..mapping(vec![local("10.1.1.2", 8080, 1)])
                },
                "external_port",
            ),
            (
                Nat44Mapping {
                    out2in_only: Some(false),
                    ..mapping(vec![local("10.1.1.2", 1, 1), local("10.1.1.3", 1, 1)])
                },
                "out2in_only",
            ),
        ];
        for (m, field) in cases {
            let e = check_mapping(&m).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e}");
        }
        let id = |proto, port| Nat44Identity {
            address: "192.168.1.1".parse().unwrap(),
            proto,
            port,
            tag: "t".into(),
        };
        check_identity(&id(Some(50), 0)).unwrap();
        check_identity(&id(Some(17), 4789)).unwrap();
        check_identity(&id(None, 0)).unwrap();
        for (bad, field) in [
            (id(Some(50), 500), "proto"),
            (id(Some(0), 0), "proto"),
            (id(None, 80), "proto"),
        ] {
            let e = check_identity(&bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e}");
        }
        let e = check_pool_entry(&Nat44PoolEntry {
            address: None,
            sw_if: None,
        })
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("address"));
        let e = check_settings(&Nat44Settings {
            port_range: Some([2000, 1000]),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("port_range"));
        let e = check_settings(&Nat44Settings {
            never_nat: Some(vec!["10.1.0.1/16".parse().unwrap()]),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("never_nat"));
    }

    #[test]
    fn json_shapes() {
        let m: Nat44Mapping = serde_json::from_str(
            r#"{"external":"10.96.0.10","proto":6,"external_port":80,
                "locals":[{"address":"10.1.1.2","port":8080},{"address":"10.1.1.3","port":8080,"weight":3}],
                "tag":"default/web"}"#,
        )
        .unwrap();
        assert_eq!(m.locals[0].weight, 1, "weight defaults to 1");
        assert_eq!(m.locals[1].weight, 3);
        assert!(serde_json::from_str::<Nat44Mapping>(
            r#"{"external":"1.2.3.4","locals":[],"extra":1}"#
        )
        .is_err());
    }
}
