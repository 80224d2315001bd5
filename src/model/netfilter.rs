//! Netfilter as a node really runs it, as plain data: iptables rules of both backends (as
//! `iptables-save` states them), native nftables rule sets (`nft -j list ruleset`), ipset
//! members, IPVS virtual services and the conntrack table. The trace evaluates them
//! (trace/netfilter.rs); what could not be read is said in `warnings`, never left out silently.

use super::{Mark, Prefix};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Netfilter {
    /// Which tool the rules came from (`iptables-legacy-save`, `iptables-nft-save`, `nft`).
    pub backends: Vec<String>,
    pub rules: Vec<NfRule>,
    /// Built-in chains' policies (`:INPUT DROP [0:0]`), per backend and table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<NfPolicy>,
    /// Native nftables tables (those iptables-nft does not manage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nft: Vec<NftTable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipsets: Vec<IpSet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipvs: Vec<IpvsService>,
    /// `-m recent` lists (/proc/net/xt_recent/NAME: kube-proxy's session affinity).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<RecentList>,
    /// Connection tracking entries (/proc/net/nf_conntrack), when readable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conntrack: Vec<Conntrack>,
    /// net.bridge.bridge-nf-call-iptables and -ip6tables of the netns (None: br_netfilter is
    /// not loaded): whether a packet entering by a bridge port meets iptables with that port
    /// known to `-m physdev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge_nf_call: Option<[bool; 2]>,
    /// What could not be read (a missing tool, no rights, no conntrack): the trace repeats it
    /// on the hops it affects instead of tracing as if there were no rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip)]
    pub index: ChainIndex,
}

/// Whether rules read by `backend` (a save tool's name) apply to IPv6 packets: ip6tables has
/// rule sets of its own, iptables' see IPv4 only.
pub fn backend_is_ipv6(backend: &str) -> bool {
    backend.starts_with("ip6tables")
}

/// `rules` by backend, table and chain, built on first use: a trace walks chains many times
/// and a kube-proxy node has ~100k rules. Built once; rules added afterwards are not seen.
#[derive(Debug, Default)]
pub struct ChainIndex(std::sync::OnceLock<std::collections::HashMap<String, Vec<usize>>>);

impl Clone for ChainIndex {
    fn clone(&self) -> Self {
        ChainIndex::default()
    }
}

/// A cache: two rule sets are equal whatever their caches hold.
impl PartialEq for ChainIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for ChainIndex {}

