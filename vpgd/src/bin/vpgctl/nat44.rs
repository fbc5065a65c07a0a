//! `vpgctl nat44 …` (pool, interfaces, mappings, identities, settings, clearing sessions) and
//! `vpgctl show nat44 addresses|interfaces|mappings|sessions [--detail]|summary`.

use crate::{config, connect, sw_if, Cli};
use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use vpg_api::nat44::{
    Nat44Identity, Nat44Local, Nat44Mapping, Nat44MappingKey, Nat44PoolEntry, Nat44SessionDetails,
    Nat44SessionFilter, Nat44Settings, Nat44Timeouts,
};
use vpg_api::{ConfigItem, Details, Prefix, Request};

/// NAT44 commands.
#[derive(Subcommand)]
pub(crate) enum NatCmd {
    /// Pool: `nat44 pool add 192.0.2.1`, `nat44 pool add --interface up0`, `nat44 pool del …`.
    Pool {
        /// add or del.
        action: crate::AddDel,
        /// Address.
        address: Option<Ipv4Addr>,
        /// Use this interface's address instead (followed when it changes).
        #[arg(long)]
        interface: Option<String>,
    },
    /// Interface role: `nat44 interface up0 outside`, `nat44 interface pod1 inside`, `… off`.
    Interface {
        /// Interface name or index.
        interface: String,
        /// Role.
        role: RoleArg,
    },
    /// Static mappings: `nat44 mapping add 10.96.0.10:80/tcp 10.1.1.2:8080 10.1.1.3:8080@2
    /// --tag default/web`, `nat44 mapping add 192.0.2.7 10.1.1.9` (1:1), `nat44 mapping del
    /// 10.96.0.10:80/tcp`.
    Mapping {
        /// add or del.
        action: crate::AddDel,
        /// External side: `ADDR` or `ADDR:PORT/tcp|udp`.
        external: String,
        /// Local endpoints: `ADDR[:PORT][@WEIGHT]` (add only).
        locals: Vec<String>,
        /// Translate only connections towards the external side (implied with several locals).
        #[arg(long)]
        out2in_only: bool,
        /// Free text (the service).
        #[arg(long, default_value = "")]
        tag: String,
    },
    /// Identity mappings: `nat44 identity add 192.0.2.1:4789/udp`, `nat44 identity add
    /// 192.0.2.1/50` (a protocol), `nat44 identity add 10.1.1.9` (an address).
    Identity {
        /// add or del.
        action: crate::AddDel,
        /// `ADDR`, `ADDR/PROTO` or `ADDR:PORT/tcp|udp`.
        what: String,
        /// Free text.
        #[arg(long, default_value = "")]
        tag: String,
    },
    /// Settings: `nat44 set never-nat 10.0.0.0/8 …`, `loopback 10.1.1.254`, `ports 1024-65535`,
    /// `timeouts udp=300 tcp-established=7440 tcp-transitory=240 icmp=60`,
    /// `sessions-per-worker N`, `sessions-per-address N`.
    Set {
        /// The setting.
        setting: String,
        /// Its value(s).
        values: Vec<String>,
    },
    /// Delete sessions: `nat44 clear-sessions [addr A] [port P] [proto P] [kind K]`.
    ClearSessions {
        /// Filter words.
        filter: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
    Inside,
    Outside,
    Both,
    Off,
}

fn proto(s: &str) -> anyhow::Result<u8> {
    Ok(match s {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        n => n
            .parse()
            .with_context(|| format!("'{n}' is not tcp, udp, icmp or a number"))?,
    })
}

fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        n => n.to_string(),
    }
}

/// `ADDR`, `ADDR/PROTO` or `ADDR:PORT/PROTO`.
fn endpoint(s: &str) -> anyhow::Result<(Ipv4Addr, Option<u8>, u16)> {
    let (rest, p) = match s.split_once('/') {
        Some((r, p)) => (r, Some(proto(p)?)),
        None => (s, None),
    };
    let (a, port) = match rest.split_once(':') {
        Some((a, port)) => (a, port.parse().with_context(|| format!("port in '{s}'"))?),
        None => (rest, 0),
    };
    let a = a.parse().with_context(|| format!("address in '{s}'"))?;
    if port != 0 && p.is_none() {
        bail!("'{s}': a port needs a protocol (ADDR:PORT/tcp or /udp)");
    }
    Ok((a, p, port))
}

