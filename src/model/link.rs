use super::{Family, Prefix};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

kernel_enum!(
    /// An interface flag (IFF_*) as `ip link` prints it.
    LinkFlag {
        /// Up without carrier (IFF_UP without IFF_LOWER_UP): ip prints it first.
        NoCarrier = "NO-CARRIER",
        Loopback = "LOOPBACK",
        Broadcast = "BROADCAST",
        PointToPoint = "POINTOPOINT",
        Multicast = "MULTICAST",
        NoArp = "NOARP",
        AllMulti = "ALLMULTI",
        Promisc = "PROMISC",
        Master = "MASTER",
        Slave = "SLAVE",
        Debug = "DEBUG",
        Dynamic = "DYNAMIC",
        AutoMedia = "AUTOMEDIA",
        PortSel = "PORTSEL",
        NoTrailers = "NOTRAILERS",
        Up = "UP",
        LowerUp = "LOWER_UP",
        Dormant = "DORMANT",
        Echo = "ECHO",
    }
);

numbered_kernel_enum!(
    /// RFC 2863 operational state (IF_OPER_*), as `ip link` prints it.
    OperState {
        Unknown = 0 "UNKNOWN",
        NotPresent = 1 "NOTPRESENT",
        Down = 2 "DOWN",
        LowerLayerDown = 3 "LOWERLAYERDOWN",
        Testing = 4 "TESTING",
        Dormant = 5 "DORMANT",
        Up = 6 "UP",
    }
);

/// IFLA_INFO_KIND, the driver behind a virtual device: the kernel's list is open (any module
/// can add one), so the kinds hopscope reasons about are named and the rest kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkKind {
    Veth,
    Bridge,
    Vxlan,
    Geneve,
    Xfrm,
    Vti,
    Dummy,
    Other(String),
}

impl LinkKind {
    const NAMED: [(LinkKind, &'static str); 7] = [
        (LinkKind::Veth, "veth"),
        (LinkKind::Bridge, "bridge"),
        (LinkKind::Vxlan, "vxlan"),
        (LinkKind::Geneve, "geneve"),
        (LinkKind::Xfrm, "xfrm"),
        (LinkKind::Vti, "vti"),
        (LinkKind::Dummy, "dummy"),
    ];

    /// The kernel's name for the kind.
    pub fn name(&self) -> &str {
        match self {
            LinkKind::Other(s) => s,
            named => LinkKind::NAMED
                .iter()
                .find(|(k, _)| k == named)
                .map_or("", |(_, n)| n),
        }
    }
}

impl From<&str> for LinkKind {
    fn from(s: &str) -> LinkKind {
        LinkKind::NAMED
            .iter()
            .find(|(_, n)| *n == s)
            .map_or_else(|| LinkKind::Other(s.to_string()), |(k, _)| k.clone())
    }
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// As the kernel's name: the JSON carried the string before it was typed.
impl Serialize for LinkKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for LinkKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LinkKind, D::Error> {
        Ok(LinkKind::from(String::deserialize(d)?.as_str()))
    }
}

/// An interface named by both name and index, as the JSON schema wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRef {
    pub index: u32,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// IFLA_INFO_KIND: veth, bridge, vxlan, ... (None for physical/loopback devices).
    pub kind: Option<LinkKind>,
    pub flags: Vec<LinkFlag>,
    pub mtu: Option<u32>,
    pub mac: Option<String>,
    pub master: Option<LinkRef>,
    pub qdisc: Option<String>,
    pub oper_state: OperState,
    /// The other end of a veth (IFLA_LINK), possibly in another netns (`netns_id`).
    pub peer: Option<Peer>,
    pub addresses: Vec<LinkAddress>,
    pub stats: LinkStats,
    /// What a tunnel device does to the packets it sends (IFLA_INFO_DATA): the trace's
    /// encapsulation and XFRM steps read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
    /// The device's IPsec switches (IFLA_AF_SPEC's IPv4/IPv6 devconf), which decide whether
    /// the kernel checks policies on what it receives and looks up XFRM for what it sends.
    #[serde(default, skip_serializing_if = "XfrmDevConf::is_unknown")]
    pub xfrm_conf: XfrmDevConf,
}

impl Link {
    /// Administratively up (IFF_UP).
    pub fn is_up(&self) -> bool {
        self.flags.contains(&LinkFlag::Up)
    }

    /// A Cilium pod veth (`lxc…`); `lxc_health` leads to the agent's health endpoint, no pod.
    pub fn is_pod_veth(&self) -> bool {
        self.name.starts_with("lxc") && self.name != "lxc_health"
    }
}

