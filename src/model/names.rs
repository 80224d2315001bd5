//! Names for addresses: which pod, node, service or Cilium interface an IP belongs to, as
//! Kubernetes says (filled by `crate::kube`, empty without a cluster). Plain data, serde both
//! ways, no I/O.
//!
//! Views print names through [`Names::annotate`] (`10.0.1.52 (default/net)`): the table is
//! handed to them as a value (an empty one names nothing), never read from a global.

use super::Prefix;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What kind of object an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameKind {
    Pod,
    Service,
    /// A node's InternalIP/ExternalIP (or a hostNetwork pod's address).
    Node,
    /// Cilium's router address on a node (`cilium_host`, CiliumInternalIP).
    CiliumRouter,
    /// Cilium's health endpoint on a node.
    CiliumHealth,
    /// Cilium's ingress address on a node.
    CiliumIngress,
}

/// The name of one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    /// What is printed next to the address: `default/net`, `worker2`, `worker cilium_host`.
    pub label: String,
    pub kind: NameKind,
    /// The object it was read from, in full: `pod default/net`,
    /// `node cilium-ipsec-native-routing-worker2`, `ciliumnode …-worker`.
    pub object: String,
}

/// A node's pod CIDR: addresses in it without a name of their own are that node's pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodCidr {
    pub prefix: Prefix,
    /// The node's short label (`worker`).
    pub node: String,
}

/// What a CiliumNode object says about a node's IPsec.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiliumNodeInfo {
    /// Full node name.
    pub node: String,
    /// Short label (`worker`).
    pub label: String,
    pub router_ips: Vec<IpAddr>,
    pub health_ips: Vec<IpAddr>,
    pub pod_cidrs: Vec<Prefix>,
    /// `spec.encryption.key`: the IPsec key index the node announces (Cilium's SPI).
    pub encryption_key: Option<u32>,
}

/// IP → name, plus pod CIDRs per node. Empty when there is no cluster to ask.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Names {
    pub addresses: BTreeMap<IpAddr, Name>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<PodCidr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cilium_nodes: Vec<CiliumNodeInfo>,
}

