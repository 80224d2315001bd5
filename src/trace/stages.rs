//! The steps of a packet's pass through a node, one function per kind of hop, in the order
//! the kernel takes them: PREROUTING (nf_stages.rs), ip rules and the route lookup, OUTPUT,
//! INPUT and local delivery or decryption, the forward policy check of a decrypted packet,
//! FORWARD, XFRM output (policy, template, SA, encryption), POSTROUTING, egress, a tunnel
//! device's own transmit (tunnel.rs), and the hand-off to the next device (veth, pod, wire). `STAGES` is the table the walk runs; a layout or a netfilter hook is a new
//! entry in it, a function of the same shape.

use super::decision::Decision;
use super::fib::{self, FibKey, FibOutcome};
use super::nf_stages as nf;
use super::path::{
    At, End, Go, Packet, Routed, Step, StepFn, Walk, esp_len, ip_header_len, is_local,
    leads_elsewhere, link,
};
use super::tunnel;
use super::xfrm::{
    XfrmKey, apply_output_mark, choose_policy, describe_policy, describe_sa, find_inbound_sa,
    find_sa, resolve_template, sa_mismatch,
};
use crate::explain::cilium;
use crate::model::RouteKind;
use crate::model::{
    NodeState, PolicyAction, PolicyDir, TemplateLevel, XfrmMode, XfrmPolicy, XfrmProto,
};
use std::net::IpAddr;

pub(crate) const STAGES: &[StepFn] = &[
    nf::prerouting,
    route_lookup,
    nf::output,
    nf::input,
    local_input,
    forward_policy_check,
    nf::forward,
    xfrm_output,
    nf::postrouting,
    egress,
    tunnel::tunnel_xmit,
    hand_off,
];

/// The ip rules in priority order, then the chosen table's longest prefix.
fn route_lookup(w: &mut Walk, at: &mut At) -> Go {
    let ni = at.node;
    let st = &w.nodes[ni].state;
    let pkt = &at.pkt;
    let key = FibKey {
        src: Some(pkt.src),
        dst: pkt.dst,
        mark: pkt.mark,
        iif: if at.generated_by_xfrm {
            None
        } else {
            at.iif.clone()
        },
        oif: None,
        tos: 0,
    };
    let res = fib::lookup(st, &key);
    let deciding = res.rule_priority.and_then(|p| {
        res.rules
            .iter()
            .rev()
            .find(|s| s.priority == p && s.matched)
    });
    let rule_text = deciding
        .map(|s| format!("rule {}: {}", s.priority, s.rule))
        .unwrap_or_default();
    let rule = deciding.and_then(|s| Decision::rule_of(st, s.priority, &s.rule));
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
    let (route_idx, kind) = match &res.outcome {
        FibOutcome::Route {
            route_index, kind, ..
        } => (*route_index, *kind),
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
            let end = w.stop(ni, pkt, reason, None);
            w.decided(rule);
            return Go::End(end);
        }
    };
    let route = &st.routes[route_idx];
    let dev = route.dev.as_ref().and_then(|d| d.name.clone());
    let table_name = crate::explain::labels::table(&route.table);
    let text = format!("table {table_name}: {} {}", route.dst_text(), {
        let mut s = String::new();
        if let Some(g) = &route.gateway {
            s += &format!("via {g} ");
        }
        if let Some(d) = &dev {
            s += &format!("dev {d}");
        }
        s.trim().to_string()
    });
    w.hop(
        (ni, Step::Route, dev.as_deref()),
        pkt,
        format!("{kind} route: {text}"),
        rule_text,
        skipped,
    );
    w.decided(rule.into_iter().chain([Decision::route(route)]));
    at.routed = Some(Routed {
        route: route_idx,
        kind,
        dev,
        table_name,
        text,
    });
    Go::On
}

