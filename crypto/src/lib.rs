//! vpg's native AES-GCM (NIST SP 800-38D) for the packet path: AES-128 and AES-256, 12-byte
//! nonces, 16-byte tags, in place, never allocating, with a **batch** interface that seals or
//! opens several packets together.
//!
//! Why a native engine next to `ring` and `aws-lc-rs`: a small packet's seal is a handful of
//! AES blocks whose rounds depend on each other, so one packet at a time leaves the AES units
//! idle most of the time, and each call of a general-purpose library pays its own setup. Here
//! the key schedule and the GHASH key's powers are computed once per key ([`GcmKey::new`],
//! control side), and [`GcmKey::seal_batch`] interleaves the AES blocks of up to eight packets
//! (VPP's native crypto engine works the same way on a frame's operations). Large packets run
//! eight blocks of their own at a time and GHASH with one reduction per eight blocks.
//!
//! The engine needs AES-NI, PCLMULQDQ, SSSE3 and SSE4.1, detected at run time: on a CPU
//! without them, or another architecture, [`GcmKey::new`] answers [`KeyError::Unsupported`]
//! and callers use another implementation ([`is_supported`] says which applies).
//!
//! ```
//! use vpg_crypto::{GcmKey, Job};
//! # if !vpg_crypto::is_supported() { return; }
//! let key = GcmKey::new(&[7u8; 16]).unwrap();
//! let (mut a, mut b) = (*b"first packet", *b"second");
//! let mut jobs = [
//!     Job::new([1; 12], b"hdr1", &mut a),
//!     Job::new([2; 12], b"hdr2", &mut b),
//! ];
//! key.seal_batch(&mut jobs);
//! let tags = [jobs[0].tag, jobs[1].tag];
//! for (j, t) in jobs.iter_mut().zip(tags) {
//!     j.tag = t;
//! }
//! key.open_batch(&mut jobs);
//! assert!(jobs.iter().all(|j| j.ok));
//! assert_eq!(&a, b"first packet");
//! ```
//!
//! `unsafe` lives in the x86_64 module alone, for `std::arch` intrinsics.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(target_arch = "x86_64")]
mod x86;

/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes of the nonce.
pub const NONCE_LEN: usize = 12;

/// Why a key could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// AES keys are 16 or 32 bytes.
    #[error("AES-GCM keys are 16 or 32 bytes, not {0}")]
    BadLength(usize),
    /// This CPU (or architecture) lacks AES-NI, PCLMULQDQ, SSSE3 or SSE4.1.
    #[error("the native AES-GCM engine needs x86_64 with AES-NI, PCLMULQDQ, SSSE3 and SSE4.1")]
    Unsupported,
}

/// Whether the native engine runs on this CPU.
pub fn is_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86::supported()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One packet's seal or open: the caller fills nonce, AAD, data and (to open) the tag; the
/// batch call encrypts or decrypts `data` in place and sets `tag` (seal) and `ok`.
#[derive(Debug)]
pub struct Job<'a> {
    /// The 12-byte nonce (RFC 4106: salt ‖ explicit IV). Never reuse one with a key.
    pub nonce: [u8; NONCE_LEN],
    /// Additional authenticated data.
    pub aad: &'a [u8],
    /// Plaintext to seal, or ciphertext to open, in place.
    pub data: &'a mut [u8],
    /// Seal: the tag computed. Open: the tag to check.
    pub tag: [u8; TAG_LEN],
    /// Seal: true, or false when `data` or `aad` exceed GCM's limits (then `data` is zeroed and
    /// the tag is zero). Open: whether the tag verified; when false, `data` is unspecified
    /// and must not be used.
    pub ok: bool,
}

impl<'a> Job<'a> {
    /// A job with a zero tag (set `tag` before opening).
    pub fn new(nonce: [u8; NONCE_LEN], aad: &'a [u8], data: &'a mut [u8]) -> Self {
        Job {
            nonce,
            aad,
            data,
            tag: [0; TAG_LEN],
            ok: false,
        }
    }
}

impl Default for Job<'_> {
    /// An empty job (no data, no AAD): the filler of fixed-size job arrays.
    fn default() -> Self {
        Job::new([0; NONCE_LEN], &[], &mut [])
    }
}

/// An expanded AES-GCM key: round keys and GHASH powers, computed once. Cheap to share
/// (`Sync`); cleared when dropped.
#[derive(Clone)]
pub struct GcmKey {
    #[cfg(target_arch = "x86_64")]
    k: x86::Key,
}

impl std::fmt::Debug for GcmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GcmKey(aes-{}-gcm)", self.bits())
    }
}

impl GcmKey {
    /// Expands a 16-byte (AES-128) or 32-byte (AES-256) key.
    pub fn new(key: &[u8]) -> Result<Self, KeyError> {
        if key.len() != 16 && key.len() != 32 {
            return Err(KeyError::BadLength(key.len()));
        }
        #[cfg(target_arch = "x86_64")]
        {
            x86::Key::new(key)
                .map(|k| GcmKey { k })
                .ok_or(KeyError::Unsupported)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Err(KeyError::Unsupported)
        }
    }

    /// 128 or 256.
    pub fn bits(&self) -> u16 {
        #[cfg(target_arch = "x86_64")]
        {
            self.k.bits()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            0
        }
    }

    /// Seals every job: encrypts its data in place, sets its tag and `ok`. Jobs are taken eight
    /// at a time, their AES blocks interleaved.
    pub fn seal_batch(&self, jobs: &mut [Job<'_>]) {
        #[cfg(target_arch = "x86_64")]
        self.k.seal_batch(jobs);
        #[cfg(not(target_arch = "x86_64"))]
        let _ = jobs;
    }

    /// Opens every job: checks its tag and decrypts its data in place; `ok` says whether the
    /// tag verified.
    pub fn open_batch(&self, jobs: &mut [Job<'_>]) {
        #[cfg(target_arch = "x86_64")]
        self.k.open_batch(jobs);
        #[cfg(not(target_arch = "x86_64"))]
        let _ = jobs;
    }

    /// Seals one message in place; `None` (data zeroed) beyond GCM's length limits.
    pub fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], data: &mut [u8]) -> Option<[u8; 16]> {
        let mut j = [Job::new(*nonce, aad, data)];
        self.seal_batch(&mut j);
        j[0].ok.then_some(j[0].tag)
    }

    /// Checks `tag` and decrypts in place; false (data unspecified) when it does not verify.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        data: &mut [u8],
        tag: &[u8; 16],
    ) -> bool {
        let mut j = [Job::new(*nonce, aad, data)];
        j[0].tag = *tag;
        self.open_batch(&mut j);
        j[0].ok
    }
}
