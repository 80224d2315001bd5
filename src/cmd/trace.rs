//! `hopscope trace`: read the nodes (live netns or recorded snapshots), predict the path.

use crate::model::{Netfilter, NodeState};
use crate::source::{self, Target};
use crate::trace::path::{Flow, Node, Trace, trace_named};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Source address (e.g. a pod IP: 10.0.1.52).
    pub src: IpAddr,
    /// Destination address (a pod, a node, a ClusterIP).
    pub dst: IpAddr,
    /// icmp, tcp, udp, or a protocol number.
    #[arg(long, default_value = "icmp")]
    pub proto: String,
    /// Source port (tcp, udp): picks the rules, policies and conntrack entries that match it.
    #[arg(long)]
    pub sport: Option<u16>,
    /// Destination port (tcp, udp): e.g. a Service port, for its DNAT rule.
    #[arg(long)]
    pub dport: Option<u16>,
    /// The packet's mark where it enters, before netfilter (hex 0x3e00 or decimal); default:
    /// 0, and where no mangle rule marks it, Cilium's conventions (said as an assumption).
    #[arg(long, value_parser = parse_mark)]
    pub mark: Option<u32>,
    /// Interface the packet enters the first node on (e.g. the pod's lxc); default: worked out.
    #[arg(long)]
    pub iif: Option<String>,
    /// IP packet size in bytes, for MTU checks and ESP lengths (default: a default ping's, 84
    /// over IPv4 and 104 over IPv6; 20 to 65535).
    #[arg(long, value_parser = clap::value_parser!(u32).range(20..=65535))]
    pub size: Option<u32>,
    /// A recorded `snapshot --json` to use as a node (repeatable; combine with --netns).
    #[arg(long = "state", value_name = "FILE")]
    pub states: Vec<PathBuf>,
    /// Trace on the nodes of a recording (`hopscope record`); with --follow, the recorded
    /// packets and counters say which hops saw the flow.
    #[arg(long, value_name = "FILE", conflicts_with = "states")]
    pub from: Option<PathBuf>,
    /// Print the trace as one JSON document (schema: docs/trace.md).
    #[arg(long)]
    pub json: bool,
    /// Capture on every device of the path for S seconds (default 5) while the flow runs, and
    /// say which hops saw it, with latencies, and which counters moved (needs live --netns).
    #[arg(long, value_name = "S", num_args = 0..=1, default_missing_value = "5",
          value_parser = crate::input::seconds)]
    pub follow: Option<std::time::Duration>,
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

/// Read every node: one per `targets` entry (live) and per recorded state file.
pub fn load_nodes(targets: &[Target], states: &[PathBuf]) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    for t in targets {
        let state = source::collect(t)?;
        let netfilter = source::collect_netfilter(t)?;
        nodes.push(Node {
            name: state.node.name(),
            state,
            netfilter,
        });
    }
    for f in states {
        let state = read_state(f)?;
        nodes.push(Node {
            name: state.node.name(),
            state,
            netfilter: Netfilter::default(),
        });
    }
    if nodes.is_empty() {
        bail!("no node to trace on");
    }
    Ok(nodes)
}

/// A recorded `snapshot --json` (bounded: `--state /dev/zero` is refused, not read forever).
fn read_state(f: &std::path::Path) -> Result<NodeState> {
    let text = crate::input::read_text(f, crate::input::limit::STATE)
        .with_context(|| format!("reading {}", f.display()))?;
    parse_state(&text).with_context(|| f.display().to_string())
}

/// A `hopscope snapshot --json` document as the state it describes.
pub fn parse_state(text: &str) -> Result<NodeState> {
    let not_snapshot = "not a `hopscope snapshot --json` document";
    let doc: serde_json::Value = serde_json::from_str(text).context(not_snapshot)?;
    crate::output::check_version(&doc, crate::output::SNAPSHOT).map_err(anyhow::Error::msg)?;
    serde_json::from_value(doc).context(not_snapshot)
}

/// What each node's state and netfilter read lacked (for a packet of this family), said
/// beside any answer computed from it.
fn incomplete(nodes: &[Node], recorded: usize, ipv6: bool) -> Vec<String> {
    let mut out: Vec<String> = nodes
        .iter()
        .flat_map(|n| {
            n.state
                .warnings
                .iter()
                .chain(crate::trace::netfilter::warnings_for(&n.netfilter, ipv6))
                .map(move |w| format!("{}: {w}", n.name))
        })
        .collect();
    for n in &nodes[nodes.len() - recorded..] {
        out.push(format!(
            "{}: a recorded --state has no iptables rules or conntrack entries: marks and NAT are assumed, not read",
            n.name
        ));
    }
    out
}

