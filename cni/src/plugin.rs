//! The CNI commands: ADD, DEL, CHECK, STATUS, GC and VERSION.

use crate::config::{self, Attachment, NetConf, Version, LATEST, SUPPORTED_VERSIONS};
use crate::env::{Command, Env};
use crate::error::{CniError, Code, Result};
use crate::ipam::{AllocError, Store};
use crate::link::{LinkInfo, Tools};
use crate::netns::{self, NsError};
use crate::state::{self, Lock, LockError, PodRecord};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long an invocation waits for another to release the data directory before answering
/// "try again later" (code 11). Holders keep it for milliseconds.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The pod address is a /32: see docs/cni.md ("Addressing").
const POD_PREFIX_LEN: u8 = 32;

/// What the plugin prints and how it exits.
#[derive(Debug)]
pub struct Reply {
    /// What goes to stdout: a result, the VERSION answer, an error object, or nothing.
    pub stdout: String,
    /// The error, when the invocation failed (exit status 1).
    pub error: Option<CniError>,
}

/// Runs one invocation: `get` reads the environment, `stdin` is the network configuration.
pub fn run(get: &dyn Fn(&str) -> Option<String>, stdin: &[u8]) -> Reply {
    match dispatch(get, stdin) {
        Ok(stdout) => Reply {
            stdout,
            error: None,
        },
        Err(e) => {
            // Answer in the runtime's version when its configuration told us one we speak.
            let v =
                config::peek_version(stdin).map_or_else(|| LATEST.to_string(), |v| v.to_string());
            Reply {
                stdout: e.to_json(&v),
                error: Some(e),
            }
        }
    }
}

fn version_reply(stdin: &[u8]) -> String {
    // The input is only the runtime's version: VERSION is a probe and answers regardless.
    let v = config::peek_version(stdin).map_or_else(|| LATEST.to_string(), |v| v.to_string());
    json!({"cniVersion": v, "supportedVersions": SUPPORTED_VERSIONS}).to_string()
}

/// The configuration, refused when its version predates command `what`.
fn conf_since(stdin: &[u8], min: Version, what: &str) -> Result<NetConf> {
    let conf = NetConf::parse(stdin)?;
    if conf.version < min {
        return Err(CniError::new(
            Code::IncompatibleVersion,
            format!(
                "{what} needs cniVersion {min} or later; the configuration says {}",
                conf.version
            ),
        ));
    }
    Ok(conf)
}

