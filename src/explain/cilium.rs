//! Cilium's conventions for marks, routing tables and rule priorities (datapath constants
//! from Cilium's bpf/lib and linux_defaults), and which of Cilium's IPsec mark layouts a node
//! uses. Pure: marks and SAs in, readings out.
//!
//! Cilium has changed where it puts things in the 32-bit mark, so one reading is not enough:
//! - [`IpsecLayout::KeyOnly`] (≤ 1.13.0): out SAs/policies `0x<K>e00/0xff00` (K = key id = SPI),
//!   one inbound SA `0xd00/0xf00` for all peers;
//! - [`IpsecLayout::NodeIdOut`] (1.13.1+, backported to 1.11.15 and 1.12.8): out
//!   `0x<NODEID>_<K>e00/0xffffff00` (the peer's node ID in bits 16–31), one out SA per remote
//!   node, still one shared inbound SA;
//! - [`IpsecLayout::NodeIdPerSource`] (newer): in addition, inbound SAs per source node,
//!   `0x<NODEID>0d00/0xffff0f00` with output-mark `0xd00/0xffffff00`.
//!
//! Node IDs are allocated by each agent for the nodes it knows (they are node-local), so an ID
//! is named by the SA that carries it: the peer address of that SA, then that address's name.
//!
//! For the doctor and the panes: [`read_mark`] says what one mark means and under which layout;
//! [`node_layout`] says which layout a node's SAs follow (and why), names its node IDs and counts
//! its SAs per remote node and family against what that layout expects.

use crate::model::names::NameKind;
use crate::model::{Family, Mark, Names, XfrmProto, XfrmState};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// The "magic" in bits 8–11 of skb->mark.
const MAGIC_MASK: u32 = 0x0f00;
/// Key id (the SPI) in bits 12–15 on IPsec marks.
const KEY_MASK: u32 = 0xf000;
/// Node id in the high 16 bits of IPsec marks from Cilium 1.13.1 on.
const NODE_ID_MASK: u32 = 0xffff_0000;
const ENCRYPT: u32 = 0x0e00;
const DECRYPT: u32 = 0x0d00;

fn magic_name(magic: u32) -> Option<&'static str> {
    Some(match magic {
        0x0200 => "to-proxy",
        0x0300 => "snat-done",
        0x0a00 => "proxy-ingress",
        0x0b00 => "proxy-egress",
        0x0c00 => "host",
        DECRYPT => "decrypt",
        ENCRYPT => "encrypt",
        0x0f00 => "identity",
        _ => return None,
    })
}

/// `0x3e00/0xff00` → `encrypt, key 3`; `0xd00/0xf00` → `decrypt`; None when not Cilium's.
pub fn mark_meaning(m: &Mark) -> Option<String> {
    if m.mask & MAGIC_MASK != MAGIC_MASK {
        return None;
    }
    let mut parts = vec![magic_name(m.value & MAGIC_MASK)?.to_string()];
    let ipsec = matches!(m.value & MAGIC_MASK, DECRYPT | ENCRYPT);
    if ipsec && m.mask & KEY_MASK == KEY_MASK && m.value & KEY_MASK != 0 {
        parts.push(format!("key {}", (m.value & KEY_MASK) >> 12));
    }
    if ipsec && m.mask & NODE_ID_MASK == NODE_ID_MASK && m.value & NODE_ID_MASK != 0 {
        parts.push(node_id_text((m.value >> 16) as u16));
    }
    Some(parts.join(", "))
}

/// This node's names for the node IDs in its marks, as [`NodeLayout::id_labels`] gives them.
pub type NodeIdLabels = BTreeMap<u16, String>;

thread_local! {
    static NODE_IDS: RefCell<Option<Arc<NodeIdLabels>>> = const { RefCell::new(None) };
}

/// Run `f` with `ids` as the node-ID names [`mark_meaning`] prints (node IDs are node-local:
/// one node's table per rendering), the way `model::names::with_names` scopes addresses.
pub fn with_node_ids<T>(ids: Arc<NodeIdLabels>, f: impl FnOnce() -> T) -> T {
    crate::model::names::scoped(&NODE_IDS, ids, f)
}

/// `node 0x2 (worker2)` with a name in scope, `node 0x2 (172.18.0.4)` with only the SA's peer,
/// `node 0x2` without a table.
fn node_id_text(id: u16) -> String {
    NODE_IDS.with(|t| match t.borrow().as_ref().and_then(|t| t.get(&id)) {
        Some(label) => format!("node {id:#x} ({label})"),
        None => format!("node {id:#x}"),
    })
}