impl TraceArgs {
    /// The flow these arguments describe.
    pub fn flow(&self) -> Result<Flow> {
        if self.src.is_ipv4() != self.dst.is_ipv4() {
            bail!(
                "source {} and destination {} are of different families",
                self.src,
                self.dst
            );
        }
        Ok(Flow {
            src: self.src,
            dst: self.dst,
            // `icmp` of an IPv6 flow is ICMPv6, as ping means it
            proto: match proto_number(&self.proto)? {
                1 if self.src.is_ipv6() => 58,
                p => p,
            },
            sport: self.sport,
            dport: self.dport,
            mark: self.mark,
            iif: self.iif.clone(),
            size: self
                .size
                .unwrap_or(if self.src.is_ipv6() { 104 } else { 84 }),
        })
    }
}

/// Read the nodes, then trace with the names `names` gives once they are read (marks name the
/// node IDs with them), and follow if asked. Returns the trace and those names.
/// `sandbox`: `--follow` locks down once its captures are open (not with --no-sandbox).
pub fn run(
    args: &TraceArgs,
    targets: &[Target],
    sandbox: bool,
    names: impl FnOnce() -> Arc<crate::model::Names>,
) -> Result<(Trace, Arc<crate::model::Names>)> {
    let flow = args.flow()?;
    let recording = match &args.from {
        Some(path) => Some(crate::record::reader::Recording::open(path)?),
        None => None,
    };
    let nodes = match &recording {
        Some(rec) => crate::record::reader::trace_nodes(rec),
        None => load_nodes(targets, &args.states)?,
    };
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
    let names = names();
    let mut t = trace_named(&nodes, &flow, &names);
    // Recorded --state files have no iptables rules; a recording has what it recorded.
    let from_states = if recording.is_some() {
        0
    } else {
        args.states.len()
    };
    t.incomplete = incomplete(&nodes, from_states, flow.dst.is_ipv6());
    if let (Some(_), Some(rec)) = (args.follow, &recording) {
        t.follow = Some(crate::record::reader::follow_recorded(&t, rec, &nodes));
    } else if let Some(dur) = args.follow {
        if targets.is_empty() {
            bail!(
                "--follow captures live: give the nodes with --netns (recorded --state files cannot be followed)"
            );
        }
        t.follow = Some(follow(&t, &nodes[..targets.len()], targets, dur, sandbox)?);
    }
    Ok((t, names))
}

/// Capture on each live node's path devices for `dur`, then compare with the prediction.
/// With `sandbox`, the run locks down once the captures are open (as `capture` does), and
/// the counters are re-read by helpers started before (`reread`).
fn follow(
    t: &Trace,
    nodes: &[Node],
    targets: &[Target],
    dur: std::time::Duration,
    sandbox: bool,
) -> Result<crate::trace::live::Followed> {
    use crate::capture::{Options, Session, ctrl_c_flag};
    use crate::decode::packet::decode;
    use crate::trace::live::{Observation, counter_deltas};
    use std::time::{Duration, Instant};

    let stop = ctrl_c_flag();
    let rereads = if sandbox {
        let started = nodes.iter().zip(targets);
        let r = started.map(|(n, t)| super::reread::Reread::start(t, &n.name));
        Some(r.collect::<Result<Vec<_>>>()?)
    } else {
        None
    };
    let mut sessions = Vec::new();
    for (node, target) in nodes.iter().zip(targets) {
        let Some(devs) = super::devices(
            t.hops
                .iter()
                .filter(|h| h.node == node.name && h.expect.is_some())
                .filter_map(|h| h.dev.clone()),
        ) else {
            continue;
        };
        let opts = Options {
            ifaces: devs,
            ..Options::default()
        };
        // The node was read for the prediction: the capture checks its interfaces against it.
        let s = Session::start(target, &node.state, &opts, stop.clone())
            .with_context(|| format!("capturing on {}", node.name))?;
        sessions.push((node.name.clone(), s));
    }
    eprintln!(
        "following for {:.0} s on {} node(s): send the flow's traffic now (Ctrl-C ends early)",
        dur.as_secs_f64(),
        sessions.len()
    );
    // What it follows are anyone's packets: decode them with nothing left to misuse.
    if sandbox {
        let locked = crate::sandbox::lock_down()?;
        eprintln!("hopscope: {locked}");
    }
    let end = Instant::now() + dur;
    let mut obs = Vec::new();
    while Instant::now() < end && !stop.load(std::sync::atomic::Ordering::SeqCst) {
        for (name, s) in sessions.iter_mut() {
            while let Some(f) = s.next(Duration::from_millis(5)) {
                let h = &s.handles[f.handle];
                let d = decode(h.link, &f.data);
                obs.extend(Observation::of(name, &h.name, f.ts.as_secs_f64(), &d));
            }
        }
    }
    for (_, s) in sessions.iter_mut() {
        s.stop();
    }
    let before: Vec<NodeState> = nodes.iter().map(|n| n.state.clone()).collect();
    let after: Vec<NodeState> = match rereads {
        Some(r) => r.into_iter().map(|r| r.finish()).collect::<Result<_>>()?,
        None => targets.iter().map(source::collect).collect::<Result<_>>()?,
    };
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    Ok(crate::trace::live::follow(
        t,
        &obs,
        counter_deltas(&before, &after, &names),
    ))
}