fn dispatch(get: &dyn Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<String> {
    let any = Version(0, 0, 0);
    match Command::from_env(get)? {
        Command::Version => Ok(version_reply(stdin)),
        Command::Add => {
            let conf = conf_since(stdin, any, "ADD")?;
            add(&conf, &Env::from_env(get, true)?)
        }
        Command::Del => {
            let conf = conf_since(stdin, any, "DEL")?;
            del(&conf, &Env::from_env(get, false)?).map(|()| String::new())
        }
        Command::Check => {
            let conf = conf_since(stdin, Version(0, 4, 0), "CHECK")?;
            check(&conf, &Env::from_env(get, true)?).map(|()| String::new())
        }
        Command::Status => {
            status(&conf_since(stdin, Version(1, 1, 0), "STATUS")?).map(|()| String::new())
        }
        Command::Gc => gc(&conf_since(stdin, Version(1, 1, 0), "GC")?).map(|()| String::new()),
    }
}

fn attachment(env: &Env) -> Attachment {
    Attachment {
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
    }
}

fn tools() -> Result<Tools> {
    Tools::find().map_err(|e| CniError::new(Code::Link, e))
}

fn lock(conf: &NetConf) -> Result<Lock> {
    Lock::acquire(&conf.data_dir, LOCK_TIMEOUT).map_err(|e| match e {
        LockError::Timeout(t) => CniError::new(
            Code::TryAgainLater,
            format!(
                "dataDir {}: another invocation held the lock for over {}s",
                conf.data_dir.display(),
                t.as_secs()
            ),
        ),
        LockError::Io(e) => io_err(&conf.data_dir, "lock", e),
    })
}

fn io_err(dir: &Path, what: &str, e: std::io::Error) -> CniError {
    CniError::with_details(
        Code::Io,
        format!("dataDir {}: {what} failed", dir.display()),
        e.to_string(),
    )
}

fn link_err(msg: impl Into<String>, details: String) -> CniError {
    CniError::with_details(Code::Link, msg, details)
}

/// Maps a failure to enter the pod's namespace: gone is code 3, not a namespace code 4.
fn pod_ns_err(e: NsError) -> CniError {
    match e {
        NsError::Missing(_) => CniError::new(Code::UnknownContainer, format!("CNI_NETNS: {e}")),
        NsError::NotNetns(..) => CniError::new(Code::InvalidEnv, format!("CNI_NETNS: {e}")),
        NsError::Io(..) => CniError::new(Code::Io, format!("CNI_NETNS: {e}")),
    }
}

fn host_ns_err(e: NsError) -> CniError {
    CniError::new(Code::InvalidConfig, format!("hostNetns: {e}"))
}

fn ns_str(p: Option<&Path>) -> String {
    p.map_or_else(
        || "the plugin's namespace".into(),
        |p| p.display().to_string(),
    )
}

/// ADD: allocate an address, create and configure the veth, write the pod record, print the
/// result. Whatever fails after the allocation is undone before the error is returned.
fn add(conf: &NetConf, env: &Env) -> Result<String> {
    let pod_ns = env.netns.as_deref().unwrap_or(Path::new(""));
    let host_ns = conf.host_netns.as_deref();
    // Both namespaces must exist before anything is allocated.
    netns::open(pod_ns).map_err(pod_ns_err)?;
    if let Some(h) = host_ns {
        netns::open(h).map_err(host_ns_err)?;
    }
    let tools = tools()?;
    let att = attachment(env);
    let host_if = state::host_ifname(&att);

    // The spec: ADD must fail if the interface already exists in the container.
    let pod_has = netns::run_in(Some(pod_ns), || tools.link(&env.ifname))
        .map_err(pod_ns_err)?
        .map_err(|e| link_err("CNI_NETNS: reading interfaces failed", e))?;
    if pod_has.is_some() {
        return Err(CniError::new(
            Code::AlreadyAttached,
            format!(
                "CNI_IFNAME: {} already exists in {}",
                env.ifname,
                pod_ns.display()
            ),
        ));
    }
    let host_has = netns::run_in(host_ns, || tools.link(&host_if))
        .map_err(host_ns_err)?
        .map_err(|e| link_err("hostNetns: reading interfaces failed", e))?;
    if host_has.is_some() {
        return Err(CniError::new(
            Code::AlreadyAttached,
            format!(
                "host interface {host_if} of {}/{} already exists in {} (an ADD without DEL?)",
                att.container_id,
                att.ifname,
                ns_str(host_ns)
            ),
        ));
    }

    let ip = {
        let _l = lock(conf)?;
        if state::read_record(&conf.data_dir, &att)
            .map_err(|e| io_err(&conf.data_dir, "reading the pod record", e))?
            .is_some()
        {
            return Err(already(&att, "it has a pod record"));
        }
        let store = Store::open(&conf.data_dir, &conf.name)
            .map_err(|e| io_err(&conf.data_dir, "opening the IPAM store", e))?;
        store
            .allocate(conf.pod_cidr, conf.gateway, &att)
            .map_err(|e| match e {
                AllocError::Exhausted => CniError::new(
                    Code::IpamExhausted,
                    format!(
                        "podCIDR {}: no free address (network {} is full)",
                        conf.pod_cidr, conf.name
                    ),
                ),
                AllocError::Duplicate(ip) => already(&att, &format!("it holds {ip}")),
                AllocError::Io(e) => io_err(&conf.data_dir, "allocating an address", e),
            })?
    };

    let done = plumb(conf, env, &tools, &host_if, ip).and_then(|(pod, host)| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let rec = PodRecord {
            version: 1,
            network: conf.name.clone(),
            container_id: att.container_id.clone(),
            pod_namespace: env.pod.namespace.clone(),
            pod_name: env.pod.name.clone(),
            pod_uid: env.pod.uid.clone(),
            netns: pod_ns.display().to_string(),
            ifname: att.ifname.clone(),
            mac: pod.mac.clone(),
            host_ifname: host_if.clone(),
            host_mac: host.mac.clone(),
            host_netns: host_ns.map(|p| p.display().to_string()),
            ip: ip.to_string(),
            prefix_len: POD_PREFIX_LEN,
            pod_cidr: conf.pod_cidr.to_string(),
            gateway: conf.gateway.to_string(),
            mtu: conf.mtu,
            created: state::rfc3339(now),
        };
        let _l = lock(conf)?;
        state::write_record(&conf.data_dir, &rec)
            .map_err(|e| io_err(&conf.data_dir, "writing the pod record", e))?;
        Ok(add_result(conf, env, ip, &pod, &host))
    });
    match done {
        Ok(v) => Ok(v.to_string()),
        Err(e) => {
            // Undo: the host end takes the pod end with it; then the address goes back.
            let _ = netns::run_in(host_ns, || tools.delete_link(&host_if));
            if let Ok(_l) = lock(conf) {
                if let Ok(s) = Store::open(&conf.data_dir, &conf.name) {
                    let _ = s.release(&att);
                }
            }
            Err(e)
        }
    }
}

