//! ESP framing with AES-GCM (RFC 4303 §2, RFC 4106 §3–5): the header, the explicit IV, the
//! trailer (padding, pad length, next header), the ICV, and the nonce and AAD built from them.
//! Pure functions over byte slices, so the known-answer tests run them on published packets;
//! the nodes call them on buffers.

use crate::crypto::{GcmCipher, Job, ICV_LEN, IV_LEN, SALT_LEN};

/// ESP header: SPI and sequence number.
pub const ESP_HDR_LEN: usize = 8;
/// What ESP puts in front of the protected payload: the header and the explicit IV.
pub const ESP_FRONT: usize = ESP_HDR_LEN + IV_LEN;
/// IP protocol number of ESP.
pub const IPPROTO_ESP: u8 = 50;
/// Next header: IPv4 (tunnel mode).
pub const NEXT_IPV4: u8 = 4;
/// Next header: a dummy packet (RFC 4303 §2.6: traffic flow confidentiality), to be discarded.
pub const NEXT_DUMMY: u8 = 59;
/// Bytes tunnel mode adds in front of the inner packet: outer IPv4, ESP header and IV.
pub const TUNNEL_FRONT: usize = 20 + ESP_FRONT;
/// The most bytes ESP adds behind a payload: 3 of padding, pad length, next header, ICV.
pub const MAX_TAIL: usize = 3 + 2 + ICV_LEN;

//= https://www.rfc-editor.org/rfc/rfc4303#section-2.4
//# the Padding field is used to ensure that the Pad Length and
//# Next Header fields are right aligned within a 4-byte word

/// Padding for a payload of `len` bytes: the encrypted part (payload, padding, pad length, next
/// header) is a multiple of 4 (GCM is a stream mode and needs no more, RFC 4106 §3).
#[inline(always)]
pub fn pad_len(len: usize) -> usize {
    (4 - (len + 2) % 4) % 4
}

/// Bytes behind a payload of `len` bytes: padding, the two trailer bytes and the ICV.
#[inline(always)]
pub fn tail_len(len: usize) -> usize {
    pad_len(len) + 2 + ICV_LEN
}

//= https://www.rfc-editor.org/rfc/rfc4303#section-2.4
//# If Padding bytes are needed but the encryption algorithm does not
//# specify the padding contents, then the following default processing
//# MUST be used.  The Padding bytes are initialized with a series of
//# (unsigned, 1-byte) integer values.  The first padding byte appended
//# to the plaintext is numbered 1, with subsequent padding bytes making
//# up a monotonically increasing sequence: 1, 2, 3, ....

/// Writes padding, pad length and next header into `t` (`pad_len + 2` bytes).
#[inline(always)]
pub fn write_trailer(t: &mut [u8], pad: usize, next_header: u8) {
    for (i, b) in t[..pad].iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    t[pad] = pad as u8;
    t[pad + 1] = next_header;
}

//= https://www.rfc-editor.org/rfc/rfc4106#section-4
//# The nonce is the concatenation of the salt and the IV
//# [...]
//#      +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//#      |                             Salt                              |
//#      +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//#      |                     Initialization Vector                     |

/// The GCM nonce: salt, then the packet's explicit IV.
#[inline(always)]
pub fn nonce(salt: &[u8; SALT_LEN], iv: &[u8]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(salt);
    n[4..].copy_from_slice(&iv[..IV_LEN]);
    n
}

//= https://www.rfc-editor.org/rfc/rfc4106#section-5
//# Two formats of the AAD are defined: one for 32-bit sequence numbers,
//# and one for 64-bit extended sequence numbers.

/// The AAD: SPI and sequence number (32-bit), or SPI and both halves of the extended sequence
/// number (12 bytes). Returns the buffer and the length to use.
#[inline(always)]
pub fn aad(spi: u32, seq: u64, esn: bool) -> ([u8; 12], usize) {
    let mut a = [0u8; 12];
    a[..4].copy_from_slice(&spi.to_be_bytes());
    if esn {
        a[4..12].copy_from_slice(&seq.to_be_bytes());
        (a, 12)
    } else {
        a[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        (a, 8)
    }
}

/// What one outbound SA needs to seal.
#[derive(Clone, Copy)]
pub struct SealParams<'a> {
    /// The expanded key.
    pub cipher: &'a dyn GcmCipher,
    /// RFC 4106 salt.
    pub salt: [u8; SALT_LEN],
    /// The SPI.
    pub spi: u32,
    /// Extended sequence numbers.
    pub esn: bool,
}

