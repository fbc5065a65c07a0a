//! Runtime behaviour with small synthetic nodes: feature arcs per interface, frames larger than
//! one vector, trace budgets, workers with configuration swaps, handoff and its drop counter.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use vpg_graph::pg::{PgCapture, PgInput, Stream, PG_INPUT};
use vpg_graph::{
    ArcId, BufferPool, ConfigSet, Ctx, FeatureConfig, FeatureRegistration, GraphSpec,
    InterfaceOutput, Node, NodeRegistration, Runtime, RuntimeConfig, Time, Vector, WorkerOptions,
    Workers, INTERFACE_OUTPUT,
};

#[derive(Clone, Copy)]
struct Tag(u8);
impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tag {}", self.0)
    }
}

/// Appends its tag to the packet, then continues on the arc.
struct Feature {
    name: &'static str,
    tag: u8,
    arc_start: bool,
}

impl Node for Feature {
    type Trace = Tag;
    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(self.name, &[], &[])
    }
    fn process(&mut self, cx: &mut Ctx<'_, Tag>, v: &mut Vector) {
        for k in 0..v.len {
            let b = cx.buffers.get_mut(v.buffers[k]);
            let n = b.hdr.current_length as usize;
            b.set_len(n + 1);
            b.data_mut()[n] = self.tag;
            cx.tracer.add(&b.hdr, Tag(self.tag));
            let _ = self.arc_start;
            b.hdr.tx_if = b.hdr.rx_if;
            v.nexts[k] = cx.arcs.next(ArcId::Ip4Output, b.hdr.rx_if);
        }
    }
}

fn arc_graph() -> GraphSpec {
    let mut g = GraphSpec::new();
    g.node(|| PgInput::new("start"))
        .node(|| Feature {
            name: "start",
            tag: 0,
            arc_start: true,
        })
        .node(|| Feature {
            name: "acl",
            tag: 1,
            arc_start: false,
        })
        .node(|| Feature {
            name: "nat",
            tag: 2,
            arc_start: false,
        })
        .node(|| Feature {
            name: "esp",
            tag: 3,
            arc_start: false,
        })
        .arc(ArcId::Ip4Output, &["start"], INTERFACE_OUTPUT)
        .feature(FeatureRegistration::new(ArcId::Ip4Output, "esp").after("nat"))
        .feature(FeatureRegistration::new(ArcId::Ip4Output, "nat").after("acl"))
        .feature(FeatureRegistration::new(ArcId::Ip4Output, "acl"));
    g
}

fn runtime(g: GraphSpec, buffers: u32) -> (Runtime, Vec<crossbeam_channel::Receiver<Vec<u8>>>) {
    let layout = g.build().unwrap();
    let mut rt = Runtime::new(
        &layout,
        0,
        BufferPool::with_count(buffers, false).unwrap(),
        &RuntimeConfig::default(),
    );
    let mut rxs = Vec::new();
    for sw_if in 0..3 {
        let (dev, rx) = PgCapture::new();
        rt.node_mut::<InterfaceOutput>(INTERFACE_OUTPUT)
            .unwrap()
            .set_device(sw_if, Some(Box::new(dev)));
        rxs.push(rx);
    }
    (rt, rxs)
}

fn send(rt: &mut Runtime, sw_if: u32, n: u64) {
    let pg = rt.node_mut::<PgInput>(PG_INPUT).unwrap();
    pg.clear();
    pg.add_stream(Stream::new("s", sw_if, vec![vec![0xaa]]).with_limit(n));
    for _ in 0..1000 {
        if rt.dispatch(Time::ZERO) == 0 && rt.pending() == 0 {
            break;
        }
    }
}

#[test]
fn features_run_in_declared_order_only_where_enabled() {
    let (mut rt, rxs) = runtime(arc_graph(), 1024);
    let layout = rt.layout().clone();
    assert_eq!(layout.features(ArcId::Ip4Output), &["acl", "nat", "esp"]);
    let pos = |n| layout.feature_position(ArcId::Ip4Output, n).unwrap();
    let mut f = FeatureConfig::default();
    f.enable(ArcId::Ip4Output, 0, pos("acl"));
    f.enable(ArcId::Ip4Output, 0, pos("esp"));
    f.enable(ArcId::Ip4Output, 1, pos("nat"));
    rt.reconfigure(Arc::new(ConfigSet::new().with(Arc::new(f.clone()))));
    send(&mut rt, 0, 1);
    send(&mut rt, 1, 1);
    send(&mut rt, 2, 1);
    assert_eq!(
        rxs[0].try_iter().collect::<Vec<_>>(),
        vec![vec![0xaa, 0, 1, 3]]
    );
    assert_eq!(
        rxs[1].try_iter().collect::<Vec<_>>(),
        vec![vec![0xaa, 0, 2]]
    );
    assert_eq!(
        rxs[2].try_iter().collect::<Vec<_>>(),
        vec![vec![0xaa, 0]],
        "no features: straight to the end node"
    );
    // Disabling takes effect with the next snapshot.
    f.disable(ArcId::Ip4Output, 0, pos("acl"));
    rt.reconfigure(Arc::new(ConfigSet::new().with(Arc::new(f))));
    send(&mut rt, 0, 1);
    assert_eq!(
        rxs[0].try_iter().collect::<Vec<_>>(),
        vec![vec![0xaa, 0, 3]]
    );
}

