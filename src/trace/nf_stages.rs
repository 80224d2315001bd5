//! The netfilter hooks as steps of a packet's pass through a node (see stages.rs): PREROUTING
//! on arrival, OUTPUT for the node's own packets (routed again after a DNAT), INPUT before
//! local delivery (and IPVS, which sends a virtual service's packets on from there), FORWARD
//! for packets passing through, POSTROUTING before the packet leaves. Each hook's decisions
//! become hops, one per table that changed, accepted, dropped or could not evaluate
//! something, with the decisions as data.

use super::decision::Decision;
use super::netfilter::{CtView, Hook, NfDecision, NfPacket, Verdict, run_hook};
use super::path::{At, End, Go, Packet, Step, Walk};
use super::stages::cilium_mark;
use std::net::IpAddr;

/// A hook's decisions as hop data: each rule, and the conntrack entries they followed.
fn as_decisions(ds: &[NfDecision]) -> Vec<Decision> {
    let mut out: Vec<Decision> = ds.iter().cloned().map(Decision::Netfilter).collect();
    let mut entries: Vec<_> = ds.iter().filter_map(|d| d.conntrack.clone()).collect();
    entries.dedup();
    out.extend(entries.into_iter().map(Decision::Conntrack));
    out
}

/// The route's gateway, for MASQUERADE's choice of address.
fn routed_gateway(w: &Walk, at: &At) -> Option<IpAddr> {
    let r = at.routed.as_ref()?;
    w.nodes[at.node].state.routes[r.route]
        .gateway
        .as_ref()?
        .parse()
        .ok()
}

/// PREROUTING (raw, conntrack, mangle, nat) for a packet that arrived on a device; where no
/// mangle rule marked it, Cilium's BPF marks are assumed (and said).
pub(super) fn prerouting(w: &mut Walk, at: &mut At) -> Go {
    let (Some(dev), false) = (at.iif.clone(), at.generated_by_xfrm || at.output_done) else {
        return Go::On;
    };
    let ni = at.node;
    let dev = enter_bridge(w, at, dev);
    at.ct = CtView::default();
    let before = at.pkt.clone();
    let first_hop = w.hops.len();
    if let Some(end) = nf_hook(
        w,
        ni,
        Hook::Prerouting,
        (Some(&dev), at.bridge_port.as_deref()),
        None,
        None,
        &mut at.pkt,
        &mut at.ct,
    ) {
        return Go::End(end);
    }
    let mangled = w.hops[first_hop..].iter().flat_map(|h| &h.decisions).any(|d| {
        matches!(d, Decision::Netfilter(d) if d.table == "mangle" && d.effect.starts_with("mark"))
    });
    // --mark is the mark the packet enters with: no assumption about Cilium's marks then.
    if !at.mark_given && !mangled {
        // Cilium's BPF marks before netfilter sees the packet: judged on the packet unNATed.
        let mut orig = before;
        cilium_mark(w, ni, &dev, &mut orig);
        at.pkt.mark = orig.mark;
    }
    at.mark_given = false; // later hops (after decrypt, after a veth) get marks from the node
    Go::On
}

/// A packet arriving on a bridge port is received by the bridge: IP sees the bridge as its
/// device, and br_netfilter keeps the port (physindev) for `-m physdev`. Returns the device
/// IP sees.
fn enter_bridge(w: &mut Walk, at: &mut At, dev: String) -> String {
    let st = &w.nodes[at.node].state;
    let bridge = st
        .link_by_name(&dev)
        .and_then(|l| l.master.as_ref()?.name.clone())
        .filter(|m| {
            st.link_by_name(m)
                .is_some_and(|l| l.kind == Some(crate::model::LinkKind::Bridge))
        });
    let Some(bridge) = bridge else {
        return dev;
    };
    w.hop(
        (at.node, Step::Ingress, Some(&bridge)),
        &at.pkt,
        format!("received by bridge {bridge} on its port {dev}"),
        format!("{dev} master {bridge}"),
        vec![],
    );
    at.bridge_port = Some(dev);
    at.iif = Some(bridge.clone());
    bridge
}

/// OUTPUT for a packet the node itself sends, once: a DNAT there routes it again.
pub(super) fn output(w: &mut Walk, at: &mut At) -> Go {
    if at.iif.is_some() || at.generated_by_xfrm || at.output_done {
        return Go::On;
    }
    let oif = at.routed.as_ref().and_then(|r| r.dev.clone());
    let gw = routed_gateway(w, at);
    at.ct = CtView::default();
    let before = (at.pkt.dst, at.pkt.dport);
    if let Some(end) = nf_hook(
        w,
        at.node,
        Hook::Output,
        (None, None),
        oif.as_deref(),
        gw,
        &mut at.pkt,
        &mut at.ct,
    ) {
        return Go::End(end);
    }
    at.output_done = true;
    if before != (at.pkt.dst, at.pkt.dport) {
        return Go::Again; // routed again, to the new destination
    }
    Go::On
}

