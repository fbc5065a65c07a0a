//! The API service: turns requests into data-plane operations and dumps.

use crate::acl::AclOp;
use crate::dataplane::{DataPlane, DpError, Op, OpResult};
use std::sync::{Arc, Mutex};
use vpg_api::interface::{InterfaceCounters, InterfaceDetails};
use vpg_api::route::{NeighborDetails, RouteDetails};
use vpg_api::stats::{
    BufferDetails, ClearWhat, ErrorDetails, FeatureDetails, RuntimeDetails, VersionDetails,
};
use vpg_api::{ApiError, ConfigItem, Details, ErrorCode, Mac, Prefix, Reply, Request};
use vpg_graph::wire::Ipv4Cidr;
use vpg_graph::ArcId;
use vpg_ip4::{Ip4Error, RoutePath};

/// Shared by every connection's thread; the lock is the control plane's, never the workers'.
#[derive(Clone)]
pub struct Service {
    dp: Arc<Mutex<DataPlane>>,
    stats_path: String,
}

fn cidr(p: Prefix) -> Ipv4Cidr {
    Ipv4Cidr::new(p.addr, p.len.min(32))
        .unwrap_or_else(|_| Ipv4Cidr::new(p.addr, 32).expect("32 is valid"))
}

fn prefix(c: Ipv4Cidr) -> Prefix {
    Prefix {
        addr: c.address(),
        len: c.prefix_len(),
    }
}

fn arc(name: &str) -> Result<ArcId, ApiError> {
    ArcId::from_name(name).ok_or_else(|| {
        ApiError::new(ErrorCode::BadRequest, format!("'{name}' is not an arc")).field("arc")
    })
}

/// Converts an API item into a data-plane operation.
pub fn to_op(item: ConfigItem) -> Result<Op, ApiError> {
    item.validate()?;
    if let Some(op) = crate::nat44::to_op(item.clone()) {
        return Ok(Op::Nat(op));
    }
    if let Some(op) = crate::esp::to_op(&item) {
        return op;
    }
    Ok(match item {
        ConfigItem::CreateVxlanTunnel { .. } | ConfigItem::DeleteVxlanTunnel { .. } => {
            crate::vxlan::to_op(item).expect("a tunnel item")
        }
        ConfigItem::CreateAfPacket { host_if, name, mac } => Op::CreatePort {
            host_if,
            name,
            mac: mac.map(|m| m.0),
        },
        ConfigItem::DeleteInterface { sw_if } => Op::DeleteInterface { sw_if },
        ConfigItem::SetAdminState { sw_if, up } => Op::SetAdmin { sw_if, up },
        ConfigItem::SetMac { sw_if, mac } => Op::SetMac { sw_if, mac: mac.0 },
        ConfigItem::SetMtu { sw_if, mtu } => Op::SetMtu { sw_if, mtu },
        ConfigItem::AddAddress { sw_if, prefix } => Op::AddAddress {
            sw_if,
            prefix: cidr(prefix),
        },
        ConfigItem::DelAddress { sw_if, prefix } => Op::DelAddress {
            sw_if,
            prefix: cidr(prefix),
        },
        ConfigItem::SetProxyArp { sw_if, prefixes } => Op::SetProxyArp {
            sw_if,
            prefixes: prefixes.into_iter().map(cidr).collect(),
        },
        ConfigItem::AddRoute { prefix, path } => Op::AddRoute {
            prefix: cidr(prefix),
            path: path_in(path),
        },
        ConfigItem::DelRoute { prefix } => Op::DelRoute {
            prefix: cidr(prefix),
        },
        ConfigItem::AddNeighbor { sw_if, ip, mac } => Op::AddNeighbor {
            sw_if,
            ip,
            mac: mac.0,
        },
        ConfigItem::DelNeighbor { sw_if, ip } => Op::DelNeighbor { sw_if, ip },
        ConfigItem::EnableFeature {
            arc: a,
            feature,
            sw_if,
        } => Op::EnableFeature {
            arc: arc(&a)?,
            feature,
            sw_if,
        },
        ConfigItem::DisableFeature {
            arc: a,
            feature,
            sw_if,
        } => Op::DisableFeature {
            arc: arc(&a)?,
            feature,
            sw_if,
        },
        ConfigItem::AclAddReplace { acl_id, tag, rules } => {
            Op::Acl(crate::acl::add_replace(acl_id, tag, &rules)?)
        }
        ConfigItem::AclDelete { acl_id } => Op::Acl(AclOp::Delete(acl_id)),
        ConfigItem::AclSetInterface {
            sw_if,
            direction,
            acls,
        } => Op::Acl(AclOp::SetInterface {
            sw_if,
            input: direction == vpg_api::acl::Direction::Input,
            acls,
        }),
        ConfigItem::AclSessions(s) => Op::Acl(AclOp::Sessions(s)),
        ConfigItem::Nat44AddPool(_)
        | ConfigItem::Nat44DelPool(_)
        | ConfigItem::Nat44SetInterface { .. }
        | ConfigItem::Nat44AddMapping(_)
        | ConfigItem::Nat44DelMapping(_)
        | ConfigItem::Nat44AddIdentity(_)
        | ConfigItem::Nat44DelIdentity(_)
        | ConfigItem::Nat44Settings(_) => unreachable!("handled above"),
        ConfigItem::EspSaAdd(_)
        | ConfigItem::EspSaDel { .. }
        | ConfigItem::EspSaRetire { .. }
        | ConfigItem::EspProtectAdd(_)
        | ConfigItem::EspProtectDel { .. } => unreachable!("handled by crate::esp::to_op"),
    })
}