fn already(att: &Attachment, why: &str) -> CniError {
    CniError::new(
        Code::AlreadyAttached,
        format!(
            "container {} interface {} is already attached ({why}); DEL it first",
            att.container_id, att.ifname
        ),
    )
}

/// Creates the veth with its pod end directly inside the pod's namespace (nothing named after
/// the pod ever appears in the host namespace, so no rename races), then configures each end.
fn plumb(
    conf: &NetConf,
    env: &Env,
    tools: &Tools,
    host_if: &str,
    ip: Ipv4Addr,
) -> Result<(LinkInfo, LinkInfo)> {
    let pod_ns = env.netns.as_deref().unwrap_or(Path::new(""));
    let host_ns = conf.host_netns.as_deref();
    let mtu = conf.mtu.to_string();
    let ifname = env.ifname.as_str();
    let gw = conf.gateway;
    netns::run_in(host_ns, || -> Result<()> {
        let pod_ns = pod_ns.to_string_lossy();
        tools
            .ip(&[
                "link", "add", host_if, "mtu", &mtu, "type", "veth", "peer", "name", ifname, "mtu",
                &mtu, "netns", &pod_ns,
            ])
            .map_err(|e| link_err("creating the veth pair failed", e))?;
        // No IPv6 on the host end: vpg does not route it, and router solicitations from a
        // link-local address would only be counted as drops. Absent when IPv6 is off.
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{host_if}/disable_ipv6"),
            "1",
        );
        tools
            .ip_batch(&[format!("link set dev {host_if} up")])
            .map_err(|e| link_err("bringing the host end up failed", e))
    })
    .map_err(host_ns_err)??;
    let pod = netns::run_in(Some(pod_ns), || -> Result<LinkInfo> {
        // Offload off before the link is up, so no super-frame ever reaches vpg.
        tools
            .offload_off(ifname)
            .map_err(|e| link_err("turning TSO/GSO off on the pod interface failed", e))?;
        tools
            .ip_batch(&[
                format!("link set dev {ifname} up"),
                format!("addr add {ip}/{POD_PREFIX_LEN} dev {ifname}"),
                format!("route add {gw}/32 dev {ifname} scope link"),
                format!("route add default via {gw} dev {ifname}"),
            ])
            .map_err(|e| link_err("configuring the pod interface failed", e))?;
        tools
            .link(ifname)
            .map_err(|e| link_err("reading the pod interface failed", e))?
            .ok_or_else(|| CniError::new(Code::Link, format!("{ifname} vanished from the pod")))
    })
    .map_err(pod_ns_err)??;
    let host = netns::run_in(host_ns, || {
        tools
            .link(host_if)
            .map_err(|e| link_err("reading the host end failed", e))?
            .ok_or_else(|| CniError::new(Code::Link, format!("{host_if} vanished")))
    })
    .map_err(host_ns_err)??;
    Ok((pod, host))
}