//= https://www.rfc-editor.org/rfc/rfc4106#section-3.1
//# The IV MUST be chosen by the encryptor in a manner that ensures that
//# the same IV value is used only once for a given key.

/// Seals an ESP packet laid out in `p`: [`ESP_FRONT`] bytes for the header and IV, `len` bytes
/// of payload, then room for [`tail_len`]`(len)`. Writes the header (the IV is the 64-bit
/// sequence number, unique per SA since sequence numbers never repeat), the trailer, encrypts
/// and appends the ICV. Returns the ESP packet's length.
///
/// # Panics
/// If `p` is shorter than `ESP_FRONT + len + tail_len(len)` (the nodes check room first).
#[inline]
pub fn seal(sa: &SealParams<'_>, seq: u64, p: &mut [u8], len: usize, next_header: u8) -> usize {
    seal_with_iv(sa, seq, seq.to_be_bytes(), p, len, next_header)
}

/// What the cipher needs for one packet once its framing is written.
struct Framed {
    nonce: [u8; 12],
    aad: [u8; 12],
    aad_len: usize,
    ct_len: usize,
    total: usize,
}

/// Writes the header, IV and trailer of the packet laid out in `p` (see [`seal`]).
#[inline(always)]
fn frame(
    sa: &SealParams<'_>,
    seq: u64,
    iv: [u8; IV_LEN],
    p: &mut [u8],
    len: usize,
    next_header: u8,
) -> Framed {
    let pad = pad_len(len);
    let ct_len = len + pad + 2;
    let total = ESP_FRONT + ct_len + ICV_LEN;
    let p = &mut p[..total];
    p[0..4].copy_from_slice(&sa.spi.to_be_bytes());
    p[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
    p[8..16].copy_from_slice(&iv);
    write_trailer(&mut p[ESP_FRONT + len..], pad, next_header);
    let (aad, aad_len) = aad(sa.spi, seq, sa.esn);
    Framed {
        nonce: nonce(&sa.salt, &iv),
        aad,
        aad_len,
        ct_len,
        total,
    }
}

/// [`seal`] with a given IV (known-answer tests use the published ones).
#[inline]
pub fn seal_with_iv(
    sa: &SealParams<'_>,
    seq: u64,
    iv: [u8; IV_LEN],
    p: &mut [u8],
    len: usize,
    next_header: u8,
) -> usize {
    let f = frame(sa, seq, iv, p, len, next_header);
    let (body, icv) = p[ESP_FRONT..f.total].split_at_mut(f.ct_len);
    let tag = sa.cipher.seal(&f.nonce, &f.aad[..f.aad_len], body);
    icv.copy_from_slice(&tag);
    f.total
}

/// Packets the nodes hand to one batch call of the cipher (the native engine interleaves this
/// many; the others take them one after the other).
pub const BATCH: usize = 8;

/// The length of the batch starting at op `i` of `n_ops`: the ops right after it with the same
/// SA (`sa_of`), at most [`BATCH`] — what one batch call of the cipher takes.
#[inline(always)]
pub fn batch_len(i: usize, n_ops: usize, sa_of: impl Fn(usize) -> u32) -> usize {
    let sa = sa_of(i);
    let mut n = 1;
    while n < BATCH && i + n < n_ops && sa_of(i + n) == sa {
        n += 1;
    }
    n
}

/// One packet of [`seal_batch`]: laid out as for [`seal`].
#[derive(Debug, Default)]
pub struct SealPacket<'a> {
    /// The sequence number (and IV).
    pub seq: u64,
    /// ESP header room, payload, trailer room.
    pub p: &'a mut [u8],
    /// Payload length.
    pub len: usize,
    /// Next header.
    pub next_header: u8,
}

