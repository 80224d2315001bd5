//! `hopscope trace` end to end: across two live network namespaces on the host kernel, and
//! over recorded snapshots (`--state`).

mod common;
use common::{Netns, hopscope, require_root};
use serde_json::Value;

fn trace_json(args: &[&str]) -> Value {
    let mut a = vec!["trace"];
    a.extend_from_slice(args);
    a.push("--json");
    let out = hopscope(&a);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Node `a` routes 10.9.0.0/24 to node `b` over a veth (`NET.1` ↔ `NET.2`); `b` has pod
/// 10.9.0.5 behind `lxc1` (proxy ARP, forwarding on), like a CNI's node.
fn two_nodes_and_a_pod(tag: &str, net: &str) -> (Netns, Netns, Netns) {
    let a = Netns::new(&format!("{tag}a"));
    let b = Netns::new(&format!("{tag}b"));
    let pod = Netns::new(&format!("{tag}p"));
    a.ip(&format!(
        "link add eth0 type veth peer name eth0 netns {}",
        b.name
    ));
    b.ip(&format!(
        "link add lxc1 type veth peer name eth0 netns {}",
        pod.name
    ));
    for c in [
        format!("addr add {net}.1/24 dev eth0"),
        "link set eth0 up".into(),
        format!("route add 10.9.0.0/24 via {net}.2 dev eth0"),
    ] {
        a.ip(&c);
    }
    for c in [
        format!("addr add {net}.2/24 dev eth0"),
        "link set eth0 up".into(),
        "link set lxc1 up".into(),
        "route add 10.9.0.5/32 dev lxc1".into(),
    ] {
        b.ip(&c);
    }
    for c in [
        "addr add 10.9.0.5/32 dev eth0",
        "link set eth0 up",
        "route add default dev eth0",
    ] {
        pod.ip(c);
    }
    common::run(
        "ip",
        &[
            "netns",
            "exec",
            &b.name,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.lxc1.proxy_arp=1",
        ],
    );
    (a, b, pod)
}

#[test]
fn follows_a_flow_across_two_live_nodes_to_a_pod() {
    require_root();
    let (a, b, _pod) = two_nodes_and_a_pod("tr", "172.30.0");
    let t = trace_json(&[
        "172.30.0.1",
        "10.9.0.5",
        "--netns",
        &a.name,
        "--netns",
        &b.name,
    ]);
    let steps: Vec<&str> = t["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "ingress", "route", "egress", "wire", "ingress", "route", "egress", "deliver"
        ],
        "{t:#}"
    );
    assert_eq!(
        t["hops"][1]["what"],
        "unicast route: table main: 10.9.0.0/24 via 172.30.0.2 dev eth0"
    );
    assert_eq!(t["hops"][4]["node"], b.name.as_str());
    assert_eq!(t["hops"][4]["dev"], "eth0");
    assert_eq!(
        t["end"],
        serde_json::json!({"end": "delivered", "node": b.name, "dev": "lxc1", "what": "pod 10.9.0.5"})
    );

    // With only the first node, the path ends at the wire and says how to go on.
    let out = hopscope(&["trace", "172.30.0.1", "10.9.0.5", "--netns", &a.name]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("=> leaves") && text.contains("towards 172.30.0.2"),
        "{text}"
    );

    // No route: the trace stops, says the kernel's error, and exits 3.
    let out = hopscope(&[
        "trace",
        "172.30.0.1",
        "192.0.2.9",
        "--netns",
        &a.name,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["end"]["end"], "stopped");
    assert!(
        t["end"]["reason"]
            .as_str()
            .unwrap()
            .contains("Network is unreachable"),
        "{t:#}"
    );

    // An unknown input interface is named, with the ones that exist.
    let out = hopscope(&[
        "trace",
        "172.30.0.1",
        "10.9.0.5",
        "--iif",
        "nope0",
        "--netns",
        &a.name,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope0") && err.contains("eth0"), "{err}");
}

#[test]
fn follow_sees_the_pings_at_every_hop() {
    require_root();
    let (a, b, _pod) = two_nodes_and_a_pod("tf", "172.31.0");
    let err_file = std::env::temp_dir().join(format!("hs-tf-{}.err", std::process::id()));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args([
            "trace",
            "172.31.0.1",
            "10.9.0.5",
            "--netns",
            &a.name,
            "--netns",
            &b.name,
            "--follow",
            "8",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    // Ping once it follows (its captures are open), not after a guessed delay.
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(&err_file).is_ok_and(|e| e.contains("following for")) {
        assert!(
            t0.elapsed().as_secs() < 60,
            "trace --follow never started following"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ping = std::process::Command::new("ip")
        .args([
            "netns", "exec", &a.name, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.9.0.5",
        ])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "the path works: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let out = child.wait_with_output().unwrap();
    let err = std::fs::read_to_string(&err_file).unwrap_or_default();
    let _ = std::fs::remove_file(&err_file);
    assert!(out.status.success(), "{err}");
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &t["follow"];
    let seen: Vec<(String, String, u64)> = f["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["node"].as_str().unwrap().to_string(),
                h["dev"].as_str().unwrap().to_string(),
                h["seen"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (a.name.clone(), "eth0".into(), 3),
            (b.name.clone(), "eth0".into(), 3),
            (b.name.clone(), "lxc1".into(), 3)
        ],
        "{f:#}"
    );
    assert_eq!(f["verdict"], "seen at every observable hop", "{f:#}");
    assert!(f["hops"][1]["ms_after_previous"].as_f64().is_some());
    assert!(
        f["counters"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["trouble"] == false),
        "{f:#}"
    );
}

#[test]
fn follow_that_sees_nothing_exits_4() {
    require_root();
    let (a, b, _pod) = two_nodes_and_a_pod("tn", "172.31.0");
    // Delivered on paper, but no packet is sent while following.
    let out = hopscope(&[
        "trace",
        "172.31.0.1",
        "10.9.0.5",
        "--netns",
        &a.name,
        "--netns",
        &b.name,
        "--json",
        "--follow",
        "1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["end"]["end"], "delivered");
    assert!(
        t["follow"]["hops"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["seen"] == 0),
        "{t:#}"
    );
}

#[test]
fn traces_recorded_snapshots() {
    let dir = std::env::temp_dir().join(format!("hs-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut args: Vec<String> = vec![
        "10.0.1.52".into(),
        "10.0.0.249".into(),
        "--iif".into(),
        "lxcda1dd0af135e".into(),
    ];
    for n in ["worker", "worker2", "control-plane"] {
        let f = dir.join(format!("{n}.json"));
        std::fs::write(
            &f,
            hopscope::view::json::render(&hopscope::model::fixtures::seed_node(n), false),
        )
        .unwrap();
        args.push("--state".into());
        args.push(f.display().to_string());
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = trace_json(&a);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(t["end"]["end"], "delivered", "{t:#}");
    assert_eq!(t["end"]["node"], "worker2");
    let encrypt = t["hops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["step"] == "encrypt")
        .expect("encrypted");
    assert!(
        encrypt["packet"]
            .as_str()
            .unwrap()
            .starts_with("10.0.1.138 → 10.0.0.40 esp spi 0x3")
    );
    assert_eq!(t["flow"]["size"], 84);
}
