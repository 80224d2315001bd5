//! Real-kernel lab proof of the netfilter trace (see docs/lab.md): the reference's NodePort
//! flow — netshoot (10.0.1.52 on worker) to worker's own 172.18.0.3:32000, kube-proxy's rules
//! (variant `nodeport`, tests/lab/variants/netfilter.sh) DNAT it to cni-worker2 10.0.0.249:80
//! and masquerade it to worker's address — is traced and followed, and the conntrack entry on
//! the trace's hop is the one `conntrack -L` prints. In the same boot, kube-proxy's IPVS mode
//! (variant `ipvs`): netshoot's connection to ClusterIP 10.96.0.50:80 is sent by worker's
//! IPVS to cni-worker, and the trace, reading IPVS over generic netlink (GET dumps only, as
//! strace shows), names the virtual service, both real servers and the one taken, and the
//! real server's reply is rewritten back to the virtual service as tcpdump sees it. One boot of
//! its own (guest side: tests/lab/checks/netfilter.sh). HOPSCOPE_LAB_REUSE=1 re-reads the
//! last results.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[path = "lab/boot.rs"]
mod boot;
#[path = "common/readonly_log.rs"]
mod readonly_log;

/// Boot once for every test here (tests/lab/boot.rs); HOPSCOPE_LAB_REUSE=1 reads the last
/// results.
fn results() -> &'static Path {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match CELL.get_or_init(|| boot::boot("netfilter", &["nodeport", "ipvs"])) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn text(name: &str) -> String {
    std::fs::read_to_string(results().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn json(name: &str) -> Value {
    serde_json::from_str(&text(name)).unwrap_or_else(|e| {
        panic!(
            "{name}: {e}\n{}\n{}",
            text(name),
            text(&format!("{name}.err"))
        )
    })
}

fn hops<'a>(t: &'a Value, node: &str, step: &str) -> Vec<&'a Value> {
    t["hops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["node"] == node && h["step"] == step)
        .collect()
}

fn netfilter_rules(h: &Value) -> Vec<&Value> {
    h["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "netfilter")
        .collect()
}

#[test]
fn lab_nodeport_connection_reached_cni_worker2() {
    let sport = text("nodeport.sport");
    assert!(
        !sport.trim().is_empty(),
        "no connection landed on cni-worker2"
    );
    assert!(text("nodeport.txt").contains("hello-from-cni-worker2"));
}

#[test]
fn lab_nodeport_trace_names_the_rules_the_dnat_the_masquerade_and_reaches_the_pod() {
    let t = json("trace-nodeport.json");
    let shown = text("trace-nodeport.txt");
    let nat = hops(&t, "worker", "nat");
    assert_eq!(
        nat.len(),
        2,
        "DNAT in PREROUTING, MASQUERADE in POSTROUTING:\n{shown}"
    );
    let dnat = nat[0];
    assert!(
        dnat["what"]
            .as_str()
            .unwrap()
            .contains("DNAT 172.18.0.3:32000 → 10.0.0.249:80"),
        "{shown}"
    );
    let rules = netfilter_rules(dnat);
    assert!(
        rules.iter().any(|d| d["chain"] == "KUBE-NODEPORTS"
            && d["rule"].as_str().unwrap().contains("--dport 32000")),
        "{shown}"
    );
    assert!(
        rules
            .iter()
            .any(|d| d["chain"] == "KUBE-SEP-CNIWORKER2ZZZZZ" && d["target"] == "DNAT"),
        "{shown}"
    );
    assert!(
        rules.iter().any(|d| d["rule"]
            .as_str()
            .unwrap()
            .contains("addrtype --dst-type LOCAL")),
        "{shown}"
    );
    let pick = rules
        .iter()
        .find(|d| d["alternatives"].is_array())
        .expect(&shown);
    assert_eq!(
        pick["alternatives"].as_array().unwrap().len(),
        2,
        "both endpoints listed: {shown}"
    );
    let masq = nat[1];
    let what = masq["what"].as_str().unwrap();
    assert!(
        what.contains("SNAT 10.0.1.52:") && what.contains("→ 172.18.0.3:"),
        "masquerade to the node IP: {shown}"
    );
    let wire = &hops(&t, "worker", "wire")[0];
    assert!(
        wire["packet"]
            .as_str()
            .unwrap()
            .starts_with("172.18.0.3 → 10.0.0.249 tcp"),
        "{shown}"
    );
    assert_eq!(t["end"]["end"], "delivered", "{shown}");
    assert_eq!(t["end"]["node"], "worker2", "{shown}");
    assert_eq!(t["end"]["what"], "pod 10.0.0.249", "{shown}");
}

/// `entry` (a conntrack decision of the trace) is `conntrack -L`'s `line`, field by field.
fn assert_entry_is_listed(entry: &Value, line: &str) {
    // conntrack -L: `tcp 6 117 TIME_WAIT src=… dst=… sport=… dport=… src=… dst=… sport=… dport=… [ASSURED] mark=0 use=1`
    let kv: Vec<(&str, &str)> = line
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect();
    let get = |k: &str, n: usize| {
        kv.iter()
            .filter(|(x, _)| *x == k)
            .nth(n)
            .map(|(_, v)| v.to_string())
            .unwrap()
    };
    let s = |k: &str| {
        entry[k]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| entry[k].to_string())
    };
    assert_eq!(s("src"), get("src", 0), "{entry:#}\n{line}");
    assert_eq!(s("dst"), get("dst", 0));
    assert_eq!(s("sport"), get("sport", 0));
    assert_eq!(s("dport"), get("dport", 0));
    assert_eq!(s("reply_src"), get("src", 1));
    assert_eq!(s("reply_dst"), get("dst", 1));
    assert_eq!(s("reply_sport"), get("sport", 1));
    assert_eq!(s("reply_dport"), get("dport", 1));
    assert_eq!(s("mark"), get("mark", 0));
}

