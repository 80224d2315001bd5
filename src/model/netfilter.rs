//! iptables rules as `iptables-save` states them: only what following a packet needs
//! (interfaces, addresses, protocol, ports, marks) is understood; the rest is kept verbatim.

use super::{Mark, Prefix};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Netfilter {
    /// Which tool the rules came from (`iptables-legacy-save`, `iptables-nft-save`).
    pub backends: Vec<String>,
    pub rules: Vec<NfRule>,
    /// Connection tracking entries (/proc/net/nf_conntrack), when readable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conntrack: Vec<Conntrack>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NfRule {
    pub table: String,
    pub chain: String,
    pub matches: Vec<NfMatch>,
    pub target: NfTarget,
    /// The `-A ...` line, for showing which rule decided.
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NfMatch {
    pub negated: bool,
    pub what: NfCond,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum NfCond {
    /// `-i lxc+`: a trailing `+` is a prefix match.
    In(String),
    Out(String),
    Src(Prefix),
    Dst(Prefix),
    Proto(String),
    Sport(u16, u16),
    Dport(u16, u16),
    Mark(Mark),
    Comment(String),
    /// `-m statistic --mode random --probability P`: chosen at random by the kernel.
    Random(String),
    /// Anything we do not evaluate; a rule with it is treated as "may match".
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NfTarget {
    Jump {
        chain: String,
    },
    Goto {
        chain: String,
    },
    Return,
    Accept,
    Drop,
    /// `MARK --set-xmark value/mask`: mark = (mark & !mask) ^ value.
    SetMark {
        value: u32,
        mask: u32,
    },
    Dnat {
        to: String,
    },
    Snat {
        to: String,
    },
    Masquerade,
    Other {
        name: String,
    },
}

impl NfCond {
    pub fn iface_matches(pattern: &str, dev: &str) -> bool {
        match pattern.strip_suffix('+') {
            Some(prefix) => dev.starts_with(prefix),
            None => dev == pattern,
        }
    }
}

/// A connection tracking entry: the original direction and the reply the kernel expects
/// (a reply source that differs from the original destination means DNAT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conntrack {
    pub proto: String,
    pub state: Option<String>,
    pub src: std::net::IpAddr,
    pub dst: std::net::IpAddr,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub reply_src: std::net::IpAddr,
    pub reply_dst: std::net::IpAddr,
    pub reply_sport: Option<u16>,
    pub reply_dport: Option<u16>,
    pub flags: Vec<String>,
    pub mark: u32,
    pub line: String,
}

impl Conntrack {
    pub fn is_dnat(&self) -> bool {
        self.reply_src != self.dst
    }
}
