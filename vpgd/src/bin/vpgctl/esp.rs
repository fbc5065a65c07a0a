//! `vpgctl esp …` (SAs, protect rules, the uplink's features) and `vpgctl show esp
//! sa|protect|summary`. Keys go in (`--key`, or `--key-file` so they stay out of the shell's
//! history and `ps`) and never come out: `show esp sa` prints the key id and a fingerprint.

use crate::{config, connect, sw_if, Cli};
use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use std::net::Ipv4Addr;
use vpg_api::esp::{
    EspCrypto, EspDirection, EspLifetime, EspMode, EspProtectAdd, EspProtectDetails, EspSaAdd,
    EspSaDetails, EspSummaryDetails,
};
use vpg_api::{ConfigItem, Details, Prefix, Reply, Request};

/// ESP commands.
#[derive(Subcommand)]
pub(crate) enum EspCmd {
    /// SAs: `esp sa add 11 --spi 0x2001 --dir out --key-file k1 --key-id 1`, `esp sa del 11`,
    /// `esp sa retire 11 --grace 30`.
    #[command(subcommand)]
    Sa(SaCmd),
    /// Protect rules: `esp protect add 1 --dst 192.168.1.2/32 --proto 17 --port 4789 --sa 11`,
    /// `esp protect add 2 --tunnel vx0 --sa 11 --sa 13`, `esp protect del 1`.
    #[command(subcommand)]
    Protect(ProtectCmd),
    /// Turns ESP on or off on an interface: `esp4-encrypt` on its output and `esp4-decrypt` on
    /// its input, in one transaction: `esp interface up0 on`.
    Interface {
        /// Interface name or index.
        interface: String,
        /// on or off.
        state: OnOff,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub(crate) enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Dir {
    In,
    Out,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Crypto {
    #[value(name = "aes-gcm-128")]
    AesGcm128,
    #[value(name = "aes-gcm-256")]
    AesGcm256,
}

/// SA commands.
#[derive(Subcommand)]
pub(crate) enum SaCmd {
    /// Add an SA.
    Add {
        /// SA id.
        id: u32,
        /// SPI (decimal or 0x hex).
        #[arg(long, value_parser = parse_u32)]
        spi: u32,
        /// Direction.
        #[arg(long)]
        dir: Dir,
        /// AEAD (the key's length must match: 20 or 36 bytes with the salt).
        #[arg(long, default_value = "aes-gcm-128")]
        crypto: Crypto,
        /// Key material in hex (key then 4-byte salt).
        #[arg(long, conflicts_with = "key_file")]
        key: Option<String>,
        /// A file holding the key material in hex.
        #[arg(long)]
        key_file: Option<std::path::PathBuf>,
        /// Key id (rotation generation).
        #[arg(long, default_value_t = 1)]
        key_id: u8,
        /// Tunnel mode from this address (default: transport mode).
        #[arg(long, requires = "tunnel_dst")]
        tunnel_src: Option<Ipv4Addr>,
        /// Tunnel mode to this address.
        #[arg(long, requires = "tunnel_src")]
        tunnel_dst: Option<Ipv4Addr>,
        /// Extended sequence numbers.
        #[arg(long)]
        esn: bool,
        /// Anti-replay window (packets).
        #[arg(long)]
        window: Option<u32>,
        /// Owner worker.
        #[arg(long)]
        worker: Option<u32>,
        /// Soft lifetime in seconds.
        #[arg(long)]
        soft_seconds: Option<u64>,
        /// Hard lifetime in seconds.
        #[arg(long)]
        hard_seconds: Option<u64>,
        /// Soft lifetime in packets.
        #[arg(long)]
        soft_packets: Option<u64>,
        /// Hard lifetime in packets.
        #[arg(long)]
        hard_packets: Option<u64>,
    },
    /// Delete an SA (not while a protect rule uses it).
    Del {
        /// SA id.
        id: u32,
    },
    /// Retire an SA: usable for `--grace` more seconds, then it stops.
    Retire {
        /// SA id.
        id: u32,
        /// Grace period in seconds.
        #[arg(long, default_value_t = 30)]
        grace: u64,
    },
}

/// Protect-rule commands.
#[derive(Subcommand)]
pub(crate) enum ProtectCmd {
    /// Add (or with --replace, replace) a rule.
    Add {
        /// Rule id.
        id: u32,
        /// Destination prefix.
        #[arg(long, conflicts_with = "tunnel")]
        dst: Option<Prefix>,
        /// A VXLAN tunnel interface (its underlay packets are protected).
        #[arg(long)]
        tunnel: Option<String>,
        /// IP protocol number.
        #[arg(long)]
        proto: Option<u8>,
        /// Destination port.
        #[arg(long)]
        port: Option<u16>,
        /// Outbound SA ids (repeat; worker w uses the w-th first). None: traffic is dropped
        /// until an SA is given (encryption required).
        #[arg(long = "sa")]
        sas: Vec<u32>,
        /// Replace an existing rule of this id.
        #[arg(long)]
        replace: bool,
    },
    /// Delete a rule.
    Del {
        /// Rule id.
        id: u32,
    },
}

fn parse_u32(s: &str) -> Result<u32, String> {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|e| e.to_string())
}

pub(crate) fn run(cli: &Cli, cmd: &EspCmd) -> anyhow::Result<()> {
    let mut c = connect(cli)?;
    match cmd {
        EspCmd::Sa(SaCmd::Add {
            id,
            spi,
            dir,
            crypto,
            key,
            key_file,
            key_id,
            tunnel_src,
            tunnel_dst,
            esn,
            window,
            worker,
            soft_seconds,
            hard_seconds,
            soft_packets,
            hard_packets,
        }) => {
            let key = match (key, key_file) {
                (Some(k), _) => k.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .with_context(|| format!("reading {}", f.display()))?
                    .trim()
                    .to_string(),
                (None, None) => bail!("esp sa add: --key or --key-file is needed"),
            };
            let lifetime = EspLifetime {
                soft_seconds: *soft_seconds,
                hard_seconds: *hard_seconds,
                soft_packets: *soft_packets,
                hard_packets: *hard_packets,
                ..EspLifetime::default()
            };
            let sa = EspSaAdd {
                sa_id: *id,
                spi: *spi,
                direction: match dir {
                    Dir::In => EspDirection::In,
                    Dir::Out => EspDirection::Out,
                },
                mode: if tunnel_src.is_some() {
                    EspMode::Tunnel
                } else {
                    EspMode::Transport
                },
                tunnel_src: *tunnel_src,
                tunnel_dst: *tunnel_dst,
                crypto: match crypto {
                    Crypto::AesGcm128 => EspCrypto::AesGcm128,
                    Crypto::AesGcm256 => EspCrypto::AesGcm256,
                },
                key,
                key_id: *key_id,
                esn: *esn,
                replay_window: *window,
                worker: *worker,
                lifetime: (lifetime != EspLifetime::default()).then_some(lifetime),
            };
            config(&mut c, ConfigItem::EspSaAdd(sa))
        }
        EspCmd::Sa(SaCmd::Del { id }) => config(&mut c, ConfigItem::EspSaDel { sa_id: *id }),
        EspCmd::Sa(SaCmd::Retire { id, grace }) => config(
            &mut c,
            ConfigItem::EspSaRetire {
                sa_id: *id,
                grace_s: *grace,
            },
        ),
        EspCmd::Protect(ProtectCmd::Add {
            id,
            dst,
            tunnel,
            proto,
            port,
            sas,
            replace,
        }) => {
            let tunnel = match tunnel {
                Some(t) => Some(sw_if(&mut c, t)?),
                None => None,
            };
            config(
                &mut c,
                ConfigItem::EspProtectAdd(EspProtectAdd {
                    rule_id: *id,
                    dst: *dst,
                    tunnel,
                    proto: *proto,
                    port: *port,
                    sas: sas.clone(),
                    replace: *replace,
                }),
            )
        }
        EspCmd::Protect(ProtectCmd::Del { id }) => {
            config(&mut c, ConfigItem::EspProtectDel { rule_id: *id })
        }
        EspCmd::Interface { interface, state } => {
            let sw_if = sw_if(&mut c, interface)?;
            let items = [
                ("ip4-output", vpg_esp_names::ENCRYPT),
                ("ip4-unicast", vpg_esp_names::DECRYPT),
            ]
            .into_iter()
            .map(|(arc, feature)| ConfigItem::feature(*state == OnOff::On, arc, feature, sw_if))
            .collect();
            match c.call(&Request::Transaction { items })? {
                Reply::Applied { .. } => Ok(()),
                r => bail!("unexpected reply {r:?}"),
            }
        }
    }
}

/// The node names (vpgctl speaks only the API; these are the features' public names).
mod vpg_esp_names {
    pub const ENCRYPT: &str = "esp4-encrypt";
    pub const DECRYPT: &str = "esp4-decrypt";
}

/// `show esp sa|protect|sequences|summary`.
pub(crate) fn show(cli: &Cli, table: Option<&str>) -> anyhow::Result<()> {
    let req = match table.unwrap_or("summary") {
        "sa" | "sas" => Request::DumpEspSas,
        "protect" => Request::DumpEspProtect,
        "sequences" => Request::DumpEspSequences,
        "summary" => Request::DumpEspSummary,
        t => bail!("show esp: unknown table '{t}' (sa, protect, sequences or summary)"),
    };
    let details = connect(cli)?.dump(&req)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&details)?);
        return Ok(());
    }
    let mut sas = Vec::new();
    let mut rules = Vec::new();
    let mut seqs = Vec::new();
    for d in &details {
        match d {
            Details::EspSa(s) => sas.push(s),
            Details::EspProtect(r) => rules.push(r),
            Details::EspSequence(q) => seqs.push(q),
            Details::EspSummary(s) => print!("{}", render_summary(s)),
            _ => {}
        }
    }
    match req {
        Request::DumpEspSas => print!("{}", render_sas(&sas)),
        Request::DumpEspProtect => print!("{}", render_rules(&rules)),
        Request::DumpEspSequences => print!("{}", render_sequences(&seqs)),
        _ => {}
    }
    Ok(())
}

