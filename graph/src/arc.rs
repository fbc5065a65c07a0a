//! Feature arcs: an ordered, per-interface list of optional features between a start node and an
//! end node (VPP's `ip4-unicast` and `ip4-output` arcs).
//!
//! Features declare their order with runs-before/runs-after; the build sorts them once and gives
//! every start and feature node a next slot to every later feature and to the end node. At run
//! time a packet's next feature is one bit scan over the interface's enabled-features mask.

use std::fmt;

/// The feature arcs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArcId {
    /// IPv4 unicast input: between `ip4-input` and `ip4-lookup` (ACL input, NAT out2in, …).
    Ip4Unicast = 0,
    /// IPv4 output: between `ip4-rewrite` and `interface-output` (ACL output, SNAT, ESP, …).
    Ip4Output = 1,
}

/// Number of arcs.
pub const N_ARCS: usize = 2;

impl ArcId {
    /// All arcs.
    pub const ALL: [ArcId; N_ARCS] = [ArcId::Ip4Unicast, ArcId::Ip4Output];

    /// The arc's name.
    pub fn name(self) -> &'static str {
        match self {
            ArcId::Ip4Unicast => "ip4-unicast",
            ArcId::Ip4Output => "ip4-output",
        }
    }

    /// The arc with this name.
    pub fn from_name(name: &str) -> Option<ArcId> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl fmt::Display for ArcId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Declares an arc: the nodes that start it and the node that ends it.
#[derive(Clone, Debug)]
pub struct ArcRegistration {
    /// Which arc.
    pub arc: ArcId,
    /// Nodes that put packets on the arc.
    pub start_nodes: Vec<String>,
    /// Where packets go after the last enabled feature.
    pub end_node: String,
}

/// Declares a feature on an arc.
#[derive(Clone, Debug)]
pub struct FeatureRegistration {
    /// The arc.
    pub arc: ArcId,
    /// The feature's node.
    pub node: String,
    /// Features this one must run before (names of features not registered are ignored, as a
    /// feature from an absent plugin would be).
    pub runs_before: Vec<String>,
    /// Features this one must run after.
    pub runs_after: Vec<String>,
}

impl FeatureRegistration {
    /// A feature with no ordering constraints.
    pub fn new(arc: ArcId, node: &str) -> Self {
        Self {
            arc,
            node: node.into(),
            runs_before: vec![],
            runs_after: vec![],
        }
    }

    /// Adds a runs-before constraint.
    pub fn before(mut self, node: &str) -> Self {
        self.runs_before.push(node.into());
        self
    }

    /// Adds a runs-after constraint.
    pub fn after(mut self, node: &str) -> Self {
        self.runs_after.push(node.into());
        self
    }
}

/// Most features on one arc (the enabled set is a 32-bit mask).
pub const MAX_FEATURES: usize = 32;

/// Which features are enabled on which interface: part of the configuration snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeatureConfig {
    masks: [Vec<u32>; N_ARCS],
}

impl FeatureConfig {
    /// Enables feature `position` of `arc` on `sw_if`.
    pub fn enable(&mut self, arc: ArcId, sw_if: u32, position: u8) {
        let v = &mut self.masks[arc as usize];
        if v.len() <= sw_if as usize {
            v.resize(sw_if as usize + 1, 0);
        }
        v[sw_if as usize] |= 1 << position;
    }

    /// Disables feature `position` of `arc` on `sw_if`.
    pub fn disable(&mut self, arc: ArcId, sw_if: u32, position: u8) {
        if let Some(m) = self.masks[arc as usize].get_mut(sw_if as usize) {
            *m &= !(1 << position);
        }
    }

    /// Enabled-feature mask of `arc` on `sw_if`.
    #[inline(always)]
    pub fn mask(&self, arc: ArcId, sw_if: u32) -> u32 {
        self.masks[arc as usize]
            .get(sw_if as usize)
            .copied()
            .unwrap_or(0)
    }
}

/// A node's place on one arc: where it sits and its next slot for every later feature.
#[derive(Clone, Debug)]
pub(crate) struct NodeArcSlots {
    /// `None` for a start node, else the node's feature position.
    pub(crate) position: Option<u8>,
    /// Next slot per feature position; the last entry is the end node.
    pub(crate) slots: Vec<u16>,
}

