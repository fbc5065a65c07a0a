//! The anti-replay window of an inbound SA (RFC 4303 §3.4.3 and Appendix A), on its own so it is
//! tested alone (boringtun's `ReceivingKeyCounterValidator` precedent).
//!
//! A circular bitmap (RFC 6479's idea): bit `seq mod bits` says whether `seq` was received,
//! `bits` being the window rounded up to a power of two of at least 64. Moving the top clears
//! the bits of the numbers it passes (whole words at a time), so a check and an update cost a
//! few instructions whatever the window size. The check runs before decryption; the update after
//! successful authentication, and checks again, so two copies of one packet in a frame count
//! once.

use std::fmt;

/// The default window (packets), as RFC 4303 recommends ("a default of 64 MUST be supported").
pub const DEFAULT_WINDOW: u32 = 64;
/// The largest window accepted.
pub const MAX_WINDOW: u32 = 1 << 16;

/// Why a sequence number is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// Older than the window.
    TooOld,
    /// Already received.
    Duplicate,
    /// Zero (never sent), or beyond the 64-bit space with extended sequence numbers.
    Invalid,
}

impl fmt::Display for Replay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Replay::TooOld => "older than the window",
            Replay::Duplicate => "duplicate",
            Replay::Invalid => "invalid sequence number",
        })
    }
}

/// One inbound SA's window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Window size (packets behind the highest that are still accepted).
    size: u32,
    /// The highest authenticated sequence number (full 64 bits with ESN); 0 before the first.
    top: u64,
    /// Circular bitmap, `bits.len() * 64` a power of two of at least `size`.
    bits: Box<[u64]>,
    esn: bool,
}

impl ReplayWindow {
    /// A window of `size` packets (rounded up to 64, at most [`MAX_WINDOW`]) over 32-bit
    /// sequence numbers, or 64-bit ones with `esn`.
    pub fn new(size: u32, esn: bool) -> Self {
        let size = size.clamp(1, MAX_WINDOW);
        let bits = size.next_power_of_two().max(64);
        Self {
            size,
            top: 0,
            bits: vec![0u64; bits as usize / 64].into_boxed_slice(),
            esn,
        }
    }

    /// A window that has seen every number up to `seq`: what a restarted daemon's inbound SA
    /// starts with when it recorded how far the SA had accepted (a replay of a packet captured
    /// before the restart is then refused).
    pub fn after(size: u32, esn: bool, seq: u64) -> Self {
        let mut w = Self::new(size, esn);
        w.top = seq;
        w.bits.fill(u64::MAX);
        w
    }

    /// The window size.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The highest sequence number accepted so far.
    pub fn top(&self) -> u64 {
        self.top
    }

    #[inline(always)]
    fn mask(&self) -> u64 {
        (self.bits.len() as u64 * 64) - 1
    }

    #[inline(always)]
    fn bit(&self, seq: u64) -> bool {
        let p = seq & self.mask();
        self.bits[(p >> 6) as usize] & (1 << (p & 63)) != 0
    }

    //= https://www.rfc-editor.org/rfc/rfc4303#appendix-A.2.2
    //# Case A: Tl >= (W - 1). In this case, the window is within one
    //# sequence number subspace.
    //# ...
    //# Case B: Tl < (W - 1). In this case, the window spans two
    //# sequence number subspaces.

    /// The full sequence number a packet's low 32 bits stand for (RFC 4303 Appendix A2.2 with
    /// ESN; the bits themselves without). Used for the AAD, so a wrong guess fails
    /// authentication rather than corrupting the window.
    #[inline]
    pub fn infer(&self, seql: u32) -> u64 {
        self.infer_above(seql, self.top)
    }

    /// [`infer`](Self::infer) as if the highest number accepted were `top` when that is
    /// higher: a frame's earlier packets, checked but not yet accepted, move the reference
    /// for the later ones (so a frame may cross 2^32).
    #[inline]
    pub fn infer_above(&self, seql: u32, top: u64) -> u64 {
        if !self.esn {
            return u64::from(seql);
        }
        let top = top.max(self.top);
        let w = self.size;
        let tl = top as u32;
        let th = (top >> 32) as u32;
        let seqh = if tl >= w - 1 {
            if seql >= tl - (w - 1) {
                th
            } else {
                // The next subspace; past the last one, a number no packet can carry.
                match th.checked_add(1) {
                    Some(h) => h,
                    None => return 0,
                }
            }
        } else if seql >= tl.wrapping_sub(w - 1) {
            // In the previous subspace's tail (the window spans two); in the first subspace
            // there is none, so the number is ahead in this one.
            th.saturating_sub(1)
        } else {
            th
        };
        u64::from(seqh) << 32 | u64::from(seql)
    }

