//! The trace and the doctor over real kernel state of the route-based and tunnelled layouts: snapshots the lab
//! took of its layouts-vxlan, layouts-xfrmi, layouts-vti and layouts-natt-mismatch netns pairs
//! (tests/fixtures/layouts/, keys redacted), traced here without the lab. tests/lab_layouts.rs
//! checks the same paths against the live kernel with `--follow`.

use hopscope::model::{Netfilter, NodeState};
use hopscope::trace::path::{End, Flow, Node, Step, Trace, trace};
use std::path::Path;

fn node(file: &str) -> Node {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/layouts")
        .join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let state: NodeState = serde_json::from_str(&text).unwrap();
    Node {
        name: file.trim_end_matches(".json").to_string(),
        state,
        netfilter: Netfilter::default(),
    }
}

fn ping(src: &str, dst: &str, nodes: &[&str]) -> Trace {
    let nodes: Vec<Node> = nodes.iter().map(|n| node(&format!("{n}.json"))).collect();
    let flow = Flow {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto: 1,
        sport: None,
        dport: None,
        mark: None,
        iif: None,
        size: 84,
    };
    trace(&nodes, &flow)
}

fn has(t: &Trace, node: &str, step: Step, dev: Option<&str>, what: &str) -> bool {
    t.hops.iter().any(|h| {
        h.node == node && h.step == step && h.dev.as_deref() == dev && h.what.contains(what)
    })
}

fn delivered(t: &Trace, node: &str) -> bool {
    matches!(&t.end, End::Delivered { node: n, .. } if n == node)
}

fn show(t: &Trace) -> String {
    t.hops
        .iter()
        .map(|h| {
            format!(
                "{} {:?} {:?} {} | {}\n",
                h.node, h.step, h.dev, h.packet, h.what
            )
        })
        .collect::<String>()
        + &format!("{:?}", t.end)
}

#[test]
fn vxlan_encapsulates_routes_again_and_decapsulates_on_the_peer() {
    let t = ping("10.65.0.1", "10.65.0.2", &["ly-va", "ly-vb"]);
    let s = show(&t);
    assert!(
        has(
            &t,
            "ly-va",
            Step::Tunnel,
            Some("cilium_vxlan"),
            "UDP 192.168.65.1 → 192.168.65.2:8472, vni 2"
        ),
        "{s}"
    );
    // the outer UDP packet has its own route and XFRM lookup (the policy for UDP 8472)
    let after = t.hops.iter().position(|h| h.step == Step::Tunnel).unwrap();
    assert!(
        t.hops[after..]
            .iter()
            .any(|h| h.step == Step::XfrmState && h.what.contains("spi 0x5")),
        "{s}"
    );
    assert!(
        has(
            &t,
            "ly-vb",
            Step::Tunnel,
            Some("cilium_vxlan"),
            "decapsulates"
        ),
        "{s}"
    );
    assert!(
        has(&t, "ly-vb", Step::Ingress, Some("cilium_vxlan"), ""),
        "{s}"
    );
    assert!(delivered(&t, "ly-vb"), "{s}");
    // 84 + VXLAN/UDP/Ethernet 30 + outer IPv4 20 = 134 inside ESP
    assert!(
        t.hops
            .iter()
            .any(|h| h.step == Step::Tunnel && h.packet.contains("len 134")),
        "{s}"
    );
}

#[test]
fn xfrm_interface_looks_up_with_its_if_id_and_receives_onto_itself() {
    let t = ping("10.62.1.1", "10.62.2.1", &["ly-xa", "ly-xb"]);
    let s = show(&t);
    // the route's own lookup (if_id 0) finds nothing: policies have if_id 42
    let pol = t
        .hops
        .iter()
        .position(|h| h.step == Step::XfrmPolicy)
        .unwrap();
    let tun = t.hops.iter().position(|h| h.step == Step::Tunnel).unwrap();
    assert!(tun < pol, "{s}");
    assert!(has(&t, "ly-xa", Step::Egress, Some("ipsec0"), ""), "{s}");
    assert!(
        has(&t, "ly-xa", Step::Tunnel, Some("ipsec0"), "if_id 42"),
        "{s}"
    );
    assert!(
        has(&t, "ly-xb", Step::Decrypt, Some("ipsec0"), "if_id 42"),
        "{s}"
    );
    assert!(delivered(&t, "ly-xb"), "{s}");
    // without the interface's if_id, the same SAs and policies select nothing
    let mut nodes = vec![node("ly-xa.json"), node("ly-xb.json")];
    for l in &mut nodes[0].state.links {
        l.tunnel = None;
    }
    let flow = t.flow.clone();
    let t2 = trace(&nodes, &flow);
    assert!(
        !t2.hops.iter().any(|h| h.step == Step::Encrypt),
        "{}",
        show(&t2)
    );
}

