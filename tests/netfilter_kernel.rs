//! The trace's netfilter verdict and translation must be the kernel's: random iptables rule
//! sets (mangle MARK, nat DNAT/SNAT/MASQUERADE, filter DROP/REJECT/ACCEPT over addrtype,
//! multiport, mark, conntrack state, comment, statistic 0/1, source prefixes) on a node netns
//! between a client and a server netns; a real TCP SYN is sent through it, and the rules the
//! kernel's counters say it hit (MARK, DNAT, SNAT/MASQUERADE, ACCEPT, DROP/REJECT) and whether
//! it was stopped are compared with the rules the trace says decided — as trace_fib_kernel.rs does with `ip route get`.
//! The case count is bounded (24) so the whole run stays well under a minute.

mod common;
use common::{Netns, require_root, run};
use hopscope::source::{Target, collect, collect_netfilter};
use hopscope::trace::path::{End, Flow, Node, Trace, trace};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// node: c1 10.9.1.1/24 towards the client, s1 10.9.2.1/24 towards the server (which also
/// answers for 10.9.3.0/24 and holds 10.9.2.3, 10.9.2.4 for DNAT).
struct Lab {
    cli: Netns,
    node: Netns,
    _srv: Netns,
}

fn lab() -> Lab {
    let (cli, node, srv) = (Netns::new("nfc"), Netns::new("nfn"), Netns::new("nfs"));
    run(
        "ip",
        &[
            "link", "add", "c0", "netns", &cli.name, "type", "veth", "peer", "name", "c1", "netns",
            &node.name,
        ],
    );
    run(
        "ip",
        &[
            "link", "add", "s0", "netns", &srv.name, "type", "veth", "peer", "name", "s1", "netns",
            &node.name,
        ],
    );
    cli.ip_batch("addr add 10.9.1.2/24 dev c0\naddr add fd09:1::2/64 dev c0\nlink set c0 up\nlink set lo up\nroute add default via 10.9.1.1\nroute add default via fd09:1::1\n");
    node.ip_batch("addr add 10.9.1.1/24 dev c1\naddr add 10.9.2.1/24 dev s1\naddr add fd09:1::1/64 dev c1\naddr add fd09:2::1/64 dev s1\nlink set c1 up\nlink set s1 up\nlink set lo up\nroute add 10.9.3.0/24 via 10.9.2.2\n");
    srv.ip_batch("addr add 10.9.2.2/24 dev s0\naddr add 10.9.2.3/24 dev s0\naddr add 10.9.2.4/24 dev s0\naddr add 10.9.3.3/24 dev s0\naddr add fd09:2::2/64 dev s0\naddr add fd09:2::3/64 dev s0\nlink set s0 up\nlink set lo up\nroute add default via 10.9.2.1\nroute add default via fd09:2::1\n");
    run(
        "ip",
        &[
            "netns",
            "exec",
            &node.name,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ],
    );
    // The server never answers: only the client's SYN crosses the node's rules. Its IPv6
    // INPUT counts what arrives, translated, per rule.
    restore(&srv, "*filter\n-A INPUT -j DROP\nCOMMIT\n");
    restore_with(
        &srv,
        "ip6tables-legacy-restore",
        "*filter\n-A INPUT -s fd09:2::1 -d fd09:2::3 -p tcp --dport 8080 -j DROP\n-A INPUT -p tcp -j DROP\nCOMMIT\n",
    );
    Lab {
        cli,
        node,
        _srv: srv,
    }
}

#[derive(Debug, Clone)]
enum Rule {
    Mark { dport: Option<u16>, value: u32 },
    Dnat { cond: Cond, to: (u8, u16) },
    Drop { cond: Cond, reject: bool },
    Accept { cond: Cond },
    Snat { masquerade: bool, mark: Option<u32> },
}

#[derive(Debug, Clone)]
struct Cond {
    dports: Vec<u16>,
    local: Option<bool>,
    mark: Option<u32>,
    not_src: bool,
    stat: Option<bool>,
    new_only: bool,
}

const PORTS: [u16; 4] = [80, 443, 8080, 9000];