/// A local route: ESP is decrypted by its inbound SA (and enters again), a UDP tunnel's
/// packet is decapsulated (tunnel.rs), anything else has arrived once its policy check passed.
fn local_input(w: &mut Walk, at: &mut At) -> Go {
    let Some((dev, table_name)) = at
        .routed
        .as_ref()
        .filter(|r| r.kind == RouteKind::Local)
        .map(|r| (r.dev.clone(), r.table_name.clone()))
    else {
        return Go::On;
    };
    let ni = at.node;
    // A decrypted packet meets its in policy on delivery (for UDP before a tunnel's socket
    // takes it: udp_queue_rcv_one_skb).
    if at.pkt.esp.is_none()
        && let Some(sa_idx) = at.decrypted_by.take()
        && let Some(go) = policy_check(w, at, PolicyDir::In, sa_idx)
    {
        return go;
    }
    if let Some(go) = tunnel::udp_receive(w, at) {
        return go;
    }
    if at.pkt.esp.is_none() {
        let node = &w.nodes[ni];
        let by = format!("local route in table {table_name}");
        w.hop(
            (ni, Step::Deliver, dev.as_deref()),
            &at.pkt,
            format!("delivered to {} itself", node.name),
            by,
            vec![],
        );
        return Go::End(End::Delivered {
            node: node.name.clone(),
            dev,
            what: "the node's own stack".into(),
        });
    }
    decrypt(w, at)
}

/// xfrm_input: the inbound SA by (dst, SPI, proto, mark), where a VTI's ikey stands in for the
/// mark; the decrypted packet enters again on the device the ESP came in on, or on the xfrm
/// interface / VTI the SA belongs to.
fn decrypt(w: &mut Walk, at: &mut At) -> Go {
    let ni = at.node;
    let st = &w.nodes[ni].state;
    let pkt = &at.pkt;
    let Some((spi, inner)) = pkt.esp.clone() else {
        return Go::On;
    };
    let vti = tunnel::vti_receiving(st, pkt);
    let mark = vti.as_ref().map_or(pkt.mark, |v| v.ikey);
    let Some(sa_idx) = find_inbound_sa(st, &pkt.dst, spi, XfrmProto::Esp, mark) else {
        let near: Vec<String> = st
            .xfrm_states
            .iter()
            .filter(|s| s.spi == spi || s.dst == pkt.dst.to_string())
            .map(describe_sa)
            .collect();
        let via = vti
            .as_ref()
            .map(|v| format!(" (VTI {}'s ikey)", v.dev))
            .unwrap_or_default();
        let end = w.stop(
            ni,
            pkt,
            format!(
                "no inbound SA for spi {spi:#x} dst {} mark {mark:#x}{via}: the kernel drops it",
                pkt.dst
            ),
            Some("XfrmInNoStates"),
        );
        if let (Some(h), false) = (w.hops.last_mut(), near.is_empty()) {
            h.details = near.iter().map(|s| format!("not matching: {s}")).collect();
        }
        return Go::End(end);
    };
    let sa = &st.xfrm_states[sa_idx];
    // xfrm_input: UDP-encapsulated ESP needs an SA with encap, plain ESP one without.
    let in_udp = pkt.proto == 17;
    if sa.encap.is_some() != in_udp {
        let reason = format!(
            "{} arrived {}, but {} {}: the kernel drops it",
            describe_sa(sa),
            if in_udp { "in UDP" } else { "as plain ESP" },
            describe_sa(sa),
            if in_udp {
                "has no UDP encapsulation"
            } else {
                "expects ESP in UDP (encap)"
            }
        );
        let end = w.stop(ni, pkt, reason, Some("XfrmInStateMismatch"));
        w.decided([Decision::sa(sa)]);
        return Go::End(end);
    }
    let mut p = *inner;
    p.mark = apply_output_mark(pkt.mark, sa.output_mark);
    // The SA's xfrm interface, or the VTI, becomes the decrypted packet's device.
    let xfrmi = sa.if_id.and_then(|id| tunnel::xfrm_interface(st, id));
    let dev = vti
        .as_ref()
        .map(|v| v.dev.clone())
        .or(xfrmi.clone())
        .or(at.iif.clone());
    let onto = match (&vti, &xfrmi) {
        (Some(v), _) => format!(", onto VTI {}", v.dev),
        (None, Some(x)) => format!(
            ", onto xfrm interface {x} (if_id {})",
            sa.if_id.unwrap_or(0)
        ),
        _ => String::new(),
    };
    w.hop(
        (ni, Step::Decrypt, dev.as_deref()),
        &p,
        format!(
            "decrypted (output mark {}){onto}",
            sa.output_mark
                .map(|m| crate::explain::labels::mark(&m))
                .unwrap_or("none".into())
        ),
        describe_sa(sa),
        vec![],
    );
    // Tunnel mode re-injects the decrypted packet (a capture on the device sees it again);
    // transport mode hands it straight on to the stack.
    if sa.mode == XfrmMode::Transport
        && let Some(h) = w.hops.last_mut()
    {
        h.expect = None;
    }
    w.decided([Decision::sa(sa)]);
    at.pkt = p;
    at.if_id = sa.if_id.unwrap_or(0);
    at.decrypted_by = Some(sa_idx);
    at.generated_by_xfrm = false;
    if let Some(v) = vti {
        // vti_rcv_cb checks the in policy with the ikey as mark, still on the device the ESP
        // came in on; then it scrubs the packet (no transform on record), and the packet's
        // own check on the VTI comes with delivery or forwarding, unless disable_policy.
        let saved = at.pkt.mark;
        at.pkt.mark = v.ikey;
        let go = policy_check(w, at, PolicyDir::In, sa_idx);
        at.pkt.mark = saved;
        if let Some(go) = go {
            return go;
        }
        at.secpath_scrubbed = true;
    }
    at.iif = dev;
    Go::Again // re-enters on the same device, or on the tunnel device
}

