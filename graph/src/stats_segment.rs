//! The statistics segment: every worker's counters in one memory-mapped file that vpgctl maps
//! read-only, so reading counters never asks (or slows) the workers — VPP's stats segment.
//!
//! Layout (all integers little-endian u64):
//!
//! | word | meaning |
//! |---|---|
//! | 0 | magic `VPGSTAT1` |
//! | 1 | format version (1) |
//! | 2..6 | workers, nodes, errors, interfaces |
//! | 6, 7 | directory offset and length |
//! | 8, 9 | first worker block offset, block size |
//!
//! The directory is text, one line per node (`node\tNAME`) and per error
//! (`error\tNODE\tNAME\tDESCRIPTION`), in index order. A worker block holds node counters (calls,
//! vectors, clocks per node), error counters, interface counters (rx packets, rx bytes, tx
//! packets, tx bytes, drops) and the runtime's own counters, each a u64 written by one worker.

use crate::counters::{block_size, WorkerStats};
use crate::graph::Layout;
use crate::sys::SharedRegion;
use std::path::Path;
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"VPGSTAT1";
const VERSION: u64 = 1;
const HEADER: usize = 10 * 8;

/// Names for counter indices: what `show` needs to label rows.
pub trait CounterNames {
    /// Number of nodes.
    fn node_count(&self) -> usize;
    /// Name of node `i`.
    fn node_name(&self, i: usize) -> &str;
    /// Number of errors.
    fn error_count(&self) -> usize;
    /// (node, short name, description) of global error `e`.
    fn error_names(&self, e: usize) -> Option<(&str, &str, &str)>;
}

impl CounterNames for Layout {
    fn node_count(&self) -> usize {
        Layout::node_count(self)
    }
    fn node_name(&self, i: usize) -> &str {
        self.registration(i as u32).map_or("?", |r| r.name.as_str())
    }
    fn error_count(&self) -> usize {
        Layout::error_count(self)
    }
    fn error_names(&self, e: usize) -> Option<(&str, &str, &str)> {
        self.error_info(e).map(|(n, d)| (n, d.name, d.description))
    }
}

impl<T: CounterNames + ?Sized> CounterNames for Arc<T> {
    fn node_count(&self) -> usize {
        (**self).node_count()
    }
    fn node_name(&self, i: usize) -> &str {
        (**self).node_name(i)
    }
    fn error_count(&self) -> usize {
        (**self).error_count()
    }
    fn error_names(&self, e: usize) -> Option<(&str, &str, &str)> {
        (**self).error_names(e)
    }
}

/// The writer side: created by the daemon, hands each worker its counters.
pub struct StatsSegment {
    region: Arc<SharedRegion>,
    workers: usize,
    nodes: usize,
    errors: usize,
    interfaces: usize,
    block_off: usize,
    block: usize,
}

impl StatsSegment {
    /// Creates the segment for `layout` and `workers` workers, at `path` (a file others can map)
    /// or anonymous when `path` is None.
    pub fn create(
        path: Option<&Path>,
        layout: &Layout,
        workers: usize,
        interfaces: usize,
    ) -> std::io::Result<Self> {
        let mut dir = String::new();
        for i in 0..layout.node_count() {
            dir.push_str(&format!("node\t{}\n", CounterNames::node_name(layout, i)));
        }
        for e in 0..layout.error_count() {
            if let Some((n, name, d)) = layout.error_names(e) {
                dir.push_str(&format!("error\t{n}\t{name}\t{d}\n"));
            }
        }
        let (nodes, errors) = (layout.node_count(), layout.error_count());
        let block = block_size(nodes, errors, interfaces);
        let block_off = (HEADER + dir.len()).div_ceil(64) * 64;
        let len = block_off + block * workers.max(1);
        let region = match path {
            Some(p) => SharedRegion::create_file(p, len)?,
            None => SharedRegion::anonymous(len)?,
        };
        let mut h = Vec::with_capacity(HEADER);
        h.extend_from_slice(MAGIC);
        for v in [
            VERSION,
            workers as u64,
            nodes as u64,
            errors as u64,
            interfaces as u64,
            HEADER as u64,
            dir.len() as u64,
            block_off as u64,
            block as u64,
        ] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        region.write_at(0, &h);
        region.write_at(HEADER, dir.as_bytes());
        Ok(Self {
            region,
            workers: workers.max(1),
            nodes,
            errors,
            interfaces,
            block_off,
            block,
        })
    }

    /// Worker `w`'s counters.
    pub fn worker_stats(&self, w: usize) -> Option<WorkerStats> {
        if w >= self.workers {
            return None;
        }
        WorkerStats::in_region(
            &self.region,
            self.block_off + w * self.block,
            self.nodes,
            self.errors,
            self.interfaces,
        )
    }

    /// Interfaces each worker block has room for.
    pub fn interfaces(&self) -> usize {
        self.interfaces
    }
}

/// Why a segment could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The file could not be mapped.
    #[error("cannot map stats segment: {0}")]
    Io(#[from] std::io::Error),
    /// Not a vpg stats segment, or another version.
    #[error("not a vpg stats segment (or an unsupported version)")]
    Format,
}

/// The reader side (vpgctl): a read-only mapping with the names from its directory.
pub struct StatsView {
    workers: Vec<WorkerStats>,
    nodes: Vec<String>,
    errors: Vec<(String, String, String)>,
}

impl StatsView {
    /// Maps the segment at `path`.
    pub fn open(path: &Path) -> Result<Self, StatsError> {
        let region = SharedRegion::open_read(path)?;
        let h = region.read_at(0, HEADER).ok_or(StatsError::Format)?;
        let word = |i: usize| {
            u64::from_le_bytes(h[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8])) as usize
        };
        if &h[..8] != MAGIC || word(1) != VERSION as usize {
            return Err(StatsError::Format);
        }
        let (workers, nodes, errors, interfaces) = (word(2), word(3), word(4), word(5));
        let dir = region.read_at(word(6), word(7)).ok_or(StatsError::Format)?;
        let dir = String::from_utf8(dir).map_err(|_| StatsError::Format)?;
        let mut node_names = Vec::new();
        let mut error_names = Vec::new();
        for line in dir.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["node", n] => node_names.push(n.to_string()),
                ["error", n, name, d] => {
                    error_names.push((n.to_string(), name.to_string(), d.to_string()))
                }
                _ => return Err(StatsError::Format),
            }
        }
        if node_names.len() != nodes
            || error_names.len() != errors
            || word(9) != block_size(nodes, errors, interfaces)
        {
            return Err(StatsError::Format);
        }
        let stats = (0..workers)
            .map(|w| {
                WorkerStats::in_region(&region, word(8) + w * word(9), nodes, errors, interfaces)
            })
            .collect::<Option<Vec<_>>>()
            .ok_or(StatsError::Format)?;
        Ok(Self {
            workers: stats,
            nodes: node_names,
            errors: error_names,
        })
    }

    /// Every worker's counters (read only: do not clear through a view).
    pub fn workers(&self) -> &[WorkerStats] {
        &self.workers
    }
}

impl CounterNames for StatsView {
    fn node_count(&self) -> usize {
        self.nodes.len()
    }
    fn node_name(&self, i: usize) -> &str {
        self.nodes.get(i).map_or("?", |s| s.as_str())
    }
    fn error_count(&self) -> usize {
        self.errors.len()
    }
    fn error_names(&self, e: usize) -> Option<(&str, &str, &str)> {
        self.errors
            .get(e)
            .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
    }
}
