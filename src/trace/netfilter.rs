//! A packet through netfilter as the kernel runs it: at each hook (PREROUTING, INPUT,
//! FORWARD, OUTPUT, POSTROUTING) every table's chain in priority order (raw, conntrack,
//! mangle, nat, filter), for iptables of both backends and native nftables alike, with the
//! node's own facts (its local table for addrtype, ipsets, recent lists, conntrack entries).
//! Pure function of the node's state. What cannot be evaluated is said on the decision
//! (`uncertain`), never silently taken as "no match".

use super::nftables;
use crate::model::{Conntrack, Netfilter, NfCond, NfRule, NfTarget, NodeState, Side};
use crate::model::{LinkKind, Scope};
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    pub fn chain(self) -> &'static str {
        match self {
            Hook::Prerouting => "PREROUTING",
            Hook::Input => "INPUT",
            Hook::Forward => "FORWARD",
            Hook::Output => "OUTPUT",
            Hook::Postrouting => "POSTROUTING",
        }
    }
    fn nft(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }
    /// Conntrack looks the packet up here (priority -200), after raw.
    fn tracks(self) -> bool {
        matches!(self, Hook::Prerouting | Hook::Output)
    }
    /// NAT of this hook rewrites the destination (else the source).
    fn dst_nat(self) -> bool {
        matches!(self, Hook::Prerouting | Hook::Output)
    }
}

/// iptables tables that exist at a hook, with their priorities.
fn ipt_tables(hook: Hook) -> &'static [(&'static str, i32)] {
    match hook {
        Hook::Prerouting => &[("raw", -300), ("mangle", -150), ("nat", -100)],
        Hook::Input => &[
            ("mangle", -150),
            ("filter", 0),
            ("security", 50),
            ("nat", 100),
        ],
        Hook::Forward => &[("mangle", -150), ("filter", 0), ("security", 50)],
        Hook::Output => &[
            ("raw", -300),
            ("mangle", -150),
            ("nat", -100),
            ("filter", 0),
            ("security", 50),
        ],
        Hook::Postrouting => &[("mangle", -150), ("nat", 100)],
    }
}

/// The connection the packet belongs to, as conntrack sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtView {
    /// NEW, ESTABLISHED, UNTRACKED (INVALID/RELATED are not predicted).
    pub state: String,
    pub mark: u32,
    /// Index into `Netfilter::conntrack` of the entry, and whether the packet is its reply.
    pub entry: Option<(usize, bool)>,
    /// Set once the entry was looked up (or the packet marked untracked) on this node.
    pub looked_up: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NfPacket {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub mark: u32,
    /// IP packet length (for `-m length`).
    pub size: u32,
    pub iif: Option<String>,
    pub oif: Option<String>,
    /// Next hop on `oif` (MASQUERADE picks the source address for it).
    pub nexthop: Option<IpAddr>,
    /// The bridge port the packet entered by, when `iif` is a bridge and the trace knows it
    /// (br_netfilter's physindev).
    pub physdev_in: Option<String>,
    pub ct: CtView,
}

impl NfPacket {
    pub fn new(src: IpAddr, dst: IpAddr, proto: u8) -> NfPacket {
        NfPacket {
            src,
            dst,
            proto,
            sport: None,
            dport: None,
            mark: 0,
            size: 84,
            iif: None,
            oif: None,
            nexthop: None,
            physdev_in: None,
            ct: CtView::default(),
        }
    }

    /// What MASQUERADE picks its source address toward: for IPv4 the next hop
    /// (rt_nexthop: the gateway, else the destination), for IPv6 the destination itself.
    pub fn toward(&self) -> Option<IpAddr> {
        match self.dst {
            IpAddr::V4(_) => self.nexthop.or(Some(self.dst)),
            IpAddr::V6(_) => Some(self.dst),
        }
    }
}

/// One thing that decided something (or could not be decided) on the way: typed for JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NfDecision {
    pub hook: Hook,
    /// `iptables-legacy`, `iptables-nft`, `nft`, `conntrack`, `ipvs`.
    pub backend: String,
    pub table: String,
    pub chain: String,
    /// The rule as `iptables-save` / `nft list` prints it.
    pub rule: String,
    /// The rule's target or verdict (`DNAT`, `MARK`, `DROP`, `jump KUBE-SVC-…`).
    pub target: String,
    /// What it did to this packet, in words.
    pub effect: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncertain: Option<String>,
    /// For random choices: every alternative with its probability; which was taken is in `effect`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<String>,
    /// The conntrack entry this decision followed, verbatim and parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<Conntrack>,
    /// A nat rule of an established flow: what a new connection takes (the kernel follows the
    /// conntrack entry instead).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub new_connections_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Accept,
    /// DROP, REJECT or a DROP policy: `decision` indexes `HookResult::decisions`.
    Drop {
        decision: usize,
        how: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookResult {
    pub decisions: Vec<NfDecision>,
    pub verdict: Verdict,
    /// The packet after each table: (number of decisions made until then, the packet).
    pub after: Vec<(usize, NfPacket)>,
}

impl HookResult {
    /// The packet as it was once decision `i` had been made.
    pub fn packet_after(&self, i: usize) -> Option<&NfPacket> {
        self.after.iter().find(|(n, _)| *n > i).map(|(_, p)| p)
    }
}

/// Everything the evaluation of one node needs.
pub struct Node<'a> {
    pub state: &'a NodeState,
    pub nf: &'a Netfilter,
}

fn backend_name(b: &str) -> String {
    b.trim_end_matches("-save").to_string()
}

pub fn proto_matches(name: &str, proto: u8) -> bool {
    match name {
        "all" | "0" => true,
        "tcp" => proto == 6,
        "udp" => proto == 17,
        "icmp" => proto == 1,
        "esp" => proto == 50,
        "ah" => proto == 51,
        "sctp" => proto == 132,
        "icmpv6" | "ipv6-icmp" => proto == 58,
        n => n.parse::<u8>().is_ok_and(|p| p == proto),
    }
}

/// The address type the kernel's addrtype match sees: the route type of the longest local
/// table (255) prefix holding `ip`, else unicast (multicast by range).
pub fn addr_type(st: &NodeState, ip: &IpAddr) -> String {
    if let IpAddr::V4(v4) = ip {
        if v4.is_multicast() {
            return "MULTICAST".into();
        }
        if v4.is_broadcast() || v4.is_unspecified() {
            return "BROADCAST".into();
        }
    }
    st.routes
        .iter()
        .filter(|r| r.table.id == 255)
        .filter_map(|r| Some((r.dst?, r)))
        .filter(|(d, _)| d.contains(ip))
        .max_by_key(|(d, _)| d.len)
        .map(|(_, r)| r.kind.to_string().to_uppercase())
        .unwrap_or_else(|| "UNICAST".into())
}

