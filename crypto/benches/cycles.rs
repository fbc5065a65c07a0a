//! TSC clocks per packet of AES-GCM seal and open, native (batches of 1, 8 and 32) against
//! `ring`, `aws-lc-rs` and `aes-gcm`, at the ESP payload sizes of the node benchmarks (32:
//! a 64-byte frame's, 1368: a 1400-byte frame's) and 256, with an 8-byte AAD. Each figure is
//! the **minimum** over `ROUNDS` rounds of many packets: on a shared machine the least
//! disturbed round is the best estimate of the cost (criterion's means move with the load).
//! `cargo bench -p vpg-crypto --bench cycles` (x86_64).
#![allow(missing_docs)]

use aes_gcm::aead::AeadInPlace;
use aes_gcm::KeyInit;
use std::hint::black_box;
use vpg_crypto::{GcmKey, Job};

const AAD: [u8; 8] = [0, 0, 0x10, 0x01, 0, 0, 0, 1];
const ROUNDS: usize = 80;

fn tsc() -> u64 {
    vpg_graph::sys::rdtsc()
}

/// Minimum clocks per packet of `f`, which processes `per_call` packets.
fn clocks(len: usize, per_call: usize, mut f: impl FnMut(u64)) -> f64 {
    let calls = (150_000 / (len + 64) / per_call).max(20) as u64;
    for i in 0..calls {
        f(i);
    }
    let mut best = u64::MAX;
    for r in 0..ROUNDS as u64 {
        let t0 = tsc();
        for i in 0..calls {
            f(r * calls + i);
        }
        best = best.min(tsc() - t0);
    }
    best as f64 / (calls as usize * per_call) as f64
}

fn nonce(n: u64) -> [u8; 12] {
    let mut x = [0x5au8; 12];
    x[4..].copy_from_slice(&n.to_be_bytes());
    x
}

/// The native engine on batches of `B` packets (the job array sized exactly, so building it
/// costs what a caller's would).
fn native<const B: usize>(k: &GcmKey, bufs: &mut [Vec<u8>], len: usize, open: bool) -> f64 {
    clocks(len, B, |n| {
        let mut jobs: [Job<'_>; B] = std::array::from_fn(|_| Job::default());
        for (i, (j, d)) in jobs.iter_mut().zip(bufs.iter_mut()).enumerate() {
            *j = Job::new(nonce(n * B as u64 + i as u64), &AAD, d);
        }
        if open {
            k.open_batch(&mut jobs);
        } else {
            k.seal_batch(&mut jobs);
        }
        black_box(jobs[0].tag);
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    for bits in [128usize, 256] {
        let key: Vec<u8> = (0..bits / 8).map(|i| i as u8 * 29).collect();
        for open in [false, true] {
            let what = if open { "open" } else { "seal" };
            for &len in &[32usize, 256, 512, 1368] {
                let mut row = format!("{what} aes-{bits} {len:>5} B:");
                if vpg_crypto::is_supported() {
                    let k = GcmKey::new(&key).unwrap();
                    for batch in [1usize, 8, 32] {
                        let mut bufs = vec![vec![0x5au8; len]; batch];
                        let c = match batch {
                            1 => native::<1>(&k, &mut bufs, len, open),
                            8 => native::<8>(&k, &mut bufs, len, open),
                            _ => native::<32>(&k, &mut bufs, len, open),
                        };
                        row += &format!("  native-x{batch} {c:7.1}");
                    }
                }
                let mut data = vec![0x5au8; len];
                {
                    use ring::aead;
                    let alg = if bits == 128 {
                        &aead::AES_128_GCM
                    } else {
                        &aead::AES_256_GCM
                    };
                    let k = aead::LessSafeKey::new(aead::UnboundKey::new(alg, &key).unwrap());
                    let c = clocks(len, 1, |n| {
                        let nc = aead::Nonce::assume_unique_for_key(nonce(n));
                        let r = if open {
                            let t = aead::Tag::from([0u8; 16]);
                            k.open_in_place_separate_tag(
                                nc,
                                aead::Aad::from(&AAD),
                                t,
                                &mut data,
                                0..,
                            )
                            .is_ok()
                        } else {
                            k.seal_in_place_separate_tag(nc, aead::Aad::from(&AAD), &mut data)
                                .is_ok()
                        };
                        black_box(r);
                    });
                    row += &format!("  ring {c:7.1}");
                }
                {
                    use aws_lc_rs::aead;
                    let alg = if bits == 128 {
                        &aead::AES_128_GCM
                    } else {
                        &aead::AES_256_GCM
                    };
                    let k = aead::LessSafeKey::new(aead::UnboundKey::new(alg, &key).unwrap());
                    let c = clocks(len, 1, |n| {
                        let nc = aead::Nonce::assume_unique_for_key(nonce(n));
                        let r = if open {
                            k.open_in_place_separate_tag(
                                nc,
                                aead::Aad::from(&AAD),
                                &[0u8; 16],
                                &mut data,
                            )
                            .is_ok()
                        } else {
                            k.seal_in_place_separate_tag(nc, aead::Aad::from(&AAD), &mut data)
                                .is_ok()
                        };
                        black_box(r);
                    });
                    row += &format!("  aws-lc-rs {c:7.1}");
                }
                {
                    let k128 = aes_gcm::Aes128Gcm::new_from_slice(&key[..16]).unwrap();
                    let k256 = aes_gcm::Aes256Gcm::new_from_slice(&key).ok();
                    let c = clocks(len, 1, |n| {
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
                        black_box(r);
                    });
                    row += &format!("  aes-gcm {c:7.1}");
                }
                println!("{row}");
            }
        }
    }
}
