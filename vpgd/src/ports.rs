//! AF_PACKET ports: one RX ring and one TX ring per worker per interface; with several workers the
//! RX sockets join a PACKET_FANOUT hash group so each flow stays on one worker.

use crate::dataplane::{Installer, PortBackend};
use vpg_graph::{InterfaceOutput, Runtime, INTERFACE_OUTPUT};
use vpg_io::{AfPacketInput, RingOptions, AF_PACKET_INPUT};

/// The daemon's port backend.
pub struct AfPacketPorts {
    opts: RingOptions,
    next_group: u16,
    reaper: Reaper,
}

/// At most this many threads open or close AF_PACKET sockets at once.
const PARALLEL: usize = 128;

/// Runs `f` on every item, on up to [`PARALLEL`] threads, and returns the results in order.
///
/// Why threads: the kernel waits for an RCU grace period (10–30 ms on a small VM) every time it
/// sets up or tears down a packet socket's ring and again when it closes the socket. Waits that
/// overlap share grace periods, so opening a thousand pod interfaces in parallel takes about as
/// long as a few dozen one after another, instead of half a minute.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = items.len().min(PARALLEL);
    let mut done: Vec<(usize, R)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                sc.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Closes removed rings off the workers: a worker that closed a socket itself would stall its
/// interfaces for the kernel's grace periods. The thread takes whatever has queued up and closes
/// it in parallel.
#[derive(Clone)]
struct Reaper {
    tx: crossbeam_channel::Sender<Reap>,
}

enum Reap {
    Close(Box<dyn Send>),
    /// Answer once everything sent before is closed.
    Flush(crossbeam_channel::Sender<()>),
}

impl Reaper {
    fn start() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded::<Reap>();
        let spawned = std::thread::Builder::new()
            .name("vpg-port-reaper".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = Vec::new();
                    let mut flushes = Vec::new();
                    for m in std::iter::once(first).chain(rx.try_iter()) {
                        match m {
                            Reap::Close(b) => batch.push(std::sync::Mutex::new(Some(b))),
                            Reap::Flush(done) => flushes.push(done),
                        }
                    }
                    parallel(&batch, |slot| {
                        drop(slot.lock().unwrap_or_else(|p| p.into_inner()).take())
                    });
                    for f in flushes {
                        let _ = f.send(());
                    }
                }
            });
        if let Err(e) = spawned {
            // Without the thread, sends fail and the rings close where they are dropped.
            eprintln!("vpgd: cannot start the port reaper ({e}); removed rings close on workers");
        }
        Self { tx }
    }

    /// Closes `thing` on the reaper thread (or here, if that thread is gone).
    fn reap(&self, thing: Box<dyn Send>) {
        let _ = self.tx.send(Reap::Close(thing));
    }

    /// Waits until everything sent so far is closed, or `limit` passed.
    fn flush(&self, limit: std::time::Duration) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.tx.send(Reap::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(limit);
        }
    }
}

impl AfPacketPorts {
    /// With the given ring sizes.
    pub fn new(opts: RingOptions) -> Self {
        // Fanout group ids are per network namespace; start from the pid so two daemons in one
        // namespace (tests) do not join each other's groups.
        Self {
            opts,
            next_group: (std::process::id() & 0x7fff) as u16,
            reaper: Reaper::start(),
        }
    }

    fn options(&mut self, workers: usize) -> RingOptions {
        let mut opts = self.opts.clone();
        if workers > 1 {
            opts.fanout_group = Some(self.next_group);
            self.next_group = self.next_group.wrapping_add(1);
        }
        opts
    }
}