/// The source address MASQUERADE picks, of the packet's family (`v6`), and how it was
/// chosen. IPv4 as the kernel's inet_select_addr: a primary address of scope global on
/// `dev`, the one whose subnet holds `toward` (the next hop: the gateway, else the
/// destination) first, else the first such address of any device. IPv6 as
/// ipv6_dev_get_saddr towards the destination `toward` (saddr6.rs: tentative addresses
/// skipped, deprecated ones avoided, RFC 6724's rules in the kernel's order).
pub fn masquerade_addr(
    st: &NodeState,
    dev: &str,
    toward: Option<IpAddr>,
    v6: bool,
) -> Option<(IpAddr, String)> {
    if v6 {
        let Some(IpAddr::V6(dst)) = toward else {
            return first_global(st, dev, true).map(|a| (a, String::new()));
        };
        return super::saddr6::select(st, Some(dev), dst).map(|c| (IpAddr::V6(c.addr), c.why));
    }
    if let Some(l) = st.link_by_name(dev) {
        let addrs = global_addrs(l, false);
        if let Some((ip, _)) = addrs
            .iter()
            .find(|(_, p)| toward.is_some_and(|n| p.contains(&n)))
            .or(addrs.first())
        {
            return Some((*ip, String::new()));
        }
    }
    first_global(st, "", false).map(|a| (a, String::new()))
}

/// `; chosen by …` after a masquerade's address, when the choice had rules to say.
pub(super) fn chosen_how(how: &str) -> String {
    if how.is_empty() {
        String::new()
    } else {
        format!("; {how}")
    }
}

/// A link's addresses of scope global of one family, in dump order.
fn global_addrs(l: &crate::model::Link, v6: bool) -> Vec<(IpAddr, crate::model::Prefix)> {
    l.addresses
        .iter()
        .filter(|a| a.scope == Scope::Global)
        .filter_map(|a| Some((a.address.parse::<IpAddr>().ok()?, a.prefix()?)))
        .filter(|(ip, _)| ip.is_ipv6() == v6)
        .collect()
}

/// The first global address of `dev`, else of any device (by index): REDIRECT's local
/// address, and MASQUERADE's when the destination is unknown.
fn first_global(st: &NodeState, dev: &str, v6: bool) -> Option<IpAddr> {
    let mut links: Vec<&crate::model::Link> = st.links.iter().collect();
    links.sort_by_key(|l| (l.name != dev, l.index));
    links
        .iter()
        .find_map(|l| global_addrs(l, v6).first().map(|(ip, _)| *ip))
}

/// `the address of eth0`, for saying where a masquerade address came from.
pub fn addr_owner(st: &NodeState, ip: &IpAddr) -> String {
    st.links
        .iter()
        .find(|l| {
            l.addresses
                .iter()
                .any(|a| a.address.parse::<IpAddr>().is_ok_and(|x| x == *ip))
        })
        .map_or("an address of this node".into(), |l| {
            format!("the address of {}", l.name)
        })
}

/// What of a node's netfilter state could not be read and concerns a packet of this family
/// (the other family's unreadable rules do not).
pub fn warnings_for(nf: &crate::model::Netfilter, ipv6: bool) -> impl Iterator<Item = &String> {
    let other = if ipv6 { "iptables " } else { "ip6tables " };
    nf.warnings.iter().filter(move |w| !w.starts_with(other))
}

/// The conntrack entry of the packet's flow: original direction (ports compared when the
/// trace knows them), else the reply direction of an entry.
pub fn find_conntrack(nf: &Netfilter, p: &NfPacket) -> Option<(usize, bool)> {
    let proto = crate::model::kernel_names::ip_proto(p.proto);
    let port =
        |want: Option<u16>, have: Option<u16>| want.is_none() || have.is_none() || want == have;
    let orig = nf.conntrack.iter().position(|c| {
        c.proto == proto
            && c.src == p.src
            && c.dst == p.dst
            && port(p.sport, c.sport)
            && port(p.dport, c.dport)
    });
    if let Some(i) = orig {
        return Some((i, false));
    }
    nf.conntrack
        .iter()
        .position(|c| {
            c.proto == proto
                && c.reply_src == p.src
                && c.reply_dst == p.dst
                && port(p.sport, c.reply_sport)
                && port(p.dport, c.reply_dport)
        })
        .map(|i| (i, true))
}

/// Apply the entry's translation for this hook's side (dst at PREROUTING/OUTPUT, src at
/// INPUT/POSTROUTING); returns a description when it changed the packet.
fn apply_entry(c: &Conntrack, reply: bool, dst_side: bool, p: &mut NfPacket) -> Option<String> {
    let (addr, port, was_addr, was_port) = match (reply, dst_side) {
        (false, true) => (c.reply_src, c.reply_sport, p.dst, p.dport),
        (false, false) => (c.reply_dst, c.reply_dport, p.src, p.sport),
        (true, true) => (c.src, c.sport, p.dst, p.dport),
        (true, false) => (c.dst, c.dport, p.src, p.sport),
    };
    let port = port.filter(|_| matches!(p.proto, 6 | 17 | 132));
    if addr == was_addr && (port.is_none() || port == was_port) {
        return None;
    }
    let show = |a: IpAddr, p: Option<u16>| {
        format!("{a}{}", p.map(|p| format!(":{p}")).unwrap_or_default())
    };
    let text = format!(
        "{} {} → {}",
        if dst_side { "DNAT" } else { "SNAT" },
        show(was_addr, was_port),
        show(addr, port.or(was_port))
    );
    if dst_side {
        p.dst = addr;
        p.dport = port.or(p.dport);
    } else {
        p.src = addr;
        p.sport = port.or(p.sport);
    }
    Some(text)
}

/// One table's chain at a hook, from whichever source.
enum Base<'a> {
    Ipt { backend: &'a str, table: &'a str },
    Nft { table: usize, chain: usize },
}

