//! One definition of how each kind of object is shown as a row of cells: headers and cell
//! text shared by the text output and the TUI tables, named the way `ip` names things.

use crate::model::{
    Link, Mark, Names, NodeState, Route, Rule, Selector, TemplateLevel, Tunnel, XfrmPolicy,
    XfrmState,
};

pub const LINK_HEADERS: [&str; 10] = [
    "IDX",
    "NAME",
    "KIND",
    "STATE",
    "FLAGS",
    "MTU",
    "MAC",
    "MASTER",
    "ADDRESSES",
    "RX/TX PKTS",
];

pub fn link_name(l: &Link) -> String {
    // `cilium_host@cilium_net` as ip prints it; `@if9` when the peer lives in another netns.
    match &l.peer {
        Some(p) => match &p.name {
            Some(n) => format!("{}@{}", l.name, n),
            None => format!("{}@if{}", l.name, p.index),
        },
        None => l.name.clone(),
    }
}

/// Addresses are followed by their Kubernetes names from `names` (`10.0.1.52 (default/net)`)
/// in every row that has them; an empty table names nothing.
pub fn link_row(l: &Link, names: &Names) -> Vec<String> {
    let addrs: Vec<String> = l
        .addresses
        .iter()
        .map(|a| names.annotate(&format!("{}/{}", a.address, a.prefix_len)))
        .collect();
    vec![
        l.index.to_string(),
        link_name(l),
        l.kind.as_ref().map(ToString::to_string).unwrap_or_default(),
        l.oper_state.to_string(),
        l.flags
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        l.mtu.map(|m| m.to_string()).unwrap_or_default(),
        l.mac.clone().unwrap_or_default(),
        l.master
            .as_ref()
            .and_then(|m| m.name.clone())
            .unwrap_or_default(),
        addrs.join(" "),
        format!("{}/{}", l.stats.rx_packets, l.stats.tx_packets),
    ]
}

pub const XFRM_CONF_HEADERS: [&str; 5] = [
    "DEV",
    "TUNNEL",
    "DISABLE_POLICY v4",
    "DISABLE_POLICY v6",
    "DISABLE_XFRM v4",
];

/// A device's disable_policy / disable_xfrm, for tunnel devices (where they decide whether
/// the decrypted packets meet a policy check) and any device with one switched on.
pub fn xfrm_conf_row(l: &Link) -> Option<Vec<String>> {
    let c = &l.xfrm_conf;
    if l.tunnel.is_none() && c.describe().is_none() {
        return None;
    }
    let tunnel = match &l.tunnel {
        Some(Tunnel::Vti { ikey, okey, .. }) => format!("vti ikey {ikey:#x} okey {okey:#x}"),
        Some(Tunnel::Xfrm { if_id }) => format!("xfrm if_id {if_id}"),
        Some(Tunnel::Vxlan { .. }) => "vxlan".into(),
        None => String::new(),
    };
    let on = |b: Option<bool>| match b {
        Some(true) => "on",
        Some(false) => "off",
        None => "-",
    };
    Some(vec![
        l.name.clone(),
        tunnel,
        on(c.disable_policy(crate::model::Family::V4)).into(),
        on(c.disable_policy(crate::model::Family::V6)).into(),
        on(c.ipv4.map(|v| v.disable_xfrm)).into(),
    ])
}

/// `0xe00/0xf00 (encrypt)`: the mark, with Cilium's meaning where recognised.
pub use crate::explain::labels::{mark, table};

pub const ROUTE_HEADERS: [&str; 10] = [
    "TABLE", "TYPE", "DST", "GATEWAY", "DEV", "PREFSRC", "PROTO", "SCOPE", "METRIC", "MTU",
];

pub fn route_dst(r: &Route) -> String {
    r.dst_text()
}

