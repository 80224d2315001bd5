//! Cilium's node IDs named, and SAs counted per remote node against the layout (issue 14), over
//! the lab's real layouts-cilium state (tests/fixtures/layouts/ly-ca.json / ly-cb.json: what
//! `snapshot --json` read from the lab kernel, keys redacted) with names from a fake Kubernetes
//! API (tests/kube_support) whose Nodes own the lab's underlay addresses.
//!
//! Node IDs are node-local (each agent allocates them; no Kubernetes object carries them): ly-ca
//! calls ly-cb node 0x2, ly-cb calls ly-ca node 0x1. The name comes from the kernel state — the
//! out SA with the ID in its mark goes to the peer's address — and that address's Node.

mod kube_support;

use hopscope::doctor::{KeyHasher, NodeInput, examine};
use hopscope::kube::KubeArgs;
use hopscope::kube::names::NamesWatch;
use hopscope::model::{Names, NodeState};
use kube_support::FakeApi;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn fixture_path(node: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/layouts/{node}.json"))
}

fn state(node: &str) -> NodeState {
    serde_json::from_str(&std::fs::read_to_string(fixture_path(node)).unwrap()).unwrap()
}

fn k8s_node(name: &str, ips: &[&str]) -> Value {
    let addrs: Vec<Value> = ips
        .iter()
        .map(|a| json!({"type": "InternalIP", "address": a}))
        .collect();
    json!({"metadata": {"name": name, "resourceVersion": "7"}, "status": {"addresses": addrs}})
}

/// The fake API with two Nodes on the lab's underlay addresses, nothing else.
fn api() -> FakeApi {
    let fake = FakeApi::start();
    let list = |kind: &str, items: Vec<Value>| json!({"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": "10"}, "items": items});
    fake.with(|s| {
        s.lists.insert(
            "/api/v1/nodes".into(),
            list(
                "NodeList",
                vec![
                    k8s_node("cni-worker", &["192.168.61.1", "fd61::1"]),
                    k8s_node("cni-worker2", &["192.168.61.2", "fd61::2"]),
                ],
            ),
        );
        s.lists
            .insert("/api/v1/pods".into(), list("PodList", vec![]));
        s.lists
            .insert("/api/v1/services".into(), list("ServiceList", vec![]));
        s.lists.remove("/apis/cilium.io/v2/ciliumnodes");
        s.missing.push("/apis/cilium.io/v2/ciliumnodes".into());
    });
    fake
}

fn names(fake: &FakeApi) -> Arc<Names> {
    let w = NamesWatch::start(&KubeArgs {
        kubeconfig: Some(fake.kubeconfig()),
        ..Default::default()
    });
    assert!(w.wait_settled(Duration::from_secs(10)), "{:?}", w.notices());
    assert_eq!(w.notices(), Vec::<String>::new());
    w.names()
}

