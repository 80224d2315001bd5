//! kube-proxy's rule sets (tests/fixtures/kube-proxy/, iptables and nftables modes) loaded into
//! a throwaway netns of the host kernel, read back the way `trace` reads a node (iptables-save
//! of both backends, `nft -j list ruleset`), and traced over the seed's cluster: the
//! reference's NodePort flow, ClusterIP endpoint choice, LoadBalancer with
//! externalTrafficPolicy Local, session affinity, and filter-table stops.

mod common;
use common::{Netns, require_root, run};
use hopscope::model::Netfilter;
use hopscope::model::fixtures::seed_node;
use hopscope::source::{Target, collect_netfilter, conntrack::parse_line};
use hopscope::trace::decision::Decision;
use hopscope::trace::netfilter::NfDecision;
use hopscope::trace::path::{End, Flow, Hop, Node, Step, trace};

/// The netfilter decisions a hop carries as data.
fn rules(h: &Hop) -> Vec<&NfDecision> {
    h.decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Netfilter(n) => Some(n),
            _ => None,
        })
        .collect()
}

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kube-proxy/");

/// Load a fixture into a fresh netns with the tool that reads it, and read it back.
fn load(file: &str) -> Netfilter {
    let ns = Netns::new("kp");
    let path = format!("{FIX}{file}");
    let tool = if file.ends_with(".nft") {
        run("ip", &["netns", "exec", &ns.name, "nft", "-f", &path]);
        return collect_netfilter(&Target::Netns(ns.name.clone())).unwrap();
    } else if file.contains("nft") {
        "iptables-nft-restore"
    } else {
        "iptables-legacy-restore"
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, tool])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "{tool} {file}");
    collect_netfilter(&Target::Netns(ns.name.clone())).unwrap()
}

fn cluster(worker_nf: Netfilter) -> Vec<Node> {
    ["worker", "worker2", "control-plane"]
        .iter()
        .map(|n| Node {
            name: n.to_string(),
            state: seed_node(n),
            netfilter: if *n == "worker" {
                worker_nf.clone()
            } else {
                Netfilter::default()
            },
        })
        .collect()
}

fn nodeport_flow() -> Flow {
    Flow {
        src: "10.0.1.52".parse().unwrap(),
        dst: "172.18.0.3".parse().unwrap(),
        proto: 6,
        sport: None,
        dport: Some(32000),
        mark: Some(0),
        iif: Some("lxcda1dd0af135e".into()),
        size: 60,
    }
}

const SEED_ENTRY: &str = "ipv4     2 tcp      6 118 TIME_WAIT src=10.0.1.52 dst=172.18.0.3 sport=45404 dport=32000 src=10.0.0.249 dst=172.18.0.3 sport=80 dport=50772 [ASSURED] mark=0 zone=0 use=2";

/// The reference's NodePort flow, with the kernel's conntrack entry of it: KUBE-NODEPORTS,
/// the endpoint the entry names (10.0.0.249:80 of two), masquerade to worker's eth0 address
/// with the entry's port, across to worker2, into the pod.
fn assert_reference_nodeport(nf: Netfilter, mode: &str) {
    let mut nf = nf;
    nf.conntrack = vec![parse_line(SEED_ENTRY).unwrap()];
    let t = trace(&cluster(nf), &nodeport_flow());
    let text = hopscope::view::trace::render(&t, &Default::default());
    let nat: Vec<_> = t.hops.iter().filter(|h| h.step == Step::Nat).collect();
    assert_eq!(nat.len(), 2, "{mode}: DNAT and masquerade\n{text}");
    assert!(
        nat[0]
            .what
            .contains("DNAT 172.18.0.3:32000 → 10.0.0.249:80"),
        "{mode}\n{text}"
    );
    assert!(
        rules(nat[0])
            .into_iter()
            .any(|d| d.chain.contains("KUBE-NODEPORTS") || d.rule.contains("service-nodeports")),
        "{mode}: names the NodePort rule\n{text}"
    );
    let pick = rules(nat[0])
        .into_iter()
        .find(|d| !d.alternatives.is_empty())
        .expect(&text);
    assert_eq!(
        pick.alternatives.len(),
        2,
        "{mode}: both endpoints listed\n{text}"
    );
    assert!(
        pick.effect.contains("conntrack entry took"),
        "{mode}\n{text}"
    );
    assert!(
        nat[1].what.contains("172.18.0.3:50772"),
        "{mode}: SNAT from the entry\n{text}"
    );
    let ct = rules(nat[0])
        .into_iter()
        .find_map(|d| d.conntrack.clone())
        .expect(&text);
    assert_eq!(ct, parse_line(SEED_ENTRY).unwrap());
    let wire = t.hops.iter().find(|h| h.step == Step::Wire).expect(&text);
    assert!(
        wire.packet
            .starts_with("172.18.0.3 → 10.0.0.249 tcp 50772→80"),
        "{mode}\n{text}"
    );
    assert!(
        matches!(&t.end, End::Delivered { node, what, .. } if node == "worker2" && what == "pod 10.0.0.249"),
        "{mode}\n{text}"
    );
}

