//! Injected time: the dispatch context carries `now`; no node reads the clock.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, in nanoseconds since the runtime's epoch (worker start, or 0 in tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    /// The epoch.
    pub const ZERO: Time = Time(0);

    /// `s` seconds after the epoch.
    pub const fn from_secs(s: u64) -> Self {
        Time(s * 1_000_000_000)
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the epoch, as a float (for display).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// Time elapsed since `earlier` (zero if `earlier` is later).
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d.as_nanos() as u64))
    }
}

impl Sub<Time> for Time {
    type Output = Duration;
    fn sub(self, other: Time) -> Duration {
        self.since(other)
    }
}

impl fmt::Display for Time {
    /// `HH:MM:SS:uuuuuu` as VPP's trace prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0 / 1000;
        let s = us / 1_000_000;
        write!(
            f,
            "{:02}:{:02}:{:02}:{:06}",
            s / 3600,
            (s / 60) % 60,
            s % 60,
            us % 1_000_000
        )
    }
}

/// A source of `now` for the worker loop (the only place that reads a clock).
pub trait Clock: Send {
    /// The current time.
    fn now(&self) -> Time;
}

/// The monotonic system clock, counted from an epoch (all workers of one [`crate::Workers`]
/// share theirs, so the control side can tell a session's age in the workers' time).
#[derive(Clone, Copy)]
pub struct SystemClock(std::time::Instant);

impl SystemClock {
    /// A clock counting from `epoch`.
    pub fn since(epoch: std::time::Instant) -> Self {
        SystemClock(epoch)
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock(std::time::Instant::now())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Time {
        Time(self.0.elapsed().as_nanos() as u64)
    }
}
