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
use hopscope::trace::path::{End, Flow, Node, trace};
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
    cli.ip_batch("addr add 10.9.1.2/24 dev c0\nlink set c0 up\nlink set lo up\nroute add default via 10.9.1.1\n");
    node.ip_batch("addr add 10.9.1.1/24 dev c1\naddr add 10.9.2.1/24 dev s1\nlink set c1 up\nlink set s1 up\nlink set lo up\nroute add 10.9.3.0/24 via 10.9.2.2\n");
    srv.ip_batch("addr add 10.9.2.2/24 dev s0\naddr add 10.9.2.3/24 dev s0\naddr add 10.9.2.4/24 dev s0\naddr add 10.9.3.3/24 dev s0\nlink set s0 up\nlink set lo up\nroute add default via 10.9.2.1\n");
    run(
        "ip",
        &[
            "netns",
            "exec",
            &node.name,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ],
    );
    // The server never answers: only the client's SYN crosses the node's rules.
    restore(&srv, "*filter\n-A INPUT -j DROP\nCOMMIT\n");
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
    use std::io::Write;
    let mut c = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "iptables-legacy-restore"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    assert!(
        c.wait().unwrap().success(),
        "iptables-legacy-restore:\n{text}"
    );
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
            let target = Target::Netns(lab.node.name.clone());
            let nodes = vec![Node {
                name: "node".into(),
                state: collect(&target).unwrap(),
                netfilter: collect_netfilter(&target).unwrap(),
            }];
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
            let t = trace(&nodes, &flow);
            let shown = hopscope::view::trace::render(&t);
            let _ = std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &lab.cli.name,
                    "busybox",
                    "nc",
                    "-w",
                    "1",
                    "-p",
                    &sport.to_string(),
                    dst,
                    &dport.to_string(),
                ])
                .stdin(std::process::Stdio::null())
                .output();
            // The rules the kernel's counters say the SYN hit, against the trace's decisions.
            let counters = run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &lab.node.name,
                    "iptables-legacy-save",
                    "-c",
                ],
            );
            let deciding = |l: &str| {
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
                .any(|t| l.contains(t))
            };
            let mut kernel: Vec<String> = counters
                .lines()
                .filter(|l| l.starts_with('[') && !l.starts_with("[0:") && deciding(l))
                .filter_map(|l| l.split_once("] ").map(|(_, r)| r.to_string()))
                .collect();
            let mut traced: Vec<String> = t
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
            kernel.sort();
            kernel.dedup();
            traced.sort();
            traced.dedup();
            prop_assert_eq!(&kernel, &traced, "rules:\n{}\n{}", text, shown);
            let stopped = matches!(t.end, End::Stopped { .. });
            let dropped = kernel
                .iter()
                .any(|r| r.contains("-j DROP") || r.contains("-j REJECT"));
            prop_assert_eq!(stopped, dropped, "{}", shown);
            Ok(())
        })
        .unwrap();
}
