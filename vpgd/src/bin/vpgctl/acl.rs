//! `vpgctl acl …` and `vpgctl show acl …`: ACLs, interface lists, sessions, classifiers, and
//! `acl match`, which names the ACL and rule that decide a packet.

use crate::{config, connect, sw_if, Cli};
use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use std::net::Ipv4Addr;
use vpg_api::acl::{AclMatchQuery, AclRule, Direction, Range, SessionFilter};
use vpg_api::{ConfigItem, Details, Prefix, Reply, Request};

/// ACL commands.
#[derive(Subcommand)]
pub(crate) enum AclCmd {
    /// Add an ACL or replace its rules: `acl add 10 --tag web --rule "permit+reflect dst
    /// 10.1.0.0/16 proto tcp dport 80" --rule "deny"`.
    Add {
        /// ACL id.
        id: u32,
        /// Name.
        #[arg(long, default_value = "")]
        tag: String,
        /// A rule: `ACTION [src PREFIX] [dst PREFIX] [proto tcp|udp|icmp|sctp|N] [sport A[-B]]
        /// [dport A[-B]] [flags VALUE/MASK]`; repeat in order, first match wins.
        #[arg(long = "rule")]
        rules: Vec<String>,
    },
    /// Delete an ACL no interface uses.
    Del {
        /// ACL id.
        id: u32,
    },
    /// Set an interface's ACL list: `acl set up0 out 10 20` (no ids removes them).
    Set {
        /// Interface name or index.
        interface: String,
        /// `in` or `out`.
        direction: Dir,
        /// ACL ids, in order.
        ids: Vec<u32>,
    },
    /// Which ACL and rule decide a packet: `acl match up0 out tcp 10.0.1.2:4000 10.0.2.2:80`.
    Match {
        /// Interface name or index.
        interface: String,
        /// `in` or `out`.
        direction: Dir,
        /// Protocol (`tcp`, `udp`, `icmp`, `sctp` or a number).
        proto: String,
        /// Source address, with `:port` (ICMP: `:type`).
        src: String,
        /// Destination address, with `:port` (ICMP: `:code`).
        dst: String,
        /// TCP flags (default SYN, 0x02).
        #[arg(long, default_value_t = 2)]
        flags: u8,
    },
    /// Delete sessions (all, or those of one interface).
    ClearSessions {
        /// Interface name or index.
        #[arg(long)]
        interface: Option<String>,
    },
    /// Zero the hit counters.
    ClearCounters,
}

/// A direction on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Dir {
    /// Input.
    In,
    /// Output.
    Out,
}

impl Dir {
    fn api(self) -> Direction {
        match self {
            Dir::In => Direction::Input,
            Dir::Out => Direction::Output,
        }
    }
}

fn proto(s: &str) -> anyhow::Result<u8> {
    Ok(match s {
        "any" => 0,
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        n => n
            .parse()
            .with_context(|| format!("'{n}' is not a protocol name or number"))?,
    })
}

fn range(s: &str) -> anyhow::Result<Range> {
    let p = |v: &str| {
        v.parse::<u16>()
            .with_context(|| format!("'{v}' is not a port (0-65535)"))
    };
    Ok(match s.split_once('-') {
        Some((a, b)) => Range {
            lo: p(a)?,
            hi: p(b)?,
        },
        None => {
            let v = p(s)?;
            Range { lo: v, hi: v }
        }
    })
}

/// Parses the rule syntax of `acl add --rule`.
pub(crate) fn parse_rule(s: &str) -> anyhow::Result<AclRule> {
    let mut w = s.split_whitespace();
    let action = w.next().context("empty rule")?.to_string();
    let any = Prefix {
        addr: Ipv4Addr::UNSPECIFIED,
        len: 0,
    };
    let mut r = AclRule {
        action,
        src: any,
        dst: any,
        proto: 0,
        sport: Range::default(),
        dport: Range::default(),
        tcp_flags_value: 0,
        tcp_flags_mask: 0,
    };
    while let Some(k) = w.next() {
        let v = w
            .next()
            .with_context(|| format!("rule '{s}': '{k}' needs a value"))?;
        match k {
            "src" => r.src = v.parse().map_err(anyhow::Error::msg)?,
            "dst" => r.dst = v.parse().map_err(anyhow::Error::msg)?,
            "proto" => r.proto = proto(v)?,
            "sport" | "type" => r.sport = range(v)?,
            "dport" | "code" => r.dport = range(v)?,
            "flags" => {
                let (a, b) = v.split_once('/').context("flags are VALUE/MASK")?;
                let h = |x: &str| {
                    u8::from_str_radix(x.trim_start_matches("0x"), 16)
                        .with_context(|| format!("'{x}' is not a hex byte"))
                };
                r.tcp_flags_value = h(a)?;
                r.tcp_flags_mask = h(b)?;
            }
            _ => bail!("rule '{s}': unknown word '{k}' (src, dst, proto, sport, dport, flags)"),
        }
    }
    Ok(r)
}

