//! Talking to vpgd: reading its configuration into a [`Current`] from the dumps (interfaces,
//! tunnels, neighbors, routes, ACLs, NAT44, features, ESP SAs and rules), and applying a
//! [`Plan`] as one transaction. Blocking (vpg-api's client); the loop runs it on its own
//! thread.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use vpg_api::nat44::Nat44SummaryDetails;
use vpg_api::{ApiError, Applied, Client, ClientError, Details, Request};

use crate::diff::Plan;
use crate::model::{
    canonical, AclContent, CurIf, CurRule, CurSa, Current, EspSequences, IfKind, MapKey, PoolKey,
    SaState, ESP_DECRYPT, ESP_ENCRYPT,
};
use vpg_api::esp::{EspDirection, EspMode};

/// How long a request may take before vpgd counts as gone.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a transaction may take per item on top of [`REQUEST_TIMEOUT`].
pub const TIME_PER_ITEM: Duration = Duration::from_millis(10);

/// Why talking to vpgd failed.
#[derive(Debug, thiserror::Error)]
pub enum VpgdError {
    /// vpgd is not there, or the connection broke (a restart): reconnect and resync.
    #[error("vpgd unreachable: {0}")]
    Unreachable(String),
    /// vpgd refused the transaction; nothing changed.
    #[error("vpgd refused the transaction: {0}")]
    Refused(ApiError),
    /// vpgd refused the transaction at an item concerning this interface (by name).
    #[error("vpgd refused the transaction: {0}")]
    RefusedAt(ApiError, Option<String>),
    /// vpgd answered something this agent cannot use (too old an API, say).
    #[error("{0}")]
    Unusable(String),
}

impl From<ClientError> for VpgdError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api(a) => VpgdError::Refused(a),
            ClientError::Unexpected(m) => VpgdError::Unusable(m),
            other => VpgdError::Unreachable(other.to_string()),
        }
    }
}

/// Connects to vpgd's API socket.
pub fn connect(socket: &Path) -> Result<Client, VpgdError> {
    let mut c = Client::connect(socket, concat!("vpg-agent ", env!("CARGO_PKG_VERSION")))
        .map_err(|e| VpgdError::Unreachable(format!("{}: {e}", socket.display())))?;
    c.set_timeout(Some(REQUEST_TIMEOUT))?;
    // 1.4: vpgd reuses interface indices, which the plans' index prediction relies on.
    if c.server_minor < 4 {
        return Err(VpgdError::Unusable(format!(
            "vpgd speaks API 1.{}; the agent needs 1.4 (interface indices reused)",
            c.server_minor
        )));
    }
    Ok(c)
}

fn dump(c: &mut Client, r: Request) -> Result<Vec<Details>, VpgdError> {
    Ok(c.dump(&r)?)
}