/// The ADD result in the configuration's version: the host end and the pod interface, the /32
/// address with the gateway, and the default route. Given a `prevResult` (a plugin before us in
/// a chain), ours is appended to it.
fn add_result(conf: &NetConf, env: &Env, ip: Ipv4Addr, pod: &LinkInfo, host: &LinkInfo) -> Value {
    let v = conf.version;
    let gw = conf.gateway.to_string();
    let prev = conf.prev_result.as_ref();
    let list = |k: &str| -> Vec<Value> {
        prev.and_then(|p| p.get(k))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (mut ifs, mut ips, mut routes) = (list("interfaces"), list("ips"), list("routes"));
    let base = ifs.len();
    let mut host_if = json!({"name": host.name, "mac": host.mac});
    let mut pod_if = json!({"name": pod.name, "mac": pod.mac,
        "sandbox": env.netns.as_deref().map(|p| p.display().to_string())});
    if v >= Version(1, 1, 0) {
        host_if["mtu"] = json!(host.mtu);
        pod_if["mtu"] = json!(pod.mtu);
    }
    ifs.push(host_if);
    ifs.push(pod_if);
    let mut addr =
        json!({"address": format!("{ip}/{POD_PREFIX_LEN}"), "gateway": gw, "interface": base + 1});
    if v < Version(1, 0, 0) {
        addr["version"] = json!("4");
    }
    ips.push(addr);
    routes.push(json!({"dst": "0.0.0.0/0", "gw": gw}));
    if v >= Version(1, 1, 0) {
        // The on-link route to the gateway that makes the default route usable with a /32.
        routes.push(json!({"dst": format!("{gw}/32"), "scope": 253}));
    }
    let dns = prev
        .and_then(|p| p.get("dns"))
        .cloned()
        .unwrap_or_else(|| json!({}));
    json!({
        "cniVersion": v.to_string(),
        "interfaces": ifs,
        "ips": ips,
        "routes": routes,
        "dns": dns,
    })
}

/// DEL: remove the veth, free the address, remove the record. Everything already gone is fine
/// (DEL is idempotent); a failure to remove an interface that is there is reported after the
/// rest has been cleaned, so the runtime's retry has less to do.
fn del(conf: &NetConf, env: &Env) -> Result<()> {
    let att = attachment(env);
    // The record says where ADD put the host end, even if the configuration changed since.
    let rec = state::read_record(&conf.data_dir, &att).ok().flatten();
    let host_if = rec
        .as_ref()
        .map_or_else(|| state::host_ifname(&att), |r| r.host_ifname.clone());
    let host_ns = match rec.as_ref() {
        Some(r) => r.host_netns.as_deref().map(Path::new),
        None => conf.host_netns.as_deref(),
    };
    let mut failures = Vec::new();
    match tools() {
        Err(e) => failures.push(e.msg),
        Ok(tools) => {
            match netns::run_in(host_ns, || tools.delete_link(&host_if)) {
                Ok(Ok(_)) | Err(NsError::Missing(_)) => {}
                Ok(Err(e)) => failures.push(e),
                Err(e) => failures.push(format!("hostNetns: {e}")),
            }
            // Normally gone with its peer; remains only if the host end was elsewhere.
            if let Some(p) = env.netns.as_deref() {
                match netns::run_in(Some(p), || tools.delete_link(&env.ifname)) {
                    Ok(Ok(_)) | Err(NsError::Missing(_)) | Err(NsError::NotNetns(..)) => {}
                    Ok(Err(e)) => failures.push(e),
                    Err(e) => failures.push(format!("CNI_NETNS: {e}")),
                }
            }
        }
    }
    {
        let _l = lock(conf)?;
        let store = Store::open(&conf.data_dir, &conf.name)
            .map_err(|e| io_err(&conf.data_dir, "opening the IPAM store", e))?;
        store
            .release(&att)
            .map_err(|e| io_err(&conf.data_dir, "releasing the address", e))?;
        state::remove_record(&conf.data_dir, &att)
            .map_err(|e| io_err(&conf.data_dir, "removing the pod record", e))?;
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CniError::with_details(
            Code::Link,
            "removing the interfaces failed (address and record were released)",
            failures.join("; "),
        ))
    }
}

