//! FIB benchmarks: batched lookup at 1, 10k and 1M random routes (prefix lengths uniform over
//! /8..=/32, destinations inside random routes), route insertion, and snapshot cost.
//!
//! The `alt` module holds two classic uncompressed structures (VPP's 16-8-8 mtrie and
//! DIR-24-8), built statically from the same routes, so that `docs/fib.md` can compare them with
//! `vpg_ip4::fib` within one run:
//!
//! ```text
//! cargo bench -p vpg-ip4 --bench fib -- --warm-up-time 1 --measurement-time 3
//! ```

use std::cell::OnceCell;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

use criterion::{criterion_main, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use vpg_ip4::fib::testgen::{covered_destinations, random_routes};
use vpg_ip4::fib::{AdjIndex, Fib};

/// Destinations per batch (a frame).
const BATCH: usize = 256;
/// Destinations cycled through, so that successive batches do not hit the same lines.
const POOL: usize = 1 << 20;
/// Table sizes: (name, number of routes).
const SIZES: [(&str, usize); 3] = [("1", 1), ("10k", 10_000), ("1m", 1_000_000)];
/// Distinct adjacencies the routes are spread over (few merges between neighbouring routes).
const ADJS: u32 = 1024;

fn adjs(n: usize, seed: u64) -> Vec<AdjIndex> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(1..=ADJS)).collect()
}

fn build(routes: &[(Ipv4Addr, u8)], adj: &[AdjIndex]) -> Fib {
    let mut fib = Fib::new(0);
    for (&(p, l), &a) in routes.iter().zip(adj) {
        let _ = fib.insert(p, l, a);
    }
    fib
}

/// Classic uncompressed structures, built once from a route list (no updates).
mod alt {
    use std::net::Ipv4Addr;

    const PLY: u32 = 1 << 31;

    fn by_length(routes: &[(Ipv4Addr, u8)], adj: &[u32]) -> Vec<(u32, u8, u32)> {
        let mut v: Vec<_> = routes
            .iter()
            .zip(adj)
            .map(|(&(p, l), &a)| (u32::from(p), l, a & !PLY))
            .collect();
        v.sort_by_key(|r| r.1);
        v
    }

    /// VPP-style 16-8-8 mtrie: a 2^16 root and 256-slot plies, one load per level.
    pub struct Mtrie {
        root: Vec<u32>,
        plies: Vec<[u32; 256]>,
    }

    impl Mtrie {
        pub fn build(routes: &[(Ipv4Addr, u8)], adj: &[u32]) -> Self {
            let mut m = Mtrie {
                root: vec![0; 1 << 16],
                plies: Vec::new(),
            };
            for (p, l, a) in by_length(routes, adj) {
                if l <= 16 {
                    let s = (p >> 16) as usize;
                    m.root[s..s + (1 << (16 - l))].fill(a);
                    continue;
                }
                let r = (p >> 16) as usize;
                let p2 = m.child(|m| &mut m.root[r]);
                let b = ((p >> 8) & 0xff) as usize;
                if l <= 24 {
                    m.plies[p2][b..b + (1 << (24 - l))].fill(a);
                    continue;
                }
                let p3 = m.child(|m| &mut m.plies[p2][b]);
                let x = (p & 0xff) as usize;
                m.plies[p3][x..x + (1 << (32 - l))].fill(a);
            }
            m
        }

        /// The ply under a slot, made from the slot's leaf if there is none yet.
        fn child(&mut self, slot: impl Fn(&mut Self) -> &mut u32) -> usize {
            let e = *slot(self);
            if e & PLY != 0 {
                return (e & !PLY) as usize;
            }
            self.plies.push([e; 256]);
            let i = self.plies.len() - 1;
            *slot(self) = PLY | i as u32;
            i
        }

        #[inline]
        pub fn lookup(&self, d: u32) -> u32 {
            let mut e = self.root[(d >> 16) as usize];
            if e & PLY != 0 {
                e = self.plies[(e & !PLY) as usize][((d >> 8) & 0xff) as usize];
                if e & PLY != 0 {
                    e = self.plies[(e & !PLY) as usize][(d & 0xff) as usize];
                }
            }
            e
        }

        pub fn bytes(&self) -> usize {
            self.root.len() * 4 + self.plies.len() * 1024
        }
    }

    /// DIR-24-8: a 2^24 first table and 256-slot second-level groups.
    pub struct Dir24 {
        t24: Vec<u32>,
        t8: Vec<[u32; 256]>,
    }

    impl Dir24 {
        pub fn build(routes: &[(Ipv4Addr, u8)], adj: &[u32]) -> Self {
            let mut t = Dir24 {
                t24: vec![0; 1 << 24],
                t8: Vec::new(),
            };
            for (p, l, a) in by_length(routes, adj) {
                let s = (p >> 8) as usize;
                if l <= 24 {
                    t.t24[s..s + (1 << (24 - l))].fill(a);
                    continue;
                }
                let e = t.t24[s];
                let g = if e & PLY != 0 {
                    (e & !PLY) as usize
                } else {
                    t.t8.push([e; 256]);
                    t.t24[s] = PLY | (t.t8.len() - 1) as u32;
                    t.t8.len() - 1
                };
                let x = (p & 0xff) as usize;
                t.t8[g][x..x + (1 << (32 - l))].fill(a);
            }
            t
        }

        #[inline]
        pub fn lookup(&self, d: u32) -> u32 {
            let e = self.t24[(d >> 8) as usize];
            if e & PLY != 0 {
                self.t8[(e & !PLY) as usize][(d & 0xff) as usize]
            } else {
                e
            }
        }

        pub fn bytes(&self) -> usize {
            self.t24.len() * 4 + self.t8.len() * 1024
        }
    }
}