/// Run every table's chain of `hook` on `p`, in priority order (the kernel's), changing `p`
/// as the rules do (marks, NAT).
pub fn run_hook(node: &Node, hook: Hook, p: &mut NfPacket) -> HookResult {
    let nf = node.nf;
    let bases = base_chains(node, hook, p);
    let mut out = Vec::new();
    let mut after = Vec::new();
    let mut tracked = false;
    if !hook.tracks() {
        // A packet met first here (a test, or a hook the trace starts at) is looked up now.
        lookup_conntrack(nf, hook, p, &mut out);
        after.push((out.len(), p.clone()));
    }
    for (prio, base) in &bases {
        if hook.tracks() && *prio > -200 && !tracked {
            tracked = true;
            lookup_conntrack(nf, hook, p, &mut out);
            after.push((out.len(), p.clone()));
        }
        let is_nat = match base {
            Base::Ipt { table, .. } => *table == "nat",
            Base::Nft { table, chain } => {
                nf.nft[*table].chains[*chain].kind.as_deref() == Some("nat")
            }
        };
        if is_nat && p.ct.state == "UNTRACKED" {
            continue; // untracked packets are never NATed
        }
        // An established flow is not NATed by rules but by its entry (applied below); the
        // rules are still run on a copy, to name what a new connection of it would take.
        let established = is_nat && p.ct.entry.is_some();
        let mut q = p.clone();
        let target = if established { &mut q } else { &mut *p };
        let before = out.len();
        let stop = match base {
            Base::Ipt { backend, table } => ipt_base(node, hook, backend, table, target, &mut out),
            Base::Nft { table, chain } => {
                nftables::run_base(node, hook, *table, *chain, target, &mut out)
            }
        };
        if established {
            for d in &mut out[before..] {
                d.new_connections_only = true;
            }
            after.push((out.len(), q));
            continue; // a drop in a nat chain, too, would only hit new connections
        }
        after.push((out.len(), p.clone()));
        if let Some(v) = stop {
            return HookResult {
                decisions: out,
                verdict: v,
                after,
            };
        }
    }
    if hook.tracks() && !tracked {
        lookup_conntrack(nf, hook, p, &mut out);
    }
    out.extend(entry_nat(nf, hook, p));
    after.push((out.len(), p.clone()));
    HookResult {
        decisions: out,
        verdict: Verdict::Accept,
        after,
    }
}

/// The base chains of `hook` that apply to `p` (iptables tables with rules or a policy other
/// than ACCEPT, nft chains of its family), in the kernel's priority order.
fn base_chains<'a>(node: &Node<'a>, hook: Hook, p: &NfPacket) -> Vec<(i32, Base<'a>)> {
    let nf = node.nf;
    let mut bases: Vec<(i32, Base)> = Vec::new();
    for backend in &nf.backends {
        // ip6tables rules see IPv6 packets only, iptables rules IPv4 ones.
        if backend == "nft" || crate::model::backend_is_ipv6(backend) != p.dst.is_ipv6() {
            continue;
        }
        for (table, prio) in ipt_tables(hook) {
            let has_rules = !node.nf.chain(backend, table, hook.chain()).is_empty();
            let has_policy = nf.policies.iter().any(|x| {
                &x.backend == backend
                    && x.table == *table
                    && x.chain == hook.chain()
                    && x.policy != "ACCEPT"
            });
            if has_rules || has_policy {
                bases.push((*prio, Base::Ipt { backend, table }));
            }
        }
    }
    for (ti, t) in nf.nft.iter().enumerate() {
        if !family_applies(&t.family, &p.dst) {
            continue;
        }
        for (ci, c) in t.chains.iter().enumerate() {
            if c.hook.as_deref() == Some(hook.nft()) {
                bases.push((
                    c.prio,
                    Base::Nft {
                        table: ti,
                        chain: ci,
                    },
                ));
            }
        }
    }
    bases.sort_by_key(|(prio, _)| *prio); // stable: iptables before nft at equal priority
    bases
}

/// NAT of an established connection comes from its entry, at the hook's NAT point. An IPVS
/// connection's destination rewrite (and its undoing on the reply's source) is IPVS's, not
/// nf_nat's: only a SNAT binding of the entry (masquerade) is applied here.
fn entry_nat(nf: &Netfilter, hook: Hook, p: &mut NfPacket) -> Option<NfDecision> {
    let nat_here = matches!(
        hook,
        Hook::Prerouting | Hook::Output | Hook::Postrouting | Hook::Input
    );
    let (i, reply) = p.ct.entry.filter(|_| nat_here)?;
    if hook.dst_nat() != reply && ipvs_owns(nf, &nf.conntrack[i]) {
        return None;
    }
    let c = &nf.conntrack[i];
    let effect = apply_entry(c, reply, hook.dst_nat(), p)?;
    Some(NfDecision {
        hook,
        backend: "conntrack".into(),
        table: "nat".into(),
        chain: hook.chain().into(),
        rule: c.line.clone(),
        target: if hook.dst_nat() { "DNAT" } else { "SNAT" }.into(),
        effect: format!(
            "{effect} (conntrack entry{})",
            if reply { ", reply direction" } else { "" }
        ),
        uncertain: None,
        alternatives: vec![],
        conntrack: Some(c.clone()),
        new_connections_only: false,
    })
}

/// An entry of a connection to an IPVS virtual service: IPVS rewrites it (at INPUT), not
/// the nat table — the entry carries no NAT binding for PREROUTING to apply.
pub(super) fn ipvs_owns(nf: &Netfilter, c: &Conntrack) -> bool {
    nf.ipvs.iter().any(|s| {
        s.fwmark.is_none() && s.addr == c.dst && Some(s.port) == c.dport && s.proto == c.proto
    })
}

fn family_applies(family: &str, dst: &IpAddr) -> bool {
    match family {
        "ip" => dst.is_ipv4(),
        "ip6" => dst.is_ipv6(),
        "inet" => true,
        _ => false, // arp, bridge, netdev: not on the IP path
    }
}

fn lookup_conntrack(nf: &Netfilter, hook: Hook, p: &mut NfPacket, out: &mut Vec<NfDecision>) {
    if p.ct.looked_up {
        return;
    }
    p.ct.looked_up = true;
    if p.ct.state == "UNTRACKED" {
        return;
    }
    match find_conntrack(nf, p) {
        Some((i, reply)) => {
            let c = &nf.conntrack[i];
            // Ports the trace was not given are the entry's (its direction's tuple), so
            // that filling them in is not taken for a translation later.
            let (sport, dport) = if reply {
                (c.reply_sport, c.reply_dport)
            } else {
                (c.sport, c.dport)
            };
            p.sport = p.sport.or(sport);
            p.dport = p.dport.or(dport);
            p.ct.entry = Some((i, reply));
            p.ct.state = "ESTABLISHED".into();
            p.ct.mark = c.mark;
            out.push(NfDecision {
                hook,
                backend: "conntrack".into(),
                table: "conntrack".into(),
                chain: hook.chain().into(),
                rule: c.line.clone(),
                target: "lookup".into(),
                effect: format!(
                    "the flow has a conntrack entry ({} direction, {}): its translation is followed",
                    if reply { "reply" } else { "original" },
                    c.state.as_deref().unwrap_or("no state")
                ),
                uncertain: None,
                alternatives: vec![],
                conntrack: Some(c.clone()),
                new_connections_only: false,
            });
        }
        None => p.ct.state = "NEW".into(),
    }
}