/// Meaning of a plain skb mark value (no mask), e.g. one given with `trace --mark`.
pub fn mark_value_meaning(value: u32) -> Option<String> {
    mark_meaning(&Mark {
        value,
        mask: 0xffff_ffff,
    })
}

pub fn table_meaning(id: u32) -> Option<&'static str> {
    Some(match id {
        200 => "cilium ipsec",
        201 => "cilium wireguard",
        202 => "cilium vtep",
        2004 => "cilium to-proxy",
        2005 => "cilium from-proxy",
        _ => return None,
    })
}

/// Where Cilium puts the key and the node ID in its IPsec marks (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IpsecLayout {
    KeyOnly,
    NodeIdOut,
    NodeIdPerSource,
}

impl IpsecLayout {
    pub fn describe(self) -> &'static str {
        match self {
            IpsecLayout::KeyOnly => "Cilium ≤ 1.13.0 (key in the mark, no node IDs)",
            IpsecLayout::NodeIdOut => {
                "Cilium ≥ 1.13.1 (node ID in the out marks, one inbound SA for all peers)"
            }
            IpsecLayout::NodeIdPerSource => {
                "Cilium with inbound SAs per source node (node IDs in out and in marks)"
            }
        }
    }

    /// SAs a node should hold per remote node and IP family while `keys` keys are installed
    /// (1 normally, 2 during a key rotation).
    pub fn expected(self, keys: u32) -> ExpectedSas {
        let per_source = self == IpsecLayout::NodeIdPerSource;
        ExpectedSas {
            out_per_remote: keys,
            in_per_remote: if per_source { keys } else { 0 },
            in_shared: if per_source { 0 } else { keys },
        }
    }
}

impl fmt::Display for IpsecLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// What a layout expects per remote node and family: "2 per remote node, 4 during a key
/// rotation" for per-source inbound SAs; "1, 2 during a rotation" (+ the shared inbound SA)
/// before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExpectedSas {
    pub out_per_remote: u32,
    pub in_per_remote: u32,
    /// Inbound SAs for all peers at once (src 0.0.0.0 / ::), per family.
    pub in_shared: u32,
}

/// Which layouts a mark fits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MarkLayout {
    /// Only this layout writes a mark like this one.
    Cilium { layout: IpsecLayout },
    /// Several of Cilium's layouts write exactly this mark (e.g. `0xd00/0xf00`).
    CiliumAny { layouts: Vec<IpsecLayout> },
    /// Not one of Cilium's IPsec marks (another Cilium mark, a VTI key, another program's).
    NotCiliumIpsec,
}

/// One mark read: its Cilium meaning, the layout assumed and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarkReading {
    /// Cilium's name for the magic (`encrypt`, `decrypt`, `to-proxy`…), if it has one.
    pub role: Option<&'static str>,
    /// The key id (SPI) the mark selects.
    pub key: Option<u8>,
    /// The peer's node ID (bits 16–31), when the mask covers them.
    pub node_id: Option<u16>,
    pub layout: MarkLayout,
    /// Why this layout: which bits of the mask decided.
    pub why: String,
}

