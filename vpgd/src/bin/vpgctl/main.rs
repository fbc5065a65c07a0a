//! `vpgctl`: the operator's CLI for vpgd. Configuration goes through the control API; `show
//! runtime` and `show errors` read the stats segment directly, so they never ask the workers;
//! `show policy` and `show node` ask vpg-agent's status socket (what it configured and why).

mod acl;
mod agent;
mod esp;
mod nat44;
mod show;
mod vxlan;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use vpg_api::stats::ClearWhat;
use vpg_api::{Client, ConfigItem, Details, Mac, Prefix, Reply, Request, RoutePath};

/// Configure vpgd and inspect its tables and counters.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// vpgd's API socket.
    #[arg(
        long,
        global = true,
        default_value = "/run/vpg/api.sock",
        env = "VPG_API_SOCKET"
    )]
    socket: PathBuf,
    /// vpgd's stats segment (show runtime / errors read it directly).
    #[arg(
        long,
        global = true,
        default_value = "/run/vpg/stats",
        env = "VPG_STATS"
    )]
    stats: PathBuf,
    /// vpg-agent's status socket (show policy / node ask the agent).
    #[arg(
        long,
        global = true,
        default_value = vpg_api::agent::DEFAULT_SOCKET,
        env = "VPG_AGENT_SOCKET"
    )]
    agent_socket: PathBuf,
    /// Print JSON (the API's detail records) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show a table or counters (`show acl [ID|interfaces|sessions|classifier]`, `show vxlan tunnels`,
    /// `show nat44 addresses|interfaces|mappings|sessions|summary`, `show esp sa|protect|summary`;
    /// from vpg-agent: `show policy tables|pod NS/NAME`, `show node`).
    Show {
        /// What to show.
        what: ShowWhat,
        /// More words (`show acl …`, `show vxlan tunnels`, `show nat44 sessions addr 10.1.1.2`).
        args: Vec<String>,
        /// More per row (`show nat44 sessions --detail`).
        #[arg(long)]
        detail: bool,
    },
    /// NAT44: pool, interface roles, mappings, identities, settings, clearing sessions.
    #[command(subcommand)]
    Nat44(nat44::NatCmd),
    /// ACLs: add, del, set an interface's list, match, clear sessions or counters.
    #[command(subcommand)]
    Acl(acl::AclCmd),
    /// Trace the next packets entering a node: `trace add af-packet-input 10`.
    Trace {
        /// Only `add`.
        action: TraceAction,
        /// Node name.
        node: String,
        /// Number of packets.
        count: u32,
    },
    /// Reset counters or the trace.
    Clear {
        /// What.
        what: ClearArg,
    },
    /// Attach a Linux interface with AF_PACKET: `create af-packet eth1 --name up0`.
    Create {
        /// Only `af-packet`.
        kind: CreateKind,
        /// Linux interface.
        host_if: String,
        /// vpg's name.
        #[arg(long)]
        name: Option<String>,
        /// MAC address.
        #[arg(long)]
        mac: Option<Mac>,
    },
    /// Detach an interface: `delete up0`.
    Delete {
        /// Interface name or index.
        interface: String,
    },
    /// Set interface state, MAC or MTU: `set up0 state up`, `set up0 mtu 1400`.
    Set {
        /// Interface name or index.
        interface: String,
        /// `state`, `mac` or `mtu`.
        field: SetField,
        /// The value (`up`/`down`, a MAC, a number).
        value: String,
    },
    /// Add or delete an interface address: `address add up0 10.0.1.1/24`.
    Address {
        /// add or del.
        action: AddDel,
        /// Interface name or index.
        interface: String,
        /// Address with prefix length.
        prefix: Prefix,
    },
    /// Set the proxy-ARP prefixes of an interface (none clears them).
    ProxyArp {
        /// Interface name or index.
        interface: String,
        /// Prefixes.
        prefixes: Vec<Prefix>,
    },
    /// Add or delete a route: `route add 10.2.0.0/16 via 10.0.2.2 up1`, `route add 10.3.0.0/16 dev up1`,
    /// `route add 10.4.0.0/16 drop`, `route del 10.2.0.0/16`.
    Route {
        /// add or del.
        action: AddDel,
        /// Prefix.
        prefix: Prefix,
        /// `via NEXT_HOP INTERFACE`, `dev INTERFACE`, `drop` or `local` (add only).
        path: Vec<String>,
    },
    /// Add or delete a neighbor: `neighbor add up1 10.0.2.2 02:00:00:00:00:02`.
    Neighbor {
        /// add or del.
        action: AddDel,
        /// Interface name or index.
        interface: String,
        /// Address.
        ip: Ipv4Addr,
        /// MAC (add only).
        mac: Option<Mac>,
    },
    /// Enable or disable a feature: `feature enable ip4-output acl-out-ip4 up0`.
    Feature {
        /// enable or disable.
        action: EnableDisable,
        /// Arc (`ip4-unicast`, `ip4-output`).
        arc: String,
        /// Feature node.
        feature: String,
        /// Interface name or index.
        interface: String,
    },
    /// VXLAN tunnels: `vxlan create LOCAL REMOTE VNI`, `vxlan delete vx0`.
    #[command(subcommand)]
    Vxlan(vxlan::VxlanCmd),
    /// IPsec ESP: `esp sa add|del|retire`, `esp protect add|del`, `esp interface IF on|off`.
    #[command(subcommand)]
    Esp(esp::EspCmd),
    /// Apply a YAML or JSON file of changes as one transaction (all or nothing).
    Apply {
        /// The file: a list of changes, or `{items: [...]}`.
        file: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ShowWhat {
    Interfaces,
    Fib,
    Neighbors,
    Runtime,
    Errors,
    Trace,
    Version,
    Buffers,
    Features,
    Acl,
    Vxlan,
    Nat44,
    Esp,
    /// vpg-agent's policy tables with provenance (`tables`, `pod NS/NAME`).
    Policy,
    /// What vpg-agent configured on the node, and why.
    Node,
}

#[derive(Clone, Copy, ValueEnum)]
enum TraceAction {
    Add,
}

#[derive(Clone, Copy, ValueEnum)]
enum ClearArg {
    Runtime,
    Errors,
    Trace,
    Interfaces,
}

#[derive(Clone, Copy, ValueEnum)]
enum CreateKind {
    AfPacket,
}

#[derive(Clone, Copy, ValueEnum)]
enum SetField {
    State,
    Mac,
    Mtu,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub(crate) enum AddDel {
    Add,
    Del,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum EnableDisable {
    Enable,
    Disable,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vpgctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn connect(cli: &Cli) -> anyhow::Result<Client> {
    Client::connect(
        &cli.socket,
        &format!("vpgctl {}", env!("CARGO_PKG_VERSION")),
    )
    .with_context(|| format!("connecting to {}", cli.socket.display()))
}

/// An interface given by name or index.
fn sw_if(c: &mut Client, s: &str) -> anyhow::Result<u32> {
    if let Ok(n) = s.parse() {
        return Ok(n);
    }
    for d in c.dump(&Request::DumpInterfaces)? {
        if let Details::Interface(i) = d {
            if i.name == s {
                return Ok(i.sw_if);
            }
        }
    }
    bail!("no interface named '{s}'")
}

fn config(c: &mut Client, item: ConfigItem) -> anyhow::Result<()> {
    match c.call(&Request::Config { item })? {
        Reply::Ok { sw_if: Some(i) } => println!("created interface {i}"),
        Reply::Ok { sw_if: None } => {}
        r => bail!("unexpected reply {r:?}"),
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.cmd {
        Cmd::Show {
            what: ShowWhat::Acl,
            args,
            ..
        } => acl::show(&cli, args),
        Cmd::Show {
            what: ShowWhat::Vxlan,
            args,
            ..
        } => vxlan::show(&cli, args.first().map(String::as_str)),
        Cmd::Show {
            what: ShowWhat::Nat44,
            args,
            detail,
        } => nat44::show(&cli, args, *detail),
        Cmd::Nat44(cmd) => nat44::run(&cli, cmd),
        Cmd::Show {
            what: ShowWhat::Esp,
            args,
            ..
        } => esp::show(&cli, args.first().map(String::as_str)),
        Cmd::Show {
            what: ShowWhat::Policy,
            args,
            ..
        } => agent::show_policy(&cli, args),
        Cmd::Show {
            what: ShowWhat::Node,
            args,
            ..
        } => agent::show_node(&cli, args),
        Cmd::Show { args, .. } if !args.is_empty() => {
            bail!(
                "show: '{}' is not a table of it (only `show acl …`, `show vxlan tunnels`, `show nat44 …`, `show esp sa|protect|summary` and `show policy tables|pod NS/NAME` have them)",
                args[0]
            )
        }
        Cmd::Show { what, .. } => show::show(&cli, *what),
        Cmd::Acl(cmd) => acl::run(&cli, cmd),
        Cmd::Vxlan(cmd) => vxlan::run(&cli, cmd),
        Cmd::Esp(cmd) => esp::run(&cli, cmd),
        Cmd::Trace { node, count, .. } => {
            connect(&cli)?.call(&Request::TraceAdd {
                node: node.clone(),
                count: *count,
            })?;
            Ok(())
        }
        Cmd::Clear { what } => {
            let what = match what {
                ClearArg::Runtime => ClearWhat::Runtime,
                ClearArg::Errors => ClearWhat::Errors,
                ClearArg::Trace => ClearWhat::Trace,
                ClearArg::Interfaces => ClearWhat::Interfaces,
            };
            connect(&cli)?.call(&Request::Clear { what })?;
            Ok(())
        }
        Cmd::Create {
            host_if, name, mac, ..
        } => config(
            &mut connect(&cli)?,
            ConfigItem::CreateAfPacket {
                host_if: host_if.clone(),
                name: name.clone(),
                mac: *mac,
            },
        ),
        Cmd::Delete { interface } => {
            let mut c = connect(&cli)?;
            let sw_if = sw_if(&mut c, interface)?;
            config(&mut c, ConfigItem::DeleteInterface { sw_if })
        }
        Cmd::Set {
            interface,
            field,
            value,
        } => {
            let mut c = connect(&cli)?;
            let sw_if = sw_if(&mut c, interface)?;
            let item = match field {
                SetField::State => match value.as_str() {
                    "up" => ConfigItem::SetAdminState { sw_if, up: true },
                    "down" => ConfigItem::SetAdminState { sw_if, up: false },
                    v => bail!("state: '{v}' is neither up nor down"),
                },
                SetField::Mac => ConfigItem::SetMac {
                    sw_if,
                    mac: value.parse().map_err(anyhow::Error::msg)?,
                },
                SetField::Mtu => ConfigItem::SetMtu {
                    sw_if,
                    mtu: value
                        .parse()
                        .with_context(|| format!("mtu: '{value}' is not a number"))?,
                },
            };
            config(&mut c, item)
        }
        Cmd::Address {
            action,
            interface,
            prefix,
        } => {
            let mut c = connect(&cli)?;
            let sw_if = sw_if(&mut c, interface)?;
            let prefix = *prefix;
            config(
                &mut c,
                if *action == AddDel::Add {
                    ConfigItem::AddAddress { sw_if, prefix }
                } else {
                    ConfigItem::DelAddress { sw_if, prefix }
                },
            )
        }
        Cmd::ProxyArp {
            interface,
            prefixes,
        } => {
            let mut c = connect(&cli)?;
            let sw_if = sw_if(&mut c, interface)?;
            config(
                &mut c,
                ConfigItem::SetProxyArp {
                    sw_if,
                    prefixes: prefixes.clone(),
                },
            )
        }
        Cmd::Route {
            action,
            prefix,
            path,
        } => {
            let mut c = connect(&cli)?;
            if *action == AddDel::Del {
                return config(&mut c, ConfigItem::DelRoute { prefix: *prefix });
            }
            let words: Vec<&str> = path.iter().map(String::as_str).collect();
            let path = match words.as_slice() {
                ["via", nh, itf] => RoutePath::Via { next_hop: nh.parse().with_context(|| format!("via: '{nh}' is not an IPv4 address"))?, sw_if: sw_if(&mut c, itf)? },
                ["dev", itf] => RoutePath::Attached { sw_if: sw_if(&mut c, itf)? },
                ["drop"] => RoutePath::Drop,
                ["local"] => RoutePath::Local,
                _ => bail!("route add PREFIX needs `via NEXT_HOP INTERFACE`, `dev INTERFACE`, `drop` or `local`"),
            };
            config(
                &mut c,
                ConfigItem::AddRoute {
                    prefix: *prefix,
                    path,
                },
            )
        }
        Cmd::Neighbor {
            action,
            interface,
            ip,
            mac,
        } => {
            let mut c = connect(&cli)?;
            let sw_if = sw_if(&mut c, interface)?;
            let item = match (action, mac) {
                (AddDel::Add, Some(mac)) => ConfigItem::AddNeighbor {
                    sw_if,
                    ip: *ip,
                    mac: *mac,
                },
                (AddDel::Add, None) => bail!("neighbor add needs a MAC address"),
                (AddDel::Del, _) => ConfigItem::DelNeighbor { sw_if, ip: *ip },
            };
            config(&mut c, item)
        }
        Cmd::Feature {
            action,
            arc,
            feature,
            interface,
        } => {
            let mut c = connect(&cli)?;
            let sw_if = sw_if(&mut c, interface)?;
            config(
                &mut c,
                ConfigItem::feature(
                    *action == EnableDisable::Enable,
                    arc.as_str(),
                    feature.as_str(),
                    sw_if,
                ),
            )
        }
        Cmd::Apply { file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let items = parse_changes(&text).with_context(|| format!("{}", file.display()))?;
            match connect(&cli)?.call(&Request::Transaction { items })? {
                Reply::Applied { count, created } => {
                    println!(
                        "applied {count} changes{}",
                        if created.is_empty() {
                            String::new()
                        } else {
                            format!("; created interfaces {created:?}")
                        }
                    );
                    Ok(())
                }
                r => bail!("unexpected reply {r:?}"),
            }
        }
    }
}

/// A list of changes, or `{items: [...]}`, in YAML or JSON (JSON is YAML).
fn parse_changes(text: &str) -> anyhow::Result<Vec<ConfigItem>> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum File {
        List(Vec<ConfigItem>),
        Txn { items: Vec<ConfigItem> },
    }
    let f: File =
        serde_yaml::from_str(text).map_err(|e| anyhow::anyhow!("not a list of changes: {e}"))?;
    Ok(match f {
        File::List(v) | File::Txn { items: v } => v,
    })
}
