//! The renderer cache scenarios Contiv-VPP's tests established, as golden files of the changes
//! each transaction reports and the tables that result (`tests/golden/*.txt`; run with
//! `UPDATE_GOLDEN=1` to rewrite them after an intended change, then review the diff).

use std::fmt::Write as _;
use std::path::PathBuf;

use vpg_renderer::{
    labels, Changes, Cluster, Namespace, NetworkPolicy, Pod, PodKey, PolicyError, Renderer,
};

fn ns(name: &str, l: &[(&str, &str)]) -> Namespace {
    Namespace {
        name: name.into(),
        labels: labels(l.iter().copied()),
    }
}

fn pod(ns: &str, name: &str, l: &[(&str, &str)], ip: &str, node: &str) -> Pod {
    Pod {
        namespace: ns.into(),
        name: name.into(),
        labels: labels(l.iter().copied()),
        ip: Some(ip.parse().unwrap()),
        node: node.into(),
        ports: vec![],
    }
}

fn pol(ns: &str, name: &str, spec_yaml: &str) -> NetworkPolicy {
    NetworkPolicy {
        namespace: ns.into(),
        name: name.into(),
        spec: serde_yaml::from_str(spec_yaml).unwrap(),
    }
}

fn key(ns: &str, name: &str) -> PodKey {
    PodKey::new(ns, name)
}

/// Collects a scenario's transcript and compares it with its golden file.
struct Golden {
    name: &'static str,
    text: String,
}

impl Golden {
    fn new(name: &'static str) -> Golden {
        Golden {
            name,
            text: String::new(),
        }
    }

    fn step(&mut self, title: &str, c: &Changes) {
        writeln!(self.text, "== {title}\n{c}").unwrap();
    }

    fn tables(&mut self, r: &Renderer) {
        writeln!(self.text, "== tables\n{}", r.tables()).unwrap();
    }

    fn check(self) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(format!("{}.txt", self.name));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &self.text).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
        assert_eq!(self.text, want, "golden file {} differs", path.display());
    }
}

#[test]
fn one_rule_on_one_pod() {
    let mut g = Golden::new("one_rule_on_one_pod");
    let mut r = Renderer::new("n1");
    let mut t = r.txn();
    t.update_namespace(ns("default", &[]))
        .update_pod(pod("default", "web", &[("app", "web")], "10.1.1.1", "n1"))
        .update_pod(pod("default", "client", &[("app", "client")], "10.1.1.2", "n1"))
        .update_policy(pol(
            "default",
            "web-80",
            "podSelector: {matchLabels: {app: web}}\ningress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 80}]}]",
        ));
    let c = t.commit();
    assert_eq!(c.new_tables.len(), 1);
    assert_eq!(c.new_tables[0].pods.len(), 1);
    assert!(
        c.global_table.is_none(),
        "no egress policy: the global table stays permit-all"
    );
    assert!(
        r.table_of(&key("default", "client")).is_none(),
        "a pod without policies has no table"
    );
    g.step("add web, client and web-80", &c);
    let rules = r.pod_rules(&key("default", "web")).unwrap();
    writeln!(g.text, "== to_pod of default/web").unwrap();
    for x in &rules.to_pod {
        writeln!(g.text, "    {x}").unwrap();
    }
    assert!(rules.from_pod.is_empty());
    g.tables(&r);
    g.check();
}

