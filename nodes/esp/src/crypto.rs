//! AES-GCM behind a small trait, with four backends: vpg's own multi-buffer engine
//! (`vpg-crypto`, shipped: the fastest on this machine kind, docs/esp.md), `ring`, RustCrypto's
//! `aes-gcm` and, with the `aws-lc` cargo feature, `aws-lc-rs`.
//!
//! The trait is what the ESP nodes call: seal or open packets' bytes in place with a 12-byte
//! nonce (RFC 4106: 4-byte salt, 8-byte explicit IV), the ESP header as additional authenticated
//! data and a separate 16-byte tag, one packet at a time or a batch of them (the nodes hand a
//! frame's packets over eight at a time; the native engine interleaves them, the others take
//! them in turn). Keys are expanded once, when the control side builds an SA snapshot; sealing
//! and opening never allocate.

use std::fmt;
pub use vpg_crypto::Job;
use zeroize::Zeroize;

/// Bytes of the GCM authentication tag (the ESP ICV): RFC 4106 allows 8, 12 or 16; we use 16.
pub const ICV_LEN: usize = 16;
/// Bytes of salt that RFC 4106 appends to the key material.
pub const SALT_LEN: usize = 4;
/// Bytes of the explicit IV carried in each packet.
pub const IV_LEN: usize = 8;

/// The AES-GCM implementations vpg can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    /// vpg's native engine (`vpg-crypto`: AES-NI and PCLMULQDQ, several packets interleaved);
    /// on a CPU without them, [`Backend::FALLBACK`] runs instead.
    Native,
    /// `ring` (BoringSSL's assembly: AES-NI, VAES/VPCLMULQDQ where present).
    Ring,
    /// RustCrypto's `aes-gcm` (runtime-detected AES-NI and CLMUL).
    RustCrypto,
    /// `aws-lc-rs` (AWS-LC's assembly), built only with the `aws-lc` feature.
    AwsLc,
    /// The native engine (batched) for payloads under [`AUTO_SPLIT`] bytes, `aws-lc-rs` (or
    /// `ring` in a build without it) from there: each is the faster one at those sizes on the
    /// project's machine kind (docs/esp.md). Without AES-NI/PCLMULQDQ, `ring` below the split.
    Auto,
}

/// Where [`Backend::Auto`] switches from the native engine to `aws-lc-rs`.
pub const AUTO_SPLIT: usize = 320;

impl Backend {
    /// The backend the nodes use unless told otherwise: the fastest correct one measured on the
    /// project's machine kind (docs/esp.md has the figures).
    pub const DEFAULT: Backend = Backend::Auto;

    /// What runs for [`Backend::Native`] on a CPU without AES-NI/PCLMULQDQ (or not x86_64).
    pub const FALLBACK: Backend = Backend::Ring;

    /// What [`Backend::Auto`] uses from [`AUTO_SPLIT`] bytes.
    pub const LARGE: Backend = if cfg!(feature = "aws-lc") {
        Backend::AwsLc
    } else {
        Backend::Ring
    };

    /// What a cipher asked of this backend runs on this machine: itself, or for
    /// [`Backend::Native`] on a CPU without the instructions, [`Backend::FALLBACK`].
    pub fn effective(self) -> Backend {
        if self == Backend::Native && !vpg_crypto::is_supported() {
            Backend::FALLBACK
        } else {
            self
        }
    }

    /// What runs, in words, for `show esp summary`: the name, and for [`Backend::Auto`] which
    /// implementation takes which sizes on this machine.
    pub fn describe(self) -> String {
        match self.effective() {
            Backend::Auto => format!(
                "auto ({} below {AUTO_SPLIT} B, {} from {AUTO_SPLIT} B)",
                Backend::Native.effective(),
                Backend::LARGE
            ),
            b => b.name().into(),
        }
    }

