//! AES-GCM seal and open per packet: the native engine one packet at a time and in batches of
//! 8 and 32 packets (different nonces, as a frame's packets have), against `ring`, `aws-lc-rs`
//! and `aes-gcm`, at the ESP payload sizes of the node benchmarks (32 bytes: a 64-byte frame's;
//! 1368: a 1400-byte frame's) with an 8-byte AAD (SPI ‖ sequence number).
//! `cargo bench -p vpg-crypto --bench gcm`. Per-packet time is the iteration time divided by
//! the packets in it (criterion's throughput counts the bytes of all of them).
#![allow(missing_docs)]

use aes_gcm::aead::AeadInPlace;
use aes_gcm::KeyInit;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vpg_crypto::{GcmKey, Job};

const AAD: [u8; 8] = [0, 0, 0x10, 0x01, 0, 0, 0, 1];

fn nonce(n: u64) -> [u8; 12] {
    let mut x = [0x5au8; 12];
    x[4..].copy_from_slice(&n.to_be_bytes());
    x
}

fn gcm(c: &mut Criterion) {
    for bits in [128usize, 256] {
        let key: Vec<u8> = (0..bits / 8).map(|i| i as u8 * 29).collect();
        for open in [false, true] {
            let what = if open { "open" } else { "seal" };
            let mut g = c.benchmark_group(format!("{what}-aes{bits}-gcm"));
            for &len in &[32usize, 256, 1368] {
                if vpg_crypto::is_supported() {
                    let k = GcmKey::new(&key).unwrap();
                    for batch in [1usize, 8, 32] {
                        g.throughput(Throughput::Bytes((len * batch) as u64));
                        let mut bufs = vec![vec![0x5au8; len]; batch];
                        let mut tags = vec![[0u8; 16]; batch];
                        let mut n = 0u64;
                        for (i, b) in bufs.iter_mut().enumerate() {
                            tags[i] = k.seal(&nonce(i as u64), &AAD, b).unwrap();
                        }
                        let id = BenchmarkId::new(format!("native-x{batch}"), len);
                        g.bench_function(id, |b| {
                            b.iter(|| {
                                let mut jobs: [Job<'_>; 32] = Default::default();
                                for (i, (j, d)) in jobs.iter_mut().zip(bufs.iter_mut()).enumerate()
                                {
                                    *j = Job::new(nonce(n + i as u64), &AAD, d);
                                    j.tag = tags[i];
                                }
                                n += 1;
                                if open {
                                    k.open_batch(&mut jobs[..batch]);
                                } else {
                                    k.seal_batch(&mut jobs[..batch]);
                                }
                                black_box(jobs[0].tag)
                            })
                        });
                    }
                }
                g.throughput(Throughput::Bytes(len as u64));
                let mut data = vec![0x5au8; len];
                {
                    use ring::aead;
                    let alg = if bits == 128 {
                        &aead::AES_128_GCM
                    } else {
                        &aead::AES_256_GCM
                    };
                    let k = aead::LessSafeKey::new(aead::UnboundKey::new(alg, &key).unwrap());
                    let mut n = 0u64;
                    g.bench_function(BenchmarkId::new("ring", len), |b| {
                        b.iter(|| {
                            n += 1;
                            let nc = aead::Nonce::assume_unique_for_key(nonce(n));
                            if open {
                                let t = aead::Tag::from([0u8; 16]);
                                black_box(
                                    k.open_in_place_separate_tag(
                                        nc,
                                        aead::Aad::from(&AAD),
                                        t,
                                        &mut data,
                                        0..,
                                    )
                                    .is_ok(),
                                );
                            } else {
                                black_box(
                                    k.seal_in_place_separate_tag(
                                        nc,
                                        aead::Aad::from(&AAD),
                                        &mut data,
                                    )
                                    .is_ok(),
                                );
                            }
                        })
                    });
                }
                {
                    use aws_lc_rs::aead;
                    let alg = if bits == 128 {
                        &aead::AES_128_GCM
                    } else {
                        &aead::AES_256_GCM
                    };
                    let k = aead::LessSafeKey::new(aead::UnboundKey::new(alg, &key).unwrap());
                    let mut n = 0u64;
                    g.bench_function(BenchmarkId::new("aws-lc-rs", len), |b| {
                        b.iter(|| {
                            n += 1;
                            let nc = aead::Nonce::assume_unique_for_key(nonce(n));
                            if open {
                                black_box(
                                    k.open_in_place_separate_tag(
                                        nc,
                                        aead::Aad::from(&AAD),
                                        &[0u8; 16],
                                        &mut data,
                                    )
                                    .is_ok(),
                                );
                            } else {
                                black_box(
                                    k.seal_in_place_separate_tag(
                                        nc,
                                        aead::Aad::from(&AAD),
                                        &mut data,
                                    )
                                    .is_ok(),
                                );
                            }
                        })
                    });
                }
                {
                    let mut n = 0u64;
                    let k128 = aes_gcm::Aes128Gcm::new_from_slice(&key[..16]).unwrap();
                    let k256 = aes_gcm::Aes256Gcm::new_from_slice(&key).ok();
                    g.bench_function(BenchmarkId::new("aes-gcm", len), |b| {
                        b.iter(|| {
                            n += 1;
                            let nc = nonce(n);
                            let tag = [0u8; 16];
                            let r = match (&k256, open) {
                                (Some(k), false) => k
                                    .encrypt_in_place_detached((&nc).into(), &AAD, &mut data)
                                    .is_ok(),
                                (Some(k), true) => k
                                    .decrypt_in_place_detached(
                                        (&nc).into(),
                                        &AAD,
                                        &mut data,
                                        (&tag).into(),
                                    )
                                    .is_ok(),
                                (None, false) => k128
                                    .encrypt_in_place_detached((&nc).into(), &AAD, &mut data)
                                    .is_ok(),
                                (None, true) => k128
                                    .decrypt_in_place_detached(
                                        (&nc).into(),
                                        &AAD,
                                        &mut data,
                                        (&tag).into(),
                                    )
                                    .is_ok(),
                            };
                            black_box(r)
                        })
                    });
                }
            }
            g.finish();
        }
    }
}

criterion_group!(benches, gcm);
criterion_main!(benches);
