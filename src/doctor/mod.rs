//! `hopscope doctor`: what is broken on an IPsec node, which object is wrong, and how to fix
//! it. A pure judgement of node states handed in by the command (or the TUI): it re-runs the
//! kernel's XFRM lookups over each node's own SAD/SPD for the traffic the node must carry
//! (`traffic`, `lookup`), explains every xfrm_stat counter that rose in the window with the
//! lookup that fails that way, runs the static checks (`checks`) and pairs nodes' SAs (same
//! SPI, same key by keyed hash). No I/O here.

pub(crate) mod checks;
pub mod cluster;
pub(crate) mod finding;
pub(crate) mod ipfmt;
pub(crate) mod lookup;
pub(crate) mod node;
pub(crate) mod traffic;
mod vti;

pub use finding::{CounterRise, Finding, Object, Report, Severity};

use crate::model::{Names, Netfilter, NodeState, XfrmState};
use node::NodeView;
use std::net::IpAddr;
use traffic::Certainty;

/// A pod's network namespace, read through its lxc veth on the node.
#[derive(Debug, Clone)]
pub struct PodState {
    pub name: String,
    pub state: NodeState,
}

/// Packets seen on a node in the window, summed by (interface, direction, addresses, SPI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub iface: String,
    pub inbound: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// ESP: its SPI.
    pub spi: Option<u32>,
    /// ESP in UDP (NAT-T).
    pub udp_encap: bool,
    pub count: u64,
}

/// One node as the command read it.
pub struct NodeInput<'a> {
    pub name: String,
    /// The state at the end of the window (or the only reading).
    pub state: &'a NodeState,
    /// The state at the start of the window: counters that rose are explained.
    pub before: Option<&'a NodeState>,
    pub netfilter: Option<&'a Netfilter>,
    pub pods: &'a [PodState],
    pub seen: &'a [Seen],
}

/// A keyed hash of SA keys (HMAC-SHA256 under a key of the caller's, random per run), so
/// nodes' keys can be compared and shown as hashes without the key ever being printed.
pub struct KeyHasher {
    secret: Vec<u8>,
}

impl KeyHasher {
    pub fn new(secret: Vec<u8>) -> KeyHasher {
        KeyHasher { secret }
    }

    /// Eight hex digits of HMAC(secret, algorithm names and key bytes).
    pub fn of(&self, x: &XfrmState) -> String {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.secret)
            .expect("HMAC takes any key length");
        for a in [&x.aead, &x.enc, &x.auth].into_iter().flatten() {
            mac.update(a.name.as_bytes());
            mac.update(&[0]);
            mac.update(a.key.expose());
            mac.update(&[0]);
        }
        let out = mac.finalize().into_bytes();
        out[..4].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Judge every node.
pub fn examine(nodes: &[NodeInput], keys: &KeyHasher) -> Report {
    examine_in(nodes, keys, &Names::default())
}

/// Judge every node, knowing the cluster from Kubernetes' names: its nodes (`cluster::nodes`)
/// and the nodes that the node IDs in marks stand for.
pub fn examine_in(nodes: &[NodeInput], keys: &KeyHasher, names: &Names) -> Report {
    examine_given(nodes, keys, names, Given::Read)
}

/// Where the nodes judged come from, which says what a peer outside them is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Given {
    /// Read now, each chosen by the user: with several, a peer outside them is taken for no
    /// node (the stale findings hedge their fix: "if every node was given").
    Read,
    /// The nodes a recording holds, often some of a cluster's: a peer outside them is
    /// unknown (`peer-not-recorded`), not stale.
    Recording,
}

/// Judge every node as `examine_in` does, with the nodes from `given`.
pub fn examine_given(nodes: &[NodeInput], keys: &KeyHasher, names: &Names, given: Given) -> Report {
    let kube = cluster::nodes(names);
    let views: Vec<NodeView> = nodes
        .iter()
        .map(|n| NodeView::new(&n.name, n.state, n.netfilter))
        .collect();
    let mut findings = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        // Evidence names node IDs in marks as this node knows them (node IDs are node-local).
        let ids = crate::explain::cilium::node_id_labels(&n.state.xfrm_states, names);
        findings.extend(crate::explain::cilium::with_node_ids(ids, || {
            examine_node(&views, i, n, keys, kube.as_deref(), given, names)
        }));
    }
    Report::new(nodes.iter().map(|n| n.name.clone()).collect(), findings)
}