/// A node's handle on its arcs inside `process`.
pub struct ArcCursor<'a> {
    pub(crate) node_arcs: &'a [Option<NodeArcSlots>; N_ARCS],
    pub(crate) features: &'a FeatureConfig,
}

impl ArcCursor<'_> {
    /// The next slot that continues `arc` for a packet on interface `sw_if`: the next enabled
    /// feature after this node, or the arc's end node.
    #[inline(always)]
    pub fn next(&self, arc: ArcId, sw_if: u32) -> u16 {
        let Some(info) = &self.node_arcs[arc as usize] else {
            debug_assert!(false, "node is not on arc {arc}");
            return 0;
        };
        let mask = self.features.mask(arc, sw_if);
        let later = match info.position {
            None => mask,
            Some(p) => mask & !((2u64 << p) - 1) as u32,
        };
        let target = if later == 0 {
            info.slots.len() - 1
        } else {
            later.trailing_zeros() as usize
        };
        info.slots.get(target).copied().unwrap_or(0)
    }
}

/// Orders features by their constraints (stable: registration order breaks ties).
pub(crate) fn order_features(features: &[&FeatureRegistration]) -> Result<Vec<String>, String> {
    let n = features.len();
    let idx = |name: &str| features.iter().position(|f| f.node == name);
    // edges[a] contains b when a must run before b.
    let mut edges = vec![Vec::new(); n];
    for (i, f) in features.iter().enumerate() {
        for b in &f.runs_before {
            if let Some(j) = idx(b) {
                edges[i].push(j);
            }
        }
        for a in &f.runs_after {
            if let Some(j) = idx(a) {
                edges[j].push(i);
            }
        }
    }
    let mut indeg = vec![0usize; n];
    for e in &edges {
        for &j in e {
            indeg[j] += 1;
        }
    }
    let mut out = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while out.len() < n {
        let Some(i) = (0..n).find(|&i| !done[i] && indeg[i] == 0) else {
            let stuck: Vec<_> = (0..n)
                .filter(|&i| !done[i])
                .map(|i| features[i].node.as_str())
                .collect();
            return Err(format!(
                "ordering constraints form a cycle among {}",
                stuck.join(", ")
            ));
        };
        done[i] = true;
        for &j in &edges[i] {
            indeg[j] -= 1;
        }
        out.push(features[i].node.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_follows_constraints_and_detects_cycles() {
        let a = FeatureRegistration::new(ArcId::Ip4Output, "nat").after("acl");
        let b = FeatureRegistration::new(ArcId::Ip4Output, "esp").after("nat");
        let c = FeatureRegistration::new(ArcId::Ip4Output, "acl").before("absent-plugin");
        assert_eq!(
            order_features(&[&a, &b, &c]).unwrap(),
            vec!["acl", "nat", "esp"]
        );
        let d = FeatureRegistration::new(ArcId::Ip4Output, "acl").after("esp");
        let e = order_features(&[&a, &b, &d]).unwrap_err();
        assert!(e.contains("cycle") && e.contains("acl"), "{e}");
    }

    #[test]
    fn cursor_skips_disabled_features() {
        let mut cfg = FeatureConfig::default();
        let start = [
            Some(NodeArcSlots {
                position: None,
                slots: vec![1, 2, 3, 4],
            }),
            None,
        ];
        let feat1 = [
            Some(NodeArcSlots {
                position: Some(1),
                slots: vec![0, 0, 5, 6],
            }),
            None,
        ];
        let c = ArcCursor {
            node_arcs: &start,
            features: &cfg,
        };
        assert_eq!(c.next(ArcId::Ip4Unicast, 0), 4, "nothing enabled: end node");
        cfg.enable(ArcId::Ip4Unicast, 0, 1);
        cfg.enable(ArcId::Ip4Unicast, 0, 2);
        let c = ArcCursor {
            node_arcs: &start,
            features: &cfg,
        };
        assert_eq!(c.next(ArcId::Ip4Unicast, 0), 2);
        assert_eq!(c.next(ArcId::Ip4Unicast, 7), 4, "other interface");
        let c = ArcCursor {
            node_arcs: &feat1,
            features: &cfg,
        };
        assert_eq!(c.next(ArcId::Ip4Unicast, 0), 5);
        cfg.disable(ArcId::Ip4Unicast, 0, 2);
        let c = ArcCursor {
            node_arcs: &feat1,
            features: &cfg,
        };
        assert_eq!(c.next(ArcId::Ip4Unicast, 0), 6);
    }
}