    /// Backends compiled into this build.
    pub fn available() -> &'static [Backend] {
        if cfg!(feature = "aws-lc") {
            &[
                Backend::Native,
                Backend::Ring,
                Backend::RustCrypto,
                Backend::AwsLc,
                Backend::Auto,
            ]
        } else {
            &[
                Backend::Native,
                Backend::Ring,
                Backend::RustCrypto,
                Backend::Auto,
            ]
        }
    }

    /// The backend named `name` ([`Backend::name`]).
    pub fn from_name(name: &str) -> Option<Backend> {
        [
            Backend::Native,
            Backend::Ring,
            Backend::RustCrypto,
            Backend::AwsLc,
            Backend::Auto,
        ]
        .into_iter()
        .find(|b| b.name() == name)
    }

    /// Short name (`native`, `ring`, `aes-gcm`, `aws-lc-rs`, `auto`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Native => "native",
            Backend::Ring => "ring",
            Backend::RustCrypto => "aes-gcm",
            Backend::AwsLc => "aws-lc-rs",
            Backend::Auto => "auto",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a cipher could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// Key material is not 16+4 or 32+4 bytes.
    #[error("AES-GCM key material must be 20 bytes (AES-128 + salt) or 36 bytes (AES-256 + salt), not {0}")]
    BadKeyLength(usize),
    /// The backend is not compiled in.
    #[error("crypto backend {0} is not built in (cargo feature aws-lc)")]
    Unavailable(Backend),
    /// The backend refused the key.
    #[error("crypto backend {0} refused the key")]
    Refused(Backend),
}

/// One AES-GCM key, expanded for one backend.
pub trait GcmCipher: Send + Sync {
    /// Encrypts `data` in place and returns the tag.
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; ICV_LEN];
    /// Checks `tag` and decrypts `data` in place; false (data unspecified) when the tag is wrong.
    fn open(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; ICV_LEN]) -> bool;
    /// Which implementation this is.
    fn backend(&self) -> Backend;

    /// Seals each job (sets its tag; `ok` true). The native engine interleaves them; by
    /// default, one after the other.
    fn seal_batch(&self, jobs: &mut [Job<'_>]) {
        for j in jobs {
            j.tag = self.seal(&j.nonce, j.aad, j.data);
            j.ok = true;
        }
    }

    /// Opens each job (`ok`: the tag verified). As [`GcmCipher::seal_batch`].
    fn open_batch(&self, jobs: &mut [Job<'_>]) {
        for j in jobs {
            j.ok = self.open(&j.nonce, j.aad, j.data, &j.tag);
        }
    }
}

/// RFC 4106 key material: the AES key followed by the 4-byte salt. Never printed: `Debug` shows
/// the length and fingerprint, and the bytes are zeroed when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    bytes: Vec<u8>,
}

impl KeyMaterial {
    /// Checks the length (20 or 36 bytes).
    pub fn new(bytes: Vec<u8>) -> Result<Self, CryptoError> {
        match bytes.len() {
            20 | 36 => Ok(Self { bytes }),
            n => {
                let mut b = bytes;
                b.zeroize();
                Err(CryptoError::BadKeyLength(n))
            }
        }
    }