/// Read one SA/policy mark (value/mask) by Cilium's layouts. Never fails: a mark that is not
/// Cilium's says so, with the reason.
pub fn read_mark(m: &Mark) -> MarkReading {
    let magic = m.value & MAGIC_MASK;
    let covers = |bits: u32| m.mask & bits == bits;
    let role = covers(MAGIC_MASK).then(|| magic_name(magic)).flatten();
    let not = |why: String| MarkReading {
        role,
        key: None,
        node_id: None,
        layout: MarkLayout::NotCiliumIpsec,
        why,
    };
    if !covers(MAGIC_MASK) {
        return not(format!(
            "mask {:#x} does not cover Cilium's magic bits 0xf00",
            m.mask
        ));
    }
    if !matches!(magic, ENCRYPT | DECRYPT) {
        return not(match role {
            Some(r) => format!("magic {magic:#x} is Cilium's {r} mark, not an IPsec one"),
            None => format!("magic {magic:#x} is none of Cilium's"),
        });
    }
    let key = covers(KEY_MASK).then_some(((m.value & KEY_MASK) >> 12) as u8);
    let node_id = covers(NODE_ID_MASK).then_some((m.value >> 16) as u16);
    let (layout, why) = match (magic, covers(NODE_ID_MASK)) {
        (ENCRYPT, true) => (
            MarkLayout::Cilium {
                layout: IpsecLayout::NodeIdOut,
            },
            format!(
                "encrypt mark whose mask {:#x} covers the node-ID bits 0xffff0000 (Cilium ≥ 1.13.1; \
                 the per-source layout writes the same out marks)",
                m.mask
            ),
        ),
        (ENCRYPT, false) => (
            MarkLayout::Cilium {
                layout: IpsecLayout::KeyOnly,
            },
            format!(
                "encrypt mark whose mask {:#x} has no node-ID bits (Cilium ≤ 1.13.0)",
                m.mask
            ),
        ),
        (_, true) => (
            MarkLayout::Cilium {
                layout: IpsecLayout::NodeIdPerSource,
            },
            format!(
                "decrypt mark whose mask {:#x} covers the node-ID bits: an inbound SA per source node",
                m.mask
            ),
        ),
        (_, false) => (
            MarkLayout::CiliumAny {
                layouts: vec![IpsecLayout::KeyOnly, IpsecLayout::NodeIdOut],
            },
            format!(
                "decrypt mark without node-ID bits (mask {:#x}): one inbound SA for all peers, \
                 as before per-source inbound SAs",
                m.mask
            ),
        ),
    };
    MarkReading {
        role,
        key,
        node_id: node_id.filter(|n| *n != 0),
        layout,
        why,
    }
}

/// The SAs a node holds for one remote node and family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerSas {
    /// The remote node's address in its SAs (out: dst; per-source in: src).
    pub peer: IpAddr,
    pub family: Family,
    /// This node's ID for the remote node, from the marks (None on the key-only layout).
    pub node_id: Option<u16>,
    /// The peer's node name (Kubernetes Node / CiliumNode), when names are known.
    pub name: Option<String>,
    /// Where the name came from: `10.0.0.40 is the CiliumInternalIP of ciliumnode worker2`.
    pub name_from: Option<String>,
    /// SPIs (key ids) in use towards / from that node.
    pub spis: Vec<u32>,
    pub out: u32,
    pub inbound: u32,
    pub expected_out: u32,
    pub expected_in: u32,
}

impl PeerSas {
    pub fn ok(&self) -> bool {
        self.out == self.expected_out && self.inbound == self.expected_in
    }
    /// `node 0x2 (worker2)`, `node 0x2 (172.18.0.4)`, `worker2`, `172.18.0.4`: as marks say it.
    pub fn label(&self) -> String {
        match (&self.name, self.node_id) {
            (Some(n), Some(id)) => format!("node {id:#x} ({n})"),
            (Some(n), None) => n.clone(),
            (None, Some(id)) => format!("node {id:#x} ({})", self.peer),
            (None, None) => self.peer.to_string(),
        }
    }
}

/// Which layout a node's SAs follow, and what that means for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeLayout {
    pub layout: IpsecLayout,
    /// The evidence: how many SAs of which kind decided.
    pub why: String,
    /// Keys (SPIs) installed: 2 during a rotation.
    pub keys: u32,
    pub expected: ExpectedSas,
    /// Per family: inbound SAs shared by all peers.
    pub shared_in: BTreeMap<Family, u32>,
    /// Out SAs written in an older layout than the node's (stale states after an upgrade,
    /// cilium#24780): their count.
    pub stale: u32,
    pub peers: Vec<PeerSas>,
}

impl NodeLayout {
    /// This node's name for a node ID: the peer name or address its SAs carry.
    pub fn node_name(&self, id: u16) -> Option<String> {
        self.peers
            .iter()
            .find(|p| p.node_id == Some(id))
            .map(PeerSas::label)
    }

    /// Node ID → what marks print beside it: the node's name where one family's peer address
    /// has one, else the address (the v4 one first).
    pub fn id_labels(&self) -> NodeIdLabels {
        let mut out = NodeIdLabels::new();
        for p in &self.peers {
            let Some(id) = p.node_id else { continue };
            match (&p.name, out.contains_key(&id)) {
                (Some(n), _) => {
                    out.insert(id, n.clone());
                }
                (None, false) => {
                    out.insert(id, p.peer.to_string());
                }
                (None, true) => {}
            }
        }
        out
    }

    /// The peers whose SA count is not what the layout expects for their keys.
    pub fn miscounted(&self) -> impl Iterator<Item = &PeerSas> {
        self.peers.iter().filter(|p| !p.ok())
    }

