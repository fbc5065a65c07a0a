//! Running the daemon: build the graph, start the workers with the stats segment, attach the
//! configured interfaces, serve the API until shut down.

use crate::config::{parse_mac, Config};
use crate::dataplane::{DataPlane, Op, OpResult, PortBackend};
use anyhow::Context;
use std::sync::Arc;
use vpg_graph::pg::PgInput;
use vpg_graph::{GraphSpec, Layout, RuntimeConfig, WorkerOptions, Workers};

/// Interfaces that can exist at once (indices are reused): the counters and tables have room
/// for this many.
pub const MAX_INTERFACES: usize = 1024;

/// The graph vpgd runs: the IPv4, ACL and VXLAN nodes, the packet generator (for tracing and tests, as VPP keeps
/// pg) and whatever input nodes `extra` registers (AF_PACKET).
pub fn graph(extra: impl FnOnce(&mut GraphSpec)) -> anyhow::Result<Arc<Layout>> {
    let mut g = GraphSpec::new();
    vpg_ip4::register(&mut g);
    vpg_acl::register(&mut g);
    vpg_vxlan::register(&mut g);
    vpg_nat44::register(&mut g);
    vpg_esp::register(&mut g);
    g.node(|| PgInput::new("ethernet-input"));
    extra(&mut g);
    Ok(g.build()?)
}

/// Starts workers per `cfg` over `layout`.
pub fn start_workers(cfg: &Config, layout: &Arc<Layout>) -> anyhow::Result<Workers> {
    if let Some(dir) = cfg.stats.segment.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let opts = WorkerOptions {
        workers: cfg.workers.count,
        buffers_per_worker: cfg.buffers.per_worker,
        huge_pages: cfg.buffers.huge_pages,
        cpus: cfg.workers.cpus.clone(),
        runtime: RuntimeConfig {
            max_interfaces: MAX_INTERFACES,
        },
        stats_path: Some(cfg.stats.segment.clone()),
        ..Default::default()
    };
    Workers::start(layout, &opts).with_context(|| format!("starting {} workers", cfg.workers.count))
}

/// The operations that create the configured interfaces and tunnels.
pub fn startup_ops(cfg: &Config) -> Vec<Op> {
    let mut ops = Vec::new();
    for (i, itf) in cfg.interfaces.iter().enumerate() {
        let sw_if = i as u32;
        ops.push(Op::CreatePort {
            host_if: itf.host_if.clone(),
            name: itf.name.clone(),
            mac: itf.mac.as_deref().and_then(parse_mac),
        });
        if let Some(mtu) = itf.mtu {
            ops.push(Op::SetMtu { sw_if, mtu });
        }
        for a in &itf.addresses {
            if let Ok(prefix) = a.parse() {
                ops.push(Op::AddAddress { sw_if, prefix });
            }
        }
        ops.push(Op::SetAdmin { sw_if, up: itf.up });
    }
    let first = cfg.interfaces.len() as u32;
    ops.extend(crate::vxlan::startup_ops(&cfg.vxlan_tunnels, first));
    ops
}

/// Builds the data plane and attaches the configured interfaces (all or none).
pub fn start(
    cfg: &Config,
    layout: &Arc<Layout>,
    backend: Box<dyn PortBackend>,
) -> anyhow::Result<DataPlane> {
    let workers = start_workers(cfg, layout)?;
    let mut dp = DataPlane::new(workers, backend, MAX_INTERFACES);
    if let Some(path) = &cfg.esp.sequence_file {
        dp.keep_sequences(crate::espseq::SequenceFile::open(
            path,
            cfg.esp.sequence_reserve,
        )?);
    }
    let ops = startup_ops(cfg);
    let results = dp
        .apply(ops.clone())
        .map_err(|(i, e)| anyhow::anyhow!("configured interfaces: {e} (in {:?})", ops[i]))?;
    debug_assert!(
        results
            .iter()
            .filter(|r| matches!(r, OpResult::Interface(_)))
            .count()
            == cfg.interfaces.len() + cfg.vxlan_tunnels.len()
    );
    Ok(dp)
}

/// Starts the daemon's data plane on AF_PACKET ports and returns the API service, with neighbor
/// learning running: what `vpgd` runs, and what benchmarks embed.
pub fn start_service(cfg: &Config) -> anyhow::Result<crate::service::Service> {
    let layout = graph(|g| {
        g.node(|| vpg_io::AfPacketInput::new("ethernet-input"));
    })?;
    let ports = crate::ports::AfPacketPorts::new(cfg.afpacket.ring_options());
    let dp = start(cfg, &layout, Box::new(ports))?;
    let svc = crate::service::Service::new(dp, cfg.stats.segment.display().to_string());
    svc.start_neighbor_learning();
    crate::vxlan::start_learning(&svc);
    svc.start_sequence_reservations();
    Ok(svc)
}
