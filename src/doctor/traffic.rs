//! The traffic a node must carry, and what the kernel would do with each piece of it: ESP
//! from every peer (peers' out SAs, packets seen, or the reverse of this node's own out SAs),
//! the packets inside once decrypted, and pod traffic to every remote pod CIDR. Each is run
//! through the re-run lookups (`lookup`); every failure becomes a `Problem` that names the
//! xfrm_stat counter the kernel moves for it, so the same judgement serves the static checks
//! and the explanation of rising counters.

use super::finding::{Finding, Object, Severity};
use super::ipfmt;
use super::lookup::{self, InSa, Near, Out, Packet, PolCheck};
use super::node::{MarkSeen, NodeView, ip, with_output_mark};
use super::{KeyHasher, Seen};
use crate::model::{Family, PolicyDir, Prefix, XfrmProto};
use std::net::IpAddr;

/// A lookup that fails, and the counter the kernel moves when traffic hits it (None: the
/// packet is not dropped, e.g. leaves in plaintext).
#[derive(Debug, Clone)]
pub struct Problem {
    pub counter: Option<&'static str>,
    pub finding: Finding,
    pub certainty: Certainty,
}

/// How sure the doctor is that traffic meets a failing lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Certainty {
    /// Traffic the node must carry meets a failure visible in its state.
    Firm,
    /// Only the explanation left if `counter` rises (it rests on something not visible, such
    /// as a mark): reported only then.
    IfCounterRises,
    /// The failure is visible, the traffic is not certain (decrypted packets to the node's own
    /// addresses: no pod has to talk to them): a failure once `counter` rises, else an info.
    IfSent,
}

/// ESP this node should receive, and where we learnt of it.
#[derive(Debug, Clone)]
struct EspIn {
    src: Option<IpAddr>,
    dst: IpAddr,
    spi: u32,
    proto: XfrmProto,
    /// UDP-encapsulated (NAT-T) on the sender's side; None when not known.
    encap: Option<bool>,
    /// The sender's pod CIDRs (the packets inside).
    inner_src: Vec<Prefix>,
    why: String,
    /// Only inferred (not a peer's SA, not seen on the wire).
    inferred: bool,
    /// The sender's SA and its node, for key comparison.
    peer: Option<(usize, usize)>,
}

fn near_text(st: &crate::model::NodeState, n: &Near, kind: &str) -> String {
    let obj = match kind {
        "sa" => ipfmt::sa(&st.xfrm_states[n.index]),
        _ => ipfmt::policy(&st.xfrm_policies[n.index]),
    };
    format!(
        "nearest {kind}: {obj} — its {} is {}, the lookup needs {}",
        n.field, n.has, n.wants
    )
}

fn expected_esp(views: &[NodeView], me: usize, seen: &[Seen]) -> Vec<EspIn> {
    let v = &views[me];
    let mut out: Vec<EspIn> = Vec::new();
    for (pi, p) in views.iter().enumerate() {
        if pi == me {
            continue;
        }
        for &i in &p.out_sas {
            let x = p.sa(i);
            let Some(dst) = ip(&x.dst).filter(|d| v.is_local(d)) else {
                continue;
            };
            out.push(EspIn {
                src: ip(&x.src),
                dst,
                spi: x.spi,
                proto: x.proto,
                encap: Some(x.encap.is_some()),
                inner_src: p.pod_cidrs.clone(),
                why: format!("{}'s out SA {}", p.name, ipfmt::sa(x)),
                inferred: false,
                peer: Some((pi, i)),
            });
        }
    }
    for s in seen.iter().filter(|s| s.inbound && s.spi.is_some()) {
        if !v.is_local(&s.dst) {
            continue;
        }
        let spi = s.spi.unwrap_or(0);
        if out.iter().any(|e| e.dst == s.dst && e.spi == spi) {
            continue;
        }
        out.push(EspIn {
            src: Some(s.src),
            dst: s.dst,
            spi,
            proto: XfrmProto::Esp,
            encap: Some(s.udp_encap),
            inner_src: vec![],
            why: format!(
                "seen on {}: {} ESP packet(s) {} → {} spi {spi:#x} (the mark is not on the wire: inferred)",
                s.iface, s.count, s.src, s.dst
            ),
            inferred: false,
            peer: None,
        });
    }
    // Peers not given: they send with the SPI this node sends to them with (Cilium's keys
    // are cluster-wide), to the source address of this node's out SA.
    for &i in &v.out_sas {
        let x = v.sa(i);
        let (Some(peer), Some(me_addr)) = (ip(&x.dst), ip(&x.src)) else {
            continue;
        };
        if views.iter().any(|p| p.is_local(&peer)) {
            continue;
        }
        if out.iter().any(|e| e.dst == me_addr && e.spi == x.spi) {
            continue;
        }
        let inner_src =
            v.st.xfrm_policies
                .iter()
                .filter(|p| {
                    p.dir == PolicyDir::Out && p.templates.iter().any(|t| ip(&t.dst) == Some(peer))
                })
                .map(|p| p.selector.dst)
                .collect();
        out.push(EspIn {
            src: Some(peer),
            dst: me_addr,
            spi: x.spi,
            proto: x.proto,
            encap: None,
            inner_src,
            why: format!(
                "inferred: {peer} sends with the SPI this node sends to it with (out SA {})",
                ipfmt::sa(x)
            ),
            inferred: true,
            peer: None,
        });
    }
    out
}

