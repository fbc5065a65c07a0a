//! Classifier micro-benchmarks on the ClassBench sets: compile time and a 256-header batch.

use criterion::{criterion_main, Criterion};
use std::path::Path;
use vpg_acl::classbench::{data_dir, read_rules, read_trace, SETS};
use vpg_acl::classify::Classifier;

fn bench(c: &mut Criterion) {
    let Some(dir) = data_dir(Path::new(env!("CARGO_MANIFEST_DIR"))) else {
        eprintln!("ClassBench data not found; set VPG_CLASSBENCH_DIR");
        return;
    };
    for set in SETS {
        let rules = read_rules(&dir.join(format!("{set}.rules"))).expect("rules");
        let trace = read_trace(&dir.join(format!("{set}.trace.gz")), 65536).expect("trace");
        c.bench_function(&format!("compile/{set}"), |b| {
            b.iter(|| Classifier::compile(&rules))
        });
        let cl = Classifier::compile(&rules);
        let mut out = vec![0u32; 256];
        let mut off = 0;
        c.bench_function(&format!("classify-256/{set}"), |b| {
            b.iter(|| {
                off = (off + 256) % (trace.len() - 256);
                cl.classify_batch(&trace[off..off + 256], &mut out);
                out[0]
            })
        });
    }
}

mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
