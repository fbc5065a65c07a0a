//! Running code inside a network namespace given by path.
//!
//! setns(2) changes the namespace of the calling thread only, so the work runs on a new thread
//! that enters the namespace first and ends with the work: the plugin's main thread never moves.
//! Processes that thread starts (`ip`, `ethtool`) are created in the thread's namespace, which
//! is how the interface configuration reaches the pod without `ip netns exec` (that needs a name
//! under /var/run/netns, while runtimes may pass any path, such as /proc/PID/ns/net).

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// Why a namespace could not be entered.
#[derive(Debug)]
pub enum NsError {
    /// The path does not exist (the container is gone).
    Missing(PathBuf),
    /// The path exists but is not a network namespace.
    NotNetns(PathBuf, io::Error),
    /// Opening or entering failed otherwise (permissions).
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for NsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NsError::Missing(p) => write!(f, "{} does not exist", p.display()),
            NsError::NotNetns(p, e) => {
                write!(f, "{} is not a network namespace ({e})", p.display())
            }
            NsError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

/// Opens a namespace file, so that a missing path is told apart before any work starts.
pub fn open(path: &Path) -> Result<File, NsError> {
    File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => NsError::Missing(path.to_path_buf()),
        _ => NsError::Io(path.to_path_buf(), e),
    })
}

/// Runs `f` inside the network namespace at `path` (on a new thread), or on the calling thread
/// when `path` is `None` (the plugin's own namespace). A panic in `f` is resumed here.
pub fn run_in<R: Send>(path: Option<&Path>, f: impl FnOnce() -> R + Send) -> Result<R, NsError> {
    let Some(path) = path else {
        return Ok(f());
    };
    let file = open(path)?;
    std::thread::scope(|s| {
        let h = s.spawn(move || -> Result<R, NsError> {
            move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network)).map_err(
                |e| {
                    let e = io::Error::from(e);
                    if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) {
                        NsError::NotNetns(path.to_path_buf(), e)
                    } else {
                        NsError::Io(path.to_path_buf(), e)
                    }
                },
            )?;
            Ok(f())
        });
        match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// The names of the interfaces in the calling thread's network namespace.
///
/// /proc/thread-self/net follows the thread's namespace (unlike /sys/class/net, which follows
/// the namespace /sys was mounted from), so this answers "does the device exist here" without
/// starting a process or matching iproute2's error text.
pub fn links() -> io::Result<Vec<String>> {
    let s = std::fs::read_to_string("/proc/thread-self/net/dev")?;
    Ok(parse_net_dev(&s))
}

fn parse_net_dev(s: &str) -> Vec<String> {
    // Two header lines, then "  name: counters...".
    s.lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
        .filter(|n| !n.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_names() {
        let s = "Inter-|   Receive                            |  Transmit\n face |bytes    packets\n    lo: 0 0 0\n  eth0: 1 2 3\nvpg0123456789ab:   5 6\n";
        assert_eq!(parse_net_dev(s), ["lo", "eth0", "vpg0123456789ab"]);
    }

    #[test]
    fn own_namespace_lists_loopback() {
        assert!(links().unwrap().iter().any(|l| l == "lo"));
    }

    #[test]
    fn missing_and_non_namespace_paths() {
        let r = run_in(Some(Path::new("/nonexistent/netns/x")), || ());
        assert!(matches!(r, Err(NsError::Missing(_))), "{r:?}");
        // A regular file is not a namespace (setns: EINVAL), whatever our privileges.
        let f = tempfile_path();
        std::fs::write(&f, b"x").unwrap();
        let r = run_in(Some(&f), || ());
        let _ = std::fs::remove_file(&f);
        assert!(
            matches!(r, Err(NsError::NotNetns(..)) | Err(NsError::Io(..))),
            "{r:?}"
        );
        assert_eq!(run_in(None, || 7).unwrap(), 7);
    }

    fn tempfile_path() -> PathBuf {
        std::env::temp_dir().join(format!("vpg-cni-netns-test-{}", std::process::id()))
    }
}