/// A decrypted packet being forwarded must match a fwd policy whose templates it went
/// through.
fn forward_policy_check(w: &mut Walk, at: &mut At) -> Go {
    let Some(sa_idx) = at.decrypted_by.take() else {
        return Go::On;
    };
    policy_check(w, at, PolicyDir::Fwd, sa_idx).unwrap_or(Go::On)
}

/// __xfrm_policy_check for a packet `sa_idx` decrypted: the in (local) or fwd policy by
/// selector, mark and if_id; its templates must be ones the packet went through. No policy
/// passes a transport-mode packet, and drops a tunnel-mode one. Some(Go) when it stops.
fn policy_check(w: &mut Walk, at: &mut At, dir: PolicyDir, sa_idx: usize) -> Option<Go> {
    let ni = at.node;
    let st = &w.nodes[ni].state;
    let pkt = &at.pkt;
    let iif = at.iif.as_deref();
    if let Some(why) = policy_check_off(st, at, dir) {
        w.hop(
            (ni, Step::PolicyCheck, iif),
            pkt,
            format!("no {dir} policy check: {why}"),
            String::new(),
            vec![],
        );
        return None;
    }
    // A VTI's scrubbed packet has no transform a template could have been met by.
    let scrubbed = std::mem::take(&mut at.secpath_scrubbed);
    let key = XfrmKey {
        if_id: at.if_id,
        ..pkt.xfrm_key()
    };
    let c = choose_policy(st, dir, &key, iif);
    let sa = &st.xfrm_states[sa_idx];
    match c.chosen.map(|i| &st.xfrm_policies[i]) {
        Some(p) if p.action == PolicyAction::Block => {
            let reason = format!("blocked by {}", describe_policy(p));
            return Some(stopped_by_policy(w, (ni, pkt), reason, p, "XfrmInPolBlock"));
        }
        Some(p) => {
            let ok = p.templates.iter().all(|t| {
                t.level == TemplateLevel::Use
                    || (!scrubbed && (t.reqid == 0 || t.reqid == sa.reqid))
            });
            if !ok {
                let reason = if scrubbed {
                    format!(
                        "{} requires a transform, and the VTI {} left none on record (disable_policy is off on it): the kernel drops it",
                        describe_policy(p),
                        iif.unwrap_or("?")
                    )
                } else {
                    format!(
                        "{} requires a transform this packet did not get",
                        describe_policy(p)
                    )
                };
                return Some(stopped_by_policy(
                    w,
                    (ni, pkt),
                    reason,
                    p,
                    "XfrmInTmplMismatch",
                ));
            }
            w.hop(
                (ni, Step::PolicyCheck, iif),
                pkt,
                format!(
                    "{} policy check passed",
                    if dir == PolicyDir::Fwd {
                        "forward"
                    } else {
                        "in"
                    }
                ),
                describe_policy(p),
                vec![],
            );
            w.decided([Decision::policy(p)]);
        }
        None => {
            let losers: Vec<String> = c
                .candidates
                .iter()
                .map(|c| {
                    format!(
                        "did not match ({}): {}",
                        if c.selector_ok {
                            "mark or if_id"
                        } else {
                            "selector"
                        },
                        describe_policy(&st.xfrm_policies[c.index])
                    )
                })
                .collect();
            if scrubbed {
                w.hop(
                    (ni, Step::PolicyCheck, iif),
                    pkt,
                    format!(
                        "no {dir} policy matches (mark {:#x}): allowed (the VTI left no transform on record)",
                        key.mark
                    ),
                    String::new(),
                    losers,
                );
                return None;
            }
            if sa.mode != XfrmMode::Transport {
                let reason = format!(
                    "no {dir} policy matches the packet {} decrypted (mark {:#x}, if_id {}): the kernel drops it",
                    describe_sa(sa),
                    key.mark,
                    key.if_id
                );
                let end = w.stop(ni, pkt, reason, Some("XfrmInNoPols"));
                if let Some(h) = w.hops.last_mut() {
                    h.details = losers;
                }
                return Some(Go::End(end));
            }
            w.hop(
                (ni, Step::PolicyCheck, iif),
                pkt,
                format!("no {dir} policy matches: allowed (transport mode)"),
                String::new(),
                losers,
            );
        }
    }
    None
}

