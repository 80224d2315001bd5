//! The predicted path of one flow, hop by hop, across one or more nodes: each hop names the
//! object that decided it. A pure function of the nodes' states (and their iptables rules).

use super::fib::{self, FibKey, FibOutcome};
use super::netfilter::{CtView, Hook, NfDecision, NfPacket, Verdict, run_hook};
use super::xfrm::{
    XfrmKey, apply_output_mark, choose_policy, describe_policy, describe_sa, find_inbound_sa,
    find_sa, sa_mismatch,
};
use crate::explain::cilium;
use crate::model::{Link, Netfilter, NodeState};
use serde::Serialize;
use std::net::IpAddr;

/// One node as the trace sees it.
pub struct Node {
    pub name: String,
    pub state: NodeState,
    pub netfilter: Netfilter,
}

impl Node {
    fn nf_node(&self) -> super::netfilter::Node<'_> {
        super::netfilter::Node {
            state: &self.state,
            nf: &self.netfilter,
        }
    }
}

/// What the user asked to follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol number (1 icmp, 6 tcp, 17 udp).
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// skb mark to start with; None = work it out (iptables mangle, or Cilium's convention).
    pub mark: Option<u32>,
    /// Input interface on the first node; None = work it out from the source address.
    pub iif: Option<String>,
    /// IP packet size (bytes), for MTU checks and ESP lengths; 84 = a default ping.
    pub size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Ingress,
    Mark,
    Nat,
    Filter,
    Route,
    XfrmPolicy,
    XfrmState,
    Encrypt,
    Egress,
    Veth,
    Wire,
    Decrypt,
    PolicyCheck,
    Deliver,
    Stop,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    pub node: String,
    pub step: Step,
    pub dev: Option<String>,
    /// The packet as it is at this hop: `10.0.1.52 → 10.0.0.249 icmp mark 0x3e00`.
    pub packet: String,
    /// What happened, in one line.
    pub what: String,
    /// The object that decided it (rule, route, policy, SA, iptables rule, assumption).
    pub decided_by: String,
    /// Further facts: the rules that did not match, policies that lost, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// Netfilter decisions of this hop (table, chain, rule, target, effect, conntrack entry).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub netfilter: Vec<NfDecision>,
    /// For hops at a device: what a capture there should see (`--follow` matches on it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expect: Option<Expect>,
}

/// The packet as a capture on `dev` of `node` would see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expect {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// For ESP: the SPI; the packet inside is `inner`.
    pub spi: Option<u32>,
    pub inner: Option<(IpAddr, IpAddr)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum End {
    /// Reached its destination (a pod, or the node itself).
    Delivered {
        node: String,
        dev: Option<String>,
        what: String,
    },
    /// Left the last known node on the wire; more nodes (--netns) would continue it.
    Wire {
        node: String,
        dev: String,
        next_hop: String,
    },
    /// Cannot continue: why, and the counter that rises when packets die here.
    Stopped {
        node: String,
        reason: String,
        counter: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    pub flow: Flow,
    pub hops: Vec<Hop>,
    pub end: End,
    /// With `--follow`: what captures on the path saw, and which counters moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<super::live::Followed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Packet {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    sport: Option<u16>,
    dport: Option<u16>,
    mark: u32,
    size: u32,
    /// For ESP: (SPI, the packet inside).
    esp: Option<(u32, Box<Packet>)>,
}

impl Packet {
    /// The fields XFRM policy and state lookups look at.
    fn xfrm_key(&self) -> XfrmKey {
        XfrmKey {
            src: self.src,
            dst: self.dst,
            proto: self.proto,
            sport: self.sport,
            dport: self.dport,
            mark: self.mark,
        }
    }

    fn show(&self) -> String {
        let proto = crate::source::names::ip_proto(self.proto);
        let ports = match (self.sport, self.dport) {
            (Some(s), Some(d)) if matches!(self.proto, 6 | 17 | 132) => format!(" {s}→{d}"),
            _ => String::new(),
        };
        let esp = self
            .esp
            .as_ref()
            .map(|(spi, _)| format!(" spi {spi:#x}"))
            .unwrap_or_default();
        let mark = if self.mark != 0 {
            let meaning = cilium::mark_value_meaning(self.mark)
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            format!(" mark {:#x}{meaning}", self.mark)
        } else {
            String::new()
        };
        format!(
            "{} → {} {proto}{ports}{esp} len {}{mark}",
            self.src, self.dst, self.size
        )
    }
}

/// ESP tunnel length on the wire for an inner IP packet: outer IPv4 header, SPI + seq, IV,
/// padded payload with pad-length and next-header bytes, ICV.
pub fn esp_tunnel_len(inner: u32, iv: u32, icv: u32) -> u32 {
    20 + 8 + iv + (inner + 2).div_ceil(4) * 4 + icv
}

fn is_local(st: &NodeState, ip: &IpAddr) -> bool {
    st.links.iter().any(|l| {
        l.addresses
            .iter()
            .any(|a| a.address.parse::<IpAddr>().is_ok_and(|x| x == *ip))
    })
}

fn link<'a>(st: &'a NodeState, name: &str) -> Option<&'a Link> {
    st.link_by_name(name)
}

