//! The packet path does not allocate: after warm-up, forwarding, dropping, tracing-off and
//! error counting run with zero heap allocations (a counting global allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use vpg_graph::Time;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn forwarding_and_drops_allocate_nothing_in_steady_state() {
    for routes in [1usize, 10_000] {
        let (mut rt, _) = vpg_bench::forward::forwarding_runtime(routes, false, 4096).unwrap();
        // Mix in drops: a bad-checksum stream beside the good one.
        let pg = rt
            .node_mut::<vpg_graph::pg::PgInput>(vpg_graph::pg::PG_INPUT)
            .unwrap();
        let mut bad = pg.streams()[0].images()[0].clone();
        bad[14 + 10] ^= 0xff;
        pg.add_stream(vpg_graph::pg::Stream::new("bad", 0, vec![bad]));
        for _ in 0..200 {
            rt.dispatch(Time::ZERO);
        }
        let before = ALLOCS.load(Relaxed);
        let mut t = Time::ZERO;
        for _ in 0..2000 {
            t = t + std::time::Duration::from_micros(10);
            rt.dispatch(t);
        }
        let allocs = ALLOCS.load(Relaxed) - before;
        let stats = rt.stats().clone();
        let forwarded = stats.interfaces[1].tx_packets.get();
        assert!(forwarded > 200_000, "traffic flowed: {forwarded}");
        assert!(stats.interfaces[0].drops.get() > 0, "drops happened too");
        assert_eq!(
            allocs, 0,
            "{routes} routes: {allocs} allocations while forwarding"
        );
    }
}