/// Why the kernel skips a received packet's in/fwd policy check, if it does: IPv4 by the
/// input device's disable_policy (IPSKB_NOPOLICY), IPv6 by that of the device holding the
/// destination address, for delivery only (DST_NOPOLICY on the address's local route). A VTI
/// whose setting the dump did not carry is taken to have it on, as strongSwan sets it.
fn policy_check_off(st: &NodeState, at: &At, dir: PolicyDir) -> Option<String> {
    let v4 = at.pkt.dst.is_ipv4();
    let dev = if v4 {
        at.iif.as_deref().and_then(|d| link(st, d))
    } else if dir == PolicyDir::In {
        st.links.iter().find(|l| {
            l.addresses
                .iter()
                .any(|a| a.address.parse::<IpAddr>().ok() == Some(at.pkt.dst))
        })
    } else {
        None
    }?;
    let family = crate::model::Family::of(&at.pkt.dst);
    let vti = matches!(dev.tunnel, Some(crate::model::Tunnel::Vti { .. }));
    match dev.xfrm_conf.disable_policy(family) {
        Some(true) => Some(format!("disable_policy is on on {}", dev.name)),
        None if vti && at.secpath_scrubbed => Some(format!(
            "disable_policy assumed on on VTI {} (as strongSwan sets it; the link dump had no devconf)",
            dev.name
        )),
        _ => None,
    }
}