/// INPUT before local delivery (or decryption); then IPVS, whose virtual services are local
/// addresses it sends on to a real server.
pub(super) fn input(w: &mut Walk, at: &mut At) -> Go {
    if at
        .routed
        .as_ref()
        .is_none_or(|r| r.kind != crate::model::RouteKind::Local)
    {
        return Go::On;
    }
    if let Some(end) = nf_hook(
        w,
        at.node,
        Hook::Input,
        (at.iif.as_deref(), at.bridge_port.as_deref()),
        None,
        None,
        &mut at.pkt,
        &mut at.ct,
    ) {
        return Go::End(end);
    }
    if at.pkt.esp.is_some() {
        return Go::On;
    }
    // A reply to the node's own connection: IPVS's LOCAL_IN reply hook.
    ipvs_reply(w, at.node, Hook::Input, &mut at.pkt, &at.ct);
    match ipvs_dnat(w, at.node, &mut at.pkt, &at.ct) {
        Ipvs::NotAService => Go::On,
        Ipvs::Sent => {
            at.output_done = true;
            at.iif = None;
            Go::Again // routed as the node's own packet, to the real server
        }
        Ipvs::Dropped(end) => Go::End(end),
    }
}

/// FORWARD for a packet passing through the node.
pub(super) fn forward(w: &mut Walk, at: &mut At) -> Go {
    let Some(oif) = at
        .routed
        .as_ref()
        .filter(|r| r.kind != crate::model::RouteKind::Local)
        .and_then(|r| r.dev.clone())
    else {
        return Go::On;
    };
    if at.iif.is_none() || at.generated_by_xfrm || at.output_done {
        return Go::On;
    }
    let gw = routed_gateway(w, at);
    if let Some(end) = nf_hook(
        w,
        at.node,
        Hook::Forward,
        (at.iif.clone().as_deref(), at.bridge_port.as_deref()),
        Some(&oif),
        gw,
        &mut at.pkt,
        &mut at.ct,
    ) {
        return Go::End(end);
    }
    // After the filter table (priority 100): IPVS rewrites a real server's reply.
    ipvs_reply(w, at.node, Hook::Forward, &mut at.pkt, &at.ct);
    Go::On
}

/// POSTROUTING (mangle, nat: SNAT, MASQUERADE) on the packet about to leave.
pub(super) fn postrouting(w: &mut Walk, at: &mut At) -> Go {
    let Some(oif) = at.routed.as_ref().and_then(|r| r.dev.clone()) else {
        return Go::On;
    };
    let (from, port) = if at.generated_by_xfrm || at.output_done {
        (None, None)
    } else {
        (at.iif.clone(), at.bridge_port.clone())
    };
    let gw = routed_gateway(w, at);
    let end = nf_hook(
        w,
        at.node,
        Hook::Postrouting,
        (from.as_deref(), port.as_deref()),
        Some(&oif),
        gw,
        &mut at.pkt,
        &mut at.ct,
    );
    at.output_done = false; // wherever it goes next, it arrives there as a received packet
    match end {
        Some(end) => Go::End(end),
        None => Go::On,
    }
}

