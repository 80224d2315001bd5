//! The pods behind a node: each of the node's lxc veths names its peer's netns by an nsid of
//! the node's netns, and the node is asked (RTM_GETNSID) which nsid each named netns
//! (`/run/netns`) has. The doctor reads those netns for the pod-MTU check; `record` records
//! them beside their node. One lookup for both, so they find the same pods.

use super::Target;
use crate::model::NodeState;
use anyhow::Result;
use std::collections::BTreeMap;

/// For each node (its target and state as read), the names of the netns behind its lxc
/// veths, in veth order, each once; a netns that is itself one of the nodes is never a pod.
/// A node whose nsids cannot be asked gets the error (its pods stay unknown).
pub fn behind(nodes: &[(&Target, &NodeState)]) -> Vec<Result<Vec<String>>> {
    if !nodes.iter().any(|(_, st)| st.pod_veths().next().is_some()) {
        return nodes.iter().map(|_| Ok(vec![])).collect();
    }
    let node_names: Vec<&str> = nodes
        .iter()
        .filter_map(|(_, st)| st.node.netns.name.as_deref())
        .collect();
    let files: Vec<(String, std::fs::File)> = super::netns::list_named()
        .into_iter()
        .filter(|n| !node_names.contains(&n.as_str()))
        .filter_map(|n| {
            let f = std::fs::File::open(format!("{}/{n}", super::netns::NETNS_RUN_DIR)).ok()?;
            Some((n, f))
        })
        .collect();
    nodes
        .iter()
        .map(|(t, st)| {
            if st.pod_veths().next().is_none() {
                return Ok(vec![]);
            }
            let ids = nsids(t, &files)?;
            let mut names: Vec<String> = Vec::new();
            for nsid in st.pod_veths().map(|(_, _, id)| id) {
                if let Some(n) = ids.get(&nsid)
                    && !names.contains(n)
                {
                    names.push(n.clone());
                }
            }
            Ok(names)
        })
        .collect()
}

/// The nodes given, then the pods behind their lxc veths (as the live doctor finds
/// them) that are not given already, and how many those are: `doctor --from` checks
/// the pods' MTU without the user naming their netns.
pub fn with_pods(mut targets: Vec<Target>) -> (Vec<Target>, usize) {
    let states: Vec<Option<NodeState>> = targets.iter().map(|t| super::collect(t).ok()).collect();
    let read: Vec<_> = targets
        .iter()
        .zip(&states)
        .filter_map(|(t, s)| Some((t, s.as_ref()?)))
        .collect();
    let mut pods: Vec<Target> = Vec::new();
    for name in behind(&read).into_iter().flatten().flatten() {
        let t = Target::Netns(name);
        if !targets.contains(&t) && !pods.contains(&t) {
            pods.push(t);
        }
    }
    let n = pods.len();
    targets.extend(pods);
    (targets, n)
}

/// nsid (as the target netns numbers them) → netns name, for the named netns given.
fn nsids(target: &Target, files: &[(String, std::fs::File)]) -> Result<BTreeMap<i32, String>> {
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
    use std::os::fd::AsRawFd;
    let opened = super::netns::open(target)?;
    super::netns::run_in(opened.file.as_ref(), || -> Result<BTreeMap<i32, String>> {
        let mut sock = super::netlink::NlSocket::open(netlink_sys::protocols::NETLINK_ROUTE)
            .map_err(|e| anyhow::anyhow!("netlink: {e:?}"))?;
        let mut out = BTreeMap::new();
        for (name, f) in files {
            let mut req = NsidMessage::default();
            req.attributes.push(NsidAttribute::Fd(f.as_raw_fd() as u32));
            let mut id = None;
            let _ = sock.get(RouteNetlinkMessage::GetNsId(req), |m| {
                if let RouteNetlinkMessage::NewNsId(m) = m {
                    for a in m.attributes {
                        if let NsidAttribute::Id(i) = a {
                            id = Some(i);
                        }
                    }
                }
            });
            if let Some(i) = id.filter(|i| *i >= 0) {
                out.insert(i, name.clone());
            }
        }
        Ok(out)
    })?
}
