//! IPsec ESP messages (API 1.2): SAs (`esp_sa_add`, `esp_sa_del`, `esp_sa_retire`), protect
//! rules (`esp_protect_add`, `esp_protect_del`), their dumps and the summary.
//!
//! Keys go in (hex, RFC 4106 key material: the AES key then the 4-byte salt, as `ip xfrm`
//! takes it) and never come out: a dump shows the key id and a fingerprint, and no error
//! message quotes a key.

use crate::types::Prefix;
use crate::ApiError;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Direction of an SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EspDirection {
    /// Decrypts what arrives with its SPI.
    In,
    /// Encrypts what a protect rule gives it.
    Out,
}

/// ESP mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EspMode {
    /// The IP payload is protected (node-to-node VXLAN).
    Transport,
    /// The whole packet inside a new one between `tunnel_src` and `tunnel_dst`.
    Tunnel,
}

/// The AEAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EspCrypto {
    /// AES-128-GCM with a 16-byte ICV (RFC 4106): 20 bytes of key material.
    #[serde(rename = "aes-gcm-128")]
    AesGcm128,
    /// AES-256-GCM with a 16-byte ICV: 36 bytes of key material.
    #[serde(rename = "aes-gcm-256")]
    AesGcm256,
}

impl EspCrypto {
    /// Bytes of key material (key and salt).
    pub fn key_len(self) -> usize {
        match self {
            EspCrypto::AesGcm128 => 20,
            EspCrypto::AesGcm256 => 36,
        }
    }
}

/// SA lifetime limits; absent fields are no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EspLifetime {
    /// Soft packet limit (reported, counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_packets: Option<u64>,
    /// Soft byte limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_bytes: Option<u64>,
    /// Soft limit in seconds from when the SA was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_seconds: Option<u64>,
    /// Hard packet limit (the SA stops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_packets: Option<u64>,
    /// Hard byte limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_bytes: Option<u64>,
    /// Hard limit in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_seconds: Option<u64>,
}

/// `esp_sa_add`: one SA.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EspSaAdd {
    /// The SA's id (the client's choice).
    pub sa_id: u32,
    /// SPI (non-zero; the receiver's choice).
    pub spi: u32,
    /// Direction.
    pub direction: EspDirection,
    /// Mode.
    pub mode: EspMode,
    /// Tunnel mode: outer source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_src: Option<Ipv4Addr>,
    /// Tunnel mode: outer destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_dst: Option<Ipv4Addr>,
    /// AEAD.
    pub crypto: EspCrypto,
    /// Key material in hex (key then 4-byte salt), `0x` prefix allowed.
    pub key: String,
    /// Key id: which rotation generation the key belongs to.
    pub key_id: u8,
    /// Extended sequence numbers (default off).
    #[serde(default, skip_serializing_if = "is_false")]
    pub esn: bool,
    /// Anti-replay window in packets (default 64, at most 65536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_window: Option<u32>,
    /// Owner worker (default: SPI modulo the number of workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<u32>,
    /// Lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<EspLifetime>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl std::fmt::Debug for EspSaAdd {
    /// Everything but the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EspSaAdd")
            .field("sa_id", &self.sa_id)
            .field("spi", &self.spi)
            .field("direction", &self.direction)
            .field("mode", &self.mode)
            .field("crypto", &self.crypto)
            .field("key", &"<redacted>")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Largest anti-replay window.
pub const MAX_REPLAY_WINDOW: u32 = 1 << 16;

/// Parses key material in hex.
pub fn parse_key(s: &str) -> Option<Vec<u8>> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

