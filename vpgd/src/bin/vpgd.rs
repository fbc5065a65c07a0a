//! `vpgd`: the vpg data-plane daemon.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vpgd::config::Config;

/// vpg data-plane daemon: owns interfaces, buffer pools, workers and every data-plane table, and
/// serves the control API.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(short, long, default_value = "/etc/vpg/vpgd.toml")]
    config: PathBuf,
    /// Check the configuration file and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vpgd: {}: {e}", cli.config.display());
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("vpgd: {}: ok", cli.config.display());
        return ExitCode::SUCCESS;
    }
    match run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vpgd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cfg: Config) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let svc = vpgd::daemon::start_service(&cfg)?;
    let listener = vpg_api::server::bind(&cfg.api.socket)
        .with_context(|| format!("binding API socket {}", cfg.api.socket.display()))?;
    listener.set_nonblocking(true)?;
    eprintln!(
        "vpgd: ready: api {} stats {} workers {} interfaces {}",
        cfg.api.socket.display(),
        cfg.stats.segment.display(),
        cfg.workers.count,
        cfg.interfaces.len()
    );
    let server = format!("vpgd {}", env!("CARGO_PKG_VERSION"));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                let svc = svc.clone();
                let server = server.clone();
                std::thread::spawn(move || {
                    let _ = vpg_api::server::serve_connection(s, &server, &mut |req, out| {
                        svc.handle(req, out)
                    });
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => eprintln!("vpgd: accept: {e}"),
        }
    }
    eprintln!("vpgd: shutting down");
    let _ = std::fs::remove_file(&cfg.api.socket);
    svc.with(|dp| dp.shutdown());
    let _ = std::fs::remove_file(&cfg.stats.segment);
    Ok(())
}