/// A virtual interface's TX node: marks the packet and sends it out interface 1.
struct Tunnel;
impl Node for Tunnel {
    type Trace = Tag;
    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal("tunnel-tx", &[INTERFACE_OUTPUT], &[])
    }
    fn process(&mut self, cx: &mut Ctx<'_, Tag>, v: &mut Vector) {
        for k in 0..v.len {
            let b = cx.buffers.get_mut(v.buffers[k]);
            let n = b.hdr.current_length as usize;
            b.set_len(n + 1);
            b.data_mut()[n] = 9;
            b.hdr.tx_if = 1;
            v.nexts[k] = 0;
        }
    }
}

#[test]
fn a_virtual_interface_sends_through_its_tx_node() {
    let mut g = arc_graph();
    g.node(|| Tunnel).add_next(INTERFACE_OUTPUT, "tunnel-tx");
    let (mut rt, rxs) = runtime(g, 1024);
    let slot = rt
        .layout()
        .next_slot(INTERFACE_OUTPUT, "tunnel-tx")
        .unwrap();
    let mut tx = vpg_graph::TxNodes::default();
    tx.set(2, Some(slot));
    assert_eq!(tx.get(2), Some(slot));
    assert_eq!(tx.get(7), None);
    rt.reconfigure(Arc::new(ConfigSet::new().with(Arc::new(tx.clone()))));
    send(&mut rt, 2, 3);
    assert!(rxs[2].try_iter().next().is_none(), "not sent on the device");
    assert_eq!(
        rxs[1].try_iter().collect::<Vec<_>>(),
        vec![vec![0xaa, 0, 9]; 3]
    );
    let c = &rt.stats().interfaces;
    assert_eq!(c[2].tx_packets.get(), 3, "counted on the virtual interface");
    assert_eq!(c[1].tx_packets.get(), 3, "and on the one it left by");
    tx.set(2, None);
    rt.reconfigure(Arc::new(ConfigSet::new().with(Arc::new(tx))));
    send(&mut rt, 2, 1);
    assert_eq!(rxs[2].try_iter().count(), 1, "back to the device");
}

#[test]
fn many_packets_move_in_full_vectors_and_buffers_return_to_the_pool() {
    let (mut rt, rxs) = runtime(arc_graph(), 2048);
    let free_before = rt.pool_stats().free;
    send(&mut rt, 0, 10_000);
    assert_eq!(rxs[0].try_iter().count(), 10_000);
    assert_eq!(rt.pool_stats().free, free_before, "every buffer freed");
    let layout = rt.layout().clone();
    let start = layout.node_index("start").unwrap() as usize;
    let c = &rt.stats().nodes[start];
    assert_eq!(c.vectors.get(), 10_000);
    assert!(
        c.vectors.get() / c.calls.get() >= 200,
        "vectors are large: {} calls",
        c.calls.get()
    );
    assert_eq!(rt.pool_stats().double_frees, 0);
}

#[test]
fn trace_budget_marks_exactly_n_packets() {
    let (mut rt, _rxs) = runtime(arc_graph(), 1024);
    rt.trace_add("start", 3).unwrap();
    send(&mut rt, 0, 50);
    let lines = rt.trace_lines();
    assert_eq!(lines.len(), 3);
    for (_, l) in &lines {
        let nodes: Vec<_> = l.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(nodes, vec!["start", "interface-output"]);
    }
    rt.trace_clear();
    assert!(rt.trace_lines().is_empty());
    assert!(rt.trace_add("no-such-node", 1).is_none());
}

/// Hands every packet to worker 1's "sink-count".
struct Handoff;
impl Node for Handoff {
    type Trace = Tag;
    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal("handoff", &["sink"], &[])
    }
    fn process(&mut self, cx: &mut Ctx<'_, Tag>, v: &mut Vector) {
        for k in 0..v.len {
            if cx.handoff.send(cx.buffers, 1, 0, v.buffers[k]) {
                v.nexts[k] = vpg_graph::NEXT_CONSUMED;
            } else {
                v.nexts[k] = 0;
            }
        }
    }
}

/// Counts what it sees per worker and frees it.
#[derive(Default)]
struct Sink {
    seen: u64,
}
impl Node for Sink {
    type Trace = Tag;
    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal("sink", &[], &[])
    }
    fn process(&mut self, cx: &mut Ctx<'_, Tag>, v: &mut Vector) {
        self.seen += v.len as u64;
        for k in 0..v.len {
            cx.buffers.free(v.buffers[k]);
            v.nexts[k] = vpg_graph::NEXT_CONSUMED;
        }
    }
}

/// pg-input → handoff (to worker 1) → sink.
fn handoff_graph() -> std::sync::Arc<vpg_graph::Layout> {
    let mut g = GraphSpec::new();
    g.node(|| PgInput::new("handoff"))
        .node(|| Handoff)
        .node(Sink::default);
    g.build().unwrap()
}

