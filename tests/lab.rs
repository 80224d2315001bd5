//! Real-kernel lab tests (see docs/lab.md): `hopscope snapshot` against the seed's Cilium 1.13
//! IPsec cluster, rebuilt with network namespaces inside Debian's 6.1 kernel under qemu (our own
//! kernel has no ESP). Each scenario group boots the lab ONCE (`tests/lab/run.sh`, ~30 s under
//! TCG); a guest-side script (`tests/lab/checks/<group>.sh`) runs hopscope and iproute2/tcpdump
//! and writes files into a results dir on the shared fs; the tests below only read those files.
//!
//! Groups (boots are serialised: two TCG guests on 2 cores only slow each other down):
//! - `healthy`: the cluster as the seed shows it;
//! - `no-inbound-sa`: variants no-inbound-sa + rotation + clusterip;
//! - `no-out-policy`: variants no-out-policy + wrong-key.
//!
//! Missing qemu/busybox/kmod/apt is a test FAILURE with the package list, never a skip.

#[path = "schema_support/mod.rs"]
mod schema_support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

// ---------------------------------------------------------------------------------------------
// booting the lab: tests/lab/boot.rs (shared with the other lab test files)

#[path = "lab/boot.rs"]
mod boot;
use boot::boot;

fn group(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    name: &str,
    v: &[&str],
) -> &'static Path {
    match cell.get_or_init(|| boot(name, v)) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn healthy() -> &'static Path {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    group(&CELL, "healthy", &[])
}

fn no_inbound_sa() -> &'static Path {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    group(
        &CELL,
        "no-inbound-sa",
        &["no-inbound-sa", "rotation", "clusterip"],
    )
}

fn no_out_policy() -> &'static Path {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    group(&CELL, "no-out-policy", &["no-out-policy", "wrong-key"])
}

// ---------------------------------------------------------------------------------------------
// reading results

fn text(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

/// A hopscope JSON output, valid against its schema (docs/schema/); its exit status must be
/// 0, or for a trace the one its end calls for (3 stops, 4 not seen by --follow).
fn snap(dir: &Path, name: &str) -> Value {
    let rc = std::fs::read_to_string(dir.join(format!("{name}.rc"))).unwrap_or_else(|_| "0".into());
    let err = std::fs::read_to_string(dir.join(format!("{name}.err"))).unwrap_or_default();
    let v: Value = serde_json::from_str(&text(dir, name))
        .unwrap_or_else(|e| panic!("{name} is not JSON ({e}); stderr: {err}"));
    let want = schema_support::expected_exit(&v);
    assert_eq!(rc.trim(), want.to_string(), "hopscope for {name}: {err}");
    schema_support::validate(name, &v);
    v
}

fn params(dir: &Path) -> BTreeMap<String, u64> {
    text(dir, "params")
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// The lab's keys, from tests/lab/keys.env (one source of truth with cluster.sh).
fn key(name: &str) -> String {
    let env = std::fs::read_to_string(Path::new(REPO).join("tests/lab/keys.env")).unwrap();
    env.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} not in keys.env"))
        .trim()
        .to_string()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} is not a string in {v}"))
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} is not an integer in {v}"))
}

/// `{"value","mask"}` or null.
fn mark(v: &Value) -> Option<(u64, u64)> {
    if v.is_null() {
        return None;
    }
    Some((n(v, "value"), n(v, "mask")))
}

fn arr<'a>(v: &'a Value, k: &str) -> &'a Vec<Value> {
    v[k].as_array()
        .unwrap_or_else(|| panic!("{k} is not an array"))
}

fn state<'a>(snap: &'a Value, src: &str, dst: &str, spi: u64) -> &'a Value {
    arr(snap, "xfrm_states")
        .iter()
        .find(|x| s(x, "src") == src && s(x, "dst") == dst && n(x, "spi") == spi)
        .unwrap_or_else(|| panic!("no SA {src} -> {dst} spi {spi}"))
}

fn link<'a>(snap: &'a Value, name: &str) -> &'a Value {
    arr(snap, "links")
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no link {name}"))
}

/// (bytes, packets) per (src, dst, spi) from `ip -s xfrm state`.
fn ip_xfrm_counters(txt: &str) -> BTreeMap<(String, String, u64), (u64, u64)> {
    let mut out = BTreeMap::new();
    let mut cur: Option<(String, String, u64)> = None;
    let mut lines = txt.lines().peekable();
    while let Some(l) = lines.next() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if l.starts_with("src ") && w.len() >= 4 {
            cur = Some((w[1].into(), w[3].into(), 0));
        } else if w.first() == Some(&"proto") && w.get(2) == Some(&"spi") {
            let spi = w[3].split('(').next().unwrap().trim_start_matches("0x");
            if let Some(c) = cur.as_mut() {
                c.2 = u64::from_str_radix(spi, 16).unwrap();
            }
        } else if l.trim() == "lifetime current:" {
            // "  336(bytes), 4(packets)"
            let nums: Vec<u64> = lines
                .next()
                .unwrap()
                .split(',')
                .map(|p| p.trim().split('(').next().unwrap().parse().unwrap())
                .collect();
            out.insert(cur.clone().unwrap(), (nums[0], nums[1]));
        }
    }
    out
}

fn table_id(t: &str) -> u64 {
    match t {
        "main" => 254,
        "local" => 255,
        "default" => 253,
        other => other.parse().unwrap(),
    }
}

fn hex(v: &str) -> u64 {
    u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap()
}

// ---------------------------------------------------------------------------------------------
// healthy cluster: snapshot content