/// `hopscope trace`: read the nodes, trace, print the text or the JSON document; the exit
/// status says how the flow ended (docs/exit-codes.md).
pub fn command(cli: &crate::cli::Cli, args: &TraceArgs) -> anyhow::Result<u8> {
    use crate::output;
    let stamp = output::Stamp::now();
    let names = super::start_names(cli);
    // Recorded states alone are enough; the own netns is read only when nothing else is given.
    let targets = if cli.target.netns.is_empty()
        && cli.target.pid.is_none()
        && (!args.states.is_empty() || args.from.is_some())
    {
        vec![]
    } else {
        cli.target.targets()
    };
    let sandbox = !cli.no_sandbox;
    // The names are waited for while the nodes are read, then used by the trace; so they are
    // read before a live --follow locks down.
    let (t, names) = run(args, &targets, sandbox, || super::finish_names(names))?;
    super::lock_down_to_print(cli)?;
    let out = if args.json {
        // The trace document, plus `names`: address → name for the addresses in it.
        let mut v = serde_json::to_value(&t)?;
        let found = names.in_text(&v.to_string());
        if let (Some(obj), false) = (v.as_object_mut(), found.is_empty()) {
            obj.insert("names".into(), serde_json::to_value(found)?);
        }
        serde_json::to_string_pretty(&stamp.document(output::TRACE, &v))? + "\n"
    } else {
        let text = crate::view::trace::render(&t, &names);
        output::escape_controls(&text).into_owned()
    };
    output::ok_if_closed(std::io::stdout().lock().write_all(out.as_bytes()))?;
    Ok(status(&t))
}

/// delivered (or on the wire towards nodes not given) 0, stops 3, --follow not seen 4.
fn status(t: &Trace) -> u8 {
    use crate::output::exit;
    if matches!(t.end, crate::trace::path::End::Stopped { .. }) {
        return exit::TRACE_STOPS;
    }
    match &t.follow {
        Some(f) if f.hops.iter().any(|h| h.seen == 0) => exit::TRACE_NOT_SEEN,
        _ => exit::OK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netfilter read that failed in part (here conntrack, and the other family's rules)
    /// is said in the trace's `incomplete` list beside the state's own warnings, so that an
    /// answer worked out on it says it may be wrong; the other family's does not concern it.
    #[test]
    fn incomplete_carries_the_netfilter_read_warnings_of_the_packets_family() {
        let mut node = Node {
            name: "worker".into(),
            state: crate::model::NodeState::default(),
            netfilter: crate::model::Netfilter::default(),
        };
        node.state.warnings.push("routes: dump interrupted".into());
        node.netfilter.warnings = vec![
            "conntrack: the kernel flagged the dump as interrupted".into(),
            "ip6tables rules could not be read (IPv6 NAT and filter rules unknown)".into(),
        ];
        let v4 = incomplete(std::slice::from_ref(&node), 0, false);
        assert_eq!(
            v4,
            [
                "worker: routes: dump interrupted",
                "worker: conntrack: the kernel flagged the dump as interrupted"
            ]
        );
        let v6 = incomplete(&[node], 0, true);
        assert_eq!(v6.len(), 3, "{v6:?}");
    }
}