#[test]
fn snapshot_names_node_ids_from_kubernetes_and_says_where_from() {
    let fake = api();
    let names = names(&fake);
    let st = state("ly-ca");
    let text = hopscope::view::text::render(&st, false, &names);
    // The out SA's mark: node 0x2 is cni-worker2 (ly-ca's ID for ly-cb).
    assert!(
        text.contains("mark 0x23e00/0xffffff00 (encrypt, key 3, node 0x2 (worker2))"),
        "{text}"
    );
    assert!(
        text.contains("mark 0x20d00/0xffff0f00 (decrypt, node 0x2 (worker2))"),
        "{text}"
    );
    // The layout section: per remote node and family, found/expected during the rotation.
    let section = text
        .split("== cilium ipsec: SAs per remote node (2) ==")
        .nth(1)
        .unwrap_or_else(|| panic!("no layout section: {text}"));
    assert!(
        section.contains("layout: Cilium with inbound SAs per source node"),
        "{section}"
    );
    for (fam, peer) in [("inet ", "192.168.61.2"), ("inet6", "fd61::2")] {
        let row = section
            .lines()
            .find(|l| l.starts_with("0x2") && l.contains(peer))
            .unwrap_or_else(|| panic!("no row for {peer}: {section}"));
        assert!(row.contains(fam) && row.contains("worker2"), "{row}");
        assert!(row.contains("0x3,0x4  2/2  2/2  ok"), "{row}");
        assert!(
            row.contains(&format!(
                "node ID 0x2 is in the out SA marks towards {peer}; {peer} is a node address (InternalIP/ExternalIP) of node cni-worker2 (Kubernetes)"
            )),
            "{row}"
        );
    }
    // The JSON says the same.
    let mut out = Vec::new();
    hopscope::view::json::write(
        &st,
        &hopscope::output::Stamp::now(),
        false,
        false,
        &names,
        &mut out,
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let c = &v["cilium_ipsec"];
    assert_eq!(c["layout"], "node_id_per_source", "{c:#}");
    assert_eq!(c["keys"], 2);
    let peers = c["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "{c:#}");
    for p in peers {
        assert_eq!(p["node_id"], 2);
        assert_eq!(p["name"], "worker2");
        assert!(
            p["name_from"]
                .as_str()
                .unwrap()
                .contains("of node cni-worker2"),
            "{p}"
        );
        assert_eq!((&p["out"], &p["expected_out"]), (&json!(2), &json!(2)));
        assert_eq!((&p["inbound"], &p["expected_in"]), (&json!(2), &json!(2)));
    }
}

#[test]
fn without_kubernetes_a_node_id_is_shown_with_its_sas_peer() {
    let st = state("ly-ca");
    let text = hopscope::view::text::render(&st, false, &Default::default());
    assert!(
        text.contains("(encrypt, key 3, node 0x2 (192.168.61.2))"),
        "{text}"
    );
    assert!(text.contains("no Kubernetes name for the peer"), "{text}");
    // The other node's own SAs: there the same peer pair is node 0x1.
    let text = hopscope::view::text::render(&state("ly-cb"), false, &Default::default());
    assert!(
        text.contains("(encrypt, key 3, node 0x1 (192.168.61.1))"),
        "{text}"
    );
}

/// `hopscope trace` over both recorded nodes with the names from the API: each node's marks
/// are named by that node's own IDs.
#[test]
fn trace_names_each_nodes_marks_by_its_own_ids() {
    let fake = api();
    let out = Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .arg("--kubeconfig")
        .arg(fake.kubeconfig())
        .args([
            "trace",
            "10.61.1.1",
            "10.61.2.1",
            "--mark",
            "0x23e00",
            "--state",
        ])
        .arg(fixture_path("ly-ca"))
        .arg("--state")
        .arg(fixture_path("ly-cb"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() == Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("node 0x2 (worker2)"), "{text}");
    assert!(!text.contains("node 0x2)"), "every node 0x2 named: {text}");
}

fn sa_count_findings(st: &NodeState) -> Vec<String> {
    let input = NodeInput {
        name: "ly-ca".into(),
        state: st,
        before: None,
        netfilter: None,
        pods: &[],
        seen: &[],
    };
    let r = examine(&[input], &KeyHasher::new(b"t".to_vec()));
    r.findings
        .iter()
        .filter(|f| f.id == "sa-count")
        .map(|f| format!("{} | {}", f.what, f.evidence.join(" | ")))
        .collect()
}

#[test]
fn doctor_counts_sas_per_remote_node_against_the_layout() {
    let mut st = state("ly-ca");
    assert_eq!(sa_count_findings(&st), Vec::<String>::new(), "healthy");
    // ly-cb's v4 inbound SA for key 4 goes missing (the agent did not install it).
    st.xfrm_states
        .retain(|x| !(x.src == "192.168.61.2" && x.spi == 4));
    let f = sa_count_findings(&st);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].starts_with(
            "node 0x2 (192.168.61.2) (inet): 2 out and 1 inbound SA(s) for spi 0x3, 0x4, where Cilium with inbound SAs per source node"
        ),
        "{}",
        f[0]
    );
    assert!(f[0].contains("expects 2 and 2"), "{}", f[0]);
}

/// The calls the names watch makes, answered as a real API server answers them: the Node list
/// (its resourceVersion), a watch from that version with bookmarks asked for, a BOOKMARK that
/// moves the version on, the server ending the watch, the next watch from the bookmark's
/// version refused as too old (ERROR 410 Expired: the watch cache was compacted), a list
/// again, and the fresh list's Node names the address.
#[test]
fn names_follow_watch_bookmarks_and_relist_after_410_gone() {
    let fake = api();
    let w = NamesWatch::start(&KubeArgs {
        kubeconfig: Some(fake.kubeconfig()),
        ..Default::default()
    });
    assert!(w.wait_settled(Duration::from_secs(10)), "{:?}", w.notices());
    let peer: std::net::IpAddr = "192.168.61.2".parse().unwrap();
    let name_of = |w: &NamesWatch| w.names().get(&peer).map(|n| format!("{n:?}"));
    assert!(
        name_of(&w).unwrap().contains("cni-worker2"),
        "{:?}",
        name_of(&w)
    );
    let nodes = "/api/v1/nodes";
    let watch_from = |rv: &str| {
        let rv = format!("resourceVersion={rv}");
        move |l: &str| {
            l.starts_with(&format!("GET {nodes}?"))
                && l.contains("watch=true")
                && l.contains(&rv)
                && l.contains("allowWatchBookmarks=true")
        }
    };
    let t = Duration::from_secs(10);
    assert!(fake.wait_for(t, watch_from("10")), "{:#?}", fake.log());
    // The node is replaced (another name, same address) while the watch cache moves on.
    fake.with(|s| {
        s.lists.insert(
            nodes.into(),
            json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "30"},
                "items": [k8s_node("cni-worker", &["192.168.61.1"]), k8s_node("ly-cb-new", &["192.168.61.2"])]}),
        );
        s.expired_below.insert(nodes.into(), 25);
    });
    fake.push_watch_event(
        nodes,
        "BOOKMARK",
        json!({"kind": "Node", "apiVersion": "v1", "metadata": {"resourceVersion": "20"}}),
    );
    fake.push_watch_event(nodes, "END", json!({}));
    assert!(fake.wait_for(t, watch_from("20")), "{:#?}", fake.log());
    let lists = |f: &FakeApi| {
        f.log()
            .iter()
            .filter(|l| l.starts_with(&format!("GET {nodes}")) && !l.contains("watch=true"))
            .count()
    };
    let deadline = std::time::Instant::now() + t;
    while std::time::Instant::now() < deadline
        && !name_of(&w).is_some_and(|n| n.contains("ly-cb-new"))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        name_of(&w).is_some_and(|n| n.contains("ly-cb-new")),
        "{:?} {:#?}",
        name_of(&w),
        fake.log()
    );
    assert_eq!(
        lists(&fake),
        2,
        "listed once more after the 410: {:#?}",
        fake.log()
    );
    assert!(fake.wait_for(t, watch_from("30")), "{:#?}", fake.log());
    // 410 is the protocol, not a problem to tell the user of
    assert_eq!(w.notices(), Vec::<String>::new());
}
