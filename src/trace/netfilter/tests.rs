use super::*;
use crate::model::fixtures::seed_node;
use crate::source::netfilter::parse_save;

fn nf(text: &str) -> Netfilter {
    let (rules, policies) = parse_save("iptables-legacy-save", text);
    Netfilter {
        backends: vec!["iptables-legacy-save".into()],
        rules,
        policies,
        ..Default::default()
    }
}

fn pkt(src: &str, dst: &str, proto: u8, dport: Option<u16>, iif: &str) -> NfPacket {
    NfPacket {
        sport: Some(40000),
        dport,
        iif: Some(iif.into()),
        ..NfPacket::new(src.parse().unwrap(), dst.parse().unwrap(), proto)
    }
}

const NODEPORT: &str = include_str!("../../../tests/fixtures/kube-proxy/iptables-nodeport.save");

#[test]
fn addrtype_local_comes_from_the_local_table() {
    let st = seed_node("worker");
    assert_eq!(addr_type(&st, &"172.18.0.3".parse().unwrap()), "LOCAL");
    assert_eq!(addr_type(&st, &"10.0.1.138".parse().unwrap()), "LOCAL");
    assert_eq!(addr_type(&st, &"172.18.0.4".parse().unwrap()), "UNICAST");
    assert_eq!(addr_type(&st, &"224.0.0.1".parse().unwrap()), "MULTICAST");
}

#[test]
fn nodeport_is_dnated_through_kube_nodeports_and_marked_for_masquerade() {
    let st = seed_node("worker");
    let n = nf(NODEPORT);
    let node = Node { state: &st, nf: &n };
    let mut p = pkt("10.0.1.52", "172.18.0.3", 6, Some(32000), "lxcda1dd0af135e");
    let r = run_hook(&node, Hook::Prerouting, &mut p);
    assert_eq!(r.verdict, Verdict::Accept);
    assert_eq!(
        (p.dst.to_string(), p.dport),
        ("10.0.1.103".into(), Some(80)),
        "no conntrack entry: the first endpoint"
    );
    assert_eq!(
        p.mark & 0x4000,
        0x4000,
        "KUBE-EXT marks NodePort traffic for masquerade"
    );
    let chains: Vec<&str> = r.decisions.iter().map(|d| d.chain.as_str()).collect();
    assert!(chains.contains(&"KUBE-NODEPORTS"), "{chains:?}");
    let pick = r
        .decisions
        .iter()
        .find(|d| !d.alternatives.is_empty())
        .unwrap();
    assert_eq!(pick.alternatives.len(), 2, "{pick:?}");
    assert!(
        pick.alternatives[0].contains("10.0.1.103:80") && pick.alternatives[0].contains("50.0%"),
        "{pick:?}"
    );
    assert!(
        pick.alternatives[1].contains("10.0.0.249:80") && pick.alternatives[1].contains("50.0%"),
        "{pick:?}"
    );
    // POSTROUTING: masquerade to the out device's address.
    p.oif = Some("eth0".into());
    p.dst = "10.0.0.249".parse().unwrap();
    let r = run_hook(&node, Hook::Postrouting, &mut p);
    assert_eq!(p.src.to_string(), "172.18.0.3", "{:#?}", r.decisions);
    assert_eq!(
        p.mark & 0x4000,
        0,
        "KUBE-POSTROUTING clears the masquerade bit"
    );
}

#[test]
fn conntrack_entry_picks_the_endpoint_and_the_translation() {
    let st = seed_node("worker");
    let mut n = nf(NODEPORT);
    n.conntrack = vec![crate::source::conntrack::parse_line(
        "ipv4     2 tcp      6 118 TIME_WAIT src=10.0.1.52 dst=172.18.0.3 sport=45404 dport=32000 src=10.0.0.249 dst=172.18.0.3 sport=80 dport=50772 [ASSURED] mark=0 zone=0 use=2",
    )
    .unwrap()];
    let node = Node { state: &st, nf: &n };
    let mut p = pkt("10.0.1.52", "172.18.0.3", 6, Some(32000), "lxcda1dd0af135e");
    p.sport = None;
    let r = run_hook(&node, Hook::Prerouting, &mut p);
    assert_eq!(
        (p.dst.to_string(), p.dport),
        ("10.0.0.249".into(), Some(80))
    );
    let pick = r
        .decisions
        .iter()
        .find(|d| !d.alternatives.is_empty())
        .unwrap();
    assert!(
        pick.effect.contains("KUBE-SEP-CNIWORKER2ZZZZZ")
            && pick.effect.contains("conntrack entry took"),
        "{pick:?}"
    );
    let ct = r
        .decisions
        .iter()
        .find(|d| d.backend == "conntrack" && d.target == "DNAT")
        .unwrap();
    assert_eq!(ct.conntrack.as_ref().unwrap().reply_sport, Some(80));
    p.oif = Some("eth0".into());
    run_hook(&node, Hook::Postrouting, &mut p);
    assert_eq!(
        (p.src.to_string(), p.sport),
        ("172.18.0.3".into(), Some(50772)),
        "SNAT from the entry"
    );
}

