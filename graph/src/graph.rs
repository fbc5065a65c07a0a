//! Building a graph: nodes registered by constructor, next nodes resolved by name, feature arcs
//! ordered, error counters numbered. The result, a [`Layout`], is shared by all workers; each
//! worker instantiates its own nodes from it.

use crate::arc::{order_features, ArcId, ArcRegistration, FeatureRegistration, NodeArcSlots};
use crate::arc::{MAX_FEATURES, N_ARCS};
use crate::node::{DynNode, ErrorDesc, Node, NodeCell, NodeKind, NodeRegistration};
use crate::trace::TraceBuf;
use std::collections::HashMap;
use std::sync::Arc;

/// Why a graph could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// Two nodes share a name.
    #[error("node name '{0}' is registered twice")]
    DuplicateNode(String),
    /// A node names a next node that is not registered.
    #[error("node '{node}' names next node '{next}', which is not registered")]
    UnknownNext {
        /// The node whose registration is wrong.
        node: String,
        /// The name it used.
        next: String,
    },
    /// An arc or feature names a node that is not registered.
    #[error("feature arc '{arc}' names node '{node}', which is not registered")]
    UnknownArcNode {
        /// The arc.
        arc: &'static str,
        /// The missing node.
        node: String,
    },
    /// A feature is registered on an arc that was not declared.
    #[error("feature '{node}' is on arc '{arc}', which has no start and end nodes declared")]
    UndeclaredArc {
        /// The arc.
        arc: &'static str,
        /// The feature.
        node: String,
    },
    /// Features' runs-before/after constraints cannot be satisfied, or there are too many.
    #[error("feature arc '{arc}': {why}")]
    BadFeatureOrder {
        /// The arc.
        arc: &'static str,
        /// What is wrong.
        why: String,
    },
    /// A node has more next nodes or errors than the runtime can number.
    #[error("node '{0}' has too many next nodes or error counters")]
    TooLarge(String),
}

type Factory = Box<dyn Fn() -> Box<dyn DynNode> + Send + Sync>;

/// A graph being declared.
pub struct GraphSpec {
    factories: Vec<Factory>,
    arcs: Vec<ArcRegistration>,
    features: Vec<FeatureRegistration>,
    /// Next nodes added to other nodes' registrations: (node, next).
    extra_nexts: Vec<(String, String)>,
}

impl Default for GraphSpec {
    fn default() -> Self {
        Self::new()
    }
}

impl GraphSpec {
    /// A graph with the built-in nodes `error-drop` and `interface-output`.
    pub fn new() -> Self {
        let mut s = Self {
            factories: Vec::new(),
            arcs: Vec::new(),
            features: Vec::new(),
            extra_nexts: Vec::new(),
        };
        s.node(crate::drop::ErrorDrop::default);
        s.node(crate::interface::InterfaceOutput::default);
        s
    }

