//! Everything the demo creates outside its own memory — processes, network namespaces, the
//! temporary directory — is registered here as soon as it exists, so every exit path removes
//! it: the normal end and an error return (the [`Guard`]'s drop), a panic (the same drop while
//! unwinding), and SIGINT, SIGTERM or SIGHUP (a signal thread runs the same cleanup, then exits
//! with 130). Cleaning up twice is harmless: each list is emptied as it is cleaned.

use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
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
    /// Short-lived commands running now (pids): a client, a CNI call. Killed first, so none
    /// writes into a directory after it was removed.
    running: Vec<u32>,
}

/// One registry for the process: the signal thread and the main thread both clean it, so it is
/// shared behind a mutex (held only for pushes and the cleanup itself).
static REG: Mutex<Registry> = Mutex::new(Registry {
    procs: Vec::new(),
    netns: Vec::new(),
    dirs: Vec::new(),
    running: Vec::new(),
});

fn reg() -> std::sync::MutexGuard<'static, Registry> {
    // A panic while holding the lock must not keep the cleanup from running.
    REG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts `cmd` and registers it (stopped with SIGTERM, then SIGKILL, at cleanup); returns its
/// stdout when it was piped. Started under the registry's lock, so a signal's cleanup either
/// sees it or runs before it exists (and then the demo exits before starting it).
pub fn spawn(name: &str, cmd: &mut Command) -> std::io::Result<Option<ChildStdout>> {
    let mut r = reg();
    let mut child = cmd.spawn()?;
    let out = child.stdout.take();
    r.procs.push((name.to_string(), child));
    Ok(out)
}

/// Stops the registered process `name` now (SIGTERM, then SIGKILL after 3 s) and forgets it: a
/// daemon the demo restarts.
pub fn stop(name: &str) {
    let procs: Vec<(String, Child)> = {
        let mut r = reg();
        let (stop, keep) = std::mem::take(&mut r.procs)
            .into_iter()
            .partition(|(n, _)| n == name);
        r.procs = keep;
        stop
    };
    terminate(procs);
}

/// Runs `cmd` to completion like [`Command::output`], with `stdin` as its input (a few bytes:
/// the pipe takes them without blocking), killed at cleanup if still running.
pub fn output(cmd: &mut Command, stdin: &[u8]) -> std::io::Result<Output> {
    use std::io::Write;
    let child = {
        let mut r = reg();
        let mut child = cmd.stdin(Stdio::piped()).spawn()?;
        r.running.push(child.id());
        if let Some(mut i) = child.stdin.take() {
            // A command that exits without reading its input is not our error here.
            let _ = i.write_all(stdin);
        }
        child
    };
    let pid = child.id();
    let out = child.wait_with_output();
    reg().running.retain(|p| *p != pid);
    out
}

/// Creates network namespace `name` (`ip netns add`) and registers it, under the lock.
pub fn netns(name: &str) -> Result<(), String> {
    let mut r = reg();
    let o = Command::new("ip")
        .args(["netns", "add", name])
        .output()
        .map_err(|e| format!("ip netns add {name}: {e} (iproute2 is needed)"))?;
    if !o.status.success() {
        return Err(format!(
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    r.netns.push(name.to_string());
    Ok(())
}

/// Creates directory `dir` (and its parents) and registers it, under the lock.
pub fn dir(dir: PathBuf) -> std::io::Result<()> {
    let mut r = reg();
    std::fs::create_dir_all(&dir)?;
    r.dirs.push(dir);
    Ok(())
}

/// Takes `dir` off the list: it stays (a failed run's logs).
pub fn keep(dir: &std::path::Path) {
    reg().dirs.retain(|d| d != dir);
}

/// Sends `sig` to `pid` (gone already is fine).
fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// SIGTERM to all, then up to 3 s for them to exit, then SIGKILL the rest; all are reaped.
fn terminate(mut procs: Vec<(String, Child)>) {
    for (_, c) in procs.iter_mut() {
        // Already exited: nothing to signal (its pid may be reused once reaped).
        if matches!(c.try_wait(), Ok(None)) {
            signal(c.id(), rustix::process::Signal::TERM);
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
    clean(&mut reg());
}

fn clean(r: &mut Registry) {
    for pid in std::mem::take(&mut r.running) {
        signal(pid, rustix::process::Signal::KILL);
    }
    terminate(std::mem::take(&mut r.procs));
    let netns = std::mem::take(&mut r.netns);
    // Anything still running inside our namespaces (a client that was mid-connection) would
    // outlive them: `ip netns pids` finds it whatever started it.
    for ns in &netns {
        let pids = Command::new("ip").args(["netns", "pids", ns]).output();
        for pid in pids
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
            .split_whitespace()
        {
            if let Ok(pid) = pid.parse() {
                signal(pid, rustix::process::Signal::KILL);
            }
        }
    }
    for ns in netns.iter().rev() {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
    }
    for d in std::mem::take(&mut r.dirs) {
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
        // The lock is kept until the process exits: the main thread, still running, blocks at
        // its next creation instead of making something nobody would remove.
        let mut r = reg();
        clean(&mut r);
        std::process::exit(130);
    });
    Ok(())
}