impl Names {
    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.pod_cidrs.is_empty()
    }

    /// The name of exactly this address.
    pub fn get(&self, ip: &IpAddr) -> Option<&Name> {
        self.addresses.get(ip)
    }

    /// The label for `ip`: its own name, else `NODE pods` when it is in a node's pod CIDR.
    pub fn label(&self, ip: &IpAddr) -> Option<String> {
        if let Some(n) = self.addresses.get(ip) {
            return Some(n.label.clone());
        }
        self.cidr_of(ip).map(|c| format!("{} pods", c.node))
    }

    fn cidr_of(&self, ip: &IpAddr) -> Option<&PodCidr> {
        self.pod_cidrs
            .iter()
            .filter(|c| c.prefix.contains(ip))
            .max_by_key(|c| c.prefix.len)
    }

    /// The label for something printed as an address: `10.0.1.52`, `10.0.1.52/32` (a host)
    /// or `10.0.1.0/24` (a pod CIDR, or a prefix inside one). `None` for anything else
    /// (`default`, `0.0.0.0/0`, a prefix wider than any pod CIDR).
    pub fn label_str(&self, text: &str) -> Option<String> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return self.label(&ip);
        }
        let p: Prefix = text.parse().ok()?;
        // An interface address (`172.18.0.3/16`) is named by its address; a host prefix by
        // its address or pod CIDR.
        if let Some(n) = self.addresses.get(&p.addr) {
            return Some(n.label.clone());
        }
        if p.len == p.max_len() {
            return self.label(&p.addr);
        }
        self.pod_cidrs
            .iter()
            .find(|c| c.prefix.len <= p.len && c.prefix.contains(&p.addr))
            .map(|c| format!("{} pods", c.node))
    }

    /// `10.0.1.52 (default/net)`; the text unchanged when there is no name for it.
    pub fn annotate(&self, text: &str) -> String {
        match self.label_str(text) {
            Some(l) => format!("{text} ({l})"),
            None => text.to_string(),
        }
    }

    /// Free text (a trace hop's policy, SA or route) with each named address or prefix in it
    /// followed by its name: `10.0.1.0/24 → 10.0.2.0/24` → `10.0.1.0/24 (worker pods) →
    /// 10.0.2.0/24 (worker2 pods)`. Unnamed words, and the text without a table, are kept.
    pub fn annotate_words(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        let address_char = |c: char| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '/');
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(address_char) {
            let len = rest[start..]
                .find(|c: char| !address_char(c))
                .unwrap_or(rest.len() - start);
            // A word ends before a trailing `:` or `.` of the sentence (`via 10.0.0.1:`).
            let word = rest[start..start + len].trim_end_matches([':', '.']);
            let end = start + word.len();
            out.push_str(&rest[..end]);
            // Not the tail of a name (`if7`, `eth0`): only a word of its own is an address.
            let alone = !rest[..start].ends_with(|c: char| c.is_alphanumeric() || c == '_');
            if alone && let Some(label) = self.label_str(word) {
                out.push_str(&format!(" ({label})"));
            }
            // Past the word, or past the punctuation when there was no word.
            let next = if word.is_empty() { start + len } else { end };
            out.push_str(&rest[end..next]);
            rest = &rest[next..];
        }
        out.push_str(rest);
        out
    }

    /// The named addresses that occur in `text` (any run of address characters that parses
    /// as an IP), with their labels: the `names` of a trace.
    pub fn in_text(&self, text: &str) -> BTreeMap<IpAddr, String> {
        let mut out = BTreeMap::new();
        if self.is_empty() {
            return out;
        }
        for word in text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':')) {
            let word = word.trim_matches(|c| c == '.' || c == ':');
            if let Ok(ip) = word.parse::<IpAddr>()
                && let Some(l) = self.label(&ip)
            {
                out.insert(ip, l);
            }
        }
        out
    }

    /// Every address with a name of this kind, for resolving `pod/NS/NAME` style arguments.
    pub fn of_kind(&self, kind: NameKind) -> impl Iterator<Item = (&IpAddr, &Name)> {
        self.addresses.iter().filter(move |(_, n)| n.kind == kind)
    }
}

/// Run `f` with `value` in the thread-local `slot`; the previous value is put back afterwards,
/// even if `f` panics. One rendering's context for row functions that take no such argument.
pub fn scoped<V: 'static, T>(
    slot: &'static std::thread::LocalKey<RefCell<Option<V>>>,
    value: V,
    f: impl FnOnce() -> T,
) -> T {
    struct Restore<V: 'static> {
        slot: &'static std::thread::LocalKey<RefCell<Option<V>>>,
        prev: Option<V>,
    }
    impl<V: 'static> Drop for Restore<V> {
        fn drop(&mut self) {
            let prev = self.prev.take();
            self.slot.with(|c| *c.borrow_mut() = prev);
        }
    }
    let _restore = Restore {
        slot,
        prev: slot.with(|c| c.borrow_mut().replace(value)),
    };
    f()
}

