//! `vpg-ksr`: runs the Kubernetes state reflector, and reports on a running one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use serde::Deserialize;
use vpg_ksr::control;
use vpg_ksr::run::{Reflectors, RunConfig};
use vpg_ksr::source;
use vpg_ksr::store::{AnyStore, EmbeddedStore, EtcdStore};
use vpg_ksr::{Kind, Store};

const DEFAULT_SOCKET: &str = "/run/vpg/ksr.sock";
const DEFAULT_DB: &str = "/var/lib/vpg/ksr.redb";

/// vpg's Kubernetes state reflector.
#[derive(Parser)]
#[command(name = "vpg-ksr", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the reflector: mirrors the source's objects into the store until stopped.
    Run(RunArgs),
    /// Prints per-kind counters, sync state and the store revision of a running reflector.
    Status {
        /// The running reflector's control socket.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Prints the store's records (one `key value` line each), through a running reflector's
    /// socket, or straight from a store given by --db or --etcd.
    Dump {
        /// Only this kind (pod, namespace, policy, service, endpoints, node, secret).
        kind: Option<Kind>,
        /// The running reflector's control socket (used unless --db or --etcd is given).
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Read this embedded store file directly (only while no reflector holds it).
        #[arg(long, conflicts_with = "etcd")]
        db: Option<PathBuf>,
        /// Read etcd directly (comma-separated endpoints).
        #[arg(long, value_delimiter = ',')]
        etcd: Vec<String>,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SourceKind {
    /// A Kubernetes API server (kubeconfig, $KUBECONFIG or in-cluster config).
    Kubernetes,
    /// A directory of YAML/JSON manifests, polled for changes.
    Manifests,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StoreKind {
    /// The embedded file store (one machine).
    Embedded,
    /// etcd.
    Etcd,
}

/// Options of `run`; every one can also come from the config file (flags win).
#[derive(clap::Args, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RunArgs {
    /// A YAML config file with the same keys as the long flags (source, manifests, store, db,
    /// etcd, socket, scan-interval-ms, probe-interval-ms, etcd-timeout-ms).
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Where objects come from [default: kubernetes].
    #[arg(long, value_enum)]
    source: Option<SourceKind>,
    /// The manifest directory (with --source manifests).
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// Where records go [default: embedded].
    #[arg(long, value_enum)]
    store: Option<StoreKind>,
    /// The embedded store's file [default: /var/lib/vpg/ksr.redb].
    #[arg(long)]
    db: Option<PathBuf>,
    /// etcd endpoints, comma-separated (with --store etcd).
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    etcd: Vec<String>,
    /// The control socket for status and dump [default: /run/vpg/ksr.sock].
    #[arg(long)]
    socket: Option<PathBuf>,
    /// How often the manifest directory is checked, in milliseconds [default: 1000].
    #[arg(long)]
    scan_interval_ms: Option<u64>,
    /// How often the store is probed, in milliseconds [default: 1000].
    #[arg(long)]
    probe_interval_ms: Option<u64>,
    /// etcd request timeout, in milliseconds [default: 2000].
    #[arg(long)]
    etcd_timeout_ms: Option<u64>,
}

impl RunArgs {
    /// Fills what the flags left out from the config file.
    fn merge(mut self, file: RunArgs) -> RunArgs {
        self.source = self.source.or(file.source);
        self.manifests = self.manifests.or(file.manifests);
        self.store = self.store.or(file.store);
        self.db = self.db.or(file.db);
        if self.etcd.is_empty() {
            self.etcd = file.etcd;
        }
        self.socket = self.socket.or(file.socket);
        self.scan_interval_ms = self.scan_interval_ms.or(file.scan_interval_ms);
        self.probe_interval_ms = self.probe_interval_ms.or(file.probe_interval_ms);
        self.etcd_timeout_ms = self.etcd_timeout_ms.or(file.etcd_timeout_ms);
        self
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vpg-ksr: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let res = rt.block_on(async move {
        match cli.cmd {
            Cmd::Run(args) => run(args).await,
            Cmd::Status { socket, json } => {
                let st = control::status(&socket).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&st)?);
                } else {
                    print!("{}", st.render());
                }
                Ok(())
            }
            Cmd::Dump {
                kind,
                socket,
                db,
                etcd,
                json,
            } => dump(kind, &socket, db, etcd, json).await,
        }
    });
    if let Err(e) = res {
        eprintln!("vpg-ksr: {e:#}");
        std::process::exit(2);
    }
}

