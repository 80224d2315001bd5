//! The route hopscope predicts must be the route the kernel picks: random rules (priorities,
//! fwmark/mask, from, iif, not, actions), random routes in many tables (incl. blackhole,
//! unreachable, prohibit, throw, metrics), random flows — compared with `ip route get`.

mod common;
use common::{Netns, require_root, run};
use hopscope::source::{Target, collect};
use hopscope::trace::fib::{FibKey, FibOutcome, lookup};
use proptest::prelude::*;

const TABLES: [&str; 5] = ["main", "200", "2004", "2005", "100"];
const MARKS: [(u32, u32); 6] = [
    (0xe00, 0xf00),
    (0xd00, 0xf00),
    (0x3e00, 0xff00),
    (0x200, 0xf00),
    (0x1, 0x1),
    (0, 0xf00),
];
const FLOW_MARKS: [u32; 7] = [0, 0xe00, 0x3e00, 0xd00, 0x200, 0x1, 0x4e00];
const DEVS: [&str; 3] = ["a0", "b0", "c0"];
const IIFS: [&str; 3] = ["a1", "b1", "c1"];

#[derive(Debug, Clone)]
struct RouteSpec {
    table: usize,
    net: (u8, u8, u8),
    len: u8,
    kind: usize, // 0..=2 unicast dev / via, 3 blackhole, 4 unreachable, 5 prohibit, 6 throw
    dev: usize,
    metric: u32,
}

#[derive(Debug, Clone)]
struct RuleSpec {
    prio: u32,
    mark: Option<usize>,
    from: Option<(u8, u8)>,
    iif: Option<usize>,
    invert: bool,
    action: usize, // 0..=3 lookup, 4 blackhole, 5 unreachable, 6 prohibit, 7 goto
    table: usize,
}

fn route_spec() -> impl Strategy<Value = RouteSpec> {
    (
        0..5usize,
        (1..4u8, 0..4u8, 0..4u8),
        prop::sample::select(vec![8u8, 16, 24, 32]),
        0..7usize,
        0..3usize,
        0..3u32,
    )
        .prop_map(|(table, net, len, kind, dev, metric)| RouteSpec {
            table,
            net,
            len,
            kind,
            dev,
            metric,
        })
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        1..400u32,
        prop::option::of(0..6usize),
        prop::option::of((1..4u8, 0..4u8)),
        prop::option::of(0..3usize),
        prop::bool::weighted(0.15),
        0..8usize,
        1..5usize,
    )
        .prop_map(|(prio, mark, from, iif, invert, action, table)| RuleSpec {
            prio,
            mark,
            from,
            iif,
            invert,
            action,
            table,
        })
}

fn setup(routes: &[RouteSpec], rules: &[RuleSpec]) -> Netns {
    let ns = Netns::new("fib");
    let mut batch = String::new();
    for (i, d) in DEVS.iter().enumerate() {
        batch += &format!(
            "link add {d} type veth peer name {}\nlink set {d} up\nlink set {} up\naddr add 192.168.{}.1/24 dev {d}\n",
            IIFS[i],
            IIFS[i],
            i + 1
        );
    }
    ns.ip_batch(&batch);
    run(
        "ip",
        &[
            "netns",
            "exec",
            &ns.name,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ],
    );
    for i in IIFS {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns.name,
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{i}.rp_filter=0"),
            ],
        );
    }
    let mut batch = String::new();
    for r in routes {
        let (a, b, c) = r.net;
        let dst = format!("10.{a}.{b}.{c}/{}", r.len);
        let dst = match r.len {
            8 => "10.0.0.0/8".to_string(),
            16 => format!("10.{a}.0.0/16"),
            24 => format!("10.{a}.{b}.0/24"),
            _ => dst,
        };
        let kind = match r.kind {
            0 | 1 => format!("{dst} dev {}", DEVS[r.dev]),
            2 => format!("{dst} via 192.168.{}.2 dev {}", r.dev + 1, DEVS[r.dev]),
            3 => format!("blackhole {dst}"),
            4 => format!("unreachable {dst}"),
            5 => format!("prohibit {dst}"),
            _ => format!("throw {dst}"),
        };
        // `replace` so duplicate random prefixes do not abort the batch.
        batch += &format!(
            "route replace {kind} table {} metric {}\n",
            TABLES[r.table], r.metric
        );
    }
    for r in rules {
        let mut s = format!("rule add pref {}", r.prio);
        if r.invert {
            s += " not";
        }
        if let Some((a, b)) = r.from {
            s += &format!(" from 10.{a}.{b}.0/24");
        }
        if let Some(m) = r.mark {
            s += &format!(" fwmark {:#x}/{:#x}", MARKS[m].0, MARKS[m].1);
        }
        if let Some(i) = r.iif {
            s += &format!(" iif {}", IIFS[i]);
        }
        s += &match r.action {
            4 => " blackhole".to_string(),
            5 => " unreachable".to_string(),
            6 => " prohibit".to_string(),
            7 => format!(" goto {}", r.prio + 50),
            _ => format!(" lookup {}", TABLES[r.table]),
        };
        batch += &s;
        batch += "\n";
    }
    if !batch.is_empty() {
        ns.ip_batch(&batch);
    }
    ns
}