    //= https://www.rfc-editor.org/rfc/rfc4303#section-3.4.3
    //# If the received packet falls within the window and is not a
    //# duplicate, or if the packet is to the right of the window, then the
    //# receiver proceeds to ICV verification.

    /// Checks a packet's (full) sequence number before decryption.
    #[inline]
    pub fn check(&self, seq: u64) -> Result<(), Replay> {
        if seq == 0 {
            return Err(Replay::Invalid);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= u64::from(self.size) {
            return Err(Replay::TooOld);
        }
        if self.bit(seq) {
            return Err(Replay::Duplicate);
        }
        Ok(())
    }

    //= https://www.rfc-editor.org/rfc/rfc4303#section-3.4.3
    //# The receive window is updated only if the ICV verification
    //# succeeds.

    /// Records an authenticated packet; checks again first (another copy may have been
    /// accepted since [`check`](Self::check)), and refuses then without changing anything.
    #[inline]
    pub fn accept(&mut self, seq: u64) -> Result<(), Replay> {
        self.check(seq)?;
        if seq > self.top {
            self.clear_after_top(seq);
            self.top = seq;
        }
        let p = seq & self.mask();
        self.bits[(p >> 6) as usize] |= 1 << (p & 63);
        Ok(())
    }

    /// Clears the bits of `top+1 ..= seq` (all of them when the jump covers the bitmap).
    #[inline]
    fn clear_after_top(&mut self, seq: u64) {
        let nbits = self.bits.len() as u64 * 64;
        if seq - self.top >= nbits {
            self.bits.fill(0);
            return;
        }
        let mut s = self.top + 1;
        while s <= seq {
            let p = s & self.mask();
            let (w, b) = ((p >> 6) as usize, p & 63);
            if b == 0 && seq - s >= 63 {
                self.bits[w] = 0;
                s += 64;
            } else {
                self.bits[w] &= !(1 << b);
                s += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn in_order_duplicates_and_late() {
        let mut w = ReplayWindow::new(64, false);
        assert_eq!(w.check(0), Err(Replay::Invalid));
        for s in 1..=100 {
            assert_eq!(w.accept(s), Ok(()));
        }
        assert_eq!(w.check(100), Err(Replay::Duplicate));
        assert_eq!(w.check(37), Err(Replay::Duplicate), "inside, seen");
        assert_eq!(
            w.check(36),
            Err(Replay::TooOld),
            "100 - 36 = 64: just outside"
        );
        // Late but inside the window and unseen.
        let mut w = ReplayWindow::new(64, false);
        w.accept(100).unwrap();
        assert_eq!(w.accept(37), Ok(()), "the window's left edge");
        assert_eq!(w.accept(37), Err(Replay::Duplicate));
        assert_eq!(w.accept(36), Err(Replay::TooOld));
        assert_eq!(w.accept(99), Ok(()));
        assert_eq!(w.top(), 100);
    }

    #[test]
    fn a_window_after_a_number_refuses_everything_up_to_it() {
        let mut w = ReplayWindow::after(64, true, 1000);
        assert_eq!(w.top(), 1000);
        assert_eq!(w.check(1000), Err(Replay::Duplicate));
        assert_eq!(w.check(990), Err(Replay::Duplicate));
        assert_eq!(w.check(900), Err(Replay::TooOld));
        assert_eq!(w.check(1), Err(Replay::TooOld));
        assert_eq!(w.accept(1003), Ok(()));
        // The two skipped numbers were cleared by the jump: late, they still get in.
        assert_eq!(w.accept(1001), Ok(()));
        assert_eq!(w.accept(1002), Ok(()));
        assert_eq!(w.accept(1002), Err(Replay::Duplicate));
        // ESN inference around the recorded number works as after real traffic.
        let w = ReplayWindow::after(64, true, (1 << 32) + 5);
        assert_eq!(w.infer(7), (1 << 32) + 7);
        assert_eq!(w.infer(u32::MAX - 3), u64::from(u32::MAX - 3));
    }

    #[test]
    fn check_then_accept_refuses_the_second_copy() {
        let mut w = ReplayWindow::new(64, false);
        // Two copies in one frame both pass the check before either is accepted.
        assert!(w.check(5).is_ok() && w.check(5).is_ok());
        assert_eq!(w.accept(5), Ok(()));
        assert_eq!(w.accept(5), Err(Replay::Duplicate));
    }

    #[test]
    fn jumps_clear_what_they_pass() {
        let mut w = ReplayWindow::new(4096, false);
        for s in 1..=4096 {
            w.accept(s).unwrap();
        }
        // Jump by less than the bitmap: the numbers passed were never seen.
        w.accept(4096 + 1000).unwrap();
        for s in 4097..5096 {
            assert_eq!(w.check(s), Ok(()), "{s}");
        }
        assert_eq!(w.check(1000), Err(Replay::TooOld), "5096 - 4096");
        assert_eq!(w.check(1001), Err(Replay::Duplicate), "the left edge, seen");
        // Jump beyond the bitmap.
        w.accept(1 << 20).unwrap();
        assert_eq!(w.check((1 << 20) - 1), Ok(()));
        assert_eq!(w.check((1 << 20) - 4096), Err(Replay::TooOld));
        assert_eq!(w.check((1 << 20) - 4095), Ok(()));
    }

    #[test]
    fn sizes_round_and_clamp() {
        assert_eq!(ReplayWindow::new(0, false).size(), 1);
        assert_eq!(ReplayWindow::new(1000, false).bits.len(), 16);
        assert_eq!(ReplayWindow::new(u32::MAX, false).size(), MAX_WINDOW);
        // A 1000-packet window in a 1024-bit map still refuses 1000 behind.
        let mut w = ReplayWindow::new(1000, false);
        w.accept(2000).unwrap();
        assert_eq!(w.check(1000), Err(Replay::TooOld));
        assert_eq!(w.check(1001), Ok(()));
    }

    #[test]
    fn esn_infers_the_high_half_across_the_wrap() {
        let mut w = ReplayWindow::new(64, true);
        let near = u64::from(u32::MAX) - 10;
        w.accept(near).unwrap();
        // Case A: numbers just past 2^32 carry low bits 0, 1, ...: next subspace.
        assert_eq!(w.infer(3), (1 << 32) | 3);
        assert_eq!(w.infer(u32::MAX - 20), near - 10);
        w.accept((1 << 32) | 3).unwrap();
        // Case B: the window spans the wrap; a late packet from before it keeps high 0.
        assert_eq!(w.infer(u32::MAX - 5), u64::from(u32::MAX) - 5);
        assert_eq!(w.check(u64::from(u32::MAX) - 5), Ok(()));
        assert_eq!(w.check(near), Err(Replay::Duplicate));
        assert_eq!(w.infer(10), (1 << 32) | 10);
        // Without ESN the low bits are the number.
        let w = ReplayWindow::new(64, false);
        assert_eq!(w.infer(u32::MAX), u64::from(u32::MAX));
    }

    #[test]
    fn esn_first_subspace_has_no_previous() {
        let mut w = ReplayWindow::new(64, true);
        w.accept(10).unwrap();
        // Tl < W - 1 and Seql in the "previous subspace" tail: there is none before 0, so it
        // is ahead in the first one.
        assert_eq!(w.infer(u32::MAX - 3), u64::from(u32::MAX - 3));
        assert_eq!(w.check(0), Err(Replay::Invalid));
    }

    /// The reference: every number seen, and the highest.
    struct Model {
        seen: HashSet<u64>,
        top: u64,
        size: u64,
    }

    impl Model {
        fn accept(&mut self, s: u64) -> bool {
            let ok =
                s != 0 && !self.seen.contains(&s) && (s > self.top || self.top - s < self.size);
            if ok {
                self.seen.insert(s);
                self.top = self.top.max(s);
            }
            ok
        }
    }

    proptest! {
        #[test]
        fn matches_a_set_of_seen_numbers(
            size in prop::sample::select(vec![1u32, 32, 64, 100, 128, 1000, 4096]),
            steps in prop::collection::vec((0u8..4, 0u64..6000), 1..400),
        ) {
            let mut w = ReplayWindow::new(size, false);
            let mut m = Model { seen: HashSet::new(), top: 0, size: u64::from(size) };
            for (kind, d) in steps {
                // Mostly near the top (in order, late, duplicate), sometimes far ahead.
                let s = match kind {
                    0 => m.top + 1,
                    1 => m.top.saturating_sub(d % (u64::from(size) + 8)),
                    2 => m.top + d % 70,
                    _ => m.top + d,
                };
                let s = s.min(u64::from(u32::MAX));
                let expect = m.accept(s);
                prop_assert_eq!(w.accept(s).is_ok(), expect, "seq {} top {}", s, w.top());
            }
        }

        #[test]
        fn esn_inference_recovers_numbers_near_the_top(
            start in (1u64 << 32) - 5000..(1u64 << 32) + 5000,
            steps in prop::collection::vec(-63i64..2000, 1..200),
        ) {
            let mut w = ReplayWindow::new(64, true);
            w.accept(start).unwrap();
            for d in steps {
                let s = (w.top() as i64 + d).max(1) as u64;
                // Within the window behind, or ahead by less than 2^32 - W: the low half is
                // enough to recover the number.
                prop_assert_eq!(w.infer(s as u32), s);
                if d > 0 {
                    w.accept(s).unwrap();
                }
            }
        }
    }
}