fn examine_node(
    views: &[NodeView],
    me: usize,
    n: &NodeInput,
    keys: &KeyHasher,
    kube: Option<&[cluster::KubeNode]>,
    given: Given,
    names: &Names,
) -> Vec<Finding> {
    let v = &views[me];
    let mut out = Vec::new();
    for w in &n.state.warnings {
        out.push(
            Finding::new(
                v.name,
                Severity::Warn,
                "state-incomplete",
                format!(
                    "part of the node could not be read, so the doctor cannot say it is fine: {w}"
                ),
            )
            .fix("run as root (or with the capability named) and again"),
        );
    }
    if !v.ipsec {
        out.push(Finding::new(
            v.name,
            Severity::Info,
            "no-ipsec",
            "no XFRM SA or policy on this node: nothing of IPsec to check".into(),
        ));
        return out;
    }
    let stale = checks::stale(views, me, kube, given, &mut out);
    let problems = traffic::problems(views, me, n.seen, &stale, keys);
    checks::keys(v, &mut out);
    checks::sa_counts(v, names, &mut out);
    checks::spi_in_marks(v, &mut out);
    checks::sequence(v, &mut out);
    checks::mtu(v, n.pods, &mut out);
    checks::catch_all(v, &mut out);
    checks::table_200(v, &mut out);
    checks::mark_collisions(v, &mut out);
    vti::vti_policy_checks(v, &mut out);
    out.extend(explain_counters(v, n, problems));
    if !out.iter().any(|f| f.severity >= Severity::Warn) {
        out.push(Finding::new(
            v.name,
            Severity::Ok,
            "lookups",
            format!(
                "every flow re-run through this node's SAs and policies passes: ESP to {} inbound SA(s), pod traffic to {} remote pod CIDR(s)",
                v.in_sas.len(),
                v.remotes.len()
            ),
        ));
    }
    dedupe(&mut out);
    out
}

/// Findings of one kind past this many on a node are summed up in one.
const SAME_KIND_SHOWN: usize = 8;

/// Several flows can fail on one object: keep one finding per (id, what). A thousand peers
/// failing the same way are the first few and a count, not a thousand lines.
fn dedupe(out: &mut Vec<Finding>) {
    let mut seen = std::collections::HashSet::new();
    out.retain(|f| seen.insert((f.id, f.what.clone())));
    let mut per_id: std::collections::HashMap<&'static str, usize> = Default::default();
    // Per kind past the limit: a summary finding (its evidence: a few of the rest) and a count.
    let mut more: Vec<(Finding, usize)> = Vec::new();
    let mut kept = Vec::with_capacity(out.len().min(64));
    for f in std::mem::take(out) {
        let n = per_id.entry(f.id).or_default();
        *n += 1;
        if *n <= SAME_KIND_SHOWN {
            kept.push(f);
            continue;
        }
        match more.iter_mut().find(|(m, _)| m.id == f.id) {
            Some((m, count)) => {
                *count += 1;
                if m.evidence.len() < 3 {
                    m.evidence.push(f.what);
                }
            }
            None => {
                let mut m = Finding::new(&f.node, f.severity, f.id, String::new());
                m.evidence.push(f.what);
                more.push((m, 1));
            }
        }
    }
    for (mut m, count) in more {
        m.what = format!("… and {count} more {} findings like the ones above", m.id);
        kept.push(m);
    }
    *out = kept;
}

/// Counter deltas over the window, by name (only those that rose).
fn rises(before: &NodeState, after: &NodeState) -> Vec<(String, u64)> {
    after
        .xfrm_stats
        .iter()
        .filter_map(|(k, v)| {
            let old = before
                .xfrm_stats
                .iter()
                .find(|(n, _)| n == k)
                .map_or(0, |(_, v)| *v);
            (*v > old).then(|| (k.clone(), v - old))
        })
        .collect()
}

/// The same SA in two readings: (src, dst, proto, SPI, mark).
fn same_sa(a: &XfrmState, b: &XfrmState) -> bool {
    a.spi == b.spi && a.src == b.src && a.dst == b.dst && a.proto == b.proto && a.mark == b.mark
}

