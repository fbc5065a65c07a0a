//! The ACL configuration snapshot the nodes read: per interface and direction the compiled
//! classifier of its ACL list, what each compiled rule maps back to, the hit counters, and the
//! session settings. Immutable; the control side builds a new one per change.

use crate::classify::Classifier;
use crate::rule::Action;
use crate::session::Timeouts;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Hit counters of one ACL: per worker, per rule. Each worker writes only its own row, with a
/// plain load and store (no locked instruction on the packet path); readers sum the rows.
#[derive(Debug)]
pub struct AclCounters {
    rows: Vec<Box<[AtomicU64]>>,
}

impl AclCounters {
    /// Counters for `rules` rules on `workers` workers.
    pub fn new(workers: usize, rules: usize) -> Self {
        Self {
            rows: (0..workers.max(1))
                .map(|_| (0..rules).map(|_| AtomicU64::new(0)).collect())
                .collect(),
        }
    }

    /// Counts one hit of `rule` on `worker`.
    #[inline(always)]
    pub fn hit(&self, worker: usize, rule: u32) {
        if let Some(c) = self.rows.get(worker).and_then(|r| r.get(rule as usize)) {
            // Single writer per row: load + store is exact and cheaper than fetch_add.
            c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }

    /// Hits of `rule` over all workers.
    pub fn rule_hits(&self, rule: usize) -> u64 {
        self.rows
            .iter()
            .filter_map(|r| r.get(rule))
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Hits of every rule, summed over workers.
    pub fn all(&self) -> Vec<u64> {
        let n = self.rows.first().map_or(0, |r| r.len());
        (0..n).map(|i| self.rule_hits(i)).collect()
    }

    /// Zeroes every counter.
    pub fn clear(&self) {
        for r in &self.rows {
            for c in r.iter() {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

/// What a compiled rule is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleRef {
    /// Position of its ACL in the interface's list.
    pub position: u16,
    /// Its index in that ACL.
    pub rule: u32,
    /// Its action.
    pub action: Action,
}

/// The compiled ACL list of one or more interfaces (interfaces with the same list share it).
#[derive(Debug)]
pub struct CompiledList {
    /// The ACL ids, in order.
    pub acl_ids: Vec<u32>,
    /// The concatenated rules, compiled: the first match is the first ACL with a matching rule,
    /// and its first matching rule.
    pub classifier: Classifier,
    /// Compiled rule → ACL position, rule index, action.
    pub rules: Vec<RuleRef>,
    /// Hit counters per ACL position.
    pub counters: Vec<Arc<AclCounters>>,
    /// Changes whenever the list or one of its ACLs changes (sessions made under an older epoch
    /// are reclassified when reclassification is on).
    pub epoch: u32,
}

/// The snapshot.
#[derive(Debug, Default)]
pub struct AclTables {
    /// Input lists by interface.
    pub input: Vec<Option<Arc<CompiledList>>>,
    /// Output lists by interface.
    pub output: Vec<Option<Arc<CompiledList>>>,
    /// Session settings.
    pub sessions: SessionConfig,
}

/// Session settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Sessions per worker.
    pub max_per_worker: usize,
    /// Whether sessions made under an older ACL epoch are classified again.
    pub reclassify: bool,
}

/// Default sessions per worker (about 10 MiB of table per worker).
pub const DEFAULT_MAX_SESSIONS: usize = 131_072;

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            timeouts: Timeouts::default(),
            max_per_worker: DEFAULT_MAX_SESSIONS,
            reclassify: false,
        }
    }
}

impl AclTables {
    /// The list of `sw_if` in the given direction.
    #[inline(always)]
    pub fn list(&self, sw_if: u32, input: bool) -> Option<&Arc<CompiledList>> {
        let v = if input { &self.input } else { &self.output };
        v.get(sw_if as usize).and_then(|l| l.as_ref())
    }
}
