//! Renderer scenarios (issue 8): a full render of one node, and single events, at 1k pods /
//! 100 policies and 10k pods / 1k policies spread over 100 nodes (`vpg_renderer::synth`, the
//! cluster the renderer's criterion bench uses). No packets here: `packets` counts measured
//! renders or events, `seconds` is their total wall time, and the per-render / per-event times
//! and the memory are in `details`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use vpg_renderer::synth::{cluster, labels, pod, policy};
use vpg_renderer::{AclBackend, Pod, Renderer, Txn};

use crate::{RunOptions, ScenarioReport};

/// The rendered node.
const NODE: &str = "node-0";
/// Cluster sizes (pods; policies are a tenth).
const SCALES: [usize; 2] = [1_000, 10_000];

fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn scale_name(pods: usize) -> String {
    format!("{}k", pods / 1000)
}

fn report(
    name: &str,
    ops: u64,
    total: Duration,
    details: BTreeMap<String, String>,
) -> ScenarioReport {
    ScenarioReport {
        scenario: name.into(),
        packets: ops,
        seconds: total.as_secs_f64(),
        mpps: 0.0,
        cycles_per_packet: 0.0,
        vectors_per_call: 0.0,
        nodes: BTreeMap::new(),
        buffer_pages: "n/a".into(),
        details,
        baseline: None,
        baseline_cycles_per_packet: None,
        ratio: None,
    }
}

/// Median of the samples, in milliseconds.
fn median_ms(v: &mut [Duration]) -> f64 {
    v.sort_unstable();
    v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// `render-full`: `Renderer::render` of node-0 from the whole snapshot, and the ACL backend's
/// change set for the result.
pub fn full(_o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let mut details = BTreeMap::new();
    let mut total = Duration::ZERO;
    let mut ops = 0u64;
    for pods in SCALES {
        let c = cluster(pods);
        let s = scale_name(pods);
        // Memory of one rendered state, before the timing runs churn the allocator.
        let before = rss_kib();
        let r = Renderer::render(NODE, &c);
        let after = rss_kib();
        let t = r.tables();
        let rules: usize = t.local_tables.iter().map(|t| t.rules.len()).sum();
        details.insert(format!("{s}_policies"), c.policies.len().to_string());
        details.insert(
            format!("{s}_local_tables"),
            t.local_tables.len().to_string(),
        );
        details.insert(format!("{s}_local_rules"), rules.to_string());
        details.insert(
            format!("{s}_global_rules"),
            t.global_table.rules.len().to_string(),
        );
        details.insert(
            format!("{s}_rss_mib"),
            after.zip(before).map_or("n/a".into(), |(a, b)| {
                format!("{:.1}", a.saturating_sub(b) as f64 / 1024.0)
            }),
        );
        drop(r);
        let runs = if pods >= 10_000 { 7 } else { 30 };
        let mut samples = Vec::with_capacity(runs);
        let mut acl = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t0 = Instant::now();
            let r = black_box(Renderer::render(NODE, &c));
            let d = t0.elapsed();
            samples.push(d);
            total += d;
            ops += 1;
            let tables = r.tables();
            let t1 = Instant::now();
            let set = AclBackend::new(1).snapshot(&tables)?;
            acl.push(t1.elapsed());
            black_box(set);
        }
        details.insert(
            format!("{s}_render_ms"),
            format!("{:.2}", median_ms(&mut samples)),
        );
        details.insert(
            format!("{s}_acl_changeset_ms"),
            format!("{:.2}", median_ms(&mut acl)),
        );
    }
    Ok(report("render-full", ops, total, details))
}

