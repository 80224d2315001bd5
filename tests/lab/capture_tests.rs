//! Real-kernel lab tests of `hopscope capture` (see docs/capture.md, docs/lab.md): the seed's
//! cluster under qemu, pings netshoot (10.0.1.52, worker) -> cni-worker2 (10.0.0.249, worker2)
//! while hopscope captures on worker's eth0, cilium_host, cilium_net and the pod's lxc, and on
//! worker2's eth0. The guest side is tests/lab/checks/capture.sh; these tests read its files and
//! cross-check with tcpdump (same pings) and tshark (hopscope's own pcapng, decrypted by tshark's
//! ESP SA table with the lab key). It runs in tests/lab.rs' healthy and no-out-policy + wrong-key
//! boots (their guest scripts call capture.sh into `<results>/capture`): no boot of its own.
//!
//! Missing qemu/busybox/kmod/tshark is a FAILURE naming the package, never a skip.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{REPO, text};

/// hopscope capture's files from the lab's healthy boot (tests/lab.rs boots it once for both).
fn healthy() -> PathBuf {
    super::healthy().join("capture")
}

/// ... and from the no-out-policy + wrong-key boot.
fn broken() -> PathBuf {
    super::no_out_policy().join("capture")
}

/// The JSON lines of one hopscope capture: (packet records, summary). Its exit must be 0.
fn capture(dir: &Path, name: &str) -> (Vec<Value>, Value) {
    let rc = text(dir, &format!("{name}.rc"));
    let err = text(dir, &format!("{name}.err"));
    assert_eq!(rc.trim(), "0", "hopscope capture {name} failed: {err}");
    let mut packets = vec![];
    let mut summary = None;
    for l in text(dir, &format!("{name}.json")).lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}"));
        match v["type"].as_str() {
            Some("packet") => packets.push(v),
            Some("summary") => summary = Some(v),
            _ => {}
        }
    }
    (
        packets,
        summary.unwrap_or_else(|| panic!("{name}: no summary record; stderr: {err}")),
    )
}

fn n_pings(dir: &Path) -> u64 {
    text(dir, "params")
        .trim()
        .trim_start_matches("N=")
        .parse()
        .unwrap()
}

fn key3() -> String {
    let env = std::fs::read_to_string(Path::new(REPO).join("tests/lab/keys.env")).unwrap();
    env.lines()
        .find_map(|l| l.strip_prefix("KEY3="))
        .unwrap()
        .trim()
        .to_string()
}

fn is_esp(p: &Value) -> bool {
    p["transport"]["proto"] == "esp"
}

fn on<'a>(ps: &'a [Value], iface: &str, dir: &str) -> Vec<&'a Value> {
    ps.iter()
        .filter(|p| p["iface"] == iface && p["dir"] == dir)
        .collect()
}

fn iface_totals<'a>(summary: &'a Value, iface: &str) -> &'a Value {
    summary["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["iface"] == iface)
        .unwrap_or_else(|| panic!("no totals for {iface} in {summary}"))
}

#[test]
fn healthy_esp_spi3_on_eth0_and_cilium_host_with_rising_seq_and_seed_lengths() {
    let dir = &healthy();
    assert!(
        text(dir, "ping.txt").contains("rc=0"),
        "{}",
        text(dir, "ping.txt")
    );
    let n = n_pings(dir) as usize;
    let (ps, summary) = capture(dir, "cap-worker");
    for iface in ["eth0", "cilium_host"] {
        let esp: Vec<_> = on(&ps, iface, "out")
            .into_iter()
            .filter(|p| is_esp(p))
            .collect();
        assert_eq!(esp.len(), n, "{iface}: {esp:?}");
        let mut last = 0;
        for p in &esp {
            let t = &p["transport"];
            assert_eq!(t["spi"], 3, "{p}");
            assert_eq!(t["len"], 120, "seed: ESP length 120: {p}");
            assert_eq!(p["len"], 154, "seed: frame length 154: {p}");
            assert_eq!(p["ip"]["src"], "10.0.1.138");
            assert_eq!(p["ip"]["dst"], "10.0.0.40");
            let seq = t["seq"].as_u64().unwrap();
            assert!(seq > last, "{iface}: seq must rise: {seq} after {last}");
            last = seq;
            assert!(
                p["sa"]
                    .as_str()
                    .unwrap()
                    .contains("10.0.1.138->10.0.0.40 spi 0x3"),
                "{p}"
            );
        }
    }
    // Replies: ESP in on eth0, then the kernel's decryption of each on eth0, labelled not counted.
    let t = iface_totals(&summary, "eth0");
    assert_eq!(t["kernel_decrypted"], n as u64, "{t}");
    assert_eq!(t["leaks"], 0, "{t}");
    for i in summary["interfaces"].as_array().unwrap() {
        assert_eq!(i["dropped_by_hopscope"], 0, "{i}");
        assert_eq!(i["dropped_by_kernel"], 0, "{i}");
        assert_eq!(i["leaks"], 0, "no leaks in the healthy cluster: {i}");
    }
}

