//! IPsec ESP in the daemon: the API's SA and protect-rule items as operations on the
//! `EspControl` in the data-plane state (applied to the working copy, so a transaction adds or
//! removes SAs and rules whole or not at all), the snapshot (`EspTables`, with the interfaces'
//! MTUs), and the dumps, with per-SA and per-rule counters gathered from every worker's nodes.
//!
//! ESP runs where its features are enabled: `esp4-encrypt` on an uplink's `ip4-output` and
//! `esp4-decrypt` on its `ip4-unicast` (`feature enable`, or `vpgctl esp interface IF on`,
//! which enables both in one transaction).

use crate::dataplane::{DataPlane, DpError, OpResult, State};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;
use vpg_api::esp::{
    EspCrypto, EspDirection, EspLifetime, EspMode, EspProtectAdd, EspProtectDetails, EspSaAdd,
    EspSaCounters, EspSaDetails, EspSequenceDetails, EspSequenceSummary, EspSummaryDetails,
};
use vpg_api::{ApiError, ConfigItem, ErrorCode, Prefix};
use vpg_esp::{
    Backend, Direction, EspError, KeyMaterial, Lifetime, Limits, Mode, ProtectRule, SaConfig,
    SaCounters,
};
use vpg_graph::{ArcId, ConfigSet, Time};

/// One ESP change.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum EspOp {
    /// Add SA `id`.
    AddSa(u32, Box<SaConfig>),
    /// Delete SA `id`.
    DelSa(u32),
    /// Retire SA `id` after a grace period.
    RetireSa(u32, Duration),
    /// Add or replace a protect rule; `tunnel` names a VXLAN tunnel interface to resolve.
    SetRule {
        /// Id.
        id: u32,
        /// The rule (for a tunnel rule, its selectors are filled in from the tunnel).
        rule: ProtectRule,
        /// The VXLAN tunnel it protects.
        tunnel: Option<u32>,
        /// Replace an existing rule.
        replace: bool,
    },
    /// Delete a protect rule.
    DelRule(u32),
}

/// The API's SA: key parsed and checked (never quoted).
pub fn sa_config(a: &EspSaAdd) -> Result<SaConfig, ApiError> {
    a.check()?;
    let bytes = vpg_api::esp::parse_key(&a.key)
        .ok_or_else(|| ApiError::bad_request("key", "key is not hexadecimal"))?;
    let key = KeyMaterial::new(bytes).map_err(|e| ApiError::bad_request("key", e.to_string()))?;
    let mode = match (a.mode, a.tunnel_src, a.tunnel_dst) {
        (EspMode::Tunnel, Some(src), Some(dst)) => Mode::Tunnel { src, dst },
        _ => Mode::Transport,
    };
    let l = a.lifetime.unwrap_or_default();
    Ok(SaConfig {
        spi: a.spi,
        direction: match a.direction {
            EspDirection::In => Direction::Inbound,
            EspDirection::Out => Direction::Outbound,
        },
        mode,
        key,
        key_id: a.key_id,
        esn: a.esn,
        replay_window: a.replay_window.unwrap_or(vpg_esp::replay::DEFAULT_WINDOW),
        worker: a.worker,
        lifetime: Lifetime {
            soft: Limits {
                packets: l.soft_packets,
                bytes: l.soft_bytes,
                seconds: l.soft_seconds,
            },
            hard: Limits {
                packets: l.hard_packets,
                bytes: l.hard_bytes,
                seconds: l.hard_seconds,
            },
        },
        backend: None,
    })
}

/// The API's ESP items as operations (`None` for other items).
pub fn to_op(item: &ConfigItem) -> Option<Result<crate::dataplane::Op, ApiError>> {
    use crate::dataplane::Op;
    let op = match item {
        ConfigItem::EspSaAdd(a) => match sa_config(a) {
            Ok(c) => EspOp::AddSa(a.sa_id, Box::new(c)),
            Err(e) => return Some(Err(e)),
        },
        ConfigItem::EspSaDel { sa_id } => EspOp::DelSa(*sa_id),
        ConfigItem::EspSaRetire { sa_id, grace_s } => {
            EspOp::RetireSa(*sa_id, Duration::from_secs(*grace_s))
        }
        ConfigItem::EspProtectAdd(r) => {
            if let Err(e) = r.check() {
                return Some(Err(e));
            }
            rule_op(r)
        }
        ConfigItem::EspProtectDel { rule_id } => EspOp::DelRule(*rule_id),
        _ => return None,
    };
    Some(Ok(Op::Esp(op)))
}

