//! Real-kernel lab tests of `hopscope doctor` (docs/doctor.md): one boot of the seed's cluster
//! (tests/lab/checks/doctor.sh); each failure class of tests/lab/variants/doctor.sh is applied
//! in turn, netshoot pings cni-worker2 while the doctor watches its window, then undone. Each
//! test checks that the doctor blames the counter the kernel moved (read from the node's own
//! /proc/net/xfrm_stat), on the right node, naming the right object — and that the healthy
//! cluster and a key rotation are judged fine (exit 0).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[path = "lab/boot.rs"]
mod boot;

/// Boot once for every test here (tests/lab/boot.rs); HOPSCOPE_LAB_REUSE=1 reads the last
/// results.
fn results() -> &'static Path {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match CELL.get_or_init(|| boot::boot_timed("doctor", &[], 1500)) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn read(name: &str) -> String {
    let p = results().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The doctor's report for a case, and its exit status.
fn report(case: &str) -> (Value, i32) {
    let rc: i32 = read(&format!("{case}.rc")).trim().parse().unwrap();
    let v: Value = serde_json::from_str(&read(&format!("{case}.json")))
        .unwrap_or_else(|e| panic!("{case}.json: {e}; stderr: {}", read(&format!("{case}.err"))));
    assert_eq!(
        v["exit_code"].as_i64(),
        Some(rc as i64),
        "exit status is the report's"
    );
    (v, rc)
}

/// How much the kernel moved one xfrm_stat counter on one node during the case's traffic.
fn kernel_delta(case: &str, node: &str, counter: &str) -> u64 {
    let get = |when: &str| -> u64 {
        read(&format!("{case}.stat.{node}.{when}"))
            .lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(counter)).then(|| w.next().unwrap().parse().unwrap())
            })
            .unwrap_or(0)
    };
    get("after") - get("before")
}

/// (transmitted, received) from ping's statistics.
fn ping_counts(ping: &str) -> (u64, u64) {
    let line = ping
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("{ping}"));
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1])
}

fn findings<'a>(v: &'a Value, sev: &[&str]) -> Vec<&'a Value> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| sev.contains(&f["severity"].as_str().unwrap()))
        .collect()
}

/// The case's failure: exit 2, a fail `id` on `node` blaming `counter`, which the kernel moved
/// there; its evidence contains `object`. Returns the finding.
fn blamed(case: &str, id: &str, node: &str, counter: &str, object: &str) -> Value {
    let (v, rc) = report(case);
    assert_eq!(rc, 2, "{case}: {v:#}");
    let f = findings(&v, &["fail"])
        .into_iter()
        .find(|f| f["id"] == id && f["node"] == node)
        .unwrap_or_else(|| panic!("{case}: no fail {id} on {node}:\n{v:#}"))
        .clone();
    let moved = kernel_delta(case, node, counter);
    assert!(
        moved > 0,
        "{case}: the kernel did not move {counter} on {node}"
    );
    assert_eq!(f["counter"]["name"], counter, "{case}: {f}");
    assert!(f["counter"]["delta"].as_u64().unwrap() > 0);
    let ev = f["evidence"].to_string();
    assert!(
        ev.contains(object),
        "{case}: evidence lacks {object:?}: {ev}"
    );
    // Nothing else rose unexplained, and no other node is blamed for it.
    for g in findings(&v, &["fail", "warn"]) {
        assert_eq!(g["node"], node, "{case}: another node blamed: {g}");
    }
    f
}

/// The case is judged fine: exit 0, no warning or failure.
fn fine(case: &str) -> Value {
    let (v, rc) = report(case);
    let bad = findings(&v, &["warn", "fail"]);
    assert!(
        bad.is_empty() && rc == 0,
        "{case} not fine:\n{}",
        serde_json::to_string_pretty(&bad).unwrap()
    );
    v
}

#[test]
fn lab_doctor_healthy_cluster_is_fine() {
    let v = fine("healthy");
    assert_eq!(v["nodes"].as_array().unwrap().len(), 3);
    assert!(v["verdict"].as_str().unwrap().starts_with("OK"));
    let txt = read("healthy.txt");
    assert!(
        txt.contains("== worker2 ==") && txt.contains("verdict: OK"),
        "{txt}"
    );
    fine("healthy-window");
    fine("healthy-after");
    // Pings ran all through the window (ended by a signal: the last may be in flight).
    for case in ["healthy-window", "healthy-after", "rotation"] {
        let ping = read(&format!("{case}.ping"));
        let (sent, got) = ping_counts(&ping);
        assert!(got > 0 && got + 1 >= sent, "{case}: {ping}");
    }
}

