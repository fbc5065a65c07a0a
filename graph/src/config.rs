//! Configuration snapshots: immutable, shared by all workers, swapped between frames.
//!
//! The control side builds a new [`ConfigSet`] (cloning the `Arc`s of the parts it does not
//! change), sends it to every worker, and each worker hands it to every node's `reconfigure`
//! between two dispatch loops. Nodes keep `Arc`s to what they need, so the packet path reads plain
//! memory and takes no lock.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

/// A set of configuration parts, one per Rust type.
#[derive(Clone, Default)]
pub struct ConfigSet {
    parts: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    generation: u64,
}

impl ConfigSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The part of type `T`, if present.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.parts
            .get(&TypeId::of::<T>())
            .and_then(|a| a.clone().downcast::<T>().ok())
    }

    /// A copy of this set with `part` replacing the part of its type, and the generation bumped.
    pub fn with<T: Any + Send + Sync>(&self, part: Arc<T>) -> Self {
        let mut next = self.clone();
        next.parts.insert(TypeId::of::<T>(), part);
        next.generation += 1;
        next
    }

    /// Counts the snapshots derived from the first one (shown by workers for debugging).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_by_type() {
        let a = ConfigSet::new()
            .with(Arc::new(5u32))
            .with(Arc::new(String::from("x")));
        assert_eq!(*a.get::<u32>().unwrap(), 5);
        let b = a.with(Arc::new(6u32));
        assert_eq!(*a.get::<u32>().unwrap(), 5, "old snapshot unchanged");
        assert_eq!(*b.get::<u32>().unwrap(), 6);
        assert_eq!(b.get::<String>().unwrap().as_str(), "x");
        assert!(b.get::<u64>().is_none());
        assert_eq!(b.generation(), 3);
    }
}
