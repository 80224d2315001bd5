//! Links, addresses, routes and rules over NETLINK_ROUTE, converted into the model.
//! The conversions are pure functions of the decoded messages so they are tested on bytes.

use super::context::Context;
use super::names;
use super::netlink::{DumpReport, NlError, NlSocket};
use super::rt_tables::TableNames;
use crate::model::{AddrFlag, LinkKind, NextHop, OperState, RouteKind, RouteProtocol};
use crate::model::{
    Family, Ipv4XfrmConf, Ipv6XfrmConf, Link, LinkAddress, LinkRef, LinkStats, Mark, Peer, Prefix,
    Route, Rule, TableRef, Tunnel, XfrmDevConf,
};
use crate::model::{RuleAction, Scope};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, InfoData, InfoKind, InfoVti, InfoVxlan, InfoXfrm,
    LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteMetric};
use netlink_packet_route::rule::{RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::collections::HashMap;
use std::net::IpAddr;

/// Routes and rules of a netns, converted while they are read: message by message, so
/// 100k routes never sit in memory twice.
#[derive(Default)]
pub struct RoutesAndRules {
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
    pub reports: Reports,
}

pub type Reports = Vec<(&'static str, DumpReport)>;

/// Links with their addresses (routes need their names, so they come first).
pub fn dump_links(sock: &mut NlSocket) -> Result<(Vec<Link>, Reports), NlError> {
    let mut link_msgs = Vec::new();
    let r1 = sock.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), |m| {
        if let RouteNetlinkMessage::NewLink(l) = m {
            link_msgs.push(l)
        }
    })?;
    let mut addr_msgs = Vec::new();
    let r2 = sock.dump(
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        |m| {
            if let RouteNetlinkMessage::NewAddress(a) = m {
                addr_msgs.push(a)
            }
        },
    )?;
    Ok((
        links(&link_msgs, &addr_msgs),
        vec![("links", r1), ("addresses", r2)],
    ))
}

pub fn dump_routes_and_rules(
    sock: &mut NlSocket,
    ctx: &Context,
) -> Result<RoutesAndRules, NlError> {
    let mut st = RoutesAndRules::default();
    let routes = &mut st.routes;
    // AF_UNSPEC with no table filter: every table of every family in one dump.
    let r = sock.dump(
        RouteNetlinkMessage::GetRoute(RouteMessage::default()),
        |m| {
            if let RouteNetlinkMessage::NewRoute(rt) = m {
                routes.extend(route(&rt, ctx))
            }
        },
    )?;
    st.reports.push(("routes", r));
    let rules = &mut st.rules;
    let r = sock.dump(RouteNetlinkMessage::GetRule(RuleMessage::default()), |m| {
        if let RouteNetlinkMessage::NewRule(rl) = m {
            rules.extend(rule(&rl, ctx.tables()))
        }
    })?;
    st.reports.push(("rules", r));
    Ok(st)
}

pub fn family_of(f: AddressFamily) -> Option<Family> {
    match f {
        AddressFamily::Inet => Some(Family::V4),
        AddressFamily::Inet6 => Some(Family::V6),
        _ => None,
    }
}

fn mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Convert links and attach their addresses.
pub fn links(msgs: &[LinkMessage], addrs: &[AddressMessage]) -> Vec<Link> {
    let names: HashMap<u32, String> = msgs
        .iter()
        .filter_map(|m| {
            m.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some((m.header.index, n.clone())),
                _ => None,
            })
        })
        .collect();
    let mut out: Vec<Link> = msgs.iter().map(|m| link(m, &names)).collect();
    for a in addrs {
        if let (Some(addr), Some(l)) = (
            address(a),
            out.iter_mut().find(|l| l.index == a.header.index),
        ) {
            l.addresses.push(addr);
        }
    }
    out.sort_by_key(|l| l.index);
    out
}