/// Attach each rising counter to the problems that raise it; say so when no lookup explains
/// a rise. Without a window, problems stand on their own and counters are noted since boot.
fn explain_counters(v: &NodeView, n: &NodeInput, problems: Vec<traffic::Problem>) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(before) = n.before else {
        for p in problems
            .into_iter()
            .filter(|p| p.certainty != Certainty::IfCounterRises)
        {
            let mut f = match p.certainty {
                Certainty::IfSent => unconfirmed(p.finding, p.counter),
                _ => p.finding,
            };
            if let Some(c) = p.counter {
                let since_boot = n
                    .state
                    .xfrm_stats
                    .iter()
                    .find(|(k, _)| k == c)
                    .map_or(0, |(_, v)| *v);
                f = f.evidence(format!(
                    "{c} = {since_boot} since boot (give --window to see it rise)"
                ));
            }
            out.push(f);
        }
        for (k, val) in &n.state.xfrm_stats {
            if *val > 0
                && !out
                    .iter()
                    .any(|f| f.evidence.iter().any(|e| e.starts_with(k.as_str())))
            {
                out.push(
                    Finding::new(
                        v.name,
                        Severity::Info,
                        "counter-since-boot",
                        format!(
                            "{k} = {val} since boot: {}",
                            crate::explain::xfrm_stat::meaning(k).unwrap_or("(unknown counter)")
                        ),
                    )
                    .object(Object::Counter(k.clone()))
                    .fix("hopscope doctor --window 5s shows whether it is rising now, and why"),
                );
            }
        }
        return out;
    };
    let rises = rises(before, n.state);
    let mut explained = std::collections::HashSet::new();
    // What arrived in the window: conditional explanations of inbound misses must be about
    // an SPI that was seen, when ESP was seen at all.
    let seen_in: Vec<(IpAddr, u32)> = n
        .seen
        .iter()
        .filter(|s| s.inbound)
        .filter_map(|s| Some((s.dst, s.spi?)))
        .collect();
    let (firm, conditional): (Vec<_>, Vec<_>) = problems
        .into_iter()
        .partition(|p| p.certainty == Certainty::Firm);
    for p in firm {
        let mut f = p.finding;
        if let Some(c) = p.counter
            && let Some((_, d)) = rises.iter().find(|(k, _)| k == c)
        {
            f = f.counter(c, *d);
            explained.insert(c.to_string());
        }
        out.push(f);
    }
    for p in conditional {
        let Some(c) = p.counter else { continue };
        // An inbound miss that rests on a mark must be about an SPI that arrived, when ESP
        // was seen at all.
        let spi_arrived = |f: &Finding| match f.object {
            Some(Object::Sa(i)) if !seen_in.is_empty() => seen_in.contains(&(
                node::ip(&n.state.xfrm_states[i].dst).unwrap_or(IpAddr::from([0, 0, 0, 0])),
                n.state.xfrm_states[i].spi,
            )),
            _ => true,
        };
        match rises.iter().find(|(k, _)| k == c) {
            Some((_, d)) if !explained.contains(c) && spi_arrived(&p.finding) => {
                out.push(p.finding.counter(c, *d))
            }
            _ if p.certainty == Certainty::IfSent => out.push(unconfirmed(p.finding, p.counter)),
            _ => {}
        }
    }
    explained.extend(
        out.iter()
            .filter_map(|f| f.counter.as_ref().map(|c| c.name.clone())),
    );
    // Per-SA counters tell which SA failed integrity or replay checks.
    for (i, x) in n.state.xfrm_states.iter().enumerate() {
        let Some(old) = before.xfrm_states.iter().find(|b| same_sa(b, x)) else {
            continue;
        };
        let failed = x
            .stats
            .integrity_failed
            .saturating_sub(old.stats.integrity_failed);
        if failed > 0 {
            let mut f = v.sa_finding(i, Severity::Fail, "in-sa-auth-failed", format!("{failed} packet(s) for SA spi {:#x} to {} failed the integrity check: the sender's key differs", x.spi, x.dst))
            .cause("the key for this SPI differs between sender and receiver")
            .fix("rotate the key with a new SPI so every node installs the same key (cilium-ipsec-keys); give every node's --netns to see which one differs");
            if let Some((_, d)) = rises.iter().find(|(k, _)| k == "XfrmInStateProtoError") {
                f = f.counter("XfrmInStateProtoError", *d);
                explained.insert("XfrmInStateProtoError".into());
            }
            out.push(f);
        }
        // Duplicates (`replay`) and numbers older than the window (`replay_window`) alike.
        let replay = (x.stats.replay.saturating_sub(old.stats.replay))
            + x.stats
                .replay_window
                .saturating_sub(old.stats.replay_window);
        if replay > 0 {
            let mut f = v.sa_finding(i, Severity::Warn, "in-sa-replay", format!("{replay} packet(s) for SA spi {:#x} to {} were outside its replay window", x.spi, x.dst))
            .cause("the sender's sequence restarted (its SA was re-created), or several senders share this SA with a replay window")
            .fix("replay-window 0 on inbound SAs shared by several senders (as Cilium does), or re-create both ends together");
            if let Some((_, d)) = rises.iter().find(|(k, _)| k == "XfrmInStateSeqError") {
                f = f.counter("XfrmInStateSeqError", *d);
                explained.insert("XfrmInStateSeqError".into());
            }
            out.push(f);
        }
    }
    for (c, d) in &rises {
        if explained.contains(c) {
            continue;
        }
        out.push(unexplained(v, c, *d));
    }
    out
}