    /// Parses hex (an optional `0x` prefix, as `ip xfrm` takes it).
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        if !s.len().is_multiple_of(2) {
            return Err(CryptoError::BadKeyLength(s.len() / 2));
        }
        let mut out = Vec::with_capacity(s.len() / 2);
        for i in (0..s.len()).step_by(2) {
            match s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => out.push(b),
                None => {
                    out.zeroize();
                    return Err(CryptoError::BadKeyLength(0));
                }
            }
        }
        Self::new(out)
    }

    /// The AES key (16 or 32 bytes).
    pub fn key(&self) -> &[u8] {
        &self.bytes[..self.bytes.len() - SALT_LEN]
    }

    /// The salt.
    pub fn salt(&self) -> [u8; SALT_LEN] {
        let n = self.bytes.len();
        [
            self.bytes[n - 4],
            self.bytes[n - 3],
            self.bytes[n - 2],
            self.bytes[n - 1],
        ]
    }

    /// AES key size in bits (128 or 256).
    pub fn bits(&self) -> u16 {
        (self.key().len() * 8) as u16
    }

    /// A fingerprint that identifies the key without revealing it: the first 8 bytes of
    /// SHA-256 over a label and the key material, in hex. Two ends with the same key show the
    /// same fingerprint, which is what an operator compares.
    pub fn fingerprint(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"vpg esp key fingerprint v1\0");
        ctx.update(&self.bytes);
        let d = ctx.finish();
        d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Expands the key for `backend`.
    pub fn cipher(&self, backend: Backend) -> Result<Box<dyn GcmCipher>, CryptoError> {
        let key = self.key();
        match backend.effective() {
            Backend::Native => {
                let k = vpg_crypto::GcmKey::new(key).map_err(|_| CryptoError::Refused(backend))?;
                Ok(Box::new(NativeGcm(k)))
            }
            Backend::Ring => {
                let alg = if key.len() == 16 {
                    &ring::aead::AES_128_GCM
                } else {
                    &ring::aead::AES_256_GCM
                };
                let k = ring::aead::UnboundKey::new(alg, key)
                    .map_err(|_| CryptoError::Refused(backend))?;
                Ok(Box::new(RingGcm(ring::aead::LessSafeKey::new(k))))
            }
            Backend::RustCrypto => {
                use aes_gcm::KeyInit;
                if key.len() == 16 {
                    let c = aes_gcm::Aes128Gcm::new_from_slice(key)
                        .map_err(|_| CryptoError::Refused(backend))?;
                    Ok(Box::new(RustCryptoGcm(c)))
                } else {
                    let c = aes_gcm::Aes256Gcm::new_from_slice(key)
                        .map_err(|_| CryptoError::Refused(backend))?;
                    Ok(Box::new(RustCryptoGcm(c)))
                }
            }
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => {
                use aws_lc_rs::aead as a;
                let alg = if key.len() == 16 {
                    &a::AES_128_GCM
                } else {
                    &a::AES_256_GCM
                };
                let k = a::UnboundKey::new(alg, key).map_err(|_| CryptoError::Refused(backend))?;
                Ok(Box::new(AwsLcGcm(a::LessSafeKey::new(k))))
            }
            Backend::Auto => {
                let small = self.cipher(Backend::Native)?;
                let large = self.cipher(Backend::LARGE)?;
                Ok(Box::new(AutoGcm { small, large }))
            }
            #[cfg(not(feature = "aws-lc"))]
            Backend::AwsLc => Err(CryptoError::Unavailable(backend)),
        }
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyMaterial(aes-{} fingerprint {})",
            self.bits(),
            self.fingerprint()
        )
    }
}

struct NativeGcm(vpg_crypto::GcmKey);

impl GcmCipher for NativeGcm {
    #[inline]
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; ICV_LEN] {
        // Beyond GCM's limits (never a packet) the engine zeroes the data; a zero tag then
        // fails authentication at the far end (as RingGcm::seal).
        self.0.seal(nonce, aad, data).unwrap_or([0; ICV_LEN])
    }

    #[inline]
    fn open(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; ICV_LEN]) -> bool {
        self.0.open(nonce, aad, data, tag)
    }

    fn backend(&self) -> Backend {
        Backend::Native
    }

    #[inline]
    fn seal_batch(&self, jobs: &mut [Job<'_>]) {
        self.0.seal_batch(jobs);
    }

    #[inline]
    fn open_batch(&self, jobs: &mut [Job<'_>]) {
        self.0.open_batch(jobs);
    }
}

struct RingGcm(ring::aead::LessSafeKey);

impl GcmCipher for RingGcm {
    #[inline]
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; ICV_LEN] {
        let n = ring::aead::Nonce::assume_unique_for_key(*nonce);
        match self
            .0
            .seal_in_place_separate_tag(n, ring::aead::Aad::from(aad), data)
        {
            Ok(tag) => {
                let mut t = [0u8; ICV_LEN];
                t.copy_from_slice(tag.as_ref());
                t
            }
            // Only a message beyond GCM's 64 GiB limit fails; a packet never is. Should it
            // happen, a zero tag (over a garbled body) fails authentication at the far end
            // rather than sending anything readable.
            Err(_) => {
                data.fill(0);
                [0; ICV_LEN]
            }
        }
    }

    #[inline]
    fn open(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; ICV_LEN]) -> bool {
        let n = ring::aead::Nonce::assume_unique_for_key(*nonce);
        self.0
            .open_in_place_separate_tag(
                n,
                ring::aead::Aad::from(aad),
                ring::aead::Tag::from(*tag),
                data,
                0..,
            )
            .is_ok()
    }

    fn backend(&self) -> Backend {
        Backend::Ring
    }
}

struct RustCryptoGcm<C>(C);

