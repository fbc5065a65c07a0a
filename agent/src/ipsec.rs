//! Keys of the encryption between nodes: the cluster's IPsec key (the secret record the
//! reflector mirrors from `kube-system/vpg-ipsec-keys`) and the per-SA keys and SPIs derived
//! from it.
//!
//! Every node derives the same values without talking to the others: for the traffic from
//! node `a` to node `b`, SA number `i` of key generation `k`,
//!
//! ```text
//! PRK = HKDF-Extract(salt = "vpg ipsec v1", IKM = the secret's key material)
//! key = HKDF-Expand(PRK, "key" ‖ k ‖ len(a) ‖ a ‖ len(b) ‖ b ‖ i, 20 or 36 bytes)
//! spi = 256 + HKDF-Expand(PRK, "spi" ‖ k ‖ len(a) ‖ a ‖ len(b) ‖ b ‖ i, 4 bytes) mod (2^32 − 256)
//! ```
//!
//! (HKDF-SHA256, RFC 5869; `a`, `b` are node names). `a` uses it outbound, `b` inbound; the
//! other direction has its own key and SPI, so no key ever protects traffic both ways and a
//! compromised node pair reveals nothing about another. SPIs avoid 0–255 (RFC 4303 §2.1
//! reserves them). The key id is in every input: a new generation changes every SPI and key,
//! so old and new SAs coexist during a rotation.
//!
//! Keys never appear in logs, dumps, errors or `Debug` output: [`MasterKey`] and the derived
//! [`KeyMaterial`] print their fingerprint (vpgd's, so `vpgctl show esp sa` shows the same).

use std::fmt;

use ring::hkdf;
use vpg_api::esp::EspCrypto;
use vpg_esp::KeyMaterial;
use vpg_ksr::kinds::IpsecKeysRecord;
use zeroize::Zeroizing;

/// HKDF salt: names the scheme, so a change of derivation gets a new label.
const SALT: &[u8] = b"vpg ipsec v1";

/// The cluster's IPsec key: one generation.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    /// The key id (rotation generation, 1–255).
    pub id: u8,
    /// The AEAD its length selects.
    pub crypto: EspCrypto,
    material: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MasterKey(id {} {:?} fingerprint {})",
            self.id,
            self.crypto,
            self.fingerprint()
        )
    }
}

impl MasterKey {
    /// The key of a secret record (checked by the reflector; checked again here, since a
    /// store record may come from anywhere). Errors never quote the key.
    pub fn from_record(r: &IpsecKeysRecord) -> Result<MasterKey, String> {
        if r.key_id == 0 {
            return Err("key id 0 is reserved".into());
        }
        if r.algorithm != vpg_ksr::kinds::secret::IPSEC_ALGORITHM || r.icv_bits != 128 {
            return Err(format!(
                "algorithm {} with a {}-bit ICV is not supported",
                r.algorithm.escape_debug(),
                r.icv_bits
            ));
        }
        let bytes =
            Zeroizing::new(vpg_api::esp::parse_key(&r.key).ok_or("the key is not hexadecimal")?);
        let crypto = match bytes.len() {
            20 => EspCrypto::AesGcm128,
            36 => EspCrypto::AesGcm256,
            n => return Err(format!("the key has {n} bytes, not 20 or 36")),
        };
        Ok(MasterKey {
            id: r.key_id,
            crypto,
            material: bytes,
        })
    }

    /// A fingerprint of the master key (vpgd's fingerprint function), for status and logs.
    pub fn fingerprint(&self) -> String {
        KeyMaterial::new(self.material.to_vec())
            .map(|k| k.fingerprint())
            .unwrap_or_default()
    }

    #[cfg(test)]
    pub(crate) fn for_test(id: u8, byte: u8, len: usize) -> MasterKey {
        MasterKey {
            id,
            crypto: if len == 36 {
                EspCrypto::AesGcm256
            } else {
                EspCrypto::AesGcm128
            },
            material: Zeroizing::new(vec![byte; len]),
        }
    }
}

/// One SA's derived values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Derived {
    /// SPI (256 and up).
    pub spi: u32,
    /// Key material (AES key ‖ salt, the master's length).
    pub key: KeyMaterial,
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// The SA values for the traffic from node `from` to node `to`, SA number `index`.
pub fn derive(master: &MasterKey, from: &str, to: &str, index: u8) -> Derived {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&master.material);
    // Length-prefixed names: ("ab", "c") and ("a", "bc") must not give the same input.
    let (fl, tl) = (
        (from.len() as u32).to_be_bytes(),
        (to.len() as u32).to_be_bytes(),
    );
    let id = [master.id];
    let ix = [index];
    let expand = |label: &'static [u8], out: &mut [u8]| {
        let info: [&[u8]; 7] = [label, &id, &fl, from.as_bytes(), &tl, to.as_bytes(), &ix];
        prk.expand(&info, Len(out.len()))
            .and_then(|okm| okm.fill(out))
            // The lengths asked for (4, 20 or 36 bytes) are far below HKDF's 255 × 32 limit.
            .expect("HKDF output length within limits");
    };
    let mut key = Zeroizing::new(vec![0u8; master.material.len()]);
    expand(b"key", &mut key);
    let mut spi = [0u8; 4];
    expand(b"spi", &mut spi);
    let spi = 256 + u32::from_be_bytes(spi) % (u32::MAX - 255);
    Derived {
        spi,
        key: KeyMaterial::new(key.to_vec()).expect("the master's length is 20 or 36"),
    }
}