#[test]
fn vti_sends_with_its_okey_and_receives_with_its_ikey() {
    let t = ping("10.67.1.1", "10.67.2.1", &["ly-ia", "ly-ib"]);
    let s = show(&t);
    assert!(
        has(&t, "ly-ia", Step::Tunnel, Some("vti0"), "okey 0x10"),
        "{s}"
    );
    assert!(
        t.hops
            .iter()
            .any(|h| h.step == Step::XfrmState && h.what.contains("spi 0x6712")),
        "{s}"
    );
    assert!(
        has(&t, "ly-ib", Step::Decrypt, Some("vti0"), "VTI vti0"),
        "{s}"
    );
    assert!(delivered(&t, "ly-ib"), "{s}");
    // ly-ib's ikey is what finds its in SA (mark 0x10): with another ikey, XfrmInNoStates
    let mut nodes = vec![node("ly-ia.json"), node("ly-ib.json")];
    for l in &mut nodes[1].state.links {
        if let Some(hopscope::model::Tunnel::Vti { ikey, .. }) = &mut l.tunnel {
            *ikey = 0x30;
        }
    }
    let flow = t.flow.clone();
    let t2 = trace(&nodes, &flow);
    assert!(
        matches!(&t2.end, End::Stopped { counter: Some(c), .. } if c == "XfrmInNoStates"),
        "{}",
        show(&t2)
    );
}

#[test]
fn nat_t_to_a_port_without_the_ike_socket_stops_there() {
    let t = ping("192.168.68.1", "192.168.68.2", &["ly-ma", "ly-mb"]);
    let s = show(&t);
    match &t.end {
        End::Stopped {
            node,
            reason,
            counter,
        } => {
            assert_eq!(node, "ly-mb", "{s}");
            assert_eq!(counter.as_deref(), Some("UdpNoPorts"), "{s}");
            assert!(
                reason.contains("port 4501") && reason.contains("on 4500"),
                "{s}"
            );
        }
        e => panic!("{e:?}\n{s}"),
    }
}

// ---------------------------------------------------------------------------------------------
// the doctor over the same real states

fn doctor(names: &[&str]) -> hopscope::doctor::Report {
    let states: Vec<Node> = names.iter().map(|n| node(&format!("{n}.json"))).collect();
    doctor_of(&states)
}

/// The doctor over these nodes' states alone (no counters, netfilter, pods or packets).
fn doctor_of(states: &[Node]) -> hopscope::doctor::Report {
    use hopscope::doctor::{KeyHasher, NodeInput, examine};
    let inputs: Vec<NodeInput> = states
        .iter()
        .map(|n| NodeInput {
            name: n.name.clone(),
            state: &n.state,
            before: None,
            netfilter: None,
            pods: &[],
            seen: &[],
        })
        .collect();
    examine(&inputs, &KeyHasher::new(b"test".to_vec()))
}

fn loud(r: &hopscope::doctor::Report) -> Vec<String> {
    use hopscope::doctor::Severity;
    r.findings
        .iter()
        .filter(|f| matches!(f.severity, Severity::Fail | Severity::Warn))
        .map(|f| format!("{} {} {}", f.node, f.id, f.what))
        .collect()
}

#[test]
fn doctor_is_silent_on_the_healthy_route_based_and_tunnelled_layouts() {
    for pair in [["ly-va", "ly-vb"], ["ly-xa", "ly-xb"], ["ly-ia", "ly-ib"]] {
        let r = doctor(&pair);
        assert!(loud(&r).is_empty(), "{pair:?}: {:#?}", loud(&r));
        assert_eq!(r.exit_code, 0, "{pair:?}");
    }
}

#[test]
fn doctor_names_the_nat_t_port_mismatch() {
    let r = doctor(&["ly-ma", "ly-mb"]);
    assert!(
        r.findings
            .iter()
            .any(|f| f.id == "in-sa-encap-port" && f.node == "ly-mb" && f.what.contains("4501")),
        "{:#?}",
        loud(&r)
    );
}

