//! Host-local IPAM: one file per allocated address, persisted in the data directory.
//!
//! Layout (under `<dataDir>/ipam/<network name>/`):
//! - `<a.b.c.d>`: the address is allocated; the content is the container id and the interface
//!   name, one per line. It is created with `O_EXCL`, so an address is never handed out twice
//!   even if the lock were bypassed.
//! - `last_reserved_ip`: the address handed out last. Allocation continues after it and wraps
//!   around, so an address freed by DEL is not reused at once (a late packet or a stale
//!   policy entry for the old pod never reaches the new one while addresses remain).
//!
//! The network, broadcast and gateway addresses are never allocated. State survives plugin
//! restarts by construction: each invocation is a new process that reads the files. Callers hold
//! the data directory's [`Lock`](crate::state::Lock) across a read-modify-write.

use crate::config::{Attachment, Cidr};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

const LAST: &str = "last_reserved_ip";

/// The IPAM store of one network.
pub struct Store {
    dir: PathBuf,
}

/// Why allocation failed.
#[derive(Debug)]
pub enum AllocError {
    /// Every host address of the pod CIDR is taken.
    Exhausted,
    /// The attachment already holds this address.
    Duplicate(Ipv4Addr),
    /// Reading or writing the store failed.
    Io(io::Error),
}

impl From<io::Error> for AllocError {
    fn from(e: io::Error) -> Self {
        AllocError::Io(e)
    }
}

/// One allocation read back from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The address.
    pub ip: Ipv4Addr,
    /// Its owner; `None` when the file is empty or unreadable (a crash between creating and
    /// writing it): such an address stays reserved until GC removes it.
    pub owner: Option<Attachment>,
}