/// The walk ends at `policy`, and `counter` rises.
fn stopped_by_policy(
    w: &mut Walk,
    (ni, pkt): (usize, &Packet),
    reason: String,
    policy: &XfrmPolicy,
    counter: &str,
) -> Go {
    let end = w.stop(ni, pkt, reason, Some(counter));
    w.decided([Decision::policy(policy)]);
    Go::End(end)
}

/// The route lookup's XFRM lookup (if_id 0): a matching out policy transforms the packet.
fn xfrm_output(w: &mut Walk, at: &mut At) -> Go {
    if at.generated_by_xfrm {
        return Go::On;
    }
    let dev = at.routed.as_ref().and_then(|r| r.dev.clone());
    let ni = at.node;
    // ip_route_output / ip_route_input: DST_NOXFRM from the output device's disable_xfrm
    // (IPv4 only) skips this lookup.
    if at.pkt.dst.is_ipv4()
        && let Some(l) = dev.as_deref().and_then(|d| link(&w.nodes[ni].state, d))
        && l.xfrm_conf.disable_xfrm()
    {
        let what = format!("no XFRM lookup: disable_xfrm is on on {}", l.name);
        w.hop(
            (ni, Step::XfrmPolicy, dev.as_deref()),
            &at.pkt,
            what,
            String::new(),
            vec![],
        );
        return Go::On;
    }
    let key = at.pkt.xfrm_key();
    xfrm_transform(w, at, dev.as_deref(), &key).unwrap_or(Go::On)
}

/// xfrm_lookup with `key` (the route's, or a tunnel device's mark or if_id): a matching out
/// policy sends the packet through the SA its template selects; the ESP packet made then is
/// routed again, with the SA's output mark. None when no policy matches.
pub(super) fn xfrm_transform(
    w: &mut Walk,
    at: &mut At,
    dev: Option<&str>,
    key: &XfrmKey,
) -> Option<Go> {
    let ni = at.node;
    let st = &w.nodes[ni].state;
    let pkt = &at.pkt;
    let c = choose_policy(st, PolicyDir::Out, key, dev);
    let pi = c.chosen?;
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
    if pol.action == PolicyAction::Block {
        let reason = format!("blocked by {}", describe_policy(pol));
        return Some(stopped_by_policy(
            w,
            (ni, pkt),
            reason,
            pol,
            "XfrmOutPolBlock",
        ));
    }
    w.hop(
        (ni, Step::XfrmPolicy, None),
        pkt,
        format!(
            "out policy matches (selector and mark), {} template(s)",
            pol.templates.len()
        ),
        describe_policy(pol),
        losers,
    );
    w.decided([Decision::policy(pol)]);
    let Some(t) = pol.templates.first() else {
        return Some(Go::Again);
    };
    let t = &resolve_template(t, pkt.src, pkt.dst);
    let Some(si) = find_sa(st, t, key.mark, key.if_id) else {
        let near: Vec<String> = st
            .xfrm_states
            .iter()
            .map(|s| {
                format!(
                    "{} differs: {}",
                    sa_mismatch(s, t, key.mark, key.if_id).unwrap_or("?"),
                    describe_sa(s)
                )
            })
            .collect();
        w.hop(
            (ni, Step::XfrmState, None),
            pkt,
            format!(
                "no SA for template {} → {} {} reqid {}",
                t.src, t.dst, t.proto, t.reqid
            ),
            describe_policy(pol),
            near,
        );
        w.decided([Decision::policy(pol)]);
        return Some(Go::End(w.stop(
            ni,
            pkt,
            format!(
                "no SA for the out policy's template (dst {} reqid {} mark {:#x})",
                t.dst, t.reqid, key.mark
            ),
            Some("XfrmOutNoStates"),
        )));
    };
    let sa = &st.xfrm_states[si];
    w.hop(
        (ni, Step::XfrmState, None),
        pkt,
        format!("template selects SA spi {:#x}", sa.spi),
        describe_sa(sa),
        vec![],
    );
    w.decided([Decision::sa(sa)]);
    // The SA's algorithm sets IV, ICV and padding (rfc4106: 8, ICV bits, 4; cbc: 16, trunc, 16).
    let (iv, icv, block) = match crate::decode::esp::EspCipher::from_state(sa) {
        Ok(c) => (c.iv_len() as u32, c.icv_len() as u32, c.block() as u32),
        Err(_) => (8, 16, 4),
    };
    let src: IpAddr = sa.src.parse().unwrap_or(pkt.src);
    // Tunnel mode wraps the whole packet in a new IP header of the SA's family; transport
    // mode keeps the packet's own header and wraps what follows it.
    let (outer_ip, protected) = if sa.mode == XfrmMode::Transport {
        let h = ip_header_len(&pkt.src);
        (h, pkt.size.saturating_sub(h))
    } else {
        (ip_header_len(&src), pkt.size)
    };
    let esp_len = esp_len(protected, iv, icv, block);
    // NAT traversal: the ESP packet travels in UDP with the SA's encap ports.
    let encap = sa.encap.as_ref().map(|e| (e.sport, e.dport));
    let outer = Packet {
        src,
        dst: sa.dst.parse().unwrap_or(pkt.dst),
        proto: if encap.is_some() { 17 } else { 50 },
        sport: encap.map(|e| e.0),
        dport: encap.map(|e| e.1),
        mark: apply_output_mark(pkt.mark, sa.output_mark),
        size: outer_ip + esp_len + if encap.is_some() { 8 } else { 0 },
        esp: Some((sa.spi, Box::new(pkt.clone()))),
        vxlan: None,
    };
    let how = match encap {
        Some((s, d)) => format!("ESP in UDP {s}→{d} (NAT-T)"),
        None => "ESP".into(),
    };
    w.hop(
        (ni, Step::Encrypt, None),
        &outer,
        format!(
            "{how} {} {} → {} (ESP payload {esp_len} bytes)",
            sa.mode, outer.src, outer.dst,
        ),
        format!(
            "SA output mark {}",
            sa.output_mark
                .map(|m| crate::explain::labels::mark(&m))
                .unwrap_or("none".into())
        ),
        vec![],
    );
    w.decided([Decision::sa(sa)]);
    at.pkt = outer;
    // The kernel drops the skb's conntrack reference once it is transformed (nf_reset_ct in
    // xfrm_output): the ESP packet is a flow of its own, never the inner flow's entry.
    at.ct = Default::default();
    at.generated_by_xfrm = true;
    at.if_id = 0;
    Some(Go::Again) // the outer packet is routed again, with the output mark
}

