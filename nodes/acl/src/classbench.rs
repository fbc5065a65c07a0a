//! ClassBench rule sets and header traces (the format `dpdk-test-acl` reads), for the
//! correctness test that reproduces every expected match and for `vpg-bench`'s
//! `acl-classify-*` scenarios.

use crate::rule::{PacketKey, RuleKey};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The four sets shipped in `../shared/bench/classbench`.
pub const SETS: [&str; 4] = ["acl1_1k", "acl1_10k", "fw1_1k", "fw1_10k"];

/// Why a ClassBench file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClassbenchError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A line that is not in the format.
    #[error("{path} line {line}: {why}")]
    Format {
        /// File.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

/// The data directory: `$VPG_CLASSBENCH_DIR`, else `shared/bench/classbench` next to the project
/// checkout (found by walking up from `start`).
pub fn data_dir(start: &Path) -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("VPG_CLASSBENCH_DIR") {
        return Some(PathBuf::from(d));
    }
    start
        .ancestors()
        .map(|a| a.join("shared/bench/classbench"))
        .find(|p| p.join("acl1_1k.rules").is_file())
}

/// A buffered reader of `path`, gunzipped when its name ends in `.gz`.
pub fn open(path: &Path) -> Result<Box<dyn BufRead>, ClassbenchError> {
    let io = |source| ClassbenchError::Io {
        path: path.display().to_string(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let r: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 20, r)))
}

fn prefix(s: &str) -> Option<(u32, u32)> {
    let (a, l) = s.split_once('/')?;
    let a: std::net::Ipv4Addr = a.parse().ok()?;
    let l: u32 = l.parse().ok()?;
    if l > 32 {
        return None;
    }
    let host = if l == 0 {
        u32::MAX
    } else {
        (1u32 << (32 - l)) - 1
    };
    let lo = a.to_bits() & !host;
    Some((lo, lo | host))
}

fn range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once(':')?;
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

fn hex8(s: &str) -> Option<u8> {
    u8::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// Parses one rule line (`@src/len dst/len lo : hi lo : hi proto/mask flags/mask`). The flags
/// field is a ClassBench extra that 5-tuple classifiers ignore, so it is not kept.
pub fn parse_rule(line: &str) -> Option<RuleKey> {
    let mut f = line.trim().trim_start_matches('@').split('\t');
    let src = prefix(f.next()?.trim())?;
    let dst = prefix(f.next()?.trim())?;
    let sport = range(f.next()?)?;
    let dport = range(f.next()?)?;
    let (p, m) = f.next()?.trim().split_once('/')?;
    let (p, m) = (hex8(p)?, hex8(m)?);
    let proto = match m {
        0 => None,
        0xff => Some(p),
        _ => return None,
    };
    Some(RuleKey {
        src,
        dst,
        sport,
        dport,
        proto,
        tcp_flags: (0, 0),
    })
}

/// Parses the first `max` non-empty lines of `path` with `parse`; a line it refuses is a format
/// error naming the file, the line and `what` the line should have been.
fn read_lines<T>(
    path: &Path,
    max: usize,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, ClassbenchError> {
    let mut out = Vec::new();
    for (i, line) in open(path)?.lines().enumerate() {
        if out.len() >= max {
            break;
        }
        let line = line.map_err(|source| ClassbenchError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse(&line).ok_or_else(|| ClassbenchError::Format {
            path: path.display().to_string(),
            line: i + 1,
            why: format!("not {what}: {line:?}"),
        })?);
    }
    Ok(out)
}

/// Reads a rules file.
pub fn read_rules(path: &Path) -> Result<Vec<RuleKey>, ClassbenchError> {
    read_lines(path, usize::MAX, "a ClassBench rule", parse_rule)
}

/// Parses one trace line (`src dst sport dport proto flags rule`, decimal).
pub fn parse_header(line: &str) -> Option<PacketKey> {
    let mut v = line.split_ascii_whitespace().map(|t| t.parse::<u32>().ok());
    let mut next = || v.next().flatten();
    let (src, dst, sport, dport, proto) = (next()?, next()?, next()?, next()?, next()?);
    Some(PacketKey {
        src,
        dst,
        sport: u16::try_from(sport).ok()?,
        dport: u16::try_from(dport).ok()?,
        proto: u8::try_from(proto).ok()?,
        tcp_flags: 0,
        icmp_id: 0,
    })
}

/// Reads the first `max` headers of a trace.
pub fn read_trace(path: &Path, max: usize) -> Result<Vec<PacketKey>, ClassbenchError> {
    read_lines(path, max, "a trace header", parse_header)
}

/// Reads the first `max` expected matches (one rule index per line, `u32::MAX` for none).
pub fn read_matches(path: &Path, max: usize) -> Result<Vec<u32>, ClassbenchError> {
    read_lines(path, max, "a rule index", |l| l.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_readme_example() {
        let r = parse_rule(
            "@116.0.158.101/32\t251.86.188.124/32\t0 : 65535\t1707 : 1707\t0x06/0xFF\t0x0000/0x0200",
        )
        .unwrap();
        assert_eq!(r.src, (0x7400_9e65, 0x7400_9e65));
        assert_eq!(r.dport, (1707, 1707));
        assert_eq!(r.proto, Some(6));
        let any =
            parse_rule("@0.0.0.0/0\t10.0.0.0/8\t0 : 65535\t0 : 65535\t0x00/0x00\t0x0000/0x0000")
                .unwrap();
        assert_eq!(any.proto, None);
        assert_eq!(any.dst, (0x0a00_0000, 0x0aff_ffff));
        assert!(parse_rule("@1.2.3.4/33\t0.0.0.0/0\t0 : 1\t0 : 1\t0x06/0xFF\t0/0").is_none());
        assert!(parse_rule("@1.2.3.4/32\t0.0.0.0/0\t5 : 1\t0 : 1\t0x06/0xFF\t0/0").is_none());
    }
}