/// A veth whose other end lives in another netns (a pod's lxc, or a kind node's eth0).
fn leads_elsewhere(l: &Link) -> bool {
    l.peer.as_ref().is_some_and(|p| p.netns_id.is_some())
}

/// Where a flow from `src` enters: (node index, input device or None if generated locally,
/// how we know).
fn locate(nodes: &[Node], flow: &Flow) -> Option<(usize, Option<String>, String)> {
    if let Some(iif) = &flow.iif {
        let i = nodes
            .iter()
            .position(|n| link(&n.state, iif).is_some())
            .unwrap_or(0);
        return Some((i, Some(iif.clone()), format!("--iif {iif}")));
    }
    for (i, n) in nodes.iter().enumerate() {
        if is_local(&n.state, &flow.src) {
            return Some((i, None, format!("{} is an address of {}", flow.src, n.name)));
        }
    }
    // A /32 route to the source over a device leading to another netns: a pod behind it.
    for (i, n) in nodes.iter().enumerate() {
        for r in n.state.routes.iter().filter(|r| {
            r.table.id == 254
                && r.dst
                    .is_some_and(|d| d.len == d.max_len() && d.contains(&flow.src))
        }) {
            if let Some(dev) = r.dev.as_ref().and_then(|d| d.name.clone())
                && link(&n.state, &dev).is_some_and(leads_elsewhere)
            {
                return Some((
                    i,
                    Some(dev.clone()),
                    format!("route {} dev {dev}", flow.src),
                ));
            }
        }
    }
    // Cilium: the node whose pod CIDR (routed via cilium_host) holds the source; the exact
    // lxc is in Cilium's endpoint map, not in routes.
    for (i, n) in nodes.iter().enumerate() {
        let own = n.state.routes.iter().any(|r| {
            r.table.id == 254
                && r.dev.as_ref().and_then(|d| d.name.as_deref()) == Some("cilium_host")
                && r.dst
                    .is_some_and(|d| d.len < d.max_len() && d.contains(&flow.src))
                && r.gateway
                    .as_ref()
                    .and_then(|g| g.parse::<IpAddr>().ok())
                    .is_some_and(|g| is_local(&n.state, &g))
        });
        if own {
            return Some((
                i,
                Some("lxc+".into()),
                format!(
                    "{} is in {}'s pod CIDR; its lxc is in Cilium's endpoint map (pass --iif to name it)",
                    flow.src, n.name
                ),
            ));
        }
    }
    None
}

struct Walk<'a> {
    nodes: &'a [Node],
    hops: Vec<Hop>,
}

impl Walk<'_> {
    fn hop(
        &mut self,
        (node, step, dev): (usize, Step, Option<&str>),
        pkt: &Packet,
        what: String,
        decided_by: String,
        details: Vec<String>,
    ) {
        // Where a capture can see the packet (a delivery is seen at its egress hop; one via
        // cilium_host is a tc redirect a capture there never sees). A decrypted packet is
        // re-injected on the device the ESP came in on. `lxc+` means "one of the lxc devices".
        let observable = matches!(
            step,
            Step::Ingress | Step::Egress | Step::Veth | Step::Decrypt
        ) && dev.is_some_and(|d| !d.ends_with('+'));
        let expect = observable.then(|| Expect {
            src: pkt.src,
            dst: pkt.dst,
            proto: pkt.proto,
            spi: pkt.esp.as_ref().map(|(spi, _)| *spi),
            inner: pkt.esp.as_ref().map(|(_, i)| (i.src, i.dst)),
        });
        self.hops.push(Hop {
            expect,
            node: self.nodes[node].name.clone(),
            step,
            dev: dev.map(str::to_string),
            packet: pkt.show(),
            what,
            decided_by,
            details,
            netfilter: vec![],
        });
    }

    fn stop(&mut self, node: usize, pkt: &Packet, reason: String, counter: Option<&str>) -> End {
        self.hop(
            (node, Step::Stop, None),
            pkt,
            reason.clone(),
            counter.map(|c| format!("{c} rises")).unwrap_or_default(),
            vec![],
        );
        End::Stopped {
            node: self.nodes[node].name.clone(),
            reason,
            counter: counter.map(str::to_string),
        }
    }
}