async fn dump(
    kind: Option<Kind>,
    socket: &Path,
    db: Option<PathBuf>,
    etcd: Vec<String>,
    json: bool,
) -> anyhow::Result<()> {
    let rows = if let Some(db) = db {
        let s = EmbeddedStore::open(&db)?;
        control::dump(&s, kind).await?
    } else if !etcd.is_empty() {
        let s = EtcdStore::connect(&etcd, Duration::from_secs(2)).await?;
        control::dump(&s, kind).await?
    } else {
        let req = kind.map_or_else(|| "dump".to_string(), |k| format!("dump {k}"));
        control::request(socket, &req).await?
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", control::render_dump(&rows));
    }
    Ok(())
}

async fn open_store(args: &RunArgs) -> anyhow::Result<AnyStore> {
    Ok(match args.store.unwrap_or(StoreKind::Embedded) {
        StoreKind::Embedded => {
            let path = args.db.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_DB));
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            AnyStore::Embedded(EmbeddedStore::open(&path)?)
        }
        StoreKind::Etcd => {
            if args.etcd.is_empty() {
                bail!("--store etcd needs --etcd URL[,URL..]");
            }
            let timeout = Duration::from_millis(args.etcd_timeout_ms.unwrap_or(2000));
            // An unreachable etcd at start is retried with backoff, not fatal.
            let mut delay = Duration::from_millis(200);
            loop {
                match EtcdStore::connect(&args.etcd, timeout).await {
                    Ok(s) => break AnyStore::Etcd(Box::new(s)),
                    Err(e) => {
                        tracing::warn!("etcd {}: {e}; retrying in {delay:?}", args.etcd.join(","));
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
        }
    })
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let args = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
            let file: RunArgs =
                serde_yaml::from_str(&text).with_context(|| format!("{}", path.display()))?;
            args.merge(file)
        }
        None => args,
    };
    let (sources, source_name) = match args.source.unwrap_or(SourceKind::Kubernetes) {
        SourceKind::Kubernetes => {
            let client = kube::Client::try_default()
                .await
                .context("no Kubernetes configuration (kubeconfig or in-cluster)")?;
            (source::kubernetes(client), "kubernetes".to_string())
        }
        SourceKind::Manifests => {
            let Some(dir) = args.manifests.clone() else {
                bail!("--source manifests needs --manifests DIR");
            };
            if !dir.is_dir() {
                bail!("{}: not a directory", dir.display());
            }
            let interval = Duration::from_millis(args.scan_interval_ms.unwrap_or(1000));
            (
                source::manifests(dir.clone(), interval),
                format!("manifests {}", dir.display()),
            )
        }
    };
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    if let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // A socket left by a previous run would make bind fail.
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket)
        .with_context(|| format!("binding {}", socket.display()))?;
    let store = Arc::new(open_store(&args).await?);
    let cfg = RunConfig {
        probe_interval: Duration::from_millis(args.probe_interval_ms.unwrap_or(1000)),
        ..RunConfig::default()
    };
    let reflectors = Arc::new(Reflectors::start(store, source_name, sources, cfg));
    let server = tokio::spawn(control::serve(listener, reflectors.clone()));
    tracing::info!(
        "reflecting into {}; control socket {}",
        reflectors.store().describe(),
        socket.display()
    );
    {
        let r = reflectors.clone();
        tokio::spawn(async move {
            r.wait_until_ready().await;
            tracing::info!("ready: every kind has completed its first sync");
        });
    }
    shutdown_signal().await;
    tracing::info!("stopping");
    server.abort();
    let _ = std::fs::remove_file(&socket);
    reflectors.stop();
    if let Ok(r) = Arc::try_unwrap(reflectors) {
        r.shutdown().await;
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