fn link(m: &LinkMessage, names: &HashMap<u32, String>) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        kind: None,
        flags: names::link_flags(m.header.flags.bits()),
        mtu: None,
        mac: None,
        master: None,
        qdisc: None,
        oper_state: OperState::Unknown,
        peer: None,
        addresses: Vec::new(),
        stats: LinkStats::default(),
        tunnel: None,
        xfrm_conf: Default::default(),
    };
    let mut iflink = None;
    let mut link_netns = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Mtu(v) => l.mtu = Some(*v),
            LinkAttribute::Address(b) if !b.is_empty() => l.mac = Some(mac(b)),
            LinkAttribute::Controller(i) => {
                l.master = Some(LinkRef {
                    index: *i,
                    name: names.get(i).cloned(),
                })
            }
            LinkAttribute::Qdisc(q) => l.qdisc = Some(q.clone()),
            LinkAttribute::OperState(s) => l.oper_state = OperState::from_number((*s).into()),
            LinkAttribute::Link(i) => iflink = Some(*i),
            LinkAttribute::LinkNetNsId(id) => link_netns = Some(*id),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => l.kind = Some(kind_name(k)),
                        LinkInfo::Data(d) => l.tunnel = tunnel(d),
                        _ => {}
                    }
                }
            }
            LinkAttribute::AfSpecUnspec(specs) => l.xfrm_conf = xfrm_conf(specs),
            LinkAttribute::Stats64(s) => {
                l.stats = LinkStats {
                    rx_bytes: s.rx_bytes,
                    rx_packets: s.rx_packets,
                    rx_errors: s.rx_errors,
                    rx_dropped: s.rx_dropped,
                    tx_bytes: s.tx_bytes,
                    tx_packets: s.tx_packets,
                    tx_errors: s.tx_errors,
                    tx_dropped: s.tx_dropped,
                }
            }
            _ => {}
        }
    }
    // IFLA_LINK names the peer/lower device; a self-reference carries no information.
    if let Some(i) = iflink.filter(|i| *i != l.index || link_netns.is_some()) {
        let name = if link_netns.is_none() {
            names.get(&i).cloned()
        } else {
            None
        };
        l.peer = Some(Peer {
            index: i,
            name,
            netns_id: link_netns,
        });
    }
    l
}

/// The IPsec switches of the device's IPv4 and IPv6 devconf (IFLA_INET_CONF, IFLA_INET6_CONF).
fn xfrm_conf(specs: &[AfSpecUnspec]) -> XfrmDevConf {
    let mut c = XfrmDevConf::default();
    for s in specs {
        match s {
            AfSpecUnspec::Inet(v) => {
                c.ipv4 = v.iter().find_map(|a| match a {
                    AfSpecInet::DevConf(d) => Some(Ipv4XfrmConf {
                        disable_policy: d.nopolicy != 0,
                        disable_xfrm: d.noxfrm != 0,
                    }),
                    _ => None,
                })
            }
            AfSpecUnspec::Inet6(v) => {
                c.ipv6 = v.iter().find_map(|a| match a {
                    AfSpecInet6::DevConf(d) => Some(Ipv6XfrmConf {
                        disable_policy: d.disable_policy != 0,
                    }),
                    _ => None,
                })
            }
            _ => {}
        }
    }
    c
}

/// The attributes of the tunnel devices the trace walks through (vxlan, xfrm, vti).
fn tunnel(d: &InfoData) -> Option<Tunnel> {
    match d {
        InfoData::Vxlan(v) => {
            let (mut vni, mut port, mut local, mut remote, mut external) =
                (None, 4789, None, None, false);
            for a in v {
                match a {
                    InfoVxlan::Id(i) => vni = Some(*i),
                    InfoVxlan::Port(p) => port = *p,
                    InfoVxlan::Local(a) => local = Some(IpAddr::V4(*a)),
                    InfoVxlan::Local6(a) => local = Some(IpAddr::V6(*a)),
                    // iproute2's `remote` is the unicast IFLA_VXLAN_GROUP
                    InfoVxlan::Group(a) => remote = Some(IpAddr::V4(*a)),
                    InfoVxlan::Group6(a) => remote = Some(IpAddr::V6(*a)),
                    InfoVxlan::CollectMetadata(b) => external = *b,
                    _ => {}
                }
            }
            Some(Tunnel::Vxlan {
                vni: vni.filter(|_| !external),
                port,
                local,
                remote: remote.filter(|r| !r.is_unspecified()),
                external,
            })
        }
        InfoData::Xfrm(x) => x.iter().find_map(|a| match a {
            InfoXfrm::IfId(i) => Some(Tunnel::Xfrm { if_id: *i }),
            _ => None,
        }),
        InfoData::Vti(v) => {
            let (mut ikey, mut okey, mut local, mut remote) = (0, 0, None, None);
            for a in v {
                match a {
                    InfoVti::IKey(k) => ikey = *k,
                    InfoVti::OKey(k) => okey = *k,
                    InfoVti::Local(a) => local = Some(*a).filter(|a| !a.is_unspecified()),
                    InfoVti::Remote(a) => remote = Some(*a).filter(|a| !a.is_unspecified()),
                    _ => {}
                }
            }
            Some(Tunnel::Vti {
                ikey,
                okey,
                local,
                remote,
            })
        }
        _ => None,
    }
}

