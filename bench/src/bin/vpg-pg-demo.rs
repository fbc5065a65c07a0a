//! `vpg-pg-demo`: forwards generated traffic through the graph on a worker thread and prints what
//! an operator would look at: interfaces and FIB, `show runtime`, `show errors`, `show buffers`
//! and a few traced packets (including one dropped packet).

use anyhow::Context;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vpg_graph::pg::{PgInput, Stream, StreamTemplate, Vary, PG_INPUT};
use vpg_graph::show;
use vpg_graph::wire::{EthernetAddress, Ipv4Cidr};
use vpg_graph::{ConfigSet, GraphSpec, InterfaceOutput, NullDevice, WorkerOptions, Workers};
use vpg_ip4::{Ip4Control, RoutePath};

const PACKETS: u64 = 2_000_000;

fn main() -> anyhow::Result<()> {
    let mut spec = GraphSpec::new();
    vpg_ip4::register(&mut spec);
    spec.node(|| PgInput::new("ethernet-input"));
    let layout = spec.build()?;
    let workers = Workers::start(
        &layout,
        &WorkerOptions {
            workers: 1,
            buffers_per_worker: 16384,
            ..Default::default()
        },
    )?;

    // Two interfaces: pg0 (hosts 10.0.1.0/24) and pg1 (a router at 10.0.2.2 for 172.16/12).
    let mut ip4 = Ip4Control::new();
    ip4.add_interface(0, "pg0", EthernetAddress([2, 0, 0, 0, 0, 1]))?;
    ip4.add_interface(1, "pg1", EthernetAddress([2, 0, 0, 0, 0, 2]))?;
    ip4.add_address(0, "10.0.1.1/24".parse()?)?;
    ip4.add_address(1, "10.0.2.1/24".parse()?)?;
    ip4.set_admin_up(0, true)?;
    ip4.set_admin_up(1, true)?;
    ip4.add_neighbor(
        1,
        Ipv4Addr::new(10, 0, 2, 2),
        EthernetAddress([2, 0, 0, 0, 9, 2]),
    )?;
    ip4.add_route(
        "172.16.0.0/12".parse::<Ipv4Cidr>()?,
        RoutePath::Via {
            next_hop: Ipv4Addr::new(10, 0, 2, 2),
            sw_if: 1,
        },
    )?;
    workers.configure(Arc::new(ConfigSet::new().with(ip4.tables())));

    // 1024 flows to 172.16.0.0/22 from 10.0.1.2, plus one packet with a bad checksum and one
    // with no route, so show errors and the trace have something to say.
    let mut images = StreamTemplate::udp4(
        [2, 0, 0, 0, 9, 1],
        [2, 0, 0, 0, 0, 1],
        Ipv4Addr::new(10, 0, 1, 2),
        Ipv4Addr::new(172, 16, 0, 0),
        64,
    )
    .vary(Vary::Ip4Dst {
        start: Ipv4Addr::new(172, 16, 0, 0),
        count: 1024,
    })
    .vary(Vary::SrcPort {
        start: 1024,
        count: 1024,
    })
    .flows(1024)
    .build();
    let mut bad = images[1].clone();
    bad[14 + 10] ^= 0xff;
    images.insert(1, bad);
    let mut no_route = images[0].clone();
    no_route[14 + 16..14 + 20].copy_from_slice(&[192, 0, 2, 1]);
    no_route[14 + 10..14 + 12].fill(0);
    let c = vpg_graph::wire::checksum::data(&no_route[14..34]);
    no_route[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    images.insert(2, no_route);

    workers
        .exec(0, move |rt| {
            rt.trace_add(PG_INPUT, 3);
            let out = rt
                .node_mut::<InterfaceOutput>(vpg_graph::INTERFACE_OUTPUT)
                .expect("interface-output");
            out.set_device(0, Some(Box::new(NullDevice::default())));
            out.set_device(1, Some(Box::new(NullDevice::default())));
            rt.node_mut::<PgInput>(PG_INPUT)
                .expect("pg-input")
                .add_stream(Stream::new("demo", 0, images).with_limit(PACKETS));
        })
        .context("worker 0")?;

    let t0 = Instant::now();
    let stats = workers.stats();
    let pg = layout.node_index(PG_INPUT).context("pg-input")? as usize;
    while stats[0].nodes[pg].vectors.get() < PACKETS && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the last vectors drain.
    std::thread::sleep(Duration::from_millis(50));
    let secs = t0.elapsed().as_secs_f64();

    println!("vpg packet-generator demo: {PACKETS} packets through one worker in {secs:.2} s\n");
    println!("== show interfaces ==");
    for i in ip4.interfaces() {
        let c = &stats[0].interfaces[i.sw_if as usize];
        let addrs: Vec<String> = i.addresses.iter().map(|a| a.to_string()).collect();
        println!(
            "{:<6} if {} {} {:<4} {:<14} rx {:>9} pkts {:>11} bytes  tx {:>9} pkts {:>11} bytes  drops {}",
            i.name,
            i.sw_if,
            i.mac,
            if i.admin_up { "up" } else { "down" },
            addrs.join(","),
            c.rx_packets.get(),
            c.rx_bytes.get(),
            c.tx_packets.get(),
            c.tx_bytes.get(),
            c.drops.get()
        );
    }
    println!("\n== show fib ==");
    for r in ip4.routes() {
        println!(
            "{:<18} {:<10} adj {:<3} {}",
            r.prefix.to_string(),
            format!("{:?}", r.source).to_lowercase(),
            r.adj,
            ip4.adjacencies()[r.adj as usize]
        );
    }
    println!(
        "\n== show runtime ==\n{}",
        show::runtime_text(&layout, &stats)
    );
    println!("== show errors ==\n{}", show::errors_text(&layout, &stats));
    let (pools, backing, mapped) = workers
        .exec(0, |rt| {
            let p = rt.pool_stats();
            (p, rt.pool().backing(), rt.pool().mapped_bytes())
        })
        .context("worker 0")?;
    println!(
        "== show buffers ==\n{}",
        show::buffers_text(&[pools], backing, mapped)
    );
    let trace = workers
        .exec(0, |rt| show::trace_text(0, &rt.trace_lines()))
        .context("worker 0")?;
    println!("== show trace ==\n{trace}");
    workers.stop();
    Ok(())
}