impl EspSaAdd {
    /// The stateless checks: SPI, key length for the AEAD (the key is never quoted), tunnel
    /// endpoints exactly in tunnel mode, window range, lifetimes (no zero, soft ≤ hard).
    pub fn check(&self) -> Result<(), ApiError> {
        if self.spi == 0 {
            return Err(ApiError::bad_request("spi", "spi 0 is reserved"));
        }
        match parse_key(&self.key) {
            None => {
                return Err(ApiError::bad_request("key", "key is not hexadecimal"));
            }
            Some(k) if k.len() != self.crypto.key_len() => {
                return Err(ApiError::bad_request(
                    "key",
                    format!(
                        "key has {} bytes; {:?} needs {} (key and 4-byte salt)",
                        k.len(),
                        self.crypto,
                        self.crypto.key_len()
                    ),
                ));
            }
            Some(_) => {}
        }
        let tunnel = self.mode == EspMode::Tunnel;
        for (field, v) in [
            ("tunnel_src", self.tunnel_src),
            ("tunnel_dst", self.tunnel_dst),
        ] {
            match (tunnel, v) {
                (true, None) => {
                    return Err(ApiError::bad_request(
                        field,
                        format!("tunnel mode needs {field}"),
                    ))
                }
                (false, Some(_)) => {
                    return Err(ApiError::bad_request(
                        field,
                        format!("{field} is for tunnel mode only"),
                    ))
                }
                (true, Some(a)) => crate::interface::check_host_ip(field, a)?,
                (false, None) => {}
            }
        }
        if let Some(w) = self.replay_window {
            if w == 0 || w > MAX_REPLAY_WINDOW {
                return Err(ApiError::bad_request(
                    "replay_window",
                    format!("replay window {w} is out of range 1..={MAX_REPLAY_WINDOW}"),
                ));
            }
        }
        if let Some(l) = self.lifetime {
            for (f, soft, hard) in [
                ("packets", l.soft_packets, l.hard_packets),
                ("bytes", l.soft_bytes, l.hard_bytes),
                ("seconds", l.soft_seconds, l.hard_seconds),
            ] {
                if soft == Some(0) || hard == Some(0) {
                    return Err(ApiError::bad_request(
                        "lifetime",
                        format!("a lifetime of 0 {f}"),
                    ));
                }
                if let (Some(s), Some(h)) = (soft, hard) {
                    if s > h {
                        return Err(ApiError::bad_request(
                            "lifetime",
                            format!("soft limit {s} {f} above hard limit {h}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `esp_protect_add`: traffic to `dst` (or through VXLAN tunnel `tunnel`) must leave
/// encrypted by one of `sas`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EspProtectAdd {
    /// The rule's id.
    pub rule_id: u32,
    /// Destination network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<Prefix>,
    /// Or: a VXLAN tunnel interface, whose underlay packets (UDP to the far VTEP's port) are
    /// protected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<u32>,
    /// IP protocol (with `dst`; default any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u8>,
    /// Destination port (with `dst` and a TCP, UDP or SCTP `proto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Outbound SAs (worker w uses SA w mod n first). Empty: encryption required, no key yet
    /// (everything matching is dropped and counted).
    pub sas: Vec<u32>,
    /// Replace an existing rule of this id (how outbound traffic switches keys).
    #[serde(default, skip_serializing_if = "is_false")]
    pub replace: bool,
}

impl EspProtectAdd {
    /// Exactly one of `dst` and `tunnel`; no host bits; ports only with TCP, UDP or SCTP.
    pub fn check(&self) -> Result<(), ApiError> {
        match (self.dst, self.tunnel) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(ApiError::bad_request(
                    "dst",
                    "a protect rule has either dst or tunnel",
                ))
            }
            (Some(p), None) => crate::route::check_route_prefix(p)?,
            (None, Some(_)) => {
                if self.proto.is_some() || self.port.is_some() {
                    return Err(ApiError::bad_request(
                        "proto",
                        "a tunnel rule protects the tunnel's UDP port: no proto or port",
                    ));
                }
            }
        }
        if self.port.is_some() && !matches!(self.proto, Some(6 | 17 | 132)) {
            return Err(ApiError::bad_request(
                "port",
                "a port needs proto 6 (tcp), 17 (udp) or 132 (sctp)",
            ));
        }
        Ok(())
    }
}

/// Per-SA counters, summed over workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EspSaCounters {
    /// Packets encrypted or decrypted.
    pub packets: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Inbound: ICV failures.
    pub auth_failures: u64,
    /// Inbound: replays and packets older than the window.
    pub replays: u64,
    /// Other drops charged to the SA.
    pub drops: u64,
    /// Outbound: last sequence number sent; inbound: highest accepted.
    pub seq: u64,
}

/// One SA, as dumped: never the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EspSaDetails {
    /// Id.
    pub sa_id: u32,
    /// SPI.
    pub spi: u32,
    /// Direction.
    pub direction: EspDirection,
    /// Mode.
    pub mode: EspMode,
    /// Tunnel endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_src: Option<Ipv4Addr>,
    /// Tunnel endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_dst: Option<Ipv4Addr>,
    /// AEAD.
    pub crypto: EspCrypto,
    /// Key id.
    pub key_id: u8,
    /// Key fingerprint (first 8 bytes of a SHA-256 over the key material, in hex).
    pub fingerprint: String,
    /// ESN.
    pub esn: bool,
    /// Replay window.
    pub replay_window: u32,
    /// Owner worker.
    pub worker: u32,
    /// AES-GCM implementation.
    pub backend: String,
    /// `active`, `soft-expired`, `retiring` (usable until `retire_in_s`), `expired`.
    pub state: String,
    /// Seconds since it was added.
    pub age_s: u64,
    /// Seconds left before a retired SA stops (0 once stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_in_s: Option<u64>,
    /// Lifetime.
    pub lifetime: EspLifetime,
    /// Counters.
    pub counters: EspSaCounters,
    /// Outbound, with a sequence file (1.4): the highest sequence number reserved on disk (the
    /// SA sends nothing beyond it; a restarted vpgd continues after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_reserved: Option<u64>,
}

/// `dump_esp_sequences` (1.4): one row per key vpgd's sequence file records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EspSequenceDetails {
    /// Key fingerprint.
    pub fingerprint: String,
    /// The direction of the SAs that use the key.
    pub direction: EspDirection,
    /// Outbound: every sequence number up to this one may have been sent under the key (an SA
    /// with it starts after). Inbound: the window had accepted up to this one at the last
    /// write (an SA with it starts its window there).
    pub seq: u64,
    /// The outbound SA that has the key now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sa_id: Option<u32>,
}

/// One protect rule, as dumped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EspProtectDetails {
    /// Id.
    pub rule_id: u32,
    /// Destination network (for a tunnel rule, the far VTEP).
    pub dst: Prefix,
    /// The VXLAN tunnel it was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<u32>,
    /// IP protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u8>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Outbound SAs.
    pub sas: Vec<u32>,
    /// Packets matched and encrypted.
    pub protected: u64,
    /// Packets matched with no usable SA: dropped, never sent in clear.
    pub no_sa_drops: u64,
}

/// `dump_esp_summary`: the whole picture in one row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EspSummaryDetails {
    /// Inbound SAs.
    pub sas_in: u32,
    /// Outbound SAs.
    pub sas_out: u32,
    /// Protect rules.
    pub rules: u32,
    /// Interfaces with `esp4-encrypt` on output.
    pub encrypt_interfaces: Vec<u32>,
    /// Interfaces with `esp4-decrypt` on input.
    pub decrypt_interfaces: Vec<u32>,
    /// Packets encrypted.
    pub encrypted: u64,
    /// Packets decrypted.
    pub decrypted: u64,
    /// Packets that would have left in clear (a rule required encryption, no SA was usable):
    /// dropped.
    pub would_have_left_in_clear: u64,
    /// ICV failures.
    pub auth_failures: u64,
    /// Replays.
    pub replays: u64,
    /// The default AES-GCM implementation.
    pub backend: String,
    /// The sequence file (1.4), where outbound sequence numbers are reserved so that a restart
    /// continues each key's sequence instead of repeating nonces. None: not kept (a restarted
    /// vpgd cannot take back a key it used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequences: Option<EspSequenceSummary>,
}

/// The sequence file in the ESP summary (1.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EspSequenceSummary {
    /// Its path.
    pub file: String,
    /// Keys it records (both directions).
    pub keys: u32,
    /// Packets dropped because their sequence number was not yet reserved on disk.
    pub unreserved_drops: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa() -> EspSaAdd {
        EspSaAdd {
            sa_id: 1,
            spi: 0x100,
            direction: EspDirection::Out,
            mode: EspMode::Transport,
            tunnel_src: None,
            tunnel_dst: None,
            crypto: EspCrypto::AesGcm128,
            key: "0x".to_string() + &"ab".repeat(20),
            key_id: 1,
            esn: false,
            replay_window: None,
            worker: None,
            lifetime: None,
        }
    }