/// The pod interface and address `prevResult` lists for this attachment.
struct Expected {
    mac: Option<String>,
    addrs: Vec<(Ipv4Addr, u8)>,
    routes: Vec<(config::Cidr, Option<Ipv4Addr>)>,
}

fn expected(prev: &Value, env: &Env) -> Result<Expected> {
    let netns = env.netns.as_deref().map(|p| p.display().to_string());
    let bad = |m: String| CniError::new(Code::InvalidConfig, format!("prevResult: {m}"));
    let ifs = prev
        .get("interfaces")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no interfaces list".into()))?;
    let idx = ifs
        .iter()
        .position(|i| {
            i.get("name").and_then(Value::as_str) == Some(env.ifname.as_str())
                && i.get("sandbox").and_then(Value::as_str) == netns.as_deref()
        })
        .ok_or_else(|| {
            bad(format!(
                "no interface {} in {}",
                env.ifname,
                ns_str(env.netns.as_deref())
            ))
        })?;
    let mac = ifs[idx]
        .get("mac")
        .and_then(Value::as_str)
        .map(String::from);
    let mut addrs = Vec::new();
    for a in prev
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if a.get("interface").and_then(Value::as_u64) != Some(idx as u64) {
            continue;
        }
        let s = a.get("address").and_then(Value::as_str).unwrap_or_default();
        let c = s
            .split_once('/')
            .and_then(|(ip, l)| Some((ip.parse().ok()?, l.parse().ok().filter(|l| *l <= 32)?)))
            .ok_or_else(|| bad(format!("ips: '{s}' is not an IPv4 address with prefix")))?;
        addrs.push(c);
    }
    let mut routes = Vec::new();
    for r in prev
        .get("routes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let d = r.get("dst").and_then(Value::as_str).unwrap_or_default();
        let dst = config::Cidr::parse(d).map_err(|e| bad(format!("routes: {e}")))?;
        let gw = match r.get("gw").and_then(Value::as_str) {
            None => None,
            Some(g) => Some(g.parse().map_err(|_| bad(format!("routes: gw '{g}'")))?),
        };
        routes.push((dst, gw));
    }
    Ok(Expected { mac, addrs, routes })
}