/// `ADDR[:PORT][@WEIGHT]`.
fn local(s: &str) -> anyhow::Result<Nat44Local> {
    let (rest, weight) = match s.split_once('@') {
        Some((r, w)) => (r, w.parse().with_context(|| format!("weight in '{s}'"))?),
        None => (s, 1),
    };
    let (a, port) = match rest.split_once(':') {
        Some((a, p)) => (a, p.parse().with_context(|| format!("port in '{s}'"))?),
        None => (rest, 0),
    };
    Ok(Nat44Local {
        address: a.parse().with_context(|| format!("address in '{s}'"))?,
        port,
        weight,
    })
}

fn filter(words: &[String]) -> anyhow::Result<Nat44SessionFilter> {
    let mut f = Nat44SessionFilter::default();
    let mut w = words.iter();
    while let Some(k) = w.next() {
        let v = w.next().with_context(|| format!("'{k}' needs a value"))?;
        match k.as_str() {
            "addr" => f.addr = Some(v.parse().context("addr")?),
            "port" => f.port = Some(v.parse().context("port")?),
            "proto" => f.proto = Some(proto(v)?),
            "kind" => f.kind = Some(v.clone()),
            "worker" => f.worker = Some(v.parse().context("worker")?),
            _ => bail!("filter words: addr A, port P, proto P, kind K, worker W"),
        }
    }
    Ok(f)
}

