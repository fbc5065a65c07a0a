//! Shared by the integration tests: a random cluster generator that uses every NetworkPolicy
//! feature, and the evaluation of rendered tables as `docs/renderer.md` defines it.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use vpg_renderer::policy::{
    EgressRule, IngressRule, IntOrString, IpBlock, LabelSelector, LabelSelectorRequirement,
    PolicyPeer, PolicyPort,
};
use vpg_renderer::{
    first_match, Action, Cluster, ContainerPort, Namespace, NetworkPolicy, NetworkPolicySpec,
    NodeTables, Pod, Protocol, Renderer,
};

pub const NODES: [&str; 2] = ["n1", "n2"];

/// Addresses that are no pod: one inside the pod range (so ipBlocks hit it), two outside.
pub const EXTERNAL: [&str; 3] = ["10.0.0.250", "192.168.5.5", "8.8.8.8"];

pub const PROBE_PORTS: [u16; 9] = [1, 53, 55, 80, 443, 8050, 8080, 8101, 9000];

const LABEL_KEYS: [&str; 3] = ["app", "tier", "env"];
const LABEL_VALUES: [&str; 3] = ["a", "b", "c"];

fn labels(rng: &mut SmallRng) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for k in LABEL_KEYS {
        if rng.gen_bool(0.6) {
            m.insert(k.to_string(), LABEL_VALUES.choose(rng).unwrap().to_string());
        }
    }
    m
}

fn selector(rng: &mut SmallRng) -> LabelSelector {
    let mut s = LabelSelector::default();
    match rng.gen_range(0..4) {
        0 => {} // empty: everything
        1 => {
            let mut m = BTreeMap::new();
            m.insert(
                LABEL_KEYS.choose(rng).unwrap().to_string(),
                LABEL_VALUES.choose(rng).unwrap().to_string(),
            );
            s.match_labels = Some(m);
        }
        _ => {
            let mut v = Vec::new();
            for _ in 0..rng.gen_range(1..=2) {
                let key = LABEL_KEYS.choose(rng).unwrap().to_string();
                let (operator, values) = match rng.gen_range(0..4) {
                    0 => ("In", Some(pick_values(rng))),
                    1 => ("NotIn", Some(pick_values(rng))),
                    2 => ("Exists", None),
                    _ => ("DoesNotExist", None),
                };
                v.push(LabelSelectorRequirement {
                    key,
                    operator: operator.into(),
                    values,
                });
            }
            if rng.gen_bool(0.3) {
                let mut m = BTreeMap::new();
                m.insert(
                    LABEL_KEYS.choose(rng).unwrap().to_string(),
                    LABEL_VALUES.choose(rng).unwrap().to_string(),
                );
                s.match_labels = Some(m);
            }
            s.match_expressions = Some(v);
        }
    }
    s
}

fn pick_values(rng: &mut SmallRng) -> Vec<String> {
    let n = rng.gen_range(1..=2);
    LABEL_VALUES
        .choose_multiple(rng, n)
        .map(|s| s.to_string())
        .collect()
}

/// A random prefix strictly inside `base/len` (for `except`).
fn inside(rng: &mut SmallRng, base: Ipv4Addr, len: u8, pods: &[Ipv4Addr]) -> String {
    let b = u32::from(base);
    let span = if len == 0 {
        u32::MAX
    } else {
        (1u32 << (32 - len)) - 1
    };
    // Prefer exceptions around pod addresses so they matter.
    let in_block: Vec<u32> = pods
        .iter()
        .map(|p| u32::from(*p))
        .filter(|p| (p & !span) == (b & !span))
        .collect();
    let addr = if !in_block.is_empty() && rng.gen_bool(0.7) {
        *in_block.choose(rng).unwrap()
    } else {
        (b & !span) | (rng.gen::<u32>() & span)
    };
    let l = rng.gen_range(len + 1..=32);
    let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
    format!("{}/{}", Ipv4Addr::from(addr & mask), l)
}

