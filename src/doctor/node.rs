//! One node as the doctor reasons about it: which SAs go out and which come in, its own and
//! its peers' pod CIDRs, the marks its traffic carries — worked out once from the NodeState
//! (and the iptables rules, when read), so every check and every re-run lookup shares it.

use crate::model::RouteKind;
use crate::model::{
    Family, Mark, Netfilter, NodeState, PolicyAction, PolicyDir, Prefix, XfrmPolicy, XfrmState,
};
use crate::trace::netfilter::{Hook, NfPacket, run_hook};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

/// Cilium's "magic" nibble and the encrypt value in it.
const MAGIC: u32 = 0x0f00;
const ENCRYPT: u32 = 0x0e00;
/// Node-ID bits of Cilium ≥ 1.14 marks.
const NODE_ID: u32 = 0xffff_0000;

pub fn is_block(p: &XfrmPolicy) -> bool {
    p.action == PolicyAction::Block
}
pub fn ip(a: &impl ToString) -> Option<IpAddr> {
    a.to_string().parse().ok()
}
pub fn is_any(a: &impl ToString) -> bool {
    ip(a).is_none_or(|a| a.is_unspecified())
}

/// What is known of the mark a packet carries at some point: set by an iptables rule we read
/// (with that rule), or not visible in the node's state (Cilium's BPF sets it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkSeen {
    Known { mark: u32, rule: String },
    Unknown,
}

impl MarkSeen {
    pub fn known(&self) -> Option<u32> {
        match self {
            MarkSeen::Known { mark, .. } => Some(*mark),
            MarkSeen::Unknown => None,
        }
    }
}

/// A remote pod CIDR this node sends to, and how we know it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub cidr: Prefix,
    pub from: Source,
}

/// Which object told us of a remote pod CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Policy(usize),
    Route(usize),
}

impl Remote {
    pub fn why(&self, st: &NodeState) -> String {
        match self.from {
            Source::Policy(i) => {
                format!("out policy {}", super::ipfmt::policy(&st.xfrm_policies[i]))
            }
            Source::Route(i) => format!("route {}", super::ipfmt::route(&st.routes[i])),
        }
    }
}

pub struct NodeView<'a> {
    pub name: &'a str,
    pub st: &'a NodeState,
    pub nf: Option<&'a Netfilter>,
    pub local: Vec<IpAddr>,
    /// Indexes of SAs whose source is one of this node's addresses.
    pub out_sas: Vec<usize>,
    /// Indexes of SAs whose destination is one of this node's addresses.
    pub in_sas: Vec<usize>,
    /// This node's pod CIDRs (in/fwd policy destinations, routes to cilium_host).
    pub pod_cidrs: Vec<Prefix>,
    /// Pod CIDRs of other nodes this node encrypts to.
    pub remotes: Vec<Remote>,
    /// Does this node do IPsec at all (any SA or policy with a template)?
    pub ipsec: bool,
    /// SAs by destination address, policies by direction: the lookups' hash tables.
    pub sa_by_dst: HashMap<IpAddr, Vec<usize>>,
    pub pol_by_dir: HashMap<PolicyDir, Vec<usize>>,
}