#[test]
fn lab_doctor_key_rotation_is_info_not_failure() {
    let v = fine("rotation");
    let rot: Vec<_> = findings(&v, &["info"])
        .into_iter()
        .filter(|f| f["id"] == "key-rotation")
        .collect();
    assert_eq!(
        rot.len(),
        6,
        "two keys to each of two peers on three nodes: {rot:?}"
    );
}

#[test]
fn lab_doctor_no_inbound_sa() {
    let f = blamed(
        "no-in-sa",
        "in-sa-missing",
        "worker2",
        "XfrmInNoStates",
        "worker's out SA src 10.0.1.138 dst 10.0.0.40 proto esp spi 0x00000003",
    );
    assert!(
        f["what"]
            .as_str()
            .unwrap()
            .contains("ESP spi 0x3 to 10.0.0.40")
    );
}

#[test]
fn lab_doctor_decrypt_mark_missing() {
    let f = blamed(
        "decrypt-mark",
        "in-sa-mark",
        "worker2",
        "XfrmInNoStates",
        "dst 10.0.0.40 proto esp spi 0x00000003",
    );
    assert!(f["what"].as_str().unwrap().contains("0xd00/0xf00"), "{f}");
    assert_eq!(f["object"]["kind"], "sa");
}

#[test]
fn lab_doctor_wrong_key_names_the_odd_node() {
    let f = blamed(
        "wrong-key",
        "pair-key",
        "worker2",
        "XfrmInStateProtoError",
        "worker2 is the odd one out",
    );
    let ev = f["evidence"].to_string();
    assert!(
        !ev.contains("0badc0de") && !ev.contains("d528e76e"),
        "no key printed: {ev}"
    );
    let (v, _) = report("wrong-key");
    assert!(
        findings(&v, &["fail"])
            .iter()
            .any(|f| f["id"] == "in-sa-auth-failed")
    );
}

#[test]
fn lab_doctor_out_sa_missing() {
    blamed(
        "no-out-sa",
        "out-sa-missing",
        "worker",
        "XfrmOutNoStates",
        "dir out priority 0 mark 0x3e00/0xff00",
    );
}

#[test]
fn lab_doctor_catch_all_blocks() {
    blamed(
        "catch-all",
        "out-blocked",
        "worker",
        "XfrmOutPolBlock",
        "action block",
    );
}

#[test]
fn lab_doctor_fwd_policy_missing() {
    blamed(
        "no-fwd-policy",
        "in-policy-missing",
        "worker2",
        "XfrmInNoPols",
        "10.0.0.0/24",
    );
}

#[test]
fn lab_doctor_template_reqid_mismatch() {
    let f = blamed(
        "reqid",
        "in-tmpl-mismatch",
        "worker2",
        "XfrmInTmplMismatch",
        "reqid 2",
    );
    assert!(
        f["what"]
            .as_str()
            .unwrap()
            .contains("reqid is 1, the template wants 2"),
        "{f}"
    );
}

#[test]
fn lab_doctor_out_sequence_exhausted() {
    blamed(
        "oseq",
        "out-seq-exhausted",
        "worker",
        "XfrmOutStateSeqError",
        "oseq 0xffffffff",
    );
}

#[test]
fn lab_doctor_mtu_ignores_esp_overhead() {
    let (v, rc) = report("mtu");
    assert_eq!(rc, 2, "{v:#}");
    let f = findings(&v, &["fail"])
        .into_iter()
        .find(|f| f["id"] == "mtu-esp-overhead" && f["node"] == "worker")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert!(
        f["evidence"]
            .to_string()
            .contains("netshoot: route default via 10.0.1.138 dev eth0 mtu 1500"),
        "{f}"
    );
    // The kernel's side: a full-size DF packet does not get through once ESP is added; the
    // kernel tells the pod the room it computed, which is the doctor's figure; no xfrm_stat
    // counter moves for it.
    assert!(f["what"].as_str().unwrap().contains("only 1446 fit"), "{f}");
    let ping = read("mtu.ping");
    assert!(
        ping.contains("mtu=1446") && ping.contains("100% packet loss"),
        "{ping}"
    );
    assert!(f.get("counter").is_none());
    for n in ["worker", "worker2"] {
        for c in [
            "XfrmOutError",
            "XfrmOutStateProtoError",
            "XfrmOutNoStates",
            "XfrmInNoStates",
        ] {
            assert_eq!(kernel_delta("mtu", n, c), 0, "{c} on {n}");
        }
    }
}

#[test]
fn lab_doctor_stale_objects_to_no_node() {
    let (v, rc) = report("stale");
    assert_eq!(rc, 1, "{}", read("stale.txt"));
    let ids: Vec<&str> = findings(&v, &["warn"])
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    for id in ["stale-sa", "stale-policy", "stale-route"] {
        assert!(ids.contains(&id), "{id} missing: {ids:?}");
    }
    assert!(read("stale.txt").contains("10.0.9.1"));
}