fn peer(rng: &mut SmallRng, pods: &[Ipv4Addr]) -> PolicyPeer {
    match rng.gen_range(0..5) {
        0 => PolicyPeer {
            pod_selector: Some(selector(rng)),
            ..Default::default()
        },
        1 => PolicyPeer {
            namespace_selector: Some(selector(rng)),
            ..Default::default()
        },
        2 => PolicyPeer {
            pod_selector: Some(selector(rng)),
            namespace_selector: Some(selector(rng)),
            ..Default::default()
        },
        _ => {
            let (cidr, base, len): (String, Ipv4Addr, u8) = match rng.gen_range(0..8) {
                0 => ("10.0.0.0/16".into(), "10.0.0.0".parse().unwrap(), 16),
                1 => ("10.0.0.0/24".into(), "10.0.0.0".parse().unwrap(), 24),
                2 => ("10.0.1.0/24".into(), "10.0.1.0".parse().unwrap(), 24),
                3 => ("0.0.0.0/0".into(), "0.0.0.0".parse().unwrap(), 0),
                4 => ("192.168.0.0/16".into(), "192.168.0.0".parse().unwrap(), 16),
                5 => ("fd00::/64".into(), "0.0.0.0".parse().unwrap(), 0),
                _ => {
                    // Around a pod, sometimes with host bits set as users write it.
                    let p = pods
                        .choose(rng)
                        .copied()
                        .unwrap_or(Ipv4Addr::new(10, 0, 0, 1));
                    let l = *[26u8, 28, 30, 32].choose(rng).unwrap();
                    let mask = u32::MAX << (32 - l);
                    (format!("{p}/{l}"), Ipv4Addr::from(u32::from(p) & mask), l)
                }
            };
            let except = if cidr.contains(':') || len == 32 || rng.gen_bool(0.4) {
                None
            } else {
                Some(
                    (0..rng.gen_range(1..=3))
                        .map(|_| inside(rng, base, len, pods))
                        .collect(),
                )
            };
            PolicyPeer {
                ip_block: Some(IpBlock { cidr, except }),
                ..Default::default()
            }
        }
    }
}

fn ports(rng: &mut SmallRng) -> Option<Vec<PolicyPort>> {
    match rng.gen_range(0..5) {
        0 => None,
        1 => Some(vec![]),
        _ => Some(
            (0..rng.gen_range(1..=3))
                .map(|_| {
                    let protocol = match rng.gen_range(0..5) {
                        0 => None,
                        1 => Some("TCP".to_string()),
                        2 => Some("UDP".to_string()),
                        3 => Some("SCTP".to_string()),
                        _ => None,
                    };
                    let (port, end_port) = match rng.gen_range(0..6) {
                        0 => (None, None),
                        1 | 2 => (
                            Some(IntOrString::Int(
                                *[53i64, 80, 443, 8080, 9000].choose(rng).unwrap(),
                            )),
                            None,
                        ),
                        3 => {
                            let (lo, hi) = *[(50i64, 60i64), (8000, 8100), (1, 100), (443, 443)]
                                .choose(rng)
                                .unwrap();
                            (Some(IntOrString::Int(lo)), Some(hi))
                        }
                        _ => (
                            Some(IntOrString::String(
                                ["http", "dns", "metrics", "nope"]
                                    .choose(rng)
                                    .unwrap()
                                    .to_string(),
                            )),
                            None,
                        ),
                    };
                    PolicyPort {
                        protocol,
                        port,
                        end_port,
                    }
                })
                .collect(),
        ),
    }
}

fn rules_list<T>(rng: &mut SmallRng, mut make: impl FnMut(&mut SmallRng) -> T) -> Option<Vec<T>> {
    match rng.gen_range(0..5) {
        0 => None,
        1 => Some(vec![]),
        _ => Some((0..rng.gen_range(1..=3)).map(|_| make(rng)).collect()),
    }
}

fn peers(rng: &mut SmallRng, pods: &[Ipv4Addr]) -> Option<Vec<PolicyPeer>> {
    match rng.gen_range(0..5) {
        0 => None,
        1 => Some(vec![]),
        _ => Some((0..rng.gen_range(1..=3)).map(|_| peer(rng, pods)).collect()),
    }
}

pub fn policy(
    rng: &mut SmallRng,
    name: String,
    namespaces: &[String],
    pods: &[Ipv4Addr],
) -> NetworkPolicy {
    let policy_types = match rng.gen_range(0..5) {
        0 | 1 => None,
        2 => Some(vec!["Ingress".to_string()]),
        3 => Some(vec!["Egress".to_string()]),
        _ => Some(vec!["Ingress".to_string(), "Egress".to_string()]),
    };
    let mut spec = NetworkPolicySpec {
        pod_selector: selector(rng),
        policy_types,
        ingress: rules_list(rng, |rng| IngressRule {
            from: peers(rng, pods),
            ports: ports(rng),
        }),
        egress: rules_list(rng, |rng| EgressRule {
            to: peers(rng, pods),
            ports: ports(rng),
        }),
    };
    // Now and then an invalid policy: it must be skipped without affecting the others.
    if rng.gen_bool(0.04) {
        spec.ingress = Some(vec![IngressRule {
            from: None,
            ports: Some(vec![PolicyPort {
                protocol: Some("ICMP".into()),
                port: None,
                end_port: None,
            }]),
        }]);
    }
    NetworkPolicy {
        namespace: namespaces.choose(rng).unwrap().clone(),
        name,
        spec,
    }
}