fn cond() -> impl Strategy<Value = Cond> {
    (
        prop::collection::vec(prop::sample::select(PORTS.to_vec()), 0..3),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec![0x10u32, 0x20])),
        prop::bool::weighted(0.2),
        prop::option::of(any::<bool>()),
        any::<bool>(),
    )
        .prop_map(|(dports, local, mark, not_src, stat, new_only)| Cond {
            dports,
            local,
            mark,
            not_src,
            stat,
            new_only,
        })
}

fn rule() -> impl Strategy<Value = Rule> {
    prop_oneof![
        (
            prop::option::of(prop::sample::select(PORTS.to_vec())),
            prop::sample::select(vec![0x10u32, 0x20])
        )
            .prop_map(|(dport, value)| Rule::Mark { dport, value }),
        (cond(), (2..5u8, prop::sample::select(vec![80u16, 8443])))
            .prop_map(|(cond, to)| Rule::Dnat { cond, to }),
        (cond(), any::<bool>()).prop_map(|(cond, reject)| Rule::Drop { cond, reject }),
        cond().prop_map(|cond| Rule::Accept { cond }),
        (
            any::<bool>(),
            prop::option::of(prop::sample::select(vec![0x10u32, 0x20]))
        )
            .prop_map(|(masquerade, mark)| Rule::Snat { masquerade, mark }),
    ]
}

fn matches(c: &Cond, with_state: bool) -> String {
    let mut s = String::from(" -p tcp");
    match c.dports.len() {
        0 => {}
        1 => s += &format!(" -m tcp --dport {}", c.dports[0]),
        _ => {
            s += &format!(
                " -m multiport --dports {}",
                c.dports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
    }
    if let Some(l) = c.local {
        s += &format!(" -m addrtype {}--dst-type LOCAL", if l { "" } else { "! " });
    }
    if let Some(m) = c.mark {
        s += &format!(" -m mark --mark {m:#x}/{m:#x}");
    }
    if c.not_src {
        s += " ! -s 10.9.1.0/24";
    }
    if let Some(st) = c.stat {
        s += &format!(
            " -m statistic --mode random --probability {}",
            if st { "1.0" } else { "0.0" }
        );
    }
    if c.new_only && with_state {
        s += " -m conntrack --ctstate NEW";
    }
    s += " -m comment --comment \"case rule\"";
    s
}

fn rules_text(rules: &[Rule]) -> String {
    let (mut mangle, mut nat, mut filter) = (String::new(), String::new(), String::new());
    for r in rules {
        match r {
            Rule::Mark { dport, value } => {
                let d = dport
                    .map(|p| format!(" -p tcp -m tcp --dport {p}"))
                    .unwrap_or_default();
                mangle += &format!("-A PREROUTING{d} -j MARK --set-xmark {value:#x}/{value:#x}\n");
            }
            Rule::Dnat { cond, to } => {
                nat += &format!(
                    "-A PREROUTING{} -j DNAT --to-destination 10.9.2.{}:{}\n",
                    matches(cond, false),
                    to.0,
                    to.1
                )
            }
            Rule::Drop { cond, reject } => {
                let t = if *reject {
                    "REJECT --reject-with tcp-reset"
                } else {
                    "DROP"
                };
                filter += &format!("-A FORWARD{} -j {t}\n", matches(cond, true));
            }
            Rule::Accept { cond } => {
                filter += &format!("-A FORWARD{} -j ACCEPT\n", matches(cond, true))
            }
            Rule::Snat { masquerade, mark } => {
                let m = mark
                    .map(|m| format!(" -m mark --mark {m:#x}/{m:#x}"))
                    .unwrap_or_default();
                let t = if *masquerade {
                    "MASQUERADE".to_string()
                } else {
                    "SNAT --to-source 10.9.2.1".to_string()
                };
                nat += &format!("-A POSTROUTING -o s1{m} -j {t}\n");
            }
        }
    }
    format!("*mangle\n{mangle}COMMIT\n*nat\n{nat}COMMIT\n*filter\n{filter}COMMIT\n")
}

fn restore(ns: &Netns, text: &str) {
    restore_with(ns, "iptables-legacy-restore", text)
}

fn restore_with(ns: &Netns, tool: &str, text: &str) {
    use std::io::Write;
    let mut c = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, tool])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    assert!(c.wait().unwrap().success(), "{tool}:\n{text}");
}