impl Netfilter {
    /// Indices into `rules` of one chain, in order.
    pub fn chain(&self, backend: &str, table: &str, chain: &str) -> &[usize] {
        let key = |b: &str, t: &str, c: &str| format!("{b}\u{0}{t}\u{0}{c}");
        let map = self.index.0.get_or_init(|| {
            let mut m: std::collections::HashMap<String, Vec<usize>> = Default::default();
            for (i, r) in self.rules.iter().enumerate() {
                m.entry(key(&r.backend, &r.table, &r.chain))
                    .or_default()
                    .push(i);
            }
            m
        });
        map.get(&key(backend, table, chain))
            .map_or(&[], Vec::as_slice)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NfPolicy {
    pub backend: String,
    pub table: String,
    pub chain: String,
    /// ACCEPT or DROP.
    pub policy: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NfRule {
    /// The `*-save` tool it came from (legacy and nft tables both run in the kernel).
    #[serde(default)]
    pub backend: String,
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

/// Which side of the packet an address type, set or port list looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    #[default]
    Src,
    Dst,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum NfCond {
    /// `-i lxc+`: a trailing `+` is a prefix match.
    In(String),
    Out(String),
    Src(Prefix),
    Dst(Prefix),
    /// `-m iprange --src-range a-b`.
    Range(Side, IpAddr, IpAddr),
    Proto(String),
    Sport(u16, u16),
    Dport(u16, u16),
    /// `-m multiport --dports 80,443,8000:8080` (`--ports`: either side, `None`).
    Ports(Option<Side>, Vec<(u16, u16)>),
    Mark(Mark),
    /// `-m connmark --mark v/m`: the connection's mark.
    ConnMark(Mark),
    /// `-m conntrack --ctstate NEW,ESTABLISHED` / `-m state --state ...`.
    CtState(Vec<String>),
    /// `-m conntrack --ctstatus ...` (ASSURED, SEEN_REPLY, CONFIRMED, EXPECTED).
    CtStatus(Vec<String>),
    /// `-m addrtype --dst-type LOCAL` (types comma separated; `--limit-iface-*` kept aside).
    AddrType {
        side: Side,
        types: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit_iface: Option<String>,
    },
    /// `-m physdev`: `--physdev-in/out DEV`, `--physdev-is-in/out/bridged`.
    PhysdevIn(String),
    PhysdevOut(String),
    PhysdevIs(String),
    /// `-m set --match-set NAME src[,dst...]`.
    Set {
        name: String,
        flags: Vec<Side>,
    },
    /// `-m tcp --tcp-flags MASK COMP` / `--syn`.
    TcpFlags(Vec<String>, Vec<String>),
    /// `-m icmp --icmp-type 8` (type names are mapped to numbers; `any` is None).
    IcmpType(Option<u8>),
    /// `-m length --length a:b` (IP packet length).
    Length(u32, u32),
    Comment(String),
    /// `-m statistic --mode random --probability P`: chosen at random by the kernel.
    Random(String),
    /// `-m statistic --mode nth --every N --packet P`: depends on the rule's packet counter.
    Nth(u32, u32),
    /// `-m recent --rcheck/--update --name N [--seconds S] --rsource|--rdest`; `--set` is
    /// `check: false` (it always matches, and records the address).
    Recent {
        name: String,
        check: bool,
        side: Side,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<u32>,
    },
    /// Anything we do not evaluate; the trace says so on the hop.
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
    Reject {
        with: String,
    },
    /// `MARK --set-xmark value/mask`: mark = (mark & !mask) ^ value.
    SetMark {
        value: u32,
        mask: u32,
    },
    /// `CONNMARK --set-xmark value/mask` on the connection's mark.
    SetConnMark {
        value: u32,
        mask: u32,
    },
    /// `CONNMARK --save-mark --nfmask N --ctmask C`: ctmark = (ctmark & ~C) ^ (mark & N).
    SaveMark {
        nfmask: u32,
        ctmask: u32,
    },
    /// `CONNMARK --restore-mark --nfmask N --ctmask C`: mark = (mark & ~N) ^ (ctmark & C).
    RestoreMark {
        nfmask: u32,
        ctmask: u32,
    },
    Dnat {
        to: String,
    },
    Snat {
        to: String,
    },
    Masquerade {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_ports: Option<String>,
    },
    Redirect {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_ports: Option<String>,
    },
    /// `-j NOTRACK` / `-j CT --notrack`: the packet is not tracked (no NAT).
    Notrack,
    /// LOG, NFLOG, TRACE, COUNTER, TCPMSS, CHECKSUM...: no effect on the path.
    Log {
        name: String,
    },
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

/// A native nftables table (`nft -j list ruleset`), as the trace needs it: base chains with
/// their hook and priority, rules as nft's JSON expressions, named sets and maps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftTable {
    pub family: String,
    pub name: String,
    pub chains: Vec<NftChain>,
    pub sets: Vec<NftSet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftChain {
    pub name: String,
    /// Base chains: the hook, priority, type (filter, nat, route) and policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<String>,
    #[serde(default)]
    pub prio: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub rules: Vec<NftRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftRule {
    pub handle: u64,
    /// nft's JSON statements, verbatim.
    pub expr: Vec<serde_json::Value>,
    /// The rule as `nft list` would print it (rendered from `expr`), for showing.
    pub text: String,
}

/// A named set or map: `elements` are nft's JSON elements (a map's are `[key, value]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftSet {
    pub name: String,
    pub map: bool,
    pub elements: Vec<serde_json::Value>,
}

/// A `-m recent` list: the addresses it holds (their ages are in jiffies, not read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentList {
    pub name: String,
    pub addrs: Vec<IpAddr>,
}

/// An ipset (`ipset save`): its type (`hash:ip`, `hash:net,port`, `bitmap:port`...) and
/// members as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpSet {
    pub name: String,
    pub kind: String,
    pub members: Vec<String>,
    /// `create ... netmask N` (hash:ip, bitmap:ip): addresses are looked up masked to /N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<u8>,
    /// Members added with `nomatch` (net types): a packet whose most specific matching member
    /// is one of these is not in the set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nomatch: Vec<String>,
}

/// An IPVS virtual service (read over netlink) with its real servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvsService {
    /// `tcp`, `udp`, `sctp`; `fwmark` for a service matched by the packet's mark.
    pub proto: String,
    /// Unspecified (0.0.0.0 or ::) for a fwmark service: only its family counts.
    pub addr: IpAddr,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    pub scheduler: String,
    pub reals: Vec<IpvsReal>,
}

impl IpvsService {
    /// `tcp 10.96.0.10:53` or `fwmark 0x10 (IPv4)`, as ipvsadm names a service.
    pub fn name(&self) -> String {
        match self.fwmark {
            Some(m) => format!(
                "fwmark {m:#x} ({})",
                if self.addr.is_ipv6() { "IPv6" } else { "IPv4" }
            ),
            None => format!(
                "{} {}",
                self.proto,
                std::net::SocketAddr::new(self.addr, self.port)
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvsReal {
    pub addr: IpAddr,
    pub port: u16,
    /// Masq, Route, Tunnel.
    pub forward: String,
    pub weight: u32,
    pub active: u64,
    pub inactive: u64,
}

/// A connection tracking entry: the original direction and the reply the kernel expects
/// (a reply source that differs from the original destination means DNAT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conntrack {
    pub proto: String,
    pub state: Option<String>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub reply_src: IpAddr,
    pub reply_dst: IpAddr,
    pub reply_sport: Option<u16>,
    pub reply_dport: Option<u16>,
    pub flags: Vec<String>,
    pub mark: u32,
    pub line: String,
}

impl Conntrack {
    pub fn is_dnat(&self) -> bool {
        self.reply_src != self.dst || self.reply_sport != self.dport
    }
    pub fn is_snat(&self) -> bool {
        self.reply_dst != self.src || self.reply_dport != self.sport
    }
}