/// Follow `flow` through `nodes` (one per network namespace; more nodes continue the path
/// across the wire).
pub fn trace(nodes: &[Node], flow: &Flow) -> Trace {
    let mut w = Walk {
        nodes,
        hops: Vec::new(),
    };
    let end = walk(&mut w, flow);
    Trace {
        flow: flow.clone(),
        hops: w.hops,
        end,
        follow: None,
    }
}

fn walk(w: &mut Walk, flow: &Flow) -> End {
    let Some((mut ni, mut iif, how)) = locate(w.nodes, flow) else {
        return End::Stopped {
            node: w.nodes.first().map(|n| n.name.clone()).unwrap_or_default(),
            reason: format!(
                "no node owns {} (not a local address, no route to it over a pod device, not in a pod CIDR); pass --iif",
                flow.src
            ),
            counter: None,
        };
    };
    let mut pkt = Packet {
        src: flow.src,
        dst: flow.dst,
        proto: flow.proto,
        sport: flow.sport,
        dport: flow.dport,
        mark: flow.mark.unwrap_or(0),
        size: flow.size,
        esp: None,
    };
    let what = match &iif {
        Some(d) => format!("enters {} on {d}", w.nodes[ni].name),
        None => format!("sent by {} itself", w.nodes[ni].name),
    };
    w.hop((ni, Step::Ingress, iif.as_deref()), &pkt, what, how, vec![]);
    // Packets made by XFRM (the ESP outer packet) skip PREROUTING: they are output packets.
    let mut generated_by_xfrm = false;
    let mut mark_given = flow.mark.is_some();
    // The node's own packet went through OUTPUT (IPVS's packets count as the node's own).
    let mut output_done = false;
    let mut ct = CtView::default();
    let mut decrypted_by: Option<usize> = None;

    let mut seen = std::collections::HashSet::new();
    for _ in 0..64 {
        if !seen.insert((ni, iif.clone(), pkt.clone(), generated_by_xfrm, output_done)) {
            return w.stop(
                ni,
                &pkt,
                format!(
                    "routing loop: the packet comes back to {} on {} unchanged",
                    w.nodes[ni].name,
                    iif.as_deref().unwrap_or("lo")
                ),
                None,
            );
        }
        // 1. PREROUTING (raw, conntrack, mangle, nat), for packets that arrived on a device.
        if let (Some(dev), false) = (iif.clone(), generated_by_xfrm || output_done) {
            ct = Default::default();
            let before = pkt.clone();
            let first_hop = w.hops.len();
            if let Some(end) = nf_hook(
                w,
                ni,
                Hook::Prerouting,
                Some(&dev),
                None,
                None,
                &mut pkt,
                &mut ct,
            ) {
                return end;
            }
            let mangled = w.hops[first_hop..].iter().any(|h| {
                h.netfilter
                    .iter()
                    .any(|d| d.table == "mangle" && d.effect.starts_with("mark"))
            });
            // --mark is the mark the packet enters with: no assumption about Cilium's marks.
            if !mark_given && !mangled {
                // Cilium's BPF marks before netfilter sees the packet: judge it unNATed.
                let mut orig = before;
                cilium_mark(w, ni, &dev, &mut orig);
                pkt.mark = orig.mark;
            }
            mark_given = false; // later hops (after decrypt, after a veth) get marks from the node
        }
        let node = &w.nodes[ni];
        let st = &node.state;

        // 2. Route lookup.
        let key = FibKey {
            src: Some(pkt.src),
            dst: pkt.dst,
            mark: pkt.mark,
            iif: if generated_by_xfrm { None } else { iif.clone() },
            oif: None,
            tos: 0,
        };
        let res = fib::lookup(st, &key);
        let rule_text = res
            .rule_priority
            .and_then(|p| {
                res.rules
                    .iter()
                    .rev()
                    .find(|s| s.priority == p && s.matched)
            })
            .map(|s| format!("rule {}: {}", s.priority, s.rule))
            .unwrap_or_default();
        let skipped: Vec<String> = res
            .rules
            .iter()
            .filter(|s| s.matched && s.note.is_some())
            .map(|s| {
                format!(
                    "rule {}: {}",
                    s.priority,
                    s.note.clone().unwrap_or_default()
                )
            })
            .collect();
        let (table, route_idx, kind) = match &res.outcome {
            FibOutcome::Route {
                table,
                route_index,
                kind,
            } => (*table, *route_index, kind.clone()),
            other => {
                let err = other.kernel_error().unwrap_or("no route");
                let reason = match other {
                    FibOutcome::Refused {
                        what,
                        table: Some(t),
                    } => format!("{what} route in table {t}: {err}"),
                    FibOutcome::Refused { what, table: None } => {
                        format!("{rule_text} ({what}): {err}")
                    }
                    _ => format!("no route to {}: {err}", pkt.dst),
                };
                return w.stop(ni, &pkt, reason, None);
            }
        };
        let route = &st.routes[route_idx];
        let dev = route.dev.as_ref().and_then(|d| d.name.clone());
        let table_name = crate::view::columns::table(&route.table);
        let route_text = format!(
            "table {table_name}: {} {}",
            crate::view::columns::route_dst(route),
            {
                let mut s = String::new();
                if let Some(g) = &route.gateway {
                    s += &format!("via {g} ");
                }
                if let Some(d) = &dev {
                    s += &format!("dev {d}");
                }
                s.trim().to_string()
            }
        );
        w.hop(
            (ni, Step::Route, dev.as_deref()),
            &pkt,
            format!("{kind} route: {route_text}"),
            rule_text.clone(),
            skipped,
        );
        let _ = table;

        // OUTPUT for packets this node sends (once: a DNAT there re-routes the packet).
        if iif.is_none() && !generated_by_xfrm && !output_done {
            ct = Default::default();
            let before = (pkt.dst, pkt.dport);
            if let Some(end) = nf_hook(
                w,
                ni,
                Hook::Output,
                None,
                dev.as_deref(),
                route_gateway(route),
                &mut pkt,
                &mut ct,
            ) {
                return end;
            }
            output_done = true;
            if before != (pkt.dst, pkt.dport) {
                continue; // routed again to the new destination
            }
        }
        // 3. Local delivery: ESP is decrypted, anything else has arrived.
        if kind == "local" {
            if let Some(end) = nf_hook(
                w,
                ni,
                Hook::Input,
                iif.as_deref(),
                None,
                None,
                &mut pkt,
                &mut ct,
            ) {
                return end;
            }
            let node = &w.nodes[ni];
            let st = &node.state;
            if pkt.esp.is_none() && ipvs_dnat(w, ni, &mut pkt, &ct) {
                output_done = true;
                iif = None;
                continue; // IPVS sends it on to the real server: routed as the node's own packet
            }
            if let Some((spi, inner)) = pkt.esp.clone() {
                let Some(sa_idx) = find_inbound_sa(st, &pkt.dst, spi, "esp", pkt.mark) else {
                    let near: Vec<String> = st
                        .xfrm_states
                        .iter()
                        .filter(|s| s.spi == spi || s.dst == pkt.dst.to_string())
                        .map(describe_sa)
                        .collect();
                    let mut end = w.stop(
                        ni,
                        &pkt,
                        format!(
                            "no inbound SA for spi {spi:#x} dst {} mark {:#x}: the kernel drops it",
                            pkt.dst, pkt.mark
                        ),
                        Some("XfrmInNoStates"),
                    );
                    if let (Some(h), false) = (w.hops.last_mut(), near.is_empty()) {
                        h.details = near.iter().map(|s| format!("not matching: {s}")).collect();
                    }
                    if let End::Stopped { reason, .. } = &mut end {
                        reason.push_str("");
                    }
                    return end;
                };
                let sa = &st.xfrm_states[sa_idx];
                let mut p = *inner;
                p.mark = apply_output_mark(pkt.mark, sa.output_mark);
                w.hop(
                    (ni, Step::Decrypt, iif.as_deref()),
                    &p,
                    format!(
                        "decrypted (output mark {})",
                        sa.output_mark
                            .map(|m| crate::view::columns::mark(&m))
                            .unwrap_or("none".into())
                    ),
                    describe_sa(sa),
                    vec![],
                );
                pkt = p;
                decrypted_by = Some(sa_idx);
                generated_by_xfrm = false;
                continue; // re-enters on the same device
            }
            w.hop(
                (ni, Step::Deliver, dev.as_deref()),
                &pkt,
                format!("delivered to {} itself", node.name),
                format!("local route in table {table_name}"),
                vec![],
            );
            return End::Delivered {
                node: node.name.clone(),
                dev,
                what: "the node's own stack".into(),
            };
        }

        // FORWARD for packets passing through.
        if iif.is_some()
            && !generated_by_xfrm
            && !output_done
            && let Some(end) = nf_hook(
                w,
                ni,
                Hook::Forward,
                iif.as_deref(),
                dev.as_deref(),
                route_gateway(route),
                &mut pkt,
                &mut ct,
            )
        {
            return end;
        }
        let node = &w.nodes[ni];
        let st = &node.state;

        // 4. Inbound policy check for a decrypted packet being forwarded.
        if let Some(sa_idx) = decrypted_by.take() {
            let k = pkt.xfrm_key();
            let c = choose_policy(st, "fwd", &k, iif.as_deref());
            let reqid = st.xfrm_states[sa_idx].reqid;
            match c.chosen.map(|i| &st.xfrm_policies[i]) {
                Some(p) if p.action == "block" => {
                    return w.stop(
                        ni,
                        &pkt,
                        format!("blocked by {}", describe_policy(p)),
                        Some("XfrmFwdHdrError"),
                    );
                }
                Some(p) => {
                    let ok = p
                        .templates
                        .iter()
                        .all(|t| t.level == "use" || t.reqid == 0 || t.reqid == reqid);
                    if !ok {
                        return w.stop(
                            ni,
                            &pkt,
                            format!(
                                "{} requires a transform this packet did not get",
                                describe_policy(p)
                            ),
                            Some("XfrmInTmplMismatch"),
                        );
                    }
                    w.hop(
                        (ni, Step::PolicyCheck, iif.as_deref()),
                        &pkt,
                        "forward policy check passed".into(),
                        describe_policy(p),
                        vec![],
                    );
                }
                None => w.hop(
                    (ni, Step::PolicyCheck, iif.as_deref()),
                    &pkt,
                    "no fwd policy matches: allowed".into(),
                    String::new(),
                    c.candidates
                        .iter()
                        .map(|c| {
                            format!(
                                "did not match ({}): {}",
                                if c.selector_ok { "mark" } else { "selector" },
                                describe_policy(&st.xfrm_policies[c.index])
                            )
                        })
                        .collect(),
                ),
            }
        }

        // 5. XFRM output: a matching out policy sends the packet through its SA.
        if !generated_by_xfrm {
            let k = pkt.xfrm_key();
            let c = choose_policy(st, "out", &k, dev.as_deref());
            if let Some(pi) = c.chosen {
                let pol = &st.xfrm_policies[pi];
                let losers: Vec<String> = c
                    .candidates
                    .iter()
                    .filter(|x| x.index != pi)
                    .map(|x| {
                        let why = match (x.selector_ok, x.mark_ok) {
                            (true, true) => "matched, higher priority number",
                            (true, false) => "selector matched, mark did not",
                            _ => "mark matched, selector did not",
                        };
                        format!("{why}: {}", describe_policy(&st.xfrm_policies[x.index]))
                    })
                    .collect();
                if pol.action == "block" {
                    return w.stop(
                        ni,
                        &pkt,
                        format!("blocked by {}", describe_policy(pol)),
                        Some("XfrmOutPolBlock"),
                    );
                }
                w.hop(
                    (ni, Step::XfrmPolicy, None),
                    &pkt,
                    format!(
                        "out policy matches (selector and mark), {} template(s)",
                        pol.templates.len()
                    ),
                    describe_policy(pol),
                    losers,
                );
                let Some(t) = pol.templates.first() else {
                    continue;
                };
                let Some(si) = find_sa(st, t, pkt.mark) else {
                    let near: Vec<String> = st
                        .xfrm_states
                        .iter()
                        .map(|s| {
                            format!(
                                "{} differs: {}",
                                sa_mismatch(s, t, pkt.mark).unwrap_or("?"),
                                describe_sa(s)
                            )
                        })
                        .collect();
                    w.hop(
                        (ni, Step::XfrmState, None),
                        &pkt,
                        format!(
                            "no SA for template {} → {} {} reqid {}",
                            t.src, t.dst, t.proto, t.reqid
                        ),
                        describe_policy(pol),
                        near,
                    );
                    return w.stop(
                        ni,
                        &pkt,
                        format!(
                            "no SA for the out policy's template (dst {} reqid {} mark {:#x})",
                            t.dst, t.reqid, pkt.mark
                        ),
                        Some("XfrmOutNoStates"),
                    );
                };
                let sa = &st.xfrm_states[si];
                w.hop(
                    (ni, Step::XfrmState, None),
                    &pkt,
                    format!("template selects SA spi {:#x}", sa.spi),
                    describe_sa(sa),
                    vec![],
                );
                let icv = sa
                    .aead
                    .as_ref()
                    .and_then(|a| a.icv_bits)
                    .map_or(16, |b| b / 8);
                let outer = Packet {
                    src: sa.src.parse().unwrap_or(pkt.src),
                    dst: sa.dst.parse().unwrap_or(pkt.dst),
                    proto: 50,
                    sport: None,
                    dport: None,
                    mark: apply_output_mark(pkt.mark, sa.output_mark),
                    size: esp_tunnel_len(pkt.size, 8, icv),
                    esp: Some((sa.spi, Box::new(pkt.clone()))),
                };
                w.hop(
                    (ni, Step::Encrypt, None),
                    &outer,
                    format!(
                        "ESP tunnel {} → {} (ESP payload {} bytes)",
                        outer.src,
                        outer.dst,
                        outer.size - 20
                    ),
                    format!(
                        "SA output mark {}",
                        sa.output_mark
                            .map(|m| crate::view::columns::mark(&m))
                            .unwrap_or("none".into())
                    ),
                    vec![],
                );
                pkt = outer;
                generated_by_xfrm = true;
                continue; // the outer packet is routed again, with the output mark
            }
        }

        // 6. Egress.
        let Some(dev) = dev else {
            return w.stop(ni, &pkt, format!("route has no device: {route_text}"), None);
        };
        let l = link(st, &dev);
        let mtu = route.mtu.or(l.and_then(|l| l.mtu)).unwrap_or(1500);
        if pkt.size > mtu {
            // With DF (TCP, ping -M do, and every ESP packet of an inner DF packet) the kernel
            // answers "fragmentation needed" instead of sending.
            return w.stop(
                ni,
                &pkt,
                format!("packet of {} bytes exceeds MTU {mtu} on {dev} ({route_text}): dropped with ICMP fragmentation-needed when DF is set, fragmented otherwise", pkt.size),
                None,
            );
        }
        // POSTROUTING (mangle, nat: SNAT/MASQUERADE) on the packet that leaves.
        let from = if generated_by_xfrm || output_done || iif.is_none() {
            None
        } else {
            iif.clone()
        };
        if let Some(end) = nf_hook(
            w,
            ni,
            Hook::Postrouting,
            from.as_deref(),
            Some(&dev),
            route_gateway(route),
            &mut pkt,
            &mut ct,
        ) {
            return end;
        }
        let node = &w.nodes[ni];
        let st = &node.state;
        let notes = Vec::new();
        w.hop(
            (ni, Step::Egress, Some(&dev)),
            &pkt,
            format!("leaves on {dev} (mtu {mtu})"),
            route_text.clone(),
            notes,
        );
        generated_by_xfrm = false;
        output_done = false;

        let Some(l) = l else {
            return w.stop(ni, &pkt, format!("device {dev} is not in this netns"), None);
        };
        // A veth whose peer is here: the packet re-enters on the peer.
        if let Some(peer) = l
            .peer
            .as_ref()
            .filter(|p| p.netns_id.is_none())
            .and_then(|p| p.name.clone())
        {
            // Cilium's cilium_host program hands traffic for local pods to their lxc.
            if dev == "cilium_host" && pkt.esp.is_none() && own_pod_cidr(st, &pkt.dst) {
                // tc on cilium_host redirects before a capture there would see the packet.
                if let Some(h) = w.hops.last_mut() {
                    h.expect = None;
                }
                w.hop((ni, Step::Deliver, Some(&dev)), &pkt, format!("to the local pod {} (Cilium's datapath on cilium_host redirects it to its lxc)", pkt.dst), route_text, vec![]);
                return End::Delivered {
                    node: node.name.clone(),
                    dev: Some(dev),
                    what: format!("pod {}", pkt.dst),
                };
            }
            w.hop(
                (ni, Step::Veth, Some(&peer)),
                &pkt,
                format!("crosses veth {dev} → {peer}"),
                format!("{dev}@{peer}"),
                vec![],
            );
            iif = Some(peer);
            continue;
        }
        // A device leading to another netns: a pod (lxc) or the wire (eth0).
        let next_hop: IpAddr = route
            .gateway
            .as_ref()
            .and_then(|g| g.parse().ok())
            .unwrap_or(pkt.dst);
        if dev.starts_with("lxc")
            || route
                .dst
                .is_some_and(|d| d.len == d.max_len() && d.contains(&pkt.dst))
                && leads_elsewhere(l)
        {
            w.hop(
                (ni, Step::Deliver, Some(&dev)),
                &pkt,
                format!("to the pod behind {dev}"),
                route_text,
                vec![],
            );
            return End::Delivered {
                node: node.name.clone(),
                dev: Some(dev),
                what: format!("pod {}", pkt.dst),
            };
        }
        let Some(nj) = w.nodes.iter().position(|n| is_local(&n.state, &next_hop)) else {
            w.hop(
                (ni, Step::Wire, Some(&dev)),
                &pkt,
                format!("on the wire towards {next_hop}"),
                "no given node owns that address".into(),
                vec![],
            );
            return End::Wire {
                node: node.name.clone(),
                dev,
                next_hop: next_hop.to_string(),
            };
        };
        let in_dev = w.nodes[nj]
            .state
            .links
            .iter()
            .find(|l| {
                l.addresses
                    .iter()
                    .any(|a| a.address.parse::<IpAddr>().is_ok_and(|x| x == next_hop))
            })
            .map(|l| l.name.clone());
        w.hop(
            (ni, Step::Wire, Some(&dev)),
            &pkt,
            format!("on the wire to {} ({next_hop})", w.nodes[nj].name),
            format!("{next_hop} is an address of {}", w.nodes[nj].name),
            vec![],
        );
        ni = nj;
        iif = in_dev;
        let what = format!(
            "enters {} on {}",
            w.nodes[ni].name,
            iif.as_deref().unwrap_or("?")
        );
        w.hop(
            (ni, Step::Ingress, iif.as_deref()),
            &pkt,
            what,
            String::new(),
            vec![],
        );
    }
    w.stop(
        ni,
        &Packet {
            src: flow.src,
            dst: flow.dst,
            proto: flow.proto,
            sport: None,
            dport: None,
            mark: 0,
            size: flow.size,
            esp: None,
        },
        "more than 64 steps: a routing loop?".into(),
        None,
    )
}