#[test]
fn netfilter_verdict_and_translation_match_the_kernel() {
    require_root();
    let lab = lab();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let next = std::cell::Cell::new(41000u16);
    let strategy = (
        prop::collection::vec(rule(), 1..7),
        prop::sample::select(vec!["10.9.1.1", "10.9.3.3"]),
        prop::sample::select(PORTS.to_vec()),
    );
    runner
        .run(&strategy, |(rules, dst, dport)| {
            let sport = next.get() + 1;
            next.set(sport);
            let text = rules_text(&rules);
            restore(&lab.node, &text);
            let flow = Flow {
                src: "10.9.1.2".parse().unwrap(),
                dst: dst.parse().unwrap(),
                proto: 6,
                sport: Some(sport),
                dport: Some(dport),
                mark: Some(0),
                iif: Some("c1".into()),
                size: 60,
            };
            let (t, shown) = trace_on(&lab, &flow);
            send(&lab, "tcp", dst, dport, Some(sport));
            // The rules the kernel's counters say the SYN hit, against the trace's decisions.
            let kernel = kernel_hits(&lab.node, "iptables-legacy-save");
            prop_assert_eq!(&kernel, &traced_rules(&t), "rules:\n{}\n{}", text, shown);
            let stopped = matches!(t.end, End::Stopped { .. });
            let dropped = kernel
                .iter()
                .any(|r| r.contains("-j DROP") || r.contains("-j REJECT"));
            prop_assert_eq!(stopped, dropped, "{}", shown);
            Ok(())
        })
        .unwrap();
}

/// The node as hopscope reads it, and the trace of `flow` over it (with its text).
fn trace_on(lab: &Lab, flow: &Flow) -> (Trace, String) {
    let target = Target::Netns(lab.node.name.clone());
    let nodes = vec![Node {
        name: "node".into(),
        state: collect(&target).unwrap(),
        netfilter: collect_netfilter(&target).unwrap(),
    }];
    let t = trace(&nodes, flow);
    let shown = hopscope::view::trace::render(&t, &Default::default());
    (t, shown)
}

/// One packet from the client: a TCP SYN (busybox nc; nobody answers) or a UDP datagram
/// (bash's /dev/udp: busybox nc has no UDP).
fn send(lab: &Lab, proto: &str, dst: &str, dport: u16, sport: Option<u16>) {
    let dport = dport.to_string();
    let udp = format!("echo x > /dev/udp/{dst}/{dport}");
    let sport = sport.map(|p| p.to_string());
    let mut args = vec!["netns", "exec", &lab.cli.name];
    if proto == "udp" {
        args.extend(["bash", "-c", &udp]);
    } else {
        args.extend(["busybox", "nc", "-w", "1"]);
        if let Some(p) = &sport {
            args.extend(["-p", p]);
        }
        args.extend([dst, &dport]);
    }
    let _ = std::process::Command::new("ip")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output();
}

fn deciding(rule: &str) -> bool {
    [
        "-j DNAT",
        "-j SNAT",
        "-j MASQUERADE",
        "-j DROP",
        "-j REJECT",
        "-j MARK",
        "-j ACCEPT",
    ]
    .iter()
    .any(|t| rule.contains(t))
}

/// The deciding rules whose counters moved, as `SAVE -c` (a `*-save` tool) prints them.
fn kernel_hits(ns: &Netns, save: &str) -> Vec<String> {
    let counters = run("ip", &["netns", "exec", &ns.name, save, "-c"]);
    let mut hit: Vec<String> = counters
        .lines()
        .filter(|l| l.starts_with('[') && !l.starts_with("[0:") && deciding(l))
        .filter_map(|l| l.split_once("] ").map(|(_, r)| r.to_string()))
        .collect();
    hit.sort();
    hit.dedup();
    hit
}