fn rule_op(r: &EspProtectAdd) -> EspOp {
    let dst = r.dst.unwrap_or(Prefix {
        addr: Ipv4Addr::UNSPECIFIED,
        len: 32,
    });
    EspOp::SetRule {
        id: r.rule_id,
        rule: ProtectRule {
            dst: dst.addr,
            len: dst.len,
            proto: r.proto,
            port: r.port,
            sas: r.sas.clone(),
        },
        tunnel: r.tunnel,
        replace: r.replace,
    }
}

/// Applies one operation to the working copy of the state at `now` (the workers' time).
pub(crate) fn apply(s: &mut State, op: EspOp, now: Time) -> Result<OpResult, DpError> {
    match op {
        EspOp::AddSa(id, cfg) => s.esp.add_sa(id, *cfg, now)?,
        EspOp::DelSa(id) => s.esp.del_sa(id)?,
        EspOp::RetireSa(id, grace) => s.esp.retire_sa(id, grace, now)?,
        EspOp::SetRule {
            id,
            mut rule,
            tunnel,
            replace,
        } => {
            if let Some(sw_if) = tunnel {
                // The tunnel's underlay packets: UDP to the far VTEP's port.
                let t = s
                    .vxlan
                    .tunnels()
                    .into_iter()
                    .find(|t| t.sw_if == sw_if)
                    .ok_or(DpError::NoInterface(sw_if))?;
                rule.dst = t.key.remote;
                rule.len = 32;
                rule.proto = Some(17);
                rule.port = Some(t.key.port);
            }
            s.esp.set_rule(id, rule, replace)?;
            s.esp_tunnels.retain(|&(r, _)| r != id);
            if let Some(t) = tunnel {
                s.esp_tunnels.push((id, t));
            }
        }
        EspOp::DelRule(id) => {
            s.esp.del_rule(id)?;
            s.esp_tunnels.retain(|&(r, _)| r != id);
        }
    }
    Ok(OpResult::Done)
}

/// Adds the ESP tables to a snapshot (with the interfaces' MTUs, so transport mode never sends
/// more than the link takes).
pub(crate) fn publish(s: &State, cfg: ConfigSet) -> ConfigSet {
    let mut esp = s.esp.clone();
    let mut mtu = Vec::new();
    for i in s.ip4.interfaces() {
        if mtu.len() <= i.sw_if as usize {
            mtu.resize(i.sw_if as usize + 1, 0);
        }
        mtu[i.sw_if as usize] = i.mtu;
    }
    esp.set_mtus(mtu);
    cfg.with(esp.tables())
}

/// An ESP refusal as (code, object, field) of an API error.
pub fn api_error(e: &EspError) -> (ErrorCode, Option<String>, Option<&'static str>) {
    use ErrorCode::*;
    use EspError as E;
    match e {
        E::ReservedSpi => (BadRequest, None, Some("spi")),
        E::SaExists(i) => (AlreadyExists, Some(format!("esp sa {i}")), Some("sa_id")),
        E::NoSa(i) => (NotFound, Some(format!("esp sa {i}")), Some("sa_id")),
        E::SpiTaken { spi, .. } => (AlreadyExists, Some(format!("spi {spi:#010x}")), Some("spi")),
        E::Crypto(_) => (BadRequest, None, Some("key")),
        E::BadWindow(_) => (BadRequest, None, Some("replay_window")),
        E::BadWorker { .. } => (BadRequest, None, Some("worker")),
        E::BadEndpoint { field, .. } => (
            BadRequest,
            None,
            Some(if *field == "src" {
                "tunnel_src"
            } else {
                "tunnel_dst"
            }),
        ),
        E::BadLifetime(_) => (BadRequest, None, Some("lifetime")),
        E::RuleExists(i) => (
            AlreadyExists,
            Some(format!("esp protect rule {i}")),
            Some("rule_id"),
        ),
        E::NoRule(i) => (
            NotFound,
            Some(format!("esp protect rule {i}")),
            Some("rule_id"),
        ),
        E::NotOutbound(_) => (BadRequest, None, Some("sas")),
        E::HostBits { .. } => (BadRequest, None, Some("dst")),
        E::InUse { sa, .. } => (Failed, Some(format!("esp sa {sa}")), Some("sa_id")),
        E::KeyInUse { sa } => (AlreadyExists, Some(format!("esp sa {sa}")), Some("key")),
    }
}

