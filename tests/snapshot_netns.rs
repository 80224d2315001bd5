//! `hopscope snapshot` against a real kernel (a throwaway netns on the host, as root),
//! field by field against what iproute2 prints for the same netns.

mod common;
use common::{Netns, hopscope, require_root, run, snapshot_json};
use serde_json::Value;
use std::collections::BTreeSet;

/// A netns shaped like a Cilium IPsec node: bridge, veths (one peer in another netns),
/// tables 200/2004/2005, the seed's fwmark rules, v6 routes and rules, XFRM policies.
fn build_node() -> (Netns, Netns) {
    let ns = Netns::new("node");
    let pod = Netns::new("pod");
    for cmd in [
        "link add br0 type bridge",
        "link add cilium_host type veth peer name cilium_net",
        "link add v0 type veth peer name v1",
        "link set v1 master br0",
        "link add lxc0 type veth peer name eth0 netns PODNS",
        "link set lo up",
        "link set br0 up",
        "link set v0 up",
        "link set v1 up",
        "link set cilium_host up",
        "link set cilium_net up",
        "link set lxc0 up",
        "link set cilium_host arp off",
        "link set cilium_net arp off mtu 1423",
        "addr add 10.0.1.138/32 dev cilium_host scope link",
        "addr add 172.18.0.3/16 dev br0",
        "addr add fc00:f853:ccd:e793::3/64 dev br0 nodad",
        "route add default via 172.18.0.1 dev br0",
        "route add 10.0.0.0/24 via 172.18.0.4 dev br0",
        "route add 10.0.1.0/24 via 10.0.1.138 dev cilium_host src 10.0.1.138",
        "route add 10.0.0.0/24 dev cilium_host table 200 mtu 1500",
        "route add 10.0.2.0/24 dev cilium_host table 200 mtu lock 1423",
        "route add local 10.0.1.0/24 dev br0 table 200 proto 50",
        "route add 10.0.1.52/32 dev lxc0 table 2004 metric 7",
        "route add blackhole 10.66.0.0/16 table 2005",
        "route add 10.77.0.0/16 nexthop via 172.18.0.2 dev br0 nexthop via 172.18.0.4 dev br0",
        "-6 route add 2001:db8::/32 via fc00:f853:ccd:e793::1 dev br0 table 2005 metric 42",
        "-6 route add default via fc00:f853:ccd:e793::1 dev br0",
        "rule add fwmark 0xd00/0xf00 lookup 200 pref 1",
        "rule add fwmark 0xe00/0xf00 lookup 200 pref 1",
        "rule add fwmark 0x200/0xf00 lookup 2004 pref 9",
        "rule add fwmark 0xa00/0xf00 lookup 2005 pref 10",
        "rule add from 10.0.1.0/24 to 10.0.0.0/24 iif lxc0 lookup 2004 pref 20",
        "rule add oif cilium_host fwmark 0x1 lookup main pref 30",
        "rule add from 10.9.0.0/16 blackhole pref 40",
        "-6 rule add from fc00::/7 lookup 2005 pref 50",
        "xfrm policy add src 10.0.1.0/24 dst 10.0.0.0/24 dir out priority 0 mark 0x3e00 mask 0xff00 tmpl src 10.0.1.138 dst 10.0.0.40 proto esp spi 3 reqid 1 mode tunnel",
        "xfrm policy add src 0.0.0.0/0 dst 10.0.1.0/24 dir fwd priority 2975 mark 0 mask 0xf00 tmpl src 0.0.0.0 dst 10.0.1.138 proto esp reqid 1 mode tunnel level use",
        "xfrm policy add src 0.0.0.0/0 dst 10.0.1.0/24 dir in priority 0 mark 0xd00 mask 0xf00 tmpl src 0.0.0.0 dst 10.0.1.138 proto esp reqid 1 mode tunnel",
        "xfrm policy add src fc00::/64 dst fd00::/64 proto tcp dport 443 dir out priority 7 action block",
    ] {
        ns.ip(&cmd.replace("PODNS", &pod.name));
    }
    // Move `local` after Cilium's rules as Cilium does.
    ns.ip("rule add lookup local pref 100");
    ns.ip("rule del lookup local pref 0");
    (ns, pod)
}

