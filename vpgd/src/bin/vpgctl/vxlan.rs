//! `vpgctl vxlan …` (create and delete tunnels) and `vpgctl show vxlan tunnels`.

use crate::{config, connect, sw_if, Cli};
use anyhow::bail;
use clap::Subcommand;
use std::net::Ipv4Addr;
use vpg_api::vxlan::VxlanTunnelDetails;
use vpg_api::{ConfigItem, Details, Mac, Request};

/// VXLAN tunnel commands.
#[derive(Subcommand)]
pub(crate) enum VxlanCmd {
    /// Create a tunnel interface: `vxlan create 192.168.1.1 192.168.1.2 42 --name vx0`.
    Create {
        /// This node's VTEP address.
        local: Ipv4Addr,
        /// The far VTEP address.
        remote: Ipv4Addr,
        /// VXLAN network identifier.
        vni: u32,
        /// UDP port (default 4789).
        #[arg(long)]
        port: Option<u16>,
        /// Interface name.
        #[arg(long)]
        name: Option<String>,
        /// The tunnel interface's MAC.
        #[arg(long)]
        mac: Option<Mac>,
        /// The far end's inner MAC (learned from traffic when not given).
        #[arg(long)]
        remote_mac: Option<Mac>,
    },
    /// Delete a tunnel: `vxlan delete vx0`.
    Delete {
        /// Tunnel interface name or index.
        interface: String,
    },
}

pub(crate) fn run(cli: &Cli, cmd: &VxlanCmd) -> anyhow::Result<()> {
    let mut c = connect(cli)?;
    match cmd {
        VxlanCmd::Create {
            local,
            remote,
            vni,
            port,
            name,
            mac,
            remote_mac,
        } => config(
            &mut c,
            ConfigItem::CreateVxlanTunnel {
                local: *local,
                remote: *remote,
                vni: *vni,
                port: *port,
                name: name.clone(),
                mac: *mac,
                remote_mac: *remote_mac,
            },
        ),
        VxlanCmd::Delete { interface } => {
            let sw_if = sw_if(&mut c, interface)?;
            config(&mut c, ConfigItem::DeleteVxlanTunnel { sw_if })
        }
    }
}

/// `show vxlan [tunnels]`.
pub(crate) fn show(cli: &Cli, table: Option<&str>) -> anyhow::Result<()> {
    if let Some(t) = table.filter(|t| *t != "tunnels") {
        bail!("show vxlan: unknown table '{t}' (only `tunnels`)");
    }
    let details = connect(cli)?.dump(&Request::DumpVxlanTunnels)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&details)?);
        return Ok(());
    }
    let rows: Vec<&VxlanTunnelDetails> = details
        .iter()
        .filter_map(|d| match d {
            Details::VxlanTunnel(t) => Some(t),
            _ => None,
        })
        .collect();
    print!("{}", render(&rows));
    Ok(())
}

fn render(rows: &[&VxlanTunnelDetails]) -> String {
    use crate::show::{bytes, si};
    let line = |c: [&str; 12]| {
        format!(
            "{:<14} {:>4} {:<33} {:>8} {:<25} {:<5} {:>5} {:>10} {:>11} {:>10} {:>11} {:>8}\n",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]
        )
    };
    let mut out = line([
        "Name",
        "Idx",
        "Local -> Remote",
        "VNI",
        "Remote MAC",
        "State",
        "MTU",
        "RX pkts",
        "RX bytes",
        "TX pkts",
        "TX bytes",
        "Drops",
    ]);
    let mut tot = [0u64; 5];
    for t in rows {
        let c = &t.counters;
        let ends = if t.port == vpg_api::vxlan::DEFAULT_VXLAN_PORT {
            format!("{} -> {}", t.local, t.remote)
        } else {
            format!("{} -> {}:{}", t.local, t.remote, t.port)
        };
        let mac = match (t.remote_mac, t.remote_mac_learned) {
            (Some(m), true) => format!("{m} (learned)"),
            (Some(m), false) => m.to_string(),
            (None, _) => "-".into(),
        };
        out += &line([
            &t.name,
            &t.sw_if.to_string(),
            &ends,
            &t.vni.to_string(),
            &mac,
            if t.admin_up { "up" } else { "down" },
            &t.mtu.to_string(),
            &si(c.rx_packets),
            &bytes(c.rx_bytes),
            &si(c.tx_packets),
            &bytes(c.tx_bytes),
            &si(c.drops),
        ]);
        for (s, v) in
            tot.iter_mut()
                .zip([c.rx_packets, c.rx_bytes, c.tx_packets, c.tx_bytes, c.drops])
        {
            *s += v;
        }
    }
    out += &line([
        "total",
        "",
        &format!("{} tunnels", rows.len()),
        "",
        "",
        "",
        "",
        &si(tot[0]),
        &bytes(tot[1]),
        &si(tot[2]),
        &bytes(tot[3]),
        &si(tot[4]),
    ]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_a_row_per_tunnel_and_totals() {
        let t = VxlanTunnelDetails {
            sw_if: 2,
            name: "vx0".into(),
            local: Ipv4Addr::new(192, 168, 1, 1),
            remote: Ipv4Addr::new(192, 168, 1, 2),
            vni: 42,
            port: 4789,
            mac: Mac([2, 0, 0, 0, 0, 1]),
            remote_mac: Some(Mac([2, 0, 0, 0, 0, 2])),
            remote_mac_learned: true,
            admin_up: true,
            mtu: 1450,
            counters: vpg_api::interface::InterfaceCounters {
                rx_packets: 10,
                rx_bytes: 1000,
                tx_packets: 20,
                tx_bytes: 2_000_000,
                drops: 1,
            },
        };
        let u = VxlanTunnelDetails {
            port: 8472,
            remote_mac: None,
            ..t.clone()
        };
        let text = render(&[&t, &u]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].contains("192.168.1.1 -> 192.168.1.2 ") && lines[1].contains("(learned)"));
        assert!(lines[2].contains("192.168.1.2:8472") && lines[2].contains(" - "));
        assert!(
            lines[3].starts_with("total")
                && lines[3].contains("2 tunnels")
                && lines[3].contains("4.0 MB"),
            "{text}"
        );
    }
}
