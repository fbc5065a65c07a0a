//! The one place ACL state changes: add/replace/delete ACLs, set interface lists, session
//! settings, and the dumps and `match` explanation the API and CLI use. Every change builds a new
//! [`AclTables`] snapshot; lists whose ACLs did not change keep their compiled classifier (and
//! interfaces with the same list share one), so a change compiles only what it touched.

use crate::classify::{Classifier, NO_MATCH};
use crate::rule::{Acl, PacketKey, Rule, RuleError, RuleKey};
use crate::tables::{AclCounters, AclTables, CompiledList, RuleRef, SessionConfig};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Most rules in one ACL.
pub const MAX_RULES: usize = 65_536;
/// Most ACLs in one interface list.
pub const MAX_LIST: usize = 64;
/// Longest tag.
pub const MAX_TAG: usize = 64;

/// Why an ACL change was refused (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A rule is invalid.
    #[error("acl {acl} rule {index}: {source}")]
    Rule {
        /// ACL id.
        acl: u32,
        /// Rule index (0-based).
        index: usize,
        /// What is wrong.
        source: RuleError,
    },
    /// No ACL with this id.
    #[error("acl {0} does not exist")]
    NoAcl(u32),
    /// The ACL is applied to interfaces.
    #[error("acl {id} is in use on interface(s) {by:?}: remove it from their lists first")]
    InUse {
        /// ACL id.
        id: u32,
        /// Interfaces and directions using it.
        by: Vec<String>,
    },
    /// An ACL appears twice in one list.
    #[error("acl {0} appears twice in the interface's list")]
    Duplicate(u32),
    /// A limit.
    #[error("{what}: {got} exceeds the limit of {max}")]
    TooMany {
        /// What.
        what: &'static str,
        /// Given.
        got: usize,
        /// Limit.
        max: usize,
    },
    /// Bad session settings.
    #[error("session settings: {0}")]
    Sessions(String),
}

/// One ACL with its compiled keys and counters.
#[derive(Debug)]
struct AclEntry {
    acl: Acl,
    keys: Vec<RuleKey>,
    counters: Arc<AclCounters>,
    /// Bumped on replace so cached compiled lists holding the old rules are not reused.
    version: u64,
}

/// Which ACL and rule decide a packet, and why (`vpgctl acl match`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The interface has no ACLs in that direction: the packet passes.
    NoAcls,
    /// A rule matched.
    Matched {
        /// ACL id.
        acl: u32,
        /// ACL tag.
        tag: String,
        /// Rule index in the ACL.
        rule: u32,
        /// The rule.
        text: Rule,
    },
    /// ACLs are applied but none has a matching rule: denied.
    NoMatch {
        /// The list.
        acls: Vec<u32>,
    },
}

/// An ACL as dumped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclDump {
    /// The ACL.
    pub acl: Acl,
    /// Hits per rule.
    pub hits: Vec<u64>,
    /// Interfaces using it: (sw_if, input).
    pub used_by: Vec<(u32, bool)>,
}

/// A compiled list in use: its ACL ids, the interfaces (sw_if, input) sharing it, its shape.
pub type ListShape = (Vec<u32>, Vec<(u32, bool)>, crate::classify::Shape);

/// The ACL control state.
#[derive(Clone, Debug)]
pub struct AclControl {
    workers: usize,
    acls: BTreeMap<u32, Arc<AclEntry>>,
    input: BTreeMap<u32, Vec<u32>>,
    output: BTreeMap<u32, Vec<u32>>,
    compiled: HashMap<Vec<(u32, u64)>, Arc<CompiledList>>,
    sessions: SessionConfig,
    next_version: u64,
    next_epoch: u32,
    tables: Arc<AclTables>,
}

impl AclControl {
    /// Empty state for `workers` workers (hit counters are kept per worker).
    pub fn new(workers: usize) -> Self {
        Self {
            workers,
            acls: BTreeMap::new(),
            input: BTreeMap::new(),
            output: BTreeMap::new(),
            compiled: HashMap::new(),
            sessions: SessionConfig::default(),
            next_version: 1,
            next_epoch: 1,
            tables: Arc::new(AclTables::default()),
        }
    }

    /// The snapshot for the nodes.
    pub fn tables(&self) -> Arc<AclTables> {
        self.tables.clone()
    }