/// A built-in chain of one iptables table; Some(verdict) stops the hook.
fn ipt_base(
    node: &Node,
    hook: Hook,
    backend: &str,
    table: &str,
    p: &mut NfPacket,
    out: &mut Vec<NfDecision>,
) -> Option<Verdict> {
    let mut w = IptWalk {
        node,
        hook,
        backend,
        table,
        out,
    };
    match w.chain(hook.chain(), p, 0) {
        Flow::Drop(decision, how) => return Some(Verdict::Drop { decision, how }),
        Flow::Accept => return None,
        Flow::Continue | Flow::Return => {}
    }
    let policy = node
        .nf
        .policies
        .iter()
        .find(|x| x.backend == backend && x.table == table && x.chain == hook.chain());
    if let Some(pol) = policy.filter(|x| x.policy == "DROP") {
        w.out.push(decision(
            hook,
            backend,
            table,
            hook.chain(),
            &format!(":{} DROP", hook.chain()),
            "policy DROP",
            "dropped by the chain's policy (no rule accepted it)".into(),
        ));
        return Some(Verdict::Drop {
            decision: w.out.len() - 1,
            how: format!("policy of {table} {}", pol.chain),
        });
    }
    None
}

pub(super) fn decision(
    hook: Hook,
    backend: &str,
    table: &str,
    chain: &str,
    rule: &str,
    target: &str,
    effect: String,
) -> NfDecision {
    NfDecision {
        hook,
        backend: backend_name(backend),
        table: table.into(),
        chain: chain.into(),
        rule: rule.into(),
        target: target.into(),
        effect,
        uncertain: None,
        alternatives: vec![],
        conntrack: None,
        new_connections_only: false,
    }
}

pub(super) enum Flow {
    Continue,
    Return,
    Accept,
    /// Index of the deciding decision, and how (`DROP`, `REJECT --reject-with ...`).
    Drop(usize, String),
}

struct IptWalk<'a, 'b> {
    node: &'a Node<'a>,
    hook: Hook,
    backend: &'a str,
    table: &'a str,
    out: &'b mut Vec<NfDecision>,
}

pub(super) enum Cond {
    Yes,
    No,
    /// Cannot be decided: why.
    Unknown(String),
    /// Taken as matching, for a reason the trace cannot check (said on the decision).
    Assumed(String),
}

fn b(x: bool) -> Cond {
    if x { Cond::Yes } else { Cond::No }
}

fn in_ranges(v: Option<u16>, list: &[(u16, u16)]) -> bool {
    v.is_some_and(|v| list.iter().any(|(a, z)| (*a..=*z).contains(&v)))
}

/// ipset membership of the packet's fields named by `flags`.
fn set_member(nf: &Netfilter, name: &str, flags: &[Side], p: &NfPacket, depth: usize) -> Cond {
    let Some(set) = nf.ipsets.iter().find(|s| s.name == name) else {
        return Cond::Unknown(format!("ipset {name} was not read"));
    };
    let addr = |s: Side| if s == Side::Src { p.src } else { p.dst };
    let port = |s: Side| if s == Side::Src { p.sport } else { p.dport };
    let proto = crate::model::kernel_names::ip_proto(p.proto);
    let parts: Vec<&str> = set
        .kind
        .split(':')
        .nth(1)
        .unwrap_or("")
        .split(',')
        .collect();
    if set.kind == "list:set" {
        if depth > 4 {
            return Cond::Unknown(format!("ipset {name}: lists nested too deep"));
        }
        let mut unknown = None;
        for m in &set.members {
            match set_member(nf, m, flags, p, depth + 1) {
                Cond::Yes => return Cond::Yes,
                Cond::Unknown(w) | Cond::Assumed(w) => unknown = Some(w),
                Cond::No => {}
            }
        }
        return unknown.map_or(Cond::No, Cond::Unknown);
    }
    // Per field: None = not understood, Some(None) = no match, Some(Some(len)) = a match
    // (len: the member's prefix length for net fields, which the kernel tries most specific first).
    let field = |kind: &str, val: &str, side: Side| -> Option<Option<u8>> {
        let hit = |x: bool, len: u8| Some(x.then_some(len));
        match kind {
            "ip" | "net" => match crate::model::Prefix::from_iptables(val) {
                Some(pfx) => {
                    let pfx = match set.netmask {
                        Some(n) if kind == "ip" => crate::model::Prefix::new(pfx.addr, n),
                        _ => pfx,
                    };
                    hit(pfx.contains(&addr(side)), pfx.len)
                }
                None => {
                    let (a, z) = val.split_once('-')?;
                    let (a, z): (IpAddr, IpAddr) = (a.parse().ok()?, z.parse().ok()?);
                    hit((a..=z).contains(&addr(side)), 0)
                }
            },
            "port" => {
                // hash types say the protocol (`tcp:80`); bitmap:port holds bare ports, which
                // the kernel matches for TCP and UDP only.
                let (pr, pt) = match val.split_once(':') {
                    Some((pr, pt)) => (Some(pr), pt),
                    None => (None, val),
                };
                let proto_ok = match pr {
                    Some(pr) => pr == proto,
                    None => proto == "tcp" || proto == "udp",
                };
                if !proto_ok {
                    return Some(None);
                }
                let (lo, hi) = pt.split_once('-').unwrap_or((pt, pt));
                let (lo, hi): (u16, u16) = (lo.parse().ok()?, hi.parse().ok()?);
                hit(port(side).is_some_and(|x| (lo..=hi).contains(&x)), 0)
            }
            // src is the interface the packet came in on, dst the one it leaves by.
            "iface" if !val.starts_with("physdev:") => {
                let dev = if side == Side::Src { &p.iif } else { &p.oif };
                hit(NfCond::iface_matches(val, dev.as_deref()?), 0)
            }
            _ => None,
        }
    };
    if parts
        .iter()
        .any(|k| !matches!(*k, "ip" | "net" | "port" | "iface"))
        || flags.len() < parts.len()
    {
        return Cond::Unknown(format!("ipset type {} is not evaluated", set.kind));
    }
    // The most specific member the packet matches, as the prefix lengths of its fields.
    let best = |members: &[String]| -> Result<Option<Vec<u8>>, String> {
        let mut best: Option<Vec<u8>> = None;
        for m in members {
            let vals: Vec<&str> = m.split(',').collect();
            if vals.len() != parts.len() {
                return Err(format!("ipset {name}: member {m} not understood"));
            }
            let mut lens = Vec::new();
            for ((k, v), side) in parts.iter().zip(&vals).zip(flags) {
                match field(k, v, *side) {
                    Some(Some(len)) => lens.push(len),
                    Some(None) => break,
                    None => return Err(format!("ipset {name}: member {m} not understood")),
                }
            }
            if lens.len() == parts.len() && best.as_ref().is_none_or(|b| lens > *b) {
                best = Some(lens);
            }
        }
        Ok(best)
    };
    match (best(&set.members), best(&set.nomatch)) {
        (Err(e), _) | (_, Err(e)) => Cond::Unknown(e),
        (Ok(Some(hit)), Ok(except)) => b(except.is_none_or(|x| hit > x)),
        (Ok(None), _) => Cond::No,
    }
}

