//! FIB micro-benchmarks: a batch of 256 lookups (what ip4-lookup does per frame) at 1, 10k and
//! 1M random /8–/32 routes, single lookups, route insertion and snapshot publication.
#![allow(missing_docs)] // criterion_group! generates undocumented items.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::net::Ipv4Addr;
use vpg_ip4::fib::{testgen, Fib};

fn table(n: usize) -> (Fib, Vec<(Ipv4Addr, u8)>) {
    let routes = if n == 1 {
        vec![(Ipv4Addr::new(10, 0, 0, 0), 8)]
    } else {
        testgen::random_routes(n, 42)
    };
    let mut fib = Fib::new(0);
    for (i, &(p, l)) in routes.iter().enumerate() {
        let _ = fib.insert(p, l, 1 + (i as u32 % 1000));
    }
    (fib, routes)
}

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("fib-lookup-batch-256");
    g.throughput(Throughput::Elements(256));
    for n in [1usize, 10_000, 1_000_000] {
        let (fib, routes) = table(n);
        let snap = fib.snapshot();
        let dsts = testgen::covered_destinations(&routes, 65_536, 7);
        let mut out = [0u32; 256];
        let mut at = 0usize;
        g.bench_function(format!("{n}-routes"), |b| {
            b.iter(|| {
                at = (at + 256) % (dsts.len() - 256);
                snap.lookup_batch(black_box(&dsts[at..at + 256]), &mut out);
                black_box(out[0])
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("fib-lookup-single");
    g.throughput(Throughput::Elements(1));
    let (fib, routes) = table(10_000);
    let snap = fib.snapshot();
    let dsts = testgen::covered_destinations(&routes, 4096, 7);
    let mut i = 0;
    g.bench_function("10k-routes", |b| {
        b.iter(|| {
            i = (i + 1) % dsts.len();
            snap.lookup(black_box(dsts[i]))
        })
    });
    g.finish();
}

fn updates(c: &mut Criterion) {
    let mut g = c.benchmark_group("fib-update");
    let (fib, _) = table(10_000);
    let extra = testgen::random_routes(1000, 99);
    g.throughput(Throughput::Elements(1));
    g.bench_function("insert+remove at 10k routes", |b| {
        b.iter_batched(
            || fib.clone(),
            |mut f| {
                let (p, l) = extra[0];
                let _ = f.insert(p, l, 7);
                f.remove(p, l);
                f
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("snapshot at 10k routes", |b| {
        b.iter(|| black_box(fib.snapshot()))
    });
    g.finish();
}

criterion_group!(benches, lookups, updates);
criterion_main!(benches);