/// The short labels of a cluster's nodes: the prefix that all names share up to a `-` is
/// dropped (kind's `cilium-ipsec-native-routing-worker2` → `worker2`). Labels stay unique:
/// only a common prefix is removed, and only when every name goes on past it.
pub fn short_node_labels<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, String> {
    let all: Vec<&str> = names.into_iter().collect();
    let mut cut = 0;
    if all.len() >= 2 {
        let first = all[0];
        let common = all
            .iter()
            .map(|n| {
                first
                    .bytes()
                    .zip(n.bytes())
                    .take_while(|(a, b)| a == b)
                    .count()
            })
            .min()
            .unwrap_or(0);
        // Cut after the last '-' inside the common part, if every name goes on after it.
        if let Some(dash) = first.as_bytes()[..common].iter().rposition(|&b| b == b'-') {
            cut = dash + 1;
        }
    }
    all.iter()
        .map(|n| {
            let short = if cut > 0 && n.len() > cut {
                &n[cut..]
            } else {
                n
            };
            (n.to_string(), short.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Names {
        let mut n = Names::default();
        n.addresses.insert(
            "10.0.1.52".parse().unwrap(),
            Name {
                label: "default/net".into(),
                kind: NameKind::Pod,
                object: "pod default/net".into(),
            },
        );
        n.addresses.insert(
            "10.0.1.138".parse().unwrap(),
            Name {
                label: "worker cilium_host".into(),
                kind: NameKind::CiliumRouter,
                object: "ciliumnode cilium-ipsec-native-routing-worker".into(),
            },
        );
        n.pod_cidrs.push(PodCidr {
            prefix: "10.0.1.0/24".parse().unwrap(),
            node: "worker".into(),
        });
        n
    }

    #[test]
    fn labels_addresses_hosts_and_pod_cidrs() {
        let n = table();
        assert_eq!(n.annotate("10.0.1.52"), "10.0.1.52 (default/net)");
        assert_eq!(n.annotate("10.0.1.52/32"), "10.0.1.52/32 (default/net)");
        assert_eq!(n.annotate("10.0.1.0/24"), "10.0.1.0/24 (worker pods)");
        assert_eq!(n.annotate("10.0.1.77"), "10.0.1.77 (worker pods)");
        assert_eq!(n.annotate("10.0.0.0/8"), "10.0.0.0/8");
        assert_eq!(
            n.annotate("10.0.1.138/32"),
            "10.0.1.138/32 (worker cilium_host)"
        );
        assert_eq!(n.annotate("10.0.1.52/16"), "10.0.1.52/16 (default/net)");
        assert_eq!(n.annotate("0.0.0.0/0"), "0.0.0.0/0");
        assert_eq!(n.annotate("default"), "default");
        assert_eq!(n.annotate("172.18.0.9"), "172.18.0.9");
    }

    #[test]
    fn finds_named_addresses_in_text() {
        let n = table();
        let found = n.in_text("10.0.1.52 → 10.0.0.249 icmp; ESP 10.0.1.138 → 10.0.0.40: spi 0x3");
        let got: Vec<String> = found.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            got,
            ["10.0.1.52=default/net", "10.0.1.138=worker cilium_host"]
        );
    }

    #[test]
    fn names_follow_the_addresses_of_free_text() {
        let n = table();
        assert_eq!(
            n.annotate_words("policy out 10.0.1.0/24 → 10.0.0.0/8 dev eth0 (index 9)"),
            "policy out 10.0.1.0/24 (worker pods) → 10.0.0.0/8 dev eth0 (index 9)"
        );
        assert_eq!(
            n.annotate_words("SA 10.0.1.138 → 10.0.0.40 spi 0x00000003 reqid 1, via 10.0.1.52."),
            "SA 10.0.1.138 (worker cilium_host) → 10.0.0.40 spi 0x00000003 reqid 1, via 10.0.1.52 (default/net)."
        );
        // An address glued to a name is not one; no table, no change.
        assert_eq!(n.annotate_words("if10.0.1.52"), "if10.0.1.52");
        let plain = "policy out 10.0.1.0/24 → 10.0.0.0/8";
        assert_eq!(Names::default().annotate_words(plain), plain);
    }

    #[test]
    fn short_node_labels_drop_the_shared_prefix_only() {
        let l = short_node_labels([
            "cilium-ipsec-native-routing-control-plane",
            "cilium-ipsec-native-routing-worker",
            "cilium-ipsec-native-routing-worker2",
        ]);
        assert_eq!(l["cilium-ipsec-native-routing-worker2"], "worker2");
        assert_eq!(
            l["cilium-ipsec-native-routing-control-plane"],
            "control-plane"
        );
        assert_eq!(l["cilium-ipsec-native-routing-worker"], "worker");
        // One node, or names without a shared dash-prefix: unchanged.
        assert_eq!(
            short_node_labels(["kind-worker"])["kind-worker"],
            "kind-worker"
        );
        let l = short_node_labels(["node-a", "nodes-b"]);
        assert_eq!(l["node-a"], "node-a");
        // A name that is the shared prefix itself is kept whole.
        let l = short_node_labels(["k-a-x", "k-a-y", "k-a-"]);
        assert_eq!(l["k-a-x"], "x");
        assert_eq!(l["k-a-"], "k-a-");
    }
}