// ---------------------------------------------------------------------------------------------
// disable_policy / disable_xfrm on the VTI pair (what the lab's kernel does with each: see
// docs/layouts/route-based.md; tests/lab_layouts.rs checks them on the live kernel)

/// ly-ia/ly-ib with ly-ib's vti0 devconf set, and optionally an unmarked in policy on ly-ib
/// for the site's traffic (a copy of its VTI in policy without the mark).
fn vti_pair(disable_policy: bool, unmarked_in: bool, disable_xfrm_on_ia: bool) -> Vec<Node> {
    use hopscope::model::{Ipv4XfrmConf, Tunnel};
    let mut nodes = vec![node("ly-ia.json"), node("ly-ib.json")];
    for (i, n) in nodes.iter_mut().enumerate() {
        for l in &mut n.state.links {
            if matches!(l.tunnel, Some(Tunnel::Vti { .. })) && l.name == "vti0" {
                l.xfrm_conf.ipv4 = Some(Ipv4XfrmConf {
                    disable_policy: i == 0 || disable_policy,
                    disable_xfrm: i == 0 && disable_xfrm_on_ia,
                });
            }
        }
    }
    if unmarked_in {
        let st = &mut nodes[1].state;
        let mut p = st
            .xfrm_policies
            .iter()
            .find(|p| p.dir == hopscope::model::PolicyDir::In && p.mark.is_some())
            .expect("ly-ib's VTI in policy")
            .clone();
        p.mark = None;
        st.xfrm_policies.push(p);
    }
    nodes
}

fn vti_ping(nodes: &[Node]) -> Trace {
    let flow = ping("10.67.1.1", "10.67.2.1", &["ly-ia", "ly-ib"]).flow;
    trace(nodes, &flow)
}

#[test]
fn vti_decrypted_packet_meets_its_policy_check_again_without_disable_policy() {
    // the fixture's dump had no devconf: assumed on, and said so
    let t = ping("10.67.1.1", "10.67.2.1", &["ly-ia", "ly-ib"]);
    assert!(
        has(
            &t,
            "ly-ib",
            Step::PolicyCheck,
            Some("vti0"),
            "disable_policy assumed on on VTI vti0"
        ),
        "{}",
        show(&t)
    );
    // on: no second check, even with an unmarked policy that would drop it; off: checked
    // again with mark 0, and the VTI's marked policy does not match, so it passes
    for (disable_policy, unmarked_in, check) in [
        (
            true,
            true,
            "no in policy check: disable_policy is on on vti0",
        ),
        (
            false,
            false,
            "no in policy matches (mark 0x0): allowed (the VTI left no transform on record)",
        ),
    ] {
        let t = vti_ping(&vti_pair(disable_policy, unmarked_in, false));
        let s = show(&t);
        assert!(
            has(&t, "ly-ib", Step::PolicyCheck, Some("vti0"), check),
            "{s}"
        );
        assert!(delivered(&t, "ly-ib"), "{s}");
    }
    // off, and an unmarked policy that requires ESP: dropped
    let t = vti_ping(&vti_pair(false, true, false));
    let s = show(&t);
    assert!(
        matches!(&t.end, End::Stopped { node, counter: Some(c), reason }
            if node == "ly-ib" && c == "XfrmInTmplMismatch" && reason.contains("disable_policy is off")),
        "{s}"
    );
}

#[test]
fn vti_with_disable_xfrm_drops_what_it_sends() {
    let t = vti_ping(&vti_pair(true, false, true));
    assert!(
        matches!(&t.end, End::Stopped { node, counter: Some(c), .. }
            if node == "ly-ia" && c == "vti0 tx_carrier_errors"),
        "{}",
        show(&t)
    );
}

#[test]
fn doctor_names_the_vti_policy_check_and_disable_xfrm() {
    let ids = |nodes: &[Node]| -> Vec<(String, String)> {
        loud(&doctor_of(nodes))
            .iter()
            .map(|f| {
                let mut w = f.split(' ');
                (w.next().unwrap().to_string(), w.next().unwrap().to_string())
            })
            .collect()
    };
    assert_eq!(ids(&vti_pair(false, false, false)), vec![]);
    assert_eq!(ids(&vti_pair(true, true, false)), vec![]);
    assert_eq!(
        ids(&vti_pair(false, true, false)),
        vec![("ly-ib".to_string(), "vti-policy-check".to_string())]
    );
    assert_eq!(
        ids(&vti_pair(true, false, true)),
        vec![("ly-ia".to_string(), "vti-disable-xfrm".to_string())]
    );
}
