//! The data directory's lock and the pod records handed to vpg-agent.
//!
//! ```text
//! <dataDir>/lock                         flock(2): one invocation at a time changes IPAM or records
//! <dataDir>/ipam/<network>/...           see crate::ipam
//! <dataDir>/pods/<containerid>@<ifname>.json   one record per attachment (docs/cni.md)
//! ```
//!
//! Records are written to a hidden temporary file in the same directory, synced, then renamed
//! over the final name, so a reader (the agent, watching the directory) sees either no record or
//! a whole one, never a partial file.

use crate::config::Attachment;
use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// An exclusive lock on the data directory, released when dropped (closing the file releases a
/// flock, also when the process dies, so a crashed plugin never leaves the node locked).
pub struct Lock {
    _file: File,
}

/// Why the lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another invocation held it for longer than the timeout.
    Timeout(Duration),
    /// The directory or lock file could not be created or opened.
    Io(io::Error),
}

impl Lock {
    /// Takes the lock of `data_dir` (created if missing), waiting up to `timeout`.
    pub fn acquire(data_dir: &Path, timeout: Duration) -> Result<Self, LockError> {
        fs::create_dir_all(data_dir).map_err(LockError::Io)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(data_dir.join("lock"))
            .map_err(LockError::Io)?;
        // Polled rather than blocking, so a stuck holder turns into "try again later" (code 11)
        // instead of a runtime timing the plugin out.
        let t0 = Instant::now();
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Lock { _file: file }),
                Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::INTR => {
                    if t0.elapsed() >= timeout {
                        return Err(LockError::Timeout(timeout));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(LockError::Io(e.into())),
            }
        }
    }
}

/// The record of one attachment, the contract between vpg-cni and vpg-agent (docs/cni.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    /// Format version of the record; 1 today. Readers skip records of a major they don't know.
    pub version: u32,
    /// The CNI network name.
    pub network: String,
    /// `CNI_CONTAINERID` (the pod sandbox).
    pub container_id: String,
    /// `K8S_POD_NAMESPACE` from `CNI_ARGS`, when given.
    pub pod_namespace: Option<String>,
    /// `K8S_POD_NAME` from `CNI_ARGS`, when given.
    pub pod_name: Option<String>,
    /// `K8S_POD_UID` from `CNI_ARGS`, when given.
    pub pod_uid: Option<String>,
    /// `CNI_NETNS`: the pod's network namespace path.
    pub netns: String,
    /// `CNI_IFNAME`: the interface inside the pod.
    pub ifname: String,
    /// The MAC address of the pod's interface (vpg may install it as a static neighbor).
    pub mac: String,
    /// The host end of the veth: the interface vpgd attaches with AF_PACKET.
    pub host_ifname: String,
    /// The MAC address of the host end.
    pub host_mac: String,
    /// Where the host end is: a namespace path, or null for the namespace the plugin ran in.
    pub host_netns: Option<String>,
    /// The pod's address, without prefix.
    pub ip: String,
    /// Its prefix length on the pod interface (32: everything goes through the gateway).
    pub prefix_len: u8,
    /// The node's pod CIDR the address came from.
    pub pod_cidr: String,
    /// The pod's gateway, which vpg answers ARP for on the host end.
    pub gateway: String,
    /// MTU of both veth ends.
    pub mtu: u32,
    /// When ADD wrote the record, RFC 3339 UTC.
    pub created: String,
}

/// The pod records directory.
pub fn pods_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pods")
}

/// The record file of an attachment. `@` separates the two parts: container ids never hold it
/// and our interface names may not either (crate::env::valid_ifname).
pub fn record_path(data_dir: &Path, att: &Attachment) -> PathBuf {
    pods_dir(data_dir).join(format!("{}@{}.json", att.container_id, att.ifname))
}

/// Writes `rec` atomically (temp file, fsync, rename, fsync of the directory).
pub fn write_record(data_dir: &Path, rec: &PodRecord) -> io::Result<()> {
    let dir = pods_dir(data_dir);
    fs::create_dir_all(&dir)?;
    let att = Attachment {
        container_id: rec.container_id.clone(),
        ifname: rec.ifname.clone(),
    };
    let path = record_path(data_dir, &att);
    let tmp = dir.join(format!(
        ".{}@{}.{}.tmp",
        rec.container_id,
        rec.ifname,
        std::process::id()
    ));
    let body = serde_json::to_vec_pretty(rec).map_err(io::Error::other)?;
    let r = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&body)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(&dir)?.sync_all()
    })();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// Reads the record of `att`: `Ok(None)` when there is none.
