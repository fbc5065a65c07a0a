//! Renderer cost at scale: a full render of one node, and single events (pod added and
//! removed, pod relabelled, policy changed) at 1k pods / 100 policies and 10k pods / 1k
//! policies, pods spread over 100 nodes. An event's cost must not grow with the square of the
//! pods: compare the two scales. Then provenance on demand (`explain`) at both scales.
//!
//! `egress-all`: the policy mix where most policies allow egress to every pod of the cluster
//! (`synth::egress_all`, 1,000 pods on two nodes, 100 policies), rendered on `n1`; the table
//! sizes it gives (peer addresses aggregated into prefixes, and without) are printed first.
//!
//! `cargo bench -p vpg-renderer --bench render` (prints the memory of each rendered state on
//! stderr first).
#![allow(missing_docs)] // criterion_group! generates undocumented items.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion};
use vpg_renderer::synth::{cluster, egress_all, labels, pod, policy};
use vpg_renderer::{Pod, Renderer};

fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn report_memory() {
    for pods in [1_000, 10_000] {
        let c = cluster(pods);
        let before = rss_kib();
        let r = Renderer::render("node-0", &c);
        let after = rss_kib();
        let t = r.tables();
        let rules: usize = t.local_tables.iter().map(|t| t.rules.len()).sum();
        eprintln!(
            "{pods} pods / {} policies, node-0: {} local tables ({} rules), global table {} rules, RSS +{} KiB",
            c.policies.len(),
            t.local_tables.len(),
            rules,
            t.global_table.rules.len(),
            after.zip(before).map_or(0, |(a, b)| a.saturating_sub(b)),
        );
        drop(r);
    }
    let c = egress_all(1_000, 100);
    let r = Renderer::render("n1", &c);
    let t = r.tables();
    let rules: usize = t.local_tables.iter().map(|t| t.rules.len()).sum();
    eprintln!(
        "egress-all 1000 pods / 100 policies, n1: {} local tables ({} rules), global table {} rules, {} rules in all, {} bytes of JSON",
        t.local_tables.len(),
        rules,
        t.global_table.rules.len(),
        rules + t.global_table.rules.len(),
        serde_json::to_string(&t).map_or(0, |s| s.len()),
    );
}

fn egress(c: &mut Criterion) {
    let mut g = c.benchmark_group("egress-all");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let cl = egress_all(1_000, 100);
    g.bench_function("render-full/1000", |b| {
        b.iter(|| black_box(Renderer::render("n1", &cl)))
    });
    g.finish();
}

fn full(c: &mut Criterion) {
    let mut g = c.benchmark_group("render-full");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for pods in [1_000, 10_000] {
        let cl = cluster(pods);
        g.bench_with_input(BenchmarkId::from_parameter(pods), &cl, |b, cl| {
            b.iter(|| black_box(Renderer::render("node-0", cl)))
        });
    }
    g.finish();
}

fn events(c: &mut Criterion) {
    let mut g = c.benchmark_group("render-event");
    g.sample_size(30).measurement_time(Duration::from_secs(5));
    for pods in [1_000, 10_000] {
        let cl = cluster(pods);
        let mut r = Renderer::render("node-0", &cl);

        // A remote pod of ns0 (app1: a source for app0's local pods) added, then removed.
        let remote = Pod {
            name: "extra".into(),
            node: "node-7".into(),
            ip: Some(Ipv4Addr::new(10, 200, 0, 7)),
            ..pod(0, 1, 1)
        };
        g.bench_function(BenchmarkId::new("remote-pod-add-remove", pods), |b| {
            b.iter(|| {
                let mut t = r.txn();
                t.update_pod(remote.clone());
                black_box(t.commit());
                let mut t = r.txn();
                t.remove_pod(&remote.key());
                black_box(t.commit());
            })
        });

        // A local pod (node-0) of app3 (egress-isolated: its egress folds into every local
        // table) added, then removed.
        let local = Pod {
            name: "extra-local".into(),
            node: "node-0".into(),
            ip: Some(Ipv4Addr::new(10, 200, 0, 8)),
            ..pod(0, 3, 3)
        };
        g.bench_function(BenchmarkId::new("local-pod-add-remove", pods), |b| {
            b.iter(|| {
                let mut t = r.txn();
                t.update_pod(local.clone());
                black_box(t.commit());
                let mut t = r.txn();
                t.remove_pod(&local.key());
                black_box(t.commit());
            })
        });

        // A remote pod relabelled app1 -> app2 and back.
        let a = pod(0, 11, 1);
        let b2 = Pod {
            labels: labels(&[("app", "app2".into()), ("tier", "back".into())]),
            ..a.clone()
        };
        g.bench_function(BenchmarkId::new("pod-relabel-twice", pods), |b| {
            b.iter(|| {
                let mut t = r.txn();
                t.update_pod(b2.clone());
                black_box(t.commit());
                let mut t = r.txn();
                t.update_pod(a.clone());
                black_box(t.commit());
            })
        });

        // Policy p0 of ns0 (selects node-0's app0 pods) changes port and back.
        let p1 = policy(0, 0, 8081);
        let p0 = policy(0, 0, 8080);
        g.bench_function(BenchmarkId::new("policy-change-twice", pods), |b| {
            b.iter(|| {
                let mut t = r.txn();
                t.update_policy(p1.clone());
                black_box(t.commit());
                let mut t = r.txn();
                t.update_policy(p0.clone());
                black_box(t.commit());
            })
        });
    }
    g.finish();
}

/// Provenance on demand (`Renderer::explain`, `explain_pod`): what one `vpgctl show policy`
/// question costs the agent. Nothing of it runs on the update path.
fn explain(c: &mut Criterion) {
    let mut g = c.benchmark_group("explain");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for pods in [1_000, 10_000] {
        let cl = cluster(pods);
        let r = Renderer::render("node-0", &cl);
        g.bench_function(BenchmarkId::new("all-tables", pods), |b| {
            b.iter(|| black_box(r.explain()))
        });
        let local = cl
            .pods
            .iter()
            .find(|p| p.node == "node-0")
            .expect("node-0 has pods")
            .key();
        g.bench_function(BenchmarkId::new("one-pod", pods), |b| {
            b.iter(|| black_box(r.explain_pod(&local)))
        });
    }
    g.finish();
}

criterion_group!(benches, full, events, explain, egress);

fn main() {
    report_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