/// Every problem of node `me`'s traffic.
pub fn problems(
    views: &[NodeView],
    me: usize,
    seen: &[Seen],
    stale: &[Prefix],
    keys: &KeyHasher,
) -> Vec<Problem> {
    let v = &views[me];
    let mut out = Vec::new();
    if !v.ipsec {
        return out;
    }
    for e in expected_esp(views, me, seen) {
        inbound(views, me, &e, keys, &mut out);
    }
    for r in &v.remotes {
        if stale.contains(&r.cidr) {
            continue;
        }
        outbound(v, r, &mut out);
    }
    out
}

/// A flow inside an inbound SA: the packets as decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Inner {
    src: Prefix,
    dst: Prefix,
    proto: u8,
    dport: Option<u16>,
    /// Traffic the node must carry (to a pod; or a site's own address behind an xfrm
    /// interface), not merely traffic the selector lets through (to the node's own addresses).
    certain: bool,
}

/// The flows an inbound SA carries: the selectors of the sender's out policies whose template
/// leads to this SA (same protocol, its endpoints or a transport template's packet
/// addresses); without the sender's policies, ICMP between its pod CIDRs and this node's of
/// the same family. Each goes to a pod of this node inside the selector (Cilium's pods are
/// forwarded to), else to one of its own addresses there (a site's address behind a VTI or
/// xfrm interface), else to the selector; and also, as possible traffic, to every other
/// address of this node inside it (the router IP on cilium_host, a host-network pod's).
fn inner_flows(
    views: &[NodeView],
    me: usize,
    e: &EspIn,
    x: &crate::model::XfrmState,
) -> Vec<Inner> {
    let v = &views[me];
    let forwards = v.st.links.iter().any(|l| l.name == "cilium_host");
    let own_in = |sel: &Prefix| -> Vec<Prefix> {
        v.local
            .iter()
            .filter(|a| sel.contains(a))
            .map(|a| Prefix::new(*a, if a.is_ipv4() { 32 } else { 128 }))
            .collect()
    };
    let mut out: Vec<Inner> = Vec::new();
    let mut push = |src: Prefix, sel: Prefix, primary: Option<Prefix>, proto, dport| {
        let primary = primary.unwrap_or(sel);
        out.push(Inner {
            src,
            dst: primary,
            proto,
            dport,
            certain: true,
        });
        for o in own_in(&sel).into_iter().filter(|o| *o != primary) {
            out.push(Inner {
                src,
                dst: o,
                proto,
                dport,
                certain: false,
            });
        }
    };
    if let Some((pn, _)) = e.peer {
        let sels: Vec<_> = views[pn]
            .st
            .xfrm_policies
            .iter()
            .filter(|p| p.dir == PolicyDir::Out && !super::node::is_block(p))
            .filter(|p| {
                p.templates.iter().any(|t| {
                    let to_sa = ip(&t.dst).is_some_and(|d| {
                        d == e.dst || (d.is_unspecified() && p.selector.dst.contains(&e.dst))
                    });
                    t.proto == x.proto && to_sa && (t.spi == 0 || t.spi == x.spi)
                })
            })
            .filter(|p| p.selector.dst.family() == p.selector.src.family())
            .map(|p| &p.selector)
            .collect();
        for sel in &sels {
            let own = own_in(&sel.dst).first().copied();
            let pod = v
                .pod_cidrs
                .iter()
                .find(|c| sel.dst.contains(&c.addr))
                .copied();
            let primary = if forwards { pod.or(own) } else { own.or(pod) };
            push(sel.src, sel.dst, primary, sel.proto.unwrap_or(1), sel.dport);
        }
        if !sels.is_empty() {
            return out;
        }
    }
    for r in &e.inner_src {
        for l in v.pod_cidrs.iter().filter(|l| l.family() == r.family()) {
            push(*r, *l, None, 1, None);
        }
    }
    out
}

