//! The predicted path of the seed's flow (pod 10.0.1.52 on worker → pod 10.0.0.249 on
//! worker2) over hand-built node states, with the lab's iptables stand-ins for Cilium's BPF
//! and without them (Cilium's conventions assumed), and its failure variants.

use hopscope::model::fixtures::seed_node;
use hopscope::model::{Netfilter, XfrmState};
use hopscope::source::netfilter::parse_save;
use hopscope::trace::path::{End, Flow, Node, Step, trace};

/// The lab's mangle rules for `node` (see tests/lab/cluster.sh), standing in for Cilium's BPF.
fn lab_mangle(node: &str) -> Netfilter {
    let remote: Vec<&str> = [
        ("control-plane", "10.0.2.0/24"),
        ("worker", "10.0.1.0/24"),
        ("worker2", "10.0.0.0/24"),
    ]
    .iter()
    .filter(|(n, _)| *n != node)
    .map(|(_, c)| *c)
    .collect();
    let mut text = String::from(
        "*mangle\n-A PREROUTING -j CILIUM_PRE_mangle\n\
         -A CILIUM_PRE_mangle -i eth0 -p esp -j MARK --set-xmark 0xd00/0xf00\n\
         -A CILIUM_PRE_mangle -i eth0 ! -p esp -m mark --mark 0xd00/0xf00 -j MARK --set-xmark 0x0/0xf00\n\
         -A CILIUM_PRE_mangle -i cilium_net -j MARK --set-xmark 0x0/0xff00\n",
    );
    for c in remote {
        text += &format!("-A CILIUM_PRE_mangle -i lxc+ -d {c} -j MARK --set-xmark 0x3e00/0xff00\n");
    }
    Netfilter {
        backends: vec!["iptables-legacy-save".into()],
        rules: parse_save("iptables-legacy-save", &text).0,
        ..Default::default()
    }
}

fn cluster(with_iptables: bool) -> Vec<Node> {
    ["worker", "worker2", "control-plane"]
        .iter()
        .map(|n| Node {
            name: n.to_string(),
            state: seed_node(n),
            netfilter: if with_iptables {
                lab_mangle(n)
            } else {
                Netfilter::default()
            },
        })
        .collect()
}

fn ping() -> Flow {
    Flow {
        src: "10.0.1.52".parse().unwrap(),
        dst: "10.0.0.249".parse().unwrap(),
        proto: 1,
        sport: None,
        dport: None,
        mark: None,
        iif: Some("lxcda1dd0af135e".into()),
        size: 84,
    }
}

/// Where the seed's flow ends: cni-worker2, handed over by Cilium's datapath on cilium_host.
fn at_cni_worker2() -> End {
    End::Delivered {
        node: "worker2".into(),
        dev: Some("cilium_host".into()),
        what: "pod 10.0.0.249".into(),
    }
}

fn steps(t: &hopscope::trace::path::Trace) -> Vec<(String, Step)> {
    t.hops.iter().map(|h| (h.node.clone(), h.step)).collect()
}

