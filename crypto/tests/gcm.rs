//! The native engine against published vectors, against `aes-gcm`, `ring` and `aws-lc-rs`
//! (differential property tests over random keys, nonces, AAD, lengths and batches), and under
//! tampering. On a CPU without AES-NI/PCLMULQDQ the tests say so and pass vacuously only after
//! checking that the engine refuses keys there.
#![allow(missing_docs)]

use aes_gcm::aead::AeadInPlace;
use aes_gcm::KeyInit;
use hex_literal::hex;
use proptest::prelude::*;
use vpg_crypto::{GcmKey, Job, KeyError};

/// False (after checking the refusal) where the engine cannot run.
fn native() -> bool {
    if vpg_crypto::is_supported() {
        return true;
    }
    assert_eq!(GcmKey::new(&[0; 16]).unwrap_err(), KeyError::Unsupported);
    eprintln!("skipping: this CPU lacks AES-NI/PCLMULQDQ/SSSE3/SSE4.1");
    false
}

/// The reference: RustCrypto's `aes-gcm`.
fn reference_seal(key: &[u8], nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
    let tag = if key.len() == 16 {
        aes_gcm::Aes128Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_in_place_detached(nonce.into(), aad, data)
    } else {
        aes_gcm::Aes256Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_in_place_detached(nonce.into(), aad, data)
    };
    tag.unwrap().into()
}

/// The second reference: `ring`.
fn ring_seal(key: &[u8], nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
    use ring::aead;
    let alg = if key.len() == 16 {
        &aead::AES_128_GCM
    } else {
        &aead::AES_256_GCM
    };
    let k = aead::LessSafeKey::new(aead::UnboundKey::new(alg, key).unwrap());
    let t = k
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(*nonce),
            aead::Aad::from(aad),
            data,
        )
        .unwrap();
    t.as_ref().try_into().unwrap()
}

/// The third: `aws-lc-rs`.
fn aws_lc_seal(key: &[u8], nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
    use aws_lc_rs::aead;
    let alg = if key.len() == 16 {
        &aead::AES_128_GCM
    } else {
        &aead::AES_256_GCM
    };
    let k = aead::LessSafeKey::new(aead::UnboundKey::new(alg, key).unwrap());
    let t = k
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(*nonce),
            aead::Aad::from(aad),
            data,
        )
        .unwrap();
    t.as_ref().try_into().unwrap()
}

/// McGrew–Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 1–4 (AES-128) and
/// 13–16 (AES-256), the ones with 96-bit IVs: key, IV, AAD, plaintext, ciphertext, tag.
/// Key, nonce, AAD, plaintext, ciphertext, tag.
type Vector = (Vec<u8>, [u8; 12], Vec<u8>, Vec<u8>, Vec<u8>, [u8; 16]);
/// The same, borrowed.
type VectorRef<'a> = (&'a [u8], [u8; 12], &'a [u8], &'a [u8], &'a [u8], [u8; 16]);

fn spec_vectors() -> Vec<Vector> {
    let k = hex!("feffe9928665731c6d6a8f9467308308");
    let k256 = [k, k].concat();
    let iv = hex!("cafebabefacedbaddecaf888");
    let p = hex!(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
    );
    let a = hex!("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    let c3 = hex!(
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"
    );
    let c15 = hex!(
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
    );
    vec![
        // 1
        (
            vec![0; 16],
            [0; 12],
            vec![],
            vec![],
            vec![],
            hex!("58e2fccefa7e3061367f1d57a4e7455a"),
        ),
        // 2
        (
            vec![0; 16],
            [0; 12],
            vec![],
            vec![0; 16],
            hex!("0388dace60b6a392f328c2b971b2fe78").to_vec(),
            hex!("ab6e47d42cec13bdf53a67b21257bddf"),
        ),
        // 3
        (
            k.to_vec(),
            iv,
            vec![],
            p.to_vec(),
            c3.to_vec(),
            hex!("4d5c2af327cd64a62cf35abd2ba6fab4"),
        ),
        // 4
        (
            k.to_vec(),
            iv,
            a.to_vec(),
            p[..60].to_vec(),
            c3[..60].to_vec(),
            hex!("5bc94fbc3221a5db94fae95ae7121a47"),
        ),
        // 13
        (
            vec![0; 32],
            [0; 12],
            vec![],
            vec![],
            vec![],
            hex!("530f8afbc74536b9a963b4f1c4cb738b"),
        ),
        // 14
        (
            vec![0; 32],
            [0; 12],
            vec![],
            vec![0; 16],
            hex!("cea7403d4d606b6e074ec5d3baf39d18").to_vec(),
            hex!("d0d1c8a799996bf0265b98b5d48ab919"),
        ),
        // 15
        (
            k256.clone(),
            iv,
            vec![],
            p.to_vec(),
            c15.to_vec(),
            hex!("b094dac5d93471bdec1a502270e3cc6c"),
        ),
        // 16
        (
            k256,
            iv,
            a.to_vec(),
            p[..60].to_vec(),
            c15[..60].to_vec(),
            hex!("76fc6ece0f4e1768cddf8853bb2d551b"),
        ),
    ]
}

