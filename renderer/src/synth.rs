//! A synthetic cluster at scale for the renderer's benchmarks (`benches/render.rs` and
//! `vpg-bench render-full` / `render-event`): pods in namespaces of 100, 10 apps per namespace,
//! one policy per app (`pods / 10` policies), pods spread over 100 nodes (`node-0` …
//! `node-99`). Each policy admits the next app on a port and the front-tier pods of one team
//! of namespaces on a named port; every third one also restricts egress (another app on
//! 5432-5433, DNS pods by port name, an external block minus an exception).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::{Cluster, ContainerPort, Namespace, NetworkPolicy, Pod, Protocol};

/// Nodes the pods are spread over.
pub const NODES: usize = 100;
/// Pods per namespace.
pub const PODS_PER_NS: usize = 100;
/// Apps per namespace (one policy each).
pub const APPS: usize = 10;

/// Labels from pairs.
pub fn labels(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Pod `i` of namespace `ns`, labelled `app{app}`, on node `(i + ns) % 100`, with named ports
/// `http` (TCP 8080 or 8081) and `dns` (UDP 53).
pub fn pod(ns: usize, i: usize, app: usize) -> Pod {
    let n = ns * PODS_PER_NS + i;
    Pod {
        namespace: format!("ns{ns}"),
        name: format!("pod{i}"),
        labels: labels(&[
            ("app", format!("app{app}")),
            (
                "tier",
                if i.is_multiple_of(2) { "front" } else { "back" }.into(),
            ),
        ]),
        ip: Some(Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8)),
        // Spread so each node holds pods of every app.
        node: format!("node-{}", (i + ns) % NODES),
        ports: vec![
            ContainerPort {
                name: Some("http".into()),
                port: 8080 + (app % 2) as u16,
                protocol: Protocol::Tcp,
            },
            ContainerPort {
                name: Some("dns".into()),
                port: 53,
                protocol: Protocol::Udp,
            },
        ],
    }
}

/// Policy `k` of namespace `ns`: app k accepts app k+1 on 8080 and front-tier pods of one team
/// on its named port `http`; every third also limits egress to app k+2 on 5432-5433, DNS pods
/// of namespace 0 by name, and an outside block minus exceptions.
pub fn policy(ns: usize, k: usize, port: u16) -> NetworkPolicy {
    let team = ns % 10;
    let egress = if k.is_multiple_of(3) {
        format!(
            r#", "policyTypes": ["Ingress", "Egress"], "egress": [
              {{"to": [{{"podSelector": {{"matchLabels": {{"app": "app{}"}}}}}}], "ports": [{{"port": 5432, "endPort": 5433}}]}},
              {{"to": [{{"namespaceSelector": {{"matchLabels": {{"team": "team0"}}}}, "podSelector": {{"matchLabels": {{"app": "app0"}}}}}}], "ports": [{{"port": "dns", "protocol": "UDP"}}]}},
              {{"to": [{{"ipBlock": {{"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}}}]}}]"#,
            (k + 2) % APPS
        )
    } else {
        String::new()
    };
    let spec = format!(
        r#"{{"podSelector": {{"matchLabels": {{"app": "app{k}"}}}},
            "ingress": [
              {{"from": [{{"podSelector": {{"matchLabels": {{"app": "app{}"}}}}}}], "ports": [{{"port": {port}}}]}},
              {{"from": [{{"namespaceSelector": {{"matchLabels": {{"team": "team{team}"}}}},
                          "podSelector": {{"matchExpressions": [{{"key": "tier", "operator": "In", "values": ["front"]}}]}}}}],
                "ports": [{{"port": "http"}}]}}]{egress}}}"#,
        (k + 1) % APPS
    );
    NetworkPolicy {
        namespace: format!("ns{ns}"),
        name: format!("p{k}"),
        spec: serde_json::from_str(&spec).expect("bench policy parses"),
    }
}

/// `pods` pods in `pods / 100` namespaces with 10 apps each, `pods / 10` policies.
pub fn cluster(pods: usize) -> Cluster {
    let namespaces = pods / PODS_PER_NS;
    let mut c = Cluster::default();
    for ns in 0..namespaces {
        c.namespaces.push(Namespace {
            name: format!("ns{ns}"),
            labels: labels(&[("team", format!("team{}", ns % 10))]),
        });
        for i in 0..PODS_PER_NS {
            c.pods.push(pod(ns, i, i % APPS));
        }
        for k in 0..APPS {
            c.policies.push(policy(ns, k, 8080));
        }
    }
    c
}