    /// `1 out SA per remote node and family per key (2 during a key rotation), plus 1 inbound
    /// SA per remote node per key` — what this layout expects, in words.
    pub fn expectation(&self) -> String {
        let shared = match self.layout {
            IpsecLayout::NodeIdPerSource => "plus 1 inbound SA per remote node per key",
            _ => "plus 1 inbound SA per family per key shared by all peers",
        };
        format!(
            "1 out SA per remote node and family per key (2 during a key rotation), {shared}; keys in use: {}",
            self.keys
        )
    }
}

/// The node an address names, and where that came from: a Node's own address, or one of the
/// Cilium addresses a CiliumNode announces (its router `cilium_host`, health, ingress).
fn node_of(names: &Names, addr: &IpAddr) -> Option<(String, String)> {
    let n = names.get(addr)?;
    let what = match n.kind {
        NameKind::Node => "a node address (InternalIP/ExternalIP)",
        NameKind::CiliumRouter => "the CiliumInternalIP (cilium_host)",
        NameKind::CiliumHealth => "the health address",
        NameKind::CiliumIngress => "the ingress address",
        NameKind::Pod | NameKind::Service => return None,
    };
    let label = match n.kind {
        NameKind::Node => n.label.clone(),
        _ => names
            .cilium_nodes
            .iter()
            .find(|c| n.object == format!("ciliumnode {}", c.node))
            .map_or_else(|| n.label.clone(), |c| c.label.clone()),
    };
    Some((label, format!("{addr} is {what} of {}", n.object)))
}

/// The node-ID names for one node's SAs, named from `names` where it has them, else by the
/// SAs' peer addresses.
pub fn node_id_labels(states: &[XfrmState], names: &Names) -> Arc<NodeIdLabels> {
    Arc::new(
        node_layout(states, names)
            .map(|l| l.id_labels())
            .unwrap_or_default(),
    )
}