fn cond(node: &Node, hook: Hook, c: &NfCond, p: &NfPacket) -> Cond {
    let st = node.state;
    match c {
        NfCond::In(i) => b(p
            .iif
            .as_deref()
            .is_some_and(|d| NfCond::iface_matches(i, d))),
        NfCond::Out(i) => match (&p.oif, hook) {
            (Some(d), _) => b(NfCond::iface_matches(i, d)),
            (None, Hook::Prerouting | Hook::Input) => Cond::No,
            (None, _) => Cond::Unknown("-o before the route is known".into()),
        },
        NfCond::Src(pfx) => b(pfx.contains(&p.src)),
        NfCond::Dst(pfx) => b(pfx.contains(&p.dst)),
        NfCond::Range(side, a, z) => {
            let ip = if *side == Side::Src { p.src } else { p.dst };
            b((*a..=*z).contains(&ip))
        }
        NfCond::Proto(n) => b(proto_matches(n, p.proto)),
        NfCond::Sport(a, z) => b(in_ranges(p.sport, &[(*a, *z)])),
        NfCond::Dport(a, z) => b(in_ranges(p.dport, &[(*a, *z)])),
        NfCond::Ports(side, list) => b(match side {
            Some(Side::Src) => in_ranges(p.sport, list),
            Some(Side::Dst) => in_ranges(p.dport, list),
            None => in_ranges(p.sport, list) || in_ranges(p.dport, list),
        }),
        NfCond::Mark(m) => b(m.matches(p.mark)),
        NfCond::ConnMark(m) => b(m.matches(p.ct.mark)),
        NfCond::CtState(states) => ct_state(node, states, p),
        NfCond::CtStatus(st) => ct_status(node, st, p),
        NfCond::AddrType {
            side,
            types,
            limit_iface,
        } => {
            if limit_iface.is_some() {
                return Cond::Unknown("addrtype --limit-iface is not evaluated".into());
            }
            let ip = if *side == Side::Src { p.src } else { p.dst };
            let t = addr_type(st, &ip);
            b(types.iter().any(|x| x.eq_ignore_ascii_case(&t)))
        }
        NfCond::PhysdevIn(_) | NfCond::PhysdevOut(_) | NfCond::PhysdevIs(_) => {
            physdev(node, c, false, p)
        }
        NfCond::Set { name, flags } => set_member(node.nf, name, flags, p, 0),
        NfCond::TcpFlags(mask, comp) => tcp_flags(mask, comp, p),
        NfCond::IcmpType(t) => b(p.proto == 1
            && t.is_none_or(|t| t == 8 || (t == 0 && p.ct.entry.is_some_and(|(_, r)| r)))),
        NfCond::Length(a, z) => b((*a..=*z).contains(&p.size)),
        NfCond::Comment(_) => Cond::Yes,
        NfCond::Random(prob) => match prob.parse::<f64>() {
            Ok(x) if x >= 1.0 => Cond::Yes,
            Ok(x) if x <= 0.0 => Cond::No,
            _ => Cond::Unknown(format!("random (probability {prob})")),
        },
        NfCond::Nth(every, packet) => Cond::Unknown(format!(
            "every {every}th packet (packet {packet}): depends on the rule's packet counter"
        )),
        NfCond::Recent {
            name,
            check,
            side,
            seconds,
        } => recent(node, name, *check, *side, *seconds, p),
        NfCond::Unknown(what) => Cond::Unknown(format!("`{what}` is not evaluated")),
    }
}

/// `-m conntrack --ctstate`: the state the lookup found, plus DNAT/SNAT of the entry's
/// original direction.
fn ct_state(node: &Node, states: &[String], p: &NfPacket) -> Cond {
    let mut have = vec![p.ct.state.as_str()];
    if p.ct.state == "ESTABLISHED"
        && let Some((i, reply)) = p.ct.entry
    {
        let e = &node.nf.conntrack[i];
        if e.is_dnat() && !reply {
            have.push("DNAT");
        }
        if e.is_snat() && !reply {
            have.push("SNAT");
        }
    }
    if p.ct.state.is_empty() {
        return Cond::Unknown("conntrack state before the lookup".into());
    }
    b(states.iter().any(|s| have.contains(&s.as_str())))
}

/// `-m conntrack --ctstatus`, from the entry's flags.
fn ct_status(node: &Node, wanted: &[String], p: &NfPacket) -> Cond {
    let Some((i, _)) = p.ct.entry else {
        return b(false);
    };
    let flags = &node.nf.conntrack[i].flags;
    b(wanted.iter().any(|s| match s.as_str() {
        "ASSURED" => flags.iter().any(|f| f == "ASSURED"),
        "SEEN_REPLY" => !flags.iter().any(|f| f == "UNREPLIED"),
        "CONFIRMED" => true,
        _ => false,
    }))
}

/// `--tcp-flags MASK COMP`: a new connection's first packet is a SYN; an established one's
/// are ACKs.
fn tcp_flags(mask: &[String], comp: &[String], p: &NfPacket) -> Cond {
    if p.proto != 6 {
        return Cond::No;
    }
    let have: &[&str] = if p.ct.state == "ESTABLISHED" {
        &["ACK"]
    } else {
        &["SYN"]
    };
    let set = |l: &[String]| -> Vec<String> {
        if l.iter().any(|x| x == "ALL") {
            ["FIN", "SYN", "RST", "PSH", "ACK", "URG"]
                .map(String::from)
                .to_vec()
        } else if l.iter().any(|x| x == "NONE") {
            vec![]
        } else {
            l.to_vec()
        }
    };
    let (mask, comp) = (set(mask), set(comp));
    b(mask
        .iter()
        .all(|f| have.contains(&f.as_str()) == comp.contains(f)))
}

/// `-m recent`: `--set` always matches; `--rcheck/--update` look the address up in the list
/// read from /proc (its ages are not read).
fn recent(
    node: &Node,
    name: &str,
    check: bool,
    side: Side,
    seconds: Option<u32>,
    p: &NfPacket,
) -> Cond {
    if !check {
        return Cond::Yes;
    }
    let ip = if side == Side::Src { p.src } else { p.dst };
    match node.nf.recent.iter().find(|r| r.name == name) {
        Some(r) if r.addrs.contains(&ip) => match seconds {
            Some(s) => Cond::Assumed(format!(
                "{ip} is in recent list {name} (session affinity); that it was seen in the last {s} s is assumed (ages are not read)"
            )),
            None => Cond::Yes,
        },
        Some(_) => Cond::No,
        None => Cond::Unknown(format!("recent list {name} was not readable")),
    }
}