pub fn pod(rng: &mut SmallRng, i: usize, namespaces: &[String], ip: Option<Ipv4Addr>) -> Pod {
    let mut ports = Vec::new();
    if rng.gen_bool(0.5) {
        ports.push(ContainerPort {
            name: Some("http".into()),
            port: *[80u16, 8080].choose(rng).unwrap(),
            protocol: Protocol::Tcp,
        });
    }
    if rng.gen_bool(0.4) {
        ports.push(ContainerPort {
            name: Some("dns".into()),
            port: 53,
            protocol: *[Protocol::Udp, Protocol::Tcp].choose(rng).unwrap(),
        });
    }
    if rng.gen_bool(0.3) {
        ports.push(ContainerPort {
            name: Some("metrics".into()),
            port: 9000,
            protocol: Protocol::Sctp,
        });
    }
    if rng.gen_bool(0.3) {
        ports.push(ContainerPort {
            name: None,
            port: 443,
            protocol: Protocol::Tcp,
        });
    }
    Pod {
        namespace: namespaces.choose(rng).unwrap().clone(),
        name: format!("pod{i}"),
        labels: labels(rng),
        ip,
        node: NODES.choose(rng).unwrap().to_string(),
        ports,
    }
}

/// A random cluster: 3 namespaces (one without a Namespace object), 4-10 pods on two nodes
/// (some without IP), 1-4 policies.
pub fn cluster(seed: u64) -> Cluster {
    let mut rng = SmallRng::seed_from_u64(seed);
    let namespaces: Vec<String> = vec!["ns0".into(), "ns1".into(), "ns2".into()];
    let mut c = Cluster::default();
    for n in &namespaces[..2] {
        c.namespaces.push(Namespace {
            name: n.clone(),
            labels: labels(&mut rng),
        });
    }
    let n = rng.gen_range(4..=10);
    let mut used = Vec::new();
    // Mostly addresses handed out in sequence from a random start, with a gap now and then,
    // as IPAM does (so peers aggregate into prefixes, with unselected addresses beside them);
    // else scattered over two /24s.
    let sequential = rng.gen_bool(0.7);
    let mut next = u32::from(Ipv4Addr::new(10, 0, 0, rng.gen_range(0..=6)));
    for i in 0..n {
        let ip = if sequential {
            next += 1 + u32::from(rng.gen_bool(0.15));
            Ipv4Addr::from(next)
        } else {
            loop {
                let ip = Ipv4Addr::new(10, 0, rng.gen_range(0..2), rng.gen_range(1..=12));
                if !used.contains(&ip) {
                    break ip;
                }
            }
        };
        used.push(ip);
        let ip = (!rng.gen_bool(0.1)).then_some(ip);
        c.pods.push(pod(&mut rng, i, &namespaces, ip));
    }
    for i in 0..rng.gen_range(1..=4) {
        c.policies
            .push(policy(&mut rng, format!("pol{i}"), &namespaces, &used));
    }
    c
}

/// Every node's tables.
pub fn render_all(c: &Cluster) -> HashMap<String, NodeTables> {
    render_all_with(c, true)
}

/// Every node's tables, peers aggregated into prefixes or not.
pub fn render_all_with(c: &Cluster, aggregate: bool) -> HashMap<String, NodeTables> {
    NODES
        .iter()
        .map(|n| {
            let r = Renderer::render_with_aggregation(n, c, aggregate);
            (n.to_string(), r.tables())
        })
        .collect()
}

/// Evaluates a connection against rendered tables as `docs/renderer.md` defines it.
pub fn tables_allow(
    c: &Cluster,
    tables: &HashMap<String, NodeTables>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    dport: u16,
) -> bool {
    let pod_at = |ip| c.pods.iter().find(|p| p.ip == Some(ip));
    let permits = |rules: &[vpg_renderer::Rule]| {
        first_match(rules, src, dst, proto, 40000, dport) == Some(Action::Permit)
    };
    let sp = pod_at(src);
    let dp = pod_at(dst);
    if let Some(a) = sp {
        let same_node = dp.is_some_and(|b| b.node == a.node);
        if !same_node && !permits(&tables[&a.node].global_table.rules) {
            return false;
        }
    }
    if let Some(b) = dp {
        if let Some(t) = tables[&b.node].table_of(&format!("{}/{}", b.namespace, b.name)) {
            return permits(&t.rules);
        }
    }
    true
}

/// Addresses to probe: every pod address and the external ones.
pub fn addresses(c: &Cluster) -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = c.pods.iter().filter_map(|p| p.ip).collect();
    v.extend(EXTERNAL.iter().map(|s| s.parse::<Ipv4Addr>().unwrap()));
    v
}