    /// Registers a node; `make` builds one instance per worker.
    pub fn node<N: Node, F: Fn() -> N + Send + Sync + 'static>(&mut self, make: F) -> &mut Self {
        self.factories.push(Box::new(move || {
            Box::new(NodeCell {
                node: make(),
                trace: TraceBuf::default(),
            })
        }));
        self
    }

    /// Declares a feature arc.
    pub fn arc(&mut self, arc: ArcId, start_nodes: &[&str], end_node: &str) -> &mut Self {
        self.arcs.push(ArcRegistration {
            arc,
            start_nodes: start_nodes.iter().map(|s| s.to_string()).collect(),
            end_node: end_node.into(),
        });
        self
    }

    /// Registers a feature on an arc.
    pub fn feature(&mut self, f: FeatureRegistration) -> &mut Self {
        self.features.push(f);
        self
    }

    /// Adds `next` to `node`'s next nodes (VPP's `vlib_node_add_next`): a plugin reaching a node
    /// that does not know it, such as `interface-output` sending a tunnel's packets to its
    /// encapsulation node. The node finds the slot at run time from [`Layout::next_slot`]
    /// (through its configuration), so it never names the plugin's nodes itself.
    pub fn add_next(&mut self, node: &str, next: &str) -> &mut Self {
        self.extra_nexts.push((node.into(), next.into()));
        self
    }

    /// Resolves names and orders features.
    pub fn build(self) -> Result<Arc<Layout>, BuildError> {
        let mut regs: Vec<NodeRegistration> =
            self.factories.iter().map(|f| f().registration()).collect();
        for (node, next) in &self.extra_nexts {
            let Some(reg) = regs.iter_mut().find(|r| &r.name == node) else {
                return Err(BuildError::UnknownNext {
                    node: node.clone(),
                    next: next.clone(),
                });
            };
            next_slot(reg, next);
        }
        let mut by_name = HashMap::new();
        for (i, r) in regs.iter().enumerate() {
            if by_name.insert(r.name.clone(), i as u32).is_some() {
                return Err(BuildError::DuplicateNode(r.name.clone()));
            }
        }
        let n = regs.len();
        let mut node_arcs: Vec<[Option<NodeArcSlots>; N_ARCS]> = vec![[None, None]; n];
        let mut arc_features: [Vec<String>; N_ARCS] = Default::default();
        for f in &self.features {
            if !self.arcs.iter().any(|a| a.arc == f.arc) {
                return Err(BuildError::UndeclaredArc {
                    arc: f.arc.name(),
                    node: f.node.clone(),
                });
            }
        }
        for a in &self.arcs {
            let feats: Vec<&FeatureRegistration> =
                self.features.iter().filter(|f| f.arc == a.arc).collect();
            if feats.len() > MAX_FEATURES {
                let why = format!("{} features, at most {MAX_FEATURES}", feats.len());
                return Err(BuildError::BadFeatureOrder {
                    arc: a.arc.name(),
                    why,
                });
            }
            let order = order_features(&feats).map_err(|why| BuildError::BadFeatureOrder {
                arc: a.arc.name(),
                why,
            })?;
            let members = a
                .start_nodes
                .iter()
                .map(|s| (s, None))
                .chain(order.iter().enumerate().map(|(p, s)| (s, Some(p as u8))));
            for (name, position) in members {
                let Some(&ni) = by_name.get(name) else {
                    return Err(BuildError::UnknownArcNode {
                        arc: a.arc.name(),
                        node: name.clone(),
                    });
                };
                let reg = &mut regs[ni as usize];
                let mut slots = Vec::with_capacity(order.len() + 1);
                for (q, target) in order.iter().chain(std::iter::once(&a.end_node)).enumerate() {
                    let later = position.is_none_or(|p| q > p as usize);
                    slots.push(if later { next_slot(reg, target) } else { 0 });
                }
                node_arcs[ni as usize][a.arc as usize] = Some(NodeArcSlots { position, slots });
            }
            arc_features[a.arc as usize] = order;
        }
        let mut next_targets = Vec::with_capacity(n);
        let mut error_bases = Vec::with_capacity(n);
        let mut n_errors = 0usize;
        for r in &regs {
            if r.next_nodes.len() >= u16::MAX as usize
                || n_errors + r.errors.len() > u16::MAX as usize
            {
                return Err(BuildError::TooLarge(r.name.clone()));
            }
            let mut t = Vec::with_capacity(r.next_nodes.len());
            for next in &r.next_nodes {
                match by_name.get(next) {
                    Some(&i) => t.push(i),
                    None => {
                        return Err(BuildError::UnknownNext {
                            node: r.name.clone(),
                            next: next.clone(),
                        })
                    }
                }
            }
            next_targets.push(t);
            error_bases.push(n_errors as u16);
            n_errors += r.errors.len();
        }
        let order = dispatch_order(&regs, &next_targets);
        let error_descs = regs.iter().flat_map(|r| r.errors.iter()).collect();
        Ok(Arc::new(Layout {
            factories: self.factories,
            regs,
            by_name,
            next_targets,
            error_bases,
            n_errors,
            error_descs,
            node_arcs,
            arc_features,
            order,
        }))
    }
}