/// The key material as the API takes it (hex). The string is the caller's to drop soon.
pub fn key_hex(k: &KeyMaterial) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(2 * (k.key().len() + 4)));
    for b in k.key().iter().chain(k.salt().iter()) {
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const NODES: [&str; 5] = ["n1", "n2", "n3", "node-a", "node-ab"];

    #[test]
    fn both_ends_agree_and_every_pair_direction_and_index_differs() {
        let m = MasterKey::for_test(3, 7, 20);
        let mut spis = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for a in NODES {
            for b in NODES.iter().filter(|b| **b != a) {
                for i in 0..4 {
                    // "Both sides": the sender and the receiver each compute it.
                    let at_sender = derive(&m, a, b, i);
                    let at_receiver = derive(&m.clone(), a, b, i);
                    assert_eq!(at_sender, at_receiver);
                    assert!(at_sender.spi >= 256);
                    assert_eq!(at_sender.key.bits(), 128);
                    spis.insert(at_sender.spi);
                    keys.insert(at_sender.key.fingerprint());
                }
            }
        }
        // 5 × 4 ordered pairs × 4 indices, all distinct (a -> b is not b -> a).
        assert_eq!(spis.len(), 80);
        assert_eq!(keys.len(), 80);
        assert_ne!(derive(&m, "n1", "n2", 0), derive(&m, "n2", "n1", 0));
        // Length-prefixed names: moving a character between them changes everything.
        assert_ne!(
            derive(&m, "node-a", "bc", 0).spi,
            derive(&m, "node-ab", "c", 0).spi
        );
    }

    #[test]
    fn the_key_id_and_the_material_change_everything() {
        let m3 = MasterKey::for_test(3, 7, 20);
        let m4 = MasterKey::for_test(4, 7, 20);
        let other = MasterKey::for_test(3, 8, 20);
        let a = derive(&m3, "n1", "n2", 0);
        for d in [derive(&m4, "n1", "n2", 0), derive(&other, "n1", "n2", 0)] {
            assert_ne!(a.spi, d.spi);
            assert_ne!(a.key, d.key);
            assert_ne!(a.key.fingerprint(), d.key.fingerprint());
        }
        let big = derive(&MasterKey::for_test(3, 7, 36), "n1", "n2", 0);
        assert_eq!(big.key.bits(), 256);
    }

    #[test]
    fn derivation_matches_the_documented_formula() {
        // A change of derivation would make nodes of two versions disagree: pin one value.
        // The values computed independently (Python's hmac, RFC 5869 by hand, the formula of
        // the module doc): master = 20 bytes of 0x42, key id 1, n1 -> n2, SA 0.
        let d = derive(&MasterKey::for_test(1, 0x42, 20), "n1", "n2", 0);
        assert_eq!(d.spi, 0xbf55_c5ab);
        assert_eq!(d.key.fingerprint(), "e89d5cd428a77756");
        let again = derive(&MasterKey::for_test(1, 0x42, 20), "n1", "n2", 0);
        assert_eq!(d, again);
        assert_eq!(key_hex(&d.key).len(), 40);
        assert_eq!(
            KeyMaterial::from_hex(&key_hex(&d.key)).unwrap(),
            d.key,
            "hex round trip"
        );
    }

    #[test]
    fn records_become_keys_and_nothing_shows_the_key() {
        let line = "5+ rfc4106(gcm(aes)) 00112233445566778899aabbccddeeff01020304 128";
        let r = vpg_ksr::kinds::secret::parse_keys_line(line).unwrap();
        let m = MasterKey::from_record(&r).unwrap();
        assert_eq!((m.id, m.crypto), (5, EspCrypto::AesGcm128));
        let shown = format!("{m:?} {:?}", derive(&m, "a", "b", 0));
        assert!(
            !shown.contains("00112233") && !shown.contains("0x00"),
            "{shown}"
        );
        assert!(shown.contains(&m.fingerprint()));
        let mut bad = r.clone();
        bad.key = "zz".repeat(20);
        assert!(!MasterKey::from_record(&bad).unwrap_err().contains("zz"));
        bad.key = "00".repeat(19);
        assert!(MasterKey::from_record(&bad)
            .unwrap_err()
            .contains("19 bytes"));
    }
}