/// What `-m physdev` knows of the port a packet entered by.
enum Phys {
    /// br_netfilter recorded this port (physindev).
    Port(String),
    /// It entered a bridge, by a port the trace does not know.
    Unknown(String),
    /// No bridge port: not received by a bridge, or br_netfilter does not hand the bridge's
    /// packets to iptables (bridge-nf-call-iptables 0, or not loaded).
    NotBridged,
}

/// `-m physdev` as xt_physdev decides it, its `!` included: that is no plain "not" (with
/// bridge information and no port out, `--physdev-out` fails negated or not; without bridge
/// information only a negated option matches). The trace routes every packet, and a routed
/// packet has no port out (physoutdev is set only for frames the bridge forwards itself,
/// which are not traced).
fn physdev(node: &Node, c: &NfCond, negated: bool, p: &NfPacket) -> Cond {
    let want = |m: bool| if m != negated { Cond::Yes } else { Cond::No };
    match (c, physdev_in(node, p)) {
        (_, Phys::NotBridged) => want(false),
        (NfCond::PhysdevIn(dev), Phys::Port(port)) => want(NfCond::iface_matches(dev, &port)),
        (NfCond::PhysdevIn(dev), Phys::Unknown(why)) => {
            Cond::Unknown(format!("--physdev-in {dev}: {why}"))
        }
        (NfCond::PhysdevIs(w), _) if w == "in" => want(true),
        (NfCond::PhysdevOut(_), _) => Cond::No,
        _ => want(false), // --physdev-is-out, --physdev-is-bridged: no port out
    }
}

fn physdev_in(node: &Node, p: &NfPacket) -> Phys {
    let on = node
        .nf
        .bridge_nf_call
        .is_some_and(|c| c[usize::from(p.dst.is_ipv6())]);
    let iif = p.iif.as_deref().and_then(|d| node.state.link_by_name(d));
    match (on, &p.physdev_in, iif) {
        (false, ..) => Phys::NotBridged,
        (true, Some(port), _) => Phys::Port(port.clone()),
        (true, None, Some(l)) if l.kind == Some(LinkKind::Bridge) => Phys::Unknown(format!(
            "the port of {} it came in by is not known (it arrived from outside the trace)",
            l.name
        )),
        _ => Phys::NotBridged,
    }
}

/// What the kernel would translate to, for picking among random alternatives.
fn nat_to(t: &NfTarget) -> Option<String> {
    match t {
        NfTarget::Dnat { to } | NfTarget::Snat { to } => Some(to.clone()),
        _ => None,
    }
}

/// `10.0.0.249:80`, `[fd00::1]:80`, `10.0.0.1-10.0.0.3:1000-2000`: (first address, first port).
pub fn parse_nat_to(to: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Some(rest) = to.strip_prefix('[') {
        let (a, p) = rest.split_once(']')?;
        let port = p
            .strip_prefix(':')
            .and_then(|p| p.split('-').next()?.parse().ok());
        return Some((a.parse().ok()?, port));
    }
    let (a, p) = match to.rsplit_once(':') {
        Some((a, p)) if !a.contains(':') => (a, Some(p)),
        _ => (to, None),
    };
    let a = a.split('-').next()?;
    Some((
        a.parse().ok()?,
        p.and_then(|p| p.split('-').next()?.parse().ok()),
    ))
}

fn show(a: IpAddr, p: Option<u16>) -> String {
    format!("{a}{}", p.map(|p| format!(":{p}")).unwrap_or_default())
}

/// The target of a rule in words (`DNAT`, `jump KUBE-SVC-X`).
fn target_name(t: &NfTarget) -> String {
    match t {
        NfTarget::Jump { chain } => format!("jump {chain}"),
        NfTarget::Goto { chain } => format!("goto {chain}"),
        NfTarget::Return => "RETURN".into(),
        NfTarget::Accept => "ACCEPT".into(),
        NfTarget::Drop => "DROP".into(),
        NfTarget::Reject { .. } => "REJECT".into(),
        NfTarget::SetMark { .. } => "MARK".into(),
        NfTarget::SetConnMark { .. } | NfTarget::SaveMark { .. } | NfTarget::RestoreMark { .. } => {
            "CONNMARK".into()
        }
        NfTarget::Dnat { .. } => "DNAT".into(),
        NfTarget::Snat { .. } => "SNAT".into(),
        NfTarget::Masquerade { .. } => "MASQUERADE".into(),
        NfTarget::Redirect { .. } => "REDIRECT".into(),
        NfTarget::Notrack => "NOTRACK".into(),
        NfTarget::Log { name } | NfTarget::Other { name } => name.clone(),
    }
}

/// Probabilities of a run of random rules: rule i wins with p_i × Π(1 − p_j), j < i.
pub fn shares(probs: &[f64]) -> Vec<f64> {
    let mut left = 1.0;
    probs
        .iter()
        .map(|p| {
            let s = left * p.clamp(0.0, 1.0);
            left -= s;
            s
        })
        .collect()
}

/// Which alternative to follow: the one the conntrack entry took (by translation), else the
/// first. Returns (index, why).
pub(super) fn pick(
    alts: &[Option<(IpAddr, Option<u16>)>],
    entry: Option<&Conntrack>,
) -> (usize, &'static str) {
    taken_by_entry(alts, entry).unwrap_or((
        0,
        "the first; the kernel picks at random per new connection",
    ))
}

/// The alternative whose translation the conntrack entry records (its reply comes from it).
pub(super) fn taken_by_entry(
    alts: &[Option<(IpAddr, Option<u16>)>],
    entry: Option<&Conntrack>,
) -> Option<(usize, &'static str)> {
    let c = entry?;
    let i = alts.iter().position(|a| {
        a.is_some_and(|(ip, port)| ip == c.reply_src && (port.is_none() || port == c.reply_sport))
    })?;
    Some((i, "the one the flow's conntrack entry took"))
}

impl IptWalk<'_, '_> {
    fn push(&mut self, chain: &str, r: &NfRule, effect: String) -> usize {
        self.out.push(decision(
            self.hook,
            self.backend,
            self.table,
            chain,
            &r.line,
            &target_name(&r.target),
            effect,
        ));
        self.out.len() - 1
    }