#[test]
fn seed_flow_follows_the_seeds_hops() {
    let t = trace(&cluster(true), &ping());
    let text = hopscope::view::trace::render(&t, &Default::default());
    use Step::*;
    let w = |s| ("worker".to_string(), s);
    let w2 = |s| ("worker2".to_string(), s);
    assert_eq!(
        steps(&t),
        vec![
            w(Ingress),
            w(Mark),
            w(Route),
            w(XfrmPolicy),
            w(XfrmState),
            w(Encrypt),
            w(Route),
            w(Egress),
            w(Veth),
            w(Mark),
            w(Route),
            w(Egress),
            w(Wire),
            w2(Ingress),
            w2(Mark),
            w2(Route),
            w2(Decrypt),
            w2(Mark),
            w2(Route),
            w2(PolicyCheck),
            w2(Egress),
            w2(Deliver),
        ],
        "{text}"
    );
    // What decided each hop is named the way the seed reasons about it.
    let h = &t.hops;
    assert!(
        h[1].what.contains("0x3e00") && h[1].decided_by.contains("mangle CILIUM_PRE_mangle"),
        "{text}"
    );
    assert!(
        h[2].decided_by.contains("rule 1: ") && h[2].decided_by.contains("0xe00/0xf00"),
        "{text}"
    );
    assert!(
        h[2].what
            .contains("table 200 (cilium ipsec): 10.0.0.0/24 dev cilium_host"),
        "{text}"
    );
    assert!(
        h[3].decided_by
            .contains("policy out 10.0.1.0/24 → 10.0.0.0/24 priority 0 mark 0x3e00/0xff00"),
        "{text}"
    );
    assert!(
        h[3].details
            .iter()
            .any(|d| d.contains("10.0.2.0/24") && d.contains("mark matched, selector did not")),
        "the other out policy lost: {text}"
    );
    assert!(
        h[4].decided_by
            .contains("10.0.1.138 → 10.0.0.40 esp spi 0x00000003 reqid 1"),
        "{text}"
    );
    assert!(
        h[5].packet
            .starts_with("10.0.1.138 → 10.0.0.40 esp spi 0x3 len 140"),
        "ESP of an 84-byte ping: {text}"
    );
    assert!(
        h[6].what.contains("cilium_host"),
        "the ESP packet goes to cilium_host (table 200), as in the seed: {text}"
    );
    assert!(
        h[10]
            .what
            .contains("main: 10.0.0.0/24 via 172.18.0.4 dev eth0"),
        "{text}"
    );
    assert_eq!(h[12].what, "on the wire to worker2 (172.18.0.4)");
    assert!(h[14].what.contains("0xd00"), "{text}");
    assert!(
        h[16]
            .decided_by
            .contains("0.0.0.0 → 10.0.0.40 esp spi 0x00000003"),
        "{text}"
    );
    assert!(
        h[19].decided_by.contains("policy fwd") && h[19].decided_by.contains("priority 2975"),
        "{text}"
    );
    assert_eq!(t.end, at_cni_worker2(), "{text}");
}

#[test]
fn without_iptables_cilium_conventions_are_assumed_and_said() {
    let mut flow = ping();
    flow.iif = None; // located from the pod CIDR
    let t = trace(&cluster(false), &flow);
    let text = hopscope::view::trace::render(&t, &Default::default());
    assert_eq!(t.hops[0].dev.as_deref(), Some("lxc+"), "{text}");
    let assumed: Vec<_> = t
        .hops
        .iter()
        .filter(|h| h.decided_by.starts_with("assumed: Cilium"))
        .map(|h| (h.node.as_str(), h.packet.clone()))
        .collect();
    assert_eq!(
        assumed.len(),
        3,
        "encrypt mark, cilium_net hand-off, decrypt mark: {text}"
    );
    assert!(
        matches!(t.end, End::Delivered { ref node, .. } if node == "worker2"),
        "{text}"
    );
}

#[test]
fn missing_inbound_sa_stops_at_worker2_and_names_the_counter() {
    let mut nodes = cluster(true);
    nodes[1]
        .state
        .xfrm_states
        .retain(|s: &XfrmState| s.src != "0.0.0.0");
    let t = trace(&nodes, &ping());
    let text = hopscope::view::trace::render(&t, &Default::default());
    match &t.end {
        End::Stopped {
            node,
            reason,
            counter,
        } => {
            assert_eq!(node, "worker2");
            assert!(
                reason.contains("no inbound SA for spi 0x3 dst 10.0.0.40"),
                "{reason}"
            );
            assert_eq!(counter.as_deref(), Some("XfrmInNoStates"));
        }
        e => panic!("{e:?}\n{text}"),
    }
    assert!(
        text.contains("STOPS on worker2") && text.contains("XfrmInNoStates"),
        "{text}"
    );
}