/// Times `n` rounds of (event, undo) on `r`, each a transaction whose change set also goes
/// through the ACL backend; returns the median time of the event and of the undo, in µs.
fn event_pair(
    r: &mut Renderer,
    b: &mut AclBackend,
    n: usize,
    total: &mut Duration,
    ops: &mut u64,
    ev: &dyn Fn(&mut Txn<'_>),
    undo: &dyn Fn(&mut Txn<'_>),
) -> anyhow::Result<(f64, f64)> {
    let (mut a, mut u) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        for (f, out) in [(ev, &mut a), (undo, &mut u)] {
            let t0 = Instant::now();
            let mut t = r.txn();
            f(&mut t);
            let set = b.apply(&t.commit())?;
            let d = t0.elapsed();
            black_box(set);
            out.push(d);
            *total += d;
            *ops += 1;
        }
    }
    Ok((median_ms(&mut a) * 1e3, median_ms(&mut u) * 1e3))
}

/// `render-event`: one pod added (remote, and local egress-isolated), one pod relabelled, one
/// policy changed, each undone again, on a node rendered at scale; each event is one
/// transaction plus its ACL change set.
pub fn event(_o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let mut details = BTreeMap::new();
    let mut total = Duration::ZERO;
    let mut ops = 0u64;
    for pods in SCALES {
        let c = cluster(pods);
        let s = scale_name(pods);
        // Memory is reported by render-full: here the allocator reuses what earlier scenarios
        // freed, so an RSS difference would mean nothing.
        let mut r = Renderer::new(NODE);
        let mut b = AclBackend::new(1);
        let mut t = r.txn();
        for ns in &c.namespaces {
            t.update_namespace(ns.clone());
        }
        for p in &c.policies {
            t.update_policy(p.clone());
        }
        for p in &c.pods {
            t.update_pod(p.clone());
        }
        b.apply(&t.commit())?;
        let n = if pods >= 10_000 { 50 } else { 200 };

        // A remote pod of ns0, app1 (a source of node-0's app0 pods).
        let remote = Pod {
            name: "extra".into(),
            node: "node-7".into(),
            ip: Some(Ipv4Addr::new(10, 200, 0, 7)),
            ..pod(0, 1, 1)
        };
        let key = remote.key();
        let (add, rm) = event_pair(
            &mut r,
            &mut b,
            n,
            &mut total,
            &mut ops,
            &|t| {
                t.update_pod(remote.clone());
            },
            &|t| {
                t.remove_pod(&key);
            },
        )?;
        details.insert(format!("{s}_remote_pod_added_us"), format!("{add:.0}"));
        details.insert(format!("{s}_remote_pod_removed_us"), format!("{rm:.0}"));

        // A local pod of app3, egress-isolated: its egress folds into every local table.
        let local = Pod {
            name: "extra-local".into(),
            node: NODE.into(),
            ip: Some(Ipv4Addr::new(10, 200, 0, 8)),
            ..pod(0, 3, 3)
        };
        let key = local.key();
        let (add, rm) = event_pair(
            &mut r,
            &mut b,
            n / 5,
            &mut total,
            &mut ops,
            &|t| {
                t.update_pod(local.clone());
            },
            &|t| {
                t.remove_pod(&key);
            },
        )?;
        details.insert(
            format!("{s}_local_egress_pod_added_us"),
            format!("{add:.0}"),
        );
        details.insert(
            format!("{s}_local_egress_pod_removed_us"),
            format!("{rm:.0}"),
        );

        // A remote pod relabelled app1 -> app2 (and back).
        let a = pod(0, 11, 1);
        let relabelled = Pod {
            labels: labels(&[("app", "app2".into()), ("tier", "back".into())]),
            ..a.clone()
        };
        let (ev, undo) = event_pair(
            &mut r,
            &mut b,
            n,
            &mut total,
            &mut ops,
            &|t| {
                t.update_pod(relabelled.clone());
            },
            &|t| {
                t.update_pod(a.clone());
            },
        )?;
        details.insert(
            format!("{s}_pod_relabelled_us"),
            format!("{:.0}", (ev + undo) / 2.0),
        );

        // Policy p0 of ns0 (selects node-0's app0 pods): port 8080 -> 8081 (and back).
        let (p1, p0) = (policy(0, 0, 8081), policy(0, 0, 8080));
        let (ev, undo) = event_pair(
            &mut r,
            &mut b,
            n,
            &mut total,
            &mut ops,
            &|t| {
                t.update_policy(p1.clone());
            },
            &|t| {
                t.update_policy(p0.clone());
            },
        )?;
        details.insert(
            format!("{s}_policy_changed_us"),
            format!("{:.0}", (ev + undo) / 2.0),
        );
    }
    Ok(report("render-event", ops, total, details))
}