#[test]
fn many_pods_share_one_table() {
    let mut g = Golden::new("many_pods_share_one_table");
    let mut r = Renderer::new("n1");
    let deny_from_outside =
        "podSelector: {matchLabels: {app: web}}\ningress: [{from: [{podSelector: {}}]}]";
    let mut t = r.txn();
    t.update_policy(pol("default", "same-ns", deny_from_outside));
    for i in 1..=3 {
        t.update_pod(pod(
            "default",
            &format!("web{i}"),
            &[("app", "web")],
            &format!("10.1.1.{i}"),
            "n1",
        ));
    }
    let c = t.commit();
    assert_eq!(c.new_tables.len(), 1);
    assert_eq!(c.new_tables[0].pods.len(), 3);
    g.step("three web pods", &c);

    // A fourth pod on another node is a new source in every web pod's table: the shared
    // table is replaced by one new table.
    let mut t = r.txn();
    t.update_pod(pod("default", "web4", &[("app", "web")], "10.1.2.4", "n2"));
    let c = t.commit();
    assert_eq!((c.new_tables.len(), c.removed_tables.len()), (1, 1));
    g.step("web4 on n2", &c);

    // A pod of another namespace is no source for the web pods: nothing changes.
    let mut t = r.txn();
    t.update_pod(pod("other", "db", &[("app", "db")], "10.1.1.9", "n1"));
    let c = t.commit();
    assert!(c.is_empty(), "{c}");
    g.step("db pod (no policy, other namespace) on n1", &c);
    g.tables(&r);
    g.check();
}

#[test]
fn second_transaction_reassigns() {
    let mut g = Golden::new("second_transaction_reassigns");
    let mut r = Renderer::new("n1");
    let p = pol(
        "default",
        "from-cidr",
        "podSelector: {matchLabels: {app: web}}\ningress: [{from: [{ipBlock: {cidr: 192.168.0.0/16, except: [192.168.1.0/24]}}], ports: [{protocol: UDP, port: 53}]}]",
    );
    let mut t = r.txn();
    t.update_policy(p)
        .update_pod(pod("default", "web1", &[("app", "web")], "10.1.1.1", "n1"))
        .update_pod(pod("default", "web2", &[("app", "web")], "10.1.1.2", "n1"));
    let c = t.commit();
    g.step("two web pods", &c);
    let mut t = r.txn();
    t.update_pod(pod("default", "web3", &[("app", "web")], "10.1.1.3", "n1"));
    let c = t.commit();
    assert!(c.new_tables.is_empty() && c.removed_tables.is_empty());
    assert_eq!(c.reassigned_tables.len(), 1);
    assert_eq!(c.reassigned_tables[0].pods.len(), 3);
    assert_eq!(c.reassigned_tables[0].previous_pods.len(), 2);
    g.step("web3 joins", &c);
    g.tables(&r);
    g.check();
}

#[test]
fn updating_pod1_changes_pod3_table() {
    let mut g = Golden::new("updating_pod1_changes_pod3_table");
    let mut r = Renderer::new("n1");
    let mut t = r.txn();
    t.update_pod(pod("default", "pod1", &[("app", "web")], "10.1.1.1", "n1"))
        .update_pod(pod("default", "pod2", &[("app", "web")], "10.1.1.2", "n1"))
        .update_pod(pod("default", "pod3", &[("app", "db")], "10.1.1.3", "n1"))
        // Web pods may only open TCP 5432 to db pods (egress), db pods accept from web pods on
        // TCP 5432-5440 (ingress).
        .update_policy(pol(
            "default",
            "web-egress",
            "podSelector: {matchLabels: {app: web}}\npolicyTypes: [Egress]\negress: [{to: [{podSelector: {matchLabels: {app: db}}}], ports: [{port: 5432}]}]",
        ))
        .update_policy(pol(
            "default",
            "db-ingress",
            "podSelector: {matchLabels: {app: db}}\ningress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432, endPort: 5440}]}]",
        ));
    let c = t.commit();
    g.step("pod1, pod2 (web), pod3 (db), both policies", &c);
    let before = r.table_of(&key("default", "pod3")).unwrap().to_string();
    // Only pod1 changes (new address); pod3's table folds pod1's egress in, so it changes.
    let mut t = r.txn();
    t.update_pod(pod("default", "pod1", &[("app", "web")], "10.1.1.11", "n1"));
    let c = t.commit();
    let after = r.table_of(&key("default", "pod3")).unwrap().to_string();
    assert_ne!(before, after);
    assert!(
        c.global_table.is_some(),
        "pod1's section of the global table moved"
    );
    g.step("pod1 readdressed", &c);
    g.tables(&r);
    g.check();
}