/// What `ip route get` says, reduced to what both sides can state.
fn kernel_answer(ns: &Netns, dst: &str, src: &str, iif: &str, mark: u32) -> String {
    let out = std::process::Command::new("ip")
        .args([
            "-n",
            &ns.name,
            "-j",
            "route",
            "get",
            dst,
            "from",
            src,
            "iif",
            iif,
            "mark",
            &mark.to_string(),
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return format!(
            "error {}",
            err.trim().trim_start_matches("RTNETLINK answers: ")
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v[0];
    let kind = r["type"].as_str().unwrap_or("unicast");
    if kind != "unicast" {
        return format!("{kind} table {}", r["table"].as_str().unwrap_or("main"));
    }
    format!(
        "unicast table {} dev {} via {}",
        r["table"].as_str().unwrap_or("main"),
        r["dev"].as_str().unwrap_or("-"),
        r["gateway"].as_str().unwrap_or("-")
    )
}

fn our_answer(
    st: &hopscope::model::NodeState,
    dst: &str,
    src: &str,
    iif: &str,
    mark: u32,
) -> String {
    let key = FibKey {
        src: Some(src.parse().unwrap()),
        dst: dst.parse().unwrap(),
        mark,
        iif: Some(iif.into()),
        oif: None,
        tos: 0,
    };
    let table_name = |t: u32| {
        st.routes
            .iter()
            .find(|r| r.table.id == t)
            .and_then(|r| r.table.name.clone())
            .unwrap_or(t.to_string())
    };
    let outcome = lookup(st, &key).outcome;
    if let Some(e) = outcome.kernel_error() {
        return format!("error {e}");
    }
    match outcome {
        FibOutcome::NoRoute | FibOutcome::Refused { .. } => unreachable!("has a kernel error"),
        FibOutcome::Route {
            table,
            route_index,
            kind,
        } => {
            let r = &st.routes[route_index];
            if kind != "unicast" {
                return format!("{kind} table {}", table_name(table));
            }
            format!(
                "unicast table {} dev {} via {}",
                table_name(table),
                r.dev
                    .as_ref()
                    .and_then(|d| d.name.clone())
                    .unwrap_or("-".into()),
                r.gateway.clone().unwrap_or("-".into())
            )
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn predicted_route_equals_kernel_route(
        routes in prop::collection::vec(route_spec(), 1..25),
        rules in prop::collection::vec(rule_spec(), 0..10),
        flows in prop::collection::vec((1..4u8, 0..4u8, 0..4u8, (1..4u8, 0..4u8), 0..7usize, 0..3usize), 15),
    ) {
        require_root();
        let ns = setup(&routes, &rules);
        let st = collect(&Target::Netns(ns.name.clone())).unwrap();
        for (a, b, c, (sa, sb), m, i) in flows {
            let dst = format!("10.{a}.{b}.{c}");
            let src = format!("10.{sa}.{sb}.77");
            let mark = FLOW_MARKS[m];
            let theirs = kernel_answer(&ns, &dst, &src, IIFS[i], mark);
            let ours = our_answer(&st, &dst, &src, IIFS[i], mark);
            prop_assert_eq!(&ours, &theirs, "flow {} -> {} mark {:#x} iif {}\nrules:\n{}\nroutes:\n{}", src, dst, mark, IIFS[i], ns.ip("rule"), ns.ip("route show table all"));
        }
    }
}