/// Marks Cilium's BPF programs set, which iptables cannot show: only used where no iptables
/// rule decided the mark, and always said to be an assumption.
fn cilium_mark(w: &mut Walk, ni: usize, dev: &str, pkt: &mut Packet) {
    let st = &w.nodes[ni].state;
    let (mark, why) = if dev.starts_with("lxc") && pkt.esp.is_none() {
        // bpf_lxc: pod → remote pod traffic gets the out policy's encrypt mark.
        let k = XfrmKey {
            mark: 0,
            ..pkt.xfrm_key()
        };
        let pol = st
            .xfrm_policies
            .iter()
            .filter(|p| p.dir == "out")
            .find(|p| {
                p.mark.is_some_and(|m| m.value & 0xf00 == 0xe00)
                    && super::xfrm::selector_matches(&p.selector, &k, None)
            });
        match pol.and_then(|p| p.mark) {
            Some(m) => (
                m.value,
                "assumed: Cilium's bpf_lxc marks pod → remote pod traffic with the out policy's mark (pass --mark to override)",
            ),
            None => return,
        }
    } else if let (Some((spi, _)), false) = (&pkt.esp, dev.starts_with("cilium_")) {
        // bpf_host on the node's interface: ESP for this node gets the decrypt mark.
        let sa = st.xfrm_states.iter().find(|s| {
            s.spi == *spi
                && s.dst == pkt.dst.to_string()
                && s.mark.is_some_and(|m| m.value & 0xf00 == 0xd00)
        });
        match sa.and_then(|s| s.mark) {
            Some(m) => (
                m.value,
                "assumed: Cilium's bpf_host marks ESP for this node for decryption (the inbound SA's mark)",
            ),
            None => return,
        }
    } else if dev == "cilium_net" && pkt.esp.is_some() && pkt.mark & 0xf00 == 0xe00 {
        (
            pkt.mark & !0xff00,
            "assumed: Cilium hands the encrypted packet on from cilium_net without its encrypt mark",
        )
    } else {
        return;
    };
    pkt.mark = mark;
    let meaning = cilium::mark_value_meaning(mark)
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    w.hop(
        (ni, Step::Mark, Some(dev)),
        pkt,
        format!("mark {mark:#x}{meaning}"),
        why.into(),
        vec![],
    );
}