/// CHECK: the pod interface, its address and routes, the host end, the IPAM entry and the
/// record all still say what ADD made. Every difference is listed in one error.
fn check(conf: &NetConf, env: &Env) -> Result<()> {
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            Code::InvalidConfig,
            "prevResult: missing (CHECK needs the result of the ADD)",
        )
    })?;
    let pod_ns = env.netns.as_deref().unwrap_or(Path::new(""));
    netns::open(pod_ns).map_err(pod_ns_err)?;
    let exp = expected(prev, env)?;
    let tools = tools()?;
    let att = attachment(env);
    let ifname = env.ifname.as_str();
    let gw = conf.gateway;
    let mut bad: Vec<String> = Vec::new();

    let rec = state::read_record(&conf.data_dir, &att)
        .map_err(|e| io_err(&conf.data_dir, "reading the pod record", e))?;
    let (pod, routes, offload_off) = netns::run_in(Some(pod_ns), || {
        let link = tools.link(ifname)?;
        let routes = tools.routes()?;
        let off = match &link {
            Some(_) => tools.offload_is_off(ifname)?,
            None => true,
        };
        Ok::<_, String>((link, routes, off))
    })
    .map_err(pod_ns_err)?
    .map_err(|e| link_err("reading the pod's interfaces failed", e))?;
    match &pod {
        None => bad.push(format!("{ifname} is missing from {}", pod_ns.display())),
        Some(l) => {
            if let Some(m) = &exp.mac {
                if !l.mac.eq_ignore_ascii_case(m) {
                    bad.push(format!("{ifname} has MAC {} (expected {m})", l.mac));
                }
            }
            if !l.up {
                bad.push(format!("{ifname} is down"));
            }
            if l.mtu != conf.mtu {
                bad.push(format!(
                    "{ifname} has MTU {} (expected {})",
                    l.mtu, conf.mtu
                ));
            }
            for (ip, len) in &exp.addrs {
                if !l.addrs.contains(&(*ip, *len)) {
                    bad.push(format!("{ifname} lacks address {ip}/{len}"));
                }
            }
            if !offload_off {
                bad.push(format!("{ifname} has TSO or GSO on"));
            }
            let has = |dst: config::Cidr, via: Option<Ipv4Addr>| {
                routes.iter().any(|r| {
                    r.dst == dst
                        && r.dev.as_deref() == Some(ifname)
                        && (via.is_none() || r.gateway == via)
                })
            };
            let on_link = config::Cidr { addr: gw, len: 32 };
            if !has(on_link, None) {
                bad.push(format!("no on-link route to the gateway {gw} via {ifname}"));
            }
            for (dst, via) in exp.routes.iter().chain(
                [(
                    config::Cidr {
                        addr: Ipv4Addr::UNSPECIFIED,
                        len: 0,
                    },
                    Some(gw),
                )]
                .iter(),
            ) {
                if !has(*dst, *via) {
                    let via = via.map(|g| format!(" via {g}")).unwrap_or_default();
                    let msg = format!("no route {dst}{via} dev {ifname}");
                    if !bad.contains(&msg) {
                        bad.push(msg);
                    }
                }
            }
        }
    }

    let host_if = rec
        .as_ref()
        .map_or_else(|| state::host_ifname(&att), |r| r.host_ifname.clone());
    // Where ADD put the host end (the record), as DEL looks for it.
    let host_ns = match rec.as_ref() {
        Some(r) => r.host_netns.as_deref().map(Path::new),
        None => conf.host_netns.as_deref(),
    };
    match netns::run_in(host_ns, || tools.link(&host_if)) {
        Err(e) => bad.push(format!("hostNetns: {e}")),
        Ok(Err(e)) => bad.push(format!("reading the host end failed: {e}")),
        Ok(Ok(None)) => bad.push(format!(
            "host end {host_if} is missing from {}",
            ns_str(host_ns)
        )),
        Ok(Ok(Some(h))) => {
            if !h.up {
                bad.push(format!("host end {host_if} is down"));
            }
            if h.mtu != conf.mtu {
                bad.push(format!(
                    "host end {host_if} has MTU {} (expected {})",
                    h.mtu, conf.mtu
                ));
            }
        }
    }

    let store = Store::open(&conf.data_dir, &conf.name)
        .map_err(|e| io_err(&conf.data_dir, "opening the IPAM store", e))?;
    for (ip, _) in &exp.addrs {
        let owner = store
            .owner(*ip)
            .map_err(|e| io_err(&conf.data_dir, "reading the IPAM store", e))?;
        if owner.as_ref() != Some(&att) {
            bad.push(format!("IPAM: {ip} is not reserved for this attachment"));
        }
    }
    match &rec {
        None => bad.push("the pod record is missing".into()),
        Some(r) => {
            let rec_ip = format!("{}/{}", r.ip, r.prefix_len);
            if !exp
                .addrs
                .iter()
                .any(|(ip, l)| format!("{ip}/{l}") == rec_ip)
            {
                bad.push(format!(
                    "the pod record says {rec_ip}, not the ADD result's address"
                ));
            }
            if let (Some(m), Some(p)) = (&exp.mac, &pod) {
                if !r.mac.eq_ignore_ascii_case(m) || !r.mac.eq_ignore_ascii_case(&p.mac) {
                    bad.push(format!("the pod record says MAC {}", r.mac));
                }
            }
            if r.netns != pod_ns.display().to_string() {
                bad.push(format!("the pod record says netns {}", r.netns));
            }
            if r.network != conf.name {
                bad.push(format!("the pod record says network {}", r.network));
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            Code::CheckFailed,
            format!(
                "CHECK failed for {}/{}: {}",
                att.container_id,
                ifname,
                bad.join("; ")
            ),
        ))
    }
}

