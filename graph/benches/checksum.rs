//! Checksum micro-benchmarks: full Internet checksum over header and packet sizes, and the
//! RFC 1624 incremental update that ip4-rewrite and NAT use instead.
#![allow(missing_docs)] // criterion_group! generates undocumented items.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vpg_graph::wire::checksum;

fn full(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum-data");
    for size in [20usize, 64, 128, 1400, 9000] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("{size}B"), |b| {
            b.iter(|| checksum::data(black_box(&data)))
        });
    }
    g.finish();
}

fn incremental(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum-update");
    g.throughput(Throughput::Elements(1));
    g.bench_function("u16 (ttl)", |b| {
        b.iter(|| checksum::update_u16(black_box(0x1c46), black_box(0x4011), black_box(0x3f11)))
    });
    g.bench_function("u32 (address)", |b| {
        b.iter(|| {
            checksum::update_u32(
                black_box(0x1c46),
                black_box(0x0a00_0001),
                black_box(0xc0a8_0101),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, full, incremental);
criterion_main!(benches);