impl<C: aes_gcm::AeadInPlace + Send + Sync> GcmCipher for RustCryptoGcm<C>
where
    C: aes_gcm::AeadCore<
        NonceSize = aes_gcm::aead::consts::U12,
        TagSize = aes_gcm::aead::consts::U16,
    >,
{
    #[inline]
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; ICV_LEN] {
        match self.0.encrypt_in_place_detached(nonce.into(), aad, data) {
            Ok(tag) => tag.into(),
            // See RingGcm::seal.
            Err(_) => {
                data.fill(0);
                [0; ICV_LEN]
            }
        }
    }

    #[inline]
    fn open(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; ICV_LEN]) -> bool {
        self.0
            .decrypt_in_place_detached(nonce.into(), aad, data, tag.into())
            .is_ok()
    }

    fn backend(&self) -> Backend {
        Backend::RustCrypto
    }
}

/// Two expansions of one key; the payload's size picks the implementation.
struct AutoGcm {
    small: Box<dyn GcmCipher>,
    large: Box<dyn GcmCipher>,
}

impl GcmCipher for AutoGcm {
    #[inline]
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; ICV_LEN] {
        if data.len() < AUTO_SPLIT {
            self.small.seal(nonce, aad, data)
        } else {
            self.large.seal(nonce, aad, data)
        }
    }

    #[inline]
    fn open(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; ICV_LEN]) -> bool {
        if data.len() < AUTO_SPLIT {
            self.small.open(nonce, aad, data, tag)
        } else {
            self.large.open(nonce, aad, data, tag)
        }
    }

    fn backend(&self) -> Backend {
        Backend::Auto
    }

    /// Runs of small packets go to the native engine's batch, large ones to `large` in turn.
    fn seal_batch(&self, jobs: &mut [Job<'_>]) {
        for_runs(jobs, |small, run| {
            if small {
                self.small.seal_batch(run)
            } else {
                self.large.seal_batch(run)
            }
        });
    }

    fn open_batch(&self, jobs: &mut [Job<'_>]) {
        for_runs(jobs, |small, run| {
            if small {
                self.small.open_batch(run)
            } else {
                self.large.open_batch(run)
            }
        });
    }
}

/// Calls `f` on each run of consecutive jobs on the same side of [`AUTO_SPLIT`] (a frame's
/// packets are mostly of one kind: usually one run).
#[inline]
fn for_runs(jobs: &mut [Job<'_>], mut f: impl FnMut(bool, &mut [Job<'_>])) {
    let mut rest = jobs;
    while let Some(first) = rest.first() {
        let small = first.data.len() < AUTO_SPLIT;
        let n = rest
            .iter()
            .position(|j| (j.data.len() < AUTO_SPLIT) != small)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at_mut(n);
        f(small, run);
        rest = tail;
    }
}

#[cfg(feature = "aws-lc")]
struct AwsLcGcm(aws_lc_rs::aead::LessSafeKey);

