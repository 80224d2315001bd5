//! The cluster's nodes as Kubernetes lists them (Node and CiliumNode objects, through the
//! names table of `crate::kube`): the one list that can say an address is no node at all, so
//! the stale checks name the node an object is for, or say that none is.

use crate::model::names::NameKind;
use crate::model::{Names, Prefix};
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeNode {
    /// The node's short label (`worker`).
    pub name: String,
    /// InternalIP/ExternalIP, and the CiliumNode's router address.
    pub ips: Vec<IpAddr>,
    pub pod_cidrs: Vec<Prefix>,
}

/// Every node Kubernetes lists; None when it listed none (no cluster, or it did not answer).
pub fn nodes(names: &Names) -> Option<Vec<KubeNode>> {
    let mut by: BTreeMap<String, KubeNode> = BTreeMap::new();
    fn node<'a>(by: &'a mut BTreeMap<String, KubeNode>, label: &str) -> &'a mut KubeNode {
        by.entry(label.to_string()).or_insert_with(|| KubeNode {
            name: label.to_string(),
            ..KubeNode::default()
        })
    }
    for (ip, n) in &names.addresses {
        if n.kind == NameKind::Node {
            node(&mut by, &n.label).ips.push(*ip);
        }
    }
    for c in &names.cilium_nodes {
        let k = node(&mut by, &c.label);
        k.ips.extend(c.router_ips.iter().copied());
        k.pod_cidrs.extend(c.pod_cidrs.iter().copied());
    }
    for c in &names.pod_cidrs {
        node(&mut by, &c.node).pod_cidrs.push(c.prefix);
    }
    for k in by.values_mut() {
        k.ips.sort();
        k.ips.dedup();
        k.pod_cidrs.sort();
        k.pod_cidrs.dedup();
    }
    (!by.is_empty()).then(|| by.into_values().collect())
}

/// The node an address belongs to (its own address or its router's).
pub fn node_of<'a>(nodes: &'a [KubeNode], a: &IpAddr) -> Option<&'a KubeNode> {
    nodes.iter().find(|n| n.ips.contains(a))
}

/// The node whose pod CIDR holds `p`.
pub fn node_of_cidr<'a>(nodes: &'a [KubeNode], p: &Prefix) -> Option<&'a KubeNode> {
    nodes
        .iter()
        .find(|n| n.pod_cidrs.iter().any(|c| c.contains(&p.addr)))
}

/// "3 Kubernetes nodes (control-plane, worker, worker2)", for what a stale object is measured
/// against.
pub fn describe(nodes: &[KubeNode]) -> String {
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).take(8).collect();
    let more = if nodes.len() > 8 { ", …" } else { "" };
    format!(
        "{} Kubernetes node(s) ({}{more})",
        nodes.len(),
        names.join(", ")
    )
}