/// [`seal`] for several packets of one SA: the framing of each, then one batch call of the
/// cipher per [`BATCH`] packets.
///
/// # Panics
/// As [`seal`], for a packet without room.
pub fn seal_batch(sa: &SealParams<'_>, pkts: &mut [SealPacket<'_>]) {
    for chunk in pkts.chunks_mut(BATCH) {
        let mut framed: [Option<Framed>; BATCH] = Default::default();
        for (f, pk) in framed.iter_mut().zip(chunk.iter_mut()) {
            *f = Some(frame(
                sa,
                pk.seq,
                pk.seq.to_be_bytes(),
                pk.p,
                pk.len,
                pk.next_header,
            ));
        }
        let mut jobs: [Job<'_>; BATCH] = Default::default();
        let mut icvs: [&mut [u8]; BATCH] = Default::default();
        let mut n = 0;
        for ((pk, f), (job, icv)) in chunk
            .iter_mut()
            .zip(framed.iter().flatten())
            .zip(jobs.iter_mut().zip(icvs.iter_mut()))
        {
            let (body, tag) = pk.p[ESP_FRONT..f.total].split_at_mut(f.ct_len);
            *job = Job::new(f.nonce, &f.aad[..f.aad_len], body);
            *icv = tag;
            n += 1;
        }
        sa.cipher.seal_batch(&mut jobs[..n]);
        for (job, icv) in jobs[..n].iter().zip(icvs.iter_mut()) {
            // A job GCM refused (beyond its limits, never a packet) has a zeroed body and a
            // zero tag: it fails authentication at the far end and shows nothing.
            icv.copy_from_slice(&job.tag);
        }
    }
}

/// Why an ESP packet did not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Too short for header, IV, trailer and ICV.
    TooShort,
    /// The ICV did not verify.
    AuthFailed,
    /// The pad length points before the payload, or the padding is not 1, 2, 3, ...
    BadTrailer,
}

/// Opens the ESP packet `p` (header, IV, ciphertext, ICV) whose full sequence number is `seq`:
/// verifies and decrypts in place. Returns the payload length (it starts at [`ESP_FRONT`]) and
/// the next header.
#[inline]
pub fn open(
    cipher: &dyn GcmCipher,
    salt: &[u8; SALT_LEN],
    seq: u64,
    esn: bool,
    p: &mut [u8],
) -> Result<(usize, u8), OpenError> {
    let mut pk = [OpenPacket::new(seq, p)];
    open_batch(cipher, salt, esn, &mut pk);
    pk[0].result
}

/// One packet of [`open_batch`].
#[derive(Debug)]
pub struct OpenPacket<'a> {
    /// The full sequence number.
    pub seq: u64,
    /// The ESP packet: header, IV, ciphertext, ICV.
    pub p: &'a mut [u8],
    /// What [`open`] returns.
    pub result: Result<(usize, u8), OpenError>,
}

impl<'a> OpenPacket<'a> {
    /// A packet to open.
    pub fn new(seq: u64, p: &'a mut [u8]) -> Self {
        OpenPacket {
            seq,
            p,
            result: Err(OpenError::TooShort),
        }
    }
}

impl Default for OpenPacket<'_> {
    fn default() -> Self {
        OpenPacket::new(0, &mut [])
    }
}

/// What the cipher needs to open one packet.
struct Opening {
    nonce: [u8; 12],
    aad: [u8; 12],
    aad_len: usize,
    tag: [u8; ICV_LEN],
}