pub fn route_row(r: &Route, names: &Names) -> Vec<String> {
    let gw = if r.nexthops.is_empty() {
        r.gateway
            .as_deref()
            .map(|a| names.annotate(a))
            .unwrap_or_default()
    } else {
        r.nexthops
            .iter()
            .filter_map(|h| h.gateway.as_deref().map(|a| names.annotate(a)))
            .collect::<Vec<_>>()
            .join(",")
    };
    vec![
        table(&r.table),
        r.kind.to_string(),
        names.annotate(&route_dst(r)),
        gw,
        r.dev
            .as_ref()
            .and_then(|d| d.name.clone())
            .unwrap_or_default(),
        r.prefsrc
            .as_deref()
            .map(|a| names.annotate(a))
            .unwrap_or_default(),
        r.protocol.to_string(),
        r.scope.to_string(),
        r.metric.map(|m| m.to_string()).unwrap_or_default(),
        r.mtu
            .map(|m| {
                if r.mtu_locked {
                    format!("lock {m}")
                } else {
                    m.to_string()
                }
            })
            .unwrap_or_default(),
    ]
}

pub const RULE_HEADERS: [&str; 6] = ["PRIO", "FAMILY", "FROM", "TO", "MATCH", "ACTION"];

pub fn rule_row(r: &Rule) -> Vec<String> {
    let mut row = vec![r.priority.to_string(), r.family.name().to_string()];
    row.extend(crate::explain::labels::rule_cells(r));
    row
}

pub fn selector(s: &Selector, names: &Names) -> String {
    s.text(|a| names.annotate(a))
}

pub const SA_HEADERS: [&str; 11] = [
    "SRC",
    "DST",
    "PROTO",
    "SPI",
    "REQID",
    "MODE",
    "MARK",
    "OUTPUT-MARK",
    "ALG",
    "PKTS",
    "BYTES",
];

pub fn sa_alg(s: &XfrmState) -> String {
    s.algorithms()
}

pub fn opt_mark(m: &Option<Mark>) -> String {
    m.as_ref().map(mark).unwrap_or_default()
}

pub fn sa_row(s: &XfrmState, names: &Names) -> Vec<String> {
    vec![
        names.annotate(&s.src),
        names.annotate(&s.dst),
        s.proto.to_string(),
        format!("{:#010x}", s.spi),
        s.reqid.to_string(),
        s.mode.to_string(),
        opt_mark(&s.mark),
        opt_mark(&s.output_mark),
        sa_alg(s),
        s.lifetime.packets.to_string(),
        s.lifetime.bytes.to_string(),
    ]
}

pub const POLICY_HEADERS: [&str; 7] = [
    "DIR",
    "PRIO",
    "SELECTOR",
    "MARK",
    "ACTION",
    "TEMPLATES",
    "INDEX",
];

pub fn policy_templates(p: &XfrmPolicy, names: &Names) -> String {
    p.templates
        .iter()
        .map(|t| {
            let spi = if t.spi != 0 {
                format!(" spi {:#x}", t.spi)
            } else {
                String::new()
            };
            let level = if t.level == TemplateLevel::Use {
                " level use"
            } else {
                ""
            };
            format!(
                "{} → {} {}{spi} reqid {} {}{level}",
                names.annotate(&t.src),
                names.annotate(&t.dst),
                t.proto,
                t.reqid,
                t.mode
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn policy_row(p: &XfrmPolicy, names: &Names) -> Vec<String> {
    vec![
        p.dir.to_string(),
        p.priority.to_string(),
        selector(&p.selector, names),
        opt_mark(&p.mark),
        p.action.to_string(),
        policy_templates(p, names),
        p.index.to_string(),
    ]
}

pub const STAT_HEADERS: [&str; 3] = ["COUNTER", "VALUE", "MEANING"];

pub fn stat_rows(st: &NodeState) -> Vec<Vec<String>> {
    st.xfrm_stats
        .iter()
        .map(|(k, v)| {
            vec![
                k.clone(),
                v.to_string(),
                crate::explain::xfrm_stat::meaning(k)
                    .unwrap_or("")
                    .to_string(),
            ]
        })
        .collect()
}