/// Run one netfilter hook of node `ni` on `pkt` (arrived on `iif`, by the bridge port
/// `physdev_in`) and turn what decided something into hops:
/// one per table that changed, accepted, dropped or could not evaluate something. Some(end)
/// when a rule dropped the packet.
#[allow(clippy::too_many_arguments)]
fn nf_hook(
    w: &mut Walk,
    ni: usize,
    hook: Hook,
    (iif, physdev_in): (Option<&str>, Option<&str>),
    oif: Option<&str>,
    nexthop: Option<IpAddr>,
    pkt: &mut Packet,
    ct: &mut CtView,
) -> Option<End> {
    let node = &w.nodes[ni];
    let nf = &node.netfilter;
    if nf.rules.is_empty() && nf.nft.is_empty() && nf.conntrack.is_empty() && nf.warnings.is_empty()
    {
        return None;
    }
    let mut p = NfPacket {
        src: pkt.src,
        dst: pkt.dst,
        proto: pkt.proto,
        sport: pkt.sport,
        dport: pkt.dport,
        mark: pkt.mark,
        size: pkt.size,
        iif: iif.map(str::to_string),
        oif: oif.map(str::to_string),
        nexthop,
        physdev_in: physdev_in.map(str::to_string),
        ct: ct.clone(),
    };
    let r = run_hook(&node.nf_node(), hook, &mut p);
    // What could not be read is said where it matters: on the first hook of the node.
    let warn: Vec<String> = if matches!(hook, Hook::Prerouting | Hook::Output) {
        super::netfilter::warnings_for(nf, pkt.dst.is_ipv6())
            .cloned()
            .collect()
    } else {
        vec![]
    };
    // The hop is where the packet is: about to leave by oif at POSTROUTING, else on iif.
    let dev = match hook {
        Hook::Postrouting => oif.or(iif),
        _ => iif.or(oif),
    }
    .map(str::to_string);
    let groups = by_table(&r.decisions);
    let dropped = match &r.verdict {
        Verdict::Drop { decision, how } => Some((*decision, how.clone())),
        Verdict::Accept => None,
    };
    let mut seen = 0;
    // The conntrack lookup is no hop of its own: it is said on the next hop of this hook.
    let mut lookup: Vec<NfDecision> = Vec::new();
    for (table, ds) in &groups {
        let first = seen;
        seen += ds.len();
        if ds.iter().all(|d| d.target == "lookup") {
            lookup.extend(ds.iter().cloned());
            continue;
        }
        let significant =
            |d: &&NfDecision| !d.effect.starts_with("jumps to") && !d.effect.starts_with("goes to");
        let Some(last) = ds.iter().rev().find(significant) else {
            continue; // only jumps: nothing happened in this table
        };
        let ds: Vec<NfDecision> = std::mem::take(&mut lookup)
            .into_iter()
            .chain(ds.iter().cloned())
            .collect();
        let ds = &ds;
        // An established flow: the entry translated it; the rule a new connection takes names why.
        let by_rule = ds
            .iter()
            .rev()
            .filter(significant)
            .find(|d| d.backend != "conntrack" && d.target == last.target);
        let main = by_rule
            .filter(|_| last.backend == "conntrack")
            .unwrap_or(last);
        let step = table_step(table, ds);
        let mut p2 = pkt.clone();
        let q = r.packet_after(seen - 1).unwrap_or(&p);
        (p2.src, p2.dst, p2.sport, p2.dport, p2.mark) = (q.src, q.dst, q.sport, q.dport, q.mark);
        let what = format!("{} {}: {}", hook.chain(), table, last.effect);
        let by = if main.backend == "conntrack" {
            format!("conntrack: {}", main.rule)
        } else {
            format!(
                "{} {} {}: {}",
                main.backend, main.table, main.chain, main.rule
            )
        };
        let mut details: Vec<String> = ds.iter().map(detail_line).collect();
        if first == 0 {
            details.extend(warn.iter().map(|x| format!("warning: {x}")));
        }
        w.hop((ni, step, dev.as_deref()), &p2, what, by, details);
        w.decided(as_decisions(ds));
    }
    if groups.is_empty() && !warn.is_empty() {
        w.hop(
            (ni, Step::Filter, dev.as_deref()),
            pkt,
            format!("{}: netfilter not fully read", hook.chain()),
            warn[0].clone(),
            warn.clone(),
        );
    }
    (pkt.src, pkt.dst, pkt.sport, pkt.dport, pkt.mark) = (p.src, p.dst, p.sport, p.dport, p.mark);
    *ct = p.ct;
    let (i, how) = dropped?;
    let d = groups.iter().flat_map(|(_, v)| v).nth(i).cloned();
    Some(stop_by_rule(w, ni, hook, pkt, d, &how))
}

/// The hook's decisions in runs of one table each; an established flow's translation joins
/// the rules a new connection would take.
fn by_table(decisions: &[NfDecision]) -> Vec<(String, Vec<NfDecision>)> {
    let mut groups: Vec<(String, Vec<NfDecision>)> = Vec::new();
    for d in decisions.iter().cloned() {
        let joins = |v: &Vec<NfDecision>| {
            d.backend == "conntrack" && d.table == "nat" && v.iter().any(|x| x.new_connections_only)
        };
        match groups.last_mut() {
            Some((t, v)) if *t == d.table || joins(v) => v.push(d),
            _ => groups.push((d.table.clone(), vec![d])),
        }
    }
    groups
}