fn render_sas(rows: &[&EspSaDetails]) -> String {
    use crate::show::{bytes, si};
    let line = |c: [&str; 15]| {
        format!(
            "{:>5} {:<10} {:<3} {:<33} {:<11} {:>3} {:<16} {:>2} {:<12} {:>9} {:>10} {:>7} {:>7} {:>7} {:>21}\n",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13], c[14]
        )
    };
    let mut out = line([
        "SA",
        "SPI",
        "Dir",
        "Mode",
        "Crypto",
        "Key",
        "Fingerprint",
        "W",
        "State",
        "Packets",
        "Bytes",
        "AuthErr",
        "Replays",
        "Drops",
        "Seq (reserved)",
    ]);
    for s in rows {
        let mode = match (s.tunnel_src, s.tunnel_dst) {
            (Some(a), Some(b)) => format!("tunnel {a} -> {b}"),
            _ => "transport".into(),
        };
        let state = match s.retire_in_s {
            Some(t) if s.state == "retiring" => format!("retiring {t}s"),
            _ => s.state.clone(),
        };
        let c = &s.counters;
        out += &line([
            &s.sa_id.to_string(),
            &format!("{:#010x}", s.spi),
            match s.direction {
                EspDirection::In => "in",
                EspDirection::Out => "out",
            },
            &mode,
            match s.crypto {
                EspCrypto::AesGcm128 => "aes-gcm-128",
                EspCrypto::AesGcm256 => "aes-gcm-256",
            },
            &s.key_id.to_string(),
            &s.fingerprint,
            &s.worker.to_string(),
            &state,
            &si(c.packets),
            &bytes(c.bytes),
            &si(c.auth_failures),
            &si(c.replays),
            &si(c.drops),
            &match s.seq_reserved {
                Some(r) => format!("{} ({r})", c.seq),
                None => c.seq.to_string(),
            },
        ]);
    }
    out
}