impl<'a> NodeView<'a> {
    pub fn new(name: &'a str, st: &'a NodeState, nf: Option<&'a Netfilter>) -> NodeView<'a> {
        let local: Vec<IpAddr> = st
            .links
            .iter()
            .flat_map(|l| l.addresses.iter())
            .filter_map(|a| a.address.parse().ok())
            .collect();
        let is_local = |a: &Option<IpAddr>| a.is_some_and(|a| local.contains(&a));
        let sa_src: Vec<Option<IpAddr>> = st.xfrm_states.iter().map(|s| ip(&s.src)).collect();
        let sa_dst: Vec<Option<IpAddr>> = st.xfrm_states.iter().map(|s| ip(&s.dst)).collect();
        let out_sas = (0..st.xfrm_states.len())
            .filter(|&i| is_local(&sa_src[i]))
            .collect();
        let in_sas = (0..st.xfrm_states.len())
            .filter(|&i| is_local(&sa_dst[i]))
            .collect();
        let mut sa_by_dst: HashMap<IpAddr, Vec<usize>> = HashMap::new();
        for (i, d) in sa_dst.iter().enumerate() {
            if let Some(d) = d {
                sa_by_dst.entry(*d).or_default().push(i);
            }
        }
        let mut pol_by_dir: HashMap<PolicyDir, Vec<usize>> = HashMap::new();
        for (i, p) in st.xfrm_policies.iter().enumerate() {
            pol_by_dir.entry(p.dir).or_default().push(i);
        }
        let mut pod_cidrs: BTreeSet<Prefix> = BTreeSet::new();
        for p in &st.xfrm_policies {
            if matches!(p.dir, PolicyDir::In | PolicyDir::Fwd)
                && !p.selector.dst.is_any()
                && !p.templates.is_empty()
            {
                pod_cidrs.insert(p.selector.dst);
            }
            if p.dir == PolicyDir::Out && !p.selector.src.is_any() && !is_block(p) {
                pod_cidrs.insert(p.selector.src);
            }
        }
        // Cilium routes its own pod CIDR to cilium_host from the router address.
        for r in &st.routes {
            if r.table.id == 254
                && r.dev.as_ref().and_then(|d| d.name.as_deref()) == Some("cilium_host")
                && let Some(d) = r.dst
                && d.len < d.max_len()
                && r.prefsrc
                    .as_ref()
                    .is_some_and(|s| ip(s).is_some_and(|s| local.contains(&s)))
            {
                pod_cidrs.insert(d);
            }
        }
        let pod_cidrs: Vec<Prefix> = pod_cidrs.into_iter().collect();
        let ipsec =
            !st.xfrm_states.is_empty() || st.xfrm_policies.iter().any(|p| !p.templates.is_empty());
        let mut v = NodeView {
            name,
            st,
            nf,
            local,
            out_sas,
            in_sas,
            pod_cidrs,
            remotes: vec![],
            ipsec,
            sa_by_dst,
            pol_by_dir,
        };
        v.remotes = v.find_remotes();
        v
    }

    /// Indexes of the policies of one direction.
    pub fn policies(&self, d: PolicyDir) -> &[usize] {
        self.pol_by_dir.get(&d).map_or(&[], |v| v.as_slice())
    }

    pub fn is_local(&self, a: &IpAddr) -> bool {
        self.local.contains(a)
    }

    /// Is a packet to `dst` delivered to this node (its route is RTN_LOCAL in the local
    /// table: the kernel then checks the `in` policies) rather than forwarded (`fwd`)? A
    /// state without a local table (hand-built) falls back to the interfaces' addresses.
    pub fn delivered_locally(&self, dst: &IpAddr) -> bool {
        if !self.st.routes.iter().any(|r| r.table.id == 255) {
            return self.is_local(dst);
        }
        let k = crate::trace::fib::FibKey {
            src: None,
            dst: *dst,
            mark: 0,
            iif: None,
            oif: None,
            tos: 0,
        };
        crate::trace::fib::table_lookup(self.st, 255, &k)
            .is_some_and(|i| self.st.routes[i].kind == RouteKind::Local)
    }

    fn is_own_pod(&self, p: &Prefix) -> bool {
        self.pod_cidrs.iter().any(|c| c.contains(&p.addr))
    }

    /// Remote pod CIDRs: out policy destinations, and routes of Cilium's IPsec table (200).
    fn find_remotes(&self) -> Vec<Remote> {
        let mut out: Vec<Remote> = Vec::new();
        let mut have: HashSet<Prefix> = HashSet::new();
        for &i in self.policies(PolicyDir::Out) {
            let p = &self.st.xfrm_policies[i];
            if !is_block(p)
                && !p.selector.dst.is_any()
                && !self.is_own_pod(&p.selector.dst)
                && have.insert(p.selector.dst)
            {
                out.push(Remote {
                    cidr: p.selector.dst,
                    from: Source::Policy(i),
                });
            }
        }
        for (i, r) in self.st.routes.iter().enumerate() {
            if r.table.id == 200
                && r.kind == RouteKind::Unicast
                && let Some(d) = r.dst
                && !d.is_any()
                && !self.is_own_pod(&d)
                && have.insert(d)
            {
                out.push(Remote {
                    cidr: d,
                    from: Source::Route(i),
                });
            }
        }
        out
    }

    pub fn sa(&self, i: usize) -> &'a XfrmState {
        &self.st.xfrm_states[i]
    }

    /// A finding about SA `i`: it is the evidence (as `ip` prints it) and the object.
    pub fn sa_finding(
        &self,
        i: usize,
        sev: super::Severity,
        id: &'static str,
        what: String,
    ) -> super::Finding {
        super::Finding::new(self.name, sev, id, what)
            .evidence(super::ipfmt::sa(self.sa(i)))
            .object(super::Object::Sa(i))
    }

    /// A host address inside a CIDR of this family (the network address itself is in it).
    pub fn pod_addr(&self, fam: Family) -> Option<IpAddr> {
        self.pod_cidrs
            .iter()
            .find(|c| c.family() == fam)
            .map(|c| c.addr)
    }

    /// The marks pod traffic to `dst` carries where XFRM looks it up: set by an iptables rule
    /// we read (the lab's stand-in for bpf_lxc), else the marks of the allow out policies that
    /// cover it (Cilium marks with the policy's key), else every encrypt mark in use with the
    /// node-ID bits cleared.
    pub fn encrypt_marks(&self, src: IpAddr, dst: IpAddr) -> (Vec<u32>, Option<String>) {
        if let MarkSeen::Known { mark, rule } =
            self.mark_after_prerouting(src, dst, 1, self.lxc(), 0)
        {
            return (vec![mark], Some(rule));
        }
        let outs = || {
            self.policies(PolicyDir::Out)
                .iter()
                .map(|&i| &self.st.xfrm_policies[i])
        };
        let mut marks: BTreeSet<u32> = outs()
            .filter(|p| !is_block(p) && p.selector.dst.contains(&dst))
            .filter_map(|p| p.mark.map(|m| m.value))
            .collect();
        if marks.is_empty() {
            let all = outs()
                .filter(|p| !is_block(p))
                .filter_map(|p| p.mark)
                .chain(self.out_sas.iter().filter_map(|&i| self.sa(i).mark));
            marks = all
                .filter(|m| m.value & MAGIC == ENCRYPT || m.mask & MAGIC != MAGIC)
                .map(|m| m.value & !NODE_ID)
                .collect();
        }
        (marks.into_iter().collect(), None)
    }

