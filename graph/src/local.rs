//! Worker-local state shared by several nodes of one worker (VPP's per-thread data in a plugin's
//! main struct): the ACL input and output nodes share one session table per worker, NAT44's
//! in2out and out2in nodes one session table.
//!
//! The runtime owns it and lends it through [`crate::Ctx::locals`], so the nodes reach it without
//! a lock; the control side reads it on the worker itself with [`crate::Workers::exec`] and
//! [`crate::Runtime::locals_mut`]. Lookups are by type, once per node call, not per packet.

use std::any::{Any, TypeId};
use std::collections::HashMap;

/// A map from type to one value of that type, owned by one worker.
#[derive(Default)]
pub struct WorkerLocals {
    parts: HashMap<TypeId, Box<dyn Any + Send>>,
}

impl WorkerLocals {
    /// The value of type `T`, created by `init` on first use (allocation happens once, the first
    /// time a node needs the state, not per packet).
    pub fn get_or_insert_with<T: Any + Send>(&mut self, init: impl FnOnce() -> T) -> &mut T {
        let b = self
            .parts
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(init()));
        match b.downcast_mut::<T>() {
            Some(t) => t,
            // The entry for TypeId::of::<T>() only ever holds a T.
            None => unreachable!("worker-local entry of the wrong type"),
        }
    }

    /// The value of type `T`, if a node created it.
    pub fn get_mut<T: Any + Send>(&mut self) -> Option<&mut T> {
        self.parts
            .get_mut(&TypeId::of::<T>())
            .and_then(|b| b.downcast_mut::<T>())
    }

    /// The value of type `T`, if a node created it.
    pub fn get<T: Any + Send>(&self) -> Option<&T> {
        self.parts
            .get(&TypeId::of::<T>())
            .and_then(|b| b.downcast_ref::<T>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type() {
        let mut l = WorkerLocals::default();
        assert!(l.get::<u32>().is_none());
        *l.get_or_insert_with(|| 5u32) += 1;
        assert_eq!(*l.get_or_insert_with(|| 100u32), 6, "init runs once");
        l.get_or_insert_with(|| String::from("x"));
        assert_eq!(l.get::<u32>(), Some(&6));
        assert_eq!(l.get_mut::<String>().map(|s| s.as_str()), Some("x"));
    }
}