#[test]
fn kube_firewall_drop_mark_stops_with_the_rule() {
    let st = seed_node("worker");
    let n = nf(NODEPORT);
    let node = Node { state: &st, nf: &n };
    // Cilium key ID 8 sets 0x8e00: bit 0x8000 is kube-proxy's drop mark.
    let mut p = pkt("10.0.0.249", "172.18.0.3", 6, Some(10250), "eth0");
    p.mark = 0x8e00;
    let r = run_hook(&node, Hook::Input, &mut p);
    let Verdict::Drop { decision, .. } = r.verdict else {
        panic!("{:#?}", r.decisions)
    };
    assert!(
        r.decisions[decision]
            .rule
            .contains("--mark 0x8000/0x8000 -j DROP")
    );
    assert_eq!(r.decisions[decision].chain, "KUBE-FIREWALL");
}

#[test]
fn reject_without_endpoints_and_drop_policy() {
    let st = seed_node("worker");
    let n = nf(NODEPORT);
    let node = Node { state: &st, nf: &n };
    let mut p = pkt("10.0.1.52", "10.96.33.33", 6, Some(80), "lxcda1dd0af135e");
    p.oif = Some("eth0".into());
    let r = run_hook(&node, Hook::Forward, &mut p);
    assert!(
        matches!(r.verdict, Verdict::Drop { ref how, .. } if how.contains("icmp-port-unreachable")),
        "{r:#?}"
    );
    let n = nf("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -i eth0 -j ACCEPT\nCOMMIT\n");
    let node = Node { state: &st, nf: &n };
    let mut p = pkt("10.0.1.52", "10.0.0.249", 1, None, "lxc1");
    let r = run_hook(&node, Hook::Forward, &mut p);
    assert!(
        matches!(r.verdict, Verdict::Drop { ref how, .. } if how.contains("policy")),
        "{r:#?}"
    );
    let mut p = pkt("10.0.1.52", "10.0.0.249", 1, None, "eth0");
    assert_eq!(
        run_hook(&node, Hook::Forward, &mut p).verdict,
        Verdict::Accept
    );
}

#[test]
fn unknown_matches_are_visible_not_silent() {
    let st = seed_node("worker");
    let n = nf(
        "*filter\n-A INPUT -m owner --uid-owner 0 -j DROP\n-A INPUT -p udp -m owner --uid-owner 0 -j DROP\nCOMMIT\n",
    );
    let node = Node { state: &st, nf: &n };
    let mut p = pkt("10.0.1.52", "172.18.0.3", 6, Some(22), "eth0");
    let r = run_hook(&node, Hook::Input, &mut p);
    assert_eq!(r.verdict, Verdict::Accept);
    assert_eq!(
        r.decisions.len(),
        1,
        "the udp rule fails on a known match: no uncertainty to report"
    );
    assert!(
        r.decisions[0]
            .uncertain
            .as_deref()
            .unwrap()
            .contains("--uid-owner 0")
    );
    assert!(r.decisions[0].effect.contains("if it does, DROP"));
}

#[test]
fn marks_connmarks_notrack_multiport_sets_and_recent() {
    let st = seed_node("worker");
    let mut n = nf("*raw\n-A PREROUTING -p udp -j NOTRACK\nCOMMIT\n*mangle\n\
-A PREROUTING -p tcp -m multiport --dports 22,8000:8100 -j CONNMARK --set-xmark 0x7/0xff\n\
-A PREROUTING -m connmark --mark 0x7/0xff -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff\n\
-A PREROUTING -m set --match-set clients src -j MARK --set-xmark 0x100/0x100\n\
-A PREROUTING -m conntrack --ctstate NEW -m recent --rcheck --name seen --rsource -j MARK --set-xmark 0x200/0x200\n\
COMMIT\n*nat\n-A PREROUTING -p udp -j DNAT --to-destination 10.9.9.9\nCOMMIT\n");
    n.ipsets = crate::source::netfilter::parse_ipset_save(
        "create clients hash:net family inet\nadd clients 10.0.1.0/24\n",
    );
    n.recent = vec![crate::model::RecentList {
        name: "seen".into(),
        addrs: vec!["10.0.1.52".parse().unwrap()],
    }];
    let node = Node { state: &st, nf: &n };
    let mut p = pkt("10.0.1.52", "172.18.0.3", 6, Some(8080), "eth0");
    run_hook(&node, Hook::Prerouting, &mut p);
    assert_eq!(p.ct.mark, 7);
    assert_eq!(
        p.mark, 0x307,
        "restore-mark, ipset member, recent list member"
    );
    let mut p = pkt("10.0.2.1", "172.18.0.3", 17, Some(53), "eth0");
    run_hook(&node, Hook::Prerouting, &mut p);
    assert_eq!(p.dst.to_string(), "172.18.0.3", "untracked: no NAT");
    assert_eq!(p.mark, 0, "10.0.2.1 is not in the set");
}

#[test]
fn random_shares_follow_kube_proxys_probabilities() {
    let s = shares(&[1.0 / 3.0, 0.5, 1.0]);
    for x in s {
        assert!((x - 1.0 / 3.0).abs() < 1e-9);
    }
}