/// Is `ip` in this node's own pod CIDR (Cilium routes it `via <router ip> dev cilium_host`)?
fn own_pod_cidr(st: &NodeState, ip: &IpAddr) -> bool {
    st.routes.iter().any(|r| {
        r.table.id == 254
            && r.dev.as_ref().and_then(|d| d.name.as_deref()) == Some("cilium_host")
            && r.dst.is_some_and(|d| d.len < d.max_len() && d.contains(ip))
            && r.gateway
                .as_ref()
                .and_then(|g| g.parse::<IpAddr>().ok())
                .is_some_and(|g| is_local(st, &g))
    })
}

fn route_gateway(r: &crate::model::Route) -> Option<IpAddr> {
    r.gateway.as_ref().and_then(|g| g.parse().ok())
}

/// Run one netfilter hook of node `ni` on `pkt` and turn what decided something into hops:
/// one per table that changed, accepted, dropped or could not evaluate something. Some(end)
/// when a rule dropped the packet.
#[allow(clippy::too_many_arguments)]
fn nf_hook(
    w: &mut Walk,
    ni: usize,
    hook: Hook,
    iif: Option<&str>,
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
        ct: ct.clone(),
    };
    let r = run_hook(&node.nf_node(), hook, &mut p);
    // What could not be read is said where it matters: on the first hook of the node.
    let warn: Vec<String> = if matches!(hook, Hook::Prerouting | Hook::Output) {
        nf.warnings.clone()
    } else {
        vec![]
    };
    let dev = iif.or(oif).map(str::to_string);
    let mut groups: Vec<(String, Vec<NfDecision>)> = Vec::new();
    for d in r.decisions.iter().cloned() {
        // An established flow's translation joins the rules a new connection would take.
        let joins = |v: &Vec<NfDecision>| {
            d.backend == "conntrack" && d.table == "nat" && v.iter().any(|x| x.new_connections_only)
        };
        match groups.last_mut() {
            Some((t, v)) if *t == d.table || joins(v) => v.push(d),
            _ => groups.push((d.table.clone(), vec![d])),
        }
    }
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
        let step = match table.as_str() {
            "mangle" => Step::Mark,
            t if t == "nat"
                || ds.iter().any(|d| {
                    d.effect.contains("NAT ")
                        || d.effect.starts_with("MASQUERADE")
                        || d.effect.starts_with("REDIRECT")
                }) =>
            {
                Step::Nat
            }
            _ => Step::Filter,
        };
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
        let mut details: Vec<String> = ds
            .iter()
            .map(|d| {
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
            })
            .collect();
        if first == 0 {
            details.extend(warn.iter().map(|x| format!("warning: {x}")));
        }
        w.hop((ni, step, dev.as_deref()), &p2, what, by, details);
        if let Some(h) = w.hops.last_mut() {
            h.netfilter = ds.clone();
        }
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
    if let Some((i, how)) = dropped {
        let all: Vec<&NfDecision> = groups.iter().flat_map(|(_, v)| v).collect();
        let d = all.get(i).cloned().cloned();
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
        if let (Some(h), Some(d)) = (w.hops.last_mut(), d) {
            h.decided_by = format!("{} {} {}: {}", d.backend, d.table, d.chain, d.rule);
            h.netfilter = vec![d];
        }
        return Some(end);
    }
    None
}

