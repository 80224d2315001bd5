//! `hopscope trace`: read the nodes (live netns or recorded snapshots), predict the path.

use super::path::{Flow, Node, Trace, trace};
use crate::model::{Netfilter, NodeState};
use crate::source::{self, Target};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Source address (e.g. a pod IP: 10.0.1.52).
    pub src: IpAddr,
    /// Destination address (a pod, a node, a ClusterIP).
    pub dst: IpAddr,
    /// icmp, tcp, udp, or a protocol number.
    #[arg(long, default_value = "icmp")]
    pub proto: String,
    #[arg(long)]
    pub sport: Option<u16>,
    #[arg(long)]
    pub dport: Option<u16>,
    /// The packet's mark where it enters (hex 0x3e00 or decimal); default: worked out from the
    /// node's iptables rules, or Cilium's conventions (said as an assumption).
    #[arg(long, value_parser = parse_mark)]
    pub mark: Option<u32>,
    /// Interface the packet enters the first node on (e.g. the pod's lxc); default: worked out.
    #[arg(long)]
    pub iif: Option<String>,
    /// IP packet size in bytes, for MTU checks and ESP lengths (84 = a default ping).
    #[arg(long, default_value_t = 84)]
    pub size: u32,
    /// A recorded `snapshot --json` to use as a node (repeatable; combine with --netns).
    #[arg(long = "state", value_name = "FILE")]
    pub states: Vec<PathBuf>,
    /// Print the trace as one JSON document (schema: docs/trace.md).
    #[arg(long)]
    pub json: bool,
}

fn parse_mark(s: &str) -> Result<u32, String> {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    }
    .map_err(|e| format!("{s:?} is not a mark: {e}"))
}

fn proto_number(p: &str) -> Result<u8> {
    Ok(match p {
        "icmp" => 1,
        "tcp" => 6,
        "udp" => 17,
        "icmpv6" | "ipv6-icmp" => 58,
        n => n
            .parse()
            .with_context(|| format!("unknown protocol {n:?} (icmp, tcp, udp or a number)"))?,
    })
}

fn node_name(st: &NodeState) -> String {
    st.node
        .netns
        .name
        .clone()
        .unwrap_or_else(|| st.node.hostname.clone())
}

/// Read every node: one per `targets` entry (live) and per recorded state file.
pub fn load_nodes(targets: &[Target], states: &[PathBuf]) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    for t in targets {
        let state = source::collect(t)?;
        let netfilter = source::collect_netfilter(t)?;
        nodes.push(Node {
            name: node_name(&state),
            state,
            netfilter,
        });
    }
    for f in states {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let state: NodeState = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a `hopscope snapshot --json` document",
                f.display()
            )
        })?;
        nodes.push(Node {
            name: node_name(&state),
            state,
            netfilter: Netfilter::default(),
        });
    }
    if nodes.is_empty() {
        bail!("no node to trace on");
    }
    Ok(nodes)
}

pub fn run(args: &TraceArgs, targets: &[Target]) -> Result<Trace> {
    if args.src.is_ipv4() != args.dst.is_ipv4() {
        bail!(
            "source {} and destination {} are of different families",
            args.src,
            args.dst
        );
    }
    let flow = Flow {
        src: args.src,
        dst: args.dst,
        proto: proto_number(&args.proto)?,
        sport: args.sport,
        dport: args.dport,
        mark: args.mark,
        iif: args.iif.clone(),
        size: args.size,
    };
    let nodes = load_nodes(targets, &args.states)?;
    if let Some(iif) = &flow.iif
        && !nodes.iter().any(|n| n.state.link_by_name(iif).is_some())
    {
        let names: Vec<&str> = nodes[0]
            .state
            .links
            .iter()
            .map(|l| l.name.as_str())
            .collect();
        bail!(
            "interface {iif:?} is on none of the nodes; {} has: {}",
            nodes[0].name,
            names.join(", ")
        );
    }
    Ok(trace(&nodes, &flow))
}