#[test]
fn lab_snapshot_worker_xfrm_states_match_seed() {
    let d = healthy();
    let w = snap(d, "snap-worker.json");
    let states = arr(&w, "xfrm_states");
    assert_eq!(states.len(), 3, "worker has 3 SAs in the seed");
    // Same SAs, same order as `ip xfrm state` (the kernel's dump order).
    // In `ip xfrm state` an SA starts with "src A dst B" followed by "proto ..."; a policy's
    // "src A dst B" line is followed by "dir ...".
    let dump = text(d, "state-worker.before");
    let lines: Vec<&str> = dump.lines().collect();
    let ip_pairs: Vec<(String, String)> = lines
        .windows(2)
        .filter(|w| w[0].starts_with("src ") && w[1].trim_start().starts_with("proto "))
        .map(|w| {
            let w: Vec<&str> = w[0].split_whitespace().collect();
            (w[1].to_string(), w[3].to_string())
        })
        .collect();
    let ours: Vec<(String, String)> = states
        .iter()
        .map(|x| (s(x, "src").to_string(), s(x, "dst").to_string()))
        .collect();
    assert_eq!(ours, ip_pairs);
    assert_eq!(
        ours,
        [
            ("10.0.1.138", "10.0.2.52"),
            ("10.0.1.138", "10.0.0.40"),
            ("0.0.0.0", "10.0.1.138")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    for x in states {
        assert_eq!(s(x, "proto"), "esp");
        assert_eq!(n(x, "spi"), 3);
        assert_eq!(n(x, "reqid"), 1);
        assert_eq!(s(x, "mode"), "tunnel");
        assert_eq!(n(x, "replay_window"), 0);
        let aead = &x["aead"];
        assert_eq!(s(aead, "name"), "rfc4106(gcm(aes))");
        assert_eq!(n(aead, "key_bits"), 160);
        assert_eq!(n(aead, "icv_bits"), 128);
        assert_eq!(s(aead, "key"), "redacted");
        assert!(x["enc"].is_null() && x["auth"].is_null(), "{x}");
        assert_eq!(s(&x["selector"], "src"), "0.0.0.0/0");
        assert_eq!(s(&x["selector"], "dst"), "0.0.0.0/0");
        if s(x, "src") == "0.0.0.0" {
            assert_eq!(mark(&x["mark"]), Some((0xd00, 0xf00)));
            assert_eq!(mark(&x["output_mark"]), Some((0xd00, 0xf00)));
        } else {
            assert_eq!(mark(&x["mark"]), Some((0x3e00, 0xff00)));
            assert_eq!(mark(&x["output_mark"]), Some((0xe00, 0xf00)));
        }
    }
}

#[test]
fn lab_snapshot_worker_xfrm_policies_match_seed() {
    let d = healthy();
    let w = snap(d, "snap-worker.json");
    type Row = (
        String,
        u64,
        String,
        String,
        (u64, u64),
        String,
        String,
        u64,
        String,
    );
    let got: Vec<Row> = arr(&w, "xfrm_policies")
        .iter()
        .map(|p| {
            let t = arr(p, "templates");
            assert_eq!(t.len(), 1, "{p}");
            assert_eq!(s(&t[0], "proto"), "esp");
            assert_eq!(s(&t[0], "mode"), "tunnel");
            assert_eq!(n(&t[0], "reqid"), 1);
            assert_eq!(s(p, "action"), "allow");
            (
                s(p, "dir").into(),
                n(p, "priority"),
                s(&p["selector"], "src").into(),
                s(&p["selector"], "dst").into(),
                mark(&p["mark"]).expect("policy mark"),
                s(&t[0], "src").into(),
                s(&t[0], "dst").into(),
                n(&t[0], "spi"),
                s(&t[0], "level").into(),
            )
        })
        .collect();
    let row = |dir: &str, pri, ss: &str, sd: &str, m, ts: &str, td: &str, spi, lvl: &str| -> Row {
        (
            dir.into(),
            pri,
            ss.into(),
            sd.into(),
            m,
            ts.into(),
            td.into(),
            spi,
            lvl.into(),
        )
    };
    // The seed's `ip x p` on the worker, in its order.
    let want = vec![
        row(
            "out",
            0,
            "10.0.1.0/24",
            "10.0.2.0/24",
            (0x3e00, 0xff00),
            "10.0.1.138",
            "10.0.2.52",
            3,
            "required",
        ),
        row(
            "out",
            0,
            "10.0.1.0/24",
            "10.0.0.0/24",
            (0x3e00, 0xff00),
            "10.0.1.138",
            "10.0.0.40",
            3,
            "required",
        ),
        row(
            "fwd",
            2975,
            "0.0.0.0/0",
            "10.0.1.0/24",
            (0, 0xf00),
            "0.0.0.0",
            "10.0.1.138",
            0,
            "use",
        ),
        row(
            "in",
            0,
            "0.0.0.0/0",
            "10.0.1.0/24",
            (0xd00, 0xf00),
            "0.0.0.0",
            "10.0.1.138",
            0,
            "required",
        ),
        row(
            "in",
            0,
            "0.0.0.0/0",
            "10.0.1.0/24",
            (0x200, 0xf00),
            "0.0.0.0",
            "10.0.1.138",
            0,
            "use",
        ),
    ];
    assert_eq!(got, want);
    let ip_count = text(d, "state-worker.before")
        .lines()
        .filter(|l| l.trim_start().starts_with("dir "))
        .count();
    assert_eq!(ip_count, want.len(), "ip xfrm policy count");
}

#[test]
fn lab_snapshot_worker_rules_and_tables_match_seed() {
    let w = snap(healthy(), "snap-worker.json");
    type Rule = (u64, Option<(u64, u64)>, u64, String);
    let rules: Vec<Rule> = arr(&w, "rules")
        .iter()
        .filter(|r| r["family"] == "inet")
        .map(|r| {
            (
                n(r, "priority"),
                mark(&r["fwmark"]),
                n(&r["table"], "id"),
                s(r, "action").to_string(),
            )
        })
        .collect();
    let l = |p, m, t| (p, m, t, "lookup".to_string());
    assert_eq!(
        rules,
        vec![
            l(1, Some((0xd00, 0xf00)), 200),
            l(1, Some((0xe00, 0xf00)), 200),
            l(9, Some((0x200, 0xf00)), 2004),
            l(10, Some((0xa00, 0xf00)), 2005),
            l(100, None, 255),
            l(32766, None, 254),
            l(32767, None, 253),
        ]
    );
    // Optional route keys may be left out (docs/json.md): absent == null.
    let opt = |r: &Value, k: &str| r.get(k).cloned().unwrap_or(Value::Null);
    let routes = |table: u64| -> Vec<(String, String, Value, Value, Value)> {
        arr(&w, "routes")
            .iter()
            .filter(|r| r["family"] == "inet" && r["table"]["id"] == table)
            .map(|r| {
                (
                    s(r, "type").to_string(),
                    s(r, "dst").to_string(),
                    opt(r, "gateway"),
                    r["dev"]["name"].clone(),
                    opt(r, "mtu"),
                )
            })
            .collect()
    };
    let r = |t: &str, dst: &str, gw: Option<&str>, dev: &str, mtu: Option<u64>| {
        (
            t.to_string(),
            dst.to_string(),
            gw.map_or(Value::Null, Value::from),
            Value::from(dev),
            mtu.map_or(Value::Null, Value::from),
        )
    };
    assert_eq!(
        routes(200),
        vec![
            r("unicast", "10.0.0.0/24", None, "cilium_host", Some(1500)),
            r("local", "10.0.1.0/24", None, "eth0", None),
            r("unicast", "10.0.2.0/24", None, "cilium_host", Some(1500)),
        ]
    );
    assert_eq!(
        routes(254),
        vec![
            r("unicast", "default", Some("172.18.0.1"), "eth0", None),
            r("unicast", "10.0.0.0/24", Some("172.18.0.4"), "eth0", None),
            r(
                "unicast",
                "10.0.1.0/24",
                Some("10.0.1.138"),
                "cilium_host",
                None
            ),
            r("unicast", "10.0.1.138/32", None, "cilium_host", None),
            r("unicast", "10.0.2.0/24", Some("172.18.0.2"), "eth0", None),
            r("unicast", "172.18.0.0/16", None, "eth0", None),
        ]
    );
    let local200 = arr(&w, "routes")
        .iter()
        .find(|r| r["table"]["id"] == 200 && r["type"] == "local")
        .unwrap();
    assert_eq!(s(local200, "scope"), "host");
    assert!(
        ["50", "ipsec"].contains(&s(local200, "protocol")),
        "{local200}"
    );
}

#[test]
fn lab_snapshot_worker_links() {
    let w = snap(healthy(), "snap-worker.json");
    assert_eq!(w["node"]["netns"]["name"], "worker");
    assert_eq!(
        w["node"]["kernel"]
            .as_str()
            .map(|k| k.starts_with("6.1.0-")),
        Some(true)
    );
    let host = link(&w, "cilium_host");
    let net = link(&w, "cilium_net");
    assert_eq!(host["kind"], "veth");
    assert_eq!(host["peer"]["name"], "cilium_net");
    assert_eq!(host["peer"]["index"], net["index"]);
    assert_eq!(net["peer"]["name"], "cilium_host");
    for l in [host, net] {
        let flags: Vec<&str> = arr(l, "flags")
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        for f in ["NOARP", "UP", "LOWER_UP"] {
            assert!(flags.contains(&f), "{} lacks {f}: {flags:?}", l["name"]);
        }
    }
    assert_eq!(host["mac"], "12:3d:af:49:19:f5");
    let a = arr(host, "addresses")
        .iter()
        .find(|a| a["family"] == "inet")
        .expect("cilium_host inet address");
    assert_eq!(
        (s(a, "address"), n(a, "prefix_len"), s(a, "scope")),
        ("10.0.1.138", 32, "link")
    );
    let eth0 = link(&w, "eth0");
    assert_eq!(eth0["mac"], "02:42:ac:12:00:03");
    assert_eq!(eth0["kind"], "veth");
    assert!(
        arr(eth0, "addresses")
            .iter()
            .any(|a| a["address"] == "172.18.0.3" && a["prefix_len"] == 16)
    );
    for lxc in ["lxcda1dd0af135e", "lxca872fa140b51"] {
        assert_eq!(link(&w, lxc)["kind"], "veth");
    }
}

#[test]
fn lab_snapshot_pod_route_mtu_1423() {
    let p = snap(healthy(), "snap-netshoot.json");
    let def = arr(&p, "routes")
        .iter()
        .find(|r| r["family"] == "inet" && r["dst"] == "default")
        .expect("pod default route");
    assert_eq!(def["gateway"], "10.0.1.138");
    assert_eq!(def["dev"]["name"], "eth0");
    assert_eq!(def["mtu"], 1423);
    let eth0 = link(&p, "eth0");
    assert_eq!(eth0["mtu"], 1500);
    assert_eq!(eth0["mac"], "6e:7b:6a:37:31:ab");
    assert!(
        arr(eth0, "addresses")
            .iter()
            .any(|a| a["address"] == "10.0.1.52" && a["prefix_len"] == 32)
    );
}

#[test]
fn lab_snapshot_netns_by_name_path_pid_and_inside_agree() {
    let d = healthy();
    let base = snap(d, "snap-worker.json");
    let inside: Value = serde_json::from_str(&text(d, "snap-worker-inside.json")).unwrap();
    for other in [
        snap(d, "snap-worker-path.json"),
        snap(d, "snap-worker-pid.json"),
        inside,
    ] {
        for k in ["rules", "routes", "xfrm_policies"] {
            let strip = |v: &Value| {
                let mut v = v[k].clone();
                for e in v.as_array_mut().unwrap() {
                    e.as_object_mut().unwrap().remove("lifetime");
                }
                v
            };
            assert_eq!(
                strip(&base),
                strip(&other),
                "{k} differ between netns forms"
            );
        }
        let names = |v: &Value| {
            arr(v, "links")
                .iter()
                .map(|l| l["name"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&base), names(&other));
    }
}

// ---------------------------------------------------------------------------------------------
// keys

#[test]
fn lab_keys_redacted_without_show_keys() {
    let d = healthy();
    let k3 = key("KEY3");
    let hex = k3.trim_start_matches("0x").to_lowercase();
    for f in [
        "snap-worker.json",
        "snap-worker.txt",
        "snap-worker2.json",
        "snap-netshoot.json",
    ] {
        let t = text(d, f).to_lowercase();
        assert!(!t.contains(&hex), "{f} contains the key");
        // not even a piece of it (8 hex digits is already a leak)
        for i in 0..hex.len() - 8 {
            assert!(!t.contains(&hex[i..i + 8]), "{f} contains part of the key");
        }
    }
    for f in ["snap-worker.json", "snap-worker2.json"] {
        for x in arr(&snap(d, f), "xfrm_states") {
            assert_eq!(x["aead"]["key"], "redacted", "{f}");
        }
    }
}

#[test]
fn lab_keys_shown_with_show_keys() {
    let d = healthy();
    let k3 = key("KEY3");
    for f in ["snap-worker-keys.json", "snap-worker2-keys.json"] {
        let v = snap(d, f);
        let states = arr(&v, "xfrm_states");
        assert_eq!(states.len(), 3);
        for x in states {
            assert_eq!(s(&x["aead"], "key").to_lowercase(), k3, "{f}: {x}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// read-only

#[test]
fn lab_snapshot_is_read_only() {
    let d = healthy();
    for ns in ["worker", "netshoot"] {
        let before = text(d, &format!("state-{ns}.before"));
        let after = text(d, &format!("state-{ns}.after"));
        assert!(
            before.contains("### tc qdisc")
                && before.len() > 500
                && (ns != "worker" || before.contains("dir in")),
            "dump of {ns} too short"
        );
        assert_eq!(
            before, after,
            "{ns} changed while hopscope ran (see the results dir)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// counters

#[test]
fn lab_counters_follow_pings() {
    let d = healthy();
    let p = params(d);
    let (count, size) = (p["N"], p["SIZE"]);
    let ping = text(d, "ping.txt");
    assert!(
        ping.contains(&format!("{count} packets transmitted, {count} received")),
        "{ping}"
    );

    // What the kernel counts per packet: the inner IPv4 packet (20 IP + 8 ICMP + payload).
    let inner = 20 + 8 + size;
    let ipb = ip_xfrm_counters(&text(d, "xs-worker.before"));
    let ipa = ip_xfrm_counters(&text(d, "xs-worker.after"));
    let k = |src: &str, dst: &str| (src.to_string(), dst.to_string(), 3u64);
    let out = k("10.0.1.138", "10.0.0.40");
    let inb = k("0.0.0.0", "10.0.1.138");
    let ip_delta = |key: &(String, String, u64)| (ipa[key].0 - ipb[key].0, ipa[key].1 - ipb[key].1);
    assert_eq!(
        ip_delta(&out),
        (count * inner, count),
        "ip -s xfrm state, worker out SA"
    );
    assert_eq!(ip_delta(&inb).1, count, "ip -s xfrm state, worker in SA");

    let hb = snap(d, "count-worker.before.json");
    let ha = snap(d, "count-worker.after.json");
    let lt = |v: &Value, src: &str, dst: &str| {
        let l = &state(v, src, dst, 3)["lifetime"];
        (n(l, "bytes"), n(l, "packets"))
    };
    for (src, dst) in [
        ("10.0.1.138", "10.0.0.40"),
        ("0.0.0.0", "10.0.1.138"),
        ("10.0.1.138", "10.0.2.52"),
    ] {
        let key = k(src, dst);
        assert_eq!(
            lt(&hb, src, dst),
            ipb[&key],
            "hopscope vs ip before, {src}->{dst}"
        );
        assert_eq!(
            lt(&ha, src, dst),
            ipa[&key],
            "hopscope vs ip after, {src}->{dst}"
        );
    }
    let (b0, p0) = lt(&hb, "10.0.1.138", "10.0.0.40");
    let (b1, p1) = lt(&ha, "10.0.1.138", "10.0.0.40");
    assert_eq!((b1 - b0, p1 - p0), (count * inner, count));
    assert_eq!(
        lt(&ha, "10.0.1.138", "10.0.2.52"),
        lt(&hb, "10.0.1.138", "10.0.2.52")
    );

    // worker2 answered through its own out SA
    let w2b = snap(d, "count-worker2.before.json");
    let w2a = snap(d, "count-worker2.after.json");
    assert_eq!(
        lt(&w2a, "10.0.0.40", "10.0.1.138").1 - lt(&w2b, "10.0.0.40", "10.0.1.138").1,
        count
    );
    assert_eq!(
        lt(&w2a, "0.0.0.0", "10.0.0.40").1 - lt(&w2b, "0.0.0.0", "10.0.0.40").1,
        count
    );

    // healthy: no xfrm_stat counter moved, on either node
    for (b, a) in [(&hb, &ha), (&w2b, &w2a)] {
        let sb = b["xfrm_stats"].as_object().unwrap();
        assert!(
            sb.contains_key("XfrmInNoStates")
                && sb.contains_key("XfrmOutNoStates")
                && sb.len() >= 28
        );
        assert_eq!(b["xfrm_stats"], a["xfrm_stats"]);
    }

    // the wire: ESP on eth0 and cilium_host, sequence numbers = hopscope's oseq, no plaintext out
    let esp_len = 8 + 8 + (inner + 2).div_ceil(4) * 4 + 16;
    let eth0 = text(d, "cap-worker-eth0.txt");
    let seqs = |cap: &str, dir: &str| -> Vec<u64> {
        cap.lines()
            .filter(|l| l.contains(&format!("{dir}: ESP(spi=0x00000003,")))
            .map(|l| {
                assert!(l.ends_with(&format!("length {esp_len}")), "ESP length: {l}");
                hex(l.split("seq=").nth(1).unwrap().split(')').next().unwrap())
            })
            .collect()
    };
    let oseq0 = n(state(&hb, "10.0.1.138", "10.0.0.40", 3), "oseq");
    let oseq1 = n(state(&ha, "10.0.1.138", "10.0.0.40", 3), "oseq");
    assert_eq!(oseq1 - oseq0, count);
    let want: Vec<u64> = (oseq0 + 1..=oseq1).collect();
    assert_eq!(
        seqs(&eth0, "10.0.1.138 > 10.0.0.40"),
        want,
        "ESP out on eth0:\n{eth0}"
    );
    assert_eq!(
        seqs(&eth0, "10.0.0.40 > 10.0.1.138").len() as u64,
        count,
        "ESP in on eth0"
    );
    assert!(
        eth0.lines()
            .filter(|l| l.contains("ESP"))
            .all(|l| l.contains("02:42:ac:12:00:0"))
    );
    assert!(
        !eth0.contains("10.0.1.52 > 10.0.0.249"),
        "plaintext request left eth0:\n{eth0}"
    );
    let ch = text(d, "cap-worker-cilium_host.txt");
    assert_eq!(
        seqs(&ch, "10.0.1.138 > 10.0.0.40"),
        want,
        "ESP on cilium_host:\n{ch}"
    );
}

// ---------------------------------------------------------------------------------------------
// cross-check with `ip -j`

#[test]
fn lab_snapshot_agrees_with_ip_json() {
    let d = healthy();
    let w = snap(d, "snap-worker.json");
    let j = |f: &str| -> Vec<Value> { serde_json::from_str(&text(d, f)).unwrap() };

    for il in j("ipj-link.json") {
        let ours = arr(&w, "links")
            .iter()
            .find(|l| l["index"] == il["ifindex"])
            .unwrap_or_else(|| panic!("hopscope lacks link {}", il["ifname"]));
        assert_eq!(ours["name"], il["ifname"]);
        assert_eq!(ours["mtu"], il["mtu"]);
        assert_eq!(ours["mac"], il["address"], "{}", il["ifname"]);
        let mut f1: Vec<Value> = arr(ours, "flags").clone();
        let mut f2: Vec<Value> = il["flags"].as_array().unwrap().clone();
        f1.sort_by_key(|v| v.to_string());
        f2.sort_by_key(|v| v.to_string());
        assert_eq!(f1, f2, "flags of {}", il["ifname"]);
        assert_eq!(
            ours["kind"], il["linkinfo"]["info_kind"],
            "kind of {}",
            il["ifname"]
        );
        if let Some(peer) = il.get("link").and_then(Value::as_str) {
            assert_eq!(ours["peer"]["name"], peer, "peer of {}", il["ifname"]);
        }
        if let Some(m) = il.get("master") {
            assert_eq!(&ours["master"]["name"], m);
        }
    }
    assert_eq!(arr(&w, "links").len(), j("ipj-link.json").len());

    for ia in j("ipj-addr.json") {
        let ours = link(&w, ia["ifname"].as_str().unwrap());
        let mut a1: Vec<String> = arr(ours, "addresses")
            .iter()
            .map(|a| {
                format!(
                    "{} {}/{} {}",
                    a["family"], a["address"], a["prefix_len"], a["scope"]
                )
            })
            .collect();
        let mut a2: Vec<String> = ia["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                format!(
                    "{} {}/{} {}",
                    a["family"], a["local"], a["prefixlen"], a["scope"]
                )
            })
            .collect();
        a1.sort();
        a2.sort();
        assert_eq!(a1, a2, "addresses of {}", ia["ifname"]);
    }

    // IPv4 routes of every table
    let norm = |dst: &str| {
        if dst == "default" || dst.contains('/') {
            dst.to_string()
        } else {
            format!("{dst}/32")
        }
    };
    let mut r1: Vec<String> = arr(&w, "routes")
        .iter()
        .filter(|r| r["family"] == "inet")
        .map(|r| {
            format!(
                "{} {} {} gw={} dev={}",
                r["table"]["id"],
                s(r, "type"),
                s(r, "dst"),
                r.get("gateway").unwrap_or(&Value::Null),
                r["dev"]["name"]
            )
        })
        .collect();
    // `ip route show table all` lists IPv6 routes too: keep the IPv4 ones
    let mut r2: Vec<String> = j("ipj-route.json")
        .iter()
        .filter(|r| !s(r, "dst").contains(':'))
        .map(|r| {
            format!(
                "{} {} {} gw={} dev={}",
                table_id(r.get("table").and_then(Value::as_str).unwrap_or("main")),
                r.get("type").and_then(Value::as_str).unwrap_or("unicast"),
                norm(s(r, "dst")),
                r.get("gateway").unwrap_or(&Value::Null),
                r.get("dev").unwrap_or(&Value::Null)
            )
        })
        .collect();
    r1.sort();
    r2.sort();
    assert_eq!(r1, r2, "IPv4 routes, all tables");

    let rules1: Vec<String> = arr(&w, "rules")
        .iter()
        .filter(|r| r["family"] == "inet")
        .map(|r| {
            format!(
                "{} {:?} {}",
                r["priority"],
                mark(&r["fwmark"]),
                r["table"]["id"]
            )
        })
        .collect();
    let rules2: Vec<String> = j("ipj-rule.json")
        .iter()
        .map(|r| {
            let fw = r.get("fwmark").map(|m| {
                (
                    hex(m.as_str().unwrap()),
                    r.get("fwmask")
                        .map_or(0xffff_ffff, |k| hex(k.as_str().unwrap())),
                )
            });
            format!("{} {:?} {}", r["priority"], fw, table_id(s(r, "table")))
        })
        .collect();
    assert_eq!(rules1, rules2, "IPv4 rules");
}

// ---------------------------------------------------------------------------------------------
// variants: no-inbound-sa + rotation + clusterip

#[test]
fn lab_no_inbound_sa_raises_xfrm_in_no_states() {
    let d = no_inbound_sa();
    let count = params(d)["N"];
    let w2 = snap(d, "snap-worker2.json");
    assert!(
        !arr(&w2, "xfrm_states")
            .iter()
            .any(|x| x["dst"] == "10.0.0.40"),
        "worker2 must have no inbound SA in this variant"
    );
    let ping = text(d, "ping.txt");
    assert!(
        ping.contains(&format!("{count} packets transmitted, 0 received")),
        "{ping}"
    );
    let b = snap(d, "count-worker2.before.json");
    let a = snap(d, "count-worker2.after.json");
    let st = |v: &Value, k: &str| n(&v["xfrm_stats"], k);
    assert_eq!(st(&a, "XfrmInNoStates") - st(&b, "XfrmInNoStates"), count);
    for (k, v) in a["xfrm_stats"].as_object().unwrap() {
        if k != "XfrmInNoStates" {
            assert_eq!(Some(v), b["xfrm_stats"].get(k), "{k} moved");
        }
    }
}

#[test]
fn lab_rotation_shows_both_keys() {
    let d = no_inbound_sa();
    let w = snap(d, "snap-worker-keys.json");
    let (k3, k4) = (key("KEY3"), key("KEY4"));
    assert_eq!(arr(&w, "xfrm_states").len(), 6);
    for (spi, k) in [(3u64, &k3), (4, &k4)] {
        for dst in ["10.0.2.52", "10.0.0.40"] {
            let x = state(&w, "10.0.1.138", dst, spi);
            assert_eq!(mark(&x["mark"]), Some(((spi << 12) | 0xe00, 0xff00)));
            assert_eq!(mark(&x["output_mark"]), Some((0xe00, 0xf00)));
            assert_eq!(&s(&x["aead"], "key").to_lowercase(), k);
        }
        let x = state(&w, "0.0.0.0", "10.0.1.138", spi);
        assert_eq!(mark(&x["mark"]), Some((0xd00, 0xf00)));
        assert_eq!(&s(&x["aead"], "key").to_lowercase(), k);
        let outs = arr(&w, "xfrm_policies")
            .iter()
            .filter(|p| {
                p["dir"] == "out" && mark(&p["mark"]) == Some(((spi << 12) | 0xe00, 0xff00))
            })
            .inspect(|p| assert_eq!(p["templates"][0]["spi"], spi))
            .count();
        assert_eq!(outs, 2, "out policies for spi {spi}");
    }
}

#[test]
fn lab_clusterip_dnat_like_kube_proxy() {
    let d = no_inbound_sa();
    let ipt = text(d, "ipt-worker.txt");
    for needle in [
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
        "-A KUBE-SERVICES -d 10.96.169.246/32 -p tcp",
        "-j KUBE-SVC-CU7F3MNN62CF4ANP",
        "-j DNAT --to-destination 10.0.0.249:80",
    ] {
        assert!(ipt.contains(needle), "no {needle:?} in\n{ipt}");
    }
    let reply = text(d, "clusterip.txt");
    assert!(reply.contains("hello-from-cni-worker2"), "{reply}");
    let ct = text(d, "conntrack.txt");
    assert!(
        ct.lines()
            .any(|l| l.contains("src=10.0.1.52 dst=10.96.169.246")
                && l.contains("src=10.0.0.249 dst=10.0.1.52")),
        "no DNAT'ed conntrack entry:\n{ct}"
    );
}

// ---------------------------------------------------------------------------------------------
// variants: no-out-policy + wrong-key

#[test]
fn lab_no_out_policy_sends_plaintext() {
    let d = no_out_policy();
    let count = params(d)["N"];
    let w = snap(d, "snap-worker.json");
    assert!(!arr(&w, "xfrm_policies").iter().any(|p| p["dir"] == "out"));
    assert_eq!(arr(&w, "xfrm_policies").len(), 3);
    let cap = text(d, "cap-worker-eth0.txt");
    let plain = cap
        .lines()
        .filter(|l| {
            l.contains("02:42:ac:12:00:03 > 02:42:ac:12:00:04")
                && l.contains("10.0.1.52 > 10.0.0.249: ICMP echo request")
        })
        .count() as u64;
    assert_eq!(plain, count, "plaintext requests on eth0:\n{cap}");
    assert!(
        !cap.contains("10.0.1.138 > 10.0.0.40: ESP"),
        "worker must not encrypt:\n{cap}"
    );
}

#[test]
fn lab_wrong_key_counts_integrity_failures() {
    let d = no_out_policy();
    let count = params(d)["N"];
    let wrong = key("KEY_WRONG");
    let w2 = snap(d, "snap-worker2-keys.json");
    for x in arr(&w2, "xfrm_states") {
        assert_eq!(s(&x["aead"], "key").to_lowercase(), wrong);
    }
    let ping = text(d, "ping.txt");
    assert!(
        ping.contains(&format!("{count} packets transmitted, 0 received")),
        "{ping}"
    );
    let b = snap(d, "count-worker.before.json");
    let a = snap(d, "count-worker.after.json");
    let failed = |v: &Value| {
        n(
            &state(v, "0.0.0.0", "10.0.1.138", 3)["stats"],
            "integrity_failed",
        )
    };
    assert_eq!(failed(&a) - failed(&b), count);
    let st = |v: &Value, k: &str| n(&v["xfrm_stats"], k);
    assert_eq!(
        st(&a, "XfrmInStateProtoError") - st(&b, "XfrmInStateProtoError"),
        count
    );
}

// ---------------------------------------------------------------------------------------------
// trace: the path predicted on the lab's real state, and followed with real packets

fn steps(t: &Value) -> Vec<(String, String)> {
    arr(t, "hops")
        .iter()
        .map(|h| (s(h, "node").to_string(), s(h, "step").to_string()))
        .collect()
}

fn hop<'a>(t: &'a Value, node: &str, step: &str) -> &'a Value {
    arr(t, "hops")
        .iter()
        .find(|h| h["node"] == node && h["step"] == step)
        .unwrap_or_else(|| panic!("no {step} hop on {node}: {t:#}"))
}

#[test]
fn lab_trace_predicts_the_seeds_hops() {
    let dir = healthy();
    let t = snap(dir, "trace-pod.json");
    let w = |s: &str| ("worker".to_string(), s.to_string());
    let w2 = |s: &str| ("worker2".to_string(), s.to_string());
    assert_eq!(
        steps(&t),
        vec![
            w("ingress"),
            w("mark"),
            w("route"),
            w("xfrm_policy"),
            w("xfrm_state"),
            w("encrypt"),
            w("route"),
            w("egress"),
            w("veth"),
            w("mark"),
            w("route"),
            w("egress"),
            w("wire"),
            w2("ingress"),
            w2("mark"),
            w2("route"),
            w2("decrypt"),
            w2("mark"),
            w2("route"),
            w2("policy_check"),
            w2("egress"),
            w2("deliver"),
        ],
        "{}",
        text(dir, "trace-pod.txt")
    );
    assert_eq!(
        s(&t["hops"][0], "dev"),
        "lxc+",
        "netshoot found by the pod CIDR"
    );
    let by = s(&t["hops"][1], "decided_by");
    assert!(
        by.contains("CILIUM_PRE_mangle") && by.contains("-i lxc+") && by.contains("-d 10.0.0.0/24"),
        "{by}"
    );
    assert!(s(&t["hops"][2], "decided_by").starts_with("rule 1: all fwmark 0xe00/0xf00"));
    assert!(
        s(&t["hops"][2], "what").contains("table 200 (cilium ipsec): 10.0.0.0/24 dev cilium_host")
    );
    assert!(
        s(&t["hops"][3], "decided_by")
            .starts_with("policy out 10.0.1.0/24 → 10.0.0.0/24 priority 0 mark 0x3e00/0xff00")
    );
    assert!(
        s(&t["hops"][4], "decided_by")
            .starts_with("SA 10.0.1.138 → 10.0.0.40 esp spi 0x00000003 reqid 1")
    );
    // The seed's tcpdump: `10.0.1.138 > 10.0.0.40: ESP(spi=0x00000003,…), length 120` for a ping.
    assert!(s(&t["hops"][5], "packet").starts_with("10.0.1.138 → 10.0.0.40 esp spi 0x3 len 140"));
    assert!(s(&t["hops"][10], "what").contains("10.0.0.0/24 via 172.18.0.4 dev eth0"));
    assert!(
        s(hop(&t, "worker2", "decrypt"), "decided_by")
            .starts_with("SA 0.0.0.0 → 10.0.0.40 esp spi 0x00000003")
    );
    assert!(
        s(hop(&t, "worker2", "policy_check"), "decided_by")
            .contains("policy fwd 0.0.0.0/0 → 10.0.0.0/24 priority 2975")
    );
    assert_eq!(
        t["end"],
        serde_json::json!({"end": "delivered", "node": "worker2", "dev": "cilium_host", "what": "pod 10.0.0.249"})
    );
}

#[test]
fn lab_trace_follow_sees_every_hop() {
    let dir = healthy();
    let t = snap(dir, "follow-pod.json");
    let f = &t["follow"];
    assert_eq!(
        s(f, "verdict"),
        "seen at every observable hop",
        "{f:#}\n{}",
        text(dir, "follow-pod.json.ping")
    );
    let seen: Vec<(String, String, u64)> = arr(f, "hops")
        .iter()
        .map(|h| (s(h, "node").into(), s(h, "dev").into(), n(h, "seen")))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("worker".into(), "cilium_host".into(), 5),
            ("worker".into(), "cilium_net".into(), 5),
            ("worker".into(), "eth0".into(), 5),
            ("worker2".into(), "eth0".into(), 5),
            ("worker2".into(), "eth0".into(), 5),
        ],
        "ESP on cilium_host, cilium_net and eth0 as in the seed; in and decrypted on worker2: {f:#}"
    );
    let counters = arr(f, "counters");
    assert!(
        counters.iter().all(|c| c["trouble"] == false),
        "healthy: no trouble counter rose: {f:#}"
    );
    assert!(
        counters.iter().any(|c| c["node"] == "worker"
            && s(c, "counter") == "SA 10.0.1.138→10.0.0.40 spi 0x3 packets"
            && n(c, "delta") == 5),
        "the outbound SA moved by the 5 pings: {f:#}"
    );
}

/// The ESP of the flow is seen leaving worker and arriving on worker2's eth0, where the
/// kernel drops it: no hop after that. (The ping's leftover conntrack entry once made the
/// trace translate the ESP packet's source, so --follow looked for the wrong packet.)
#[test]
fn lab_follow_stops_after_eth0_on_worker2() {
    let dir = no_inbound_sa();
    let f = &snap(dir, "follow-pod.json")["follow"];
    assert!(
        s(f, "verdict").starts_with("stops after eth0 on worker2, as predicted: no inbound SA"),
        "{f:#}"
    );
    let n_pings = params(dir)["N"];
    let seen: Vec<(&str, &str, u64)> = arr(f, "hops")
        .iter()
        .map(|h| (s(h, "node"), s(h, "dev"), n(h, "seen")))
        .collect();
    assert_eq!(
        seen,
        [
            ("worker", "cilium_host", n_pings),
            ("worker", "cilium_net", n_pings),
            ("worker", "eth0", n_pings),
            ("worker2", "eth0", n_pings),
        ],
        "every ping as ESP up to worker2's eth0: {f:#}"
    );
}

#[test]
fn lab_trace_missing_inbound_sa_stops_at_worker2() {
    let dir = no_inbound_sa();
    let t = snap(dir, "trace-pod.json");
    assert_eq!(s(&t["end"], "end"), "stopped", "{t:#}");
    assert_eq!(s(&t["end"], "node"), "worker2");
    assert_eq!(s(&t["end"], "counter"), "XfrmInNoStates");
    let f = &snap(dir, "follow-pod.json")["follow"];
    let verdict = s(f, "verdict");
    let n_pings = params(dir)["N"];
    assert!(
        verdict.contains(&format!("worker2 XfrmInNoStates +{n_pings}")),
        "{f:#}"
    );
    // Key rotation is on in this boot (SPI 3 and SPI 4 SAs and out policies): the trace chose
    // SPI 3 and the kernel moved exactly that SA's counter, not SPI 4's.
    assert!(
        s(hop(&t, "worker", "xfrm_state"), "decided_by").contains("spi 0x00000003"),
        "{t:#}"
    );
    let moved: Vec<&str> = arr(f, "counters")
        .iter()
        .filter(|c| c["node"] == "worker" && s(c, "counter").starts_with("SA 10.0.1.138→10.0.0.40"))
        .map(|c| s(c, "counter"))
        .collect();
    assert_eq!(moved, ["SA 10.0.1.138→10.0.0.40 spi 0x3 packets"], "{f:#}");
}

#[test]
fn lab_trace_cluster_ip_shows_the_dnat_hop() {
    let dir = no_inbound_sa();
    let t = snap(dir, "trace-clusterip.json");
    let nat = hop(&t, "worker", "nat");
    assert!(
        s(nat, "what").contains("DNAT 10.96.169.246:80 → 10.0.0.249:80"),
        "{t:#}"
    );
    assert!(
        s(nat, "decided_by").contains("KUBE-SEP-CNIWORKER2ZZZZZ"),
        "{nat:#}"
    );
    assert!(
        // The hop's typed decisions carry the entry (kind conntrack, and on the nat rule it
        // followed).
        arr(nat, "decisions")
            .iter()
            .any(|d| d["kind"] == "conntrack"
                && d["line"].as_str().is_some_and(|l| l.starts_with("ipv4"))),
        "the kernel's conntrack entry of the test connection: {nat:#}\n{}",
        text(dir, "conntrack.txt")
    );
}

#[test]
fn lab_trace_without_out_policy_leaves_in_plaintext() {
    let dir = no_out_policy();
    let t = snap(dir, "trace-pod.json");
    assert!(!steps(&t).iter().any(|(_, st)| st == "encrypt"), "{t:#}");
    let wire = hop(&t, "worker", "wire");
    assert!(
        s(wire, "packet").starts_with("10.0.1.52 → 10.0.0.249 icmp"),
        "{wire:#}"
    );
}

/// The XFRM SAs pane as captured from tmux: rows by (src, dst), cells by header name.
fn tui_sa_rows(screen: &str) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    let lines: Vec<&str> = screen.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("SRC ") && l.contains("PKTS"))
        .unwrap_or_else(|| panic!("no SA table header on screen:\n{screen}"));
    // Columns are separated by 2+ spaces; cells may contain single spaces ("(encrypt, key 3)").
    let split = |l: &str| -> Vec<String> {
        l.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    };
    let names = split(lines[header]);
    let mut rows = BTreeMap::new();
    for l in &lines[header + 1..] {
        let cells = split(l);
        if cells.len() != names.len() {
            continue;
        }
        let row: BTreeMap<String, String> = names.iter().cloned().zip(cells).collect();
        rows.insert((row["SRC"].clone(), row["DST"].clone()), row);
    }
    rows
}

#[test]
fn lab_tui_sa_pane_shows_the_seeds_sas_and_counters_rise() {
    let dir = healthy();
    let before = tui_sa_rows(&text(dir, "tui-sas.before"));
    let after = tui_sa_rows(&text(dir, "tui-sas.after"));
    let keys: Vec<(String, String)> = before.keys().cloned().collect();
    let k = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        keys,
        vec![
            k("0.0.0.0", "10.0.1.138"),
            k("10.0.1.138", "10.0.0.40"),
            k("10.0.1.138", "10.0.2.52")
        ],
        "{before:#?}"
    );
    let out = &before[&k("10.0.1.138", "10.0.0.40")];
    assert_eq!(out["SPI"], "0x00000003");
    assert_eq!(out["MARK"], "0x3e00/0xff00 (encrypt, key 3)");
    assert_eq!(out["OUTPUT-MARK"], "0xe00/0xf00 (encrypt)");
    let pkts = |rows: &BTreeMap<(String, String), BTreeMap<String, String>>,
                a: &str,
                b: &str|
     -> u64 { rows[&k(a, b)]["PKTS"].parse().unwrap() };
    assert_eq!(
        pkts(&after, "10.0.1.138", "10.0.0.40") - pkts(&before, "10.0.1.138", "10.0.0.40"),
        5,
        "{}",
        text(dir, "tui-sas.after")
    );
    assert_eq!(
        pkts(&after, "0.0.0.0", "10.0.1.138") - pkts(&before, "0.0.0.0", "10.0.1.138"),
        5,
        "the 5 replies decrypted"
    );
    assert_eq!(
        pkts(&after, "10.0.1.138", "10.0.2.52"),
        pkts(&before, "10.0.1.138", "10.0.2.52"),
        "no traffic to control-plane"
    );
}

// ---------------------------------------------------------------------------------------------
// capture: `hopscope capture` in the same boots (tests/lab/checks/capture.sh)

#[path = "lab/capture_tests.rs"]
mod capture;

// ---------------------------------------------------------------------------------------------
// the TUI's Packets and Trace panes in the same boots (tests/lab/checks/tui-packets.sh)

#[path = "lab/tui_tests.rs"]
mod tui_packets;
