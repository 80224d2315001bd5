//! `hopscope record --netns NODE` records the pods behind NODE's lxc veths beside it, found
//! the way the live doctor finds them (the veth's peer netns), so `doctor --from` can check
//! their MTU without the user naming their netns. Host kernel (veth pairs between netns),
//! root.

mod common;

use common::{Netns, require_root};
use hopscope::record::reader::Recording;
use std::process::Command;

#[test]
fn record_of_a_node_records_the_pods_behind_its_lxc_veths() {
    require_root();
    let node = Netns::new("rpn");
    let pod = Netns::new("rpp");
    let other = Netns::new("rpo");
    // A pod behind an lxc veth, with the route MTU the doctor judges; and a netns behind a
    // veth that is not a pod's (not lxc*): not recorded.
    node.ip(&format!(
        "link add lxc0a1b2c type veth peer name eth0 netns {}",
        pod.name
    ));
    node.ip(&format!(
        "link add veth9 type veth peer name eth1 netns {}",
        other.name
    ));
    node.ip("link set lo up");
    node.ip("link set lxc0a1b2c up");
    pod.ip("link set eth0 mtu 1500 up");
    pod.ip("addr add 10.99.0.2/32 dev eth0");
    pod.ip("route add 10.99.0.1 dev eth0 scope link");
    pod.ip("route add default via 10.99.0.1 dev eth0 mtu 1400");

    let dir = std::env::temp_dir().join(format!("hopscope-record-pods-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("node.hsrec");
    let bin = env!("CARGO_BIN_EXE_hopscope");
    let out = Command::new(bin)
        .args(["--no-kube", "record", "-q", "--duration", "1"])
        .args(["--netns", &node.name, "-i", "lo", "-i", "eth0", "-o"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let rec = Recording::open(&file).unwrap();
    let labels: Vec<&str> = rec.nodes.iter().map(|n| n.label.as_str()).collect();
    assert_eq!(labels.len(), 2, "the node and its pod: {labels:?}");
    assert!(labels[0].contains(&node.name), "{labels:?}");
    assert!(labels[1].contains(&pod.name), "{labels:?}");
    // The pod as it was: its eth0 is the node's lxc veth's peer, with its route MTU.
    let states = rec.final_states();
    let lxc = states[0].link_by_name("lxc0a1b2c").expect("the lxc veth");
    let eth0 = states[1].link_by_name("eth0").expect("the pod's eth0");
    assert_eq!(lxc.peer.as_ref().map(|p| p.index), Some(eth0.index));
    let default = states[1]
        .routes
        .iter()
        .find(|r| r.table.id == 254 && r.dst.is_none())
        .expect("the pod's default route");
    assert_eq!(default.mtu, Some(1400));
    // Recorded for its state only: `-i eth0` captures nothing in the pod (lo is the node's).
    assert!(!rec.ifaces.is_empty());
    assert!(rec.ifaces.iter().all(|i| i.node == 0), "{:?}", rec.ifaces);

    // `doctor --from` judges the node alone: the pod is its pod, not a node.
    let out = Command::new(bin)
        .args(["doctor", "--no-kube", "--json", "--from"])
        .arg(&file)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let nodes: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().or(n["name"].as_str()).unwrap())
        .collect();
    assert_eq!(nodes.len(), 1, "{v:#}");
    assert!(nodes[0].contains(&node.name), "{v:#}");
    let _ = std::fs::remove_dir_all(&dir);
}