#[test]
fn lab_doctor_two_mask_widths_for_one_peer() {
    let (v, rc) = report("two-masks");
    assert_eq!(rc, 1, "{v:#}");
    let f = findings(&v, &["warn"])
        .into_iter()
        .find(|f| f["id"] == "sa-mask-conflict")
        .expect("sa-mask-conflict");
    assert!(
        f["evidence"].to_string().contains("0x23e00/0xffffff00"),
        "{f}"
    );
}

#[test]
fn lab_doctor_mark_collides_with_kube_proxy() {
    let (v, rc) = report("kube-mark");
    assert_eq!(rc, 1, "{v:#}");
    let f = findings(&v, &["warn"])
        .into_iter()
        .find(|f| f["id"] == "mark-collision")
        .expect("mark-collision");
    assert!(f["evidence"].to_string().contains("0x4000/0x4000"), "{f}");
    assert!(f["what"].as_str().unwrap().contains("0x4e00"));
}

#[test]
fn lab_doctor_replay_window_ahead_of_the_sender() {
    let f = blamed(
        "replay",
        "pair-replay",
        "worker2",
        "XfrmInStateSeqError",
        "replay-window 32",
    );
    assert!(
        f["what"]
            .as_str()
            .unwrap()
            .contains("out SA sends sequence number"),
        "{f}"
    );
    let (sent, got) = ping_counts(&read("replay.ping"));
    assert!(
        sent > 0 && got == 0,
        "every ping is dropped as too old: {sent}/{got}"
    );
}

/// Moved by the kernel on `node` in the case: every xfrm_stat counter that rose.
fn kernel_moved(case: &str, node: &str) -> Vec<String> {
    let read_all = |when: &str| -> Vec<(String, u64)> {
        read(&format!("{case}.stat.{node}.{when}"))
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?.to_string(), w.next()?.parse().ok()?))
            })
            .collect()
    };
    let before = read_all("before");
    read_all("after")
        .into_iter()
        .filter(|(k, v)| before.iter().any(|(b, bv)| b == k && v > bv))
        .map(|(k, _)| k)
        .collect()
}

/// How much the kernel moved one /proc/net/snmp counter (`Icmp`, `OutDestUnreachs`) on a node.
fn snmp_delta(case: &str, node: &str, group: &str, counter: &str) -> u64 {
    let get = |when: &str| -> u64 {
        let text = read(&format!("{case}.snmp.{node}.{when}"));
        let rows: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{group}:")))
            .map(|l| l.split_whitespace().collect())
            .collect();
        let col = rows[0].iter().position(|c| *c == counter).unwrap();
        rows[1][col].parse().unwrap()
    };
    get("after") - get("before")
}

#[test]
fn lab_doctor_table_200_route_drops_pod_traffic() {
    let (v, rc) = report("route-200-drop");
    assert_eq!(rc, 2, "{}", read("route-200-drop.txt"));
    let f = findings(&v, &["fail"])
        .into_iter()
        .find(|f| f["id"] == "route-200-drop" && f["node"] == "worker")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert!(
        f["evidence"][0] == "unreachable 10.0.0.0/24 table 200",
        "the route, as ip prints it: {f}"
    );
    assert_eq!(f["object"]["kind"], "route", "{f}");
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .starts_with("ip route replace 10.0.0.0/24 dev cilium_host table 200"),
        "{f}"
    );
    // The kernel's side: its route lookup for netshoot's encrypt-marked packet fails as that
    // route says, the pings come back as host unreachable (ICMP from worker), and no
    // xfrm_stat counter moves on either node.
    let probe = read("route-200-drop.probe");
    assert!(probe.contains("No route to host"), "{probe}");
    let ping = read("route-200-drop.ping");
    assert!(
        ping.contains("Destination Host Unreachable") && ping.contains("100% packet loss"),
        "{ping}"
    );
    for n in ["worker", "worker2"] {
        assert_eq!(
            kernel_moved("route-200-drop", n),
            Vec::<String>::new(),
            "{n}"
        );
    }
    // Every unreachable the pod saw is one worker sent (ICMP is rate-limited: not one per ping).
    let told = ping.matches("Destination Host Unreachable").count() as u64;
    assert!(told > 0);
    assert_eq!(
        snmp_delta("route-200-drop", "worker", "Icmp", "OutDestUnreachs"),
        told
    );
    for g in findings(&v, &["fail", "warn"]) {
        assert_eq!(g["node"], "worker", "another node blamed: {g}");
    }
}

