//! Everything the demo creates outside its own memory — processes, network namespaces, the
//! temporary directory — is registered here as soon as it exists, so every exit path removes
//! it: the normal end and an error return (the [`Guard`]'s drop), a panic (the same drop while
//! unwinding), and SIGINT, SIGTERM or SIGHUP (a signal thread runs the same cleanup, then exits
//! with 130). Cleaning up twice is harmless: each list is emptied as it is cleaned.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What is still to be removed, in creation order.
struct Registry {
    /// Processes we started (name for messages, the child to signal and reap).
    procs: Vec<(String, Child)>,
    /// `ip netns` names.
    netns: Vec<String>,
    /// Directories removed whole.
    dirs: Vec<PathBuf>,
}

/// One registry for the process: the signal thread and the main thread both clean it, so it is
/// shared behind a mutex (held only for pushes and the cleanup itself).
static REG: Mutex<Registry> = Mutex::new(Registry {
    procs: Vec::new(),
    netns: Vec::new(),
    dirs: Vec::new(),
});

fn reg() -> std::sync::MutexGuard<'static, Registry> {
    // A panic while holding the lock must not keep the cleanup from running.
    REG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a started process (stopped with SIGTERM, then SIGKILL, at cleanup).
pub fn add_proc(name: &str, child: Child) {
    reg().procs.push((name.to_string(), child));
}

/// Registers a network namespace (deleted at cleanup).
pub fn add_netns(name: &str) {
    reg().netns.push(name.to_string());
}

/// Registers a directory (removed at cleanup).
pub fn add_dir(dir: PathBuf) {
    reg().dirs.push(dir);
}

/// SIGTERM to all, then up to 3 s for them to exit, then SIGKILL the rest; all are reaped.
fn terminate(mut procs: Vec<(String, Child)>) {
    for (_, c) in procs.iter_mut() {
        // Already exited: nothing to signal (its pid may be reused once reaped).
        if matches!(c.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
    }
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3)
        && procs
            .iter_mut()
            .any(|(_, c)| matches!(c.try_wait(), Ok(None)))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    for (name, c) in procs.iter_mut() {
        if matches!(c.try_wait(), Ok(None)) {
            eprintln!("cleanup: {name} ignored SIGTERM; killing it");
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}

/// Removes everything registered: processes first (a process inside a namespace keeps its
/// interfaces alive), then namespaces (their veths go with them), then directories.
pub fn cleanup() {
    let (procs, netns, dirs) = {
        let mut r = reg();
        (
            std::mem::take(&mut r.procs),
            std::mem::take(&mut r.netns),
            std::mem::take(&mut r.dirs),
        )
    };
    terminate(procs);
    for ns in netns.iter().rev() {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(std::process::Stdio::null())
            .status();
    }
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Runs [`cleanup`] when dropped: at the end of `main`, on an error return and on a panic.
pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        cleanup();
    }
}

/// Starts the thread that cleans up and exits with 130 on SIGINT, SIGTERM or SIGHUP.
pub fn on_signal_cleanup() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Registered here, before the demo creates anything, so no signal finds them missing.
    let (mut int, mut term, mut hup) = rt.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        ))
    })?;
    std::thread::spawn(move || {
        let what = rt.block_on(async {
            tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
                _ = hup.recv() => "SIGHUP",
            }
        });
        eprintln!("\nvpg-demo: {what}: cleaning up");
        cleanup();
        std::process::exit(130);
    });
    Ok(())
}