#[test]
fn missing_out_policy_leaves_in_plaintext() {
    let mut nodes = cluster(true);
    nodes[0].state.xfrm_policies.retain(|p| p.dir != "out");
    let t = trace(&nodes, &ping());
    let text = hopscope::view::trace::render(&t, &Default::default());
    assert!(!t.hops.iter().any(|h| h.step == Step::Encrypt), "{text}");
    let wire = t.hops.iter().find(|h| h.step == Step::Wire).expect(&text);
    assert!(
        wire.packet.starts_with("10.0.1.52 → 10.0.0.249 icmp"),
        "plaintext on the wire: {text}"
    );
}

#[test]
fn missing_sa_for_template_stops_with_out_no_states() {
    let mut nodes = cluster(true);
    nodes[0].state.xfrm_states.retain(|s| s.dst != "10.0.0.40");
    let t = trace(&nodes, &ping());
    assert!(
        matches!(&t.end, End::Stopped { node, counter: Some(c), .. } if node == "worker" && c == "XfrmOutNoStates"),
        "{:?}",
        t.end
    );
}

#[test]
fn one_node_ends_at_the_wire() {
    let nodes: Vec<Node> = cluster(true).into_iter().take(1).collect();
    let t = trace(&nodes, &ping());
    assert_eq!(
        t.end,
        End::Wire {
            node: "worker".into(),
            dev: "eth0".into(),
            next_hop: "172.18.0.4".into()
        }
    );
    assert!(
        hopscope::view::trace::render(&t, &Default::default()).contains("add that node's netns")
    );
}

#[test]
fn trace_text_snapshot() {
    insta::assert_snapshot!(hopscope::view::trace::render(
        &trace(&cluster(true), &ping()),
        &Default::default()
    ));
}