fn mib(b: usize) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("fib_lookup");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, n) in SIZES {
        let routes = random_routes(n, 42);
        let adj = adjs(routes.len(), 43);
        let t0 = Instant::now();
        let fib = build(&routes, &adj);
        let built = t0.elapsed();
        let snap = fib.snapshot();
        eprintln!(
            "fib {name}: {} routes, built in {:.3} s, snapshot {:.2} MiB, Fib {:.2} MiB",
            fib.len(),
            built.as_secs_f64(),
            mib(snap.memory_bytes()),
            mib(fib.memory_bytes())
        );
        let dsts = covered_destinations(&routes, POOL, 44);
        let mut out = vec![0; BATCH];
        let mut at = 0;
        g.bench_function(format!("batch/{name}"), |b| {
            b.iter(|| {
                snap.lookup_batch(&dsts[at..at + BATCH], &mut out);
                at = (at + BATCH) % POOL;
                black_box(&out);
            })
        });
        if n > 1 {
            // The same routes over 16 adjacencies: lines then hold 21 runs with 8-bit values.
            let few: Vec<AdjIndex> = adj.iter().map(|a| a % 16 + 1).collect();
            let fib16 = build(&routes, &few);
            let snap16 = fib16.snapshot();
            eprintln!(
                "fib {name} over 16 adjacencies: snapshot {:.2} MiB",
                mib(snap16.memory_bytes())
            );
            g.bench_function(format!("batch_16adj/{name}"), |b| {
                b.iter(|| {
                    snap16.lookup_batch(&dsts[at..at + BATCH], &mut out);
                    at = (at + BATCH) % POOL;
                    black_box(&out);
                })
            });
        }
        g.bench_function(format!("scalar/{name}"), |b| {
            b.iter(|| {
                for (o, &d) in out.iter_mut().zip(&dsts[at..at + BATCH]) {
                    *o = snap.lookup(d);
                }
                at = (at + BATCH) % POOL;
                black_box(&out);
            })
        });
        let mtrie = OnceCell::new();
        g.bench_function(format!("alt_mtrie_16_8_8/{name}"), |b| {
            let m = mtrie.get_or_init(|| {
                let m = alt::Mtrie::build(&routes, &adj);
                eprintln!("mtrie 16-8-8 {name}: {:.2} MiB", mib(m.bytes()));
                m
            });
            b.iter(|| {
                for (o, &d) in out.iter_mut().zip(&dsts[at..at + BATCH]) {
                    *o = m.lookup(d);
                }
                at = (at + BATCH) % POOL;
                black_box(&out);
            })
        });
        drop(mtrie);
        let dir = OnceCell::new();
        g.bench_function(format!("alt_dir_24_8/{name}"), |b| {
            let t = dir.get_or_init(|| {
                let t = alt::Dir24::build(&routes, &adj);
                eprintln!("dir-24-8 {name}: {:.2} MiB", mib(t.bytes()));
                t
            });
            b.iter(|| {
                for (o, &d) in out.iter_mut().zip(&dsts[at..at + BATCH]) {
                    *o = t.lookup(d);
                }
                at = (at + BATCH) % POOL;
                black_box(&out);
            })
        });
        drop(dir);
        // The lookup structure must agree with the classic one it is compared against.
        let m = alt::Mtrie::build(&routes, &adj);
        let mut got = vec![0; 4096];
        snap.lookup_batch(&dsts[..4096], &mut got);
        for (&d, &r) in dsts.iter().zip(&got) {
            assert_eq!(r, m.lookup(d), "mismatch at {}", Ipv4Addr::from(d));
        }
    }
    g.finish();
}

fn updates(c: &mut Criterion) {
    let mut g = c.benchmark_group("fib_build");
    g.sample_size(10);
    for (name, n) in [("10k", 10_000usize), ("1m", 1_000_000)] {
        let routes = random_routes(n, 42);
        let adj = adjs(routes.len(), 43);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("insert_all/{name}"), |b| {
            b.iter(|| black_box(build(&routes, &adj)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("fib_update");
    for (name, n) in [("10k", 10_000usize), ("1m", 1_000_000)] {
        let mut all = random_routes(n + 4096, 42);
        let extra = all.split_off(n);
        let adj = adjs(n, 43);
        let mut fib = build(&all, &adj);
        let mut i = 0;
        // One new route in and out again: two changes, table size unchanged.
        g.bench_function(format!("insert_remove/{name}"), |b| {
            b.iter(|| {
                let (p, l) = extra[i % extra.len()];
                i += 1;
                let _ = fib.insert(p, l, 7);
                fib.remove(p, l)
            })
        });
        // The same two changes while a snapshot taken just before is alive (workers still on
        // it): the first write copies the page tables and every page it touches.
        g.bench_function(format!("snapshot_insert_remove/{name}"), |b| {
            b.iter(|| {
                let s = fib.snapshot();
                let (p, l) = extra[i % extra.len()];
                i += 1;
                let _ = fib.insert(p, l, 7);
                fib.remove(p, l);
                drop(s);
            })
        });
        // 100 changes per snapshot.
        g.bench_function(format!("snapshot_100_changes/{name}"), |b| {
            b.iter(|| {
                let s = fib.snapshot();
                for _ in 0..50 {
                    let (p, l) = extra[i % extra.len()];
                    i += 1;
                    let _ = fib.insert(p, l, 7);
                    fib.remove(p, l);
                }
                drop(s);
            })
        });
        g.bench_function(format!("snapshot_only/{name}"), |b| {
            b.iter(|| black_box(fib.snapshot()))
        });
    }
    g.finish();
}

mod group {
    criterion::criterion_group!(benches, super::lookups, super::updates);
}
criterion_main!(group::benches);