#[test]
fn lab_doctor_table_200_route_missing_falls_through() {
    let (v, rc) = report("route-200-missing");
    assert_eq!(rc, 1, "{v:#}");
    let f = findings(&v, &["warn"])
        .into_iter()
        .find(|f| f["id"] == "route-200-missing" && f["node"] == "worker")
        .unwrap_or_else(|| panic!("{v:#}"));
    assert!(
        f["what"].as_str().unwrap().contains("not 10.0.0.0/24"),
        "{f}"
    );
    assert_eq!(f["object"]["kind"], "policy", "{f}");
    assert!(
        f["evidence"]
            .to_string()
            .contains("src 10.0.1.0/24 dst 10.0.0.0/24 dir out"),
        "names the out policy: {f}"
    );
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .starts_with("ip route add 10.0.0.0/24 dev cilium_host table 200"),
        "{f}"
    );
    // The kernel's side: with the route, the encrypt-marked packet is routed by table 200 to
    // cilium_host; without it, by the main table straight to eth0.
    let healthy = read("healthy-after.probe");
    assert!(
        healthy.contains("dev cilium_host") && healthy.contains("table 200"),
        "{healthy}"
    );
    let probe = read("route-200-missing.probe");
    assert!(
        probe.contains("via 172.18.0.4 dev eth0") && !probe.contains("table 200"),
        "{probe}"
    );
    // A warning, not a failure: the traffic still gets through (the out policy encrypts it
    // on the main table's route too).
    let (sent, got) = ping_counts(&read("route-200-missing.ping"));
    assert!(sent > 0 && got == sent, "{sent}/{got}");
    for g in findings(&v, &["fail", "warn"]) {
        assert_eq!(g["node"], "worker", "another node blamed: {g}");
    }
}

#[test]
fn lab_doctor_ipv6_pair_is_fine() {
    let v = fine("v6");
    let (sent, got) = ping_counts(&read("v6.ping"));
    assert!(
        got > 0 && got + 1 >= sent,
        "IPv6 pings answered: {sent}/{got}"
    );
    // No XFRM error counter moved on either end (every xfrm_stat counter is one).
    for n in ["worker", "worker2"] {
        assert_eq!(kernel_moved("v6", n), Vec::<String>::new(), "{n}");
    }
    assert_eq!(v["nodes"].as_array().unwrap().len(), 3);
}

#[test]
fn lab_doctor_ipv6_inbound_sa_missing() {
    let f = blamed(
        "v6-no-in-sa",
        "in-sa-missing",
        "worker2",
        "XfrmInNoStates",
        "worker's out SA src fc18::3 dst fc18::4 proto esp spi 0x00000003",
    );
    assert!(
        f["what"]
            .as_str()
            .unwrap()
            .contains("ESP spi 0x3 to fc18::4"),
        "{f}"
    );
    let (sent, got) = ping_counts(&read("v6-no-in-sa.ping"));
    assert!(sent > 0 && got == 0, "no IPv6 ping answered: {sent}/{got}");
}

/// Decrypted packets to a node's own address are delivered, so the kernel checks the `in`
/// policies (the pods behind it are forwarded: `fwd`). netshoot pings worker2's router IP.
#[test]
fn lab_doctor_in_policy_for_packets_delivered_to_the_node() {
    // The base lab clears the decrypt mark of every decrypted packet: no in policy takes the
    // router IP's (mark 0), the kernel drops it, and the doctor says so.
    let f = blamed(
        "router-base",
        "in-policy-missing",
        "worker2",
        "XfrmInNoPols",
        "checked against the in policies with mark 0x0",
    );
    assert!(
        f["what"].as_str().unwrap().contains("→ 10.0.0.40/32"),
        "{f}"
    );
    let (sent, got) = ping_counts(&read("router-base.ping"));
    assert!(sent > 0 && got == 0, "{sent}/{got}");
    // With the mark kept for it (as Cilium does), the in policy takes it: fine, answered.
    fine("router");
    assert_eq!(kernel_moved("router", "worker2"), Vec::<String>::new());
    let (sent, got) = ping_counts(&read("router.ping"));
    assert!(got > 0 && got + 1 >= sent, "{sent}/{got}");
    // Then only worker2's in policies gone: the kernel's XfrmInNoPols, blamed on them.
    let f = blamed(
        "no-in-policy",
        "in-policy-missing",
        "worker2",
        "XfrmInNoPols",
        "checked against the in policies",
    );
    assert!(
        f["what"]
            .as_str()
            .unwrap()
            .starts_with("no in policy covers 10.0.1.0/24 → 10.0.0.40/32"),
        "{f}"
    );
    let (sent, got) = ping_counts(&read("no-in-policy.ping"));
    assert!(sent > 0 && got == 0, "{sent}/{got}");
}
