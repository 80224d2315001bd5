//! Static checks that are not a lookup: key counts and rotation, SPI in marks vs SAs,
//! sequence numbers near the end, MTU against the ESP overhead, stale objects towards
//! addresses of no node, conflicting SAs for one peer, the fail-closed catch-all, marks that
//! collide with other users of the mark bits.

use super::cluster::{self, KubeNode};
use super::finding::{Finding, Object, Severity};
use super::ipfmt;
use super::node::{NodeView, ip, is_block};
use super::{Given, PodState};
use crate::model::RouteKind;
use crate::model::{Family, Mark, NfCond, NfTarget, PolicyDir, Prefix, XfrmPolicy, XfrmState};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Sequence numbers past this (without ESN) want a key rotation soon.
pub const OSEQ_WARN: u32 = 0xf000_0000;

pub fn keys(v: &NodeView, out: &mut Vec<Finding>) {
    // Out SAs per (peer, family): one SPI, or two side by side during a key rotation.
    let mut per_peer: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &i in &v.out_sas {
        per_peer.entry(v.sa(i).dst.to_string()).or_default().push(i);
    }
    for (peer, sas) in &per_peer {
        let mut spis: Vec<u32> = sas.iter().map(|&i| v.sa(i).spi).collect();
        spis.sort();
        spis.dedup();
        // The same SPI twice to one peer: two mark widths (an upgrade left the old one).
        for (a, &i) in sas.iter().enumerate() {
            for &j in &sas[a + 1..] {
                let (x, y) = (v.sa(i), v.sa(j));
                if x.spi == y.spi
                    && x.proto == y.proto
                    && x.mark.map(|m| m.mask) != y.mark.map(|m| m.mask)
                {
                    out.push(
                        Finding::new(
                            v.name,
                            Severity::Warn,
                            "sa-mask-conflict",
                            format!("two out SAs to {peer} with spi {:#x} and different mark widths: packets may use the stale one", x.spi),
                        )
                        .evidence(ipfmt::sa(x))
                        .evidence(ipfmt::sa(y))
                        .object(Object::Sa(j))
                        .cause("an upgrade changed Cilium's mark layout (node IDs in the mark) and the old states were left behind")
                        .fix(format!("delete the stale one: ip xfrm state delete src {} dst {} proto esp spi {:#x} mark {:#x} mask {:#x} (check which one traffic uses: ip -s xfrm state)", y.src, y.dst, y.spi, y.mark.map_or(0, |m| m.value), y.mark.map_or(0, |m| m.mask))),
                    );
                }
            }
        }
        match spis.len() {
            0 | 1 => {}
            2 => out.push(
                Finding::new(
                    v.name,
                    Severity::Info,
                    "key-rotation",
                    format!("two keys to {peer} side by side (spi {:#x} and {:#x}): a key rotation in progress", spis[0], spis[1]),
                )
                .evidence(ipfmt::sa(v.sa(sas[0])))
                .evidence(ipfmt::sa(v.sa(*sas.last().unwrap()))),
            ),
            n => out.push(
                Finding::new(
                    v.name,
                    Severity::Warn,
                    "too-many-keys",
                    format!("{n} SPIs to {peer} ({spis:#x?}): more than a rotation's two"),
                )
                .evidence(ipfmt::sa(v.sa(sas[0])))
                .cause("old keys were not cleaned up after rotations")
                .fix("let the Cilium agent clean up (it removes old keys after the rotation delay); restart it if they stay"),
            ),
        }
    }
}

