//! `vpgctl show …`: aligned tables with units and totals, or `--json`.

use crate::{connect, Cli, ShowWhat};
use anyhow::Context;
use vpg_api::{Details, Request};
use vpg_graph::show;
use vpg_graph::stats_segment::StatsView;

/// Human units: 1.23k, 4.56M.
pub(crate) fn si(v: u64) -> String {
    match v {
        0..=9_999 => v.to_string(),
        10_000..=9_999_999 => format!("{:.2}k", v as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.2}M", v as f64 / 1e6),
        _ => format!("{:.2}G", v as f64 / 1e9),
    }
}

pub(crate) fn bytes(v: u64) -> String {
    match v {
        0..=999 => format!("{v} B"),
        1_000..=999_999 => format!("{:.1} KB", v as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} MB", v as f64 / 1e6),
        _ => format!("{:.2} GB", v as f64 / 1e9),
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub(crate) fn show(cli: &Cli, what: ShowWhat) -> anyhow::Result<()> {
    match what {
        // Counters come straight from the stats segment: no request reaches the workers.
        ShowWhat::Runtime | ShowWhat::Errors => {
            let view = StatsView::open(&cli.stats)
                .with_context(|| format!("stats segment {}", cli.stats.display()))?;
            if matches!(what, ShowWhat::Runtime) {
                let rows = show::runtime_rows(&view, view.workers());
                if cli.json {
                    let v: Vec<_> = rows
                        .iter()
                        .map(|r| {
                            serde_json::json!({"worker": r.worker, "node": r.node, "calls": r.calls, "vectors": r.vectors,
                                "clocks": r.clocks, "clocks_per_packet": r.clocks_per_vector(), "vectors_per_call": r.vectors_per_call()})
                        })
                        .collect();
                    return print_json(&v);
                }
                print!("{}", show::runtime_text(&view, view.workers()));
            } else {
                let rows = show::error_rows(&view, view.workers());
                if cli.json {
                    let v: Vec<_> = rows
                        .iter()
                        .map(|r| serde_json::json!({"count": r.count, "node": r.node, "name": r.name, "description": r.description}))
                        .collect();
                    return print_json(&v);
                }
                print!("{}", show::errors_text(&view, view.workers()));
            }
            Ok(())
        }
        _ => {
            let req = match what {
                ShowWhat::Interfaces => Request::DumpInterfaces,
                ShowWhat::Fib => Request::DumpRoutes,
                ShowWhat::Neighbors => Request::DumpNeighbors,
                ShowWhat::Trace => Request::DumpTrace,
                ShowWhat::Version => Request::ShowVersion,
                ShowWhat::Buffers => Request::DumpBuffers,
                _ => Request::DumpFeatures,
            };
            let details = connect(cli)?.dump(&req)?;
            if cli.json {
                return print_json(&details);
            }
            print!("{}", render(what, &details));
            Ok(())
        }
    }
}

fn render(what: ShowWhat, details: &[Details]) -> String {
    let mut out = String::new();
    match what {
        ShowWhat::Interfaces => {
            out += &format!(
                "{:<12} {:>4} {:<12} {:<17} {:<5} {:>5} {:>10} {:>11} {:>10} {:>11} {:>8}  {}\n",
                "Name",
                "Idx",
                "Host",
                "MAC",
                "State",
                "MTU",
                "RX pkts",
                "RX bytes",
                "TX pkts",
                "TX bytes",
                "Drops",
                "Addresses"
            );
            let (mut rp, mut rb, mut tp, mut tb, mut dr) = (0, 0, 0, 0, 0);
            for d in details {
                if let Details::Interface(i) = d {
                    let c = &i.counters;
                    let addrs: Vec<String> = i.addresses.iter().map(|a| a.to_string()).collect();
                    out += &format!(
                        "{:<12} {:>4} {:<12} {:<17} {:<5} {:>5} {:>10} {:>11} {:>10} {:>11} {:>8}  {}\n",
                        i.name,
                        i.sw_if,
                        i.host_if,
                        i.mac.to_string(),
                        if i.admin_up { "up" } else { "down" },
                        i.mtu,
                        si(c.rx_packets),
                        bytes(c.rx_bytes),
                        si(c.tx_packets),
                        bytes(c.tx_bytes),
                        si(c.drops),
                        addrs.join(", ")
                    );
                    (rp, rb, tp, tb, dr) = (
                        rp + c.rx_packets,
                        rb + c.rx_bytes,
                        tp + c.tx_packets,
                        tb + c.tx_bytes,
                        dr + c.drops,
                    );
                }
            }
            out += &format!(
                "{:<12} {:>4} {:<12} {:<17} {:<5} {:>5} {:>10} {:>11} {:>10} {:>11} {:>8}\n",
                "total",
                "",
                "",
                "",
                "",
                "",
                si(rp),
                bytes(rb),
                si(tp),
                bytes(tb),
                si(dr)
            );
        }
        ShowWhat::Fib => {
            out += &format!(
                "{:<20} {:<10} {:<28} {:>4}  {}\n",
                "Prefix", "Source", "Path", "Adj", "Adjacency"
            );
            let mut n = 0;
            for d in details {
                if let Details::Route(r) = d {
                    let path = match r.path {
                        vpg_api::RoutePath::Via { next_hop, sw_if } => {
                            format!("via {next_hop} if {sw_if}")
                        }
                        vpg_api::RoutePath::Attached { sw_if } => format!("attached if {sw_if}"),
                        vpg_api::RoutePath::Drop => "drop".into(),
                        vpg_api::RoutePath::Local => "local".into(),
                    };
                    out += &format!(
                        "{:<20} {:<10} {:<28} {:>4}  {}\n",
                        r.prefix.to_string(),
                        r.source,
                        path,
                        r.adj,
                        r.adjacency
                    );
                    n += 1;
                }
            }
            out += &format!("{n} routes\n");
        }
        ShowWhat::Neighbors => {
            out += &format!("{:>4} {:<16} {}\n", "If", "Address", "MAC");
            for d in details {
                if let Details::Neighbor(n) = d {
                    out += &format!("{:>4} {:<16} {}\n", n.sw_if, n.ip.to_string(), n.mac);
                }
            }
        }
        ShowWhat::Features => {
            out += &format!("{:<12} {:<24} {:>4}\n", "Arc", "Feature", "If");
            for d in details {
                if let Details::Feature(f) = d {
                    out += &format!("{:<12} {:<24} {:>4}\n", f.arc, f.feature, f.sw_if);
                }
            }
        }
        ShowWhat::Buffers => {
            out += &format!(
                "{:<7} {:>9} {:>9} {:>9} {:>11} {:>11}  {}\n",
                "Worker", "Total", "Free", "In use", "Alloc-fail", "Double-free", "Pages"
            );
            for d in details {
                if let Details::Buffers(b) = d {
                    out += &format!(
                        "{:<7} {:>9} {:>9} {:>9} {:>11} {:>11}  {}\n",
                        b.worker,
                        b.total,
                        b.free,
                        b.total - b.free,
                        b.alloc_failures,
                        b.double_frees,
                        b.pages
                    );
                }
            }
        }
        ShowWhat::Trace => {
            for d in details {
                if let Details::Trace { text, .. } = d {
                    out += text;
                }
            }
        }
        _ => {
            for d in details {
                if let Details::Version(v) = d {
                    out += &format!(
                        "{}\napi {}.{}\nworkers {}\nstats segment {}\n",
                        v.server, v.api_major, v.api_minor, v.workers, v.stats_segment
                    );
                }
            }
        }
    }
    out
}