/// Opens one ring pair per worker and wraps each in its installer.
fn open_for_workers(
    host_if: &str,
    opts: &RingOptions,
    workers: usize,
    reaper: &Reaper,
) -> Result<Vec<Installer>, String> {
    let mut out: Vec<Installer> = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (rx, tx) = vpg_io::open(host_if, opts).map_err(|e| e.to_string())?;
        let reaper = reaper.clone();
        out.push(Box::new(move |rt: &mut Runtime, sw_if| {
            // An index is reused only after its old port's detach, which the worker ran before
            // this (its queue is in order); should a ring still be there, it goes to the reaper
            // rather than being closed here on the worker.
            if let Some(n) = rt.node_mut::<AfPacketInput>(AF_PACKET_INPUT) {
                if let Some(old) = n.take_interface(sw_if) {
                    reaper.reap(Box::new(old));
                }
                n.add_interface(sw_if, rx);
            }
            if let Some(o) = rt.node_mut::<InterfaceOutput>(INTERFACE_OUTPUT) {
                if let Some(old) = o.take_device(sw_if) {
                    reaper.reap(Box::new(old));
                }
                o.set_device(sw_if, Some(Box::new(tx)));
            }
        }));
    }
    Ok(out)
}

/// A Linux interface's MAC, asked of the kernel in this thread's network namespace.
pub fn host_mac(host_if: &str) -> Option<[u8; 6]> {
    vpg_io::afpacket::hw_addr(host_if).ok()
}

impl PortBackend for AfPacketPorts {
    fn host_mac(&self, host_if: &str) -> Option<[u8; 6]> {
        host_mac(host_if)
    }

    fn attach(&mut self, host_if: &str, workers: usize) -> Result<Vec<Installer>, String> {
        let opts = self.options(workers);
        open_for_workers(host_if, &opts, workers, &self.reaper)
    }

    fn attach_many(
        &mut self,
        host_ifs: &[&str],
        workers: usize,
    ) -> Vec<Result<Vec<Installer>, String>> {
        let jobs: Vec<(&str, RingOptions)> = host_ifs
            .iter()
            .map(|h| (*h, self.options(workers)))
            .collect();
        // On a failure the caller hands the ports that did open back to `reap`.
        let reaper = &self.reaper;
        parallel(&jobs, |(h, opts)| {
            open_for_workers(h, opts, workers, reaper)
        })
    }

    fn reap(&self, installers: Vec<Installer>) {
        self.reaper.reap(Box::new(installers));
    }

    fn finish(&self) {
        // A process exit would close the sockets one after another, grace periods and all
        // (about a minute for a thousand pods); closed here in parallel it takes seconds.
        self.reaper.flush(std::time::Duration::from_secs(60));
    }

    fn detach(&self) -> Installer {
        let reaper = self.reaper.clone();
        Box::new(move |rt: &mut Runtime, sw_if| {
            if let Some(n) = rt.node_mut::<AfPacketInput>(AF_PACKET_INPUT) {
                if let Some(rx) = n.take_interface(sw_if) {
                    reaper.reap(Box::new(rx));
                }
            }
            if let Some(o) = rt.node_mut::<InterfaceOutput>(INTERFACE_OUTPUT) {
                if let Some(tx) = o.take_device(sw_if) {
                    reaper.reap(Box::new(tx));
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_keeps_order_and_runs_every_item_once() {
        let items: Vec<u32> = (0..1000).collect();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let out = parallel(&items, |x| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            x * 2
        });
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(calls.into_inner(), 1000);
        assert!(parallel(&[] as &[u32], |x| *x).is_empty());
    }

    /// Records the thread it was dropped on.
    struct Tell(std::sync::mpsc::Sender<Option<String>>);
    impl Drop for Tell {
        fn drop(&mut self) {
            let _ = self
                .0
                .send(std::thread::current().name().map(str::to_string));
        }
    }

    #[test]
    fn the_reaper_drops_off_the_caller_and_flush_waits_for_it() {
        let reaper = Reaper::start();
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..200 {
            reaper.reap(Box::new(Tell(tx.clone())));
        }
        reaper.flush(std::time::Duration::from_secs(30));
        let names: Vec<Option<String>> = rx.try_iter().collect();
        assert_eq!(names.len(), 200, "flush returned after every drop");
        let here = std::thread::current().name().map(str::to_string);
        assert!(names.iter().all(|n| *n != here), "{names:?}");
    }
}
