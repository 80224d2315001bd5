use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    #[serde(rename = "inet")]
    V4,
    #[serde(rename = "inet6")]
    V6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        }
    }
    /// "IPv4" / "IPv6", for people.
    pub fn label(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// An address with a prefix length, printed the way `ip` prints it: `10.0.1.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn new(addr: IpAddr, len: u8) -> Self {
        Prefix { addr, len }
    }
    /// A prefix as iptables-save and ipset print it: a bare address (a host), `addr/len`, or
    /// the dotted netmask of old iptables (`10.0.0.0/255.255.255.0`).
    pub fn from_iptables(s: &str) -> Option<Prefix> {
        let (a, l) = s.split_once('/').unwrap_or((s, ""));
        let addr: std::net::IpAddr = a.parse().ok()?;
        let len = if l.is_empty() {
            if addr.is_ipv4() { 32 } else { 128 }
        } else if let Ok(n) = l.parse() {
            n
        } else {
            // A dotted netmask (old iptables).
            let m: std::net::Ipv4Addr = l.parse().ok()?;
            u32::from(m).count_ones() as u8
        };
        Some(Prefix::new(addr, len))
    }
    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }
    pub fn max_len(&self) -> u8 {
        match self.addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }
    pub fn is_any(&self) -> bool {
        self.len == 0
    }
    /// Does this prefix contain `ip`? Families must agree.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(*ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(*ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;
    /// `10.0.1.0/24`, or a bare address meaning a host prefix.
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let p = Prefix::new(addr, 0);
        let len = if l.is_empty() {
            p.max_len()
        } else {
            l.parse().map_err(|e| format!("{s:?}: {e}"))?
        };
        if len > p.max_len() {
            return Err(format!("{s:?}: prefix length over {}", p.max_len()));
        }
        Ok(Prefix::new(addr, len))
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Hot path for big route tables: IPv4 without the fmt machinery.
        if let IpAddr::V4(a) = self.addr {
            let mut buf = [0u8; 18];
            let n = write_v4_prefix(&mut buf, a.octets(), self.len);
            return s.serialize_str(std::str::from_utf8(&buf[..n]).expect("ascii digits"));
        }
        s.collect_str(self)
    }
}

/// `a.b.c.d/len` into `buf` (at most 18 bytes); returns the length written.
fn write_v4_prefix(buf: &mut [u8; 18], octets: [u8; 4], len: u8) -> usize {
    fn num(buf: &mut [u8; 18], mut n: usize, v: u8) -> usize {
        if v >= 100 {
            buf[n] = b'0' + v / 100;
            n += 1;
        }
        if v >= 10 {
            buf[n] = b'0' + (v / 10) % 10;
            n += 1;
        }
        buf[n] = b'0' + v % 10;
        n + 1
    }
    let mut n = 0;
    for (i, o) in octets.into_iter().enumerate() {
        n = num(buf, n, o);
        buf[n] = if i < 3 { b'.' } else { b'/' };
        n += 1;
    }
    num(buf, n, len)
}

/// A netfilter/XFRM mark with its mask: matches when `(skb_mark & mask) == value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mark {
    pub value: u32,
    pub mask: u32,
}

impl Mark {
    pub fn matches(&self, skb_mark: u32) -> bool {
        skb_mark & self.mask == self.value
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}/{:#x}", self.value, self.mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_contains_respects_length_and_family() {
        let p = Prefix::new("10.0.1.0".parse().unwrap(), 24);
        assert!(p.contains(&"10.0.1.52".parse().unwrap()));
        assert!(!p.contains(&"10.0.2.1".parse().unwrap()));
        assert!(!p.contains(&"::1".parse().unwrap()));
        let any = Prefix::new("0.0.0.0".parse().unwrap(), 0);
        assert!(any.contains(&"192.0.2.1".parse().unwrap()));
        let v6 = Prefix::new("fc00:f853::".parse().unwrap(), 32);
        assert!(v6.contains(&"fc00:f853:ccd::3".parse().unwrap()));
        assert!(!v6.contains(&"fc00:f854::3".parse().unwrap()));
    }

    #[test]
    fn prefix_json_matches_display() {
        for p in [
            "0.0.0.0/0",
            "10.0.1.0/24",
            "255.255.255.255/32",
            "172.18.0.3/16",
            "1.2.3.4/8",
            "fc00::/7",
        ] {
            let v: Prefix = p.parse().unwrap();
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{p}\""));
            assert_eq!(v.to_string(), p);
        }
    }

    #[test]
    fn mark_matches_under_mask() {
        let m = Mark {
            value: 0xe00,
            mask: 0xf00,
        };
        assert!(m.matches(0x3e00));
        assert!(!m.matches(0xd00));
        assert_eq!(m.to_string(), "0xe00/0xf00");
        assert_eq!(
            Mark {
                value: 0,
                mask: 0xf00
            }
            .to_string(),
            "0x0/0xf00"
        );
    }
}
