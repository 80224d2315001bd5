//! `trace --follow`: which predicted hops the flow's packets were really seen at, with
//! latencies, and which counters on the path moved. Pure: fed observations and before/after
//! states by the command.

use super::path::{Step, Trace};
use crate::decode::packet::PacketKey;
use crate::model::NodeState;
use serde::Serialize;

/// A packet captured on `iface` of `node` (decoded by the capture layer).
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub node: String,
    pub iface: String,
    /// Seconds (capture timestamps; only differences are used).
    pub ts: f64,
    pub key: PacketKey,
}

impl Observation {
    /// The observation a decoded frame makes; None for frames without an IP header.
    pub fn of(
        node: &str,
        iface: &str,
        ts: f64,
        d: &crate::decode::packet::Decoded,
    ) -> Option<Observation> {
        Some(Observation {
            node: node.to_string(),
            iface: iface.to_string(),
            ts,
            key: d.key()?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HopSeen {
    /// Index into the trace's hops.
    pub hop: usize,
    pub node: String,
    pub dev: String,
    pub step: Step,
    pub seen: u64,
    /// Milliseconds from the first sighting at the previous seen hop to the first here.
    pub ms_after_previous: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CounterDelta {
    pub node: String,
    pub counter: String,
    pub delta: u64,
    /// Does a rise mean trouble (xfrm_stat errors, drops, integrity failures)?
    pub trouble: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Followed {
    pub hops: Vec<HopSeen>,
    pub counters: Vec<CounterDelta>,
    /// One line: "seen at every observable hop" or "stops after eth0 on worker2; XfrmInNoStates +5".
    pub verdict: String,
}

/// Count, per observable hop, the observations that are this flow's packet at that hop.
pub fn match_hops(t: &Trace, obs: &[Observation]) -> Vec<HopSeen> {
    let mut out = Vec::new();
    let mut prev_first: Option<f64> = None;
    for (i, h) in t.hops.iter().enumerate() {
        let (Some(e), Some(dev)) = (&h.expect, &h.dev) else {
            continue;
        };
        let hits: Vec<f64> = obs
            .iter()
            .filter(|o| o.node == h.node && &o.iface == dev)
            .filter(|o| e.matches(&o.key))
            .map(|o| o.ts)
            .collect();
        let first = hits
            .iter()
            .cloned()
            .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))));
        let ms_after_previous = match (prev_first, first) {
            (Some(p), Some(f)) if f >= p => Some((f - p) * 1000.0),
            _ => None,
        };
        if first.is_some() {
            prev_first = first;
        }
        out.push(HopSeen {
            hop: i,
            node: h.node.clone(),
            dev: dev.clone(),
            step: h.step,
            seen: hits.len() as u64,
            ms_after_previous,
        });
    }
    out
}

/// Counters that moved between two readings of the same nodes: SA lifetime packets, every
/// xfrm_stat counter, interface errors and drops.
pub fn counter_deltas(
    before: &[NodeState],
    after: &[NodeState],
    names: &[String],
) -> Vec<CounterDelta> {
    let mut out = Vec::new();
    for ((b, a), node) in before.iter().zip(after).zip(names) {
        let mut push = |counter: String, old: u64, new: u64, trouble: bool| {
            if new > old {
                out.push(CounterDelta {
                    node: node.clone(),
                    counter,
                    delta: new - old,
                    trouble,
                });
            }
        };
        for (k, v) in &a.xfrm_stats {
            let old = b
                .xfrm_stats
                .iter()
                .find(|(n, _)| n == k)
                .map_or(0, |(_, v)| *v);
            push(
                k.clone(),
                old,
                *v,
                crate::explain::xfrm_stat::rise_is_trouble(k),
            );
        }
        for sa in &a.xfrm_states {
            let same = |s: &&crate::model::XfrmState| {
                s.src == sa.src && s.dst == sa.dst && s.spi == sa.spi && s.mark == sa.mark
            };
            let Some(old) = b.xfrm_states.iter().find(same) else {
                continue;
            };
            let label = format!("SA {}→{} spi {:#x}", sa.src, sa.dst, sa.spi);
            push(
                format!("{label} packets"),
                old.lifetime.packets,
                sa.lifetime.packets,
                false,
            );
            push(
                format!("{label} integrity failures"),
                u64::from(old.stats.integrity_failed),
                u64::from(sa.stats.integrity_failed),
                true,
            );
            push(
                format!("{label} replay drops"),
                u64::from(old.stats.replay),
                u64::from(sa.stats.replay),
                true,
            );
        }
        for l in &a.links {
            let Some(old) = b.links.iter().find(|x| x.index == l.index) else {
                continue;
            };
            for (what, o, n) in [
                ("rx_dropped", old.stats.rx_dropped, l.stats.rx_dropped),
                ("tx_dropped", old.stats.tx_dropped, l.stats.tx_dropped),
                ("rx_errors", old.stats.rx_errors, l.stats.rx_errors),
                ("tx_errors", old.stats.tx_errors, l.stats.tx_errors),
            ] {
                push(format!("{} {what}", l.name), o, n, true);
            }
        }
    }
    out
}

/// Put it together: which hops were seen and the one-line answer.
pub fn follow(t: &Trace, obs: &[Observation], counters: Vec<CounterDelta>) -> Followed {
    let hops = match_hops(t, obs);
    let trouble: Vec<String> = counters
        .iter()
        .filter(|c| c.trouble)
        .map(|c| format!("{} {} +{}", c.node, c.counter, c.delta))
        .collect();
    let last_seen = hops.iter().rposition(|h| h.seen > 0);
    let verdict = match last_seen {
        None => "not seen at any observable hop (is the flow's traffic running while following?)"
            .to_string(),
        Some(i) if i + 1 == hops.len() => {
            let missed: Vec<String> = hops
                .iter()
                .filter(|h| h.seen == 0)
                .map(|h| format!("{} on {}", h.dev, h.node))
                .collect();
            let last = &hops[i];
            match (&t.end, missed.is_empty()) {
                // The prediction itself ends there: say that the packets die where expected.
                (super::path::End::Stopped { reason, .. }, true) => {
                    format!(
                        "stops after {} on {}, as predicted: {reason}",
                        last.dev, last.node
                    )
                }
                (_, true) => "seen at every observable hop".to_string(),
                (_, false) => format!(
                    "reached the last observable hop; not seen at {}",
                    missed.join(", ")
                ),
            }
        }
        Some(i) => {
            let (h, next) = (&hops[i], &hops[i + 1]);
            format!(
                "stops after {} on {} (next expected: {} on {})",
                h.dev, h.node, next.dev, next.node
            )
        }
    };
    let verdict = if trouble.is_empty() {
        verdict
    } else {
        format!("{verdict}; {}", trouble.join(", "))
    };
    Followed {
        hops,
        counters,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::seed_node;
    use crate::trace::path::{Flow, Node, trace};

    fn seed_trace() -> (Vec<Node>, Trace) {
        seed_trace_with(|_| {})
    }

    /// The seed's flow over worker and worker2, after `change` is applied to the nodes.
    fn seed_trace_with(change: impl FnOnce(&mut Vec<Node>)) -> (Vec<Node>, Trace) {
        let mut nodes: Vec<Node> = ["worker", "worker2"]
            .iter()
            .map(|n| Node {
                name: n.to_string(),
                state: seed_node(n),
                netfilter: Default::default(),
            })
            .collect();
        change(&mut nodes);
        let flow = Flow {
            src: "10.0.1.52".parse().unwrap(),
            dst: "10.0.0.249".parse().unwrap(),
            proto: 1,
            sport: None,
            dport: None,
            mark: None,
            iif: Some("lxcda1dd0af135e".into()),
            size: 84,
        };
        let t = trace(&nodes, &flow);
        (nodes, t)
    }

    /// What a capture at each observable hop would record for `n` packets, 1 ms apart per hop.
    fn observe(t: &Trace, upto: usize, n: usize) -> Vec<Observation> {
        let mut out = Vec::new();
        for (k, h) in t
            .hops
            .iter()
            .filter(|h| h.expect.is_some())
            .take(upto)
            .enumerate()
        {
            let e = h.expect.as_ref().unwrap();
            for p in 0..n {
                out.push(Observation {
                    node: h.node.clone(),
                    iface: h.dev.clone().unwrap(),
                    ts: p as f64 + k as f64 * 0.001,
                    key: PacketKey {
                        src: e.src,
                        dst: e.dst,
                        proto: e.proto,
                        ports: None,
                        spi: e.spi,
                    },
                });
            }
        }
        // Noise: other traffic on the same devices must not count.
        out.push(Observation {
            node: "worker".into(),
            iface: "eth0".into(),
            ts: 0.5,
            key: PacketKey {
                src: "172.18.0.3".parse().unwrap(),
                dst: "172.18.0.1".parse().unwrap(),
                proto: 6,
                ports: None,
                spi: None,
            },
        });
        out
    }

    #[test]
    fn every_hop_seen_with_latency() {
        let (_, t) = seed_trace();
        let total = t.hops.iter().filter(|h| h.expect.is_some()).count();
        assert_eq!(
            total, 6,
            "lxc, cilium_host, cilium_net, eth0 on worker; eth0 in and decrypted on worker2"
        );
        let f = follow(&t, &observe(&t, total, 3), vec![]);
        assert_eq!(f.verdict, "seen at every observable hop");
        assert!(f.hops.iter().all(|h| h.seen == 3));
        let lat = f.hops[1].ms_after_previous.unwrap();
        assert!((lat - 1.0).abs() < 1e-6, "{lat}");
    }

    #[test]
    fn stop_is_named_with_the_counter_that_rose() {
        let (nodes, t) = seed_trace();
        let total = t.hops.iter().filter(|h| h.expect.is_some()).count();
        // Seen up to worker2's eth0 ingress, not after.
        let upto = t
            .hops
            .iter()
            .filter(|h| h.expect.is_some())
            .position(|h| h.node == "worker2")
            .unwrap()
            + 1;
        assert!(upto < total);
        let before: Vec<NodeState> = nodes.iter().map(|n| n.state.clone()).collect();
        let mut after = before.clone();
        for (k, v) in after[1].xfrm_stats.iter_mut() {
            if k == "XfrmInNoStates" {
                *v += 5;
            }
        }
        after[0]
            .xfrm_states
            .iter_mut()
            .find(|s| s.dst == "10.0.0.40")
            .unwrap()
            .lifetime
            .packets += 5;
        let names = vec!["worker".to_string(), "worker2".to_string()];
        let f = follow(
            &t,
            &observe(&t, upto, 5),
            counter_deltas(&before, &after, &names),
        );
        assert!(
            f.verdict.starts_with("stops after eth0 on worker2"),
            "{}",
            f.verdict
        );
        assert!(
            f.verdict.ends_with("worker2 XfrmInNoStates +5"),
            "{}",
            f.verdict
        );
        assert!(f.counters.iter().any(
            |c| c.counter.contains("10.0.1.138→10.0.0.40 spi 0x3 packets")
                && c.delta == 5
                && !c.trouble
        ));
    }

    #[test]
    fn nothing_seen_says_so() {
        let (_, t) = seed_trace();
        assert!(follow(&t, &[], vec![]).verdict.starts_with("not seen"));
    }

    #[test]
    fn a_predicted_stop_seen_up_to_its_last_hop_is_said_as_such() {
        let (_, t) =
            seed_trace_with(|nodes| nodes[1].state.xfrm_states.retain(|s| s.src != "0.0.0.0"));
        let seen = t.hops.iter().filter(|h| h.expect.is_some()).count();
        let f = follow(
            &t,
            &observe(&t, seen, 1),
            vec![CounterDelta {
                node: "worker2".into(),
                counter: "XfrmInNoStates".into(),
                delta: 3,
                trouble: true,
            }],
        );
        assert!(
            f.verdict
                .starts_with("stops after eth0 on worker2, as predicted: no inbound SA"),
            "{}",
            f.verdict
        );
        assert!(
            f.verdict.ends_with("; worker2 XfrmInNoStates +3"),
            "{}",
            f.verdict
        );
    }
}