impl Store {
    /// The store of network `name` under `data_dir`, created if missing.
    pub fn open(data_dir: &Path, name: &str) -> io::Result<Self> {
        let dir = data_dir.join("ipam").join(name);
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every allocation, in address order.
    pub fn list(&self) -> io::Result<Vec<Allocation>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            let Some(ip) = e
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let owner = fs::read_to_string(e.path())
                .ok()
                .and_then(|s| parse_owner(&s));
            out.push(Allocation { ip, owner });
        }
        out.sort_by_key(|a| a.ip);
        Ok(out)
    }

    /// The address held by `att`, if any.
    pub fn find(&self, att: &Attachment) -> io::Result<Option<Ipv4Addr>> {
        Ok(self
            .list()?
            .into_iter()
            .find(|a| a.owner.as_ref() == Some(att))
            .map(|a| a.ip))
    }

    /// The owner of `ip`, if it is allocated.
    pub fn owner(&self, ip: Ipv4Addr) -> io::Result<Option<Attachment>> {
        match fs::read_to_string(self.dir.join(ip.to_string())) {
            Ok(s) => Ok(parse_owner(&s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Allocates the next free host address of `cidr` (never `gateway`) to `att`.
    pub fn allocate(
        &self,
        cidr: Cidr,
        gateway: Ipv4Addr,
        att: &Attachment,
    ) -> Result<Ipv4Addr, AllocError> {
        if let Some(ip) = self.find(att)? {
            return Err(AllocError::Duplicate(ip));
        }
        // Host addresses are network+1 ..= broadcast-1 (Cidr::parse keeps the prefix ≤ /30).
        let first = u32::from(cidr.network()) + 1;
        let last = u32::from(cidr.broadcast()) - 1;
        let n = last - first + 1;
        // Resume after the last address handed out, when it is still inside the range.
        let start = self
            .last_reserved()
            .map(u32::from)
            .filter(|l| (first..=last).contains(l))
            .map_or(0, |l| (l - first + 1) % n);
        for i in 0..n {
            let ip = Ipv4Addr::from(first + (start + i) % n);
            if ip == gateway {
                continue;
            }
            let path = self.dir.join(ip.to_string());
            let mut f = match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            };
            let written = f
                .write_all(format!("{}\n{}\n", att.container_id, att.ifname).as_bytes())
                .and_then(|()| f.sync_all());
            if let Err(e) = written {
                let _ = fs::remove_file(&path);
                return Err(e.into());
            }
            // Only a hint for the next allocation: losing it costs reuse order, never safety.
            let _ = fs::write(self.dir.join(LAST), format!("{ip}\n"));
            return Ok(ip);
        }
        Err(AllocError::Exhausted)
    }

    /// Frees every address held by `att`; returns them (none is not an error: DEL is
    /// idempotent).
    pub fn release(&self, att: &Attachment) -> io::Result<Vec<Ipv4Addr>> {
        let mut freed = Vec::new();
        for a in self.list()? {
            if a.owner.as_ref() == Some(att) {
                self.remove(a.ip)?;
                freed.push(a.ip);
            }
        }
        Ok(freed)
    }

    /// Removes the file of `ip` (missing is fine).
    pub fn remove(&self, ip: Ipv4Addr) -> io::Result<()> {
        match fs::remove_file(self.dir.join(ip.to_string())) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether any host address of `cidr` other than `gateway` is free.
    pub fn has_free(&self, cidr: Cidr, gateway: Ipv4Addr) -> io::Result<bool> {
        let used = self
            .list()?
            .into_iter()
            .filter(|a| cidr.contains(a.ip) && a.ip != gateway)
            .count() as u64;
        let hosts = u64::from(u32::from(cidr.broadcast()) - u32::from(cidr.network())) - 1;
        Ok(used < hosts - 1)
    }

    fn last_reserved(&self) -> Option<Ipv4Addr> {
        fs::read_to_string(self.dir.join(LAST))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

fn parse_owner(s: &str) -> Option<Attachment> {
    let mut l = s.lines();
    let container_id = l.next()?.trim();
    let ifname = l.next()?.trim();
    (!container_id.is_empty() && !ifname.is_empty()).then(|| Attachment {
        container_id: container_id.to_string(),
        ifname: ifname.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(c: &str) -> Attachment {
        Attachment {
            container_id: c.into(),
            ifname: "eth0".into(),
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_in_order_skipping_gateway_and_does_not_reuse_at_once() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), "net").unwrap();
        let c = Cidr::parse("10.1.1.0/29").unwrap();
        let gw = ip("10.1.1.1");
        assert_eq!(s.allocate(c, gw, &att("a")).unwrap(), ip("10.1.1.2"));
        assert_eq!(s.allocate(c, gw, &att("b")).unwrap(), ip("10.1.1.3"));
        assert_eq!(s.release(&att("a")).unwrap(), [ip("10.1.1.2")]);
        assert!(s.release(&att("a")).unwrap().is_empty());
        // .2 is free again, but allocation continues after .3.
        assert_eq!(s.allocate(c, gw, &att("c")).unwrap(), ip("10.1.1.4"));
        // A new Store (a new plugin process) sees the same state.
        let s = Store::open(d.path(), "net").unwrap();
        assert_eq!(s.find(&att("b")).unwrap(), Some(ip("10.1.1.3")));
        assert_eq!(s.owner(ip("10.1.1.4")).unwrap(), Some(att("c")));
        assert_eq!(s.owner(ip("10.1.1.2")).unwrap(), None);
        assert!(matches!(
            s.allocate(c, gw, &att("b")),
            Err(AllocError::Duplicate(x)) if x == ip("10.1.1.3")
        ));
        assert_eq!(s.allocate(c, gw, &att("d")).unwrap(), ip("10.1.1.5"));
        assert_eq!(s.allocate(c, gw, &att("e")).unwrap(), ip("10.1.1.6"));
        assert!(s.has_free(c, gw).unwrap());
        // Wraps around to the freed .2; .7 is the broadcast address.
        assert_eq!(s.allocate(c, gw, &att("f")).unwrap(), ip("10.1.1.2"));
        assert!(!s.has_free(c, gw).unwrap());
        assert!(matches!(
            s.allocate(c, gw, &att("g")),
            Err(AllocError::Exhausted)
        ));
        assert_eq!(s.list().unwrap().len(), 5);
    }

    #[test]
    fn gateway_anywhere_in_the_range_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), "net").unwrap();
        let c = Cidr::parse("10.1.1.0/30").unwrap();
        let gw = ip("10.1.1.2");
        assert_eq!(s.allocate(c, gw, &att("a")).unwrap(), ip("10.1.1.1"));
        assert!(matches!(
            s.allocate(c, gw, &att("b")),
            Err(AllocError::Exhausted)
        ));
    }

    #[test]
    fn empty_files_stay_reserved_and_stray_files_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), "net").unwrap();
        fs::write(s.dir().join("10.1.1.2"), "").unwrap();
        fs::write(s.dir().join("notes.txt"), "x").unwrap();
        fs::write(s.dir().join(LAST), "garbage").unwrap();
        let c = Cidr::parse("10.1.1.0/24").unwrap();
        assert_eq!(
            s.allocate(c, ip("10.1.1.1"), &att("a")).unwrap(),
            ip("10.1.1.3")
        );
        let l = s.list().unwrap();
        assert_eq!(
            l[0],
            Allocation {
                ip: ip("10.1.1.2"),
                owner: None
            }
        );
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn last_reserved_outside_a_changed_cidr_restarts_at_the_beginning() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path(), "net").unwrap();
        fs::write(s.dir().join(LAST), "192.168.0.9\n").unwrap();
        let c = Cidr::parse("10.1.1.0/24").unwrap();
        assert_eq!(
            s.allocate(c, ip("10.1.1.1"), &att("a")).unwrap(),
            ip("10.1.1.2")
        );
    }
}