#[test]
fn removed_pods_and_flush() {
    let mut g = Golden::new("removed_pods_and_flush");
    let mut r = Renderer::new("n1");
    let mut t = r.txn();
    t.update_pod(pod("prod", "a", &[("app", "a")], "10.2.0.1", "n1"))
        .update_pod(pod("prod", "b", &[("app", "b")], "10.2.0.2", "n1"))
        .update_pod(pod("prod", "c", &[("app", "c")], "10.2.1.3", "n2"))
        .update_policy(pol(
            "prod",
            "a-only-from-b",
            "podSelector: {matchLabels: {app: a}}\ningress: [{from: [{podSelector: {matchLabels: {app: b}}}]}]",
        ))
        .update_policy(pol(
            "prod",
            "b-egress-dns",
            "podSelector: {matchLabels: {app: b}}\npolicyTypes: [Egress]\negress: [{ports: [{protocol: UDP, port: 53}]}, {to: [{podSelector: {}}]}]",
        ));
    g.step("a, b, c and two policies", &t.commit());
    let mut t = r.txn();
    t.remove_pod(&key("prod", "b"));
    let c = t.commit();
    assert!(c.global_table.is_some());
    g.step("remove b", &c);
    let mut t = r.txn();
    t.remove_pod(&key("prod", "a"));
    let c = t.commit();
    assert_eq!(c.removed_tables.len(), 1);
    g.step("remove a", &c);
    let mut t = r.txn();
    t.update_pod(pod("prod", "a", &[("app", "a")], "10.2.0.1", "n1"));
    g.step("a back", &t.commit());
    let mut t = r.txn();
    t.flush();
    let c = t.commit();
    assert_eq!(r.table_count(), 0);
    assert_eq!(r.global_table().rules.len(), 1);
    g.step("flush", &c);
    g.tables(&r);
    g.check();
}

fn history() -> (Cluster, Vec<Pod>) {
    let c = Cluster {
        namespaces: vec![ns("prod", &[("env", "prod")]), ns("dev", &[("env", "dev")])],
        pods: vec![
            pod("prod", "web1", &[("app", "web")], "10.3.0.1", "n1"),
            pod("prod", "web2", &[("app", "web")], "10.3.0.2", "n1"),
            pod("prod", "db", &[("app", "db")], "10.3.0.3", "n1"),
            pod("dev", "tool", &[("app", "tool")], "10.3.1.1", "n2"),
        ],
        policies: vec![
            pol(
                "prod",
                "db",
                "podSelector: {matchLabels: {app: db}}\ningress: [{from: [{podSelector: {matchLabels: {app: web}}}, {namespaceSelector: {matchLabels: {env: dev}}, podSelector: {matchLabels: {app: tool}}}], ports: [{port: 5432}]}]",
            ),
            pol(
                "prod",
                "web-egress",
                "podSelector: {matchLabels: {app: web}}\negress: [{to: [{podSelector: {matchLabels: {app: db}}}]}]",
            ),
        ],
    };
    let updates = vec![
        pod("prod", "web3", &[("app", "web")], "10.3.0.4", "n1"),
        pod("dev", "tool2", &[("app", "tool")], "10.3.1.2", "n2"),
    ];
    (c, updates)
}