/// kube-proxy's IPVS mode: a packet to a virtual service is sent on to one of its real
/// servers (the one its conntrack entry names, else the first), as a DNAT hop.
fn ipvs_dnat(w: &mut Walk, ni: usize, pkt: &mut Packet, ct: &CtView) -> bool {
    let node = &w.nodes[ni];
    let proto = crate::source::names::ip_proto(pkt.proto);
    let svc = node
        .netfilter
        .ipvs
        .iter()
        .find(|s| s.addr == pkt.dst && Some(s.port) == pkt.dport && s.proto == proto);
    let Some(svc) = svc.filter(|s| !s.reals.is_empty()) else {
        return false;
    };
    let entry = ct.entry.map(|(i, _)| &node.netfilter.conntrack[i]);
    let dests: Vec<_> = svc
        .reals
        .iter()
        .map(|r| Some((r.addr, Some(r.port))))
        .collect();
    let (i, why) = super::netfilter::pick(&dests, entry);
    let real = &svc.reals[i];
    let alternatives: Vec<String> = svc
        .reals
        .iter()
        .map(|r| {
            format!(
                "{}:{} {} weight {} (active {}, inactive {})",
                r.addr, r.port, r.forward, r.weight, r.active, r.inactive
            )
        })
        .collect();
    let service = format!("{} {}:{} {}", svc.proto, svc.addr, svc.port, svc.scheduler);
    let before = format!("{}:{}", pkt.dst, pkt.dport.unwrap_or(0));
    pkt.dst = real.addr;
    pkt.dport = Some(real.port);
    let effect = format!(
        "IPVS {before} → {}:{} ({} real servers; following {}, {why})",
        real.addr,
        real.port,
        svc.reals.len(),
        real.addr
    );
    w.hop(
        (ni, Step::Nat, None),
        pkt,
        effect.clone(),
        format!("ipvs virtual service {service}"),
        alternatives
            .iter()
            .map(|a| format!("real server {a}"))
            .collect(),
    );
    if let Some(h) = w.hops.last_mut() {
        h.netfilter = vec![NfDecision {
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
        }];
    }
    true
}