/// The slot of `target` in `reg`'s next nodes, appending it when absent.
fn next_slot(reg: &mut NodeRegistration, target: &str) -> u16 {
    match reg.next_nodes.iter().position(|n| n == target) {
        Some(p) => p as u16,
        None => {
            reg.next_nodes.push(target.to_string());
            (reg.next_nodes.len() - 1) as u16
        }
    }
}

/// Breadth-first from the input nodes, so a node usually runs after the nodes that feed it and
/// one pass over the order moves a frame all the way through.
fn dispatch_order(regs: &[NodeRegistration], next_targets: &[Vec<u32>]) -> Vec<u32> {
    let mut seen = vec![false; regs.len()];
    let mut order = Vec::with_capacity(regs.len());
    let mut queue: std::collections::VecDeque<u32> = regs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == NodeKind::Input)
        .map(|(i, _)| i as u32)
        .collect();
    for &i in &queue {
        seen[i as usize] = true;
    }
    while let Some(i) = queue.pop_front() {
        order.push(i);
        for &t in &next_targets[i as usize] {
            if !seen[t as usize] {
                seen[t as usize] = true;
                queue.push_back(t);
            }
        }
    }
    order.extend((0..regs.len() as u32).filter(|&i| !seen[i as usize]));
    // error-drop last: it frees, so everything else gets its chance to enqueue to it first.
    if let Some(p) = order
        .iter()
        .position(|&i| regs[i as usize].name == crate::drop::ERROR_DROP)
    {
        let d = order.remove(p);
        order.push(d);
    }
    order
}

/// A built graph: registrations with resolved next nodes, feature arcs and error numbering.
pub struct Layout {
    factories: Vec<Factory>,
    pub(crate) regs: Vec<NodeRegistration>,
    by_name: HashMap<String, u32>,
    pub(crate) next_targets: Vec<Vec<u32>>,
    pub(crate) error_bases: Vec<u16>,
    pub(crate) n_errors: usize,
    pub(crate) error_descs: Vec<&'static ErrorDesc>,
    pub(crate) node_arcs: Vec<[Option<NodeArcSlots>; N_ARCS]>,
    arc_features: [Vec<String>; N_ARCS],
    pub(crate) order: Vec<u32>,
}