#[test]
fn too_big_for_the_path_stops_at_the_mtu() {
    // 1460-byte inner packet: ESP makes it 20 + 8 + 8 + 1464 + 16 = 1516 > eth0's 1500.
    let mut flow = ping();
    flow.size = 1460;
    let t = trace(&cluster(true), &flow);
    match &t.end {
        End::Stopped { node, reason, .. } => {
            assert_eq!(node, "worker");
            assert!(reason.contains("1516 bytes exceeds MTU 1500"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
    // The pod MTU of the seed (1423) fits.
    flow.size = 1423;
    assert!(matches!(
        trace(&cluster(true), &flow).end,
        End::Delivered { .. }
    ));
}

const KUBE_NAT: &str = "*nat\n\
-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
-A KUBE-SERVICES -d 10.96.169.246/32 -p tcp -m comment --comment \"default/serversvc:cni cluster IP\" -m tcp --dport 80 -j KUBE-SVC-CU7F3MNN62CF4ANP\n\
-A KUBE-SVC-CU7F3MNN62CF4ANP ! -s 10.0.0.0/8 -d 10.96.169.246/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ\n\
-A KUBE-SVC-CU7F3MNN62CF4ANP -m comment --comment \"default/serversvc:cni -> 10.0.0.249:80\" -j KUBE-SEP-CNIWORKER2ZZZZZ\n\
-A KUBE-SEP-CNIWORKER2ZZZZZ -p tcp -m tcp -j DNAT --to-destination 10.0.0.249:80\n";

fn cluster_ip_flow() -> Flow {
    Flow {
        dst: "10.96.169.246".parse().unwrap(),
        proto: 6,
        sport: Some(48858),
        dport: Some(80),
        ..ping()
    }
}

#[test]
fn cluster_ip_is_a_dnat_hop_then_the_pod_path() {
    let mut nodes = cluster(true);
    let mut nf = lab_mangle("worker");
    nf.rules
        .extend(parse_save("iptables-legacy-save", KUBE_NAT).0);
    nf.conntrack = vec![hopscope::source::conntrack::parse_line(
        "ipv4 2 tcp 6 117 SYN_SENT src=10.0.1.52 dst=10.96.169.246 sport=48858 dport=80 src=10.0.0.249 dst=10.0.1.52 sport=80 dport=48858 mark=0 use=1",
    )
    .unwrap()];
    nodes[0].netfilter = nf;
    let t = trace(&nodes, &cluster_ip_flow());
    let text = hopscope::view::trace::render(&t, &Default::default());
    let nat = t.hops.iter().find(|h| h.step == Step::Nat).expect(&text);
    assert_eq!(
        nat.what,
        "PREROUTING nat: DNAT 10.96.169.246:80 → 10.0.0.249:80 (conntrack entry)"
    );
    assert!(
        nat.decided_by.contains("KUBE-SEP-CNIWORKER2ZZZZZ")
            && nat
                .decided_by
                .contains("DNAT --to-destination 10.0.0.249:80"),
        "{text}"
    );
    assert!(
        nat.decisions.iter().any(|d| matches!(
            d,
            hopscope::trace::decision::Decision::Conntrack(c) if c.line.starts_with("ipv4 2 tcp")
        )),
        "{text}"
    );
    // mangle PREROUTING runs before nat PREROUTING: the encrypt-mark rule saw the ClusterIP,
    // not the pod, so (in the lab's iptables stand-in) the DNATed packet crosses unencrypted.
    assert!(!t.hops.iter().any(|h| h.step == Step::Encrypt), "{text}");
    let wire = t.hops.iter().find(|h| h.step == Step::Wire).expect(&text);
    assert!(
        wire.packet
            .starts_with("10.0.1.52 → 10.0.0.249 tcp 48858→80"),
        "{text}"
    );
    assert_eq!(t.end, at_cni_worker2(), "{text}");
}

#[test]
fn conntrack_alone_reveals_nat_the_rules_do_not_show() {
    let mut nodes = cluster(true);
    nodes[0].netfilter.conntrack = vec![hopscope::source::conntrack::parse_line(
        "ipv4 2 tcp 6 86399 ESTABLISHED src=10.0.1.52 dst=10.96.169.246 sport=48858 dport=80 src=10.0.0.249 dst=10.0.1.52 sport=80 dport=48858 [ASSURED] mark=0 use=1",
    )
    .unwrap()];
    let t = trace(&nodes, &cluster_ip_flow());
    let nat = t
        .hops
        .iter()
        .find(|h| h.step == Step::Nat)
        .expect("nat hop");
    assert!(
        nat.decided_by.starts_with("conntrack: ipv4 2 tcp"),
        "{nat:?}"
    );
    assert_eq!(
        nat.what,
        "PREROUTING nat: DNAT 10.96.169.246:80 → 10.0.0.249:80 (conntrack entry)"
    );
}

/// The ping's own conntrack entry on worker (left by earlier pings) belongs to the inner flow:
/// the ESP packet made from it is a flow of its own (the kernel resets the skb's conntrack on
/// transform), so its outer source stays the SA's. Found in the lab, where it made `--follow`
/// expect ESP from the pod's address and see none.
#[test]
fn the_inner_flows_conntrack_entry_does_not_translate_the_esp_packet() {
    let mut nodes = cluster(true);
    nodes[0].netfilter.conntrack = vec![hopscope::source::conntrack::parse_line(
        "ipv4 2 icmp 1 23 src=10.0.1.52 dst=10.0.0.249 type=8 code=0 id=281 [UNREPLIED] src=10.0.0.249 dst=10.0.1.52 type=0 code=0 id=281 mark=0 zone=0 use=2",
    )
    .unwrap()];
    let t = trace(&nodes, &ping());
    let text = hopscope::view::trace::render(&t, &Default::default());
    assert!(
        !t.hops.iter().any(|h| h.what.contains("SNAT")),
        "no translation on the ESP packet: {text}"
    );
    let esp_out: Vec<String> = t
        .hops
        .iter()
        .filter(|h| h.node == "worker" && h.step == Step::Egress)
        .filter_map(|h| h.expect.as_ref())
        .map(|e| format!("{} → {}", e.src, e.dst))
        .collect();
    assert_eq!(
        esp_out,
        ["10.0.1.138 → 10.0.0.40", "10.0.1.138 → 10.0.0.40"],
        "cilium_host and eth0 carry the SA's outer addresses: {text}"
    );
    assert_eq!(t.end, at_cni_worker2(), "{text}");
}

// `trace --json` gives each hop its decision as data beside the prose (#15): the rule and
// route of a lookup, the XFRM policy and SA, Cilium's assumed marks, the counter of a stop.

fn without_sas_on(node: &str) -> Vec<Node> {
    let mut nodes = cluster(false);
    for n in nodes.iter_mut().filter(|n| n.name == node) {
        n.state.xfrm_states.clear();
    }
    nodes
}

/// The decisions of the first hop of `step` on `node`.
fn decisions(t: &serde_json::Value, node: &str, step: &str) -> Vec<serde_json::Value> {
    let hop = t["hops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["node"] == node && h["step"] == step)
        .unwrap_or_else(|| panic!("no {step} hop on {node}"));
    assert!(
        hop["decided_by"].is_string(),
        "the prose stays beside the data"
    );
    hop["decisions"].as_array().unwrap().clone()
}

fn kind<'a>(ds: &'a [serde_json::Value], k: &str) -> &'a serde_json::Value {
    ds.iter()
        .find(|d| d["kind"] == k)
        .unwrap_or_else(|| panic!("no {k} decision in {ds:?}"))
}

#[test]
fn every_deciding_hop_carries_its_decision_as_data() {
    let t = serde_json::to_value(trace(&cluster(false), &ping())).unwrap();

    let mark = decisions(&t, "worker", "mark");
    assert!(
        kind(&mark, "assumption")["text"]
            .as_str()
            .unwrap()
            .contains("bpf_lxc")
    );

    // The route hop names the deciding rule and the chosen route as numbers and names.
    let route = decisions(&t, "worker", "route");
    let rule = kind(&route, "rule");
    assert!(rule["pref"].is_u64(), "{rule}");
    assert_eq!(rule["action"], "lookup", "{rule}");
    let r = kind(&route, "route");
    assert!(r["table"].is_u64() && r["dst"].is_string(), "{r}");
    assert_eq!(
        r["table"], rule["table"],
        "the rule's table holds the route"
    );

    let pol = kind(&decisions(&t, "worker", "xfrm_policy"), "xfrm_policy").clone();
    assert_eq!(pol["dir"], "out");
    assert!(pol["index"].is_u64() && pol["priority"].is_u64());
    assert_eq!(pol["selector"]["dst"], "10.0.0.0/24", "{pol}");
    assert_eq!(pol["templates"][0]["reqid"], 1, "{pol}");

    let sa = kind(&decisions(&t, "worker", "xfrm_state"), "xfrm_sa").clone();
    assert_eq!(
        (&sa["spi"], &sa["reqid"], &sa["mode"], &sa["dst"]),
        (
            &serde_json::json!(3),
            &serde_json::json!(1),
            &serde_json::json!("tunnel"),
            &serde_json::json!(pol["templates"][0]["dst"])
        ),
        "{sa}"
    );

    let egress = decisions(&t, "worker", "egress");
    assert_eq!(kind(&egress, "route")["dev"], "cilium_host");
    let wire = decisions(&t, "worker", "wire");
    assert_eq!(kind(&wire, "address")["node"], "worker2");
}

#[test]
fn a_stop_names_its_counter_as_data() {
    let t = serde_json::to_value(trace(&without_sas_on("worker"), &ping())).unwrap();
    let stop = decisions(&t, "worker", "stop");
    assert_eq!(
        kind(&stop, "counter"),
        &serde_json::json!({"kind": "counter", "name": "XfrmOutNoStates", "delta": null})
    );
}