fn inbound(views: &[NodeView], me: usize, e: &EspIn, keys: &KeyHasher, out: &mut Vec<Problem>) {
    let v = &views[me];
    let st = v.st;
    let arrival = match e.src {
        Some(s) => v.esp_arrival_mark(s, e.dst),
        None => MarkSeen::Unknown,
    };
    let mark_note = match &arrival {
        MarkSeen::Known { mark, rule } => {
            format!("ESP arrives with mark {mark:#x} (set by `{rule}`)")
        }
        MarkSeen::Unknown => {
            "the mark ESP arrives with is set by Cilium's datapath and not visible here".into()
        }
    };
    let what_esp = format!("ESP spi {:#x} to {}", e.spi, e.dst);
    let sa = match lookup::inbound_sa(v, e.dst, e.spi, e.proto, arrival.known()) {
        InSa::Found(i) => i,
        InSa::Missing { nearest } => {
            // Per-direction SPIs (IKE daemons): an SA from that peer by another SPI is fine.
            // Not when the SPIs are shared (Cilium's cluster-wide keys: an in SA from the peer
            // has an SPI this node also sends to it with): then the missing one is missing.
            let from_peer =
                |x: &&crate::model::XfrmState| ip(&x.dst) == Some(e.dst) && ip(&x.src) == e.src;
            let sent_with = |spi: u32| {
                v.out_sas
                    .iter()
                    .any(|&i| v.sa(i).spi == spi && ip(&v.sa(i).dst) == e.src)
            };
            let mut from = st.xfrm_states.iter().filter(from_peer).peekable();
            if e.inferred && from.peek().is_some() && !from.any(|x| sent_with(x.spi)) {
                return;
            }
            let mut f = Finding::new(
                v.name,
                Severity::Fail,
                "in-sa-missing",
                format!("{what_esp} finds no SA: the kernel drops it (XfrmInNoStates)"),
            )
            .evidence(e.why.clone());
            if let Some(n) = &nearest {
                f = f
                    .evidence(near_text(st, n, "sa"))
                    .object(Object::Sa(n.index));
            }
            f = f
                .cause("the inbound SA for this SPI was never installed here or was removed (key rotation or agent restart timing, a node re-created)")
                .fix(format!(
                    "restart the Cilium agent on {} so it re-installs its states (kubectl -n kube-system delete pod -l k8s-app=cilium --field-selector spec.nodeName=NODE); check `ip xfrm state list dst {} spi {:#x}`",
                    v.name, e.dst, e.spi
                ));
            out.push(Problem {
                counter: Some("XfrmInNoStates"),
                finding: f,
                certainty: Certainty::Firm,
            });
            return;
        }
        InSa::MarkMismatch { sa, arrival: m } => {
            let x = st.xfrm_states[sa].mark;
            let has = x.map_or("none".into(), |m| format!("{:#x}/{:#x}", m.value, m.mask));
            let f = Finding::new(
                v.name,
                Severity::Fail,
                "in-sa-mark",
                format!(
                    "{what_esp}: the SA exists, but its mark {has} does not match the {} the ESP arrives with",
                    m.map_or("mark".into(), |m| format!("{m:#x}"))
                ),
            )
            .evidence(ipfmt::sa(&st.xfrm_states[sa]))
            .evidence(mark_note.clone())
            .evidence(e.why.clone())
            .object(Object::Sa(sa))
            .cause("the decrypt mark is not set on ESP arriving here (Cilium's bpf_host is not attached to this interface, or the mark rule is wrong)")
            .fix("check that Cilium's programs are attached to the interface ESP arrives on (`tc filter show dev eth0 ingress`); with `devices`/`encryption.ipsec.interface` set, include this interface");
            out.push(Problem {
                counter: Some("XfrmInNoStates"),
                finding: f,
                certainty: Certainty::Firm,
            });
            return;
        }
    };
    let x = &st.xfrm_states[sa];
    // The SA takes only marked packets and the mark is not visible: if XfrmInNoStates rises
    // for this SPI, the mark is the only field left that can miss.
    if let (MarkSeen::Unknown, Some(m)) = (&arrival, x.mark)
        && m.mask != 0
    {
        out.push(Problem {
            counter: Some("XfrmInNoStates"),
            certainty: Certainty::IfCounterRises,
            finding: Finding::new(
                v.name,
                Severity::Fail,
                "in-sa-mark",
                format!(
                    "{what_esp}: the SA exists, but its mark {:#x}/{:#x} does not match the mark the ESP arrives with (inferred: daddr, SPI and proto match, so the mark is the field that misses)",
                    m.value, m.mask
                ),
            )
            .evidence(ipfmt::sa(x))
            .evidence(e.why.clone())
            .evidence(format!("SA packets: {} (flat while ESP arrives: none reach it)", x.lifetime.packets))
            .object(Object::Sa(sa))
            .cause("the decrypt mark is not set on ESP arriving here (Cilium's bpf_host is not attached to this interface)")
            .fix("check that Cilium's programs are attached to the interface ESP arrives on (`tc filter show dev eth0 ingress`); with `devices`/`encryption.ipsec.interface` set, include this interface"),
        });
    }
    if let Some(enc) = e.encap
        && enc != x.encap.is_some()
    {
        let f = Finding::new(
            v.name,
            Severity::Fail,
            "in-sa-encap",
            format!(
                "{what_esp} arrives {} but its SA {} (XfrmInStateMismatch)",
                if enc { "in UDP (NAT-T)" } else { "as plain ESP" },
                if x.encap.is_some() { "expects UDP encapsulation" } else { "has no UDP encapsulation" }
            ),
        )
        .evidence(ipfmt::sa(x))
        .evidence(e.why.clone())
        .object(Object::Sa(sa))
        .cause("the two ends disagree on NAT traversal (encap espinudp)")
        .fix("configure UDP encapsulation the same on both nodes (Cilium: encryption.ipsec.encapsulation / the same agent version everywhere)");
        out.push(Problem {
            counter: Some("XfrmInStateMismatch"),
            finding: f,
            certainty: Certainty::Firm,
        });
    }
    // ESP in UDP is taken off UDP only on the port this node's IKE socket holds (its in SA's
    // encap dport); a sender aiming at another port reaches a closed UDP port.
    if let Some((pn, pi)) = e.peer
        && let (Some(t), Some(m)) = (&views[pn].sa(pi).encap, &x.encap)
        && t.dport != m.dport
    {
        let f = Finding::new(
            v.name,
            Severity::Fail,
            "in-sa-encap-port",
            format!(
                "{what_esp}: {} sends it in UDP to port {}, but this node's SA (and its IKE socket) use port {}: it reaches a closed UDP port and is dropped (Udp NoPorts, not an xfrm_stat counter)",
                views[pn].name, t.dport, m.dport
            ),
        )
        .evidence(format!("{}: {}", views[pn].name, ipfmt::sa(views[pn].sa(pi))))
        .evidence(format!("{}: {}", v.name, ipfmt::sa(x)))
        .object(Object::Sa(sa))
        .cause("the two ends disagree on the NAT-T port (encap espinudp SPORT DPORT): a hand-edited SA, or IKE daemons configured with different ports")
        .fix(format!("make {}'s out SA send to UDP {} (the port this node's IKE daemon listens on), or re-establish the IKE SA", views[pn].name, m.dport));
        out.push(Problem {
            counter: None,
            finding: f,
            certainty: Certainty::Firm,
        });
    }
    if let Some((pn, pi)) = e.peer {
        let theirs = views[pn].sa(pi);
        let (a, b) = (keys.of(theirs), keys.of(x));
        if a != b {
            // Which side is wrong: the one whose key for this SPI the other nodes do not share.
            let others: Vec<String> = views
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != pn && *i != me)
                .flat_map(|(_, w)| {
                    w.st.xfrm_states
                        .iter()
                        .filter(|y| y.spi == e.spi)
                        .map(|y| keys.of(y))
                        .collect::<Vec<_>>()
                })
                .collect();
            let blame = if others.contains(&a) && !others.contains(&b) {
                format!(
                    "{} is the odd one out: the other nodes share {}'s key",
                    v.name, views[pn].name
                )
            } else if others.contains(&b) && !others.contains(&a) {
                format!(
                    "{} is the odd one out: the other nodes share {}'s key",
                    views[pn].name, v.name
                )
            } else {
                "no third node to say which side is wrong".into()
            };
            let f = Finding::new(
                v.name,
                Severity::Fail,
                "pair-key",
                format!(
                    "{what_esp}: {}'s out SA and this node's in SA have different keys; ICV checks fail (XfrmInStateProtoError)",
                    views[pn].name
                ),
            )
            .evidence(format!("{}: {} key hash {a}", views[pn].name, ipfmt::sa(theirs)))
            .evidence(format!("{}: {} key hash {b}", v.name, ipfmt::sa(x)))
            .evidence(blame)
            .object(Object::Sa(sa))
            .cause("the IPsec secret differs between the nodes for this SPI (secret edited without a new SPI, or a node kept an old key)")
            .fix("rotate the key with a new SPI (`kubectl -n kube-system edit secret cilium-ipsec-keys`, increase the key id) so every agent installs the same key");
            out.push(Problem {
                counter: Some("XfrmInStateProtoError"),
                finding: f,
                certainty: Certainty::Firm,
            });
        }
    }
    if let Some((pn, pi)) = e.peer
        && let Some(f) = replay_pair(views, me, (pn, pi), sa, &what_esp)
    {
        out.push(Problem {
            counter: Some("XfrmInStateSeqError"),
            finding: f,
            certainty: Certainty::Firm,
        });
    }
    // The packets inside: the policy check on in (local) or fwd (forwarded).
    let start = with_output_mark(
        arrival.known().or(x.mark.map(|m| m.value)).unwrap_or(0),
        x.output_mark,
    );
    for inner in inner_flows(views, me, e, x) {
        {
            let (r, l, proto, dport) = (&inner.src, &inner.dst, inner.proto, inner.dport);
            let certainty = if inner.certain {
                Certainty::Firm
            } else {
                Certainty::IfSent
            };
            let dev = e.src.and_then(|s| v.dev_towards(&s));
            let mark = v
                .mark_after_prerouting(r.addr, l.addr, proto, dev, start)
                .known();
            let pkt = Packet {
                src: r.addr,
                dst: l.addr,
                proto,
                dport,
                mark,
                if_id: v.received_if_id(x),
            };
            let d = if v.delivered_locally(&l.addr) {
                PolicyDir::In
            } else {
                PolicyDir::Fwd
            };
            let flow = format!(
                "decrypted {} → {} (by SA spi {:#x}), checked against the {d} policies{}",
                r,
                l,
                x.spi,
                mark.map_or(String::new(), |m| format!(" with mark {m:#x}"))
            );
            match lookup::policy_check(v, d, &pkt, sa) {
                PolCheck::Pass { .. } => {}
                PolCheck::NoPolicy { nearest } => {
                    let mut f = Finding::new(
                        v.name,
                        Severity::Fail,
                        "in-policy-missing",
                        format!("no {d} policy covers {r} → {l}: packets decrypt, then the kernel drops them (XfrmInNoPols)"),
                    )
                    .evidence(flow)
                    .evidence(format!("decrypting SA: {}", ipfmt::sa(x)));
                    if let Some(n) = &nearest {
                        f = f.evidence(near_text(st, n, "policy")).object(Object::Policy(n.index));
                    } else {
                        f = f.object(Object::Sa(sa));
                    }
                    out.push(Problem {
                        certainty,
                    counter: Some("XfrmInNoPols"),
                        finding: f
                            .cause(format!("the {d} policy for this node's pod CIDR is missing (deleted, or not installed by the agent)"))
                            .fix(format!("restart the Cilium agent on {} to re-install its policies; check `ip xfrm policy list dir {d}`", v.name)),
                    });
                }
                PolCheck::Block { policy } => out.push(Problem {
                    certainty,
                    counter: Some("XfrmInPolBlock"),
                    finding: Finding::new(
                        v.name,
                        Severity::Fail,
                        "in-policy-block",
                        format!("the {d} policy that covers {r} → {l} blocks it (XfrmInPolBlock)"),
                    )
                    .evidence(ipfmt::policy(&st.xfrm_policies[policy]))
                    .evidence(flow)
                    .object(Object::Policy(policy))
                    .cause("a block policy wins over the allow policy (lower priority number)")
                    .fix(format!("remove or re-prioritise it: `ip xfrm policy delete dir {d} src {} dst {}` (after checking who installed it)", st.xfrm_policies[policy].selector.src, st.xfrm_policies[policy].selector.dst)),
                }),
                PolCheck::TmplMismatch { policy, near } => {
                    let p = &st.xfrm_policies[policy];
                    let detail = near.as_ref().map_or(
                        "the policy has no template for a tunnel-mode SA".to_string(),
                        |n| format!("the SA's {} is {}, the template wants {}", n.field, n.has, n.wants),
                    );
                    out.push(Problem {
                        certainty,
                    counter: Some("XfrmInTmplMismatch"),
                        finding: Finding::new(
                            v.name,
                            Severity::Fail,
                            "in-tmpl-mismatch",
                            format!("decrypted {r} → {l} fails the {d} policy's template: {detail} (XfrmInTmplMismatch)"),
                        )
                        .evidence(ipfmt::policy(p))
                        .evidence(ipfmt::sa(x))
                        .evidence(flow)
                        .object(Object::Policy(policy))
                        .cause("the policy template and the SA disagree (reqid/mode/addresses): installed by different agent versions, or edited by hand")
                        .fix("make them agree: restart the Cilium agent so it re-installs both (Cilium uses reqid 1 for all)"),
                    });
                }
            }
        }
    }
}

