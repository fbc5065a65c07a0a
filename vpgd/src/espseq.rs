//! Outbound ESP sequence numbers kept across restarts (`[esp] sequence_file`).
//!
//! AES-GCM's nonce is the SA's salt and its sequence number: one (key, sequence number) pair
//! used twice gives away the keystream and the authentication key. An SA counts from 1, so a
//! vpgd that restarts and gets the same key again (vpg-agent's keys are derived from the
//! cluster's key, which does not change because a node restarted) must continue after every
//! number its previous life may have sent. This file is how it knows: per key fingerprint, the
//! highest sequence number reserved.
//!
//! Reservations are made ahead of use, `reserve` numbers at a time, and written (synced,
//! renamed into place) before the workers may use them: a new outbound SA starts after its
//! key's record with a limit `reserve` further; a control thread raises an SA's limit once half
//! of its reservation is used, again after the write. The owner worker drops (and counts:
//! `seq-unreserved`) a packet whose number is not yet on disk, so a stalled disk costs packets,
//! never a nonce. A restart skips at most `reserve` numbers per SA, which the receiver's
//! anti-replay window takes as ordinary loss.
//!
//! Inbound SAs keep the other half: how far each key's window has accepted, written every
//! second (and at shutdown) when it moved. A restarted vpgd's inbound SA for a recorded key
//! starts with a window that has seen everything up to that number, so a packet captured before
//! the restart and replayed after it is refused (up to the last second of traffic before a
//! crash; none after a clean stop). The sender, whose own outbound numbers never go back, is
//! always ahead of it.
//!
//! The records are never pruned: a key may come back (an agent that restarts during a
//! rotation), and its record must be there. Each is one line of the file (a rotation adds one
//! per peer and worker and direction).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use vpg_esp::SaSequence;

/// The file's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Body {
    version: u32,
    /// Outbound: key fingerprint → highest sequence number reserved.
    reserved: BTreeMap<String, u64>,
    /// Inbound: key fingerprint → highest sequence number accepted (at the last write).
    #[serde(default)]
    accepted: BTreeMap<String, u64>,
}

/// One record, for the dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Key fingerprint.
    pub fingerprint: String,
    /// Outbound (reserved up to `seq`) or inbound (accepted up to `seq`).
    pub outbound: bool,
    /// The number.
    pub seq: u64,
    /// The live SA with the key.
    pub sa: Option<u32>,
}

/// The sequence file and the SAs whose numbers it keeps.
#[derive(Debug)]
pub struct SequenceFile {
    path: PathBuf,
    reserve: u64,
    records: Body,
    /// SAs it keeps numbers of, by generation.
    live: BTreeMap<u64, SaSequence>,
}

/// A refusal to reserve (the transaction or the extension is not applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sequence file {path}: {why}")]
pub struct SequenceError {
    /// The file.
    pub path: String,
    /// What failed.
    pub why: String,
}

impl SequenceFile {
    /// Opens (or creates) the file. A file that exists but cannot be read is an error: which
    /// numbers were used is then unknown, and guessing could repeat nonces. Writing it at once
    /// checks that the directory is writable before any SA depends on it.
    pub fn open(path: &Path, reserve: u64) -> Result<Self, SequenceError> {
        let err = |why: String| SequenceError {
            path: path.display().to_string(),
            why,
        };
        let records = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Body {
                version: 1,
                ..Body::default()
            },
            Err(e) => return Err(err(e.to_string())),
            Ok(b) => match serde_json::from_slice::<Body>(&b) {
                Ok(f) if f.version == 1 => f,
                Ok(f) => return Err(err(format!("version {} is unknown", f.version))),
                Err(e) => {
                    return Err(err(format!(
                        "{e} (it records which ESP sequence numbers were used; removing it \
                         lets a restarted vpgd repeat AES-GCM nonces under keys it used)"
                    )))
                }
            },
        };
        let f = SequenceFile {
            path: path.to_path_buf(),
            reserve,
            records,
            live: BTreeMap::new(),
        };
        f.write(&f.records)
            .map_err(|e| err(format!("cannot be written: {e}")))?;
        Ok(f)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The highest number reserved under the outbound key with `fingerprint`, if it was ever
    /// used.
    pub fn record(&self, fingerprint: &str) -> Option<u64> {
        self.records.reserved.get(fingerprint).copied()
    }

    /// How far the inbound key with `fingerprint` had accepted at the last write.
    pub fn accepted(&self, fingerprint: &str) -> Option<u64> {
        self.records.accepted.get(fingerprint).copied()
    }