/// The step a table's decisions make: marks in mangle, NAT wherever a translation happened,
/// else filtering.
fn table_step(table: &str, ds: &[NfDecision]) -> Step {
    let translates = |d: &NfDecision| {
        d.effect.contains("NAT ")
            || d.effect.starts_with("MASQUERADE")
            || d.effect.starts_with("REDIRECT")
    };
    match table {
        "mangle" => Step::Mark,
        "nat" => Step::Nat,
        _ if ds.iter().any(translates) => Step::Nat,
        _ => Step::Filter,
    }
}

/// One decision as a line of the hop's details.
fn detail_line(d: &NfDecision) -> String {
    let mut s = format!("{} {}: {} → {}", d.table, d.chain, d.rule, d.effect);
    if d.new_connections_only {
        s += " [new connections only: this flow is established]";
    }
    if let Some(u) = &d.uncertain {
        s += &format!(" [uncertain: {u}]");
    }
    for a in &d.alternatives {
        s += &format!("\n           endpoint: {a}");
    }
    s
}

/// The packet's end in `hook`: dropped by decision `d` (the rule that dropped), or by the
/// hook when the rule is not known.
fn stop_by_rule(
    w: &mut Walk,
    ni: usize,
    hook: Hook,
    pkt: &Packet,
    d: Option<NfDecision>,
    how: &str,
) -> End {
    let reason = match &d {
        Some(d) => format!(
            "dropped in {} {} {} by `{}` ({how})",
            hook.chain(),
            d.table,
            d.chain,
            d.rule
        ),
        None => format!("dropped in {} ({how})", hook.chain()),
    };
    let end = w.stop(ni, pkt, reason, None);
    if let Some(d) = d {
        if let Some(h) = w.hops.last_mut() {
            h.decided_by = format!("{} {} {}: {}", d.backend, d.table, d.chain, d.rule);
        }
        w.decided(as_decisions(&[d]));
    }
    end
}

/// A real server's reply through the director in NAT (Masq) mode: IPVS (ip_vs_out, at
/// FORWARD or LOCAL_IN after the filter table) rewrites its source back to the virtual
/// service, as the connection's conntrack entry (reply direction) records. Without an entry,
/// a packet from a Masq real server is said to be rewritten only if it is such a reply (IPVS's
/// own connection table is not read).
fn ipvs_reply(w: &mut Walk, ni: usize, hook: Hook, pkt: &mut Packet, ct: &CtView) {
    let nf = &w.nodes[ni].netfilter;
    let proto = crate::model::kernel_names::ip_proto(pkt.proto);
    let is_real = |s: &&crate::model::IpvsService, addr: IpAddr, port: Option<u16>| {
        s.fwmark.is_none()
            && s.proto == proto
            && s.reals.iter().any(|r| {
                r.forward == "Masq" && r.addr == addr && (r.port == 0 || Some(r.port) == port)
            })
    };
    let entry = ct
        .entry
        .filter(|(i, reply)| *reply && super::netfilter::ipvs_owns(nf, &nf.conntrack[*i]))
        .map(|(i, _)| nf.conntrack[i].clone());
    let Some(c) = entry else {
        if let Some(svc) = nf.ipvs.iter().find(|s| is_real(s, pkt.src, pkt.sport)) {
            let service = format!("{} {}", svc.name(), svc.scheduler);
            w.hop(
                (ni, Step::Nat, None),
                pkt,
                format!(
                    "{} {}: if this is a reply of one of its connections IPVS rewrites its source to {}; no conntrack entry says so",
                    hook.chain(),
                    pkt.src,
                    std::net::SocketAddr::new(svc.addr, svc.port)
                ),
                format!("ipvs virtual service {service} (real server {} Masq)", pkt.src),
                vec!["IPVS's own connection table is not read: left as it is".into()],
            );
        }
        return;
    };
    let Some(svc) = nf
        .ipvs
        .iter()
        .find(|s| s.addr == c.dst && Some(s.port) == c.dport && s.proto == c.proto)
        .filter(|s| is_real(s, pkt.src, pkt.sport))
    else {
        return; // DR and tunnel real servers answer the client themselves
    };
    let service = format!("{} {}", svc.name(), svc.scheduler);
    let show = |a: IpAddr, p: Option<u16>| match p {
        Some(p) => std::net::SocketAddr::new(a, p).to_string(),
        None => a.to_string(),
    };
    let before = show(pkt.src, pkt.sport);
    pkt.src = c.dst;
    pkt.sport = c.dport.or(pkt.sport);
    let effect = format!(
        "IPVS reply {before} → {} (Masq: the real server's source back to the virtual service, by the connection's conntrack entry)",
        show(pkt.src, pkt.sport)
    );
    w.hop(
        (ni, Step::Nat, None),
        pkt,
        format!("{} {effect}", hook.chain()),
        format!("ipvs virtual service {service}"),
        vec![],
    );
    w.decided(as_decisions(&[NfDecision {
        hook,
        backend: "ipvs".into(),
        table: "ipvs".into(),
        chain: service.clone(),
        rule: service,
        target: "SNAT".into(),
        effect,
        uncertain: None,
        alternatives: vec![],
        conntrack: Some(c),
        new_connections_only: false,
    }]));
}

