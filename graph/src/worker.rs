//! Worker threads: each owns a runtime (its nodes, pool, frames) and runs the dispatch loop; the
//! control side talks to it only through a channel, whose messages are applied between frames.
//!
//! Adaptive polling: a worker busy-polls while traffic flows; after a run of empty loops it waits
//! on its control channel with a growing timeout (up to `IdlePolicy::max_sleep`), so an idle worker
//! costs almost nothing and a control message still wakes it at once.

use crate::buffer::BufferMemory;
use crate::config::ConfigSet;
use crate::counters::WorkerStats;
use crate::graph::Layout;
use crate::handoff::HandoffPorts;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::time::{Clock, SystemClock};
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A control action run on a worker between frames.
pub type WorkerAction = Box<dyn FnOnce(&mut Runtime) + Send>;

enum WorkerMsg {
    Config(Arc<ConfigSet>),
    Exec(WorkerAction),
    Stop,
}

/// When an idle worker sleeps.
#[derive(Clone, Debug)]
pub struct IdlePolicy {
    /// Empty loops before sleeping.
    pub spin_loops: u32,
    /// Longest block in poll (bounds the delay of input nodes that have no descriptor).
    pub max_sleep: Duration,
}

impl Default for IdlePolicy {
    fn default() -> Self {
        Self {
            spin_loops: 1024,
            max_sleep: Duration::from_millis(10),
        }
    }
}

/// How to start the workers.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Number of worker threads.
    pub workers: usize,
    /// Buffers per worker.
    pub buffers_per_worker: u32,
    /// Put buffer memory on huge pages when the system offers them.
    pub huge_pages: bool,
    /// CPU for each worker (none: not pinned).
    pub cpus: Vec<usize>,
    /// Runtime sizing.
    pub runtime: RuntimeConfig,
    /// Idle behaviour.
    pub idle: IdlePolicy,
    /// Where to put the stats segment file (None: counters in anonymous memory).
    pub stats_path: Option<std::path::PathBuf>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            workers: 1,
            buffers_per_worker: 16384,
            huge_pages: true,
            cpus: Vec::new(),
            runtime: RuntimeConfig::default(),
            idle: IdlePolicy::default(),
            stats_path: None,
        }
    }
}

struct Handle {
    tx: Sender<WorkerMsg>,
    /// Wakes the worker when it sleeps in poll.
    wake: Arc<crate::sys::WakeFd>,
    stats: Arc<WorkerStats>,
    thread: Option<JoinHandle<()>>,
}

/// The running workers.
pub struct Workers {
    layout: Arc<Layout>,
    handles: Vec<Handle>,
    backing: crate::sys::PageBacking,
    clock: SystemClock,
}

impl Workers {
    /// Maps the buffer memory, instantiates one runtime per worker and starts the threads.
    pub fn start(layout: &Arc<Layout>, opts: &WorkerOptions) -> std::io::Result<Self> {
        let n = opts.workers.max(1);
        let mem = BufferMemory::new(
            opts.buffers_per_worker.saturating_mul(n as u32),
            opts.huge_pages,
        )?;
        let pools = mem.split(n);
        let ports = HandoffPorts::mesh(n);
        let segment = crate::stats_segment::StatsSegment::create(
            opts.stats_path.as_deref(),
            layout,
            n,
            opts.runtime.max_interfaces,
        )?;
        let mut handles = Vec::with_capacity(n);
        let mut backing = crate::sys::PageBacking::Small4K;
        let clock = SystemClock::default();
        for (w, (pool, ports)) in pools.into_iter().zip(ports).enumerate() {
            backing = pool.backing();
            let rt = Runtime::with_handoff(
                layout,
                w,
                pool,
                &opts.runtime,
                ports,
                segment.worker_stats(w),
            );
            let stats = rt.stats().clone();
            let (tx, rx) = crossbeam_channel::unbounded();
            let cpu = opts.cpus.get(w).copied();
            let idle = opts.idle.clone();
            let wake = Arc::new(crate::sys::WakeFd::new()?);
            let wake2 = wake.clone();
            let thread = std::thread::Builder::new()
                .name(format!("vpg_wk_{w}"))
                .spawn(move || run(rt, rx, wake2, cpu, idle, clock))?;
            handles.push(Handle {
                tx,
                wake,
                stats,
                thread: Some(thread),
            });
        }
        Ok(Self {
            layout: layout.clone(),
            handles,
            backing,
            clock,
        })
    }