fn ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// Read a node's Cilium IPsec layout from its SAs. None when no SA carries a Cilium IPsec mark
/// (not Cilium, or not IPsec): the other layouts (xfrm interfaces, VTI, plain policy-based
/// IPsec) are not Cilium's and have no per-node expectation.
pub fn node_layout(states: &[XfrmState], names: &Names) -> Option<NodeLayout> {
    let readings: Vec<(&XfrmState, MarkReading)> = states
        .iter()
        .filter(|s| s.proto == XfrmProto::Esp)
        .filter_map(|s| Some((s, read_mark(s.mark.as_ref()?))))
        .filter(|(_, r)| r.layout != MarkLayout::NotCiliumIpsec)
        .collect();
    if readings.is_empty() {
        return None;
    }
    let count = |l: IpsecLayout, role: &str| {
        readings
            .iter()
            .filter(|(_, r)| r.role == Some(role) && r.layout == MarkLayout::Cilium { layout: l })
            .count() as u32
    };
    let (per_source, node_out, key_out) = (
        count(IpsecLayout::NodeIdPerSource, "decrypt"),
        count(IpsecLayout::NodeIdOut, "encrypt"),
        count(IpsecLayout::KeyOnly, "encrypt"),
    );
    let (layout, why) = if per_source > 0 {
        (
            IpsecLayout::NodeIdPerSource,
            format!(
                "{per_source} inbound SA(s) with a node ID in the mark (mask 0xffff0f00), {node_out} out SA(s) with node IDs"
            ),
        )
    } else if node_out > 0 {
        (
            IpsecLayout::NodeIdOut,
            format!(
                "{node_out} out SA(s) with a node ID in the mark (mask 0xffffff00), inbound SAs without"
            ),
        )
    } else {
        (
            IpsecLayout::KeyOnly,
            format!("{key_out} out SA(s) with key-only marks (mask 0xff00), no node IDs"),
        )
    };
    let stale = if layout == IpsecLayout::KeyOnly {
        0
    } else {
        key_out
    };
    let mut spis: Vec<u32> = readings.iter().map(|(s, _)| s.spi).collect();
    spis.sort_unstable();
    spis.dedup();
    let keys = (spis.len() as u32).clamp(1, 2);
    let expected = layout.expected(keys);

    // Group per remote node: by node ID where the mark has one, else by address.
    let mut peers: BTreeMap<(Family, Option<u16>, Option<IpAddr>), PeerSas> = BTreeMap::new();
    let mut shared_in: BTreeMap<Family, u32> = BTreeMap::new();
    for (s, r) in &readings {
        let out = r.role == Some("encrypt");
        let addr = if out { ip(&s.dst) } else { ip(&s.src) };
        let Some(addr) = addr else { continue };
        let family = Family::of(&addr);
        if !out && (addr.is_unspecified() || r.node_id.is_none()) {
            *shared_in.entry(family).or_default() += 1;
            continue;
        }
        let key_only = r.layout
            == MarkLayout::Cilium {
                layout: IpsecLayout::KeyOnly,
            };
        if out && key_only && layout != IpsecLayout::KeyOnly {
            continue; // stale, counted above
        }
        let key = match r.node_id {
            Some(id) => (family, Some(id), None),
            None => (family, None, Some(addr)),
        };
        let p = peers.entry(key).or_insert_with(|| PeerSas {
            peer: addr,
            family,
            node_id: r.node_id,
            name: None,
            name_from: None,
            spis: vec![],
            out: 0,
            inbound: 0,
            expected_out: expected.out_per_remote,
            expected_in: expected.in_per_remote,
        });
        if out {
            p.out += 1;
            p.peer = addr; // the out SA's destination names the node best
        } else {
            p.inbound += 1;
        }
        if !p.spis.contains(&s.spi) {
            p.spis.push(s.spi);
            p.spis.sort_unstable();
        }
    }
    let mut peers: Vec<PeerSas> = peers.into_values().collect();
    for p in &mut peers {
        // Each key (SPI) towards a node wants its own SAs: a peer that has not (yet) got the
        // rotation's second key is judged by the keys it has.
        let own = layout.expected((p.spis.len() as u32).clamp(1, 2));
        (p.expected_out, p.expected_in) = (own.out_per_remote, own.in_per_remote);
        if let Some((label, from)) = node_of(names, &p.peer) {
            let via = match (p.node_id, p.out > 0) {
                (Some(id), true) => format!(
                    "node ID {id:#x} is in the out SA marks towards {}; ",
                    p.peer
                ),
                (Some(id), false) => format!(
                    "node ID {id:#x} is in the inbound SA marks from {}; ",
                    p.peer
                ),
                (None, _) => String::new(),
            };
            p.name = Some(label);
            p.name_from = Some(format!("{via}{from} (Kubernetes)"));
        }
    }
    Some(NodeLayout {
        layout,
        why,
        keys,
        expected,
        shared_in,
        stale,
        peers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::seed_worker;
    use crate::model::names::{Name, NameKind};

    fn m(value: u32, mask: u32) -> Mark {
        Mark { value, mask }
    }

    #[test]
    fn seed_marks_are_named() {
        assert_eq!(
            mark_meaning(&m(0x3e00, 0xff00)).as_deref(),
            Some("encrypt, key 3")
        );
        assert_eq!(mark_meaning(&m(0xe00, 0xf00)).as_deref(), Some("encrypt"));
        assert_eq!(mark_meaning(&m(0xd00, 0xf00)).as_deref(), Some("decrypt"));
        assert_eq!(mark_meaning(&m(0x200, 0xf00)).as_deref(), Some("to-proxy"));
        assert_eq!(
            mark_meaning(&m(0xa00, 0xf00)).as_deref(),
            Some("proxy-ingress")
        );
        assert_eq!(mark_meaning(&m(0, 0xf00)), None);
        assert_eq!(mark_meaning(&m(0x1, 0xff)), None);
    }

    #[test]
    fn cilium_1_14_node_id_layout() {
        assert_eq!(
            mark_meaning(&m(0x002a_3e00, 0xffff_ff00)).as_deref(),
            Some("encrypt, key 3, node 0x2a")
        );
    }

    #[test]
    fn tables() {
        assert_eq!(table_meaning(200), Some("cilium ipsec"));
        assert_eq!(table_meaning(254), None);
    }

    #[test]
    fn each_layout_is_read_from_its_mask() {
        let r = read_mark(&m(0x3e00, 0xff00));
        assert_eq!((r.role, r.key, r.node_id), (Some("encrypt"), Some(3), None));
        assert_eq!(
            r.layout,
            MarkLayout::Cilium {
                layout: IpsecLayout::KeyOnly
            }
        );
        assert!(r.why.contains("no node-ID bits"), "{}", r.why);

        let r = read_mark(&m(0x0002_3e00, 0xffff_ff00));
        assert_eq!((r.key, r.node_id), (Some(3), Some(2)));
        assert_eq!(
            r.layout,
            MarkLayout::Cilium {
                layout: IpsecLayout::NodeIdOut
            }
        );

        let r = read_mark(&m(0x0003_0d00, 0xffff_0f00));
        assert_eq!((r.role, r.key, r.node_id), (Some("decrypt"), None, Some(3)));
        assert_eq!(
            r.layout,
            MarkLayout::Cilium {
                layout: IpsecLayout::NodeIdPerSource
            }
        );

        let r = read_mark(&m(0xd00, 0xf00));
        assert!(matches!(r.layout, MarkLayout::CiliumAny { .. }), "{r:?}");

        for (mk, why) in [
            (m(42, 0xffff_ffff), "magic 0x0 is none"),
            (m(0x200, 0xf00), "to-proxy mark, not an IPsec one"),
            (m(0x1, 0xff), "does not cover"),
        ] {
            let r = read_mark(&mk);
            assert_eq!(r.layout, MarkLayout::NotCiliumIpsec);
            assert!(r.why.contains(why), "{mk}: {}", r.why);
        }
    }

    #[test]
    fn expected_counts_per_layout_and_rotation() {
        let e = IpsecLayout::NodeIdPerSource.expected(1);
        assert_eq!((e.out_per_remote, e.in_per_remote, e.in_shared), (1, 1, 0));
        let e = IpsecLayout::NodeIdPerSource.expected(2);
        assert_eq!(e.out_per_remote + e.in_per_remote, 4, "4 during a rotation");
        let e = IpsecLayout::KeyOnly.expected(2);
        assert_eq!((e.out_per_remote, e.in_per_remote, e.in_shared), (2, 0, 2));
    }

    #[test]
    fn seed_node_is_key_only_with_one_out_sa_per_peer() {
        let st = seed_worker();
        let l = node_layout(&st.xfrm_states, &Names::default()).unwrap();
        assert_eq!(l.layout, IpsecLayout::KeyOnly);
        assert_eq!(l.peers.len(), 2);
        assert!(l.peers.iter().all(PeerSas::ok), "{:?}", l.peers);
        assert_eq!(l.shared_in.get(&Family::V4), Some(&1));
        assert_eq!(l.stale, 0);
    }

    /// A node of the per-source layout with node IDs 2 (worker2) and 3, one key, and one peer
    /// (ID 3) that lost its inbound SA.
    #[test]
    fn per_source_layout_counts_and_names_node_ids() {
        let mut st = seed_worker();
        let tmpl = st.xfrm_states[0].clone();
        let sa = |src: &str, dst: &str, mark: Mark| {
            let mut s = tmpl.clone();
            (s.src, s.dst, s.mark) = (src.into(), dst.into(), Some(mark));
            s
        };
        st.xfrm_states = vec![
            sa("10.0.1.138", "10.0.0.40", m(0x0002_3e00, 0xffff_ff00)),
            sa("10.0.0.40", "10.0.1.138", m(0x0002_0d00, 0xffff_0f00)),
            sa("10.0.1.138", "10.0.2.52", m(0x0003_3e00, 0xffff_ff00)),
            // left over from before the upgrade: key-only out SA
            sa("10.0.1.138", "10.0.2.52", m(0x3e00, 0xff00)),
        ];
        let mut names = Names::default();
        names.addresses.insert(
            "10.0.0.40".parse().unwrap(),
            Name {
                label: "worker2 cilium_host".into(),
                kind: NameKind::CiliumRouter,
                object: "ciliumnode worker2".into(),
            },
        );
        let l = node_layout(&st.xfrm_states, &names).unwrap();
        assert_eq!(l.layout, IpsecLayout::NodeIdPerSource, "{}", l.why);
        assert_eq!(l.stale, 1);
        assert_eq!(l.peers.len(), 2);
        let p2 = l.peers.iter().find(|p| p.node_id == Some(2)).unwrap();
        assert!(p2.ok());
        assert_eq!(p2.label(), "node 0x2 (worker2 cilium_host)");
        let p3 = l.peers.iter().find(|p| p.node_id == Some(3)).unwrap();
        assert_eq!((p3.out, p3.inbound, p3.expected_in), (1, 0, 1));
        assert!(!p3.ok());
        assert_eq!(l.node_name(3).as_deref(), Some("node 0x3 (10.0.2.52)"));
    }
}