#[test]
fn nodeport_iptables_legacy() {
    require_root();
    assert_reference_nodeport(load("iptables-nodeport.save"), "iptables-legacy");
}

#[test]
fn nodeport_iptables_nft_backend() {
    require_root();
    assert_reference_nodeport(load("iptables-nodeport.nft.save"), "iptables-nft");
}

#[test]
fn nodeport_nftables_mode() {
    require_root();
    let nf = load("nftables-nodeport.nft");
    assert_eq!(nf.nft.len(), 1, "{:?}", nf.backends);
    assert_reference_nodeport(nf, "nftables");
}

#[test]
fn without_an_entry_the_first_endpoint_is_followed_and_said() {
    require_root();
    for file in ["iptables-nodeport.save", "nftables-nodeport.nft"] {
        let t = trace(&cluster(load(file)), &nodeport_flow());
        let text = hopscope::view::trace::render(&t, &Default::default());
        assert!(
            text.contains("the kernel picks at random"),
            "{file}\n{text}"
        );
        // 10.0.1.103 is on worker itself, behind cilium_host, whose address is of scope link:
        // the kernel picks the first global address of the netns, eth0's.
        let masq = t
            .hops
            .iter()
            .filter(|h| h.step == Step::Nat)
            .nth(1)
            .expect(&text);
        assert!(
            masq.what.contains(
                "MASQUERADE 10.0.1.52 → 172.18.0.3 (the address of eth0, leaving by cilium_host"
            ),
            "{file}\n{text}"
        );
        assert!(
            matches!(&t.end, End::Delivered { node, what, .. } if node == "worker" && what == "pod 10.0.1.103"),
            "{file}\n{text}"
        );
    }
}

#[test]
fn load_balancer_with_local_traffic_policy_keeps_the_source_and_the_local_endpoint() {
    require_root();
    let flow = Flow {
        src: "192.168.50.7".parse().unwrap(),
        dst: "172.18.255.200".parse().unwrap(),
        dport: Some(80),
        iif: Some("eth0".into()),
        ..nodeport_flow()
    };
    let t = trace(&cluster(load("iptables-lb-local.save")), &flow);
    let text = hopscope::view::trace::render(&t, &Default::default());
    let nat: Vec<_> = t.hops.iter().filter(|h| h.step == Step::Nat).collect();
    assert_eq!(
        nat.len(),
        1,
        "no masquerade under externalTrafficPolicy Local\n{text}"
    );
    assert!(nat[0].what.contains("→ 10.0.1.103:8080"), "{text}");
    assert!(
        rules(nat[0])
            .into_iter()
            .any(|d| d.chain.starts_with("KUBE-SVL-")),
        "{text}"
    );
    assert!(
        matches!(&t.end, End::Delivered { node, .. } if node == "worker"),
        "{text}"
    );
}

#[test]
fn session_affinity_follows_the_recent_list_and_says_what_it_assumes() {
    require_root();
    let flow = Flow {
        dst: "10.96.7.7".parse().unwrap(),
        dport: Some(80),
        ..nodeport_flow()
    };
    let mut nf = load("iptables-affinity.save");
    // The kernel made both lists when the rules were loaded: empty, so no affinity yet.
    let names: Vec<&str> = nf.recent.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["KUBE-SEP-STICKYAZZZZZZZZ", "KUBE-SEP-STICKYBZZZZZZZZ"]
    );
    let t = trace(&cluster(nf.clone()), &flow);
    let text = hopscope::view::trace::render(&t, &Default::default());
    let nat = t.hops.iter().find(|h| h.step == Step::Nat).expect(&text);
    assert!(
        nat.what.contains("→ 10.0.1.103:80"),
        "random choice, first endpoint\n{text}"
    );
    // The client was seen by endpoint B: the affinity rule sends it there, said as assumed.
    nf.recent[1].addrs.push("10.0.1.52".parse().unwrap());
    let t = trace(&cluster(nf), &flow);
    let text = hopscope::view::trace::render(&t, &Default::default());
    let nat = t.hops.iter().find(|h| h.step == Step::Nat).expect(&text);
    assert!(nat.what.contains("→ 10.0.0.249:80"), "{text}");
    assert!(
        rules(nat).into_iter().any(|d| d
            .uncertain
            .as_deref()
            .is_some_and(|u| u.contains("session affinity"))),
        "{text}"
    );
}

#[test]
fn service_without_endpoints_is_rejected_by_the_filter_table() {
    require_root();
    let flow = Flow {
        dst: "10.96.33.33".parse().unwrap(),
        dport: Some(80),
        ..nodeport_flow()
    };
    for file in ["iptables-nodeport.save", "nftables-nodeport.nft"] {
        let t = trace(&cluster(load(file)), &flow);
        let text = hopscope::view::trace::render(&t, &Default::default());
        let End::Stopped { reason, .. } = &t.end else {
            panic!("{file}: {text}")
        };
        assert!(reason.contains("reject"), "{file}: {text}");
    }
}
