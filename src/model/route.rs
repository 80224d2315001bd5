use super::{Family, LinkRef, Prefix};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

numbered_kernel_enum!(
    /// A route's type (RTN_*), as `ip route` names it.
    RouteKind {
        Unspec = 0 "unspec",
        Unicast = 1 "unicast",
        /// An address of this host: delivered locally.
        Local = 2 "local",
        Broadcast = 3 "broadcast",
        Anycast = 4 "anycast",
        Multicast = 5 "multicast",
        /// Dropped silently.
        Blackhole = 6 "blackhole",
        /// Dropped with ICMP host unreachable.
        Unreachable = 7 "unreachable",
        /// Dropped with ICMP administratively prohibited.
        Prohibit = 8 "prohibit",
        /// The lookup goes on with the next rule.
        Throw = 9 "throw",
        Nat = 10 "nat",
        Xresolve = 11 "xresolve",
    }
);

impl RouteKind {
    /// Routes that refuse the packet instead of sending it anywhere.
    pub fn refuses(self) -> bool {
        matches!(
            self,
            RouteKind::Blackhole | RouteKind::Unreachable | RouteKind::Prohibit
        )
    }
}

numbered_kernel_enum!(
    /// How far a route or an address reaches (RT_SCOPE_*), as iproute2 names it.
    Scope {
        Global = 0 "global",
        Site = 200 "site",
        Link = 253 "link",
        Host = 254 "host",
        Nowhere = 255 "nowhere",
    }
);

numbered_kernel_enum!(
    /// Who installed a route (RTPROT_*), as `ip route` names it.
    RouteProtocol {
        Unspec = 0 "unspec",
        Redirect = 1 "redirect",
        Kernel = 2 "kernel",
        Boot = 3 "boot",
        Static = 4 "static",
        Gated = 8 "gated",
        Ra = 9 "ra",
        Mrt = 10 "mrt",
        Zebra = 11 "zebra",
        Bird = 12 "bird",
        Dnrouted = 13 "dnrouted",
        Xorp = 14 "xorp",
        Ntk = 15 "ntk",
        Dhcp = 16 "dhcp",
        Mrouted = 17 "mrouted",
        Keepalived = 18 "keepalived",
        Babel = 42 "babel",
        Openr = 99 "openr",
        Bgp = 186 "bgp",
        Isis = 187 "isis",
        Ospf = 188 "ospf",
        Rip = 189 "rip",
        Eigrp = 192 "eigrp",
    }
);

/// A routing table by number, with its name where rt_tables (or Cilium's conventions) know one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRef {
    pub id: u32,
    pub name: Option<String>,
}

/// Optional fields that are unset are left out of JSON (absent = null): a node with 100k
/// routes would otherwise print mostly nulls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub family: Family,
    pub table: TableRef,
    #[serde(rename = "type")]
    pub kind: RouteKind,
    /// `None` is the default route (prefix length 0).
    #[serde(serialize_with = "dst_or_default", deserialize_with = "default_or_dst")]
    pub dst: Option<Prefix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<Prefix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    pub dev: Option<LinkRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefsrc: Option<String>,
    pub protocol: RouteProtocol,
    pub scope: Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mtu_locked: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tos: u8,
    /// Multipath next hops (gateway, dev); empty for single-path routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<NextHop>,
}

impl Route {
    /// The destination as `ip route` prints it: `default` or the prefix.
    pub fn dst_text(&self) -> String {
        self.dst
            .map_or_else(|| "default".to_string(), |d| d.to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextHop {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    pub dev: Option<LinkRef>,
    pub weight: u16,
}

fn dst_or_default<S: serde::Serializer>(dst: &Option<Prefix>, s: S) -> Result<S::Ok, S::Error> {
    match dst {
        Some(p) => s.collect_str(p),
        None => s.serialize_str("default"),
    }
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

fn default_or_dst<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Prefix>, D::Error> {
    let s = String::deserialize(d)?;
    if s == "default" {
        Ok(None)
    } else {
        s.parse().map(Some).map_err(serde::de::Error::custom)
    }
}