fn path_in(p: vpg_api::RoutePath) -> RoutePath {
    match p {
        vpg_api::RoutePath::Via { next_hop, sw_if } => RoutePath::Via { next_hop, sw_if },
        vpg_api::RoutePath::Attached { sw_if } => RoutePath::Attached { sw_if },
        vpg_api::RoutePath::Drop => RoutePath::Drop,
        vpg_api::RoutePath::Local => RoutePath::Local,
    }
}

fn path_out(p: RoutePath) -> vpg_api::RoutePath {
    match p {
        RoutePath::Via { next_hop, sw_if } => vpg_api::RoutePath::Via { next_hop, sw_if },
        RoutePath::Attached { sw_if } => vpg_api::RoutePath::Attached { sw_if },
        RoutePath::Drop => vpg_api::RoutePath::Drop,
        RoutePath::Local => vpg_api::RoutePath::Local,
    }
}

/// A data-plane refusal as an API error: which object, which field, why.
pub fn api_error(e: &DpError) -> ApiError {
    use ErrorCode::*;
    let msg = e.to_string();
    let (code, object, field): (ErrorCode, Option<String>, Option<&str>) = match e {
        DpError::NoInterface(i) | DpError::Ip4(Ip4Error::NoInterface(i)) => {
            (NotFound, Some(format!("interface {i}")), Some("sw_if"))
        }
        DpError::Ip4(Ip4Error::InterfaceExists(i)) => {
            (AlreadyExists, Some(format!("interface {i}")), None)
        }
        DpError::Ip4(Ip4Error::AddressExists { sw_if, addr }) => (
            AlreadyExists,
            Some(format!("address {addr} on interface {sw_if}")),
            Some("prefix"),
        ),
        DpError::Ip4(Ip4Error::NoAddress { sw_if, addr }) => (
            NotFound,
            Some(format!("address {addr} on interface {sw_if}")),
            Some("prefix"),
        ),
        DpError::Ip4(Ip4Error::RouteExists(p)) => {
            (AlreadyExists, Some(format!("route {p}")), Some("prefix"))
        }
        DpError::Ip4(Ip4Error::NoRoute(p)) => {
            (NotFound, Some(format!("route {p}")), Some("prefix"))
        }
        DpError::Ip4(Ip4Error::NoNeighbor { sw_if, ip }) => (
            NotFound,
            Some(format!("neighbor {ip} on interface {sw_if}")),
            Some("ip"),
        ),
        DpError::Ip4(Ip4Error::BadPrefix(_)) => (BadRequest, None, Some("prefix")),
        DpError::Ip4(Ip4Error::BadMtu(_)) => (BadRequest, None, Some("mtu")),
        DpError::NameTaken(n) => (AlreadyExists, Some(format!("interface {n}")), Some("name")),
        DpError::HostAttached(h) => (
            AlreadyExists,
            Some(format!("host interface {h}")),
            Some("host_if"),
        ),
        DpError::Attach { host_if, .. } => (
            Failed,
            Some(format!("host interface {host_if}")),
            Some("host_if"),
        ),
        DpError::UnknownFeature { .. } => (NotFound, None, Some("feature")),
        DpError::TooManyInterfaces(_) => (Failed, None, None),
        DpError::InterfaceInUse { sw_if, .. } => {
            (Failed, Some(format!("interface {sw_if}")), Some("sw_if"))
        }
        DpError::Acl(e) => return crate::acl::api_error(e),
        DpError::Vxlan(v) => crate::vxlan::api_error(v),
        DpError::Nat(n) => return crate::nat44::api_error(n),
        DpError::Esp(v) => crate::esp::api_error(v),
        DpError::SequenceFile(_) => (Failed, None, None),
    };
    let mut a = ApiError::new(code, msg);
    a.object = object;
    a.field = field.map(str::to_string);
    a
}

