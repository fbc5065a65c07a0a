//! The minimal change set from what vpgd holds to what the agent wants, as one transaction.
//!
//! [`diff`] compares a [`Desired`] with a [`Current`] object by object and emits only what
//! differs: deletes of the agent's objects that should not be there, adds and replacements of
//! what is missing or different, nothing for what is already right (so an agent restart with
//! nothing changed sends nothing). Objects the agent does not own ([`Ownership`]) are never
//! touched.
//!
//! The order inside the transaction follows vpgd's rules (the property tests replay every plan
//! through [`Current::apply`], which refuses what vpgd refuses):
//!
//! 1. route, NAT44 mapping, identity and pool deletions (a route through an interface about to
//!    be recreated goes before the interface);
//! 2. interface deletions (vpgd takes their addresses, neighbors, ACL lists and NAT role along);
//! 3. interface creations, in name order: vpgd gives each created interface the lowest index
//!    no interface holds at that point (indices of interfaces deleted in step 2 included), which
//!    later items use. An index can thus name a deleted interface before step 2 and its
//!    successor after: anything vpgd held for the old one (routes through it, its pool entry,
//!    its settings, lists and roles) counts as gone, never as already right for the new one;
//! 4. per interface: admin state, MTU, addresses, proxy ARP, neighbors;
//! 5. ACLs added or replaced (before lists name them), then interface ACL lists;
//! 6. routes added; NAT44 roles, pool, identities, mappings, never-NAT prefixes;
//! 7. ESP: SAs in the way of a new inbound SPI deleted, new SAs added, protect rules added or
//!    replaced (outbound traffic switches SAs here, in the same snapshot), rules deleted, then
//!    the agent's outbound SAs no rule needs deleted and inbound SAs no longer wanted retired
//!    with the grace period (expired ones deleted);
//! 8. ACL deletions last (vpgd refuses to delete an ACL still in a list).
//!
//! ACLs are matched by role: the reflective ACL and the global table have fixed ids (`base`,
//! `base + 1`; the global table is replaced in place), a local table keeps the id of the
//! current ACL carrying its tag (its content hash), and a new one takes the lowest id from
//! `base + 2` that vpgd does not have (so an id is never deleted and re-added in one
//! transaction).
//!
//! ESP SAs are matched by content (SPI, direction, key fingerprint, key id, parameters; only
//! active ones): an SA is never modified, a different key is a different SA. A new SA takes
//! the lowest id from `esp_base` that vpgd does not have. A protect rule is matched by its
//! peer (all traffic to one node IP) and replaced in place when its SA list changes.

use std::collections::{BTreeMap, BTreeSet};

use std::net::Ipv4Addr;

use vpg_api::acl::Direction;
use vpg_api::esp::{EspDirection, EspMode, EspProtectAdd, EspSaAdd};
use vpg_api::nat44::{Nat44Identity, Nat44MappingKey, Nat44Settings};
use vpg_api::{ConfigItem, Prefix, RoutePath};

use crate::model::{
    AclSlot, CurIf, Current, Desired, IfKind, Ownership, PathByName, PoolKey, PoolName, SaName,
    SaState, ESP_DECRYPT, ESP_ENCRYPT,
};

/// A transaction and what it concerns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The items, in order.
    pub items: Vec<ConfigItem>,
    /// Per item, the interface it concerns (by name), if any: a refused item names the pod
    /// or tunnel to blame.
    pub subjects: Vec<Option<String>>,
    /// Interfaces the transaction creates, with the index each will get.
    pub created: Vec<(String, u32)>,
}

impl Plan {
    /// True when vpgd already holds the desired state.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn push(&mut self, item: ConfigItem, subject: Option<&str>) {
        self.items.push(item);
        self.subjects.push(subject.map(str::to_string));
    }
}