/// What IPVS did with a locally delivered packet.
enum Ipvs {
    NotAService,
    /// DNATed to a real server, sent on.
    Sent,
    /// A virtual service with no real server to schedule.
    Dropped(End),
}

/// kube-proxy's IPVS mode: a packet to a virtual service (by address, port and protocol, or
/// by its mark for a fwmark service) is sent on to one of its real servers, as a DNAT hop:
/// the one its conntrack entry names, else the first the scheduler may take (weight > 0:
/// a weight-0 server is quiesced and gets no new connection).
fn ipvs_dnat(w: &mut Walk, ni: usize, pkt: &mut Packet, ct: &CtView) -> Ipvs {
    let node = &w.nodes[ni];
    let proto = crate::model::kernel_names::ip_proto(pkt.proto);
    let svc = node.netfilter.ipvs.iter().find(|s| match s.fwmark {
        Some(m) => m == pkt.mark && s.addr.is_ipv6() == pkt.dst.is_ipv6(),
        None => s.addr == pkt.dst && Some(s.port) == pkt.dport && s.proto == proto,
    });
    let Some(svc) = svc else {
        return Ipvs::NotAService;
    };
    let entry = ct.entry.map(|(i, _)| &node.netfilter.conntrack[i]);
    let service = format!("{} {}", svc.name(), svc.scheduler);
    let alternatives: Vec<String> = svc
        .reals
        .iter()
        .map(|r| {
            format!(
                "{} {} weight {} (active {}, inactive {})",
                std::net::SocketAddr::new(r.addr, r.port),
                r.forward,
                r.weight,
                r.active,
                r.inactive
            )
        })
        .collect();
    let details: Vec<String> = alternatives
        .iter()
        .map(|a| format!("real server {a}"))
        .collect();
    // The kernel keeps a real server's port 0 as "the packet's own port".
    let port_of = |r: &crate::model::IpvsReal| match r.port {
        0 => pkt.dport,
        p => Some(p),
    };
    let dests: Vec<_> = svc
        .reals
        .iter()
        .map(|r| Some((r.addr, port_of(r))))
        .collect();
    let chosen = super::netfilter::taken_by_entry(&dests, entry).or_else(|| {
        svc.reals.iter().position(|r| r.weight > 0).map(|i| {
            (
                i,
                "the first the scheduler may take (weight > 0); it picks per new connection",
            )
        })
    });
    let Some((i, why)) = chosen else {
        let reason = format!(
            "dropped by IPVS: virtual service {service} has no real server to schedule ({} listed, none with weight > 0); the kernel answers ICMP port unreachable",
            svc.reals.len()
        );
        let by = format!("ipvs virtual service {service}");
        let end = w.stop(ni, pkt, reason, None);
        if let Some(h) = w.hops.last_mut() {
            h.decided_by = by;
            h.details = details;
        }
        return Ipvs::Dropped(end);
    };
    let real = svc.reals[i].clone();
    let to = std::net::SocketAddr::new(real.addr, port_of(&real).unwrap_or(0));
    let before = format!("{}:{}", pkt.dst, pkt.dport.unwrap_or(0));
    pkt.dst = real.addr;
    pkt.dport = port_of(&real);
    let effect = format!(
        "IPVS {before} → {to} ({} {}, {} real servers; following {}, {why})",
        real.forward,
        svc.scheduler,
        svc.reals.len(),
        real.addr
    );
    w.hop(
        (ni, Step::Nat, None),
        pkt,
        effect.clone(),
        format!("ipvs virtual service {service}"),
        details,
    );
    w.decided(as_decisions(&[NfDecision {
        hook: Hook::Input,
        backend: "ipvs".into(),
        table: "ipvs".into(),
        chain: service.clone(),
        rule: service,
        target: "DNAT".into(),
        effect,
        uncertain: None,
        alternatives,
        conntrack: entry.cloned(),
        new_connections_only: false,
    }]));
    Ipvs::Sent
}