/// The packet leaves on the route's device, if it fits its MTU.
fn egress(w: &mut Walk, at: &mut At) -> Go {
    let ni = at.node;
    let st = &w.nodes[ni].state;
    let Some(routed) = at.routed.as_ref() else {
        return Go::On;
    };
    let Some(dev) = routed.dev.clone() else {
        let reason = format!("route has no device: {}", routed.text);
        return Go::End(w.stop(ni, &at.pkt, reason, None));
    };
    let route = &st.routes[routed.route];
    let mtu = route
        .mtu
        .or(link(st, &dev).and_then(|l| l.mtu))
        .unwrap_or(1500);
    if at.pkt.size > mtu {
        // With DF (TCP, ping -M do, and every ESP packet of an inner DF packet) the kernel
        // answers "fragmentation needed" instead of sending.
        let reason = format!(
            "packet of {} bytes exceeds MTU {mtu} on {dev} ({}): dropped with ICMP fragmentation-needed when DF is set, fragmented otherwise",
            at.pkt.size, routed.text
        );
        let end = w.stop(ni, &at.pkt, reason, None);
        w.decided([Decision::route(route)]);
        return Go::End(end);
    }
    w.hop(
        (ni, Step::Egress, Some(&dev)),
        &at.pkt,
        format!("leaves on {dev} (mtu {mtu})"),
        routed.text.clone(),
        Vec::new(),
    );
    w.decided([Decision::route(route)]);
    at.generated_by_xfrm = false;
    Go::On
}