/// [`open`] for several packets of one SA: one batch call of the cipher per [`BATCH`] packets,
/// then each trailer's checks.
pub fn open_batch(
    cipher: &dyn GcmCipher,
    salt: &[u8; SALT_LEN],
    esn: bool,
    pkts: &mut [OpenPacket<'_>],
) {
    for chunk in pkts.chunks_mut(BATCH) {
        let mut opening: [Option<Opening>; BATCH] = Default::default();
        for (o, pk) in opening.iter_mut().zip(chunk.iter_mut()) {
            let p = &*pk.p;
            if p.len() < ESP_FRONT + 2 + ICV_LEN {
                pk.result = Err(OpenError::TooShort);
                continue;
            }
            let spi = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
            let (aad, aad_len) = aad(spi, pk.seq, esn);
            let mut tag = [0u8; ICV_LEN];
            tag.copy_from_slice(&p[p.len() - ICV_LEN..]);
            *o = Some(Opening {
                nonce: nonce(salt, &p[8..16]),
                aad,
                aad_len,
                tag,
            });
        }
        let mut at = [0usize; BATCH];
        let mut n = 0;
        let ok: [bool; BATCH] = {
            let mut jobs: [Job<'_>; BATCH] = Default::default();
            for (i, (pk, o)) in chunk.iter_mut().zip(opening.iter()).enumerate() {
                let Some(o) = o else { continue };
                let ct_len = pk.p.len() - ESP_FRONT - ICV_LEN;
                let body = &mut pk.p[ESP_FRONT..ESP_FRONT + ct_len];
                jobs[n] = Job {
                    tag: o.tag,
                    ..Job::new(o.nonce, &o.aad[..o.aad_len], body)
                };
                at[n] = i;
                n += 1;
            }
            cipher.open_batch(&mut jobs[..n]);
            std::array::from_fn(|j| jobs[j].ok)
        };
        for (&i, ok) in at[..n].iter().zip(ok) {
            let pk = &mut chunk[i];
            pk.result = if ok {
                trailer(&pk.p[ESP_FRONT..pk.p.len() - ICV_LEN])
            } else {
                Err(OpenError::AuthFailed)
            };
        }
    }
}

/// The payload length and next header of an authenticated, decrypted body.
#[inline]
fn trailer(body: &[u8]) -> Result<(usize, u8), OpenError> {
    let ct_len = body.len();
    let pad = body[ct_len - 2] as usize;
    let next = body[ct_len - 1];
    if pad + 2 > ct_len {
        return Err(OpenError::BadTrailer);
    }
    let len = ct_len - 2 - pad;
    //= https://www.rfc-editor.org/rfc/rfc4303#section-2.4
    //# the receiver SHOULD inspect the Padding field.
    if body[len..len + pad]
        .iter()
        .enumerate()
        .any(|(i, &b)| b != i as u8 + 1)
    {
        return Err(OpenError::BadTrailer);
    }
    Ok((len, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Backend, KeyMaterial};
    use hex_literal::hex;

    #[test]
    fn batches_are_runs_of_one_sa_of_at_most_batch_ops() {
        let sas = [1u32, 1, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4];
        let mut lens = Vec::new();
        let mut i = 0;
        while i < sas.len() {
            let n = batch_len(i, sas.len(), |j| sas[j]);
            lens.push(n);
            i += n;
        }
        assert_eq!(lens, [2, 3, BATCH, 2, 1]);
        assert_eq!(batch_len(0, 1, |_| 7), 1);
    }

    /// ESP packets from "Test Cases for the use of GCM and GMAC in IPsec ESP"
    /// (draft-mcgrew-gcm-test-01 §4): key material (key || salt), SPI, full sequence number,
    /// ESN, IV, plaintext (payload, padding, pad length, next header), ciphertext || ICV.
    struct EspVector {
        keymat: Vec<u8>,
        spi: u32,
        seq: u64,
        esn: bool,
        iv: [u8; 8],
        plain: Vec<u8>,
        sealed: Vec<u8>,
    }

    fn draft_vectors() -> Vec<EspVector> {
        let v = |k: &[u8], salt: [u8; 4], aad: &[u8], iv, plain: &[u8], ct: &[u8], tag: &[u8]| {
            let mut keymat = k.to_vec();
            keymat.extend_from_slice(&salt);
            let spi = u32::from_be_bytes([aad[0], aad[1], aad[2], aad[3]]);
            let (seq, esn) = if aad.len() == 12 {
                (u64::from_be_bytes(aad[4..12].try_into().unwrap()), true)
            } else {
                (
                    u64::from(u32::from_be_bytes(aad[4..8].try_into().unwrap())),
                    false,
                )
            };
            let mut sealed = ct.to_vec();
            sealed.extend_from_slice(tag);
            EspVector {
                keymat,
                spi,
                seq,
                esn,
                iv,
                plain: plain.to_vec(),
                sealed,
            }
        };
        vec![
            // Test case 1: AES-128, 64-bit sequence number.
            v(
                &hex!("4c80cdefbb5d10da906ac73c3613a634"),
                hex!("2e443b68"),
                &hex!("000043218765432100000000"),
                hex!("4956ed7e3b244cfe"),
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
                &hex!("459018148f6cbe722fd04796562dfdb4"),
            ),
            // Test case 3: AES-256.
            v(
                &hex!("abbccddef00112233445566778899aababbccddef00112233445566778899aab"),
                hex!("11223344"),
                &hex!("4a2cbfe300000002"),
                hex!("0102030405060708"),
                &hex!(
                    "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000"
                    "7002400020bf0000020405b40101040201020201"
                ),
                &hex!(
                    "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763"
                    "748a637985771d347f0545659f14e99def842d8e"
                ),
                &hex!("b335f4eecfdbf831824b4c4915956c96"),
            ),
            // Test case 5: AES-128, 64-bit sequence number.
            v(
                &hex!("3de09874b388e6491988d0c3607eae1f"),
                hex!("57690e43"),
                &hex!("42f67e3f1010101010101010"),
                hex!("4e280000a2fca1a3"),
                &hex!(
                    "4500003c99c300008001cb7c40679318010101010800085c0200430061626364"
                    "65666768696a6b6c6d6e6f707172737475767761626364656667686901020201"
                ),
                &hex!(
                    "fba2caa4853cf9f0f22cb10d86dd83b0fec75691cf1a04b00d1138ec9c357917"
                    "65acbd8701ad79845bf9fe3fba487bc91755e6662b4c8d0d1f5e22739530320a"
                ),
                &hex!("e0d731cc978ecafaeae88f00e80d6e48"),
            ),
            // Test case 8: AES-128, 64-bit sequence number, pad length 1.
            v(
                &hex!("abbccddef00112233445566778899aab"),
                hex!("decaf888"),
                &hex!("000001000000000000000001"),
                hex!("cafedebaceface74"),
                &hex!(
                    "4500004933ba00007f119106c3fb1d10c2b1d326c02831ce0035dd7b800302d5"
                    "00004e20001e8c18d75b81dc91baa0476b91b924b280389d92c963bac046ec95"
                    "9b6266c04722b14923010101"
                ),
                &hex!(
                    "18a6fd42f72cbf4ab2a2ea901f73d814e3e7f243d95412e1c349c1d2fbec168f"
                    "9190feebaf2cb01984e65863965d7472b79da345e0e780191f0d2f0e0f496c22"
                    "6f2127b27db35724e7845d68"
                ),
                &hex!("651f57e65f354f75ff17015769623436"),
            ),
            // Test case 12: a dummy-sized payload with a 32-bit sequence number 0xffffffff.
            v(
                &hex!("7d773d00c144c525ac619d18c84a3f47"),
                hex!("d9664267"),
                &hex!("335467aeffffffff"),
                hex!("43457e9182443bc6"),
                &hex!("01020201"),
                &hex!("437f866b"),
                &hex!("cb3f699fe9b0822bac961c4504bef270"),
            ),
        ]
    }

    #[test]
    fn known_answers_from_the_esp_test_cases() {
        for &be in Backend::available() {
            for (i, t) in draft_vectors().iter().enumerate() {
                let m = KeyMaterial::new(t.keymat.clone()).unwrap();
                let c = m.cipher(be).unwrap();
                let sa = SealParams {
                    cipher: &*c,
                    salt: m.salt(),
                    spi: t.spi,
                    esn: t.esn,
                };
                // The published plaintext ends in its own trailer: split it off.
                let pad = t.plain[t.plain.len() - 2] as usize;
                let next = t.plain[t.plain.len() - 1];
                let len = t.plain.len() - 2 - pad;
                let mut p = vec![0u8; ESP_FRONT + len + tail_len(len)];
                p[ESP_FRONT..ESP_FRONT + len].copy_from_slice(&t.plain[..len]);
                let n = seal_with_iv(&sa, t.seq, t.iv, &mut p, len, next);
                assert_eq!(n, p.len());
                assert_eq!(&p[ESP_FRONT..], &t.sealed[..], "{be} vector {i}");
                assert_eq!(p[0..4], t.spi.to_be_bytes());
                assert_eq!(p[4..8], (t.seq as u32).to_be_bytes());
                assert_eq!(p[8..16], t.iv);
                let (l, nh) = open(&*c, &m.salt(), t.seq, t.esn, &mut p).unwrap();
                assert_eq!((l, nh), (len, next));
                assert_eq!(&p[ESP_FRONT..ESP_FRONT + len], &t.plain[..len]);
            }
        }
    }

    #[test]
    fn round_trips_at_every_size_and_a_flipped_bit_anywhere_fails() {
        let m = KeyMaterial::from_hex(&"42".repeat(20)).unwrap();
        let c = m.cipher(Backend::DEFAULT).unwrap();
        for esn in [false, true] {
            let sa = SealParams {
                cipher: &*c,
                salt: m.salt(),
                spi: 0x100,
                esn,
            };
            for len in 0..200usize {
                let seq = if esn {
                    (len as u64) << 31 | 7
                } else {
                    len as u64 + 7
                };
                let pt: Vec<u8> = (0..len).map(|i| (i ^ len) as u8).collect();
                let mut p = vec![0u8; ESP_FRONT + len + tail_len(len)];
                p[ESP_FRONT..ESP_FRONT + len].copy_from_slice(&pt);
                let n = seal(&sa, seq, &mut p, len, 17);
                assert_eq!((n - ESP_FRONT - ICV_LEN) % 4, 0, "aligned");
                let sealed = p.clone();
                assert_eq!(open(&*c, &m.salt(), seq, esn, &mut p), Ok((len, 17)));
                assert_eq!(&p[ESP_FRONT..ESP_FRONT + len], &pt[..]);
                // Every bit of SPI, sequence number, IV, ciphertext and ICV is authenticated.
                for bit in (0..sealed.len() * 8).step_by(if len < 20 { 1 } else { 13 }) {
                    let mut q = sealed.clone();
                    q[bit / 8] ^= 1 << (bit % 8);
                    // The receiver takes the low half of the number from the packet.
                    let lo = u32::from_be_bytes([q[4], q[5], q[6], q[7]]);
                    let s = if esn {
                        seq & !0xffff_ffff | u64::from(lo)
                    } else {
                        u64::from(lo)
                    };
                    assert_eq!(
                        open(&*c, &m.salt(), s, esn, &mut q),
                        Err(OpenError::AuthFailed),
                        "len {len} bit {bit}"
                    );
                }
                // So is the sequence number's high half with ESN (it is not on the wire).
                if esn {
                    let mut q = sealed.clone();
                    assert_eq!(
                        open(&*c, &m.salt(), seq ^ 1 << 40, esn, &mut q),
                        Err(OpenError::AuthFailed)
                    );
                }
            }
        }
    }

    #[test]
    fn batches_seal_and_open_as_single_packets_do() {
        for bits in [16usize, 32] {
            let m = KeyMaterial::new((0..bits as u8 + 4).collect()).unwrap();
            let ciphers: Vec<_> = Backend::available()
                .iter()
                .map(|&b| m.cipher(b).unwrap())
                .collect();
            for esn in [false, true] {
                // 19 packets (two full batches and a partial one) of mixed sizes.
                let lens: Vec<usize> = (0..19).map(|i| (i * 97 + i * i * 13) % 1500).collect();
                let plain: Vec<Vec<u8>> = lens
                    .iter()
                    .map(|&len| {
                        let mut p = vec![0u8; ESP_FRONT + len + tail_len(len)];
                        for (j, b) in p[ESP_FRONT..ESP_FRONT + len].iter_mut().enumerate() {
                            *b = (j * 3 + len) as u8;
                        }
                        p
                    })
                    .collect();
                let mut want: Option<Vec<Vec<u8>>> = None;
                for c in &ciphers {
                    let sa = SealParams {
                        cipher: &**c,
                        salt: m.salt(),
                        spi: 0x77,
                        esn,
                    };
                    let mut single = plain.clone();
                    for (i, p) in single.iter_mut().enumerate() {
                        seal(&sa, i as u64 + (1 << 33), p, lens[i], 17);
                    }
                    let mut batch = plain.clone();
                    let mut pkts: Vec<SealPacket<'_>> = batch
                        .iter_mut()
                        .enumerate()
                        .map(|(i, p)| SealPacket {
                            seq: i as u64 + (1 << 33),
                            p,
                            len: lens[i],
                            next_header: 17,
                        })
                        .collect();
                    seal_batch(&sa, &mut pkts);
                    drop(pkts);
                    assert_eq!(batch, single, "{}", c.backend());
                    match &want {
                        Some(w) => assert_eq!(&batch, w, "{} agrees", c.backend()),
                        None => want = Some(batch.clone()),
                    }
                    // Open them back, with one corrupted and one too short among them.
                    batch[5][ESP_FRONT] ^= 0x10;
                    let mut pkts: Vec<OpenPacket<'_>> = batch
                        .iter_mut()
                        .enumerate()
                        .map(|(i, p)| {
                            let p = if i == 11 { &mut p[..ESP_FRONT + 17] } else { p };
                            OpenPacket::new(i as u64 + (1 << 33), p)
                        })
                        .collect();
                    open_batch(&**c, &m.salt(), esn, &mut pkts);
                    for (i, pk) in pkts.iter().enumerate() {
                        let r = match i {
                            5 => Err(OpenError::AuthFailed),
                            11 => Err(OpenError::TooShort),
                            _ => Ok((lens[i], 17)),
                        };
                        assert_eq!(pk.result, r, "{} packet {i}", c.backend());
                    }
                    drop(pkts);
                    for (i, p) in batch.iter().enumerate() {
                        if i != 5 && i != 11 {
                            let len = lens[i];
                            assert_eq!(p[ESP_FRONT..ESP_FRONT + len], plain[i][ESP_FRONT..][..len]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn trailer_checks() {
        let m = KeyMaterial::from_hex(&"42".repeat(20)).unwrap();
        let c = m.cipher(Backend::DEFAULT).unwrap();
        let sa = SealParams {
            cipher: &*c,
            salt: m.salt(),
            spi: 0x100,
            esn: false,
        };
        assert_eq!(pad_len(0), 2);
        assert_eq!(pad_len(2), 0);
        assert_eq!(pad_len(5), 1);
        // An authenticated packet whose pad length exceeds the payload.
        let mut p = vec![0u8; ESP_FRONT + 4 + ICV_LEN];
        p[0..4].copy_from_slice(&0x100u32.to_be_bytes());
        p[ESP_FRONT + 2] = 9;
        let (a, alen) = aad(0x100, 0, false);
        let tag = c.seal(
            &nonce(&m.salt(), &p[8..16]),
            &a[..alen],
            &mut p[ESP_FRONT..ESP_FRONT + 4],
        );
        p[ESP_FRONT + 4..].copy_from_slice(&tag);
        assert_eq!(
            open(&*c, &m.salt(), 0, false, &mut p),
            Err(OpenError::BadTrailer)
        );
        // Padding that is not 1, 2, 3 (payload 1 byte, pad 1 byte of 5).
        let mut p = vec![0u8; ESP_FRONT + 4 + ICV_LEN];
        p[0..4].copy_from_slice(&0x100u32.to_be_bytes());
        p[ESP_FRONT..ESP_FRONT + 4].copy_from_slice(&[0xaa, 5, 1, 4]);
        let tag = c.seal(
            &nonce(&m.salt(), &p[8..16]),
            &a[..alen],
            &mut p[ESP_FRONT..ESP_FRONT + 4],
        );
        p[ESP_FRONT + 4..].copy_from_slice(&tag);
        assert_eq!(
            open(&*c, &m.salt(), 0, false, &mut p),
            Err(OpenError::BadTrailer)
        );
        let mut p = vec![0u8; ESP_FRONT + 1 + tail_len(1)];
        seal(&sa, 1, &mut p, 1, 4);
        assert_eq!(open(&*c, &m.salt(), 1, false, &mut p.clone()), Ok((1, 4)));
        assert_eq!(
            open(&*c, &m.salt(), 1, false, &mut p[..10]),
            Err(OpenError::TooShort)
        );
    }
}