    /// Every record (outbound first), with the live SA that has the key.
    pub fn records(&self) -> Vec<Record> {
        let sa = |fp: &str, outbound: bool| {
            self.live
                .values()
                .find(|s| s.fingerprint == fp && s.outbound == outbound)
                .map(|s| s.id)
        };
        let r = &self.records;
        r.reserved
            .iter()
            .map(|(fp, &seq)| (fp, seq, true))
            .chain(r.accepted.iter().map(|(fp, &seq)| (fp, seq, false)))
            .map(|(fp, seq, outbound)| Record {
                fingerprint: fp.clone(),
                outbound,
                seq,
                sa: sa(fp, outbound),
            })
            .collect()
    }

    /// The limit of the live outbound SA `id` (what is reserved for it), if it has one.
    pub fn limit(&self, id: u32) -> Option<u64> {
        self.live
            .values()
            .find(|s| s.id == id && s.outbound)
            .map(|s| s.shared.seq_limit())
    }

    /// Takes the SAs of a configuration about to be published. Each new outbound SA starts
    /// after its key's record (0 for a key never used) with `reserve` numbers reserved, written
    /// to the file before anything else changes; each new inbound SA whose key has a record
    /// starts its window after it. SAs no longer there are forgotten (their records stay). On
    /// a write error nothing changes.
    pub fn take(&mut self, sas: &[SaSequence]) -> Result<(), SequenceError> {
        let new: Vec<&SaSequence> = sas
            .iter()
            .filter(|s| !self.live.contains_key(&s.gen))
            .collect();
        let mut records = self.records.clone();
        let mut starts = Vec::with_capacity(new.len());
        for s in &new {
            starts.push(if s.outbound {
                let start = records.reserved.get(&s.fingerprint).copied().unwrap_or(0);
                let limit = start.saturating_add(self.reserve);
                records.reserved.insert(s.fingerprint.clone(), limit);
                (start, limit)
            } else {
                let start = records.accepted.get(&s.fingerprint).copied().unwrap_or(0);
                (start, u64::MAX)
            });
        }
        if records != self.records {
            self.write(&records).map_err(|why| self.error(why))?;
        }
        for (s, (start, limit)) in new.iter().zip(starts) {
            s.shared.start_sequence(start, limit);
        }
        let now: BTreeSet<u64> = sas.iter().map(|s| s.gen).collect();
        self.live.retain(|g, _| now.contains(g));
        for s in new {
            self.live.insert(s.gen, s.clone());
        }
        self.records = records;
        Ok(())
    }

    /// Extends the reservation of every live outbound SA that has used half of its own: one
    /// write for all, then the limits go up. Returns how many were extended.
    pub fn extend(&mut self) -> Result<usize, SequenceError> {
        let half = self.reserve / 2;
        let due: Vec<(&SaSequence, u64)> = self
            .live
            .values()
            .filter(|s| s.outbound)
            .filter_map(|s| {
                let (used, limit) = (s.shared.seq_used(), s.shared.seq_limit());
                (limit.saturating_sub(used) < half).then(|| (s, used.saturating_add(self.reserve)))
            })
            .collect();
        if due.is_empty() {
            return Ok(0);
        }
        let mut records = self.records.clone();
        for (s, limit) in &due {
            let r = records.reserved.entry(s.fingerprint.clone()).or_insert(0);
            *r = (*r).max(*limit);
        }
        self.write(&records).map_err(|why| self.error(why))?;
        let n = due.len();
        for (s, limit) in due {
            s.shared.raise_limit(limit);
        }
        self.records = records;
        Ok(n)
    }

    /// Records how far every live inbound SA has accepted, when that moved: one write for all.
    /// Returns how many moved.
    pub fn note_accepted(&mut self) -> Result<usize, SequenceError> {
        let mut records = self.records.clone();
        let mut n = 0;
        for s in self.live.values().filter(|s| !s.outbound) {
            let top = s.shared.seq_used();
            let r = records.accepted.entry(s.fingerprint.clone()).or_insert(0);
            if top > *r {
                *r = top;
                n += 1;
            }
        }
        if n > 0 {
            self.write(&records).map_err(|why| self.error(why))?;
            self.records = records;
        }
        Ok(n)
    }

    fn error(&self, why: String) -> SequenceError {
        SequenceError {
            path: self.path.display().to_string(),
            why: format!("cannot be written: {why}"),
        }
    }