/// A counter rose and no lookup over this node's state fails that way: say what was re-run
/// and what may be behind it, never "fine".
/// A failing lookup on traffic that may never be sent, while its counter does not rise: an
/// info, saying what would confirm it.
fn unconfirmed(f: Finding, counter: Option<&str>) -> Finding {
    let c = counter.unwrap_or("its counter");
    Finding {
        severity: Severity::Info,
        ..f
    }
    .evidence(format!(
        "whether any such traffic is sent is not known: a failure once {c} rises while it is (--window)"
    ))
}

fn unexplained(v: &NodeView, c: &str, d: u64) -> Finding {
    let meaning =
        crate::explain::xfrm_stat::meaning(c).unwrap_or("(a counter this build does not know)");
    let (checked, cause) = match c {
        "XfrmInNoStates" => (
            "every ESP this node is expected to receive finds its SA",
            "ESP for an SPI or address not in use here (a node on another key, a stale peer); capture to see its SPI",
        ),
        "XfrmInStateProtoError" => (
            "no SA's own `failed` counter rose and no peer's key differs",
            "decryption errors other than the ICV (an algorithm the kernel lacks)",
        ),
        "XfrmInStateMismatch" => (
            "encapsulation agrees with every known sender",
            "UDP-encapsulated ESP from a sender not given (NAT-T on one side only)",
        ),
        "XfrmInTmplMismatch" | "XfrmInNoPols" | "XfrmInPolBlock" => (
            "every decrypted flow between known pod CIDRs passes its in/fwd policy",
            "decrypted packets to or from addresses outside the known pod CIDRs (a deleted pod, a host-network address)",
        ),
        "XfrmOutNoStates"
        | "XfrmOutPolBlock"
        | "XfrmOutStateSeqError"
        | "XfrmOutStateModeError" => (
            "pod traffic to every known remote pod CIDR finds its policy and SA",
            "traffic to a destination hopscope does not know as a pod CIDR, or the state changed during the window",
        ),
        "XfrmFwdHdrError" => (
            "no lookup: the kernel could not decode a forwarded packet's headers for the policy lookup",
            "malformed or truncated packets being forwarded (not an SA or policy)",
        ),
        "XfrmInError" => (
            "no lookup: the kernel failed the inbound transform for a reason no object explains",
            "memory or offload errors, or decapsulated packets the stack refused",
        ),
        _ => (
            "no lookup of this node fails this way",
            "see the counter's meaning",
        ),
    };
    Finding::new(
        v.name,
        Severity::Warn,
        "counter-unexplained",
        format!("{c} rose by {d} in the window ({meaning}), and no object here explains it"),
    )
    .evidence(format!("re-run: {checked}"))
    .object(Object::Counter(c.to_string()))
    .counter(c, d)
    .cause(cause)
    .fix("capture while it rises (hopscope doctor --window 10s captures ESP) and give every node's --netns")
}