/// The transaction that makes `cur` hold `want` for the objects `own` covers.
pub fn diff(want: &Desired, cur: &Current, own: &Ownership) -> Plan {
    let mut plan = Plan::default();

    // Interfaces: keep those whose kind matches, delete the agent's others, create the rest.
    let mut names: BTreeMap<String, u32> = BTreeMap::new();
    let mut deleted: Vec<(u32, &CurIf)> = Vec::new();
    for (&sw, ci) in &cur.interfaces {
        if !own.owns_interface(&ci.name) {
            names.insert(ci.name.clone(), sw);
            continue;
        }
        match want.interfaces.get(&ci.name) {
            Some(w) if w.kind == ci.kind => {
                names.insert(ci.name.clone(), sw);
            }
            _ => deleted.push((sw, ci)),
        }
    }
    // The indices in use once the deletions are done; each creation takes the lowest free.
    let mut used: BTreeSet<u32> = cur.interfaces.keys().copied().collect();
    for (sw, _) in &deleted {
        used.remove(sw);
    }
    for name in want.interfaces.keys() {
        if !names.contains_key(name) {
            let sw = crate::model::lowest_free(used.iter().copied());
            used.insert(sw);
            names.insert(name.clone(), sw);
            plan.created.push((name.clone(), sw));
        }
    }
    // What vpgd holds for an interface being deleted goes with it.
    let gone = |sw: u32| deleted.iter().any(|(d, _)| *d == sw);
    let kept_routes: BTreeMap<Prefix, RoutePath> = cur
        .routes
        .iter()
        .filter(|(_, rp)| !rp.sw_if().is_some_and(gone))
        .map(|(p, rp)| (*p, *rp))
        .collect();
    let kept_pool: BTreeSet<PoolKey> = cur
        .pool
        .iter()
        .filter(|k| !matches!(k, PoolKey::Interface(sw) if gone(*sw)))
        .copied()
        .collect();
    let name_of = |sw: u32| -> Option<String> {
        names
            .iter()
            .find(|(_, s)| **s == sw)
            .map(|(n, _)| n.clone())
            .or_else(|| cur.interfaces.get(&sw).map(|i| i.name.clone()))
    };
    let path = |p: &PathByName| -> Option<RoutePath> {
        Some(match p {
            PathByName::Via {
                next_hop,
                interface,
            } => RoutePath::Via {
                next_hop: *next_hop,
                sw_if: *names.get(interface)?,
            },
            PathByName::Attached { interface } => RoutePath::Attached {
                sw_if: *names.get(interface)?,
            },
            PathByName::Drop => RoutePath::Drop,
            PathByName::Local => RoutePath::Local,
        })
    };
    let want_routes: BTreeMap<_, _> = want
        .routes
        .iter()
        .filter_map(|(p, r)| Some((*p, path(r)?)))
        .collect();
    let want_pool: BTreeSet<PoolKey> = want
        .pool
        .iter()
        .filter_map(|p| match p {
            PoolName::Address(a) => Some(PoolKey::Address(*a)),
            PoolName::Interface(n) => names.get(n).map(|s| PoolKey::Interface(*s)),
        })
        .collect();

    // ACL ids by role.
    let mut acl_ids: BTreeMap<&AclSlot, u32> = BTreeMap::new();
    let mut by_tag: BTreeMap<&str, u32> = BTreeMap::new();
    let first_local = own.acl_base.saturating_add(2);
    for (&id, a) in cur.acls.range(first_local..) {
        by_tag.entry(a.tag.as_str()).or_insert(id);
    }
    let mut taken: BTreeSet<u32> = cur.acls.keys().copied().collect();
    let mut fresh = first_local;
    for slot in want.acls.keys() {
        let id = match (own.fixed_id(slot), slot) {
            (Some(id), _) => id,
            (None, AclSlot::Local(tag)) => match by_tag.get(tag.as_str()) {
                Some(&id) => id,
                None => {
                    while taken.contains(&fresh) {
                        fresh += 1;
                    }
                    taken.insert(fresh);
                    fresh
                }
            },
            (None, _) => continue,
        };
        acl_ids.insert(slot, id);
    }
    let ids = |slots: &[AclSlot]| -> Vec<u32> {
        slots
            .iter()
            .filter_map(|s| acl_ids.get(s).copied().or_else(|| own.fixed_id(s)))
            .collect()
    };

    // 1. Deletions that must precede interface deletions.
    for (p, rp) in &cur.routes {
        if want_routes.get(p) != kept_routes.get(p) {
            plan.push(
                ConfigItem::DelRoute { prefix: *p },
                // The interface it goes through now (a successor may get its index later).
                rp.sw_if()
                    .and_then(|s| cur.interfaces.get(&s))
                    .map(|i| i.name.as_str()),
            );
        }
    }
    for (k, m) in &cur.mappings {
        if !want.mappings.contains_key(k) {
            plan.push(
                ConfigItem::Nat44DelMapping(Nat44MappingKey {
                    external: m.external,
                    proto: m.proto,
                    external_port: m.external_port,
                }),
                None,
            );
        }
    }
    for (k, tag) in &cur.identities {
        if !want.identities.contains_key(k) {
            plan.push(
                ConfigItem::Nat44DelIdentity(Nat44Identity {
                    address: k.external,
                    proto: k.proto,
                    port: k.port,
                    tag: tag.clone(),
                }),
                None,
            );
        }
    }
    for k in &cur.pool {
        if !want_pool.contains(k) || !kept_pool.contains(k) {
            plan.push(ConfigItem::Nat44DelPool(k.entry()), None);
        }
    }

    // 2. Interface deletions.
    for (sw, ci) in &deleted {
        plan.push(ConfigItem::DeleteInterface { sw_if: *sw }, Some(&ci.name));
    }

    // 3. Creations.
    for (name, _) in plan.created.clone() {
        let item = match &want.interfaces[&name].kind {
            IfKind::AfPacket { host_if } => ConfigItem::CreateAfPacket {
                host_if: host_if.clone(),
                name: Some(name.clone()),
                mac: None,
            },
            IfKind::Vxlan {
                local,
                remote,
                vni,
                port,
                mac,
                remote_mac,
            } => ConfigItem::CreateVxlanTunnel {
                local: *local,
                remote: *remote,
                vni: *vni,
                port: Some(*port),
                name: Some(name.clone()),
                mac: Some(*mac),
                remote_mac: *remote_mac,
            },
        };
        plan.push(item, Some(&name));
    }

    // 4. Interface settings, against what the interface has (or gets when created).
    let bases: BTreeMap<&String, CurIf> = want
        .interfaces
        .iter()
        .map(|(n, w)| {
            let sw = names[n];
            // A recreated interface may have its predecessor's index and name: it starts
            // afresh all the same.
            let base = match cur.interfaces.get(&sw) {
                Some(ci) if ci.name == *n && !gone(sw) => ci.clone(),
                _ => CurIf::created(n.clone(), w.kind.clone()),
            };
            (n, base)
        })
        .collect();
    for (n, w) in &want.interfaces {
        let sw_if = names[n];
        let b = &bases[n];
        let s = Some(n.as_str());
        if b.admin_up != w.admin_up {
            plan.push(
                ConfigItem::SetAdminState {
                    sw_if,
                    up: w.admin_up,
                },
                s,
            );
        }
        if let Some(mtu) = w.mtu.filter(|m| *m != b.mtu) {
            plan.push(ConfigItem::SetMtu { sw_if, mtu }, s);
        }
        for p in b.addresses.difference(&w.addresses) {
            plan.push(ConfigItem::DelAddress { sw_if, prefix: *p }, s);
        }
        for p in w.addresses.difference(&b.addresses) {
            plan.push(ConfigItem::AddAddress { sw_if, prefix: *p }, s);
        }
        if b.proxy_arp != w.proxy_arp {
            plan.push(
                ConfigItem::SetProxyArp {
                    sw_if,
                    prefixes: w.proxy_arp.clone(),
                },
                s,
            );
        }
        for (ip, mac) in &w.neighbors {
            if b.neighbors.get(ip) != Some(mac) {
                plan.push(
                    ConfigItem::AddNeighbor {
                        sw_if,
                        ip: *ip,
                        mac: *mac,
                    },
                    s,
                );
            }
        }
        for ((arc, feature), have) in [(ESP_ENCRYPT, b.esp_out), (ESP_DECRYPT, b.esp_in)] {
            if have != w.esp {
                plan.push(ConfigItem::feature(w.esp, arc, feature, sw_if), s);
            }
        }
    }

    // 5. ACLs, then the lists that name them.
    for (slot, a) in &want.acls {
        let Some(&id) = acl_ids.get(slot) else {
            continue;
        };
        if cur.acls.get(&id) != Some(a) {
            plan.push(
                ConfigItem::AclAddReplace {
                    acl_id: id,
                    tag: a.tag.clone(),
                    rules: a.rules.clone(),
                },
                None,
            );
        }
    }
    for (n, w) in &want.interfaces {
        let sw_if = names[n];
        let b = &bases[n];
        for (direction, want_ids, have) in [
            (Direction::Input, ids(&w.acl_in), &b.acl_in),
            (Direction::Output, ids(&w.acl_out), &b.acl_out),
        ] {
            if want_ids != *have {
                plan.push(
                    ConfigItem::AclSetInterface {
                        sw_if,
                        direction,
                        acls: want_ids,
                    },
                    Some(n),
                );
            }
        }
    }

    // 6. Routes and NAT44.
    for (p, rp) in &want_routes {
        if kept_routes.get(p) != Some(rp) {
            plan.push(
                ConfigItem::AddRoute {
                    prefix: *p,
                    path: *rp,
                },
                rp.sw_if().and_then(name_of).as_deref(),
            );
        }
    }
    for (n, w) in &want.interfaces {
        let b = &bases[n];
        if (b.nat_inside, b.nat_outside) != (w.nat_inside, w.nat_outside) {
            plan.push(
                ConfigItem::Nat44SetInterface {
                    sw_if: names[n],
                    inside: w.nat_inside,
                    outside: w.nat_outside,
                },
                Some(n),
            );
        }
    }
    for k in &want_pool {
        if !kept_pool.contains(k) {
            plan.push(ConfigItem::Nat44AddPool(k.entry()), None);
        }
    }
    for (k, tag) in &want.identities {
        if cur.identities.get(k) != Some(tag) {
            plan.push(
                ConfigItem::Nat44AddIdentity(Nat44Identity {
                    address: k.external,
                    proto: k.proto,
                    port: k.port,
                    tag: tag.clone(),
                }),
                None,
            );
        }
    }
    for (k, m) in &want.mappings {
        if cur.mappings.get(k) != Some(m) {
            plan.push(ConfigItem::Nat44AddMapping(m.clone()), None);
        }
    }
    if cur.never_nat != want.never_nat {
        plan.push(
            ConfigItem::Nat44Settings(Nat44Settings {
                never_nat: Some(want.never_nat.clone()),
                ..Nat44Settings::default()
            }),
            None,
        );
    }

    // 7. ESP.
    esp(want, cur, own, &mut plan);

    // 8. ACLs of the agent that nothing wants any more. One still listed on an interface the
    // agent does not own stays (vpgd would refuse, and that list is not ours to change).
    let kept: BTreeSet<u32> = acl_ids.values().copied().collect();
    for &id in cur.acls.keys() {
        if !own.owns_acl(id) || kept.contains(&id) {
            continue;
        }
        let foreign_use = cur.interfaces.values().any(|i| {
            !own.owns_interface(&i.name) && (i.acl_in.contains(&id) || i.acl_out.contains(&id))
        });
        if !foreign_use {
            plan.push(ConfigItem::AclDelete { acl_id: id }, None);
        }
    }
    plan
}