    #[test]
    fn sa_checks_name_the_field_and_never_quote_the_key() {
        sa().check().unwrap();
        let cases: Vec<(EspSaAdd, &str)> = vec![
            (EspSaAdd { spi: 0, ..sa() }, "spi"),
            (
                EspSaAdd {
                    key: "ab".repeat(36),
                    ..sa()
                },
                "key",
            ),
            (
                EspSaAdd {
                    key: "zz".repeat(20),
                    ..sa()
                },
                "key",
            ),
            (
                EspSaAdd {
                    mode: EspMode::Tunnel,
                    ..sa()
                },
                "tunnel_src",
            ),
            (
                EspSaAdd {
                    tunnel_dst: Some(Ipv4Addr::new(1, 1, 1, 1)),
                    ..sa()
                },
                "tunnel_dst",
            ),
            (
                EspSaAdd {
                    replay_window: Some(0),
                    ..sa()
                },
                "replay_window",
            ),
            (
                EspSaAdd {
                    lifetime: Some(EspLifetime {
                        soft_bytes: Some(9),
                        hard_bytes: Some(8),
                        ..EspLifetime::default()
                    }),
                    ..sa()
                },
                "lifetime",
            ),
        ];
        for (s, field) in cases {
            let e = s.check().unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e}");
            assert!(!e.to_string().contains("abab"), "{e}");
        }
        let t = EspSaAdd {
            mode: EspMode::Tunnel,
            tunnel_src: Some(Ipv4Addr::new(1, 1, 1, 1)),
            tunnel_dst: Some(Ipv4Addr::new(1, 1, 1, 2)),
            crypto: EspCrypto::AesGcm256,
            key: "cd".repeat(36),
            ..sa()
        };
        t.check().unwrap();
        assert!(!format!("{t:?}").contains("cdcd"));
    }

    #[test]
    fn protect_checks() {
        let r = EspProtectAdd {
            rule_id: 1,
            dst: Some("10.0.0.0/8".parse().unwrap()),
            tunnel: None,
            proto: Some(17),
            port: Some(4789),
            sas: vec![1],
            replace: false,
        };
        r.check().unwrap();
        for (bad, field) in [
            (
                EspProtectAdd {
                    tunnel: Some(2),
                    ..r.clone()
                },
                "dst",
            ),
            (
                EspProtectAdd {
                    dst: None,
                    tunnel: Some(2),
                    ..r.clone()
                },
                "proto",
            ),
            (
                EspProtectAdd {
                    dst: None,
                    ..r.clone()
                },
                "dst",
            ),
            (
                EspProtectAdd {
                    proto: Some(1),
                    ..r.clone()
                },
                "port",
            ),
            (
                EspProtectAdd {
                    dst: Some("10.0.0.1/8".parse().unwrap()),
                    ..r.clone()
                },
                "prefix",
            ),
        ] {
            let e = bad.check().unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e}");
        }
    }
}