fn render_sequences(rows: &[&vpg_api::esp::EspSequenceDetails]) -> String {
    let line = |c: [&str; 5]| {
        format!(
            "{:<16} {:<3} {:>20}  {:<8} {:>6}\n",
            c[0], c[1], c[2], c[3], c[4]
        )
    };
    let mut out = line(["Fingerprint", "Dir", "Seq", "", "SA"]);
    for r in rows {
        let (dir, what) = match r.direction {
            EspDirection::Out => ("out", "reserved"),
            EspDirection::In => ("in", "accepted"),
        };
        out += &line([
            &r.fingerprint,
            dir,
            &r.seq.to_string(),
            what,
            &r.sa_id.map_or("-".to_string(), |i| i.to_string()),
        ]);
    }
    if rows.is_empty() {
        out += "(no key recorded, or no sequence file: see show esp summary)\n";
    }
    out
}

fn render_rules(rows: &[&EspProtectDetails]) -> String {
    use crate::show::si;
    let line = |c: [&str; 6]| {
        format!(
            "{:>5} {:<20} {:<22} {:<16} {:>10} {:>10}\n",
            c[0], c[1], c[2], c[3], c[4], c[5]
        )
    };
    let mut out = line([
        "Rule",
        "Destination",
        "Selector",
        "SAs",
        "Protected",
        "No-SA drop",
    ]);
    for r in rows {
        let sel = match (r.tunnel, r.proto, r.port) {
            (Some(t), _, _) => format!("vxlan if {t}"),
            (None, Some(p), Some(port)) => format!("proto {p} port {port}"),
            (None, Some(p), None) => format!("proto {p}"),
            _ => "any".into(),
        };
        let sas = if r.sas.is_empty() {
            "none (required)".to_string()
        } else {
            r.sas
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        out += &line([
            &r.rule_id.to_string(),
            &r.dst.to_string(),
            &sel,
            &sas,
            &si(r.protected),
            &si(r.no_sa_drops),
        ]);
    }
    out
}

fn render_summary(s: &EspSummaryDetails) -> String {
    let ifs = |v: &[u32]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        }
    };
    format!(
        "SAs: {} in, {} out; protect rules: {}; backend: {}\n\
         encrypt on interfaces: {}; decrypt on interfaces: {}\n\
         encrypted: {}  decrypted: {}\n\
         would have left in clear (dropped): {}\n\
         auth failures: {}  replays: {}\n\
         sequence file: {}\n",
        s.sas_in,
        s.sas_out,
        s.rules,
        s.backend,
        ifs(&s.encrypt_interfaces),
        ifs(&s.decrypt_interfaces),
        s.encrypted,
        s.decrypted,
        s.would_have_left_in_clear,
        s.auth_failures,
        s.replays,
        match &s.sequences {
            Some(q) => format!(
                "{} ({} outbound keys recorded; dropped, not yet reserved: {})",
                q.file, q.keys, q.unreserved_drops
            ),
            None => "none (a restarted vpgd cannot take back an outbound key it used)".into(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_show_fingerprints_and_totals() {
        let sa = EspSaDetails {
            sa_id: 11,
            spi: 0x2001,
            direction: EspDirection::Out,
            mode: EspMode::Transport,
            tunnel_src: None,
            tunnel_dst: None,
            crypto: EspCrypto::AesGcm128,
            key_id: 2,
            fingerprint: "0011223344556677".into(),
            esn: false,
            replay_window: 64,
            worker: 1,
            backend: "auto".into(),
            state: "retiring".into(),
            age_s: 5,
            retire_in_s: Some(25),
            lifetime: EspLifetime::default(),
            counters: vpg_api::esp::EspSaCounters {
                packets: 10,
                bytes: 2_000_000,
                seq: 4_194_314,
                ..Default::default()
            },
            seq_reserved: Some(8_388_608),
        };
        let t = render_sas(&[&sa]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].ends_with("4194314 (8388608)"), "{t}");
        assert!(lines[1].contains("0x00002001") && lines[1].contains("0011223344556677"));
        assert!(
            lines[1].contains("retiring 25s") && lines[1].contains("2.0 MB"),
            "{t}"
        );
        let r = EspProtectDetails {
            rule_id: 1,
            dst: "192.168.1.2/32".parse().unwrap(),
            tunnel: None,
            proto: Some(17),
            port: Some(4789),
            sas: vec![],
            protected: 0,
            no_sa_drops: 7,
        };
        let t = render_rules(&[&r]);
        assert!(
            t.contains("none (required)") && t.contains("proto 17 port 4789"),
            "{t}"
        );
        let q = vpg_api::esp::EspSequenceDetails {
            fingerprint: "0011223344556677".into(),
            direction: EspDirection::Out,
            seq: 8_388_608,
            sa_id: None,
        };
        let t = render_sequences(&[&q]);
        assert_eq!(
            t.lines()
                .nth(1)
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["0011223344556677", "out", "8388608", "reserved", "-"]
        );
    }
}
