use super::{Link, Route, Rule, XfrmCounts, XfrmPolicy, XfrmState, XfrmStats};
use serde::{Deserialize, Serialize, Serializer, ser::SerializeMap};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsInfo {
    pub name: Option<String>,
    pub path: Option<String>,
    pub pid: Option<u32>,
}

impl NetnsInfo {
    /// How every view names the netns (the TUI's header, the snapshot's first line, a
    /// recording's node list): `netns worker`, `netns of pid 1234`, `own netns`.
    pub fn label(&self) -> String {
        match (&self.name, self.pid, &self.path) {
            (Some(n), _, _) => format!("netns {n}"),
            (None, Some(p), _) => format!("netns of pid {p}"),
            (None, None, Some(p)) => format!("netns {p}"),
            _ => "own netns".into(),
        }
    }

    /// What follows `netns ` in a label `label` made (a recording keeps labels, and is asked
    /// for a node by its netns name).
    pub fn name_in_label(label: &str) -> Option<&str> {
        label.strip_prefix("netns ")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub hostname: String,
    pub kernel: String,
    pub netns: NetnsInfo,
}

impl NodeInfo {
    /// The node's short name, as the trace, the doctor and a bundle's directories call it:
    /// its netns name, or the hostname in the host's own netns.
    pub fn name(&self) -> String {
        self.netns
            .name
            .clone()
            .unwrap_or_else(|| self.hostname.clone())
    }
}

/// Everything hopscope knows about one node (one network namespace) at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub node: NodeInfo,
    /// What could not be read and why (missing rights, interrupted dumps, ...).
    pub warnings: Vec<String>,
    /// Kinds of objects the kernel would not show (a capability missing), by their key in
    /// this document (`xfrm_states`, `xfrm_policies`): empty there means hidden, not none.
    #[serde(default)]
    pub hidden: Vec<String>,
    pub links: Vec<Link>,
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
    pub xfrm_states: Vec<XfrmState>,
    pub xfrm_policies: Vec<XfrmPolicy>,
    #[serde(serialize_with = "ordered_map", deserialize_with = "map_in_order")]
    pub xfrm_stats: XfrmStats,
    pub xfrm_counts: XfrmCounts,
}

impl NodeState {
    pub fn link(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }
    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The node's pod veths whose peer is in a netns it knows an id of: (the veth's ifindex,
    /// its peer's ifindex, the nsid of the pod's netns). The doctor counts them, the pod
    /// reader opens the netns behind them.
    pub fn pod_veths(&self) -> impl Iterator<Item = (u32, u32, i32)> + '_ {
        self.links
            .iter()
            .filter(|l| l.is_pod_veth())
            .filter_map(|l| {
                let p = l.peer.as_ref()?;
                p.netns_id.map(|id| (l.index, p.index, id))
            })
    }
}

fn ordered_map<S: Serializer>(pairs: &XfrmStats, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

fn map_in_order<'de, D: serde::Deserializer<'de>>(d: D) -> Result<XfrmStats, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = XfrmStats;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of counter names to numbers")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<XfrmStats, A::Error> {
            let mut out = Vec::new();
            while let Some(kv) = m.next_entry::<String, u64>()? {
                out.push(kv);
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}