fn endpoint(s: &str) -> anyhow::Result<(Ipv4Addr, u16)> {
    let (a, p) = s.split_once(':').unwrap_or((s, "0"));
    Ok((
        a.parse()
            .with_context(|| format!("'{a}' is not an IPv4 address"))?,
        p.parse().with_context(|| format!("'{p}' is not a port"))?,
    ))
}

/// Runs an `acl` subcommand.
pub(crate) fn run(cli: &Cli, cmd: &AclCmd) -> anyhow::Result<()> {
    let mut c = connect(cli)?;
    match cmd {
        AclCmd::Add { id, tag, rules } => {
            let rules = rules
                .iter()
                .map(|r| parse_rule(r))
                .collect::<anyhow::Result<Vec<_>>>()?;
            config(
                &mut c,
                ConfigItem::AclAddReplace {
                    acl_id: *id,
                    tag: tag.clone(),
                    rules,
                },
            )
        }
        AclCmd::Del { id } => config(&mut c, ConfigItem::AclDelete { acl_id: *id }),
        AclCmd::Set {
            interface,
            direction,
            ids,
        } => {
            let sw_if = sw_if(&mut c, interface)?;
            config(
                &mut c,
                ConfigItem::AclSetInterface {
                    sw_if,
                    direction: direction.api(),
                    acls: ids.clone(),
                },
            )
        }
        AclCmd::Match {
            interface,
            direction,
            proto: p,
            src,
            dst,
            flags,
        } => {
            let sw_if = sw_if(&mut c, interface)?;
            let (src, sport) = endpoint(src)?;
            let (dst, dport) = endpoint(dst)?;
            let q = AclMatchQuery {
                sw_if,
                direction: direction.api(),
                proto: proto(p)?,
                src,
                sport,
                dst,
                dport,
                tcp_flags: *flags,
            };
            let details = c.dump(&Request::AclMatch(q))?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&details)?);
                return Ok(());
            }
            for d in details {
                if let Details::AclMatch(m) = d {
                    println!("{}", m.action);
                    if let (Some(id), Some(rule), Some(text)) = (m.acl_id, m.rule_index, &m.rule) {
                        println!(
                            "  acl {id} ({}) rule {rule}: {text}",
                            m.tag.unwrap_or_default()
                        );
                    }
                    println!("  why: {}", m.reason);
                }
            }
            Ok(())
        }
        AclCmd::ClearSessions { interface } => {
            let sw_if = match interface {
                Some(i) => Some(sw_if(&mut c, i)?),
                None => None,
            };
            match c.call(&Request::ClearAclSessions {
                filter: SessionFilter {
                    sw_if,
                    ..Default::default()
                },
            })? {
                Reply::Ok { .. } => Ok(()),
                r => bail!("unexpected reply {r:?}"),
            }
        }
        AclCmd::ClearCounters => {
            c.call(&Request::ClearAclCounters)?;
            Ok(())
        }
    }
}

fn rule_text(r: &AclRule) -> String {
    let mut s = format!(
        "{:<15} {:<18} {:<18}",
        r.action,
        r.src.to_string(),
        r.dst.to_string()
    );
    s += &match r.proto {
        0 => " any".to_string(),
        1 => " icmp".into(),
        6 => " tcp".into(),
        17 => " udp".into(),
        132 => " sctp".into(),
        p => format!(" proto {p}"),
    };
    let rg = |x: &Range| {
        if x.lo == x.hi {
            x.lo.to_string()
        } else {
            format!("{}-{}", x.lo, x.hi)
        }
    };
    if r.sport != Range::default() {
        s += &format!(" sport {}", rg(&r.sport));
    }
    if r.dport != Range::default() {
        s += &format!(" dport {}", rg(&r.dport));
    }
    if r.tcp_flags_mask != 0 {
        s += &format!(
            " flags 0x{:02x}/0x{:02x}",
            r.tcp_flags_value, r.tcp_flags_mask
        );
    }
    s
}