fn outbound(v: &NodeView, r: &super::node::Remote, out: &mut Vec<Problem>) {
    let st = v.st;
    let Some(src) = v.pod_addr(r.cidr.family()) else {
        return;
    };
    let (marks, rule) = v.encrypt_marks(src, r.cidr.addr);
    for mark in marks {
        let pkt = Packet {
            src,
            dst: r.cidr.addr,
            proto: 1,
            dport: None,
            mark: Some(mark),
            if_id: v.sent_if_id(src, r.cidr.addr, mark),
        };
        let flow = format!(
            "pod traffic {} → {} with mark {mark:#x}{} (remote pod CIDR from {})",
            Prefix::new(src, 0).addr,
            r.cidr,
            crate::explain::cilium::mark_value_meaning(mark)
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            r.why(st)
        );
        let flow = match &rule {
            Some(rl) => format!("{flow}; mark set by `{rl}`"),
            None => flow,
        };
        match lookup::outbound(v, &pkt) {
            Out::Encrypted { .. } => {}
            Out::Plain { nearest } => {
                let mut f = Finding::new(
                    v.name,
                    Severity::Fail,
                    "out-policy-missing",
                    format!("no out policy covers {} → {} with mark {mark:#x}: pod traffic leaves unencrypted", src, r.cidr),
                )
                .evidence(flow);
                if let Some(n) = &nearest {
                    f = f.evidence(near_text(st, n, "policy")).object(Object::Policy(n.index));
                }
                out.push(Problem {
                    certainty: Certainty::Firm,
                    counter: None,
                    finding: f
                        .cause("the out policy towards this node is missing, or the encrypt mark differs from the policies' (no catch-all block to fail closed)")
                        .fix(format!("restart the Cilium agent on {} to re-install its policies; on Cilium ≥ 1.14 the catch-all block policy keeps this from leaking", v.name)),
                });
            }
            Out::Block { policy } => out.push(Problem {
                certainty: Certainty::Firm,
                    counter: Some("XfrmOutPolBlock"),
                finding: Finding::new(
                    v.name,
                    Severity::Fail,
                    "out-blocked",
                    format!("pod traffic {src} → {} is dropped by a block policy (XfrmOutPolBlock): no per-node out policy for it", r.cidr),
                )
                .evidence(ipfmt::policy(&st.xfrm_policies[policy]))
                .evidence(flow)
                .object(Object::Policy(policy))
                .cause("the per-node out policy is missing, so the fail-closed catch-all catches the encrypt-marked traffic")
                .fix(format!("restart the Cilium agent on {} so it installs the out policy for this node (check the peer's CiliumNode is known)", v.name)),
            }),
            Out::NoState { policy, tmpl, nearest } => {
                let p = &st.xfrm_policies[policy];
                let t = &p.templates[tmpl];
                let mut f = Finding::new(
                    v.name,
                    Severity::Fail,
                    "out-sa-missing",
                    format!(
                        "out policy to {} has template dst {} spi {:#x} reqid {}, but no SA serves it: dropped on this node (XfrmOutNoStates)",
                        r.cidr, t.dst, t.spi, t.reqid
                    ),
                )
                .evidence(ipfmt::policy(p))
                .evidence(flow)
                .object(Object::Policy(policy));
                if let Some(n) = &nearest {
                    f = f.evidence(near_text(st, n, "sa"));
                }
                out.push(Problem {
                    certainty: Certainty::Firm,
                    counter: Some("XfrmOutNoStates"),
                    finding: f
                        .cause("the out SA was removed or installed with other fields than the policy's template (reqid, SPI, mark, addresses)")
                        .fix(format!("restart the Cilium agent on {} to re-install the SA; compare `ip xfrm state list dst {}` with the template", v.name, t.dst)),
                });
            }
            Out::SeqExhausted { policy, sa } => out.push(Problem {
                certainty: Certainty::Firm,
                    counter: Some("XfrmOutStateSeqError"),
                finding: Finding::new(
                    v.name,
                    Severity::Fail,
                    "out-seq-exhausted",
                    format!("the out SA to {} has used every sequence number (oseq 0xffffffff, no ESN): every packet is dropped (XfrmOutStateSeqError)", st.xfrm_states[sa].dst),
                )
                .evidence(ipfmt::sa(&st.xfrm_states[sa]))
                .evidence(ipfmt::policy(&st.xfrm_policies[policy]))
                .object(Object::Sa(sa))
                .cause("2^32 packets went through this SA without a key rotation")
                .fix("rotate the IPsec key now (new SPI in the cilium-ipsec-keys secret); rotate regularly, before 2^32 packets"),
            }),
            Out::ModeError { policy, sa } => out.push(Problem {
                certainty: Certainty::Firm,
                    counter: Some("XfrmOutStateModeError"),
                finding: Finding::new(
                    v.name,
                    Severity::Fail,
                    "out-mode-error",
                    format!("the out SA chosen for {} → {} selects {} traffic only (XfrmOutStateModeError)", src, r.cidr, st.xfrm_states[sa].selector.src.family().name()),
                )
                .evidence(ipfmt::sa(&st.xfrm_states[sa]))
                .evidence(ipfmt::policy(&st.xfrm_policies[policy]))
                .object(Object::Sa(sa))
                .cause("the SA's selector is of the other IP family than the traffic its policy sends to it")
                .fix("install per-family SAs (Cilium: one SA per family and peer)"),
            }),
        }
        let _ = Family::of(&src);
    }
}