/// Per-SA counters (by generation) and per-rule counters (by id), summed over the workers.
fn counters(dp: &DataPlane) -> (HashMap<u64, SaCounters>, HashMap<u32, (u64, u64)>) {
    let mut sas: HashMap<u64, SaCounters> = HashMap::new();
    let mut rules: HashMap<u32, (u64, u64)> = HashMap::new();
    for w in 0..dp.workers().len() {
        let got = dp.workers().exec(w, |rt| {
            let mut out = Vec::new();
            let mut rc = Vec::new();
            if let Some(n) = rt.node_mut::<vpg_esp::EspEncrypt>(vpg_esp::ENCRYPT_NODE) {
                out.extend(n.sa_counters());
                rc = n.rule_counters();
            }
            if let Some(n) = rt.node_mut::<vpg_esp::EspDecrypt>(vpg_esp::DECRYPT_NODE) {
                out.extend(n.sa_counters());
            }
            (out, rc)
        });
        let Some((sa, rc)) = got else { continue };
        for (gen, c) in sa {
            sas.entry(gen).or_default().merge(&c);
        }
        for (id, c) in rc {
            let e = rules.entry(id).or_default();
            e.0 += c.protected;
            e.1 += c.no_sa;
        }
    }
    (sas, rules)
}

fn lifetime_out(l: &Lifetime) -> EspLifetime {
    EspLifetime {
        soft_packets: l.soft.packets,
        soft_bytes: l.soft.bytes,
        soft_seconds: l.soft.seconds,
        hard_packets: l.hard.packets,
        hard_bytes: l.hard.bytes,
        hard_seconds: l.hard.seconds,
    }
}