/// `show acl [ID | interfaces | sessions | classifier]`.
pub(crate) fn show(cli: &Cli, args: &[String]) -> anyhow::Result<()> {
    let mut c = connect(cli)?;
    let req = match args.first().map(String::as_str) {
        None => Request::DumpAcls { acl_id: None },
        Some("interfaces") => Request::DumpAclInterfaces,
        Some("sessions") => {
            let mut f = SessionFilter::default();
            let mut w = args[1..].iter();
            while let Some(k) = w.next() {
                let v = w.next().with_context(|| format!("'{k}' needs a value"))?;
                match k.as_str() {
                    "interface" => f.sw_if = Some(sw_if(&mut c, v)?),
                    "addr" => f.addr = Some(v.parse().context("addr")?),
                    "port" => f.port = Some(v.parse().context("port")?),
                    "proto" => f.proto = Some(proto(v)?),
                    _ => bail!("show acl sessions [interface X] [addr A] [port P] [proto P]"),
                }
            }
            Request::DumpAclSessions { filter: f }
        }
        Some("classifier") => Request::DumpAclClassifiers,
        Some(id) => Request::DumpAcls {
            acl_id: Some(id.parse().with_context(|| {
                format!("'{id}' is not an ACL id, interfaces, sessions or classifier")
            })?),
        },
    };
    let details = c.dump(&req)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&details)?);
        return Ok(());
    }
    let mut out = String::new();
    let mut n = 0;
    for d in &details {
        n += 1;
        match d {
            Details::Acl(a) => {
                let users: Vec<String> = a
                    .used_by
                    .iter()
                    .map(|u| format!("{} {}", u.sw_if, u.direction.as_str()))
                    .collect();
                let total: u64 = a.hits.iter().sum();
                out += &format!(
                    "acl {} '{}': {} rules, {} hits, used by [{}]\n",
                    a.acl_id,
                    a.tag,
                    a.rules.len(),
                    total,
                    users.join(", ")
                );
                for (i, (r, h)) in a.rules.iter().zip(&a.hits).enumerate() {
                    out += &format!("  {i:>5} {:>10}  {}\n", h, rule_text(r));
                }
            }
            Details::AclInterface(i) => {
                out += &format!(
                    "interface {:>4}  input {:?}  output {:?}\n",
                    i.sw_if, i.input, i.output
                );
            }
            Details::AclSession(s) => {
                out += &format!(
                    "worker {} if {:>3} proto {:>3} {}:{} -> {}:{} {:<11} packets {:>8} idle {:>6}s expires in {:>6}s\n",
                    s.worker, s.sw_if, s.proto, s.src, s.sport, s.dst, s.dport, s.state, s.packets, s.idle_s, s.expires_in_s
                );
            }
            Details::AclClassifier(k) => {
                let users: Vec<String> = k
                    .used_by
                    .iter()
                    .map(|u| format!("{} {}", u.sw_if, u.direction.as_str()))
                    .collect();
                out += &format!(
                    "acls {:?} on [{}]: {} rules in {} words; address intervals src {} dst {}; classes src {} dst {} sport {} dport {} proto {}; l4 {}; {:.1} KiB\n",
                    k.acls,
                    users.join(", "),
                    k.rules,
                    k.words,
                    k.addr_intervals[0],
                    k.addr_intervals[1],
                    k.classes[0],
                    k.classes[1],
                    k.classes[2],
                    k.classes[3],
                    k.classes[4],
                    k.l4_classes.map_or("not crossed".into(), |c| format!("{c} crossed classes")),
                    k.bytes as f64 / 1024.0
                );
            }
            _ => n -= 1,
        }
    }
    if matches!(req, Request::DumpAclSessions { .. }) {
        out += &format!("{n} sessions\n");
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_syntax() {
        let r = parse_rule("permit+reflect src 10.1.0.0/16 proto tcp dport 80-90 flags 0x02/0x12")
            .unwrap();
        assert_eq!(r.action, "permit+reflect");
        assert_eq!(r.src.to_string(), "10.1.0.0/16");
        assert_eq!((r.proto, r.dport.lo, r.dport.hi), (6, 80, 90));
        assert_eq!((r.tcp_flags_value, r.tcp_flags_mask), (2, 0x12));
        assert!(parse_rule("deny bogus 1").is_err());
        assert!(parse_rule("deny dport").is_err());
        assert_eq!(parse_rule("deny").unwrap().dport, Range::default());
    }
}