/// The sender's next sequence number against the receiver's replay window (the kernel's
/// `xfrm_replay_check`): with a window, a number at or below the highest seen less the window
/// is dropped as too old. A sender whose SA was re-created (its oseq restarted) while the
/// receiver kept its SA is behind until it catches up.
fn replay_pair(
    views: &[NodeView],
    me: usize,
    (pn, pi): (usize, usize),
    sa: usize,
    what_esp: &str,
) -> Option<Finding> {
    let (v, p) = (&views[me], &views[pn]);
    let (theirs, x) = (p.sa(pi), v.sa(sa));
    if x.replay_window == 0 || x.esn || theirs.esn {
        return None;
    }
    let oldest = x.seq.checked_sub(x.replay_window)?;
    let next = theirs.oseq.wrapping_add(1);
    if next > oldest {
        return None;
    }
    Some(
        v.sa_finding(
            sa,
            Severity::Fail,
            "pair-replay",
            format!(
                "{what_esp}: {}'s out SA sends sequence number {next}, but this SA has seen up to {} with a replay window of {}: every packet is dropped as too old (XfrmInStateSeqError) for the next {} packets",
                p.name,
                x.seq,
                x.replay_window,
                oldest - next + 1
            ),
        )
        .evidence(format!("{}: {}", p.name, ipfmt::sa(theirs)))
        .evidence(format!(
            "{}: in SA seq {:#x}, replay-window {}; its replay-window counter: {}",
            v.name, x.seq, x.replay_window, x.stats.replay_window
        ))
        .cause(format!(
            "{}'s out SA was re-created (its sequence restarted at 0) while {}'s in SA kept the sequence it had seen",
            p.name, v.name
        ))
        .fix(format!(
            "re-create both ends of spi {:#x} together (restart the Cilium agents of {} and {}); Cilium's own in SAs use replay-window 0",
            x.spi, p.name, v.name
        )),
    )
}