/// The SAs per remote node and family against what the node's Cilium layout expects for the
/// keys it uses with that node (`explain::cilium::node_layout`): one out SA per key, and on
/// the per-source layout one inbound SA per key too. Part of the key judgement above: the
/// layout says how many SAs each key wants.
pub fn sa_counts(v: &NodeView, names: &crate::model::Names, out: &mut Vec<Finding>) {
    let Some(l) = crate::explain::cilium::node_layout(&v.st.xfrm_states, names) else {
        return;
    };
    for p in l.miscounted() {
        let sas: Vec<usize> =
            v.st.xfrm_states
                .iter()
                .enumerate()
                .filter(|(_, x)| {
                    p.spis.contains(&x.spi)
                        && (ip(&x.dst) == Some(p.peer) || ip(&x.src) == Some(p.peer))
                })
                .map(|(i, _)| i)
                .collect();
        let missing = p.out < p.expected_out || p.inbound < p.expected_in;
        let mut f = Finding::new(
            v.name,
            Severity::Warn,
            "sa-count",
            format!(
                "{} ({}): {} out and {} inbound SA(s) for spi {}, where {} expects {} and {}",
                p.label(),
                p.family.name(),
                p.out,
                p.inbound,
                p.spis
                    .iter()
                    .map(|s| format!("{s:#x}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                l.layout,
                p.expected_out,
                p.expected_in
            ),
        )
        .evidence(format!("layout: {} ({})", l.layout, l.why))
        .evidence(format!("expects: {}", l.expectation()));
        for &i in &sas {
            f = f.evidence(ipfmt::sa(v.sa(i)));
        }
        if let Some(&i) = sas.first() {
            f = f.object(Object::Sa(i));
        }
        out.push(if missing {
            f.cause("the agent did not (yet) install every SA for that node: traffic with the missing key or direction is dropped (XfrmOutNoStates / XfrmInNoStates)")
                .fix("check the Cilium agent's log for that node; restarting the agent re-installs its states")
        } else {
            f.cause("SAs for that node were left behind (an agent restart or upgrade that did not clean up)")
                .fix("let the Cilium agent clean up; restart it if they stay (ip -s xfrm state shows which one traffic uses)")
        });
    }
}

/// Cilium's key id in bits 12–15 of encrypt/decrypt marks must be the SA's or template's SPI.
pub fn spi_in_marks(v: &NodeView, out: &mut Vec<Finding>) {
    let key_of = |m: &Mark| {
        let ipsec = matches!(m.value & 0x0f00, 0x0e00) && m.mask & 0xf000 == 0xf000;
        (ipsec && m.value & 0xf000 != 0).then_some((m.value & 0xf000) >> 12)
    };
    for &i in &v.out_sas {
        let x = v.sa(i);
        if let Some(k) = x.mark.as_ref().and_then(key_of)
            && k != x.spi
        {
            out.push(
                v.sa_finding(i, Severity::Warn, "spi-mark-mismatch", format!("out SA spi {:#x} to {} has key {k} in its mark: Cilium's traffic for key {k} expects SPI {k}", x.spi, x.dst))
                .cause("the SA was installed by hand or by a mismatched agent version")
                .fix("restart the Cilium agent so it re-installs its states"),
            );
        }
    }
    for (i, p) in v.st.xfrm_policies.iter().enumerate() {
        if p.dir != PolicyDir::Out || is_block(p) {
            continue;
        }
        if let Some(k) = p.mark.as_ref().and_then(key_of) {
            for t in p.templates.iter().filter(|t| t.spi != 0 && t.spi != k) {
                out.push(
                    Finding::new(
                        v.name,
                        Severity::Warn,
                        "spi-mark-mismatch",
                        format!(
                            "out policy with key {k} in its mark sends to SPI {:#x}",
                            t.spi
                        ),
                    )
                    .evidence(ipfmt::policy(p))
                    .object(Object::Policy(i))
                    .cause("the policy was installed by hand or by a mismatched agent version")
                    .fix("restart the Cilium agent so it re-installs its policies"),
                );
            }
        }
    }
}

pub fn sequence(v: &NodeView, out: &mut Vec<Finding>) {
    for &i in &v.out_sas {
        let x = v.sa(i);
        if !x.esn && x.oseq >= OSEQ_WARN && x.oseq < u32::MAX {
            let left = u32::MAX - x.oseq;
            out.push(
                v.sa_finding(i, Severity::Warn, "out-seq-near-exhaustion", format!("out SA spi {:#x} to {} has {left} sequence numbers left (no ESN): then every packet is dropped", x.spi, x.dst))
                .cause("many packets since the last key rotation")
                .fix("rotate the IPsec key (new SPI in the cilium-ipsec-keys secret) before it runs out"),
            );
        }
    }
}

/// The largest inner packet an SA carries on a link of `mtu`, as the kernel computes it
/// (esp4/esp6 get_mtu: the link MTU less outer header, ESP header and IV, and ICV, rounded
/// down to the cipher's block, less pad length and next header).
pub fn esp_room(x: &XfrmState, mtu: u32) -> u32 {
    let (head, block, icv) = esp_parts(x);
    (mtu.saturating_sub(head + icv) & !(block - 1)).saturating_sub(2)
}

/// (outer header (with NAT-T's UDP) + ESP header + IV, cipher block rounded up to 4, ICV) of
/// an SA.
fn esp_parts(x: &XfrmState) -> (u32, u32, u32) {
    let outer = match (x.mode.to_string().as_str(), ip(&x.dst)) {
        ("tunnel", Some(IpAddr::V6(_))) => 40,
        ("tunnel", _) => 20,
        _ => 0,
    } + if x.encap.is_some() { 8 } else { 0 }; // NAT-T's UDP header
    let (iv, block, icv) = if let Some(a) = &x.aead {
        (8, 4, a.icv_bits.unwrap_or(128) / 8)
    } else {
        let enc = x.enc.as_ref().map(|e| e.name.as_str()).unwrap_or("");
        let (iv, block) = if enc.starts_with("cbc(") {
            (16, 16)
        } else if enc.contains("ctr") {
            (8, 4)
        } else {
            (0, 4)
        };
        let icv = x
            .auth
            .as_ref()
            .map_or(0, |a| a.trunc_bits.unwrap_or(96) / 8);
        (iv, block, icv)
    };
    (outer + 8 + iv, block, icv)
}

/// Pods' MTU (their own route's, else their eth0's) against the node's egress MTU minus
/// the overhead of the SA their traffic is encrypted with.
pub fn mtu(v: &NodeView, pods: &[PodState], out: &mut Vec<Finding>) {
    let lxcs = v.st.pod_veths().count();
    if v.out_sas.is_empty() {
        return;
    }
    if pods.is_empty() {
        if lxcs > 0 {
            out.push(Finding::new(
                v.name,
                Severity::Info,
                "mtu-pods-unread",
                format!(
                    "{lxcs} pod veth(s) here, but no pod netns could be read: pods' MTU not checked"
                ),
            ));
        }
        return;
    }
    for fam in [Family::V4, Family::V6] {
        let Some((room, how, sa)) = esp_room_for(v, fam) else {
            continue;
        };
        for p in pods {
            let Some((pod_mtu, evidence)) = pod_mtu(p, fam) else {
                continue;
            };
            if pod_mtu > room {
                out.push(
                    Finding::new(
                        v.name,
                        Severity::Fail,
                        "mtu-esp-overhead",
                        format!("pod {} sends {} packets up to {pod_mtu} bytes, but only {room} fit once encrypted: large packets are dropped (TCP stalls)", p.name, fam.label()),
                    )
                    .evidence(evidence)
                    .evidence(how.clone())
                    .evidence(ipfmt::sa(v.sa(sa)))
                    .object(Object::Sa(sa))
                    .cause("the pod's MTU ignores the IPsec overhead")
                    .fix(format!("set the pod route MTU to at most {room} (Cilium sets it when encryption is enabled at startup: restart the pods after enabling IPsec; or set the `mtu` option)")),
                );
            }
        }
    }
}

/// The smallest room an out SA carrying pod traffic of `fam` (its selector's family) leaves
/// on its egress link, with how it comes about and the SA: an IPv6 SA's outer header is 40
/// bytes, an IPv4 one's 20.
fn esp_room_for(v: &NodeView, fam: Family) -> Option<(u32, String, usize)> {
    let mut room: Option<(u32, String, usize)> = None;
    for &i in &v.out_sas {
        let x = v.sa(i);
        if x.selector.src.family() != fam {
            continue;
        }
        let Some(peer) = ip(&x.dst) else { continue };
        let Some(dev) = v.dev_towards(&peer) else {
            continue;
        };
        let Some(mtu) = v.st.link_by_name(dev).and_then(|l| l.mtu) else {
            continue;
        };
        let r = esp_room(x, mtu);
        if room.as_ref().is_none_or(|(m, _, _)| r < *m) {
            room = Some((
                r,
                format!(
                    "{dev} mtu {mtu} leaves {r} bytes for the {} packet inside ESP ({}, {} mode)",
                    fam.label(),
                    x.algorithms(),
                    x.mode
                ),
                i,
            ));
        }
    }
    room
}

/// The largest packet of `fam` a pod sends: its default route's MTU of that family, else its
/// eth0's; None when the pod has neither a default route nor an address of that family.
fn pod_mtu(p: &PodState, fam: Family) -> Option<(u32, String)> {
    let links = &p.state.links;
    let eth = links
        .iter()
        .find(|l| l.name == "eth0")
        .or(links.iter().find(|l| l.name != "lo"));
    let default = p
        .state
        .routes
        .iter()
        .find(|r| r.table.id == 254 && r.dst.is_none() && r.family == fam);
    let has_address = links.iter().filter(|l| l.name != "lo").any(|l| {
        l.addresses.iter().any(|a| {
            a.address.parse::<IpAddr>().is_ok_and(|a| {
                Family::of(&a) == fam
                    && !a.is_loopback()
                    && !matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
            })
        })
    });
    if default.is_none() && !has_address {
        return None;
    }
    match (default.and_then(|r| r.mtu), eth.and_then(|l| l.mtu)) {
        (Some(m), _) => Some((m, format!("{}: route {}", p.name, ipfmt::route(default?)))),
        (None, Some(m)) => Some((
            m,
            format!(
                "{}: {} mtu {m} (its {} default route sets none)",
                p.name,
                eth.map_or("eth0", |l| l.name.as_str()),
                fam.label()
            ),
        )),
        _ => None,
    }
}

/// Node addresses and pod CIDRs of every node given (and of every node Kubernetes lists, when
/// it answered); objects towards anything else are stale. Without Kubernetes, one node given
/// says nothing of which addresses are nodes: no check; and a recording may hold some of a
/// cluster's nodes, so there an object towards a peer it does not hold is unknown, not stale
/// (`unrecorded_peers`), while one towards a recorded node that is no longer its is stale.
pub fn stale(
    views: &[NodeView],
    me: usize,
    kube: Option<&[KubeNode]>,
    given: Given,
    out: &mut Vec<Finding>,
) -> Vec<Prefix> {
    let v = &views[me];
    if views.len() < 2 && kube.is_none() {
        return vec![];
    }
    let against = match kube {
        Some(k) => format!("{} or the {} given", cluster::describe(k), views.len()),
        None => format!("the {} nodes given", views.len()),
    };
    let nodes = kube.unwrap_or(&[]);
    let node_addr =
        |a: &IpAddr| views.iter().any(|w| w.is_local(a)) || cluster::node_of(nodes, a).is_some();
    let pod_cidr = |p: &Prefix| {
        views
            .iter()
            .any(|w| w.pod_cidrs.iter().any(|c| c.contains(&p.addr)))
            || cluster::node_of_cidr(nodes, p).is_some()
    };
    // The peer an object is for, when the nodes judged cannot be all there are: objects
    // towards a peer outside them are set aside as unrecorded, not judged.
    let unknown_peer = |peer: Option<IpAddr>| {
        (kube.is_none() && given == Given::Recording)
            .then_some(peer)
            .flatten()
            .filter(|p| !p.is_unspecified() && !node_addr(p))
    };
    let mut unrecorded = UnrecordedPeers::default();
    let fix_if = if kube.is_some() {
        "no node has it"
    } else {
        "if every node was given"
    };
    for &i in &v.out_sas {
        let x = v.sa(i);
        if let Some(d) = ip(&x.dst)
            && !node_addr(&d)
        {
            if unknown_peer(Some(d)).is_some() {
                unrecorded.add(d, format!("out SA spi {:#x}", x.spi), Object::Sa(i));
                continue;
            }
            out.push(
                v.sa_finding(
                    i,
                    Severity::Warn,
                    "stale-sa",
                    format!("out SA to {d}, which is no address of {against}"),
                )
                .cause("the node it was for was deleted (or re-addressed) while the agent was down")
                .fix(format!("{fix_if}: ip xfrm state delete src {} dst {d} proto esp spi {:#x}{} (restarting the agent also cleans up)", x.src, x.spi, x.mark.map_or(String::new(), |m| format!(" mark {:#x} mask {:#x}", m.value, m.mask)))),
            );
        }
    }
    let mut stale = Vec::new();
    for (i, p) in v.st.xfrm_policies.iter().enumerate() {
        if p.dir != PolicyDir::Out || is_block(p) || p.selector.dst.is_any() {
            continue;
        }
        let to_nowhere = p
            .templates
            .iter()
            .any(|t| ip(&t.dst).is_some_and(|d| !d.is_unspecified() && !node_addr(&d)));
        // Transport mode protects traffic to the node itself: its selector is a node address.
        if to_nowhere || !(pod_cidr(&p.selector.dst) || node_addr(&p.selector.dst.addr)) {
            if let Some(peer) = unknown_peer(policy_peer(p)) {
                let what = format!("out policy to {}", p.selector.dst);
                unrecorded.add(peer, what, Object::Policy(i));
                continue;
            }
            stale.push(p.selector.dst);
            out.push(
                Finding::new(
                    v.name,
                    Severity::Warn,
                    "stale-policy",
                    format!(
                        "out policy to {}, which is no pod CIDR or node of {against}",
                        p.selector.dst
                    ),
                )
                .evidence(ipfmt::policy(p))
                .object(Object::Policy(i))
                .cause("the node it was for was deleted while the agent was down")
                .fix(format!(
                    "{fix_if}: ip xfrm policy delete dir out src {} dst {}{}",
                    p.selector.src,
                    p.selector.dst,
                    p.mark.map_or(String::new(), |m| format!(
                        " mark {:#x} mask {:#x}",
                        m.value, m.mask
                    ))
                )),
            );
        }
    }
    for (i, r) in v.st.routes.iter().enumerate() {
        if r.table.id != 200 || r.kind != RouteKind::Unicast {
            continue;
        }
        let Some(d) = r.dst else { continue };
        if !pod_cidr(&d) {
            // The route's peer is the one its CIDR's out policy sends to.
            let peer = v
                .policies(PolicyDir::Out)
                .iter()
                .map(|&p| &v.st.xfrm_policies[p])
                .find(|p| !is_block(p) && p.selector.dst.contains(&d.addr))
                .and_then(policy_peer);
            if let Some(peer) = unknown_peer(peer) {
                unrecorded.add(peer, format!("table-200 route to {d}"), Object::Route(i));
                continue;
            }
            stale.push(d);
            out.push(
                Finding::new(
                    v.name,
                    Severity::Warn,
                    "stale-route",
                    format!("IPsec route to {d}, which is no pod CIDR of {against}"),
                )
                .evidence(ipfmt::route(r))
                .object(Object::Route(i))
                .cause("the node it was for was deleted while the agent was down")
                .fix(format!("{fix_if}: ip route delete {d} table 200")),
            );
        }
    }
    unrecorded.report(v.name, views, out);
    stale
}

/// The node an out policy sends to: its tunnel template's destination, else (transport mode)
/// the address its selector protects.
fn policy_peer(p: &XfrmPolicy) -> Option<IpAddr> {
    p.templates
        .iter()
        .find_map(|t| ip(&t.dst).filter(|d| !d.is_unspecified()))
        .or_else(|| (p.selector.dst.len == p.selector.dst.max_len()).then_some(p.selector.dst.addr))
}

/// Objects towards peers a recording does not hold, by peer, in the order found.
#[derive(Default)]
struct UnrecordedPeers(Vec<(IpAddr, Vec<(String, Object)>)>);

impl UnrecordedPeers {
    fn add(&mut self, peer: IpAddr, what: String, object: Object) {
        match self.0.iter_mut().find(|(p, _)| *p == peer) {
            Some((_, objects)) => objects.push((what, object)),
            None => self.0.push((peer, vec![(what, object)])),
        }
    }

    /// One info per peer: what points at it, and that it is not judged.
    fn report(self, node: &str, views: &[NodeView], out: &mut Vec<Finding>) {
        let held: Vec<&str> = views.iter().map(|w| w.name).collect();
        for (peer, objects) in self.0 {
            let mut whats: Vec<&str> = objects.iter().map(|(w, _)| w.as_str()).collect();
            let last = whats.pop().unwrap_or_default();
            let whats = match whats.is_empty() {
                true => last.to_string(),
                false => format!("{} and {last}", whats.join(", ")),
            };
            let are = if objects.len() > 1 { "are" } else { "is" };
            out.push(
                Finding::new(
                    node,
                    Severity::Info,
                    "peer-not-recorded",
                    format!(
                        "{peer} is not in the recording (it holds {}), so its {whats} {are} not judged stale",
                        held.join(", ")
                    ),
                )
                .object(objects[0].1.clone()),
            );
        }
    }
}

pub fn catch_all(v: &NodeView, out: &mut Vec<Finding>) {
    if v.out_sas.is_empty() {
        return;
    }
    let found = v.st.xfrm_policies.iter().position(|p| {
        p.dir == PolicyDir::Out
            && is_block(p)
            && p.selector.dst.is_any()
            && p.mark.is_some_and(|m| m.value & 0x0f00 == 0x0e00)
    });
    out.push(match found {
        Some(i) => Finding::new(
            v.name,
            Severity::Ok,
            "catch-all",
            "fail-closed: encrypt-marked traffic without a per-node policy is dropped, not sent in plaintext".into(),
        )
        .evidence(ipfmt::policy(&v.st.xfrm_policies[i]))
        .object(Object::Policy(i)),
        None => Finding::new(
            v.name,
            Severity::Info,
            "catch-all",
            "no catch-all block policy: traffic to a node without its out policy leaves in plaintext (Cilium < 1.14 installs none)".into(),
        ),
    });
}

/// Marks of SAs and policies against every other user of the mark bits: iptables rules that
/// match or set marks (kube-proxy's 0x4000 masquerade, 0x8000 drop) and ip rules.
pub fn mark_collisions(v: &NodeView, out: &mut Vec<Finding>) {
    let mut used: Vec<(Mark, String, Object)> = Vec::new();
    for &i in &v.out_sas {
        if let Some(m) = v.sa(i).mark {
            used.push((m, ipfmt::sa(v.sa(i)), Object::Sa(i)));
        }
    }
    for (i, p) in v.st.xfrm_policies.iter().enumerate() {
        if p.dir == PolicyDir::Out
            && !is_block(p)
            && let Some(m) = p.mark
        {
            used.push((m, ipfmt::policy(p), Object::Policy(i)));
        }
    }
    used.sort_by_key(|(m, _, _)| (m.value, m.mask));
    used.dedup_by_key(|(m, _, _)| (m.value, m.mask));
    let cilium = |chain: &str, line: &str| {
        chain.starts_with("CILIUM") || line.contains("hopscope-lab") || line.contains("cilium")
    };
    if let Some(nf) = v.nf {
        for r in nf.rules.iter().filter(|r| !cilium(&r.chain, &r.line)) {
            for (m, obj, o) in &used {
                let hit = r.matches.iter().any(|c| match &c.what {
                    // The other user tests bits the IPsec mark sets: its verdict on IPsec
                    // traffic depends on the key id (negated or not).
                    NfCond::Mark(x) => x.mask & m.value & m.mask != 0,
                    _ => false,
                });
                if hit {
                    out.push(
                        Finding::new(
                            v.name,
                            Severity::Warn,
                            "mark-collision",
                            format!("traffic with the IPsec mark {:#x} also matches an iptables rule of another user of the mark bits", m.value),
                        )
                        .evidence(format!("{} ({})", r.line, r.table))
                        .evidence(obj.clone())
                        .object(o.clone())
                        .cause("the key id bits of Cilium's mark (0xf000) overlap kube-proxy's 0x4000 (masquerade) / 0x8000 (drop): keys 4–15 set them")
                        .fix("use IPsec key ids 1–3 (the key index in cilium-ipsec-keys), or run Cilium's kube-proxy replacement"),
                    );
                }
            }
            if let NfTarget::SetMark { value, mask } = r.target
                && used.iter().any(|(m, _, _)| m.mask & mask != 0)
                && r.table == "mangle"
            {
                out.push(
                    Finding::new(
                        v.name,
                        Severity::Info,
                        "mark-shared",
                        format!("an iptables rule sets mark bits {value:#x}/{mask:#x} that IPsec marks also use"),
                    )
                    .evidence(format!("{} ({})", r.line, r.table)),
                );
            }
        }
    }
    for (i, rule) in v.st.rules.iter().enumerate() {
        let Some(fm) = rule.fwmark else { continue };
        if rule.table.as_ref().is_some_and(|t| t.id == 200) {
            continue;
        }
        for (m, obj, _) in &used {
            if fm.mask & m.mask != 0 && fm.matches(m.value) {
                out.push(
                    Finding::new(
                        v.name,
                        Severity::Warn,
                        "mark-collision",
                        format!(
                            "traffic with the IPsec mark {:#x} also matches ip rule {}",
                            m.value, rule.priority
                        ),
                    )
                    .evidence(ipfmt::rule(rule))
                    .evidence(obj.clone())
                    .object(Object::Rule(i))
                    .cause("another user of the mark bits routes on the same bits")
                    .fix("give the other user bits outside 0xff00, or change the IPsec key id"),
                );
            }
        }
    }
}

/// Cilium's IPsec routing table: encrypt-marked pod traffic is looked up in table 200 (an ip
/// rule on the encrypt mark). For every remote pod CIDR an out policy encrypts to, table 200
/// must route it (to cilium_host): a route that drops (unreachable, blackhole, prohibit)
/// drops the traffic before it is encrypted; no route at all, where the table routes the
/// other peers, lets it fall through to the main table (another device and MTU than Cilium
/// set up).
pub fn table_200(v: &NodeView, out: &mut Vec<Finding>) {
    // Rules and routes are per family: an IPv4 rule into table 200 says nothing of IPv6
    // traffic (a node may encrypt IPv6 without routing it through the table).
    let rule_of = |fam: Family| {
        v.st.rules.iter().position(|r| {
            r.family == fam
                && r.table.as_ref().is_some_and(|t| t.id == 200)
                && r.fwmark
                    .is_some_and(|m| m.mask & 0x0f00 == 0x0f00 && m.value & 0x0f00 == 0x0e00)
        })
    };
    let routes: Vec<usize> = (0..v.st.routes.len())
        .filter(|&i| v.st.routes[i].table.id == 200)
        .collect();
    let unicast_peers = |fam: Family| {
        routes
            .iter()
            .filter(|&&i| {
                let r = &v.st.routes[i];
                r.family == fam
                    && r.kind == RouteKind::Unicast
                    && r.dst.is_some_and(|d| !v.pod_cidrs.contains(&d))
            })
            .count()
    };
    for remote in &v.remotes {
        let super::node::Source::Policy(p) = remote.from else {
            continue;
        };
        let Some(rule) = rule_of(remote.cidr.family()) else {
            continue;
        };
        let unicast_peers = unicast_peers(remote.cidr.family());
        let best = routes
            .iter()
            .copied()
            .filter(|&i| {
                let r = &v.st.routes[i];
                r.family == remote.cidr.family()
                    && r.dst
                        .is_none_or(|d| d.contains(&remote.cidr.addr) && d.len <= remote.cidr.len)
            })
            .max_by_key(|&i| v.st.routes[i].dst.map_or(0, |d| d.len));
        let policy = ipfmt::policy(&v.st.xfrm_policies[p]);
        let rule_text = ipfmt::rule(&v.st.rules[rule]);
        match best {
            Some(i) if v.st.routes[i].kind.refuses() => {
                let r = &v.st.routes[i];
                out.push(
                    Finding::new(
                        v.name,
                        Severity::Fail,
                        "route-200-drop",
                        format!("pod traffic to {} is encrypt-marked and looked up in table 200, where `{}` drops it before it is encrypted", remote.cidr, ipfmt::route(r)),
                    )
                    .evidence(ipfmt::route(r))
                    .evidence(format!("ip rule {rule_text}"))
                    .evidence(format!("out policy {policy}"))
                    .object(Object::Route(i))
                    .cause(format!("an `{}` route in Cilium's IPsec table for a remote pod CIDR (the pod gets ICMP {}; no xfrm_stat counter moves)", r.kind, match r.kind { RouteKind::Unreachable => "host unreachable", RouteKind::Prohibit => "administratively prohibited", _ => "nothing back" }))
                    .fix(format!("ip route replace {} dev cilium_host table 200 (restarting the Cilium agent re-installs its routes)", remote.cidr)),
                );
            }
            None if unicast_peers > 0 => out.push(
                Finding::new(
                    v.name,
                    Severity::Warn,
                    "route-200-missing",
                    format!("table 200 routes {unicast_peers} remote pod CIDR(s) but not {}: its encrypt-marked traffic falls through to the main table", remote.cidr),
                )
                .evidence(format!("ip rule {rule_text}"))
                .evidence(format!("out policy {policy}"))
                .object(Object::Policy(p))
                .cause("the agent did not (re-)install this node's route in table 200 (a restart race, a node added while it was down)")
                .fix(format!("ip route add {} dev cilium_host table 200 (or restart the Cilium agent)", remote.cidr)),
            ),
            _ => {}
        }
    }
}