    /// The graph layout.
    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    /// What backs the buffer memory.
    pub fn backing(&self) -> crate::sys::PageBacking {
        self.backing
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// True when there are no workers (never, once started).
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Every worker's counters.
    pub fn stats(&self) -> Vec<Arc<WorkerStats>> {
        self.handles.iter().map(|h| h.stats.clone()).collect()
    }

    /// Sends a configuration snapshot to every worker.
    pub fn configure(&self, config: Arc<ConfigSet>) {
        for h in &self.handles {
            let _ = h.tx.send(WorkerMsg::Config(config.clone()));
            h.wake.notify();
        }
    }

    /// Now, in the workers' time (what their nodes see as `now`).
    pub fn now(&self) -> crate::time::Time {
        self.clock.now()
    }

    /// Runs `f` on worker `w` between frames and returns its result (None if the worker is gone).
    pub fn exec<R: Send + 'static>(
        &self,
        w: usize,
        f: impl FnOnce(&mut Runtime) -> R + Send + 'static,
    ) -> Option<R> {
        let (rtx, rrx) = crossbeam_channel::bounded(1);
        let h = self.handles.get(w)?;
        let action: WorkerAction = Box::new(move |rt| {
            let _ = rtx.send(f(rt));
        });
        h.tx.send(WorkerMsg::Exec(action)).ok()?;
        h.wake.notify();
        rrx.recv().ok()
    }

    /// Queues `f` to run on worker `w` between frames without waiting for it.
    pub fn post(&self, w: usize, f: impl FnOnce(&mut Runtime) + Send + 'static) -> bool {
        match self.handles.get(w) {
            Some(h) => {
                let ok = h.tx.send(WorkerMsg::Exec(Box::new(f))).is_ok();
                h.wake.notify();
                ok
            }
            None => false,
        }
    }

    /// Stops every worker and waits for it.
    pub fn stop(mut self) {
        self.stop_all();
    }

    /// Stops every worker in place (a daemon shutting down while others still hold it).
    pub fn shutdown(&mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for h in &self.handles {
            let _ = h.tx.send(WorkerMsg::Stop);
            h.wake.notify();
        }
        for h in &mut self.handles {
            if let Some(t) = h.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Applies one control message; false on Stop.
fn apply(rt: &mut Runtime, m: WorkerMsg) -> bool {
    match m {
        WorkerMsg::Config(c) => rt.reconfigure(c),
        WorkerMsg::Exec(f) => f(rt),
        WorkerMsg::Stop => return false,
    }
    true
}

fn run(
    mut rt: Runtime,
    rx: Receiver<WorkerMsg>,
    wake: Arc<crate::sys::WakeFd>,
    cpu: Option<usize>,
    idle: IdlePolicy,
    clock: SystemClock,
) {
    if let Some(c) = cpu {
        // Pinning can fail in a restricted cpuset; the worker still runs, unpinned.
        let _ = crate::sys::pin_current_thread(c);
    }
    let mut empty = 0u32;
    let mut fds = Vec::with_capacity(16);
    loop {
        while let Ok(m) = rx.try_recv() {
            if !apply(&mut rt, m) {
                return;
            }
        }
        let produced = rt.dispatch(clock.now());
        if produced > 0 || rt.pending() > 0 {
            empty = 0;
            continue;
        }
        empty += 1;
        if empty < idle.spin_loops || !rt.inputs_idle() {
            std::hint::spin_loop();
            continue;
        }
        // Idle: block until an input descriptor is readable, a control message arrives (the
        // control side writes the eventfd after queueing it) or `max_sleep` passes (for input
        // nodes without descriptors and for timers).
        fds.clear();
        fds.push(wake.raw_fd());
        rt.wait_fds(&mut fds);
        let _ = crate::sys::poll_fds(&fds, idle.max_sleep);
        wake.drain();
        // Stay in sleep mode: the next loop polls the inputs once and, if they are still empty,
        // blocks again at once instead of busy-polling another `spin_loops` times. Only packets
        // (`produced > 0` above) return the worker to busy polling.
        empty = idle.spin_loops;
    }
}