fn by_index(v: &Value, index: u64) -> &Value {
    v["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["index"] == index)
        .expect("link by index")
}

#[test]
fn links_and_addresses_match_iproute2() {
    require_root();
    let (ns, _pod) = build_node();
    // Counters move (IPv6 ND/MLD on fresh links): ours must lie between two reads of ip's.
    let theirs = ns.ip_json("-s -d link show");
    let ours = snapshot_json(&ns.name, &[]);
    let later = ns.ip_json("-s -d link show");
    assert_eq!(
        ours["links"].as_array().unwrap().len(),
        theirs.as_array().unwrap().len()
    );
    for l in theirs.as_array().unwrap() {
        let idx = l["ifindex"].as_u64().unwrap();
        let o = by_index(&ours, idx);
        let name = l["ifname"].as_str().unwrap();
        assert_eq!(o["name"], name);
        assert_eq!(o["mtu"], l["mtu"], "{name} mtu");
        assert_eq!(o["mac"], l["address"], "{name} mac");
        assert_eq!(o["qdisc"], l["qdisc"], "{name} qdisc");
        assert_eq!(o["oper_state"], l["operstate"], "{name} operstate");
        let f = |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(f(&o["flags"]), f(&l["flags"]), "{name} flags");
        assert_eq!(
            o["kind"].as_str(),
            l["linkinfo"]["info_kind"].as_str(),
            "{name} kind"
        );
        assert_eq!(
            o["master"]["name"].as_str(),
            l["master"].as_str(),
            "{name} master"
        );
        // ip prints `link` (peer name, same netns) or `link_index` + `link_netnsid` (elsewhere).
        match (l.get("link"), l.get("link_netnsid")) {
            (Some(peer), _) => assert_eq!(o["peer"]["name"], *peer, "{name} peer"),
            (None, Some(nsid)) => {
                assert_eq!(o["peer"]["netns_id"], *nsid, "{name} peer netns");
                assert_eq!(o["peer"]["index"], l["link_index"], "{name} peer index");
            }
            (None, None) => assert!(o["peer"].is_null(), "{name} has no peer"),
        }
        let s = &l["stats64"];
        let s2 = &later
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["ifindex"] == idx)
            .unwrap()["stats64"];
        for (ours_k, dir, k) in [
            ("rx_bytes", "rx", "bytes"),
            ("rx_packets", "rx", "packets"),
            ("rx_errors", "rx", "errors"),
            ("rx_dropped", "rx", "dropped"),
            ("tx_bytes", "tx", "bytes"),
            ("tx_packets", "tx", "packets"),
            ("tx_errors", "tx", "errors"),
            ("tx_dropped", "tx", "dropped"),
        ] {
            let (lo, v, hi) = (
                s[dir][k].as_u64().unwrap(),
                o["stats"][ours_k].as_u64().unwrap(),
                s2[dir][k].as_u64().unwrap(),
            );
            assert!(
                lo <= v && v <= hi,
                "{name} {ours_k}: ip said {lo} then {hi}, we said {v}"
            );
        }
    }
    let host = by_index(
        &ours,
        theirs
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["ifname"] == "cilium_host")
            .unwrap()["ifindex"]
            .as_u64()
            .unwrap(),
    );
    assert_eq!(host["peer"]["name"], "cilium_net");
    assert!(host["flags"].as_array().unwrap().contains(&"NOARP".into()));

    let addrs = ns.ip_json("addr show");
    for l in addrs.as_array().unwrap() {
        let o = by_index(&ours, l["ifindex"].as_u64().unwrap());
        let theirs: BTreeSet<(String, String, u64, String)> = l["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["family"].as_str().unwrap().into(),
                    a["local"].as_str().unwrap().into(),
                    a["prefixlen"].as_u64().unwrap(),
                    a["scope"].as_str().unwrap().into(),
                )
            })
            .collect();
        let mine: BTreeSet<(String, String, u64, String)> = o["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["family"].as_str().unwrap().into(),
                    a["address"].as_str().unwrap().into(),
                    a["prefix_len"].as_u64().unwrap(),
                    a["scope"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(mine, theirs, "addresses of {}", o["name"]);
    }
}

/// iproute2 omits defaults in -j output; fill them in so both sides say the same thing.
fn normalize_ip_route(
    r: &Value,
    family: &str,
) -> (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
) {
    let s = |k: &str, default: &str| {
        r.get(k)
            .and_then(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or_else(|| Some(v.to_string()))
            })
            .unwrap_or_else(|| default.to_string())
    };
    let mut dst = s("dst", "default");
    if dst != "default" && !dst.contains('/') {
        dst.push_str(if family == "inet" { "/32" } else { "/128" });
    }
    let mtu = r["metrics"]
        .as_array()
        .and_then(|m| m.iter().find_map(|x| x.get("mtu")))
        .map(|v| v.to_string())
        .unwrap_or_default();
    let gw = match r.get("nexthops") {
        Some(hops) => hops
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["gateway"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join(","),
        None => s("gateway", ""),
    };
    (
        family.into(),
        s("table", "main"),
        s("type", "unicast"),
        dst,
        gw,
        s("dev", ""),
        s("prefsrc", ""),
        s("protocol", "boot"),
        s("scope", "global"),
        format!(
            "{}|{}",
            r.get("metric").map(|m| m.to_string()).unwrap_or_default(),
            mtu
        ),
    )
}