fn kind_name(k: &InfoKind) -> LinkKind {
    // InfoKind's Display gives the kernel's IFLA_INFO_KIND string (veth, bridge, ...).
    LinkKind::from(k.to_string().as_str())
}

pub fn address(a: &AddressMessage) -> Option<LinkAddress> {
    let family = family_of(a.header.family)?;
    let mut local = None;
    let mut address = None;
    let mut label = None;
    // IFA_FLAGS holds all 32 bits; the header only the low 8 (older kernels send just those).
    let mut flags = u32::from(a.header.flags.bits());
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Label(s) => label = Some(s.clone()),
            AddressAttribute::Flags(f) => flags = f.bits(),
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address on point-to-point links; prefer it.
    let ip = local.or(address)?;
    Some(LinkAddress {
        family,
        address: ip.to_string(),
        prefix_len: a.header.prefix_len,
        scope: Scope::from_number(a.header.scope.into()),
        label,
        flags: AddrFlag::from_bits(flags),
    })
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

pub fn table_ref(id: u32, tables: &TableNames) -> TableRef {
    TableRef {
        id,
        name: tables.get(&id).cloned(),
    }
}

fn link_ref(index: u32, ctx: &Context) -> LinkRef {
    LinkRef {
        index,
        name: ctx.dev(index),
    }
}

pub fn route(m: &RouteMessage, ctx: &Context) -> Option<Route> {
    let family = family_of(m.header.address_family)?;
    let mut table = u32::from(m.header.table);
    let (mut dst, mut src, mut gateway, mut dev, mut prefsrc) = (None, None, None, None, None);
    let (mut metric, mut mtu, mut mtu_locked) = (None, None, false);
    let mut nexthops = Vec::new();
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = route_ip(d),
            RouteAttribute::Source(s) => src = route_ip(s),
            RouteAttribute::Gateway(g) => gateway = route_ip(g).map(|g| g.to_string()),
            RouteAttribute::Oif(i) => dev = Some(link_ref(*i, ctx)),
            RouteAttribute::PrefSource(p) => prefsrc = route_ip(p).map(|p| p.to_string()),
            RouteAttribute::Priority(p) => metric = Some(*p),
            RouteAttribute::Metrics(ms) => {
                for metric in ms {
                    match metric {
                        RouteMetric::Mtu(v) => mtu = Some(*v),
                        // RTAX_LOCK is a bitmask indexed by RTAX_*; RTAX_MTU is 2.
                        RouteMetric::Lock(bits) => mtu_locked = bits & (1 << 2) != 0,
                        _ => {}
                    }
                }
            }
            RouteAttribute::MultiPath(hops) => {
                for h in hops {
                    let gw = h.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => route_ip(g).map(|g| g.to_string()),
                        _ => None,
                    });
                    nexthops.push(NextHop {
                        gateway: gw,
                        dev: Some(link_ref(h.interface_index, ctx)),
                        weight: u16::from(h.hops) + 1,
                    });
                }
            }
            _ => {}
        }
    }
    let dst_len = m.header.destination_prefix_length;
    let dst = match dst {
        Some(ip) => Some(Prefix::new(ip, dst_len)),
        None if dst_len == 0 => None,
        None => return None,
    };
    let src = src.map(|ip| Prefix::new(ip, m.header.source_prefix_length));
    Some(Route {
        family,
        table: table_ref(table, ctx.tables()),
        kind: RouteKind::from_number(m.header.kind.into()),
        dst,
        src,
        gateway,
        dev,
        prefsrc,
        protocol: RouteProtocol::from_number(m.header.protocol.into()),
        scope: Scope::from_number(m.header.scope.into()),
        metric,
        mtu,
        mtu_locked,
        tos: m.header.tos,
        nexthops,
    })
}

