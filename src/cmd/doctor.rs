//! The `hopscope doctor` command: reads every node (and its pods, iptables rules, and — with
//! `--window` — a second reading and the ESP seen in between), hands them to the pure
//! judgement (`examine`) and prints the report. The only I/O of the doctor is here.

use crate::doctor::{self, KeyHasher, NodeInput, PodState, Report, Seen};
use crate::model::{Names, Netfilter, NodeState};
use crate::source::{self, Target};
use anyhow::{Context, Result};
use clap::Args;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// One JSON document (findings, verdict, exit code) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Watch counters and ESP packets for this long before judging (5s, 500ms, 1m): counters
    /// that rise are explained.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub window: Option<Duration>,
    /// Do not ask Kubernetes for names.
    #[arg(long)]
    pub no_kube: bool,
    /// Judge a recording (`hopscope record`) instead of the live nodes: every node in it (or
    /// those named by --netns), its counters' rise from the start to the end of the recording
    /// as the window.
    #[arg(long, value_name = "FILE", conflicts_with = "window")]
    pub from: Option<std::path::PathBuf>,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (5s, 500ms, 1m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unit must be ms, s or m")),
    };
    if !(0.0..=3600.0).contains(&secs) {
        return Err(format!("{s:?}: between 0 and 1 hour"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// One node as read: its state(s), rules, pods, what was seen.
struct Read {
    name: String,
    target: Target,
    state: NodeState,
    before: Option<NodeState>,
    netfilter: Option<Netfilter>,
    pods: Vec<PodState>,
    seen: Vec<Seen>,
}

/// Run the doctor; returns the report (the caller prints it and exits with its code) and the
/// names it was judged with. `netns` names the nodes of a recording to judge (all when
/// empty); `names` waits for Kubernetes' names (asked for while the nodes are read): its node
/// list is what the stale checks measure against. A recording's own names come first.
pub fn run(
    args: &DoctorArgs,
    targets: &[Target],
    netns: &[String],
    names: impl FnOnce() -> Arc<Names>,
) -> Result<(Report, Arc<Names>)> {
    let (reads, recorded_names) = match &args.from {
        Some(path) => recorded(path, netns)?,
        None => (read_live(args, targets)?, None),
    };
    let live = names();
    let names = recorded_names.map(Arc::new).unwrap_or(live);
    // Evidence names node IDs by their nodes.
    let given = if args.from.is_some() {
        doctor::Given::Recording
    } else {
        doctor::Given::Read
    };
    let report = judge(&reads, &names, given);
    Ok((report, names))
}

/// The nodes of a recording: each as it was at the end, the start as the window's start
/// (when the recording holds more than one reading), with its iptables rules and the pods
/// recorded beside it (`recorded_pods`); and the last names it holds.
fn recorded(path: &std::path::Path, netns: &[String]) -> Result<(Vec<Read>, Option<Names>)> {
    let rec = crate::record::reader::Recording::open(path)?;
    let names = rec.names.last().map(|(_, n)| n.clone());
    Ok((recorded_reads(&rec, netns)?, names))
}

fn recorded_reads(rec: &crate::record::reader::Recording, netns: &[String]) -> Result<Vec<Read>> {
    let states = rec.final_states();
    let pods = recorded_pods(&states);
    let mut picked = Vec::new();
    if netns.is_empty() {
        picked.extend((0..rec.nodes.len()).filter(|i| !pods.iter().any(|(_, p)| p == i)));
    } else {
        for n in netns {
            picked.push(rec.node_named(Some(n.as_str()))?);
        }
    }
    anyhow::ensure!(!picked.is_empty(), "{} holds no node", rec.name);
    Ok(picked
        .into_iter()
        .map(|i| {
            let state = states[i].clone();
            let first = rec.state_at(i, 0);
            Read {
                name: state.node.name(),
                target: Target::Current,
                before: (first.xfrm_stats != state.xfrm_stats
                    || first.xfrm_states != state.xfrm_states)
                    .then_some(first),
                state,
                netfilter: Some(rec.nodes[i].netfilter.clone()).filter(|n| !n.rules.is_empty()),
                pods: pods
                    .iter()
                    .filter(|(node, _)| *node == i)
                    .map(|&(_, p)| PodState {
                        name: states[p].node.name(),
                        state: states[p].clone(),
                    })
                    .collect(),
                seen: vec![],
            }
        })
        .collect())
}

/// (node, pod) pairs among recorded netns: a pod is a netns whose link and a node's lxc veth
/// name each other's ifindex as their peer (a recording keeps no nsid → netns name map, so
/// the veth pair is what ties them; `hopscope record --netns NODE --netns POD` records both).
/// Ifindexes repeat across namespaces, so a netns that is itself a node (`is_node_like`)
/// is never taken for a pod however its indexes happen to pair.
fn recorded_pods(states: &[NodeState]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (n, node) in states.iter().enumerate() {
        for (p, pod) in states.iter().enumerate() {
            if is_node_like(pod) {
                continue;
            }
            let paired = node.pod_veths().any(|(lxc, peer, _)| {
                pod.links
                    .iter()
                    .any(|l| l.index == peer && l.peer.as_ref().is_some_and(|q| q.index == lxc))
            });
            if p != n && paired {
                out.push((n, p));
            }
        }
    }
    out
}

fn judge(reads: &[Read], names: &Names, given: doctor::Given) -> Report {
    let inputs: Vec<NodeInput> = reads
        .iter()
        .map(|r| NodeInput {
            name: r.name.clone(),
            state: &r.state,
            before: r.before.as_ref(),
            netfilter: r.netfilter.as_ref(),
            pods: &r.pods,
            seen: &r.seen,
        })
        .collect();
    doctor::examine_given(&inputs, &KeyHasher::new(random_secret()), names, given)
}

fn read_live(args: &DoctorArgs, targets: &[Target]) -> Result<Vec<Read>> {
    let mut reads = Vec::new();
    for t in targets {
        let state = source::collect(t)?;
        let netfilter = source::collect_netfilter(t)
            .ok()
            .filter(|n| !n.rules.is_empty());
        reads.push(Read {
            name: state.node.name(),
            target: t.clone(),
            state,
            before: None,
            netfilter,
            pods: vec![],
            seen: vec![],
        });
    }
    read_pods(&mut reads);
    if let Some(w) = args.window {
        watch(&mut reads, w)?;
    }
    Ok(reads)
}

/// A per-run secret for the key hashes: hashes mean nothing outside this report.
fn random_secret() -> Vec<u8> {
    use std::io::Read;
    let mut b = vec![0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        // No urandom: the process's random hasher keys are the next best per-run secret.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        b = h.finish().to_le_bytes().to_vec();
    }
    b
}

/// Pods' netns, found behind each node's lxc veths (`source::pods`), each read once.
fn read_pods(reads: &mut [Read]) {
    let nodes: Vec<(&Target, &NodeState)> = reads.iter().map(|r| (&r.target, &r.state)).collect();
    let found = source::pods::behind(&nodes);
    let mut cache: BTreeMap<String, Option<NodeState>> = BTreeMap::new();
    for (r, names) in reads.iter_mut().zip(found) {
        let names = match names {
            Ok(names) => names,
            Err(e) => {
                r.state.warnings.push(format!(
                    "pods' netns not found ({e:#}): their MTU is not checked"
                ));
                continue;
            }
        };
        for name in names {
            let st = cache
                .entry(name.clone())
                .or_insert_with(|| source::collect(&Target::Netns(name.clone())).ok());
            if let Some(st) = st {
                r.pods.push(PodState {
                    name,
                    state: st.clone(),
                });
            }
        }
    }
}

/// A netns with XFRM state, lxc veths or cilium_host of its own is a node, not a pod.
fn is_node_like(st: &NodeState) -> bool {
    !st.xfrm_states.is_empty()
        || !st.xfrm_policies.is_empty()
        || st.links.iter().any(|l| l.name == "cilium_host")
        || st.pod_veths().next().is_some()
}

/// ESP seen: (node, interface, inbound, src, dst, SPI, in UDP).
type SeenKey = (
    usize,
    String,
    bool,
    std::net::IpAddr,
    std::net::IpAddr,
    Option<u32>,
    bool,
);

/// Capture ESP on each node's interfaces towards its peers for `w`, then read the nodes again.
fn watch(reads: &mut [Read], w: Duration) -> Result<()> {
    use crate::capture::{Options, Session, ctrl_c_flag};
    use crate::decode::packet::decode;
    let stop = ctrl_c_flag();
    let mut sessions = Vec::new();
    for (i, r) in reads.iter().enumerate() {
        let view = doctor::node::NodeView::new(&r.name, &r.state, None);
        let Some(devs) = super::devices(
            view.out_sas
                .iter()
                .filter_map(|&s| doctor::node::ip(&view.sa(s).dst))
                .filter_map(|d| view.dev_towards(&d).map(str::to_string)),
        ) else {
            continue;
        };
        let opts = Options {
            ifaces: devs,
            filter: Some("esp or udp port 4500".into()),
            snaplen: 96,
            ..Options::default()
        };
        match Session::start(&r.target, &r.state, &opts, stop.clone()) {
            Ok(s) => sessions.push((i, s)),
            Err(e) => eprintln!("hopscope: no capture on {} ({e:#}); counters only", r.name),
        }
    }
    eprintln!(
        "hopscope doctor: watching {} node(s) for {:.1} s…",
        reads.len(),
        w.as_secs_f64()
    );
    let end = Instant::now() + w;
    let mut counts: BTreeMap<SeenKey, u64> = BTreeMap::new();
    while Instant::now() < end && !stop.load(std::sync::atomic::Ordering::SeqCst) {
        if sessions.is_empty() {
            std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
            continue;
        }
        for (i, s) in sessions.iter_mut() {
            while let Some(f) = s.next(Duration::from_millis(5)) {
                let h = &s.handles[f.handle];
                let d = decode(h.link, &f.data);
                let Some(ip) = &d.ip else { continue };
                let Some((spi, udp)) = esp_seen(&d) else {
                    continue;
                };
                let inbound = reads[*i].state.links.iter().any(|l| {
                    l.addresses.iter().any(|a| {
                        a.address
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|a| a == ip.dst)
                    })
                });
                *counts
                    .entry((*i, h.name.clone(), inbound, ip.src, ip.dst, spi, udp))
                    .or_default() += 1;
            }
        }
    }
    for (_, s) in sessions.iter_mut() {
        s.stop();
    }
    for ((i, iface, inbound, src, dst, spi, udp_encap), count) in counts {
        reads[i].seen.push(Seen {
            iface,
            inbound,
            src,
            dst,
            spi,
            udp_encap,
            count,
        });
    }
    for r in reads.iter_mut() {
        let after =
            source::collect(&r.target).with_context(|| format!("reading {} again", r.name))?;
        r.before = Some(std::mem::replace(&mut r.state, after));
    }
    Ok(())
}

/// Print the report (text, or JSON in the common envelope stamped when reading began); the
/// exit status is the report's.
pub fn print(report: &Report, json: bool, stamp: &crate::output::Stamp) -> Result<()> {
    use std::io::Write;
    let out = if json {
        serde_json::to_string_pretty(&stamp.document(crate::output::DOCTOR, report))? + "\n"
    } else {
        report.render()
    };
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(Into::into),
    }
}

/// What the doctor's window notes of a captured packet: its SPI (None for the non-ESP traffic
/// of port 4500: IKE, keepalives) and whether it came in UDP. ESP in UDP is decoded as ESP
/// (its transport is ESP, not UDP), so the encapsulation is read from the ESP header itself.
fn esp_seen(d: &crate::decode::packet::Decoded) -> Option<(Option<u32>, bool)> {
    use crate::decode::packet::{NAT_T_PORT, Transport};
    if let Some(e) = d.esp() {
        return Some((Some(e.spi), e.udp_encap.is_some()));
    }
    matches!(
        d.transport,
        Some(Transport::Udp { sport, dport, .. }) if sport == NAT_T_PORT || dport == NAT_T_PORT
    )
    .then_some((None, true))
}

#[cfg(test)]
mod esp_seen_tests {
    use super::esp_seen;
    use crate::decode::packet::decode_ip;

    fn udp4(sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
        let total = (28 + body.len()) as u16;
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend([192, 168, 64, 2, 192, 168, 63, 1]);
        p.extend(sport.to_be_bytes());
        p.extend(dport.to_be_bytes());
        p.extend((8 + body.len() as u16).to_be_bytes());
        p.extend([0, 0]);
        p.extend(body);
        p
    }

    /// The healthy NAT-T layout's ESP (spi 0x6002 in UDP 4500) is noted as encapsulated; it
    /// was noted as plain ESP, so the doctor called a healthy site's SA mismatched.
    #[test]
    fn esp_in_udp_is_seen_encapsulated() {
        let mut esp = 0x6002u32.to_be_bytes().to_vec();
        esp.extend(7u32.to_be_bytes());
        esp.extend([0xaa; 40]);
        let d = decode_ip(&udp4(4500, 4500, &esp));
        assert_eq!(esp_seen(&d), Some((Some(0x6002), true)));
        // IKE on 4500 (the zero non-ESP marker): no SPI, still UDP.
        let d = decode_ip(&udp4(4500, 4500, &[0u8; 40]));
        assert_eq!(esp_seen(&d), Some((None, true)));
        // Plain UDP elsewhere: nothing to note.
        let d = decode_ip(&udp4(5000, 53, &[1u8; 40]));
        assert_eq!(esp_seen(&d), None);
    }
}

#[cfg(test)]
mod recorded_pods_tests {
    use super::{judge, recorded_reads};
    use crate::model::fixtures::seed_worker;
    use crate::model::{Link, NodeState, Peer};
    use crate::record::reader::{Item, NodeTrack, Recording};

    fn track(label: &str, st: NodeState) -> NodeTrack {
        NodeTrack {
            label: label.into(),
            items: vec![(0, Item::State(Box::new(st)))],
            ..NodeTrack::default()
        }
    }

    /// netshoot's netns as recorded beside worker: eth0 (ifindex 9) is the peer of worker's
    /// lxc veth (ifindex 10); its default route's MTU 1500 ignores the ESP overhead.
    fn pod(peer_of: u32) -> NodeState {
        let w = seed_worker();
        let mut eth0: Link = w.links.iter().find(|l| l.name == "eth0").unwrap().clone();
        eth0.index = 9;
        eth0.mtu = Some(1500);
        eth0.peer = Some(Peer {
            index: peer_of,
            name: None,
            netns_id: Some(0),
        });
        let mut st = NodeState {
            links: vec![eth0],
            routes: w
                .routes
                .iter()
                .filter(|r| r.table.id == 254 && r.dst.is_none())
                .cloned()
                .collect(),
            ..NodeState::default()
        };
        st.routes[0].mtu = Some(1500);
        st.node.netns.name = Some("netshoot".into());
        st
    }

    /// `doctor --from` checks the MTU of pods recorded beside their node, and judges them as
    /// that node's pods, not as nodes (it said "no pod netns could be read" for every recording).
    #[test]
    fn recorded_pods_are_checked_with_their_node() {
        let rec = Recording {
            nodes: vec![
                track("netns worker", seed_worker()),
                track("netns netshoot", pod(10)),
            ],
            ..Recording::default()
        };
        let reads = recorded_reads(&rec, &[]).unwrap();
        assert_eq!(reads.len(), 1, "the pod is not a node");
        assert_eq!(reads[0].pods.len(), 1);
        assert_eq!(reads[0].pods[0].name, "netshoot");
        let r = judge(
            &reads,
            &crate::model::Names::default(),
            crate::doctor::Given::Recording,
        );
        let f = r
            .findings
            .iter()
            .find(|f| f.id == "mtu-esp-overhead")
            .unwrap_or_else(|| panic!("{}", r.render()));
        assert!(
            f.what.contains("up to 1500 bytes, but only 1446 fit"),
            "{f:?}"
        );
        assert!(
            f.evidence[0].starts_with("netshoot: route default"),
            "{f:?}"
        );
        // A netns whose veth is not worker's lxc's peer is no pod of it.
        let rec = Recording {
            nodes: vec![
                track("netns worker", seed_worker()),
                track("netns netshoot", pod(11)),
            ],
            ..Recording::default()
        };
        let reads = recorded_reads(&rec, &[]).unwrap();
        assert_eq!(reads.len(), 2);
        assert!(reads.iter().all(|r| r.pods.is_empty()));
    }

    /// Ifindexes repeat across namespaces: a second node whose eth0 happens to pair with
    /// worker's lxc by index (as worker2's does in the demo recording) is a node, not a pod.
    #[test]
    fn a_node_whose_indexes_pair_by_chance_is_no_pod() {
        let mut other = pod(10);
        other.xfrm_states = seed_worker().xfrm_states;
        other.node.netns.name = Some("worker2".into());
        let rec = Recording {
            nodes: vec![
                track("netns worker", seed_worker()),
                track("netns worker2", other),
            ],
            ..Recording::default()
        };
        let reads = recorded_reads(&rec, &[]).unwrap();
        assert_eq!(reads.len(), 2, "both are nodes");
        assert!(reads.iter().all(|r| r.pods.is_empty()));
    }
}