impl Service {
    /// A service over `dp`.
    pub fn new(dp: DataPlane, stats_path: String) -> Self {
        Self {
            dp: Arc::new(Mutex::new(dp)),
            stats_path,
        }
    }

    /// Installs neighbors that `arp-input` reports on every worker: a control thread takes them
    /// off a bounded queue and adds those not already known (the packet path never waits).
    pub fn start_neighbor_learning(&self) {
        let (tx, rx) = crossbeam_channel::bounded::<vpg_ip4::arp_input::LearnedNeighbor>(1024);
        self.with(|dp| {
            for w in 0..dp.workers().len() {
                let tx = tx.clone();
                dp.workers().exec(w, move |rt| {
                    if let Some(a) = rt.node_mut::<vpg_ip4::arp_input::ArpInput>("arp-input") {
                        a.set_learn_sender(tx);
                    }
                });
            }
        });
        let svc = self.clone();
        std::thread::Builder::new()
            .name("vpgd-arp-learn".into())
            .spawn(move || {
                for l in rx.iter() {
                    svc.with(|dp| {
                        // A report made before the interface at this index was created was
                        // about an earlier one: nothing to learn.
                        if !dp.is_current(l.sw_if, l.seen) {
                            return;
                        }
                        let known = dp
                            .neighbors()
                            .iter()
                            .any(|n| n.sw_if == l.sw_if && n.ip == l.ip && n.mac == l.mac);
                        if !known {
                            let _ = dp.apply(vec![Op::AddNeighbor {
                                sw_if: l.sw_if,
                                ip: l.ip,
                                mac: l.mac.0,
                            }]);
                        }
                    });
                }
            })
            .ok();
    }