fn normalize_ours(
    r: &Value,
) -> (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
) {
    let s = |v: &Value| v.as_str().map(str::to_string).unwrap_or_default();
    let table = r["table"]["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| r["table"]["id"].to_string());
    let gw = match r.get("nexthops") {
        Some(hops) => hops
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["gateway"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join(","),
        None => s(&r["gateway"]),
    };
    let num = |v: &Value| {
        if v.is_null() {
            String::new()
        } else {
            v.to_string()
        }
    };
    // ip -j writes a locked mtu as ["lock", N]; compare the number and check the lock separately.
    (
        s(&r["family"]),
        table,
        s(&r["type"]),
        s(&r["dst"]),
        gw,
        s(&r["dev"]["name"]),
        s(&r["prefsrc"]),
        s(&r["protocol"]),
        s(&r["scope"]),
        format!("{}|{}", num(&r["metric"]), num(&r["mtu"])),
    )
}

#[test]
fn routes_in_every_table_match_iproute2() {
    require_root();
    let (ns, _pod) = build_node();
    let ours = snapshot_json(&ns.name, &[]);
    let mut theirs = Vec::new();
    for (flag, fam) in [("-4", "inet"), ("-6", "inet6")] {
        for r in ns
            .ip_json(&format!("{flag} route show table all"))
            .as_array()
            .unwrap()
        {
            let mut r = r.clone();
            // normalize a locked mtu (`["lock", 1423]` or `{"mtu":["lock",1423]}`) to its number
            if let Some(ms) = r.get_mut("metrics").and_then(|m| m.as_array_mut()) {
                for m in ms {
                    if let Some(arr) = m.get("mtu").and_then(|v| v.as_array()).cloned() {
                        m["mtu"] = arr.last().unwrap().clone();
                    }
                }
            }
            theirs.push(normalize_ip_route(&r, fam));
        }
    }
    let mine: Vec<_> = ours["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(normalize_ours)
        .collect();
    let (a, b): (BTreeSet<_>, BTreeSet<_>) = (
        mine.iter().cloned().collect(),
        theirs.iter().cloned().collect(),
    );
    assert_eq!(mine.len(), theirs.len(), "route count");
    assert_eq!(
        a.difference(&b).collect::<Vec<_>>(),
        Vec::<&_>::new(),
        "routes only we show"
    );
    assert_eq!(
        b.difference(&a).collect::<Vec<_>>(),
        Vec::<&_>::new(),
        "routes only ip shows"
    );
    // The locked MTU is reported as locked, the unlocked one not.
    let locked: Vec<_> = ours["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["mtu_locked"] == true)
        .map(|r| r["dst"].clone())
        .collect();
    assert_eq!(locked, vec![Value::from("10.0.2.0/24")]);
    let t200 = ours["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["table"]["id"] == 200)
        .count();
    assert_eq!(t200, 3);
}

#[test]
fn rules_match_iproute2() {
    require_root();
    let (ns, _pod) = build_node();
    let ours = snapshot_json(&ns.name, &[]);
    let mut theirs = Vec::new();
    for (flag, fam) in [("-4", "inet"), ("-6", "inet6")] {
        for r in ns.ip_json(&format!("{flag} rule show")).as_array().unwrap() {
            let s = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
            let mark = match (r.get("fwmark"), r.get("fwmask")) {
                (Some(m), Some(k)) => format!("{}/{}", m.as_str().unwrap(), k.as_str().unwrap()),
                (Some(m), None) => format!("{}/0xffffffff", m.as_str().unwrap()),
                _ => String::new(),
            };
            let dst = match (r.get("dst"), r.get("dstlen")) {
                (Some(d), Some(l)) => format!("{}/{}", d.as_str().unwrap(), l),
                _ => String::new(),
            };
            let src = match (r["src"].as_str(), r.get("srclen")) {
                (Some("all"), _) | (None, _) => "all".to_string(),
                (Some(s), Some(l)) => format!("{s}/{l}"),
                (Some(s), None) => s.to_string(),
            };
            let action = if r.get("table").is_some() {
                format!("lookup {}", s("table"))
            } else {
                s("action")
            };
            theirs.push((
                fam.to_string(),
                r["priority"].as_u64().unwrap(),
                src,
                dst,
                s("iif"),
                s("oif"),
                mark,
                action,
            ));
        }
    }
    let mine: Vec<_> = ours["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            let mark = if r["fwmark"].is_null() {
                String::new()
            } else {
                format!(
                    "{:#x}/{:#x}",
                    r["fwmark"]["value"].as_u64().unwrap(),
                    r["fwmark"]["mask"].as_u64().unwrap()
                )
            };
            let action = if r["table"].is_null() {
                s(&r["action"])
            } else {
                format!(
                    "lookup {}",
                    r["table"]["name"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| r["table"]["id"].to_string())
                )
            };
            let src = if r["src"].is_null() {
                "all".into()
            } else {
                s(&r["src"])
            };
            (
                s(&r["family"]),
                r["priority"].as_u64().unwrap(),
                src,
                s(&r["dst"]),
                s(&r["iif"]),
                s(&r["oif"]),
                mark,
                action,
            )
        })
        .collect();
    assert_eq!(mine, theirs);
    assert!(
        mine.iter()
            .any(|r| r.1 == 1 && r.6 == "0xe00/0xf00" && r.7 == "lookup 200")
    );
}

#[test]
fn xfrm_policies_are_what_was_created() {
    require_root();
    let (ns, _pod) = build_node();
    let ours = snapshot_json(&ns.name, &[]);
    let pols = ours["xfrm_policies"].as_array().unwrap();
    assert_eq!(pols.len(), 4);
    let find = |dir: &str, prio: u64| {
        pols.iter()
            .find(|p| p["dir"] == dir && p["priority"] == prio)
            .unwrap_or_else(|| panic!("{dir} {prio}"))
    };
    let out = find("out", 0);
    assert_eq!(out["selector"]["src"], "10.0.1.0/24");
    assert_eq!(out["selector"]["dst"], "10.0.0.0/24");
    assert_eq!(
        out["mark"],
        serde_json::json!({"value": 0x3e00, "mask": 0xff00})
    );
    assert_eq!(out["action"], "allow");
    assert_eq!(
        out["templates"],
        serde_json::json!([{"src": "10.0.1.138", "dst": "10.0.0.40", "proto": "esp", "spi": 3, "reqid": 1, "mode": "tunnel", "level": "required"}])
    );
    let fwd = find("fwd", 2975);
    assert_eq!(fwd["mark"], serde_json::json!({"value": 0, "mask": 0xf00}));
    assert_eq!(fwd["templates"][0]["level"], "use");
    assert_eq!(fwd["templates"][0]["src"], "0.0.0.0");
    assert_eq!(fwd["templates"][0]["spi"], 0);
    let inp = find("in", 0);
    assert_eq!(
        inp["mark"],
        serde_json::json!({"value": 0xd00, "mask": 0xf00})
    );
    let v6 = find("out", 7);
    assert_eq!(
        v6["selector"],
        serde_json::json!({"src": "fc00::/64", "dst": "fd00::/64", "proto": 6, "sport": null, "dport": 443, "dev": null})
    );
    assert_eq!(v6["action"], "block");
    assert!(v6["templates"].as_array().unwrap().is_empty());
    // Each policy carries the index the kernel gave it (as `ip -s xfrm policy` shows).
    let text = ns.ip("-s xfrm policy");
    for p in pols {
        assert!(
            text.contains(&format!("index {} ", p["index"])),
            "index {} not in ip's output",
            p["index"]
        );
    }
    assert_eq!(ours["xfrm_counts"]["spd"]["out"], 2);
    assert_eq!(ours["xfrm_counts"]["spd"]["in"], 1);
}

#[test]
fn xfrm_stat_matches_proc() {
    require_root();
    let (ns, _pod) = build_node();
    let ours = snapshot_json(&ns.name, &[]);
    let proc_text = run(
        "ip",
        &["netns", "exec", &ns.name, "cat", "/proc/net/xfrm_stat"],
    );
    let stats = ours["xfrm_stats"].as_object().unwrap();
    assert_eq!(stats.len(), proc_text.lines().count());
    for line in proc_text.lines() {
        let mut it = line.split_whitespace();
        let (k, v) = (
            it.next().unwrap(),
            it.next().unwrap().parse::<u64>().unwrap(),
        );
        assert_eq!(stats[k], v, "{k}");
    }
}

/// Everything `ip` can print about a netns, minus live counters, timers and DAD progress.
fn full_state(ns: &Netns) -> Vec<String> {
    [
        "link show",
        "addr show",
        "-4 route show table all",
        "-6 route show table all",
        "-4 rule",
        "-6 rule",
        "xfrm policy",
        "xfrm state",
    ]
    .iter()
    .flat_map(|c| {
        let out = ns.ip(c).replace(" tentative", "");
        std::iter::once(format!("## {c}"))
            .chain(out.lines().map(str::to_string).collect::<Vec<_>>())
    })
    .collect()
}

#[test]
fn snapshot_changes_nothing() {
    require_root();
    let (ns, _pod) = build_node();
    let before = full_state(&ns);
    for extra in [&[][..], &["--show-keys"][..]] {
        snapshot_json(&ns.name, extra);
    }
    assert!(
        hopscope(&["snapshot", "--netns", &ns.name])
            .status
            .success()
    );
    let after = full_state(&ns);
    let gone: Vec<_> = before.iter().filter(|l| !after.contains(l)).collect();
    let new: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
    assert!(
        gone.is_empty() && new.is_empty(),
        "state changed: gone {gone:#?} new {new:#?}"
    );
    assert_eq!(before, after);
}

#[test]
fn netns_by_path_and_by_pid() {
    require_root();
    let (ns, _pod) = build_node();
    let by_name = snapshot_json(&ns.name, &[]);
    let by_path = snapshot_json(&format!("/run/netns/{}", ns.name), &[]);
    // IPv6 link-local addresses may finish DAD between two reads; compare the IPv4 routes.
    let v4 = |v: &Value| {
        v["routes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["family"] == "inet")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(
        v4(&by_name) == v4(&by_path),
        "same netns by name and by path"
    );
    assert_eq!(
        by_path["node"]["netns"]["path"],
        format!("/run/netns/{}", ns.name)
    );
    // A process living in the netns: --pid reads its netns.
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "sleep", "30"])
        .spawn()
        .unwrap();
    // `ip netns exec` enters the netns, then execs sleep: wait until the child is in it.
    let in_netns = || {
        use std::os::unix::fs::MetadataExt;
        let want = std::fs::metadata(format!("/run/netns/{}", ns.name)).map(|m| m.ino());
        let have = std::fs::metadata(format!("/proc/{}/ns/net", child.id())).map(|m| m.ino());
        matches!((want, have), (Ok(w), Ok(h)) if w == h)
    };
    let t0 = std::time::Instant::now();
    while !in_netns() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "ip netns exec never entered it"
        );
        std::thread::sleep(std::time::Duration::from_millis(10)); // the poll interval
    }
    let out = hopscope(&["snapshot", "--json", "--pid", &child.id().to_string()]);
    child.kill().ok();
    child.wait().ok();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_pid: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(by_pid["rules"] == by_name["rules"], "same rules by pid");
    assert_eq!(by_pid["node"]["netns"]["pid"], child.id());
}