fn settings(setting: &str, values: &[String]) -> anyhow::Result<Nat44Settings> {
    let one = || {
        values
            .first()
            .with_context(|| format!("{setting} needs a value"))
    };
    let mut s = Nat44Settings::default();
    match setting {
        "never-nat" => {
            s.never_nat = Some(
                values
                    .iter()
                    .map(|v| {
                        v.parse::<Prefix>()
                            .map_err(|e| anyhow::anyhow!("prefix '{v}': {e}"))
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        "loopback" => s.loopback = Some(one()?.parse().context("loopback address")?),
        "ports" => {
            let v = one()?;
            let (lo, hi) = v.split_once('-').context("ports FIRST-LAST")?;
            s.port_range = Some([lo.parse()?, hi.parse()?]);
        }
        "timeouts" => {
            let mut t = Nat44Timeouts {
                udp: 300,
                tcp_established: 7440,
                tcp_transitory: 240,
                icmp: 60,
            };
            for v in values {
                let (k, n) = v.split_once('=').context("timeouts NAME=SECONDS …")?;
                let n: u32 = n.parse().with_context(|| format!("seconds in '{v}'"))?;
                match k {
                    "udp" => t.udp = n,
                    "tcp-established" => t.tcp_established = n,
                    "tcp-transitory" => t.tcp_transitory = n,
                    "icmp" => t.icmp = n,
                    _ => bail!("timeouts: udp, tcp-established, tcp-transitory, icmp"),
                }
            }
            s.timeouts = Some(t);
        }
        "sessions-per-worker" => s.sessions_per_worker = Some(one()?.parse()?),
        "sessions-per-address" => s.sessions_per_address = Some(one()?.parse()?),
        _ => bail!(
            "nat44 set: never-nat, loopback, ports, timeouts, sessions-per-worker or sessions-per-address"
        ),
    }
    Ok(s)
}

pub(crate) fn run(cli: &Cli, cmd: &NatCmd) -> anyhow::Result<()> {
    let mut c = connect(cli)?;
    let item = match cmd {
        NatCmd::Pool {
            action,
            address,
            interface,
        } => {
            let e = Nat44PoolEntry {
                address: *address,
                sw_if: interface.as_deref().map(|i| sw_if(&mut c, i)).transpose()?,
            };
            if *action == crate::AddDel::Add {
                ConfigItem::Nat44AddPool(e)
            } else {
                ConfigItem::Nat44DelPool(e)
            }
        }
        NatCmd::Interface { interface, role } => {
            let (inside, outside) = match role {
                RoleArg::Inside => (true, false),
                RoleArg::Outside => (false, true),
                RoleArg::Both => (true, true),
                RoleArg::Off => (false, false),
            };
            ConfigItem::Nat44SetInterface {
                sw_if: sw_if(&mut c, interface)?,
                inside,
                outside,
            }
        }
        NatCmd::Mapping {
            action,
            external,
            locals,
            out2in_only,
            tag,
        } => {
            let (a, p, port) = endpoint(external)?;
            if *action == crate::AddDel::Add {
                ConfigItem::Nat44AddMapping(Nat44Mapping {
                    external: a,
                    proto: p,
                    external_port: port,
                    locals: locals.iter().map(|l| local(l)).collect::<Result<_, _>>()?,
                    out2in_only: out2in_only.then_some(true),
                    tag: tag.clone(),
                })
            } else {
                ConfigItem::Nat44DelMapping(Nat44MappingKey {
                    external: a,
                    proto: p,
                    external_port: port,
                })
            }
        }
        NatCmd::Identity { action, what, tag } => {
            let (address, proto, port) = endpoint(what)?;
            let m = Nat44Identity {
                address,
                proto,
                port,
                tag: tag.clone(),
            };
            if *action == crate::AddDel::Add {
                ConfigItem::Nat44AddIdentity(m)
            } else {
                ConfigItem::Nat44DelIdentity(m)
            }
        }
        NatCmd::Set { setting, values } => ConfigItem::Nat44Settings(settings(setting, values)?),
        NatCmd::ClearSessions { filter: words } => {
            c.call(&Request::ClearNat44Sessions {
                filter: filter(words)?,
            })?;
            return Ok(());
        }
    };
    config(&mut c, item)
}

fn flow(f: &vpg_api::nat44::Nat44Flow) -> String {
    format!("{}:{} -> {}:{}", f.src, f.sport, f.dst, f.dport)
}

fn session_line(s: &Nat44SessionDetails, detail: bool) -> String {
    let mut out = format!(
        "w{} #{:<6} {:<8} {:<4} {:<45} => {:<45} {:<11} {:>6}/{:<6} idle {}s",
        s.worker,
        s.index,
        s.kind,
        proto_name(s.proto),
        flow(&s.inside),
        flow(&s.outside),
        s.state,
        s.packets_fwd,
        s.packets_rev,
        s.idle_s
    );
    if detail {
        let _ = write!(
            out,
            "\n    bytes {}  expires in {}s{}",
            s.bytes,
            s.expires_in_s,
            s.mapping
                .as_deref()
                .map(|m| format!("  mapping {m}"))
                .unwrap_or_default()
        );
    }
    out.push('\n');
    out
}

/// `show nat44 …`.
pub(crate) fn show(cli: &Cli, args: &[String], detail: bool) -> anyhow::Result<()> {
    let mut c = connect(cli)?;
    let what = args.first().map(String::as_str).unwrap_or("summary");
    let req = match what {
        "addresses" => Request::DumpNat44Addresses,
        "interfaces" => Request::DumpNat44Interfaces,
        "mappings" => Request::DumpNat44Mappings,
        "sessions" => Request::DumpNat44Sessions {
            filter: filter(&args[1..])?,
        },
        "summary" => Request::DumpNat44Summary,
        t => bail!(
            "show nat44: unknown table '{t}' (addresses, interfaces, mappings, sessions, summary)"
        ),
    };
    let details = c.dump(&req)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&details)?);
        return Ok(());
    }
    let mut out = String::new();
    for d in &details {
        match d {
            Details::Nat44Address(a) => {
                let addr = a.address.map_or("(none yet)".into(), |x| x.to_string());
                let src = a
                    .sw_if
                    .map(|i| format!(" (interface {i})"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{addr}{src}: {} sessions; ports in use tcp {} udp {} icmp {}",
                    a.sessions, a.ports_tcp, a.ports_udp, a.ports_icmp
                );
            }
            Details::Nat44Interface(i) => {
                let role = match (i.inside, i.outside) {
                    (true, true) => "inside outside",
                    (true, false) => "inside",
                    (false, true) => "outside (output feature)",
                    (false, false) => "off",
                };
                let _ = writeln!(out, "interface {:>4}  {role}", i.sw_if);
            }
            Details::Nat44Mapping(m) => {
                let x = &m.mapping;
                let ext = match x.proto {
                    Some(p) => format!("{}:{}/{}", x.external, x.external_port, proto_name(p)),
                    None => x.external.to_string(),
                };
                let locals: Vec<String> = x
                    .locals
                    .iter()
                    .map(|l| {
                        let p = if l.port == 0 {
                            String::new()
                        } else {
                            format!(":{}", l.port)
                        };
                        format!("{}{p}@{}", l.address, l.weight)
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    "{ext} -> {}{}  sessions {}{}",
                    locals.join(" "),
                    if x.out2in_only == Some(true) {
                        "  out2in-only"
                    } else {
                        ""
                    },
                    m.sessions,
                    if x.tag.is_empty() {
                        String::new()
                    } else {
                        format!("  '{}'", x.tag)
                    }
                );
            }
            Details::Nat44Identity(m) => {
                let what = match (m.proto, m.port) {
                    (None, _) => m.address.to_string(),
                    (Some(p), 0) => format!("{}/{}", m.address, proto_name(p)),
                    (Some(p), port) => format!("{}:{port}/{}", m.address, proto_name(p)),
                };
                let _ = writeln!(out, "identity {what}  '{}'", m.tag);
            }
            Details::Nat44Session(s) => out += &session_line(s, detail),
            Details::Nat44Summary(s) => {
                for w in &s.workers {
                    let _ = writeln!(
                        out,
                        "worker {}: {} of {} sessions (tcp {} udp {} icmp {} other {}), ports {}-{}",
                        w.worker,
                        w.sessions,
                        w.capacity,
                        w.tcp,
                        w.udp,
                        w.icmp,
                        w.other,
                        w.ports[0],
                        w.ports[1]
                    );
                }
                for a in &s.addresses {
                    let _ = writeln!(
                        out,
                        "address {}: {} sessions, ports in use tcp {} udp {} icmp {}",
                        a.address.map_or("(none yet)".into(), |x| x.to_string()),
                        a.sessions,
                        a.ports_tcp,
                        a.ports_udp,
                        a.ports_icmp
                    );
                }
                for k in &s.counters {
                    let _ = writeln!(out, "{:<22} {:<18} {:>12}", k.node, k.name, k.count);
                }
                let st = &s.settings;
                if let Some(t) = st.timeouts {
                    let _ = writeln!(
                        out,
                        "timeouts: udp {}s tcp-established {}s tcp-transitory {}s icmp {}s",
                        t.udp, t.tcp_established, t.tcp_transitory, t.icmp
                    );
                }
                if let Some(n) = &st.never_nat {
                    let v: Vec<String> = n.iter().map(|p| p.to_string()).collect();
                    let _ = writeln!(out, "never-nat: {}", v.join(" "));
                }
            }
            _ => {}
        }
    }
    if details.is_empty() {
        out.push_str("(none)\n");
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_locals_and_settings_parse() {
        let (a, p, port) = endpoint("10.96.0.10:80/tcp").unwrap();
        assert_eq!((a.to_string(), p, port), ("10.96.0.10".into(), Some(6), 80));
        assert_eq!(endpoint("192.0.2.1/50").unwrap().1, Some(50));
        assert!(endpoint("10.0.0.1:80").is_err(), "a port needs a protocol");
        let l = local("10.1.1.2:8080@3").unwrap();
        assert_eq!((l.port, l.weight), (8080, 3));
        let s = settings("timeouts", &["udp=5".into()]).unwrap();
        assert_eq!(s.timeouts.unwrap().udp, 5);
        assert!(settings("ports", &["9-".into()]).is_err());
        assert!(filter(&["bogus".into(), "1".into()]).is_err());
    }
}