    /// Extends outbound ESP sequence reservations before the SAs reach them (with a sequence
    /// file): a control thread looks every 10 ms, without the data plane's lock, and records
    /// how far the inbound SAs have accepted once a second. A write that fails is logged (once
    /// per distinct error) and tried again; meanwhile an SA that reaches its limit drops its
    /// packets (`seq-unreserved`) rather than send an unrecorded number.
    pub fn start_sequence_reservations(&self) {
        let Some(file) = self.with(|dp| dp.sequences().map(Arc::downgrade)) else {
            return;
        };
        std::thread::Builder::new()
            .name("vpgd-esp-seq".into())
            .spawn(move || {
                let mut last_error = None;
                let mut tick = 0u32;
                while let Some(f) = file.upgrade() {
                    tick = tick.wrapping_add(1);
                    let r = {
                        let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                        match f.extend() {
                            Ok(_) if tick.is_multiple_of(100) => f.note_accepted(),
                            r => r,
                        }
                    };
                    drop(f);
                    match r {
                        Err(e) if last_error.as_ref() != Some(&e) => {
                            eprintln!("vpgd: reserving ESP sequence numbers: {e}");
                            last_error = Some(e);
                        }
                        Err(_) => {}
                        Ok(_) => last_error = None,
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            })
            .ok();
    }

    /// Runs `f` with the data plane (tests, shutdown).
    pub fn with<R>(&self, f: impl FnOnce(&mut DataPlane) -> R) -> R {
        let mut g = self.dp.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Applies operations all-or-nothing and answers.
    fn apply(&self, items: Vec<ConfigItem>, single: bool) -> Reply {
        let mut ops = Vec::with_capacity(items.len());
        for (i, it) in items.into_iter().enumerate() {
            match to_op(it) {
                Ok(op) => ops.push(op),
                Err(e) => return Reply::Error(if single { e } else { e.item(i) }),
            }
        }
        let n = ops.len();
        match self.with(|dp| dp.apply(ops)) {
            Ok(results) => {
                let created: Vec<u32> = results
                    .iter()
                    .filter_map(|r| {
                        if let OpResult::Interface(i) = r {
                            Some(*i)
                        } else {
                            None
                        }
                    })
                    .collect();
                if single {
                    Reply::Ok {
                        sw_if: created.first().copied(),
                    }
                } else {
                    Reply::Applied { count: n, created }
                }
            }
            Err((i, e)) => {
                let a = api_error(&e);
                Reply::Error(if single { a } else { a.item(i) })
            }
        }
    }

    /// Answers one request.
    pub fn handle(&self, req: Request, out: &mut dyn FnMut(Reply)) {
        match req {
            Request::Config { item } => out(self.apply(vec![item], true)),
            Request::Transaction { items } => out(self.apply(items, false)),
            Request::DumpInterfaces => {
                for d in self.interfaces() {
                    out(Reply::Details(Details::Interface(d)));
                }
                out(Reply::Done)
            }
            Request::DumpRoutes => {
                let rows = self.with(|dp| {
                    dp.routes()
                        .into_iter()
                        .map(|r| RouteDetails {
                            prefix: prefix(r.prefix),
                            path: path_out(r.path),
                            source: format!("{:?}", r.source).to_lowercase(),
                            adj: r.adj,
                            adjacency: dp.adjacency_text(r.adj),
                        })
                        .collect::<Vec<_>>()
                });
                rows.into_iter()
                    .for_each(|r| out(Reply::Details(Details::Route(r))));
                out(Reply::Done)
            }
            Request::DumpNeighbors => {
                let rows = self.with(|dp| dp.neighbors());
                for n in rows {
                    out(Reply::Details(Details::Neighbor(NeighborDetails {
                        sw_if: n.sw_if,
                        ip: n.ip,
                        mac: Mac(n.mac.0),
                    })));
                }
                out(Reply::Done)
            }
            Request::DumpFeatures => {
                for (a, f, sw_if) in self.with(|dp| dp.features()) {
                    out(Reply::Details(Details::Feature(FeatureDetails {
                        arc: a.name().into(),
                        feature: f,
                        sw_if,
                    })));
                }
                out(Reply::Done)
            }
            Request::DumpRuntime => {
                let rows = self
                    .with(|dp| vpg_graph::show::runtime_rows(dp.layout(), &dp.workers().stats()));
                for r in rows {
                    out(Reply::Details(Details::Runtime(RuntimeDetails {
                        worker: r.worker,
                        node: r.node,
                        calls: r.calls,
                        vectors: r.vectors,
                        clocks: r.clocks,
                    })));
                }
                out(Reply::Done)
            }
            Request::DumpErrors => {
                let rows =
                    self.with(|dp| vpg_graph::show::error_rows(dp.layout(), &dp.workers().stats()));
                for r in rows {
                    out(Reply::Details(Details::Error(ErrorDetails {
                        count: r.count,
                        node: r.node,
                        name: r.name,
                        description: r.description,
                    })));
                }
                out(Reply::Done)
            }
            Request::DumpBuffers => {
                let rows = self.with(|dp| {
                    (0..dp.workers().len())
                        .filter_map(|w| {
                            dp.workers().exec(w, move |rt| {
                                (w, rt.pool_stats(), rt.pool().backing().to_string())
                            })
                        })
                        .collect::<Vec<_>>()
                });
                for (w, p, pages) in rows {
                    out(Reply::Details(Details::Buffers(BufferDetails {
                        worker: w,
                        total: p.total,
                        free: p.free,
                        alloc_failures: p.alloc_failures,
                        double_frees: p.double_frees,
                        pages,
                    })));
                }
                out(Reply::Done)
            }
            Request::DumpTrace => {
                let texts = self.with(|dp| {
                    (0..dp.workers().len())
                        .filter_map(|w| {
                            dp.workers().exec(w, move |rt| {
                                (w, vpg_graph::show::trace_text(w, &rt.trace_lines()))
                            })
                        })
                        .collect::<Vec<_>>()
                });
                for (worker, text) in texts {
                    out(Reply::Details(Details::Trace { worker, text }));
                }
                out(Reply::Done)
            }
            Request::DumpNat44Addresses => {
                for d in self.with(|dp| crate::nat44::addresses(dp)) {
                    out(Reply::Details(Details::Nat44Address(d)));
                }
                out(Reply::Done)
            }
            Request::DumpNat44Interfaces => {
                for d in self.with(|dp| crate::nat44::interfaces(dp)) {
                    out(Reply::Details(Details::Nat44Interface(d)));
                }
                out(Reply::Done)
            }
            Request::DumpNat44Mappings => {
                let (maps, ids) = self.with(|dp| crate::nat44::mappings(dp));
                for d in maps {
                    out(Reply::Details(Details::Nat44Mapping(d)));
                }
                for d in ids {
                    out(Reply::Details(Details::Nat44Identity(d)));
                }
                out(Reply::Done)
            }
            Request::DumpNat44Sessions { filter } => {
                for d in self.with(|dp| crate::nat44::sessions(dp, &filter)) {
                    out(Reply::Details(Details::Nat44Session(d)));
                }
                out(Reply::Done)
            }
            Request::ClearNat44Sessions { filter } => {
                self.with(|dp| crate::nat44::clear_sessions(dp, &filter));
                out(Reply::Ok { sw_if: None })
            }
            Request::DumpNat44Summary => {
                let d = self.with(|dp| crate::nat44::summary(dp));
                out(Reply::Details(Details::Nat44Summary(d)));
                out(Reply::Done)
            }
            Request::DumpVxlanTunnels => {
                for d in self.with(|dp| crate::vxlan::details(dp)) {
                    out(Reply::Details(Details::VxlanTunnel(d)));
                }
                out(Reply::Done)
            }
            Request::DumpEspSas => {
                for d in self.with(|dp| crate::esp::sa_details(dp)) {
                    out(Reply::Details(Details::EspSa(d)));
                }
                out(Reply::Done)
            }
            Request::DumpEspProtect => {
                for d in self.with(|dp| crate::esp::protect_details(dp)) {
                    out(Reply::Details(Details::EspProtect(d)));
                }
                out(Reply::Done)
            }
            Request::DumpEspSummary => {
                let d = self.with(|dp| crate::esp::summary(dp));
                out(Reply::Details(Details::EspSummary(d)));
                out(Reply::Done)
            }
            Request::DumpEspSequences => {
                for d in self.with(|dp| crate::esp::sequence_details(dp)) {
                    out(Reply::Details(Details::EspSequence(d)));
                }
                out(Reply::Done)
            }
            Request::ShowVersion => {
                let (workers, next) = self.with(|dp| (dp.workers().len(), dp.next_sw_if()));
                out(Reply::Details(Details::Version(VersionDetails {
                    server: format!("vpgd {}", env!("CARGO_PKG_VERSION")),
                    api_major: vpg_api::API_MAJOR,
                    api_minor: vpg_api::API_MINOR,
                    workers,
                    stats_segment: self.stats_path.clone(),
                    next_sw_if: Some(next),
                })));
                out(Reply::Done)
            }
            Request::TraceAdd { node, count } => {
                let ok = self.with(|dp| {
                    let known = dp.layout().node_index(&node).is_some();
                    if known {
                        for w in 0..dp.workers().len() {
                            let n = node.clone();
                            dp.workers().exec(w, move |rt| rt.trace_add(&n, count));
                        }
                    }
                    known
                });
                out(if ok {
                    Reply::Ok { sw_if: None }
                } else {
                    Reply::Error(
                        ApiError::new(ErrorCode::NotFound, format!("no node named '{node}'"))
                            .field("node"),
                    )
                })
            }
            Request::DumpAcls { acl_id } => {
                for d in self.with(|dp| crate::acl::dump(dp, acl_id)) {
                    out(Reply::Details(Details::Acl(d)));
                }
                out(Reply::Done)
            }
            Request::DumpAclInterfaces => {
                for d in self.with(|dp| crate::acl::interfaces(dp)) {
                    out(Reply::Details(Details::AclInterface(d)));
                }
                out(Reply::Done)
            }
            Request::DumpAclSessions { filter } => {
                for d in self.with(|dp| crate::acl::sessions(dp, &filter)) {
                    out(Reply::Details(Details::AclSession(d)));
                }
                out(Reply::Done)
            }
            Request::ClearAclSessions { filter } => {
                self.with(|dp| crate::acl::clear_sessions(dp, &filter));
                out(Reply::Ok { sw_if: None })
            }
            Request::DumpAclClassifiers => {
                for d in self.with(|dp| crate::acl::classifiers(dp)) {
                    out(Reply::Details(Details::AclClassifier(d)));
                }
                out(Reply::Done)
            }
            Request::AclMatch(q) => {
                let d = self.with(|dp| crate::acl::explain(dp, &q));
                out(Reply::Details(Details::AclMatch(d)));
                out(Reply::Done)
            }
            Request::ClearAclCounters => {
                self.with(|dp| dp.acl().clear_counters());
                out(Reply::Ok { sw_if: None })
            }
            Request::Clear { what } => {
                self.with(|dp| {
                    for (w, s) in dp.workers().stats().iter().enumerate() {
                        match what {
                            ClearWhat::Runtime => s.clear_runtime(),
                            ClearWhat::Errors => s.clear_errors(),
                            ClearWhat::Interfaces => s.clear_interfaces(),
                            ClearWhat::Trace => {
                                dp.workers().exec(w, |rt| rt.trace_clear());
                            }
                        }
                    }
                });
                out(Reply::Ok { sw_if: None })
            }
        }
    }

    fn interfaces(&self) -> Vec<InterfaceDetails> {
        self.with(|dp| {
            let stats = dp.workers().stats();
            dp.interfaces()
                .into_iter()
                .map(|(sw_if, port, itf)| {
                    let c = if_counters(&stats, sw_if);
                    InterfaceDetails {
                        sw_if,
                        name: port.name,
                        host_if: port.host_if,
                        mac: Mac(itf.mac.0),
                        admin_up: itf.admin_up,
                        mtu: itf.mtu,
                        addresses: itf.addresses.iter().map(|a| prefix(*a)).collect(),
                        proxy_arp: itf.proxy_arp.iter().map(|a| prefix(*a)).collect(),
                        counters: c,
                    }
                })
                .collect()
        })
    }
}

/// Interface `sw_if`'s counters summed over the workers.
pub fn if_counters<S: AsRef<vpg_graph::counters::WorkerStats>>(
    stats: &[S],
    sw_if: u32,
) -> InterfaceCounters {
    let mut c = InterfaceCounters::default();
    for s in stats {
        if let Some(i) = s.as_ref().interfaces.get(sw_if as usize) {
            c.rx_packets += i.rx_packets.get();
            c.rx_bytes += i.rx_bytes.get();
            c.tx_packets += i.tx_packets.get();
            c.tx_bytes += i.tx_bytes.get();
            c.drops += i.drops.get();
        }
    }
    c
}
