//! The predicted path of one flow, hop by hop, across one or more nodes: each hop names the
//! object that decided it. A pure function of the nodes' states (and their iptables rules).

use super::decision::Decision;
use super::stages::STAGES;
use super::xfrm::XfrmKey;
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
    pub(crate) fn nf_node(&self) -> super::netfilter::Node<'_> {
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
    /// A filter (or raw) table's decision: accepted, or a stop.
    Filter,
    Route,
    XfrmPolicy,
    XfrmState,
    Encrypt,
    /// A tunnel device's own transmit or receive: an xfrm interface's or VTI's XFRM lookup,
    /// a VXLAN encapsulation or decapsulation.
    Tunnel,
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
    /// What `decided_by` says, as data: the rule, route, policy, SA, iptables rule,
    /// conntrack entry or counter.
    pub decisions: Vec<Decision>,
    /// Further facts: the rules that did not match, policies that lost, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
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

impl Expect {
    /// Is a captured packet with key `k` this hop's packet (the SPI too, for ESP)?
    pub fn matches(&self, k: &crate::decode::packet::PacketKey) -> bool {
        k.src == self.src
            && k.dst == self.dst
            && k.proto == self.proto
            && (self.spi.is_none() || k.spi == self.spi)
    }
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
    /// What the nodes' states lacked (a missing capability, an interrupted dump): the path
    /// above was worked out without it and may be wrong.
    #[serde(default)]
    pub incomplete: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub mark: u32,
    pub size: u32,
    /// For ESP: (SPI, the packet inside).
    pub esp: Option<(u32, Box<Packet>)>,
    /// For VXLAN: (VNI, the packet inside the tunnelled frame).
    pub vxlan: Option<(u32, Box<Packet>)>,
}

impl Packet {
    /// The fields XFRM policy and state lookups look at.
    pub fn xfrm_key(&self) -> XfrmKey {
        XfrmKey {
            src: self.src,
            dst: self.dst,
            proto: self.proto,
            sport: self.sport,
            dport: self.dport,
            mark: self.mark,
            if_id: 0,
        }
    }

    fn show(&self) -> String {
        let proto = crate::model::kernel_names::ip_proto(self.proto);
        let ports = match (self.sport, self.dport) {
            (Some(s), Some(d)) if matches!(self.proto, 6 | 17 | 132) => format!(" {s}→{d}"),
            _ => String::new(),
        };
        let esp = self
            .esp
            .as_ref()
            .map(|(spi, _)| format!(" spi {spi:#x}"))
            .or_else(|| {
                self.vxlan
                    .as_ref()
                    .map(|(vni, i)| format!(" vxlan vni {vni} [{} → {}]", i.src, i.dst))
            })
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

/// An ESP payload's length around `inner` bytes (without the outer IP header): SPI+seq, IV,
/// payload + pad length + next header padded to the cipher's `block`, ICV.
pub fn esp_len(inner: u32, iv: u32, icv: u32, block: u32) -> u32 {
    8 + iv + (inner + 2).div_ceil(block) * block + icv
}

/// The fixed IP header of `addr`'s family: 20 bytes for IPv4, 40 for IPv6.
pub fn ip_header_len(addr: &IpAddr) -> u32 {
    if addr.is_ipv4() { 20 } else { 40 }
}

pub(crate) fn is_local(st: &NodeState, ip: &IpAddr) -> bool {
    st.links.iter().any(|l| {
        l.addresses
            .iter()
            .any(|a| a.address.parse::<IpAddr>().is_ok_and(|x| x == *ip))
    })
}

pub(crate) fn link<'a>(st: &'a NodeState, name: &str) -> Option<&'a Link> {
    st.link_by_name(name)
}

/// A veth whose other end lives in another netns (a pod's lxc, or a kind node's eth0).
pub(crate) fn leads_elsewhere(l: &Link) -> bool {
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

/// The walk so far: the nodes it may cross and the hops it has made.
pub(crate) struct Walk<'a> {
    pub nodes: &'a [Node],
    pub hops: Vec<Hop>,
    /// Per node, its names for the node IDs in its marks (node IDs are node-local).
    pub node_ids: Vec<std::sync::Arc<cilium::NodeIdLabels>>,
}

impl Walk<'_> {
    pub fn hop(
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
            decisions: Vec::new(),
            details,
        });
    }

    /// Say, as data, what decided the last hop.
    pub fn decided(&mut self, d: impl IntoIterator<Item = Decision>) {
        if let Some(h) = self.hops.last_mut() {
            h.decisions.extend(d);
        }
    }

    pub fn stop(
        &mut self,
        node: usize,
        pkt: &Packet,
        reason: String,
        counter: Option<&str>,
    ) -> End {
        self.hop(
            (node, Step::Stop, None),
            pkt,
            reason.clone(),
            counter.map(|c| format!("{c} rises")).unwrap_or_default(),
            vec![],
        );
        self.decided(counter.map(Decision::counter));
        End::Stopped {
            node: self.nodes[node].name.clone(),
            reason,
            counter: counter.map(str::to_string),
        }
    }
}

