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

/// The counter is process-wide: tests run one at a time so that one's set-up is not counted
/// against another's measured loop.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn forwarding_and_drops_allocate_nothing_in_steady_state() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
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

#[test]
fn acl_classification_and_sessions_allocate_nothing_in_steady_state() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    use vpg_acl::{Acl, Action, PacketKey, PortRange, Rule};
    // Deny UDP port 53 to odd destinations' port, reflect everything else: classification,
    // denies, session creation and session hits all run in the measured loop.
    let acl = Acl {
        id: 1,
        tag: "mix".into(),
        rules: vec![
            Rule {
                proto: 17,
                dport: PortRange::one(53),
                ..Rule::any(Action::Deny)
            },
            Rule::any(Action::PermitReflect),
        ],
    };
    let images = (0..2000u32)
        .map(|i| {
            vpg_bench::acl::frame(&PacketKey {
                src: 0xc000_0202,
                dst: 0x0a00_0000 + i,
                sport: 1024 + i as u16,
                dport: if i % 2 == 0 { 53 } else { 80 },
                proto: 17,
                ..Default::default()
            })
        })
        .collect();
    let o = vpg_bench::RunOptions {
        huge_pages: false,
        ..Default::default()
    };
    let (mut rt, _) = vpg_bench::acl::acl_runtime(&o, acl, images).unwrap();
    // Warm-up: the first frame creates the worker's session table; later ones fill it.
    let mut t = Time::ZERO;
    for _ in 0..200 {
        t = t + std::time::Duration::from_micros(10);
        rt.dispatch(t);
    }
    let before = ALLOCS.load(Relaxed);
    for _ in 0..2000 {
        t = t + std::time::Duration::from_micros(10);
        rt.dispatch(t);
    }
    let allocs = ALLOCS.load(Relaxed) - before;
    let rows = vpg_graph::show::error_rows(rt.layout(), std::slice::from_ref(rt.stats()));
    let count = |n: &str| {
        rows.iter()
            .find(|r| r.node == "acl-in-ip4" && r.name == n)
            .map_or(0, |r| r.count)
    };
    assert!(count("deny") > 100_000, "{rows:?}");
    assert!(count("session-hit") > 100_000, "{rows:?}");
    assert_eq!(count("session-created"), 1000, "{rows:?}");
    assert_eq!(allocs, 0, "{allocs} allocations in the ACL path");
}

#[test]
fn nat44_session_creation_hits_and_expiry_allocate_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // 60k distinct UDP flows through SNAT on the uplink: the warm-up makes the session table
    // and some sessions; the measured loop creates the rest, hits the others, and the clock
    // runs past the UDP timeout halfway so the wheel reclaims and flows are made again.
    let images = (0..60_000u32)
        .map(|i| {
            vpg_bench::nat44::udp_frame(
                [0x02, 0, 0, 0, 0, 1],
                0x0a00_0000 | (i >> 8),
                1024 + (i & 0xff) as u16,
                0xcb00_0000 | i,
                53,
            )
        })
        .collect();
    let o = vpg_bench::RunOptions {
        huge_pages: false,
        ..Default::default()
    };
    let (mut rt, _) = vpg_bench::nat44::nat_runtime(&o, 131_072, images).unwrap();
    let mut t = Time::ZERO;
    for _ in 0..100 {
        t = t + std::time::Duration::from_micros(10);
        rt.dispatch(t);
    }
    let before = ALLOCS.load(Relaxed);
    for k in 0..2000 {
        t = t + std::time::Duration::from_micros(10);
        if k == 1000 {
            t = t + std::time::Duration::from_secs(301);
        }
        rt.dispatch(t);
    }
    let allocs = ALLOCS.load(Relaxed) - before;
    let rows = vpg_graph::show::error_rows(rt.layout(), std::slice::from_ref(rt.stats()));
    let count = |n: &str| {
        rows.iter()
            .filter(|r| r.node.starts_with("nat44") && r.name == n)
            .map(|r| r.count)
            .sum::<u64>()
    };
    assert!(count("created") > 60_000, "{rows:?}");
    assert!(count("hit") > 100_000, "{rows:?}");
    assert!(count("expired") > 1000, "{rows:?}");
    assert_eq!(allocs, 0, "{allocs} allocations in the NAT44 path");
}

#[test]
fn esp_encryption_and_decryption_allocate_nothing_in_steady_state() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for (what, mut rt) in [
        (
            "encrypt 64",
            vpg_bench::esp::encrypt_runtime(64, false).unwrap(),
        ),
        (
            "encrypt 1400",
            vpg_bench::esp::encrypt_runtime(1400, false).unwrap(),
        ),
        (
            "decrypt 1400",
            vpg_bench::esp::decrypt_runtime(false).unwrap(),
        ),
    ] {
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
        let rows = vpg_graph::show::error_rows(rt.layout(), std::slice::from_ref(rt.stats()));
        let done: u64 = rows
            .iter()
            .filter(|r| r.name == "encrypted" || r.name == "decrypted")
            .map(|r| r.count)
            .sum();
        assert!(done > 100_000, "{what}: {rows:?}");
        assert_eq!(
            allocs, 0,
            "{what}: {allocs} allocations while {done} packets went through ESP"
        );
    }
}
