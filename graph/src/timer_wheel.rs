//! A timer wheel for session expiry (ACL and NAT44 sessions), driven by the injected clock.
//!
//! One slot per tick (1 s); a session sits in the slot of the tick when it may expire. Activity
//! only updates the session's last-active time, so the packet path never touches the wheel;
//! when the wheel reaches a slot it checks each session there and either expires it or moves it
//! to the slot of its new deadline (lazy re-insertion). Deadlines beyond the wheel's span go to
//! its last slot and are re-checked there. The wheel links sessions through indices kept by the
//! caller (an intrusive doubly-linked list per slot), so it allocates only when built.

/// Nanoseconds per tick.
pub const TICK_NS: u64 = 1_000_000_000;
/// Slots (ticks of span).
pub const SLOTS: usize = 4096;
const NIL: u32 = u32::MAX;

/// Links of one element in its slot's list.
#[derive(Clone, Copy, Debug)]
pub struct Links {
    prev: u32,
    next: u32,
    slot: u32,
}

impl Default for Links {
    fn default() -> Self {
        Links {
            prev: NIL,
            next: NIL,
            slot: NIL,
        }
    }
}

/// The wheel over elements `0..capacity`.
#[derive(Clone, Debug)]
pub struct TimerWheel {
    heads: Vec<u32>,
    links: Vec<Links>,
    /// The next tick to process.
    cursor: u64,
}

/// What the wheel asks of its owner for one element.
pub enum Check {
    /// Expired: the owner frees it.
    Expired,
    /// Still alive until this time (ns).
    Alive(u64),
}

impl TimerWheel {
    /// A wheel for `capacity` elements, starting at time `now` (ns).
    pub fn new(capacity: usize, now: u64) -> Self {
        Self {
            heads: vec![NIL; SLOTS],
            links: vec![Links::default(); capacity],
            cursor: now / TICK_NS,
        }
    }

    fn slot_for(&self, deadline: u64) -> u64 {
        let t = deadline.div_ceil(TICK_NS);
        t.clamp(self.cursor, self.cursor + SLOTS as u64 - 1)
    }

    /// Schedules element `e` (not on the wheel) to be checked at `deadline` (ns).
    pub fn insert(&mut self, e: u32, deadline: u64) {
        let t = self.slot_for(deadline);
        self.link(e, (t % SLOTS as u64) as u32);
    }

    fn link(&mut self, e: u32, slot: u32) {
        let head = self.heads[slot as usize];
        if let Some(l) = self.links.get_mut(e as usize) {
            *l = Links {
                prev: NIL,
                next: head,
                slot,
            };
        }
        if let Some(h) = self.links.get_mut(head as usize) {
            h.prev = e;
        }
        self.heads[slot as usize] = e;
    }

    /// Takes element `e` off the wheel.
    pub fn remove(&mut self, e: u32) {
        let Some(&Links { prev, next, slot }) = self.links.get(e as usize) else {
            return;
        };
        if slot == NIL {
            return;
        }
        match self.links.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => self.heads[slot as usize] = next,
        }
        if let Some(n) = self.links.get_mut(next as usize) {
            n.prev = prev;
        }
        self.links[e as usize] = Links::default();
    }

    /// Whether `e` is on the wheel.
    pub fn contains(&self, e: u32) -> bool {
        self.links.get(e as usize).is_some_and(|l| l.slot != NIL)
    }

    /// Processes the slots up to `now`, checking at most `budget` elements; `check` decides
    /// for each. Returns the number expired (they are off the wheel). Unprocessed work stays for
    /// the next call.
    pub fn advance(
        &mut self,
        now: u64,
        mut budget: usize,
        mut check: impl FnMut(u32) -> Check,
    ) -> usize {
        let until = now / TICK_NS;
        let mut expired = 0;
        while self.cursor <= until {
            let slot = (self.cursor % SLOTS as u64) as u32;
            loop {
                let e = self.heads[slot as usize];
                if e == NIL {
                    break;
                }
                if budget == 0 {
                    return expired;
                }
                budget -= 1;
                self.remove(e);
                match check(e) {
                    Check::Expired => expired += 1,
                    Check::Alive(deadline) => {
                        // Never back into the slot being drained.
                        let t = self.slot_for(deadline).max(self.cursor + 1);
                        self.link(e, (t % SLOTS as u64) as u32);
                    }
                }
            }
            if self.cursor == until {
                break;
            }
            self.cursor += 1;
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_at_deadline_and_reinserts_active() {
        let mut w = TimerWheel::new(4, 0);
        let mut deadline = [10 * TICK_NS, 20 * TICK_NS, 9000 * TICK_NS, 0];
        for e in 0..3 {
            w.insert(e, deadline[e as usize]);
        }
        let run = |w: &mut TimerWheel, now: u64, d: &[u64; 4]| {
            let mut out = vec![];
            w.advance(now, usize::MAX, |e| {
                if d[e as usize] <= now {
                    out.push(e);
                    Check::Expired
                } else {
                    Check::Alive(d[e as usize])
                }
            });
            out
        };
        assert!(run(&mut w, 9 * TICK_NS, &deadline).is_empty());
        // Element 0 was active: its deadline moved.
        deadline[0] = 15 * TICK_NS;
        assert!(run(&mut w, 10 * TICK_NS, &deadline).is_empty());
        assert_eq!(run(&mut w, 15 * TICK_NS, &deadline), vec![0]);
        assert_eq!(run(&mut w, 25 * TICK_NS, &deadline), vec![1]);
        assert!(w.contains(2), "beyond the span: parked in the last slot");
        assert!(run(&mut w, 5000 * TICK_NS, &deadline).is_empty());
        assert_eq!(run(&mut w, 9000 * TICK_NS, &deadline), vec![2]);
        assert!(!w.contains(2));
    }

    #[test]
    fn budget_leaves_work_for_later_and_remove_unlinks() {
        let mut w = TimerWheel::new(10, 0);
        for e in 0..10 {
            w.insert(e, 5 * TICK_NS);
        }
        w.remove(3);
        assert!(!w.contains(3));
        let n = w.advance(6 * TICK_NS, 4, |_| Check::Expired);
        assert_eq!(n, 4);
        let n = w.advance(6 * TICK_NS, 100, |_| Check::Expired);
        assert_eq!(n, 5, "the rest, without element 3");
    }
}