/// The deciding rules the trace says the packet hit.
fn traced_rules(t: &Trace) -> Vec<String> {
    let mut rules: Vec<String> = t
        .hops
        .iter()
        .flat_map(|h| &h.decisions)
        .filter_map(|d| match d {
            hopscope::trace::decision::Decision::Netfilter(n)
                if !n.effect.starts_with("not taken") && deciding(&n.rule) =>
            {
                Some(n.rule.clone())
            }
            _ => None,
        })
        .collect();
    rules.sort();
    rules.dedup();
    rules
}

fn tcp_flow(src: &str, dst: &str, dport: u16) -> Flow {
    flow(6, src, dst, dport)
}

fn flow(proto: u8, src: &str, dst: &str, dport: u16) -> Flow {
    Flow {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto,
        sport: Some(40000), // the kernel's is random (busybox nc ignores -p): not compared
        dport: Some(dport),
        mark: Some(0),
        iif: Some("c1".into()),
        size: 60,
    }
}

/// IPv6 flows meet ip6tables' rules (DNAT to [fd09:2::3]:8080, MASQUERADE to fd09:2::1 of
/// s1's two addresses, a FORWARD drop) and never iptables' IPv4 ones, and IPv4 flows the
/// reverse: the rules the
/// kernel's counters moved are the trace's, and the server's counters say the SYN arrived
/// translated as the trace predicts.
#[test]
fn ip6tables_rules_decide_ipv6_flows_and_iptables_rules_ipv4_ones() {
    require_root();
    let lab = lab();
    // A second global address on s1, added last, so listed first: the kernel masquerades to
    // the address sharing the longest prefix with the destination (fd09:2::1 for fd09:2::3),
    // not to the first one listed.
    lab.node.ip("addr add fd09:5::1/64 dev s1 nodad");
    // Neighbour discovery done first: a SYN waiting for it may miss nc's 1 s.
    for _ in 0..20 {
        let ping = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.cli.name,
                "ping",
                "-c1",
                "-W1",
                "fd09:2::2",
            ])
            .output()
            .unwrap();
        if ping.status.success() {
            break;
        }
    }
    // Loaded afresh before each packet: a restore zeroes the counters.
    let load = || {
        restore_with(
            &lab.node,
            "ip6tables-legacy-restore",
            "*nat\n-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd09:2::3]:8080\n\
-A POSTROUTING -o s1 -j MASQUERADE\nCOMMIT\n*filter\n-A FORWARD -p tcp -m tcp --dport 443 -j DROP\nCOMMIT\n",
        );
        restore(
            &lab.node,
            "*nat\n-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.9.2.4:9000\nCOMMIT\n",
        );
    };
    load();
    let (t, shown) = trace_on(&lab, &tcp_flow("fd09:1::2", "fd09:2::2", 80));
    send(&lab, "tcp", "fd09:2::2", 80, None);
    let kernel = kernel_hits(&lab.node, "ip6tables-legacy-save");
    assert_eq!(kernel.len(), 2, "DNAT and MASQUERADE hit: {kernel:?}");
    assert_eq!(kernel, traced_rules(&t), "{shown}");
    let arrived = kernel_hits(&lab._srv, "ip6tables-legacy-save");
    assert!(
        arrived
            .iter()
            .any(|r| r.contains("-s fd09:2::1/128 -d fd09:2::3/128")),
        "the server saw fd09:2::1 → [fd09:2::3]:8080: {arrived:?}"
    );
    let last = &t.hops.last().unwrap().packet;
    assert!(
        last.starts_with("fd09:2::1 → fd09:2::3 tcp") && last.contains("→8080"),
        "{shown}"
    );
    assert!(
        kernel_hits(&lab.node, "iptables-legacy-save").is_empty(),
        "the IPv4 rule saw nothing"
    );

    load();
    let (t, shown) = trace_on(&lab, &tcp_flow("fd09:1::2", "fd09:2::2", 443));
    send(&lab, "tcp", "fd09:2::2", 443, None);
    let kernel = kernel_hits(&lab.node, "ip6tables-legacy-save");
    assert!(kernel.iter().any(|r| r.contains("-j DROP")), "{kernel:?}");
    assert_eq!(kernel, traced_rules(&t), "{shown}");
    assert!(matches!(t.end, End::Stopped { .. }), "{shown}");

    load();
    let (t, shown) = trace_on(&lab, &tcp_flow("10.9.1.2", "10.9.3.3", 80));
    send(&lab, "tcp", "10.9.3.3", 80, None);
    let v4 = kernel_hits(&lab.node, "iptables-legacy-save");
    assert_eq!(v4.len(), 1, "{v4:?}");
    assert_eq!(v4, traced_rules(&t), "{shown}");
}