#[test]
fn workers_hand_off_between_threads_and_apply_config_between_frames() {
    let layout = handoff_graph();
    let opts = WorkerOptions {
        workers: 2,
        buffers_per_worker: 4096,
        huge_pages: true,
        ..Default::default()
    };
    let w = Workers::start(&layout, &opts).unwrap();
    w.exec(0, |rt| {
        rt.node_mut::<PgInput>(PG_INPUT)
            .unwrap()
            .add_stream(Stream::new("s", 0, vec![vec![1; 64]]).with_limit(5000))
    })
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = 0;
    while std::time::Instant::now() < deadline {
        seen = w
            .exec(1, |rt| rt.node_mut::<Sink>("sink").unwrap().seen)
            .unwrap();
        let dropped = w.stats()[0].misc().handoff_drops.get();
        if seen + dropped == 5000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = w.stats();
    let dropped = stats[0].misc().handoff_drops.get();
    assert_eq!(
        seen + dropped,
        5000,
        "every packet either arrived or was counted as dropped"
    );
    assert_eq!(stats[0].misc().handoff_sent.get(), seen);
    assert_eq!(stats[1].misc().handoff_received.get(), seen);
    assert!(seen > 0);
    assert_eq!(
        w.exec(0, |rt| rt.node_mut::<Sink>("sink").unwrap().seen)
            .unwrap(),
        0,
        "worker 0 kept none"
    );
    // A snapshot reaches every worker.
    w.configure(Arc::new(ConfigSet::new().with(Arc::new(42u32))));
    for k in 0..2 {
        let v = w
            .exec(k, |rt| rt.config().get::<u32>().map(|v| *v))
            .unwrap();
        assert_eq!(v, Some(42));
    }
    w.stop();
}

#[test]
fn full_handoff_queue_drops_and_counts() {
    let layout = handoff_graph();
    // More buffers than the queue holds, so the queue fills before the pool runs dry.
    let opts = WorkerOptions {
        workers: 2,
        buffers_per_worker: 32768,
        huge_pages: false,
        ..Default::default()
    };
    let w = Workers::start(&layout, &opts).unwrap();
    // Stall worker 1 so its queue cannot drain while worker 0 floods it.
    let (stall_tx, stall_rx) = crossbeam_channel::bounded::<()>(0);
    let (entered_tx, entered_rx) = crossbeam_channel::bounded::<()>(1);
    assert!(w.post(1, move |_rt| {
        let _ = entered_tx.send(());
        let _ = stall_rx.recv();
    }));
    entered_rx.recv().unwrap();
    w.exec(0, |rt| {
        rt.node_mut::<PgInput>(PG_INPUT)
            .unwrap()
            .add_stream(Stream::new("s", 0, vec![vec![1; 64]]).with_limit(100_000))
    })
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while w.stats()[0].misc().handoff_drops.get() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        w.stats()[0].misc().handoff_drops.get() > 0,
        "drops counted while the queue is full"
    );
    drop(stall_tx);
    w.stop();
}

#[test]
fn stats_segment_is_readable_from_a_file_while_workers_run() {
    let layout = handoff_graph();
    let path = std::env::temp_dir().join(format!("vpg-stats-{}", std::process::id()));
    let opts = WorkerOptions {
        workers: 2,
        buffers_per_worker: 4096,
        stats_path: Some(path.clone()),
        ..Default::default()
    };
    let w = Workers::start(&layout, &opts).unwrap();
    w.exec(0, |rt| {
        rt.node_mut::<PgInput>(PG_INPUT)
            .unwrap()
            .add_stream(Stream::new("s", 3, vec![vec![1; 64]]).with_limit(1000))
    })
    .unwrap();
    let view = vpg_graph::stats_segment::StatsView::open(&path).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while view.workers()[1].misc().handoff_received.get() < 1000
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    // The reader sees the workers' counters through its own read-only mapping.
    assert_eq!(view.workers()[1].misc().handoff_received.get(), 1000);
    assert_eq!(view.workers()[0].interfaces[3].rx_packets.get(), 1000);
    let rows = vpg_graph::show::runtime_rows(&view, view.workers());
    let sink = rows
        .iter()
        .find(|r| r.node == "sink" && r.worker == 1)
        .unwrap();
    assert_eq!(sink.vectors, 1000);
    // Idle input nodes are still being polled, so calls and clocks may move between the two
    // reads: the packets each node handled are settled and must match exactly; calls only grow.
    let live = vpg_graph::show::runtime_rows(&**w.layout(), &w.stats());
    assert_eq!(rows.len(), live.len(), "file view has the live rows");
    for (f, l) in rows.iter().zip(&live) {
        assert_eq!(
            (f.worker, &f.node, f.vectors),
            (l.worker, &l.node, l.vectors),
            "file view equals the live counters"
        );
        assert!(f.calls <= l.calls && f.clocks <= l.clocks, "{f:?} vs {l:?}");
    }
    w.stop();
    std::fs::write(&path, b"garbage that is not a segment").unwrap();
    assert!(vpg_graph::stats_segment::StatsView::open(&path).is_err());
    std::fs::remove_file(&path).unwrap();
}