/// The ESP part of the transaction (phase 7).
fn esp(want: &Desired, cur: &Current, own: &Ownership, plan: &mut Plan) {
    // Desired SAs matched to the agent's active SAs by content; each current SA serves once.
    let mine: Vec<u32> = cur
        .esp_sas
        .keys()
        .copied()
        .filter(|id| own.owns_esp(*id))
        .collect();
    let mut sa_ids: BTreeMap<SaName, u32> = BTreeMap::new();
    let mut matched: BTreeSet<u32> = BTreeSet::new();
    let mut new: Vec<SaName> = Vec::new();
    for (name, w) in &want.esp_sas {
        let fp = w.key.fingerprint();
        let found = mine
            .iter()
            .find(|id| !matched.contains(*id) && cur.esp_sas[*id].is(name.outbound, w, &fp));
        match found {
            Some(&id) => {
                sa_ids.insert(*name, id);
                matched.insert(id);
            }
            None => new.push(*name),
        }
    }
    // New ids: never one vpgd has (so nothing is deleted and re-added under one id).
    let mut fresh = own.esp_base;
    for name in &new {
        while cur.esp_sas.contains_key(&fresh) {
            fresh += 1;
        }
        sa_ids.insert(*name, fresh);
        fresh += 1;
    }
    let new_in_spis: BTreeSet<u32> = new
        .iter()
        .filter(|n| !n.outbound)
        .map(|n| want.esp_sas[n].spi)
        .collect();
    let leftovers: Vec<u32> = mine
        .iter()
        .copied()
        .filter(|id| !matched.contains(id))
        .collect();
    // An inbound SA holding an SPI a new inbound SA needs (the same key come back within its
    // grace period, say) goes first; so do expired inbound ones.
    let mut gone: BTreeSet<u32> = BTreeSet::new();
    for &id in &leftovers {
        let s = &cur.esp_sas[&id];
        if !s.outbound && (new_in_spis.contains(&s.spi) || s.state == SaState::Expired) {
            plan.push(ConfigItem::EspSaDel { sa_id: id }, None);
            gone.insert(id);
        }
    }
    for name in &new {
        let w = &want.esp_sas[name];
        plan.push(
            ConfigItem::EspSaAdd(EspSaAdd {
                sa_id: sa_ids[name],
                spi: w.spi,
                direction: if name.outbound {
                    EspDirection::Out
                } else {
                    EspDirection::In
                },
                mode: EspMode::Transport,
                tunnel_src: None,
                tunnel_dst: None,
                crypto: w.crypto,
                // The API takes hex; the item lives only until the transaction is sent.
                key: crate::ipsec::key_hex(&w.key).to_string(),
                key_id: w.key_id,
                esn: true,
                replay_window: Some(w.replay_window),
                worker: w.worker,
                lifetime: None,
            }),
            None,
        );
    }
    // Rules: the agent's rule for a peer is replaced in place; others of the agent go.
    let mut rule_of: BTreeMap<Ipv4Addr, u32> = BTreeMap::new();
    let mut stale_rules: Vec<u32> = Vec::new();
    for (&id, r) in cur.esp_rules.iter().filter(|(id, _)| own.owns_esp(**id)) {
        match r.peer() {
            Some(p) if want.esp_rules.contains_key(&p) && !rule_of.contains_key(&p) => {
                rule_of.insert(p, id);
            }
            _ => stale_rules.push(id),
        }
    }
    let mut fresh_rule = own.esp_base;
    for (peer, names) in &want.esp_rules {
        let sas: Vec<u32> = names
            .iter()
            .filter_map(|n| sa_ids.get(n).copied())
            .collect();
        let (rule_id, replace) = match rule_of.get(peer) {
            Some(&id) if cur.esp_rules[&id].sas == sas => continue,
            Some(&id) => (id, true),
            None => {
                while cur.esp_rules.contains_key(&fresh_rule) {
                    fresh_rule += 1;
                }
                let id = fresh_rule;
                fresh_rule += 1;
                (id, false)
            }
        };
        plan.push(
            ConfigItem::EspProtectAdd(EspProtectAdd {
                rule_id,
                dst: Some(Prefix {
                    addr: *peer,
                    len: 32,
                }),
                tunnel: None,
                proto: None,
                port: None,
                sas,
                replace,
            }),
            None,
        );
    }
    for id in stale_rules {
        plan.push(ConfigItem::EspProtectDel { rule_id: id }, None);
    }
    // What the rules no longer use: outbound SAs deleted (unless a rule not the agent's still
    // names one: that rule is not ours to change), inbound ones retired with the grace period
    // (packets sealed by a peer that has not switched yet still open), then deleted once
    // expired (a later pass).
    for id in leftovers {
        if gone.contains(&id) {
            continue;
        }
        let s = &cur.esp_sas[&id];
        if s.outbound {
            let foreign = cur
                .esp_rules
                .iter()
                .any(|(r, rule)| !own.owns_esp(*r) && rule.sas.contains(&id));
            if !foreign {
                plan.push(ConfigItem::EspSaDel { sa_id: id }, None);
            }
        } else if s.state == SaState::Active {
            plan.push(
                ConfigItem::EspSaRetire {
                    sa_id: id,
                    grace_s: want.esp_grace_s,
                },
                None,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{satisfies, satisfies_esp, AclContent, DesiredIf, DesiredSa, MapKey};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;
    use vpg_api::acl::AclRule;
    use vpg_api::nat44::{Nat44Local, Nat44Mapping};
    use vpg_api::{Mac, Prefix};

    fn own() -> Ownership {
        Ownership {
            uplink: "up0".into(),
            acl_base: 100,
            esp_base: 50,
        }
    }

    const POD_NAMES: [&str; 4] = [
        "vpg000000000001",
        "vpg000000000002",
        "vpg000000000003",
        "vpg000000000004",
    ];
    const TUN_NAMES: [&str; 2] = ["vx0a000002", "vx0a000003"];

    fn prefix(i: u8, len: u8) -> Prefix {
        Prefix {
            addr: Ipv4Addr::new(10, i, 0, 0),
            len,
        }
        .network()
    }

    fn host(i: u8) -> Prefix {
        Prefix {
            addr: Ipv4Addr::new(10, 1, 1, i),
            len: 32,
        }
    }

    fn rule(action: &str, n: u8) -> AclRule {
        AclRule {
            action: action.into(),
            src: host(n),
            dst: Prefix {
                addr: Ipv4Addr::UNSPECIFIED,
                len: 0,
            },
            proto: 6,
            sport: Default::default(),
            dport: vpg_api::acl::Range { lo: 80, hi: 80 },
            tcp_flags_value: 0,
            tcp_flags_mask: 0,
        }
    }

    fn kind(name: &str, variant: u8) -> IfKind {
        if let Some(t) = name.strip_prefix("vx") {
            let remote = Ipv4Addr::from(u32::from_str_radix(t, 16).unwrap());
            IfKind::Vxlan {
                local: Ipv4Addr::new(10, 0, 0, 1),
                remote,
                vni: 5 + u32::from(variant % 2),
                port: 4789,
                mac: Mac([2, 0, 0, 0, 1, variant]),
                remote_mac: (!variant.is_multiple_of(3)).then_some(Mac([2, 0, 0, 0, 2, variant])),
            }
        } else {
            // Two host interfaces per name, so a kind change (recreate) happens.
            IfKind::AfPacket {
                host_if: format!("h{}{}", &name[name.len() - 3..], variant % 2),
            }
        }
    }

    const PEERS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 9, 0, 2), Ipv4Addr::new(10, 9, 0, 3)];

    /// An SA of the small ESP universe: its SPI depends on the name only, so a name with
    /// another key variant needs the SPI an older SA holds (the delete-first path).
    fn sa(name: &SaName, variant: u8) -> DesiredSa {
        let p = u32::from(name.peer.octets()[3]);
        DesiredSa {
            spi: 256
                + p * 16
                + u32::from(name.outbound) * 8
                + u32::from(name.generation) * 4
                + u32::from(name.index),
            crypto: vpg_api::esp::EspCrypto::AesGcm128,
            key: vpg_esp::KeyMaterial::new(vec![
                variant.wrapping_mul(31) ^ p as u8,
                name.outbound as u8,
                name.generation,
                name.index,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                7,
                1,
                2,
                3,
                4,
            ])
            .unwrap(),
            key_id: 1 + variant,
            worker: Some(u32::from(name.index) % 2),
            replay_window: 1024,
        }
    }

    /// The ESP part: SAs over two peers, two generations, two indices, both directions, with
    /// two key variants; rules naming some of the outbound ones.
    fn arb_esp(
    ) -> impl Strategy<Value = (BTreeMap<SaName, DesiredSa>, BTreeMap<Ipv4Addr, Vec<SaName>>)> {
        (
            proptest::collection::btree_map(0u8..16, 0u8..2, 0..10),
            proptest::collection::btree_map(
                0usize..2,
                proptest::collection::vec(0u8..8, 0..3),
                0..3,
            ),
        )
            .prop_map(|(sas, rules)| {
                let name = |k: u8| SaName {
                    peer: PEERS[usize::from(k >> 3 & 1)],
                    outbound: k & 4 != 0,
                    generation: k >> 1 & 1,
                    index: k & 1,
                };
                let sas: BTreeMap<SaName, DesiredSa> = sas
                    .into_iter()
                    .map(|(k, v)| (name(k), sa(&name(k), v)))
                    .collect();
                let mut rs = BTreeMap::new();
                for (p, picks) in rules {
                    let mut list: Vec<SaName> = Vec::new();
                    for k in picks {
                        // Outbound names of this peer only, each once.
                        let n = name((p as u8) << 3 | 4 | (k & 3));
                        if sas.contains_key(&n) && !list.contains(&n) {
                            list.push(n);
                        }
                    }
                    rs.insert(PEERS[p], list);
                }
                (sas, rs)
            })
    }

    fn arb_desired() -> impl Strategy<Value = Desired> {
        (arb_base(), arb_esp()).prop_map(|(mut d, (sas, rules))| {
            d.esp_sas = sas;
            d.esp_rules = rules;
            d.esp_grace_s = 5;
            d
        })
    }

    /// A random but valid desired state over a small universe (so desired and current
    /// overlap often).
    fn arb_base() -> impl Strategy<Value = Desired> {
        let itf = (
            any::<u8>(),
            any::<bool>(),
            proptest::option::of(prop_oneof![Just(1450u16), Just(1500)]),
            proptest::collection::btree_set(0u8..4, 0..3),
            any::<bool>(),
            proptest::collection::btree_map(1u8..4, 0u8..3, 0..2),
            0u8..4,
            any::<(bool, bool)>(),
        );
        (
            proptest::collection::vec(proptest::option::of(itf), 7),
            proptest::collection::btree_map(0u8..6, (0u8..7, 0u8..4), 0..6),
            proptest::collection::btree_map(0u8..4, 0u8..3, 0..3),
            any::<(bool, bool)>(),
            proptest::collection::btree_map(0u8..3, 1u8..4, 0..3),
            proptest::collection::btree_map(0u8..2, any::<bool>(), 0..2),
            proptest::collection::btree_set(0u8..4, 0..3),
        )
            .prop_map(
                |(itfs, routes, acls, (pool_up, pool_addr), maps, ids, never)| {
                    let mut d = Desired::default();
                    let all: Vec<&str> = std::iter::once("up0")
                        .chain(POD_NAMES)
                        .chain(TUN_NAMES)
                        .collect();
                    let slots: Vec<AclSlot> = vec![
                        AclSlot::Reflect,
                        AclSlot::Global,
                        AclSlot::Local("lt-a".into()),
                        AclSlot::Local("lt-b".into()),
                    ];
                    for (slot, v) in &acls {
                        let s = slots[*slot as usize].clone();
                        d.acls.insert(
                            s.clone(),
                            AclContent {
                                tag: format!("{s}"),
                                rules: vec![rule(if *v == 0 { "deny" } else { "permit" }, *v)],
                            },
                        );
                    }
                    let present: Vec<AclSlot> = d.acls.keys().cloned().collect();
                    for (name, spec) in all.iter().zip(itfs) {
                        let Some((v, up, mtu, addrs, proxy, nbrs, acl, (ni, no))) = spec else {
                            continue;
                        };
                        let pick = |k: u8| -> Vec<AclSlot> {
                            if present.is_empty() || k == 0 {
                                vec![]
                            } else {
                                vec![present[k as usize % present.len()].clone()]
                            }
                        };
                        d.interfaces.insert(
                            name.to_string(),
                            DesiredIf {
                                kind: kind(name, v),
                                admin_up: up,
                                mtu,
                                addresses: addrs
                                    .into_iter()
                                    .map(|a| Prefix {
                                        len: 24,
                                        ..host(a + 1)
                                    })
                                    .collect(),
                                proxy_arp: if proxy { vec![prefix(1, 24)] } else { vec![] },
                                neighbors: nbrs
                                    .into_iter()
                                    .map(|(ip, m)| {
                                        (Ipv4Addr::new(10, 1, 1, ip), Mac([2, 0, 0, 9, 9, m]))
                                    })
                                    .collect(),
                                acl_in: pick(acl),
                                acl_out: pick(acl / 2),
                                nat_inside: ni,
                                nat_outside: no,
                                // Often on the uplink, sometimes elsewhere.
                                esp: (v % 4 == 1) || (*name == "up0" && v % 2 == 0),
                            },
                        );
                    }
                    let names: Vec<String> = d.interfaces.keys().cloned().collect();
                    for (p, (target, how)) in routes {
                        let path = match (how, names.get(target as usize)) {
                            (0, _) | (_, None) => PathByName::Drop,
                            (1, Some(n)) => PathByName::Attached {
                                interface: n.clone(),
                            },
                            (2, Some(n)) => PathByName::Via {
                                next_hop: Ipv4Addr::new(10, 1, 1, 99),
                                interface: n.clone(),
                            },
                            _ => PathByName::Local,
                        };
                        d.routes.insert(prefix(p + 20, 16), path);
                    }
                    if pool_up && d.interfaces.contains_key("up0") {
                        d.pool.insert(PoolName::Interface("up0".into()));
                    }
                    if pool_addr {
                        d.pool
                            .insert(PoolName::Address(Ipv4Addr::new(192, 0, 2, 1)));
                    }
                    for (k, n) in maps {
                        let m = crate::model::canonical(Nat44Mapping {
                            external: Ipv4Addr::new(10, 96, 0, k),
                            proto: Some(6),
                            external_port: 80,
                            locals: (0..n)
                                .map(|i| Nat44Local {
                                    address: Ipv4Addr::new(10, 1, 1, 10 + i),
                                    port: 8080,
                                    weight: 1,
                                })
                                .collect(),
                            out2in_only: Some(true),
                            tag: format!("svc{k}"),
                        });
                        d.mappings.insert(MapKey::of(&m), m);
                    }
                    for (i, t) in ids {
                        d.identities.insert(
                            MapKey {
                                external: Ipv4Addr::new(192, 0, 2, 1 + i),
                                proto: Some(17),
                                port: 4789,
                            },
                            if t { "vxlan".into() } else { "other".into() },
                        );
                    }
                    d.never_nat = never.into_iter().map(|i| prefix(i, 16)).collect();
                    d
                },
            )
    }

    /// A random current state: reached from a random desired state, then disturbed by
    /// random changes as an operator (or a crash half-way through history) would leave it,
    /// including objects the agent does not own.
    fn arb_current() -> impl Strategy<Value = Current> {
        (
            arb_desired(),
            proptest::collection::vec(any::<(u8, u8, u8)>(), 0..12),
            0u32..3,
        )
            .prop_map(|(d, noise, gap)| {
                let mut c = Current {
                    workers: 2,
                    ..Current::default()
                };
                // A foreign interface with a foreign ACL and route, and indices with gaps.
                c.apply_all(&[
                    ConfigItem::CreateAfPacket {
                        host_if: "ext0".into(),
                        name: Some("ext0".into()),
                        mac: None,
                    },
                    ConfigItem::AclAddReplace {
                        acl_id: 7,
                        tag: "mine".into(),
                        rules: vec![],
                    },
                    ConfigItem::AclSetInterface {
                        sw_if: 0,
                        direction: Direction::Input,
                        acls: vec![7],
                    },
                    // An operator's own SAs and rule (ids below the agent's base).
                    ConfigItem::EspSaAdd(foreign_sa(5, true)),
                    ConfigItem::EspSaAdd(foreign_sa(6, false)),
                    ConfigItem::EspProtectAdd(EspProtectAdd {
                        rule_id: 5,
                        dst: Some(prefix(99, 16)),
                        tunnel: None,
                        proto: None,
                        port: None,
                        sas: vec![5],
                        replace: false,
                    }),
                ])
                .unwrap();
                // Holes below a foreign interface: vpgd fills them first.
                for k in 0..gap {
                    c.apply_all(&[ConfigItem::CreateAfPacket {
                        host_if: format!("hole{k}"),
                        name: Some(format!("hole{k}")),
                        mac: None,
                    }])
                    .unwrap();
                }
                c.apply_all(&[ConfigItem::CreateAfPacket {
                    host_if: "ext1".into(),
                    name: Some("ext1".into()),
                    mac: None,
                }])
                .unwrap();
                for k in 0..gap {
                    c.apply_all(&[ConfigItem::DeleteInterface { sw_if: 1 + k }])
                        .unwrap();
                }
                let plan = diff(&d, &c, &own());
                c.apply_all(&plan.items)
                    .expect("the plan from a clean state applies");
                for (what, a, b) in noise {
                    // Never the foreign interfaces: their fate is not the agent's.
                    let sws: Vec<u32> = c
                        .interfaces
                        .iter()
                        .filter(|(_, i)| !i.name.starts_with("ext"))
                        .map(|(s, _)| *s)
                        .collect();
                    if sws.is_empty() {
                        continue;
                    }
                    let sw = sws[a as usize % sws.len()];
                    let sas: Vec<u32> = c.esp_sas.keys().copied().filter(|s| *s >= 50).collect();
                    let rules: Vec<u32> =
                        c.esp_rules.keys().copied().filter(|r| *r >= 50).collect();
                    let esp_item = match (what % 16, sas.is_empty(), rules.is_empty()) {
                        (9, false, _) => Some(ConfigItem::EspSaRetire {
                            sa_id: sas[b as usize % sas.len()],
                            grace_s: 3,
                        }),
                        (10, false, _) => Some(ConfigItem::EspSaDel {
                            sa_id: sas[b as usize % sas.len()],
                        }),
                        (11, _, false) => Some(ConfigItem::EspProtectDel {
                            rule_id: rules[b as usize % rules.len()],
                        }),
                        (12, _, false) => Some(ConfigItem::EspProtectAdd(EspProtectAdd {
                            rule_id: rules[b as usize % rules.len()],
                            dst: Some(Prefix {
                                addr: PEERS[usize::from(b % 2)],
                                len: 32,
                            }),
                            tunnel: None,
                            proto: None,
                            port: None,
                            sas: sas
                                .iter()
                                .copied()
                                .filter(|s| c.esp_sas[s].outbound)
                                .take(1)
                                .collect(),
                            replace: true,
                        })),
                        (13, _, _) => {
                            // Time passes: retired SAs expire.
                            for s in c.esp_sas.values_mut() {
                                if s.state == SaState::Retiring {
                                    s.state = SaState::Expired;
                                }
                            }
                            None
                        }
                        (14, _, _) => Some(ConfigItem::EnableFeature {
                            arc: ESP_ENCRYPT.0.into(),
                            feature: ESP_ENCRYPT.1.into(),
                            sw_if: sw,
                        }),
                        _ => None,
                    };
                    if let Some(item) = esp_item {
                        let _ = c.apply_all(&[item]);
                        continue;
                    }
                    let item = match what % 9 {
                        0 => ConfigItem::DeleteInterface { sw_if: sw },
                        1 => ConfigItem::AddAddress {
                            sw_if: sw,
                            prefix: Prefix {
                                len: 24,
                                ..host(1 + b % 5)
                            },
                        },
                        2 => ConfigItem::SetAdminState {
                            sw_if: sw,
                            up: b % 2 == 0,
                        },
                        3 => ConfigItem::AddRoute {
                            prefix: prefix(20 + b % 8, 16),
                            path: RoutePath::Attached { sw_if: sw },
                        },
                        4 => ConfigItem::AclAddReplace {
                            acl_id: 100 + u32::from(b % 6),
                            tag: format!("lt-{}", (b'a' + b % 3) as char),
                            rules: vec![rule("deny", b)],
                        },
                        5 => ConfigItem::AclSetInterface {
                            sw_if: sw,
                            direction: Direction::Output,
                            acls: vec![100 + u32::from(b % 6)],
                        },
                        6 => ConfigItem::Nat44SetInterface {
                            sw_if: sw,
                            inside: b % 2 == 1,
                            outside: b % 3 == 1,
                        },
                        7 => ConfigItem::Nat44AddIdentity(Nat44Identity {
                            address: Ipv4Addr::new(192, 0, 2, 1 + b % 3),
                            proto: Some(17),
                            port: 4789,
                            tag: "x".into(),
                        }),
                        _ => ConfigItem::CreateAfPacket {
                            host_if: format!("h00{}{}", 1 + b % 4, b % 2),
                            name: Some(POD_NAMES[b as usize % 4].into()),
                            mac: None,
                        },
                    };
                    // Refused changes leave the state as it was, as in vpgd.
                    let _ = c.apply_all(&[item]);
                }
                c
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// diff(desired, current) applied to current (with vpgd's refusals) gives desired,
        /// touches nothing foreign, and a second diff is empty.
        #[test]
        fn applying_the_diff_reaches_desired(d in arb_desired(), c in arb_current()) {
            let plan = diff(&d, &c, &own());
            let mut after = c.clone();
            if let Err((i, e)) = after.apply_all(&plan.items) {
                panic!("item {i} {:?} refused: {e}\nplan {:#?}", plan.items[i], plan.items);
            }
            prop_assert_eq!(plan.items.len(), plan.subjects.len());
            if let Err(e) = satisfies(&d, &after.view(&own())) {
                panic!("{e}\nplan {:#?}", plan.items);
            }
            if let Err(e) = satisfies_esp(&d, &after, &own()) {
                panic!("{e}\nplan {:#?}\ncurrent before {:#?}", plan.items, c.esp_sas);
            }
            // The operator's SAs and rule are untouched.
            prop_assert_eq!(&after.esp_rules[&5].sas, &vec![5]);
            prop_assert!(after.esp_sas.contains_key(&6));
            prop_assert!(diff(&d, &after, &own()).is_empty(), "{:?}", diff(&d, &after, &own()).items);
            // The foreign interface, its ACL and its list are untouched.
            let ext = after.by_name("ext0").unwrap().1;
            prop_assert_eq!(&ext.acl_in, &vec![7]);
            prop_assert!(after.acls.contains_key(&7));
            // Created interfaces got the indices the plan named.
            for (n, sw) in &plan.created {
                prop_assert_eq!(&after.interfaces[sw].name, n);
            }
        }

        /// diff(x, x) is empty: the view of a state the agent produced asks for nothing.
        #[test]
        fn diff_of_a_state_with_itself_is_empty(c in arb_current(), d in arb_desired()) {
            let mut c = c;
            c.apply_all(&diff(&d, &c, &own()).items).unwrap();
            let mut v = c.view(&own());
            // vpgd does not name SAs: the view has none; those the state was brought to are.
            v.esp_sas = d.esp_sas.clone();
            v.esp_rules = d.esp_rules.clone();
            v.esp_grace_s = d.esp_grace_s;
            let plan = diff(&v, &c, &own());
            prop_assert!(plan.is_empty(), "{:?}", plan.items);
        }
    }

    fn foreign_sa(id: u32, outbound: bool) -> EspSaAdd {
        EspSaAdd {
            sa_id: id,
            spi: 100_000 + id,
            direction: if outbound {
                EspDirection::Out
            } else {
                EspDirection::In
            },
            mode: EspMode::Transport,
            tunnel_src: None,
            tunnel_dst: None,
            crypto: vpg_api::esp::EspCrypto::AesGcm128,
            key: "ab".repeat(20),
            key_id: 9,
            esn: false,
            replay_window: None,
            worker: None,
            lifetime: None,
        }
    }

    #[test]
    fn recreated_interface_takes_its_routes_along_in_order() {
        let mut d = Desired::default();
        let mut i = DesiredIf {
            kind: IfKind::AfPacket {
                host_if: "eth0".into(),
            },
            admin_up: true,
            mtu: None,
            addresses: [Prefix { len: 24, ..host(1) }].into(),
            proxy_arp: vec![],
            neighbors: Default::default(),
            acl_in: vec![],
            acl_out: vec![],
            nat_inside: false,
            nat_outside: true,
            esp: false,
        };
        d.interfaces.insert("up0".into(), i.clone());
        d.routes.insert(
            prefix(0, 0),
            PathByName::Via {
                next_hop: Ipv4Addr::new(10, 1, 1, 254),
                interface: "up0".into(),
            },
        );
        d.pool.insert(PoolName::Interface("up0".into()));
        let mut c = Current::default();
        let p1 = diff(&d, &c, &own());
        c.apply_all(&p1.items).unwrap();
        assert_eq!(p1.created, [("up0".to_string(), 0)]);
        assert!(diff(&d, &c, &own()).is_empty());
        // The uplink moves to another host interface: delete, create, everything again.
        i.kind = IfKind::AfPacket {
            host_if: "eth1".into(),
        };
        d.interfaces.insert("up0".into(), i);
        let p2 = diff(&d, &c, &own());
        let ops: Vec<&str> = p2.items.iter().map(|i| i.op()).collect();
        assert_eq!(
            ops,
            [
                "del_route",
                "nat44_del_pool",
                "delete_interface",
                "create_af_packet",
                "set_admin_state",
                "add_address",
                "add_route",
                "nat44_set_interface",
                "nat44_add_pool"
            ]
        );
        // vpgd reuses the index: the new up0 is at 0 again, and nothing of the old one counts.
        assert_eq!(p2.created, [("up0".to_string(), 0)]);
        c.apply_all(&p2.items).unwrap();
        assert!(diff(&d, &c, &own()).is_empty());
    }
}
