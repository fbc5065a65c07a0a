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

/// Nodes of [`egress_all`] and their pod CIDRs (a /21 each, as `scripts/agent-bench.py` uses).
pub const EGRESS_ALL_NODES: [(&str, [u8; 4]); 2] = [("n1", [10, 1, 0, 0]), ("n2", [10, 1, 8, 0])];

/// The policy mix where most policies let their pods open connections to every pod of the
/// cluster (`to: [{namespaceSelector: {}}]`), the common "in-cluster egress only" pattern that
/// puts (egress-isolated local pods) x (all pods) peers in the global table: `pods` pods in 10
/// namespaces, 20 apps, half on `n1` and half on `n2`, addresses handed out sequentially from
/// each node's CIDR (from `.2`, as IPAM does); `policies` policies, policy `j` selecting app
/// `j % 20`. Ingress (`j % 3 != 2`): the next app, and on odd `j` one team's tier, on two
/// ports. Egress (`j % 10 != 0`): every pod, and an outside block minus an exception on 443.
/// `scripts/agent-bench.py --egress-all` generates the same policies.
pub fn egress_all(pods: usize, policies: usize) -> Cluster {
    const NAMESPACES: usize = 10;
    const APPS: usize = 20;
    let mut c = Cluster::default();
    for n in 0..NAMESPACES {
        c.namespaces.push(Namespace {
            name: format!("ns{n}"),
            labels: labels(&[("team", format!("t{}", n % 3))]),
        });
    }
    let half = pods.div_ceil(2);
    for i in 0..pods {
        let (node, base) = EGRESS_ALL_NODES[usize::from(i >= half)];
        let n = u32::from(Ipv4Addr::from(base)) + 2 + (i % half) as u32;
        c.pods.push(Pod {
            namespace: format!("ns{}", i % NAMESPACES),
            name: format!("p{i}"),
            labels: labels(&[
                ("app", format!("a{}", i % APPS)),
                ("tier", format!("t{}", i % 3)),
            ]),
            ip: Some(Ipv4Addr::from(n)),
            node: node.into(),
            ports: Vec::new(),
        });
    }
    for j in 0..policies {
        let mut kinds = Vec::new();
        let mut spec =
            serde_json::json!({"podSelector": {"matchLabels": {"app": format!("a{}", j % APPS)}}});
        if j % 3 != 2 {
            kinds.push("Ingress");
            let mut peers = vec![
                serde_json::json!({"podSelector": {"matchLabels": {"app": format!("a{}", (j + 1) % APPS)}}}),
            ];
            if j % 2 == 1 {
                peers.push(serde_json::json!({
                    "namespaceSelector": {"matchLabels": {"team": format!("t{}", j % 3)}},
                    "podSelector": {"matchLabels": {"tier": format!("t{}", j % 3)}}}));
            }
            spec["ingress"] = serde_json::json!([{"from": peers, "ports": [
                {"protocol": "TCP", "port": 8000 + j}, {"protocol": "UDP", "port": 9000 + j}]}]);
        }
        if j % 10 != 0 {
            kinds.push("Egress");
            spec["egress"] = serde_json::json!([
                {"to": [{"namespaceSelector": {}}]},
                {"to": [{"ipBlock": {"cidr": format!("172.{}.0.0/16", 16 + j % 16),
                                     "except": [format!("172.{}.1.0/24", 16 + j % 16)]}}],
                 "ports": [{"protocol": "TCP", "port": 443}]}]);
        }
        spec["policyTypes"] = serde_json::json!(kinds);
        c.policies.push(NetworkPolicy {
            namespace: format!("ns{}", j % NAMESPACES),
            name: format!("pol{j}"),
            spec: serde_json::from_value(spec).expect("bench policy parses"),
        });
    }
    c
}