/// `-m set` over ipset types beyond hash:ip, against the kernel's own lookups: bitmap:port
/// (bare ports: TCP and UDP), hash:net with a `nomatch` hole, hash:ip with `netmask 24`,
/// hash:ip,port (the protocol is part of the member), hash:net,iface (src = the interface in,
/// dst = the interface out). Each set's rule counts (MARK) in mangle FORWARD; for every packet
/// the rules the counters moved are the ones the trace says matched.
#[test]
fn ipset_types_match_as_the_kernel_looks_them_up() {
    require_root();
    let lab = lab();
    let sets = "create P bitmap:port range 1-1000\nadd P 80\nadd P 100-200\n\
create N hash:net family inet\nadd N 10.9.0.0/16\nadd N 10.9.3.0/24 nomatch\n\
create M hash:ip family inet netmask 24\nadd M 10.9.2.7\n\
create IP hash:ip,port family inet\nadd IP 10.9.3.3,udp:53\nadd IP 10.9.2.3,tcp:443\n\
create FI hash:net,iface family inet\nadd FI 10.9.1.0/24,c1\n\
create FO hash:net,iface family inet\nadd FO 10.9.1.0/24,s1\nadd FO 10.9.7.0/24,c1\n";
    {
        use std::io::Write;
        let mut c = std::process::Command::new("ip")
            .args(["netns", "exec", &lab.node.name, "ipset", "restore"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(sets.as_bytes()).unwrap();
        assert!(c.wait().unwrap().success(), "ipset restore:\n{sets}");
    }
    let rules = "*mangle\n\
-A FORWARD -m set --match-set P dst -j MARK --set-xmark 0x1/0x1\n\
-A FORWARD -m set --match-set N dst -j MARK --set-xmark 0x2/0x2\n\
-A FORWARD -m set --match-set M dst -j MARK --set-xmark 0x4/0x4\n\
-A FORWARD -m set --match-set IP dst,dst -j MARK --set-xmark 0x8/0x8\n\
-A FORWARD -m set --match-set FI src,src -j MARK --set-xmark 0x10/0x10\n\
-A FORWARD -m set --match-set FO src,dst -j MARK --set-xmark 0x20/0x20\n\
COMMIT\n";
    let cases = [
        ("tcp", "10.9.3.3", 80),
        ("udp", "10.9.3.3", 53),
        ("udp", "10.9.2.9", 150),
        ("tcp", "10.9.2.4", 150),
        ("tcp", "10.9.2.3", 443),
        ("udp", "10.9.2.3", 443),
        ("tcp", "10.9.2.2", 1001),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (proto, dst, dport) in cases {
        restore(&lab.node, rules);
        let f = flow(if proto == "tcp" { 6 } else { 17 }, "10.9.1.2", dst, dport);
        let (t, shown) = trace_on(&lab, &f);
        send(&lab, proto, dst, dport, None);
        let kernel = kernel_hits(&lab.node, "iptables-legacy-save");
        assert!(
            kernel.iter().any(|r| r.contains("FI src,src")),
            "every packet comes in on c1 ({proto} {dst}:{dport}): {kernel:?}"
        );
        assert_eq!(kernel, traced_rules(&t), "{proto} {dst}:{dport}\n{shown}");
        seen.extend(kernel);
    }
    assert_eq!(seen.len(), 6, "each set matched some packet: {seen:?}");
}

/// `-m physdev` as br_netfilter records the port: c1 becomes a port of bridge br0 (which now
/// holds 10.9.1.1), so the client's packets are received by br0 and routed out s1. With
/// bridge-nf-call-iptables 1 the port they came in by (c1) is known to iptables and they have
/// no port out (routed, not bridged), so even `! --physdev-out` fails; with 0 the bridge hands
/// iptables no port at all, and only the negated match holds. Each
/// physdev rule counts (MARK) in mangle FORWARD and the filter table drops UDP port 9 by the
/// port in; for every packet the rules the kernel's counters moved are the trace's, with no
/// physdev match left uncertain, and the drop is the trace's stop.
#[test]
fn physdev_matches_as_br_netfilter_records_the_port() {
    require_root();
    let lab = lab();
    lab.node.ip_batch(
        "link add br0 type bridge\naddr del 10.9.1.1/24 dev c1\nlink set c1 master br0\n\
addr add 10.9.1.1/24 dev br0\nlink set br0 up\n",
    );
    let rules = "*mangle\n\
-A FORWARD -m physdev --physdev-in c1 -j MARK --set-xmark 0x1/0x1\n\
-A FORWARD -m physdev --physdev-in c9 -j MARK --set-xmark 0x2/0x2\n\
-A FORWARD -m physdev --physdev-is-in -j MARK --set-xmark 0x4/0x4\n\
-A FORWARD -m physdev --physdev-is-out -j MARK --set-xmark 0x8/0x8\n\
-A FORWARD -m physdev --physdev-is-bridged -j MARK --set-xmark 0x10/0x10\n\
-A FORWARD -m physdev --physdev-out c1 -j MARK --set-xmark 0x20/0x20\n\
-A FORWARD -m physdev ! --physdev-out c1 -j MARK --set-xmark 0x40/0x40\n\
COMMIT\n*filter\n-A FORWARD -p udp -m udp --dport 9 -m physdev --physdev-in c1 -j DROP\nCOMMIT\n";
    for on in ["1", "0"] {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &lab.node.name,
                "sysctl",
                "-qw",
                &format!("net.bridge.bridge-nf-call-iptables={on}"),
            ],
        );
        for (proto, dport) in [("tcp", 80), ("udp", 9)] {
            restore(&lab.node, rules);
            let f = flow(
                if proto == "tcp" { 6 } else { 17 },
                "10.9.1.2",
                "10.9.2.2",
                dport,
            );
            let (t, shown) = trace_on(&lab, &f);
            send(&lab, proto, "10.9.2.2", dport, None);
            let kernel = kernel_hits(&lab.node, "iptables-legacy-save");
            let case = format!("bridge-nf-call-iptables={on} {proto} {dport}");
            assert_eq!(kernel, traced_rules(&t), "{case}\n{shown}");
            assert!(!shown.contains("uncertain"), "{case}\n{shown}");
            let by_port = kernel.iter().any(|r| r.contains("--physdev-in c1 -j MARK"));
            assert_eq!(by_port, on == "1", "{case}: {kernel:?}");
            // xt_physdev's `!` is no plain "not": with the port in known and no port out,
            // `! --physdev-out c1` fails too; without bridge information it matches.
            let negated_out = kernel.iter().any(|r| r.contains("! --physdev-out c1"));
            assert_eq!(negated_out, on == "0", "{case}: {kernel:?}");
            let dropped = matches!(t.end, End::Stopped { .. });
            assert_eq!(dropped, on == "1" && dport == 9, "{case}\n{shown}");
        }
    }
}

/// One address of a random IPv6 address set: (prefix of the pool, host byte, prefix length,
/// deprecated, nodad).
type Addr6 = (usize, u8, u8, bool, bool);
const POOL6: [&str; 9] = [
    "2001:db8:1::",
    "2001:db8:1:1::",
    "2001:db8:2::",
    "fd00:1::",
    "fd00:2::",
    "2001:0:5::",
    "2002:1::",
    "fec0::",
    "3000::",
];
const DSTS6: [&str; 11] = [
    "2001:db8:1::ff",
    "2001:db8:1:1::ff",
    "2001:db8:2:5::ff",
    "fd00:1::ff",
    "fd00:3::ff",
    "2001:0:5::ff",
    "2002:1::ff",
    "2002:9::ff",
    "fec0::ff",
    "3000::ff",
    "fe80::ff",
];
const DEVS6: [&str; 3] = ["m0", "m1", "v0"];

/// MASQUERADE's IPv6 source address is the kernel's (ipv6_dev_get_saddr, RFC 6724's rules):
/// random address sets over two veths with carrier and one without (whose addresses stay
/// tentative unless nodad), some deprecated (preferred_lft 0), in the pool's scopes and labels
/// (global, unique local, Teredo, 6to4, site-local, plus the link-locals the kernel adds);
/// for every destination and device the address saddr6 picks is the `src` of `ip -6 route
/// get DST oif DEV`, whose answer comes from the same kernel function.
#[test]
fn ipv6_masquerade_source_is_the_kernels_choice() {
    require_root();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let addr = (
        0..POOL6.len(),
        1..4u8,
        prop::sample::select(vec![16u8, 48, 64, 96, 128]),
        prop::bool::weighted(0.3),
        any::<bool>(),
    );
    let strategy = prop::collection::vec(prop::collection::vec(addr, 0..4), 3);
    let tentative_seen = std::cell::Cell::new(0);
    let deprecated_seen = std::cell::Cell::new(0);
    runner
        .run(&strategy, |sets: Vec<Vec<Addr6>>| {
            let ns = Netns::new("sa6");
            ns.ip_batch("link add m0 type veth peer name m0p\nlink add m1 type veth peer name m1p\nlink add v0 type veth peer name v0p\n");
            // v0 runs DAD (set before its addresses are added) but has no carrier (v0p stays
            // down): its addresses stay tentative unless nodad.
            run("ip", &["netns", "exec", &ns.name, "sysctl", "-qw", "net.ipv6.conf.v0.accept_dad=1"]);
            let mut setup = String::new();
            let mut taken = std::collections::HashSet::new();
            for (dev, set) in DEVS6.iter().zip(&sets) {
                for &(pool, host, len, deprecated, nodad) in set {
                    if !taken.insert((pool, host)) {
                        continue; // an address is assigned once
                    }
                    setup += &format!(
                        "addr add {}{host}/{len} dev {dev}{}{}\n",
                        POOL6[pool],
                        if deprecated { " preferred_lft 0" } else { "" },
                        if nodad { " nodad" } else { "" },
                    );
                }
            }
            setup += "link set lo up\nlink set m0 up\nlink set m0p up\nlink set m1 up\nlink set m1p up\nlink set v0 up\nroute add ::/0 dev m0 metric 1\nroute add ::/0 dev m1 metric 2\nroute add ::/0 dev v0 metric 3\n";
            ns.ip_batch(&setup);
            // The link-local addresses come once linkwatch has seen the carrier (m0, m0p, m1,
            // m1p): wait for them, so hopscope and the kernel look at the same set.
            for _ in 0..200 {
                if ns.ip("-6 addr show scope link").matches("inet6 fe80").count() == 4 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let st = collect(&Target::Netns(ns.name.clone())).unwrap();
            let flags: Vec<_> = st.links.iter().flat_map(|l| &l.addresses).flat_map(|a| &a.flags).collect();
            tentative_seen.set(tentative_seen.get() + flags.iter().filter(|f| ***f == hopscope::model::AddrFlag::Tentative).count());
            deprecated_seen.set(deprecated_seen.get() + flags.iter().filter(|f| ***f == hopscope::model::AddrFlag::Deprecated).count());
            for dst in DSTS6 {
                for dev in DEVS6 {
                    let got = ns.ip_json(&format!("-6 route get {dst} oif {dev}"));
                    let kernel = got[0]["prefsrc"].as_str().map(str::to_string);
                    let ours = hopscope::trace::saddr6::select(&st, Some(dev), dst.parse().unwrap())
                        .map(|c| c.addr.to_string());
                    prop_assert_eq!(&ours, &kernel, "{} oif {}\n{}\n{}", dst, dev, setup, ns.ip("-6 addr"));
                }
            }
            Ok(())
        })
        .unwrap();
    let (tentative_seen, deprecated_seen) = (tentative_seen.get(), deprecated_seen.get());
    assert!(
        tentative_seen > 0 && deprecated_seen > 0,
        "the sets had tentative ({tentative_seen}) and deprecated ({deprecated_seen}) addresses"
    );
}

/// The conntrack entries the trace reads (a ctnetlink dump) are `conntrack -L`'s, field by
/// field, for TCP, UDP (replied and not), ICMP and IPv6 entries, DNAT'ed and marked ones, while
/// entries that expire within a second are reaped on the way (the churn that made the /proc
/// dump skip entries on older kernels). The read says nothing is missing.
#[test]
fn conntrack_entries_read_are_conntrack_l() {
    require_root();
    let ns = Netns::new("nfct");
    ns.ip_batch("link set lo up\naddr add fd09:9::1/64 dev lo\n");
    restore(
        &ns,
        "*nat\n-A OUTPUT -p udp --dport 5353 -j DNAT --to-destination 127.0.0.2:53\nCOMMIT\n\
*mangle\n-A OUTPUT -p udp --dport 7000 -j CONNMARK --set-mark 0x2a\nCOMMIT\n",
    );
    restore_with(
        &ns,
        "ip6tables-legacy-restore",
        "*mangle\n-A OUTPUT -p udp -j CONNMARK --set-mark 0x6\nCOMMIT\n",
    );
    let sysctl = |kv: &str| run("ip", &["netns", "exec", &ns.name, "sysctl", "-qw", kv]);
    sysctl("net.netfilter.nf_conntrack_tcp_timeout_close=1");
    // Entries that stay (UDP to ports 5353, 7000..7040, a ping, TCP and IPv6), then 400 TCP
    // connections refused (RST: CLOSE, gone in a second) inserted in front of them.
    let script = "for p in 5353 $(seq 7000 7040); do echo x > /dev/udp/127.0.0.1/$p; done; \
        echo x > /dev/udp/::1/7100; ping -c1 -W1 127.0.0.1 >/dev/null; \
        for i in $(seq 400); do (echo > /dev/tcp/127.0.0.1/9) 2>/dev/null; done; sleep 1.2";
    run("ip", &["netns", "exec", &ns.name, "bash", "-c", script]);
    let nf = collect_netfilter(&Target::Netns(ns.name.clone())).unwrap();
    let listed = run(
        "ip",
        &["netns", "exec", &ns.name, "conntrack", "-L", "-f", "ipv4"],
    ) + &run(
        "ip",
        &["netns", "exec", &ns.name, "conntrack", "-L", "-f", "ipv6"],
    );
    // `conntrack -L`: `udp 17 29 src=… [UNREPLIED] src=… mark=0 use=1`; the trace's line has
    // /proc's form (`ipv4 2 udp 17 29 … mark=0 zone=0 use=1`). The tuples, flags and mark are
    // compared; timeouts tick and CLOSE entries may be reaped in between.
    let tuples = |line: &str| -> String {
        let from = line.find("src=").unwrap();
        let to = line.find(" mark=").unwrap();
        format!(
            "{} {}",
            &line[from..to],
            line[to..].split_whitespace().next().unwrap()
        )
    };
    let lasting = |l: &&str| !l.contains("dport=9 ");
    let mut kernel: Vec<String> = listed
        .lines()
        .filter(|l| l.contains("src="))
        .filter(lasting)
        .map(tuples)
        .collect();
    let mut read: Vec<String> = nf
        .conntrack
        .iter()
        .map(|c| c.line.as_str())
        .filter(lasting)
        .map(tuples)
        .collect();
    kernel.sort();
    read.sort();
    assert_eq!(read, kernel, "{:#?}", nf.conntrack);
    assert_eq!(kernel.len(), 44, "{listed}");
    assert!(
        !nf.warnings.iter().any(|w| w.contains("conntrack")),
        "{:?}",
        nf.warnings
    );
    let dnat = nf.conntrack.iter().find(|c| c.dport == Some(5353)).unwrap();
    assert!(dnat.is_dnat() && dnat.reply_sport == Some(53), "{dnat:?}");
    let marked = |m: u32| nf.conntrack.iter().filter(|c| c.mark == m).count();
    assert_eq!((marked(0x2a), marked(6)), (1, 1), "{:#?}", nf.conntrack);
}