/// Where the walk is, and what the packet's history means for the steps ahead.
pub(crate) struct At {
    pub node: usize,
    /// The device the packet came in on; None = generated by the node itself.
    pub iif: Option<String>,
    pub pkt: Packet,
    /// Made by XFRM (the ESP outer packet): an output packet, it skips PREROUTING.
    pub generated_by_xfrm: bool,
    /// `--mark` was given: the packet enters with it and no Cilium mark is assumed.
    pub mark_given: bool,
    /// The SA that just decrypted the packet: its forward policy check comes next.
    pub decrypted_by: Option<usize>,
    /// A VTI scrubbed the decrypted packet (vti_rcv_cb's skb_scrub_packet): its own policy
    /// check finds no transform on record.
    pub secpath_scrubbed: bool,
    /// The node's own packet went through OUTPUT (IPVS's packets count as the node's own).
    pub output_done: bool,
    /// The packet's connection as conntrack sees it on this node, once looked up.
    pub ct: super::netfilter::CtView,
    /// This pass's route lookup, once made.
    pub routed: Option<Routed>,
    /// The if_id XFRM lookups run with: an xfrm interface's (sent into it, or received by an
    /// SA bound to it); 0 otherwise.
    pub if_id: u32,
    /// The bridge port the packet entered by, once the bridge (`iif`) received it.
    pub bridge_port: Option<String>,
}

/// What the route lookup chose, for the steps after it.
pub(crate) struct Routed {
    /// Index into the node's routes.
    pub route: usize,
    /// The route's type: unicast, local, ...
    pub kind: crate::model::RouteKind,
    pub dev: Option<String>,
    pub table_name: String,
    /// `table main: 10.0.0.0/24 via 10.0.1.1 dev eth0`.
    pub text: String,
}

/// What a step decides about the packet.
pub(crate) enum Go {
    /// On to the next step of this pass.
    On,
    /// The packet is a new one, or enters again (decrypted, encrypted, across a veth or the
    /// wire): start again from the first step.
    Again,
    End(End),
}

/// One kind of hop. Each pass of the packet through a node runs the steps of `STAGES` in
/// order; a layout or a netfilter hook is one more entry there.
pub(crate) type StepFn = fn(&mut Walk, &mut At) -> Go;

/// Follow `flow` through `nodes` (one per network namespace; more nodes continue the path
/// across the wire). Node IDs in marks are named by the SAs' peer addresses.
pub fn trace(nodes: &[Node], flow: &Flow) -> Trace {
    trace_named(nodes, flow, &crate::model::Names::default())
}

/// [`trace`], with node IDs in marks named by the nodes Kubernetes names (`names`).
pub fn trace_named(nodes: &[Node], flow: &Flow, names: &crate::model::Names) -> Trace {
    let mut w = Walk {
        nodes,
        hops: Vec::new(),
        node_ids: nodes
            .iter()
            .map(|n| cilium::node_id_labels(&n.state.xfrm_states, names))
            .collect(),
    };
    let end = walk(&mut w, flow);
    Trace {
        flow: flow.clone(),
        hops: w.hops,
        end,
        follow: None,
        incomplete: Vec::new(),
    }
}

/// Passes allowed before the walk calls it a loop.
const MAX_PASSES: usize = 64;

fn walk(w: &mut Walk, flow: &Flow) -> End {
    let mut at = match enter(w, flow) {
        Ok(at) => at,
        Err(end) => return end,
    };
    let mut seen = std::collections::HashSet::new();
    for _ in 0..MAX_PASSES {
        let here = (
            at.node,
            at.iif.clone(),
            at.pkt.clone(),
            at.generated_by_xfrm,
            at.output_done,
        );
        if !seen.insert(here) {
            let reason = format!(
                "routing loop: the packet comes back to {} on {} unchanged",
                w.nodes[at.node].name,
                at.iif.as_deref().unwrap_or("lo")
            );
            return w.stop(at.node, &at.pkt, reason, None);
        }
        if let Some(end) = pass(w, &mut at) {
            return end;
        }
    }
    w.stop(
        at.node,
        &Packet {
            src: flow.src,
            dst: flow.dst,
            proto: flow.proto,
            sport: None,
            dport: None,
            mark: 0,
            size: flow.size,
            esp: None,
            vxlan: None,
        },
        format!("more than {MAX_PASSES} steps: a routing loop?"),
        None,
    )
}

/// The packet through one node once: every step in order, until one ends the walk or
/// makes the packet enter again.
fn pass(w: &mut Walk, at: &mut At) -> Option<End> {
    at.routed = None;
    for stage in STAGES {
        // A stage may cross to the next node: it names marks as the node it starts on.
        let ids = w.node_ids[at.node].clone();
        match cilium::with_node_ids(ids, || stage(w, at)) {
            Go::On => {}
            Go::Again => return None,
            Go::End(end) => return Some(end),
        }
    }
    None
}

/// Where the flow enters, as the first hop.
fn enter(w: &mut Walk, flow: &Flow) -> Result<At, End> {
    let Some((node, iif, how)) = locate(w.nodes, flow) else {
        return Err(End::Stopped {
            node: w.nodes.first().map(|n| n.name.clone()).unwrap_or_default(),
            reason: format!(
                "no node owns {} (not a local address, no route to it over a pod device, not in a pod CIDR); pass --iif",
                flow.src
            ),
            counter: None,
        });
    };
    let pkt = Packet {
        src: flow.src,
        dst: flow.dst,
        proto: flow.proto,
        sport: flow.sport,
        dport: flow.dport,
        mark: flow.mark.unwrap_or(0),
        size: flow.size,
        esp: None,
        vxlan: None,
    };
    let what = match &iif {
        Some(d) => format!("enters {} on {d}", w.nodes[node].name),
        None => format!("sent by {} itself", w.nodes[node].name),
    };
    cilium::with_node_ids(w.node_ids[node].clone(), || {
        w.hop(
            (node, Step::Ingress, iif.as_deref()),
            &pkt,
            what,
            how,
            vec![],
        )
    });
    Ok(At {
        node,
        iif,
        pkt,
        generated_by_xfrm: false,
        mark_given: flow.mark.is_some(),
        decrypted_by: None,
        secpath_scrubbed: false,
        output_done: false,
        ct: Default::default(),
        routed: None,
        if_id: 0,
        bridge_port: None,
    })
}