/// `dump_esp_sas` rows: configuration without keys, state and counters.
pub fn sa_details(dp: &DataPlane) -> Vec<EspSaDetails> {
    let (counters, _) = counters(dp);
    let now = dp.workers().now();
    let seq = dp
        .sequences()
        .map(|f| f.lock().unwrap_or_else(|p| p.into_inner()));
    dp.esp()
        .sas()
        .into_iter()
        .map(|e| {
            let c = counters.get(&e.gen).copied().unwrap_or_default();
            let hard_time = e
                .lifetime
                .hard
                .seconds
                .map(|s| e.created + Duration::from_secs(s));
            let stop = match (hard_time, e.retire_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let stopped = stop.is_some_and(|t| now >= t);
            let soft_time = e
                .lifetime
                .soft
                .seconds
                .is_some_and(|s| now >= e.created + Duration::from_secs(s));
            let state = if c.hard_expired || stopped {
                "expired"
            } else if e.retire_at.is_some() {
                "retiring"
            } else if c.soft_expired || soft_time {
                "soft-expired"
            } else {
                "active"
            };
            let (tunnel_src, tunnel_dst, mode) = match e.mode {
                Mode::Tunnel { src, dst } => (Some(src), Some(dst), EspMode::Tunnel),
                Mode::Transport => (None, None, EspMode::Transport),
            };
            EspSaDetails {
                sa_id: e.id,
                spi: e.spi,
                direction: match e.direction {
                    Direction::Inbound => EspDirection::In,
                    Direction::Outbound => EspDirection::Out,
                },
                mode,
                tunnel_src,
                tunnel_dst,
                crypto: if e.key_bits == 256 {
                    EspCrypto::AesGcm256
                } else {
                    EspCrypto::AesGcm128
                },
                key_id: e.key_id,
                fingerprint: e.fingerprint,
                esn: e.esn,
                replay_window: e.replay_window,
                worker: e.worker,
                backend: e.backend.name().into(),
                state: state.into(),
                age_s: now.since(e.created).as_secs(),
                retire_in_s: e.retire_at.map(|t| t.since(now).as_secs()),
                lifetime: lifetime_out(&e.lifetime),
                counters: EspSaCounters {
                    packets: c.packets,
                    bytes: c.bytes,
                    auth_failures: c.auth_failures,
                    replays: c.replays,
                    drops: c.drops,
                    seq: c.seq,
                },
                seq_reserved: seq.as_ref().and_then(|f| f.limit(e.id)),
            }
        })
        .collect()
}

/// `dump_esp_sequences` rows (none without a sequence file).
pub fn sequence_details(dp: &DataPlane) -> Vec<EspSequenceDetails> {
    let Some(f) = dp.sequences() else {
        return Vec::new();
    };
    let f = f.lock().unwrap_or_else(|p| p.into_inner());
    f.records()
        .into_iter()
        .map(|r| EspSequenceDetails {
            fingerprint: r.fingerprint,
            direction: if r.outbound {
                EspDirection::Out
            } else {
                EspDirection::In
            },
            seq: r.seq,
            sa_id: r.sa,
        })
        .collect()
}

/// `dump_esp_protect` rows.
pub fn protect_details(dp: &DataPlane) -> Vec<EspProtectDetails> {
    let (_, counters) = counters(dp);
    let tunnels = dp.esp_tunnels();
    dp.esp()
        .rules()
        .into_iter()
        .map(|(id, r)| {
            let (protected, no_sa_drops) = counters.get(&id).copied().unwrap_or_default();
            EspProtectDetails {
                rule_id: id,
                dst: Prefix {
                    addr: r.dst,
                    len: r.len,
                },
                tunnel: tunnels.iter().find(|&&(rid, _)| rid == id).map(|&(_, t)| t),
                proto: r.proto,
                port: r.port,
                sas: r.sas,
                protected,
                no_sa_drops,
            }
        })
        .collect()
}

/// `dump_esp_summary`.
pub fn summary(dp: &DataPlane) -> EspSummaryDetails {
    let sas = dp.esp().sas();
    let errors = vpg_graph::show::error_rows(dp.layout(), &dp.workers().stats());
    let err = |node: &str, name: &str| {
        errors
            .iter()
            .filter(|r| r.node == node && r.name == name)
            .map(|r| r.count)
            .sum::<u64>()
    };
    let on = |arc: ArcId, f: &str| {
        dp.features()
            .into_iter()
            .filter(|(a, n, _)| *a == arc && n == f)
            .map(|(_, _, i)| i)
            .collect::<Vec<_>>()
    };
    EspSummaryDetails {
        sas_in: sas
            .iter()
            .filter(|e| e.direction == Direction::Inbound)
            .count() as u32,
        sas_out: sas
            .iter()
            .filter(|e| e.direction == Direction::Outbound)
            .count() as u32,
        rules: dp.esp().rules().len() as u32,
        encrypt_interfaces: on(ArcId::Ip4Output, vpg_esp::ENCRYPT_NODE),
        decrypt_interfaces: on(ArcId::Ip4Unicast, vpg_esp::DECRYPT_NODE),
        encrypted: err(vpg_esp::ENCRYPT_NODE, "encrypted"),
        decrypted: err(vpg_esp::DECRYPT_NODE, "decrypted"),
        would_have_left_in_clear: err(vpg_esp::ENCRYPT_NODE, "no-sa"),
        auth_failures: err(vpg_esp::DECRYPT_NODE, "auth-failed"),
        replays: err(vpg_esp::DECRYPT_NODE, "replay"),
        backend: Backend::DEFAULT.describe(),
        sequences: dp.sequences().map(|f| {
            let f = f.lock().unwrap_or_else(|p| p.into_inner());
            EspSequenceSummary {
                file: f.path().display().to_string(),
                keys: f.records().len() as u32,
                unreserved_drops: err(vpg_esp::ENCRYPT_NODE, "seq-unreserved"),
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_sa_becomes_config_without_echoing_the_key() {
        let a = EspSaAdd {
            sa_id: 1,
            spi: 0x10,
            direction: EspDirection::In,
            mode: EspMode::Tunnel,
            tunnel_src: Some(Ipv4Addr::new(1, 1, 1, 1)),
            tunnel_dst: Some(Ipv4Addr::new(1, 1, 1, 2)),
            crypto: EspCrypto::AesGcm128,
            key: "11".repeat(20),
            key_id: 3,
            esn: true,
            replay_window: Some(1024),
            worker: Some(0),
            lifetime: Some(EspLifetime {
                hard_seconds: Some(60),
                ..EspLifetime::default()
            }),
        };
        let c = sa_config(&a).unwrap();
        assert_eq!(c.direction, Direction::Inbound);
        assert_eq!(c.replay_window, 1024);
        assert_eq!(c.lifetime.hard.seconds, Some(60));
        assert!(matches!(c.mode, Mode::Tunnel { .. }));
        assert!(!format!("{c:?}").contains("1111"));
        let e = sa_config(&EspSaAdd {
            key: "11".repeat(19),
            ..a
        })
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("key"));
        assert!(!e.to_string().contains("1111"));
    }
}