/// Where the device leads: its veth peer here (enters again), a local pod (Cilium's
/// cilium_host redirect, or an lxc), or the wire to the node owning the next hop.
fn hand_off(w: &mut Walk, at: &mut At) -> Go {
    let ni = at.node;
    let node = &w.nodes[ni];
    let st = &node.state;
    let Some(routed) = at.routed.take() else {
        return Go::On;
    };
    let Some(dev) = routed.dev else {
        return Go::On;
    };
    let route = &st.routes[routed.route];
    let route_text = routed.text;
    let pkt = &at.pkt;
    let Some(l) = link(st, &dev) else {
        return Go::End(w.stop(ni, pkt, format!("device {dev} is not in this netns"), None));
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
            w.hop((ni, Step::Deliver, Some(&dev)), pkt, format!("to the local pod {} (Cilium's datapath on cilium_host redirects it to its lxc)", pkt.dst), route_text, vec![]);
            w.decided([Decision::route(route)]);
            return Go::End(End::Delivered {
                node: node.name.clone(),
                dev: Some(dev),
                what: format!("pod {}", pkt.dst),
            });
        }
        w.hop(
            (ni, Step::Veth, Some(&peer)),
            pkt,
            format!("crosses veth {dev} → {peer}"),
            format!("{dev}@{peer}"),
            vec![],
        );
        at.iif = Some(peer);
        at.bridge_port = None;
        return Go::Again;
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
            pkt,
            format!("to the pod behind {dev}"),
            route_text,
            vec![],
        );
        w.decided([Decision::route(route)]);
        return Go::End(End::Delivered {
            node: node.name.clone(),
            dev: Some(dev),
            what: format!("pod {}", pkt.dst),
        });
    }
    let Some(nj) = w.nodes.iter().position(|n| is_local(&n.state, &next_hop)) else {
        w.hop(
            (ni, Step::Wire, Some(&dev)),
            pkt,
            format!("on the wire towards {next_hop}"),
            "no given node owns that address".into(),
            vec![],
        );
        return Go::End(End::Wire {
            node: node.name.clone(),
            dev,
            next_hop: next_hop.to_string(),
        });
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
    let next = w.nodes[nj].name.clone();
    w.hop(
        (ni, Step::Wire, Some(&dev)),
        pkt,
        format!("on the wire to {next} ({next_hop})"),
        format!("{next_hop} is an address of {next}"),
        vec![],
    );
    w.decided([Decision::Address {
        node: next.clone(),
        address: next_hop.to_string(),
    }]);
    at.node = nj;
    at.iif = in_dev;
    at.if_id = 0;
    at.bridge_port = None;
    // skb->mark does not cross into another netns (skb_scrub_packet): the next node's own
    // rules (or Cilium's programs) mark the packet again, whatever --mark said for the first.
    at.pkt.mark = 0;
    at.mark_given = false;
    let what = format!("enters {next} on {}", at.iif.as_deref().unwrap_or("?"));
    w.hop(
        (nj, Step::Ingress, at.iif.as_deref()),
        &at.pkt,
        what,
        String::new(),
        vec![],
    );
    Go::Again
}

/// Marks Cilium's BPF programs set, which iptables cannot show: only used where no iptables
/// rule decided the mark, and always said to be an assumption.
pub(super) fn cilium_mark(w: &mut Walk, ni: usize, dev: &str, pkt: &mut Packet) {
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
            .filter(|p| p.dir == PolicyDir::Out)
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
    w.decided([Decision::Assumption { text: why.into() }]);
}

/// Is `ip` in this node's own pod CIDR (Cilium routes it `via <router ip> dev cilium_host`)?
pub(super) fn own_pod_cidr(st: &NodeState, ip: &IpAddr) -> bool {
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