    /// The mark after the mangle PREROUTING rules we read, when one of them set it.
    pub fn mark_after_prerouting(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        iif: Option<&str>,
        mark: u32,
    ) -> MarkSeen {
        let Some(nf) = self.nf else {
            return MarkSeen::Unknown;
        };
        let mut p = NfPacket {
            mark,
            iif: iif.map(str::to_string),
            ..NfPacket::new(src, dst, proto)
        };
        let node = crate::trace::netfilter::Node { state: self.st, nf };
        let r = run_hook(&node, Hook::Prerouting, &mut p);
        let set: Vec<&str> = r
            .decisions
            .iter()
            .filter(|d| d.table == "mangle" && d.effect.starts_with("mark "))
            .map(|d| d.rule.as_str())
            .collect();
        match set.last() {
            Some(rule) => MarkSeen::Known {
                mark: p.mark,
                rule: rule.to_string(),
            },
            None => MarkSeen::Unknown,
        }
    }

    /// The interface packets from `src` arrive on: the main-table route back to it.
    pub fn dev_towards(&self, a: &IpAddr) -> Option<&'a str> {
        self.st
            .routes
            .iter()
            .filter(|r| r.table.id == 254 && r.kind == RouteKind::Unicast)
            .filter(|r| r.dst.is_none_or(|d| d.contains(a)) && r.family == Family::of(a))
            .max_by_key(|r| r.dst.map_or(0, |d| d.len))
            .and_then(|r| r.dev.as_ref()?.name.as_deref())
    }

    /// The if_id the kernel checks a packet decrypted by `x` against the in/fwd policies with:
    /// an SA bound to an if_id hands what it decrypts to the xfrm interface of that if_id,
    /// whose if_id the policy check uses; with no such interface the packet stays on the
    /// device it came in on (if_id 0).
    pub fn received_if_id(&self, x: &XfrmState) -> u32 {
        x.if_id
            .filter(|&id| self.xfrm_interface(id).is_some())
            .unwrap_or(0)
    }

    /// The if_id pod traffic from `src` to `dst` with `mark` is looked up in XFRM with: that
    /// of the xfrm interface its route leads into (0: an ordinary device).
    pub fn sent_if_id(&self, src: IpAddr, dst: IpAddr, mark: u32) -> u32 {
        use crate::trace::fib::{FibKey, FibOutcome, lookup};
        // Most nodes have no xfrm interface: no route lookup for each of their peers.
        let xfrmi =
            |l: &crate::model::Link| matches!(l.tunnel, Some(crate::model::Tunnel::Xfrm { .. }));
        if !self.st.links.iter().any(xfrmi) {
            return 0;
        }
        let k = FibKey {
            src: Some(src),
            dst,
            mark,
            iif: self.lxc().map(str::to_string),
            oif: None,
            tos: 0,
        };
        let FibOutcome::Route { route_index, .. } = lookup(self.st, &k).outcome else {
            return 0;
        };
        let dev = self.st.routes[route_index].dev.as_ref().map(|d| d.index);
        match self.st.links.iter().find(|l| Some(l.index) == dev) {
            Some(l) => match l.tunnel {
                Some(crate::model::Tunnel::Xfrm { if_id }) => if_id,
                _ => 0,
            },
            None => 0,
        }
    }

    /// The xfrm interface with this if_id.
    fn xfrm_interface(&self, if_id: u32) -> Option<&'a crate::model::Link> {
        self.st
            .links
            .iter()
            .find(|l| l.tunnel == Some(crate::model::Tunnel::Xfrm { if_id }))
    }

    /// A pod's veth on this node (pod traffic comes in on one).
    pub fn lxc(&self) -> Option<&'a str> {
        self.st
            .links
            .iter()
            .find(|l| l.is_pod_veth())
            .map(|l| l.name.as_str())
    }

    /// The mark an ESP packet from `src` carries when the kernel looks its SA up.
    pub fn esp_arrival_mark(&self, src: IpAddr, dst: IpAddr) -> MarkSeen {
        let dev = self.dev_towards(&src);
        self.mark_after_prerouting(src, dst, 50, dev, 0)
    }
}

/// The mark with the SA's output mark (XFRMA_SET_MARK) applied, as after decryption.
pub fn with_output_mark(mark: u32, out: Option<Mark>) -> u32 {
    crate::trace::xfrm::apply_output_mark(mark, out)
}