    /// Adds ACL `acl.id`, or replaces its rules and tag. Interfaces using it switch to the new
    /// rules between frames; its hit counters restart.
    pub fn add_replace(&mut self, acl: Acl) -> Result<(), AclError> {
        if acl.rules.len() > MAX_RULES {
            return Err(AclError::TooMany {
                what: "rules in one acl",
                got: acl.rules.len(),
                max: MAX_RULES,
            });
        }
        if acl.tag.len() > MAX_TAG {
            return Err(AclError::TooMany {
                what: "tag length",
                got: acl.tag.len(),
                max: MAX_TAG,
            });
        }
        for (index, r) in acl.rules.iter().enumerate() {
            r.validate().map_err(|source| AclError::Rule {
                acl: acl.id,
                index,
                source,
            })?;
        }
        let keys = acl.rules.iter().map(Rule::key).collect();
        let counters = Arc::new(AclCounters::new(self.workers, acl.rules.len()));
        let version = self.next_version;
        self.next_version += 1;
        self.acls.insert(
            acl.id,
            Arc::new(AclEntry {
                acl,
                keys,
                counters,
                version,
            }),
        );
        self.rebuild();
        Ok(())
    }

    /// Deletes an ACL that no interface uses.
    pub fn delete(&mut self, id: u32) -> Result<(), AclError> {
        if !self.acls.contains_key(&id) {
            return Err(AclError::NoAcl(id));
        }
        let by: Vec<String> = self
            .used_by(id)
            .into_iter()
            .map(|(i, input)| format!("{i} {}", if input { "input" } else { "output" }))
            .collect();
        if !by.is_empty() {
            return Err(AclError::InUse { id, by });
        }
        self.acls.remove(&id);
        self.rebuild();
        Ok(())
    }

    /// Sets the input or output ACL list of `sw_if` (empty removes it). Returns whether the
    /// interface now has a list in that direction (the caller enables or disables the feature).
    pub fn set_interface(
        &mut self,
        sw_if: u32,
        input: bool,
        ids: Vec<u32>,
    ) -> Result<bool, AclError> {
        if ids.len() > MAX_LIST {
            return Err(AclError::TooMany {
                what: "acls in one interface list",
                got: ids.len(),
                max: MAX_LIST,
            });
        }
        for (i, id) in ids.iter().enumerate() {
            if !self.acls.contains_key(id) {
                return Err(AclError::NoAcl(*id));
            }
            if ids[..i].contains(id) {
                return Err(AclError::Duplicate(*id));
            }
        }
        let map = if input {
            &mut self.input
        } else {
            &mut self.output
        };
        let on = !ids.is_empty();
        if on {
            map.insert(sw_if, ids);
        } else {
            map.remove(&sw_if);
        }
        self.rebuild();
        Ok(on)
    }

    /// Forgets an interface's lists (the interface is gone).
    pub fn del_interface(&mut self, sw_if: u32) {
        if self.input.remove(&sw_if).is_some() | self.output.remove(&sw_if).is_some() {
            self.rebuild();
        }
    }

    /// Session settings.
    pub fn set_sessions(&mut self, s: SessionConfig) -> Result<(), AclError> {
        if s.max_per_worker == 0 || s.max_per_worker > 1 << 24 {
            return Err(AclError::Sessions(format!(
                "max sessions per worker {} must be 1 to {}",
                s.max_per_worker,
                1 << 24
            )));
        }
        let t = s.timeouts;
        for (name, d) in [
            ("tcp transient", t.tcp_transient),
            ("tcp established", t.tcp_established),
            ("udp", t.udp),
        ] {
            if d < Duration::from_secs(1) || d > Duration::from_secs(30 * 86400) {
                return Err(AclError::Sessions(format!(
                    "{name} timeout {d:?} must be 1 s to 30 days"
                )));
            }
        }
        self.sessions = s;
        self.rebuild();
        Ok(())
    }

    /// Session settings in force.
    pub fn session_config(&self) -> SessionConfig {
        self.sessions
    }

    fn used_by(&self, id: u32) -> Vec<(u32, bool)> {
        let mut v: Vec<(u32, bool)> = self
            .input
            .iter()
            .filter(|(_, l)| l.contains(&id))
            .map(|(&i, _)| (i, true))
            .chain(
                self.output
                    .iter()
                    .filter(|(_, l)| l.contains(&id))
                    .map(|(&i, _)| (i, false)),
            )
            .collect();
        v.sort_unstable();
        v
    }