#[cfg(feature = "aws-lc")]
impl GcmCipher for AwsLcGcm {
    #[inline]
    fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; ICV_LEN] {
        use aws_lc_rs::aead as a;
        let n = a::Nonce::assume_unique_for_key(*nonce);
        match self
            .0
            .seal_in_place_separate_tag(n, a::Aad::from(aad), data)
        {
            Ok(tag) => {
                let mut t = [0u8; ICV_LEN];
                t.copy_from_slice(tag.as_ref());
                t
            }
            Err(_) => {
                data.fill(0);
                [0; ICV_LEN]
            }
        }
    }

    #[inline]
    fn open(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; ICV_LEN]) -> bool {
        use aws_lc_rs::aead as a;
        let n = a::Nonce::assume_unique_for_key(*nonce);
        self.0
            .open_in_place_separate_tag(n, a::Aad::from(aad), tag, data)
            .is_ok()
    }

    fn backend(&self) -> Backend {
        Backend::AwsLc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    /// The McGrew–Viega GCM specification's test cases 2 and 4 (AES-128) and 14 and 16
    /// (AES-256): key, 12-byte nonce, AAD, plaintext, ciphertext, tag.
    type Vector = (Vec<u8>, [u8; 12], Vec<u8>, Vec<u8>, Vec<u8>, [u8; 16]);

    fn spec_vectors() -> Vec<Vector> {
        let k4 = hex!("feffe9928665731c6d6a8f9467308308").to_vec();
        let p4 = hex!(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
        )
        .to_vec();
        let a4 = hex!("feedfacedeadbeeffeedfacedeadbeefabaddad2").to_vec();
        let k16 = hex!("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308").to_vec();
        vec![
            (
                vec![0; 16],
                [0; 12],
                vec![],
                vec![0; 16],
                hex!("0388dace60b6a392f328c2b971b2fe78").to_vec(),
                hex!("ab6e47d42cec13bdf53a67b21257bddf"),
            ),
            (
                k4.clone(),
                hex!("cafebabefacedbaddecaf888"),
                a4.clone(),
                p4.clone(),
                hex!(
                    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
                    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
                )
                .to_vec(),
                hex!("5bc94fbc3221a5db94fae95ae7121a47"),
            ),
            (
                vec![0; 32],
                [0; 12],
                vec![],
                vec![0; 16],
                hex!("cea7403d4d606b6e074ec5d3baf39d18").to_vec(),
                hex!("d0d1c8a799996bf0265b98b5d48ab919"),
            ),
            (
                k16,
                hex!("cafebabefacedbaddecaf888"),
                a4,
                p4,
                hex!(
                    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
                )
                .to_vec(),
                hex!("76fc6ece0f4e1768cddf8853bb2d551b"),
            ),
        ]
    }

    fn material(key: &[u8]) -> KeyMaterial {
        let mut m = key.to_vec();
        m.extend_from_slice(&[0; 4]);
        KeyMaterial::new(m).unwrap()
    }

    #[test]
    fn every_backend_matches_the_gcm_specification() {
        for &be in Backend::available() {
            for (i, (key, nonce, aad, pt, ct, tag)) in spec_vectors().into_iter().enumerate() {
                let c = material(&key).cipher(be).unwrap();
                assert_eq!(c.backend(), be.effective());
                let mut d = pt.clone();
                let t = c.seal(&nonce, &aad, &mut d);
                assert_eq!((d.as_slice(), t), (ct.as_slice(), tag), "{be} case {i}");
                assert!(c.open(&nonce, &aad, &mut d, &tag), "{be} case {i}");
                assert_eq!(d, pt);
                let mut bad = tag;
                bad[15] ^= 1;
                assert!(
                    !c.open(&nonce, &aad, &mut ct.clone(), &bad),
                    "{be} case {i}"
                );
            }
        }
    }

    #[test]
    fn backends_agree_at_many_sizes() {
        let m = KeyMaterial::from_hex(
            "0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20a1a2a3a4",
        )
        .unwrap();
        let ciphers: Vec<_> = Backend::available()
            .iter()
            .map(|&b| m.cipher(b).unwrap())
            .collect();
        for len in (0..300).chain([511, 512, 513, 1399, 1400, 1401, 2000]) {
            let pt: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let nonce = [len as u8; 12];
            let mut outs = Vec::new();
            for c in &ciphers {
                let mut d = pt.clone();
                let t = c.seal(&nonce, b"aad!", &mut d);
                outs.push((d.clone(), t));
                assert!(c.open(&nonce, b"aad!", &mut d, &t));
                assert_eq!(d, pt, "{} len {len}", c.backend());
            }
            assert!(outs.windows(2).all(|w| w[0] == w[1]), "len {len}");
        }
    }

    #[test]
    fn key_material_is_checked_and_never_shown() {
        assert_eq!(
            KeyMaterial::new(vec![0; 16]),
            Err(CryptoError::BadKeyLength(16))
        );
        assert_eq!(
            KeyMaterial::from_hex("abc"),
            Err(CryptoError::BadKeyLength(1))
        );
        assert!(KeyMaterial::from_hex("zz".repeat(20).as_str()).is_err());
        let m = KeyMaterial::from_hex(&"ab".repeat(20)).unwrap();
        assert_eq!((m.bits(), m.salt()), (128, [0xab; 4]));
        let shown = format!("{m:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert!(shown.contains(&m.fingerprint()));
        assert_eq!(m.fingerprint().len(), 16);
        let other = KeyMaterial::from_hex(&"ab".repeat(36)).unwrap();
        assert_ne!(m.fingerprint(), other.fingerprint());
        assert_eq!(other.bits(), 256);
    }
}
