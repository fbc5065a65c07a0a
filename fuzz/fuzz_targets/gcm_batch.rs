//! The native AES-GCM engine against RustCrypto's `aes-gcm`: the input cut into a key (AES-128 or
//! -256), then messages (nonce, AAD, plaintext) sealed as one batch; each must equal the
//! reference byte for byte, open back as a batch, and fail to open once any bit of it changes.
#![no_main]
use aes_gcm::aead::AeadInPlace;
use aes_gcm::KeyInit;
use libfuzzer_sys::fuzz_target;
use vpg_crypto::{GcmKey, Job};

fn reference(key: &[u8], nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
    let t = if key.len() == 16 {
        aes_gcm::Aes128Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_in_place_detached(nonce.into(), aad, data)
    } else {
        aes_gcm::Aes256Gcm::new_from_slice(key)
            .unwrap()
            .encrypt_in_place_detached(nonce.into(), aad, data)
    };
    t.unwrap().into()
}

fuzz_target!(|input: &[u8]| {
    if !vpg_crypto::is_supported() || input.len() < 33 {
        return;
    }
    let key_len = if input[0] & 1 == 0 { 16 } else { 32 };
    let key = &input[1..1 + key_len];
    let k = GcmKey::new(key).unwrap();
    // Messages: 12 bytes of nonce, one byte of AAD length, two of data length, then the bytes.
    let mut rest = &input[1 + key_len..];
    let mut msgs: Vec<([u8; 12], Vec<u8>, Vec<u8>)> = Vec::new();
    while rest.len() >= 15 && msgs.len() < 20 {
        let nonce: [u8; 12] = rest[..12].try_into().unwrap();
        let alen = (rest[12] % 40) as usize;
        let dlen = u16::from_le_bytes([rest[13], rest[14]]) as usize % 2048;
        rest = &rest[15..];
        let aad: Vec<u8> = rest.iter().copied().cycle().take(alen).collect();
        let data: Vec<u8> = rest.iter().rev().copied().cycle().take(dlen).collect();
        msgs.push((nonce, aad, data));
    }
    let mut bufs: Vec<Vec<u8>> = msgs.iter().map(|m| m.2.clone()).collect();
    let mut jobs: Vec<Job<'_>> = msgs
        .iter()
        .zip(bufs.iter_mut())
        .map(|(m, b)| Job::new(m.0, &m.1, b))
        .collect();
    k.seal_batch(&mut jobs);
    let tags: Vec<[u8; 16]> = jobs.iter().map(|j| j.tag).collect();
    assert!(jobs.iter().all(|j| j.ok));
    drop(jobs);
    for (i, m) in msgs.iter().enumerate() {
        let mut want = m.2.clone();
        assert_eq!(reference(key, &m.0, &m.1, &mut want), tags[i]);
        assert_eq!(bufs[i], want);
    }
    // Flip one bit of one message (ciphertext or tag), chosen by the input's last byte.
    let flip = input[input.len() - 1] as usize;
    let mut tags2 = tags.clone();
    if let Some(t) = msgs.len().checked_sub(1).map(|n| flip % (n + 1)) {
        if bufs[t].is_empty() {
            tags2[t][flip % 16] ^= 1 << (flip % 8);
        } else {
            let n = bufs[t].len();
            bufs[t][flip % n] ^= 1 << (flip % 8);
        }
    }
    let mut jobs: Vec<Job<'_>> = msgs
        .iter()
        .zip(bufs.iter_mut())
        .zip(&tags2)
        .map(|((m, b), t)| Job {
            tag: *t,
            ..Job::new(m.0, &m.1, b)
        })
        .collect();
    k.open_batch(&mut jobs);
    for (i, j) in jobs.iter().enumerate() {
        assert_eq!(j.ok, i != flip % msgs.len().max(1), "message {i}");
    }
    drop(jobs);
    for (i, m) in msgs.iter().enumerate() {
        if i != flip % msgs.len().max(1) {
            assert_eq!(bufs[i], m.2);
        }
    }
});