#[test]
fn unknown_netns_and_dead_pid_are_clear_errors() {
    require_root();
    let ns = Netns::new("known");
    let out = hopscope(&["snapshot", "--netns", "no-such-ns-xyz"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-ns-xyz") && err.contains(&ns.name),
        "error must name it and list known ones: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    let out = hopscope(&["snapshot", "--pid", "999999999"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("999999999") && err.contains("no process"),
        "{err}"
    );
    let out = hopscope(&["snapshot", "--netns", "/etc/hostname"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("network namespace"));
}

#[test]
fn missing_capabilities_are_named_and_the_rest_is_shown() {
    require_root();
    let (ns, _pod) = build_node();
    let bin = env!("CARGO_BIN_EXE_hopscope");
    // Root without CAP_NET_ADMIN (a container without --cap-add NET_ADMIN), reading its own netns.
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "setpriv",
            "--bounding-set=-net_admin",
            "--inh-caps=-net_admin",
            bin,
            "snapshot",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("CAP_NET_ADMIN") && warnings.contains("XFRM"),
        "{warnings}"
    );
    assert!(
        warnings.contains("sudo") || warnings.contains("privileged"),
        "says how to fix: {warnings}"
    );
    assert!(v["xfrm_policies"].as_array().unwrap().is_empty());
    assert!(
        v["links"].as_array().unwrap().len() >= 6,
        "links still shown"
    );
    assert!(
        v["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["table"]["id"] == 200),
        "routes still shown"
    );
    // The text output says it too, on stdout, before the data.
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "setpriv",
            "--bounding-set=-net_admin",
            bin,
            "snapshot",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("warning: CAP_NET_ADMIN missing"));

    // An unprivileged user cannot enter another netns: the error names CAP_SYS_ADMIN.
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            bin,
            "snapshot",
            "--netns",
            &ns.name,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
}