pub fn read_record(data_dir: &Path, att: &Attachment) -> io::Result<Option<PodRecord>> {
    match fs::read(record_path(data_dir, att)) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the record of `att` (missing is fine).
pub fn remove_record(data_dir: &Path, att: &Attachment) -> io::Result<()> {
    match fs::remove_file(record_path(data_dir, att)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The attachments that have a record (from the file names), for GC.
pub fn recorded(data_dir: &Path) -> io::Result<Vec<Attachment>> {
    let rd = match fs::read_dir(pods_dir(data_dir)) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in rd {
        let name = e?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if stem.starts_with('.') {
            continue;
        }
        if let Some((c, i)) = stem.split_once('@') {
            out.push(Attachment {
                container_id: c.to_string(),
                ifname: i.to_string(),
            });
        }
    }
    Ok(out)
}

/// The name of the host end of an attachment's veth: `vpg` and 12 hex digits of the 64-bit
/// FNV-1a hash of `<container id> NUL <ifname>`. Deterministic, so DEL finds it without the
/// record; 15 bytes, the kernel's limit; 48 bits make a collision among a node's pods
/// negligible (and a collision fails ADD with "exists", never hijacks another pod's veth).
pub fn host_ifname(att: &Attachment) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in att
        .container_id
        .bytes()
        .chain(std::iter::once(0))
        .chain(att.ifname.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("vpg{:012x}", h >> 16)
}

/// `t` (seconds since the Unix epoch) as RFC 3339 UTC, `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(t: u64) -> String {
    let (days, secs) = (t / 86_400, t % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm), in unsigned steps
    // since the epoch is in era 4 and t is not negative.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(c: &str, i: &str) -> Attachment {
        Attachment {
            container_id: c.into(),
            ifname: i.into(),
        }
    }

    #[test]
    fn host_names_are_short_stable_and_distinct() {
        let a = host_ifname(&att("abc", "eth0"));
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("vpg"));
        assert_eq!(a, host_ifname(&att("abc", "eth0")));
        assert_ne!(a, host_ifname(&att("abc", "eth1")));
        assert_ne!(a, host_ifname(&att("abd", "eth0")));
        // The separator keeps "ab"+"ceth0" apart from "abc"+"eth0".
        assert_ne!(a, host_ifname(&att("ab", "ceth0")));
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_800), "2100-01-01T00:00:00Z");
    }

    #[test]
    fn records_round_trip_atomically() {
        let d = tempfile::tempdir().unwrap();
        let rec = PodRecord {
            version: 1,
            network: "vpg".into(),
            container_id: "c1".into(),
            pod_namespace: Some("default".into()),
            pod_name: Some("web".into()),
            pod_uid: None,
            netns: "/var/run/netns/x".into(),
            ifname: "eth0".into(),
            mac: "02:00:00:00:00:01".into(),
            host_ifname: "vpg0123456789ab".into(),
            host_mac: "02:00:00:00:00:02".into(),
            host_netns: None,
            ip: "10.1.1.2".into(),
            prefix_len: 32,
            pod_cidr: "10.1.1.0/24".into(),
            gateway: "10.1.1.1".into(),
            mtu: 1450,
            created: rfc3339(0),
        };
        let a = att("c1", "eth0");
        assert_eq!(read_record(d.path(), &a).unwrap(), None);
        write_record(d.path(), &rec).unwrap();
        assert_eq!(read_record(d.path(), &a).unwrap(), Some(rec.clone()));
        assert_eq!(recorded(d.path()).unwrap(), std::slice::from_ref(&a));
        // Only the record is left in the directory: no temporary files.
        assert_eq!(fs::read_dir(pods_dir(d.path())).unwrap().count(), 1);
        let v: serde_json::Value =
            serde_json::from_slice(&fs::read(record_path(d.path(), &a)).unwrap()).unwrap();
        assert_eq!(v["containerId"], "c1");
        assert_eq!(v["hostIfname"], "vpg0123456789ab");
        assert_eq!(v["podUid"], serde_json::Value::Null);
        remove_record(d.path(), &a).unwrap();
        remove_record(d.path(), &a).unwrap();
        assert_eq!(read_record(d.path(), &a).unwrap(), None);
    }

    #[test]
    fn lock_excludes_and_times_out() {
        let d = tempfile::tempdir().unwrap();
        let l = Lock::acquire(d.path(), Duration::from_secs(1)).unwrap();
        let r = Lock::acquire(d.path(), Duration::from_millis(30));
        assert!(matches!(r, Err(LockError::Timeout(_))));
        drop(l);
        Lock::acquire(d.path(), Duration::from_millis(30)).unwrap();
    }
}