#[test]
fn gcm_specification_test_cases() {
    if !native() {
        return;
    }
    for (i, (key, iv, aad, pt, ct, tag)) in spec_vectors().into_iter().enumerate() {
        let k = GcmKey::new(&key).unwrap();
        assert_eq!(usize::from(k.bits()), key.len() * 8);
        let mut d = pt.clone();
        assert_eq!(k.seal(&iv, &aad, &mut d), Some(tag), "case {i}");
        assert_eq!(d, ct, "case {i}");
        assert!(k.open(&iv, &aad, &mut d, &tag), "case {i}");
        assert_eq!(d, pt, "case {i}");
    }
}

/// draft-mcgrew-gcm-test-01 (the ESP test cases of RFC 4106's authors), §4 test cases 1 and 3
/// at the GCM level: nonce = salt ‖ IV, AAD = SPI ‖ sequence number (64-bit in case 1).
#[test]
fn esp_draft_test_cases() {
    if !native() {
        return;
    }
    let cases: [VectorRef<'_>; 2] = [
        (
            &hex!("4c80cdefbb5d10da906ac73c3613a634"),
            hex!("2e443b684956ed7e3b244cfe"),
            &hex!("000043218765432100000000"),
            &hex!(
                "45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000"
                "00000000045f736970045f756470037369700963796265726369747902646b00"
                "0021000101020201"
            ),
            &hex!(
                "fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34"
                "cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce"
                "61bc17d768fd9732"
            ),
            hex!("459018148f6cbe722fd04796562dfdb4"),
        ),
        (
            &hex!("abbccddef00112233445566778899aababbccddef00112233445566778899aab"),
            hex!("112233440102030405060708"),
            &hex!("4a2cbfe300000002"),
            &hex!(
                "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000"
                "7002400020bf0000020405b40101040201020201"
            ),
            &hex!(
                "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763"
                "748a637985771d347f0545659f14e99def842d8e"
            ),
            hex!("b335f4eecfdbf831824b4c4915956c96"),
        ),
    ];
    for (i, (key, nonce, aad, pt, ct, tag)) in cases.into_iter().enumerate() {
        let k = GcmKey::new(key).unwrap();
        let mut d = pt.to_vec();
        assert_eq!(k.seal(&nonce, aad, &mut d), Some(tag), "case {i}");
        assert_eq!(d, ct, "case {i}");
    }
}

#[test]
fn bad_keys_are_refused() {
    for n in [0, 15, 17, 24, 31, 33] {
        assert_eq!(
            GcmKey::new(&vec![0; n]).unwrap_err(),
            KeyError::BadLength(n)
        );
    }
}

#[test]
fn every_length_matches_the_references() {
    if !native() {
        return;
    }
    for key in [vec![0x42u8; 16], (0..32).collect::<Vec<u8>>()] {
        let k = GcmKey::new(&key).unwrap();
        for len in 0..=300usize {
            for aad_len in [0usize, 8, 12, 16, 17, 40] {
                let pt: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
                let aad: Vec<u8> = (0..aad_len).map(|i| i as u8 ^ 0xa5).collect();
                let nonce = [len as u8 ^ aad_len as u8; 12];
                let mut want = pt.clone();
                let tag = reference_seal(&key, &nonce, &aad, &mut want);
                let mut got = pt.clone();
                assert_eq!(
                    k.seal(&nonce, &aad, &mut got),
                    Some(tag),
                    "len {len} aad {aad_len}"
                );
                assert_eq!(got, want, "len {len} aad {aad_len}");
                assert!(k.open(&nonce, &aad, &mut got, &tag));
                assert_eq!(got, pt);
            }
        }
    }
}