impl Layout {
    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.regs.len()
    }

    /// The index of the node named `name`.
    pub fn node_index(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// A node's registration, with the next nodes the arcs added.
    pub fn registration(&self, node: u32) -> Option<&NodeRegistration> {
        self.regs.get(node as usize)
    }

    /// The node names, by index.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.regs.iter().map(|r| r.name.as_str())
    }

    /// Number of error counters.
    pub fn error_count(&self) -> usize {
        self.n_errors
    }

    /// The slot of `next` among `node`'s next nodes (for a node told at run time where to send
    /// packets, see [`GraphSpec::add_next`]).
    pub fn next_slot(&self, node: &str, next: &str) -> Option<u16> {
        let reg = self.regs.get(self.node_index(node)? as usize)?;
        reg.next_nodes
            .iter()
            .position(|n| n == next)
            .map(|p| p as u16)
    }

    /// Node name and description of global error index `e`.
    pub fn error_info(&self, e: usize) -> Option<(&str, &ErrorDesc)> {
        let node = self
            .error_bases
            .partition_point(|&b| b as usize <= e)
            .checked_sub(1)?;
        let code = e - self.error_bases[node] as usize;
        self.regs[node]
            .errors
            .get(code)
            .map(|d| (self.regs[node].name.as_str(), d))
    }

    /// The global error index of `node`'s error `code`.
    pub fn error_index(&self, node: &str, code: u16) -> Option<usize> {
        let i = self.node_index(node)? as usize;
        ((code as usize) < self.regs[i].errors.len())
            .then(|| self.error_bases[i] as usize + code as usize)
    }

    /// The ordered features of `arc`.
    pub fn features(&self, arc: ArcId) -> &[String] {
        &self.arc_features[arc as usize]
    }

    /// Position of feature `node` on `arc` (for `FeatureConfig::enable`).
    pub fn feature_position(&self, arc: ArcId, node: &str) -> Option<u8> {
        self.arc_features[arc as usize]
            .iter()
            .position(|f| f == node)
            .map(|p| p as u8)
    }

    pub(crate) fn instantiate(&self) -> Vec<Box<dyn DynNode>> {
        self.factories.iter().map(|f| f()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Ctx;
    use crate::frame::Vector;

    struct Named(&'static str, &'static [&'static str]);
    impl Node for Named {
        type Trace = u8;
        fn registration(&self) -> NodeRegistration {
            NodeRegistration::internal(self.0, self.1, &[])
        }
        fn process(&mut self, _: &mut Ctx<'_, u8>, v: &mut Vector) {
            v.set_all_nexts(0);
        }
    }

    #[test]
    fn unknown_next_names_both_nodes() {
        let mut g = GraphSpec::new();
        g.node(|| Named("a", &["bogus"]));
        let e = g.build().err().unwrap();
        assert_eq!(
            e.to_string(),
            "node 'a' names next node 'bogus', which is not registered"
        );
    }

    #[test]
    fn duplicate_and_arc_errors() {
        let mut g = GraphSpec::new();
        g.node(|| Named("a", &[])).node(|| Named("a", &[]));
        assert_eq!(
            g.build().err().unwrap(),
            BuildError::DuplicateNode("a".into())
        );
        let mut g = GraphSpec::new();
        g.node(|| Named("a", &[]))
            .feature(FeatureRegistration::new(ArcId::Ip4Unicast, "a"));
        assert!(matches!(
            g.build().err().unwrap(),
            BuildError::UndeclaredArc { .. }
        ));
        let mut g = GraphSpec::new();
        g.node(|| Named("a", &[]))
            .arc(ArcId::Ip4Unicast, &["a"], "nope");
        assert!(g.build().is_err());
    }

    #[test]
    fn add_next_appends_a_resolvable_slot() {
        let mut g = GraphSpec::new();
        g.node(|| Named("a", &["error-drop"]))
            .node(|| Named("b", &[]))
            .add_next("a", "b")
            .add_next("a", "error-drop");
        let l = g.build().unwrap();
        assert_eq!(l.next_slot("a", "b"), Some(1));
        assert_eq!(l.next_slot("a", "error-drop"), Some(0), "not added twice");
        assert_eq!(l.next_slot("a", "nope"), None);
        let mut g = GraphSpec::new();
        g.node(|| Named("a", &[])).add_next("a", "bogus");
        assert!(matches!(g.build(), Err(BuildError::UnknownNext { .. })));
        let mut g = GraphSpec::new();
        g.add_next("nobody", "error-drop");
        assert!(g.build().is_err(), "adding to an unknown node is an error");
    }

    #[test]
    fn arcs_add_next_slots_to_later_features_only() {
        let mut g = GraphSpec::new();
        g.node(|| Named("in", &["error-drop"]))
            .node(|| Named("f1", &[]))
            .node(|| Named("f2", &[]))
            .node(|| Named("end", &[]))
            .arc(ArcId::Ip4Unicast, &["in"], "end")
            .feature(FeatureRegistration::new(ArcId::Ip4Unicast, "f2").after("f1"))
            .feature(FeatureRegistration::new(ArcId::Ip4Unicast, "f1"));
        let l = g.build().unwrap();
        assert_eq!(l.features(ArcId::Ip4Unicast), &["f1", "f2"]);
        let in_reg = l.registration(l.node_index("in").unwrap()).unwrap();
        assert_eq!(in_reg.next_nodes, vec!["error-drop", "f1", "f2", "end"]);
        let f2 = l.registration(l.node_index("f2").unwrap()).unwrap();
        assert_eq!(
            f2.next_nodes,
            vec!["end"],
            "f2 only reaches what runs after it"
        );
        assert_eq!(l.feature_position(ArcId::Ip4Unicast, "f2"), Some(1));
    }
}