    /// Writes `records`: a temporary file, synced, renamed over the old one, the directory
    /// synced — the old content or the new, never a torn one.
    fn write(&self, records: &Body) -> Result<(), String> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let io = |e: std::io::Error| e.to_string();
        std::fs::create_dir_all(dir).map_err(io)?;
        let body = serde_json::to_vec_pretty(records).map_err(|e| e.to_string())?;
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&body).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vpg_esp::sa::SaShared;

    fn sa(id: u32, gen: u64, fp: &str, outbound: bool) -> SaSequence {
        SaSequence {
            id,
            gen,
            fingerprint: fp.into(),
            outbound,
            shared: Arc::new(if outbound {
                SaShared::with_sequence(0, 0)
            } else {
                SaShared::default()
            }),
        }
    }

    #[test]
    fn a_key_continues_after_its_reservation_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/seq.json");
        let mut f = SequenceFile::open(&path, 1000).unwrap();
        assert!(path.exists(), "created at once");
        let a = sa(1, 1, "aaaa", true);
        f.take(std::slice::from_ref(&a)).unwrap();
        assert_eq!((a.shared.seq_used(), a.shared.seq_limit()), (0, 1000));
        // Taking the same SA again changes nothing.
        f.take(std::slice::from_ref(&a)).unwrap();
        assert_eq!(f.record("aaaa"), Some(1000));
        // Half used: extended after the write.
        a.shared.note_used(400);
        assert_eq!(f.extend().unwrap(), 0);
        a.shared.note_used(600);
        assert_eq!(f.extend().unwrap(), 1);
        assert_eq!(a.shared.seq_limit(), 1600);
        assert_eq!(f.record("aaaa"), Some(1600));
        let rec = |fp: &str, outbound, seq, sa| Record {
            fingerprint: fp.into(),
            outbound,
            seq,
            sa,
        };
        assert_eq!(f.records(), vec![rec("aaaa", true, 1600, Some(1))]);
        drop(f);

        // A restart: the same key as a new SA starts after everything reserved.
        let mut f = SequenceFile::open(&path, 1000).unwrap();
        assert_eq!(f.records(), vec![rec("aaaa", true, 1600, None)]);
        let again = sa(1, 1, "aaaa", true);
        let other = sa(2, 2, "bbbb", true);
        f.take(&[again.clone(), other.clone()]).unwrap();
        assert_eq!(
            (again.shared.seq_used(), again.shared.seq_limit()),
            (1600, 2600)
        );
        assert_eq!(other.shared.seq_used(), 0);
        // An SA deleted: forgotten, its record kept; the key back later continues.
        f.take(std::slice::from_ref(&other)).unwrap();
        assert_eq!(f.limit(1), None);
        assert_eq!(f.record("aaaa"), Some(2600));
        let third = sa(3, 3, "aaaa", true);
        f.take(&[other, third.clone()]).unwrap();
        assert_eq!(third.shared.seq_used(), 2600);
    }

    #[test]
    fn an_inbound_window_starts_after_what_was_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seq.json");
        let mut f = SequenceFile::open(&path, 1000).unwrap();
        let i = sa(5, 1, "cccc", false);
        f.take(std::slice::from_ref(&i)).unwrap();
        assert_eq!(i.shared.seq_used(), 0, "never seen: a fresh window");
        assert_eq!(f.note_accepted().unwrap(), 0, "nothing accepted yet");
        i.shared.note_used(700);
        assert_eq!(f.note_accepted().unwrap(), 1);
        assert_eq!(f.note_accepted().unwrap(), 0, "written once per move");
        assert_eq!(f.accepted("cccc"), Some(700));
        assert_eq!(f.record("cccc"), None, "inbound keys reserve nothing");
        drop(f);
        let mut f = SequenceFile::open(&path, 1000).unwrap();
        let again = sa(5, 1, "cccc", false);
        f.take(std::slice::from_ref(&again)).unwrap();
        assert_eq!(
            (again.shared.seq_used(), again.shared.seq_limit()),
            (700, u64::MAX)
        );
        assert_eq!(f.records()[0].sa, Some(5));
        assert!(!f.records()[0].outbound);
    }

    #[test]
    fn an_unreadable_file_is_refused_and_a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seq.json");
        std::fs::write(&path, b"{not json").unwrap();
        let e = SequenceFile::open(&path, 1000).unwrap_err();
        assert!(e.to_string().contains("repeat AES-GCM nonces"), "{e}");
        std::fs::write(&path, br#"{"version":9,"reserved":{}}"#).unwrap();
        let e = SequenceFile::open(&path, 1000).unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");

        std::fs::remove_file(&path).unwrap();
        let mut f = SequenceFile::open(&path, 1000).unwrap();
        // The directory goes away (a full or read-only disk does the same): refused, nothing
        // tracked, the SA may send nothing.
        let a = sa(1, 1, "aaaa", true);
        std::fs::remove_dir_all(dir.path()).unwrap();
        std::fs::write(dir.path(), b"a file where the directory was").unwrap();
        let e = f.take(std::slice::from_ref(&a)).unwrap_err();
        assert!(e.to_string().contains("seq.json"), "{e}");
        assert_eq!((a.shared.seq_used(), a.shared.seq_limit()), (0, 0));
        assert_eq!(f.record("aaaa"), None);
        assert_eq!(f.limit(1), None);
        std::fs::remove_file(dir.path()).unwrap();
    }
}