/// One random message: key, nonce, AAD, plaintext.
fn message() -> impl Strategy<Value = (Vec<u8>, [u8; 12], Vec<u8>, Vec<u8>)> {
    (
        prop_oneof![
            prop::collection::vec(any::<u8>(), 16),
            prop::collection::vec(any::<u8>(), 32)
        ],
        any::<[u8; 12]>(),
        prop::collection::vec(any::<u8>(), 0..48),
        prop::collection::vec(any::<u8>(), 0..2000),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Seal agrees byte for byte with aes-gcm, ring and aws-lc-rs; open inverts it.
    #[test]
    fn single_messages_match_three_implementations((key, nonce, aad, pt) in message()) {
        prop_assume!(native());
        let k = GcmKey::new(&key).unwrap();
        let mut got = pt.clone();
        let tag = k.seal(&nonce, &aad, &mut got).unwrap();
        let mut want = pt.clone();
        prop_assert_eq!(reference_seal(&key, &nonce, &aad, &mut want), tag);
        prop_assert_eq!(&got, &want);
        let mut r = pt.clone();
        prop_assert_eq!(ring_seal(&key, &nonce, &aad, &mut r), tag);
        prop_assert_eq!(&r, &want);
        let mut a = pt.clone();
        prop_assert_eq!(aws_lc_seal(&key, &nonce, &aad, &mut a), tag);
        prop_assert_eq!(&a, &want);
        prop_assert!(k.open(&nonce, &aad, &mut got, &tag));
        prop_assert_eq!(got, pt);
    }

    /// A batch of mixed lengths (more than one group of eight) gives each job what a single
    /// reference seal gives, and opens back.
    #[test]
    fn batches_of_mixed_lengths_match_the_reference(
        key in prop_oneof![
            prop::collection::vec(any::<u8>(), 16),
            prop::collection::vec(any::<u8>(), 32)
        ],
        msgs in prop::collection::vec(
            (any::<[u8; 12]>(), prop::collection::vec(any::<u8>(), 0..20), 0usize..1500),
            0..20,
        ),
    ) {
        prop_assume!(native());
        let k = GcmKey::new(&key).unwrap();
        let pts: Vec<Vec<u8>> = msgs
            .iter()
            .enumerate()
            .map(|(i, m)| (0..m.2).map(|j| (i * 7 + j) as u8).collect())
            .collect();
        let mut bufs = pts.clone();
        let mut jobs: Vec<Job<'_>> = msgs
            .iter()
            .zip(bufs.iter_mut())
            .map(|(m, b)| Job::new(m.0, &m.1, b))
            .collect();
        k.seal_batch(&mut jobs);
        let tags: Vec<[u8; 16]> = jobs.iter().map(|j| j.tag).collect();
        prop_assert!(jobs.iter().all(|j| j.ok));
        drop(jobs);
        for (i, m) in msgs.iter().enumerate() {
            let mut want = pts[i].clone();
            prop_assert_eq!(reference_seal(&key, &m.0, &m.1, &mut want), tags[i], "job {}", i);
            prop_assert_eq!(&bufs[i], &want, "job {}", i);
        }
        let mut jobs: Vec<Job<'_>> = msgs
            .iter()
            .zip(bufs.iter_mut())
            .zip(&tags)
            .map(|((m, b), t)| Job { tag: *t, ..Job::new(m.0, &m.1, b) })
            .collect();
        k.open_batch(&mut jobs);
        prop_assert!(jobs.iter().all(|j| j.ok));
        drop(jobs);
        prop_assert_eq!(bufs, pts);
    }

    /// Any one flipped bit, in the ciphertext, the tag or the AAD, fails that job alone; the
    /// rest of its batch still opens.
    #[test]
    fn a_flipped_bit_fails_authentication(
        (key, nonce, aad, pt) in message(),
        place in 0usize..3,
        bit in any::<prop::sample::Index>(),
        others in 0usize..9,
    ) {
        prop_assume!(native());
        let k = GcmKey::new(&key).unwrap();
        let mut ct = pt.clone();
        let tag = k.seal(&nonce, &aad, &mut ct).unwrap();
        let (mut ct, mut aad, mut tag) = (ct, aad, tag);
        let target: &mut [u8] = match place {
            0 if !ct.is_empty() => &mut ct,
            1 if !aad.is_empty() => &mut aad,
            _ => &mut tag,
        };
        let b = bit.index(target.len() * 8);
        target[b / 8] ^= 1 << (b % 8);
        // The tampered job among `others` good ones.
        let mut good: Vec<(Vec<u8>, [u8; 16])> = (0..others)
            .map(|i| {
                let mut d = vec![i as u8; 10 + i * 30];
                let t = k.seal(&[i as u8; 12], b"aad", &mut d).unwrap();
                (d, t)
            })
            .collect();
        let pos = others / 2;
        let mut jobs: Vec<Job<'_>> = Vec::new();
        let mut bad = Some(Job { tag, ..Job::new(nonce, &aad, &mut ct) });
        for (i, (d, t)) in good.iter_mut().enumerate() {
            if i == pos {
                jobs.extend(bad.take());
            }
            jobs.push(Job { tag: *t, ..Job::new([i as u8; 12], b"aad", d) });
        }
        jobs.extend(bad.take());
        k.open_batch(&mut jobs);
        for (i, j) in jobs.iter().enumerate() {
            prop_assert_eq!(j.ok, i != pos, "job {}", i);
        }
    }
}

#[test]
fn empty_batches_and_empty_jobs() {
    if !native() {
        return;
    }
    let k = GcmKey::new(&[9; 32]).unwrap();
    k.seal_batch(&mut []);
    k.open_batch(&mut []);
    let mut jobs: [Job<'_>; 3] = Default::default();
    k.seal_batch(&mut jobs);
    let mut want = [];
    let t = reference_seal(&[9; 32], &[0; 12], &[], &mut want);
    assert!(jobs.iter().all(|j| j.ok && j.tag == t));
}

/// Groups whose packets all have the same number of blocks (the row-wise path), with tails of
/// every length inside that block count, in batches of one to nine, match the reference.
#[test]
fn batches_of_equal_block_counts_match_the_reference() {
    if !native() {
        return;
    }
    for key in [vec![0x11u8; 16], vec![0x22u8; 32]] {
        let k = GcmKey::new(&key).unwrap();
        for nb in 0..9usize {
            for n in 1..=9usize {
                let lens: Vec<usize> = (0..n)
                    .map(|i| {
                        if nb == 0 {
                            0
                        } else {
                            (nb - 1) * 16 + 1 + (i * 5) % 16
                        }
                    })
                    .collect();
                let pts: Vec<Vec<u8>> = lens
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| (0..l).map(|b| (b * 13 + i) as u8).collect())
                    .collect();
                let aads: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 8 + i % 5]).collect();
                let mut bufs = pts.clone();
                let mut jobs: Vec<Job<'_>> = bufs
                    .iter_mut()
                    .enumerate()
                    .map(|(i, b)| Job::new([i as u8 ^ nb as u8; 12], &aads[i], b))
                    .collect();
                k.seal_batch(&mut jobs);
                let tags: Vec<[u8; 16]> = jobs.iter().map(|j| j.tag).collect();
                drop(jobs);
                for i in 0..n {
                    let mut want = pts[i].clone();
                    let t = reference_seal(&key, &[i as u8 ^ nb as u8; 12], &aads[i], &mut want);
                    assert_eq!((&bufs[i], tags[i]), (&want, t), "nb {nb} n {n} job {i}");
                }
                let mut jobs: Vec<Job<'_>> = bufs
                    .iter_mut()
                    .enumerate()
                    .map(|(i, b)| Job {
                        tag: tags[i],
                        ..Job::new([i as u8 ^ nb as u8; 12], &aads[i], b)
                    })
                    .collect();
                k.open_batch(&mut jobs);
                assert!(jobs.iter().all(|j| j.ok), "nb {nb} n {n}");
                drop(jobs);
                assert_eq!(bufs, pts);
            }
        }
    }
}
