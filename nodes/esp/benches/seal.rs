//! Raw AES-128-GCM and AES-256-GCM seal throughput of each backend at 64, 256, 512 and 1400 bytes (the
//! ESP payload sizes of the node benchmarks), with an ESP-shaped 8-byte AAD.
//! `cargo bench -p vpg-esp --bench seal` (add `--features aws-lc` for the AWS-LC backend).
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vpg_esp::crypto::{Backend, KeyMaterial};

fn seal(c: &mut Criterion) {
    for bits in [128usize, 256] {
        let mut g = c.benchmark_group(format!("seal-aes{bits}-gcm"));
        let m = KeyMaterial::new((0..bits / 8 + 4).map(|i| i as u8).collect()).unwrap();
        for &len in &[64usize, 256, 512, 1400] {
            g.throughput(Throughput::Bytes(len as u64));
            for &be in Backend::available() {
                let cipher = m.cipher(be).unwrap();
                let mut data = vec![0x5au8; len];
                let mut n = 0u64;
                g.bench_with_input(BenchmarkId::new(be.name(), len), &len, |b, _| {
                    b.iter(|| {
                        n += 1;
                        let mut nonce = [0u8; 12];
                        nonce[4..].copy_from_slice(&n.to_be_bytes());
                        black_box(cipher.seal(&nonce, &[0, 0, 1, 0, 0, 0, 0, 1], &mut data))
                    })
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, seal);
criterion_main!(benches);