    fn compile(&mut self, ids: &[u32]) -> Arc<CompiledList> {
        let key: Vec<(u32, u64)> = ids
            .iter()
            .filter_map(|id| self.acls.get(id).map(|e| (*id, e.version)))
            .collect();
        if let Some(c) = self.compiled.get(&key) {
            return c.clone();
        }
        let mut keys = Vec::new();
        let mut rules = Vec::new();
        let mut counters = Vec::new();
        for (pos, id) in ids.iter().enumerate() {
            let Some(e) = self.acls.get(id) else { continue };
            keys.extend_from_slice(&e.keys);
            rules.extend(e.acl.rules.iter().enumerate().map(|(i, r)| RuleRef {
                position: pos as u16,
                rule: i as u32,
                action: r.action,
            }));
            counters.push(e.counters.clone());
        }
        let list = Arc::new(CompiledList {
            acl_ids: ids.to_vec(),
            classifier: Classifier::compile(&keys),
            rules,
            counters,
            epoch: self.next_epoch,
        });
        self.next_epoch = self.next_epoch.wrapping_add(1);
        self.compiled.insert(key, list.clone());
        list
    }

    fn rebuild(&mut self) {
        let mut t = AclTables {
            sessions: self.sessions,
            ..Default::default()
        };
        let lists: Vec<(u32, bool, Vec<u32>)> = self
            .input
            .iter()
            .map(|(&i, l)| (i, true, l.clone()))
            .chain(self.output.iter().map(|(&i, l)| (i, false, l.clone())))
            .collect();
        let mut used = HashMap::new();
        for (sw_if, input, ids) in lists {
            let c = self.compile(&ids);
            used.insert(
                ids.iter()
                    .filter_map(|id| self.acls.get(id).map(|e| (*id, e.version)))
                    .collect::<Vec<_>>(),
                c.clone(),
            );
            let v = if input { &mut t.input } else { &mut t.output };
            if v.len() <= sw_if as usize {
                v.resize(sw_if as usize + 1, None);
            }
            v[sw_if as usize] = Some(c);
        }
        // Keep only compiled lists still in use.
        self.compiled = used;
        self.tables = Arc::new(t);
    }

    /// Every ACL with its hit counters and users.
    pub fn dump(&self) -> Vec<AclDump> {
        self.acls
            .values()
            .map(|e| AclDump {
                acl: e.acl.clone(),
                hits: e.counters.all(),
                used_by: self.used_by(e.acl.id),
            })
            .collect()
    }

    /// One ACL.
    pub fn get(&self, id: u32) -> Option<AclDump> {
        self.dump().into_iter().find(|d| d.acl.id == id)
    }