/// net.ipv4.conf.DEV.{disable_policy,disable_xfrm} and net.ipv6.conf.DEV.disable_policy, as
/// the link dump carries them (None: the family is off on the device, or the dump had no
/// devconf). The `all` setting is not per device and not in the dump.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XfrmDevConf {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<Ipv4XfrmConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6XfrmConf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv4XfrmConf {
    /// Packets received on the device skip their in/fwd policy check (IPSKB_NOPOLICY).
    pub disable_policy: bool,
    /// Packets routed out of the device skip the XFRM lookup (DST_NOXFRM).
    pub disable_xfrm: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipv6XfrmConf {
    /// Packets delivered to an address of the device skip their in policy check (the
    /// address's local route gets DST_NOPOLICY); forwarded packets are still checked.
    pub disable_policy: bool,
}

impl XfrmDevConf {
    pub fn is_unknown(&self) -> bool {
        self.ipv4.is_none() && self.ipv6.is_none()
    }

    /// disable_policy for a packet of `family` (None: not known for that family).
    pub fn disable_policy(&self, family: Family) -> Option<bool> {
        match family {
            Family::V4 => self.ipv4.map(|c| c.disable_policy),
            Family::V6 => self.ipv6.map(|c| c.disable_policy),
        }
    }

    /// IPv4's disable_xfrm (IPv6 has none: its output always looks up XFRM).
    pub fn disable_xfrm(&self) -> bool {
        self.ipv4.is_some_and(|c| c.disable_xfrm)
    }

    /// `disable_policy (v4, v6) disable_xfrm` for what is switched on, None when nothing is.
    pub fn describe(&self) -> Option<String> {
        let mut on = vec![];
        let v4p = self.ipv4.is_some_and(|c| c.disable_policy);
        let v6p = self.ipv6.is_some_and(|c| c.disable_policy);
        match (v4p, v6p) {
            (true, true) => on.push("disable_policy".to_string()),
            (true, false) => on.push("disable_policy (ipv4)".into()),
            (false, true) => on.push("disable_policy (ipv6)".into()),
            _ => {}
        }
        if self.disable_xfrm() {
            on.push("disable_xfrm".into());
        }
        (!on.is_empty()).then(|| on.join(", "))
    }
}

/// The IFLA_INFO_DATA of the tunnel devices an IPsec path crosses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Tunnel {
    /// VXLAN: the frame goes out in UDP `port` to `remote` (None: collect_md / external mode,
    /// where a BPF program such as Cilium's sets the remote per packet).
    Vxlan {
        vni: Option<u32>,
        port: u16,
        local: Option<std::net::IpAddr>,
        remote: Option<std::net::IpAddr>,
        external: bool,
    },
    /// An xfrm interface: its packets are looked up in the SPD/SAD with this if_id.
    Xfrm { if_id: u32 },
    /// VTI: sent packets are looked up with mark `okey`, received ESP with mark `ikey`.
    Vti {
        ikey: u32,
        okey: u32,
        local: Option<std::net::IpAddr>,
        remote: Option<std::net::IpAddr>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub index: u32,
    /// Known only when the peer lives in the same netns.
    pub name: Option<String>,
    pub netns_id: Option<i32>,
}

numbered_kernel_enum!(
    /// An address flag (IFA_F_*, by its bit number) as `ip addr` prints it: IPv6 source
    /// address selection skips tentative addresses and avoids deprecated and optimistic ones.
    AddrFlag {
        /// IPv4: a secondary address; IPv6: a temporary (privacy) address (`ip` prints
        /// "temporary").
        Secondary = 0 "secondary",
        NoDad = 1 "nodad",
        Optimistic = 2 "optimistic",
        DadFailed = 3 "dadfailed",
        Home = 4 "home",
        Deprecated = 5 "deprecated",
        Tentative = 6 "tentative",
        Permanent = 7 "permanent",
        ManageTempAddr = 8 "mngtmpaddr",
        NoPrefixRoute = 9 "noprefixroute",
        AutoJoin = 10 "autojoin",
        StablePrivacy = 11 "stable-privacy",
    }
);

impl AddrFlag {
    /// The flags set in the kernel's IFA_F_* bits, lowest bit first.
    pub fn from_bits(bits: u32) -> Vec<AddrFlag> {
        (0..32u8)
            .filter(|b| bits & (1 << b) != 0)
            .map(AddrFlag::from_number)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkAddress {
    pub family: Family,
    pub address: String,
    pub prefix_len: u8,
    pub scope: super::Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// IFA_FLAGS (tentative, deprecated, ...); recordings made before they were read have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<AddrFlag>,
}

impl LinkAddress {
    pub fn prefix(&self) -> Option<Prefix> {
        Some(Prefix::new(self.address.parse().ok()?, self.prefix_len))
    }
    pub fn has(&self, f: AddrFlag) -> bool {
        self.flags.contains(&f)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}