/// Reads vpgd's configuration (about ten dumps; nothing is changed).
pub fn read_current(c: &mut Client, sequences: bool) -> Result<Current, VpgdError> {
    let version = c.version()?;
    let mut cur = Current {
        workers: version.workers as u32,
        ..Current::default()
    };
    for d in c.interfaces()? {
        let kind = IfKind::AfPacket {
            host_if: d.host_if.clone(),
        };
        let mut i = CurIf::created(d.name, kind);
        i.admin_up = d.admin_up;
        i.mtu = d.mtu;
        i.addresses = d.addresses.into_iter().collect();
        i.proxy_arp = d.proxy_arp;
        cur.interfaces.insert(d.sw_if, i);
    }
    for d in dump(c, Request::DumpVxlanTunnels)? {
        if let Details::VxlanTunnel(t) = d {
            if let Some(i) = cur.interfaces.get_mut(&t.sw_if) {
                i.kind = IfKind::Vxlan {
                    local: t.local,
                    remote: t.remote,
                    vni: t.vni,
                    port: t.port,
                    mac: t.mac,
                    // A learned MAC is not configuration.
                    remote_mac: t.remote_mac.filter(|_| !t.remote_mac_learned),
                };
            }
        }
    }
    for n in c.neighbors()? {
        if let Some(i) = cur.interfaces.get_mut(&n.sw_if) {
            i.neighbors.insert(n.ip, n.mac);
        }
    }
    for r in c.routes()? {
        if r.source == "api" {
            cur.routes.insert(r.prefix, r.path);
        }
    }
    for d in dump(c, Request::DumpAcls { acl_id: None })? {
        if let Details::Acl(a) = d {
            cur.acls.insert(
                a.acl_id,
                AclContent {
                    tag: a.tag,
                    rules: a.rules,
                },
            );
        }
    }
    for d in dump(c, Request::DumpAclInterfaces)? {
        if let Details::AclInterface(a) = d {
            if let Some(i) = cur.interfaces.get_mut(&a.sw_if) {
                i.acl_in = a.input;
                i.acl_out = a.output;
            }
        }
    }
    for d in dump(c, Request::DumpNat44Interfaces)? {
        if let Details::Nat44Interface(n) = d {
            if let Some(i) = cur.interfaces.get_mut(&n.sw_if) {
                i.nat_inside = n.inside;
                i.nat_outside = n.outside;
            }
        }
    }
    for d in dump(c, Request::DumpNat44Addresses)? {
        if let Details::Nat44Address(a) = d {
            // An interface entry also shows the interface's current address.
            cur.pool.insert(match (a.sw_if, a.address) {
                (Some(s), _) => PoolKey::Interface(s),
                (None, Some(addr)) => PoolKey::Address(addr),
                (None, None) => continue,
            });
        }
    }
    for d in dump(c, Request::DumpNat44Mappings)? {
        match d {
            Details::Nat44Mapping(m) => {
                cur.mappings
                    .insert(MapKey::of(&m.mapping), canonical(m.mapping));
            }
            Details::Nat44Identity(m) => {
                cur.identities.insert(
                    MapKey {
                        external: m.address,
                        proto: m.proto,
                        port: m.port,
                    },
                    m.tag,
                );
            }
            _ => {}
        }
    }
    for d in dump(c, Request::DumpNat44Summary)? {
        if let Details::Nat44Summary(Nat44SummaryDetails { settings, .. }) = d {
            let mut nn = settings.never_nat.unwrap_or_default();
            nn.sort();
            nn.dedup();
            cur.never_nat = nn;
        }
    }
    for f in c.features()? {
        if let Some(i) = cur.interfaces.get_mut(&f.sw_if) {
            let which = (f.arc.as_str(), f.feature.as_str());
            i.esp_out |= which == ESP_ENCRYPT;
            i.esp_in |= which == ESP_DECRYPT;
        }
    }
    // The sequence file matters only to a node that encrypts (which keys may go in again).
    let summary = if sequences {
        dump(c, Request::DumpEspSummary)?
    } else {
        Vec::new()
    };
    for d in summary {
        if let Details::EspSummary(s) = d {
            cur.esp_sequences = s.sequences.map(|q| EspSequences {
                file: q.file,
                keys: BTreeSet::new(),
            });
        }
    }
    if let Some(seq) = &mut cur.esp_sequences {
        for d in dump(c, Request::DumpEspSequences)? {
            if let Details::EspSequence(r) = d {
                if r.direction == EspDirection::Out {
                    seq.keys.insert(r.fingerprint);
                }
            }
        }
    }
    for d in dump(c, Request::DumpEspSas)? {
        if let Details::EspSa(s) = d {
            let state = match s.state.as_str() {
                "active" | "soft-expired" => SaState::Active,
                "retiring" => SaState::Retiring,
                _ => SaState::Expired,
            };
            cur.esp_sas.insert(
                s.sa_id,
                CurSa {
                    spi: s.spi,
                    outbound: s.direction == EspDirection::Out,
                    transport: s.mode == EspMode::Transport,
                    crypto: s.crypto,
                    key_id: s.key_id,
                    fingerprint: s.fingerprint,
                    esn: s.esn,
                    replay_window: s.replay_window,
                    worker: s.worker,
                    lifetime: s.lifetime != Default::default(),
                    state,
                    retire_in_s: s.retire_in_s,
                },
            );
        }
    }
    for d in dump(c, Request::DumpEspProtect)? {
        if let Details::EspProtect(r) = d {
            cur.esp_rules.insert(
                r.rule_id,
                CurRule {
                    dst: r.dst,
                    proto: r.proto,
                    port: r.port,
                    tunnel: r.tunnel,
                    sas: r.sas,
                },
            );
        }
    }
    Ok(cur)
}

/// Applies a plan as one transaction. The interfaces vpgd created must be those the plan
/// named (another client creating interfaces concurrently would shift them): a mismatch is
/// reported so the caller resyncs at once.
pub fn apply(c: &mut Client, plan: &Plan) -> Result<Applied, VpgdError> {
    // A transaction's time grows with its size (a node's first one opens a ring pair per pod and
    // compiles every ACL): give it time in proportion, so a big node is not declared gone while
    // vpgd works.
    let items = u32::try_from(plan.items.len()).unwrap_or(u32::MAX);
    c.set_timeout(Some(REQUEST_TIMEOUT + TIME_PER_ITEM.saturating_mul(items)))?;
    let applied = c.transaction(plan.items.clone());
    c.set_timeout(Some(REQUEST_TIMEOUT))?;
    let applied = applied?;
    let want: Vec<u32> = plan.created.iter().map(|(_, s)| *s).collect();
    if applied.created != want {
        return Err(VpgdError::Unusable(format!(
            "vpgd created interfaces {:?}, the plan expected {want:?} (another client changed vpgd meanwhile); resyncing",
            applied.created
        )));
    }
    Ok(applied)
}