fn first_tcp_line(listed: &str) -> &str {
    listed
        .lines()
        .find(|l| l.starts_with("tcp"))
        .unwrap_or_else(|| panic!("no tcp entry listed:\n{listed}"))
}

fn conntrack_decision(h: &Value) -> &Value {
    h["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "conntrack")
        .unwrap_or_else(|| panic!("no conntrack decision on {h:#}"))
}

#[test]
fn lab_nodeport_conntrack_entry_on_the_hop_is_conntrack_l() {
    let t = json("trace-nodeport.json");
    let dnat = hops(&t, "worker", "nat")[0];
    let entry = conntrack_decision(dnat);
    let listed = text("conntrack.txt");
    assert_entry_is_listed(entry, first_tcp_line(&listed));
    assert_eq!(entry["reply_src"], "10.0.0.249");
    assert_eq!(
        entry["reply_dst"], "172.18.0.3",
        "masqueraded to worker's address"
    );
}

#[test]
fn lab_ipvs_connection_reached_the_real_server() {
    assert!(
        text("ipvs.txt").contains("hello-from-cni-worker"),
        "{}",
        text("ipvs.txt")
    );
    let listed = text("ipvsadm.txt");
    assert!(
        listed.contains("10.96.0.50:80 rr")
            && listed.contains("10.0.1.103:80")
            && listed.contains("10.0.0.249:80"),
        "{listed}"
    );
}

fn assert_decided_by_the_virtual_service(hop: &Value) {
    assert!(
        hop["decided_by"]
            .as_str()
            .unwrap()
            .contains("ipvs virtual service tcp 10.96.0.50:80 rr"),
        "{hop:#}"
    );
}

/// The IPVS hop of a trace: the only nat hop on worker (the entry of an IPVS connection is
/// not a nat-table DNAT in PREROUTING), its ipvs decision, and the trace's text.
fn ipvs_hop(name: &str) -> (Value, String) {
    let t = json(name);
    let nat = hops(&t, "worker", "nat");
    assert_eq!(nat.len(), 1, "one DNAT, by IPVS: {t:#}");
    let hop = nat[0].clone();
    assert_decided_by_the_virtual_service(&hop);
    assert_eq!(t["end"]["end"], "delivered", "{t:#}");
    assert_eq!(t["end"]["node"], "worker", "{t:#}");
    assert_eq!(t["end"]["what"], "pod 10.0.1.103", "{t:#}");
    (hop, t.to_string())
}

fn ipvs_decision(hop: &Value) -> &Value {
    hop["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "netfilter" && d["backend"] == "ipvs")
        .unwrap_or_else(|| panic!("no ipvs decision: {hop:#}"))
}

#[test]
fn lab_ipvs_trace_follows_the_connection_to_its_real_server() {
    let (hop, t) = ipvs_hop("trace-ipvs.json");
    let what = hop["what"].as_str().unwrap();
    assert!(
        what.contains("IPVS 10.96.0.50:80 → 10.0.1.103:80")
            && what.contains("conntrack entry took"),
        "{t}"
    );
    let d = ipvs_decision(&hop);
    let reals: Vec<&str> = d["alternatives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(reals.len(), 2, "both real servers listed: {reals:?}");
    assert!(
        reals
            .iter()
            .any(|r| r.starts_with("10.0.1.103:80 Masq weight 1")),
        "{reals:?}"
    );
    assert!(
        reals
            .iter()
            .any(|r| r.starts_with("10.0.0.249:80 Masq weight 0")),
        "{reals:?}"
    );
    let listed = text("ipvs-conntrack.txt");
    assert_entry_is_listed(conntrack_decision(&hop), first_tcp_line(&listed));
    assert_eq!(conntrack_decision(&hop)["reply_src"], "10.0.1.103");
}

#[test]
fn lab_ipvs_new_connection_skips_the_quiesced_real_server() {
    let (hop, t) = ipvs_hop("trace-ipvs-new.json");
    let what = hop["what"].as_str().unwrap();
    assert!(
        what.contains("IPVS 10.96.0.50:80 → 10.0.1.103:80") && what.contains("weight > 0"),
        "weight 0 gets no new connection: {t}"
    );
}

/// The source (`A.B.C.D.P`) of the SYN-ACK tcpdump -e captured: the first word after
/// `length N: ` on its `Flags [S.]` line.
fn captured_source(name: &str) -> String {
    let t = text(&format!("{name}.txt"));
    t.lines()
        .find(|l| l.contains("Flags [S.]"))
        .and_then(|l| l.split_once("length ")?.1.split_once(": "))
        .and_then(|(_, rest)| rest.split(' ').next())
        .unwrap_or_else(|| {
            panic!(
                "{name}: no SYN-ACK captured:\n{t}\n{}",
                text(&format!("{name}.err"))
            )
        })
        .to_string()
}

/// The real server's reply (its SYN-ACK, from 10.0.1.103:80) back through worker: the trace
/// rewrites its source to the virtual service 10.96.0.50:80 in FORWARD by IPVS (not a
/// nat-table or conntrack SNAT), from the connection's conntrack entry (`conntrack -L`'s), and
/// delivers it to netshoot with that source — what tcpdump saw leave cni-worker and reach
/// netshoot.
#[test]
fn lab_ipvs_reply_is_rewritten_back_to_the_virtual_service() {
    let t = json("trace-ipvs-reply.json");
    let sport = text("ipvs-conntrack.txt")
        .split_whitespace()
        .find_map(|w| w.strip_prefix("sport="))
        .unwrap()
        .to_string();
    assert_eq!(captured_source("ipvs-reply-cni-worker"), "10.0.1.103.80");
    assert_eq!(captured_source("ipvs-reply-netshoot"), "10.96.0.50.80");
    let nat = hops(&t, "worker", "nat");
    assert_eq!(nat.len(), 1, "one rewrite, by IPVS: {t:#}");
    let hop = nat[0];
    let what = hop["what"].as_str().unwrap();
    assert!(
        what.starts_with("FORWARD IPVS reply 10.0.1.103:80 → 10.96.0.50:80"),
        "{t:#}"
    );
    assert_decided_by_the_virtual_service(hop);
    let d = ipvs_decision(hop);
    assert_eq!(d["hook"], "FORWARD");
    assert_entry_is_listed(&d["conntrack"], first_tcp_line(&text("ipvs-conntrack.txt")));
    assert_eq!(t["end"]["end"], "delivered", "{t:#}");
    assert_eq!(t["end"]["what"], "pod 10.0.1.52", "{t:#}");
    let last = t["hops"].as_array().unwrap().last().unwrap();
    assert!(
        last["packet"]
            .as_str()
            .unwrap()
            .starts_with(&format!("10.96.0.50 → 10.0.1.52 tcp 80→{sport}")),
        "netshoot gets it from the virtual service: {last:#}"
    );
}

#[test]
fn lab_ipvs_is_read_over_netlink_with_get_dumps_only() {
    let log = text("ipvs.strace");
    let bad = readonly_log::violations(&log, env!("CARGO_BIN_EXE_hopscope"));
    assert!(bad.is_empty(), "{bad:#?}");
    // The observer saw the IPVS dumps themselves: GET_SERVICE (4) and GET_DEST (8) on the
    // generic netlink socket, to a family other than nlctrl (strace names IPVS's dynamic id
    // or prints it as a number), as dumps (NLM_F_DUMP: 0x300).
    let cmds: Vec<u8> = readonly_log::netlink_requests(&log)
        .iter()
        .filter(|r| {
            r.protocol == "NETLINK_GENERIC" && !["nlctrl", "0x10"].contains(&r.kind.as_str())
        })
        .filter(|r| r.line.contains("NLM_F_DUMP") || r.line.contains("|0x300"))
        .filter_map(|r| r.genl_cmd)
        .collect();
    assert!(
        cmds.contains(&4) && cmds.contains(&8),
        "IPVS dumps not seen ({cmds:?}):\n{log}"
    );
    assert!(
        text("trace-ipvs.txt").contains("IPVS 10.96.0.50:80 → 10.0.1.103:80"),
        "{}",
        text("trace-ipvs.txt")
    );
}

#[test]
fn lab_nodeport_follow_sees_the_path() {
    let f = json("follow-nodeport.json");
    let hops = f["follow"]["hops"].as_array().expect("follow hops");
    let seen = |node: &str, dev: &str| {
        hops.iter()
            .any(|h| h["node"] == node && h["dev"] == dev && h["seen"].as_u64().unwrap_or(0) > 0)
    };
    assert!(
        seen("worker", "eth0"),
        "the masqueraded packet leaves worker: {f:#}"
    );
    assert!(seen("worker2", "eth0"), "and enters worker2: {f:#}");
}

/// The trace reads conntrack as `conntrack -L` does, with a ctnetlink dump
/// (IPCTNL_MSG_CT_GET, NLM_F_DUMP), and never /proc/net/nf_conntrack, whose walk restarts at
/// each read() from a count of entries and can skip one when the table changes in between
/// (the suspected cause of the lab's flake: an established flow traced as new while
/// `conntrack -L` listed its entry).
#[test]
fn lab_conntrack_is_a_ctnetlink_dump_not_proc() {
    let log = text("ipvs.strace");
    let dumps = readonly_log::netlink_requests(&log)
        .into_iter()
        .filter(|r| r.protocol == "NETLINK_NETFILTER" && r.kind == "0x101")
        .filter(|r| r.line.contains("NLM_F_DUMP") || r.line.contains("|0x300"))
        .count();
    assert!(dumps >= 1, "no ctnetlink dump:\n{log}");
    let proc_reads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("openat(") && l.contains("nf_conntrack\""))
        .collect();
    assert!(proc_reads.is_empty(), "{proc_reads:#?}");
}
