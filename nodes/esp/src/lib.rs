//! vpg's IPsec ESP (RFC 4303) with AES-GCM (RFC 4106): encrypted traffic between nodes
//! (transport mode around VXLAN) and between sites (tunnel mode), interoperable with the Linux
//! kernel's `rfc4106(gcm(aes))`.
//!
//! **Design note.** ESP hangs off the IPv4 feature arcs of the interfaces it protects (the
//! uplink), so no IPv4 node knows about it:
//!
//! ```text
//! … vxlan4-encap → ip4-lookup → ip4-rewrite → [ip4-output: acl-out-ip4, esp4-encrypt] → interface-output
//!                                                   tunnel mode: esp4-encrypt → ip4-lookup (outer)
//! uplink → ethernet-input → ip4-input → [ip4-unicast: esp4-decrypt, acl-in-ip4] → ip4-lookup → ip4-local → vxlan4-decap
//!                                          esp4-decrypt → ip4-input (the decrypted packet, same rx interface)
//! ```
//!
//! | node | does | errors |
//! |---|---|---|
//! | `esp4-encrypt` | protect rules choose an outbound SA (or none: clear); ESP header, IV (the sequence number), trailer, AES-GCM seal; transport continues on the arc, tunnel goes to `ip4-lookup` | no-sa (would have left in clear), handoff-stale, no-room, mtu-exceeded, malformed; events: encrypted, handed-off, sa-soft-expired, sa-hard-expired |
//! | `esp4-decrypt` | inbound SA by SPI; replay check; AES-GCM open; window update; strip; to `ip4-input` | replay, auth-failed, too-short, bad-trailer, sa-expired, mode-mismatch, dummy; events: decrypted, unknown-spi (passed on), handed-off |
//!
//! Tables: [`sa::EspTables`] (SAs with expanded keys, inbound SPI hash, protect rules), one
//! immutable snapshot per configuration built by [`control::EspControl`].
//!
//! Multi-thread: every SA has an owner worker, the only one that advances its sequence number
//! (outbound) or its replay window (inbound); a packet meeting an SA on another worker is handed
//! to the owner. A protect rule lists several SAs and worker w starts with the SA at w mod n, so
//! one SA per worker per peer keeps every packet on the worker that received it and throughput
//! grows with workers; the far end's inbound SAs are owned the same way. Per-SA state lives in
//! the owner's node, keyed by the SA's generation, and survives new snapshots.

pub mod control;
pub mod crypto;
pub mod decrypt;
pub mod encrypt;
pub mod packet;
pub mod replay;
pub mod sa;

pub use control::{EspControl, EspError, Lifetime, ProtectRule, SaConfig, SaEntry, SaSequence};
pub use crypto::{Backend, KeyMaterial};
pub use decrypt::{DecryptError, EspDecrypt};
pub use encrypt::{EncryptError, EspEncrypt, RuleCounters, SaCounters};
pub use sa::{Direction, EspTables, Limits, Mode};

use vpg_graph::{ArcId, FeatureRegistration, GraphSpec};

/// Name of the encryption node.
pub const ENCRYPT_NODE: &str = "esp4-encrypt";
/// Name of the decryption node.
pub const DECRYPT_NODE: &str = "esp4-decrypt";

/// Registers both nodes as features: `esp4-encrypt` last on `ip4-output` (after output ACLs and
/// SNAT: it sees the packet as it will leave), `esp4-decrypt` first on `ip4-unicast` (input
/// ACLs and NAT see the decrypted packet, never the ESP one).
pub fn register(g: &mut GraphSpec) {
    g.node(EspEncrypt::default)
        .node(EspDecrypt::default)
        .feature(
            FeatureRegistration::new(ArcId::Ip4Output, ENCRYPT_NODE)
                .after("acl-out-ip4")
                .after("nat44-in2out"),
        )
        .feature(
            FeatureRegistration::new(ArcId::Ip4Unicast, DECRYPT_NODE)
                .before("acl-in-ip4")
                .before("nat44-out2in"),
        );
}