    /// Known conditions first: only when they all hold does an unknown one matter.
    fn matches(&self, r: &NfRule, p: &NfPacket) -> (bool, Vec<String>, Vec<String>) {
        let mut unknown = Vec::new();
        let mut assumed = Vec::new();
        for m in &r.matches {
            let (c, negated) = match &m.what {
                w @ (NfCond::PhysdevIn(_) | NfCond::PhysdevOut(_) | NfCond::PhysdevIs(_)) => {
                    (physdev(self.node, w, m.negated, p), false)
                }
                w => (cond(self.node, self.hook, w, p), m.negated),
            };
            match c {
                Cond::Yes if negated => return (false, vec![], vec![]),
                Cond::No if !negated => return (false, vec![], vec![]),
                Cond::Yes | Cond::No => {}
                Cond::Unknown(why) => unknown.push(why),
                Cond::Assumed(why) if negated => unknown.push(why),
                Cond::Assumed(why) => assumed.push(why),
            }
        }
        (true, unknown, assumed)
    }

    fn chain(&mut self, chain: &str, p: &mut NfPacket, depth: usize) -> Flow {
        if depth > 64 {
            self.out.push(decision(
                self.hook,
                self.backend,
                self.table,
                chain,
                "",
                "",
                "chains nested more than 64 deep: stopped evaluating".into(),
            ));
            return Flow::Continue;
        }
        let idx = self.node.nf.chain(self.backend, self.table, chain);
        let rules = &self.node.nf.rules;
        let mut k = 0;
        while k < idx.len() {
            let r = &rules[idx[k]];
            k += 1;
            let (ok, unknown, assumed) = self.matches(r, p);
            if !ok {
                continue;
            }
            let random = r
                .matches
                .iter()
                .any(|m| matches!(m.what, NfCond::Random(_) | NfCond::Nth(..)));
            let only_random = unknown
                .iter()
                .all(|u| u.starts_with("random") || u.starts_with("every"));
            let mut chosen = r;
            let mut note = None;
            if !unknown.is_empty() && random && only_random {
                let (rule, next, d) = self.random_choice(chain, idx, k, p);
                chosen = &rules[rule];
                k = next;
                note = Some(d);
            } else if !unknown.is_empty() {
                let d = self.push(
                    chain,
                    r,
                    format!(
                        "not taken: assumed not to match; if it does, {}",
                        target_name(&r.target)
                    ),
                );
                self.out[d].uncertain = Some(unknown.join("; "));
                continue;
            }
            let first = self.out.len();
            let flow = self.target(chain, chosen, p, depth, note);
            if !assumed.is_empty()
                && let Some(d) = self.out.get_mut(note.unwrap_or(first))
            {
                d.uncertain = Some(assumed.join("; "));
            }
            match flow {
                Flow::Continue => {}
                f => return f,
            }
        }
        Flow::Continue
    }