    /// Interface lists: (sw_if, input ids, output ids).
    pub fn interfaces(&self) -> Vec<(u32, Vec<u32>, Vec<u32>)> {
        let mut ifs: Vec<u32> = self
            .input
            .keys()
            .chain(self.output.keys())
            .copied()
            .collect();
        ifs.sort_unstable();
        ifs.dedup();
        ifs.into_iter()
            .map(|i| {
                (
                    i,
                    self.input.get(&i).cloned().unwrap_or_default(),
                    self.output.get(&i).cloned().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Zeroes every hit counter.
    pub fn clear_counters(&self) {
        for e in self.acls.values() {
            e.counters.clear();
        }
    }

    /// Which ACL and rule would decide `key` on `sw_if` in a direction (the compiled classifier
    /// answers, exactly as the node would for a packet without a session).
    pub fn explain(&self, sw_if: u32, input: bool, key: &PacketKey) -> Verdict {
        let Some(list) = self.tables.list(sw_if, input) else {
            return Verdict::NoAcls;
        };
        let r = list.classifier.classify(key);
        if r == NO_MATCH {
            return Verdict::NoMatch {
                acls: list.acl_ids.clone(),
            };
        }
        let Some(rr) = list.rules.get(r as usize) else {
            return Verdict::NoMatch {
                acls: list.acl_ids.clone(),
            };
        };
        let id = list.acl_ids.get(rr.position as usize).copied().unwrap_or(0);
        let e = self.acls.get(&id);
        Verdict::Matched {
            acl: id,
            tag: e.map(|e| e.acl.tag.clone()).unwrap_or_default(),
            rule: rr.rule,
            text: e
                .and_then(|e| e.acl.rules.get(rr.rule as usize).copied())
                .unwrap_or_else(|| Rule::any(rr.action)),
        }
    }

    /// Compiled lists in use, each with the interfaces that share it.
    pub fn classifiers(&self) -> Vec<ListShape> {
        let mut out: Vec<ListShape> = Vec::new();
        for (dir, v) in [(true, &self.tables.input), (false, &self.tables.output)] {
            for (i, l) in v.iter().enumerate() {
                let Some(l) = l else { continue };
                match out.iter_mut().find(|(ids, _, _)| *ids == l.acl_ids) {
                    Some(o) => o.1.push((i as u32, dir)),
                    None => out.push((
                        l.acl_ids.clone(),
                        vec![(i as u32, dir)],
                        l.classifier.shape(),
                    )),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{Action, PortRange};

    fn acl(id: u32, rules: Vec<Rule>) -> Acl {
        Acl {
            id,
            tag: format!("acl{id}"),
            rules,
        }
    }

    fn tcp_to(port: u16, action: Action) -> Rule {
        Rule {
            proto: 6,
            dport: PortRange::one(port),
            ..Rule::any(action)
        }
    }

    fn key(dport: u16) -> PacketKey {
        PacketKey {
            src: 1,
            dst: 2,
            sport: 5000,
            dport,
            proto: 6,
            tcp_flags: 2,
            icmp_id: 0,
        }
    }

    #[test]
    fn first_acl_with_a_match_decides() {
        let mut c = AclControl::new(1);
        c.add_replace(acl(1, vec![tcp_to(22, Action::Deny)]))
            .unwrap();
        c.add_replace(acl(
            2,
            vec![tcp_to(22, Action::Permit), tcp_to(80, Action::Permit)],
        ))
        .unwrap();
        assert!(c.set_interface(0, true, vec![1, 2]).unwrap());
        match c.explain(0, true, &key(22)) {
            Verdict::Matched { acl, rule, .. } => assert_eq!((acl, rule), (1, 0)),
            v => panic!("{v:?}"),
        }
        match c.explain(0, true, &key(80)) {
            Verdict::Matched { acl, rule, .. } => assert_eq!((acl, rule), (2, 1)),
            v => panic!("{v:?}"),
        }
        assert_eq!(
            c.explain(0, true, &key(443)),
            Verdict::NoMatch { acls: vec![1, 2] }
        );
        assert_eq!(c.explain(0, false, &key(443)), Verdict::NoAcls);
        assert_eq!(c.explain(9, true, &key(443)), Verdict::NoAcls);
    }

    #[test]
    fn bad_changes_are_refused_whole() {
        let mut c = AclControl::new(1);
        c.add_replace(acl(1, vec![tcp_to(22, Action::Deny)]))
            .unwrap();
        let before = c.tables();
        let mut bad = tcp_to(80, Action::Permit);
        bad.dport = PortRange { lo: 90, hi: 80 };
        let e = c
            .add_replace(acl(1, vec![tcp_to(1, Action::Permit), bad]))
            .unwrap_err();
        assert_eq!(e.to_string(), "acl 1 rule 1: dport range 90-80 is inverted");
        assert_eq!(c.get(1).unwrap().acl.rules.len(), 1, "old ACL kept");
        assert!(Arc::ptr_eq(&before, &c.tables()));
        assert_eq!(
            c.set_interface(0, true, vec![1, 7]),
            Err(AclError::NoAcl(7))
        );
        assert_eq!(
            c.set_interface(0, true, vec![1, 1]),
            Err(AclError::Duplicate(1))
        );
        c.set_interface(3, false, vec![1]).unwrap();
        assert!(matches!(c.delete(1), Err(AclError::InUse { id: 1, .. })));
        assert_eq!(c.delete(5), Err(AclError::NoAcl(5)));
        assert!(!c.set_interface(3, false, vec![]).unwrap());
        c.delete(1).unwrap();
        assert!(c.dump().is_empty());
    }

    #[test]
    fn shared_lists_compile_once_and_replace_recompiles() {
        let mut c = AclControl::new(2);
        c.add_replace(acl(1, vec![tcp_to(22, Action::Deny)]))
            .unwrap();
        c.set_interface(0, false, vec![1]).unwrap();
        c.set_interface(1, false, vec![1]).unwrap();
        let t = c.tables();
        let (a, b) = (t.list(0, false).unwrap(), t.list(1, false).unwrap());
        assert!(
            Arc::ptr_eq(a, b),
            "identical lists share one compiled classifier"
        );
        let epoch = a.epoch;
        c.add_replace(acl(1, vec![tcp_to(23, Action::Deny)]))
            .unwrap();
        let t2 = c.tables();
        let a2 = t2.list(0, false).unwrap();
        assert_ne!(a2.epoch, epoch, "replace recompiles");
        assert_eq!(a2.classifier.classify(&key(23)), 0);
        assert_eq!(c.classifiers().len(), 1);
        assert_eq!(c.classifiers()[0].1, vec![(0, false), (1, false)]);
        // An unrelated change keeps the compiled list.
        c.add_replace(acl(2, vec![])).unwrap();
        assert!(Arc::ptr_eq(c.tables().list(0, false).unwrap(), a2));
    }
}
