//! Plain value types of the API, serialized the way a person writes them: prefixes as
//! `"10.0.0.0/8"`, MACs as `"02:00:00:00:00:01"`. The API crate depends on no other vpg crate,
//! so these are its own; vpgd converts them to its tables' types.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 address with a prefix length. Host bits are allowed (an interface address such as
/// `10.0.2.1/24` has them); routes and proxy-ARP ranges require [`Prefix::is_network`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Prefix {
    /// Address.
    pub addr: Ipv4Addr,
    /// Prefix length (0–32).
    pub len: u8,
}

impl Prefix {
    /// A prefix, or why not (`len` over 32).
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Self, String> {
        if len > 32 {
            return Err(format!("prefix length {len} is more than 32"));
        }
        Ok(Prefix { addr, len })
    }

    /// The netmask as a number (`/24` → `0xffffff00`).
    pub fn mask(&self) -> u32 {
        match self.len {
            0 => 0,
            l if l >= 32 => u32::MAX,
            l => u32::MAX << (32 - u32::from(l)),
        }
    }

    /// True when no bit beyond the length is set (a route prefix).
    pub fn is_network(&self) -> bool {
        self.len <= 32 && u32::from(self.addr) & !self.mask() == 0
    }

    /// The prefix with its host bits cleared (`10.0.2.1/24` → `10.0.2.0/24`).
    pub fn network(&self) -> Prefix {
        Prefix {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            len: self.len,
        }
    }

    /// True when `ip` is inside the prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;

    /// Parses `a.b.c.d/len`; the length is one or two decimal digits (no sign, no spaces).
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' is not a prefix (no /length)"))?;
        let addr = a
            .parse()
            .map_err(|_| format!("'{a}' is not an IPv4 address"))?;
        if l.is_empty() || l.len() > 2 || !l.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("'{l}' is not a prefix length (0 to 32)"));
        }
        // One or two ASCII digits always fit a u8.
        let len: u8 = l.parse().unwrap_or(u8::MAX);
        Prefix::new(addr, len)
    }
}

impl TryFrom<String> for Prefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Prefix> for String {
    fn from(p: Prefix) -> String {
        p.to_string()
    }
}

/// A MAC address, written `aa:bb:cc:dd:ee:ff` (upper- or lower-case hex on input, lower-case on
/// output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Mac = Mac([0xff; 6]);

    /// True for a group (multicast or broadcast) address: the low bit of the first octet.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// True for `00:00:00:00:00:00`.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// True when the address can name one station: neither a group address nor all zeros.
    /// Interface and neighbor MACs must be.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && !self.is_zero()
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl FromStr for Mac {
    type Err = String;

    /// Parses six colon-separated pairs of hex digits.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not a MAC address (aa:bb:cc:dd:ee:ff)");
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for o in out.iter_mut() {
            let p = parts
                .next()
                .filter(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(bad)?;
            *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl TryFrom<String> for Mac {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Mac> for String {
    fn from(m: Mac) -> String {
        m.to_string()
    }
}

impl From<[u8; 6]> for Mac {
    fn from(b: [u8; 6]) -> Mac {
        Mac(b)
    }
}

impl From<Mac> for [u8; 6] {
    fn from(m: Mac) -> [u8; 6] {
        m.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_print_and_mask() {
        let p: Prefix = "10.1.0.0/16".parse().unwrap();
        assert_eq!(p.to_string(), "10.1.0.0/16");
        assert!(p.is_network());
        assert!(p.contains(Ipv4Addr::new(10, 1, 255, 1)));
        assert!(!p.contains(Ipv4Addr::new(10, 2, 0, 1)));
        let host: Prefix = "10.1.0.1/16".parse().unwrap();
        assert!(!host.is_network());
        assert_eq!(host.network(), p);
        assert!("0.0.0.0/0".parse::<Prefix>().unwrap().is_network());
        assert!("10.0.0.1/32".parse::<Prefix>().unwrap().is_network());
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/008",
            "10.0.0/8",
            "/8",
        ] {
            assert!(bad.parse::<Prefix>().is_err(), "{bad}");
        }
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"10.1.0.0/16\"");
        let e = serde_json::from_str::<Prefix>("\"10.0.0.0/40\"").unwrap_err();
        assert!(e.to_string().contains("more than 32"), "{e}");
    }

    #[test]
    fn macs_parse_print_and_classify() {
        let m: Mac = "02:00:00:00:00:0A".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:00:00:00:0a");
        assert!(m.is_unicast());
        assert!(Mac::BROADCAST.is_multicast());
        assert!(!"01:00:5e:00:00:01".parse::<Mac>().unwrap().is_unicast());
        assert!(Mac([0; 6]).is_zero());
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "+2:00:00:00:00:00",
            "02-00-00-00-00-00",
            "zz:00:00:00:00:00",
            "",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Mac>("\"zz\"").is_err());
        assert_eq!(
            <[u8; 6]>::from(Mac::from([1, 2, 3, 4, 5, 6])),
            [1, 2, 3, 4, 5, 6]
        );
    }
}