#[test]
fn resync_then_update_matches_uninterrupted_history() {
    let mut g = Golden::new("resync");
    let (cluster, updates) = history();
    // Uninterrupted: events one by one, then the updates.
    let mut live = Renderer::new("n1");
    for p in &cluster.policies {
        let mut t = live.txn();
        t.update_policy(p.clone());
        let _ = t.commit();
    }
    for n in &cluster.namespaces {
        let mut t = live.txn();
        t.update_namespace(n.clone());
        let _ = t.commit();
    }
    for p in &cluster.pods {
        let mut t = live.txn();
        t.update_pod(p.clone());
        let _ = t.commit();
    }
    let dataplane = live.tables();

    // Restarted agent: resync against what the data plane reports changes nothing.
    let mut restarted = Renderer::new("n1");
    let c = restarted.resync(&cluster, &dataplane);
    assert!(c.is_empty(), "resync against an agreeing data plane: {c}");
    g.step("resync against the live data plane", &c);
    for p in &updates {
        let mut t = live.txn();
        t.update_pod(p.clone());
        let a = t.commit();
        let mut t = restarted.txn();
        t.update_pod(p.clone());
        let b = t.commit();
        assert_eq!(
            a, b,
            "changes after resync differ from the uninterrupted history"
        );
        g.step(&format!("update {}", p.key()), &b);
    }
    assert_eq!(live.tables(), restarted.tables());

    // A data plane that lost one table, kept a stale one and has an old global table.
    let mut stale = dataplane.clone();
    stale.local_tables.remove(0);
    stale.local_tables.push(vpg_renderer::LocalTable {
        id: "lt-stale".into(),
        pods: vec!["prod/gone".into()],
        rules: vec![vpg_renderer::Rule::all(vpg_renderer::Action::Deny)],
    });
    stale.global_table.rules = vec![vpg_renderer::Rule::all(vpg_renderer::Action::Permit)];
    let mut r = Renderer::new("n1");
    let c = r.resync(&cluster, &stale);
    assert_eq!(c.new_tables.len(), 1);
    assert_eq!(c.removed_tables.len(), 1);
    assert!(c.global_table.is_some());
    g.step("resync against a stale data plane", &c);
    g.tables(&r);
    g.check();
}

#[test]
fn bad_input_is_reported_and_skipped() {
    let mut g = Golden::new("bad_input");
    let mut r = Renderer::new("n1");
    let mut no_ip = pod("default", "pending", &[("app", "web")], "10.4.0.9", "n1");
    no_ip.ip = None;
    let mut t = r.txn();
    t.update_pod(pod("default", "web", &[("app", "web")], "10.4.0.1", "n1"))
        .update_pod(no_ip.clone())
        .update_policy(pol(
            "default",
            "bad-port",
            "podSelector: {}\ningress: [{ports: [{port: 0}]}]",
        ))
        .update_policy(pol(
            "default",
            "bad-cidr",
            "podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/40}}]}]",
        ))
        .update_policy(pol(
            "default",
            "bad-proto",
            "podSelector: {}\ningress: [{ports: [{protocol: GRE}]}]",
        ))
        .update_policy(pol(
            "default",
            "bad-selector",
            "podSelector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}",
        ))
        .update_policy(pol(
            "default",
            "good",
            "podSelector: {matchLabels: {app: web}}\ningress: [{ports: [{port: 443}]}]",
        ));
    let c = t.commit();
    let names: Vec<String> = c.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(c.errors.len(), 4, "{names:?}");
    assert!(matches!(c.errors[0], PolicyError::Port { .. }));
    assert!(names[1].starts_with("default/bad-cidr: "));
    assert_eq!(c.new_tables.len(), 1, "the good policy still applies");
    assert!(r.table_of(&key("default", "pending")).is_none());
    g.step("one good policy, four bad ones, a pod without IP", &c);
    no_ip.ip = Some("10.4.0.9".parse().unwrap());
    let mut t = r.txn();
    t.update_pod(no_ip);
    let c = t.commit();
    assert_eq!(
        c.reassigned_tables.len(),
        1,
        "the pod joins once it has an IP"
    );
    g.step("pending pod gets its IP", &c);
    let mut t = r.txn();
    t.remove_policy(&vpg_renderer::PolicyKey::new("default", "bad-port"));
    t.update_policy(pol("default", "bad-proto", "podSelector: {}"));
    let c = t.commit();
    assert_eq!(r.errors().count(), 2);
    g.step("bad-port removed, bad-proto fixed (deny all)", &c);
    g.tables(&r);
    g.check();
}