    /// A run of random rules starting at `idx[k - 1]` (kube-proxy's endpoint choice): every
    /// endpoint is listed with its share and one followed (the conntrack entry's, else the
    /// first the scheduler may take). Returns the rule followed, where to go on in `idx`,
    /// and the decision that says so.
    fn random_choice(
        &mut self,
        chain: &str,
        idx: &[usize],
        k: usize,
        p: &NfPacket,
    ) -> (usize, usize, usize) {
        let rules = &self.node.nf.rules;
        let mut run = vec![idx[k - 1]];
        let mut j = k;
        while j < idx.len() {
            let r2 = &rules[idx[j]];
            let (ok2, unk2, _) = self.matches(r2, p);
            if ok2 {
                run.push(idx[j]);
                if unk2.is_empty() {
                    break;
                }
            }
            j += 1;
        }
        let probs: Vec<f64> = run
            .iter()
            .map(|&i| {
                rules[i]
                    .matches
                    .iter()
                    .find_map(|m| match &m.what {
                        NfCond::Random(p) => p.parse().ok(),
                        NfCond::Nth(e, _) => Some(1.0 / f64::from((*e).max(1))),
                        _ => None,
                    })
                    .unwrap_or(1.0)
            })
            .collect();
        let dests: Vec<Option<(IpAddr, Option<u16>)>> = run
            .iter()
            .map(|&i| self.dest_of(&rules[i].target, 0))
            .collect();
        let entry = p.ct.entry.map(|(i, _)| &self.node.nf.conntrack[i]);
        let (pick_i, why) = pick(&dests, entry);
        let alts = run
            .iter()
            .zip(shares(&probs))
            .zip(&dests)
            .map(|((&i, s), d)| {
                format!(
                    "{} ({:.1}%){}",
                    target_name(&rules[i].target),
                    s * 100.0,
                    d.map(|(a, p)| format!(" → {}", show(a, p)))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>();
        let chosen = &rules[run[pick_i]];
        // Continue after the chosen rule, as if the ones before it did not match.
        let next = idx
            .iter()
            .position(|&x| x == run[pick_i])
            .map_or(k, |x| x + 1);
        let d = self.push(
            chain,
            chosen,
            format!(
                "random choice among {} endpoints: following {}, {why}",
                run.len(),
                target_name(&chosen.target)
            ),
        );
        self.out[d].alternatives = alts;
        (run[pick_i], next, d)
    }

    /// The DNAT/SNAT destination a target leads to (following jumps), for random choices.
    fn dest_of(&self, t: &NfTarget, depth: usize) -> Option<(IpAddr, Option<u16>)> {
        if depth > 8 {
            return None;
        }
        match t {
            NfTarget::Jump { chain } | NfTarget::Goto { chain } => self
                .node
                .nf
                .chain(self.backend, self.table, chain)
                .iter()
                .find_map(|&i| self.dest_of(&self.node.nf.rules[i].target, depth + 1)),
            t => nat_to(t).and_then(|to| parse_nat_to(&to)),
        }
    }

    fn target(
        &mut self,
        chain: &str,
        r: &NfRule,
        p: &mut NfPacket,
        depth: usize,
        noted: Option<usize>,
    ) -> Flow {
        let hook = self.hook;
        let say = |w: &mut Self, effect: String| -> usize {
            match noted {
                Some(d) => {
                    w.out[d].effect = format!("{}; {effect}", w.out[d].effect);
                    d
                }
                None => w.push(chain, r, effect),
            }
        };
        match &r.target {
            NfTarget::Jump { chain: c } => {
                if noted.is_none() && self.node.nf.chain(self.backend, self.table, c).is_empty() {
                    return Flow::Continue;
                }
                if noted.is_none() {
                    self.push(chain, r, format!("jumps to {c}"));
                }
                match self.chain(c, p, depth + 1) {
                    Flow::Continue | Flow::Return => Flow::Continue,
                    f => f,
                }
            }
            NfTarget::Goto { chain: c } => {
                if noted.is_none() {
                    self.push(chain, r, format!("goes to {c}"));
                }
                match self.chain(c, p, depth + 1) {
                    Flow::Continue | Flow::Return => Flow::Return,
                    f => f,
                }
            }
            NfTarget::Return => Flow::Return,
            NfTarget::Accept => {
                say(self, format!("accepted by {} {}", self.table, chain));
                Flow::Accept
            }
            NfTarget::Drop => {
                let d = say(self, "dropped".into());
                Flow::Drop(d, "DROP".into())
            }
            NfTarget::Reject { with } => {
                let d = say(self, format!("rejected ({with})"));
                Flow::Drop(d, format!("REJECT --reject-with {with}"))
            }
            t @ (NfTarget::SetMark { .. }
            | NfTarget::SetConnMark { .. }
            | NfTarget::SaveMark { .. }
            | NfTarget::RestoreMark { .. }) => {
                let effect = set_marks(t, p);
                say(self, effect);
                Flow::Continue
            }
            NfTarget::Dnat { to } | NfTarget::Snat { to } => {
                let dnat = matches!(r.target, NfTarget::Dnat { .. });
                let (effect, uncertain) = nat_rule(dnat, to, p);
                let d = say(self, effect);
                if uncertain.is_some() {
                    self.out[d].uncertain = uncertain;
                }
                Flow::Accept
            }
            NfTarget::Masquerade { to_ports } => {
                let (effect, uncertain) = masquerade(self.node.state, r, to_ports.as_deref(), p);
                let d = say(self, effect);
                if uncertain.is_some() {
                    self.out[d].uncertain = uncertain;
                }
                Flow::Accept
            }
            NfTarget::Redirect { to_ports } => {
                let effect = redirect(self.node.state, hook, to_ports.as_deref(), p);
                say(self, effect);
                Flow::Accept
            }
            NfTarget::Notrack => {
                p.ct.state = "UNTRACKED".into();
                p.ct.looked_up = true;
                say(self, "not tracked: no conntrack entry, no NAT".into());
                Flow::Continue
            }
            NfTarget::Log { name } => {
                if noted.is_some() {
                    say(self, format!("{name}: no effect on the path"));
                }
                Flow::Continue
            }
            NfTarget::Other { name } => {
                let d = say(
                    self,
                    format!("target {name} not modelled: assumed to let the packet continue"),
                );
                self.out[d].uncertain = Some(format!("target {name} is not evaluated"));
                Flow::Continue
            }
        }
    }
}

/// MARK, CONNMARK --set-mark/--save-mark/--restore-mark on the packet (and its connection):
/// what changed.
fn set_marks(t: &NfTarget, p: &mut NfPacket) -> String {
    match t {
        NfTarget::SetMark { value, mask } => {
            let before = p.mark;
            p.mark = (p.mark & !mask) ^ value;
            format!("mark {before:#x} → {:#x}", p.mark)
        }
        NfTarget::SetConnMark { value, mask } => {
            let before = p.ct.mark;
            p.ct.mark = (p.ct.mark & !mask) ^ value;
            format!("connection mark {before:#x} → {:#x}", p.ct.mark)
        }
        NfTarget::SaveMark { nfmask, ctmask } => {
            p.ct.mark = (p.ct.mark & !ctmask) ^ (p.mark & nfmask);
            format!("connection mark ← mark: {:#x}", p.ct.mark)
        }
        NfTarget::RestoreMark { nfmask, ctmask } => {
            let before = p.mark;
            p.mark = (p.mark & !nfmask) ^ (p.ct.mark & ctmask);
            format!(
                "mark {before:#x} → {:#x} (from the connection mark)",
                p.mark
            )
        }
        _ => unreachable!("set_marks is called for mark targets only"),
    }
}

/// DNAT/SNAT `--to` on the packet: what it did, and why it is uncertain when the target
/// does not read.
pub(super) fn nat_rule(dnat: bool, to: &str, p: &mut NfPacket) -> (String, Option<String>) {
    let Some((a, port)) = parse_nat_to(to) else {
        return (
            format!("NAT to {to:?}"),
            Some(format!("cannot read the NAT target {to:?}")),
        );
    };
    let (was, wasp) = if dnat {
        (p.dst, p.dport)
    } else {
        (p.src, p.sport)
    };
    let port = port.filter(|_| matches!(p.proto, 6 | 17 | 132));
    if dnat {
        (p.dst, p.dport) = (a, port.or(p.dport));
    } else {
        (p.src, p.sport) = (a, port.or(p.sport));
    }
    let what = if dnat { "DNAT" } else { "SNAT" };
    (format!("{what} {} → {to}", show(was, wasp)), None)
}

/// MASQUERADE to the address the kernel picks on the way out: what it did, or why it could
/// not.
fn masquerade(
    st: &NodeState,
    r: &NfRule,
    to_ports: Option<&str>,
    p: &mut NfPacket,
) -> (String, Option<String>) {
    let dev = p.oif.clone().unwrap_or_default();
    let Some((a, how)) = masquerade_addr(st, &dev, p.toward(), p.dst.is_ipv6()) else {
        return (
            format!("MASQUERADE to an address of {dev}"),
            Some(format!("{dev} has no address to masquerade to")),
        );
    };
    let was = p.src;
    p.src = a;
    let whose = addr_owner(st, &a);
    let port_note = match to_ports {
        Some(tp) => {
            p.sport = tp
                .split('-')
                .next()
                .and_then(|x| x.parse().ok())
                .or(p.sport);
            format!(", source port from {tp}")
        }
        None if r.line.contains("--random") => {
            ", source port chosen at random by the kernel".into()
        }
        None => ", source port kept unless taken".into(),
    };
    (
        format!(
            "MASQUERADE {was} → {a} ({whose}, leaving by {dev}{port_note}{})",
            chosen_how(&how)
        ),
        None,
    )
}

/// REDIRECT to this node: the incoming interface's first address in PREROUTING, loopback
/// for the node's own packets.
fn redirect(st: &NodeState, hook: Hook, to_ports: Option<&str>, p: &mut NfPacket) -> String {
    let was = (p.dst, p.dport);
    let local = match (hook, &p.iif) {
        (Hook::Prerouting, Some(i)) => first_global(st, i, p.dst.is_ipv6()),
        _ => Some(if p.dst.is_ipv4() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        }),
    };
    if let Some(a) = local {
        p.dst = a;
    }
    if let Some(tp) = to_ports {
        p.dport = tp
            .split('-')
            .next()
            .and_then(|x| x.parse().ok())
            .or(p.dport);
    }
    format!(
        "REDIRECT {} → {} (to this node)",
        show(was.0, was.1),
        show(p.dst, p.dport)
    )
}

#[cfg(test)]
mod tests;
