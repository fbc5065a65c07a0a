//! A port backend of packet-generator captures for the in-process data-plane tests, and a
//! stream of UDP packets to send through it.
// Each test binary uses a part of these helpers.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use vpg_graph::pg::{PgCapture, PgInput, Stream, StreamTemplate, PG_INPUT};
use vpg_graph::{InterfaceOutput, Layout, Runtime, WorkerOptions, Workers, INTERFACE_OUTPUT};
use vpgd::dataplane::{DataPlane, Installer, PortBackend};

/// A data plane over `layout` with `workers` workers (4,096 buffers each, small pages) and room
/// for `max` interfaces, its ports pg captures.
pub fn dataplane(layout: &Arc<Layout>, workers: usize, max: usize) -> (DataPlane, PgPorts) {
    let w = Workers::start(
        layout,
        &WorkerOptions {
            workers,
            buffers_per_worker: 4096,
            huge_pages: false,
            ..Default::default()
        },
    )
    .unwrap();
    let ports = PgPorts::default();
    (DataPlane::new(w, Box::new(ports.clone()), max), ports)
}

/// Captured packets per host interface.
type Captures = Arc<Mutex<Vec<(String, crossbeam_channel::Receiver<Vec<u8>>)>>>;

/// Ports are pg captures; attaching "bad*" fails like a missing host interface. Records the
/// ports installed on workers, and checks that a reused index's old device left first.
#[derive(Clone, Default)]
pub struct PgPorts {
    pub captures: Captures,
    pub attached: Arc<Mutex<Vec<String>>>,
}

impl PortBackend for PgPorts {
    fn host_mac(&self, _: &str) -> Option<[u8; 6]> {
        None
    }
    fn attach(&mut self, host_if: &str, workers: usize) -> Result<Vec<Installer>, String> {
        if host_if.starts_with("bad") {
            return Err("no such device".into());
        }
        let mut v: Vec<Installer> = Vec::new();
        for _ in 0..workers {
            let (dev, rx) = PgCapture::new();
            self.captures
                .lock()
                .unwrap()
                .push((host_if.to_string(), rx));
            let attached = self.attached.clone();
            let name = host_if.to_string();
            v.push(Box::new(move |rt: &mut Runtime, sw_if| {
                let o = rt.node_mut::<InterfaceOutput>(INTERFACE_OUTPUT).unwrap();
                assert!(
                    o.take_device(sw_if).is_none(),
                    "the old device of {sw_if} left before the new one came"
                );
                o.set_device(sw_if, Some(Box::new(dev)));
                attached.lock().unwrap().push(name);
            }));
        }
        Ok(v)
    }
    fn detach(&self) -> Installer {
        Box::new(|rt: &mut Runtime, sw_if| {
            rt.node_mut::<InterfaceOutput>(INTERFACE_OUTPUT)
                .unwrap()
                .set_device(sw_if, None)
        })
    }
}

impl PgPorts {
    /// Packets captured so far on `host_if` (every worker's capture).
    pub fn captured(&self, host_if: &str) -> usize {
        self.frames(host_if).len()
    }

    /// The frames captured so far on `host_if` (every worker's capture, the latest port's
    /// first).
    pub fn frames(&self, host_if: &str) -> Vec<Vec<u8>> {
        self.captures
            .lock()
            .unwrap()
            .iter()
            .rev()
            .filter(|(h, _)| h == host_if)
            .flat_map(|(_, rx)| rx.try_iter().collect::<Vec<_>>())
            .collect()
    }
}

/// `n` UDP packets from 10.0.1.2 (behind interface 0's 10.0.1.1) to 172.16.5.5, from
/// `worker`'s packet generator.
pub fn send_udp(dp: &DataPlane, worker: usize, n: u64) {
    let frame = StreamTemplate::udp4(
        [2, 0, 0, 0, 9, 1],
        [2, 0, 0, 0, 0, 1],
        "10.0.1.2".parse().unwrap(),
        "172.16.5.5".parse().unwrap(),
        64,
    )
    .build();
    dp.workers()
        .exec(worker, move |rt| {
            rt.node_mut::<PgInput>(PG_INPUT)
                .unwrap()
                .add_stream(Stream::new("t", 0, frame).with_limit(n))
        })
        .unwrap();
}