/// STATUS: ready when the tools are installed, the data directory is usable and an address is
/// free.
fn status(conf: &NetConf) -> Result<()> {
    let na = |m: String| CniError::new(Code::NotAvailable, m);
    Tools::find().map_err(na)?;
    let _l = lock(conf).map_err(|e| na(e.to_string()))?;
    let store = Store::open(&conf.data_dir, &conf.name)
        .map_err(|e| na(format!("dataDir {}: {e}", conf.data_dir.display())))?;
    let free = store
        .has_free(conf.pod_cidr, conf.gateway)
        .map_err(|e| na(format!("dataDir {}: {e}", conf.data_dir.display())))?;
    if free {
        Ok(())
    } else {
        Err(na(format!("podCIDR {}: no free address", conf.pod_cidr)))
    }
}

/// GC: removes the addresses, records and host ends of attachments of this network that the
/// runtime no longer lists. Continues past failures and reports them all.
fn gc(conf: &NetConf) -> Result<()> {
    let valid: HashSet<Attachment> = conf
        .valid_attachments
        .as_ref()
        .ok_or_else(|| {
            CniError::new(
                Code::InvalidConfig,
                "cni.dev/valid-attachments: missing (GC needs the list of valid attachments)",
            )
        })?
        .iter()
        .cloned()
        .collect();
    let tools = Tools::find();
    let _l = lock(conf)?;
    let store = Store::open(&conf.data_dir, &conf.name)
        .map_err(|e| io_err(&conf.data_dir, "opening the IPAM store", e))?;
    let mut failures = Vec::new();
    let mut stale: Vec<Attachment> = Vec::new();
    let allocs = store
        .list()
        .map_err(|e| io_err(&conf.data_dir, "listing the IPAM store", e))?;
    for a in &allocs {
        match &a.owner {
            // A file a crashed ADD left empty belongs to nobody.
            None => {
                if let Err(e) = store.remove(a.ip) {
                    failures.push(format!("{}: {e}", a.ip));
                }
            }
            Some(o) if !valid.contains(o) && !stale.contains(o) => stale.push(o.clone()),
            Some(_) => {}
        }
    }
    let recorded = state::recorded(&conf.data_dir)
        .map_err(|e| io_err(&conf.data_dir, "listing pod records", e))?;
    for att in recorded {
        if valid.contains(&att) || stale.contains(&att) {
            continue;
        }
        // Only this network's records: another network may share the data directory.
        if let Ok(Some(r)) = state::read_record(&conf.data_dir, &att) {
            if r.network == conf.name {
                stale.push(att);
            }
        }
    }
    for att in &stale {
        let rec = state::read_record(&conf.data_dir, att).ok().flatten();
        let host_if = rec
            .as_ref()
            .map_or_else(|| state::host_ifname(att), |r| r.host_ifname.clone());
        let host_ns = match rec.as_ref() {
            Some(r) => r.host_netns.as_deref().map(Path::new),
            None => conf.host_netns.as_deref(),
        };
        match &tools {
            Ok(t) => match netns::run_in(host_ns, || t.delete_link(&host_if)) {
                Ok(Ok(_)) | Err(NsError::Missing(_)) => {}
                Ok(Err(e)) => failures.push(e),
                Err(e) => failures.push(format!("hostNetns: {e}")),
            },
            Err(e) => failures.push(format!("{host_if} not removed: {e}")),
        }
        if let Err(e) = store.release(att) {
            failures.push(format!("IPAM {}/{}: {e}", att.container_id, att.ifname));
        }
        if let Err(e) = state::remove_record(&conf.data_dir, att) {
            failures.push(format!("record {}/{}: {e}", att.container_id, att.ifname));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CniError::with_details(
            Code::Io,
            "GC could not remove everything",
            failures.join("; "),
        ))
    }
}