#[test]
fn healthy_decrypt_yields_the_pings_icmp_echo() {
    let dir = &healthy();
    let n = n_pings(dir);
    let (ps, summary) = capture(dir, "cap-worker");
    let id = ps
        .iter()
        .find(|p| p["iface"] == "lxcda1dd0af135e" && p["transport"]["icmp_type"] == 8)
        .map(|p| p["transport"]["id"].clone())
        .expect("the echo request on the pod's lxc");
    let mut seqs = vec![];
    for p in ps.iter().filter(|p| is_esp(p)) {
        let d = &p["decrypt"];
        assert_eq!(d["result"], "ok", "every ESP packet decrypts: {p}");
        let inner = &d["inner"];
        let t = &inner["transport"];
        assert_eq!(t["proto"], "icmp", "{p}");
        assert_eq!(t["id"], id, "{p}");
        let out = p["ip"]["src"] == "10.0.1.138";
        let (src, dst, ty) = if out {
            ("10.0.1.52", "10.0.0.249", 8)
        } else {
            ("10.0.0.249", "10.0.1.52", 0)
        };
        assert_eq!(inner["ip"]["src"], src, "{p}");
        assert_eq!(inner["ip"]["dst"], dst, "{p}");
        assert_eq!(t["icmp_type"], ty, "{p}");
        assert_eq!(t["len"], 64, "{p}");
        if out && p["iface"] == "eth0" {
            seqs.push(t["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    // Each kernel re-injection on eth0 is paired exactly with the ESP packet it came from.
    let kd: Vec<_> = ps
        .iter()
        .filter(|p| !p["kernel_decrypted"].is_null())
        .collect();
    assert_eq!(kd.len() as u64, n);
    assert!(kd.iter().all(|p| p["kernel_decrypted"]["exact"] == true));
    assert_eq!(iface_totals(&summary, "eth0")["decrypted"], 2 * n);
    // Without --decrypt the same pairing is made by time and SA, and nothing is called a leak.
    let (ps, summary) = capture(dir, "cap-worker-nodecrypt");
    assert_eq!(iface_totals(&summary, "eth0")["kernel_decrypted"], n);
    assert!(
        ps.iter()
            .all(|p| p["leak"].is_null() && p["decrypt"].is_null())
    );
}

/// tshark, given the lab key in its ESP SA table, decrypts hopscope's own pcapng: for every ESP
/// frame it must see the same inner packet hopscope printed for that frame.
#[test]
fn healthy_decryption_matches_tshark_frame_by_frame() {
    let dir = &healthy();
    let (ps, _) = capture(dir, "cap-worker");
    let uat = format!(
        "uat:esp_sa:\"IPv4\",\"*\",\"*\",\"0x00000003\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"{}\",\"NULL\",\"\"",
        key3()
    );
    let out = Command::new("tshark")
        .arg("-r")
        .arg(dir.join("cap-worker.pcapng"))
        .args(["-o", "esp.enable_encryption_decode:TRUE"])
        .args(["-o", "esp.enable_authentication_check:TRUE"])
        .args(["-o", &uat])
        .args(["-T", "fields", "-E", "separator=;"])
        .args(["-e", "frame.interface_name", "-e", "esp.sequence"])
        .args([
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "icmp.type",
            "-e",
            "icmp.ident",
            "-e",
            "icmp.seq",
        ])
        .output()
        .expect("tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<String>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split(';').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), ps.len(), "one pcapng frame per printed packet");
    let mut compared = 0;
    for (row, p) in rows.iter().zip(&ps) {
        assert_eq!(
            row[0],
            p["iface"].as_str().unwrap(),
            "interface block of {p}"
        );
        if !is_esp(p) {
            continue;
        }
        assert_eq!(row[1], p["transport"]["seq"].to_string(), "{row:?} {p}");
        let inner = &p["decrypt"]["inner"];
        // tshark lists outer and inner IP addresses: "outer,inner".
        let srcs: Vec<&str> = row[2].split(',').collect();
        let dsts: Vec<&str> = row[3].split(',').collect();
        assert_eq!(
            srcs.get(1).copied(),
            inner["ip"]["src"].as_str(),
            "{row:?} {p}"
        );
        assert_eq!(
            dsts.get(1).copied(),
            inner["ip"]["dst"].as_str(),
            "{row:?} {p}"
        );
        assert_eq!(
            row[4],
            inner["transport"]["icmp_type"].to_string(),
            "{row:?}"
        );
        assert_eq!(row[5], inner["transport"]["id"].to_string(), "{row:?}");
        assert_eq!(row[6], inner["transport"]["seq"].to_string(), "{row:?}");
        compared += 1;
    }
    assert!(compared >= 4 * n_pings(dir) as usize, "compared {compared}");
}

/// tcpdump on the same interface during the same pings saw the same ESP packets (SPI, seq,
/// length, addresses).
#[test]
fn healthy_esp_on_eth0_matches_tcpdump() {
    let dir = &healthy();
    let (ps, _) = capture(dir, "cap-worker");
    let mut ours: Vec<String> = ps
        .iter()
        .filter(|p| p["iface"] == "eth0" && is_esp(p))
        .map(|p| {
            format!(
                "{} > {}: ESP(spi={:#010x},seq={:#x}), length {}",
                p["ip"]["src"].as_str().unwrap(),
                p["ip"]["dst"].as_str().unwrap(),
                p["transport"]["spi"].as_u64().unwrap(),
                p["transport"]["seq"].as_u64().unwrap(),
                p["transport"]["len"]
            )
        })
        .collect();
    let mut theirs: Vec<String> = text(dir, "tcpdump-worker-eth0.txt")
        .lines()
        .filter(|l| l.contains("ESP("))
        .map(|l| l.split_once("length 154: ").unwrap().1.to_string())
        .collect();
    ours.sort();
    theirs.sort();
    assert!(!ours.is_empty());
    assert_eq!(ours, theirs);
}

#[test]
fn healthy_bad_input_and_no_key_bytes_in_output() {
    let dir = &healthy();
    assert_ne!(text(dir, "bad-iface.rc").trim(), "0");
    let e = text(dir, "bad-iface.err");
    assert!(
        e.contains("nosuch0") && e.contains("eth0") && e.contains("cilium_host"),
        "{e}"
    );
    assert_ne!(text(dir, "bad-filter.rc").trim(), "0");
    let e = text(dir, "bad-filter.err");
    assert!(
        e.contains("esp and and") && e.contains("syntax error"),
        "{e}"
    );
    let key = key3().trim_start_matches("0x").to_lowercase();
    for f in [
        "cap-worker.json",
        "cap-worker.err",
        "cap-worker2.json",
        "cap-worker2.err",
        "cap-worker-nodecrypt.json",
    ] {
        let t = text(dir, f).to_lowercase();
        assert!(!t.contains(&key[..16]), "key bytes in {f}");
    }
    let pcap = std::fs::read(dir.join("cap-worker.pcapng")).unwrap();
    let raw: Vec<u8> = (0..key.len() / 2)
        .map(|i| u8::from_str_radix(&key[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert!(
        !pcap.windows(8).any(|w| w == &raw[..8]),
        "key bytes in the pcapng"
    );
}

#[test]
fn no_out_policy_flags_the_plaintext_pod_traffic_as_a_leak() {
    let dir = &broken();
    let (ps, summary) = capture(dir, "cap-worker");
    let leaks: Vec<_> = on(&ps, "eth0", "out")
        .into_iter()
        .filter(|p| !p["leak"].is_null())
        .collect();
    assert!(!leaks.is_empty(), "no leak flagged on worker eth0");
    for p in &leaks {
        assert_eq!(p["ip"]["src"], "10.0.1.52", "{p}");
        assert_eq!(p["ip"]["dst"], "10.0.0.249", "{p}");
        assert_eq!(p["transport"]["icmp_type"], 8, "{p}");
    }
    assert!(iface_totals(&summary, "eth0")["leaks"].as_u64().unwrap() >= n_pings(dir));
    // Not on the pod's own veth: plaintext there is normal.
    assert_eq!(iface_totals(&summary, "lxcda1dd0af135e")["leaks"], 0);
    // worker2 sees the same requests arrive in plaintext where its policy requires ESP.
    let (_, summary2) = capture(dir, "cap-worker2");
    assert!(
        iface_totals(&summary2, "eth0")["leaks"].as_u64().unwrap() >= 1,
        "{summary2}"
    );
}

#[test]
fn wrong_key_gives_auth_failures_not_plaintext() {
    let dir = &broken();
    let (ps, summary) = capture(dir, "cap-worker");
    // worker2 encrypts its replies with the wrong key: worker's key does not verify them.
    let esp_in: Vec<_> = on(&ps, "eth0", "in")
        .into_iter()
        .filter(|p| is_esp(p))
        .collect();
    assert!(
        !esp_in.is_empty(),
        "worker2's ESP replies reach worker eth0"
    );
    for p in &esp_in {
        assert_eq!(p["decrypt"]["result"], "auth_failed", "{p}");
        assert!(p["decrypt"]["inner"].is_null());
    }
    assert_eq!(
        iface_totals(&summary, "eth0")["auth_failed"]
            .as_u64()
            .unwrap(),
        esp_in.len() as u64
    );
    // worker2 decrypts its own ESP with its own (wrong) key: hopscope uses the node's keys.
    let (ps2, _) = capture(dir, "cap-worker2");
    let own: Vec<_> = on(&ps2, "eth0", "out")
        .into_iter()
        .filter(|p| is_esp(p))
        .collect();
    assert!(!own.is_empty());
    assert!(
        own.iter().all(|p| p["decrypt"]["result"] == "ok"),
        "{own:?}"
    );
}