pub fn rule(m: &RuleMessage, tables: &TableNames) -> Option<Rule> {
    let family = family_of(m.header.family)?;
    let mut table = u32::from(m.header.table);
    let (mut priority, mut src, mut dst, mut iif, mut oif) = (0, None, None, None, None);
    let (mut mark, mut mask, mut goto) = (None, None, None);
    for a in &m.attributes {
        match a {
            RuleAttribute::Priority(p) => priority = *p,
            RuleAttribute::Source(ip) => src = Some(Prefix::new(*ip, m.header.src_len)),
            RuleAttribute::Destination(ip) => dst = Some(Prefix::new(*ip, m.header.dst_len)),
            RuleAttribute::Iifname(n) => iif = Some(n.clone()),
            RuleAttribute::Oifname(n) => oif = Some(n.clone()),
            RuleAttribute::FwMark(v) => mark = Some(*v),
            RuleAttribute::FwMask(v) => mask = Some(*v),
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Goto(g) => goto = Some(*g),
            _ => {}
        }
    }
    let action = RuleAction::from_number(m.header.action.into());
    // The kernel reports a mark without mask when the mask is all ones.
    let fwmark = match (mark, mask) {
        (None, None) => None,
        (v, m) => Some(Mark {
            value: v.unwrap_or(0),
            mask: m.unwrap_or(u32::MAX),
        }),
    };
    Some(Rule {
        family,
        priority,
        src,
        dst,
        iif,
        oif,
        fwmark,
        table: (action == RuleAction::Lookup).then(|| table_ref(table, tables)),
        action,
        goto,
        invert: m.header.flags.bits() & 0x2 != 0,
        tos: m.header.tos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, Parseable};
    use netlink_packet_route::link::{Inet6DevConf, InetDevConf};

    /// A link message as the kernel sends it, through the crate's emitter and parser.
    fn round_trip(attrs: Vec<LinkAttribute>) -> Link {
        let mut m = LinkMessage::default();
        m.header.index = 7;
        m.attributes = attrs;
        m.attributes.push(LinkAttribute::IfName("vti0".into()));
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        let parsed = LinkMessage::parse(&buf[..]).expect("parse");
        links(&[parsed], &[]).remove(0)
    }

    #[test]
    fn devconf_switches_come_from_the_af_spec() {
        let mut v4 = InetDevConf::default();
        v4.nopolicy = 1;
        v4.forwarding = 1;
        let mut v6 = Inet6DevConf::default();
        v6.disable_policy = 0;
        v6.forwarding = 1;
        let l = round_trip(vec![LinkAttribute::AfSpecUnspec(vec![
            AfSpecUnspec::Inet(vec![AfSpecInet::DevConf(v4)]),
            AfSpecUnspec::Inet6(vec![AfSpecInet6::DevConf(v6)]),
        ])]);
        assert_eq!(
            l.xfrm_conf,
            XfrmDevConf {
                ipv4: Some(Ipv4XfrmConf {
                    disable_policy: true,
                    disable_xfrm: false
                }),
                ipv6: Some(Ipv6XfrmConf {
                    disable_policy: false
                }),
            }
        );
        let mut v4 = InetDevConf::default();
        v4.noxfrm = 1;
        let l = round_trip(vec![LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(
            vec![AfSpecInet::DevConf(v4)],
        )])]);
        assert!(l.xfrm_conf.disable_xfrm());
        assert_eq!(l.xfrm_conf.disable_policy(Family::V4), Some(false));
        assert_eq!(l.xfrm_conf.disable_policy(Family::V6), None);
        // no devconf at all: unknown, and left out of the JSON
        let l = round_trip(vec![]);
        assert!(l.xfrm_conf.is_unknown());
        assert!(serde_json::to_value(&l).unwrap().get("xfrm_conf").is_none());
    }
}
