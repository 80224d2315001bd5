//! Real-kernel lab tests of the IPsec layouts of issue 14 (see docs/layouts/): one boot with
//! every variant of tests/lab/variants/layouts.sh — Cilium's node-ID layout (dual stack, key
//! rotation, fail-closed catch-all), an xfrm-interface site-to-site pair, NAT traversal through
//! a NAT netns, transport mode with cbc(aes)+hmac(sha1) and AH, VXLAN inside ESP — beside the
//! seed cluster. The guest side is tests/lab/checks/layouts.sh; these tests read its files.
//!
//! For each layout: hopscope's snapshot equals `ip -s xfrm state` / `ip xfrm policy`, the capture
//! decrypts what the kernel sent, and the decrypted bytes equal tshark's from the same pcapng
//! with the same key.
//!
//! Missing qemu/busybox/kmod/tshark is a FAILURE naming the package, never a skip.

#[path = "lab/boot.rs"]
mod boot;
#[path = "schema_support/mod.rs"]
mod schema_support;

use hopscope::decode::esp::{EspCipher, open};
use hopscope::decode::packet::{LinkType, decode};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The variants of tests/lab/variants/layouts.sh that checks/layouts.sh builds.
#[allow(dead_code)]
const VARIANTS: [&str; 8] = [
    "layouts-cilium",
    "layouts-xfrmi",
    "layouts-natt",
    "layouts-transport",
    "layouts-vxlan",
    "layouts-vti",
    "layouts-vti-policy",
    "layouts-natt-mismatch",
];

fn lab() -> &'static Path {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    // The layouts need no seed cluster: checks/layouts.sh builds the VARIANTS itself.
    match CELL.get_or_init(|| boot::boot_bare("layouts")) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn text(name: &str) -> String {
    let p = lab().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A hopscope JSON output, valid against its schema (docs/schema/), whose exit status was the
/// one the document calls for (docs/exit-codes.md).
fn json(name: &str) -> Value {
    let rc = std::fs::read_to_string(lab().join(format!("{name}.rc"))).unwrap_or("0".into());
    let err = std::fs::read_to_string(lab().join(format!("{name}.err"))).unwrap_or_default();
    let v: Value =
        serde_json::from_str(&text(name)).unwrap_or_else(|e| panic!("{name}: {e}; stderr: {err}"));
    let want = schema_support::expected_exit(&v);
    assert_eq!(
        rc.trim(),
        want.to_string(),
        "hopscope for {name} failed: {err}"
    );
    schema_support::validate(name, &v);
    v
}

fn variant_key(name: &str) -> String {
    let f = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/variants/layouts.sh"),
    )
    .unwrap();
    f.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} not in layouts.sh"))
        .trim()
        .to_string()
}

fn pings_ok(name: &str) {
    let t = text(name);
    assert!(t.contains("rc=0"), "{name}: {t}");
}

// ---------------------------------------------------------------------------------------------
// iproute2's view, reduced to the fields both tools show

/// One SA as `ip -s xfrm state` prints it: the fields hopscope must agree on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Sa {
    src: String,
    dst: String,
    proto: String,
    spi: u64,
    reqid: u64,
    mode: String,
    mark: Option<(u64, u64)>,
    output_mark: Option<(u64, u64)>,
    if_id: Option<u64>,
    encap: Option<(String, u64, u64)>,
    /// (kind, name, key, icv/trunc bits)
    algs: Vec<(String, String, String, Option<u64>)>,
    bytes: u64,
    packets: u64,
}

/// A number as iproute2 prints it: decimal, hex, or with `-s` both (`0x00000003(3)`).
fn num(s: &str) -> u64 {
    let s = s.split('(').next().unwrap_or(s);
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

/// The word after `key` in a line's words.
fn after<'a>(w: &[&'a str], key: &str) -> Option<&'a str> {
    w.iter()
        .position(|x| *x == key)
        .and_then(|i| w.get(i + 1))
        .copied()
}

fn value_mask(s: &str) -> (u64, u64) {
    let (v, m) = s.split_once('/').unwrap_or((s, "0xffffffff"));
    (num(v), num(m))
}

fn ip_states(txt: &str) -> Vec<Sa> {
    let mut out: Vec<Sa> = vec![];
    let mut lines = txt.lines().peekable();
    while let Some(l) = lines.next() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.first() != Some(&"src") || l.starts_with(char::is_whitespace) {
            continue;
        }
        let mut sa = Sa {
            src: w[1].into(),
            dst: w[3].into(),
            proto: String::new(),
            spi: 0,
            reqid: 0,
            mode: String::new(),
            mark: None,
            output_mark: None,
            if_id: None,
            encap: None,
            algs: vec![],
            bytes: 0,
            packets: 0,
        };
        while let Some(l) = lines.next_if(|l| l.starts_with(char::is_whitespace)) {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.first().copied() {
                Some("proto") => {
                    sa.proto = w[1].into();
                    sa.spi = after(&w, "spi").map_or(0, num);
                    sa.reqid = after(&w, "reqid").map_or(0, num);
                    sa.mode = after(&w, "mode").unwrap_or("").into();
                }
                Some("mark") => {
                    sa.mark = Some(value_mask(w[1]));
                    sa.output_mark = after(&w, "output-mark").map(value_mask);
                }
                Some("output-mark") => sa.output_mark = Some(value_mask(w[1])),
                Some("if_id") => sa.if_id = Some(num(w[1])),
                Some("encap") => sa.encap = Some((w[2].into(), num(w[4]), num(w[6]))),
                // `auth-trunc hmac(sha256) 0xKEY (256 bits) 128`: the last word is the ICV or
                // truncation length unless it closes the key's bit count.
                Some(k @ ("aead" | "auth-trunc" | "enc" | "auth")) => sa.algs.push((
                    k.into(),
                    w[1].into(),
                    w[2].to_lowercase(),
                    w.last()
                        .filter(|b| !b.ends_with(')') && w.len() > 3)
                        .map(|b| num(b)),
                )),
                Some(x) if x.ends_with("(bytes),") => {
                    sa.bytes = num(x.trim_end_matches("(bytes),"));
                    sa.packets = num(w[1].trim_end_matches("(packets)"));
                }
                _ => {}
            }
        }
        sa.algs.sort();
        out.push(sa);
    }
    out.sort();
    out
}

fn opt_mark(v: &Value) -> Option<(u64, u64)> {
    v.as_object()
        .map(|m| (m["value"].as_u64().unwrap(), m["mask"].as_u64().unwrap()))
}

/// The same fields from hopscope's snapshot (taken with --show-keys).
fn hs_states(snap: &Value) -> Vec<Sa> {
    let mut out: Vec<Sa> = snap["xfrm_states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let mut algs = vec![];
            for (k, field, bits) in [
                ("aead", "aead", "icv_bits"),
                ("enc", "enc", ""),
                ("auth-trunc", "auth", "trunc_bits"),
            ] {
                let a = &x[field];
                if a.is_object() {
                    algs.push((
                        k.to_string(),
                        a["name"].as_str().unwrap().to_string(),
                        a["key"].as_str().unwrap().to_lowercase(),
                        a.get(bits).and_then(Value::as_u64),
                    ));
                }
            }
            let e = &x["encap"];
            Sa {
                src: x["src"].as_str().unwrap().into(),
                dst: x["dst"].as_str().unwrap().into(),
                proto: x["proto"].as_str().unwrap().into(),
                spi: x["spi"].as_u64().unwrap(),
                reqid: x["reqid"].as_u64().unwrap(),
                mode: x["mode"].as_str().unwrap().into(),
                mark: opt_mark(&x["mark"]),
                output_mark: opt_mark(&x["output_mark"]),
                if_id: x["if_id"].as_u64(),
                encap: e.is_object().then(|| {
                    (
                        e["type"].as_str().unwrap().to_string(),
                        e["sport"].as_u64().unwrap(),
                        e["dport"].as_u64().unwrap(),
                    )
                }),
                algs: {
                    algs.sort();
                    algs
                },
                bytes: x["lifetime"]["bytes"].as_u64().unwrap(),
                packets: x["lifetime"]["packets"].as_u64().unwrap(),
            }
        })
        .collect();
    out.sort();
    out
}

/// A policy as `ip xfrm policy` prints it, reduced: (dir, src, dst, priority, action, mark,
/// if_id, templates as "proto spi reqid mode").
type Pol = (
    String,
    String,
    String,
    u64,
    String,
    Option<(u64, u64)>,
    Option<u64>,
    Vec<String>,
);

fn ip_policies(txt: &str) -> BTreeSet<Pol> {
    let mut out = BTreeSet::new();
    let mut lines = txt.lines().peekable();
    while let Some(l) = lines.next() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.first() != Some(&"src") || l.starts_with(char::is_whitespace) {
            continue;
        }
        let (src, dst) = (w[1].to_string(), w[3].to_string());
        let (mut dir, mut prio, mut action, mut mark, mut if_id, mut tmpls) =
            (String::new(), 0, "allow".to_string(), None, None, vec![]);
        while let Some(l) = lines.next_if(|l| l.starts_with(char::is_whitespace)) {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.first().copied() {
                Some("dir") => {
                    dir = w[1].into();
                    for i in 2..w.len() {
                        match w[i] {
                            "priority" => prio = num(w[i + 1]),
                            "action" => action = w[i + 1].into(),
                            _ => {}
                        }
                    }
                }
                Some("mark") => mark = Some(value_mask(w[1])),
                Some("if_id") => if_id = Some(num(w[1])),
                Some("proto") => tmpls.push(format!(
                    "{} {} {} {}",
                    w[1],
                    after(&w, "spi").map_or(0, num),
                    after(&w, "reqid").map_or(0, num),
                    after(&w, "mode").unwrap_or("")
                )),
                _ => {}
            }
        }
        out.insert((dir, src, dst, prio, action, mark, if_id, tmpls));
    }
    out
}

fn hs_policies(snap: &Value) -> BTreeSet<Pol> {
    snap["xfrm_policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["dir"].as_str().unwrap().into(),
                p["selector"]["src"].as_str().unwrap().into(),
                p["selector"]["dst"].as_str().unwrap().into(),
                p["priority"].as_u64().unwrap(),
                p["action"].as_str().unwrap().into(),
                opt_mark(&p["mark"]),
                p["if_id"].as_u64(),
                p["templates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| {
                        format!(
                            "{} {} {} {}",
                            t["proto"].as_str().unwrap(),
                            t["spi"],
                            t["reqid"],
                            t["mode"].as_str().unwrap()
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

/// Snapshot vs iproute2 for every netns of a layout.
fn snapshot_equals_iproute2(layout: &str, netns: &[&str]) {
    for ns in netns {
        let snap = json(&format!("{layout}-{ns}.json"));
        let ip = ip_states(&text(&format!("{layout}-{ns}.xs")));
        assert!(
            !ip.is_empty(),
            "{layout}/{ns}: ip -s xfrm state listed nothing"
        );
        // The snapshot ran just before `ip -s xfrm state`: counters may only have grown since
        // (background traffic such as IPv6 neighbour discovery over a tunnel).
        let hs = hs_states(&snap);
        let strip = |v: &[Sa]| -> Vec<Sa> {
            v.iter()
                .map(|s| Sa {
                    bytes: 0,
                    packets: 0,
                    ..s.clone()
                })
                .collect()
        };
        assert_eq!(strip(&hs), strip(&ip), "{layout}/{ns}: SAs");
        for (h, i) in hs.iter().zip(&ip) {
            assert!(
                h.packets <= i.packets
                    && h.bytes <= i.bytes
                    && (h.packets > 0) == (i.packets > 0 || h.packets > 0),
                "{layout}/{ns}: counters {h:?} vs {i:?}"
            );
        }
        let ipp = ip_policies(&text(&format!("{layout}-{ns}.xp")));
        assert_eq!(hs_policies(&snap), ipp, "{layout}/{ns}: policies");
    }
}

// ---------------------------------------------------------------------------------------------
// captures

fn capture(name: &str) -> Vec<Value> {
    let rc = text(&format!("{name}.rc"));
    let err = text(&format!("{name}.err"));
    assert_eq!(rc.trim(), "0", "hopscope capture {name} failed: {err}");
    text(&format!("{name}.json"))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "packet")
        .collect()
}

/// tshark's decryption of hopscope's own pcapng with `uat` (the same key): per frame, the
/// "Decrypted Data" bytes (hex), None for frames it did not decrypt.
fn tshark_decrypted(pcapng: &Path, uat: &str) -> Vec<Option<String>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcapng)
        .args(["-o", "esp.enable_encryption_decode:TRUE"])
        .args(["-o", "esp.enable_authentication_check:TRUE"])
        .args(["-o", uat])
        .args(["-P", "-x"])
        .output()
        .expect("tshark (Debian package tshark)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // -P -x: a summary line per frame ("  1 0.000000 ..."), then each data source's hex dump,
    // headed "Frame (N bytes):" / "Decrypted Data (N bytes):" when there is more than one.
    let mut frames: Vec<Option<String>> = vec![];
    let mut in_decrypted = false;
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let is_hex = l.len() > 6 && l.as_bytes()[..4].iter().all(u8::is_ascii_hexdigit);
        if is_hex {
            if in_decrypted && let Some(Some(f)) = frames.last_mut() {
                let hex: String = l[6..]
                    .split("  ")
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect();
                f.push_str(&hex);
            }
        } else if l.starts_with("Decrypted Data (") {
            if let Some(f) = frames.last_mut() {
                *f = Some(String::new());
            }
            in_decrypted = true;
        } else if l.contains(" bytes):") || l.is_empty() {
            in_decrypted = false;
        } else {
            frames.push(None);
            in_decrypted = false;
        }
    }
    frames
}

/// Every ESP frame of a pcapng, decrypted by hopscope's decoder with `cipher`: (frame index,
/// inner bytes).
fn hopscope_decrypted(pcapng: &Path, cipher: &EspCipher) -> Vec<(usize, Vec<u8>)> {
    let mut cap = pcap::Capture::from_file(pcapng).expect("read the pcapng");
    let link = LinkType::from_dlt(cap.get_datalink().0);
    let mut out = vec![];
    let mut i = 0;
    while let Ok(p) = cap.next_packet() {
        let d = decode(link, p.data);
        if let (Some(e), Some(r)) = (d.esp(), d.esp_range.clone()) {
            let end = (r.start + e.len as usize).min(p.data.len());
            let o = open(cipher, &p.data[r.start..end], None)
                .unwrap_or_else(|err| panic!("frame {i}: {err}"));
            out.push((i, o.payload));
        }
        i += 1;
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// hopscope's decryption of every ESP frame equals tshark's (its decrypted data starts with
/// hopscope's inner packet; tshark keeps the ESP trailer after it).
fn decryption_matches_tshark(name: &str, cipher: &EspCipher, uat: &str) -> usize {
    let pcapng = lab().join(format!("{name}.pcapng"));
    let ours = hopscope_decrypted(&pcapng, cipher);
    let theirs = tshark_decrypted(&pcapng, uat);
    assert!(!ours.is_empty(), "{name}: no ESP frame");
    for (i, inner) in &ours {
        let t = theirs
            .get(*i)
            .cloned()
            .flatten()
            .unwrap_or_else(|| panic!("{name}: tshark did not decrypt frame {i}"));
        assert!(
            t.starts_with(&hex(inner)),
            "{name} frame {i}: tshark {t}\nhopscope {}",
            hex(inner)
        );
    }
    ours.len()
}

fn key_bytes(k: &str) -> Vec<u8> {
    let h = k.trim_start_matches("0x");
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

fn gcm_uat(family: &str, spi: u32) -> String {
    format!(
        "uat:esp_sa:\"{family}\",\"*\",\"*\",\"{spi:#010x}\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"{}\",\"NULL\",\"\"",
        variant_key("LY_KEY_GCM")
    )
}

fn gcm() -> EspCipher {
    EspCipher::gcm(&key_bytes(&variant_key("LY_KEY_GCM")), 16).unwrap()
}

/// The capture's own verdict: every ESP packet it saw was decrypted (none failed).
fn capture_decrypted_all(name: &str) -> Vec<Value> {
    let ps = capture(name);
    let esp: Vec<Value> = ps
        .into_iter()
        .filter(|p| p["transport"]["proto"] == "esp")
        .collect();
    assert!(!esp.is_empty(), "{name}: no ESP captured");
    for p in &esp {
        assert_eq!(p["decrypt"]["result"], "ok", "{name}: {p}");
    }
    esp
}

// ---------------------------------------------------------------------------------------------
// the layouts

#[test]
fn cilium_node_id_layout_snapshot_equals_iproute2() {
    pings_ok("cilium4.ping");
    pings_ok("cilium6.ping");
    snapshot_equals_iproute2("cilium", &["ly-ca", "ly-cb"]);
    // The node-ID marks, as the kernel holds them: one out SA per remote node per key and
    // family, in SAs per source node.
    let snap = json("cilium-ly-ca.json");
    let marks: BTreeSet<(u64, u64)> = snap["xfrm_states"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| opt_mark(&x["mark"]))
        .collect();
    for m in [
        (0x0002_3e00, 0xffff_ff00),
        (0x0002_4e00, 0xffff_ff00),
        (0x0002_0d00, 0xffff_0f00),
    ] {
        assert!(marks.contains(&m), "{m:x?} in {marks:x?}");
    }
}

#[test]
fn cilium_mark_decoder_reads_the_live_node() {
    use hopscope::explain::cilium::{IpsecLayout, node_layout};
    let snap = json("cilium-ly-ca.json");
    let st: hopscope::model::NodeState = serde_json::from_value(snap).expect("NodeState");
    let l = node_layout(&st.xfrm_states, &Default::default()).expect("a Cilium layout");
    assert_eq!(l.layout, IpsecLayout::NodeIdPerSource, "{}", l.why);
    assert_eq!(l.keys, 2, "rotation: SPIs 3 and 4");
    // one remote node, two families: 2 out + 2 in each (4 per remote node during a rotation)
    assert_eq!(l.peers.len(), 2, "{:?}", l.peers);
    for p in &l.peers {
        assert_eq!(p.node_id, Some(2));
        assert!(p.ok(), "{p:?}");
        assert_eq!(p.out + p.inbound, 4);
    }
}

#[test]
fn cilium_v4_and_v6_esp_decrypted_like_tshark() {
    let esp = capture_decrypted_all("cilium4-cap");
    let on = |e: &[Value], a: &str| e.iter().filter(|p| p["ip"]["dst"] == a).count();
    assert!(
        on(&esp, "192.168.61.2") >= 3 && on(&esp, "192.168.61.1") >= 3,
        "v4 ESP both ways"
    );
    let esp6 = capture_decrypted_all("cilium6-cap");
    assert!(
        on(&esp6, "fd61::2") >= 3 && on(&esp6, "fd61::1") >= 3,
        "v6 ESP both ways"
    );
    assert_eq!(
        esp6[0]["decrypt"]["next_header"], 41,
        "v6 in v6 tunnel mode"
    );
    let n = decryption_matches_tshark("cilium4-cap", &gcm(), &gcm_uat("IPv4", 3));
    assert!(n >= 6, "{n}: pings and replies");
    let n = decryption_matches_tshark("cilium6-cap", &gcm(), &gcm_uat("IPv6", 3));
    assert!(n >= 6, "{n}");
}

#[test]
fn cilium_catch_all_blocks_a_flow_without_policy() {
    let t = text("catchall.ping");
    assert!(!t.contains("rc=0"), "the catch-all must drop: {t}");
    let stat = |f: &str| -> u64 {
        text(f)
            .lines()
            .find_map(|l| l.strip_prefix("XfrmOutPolBlock"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert!(stat("stat-ly-ca.after") >= stat("stat-ly-ca.before") + 2);
    let tr = json("catchall-trace.json");
    let s = tr.to_string();
    assert!(s.contains("XfrmOutPolBlock"), "{tr:#}");
}

#[test]
fn xfrm_interface_site_to_site() {
    pings_ok("xfrmi.ping");
    snapshot_equals_iproute2("xfrmi", &["ly-xa", "ly-xb"]);
    let snap = json("xfrmi-ly-xa.json");
    // if_id on SAs and policies; the xfrm interface and strongSwan's table 220 in the snapshot
    for x in snap["xfrm_states"].as_array().unwrap() {
        assert_eq!(x["if_id"], 42, "{x}");
    }
    for p in snap["xfrm_policies"].as_array().unwrap() {
        assert_eq!(p["if_id"], 42, "{p}");
    }
    assert!(
        snap["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "ipsec0"),
        "ipsec0 in links"
    );
    assert!(
        snap["routes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["table"]["id"] == 220 && r["dst"] == "10.62.2.0/24"),
        "table 220 route"
    );
    // cbc(aes) + hmac(sha256) truncated to 128 bits, decrypted like tshark
    capture_decrypted_all("xfrmi-cap");
    let c = EspCipher::cbc_hmac(
        &key_bytes(&variant_key("LY_KEY_CBC")),
        hopscope::decode::esp::HmacHash::Sha256,
        &key_bytes(&variant_key("LY_KEY_SHA256")),
        16,
    )
    .unwrap();
    let uat = |spi: u32| {
        format!(
            "\"IPv4\",\"*\",\"*\",\"{spi:#010x}\",\"AES-CBC [RFC3602]\",\"{}\",\"HMAC-SHA-256-128 [RFC4868]\",\"{}\"",
            variant_key("LY_KEY_CBC"),
            variant_key("LY_KEY_SHA256")
        )
    };
    let uat = format!("uat:esp_sa:{},{}", uat(0x1212), uat(0x2121));
    let uat = uat.replacen(",\"IPv4\"", "\n\"IPv4\"", 1);
    assert!(decryption_matches_tshark("xfrmi-cap", &c, &uat) >= 6);
}

#[test]
fn nat_traversal_esp_in_udp() {
    pings_ok("natt.ping");
    snapshot_equals_iproute2("natt", &["ly-na", "ly-nb"]);
    let esp = capture_decrypted_all("natt-cap");
    for p in &esp {
        assert_eq!(
            p["transport"]["udp_encap"],
            serde_json::json!([4500, 4500]),
            "{p}"
        );
        assert!(p.get("encap_mismatch").is_none(), "{p}");
    }
    // The receiver sees the NAT's address as the source: matched to the SA written for it.
    assert!(esp.iter().any(|p| p["ip"]["src"] == "192.168.64.254"));
    let uat = format!(
        "{}\n{}",
        gcm_uat("IPv4", 0x6001),
        gcm_uat("IPv4", 0x6002).trim_start_matches("uat:esp_sa:")
    );
    assert!(decryption_matches_tshark("natt-cap", &gcm(), &uat) >= 6);
}

#[test]
fn transport_mode_cbc_sha1_and_ah() {
    pings_ok("transport.ping");
    snapshot_equals_iproute2("transport", &["ly-ta", "ly-tb"]);
    let ps = capture("transport-cap");
    let esp: Vec<&Value> = ps
        .iter()
        .filter(|p| p["transport"]["proto"] == "esp")
        .collect();
    assert!(!esp.is_empty());
    for p in &esp {
        // transport mode: the payload is ICMP itself, under the outer addresses
        assert_eq!(p["decrypt"]["result"], "ok", "{p}");
        assert_eq!(p["decrypt"]["next_header"], 1, "{p}");
    }
    let ah: Vec<&Value> = ps
        .iter()
        .filter(|p| p["transport"]["proto"] == "ah")
        .collect();
    assert!(ah.len() >= 3, "AH shown: {ah:?}");
    assert_eq!(ah[0]["transport"]["next_header"], 17);
    let c = EspCipher::cbc_hmac(
        &key_bytes(&variant_key("LY_KEY_CBC")),
        hopscope::decode::esp::HmacHash::Sha1,
        &key_bytes(&variant_key("LY_KEY_SHA1")),
        12,
    )
    .unwrap();
    let one = |spi: u32| {
        format!(
            "\"IPv4\",\"*\",\"*\",\"{spi:#010x}\",\"AES-CBC [RFC3602]\",\"{}\",\"HMAC-SHA-1-96 [RFC2404]\",\"{}\"",
            variant_key("LY_KEY_CBC"),
            variant_key("LY_KEY_SHA1")
        )
    };
    let uat = format!("uat:esp_sa:{}\n{}", one(0x7012), one(0x7021));
    assert!(decryption_matches_tshark("transport-cap", &c, &uat) >= 3);
}

#[test]
fn vxlan_inside_esp() {
    pings_ok("vxlan.ping");
    snapshot_equals_iproute2("vxlan", &["ly-va", "ly-vb"]);
    let esp = capture_decrypted_all("vxlan-cap");
    // outer ESP, then the node-to-node UDP 8472 VXLAN, then the pod's ICMP
    let inner = &esp[0]["decrypt"]["inner"];
    assert_eq!(inner["transport"]["proto"], "vxlan", "{inner}");
    assert_eq!(inner["transport"]["vni"], 2);
    assert_eq!(inner["transport"]["dport"], 8472);
    assert!(
        esp.iter().any(|p| {
            p["decrypt"]["inner"]["transport"]["inner"]["transport"]["proto"] == "icmp"
        })
    );
    assert!(decryption_matches_tshark("vxlan-cap", &gcm(), &gcm_uat("IPv4", 5)) >= 6);
}

/// The trace of each layout's flow: predicted as far as hopscope's steps know the layout.
#[test]
fn traces_run_on_every_layout() {
    for t in [
        "cilium4-trace.json",
        "cilium6-trace.json",
        "xfrmi-trace.json",
        "natt-trace.json",
        "transport-trace.json",
        "vxlan-trace.json",
        "vti-trace.json",
        "vtipol-trace.json",
        "vtitmpl-trace.json",
        "vtixfrm-trace.json",
        "mismatch-trace.json",
    ] {
        let v = json(t);
        assert!(v.is_object(), "{t}: {v}");
    }
}

// ---------------------------------------------------------------------------------------------
// the trace through each layout's devices, --follow, the ESP lengths, the doctor

/// The paths of the layouts without a tunnel device: the sender's SA, its encapsulation, the
/// NAT on the way, decryption and delivery on the receiver; the catch-all stops on the sender.
#[test]
fn traces_predict_each_layouts_path() {
    for (name, sa, esp, rx) in [
        (
            "cilium4",
            "spi 0x3",
            "ESP tunnel 192.168.61.1 → 192.168.61.2",
            "ly-cb",
        ),
        (
            "cilium6",
            "spi 0x3",
            "ESP tunnel fd61::1 → fd61::2",
            "ly-cb",
        ),
        (
            "natt",
            "spi 0x6001",
            "ESP in UDP 4500→4500 (NAT-T) tunnel",
            "ly-nb",
        ),
        (
            "transport",
            "spi 0x7012",
            "ESP transport 192.168.66.1 → 192.168.66.2",
            "ly-tb",
        ),
    ] {
        let t = json(&format!("{name}-trace.json"));
        let tx = t["hops"][0]["node"].as_str().unwrap().to_string();
        assert!(has_hop(&t, &tx, "xfrm_state", "", sa), "{name}: {t:#}");
        assert!(has_hop(&t, &tx, "encrypt", "", esp), "{name}: {t:#}");
        assert!(
            has_hop(&t, rx, "decrypt", "eth0", "decrypted"),
            "{name}: {t:#}"
        );
        assert!(
            has_hop(&t, rx, "policy_check", "eth0", "passed"),
            "{name}: {t:#}"
        );
        delivered_on(&t, rx);
    }
    let t = json("natt-trace.json");
    assert!(
        has_hop(
            &t,
            "ly-nat",
            "nat",
            "outside",
            "SNAT 192.168.63.1:4500 → 192.168.64.254:4500"
        ),
        "{t:#}"
    );
    let t = json("catchall-trace.json");
    assert_eq!(
        (&t["end"]["end"], &t["end"]["node"], &t["end"]["counter"]),
        (
            &"stopped".into(),
            &"ly-ca".into(),
            &"XfrmOutPolBlock".into()
        ),
        "{t:#}"
    );
    let why = t["end"]["reason"].as_str().unwrap();
    assert!(why.contains("blocked by policy out 0.0.0.0/0"), "{why}");
}

/// The hops of a trace as (node, step, dev, what).
fn hops(t: &Value) -> Vec<(String, String, String, String)> {
    t["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["node"].as_str().unwrap_or("").to_string(),
                h["step"].as_str().unwrap_or("").to_string(),
                h["dev"].as_str().unwrap_or("").to_string(),
                h["what"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn has_hop(t: &Value, node: &str, step: &str, dev: &str, what: &str) -> bool {
    hops(t)
        .iter()
        .any(|(n, s, d, w)| n == node && s == step && d == dev && w.contains(what))
}

fn delivered_on(t: &Value, node: &str) {
    assert_eq!(t["end"]["end"], "delivered", "{t:#}");
    assert_eq!(t["end"]["node"], node, "{t:#}");
}

#[test]
fn vxlan_trace_goes_through_the_tunnel_device() {
    let snap = json("vxlan-ly-va.json");
    let l = snap["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "cilium_vxlan")
        .unwrap();
    assert_eq!(l["tunnel"]["type"], "vxlan", "{l}");
    assert_eq!(l["tunnel"]["vni"], 2);
    assert_eq!(l["tunnel"]["port"], 8472);
    assert_eq!(l["tunnel"]["remote"], "192.168.65.2");
    let t = json("vxlan-trace.json");
    // the encapsulation, the outer UDP packet's own XFRM lookup, the peer's decapsulation
    assert!(
        has_hop(&t, "ly-va", "tunnel", "cilium_vxlan", "8472"),
        "{t:#}"
    );
    assert!(has_hop(&t, "ly-va", "xfrm_state", "", "spi 0x5"), "{t:#}");
    assert!(has_hop(&t, "ly-vb", "decrypt", "eth0", ""), "{t:#}");
    assert!(
        has_hop(&t, "ly-vb", "tunnel", "cilium_vxlan", "decapsulates"),
        "{t:#}"
    );
    assert!(has_hop(&t, "ly-vb", "ingress", "cilium_vxlan", ""), "{t:#}");
    delivered_on(&t, "ly-vb");
}

#[test]
fn xfrm_interface_trace_looks_up_with_its_if_id() {
    let snap = json("xfrmi-ly-xa.json");
    let l = snap["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "ipsec0")
        .unwrap();
    assert_eq!(
        l["tunnel"],
        serde_json::json!({"type": "xfrm", "if_id": 42})
    );
    let t = json("xfrmi-trace.json");
    assert!(has_hop(&t, "ly-xa", "egress", "ipsec0", ""), "{t:#}");
    assert!(
        has_hop(&t, "ly-xa", "tunnel", "ipsec0", "if_id 42"),
        "{t:#}"
    );
    assert!(
        has_hop(&t, "ly-xa", "xfrm_state", "", "spi 0x1212"),
        "{t:#}"
    );
    assert!(
        has_hop(&t, "ly-xb", "decrypt", "ipsec0", "if_id 42"),
        "{t:#}"
    );
    assert!(
        has_hop(&t, "ly-xb", "policy_check", "ipsec0", "passed"),
        "{t:#}"
    );
    delivered_on(&t, "ly-xb");
}

#[test]
fn vti_marks_via_the_device() {
    pings_ok("vti.ping");
    snapshot_equals_iproute2("vti", &["ly-ia", "ly-ib"]);
    let snap = json("vti-ly-ia.json");
    let l = snap["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "vti0")
        .unwrap();
    assert_eq!(
        l["tunnel"],
        serde_json::json!({"type": "vti", "ikey": 0x20, "okey": 0x10, "local": "192.168.67.1", "remote": "192.168.67.2"})
    );
    capture_decrypted_all("vti-cap");
    let uat = format!(
        "{}\n{}",
        gcm_uat("IPv4", 0x6712),
        gcm_uat("IPv4", 0x6721).trim_start_matches("uat:esp_sa:")
    );
    assert!(decryption_matches_tshark("vti-cap", &gcm(), &uat) >= 6);
    // out with ly-ia's okey as the lookup's mark, in with ly-ib's ikey
    let t = json("vti-trace.json");
    assert!(has_hop(&t, "ly-ia", "tunnel", "vti0", "okey 0x10"), "{t:#}");
    assert!(
        has_hop(&t, "ly-ia", "xfrm_state", "", "spi 0x6712"),
        "{t:#}"
    );
    assert!(has_hop(&t, "ly-ib", "decrypt", "vti0", "VTI vti0"), "{t:#}");
    // vti_rcv_cb's check with the ikey, while the packet is still on the ESP's device
    assert!(
        has_hop(
            &t,
            "ly-ib",
            "policy_check",
            "eth0",
            "in policy check passed"
        ),
        "{t:#}"
    );
    delivered_on(&t, "ly-ib");
}

/// `trace --follow` while the layout's ping runs: every observable hop (including the tunnel
/// devices' own) sees the pings.
#[test]
fn follow_sees_every_layouts_hops() {
    let tunnel_hops: &[(&str, &[(&str, &str)])] = &[
        ("cilium4", &[]),
        ("cilium6", &[("ly-cb", "eth0")]),
        ("xfrmi", &[("ly-xa", "ipsec0"), ("ly-xb", "ipsec0")]),
        ("natt", &[("ly-nat", "outside")]),
        ("transport", &[("ly-tb", "eth0")]),
        (
            "vxlan",
            &[("ly-va", "cilium_vxlan"), ("ly-vb", "cilium_vxlan")],
        ),
        ("vti", &[("ly-ia", "vti0"), ("ly-ib", "vti0")]),
        ("vtipol", &[("ly-ja", "vti0"), ("ly-jb", "vti0")]),
    ];
    let mut bad = vec![];
    for (l, devs) in tunnel_hops {
        pings_ok_or_rc(&format!("{l}-follow.json.ping"));
        let v = json(&format!("{l}-follow.json"));
        let f = &v["follow"];
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
        if seen.len() < 2 || seen.iter().any(|(_, _, n)| *n == 0) {
            bad.push(format!("{l}: {} — {seen:?}", f["verdict"]));
        }
        for (node, dev) in *devs {
            if !seen.iter().any(|(n, d, c)| n == node && d == dev && *c > 0) {
                bad.push(format!("{l}: {node} {dev} not followed: {seen:?}"));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

fn pings_ok_or_rc(name: &str) {
    let t = text(name);
    assert!(t.contains(" 0% packet loss"), "{name}: {t}");
}

/// The ESP packet the trace predicts has the length the kernel sent (outer IPv4 or IPv6
/// header, UDP for NAT-T, VXLAN inside, transport mode without a second IP header).
#[test]
fn trace_esp_length_equals_the_kernels() {
    for (trace, cap) in [
        ("cilium4-trace.json", "cilium4-cap"),
        ("cilium6-trace.json", "cilium6-cap"),
        ("xfrmi-trace.json", "xfrmi-cap"),
        ("natt-trace.json", "natt-cap"),
        ("transport-trace.json", "transport-cap"),
        ("vxlan-trace.json", "vxlan-cap"),
        ("vti-trace.json", "vti-cap"),
        ("vtipol-trace.json", "vtipol-cap"),
    ] {
        let t = json(trace);
        let enc = t["hops"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["step"] == "encrypt")
            .unwrap_or_else(|| panic!("{trace}: no encrypt hop"));
        let p = enc["packet"].as_str().unwrap();
        let len: u64 = p
            .split(" len ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{trace}: {p}"));
        // to the peer (a NAT may have rewritten the source on the way)
        let dst = p.split(' ').nth(2).unwrap();
        let esp = capture_decrypted_all(cap);
        let kernel: BTreeSet<u64> = esp
            .iter()
            .filter(|x| x["ip"]["dst"] == dst)
            .filter(|x| x["decrypt"]["inner"]["transport"]["icmp_type"] != 0)
            .map(|x| x["ip"]["total_len"].as_u64().unwrap())
            .collect();
        assert!(
            kernel.contains(&len),
            "{trace}: the trace says {len}, the kernel sent {kernel:?} to {dst}"
        );
    }
}

#[test]
fn doctor_is_silent_on_every_healthy_layout() {
    let mut noisy = vec![];
    for l in [
        "cilium",
        "xfrmi",
        "natt",
        "transport",
        "vxlan",
        "vti",
        "vtipol",
    ] {
        let name = format!("{l}-doctor.json");
        let rc = text(&format!("{l}-doctor.rc"));
        let v: Value = serde_json::from_str(&text(&name))
            .unwrap_or_else(|e| panic!("{name}: {e}: {}", text(&format!("{l}-doctor.err"))));
        let findings: Vec<String> = findings(&v)
            .into_iter()
            .filter(|f| f["severity"] == "fail" || f["severity"] == "warn")
            .map(|f| format!("{} {} {}", f["node"], f["id"], f["what"]))
            .collect();
        if rc.trim() != "0" || !findings.is_empty() {
            noisy.push(format!("{l}: exit {} {findings:#?}", rc.trim()));
        }
    }
    assert!(noisy.is_empty(), "{noisy:#?}");
}

/// Every finding object in a doctor JSON document.
fn findings(v: &Value) -> Vec<Value> {
    let mut out = vec![];
    let mut stack = vec![v];
    while let Some(x) = stack.pop() {
        match x {
            Value::Object(m) => {
                if m.contains_key("id") && m.contains_key("severity") {
                    out.push(x.clone());
                } else {
                    stack.extend(m.values());
                }
            }
            Value::Array(a) => stack.extend(a),
            _ => {}
        }
    }
    out
}

/// ly-ma's out SA sends ESP in UDP to 4501, ly-mb's IKE socket is on 4500: the pings die as
/// UDP to a closed port on ly-mb (its Udp NoPorts rises); the trace stops there naming both
/// ports, the doctor names the pair.
#[test]
fn natt_port_mismatch_named_by_trace_and_doctor() {
    let ping = text("mismatch.ping");
    assert!(!ping.contains("rc=0"), "the mismatch must drop: {ping}");
    let noports = |f: &str| -> u64 {
        let t = text(f);
        let mut udp = t.lines().filter(|l| l.starts_with("Udp: "));
        let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
        let i = names
            .split_whitespace()
            .position(|w| w == "NoPorts")
            .unwrap();
        values.split_whitespace().nth(i).unwrap().parse().unwrap()
    };
    assert!(
        noports("snmp-ly-mb.after") >= noports("snmp-ly-mb.before") + 3,
        "Udp NoPorts on ly-mb"
    );
    snapshot_equals_iproute2("mismatch", &["ly-ma", "ly-mb"]);
    let t = json("mismatch-trace.json");
    assert_eq!(t["end"]["end"], "stopped", "{t:#}");
    assert_eq!(t["end"]["node"], "ly-mb");
    assert_eq!(t["end"]["counter"], "UdpNoPorts");
    let why = t["end"]["reason"].as_str().unwrap();
    assert!(why.contains("4501") && why.contains("4500"), "{why}");
    let d: Value = serde_json::from_str(&text("mismatch-doctor.json")).unwrap();
    assert_ne!(text("mismatch-doctor.rc").trim(), "0");
    let f = findings(&d);
    assert!(
        f.iter()
            .any(|f| f["id"] == "in-sa-encap-port" && f["node"] == "ly-mb"),
        "{f:#?}"
    );
}

/// ly-ca's own SAs name its node IDs (no Kubernetes in the lab: by the peer address their out
/// SAs go to) and count them per remote node against the layout; then the lab deletes one
/// per-source inbound SA (ly-cb's v4, key 4) from the kernel, and the snapshot calls that
/// node's count wrong and the doctor names it.
#[test]
fn cilium_node_ids_named_and_sas_counted_per_remote_node() {
    let rc = |f: &str| text(&format!("{f}.rc")).trim().to_string();
    assert_eq!(
        rc("cilium-ly-ca.txt"),
        "0",
        "{}",
        text("cilium-ly-ca.txt.err")
    );
    let t = text("cilium-ly-ca.txt");
    for m in [
        "mark 0x23e00/0xffffff00 (encrypt, key 3, node 0x2 (192.168.61.2))",
        "mark 0x24e00/0xffffff00 (encrypt, key 4, node 0x2 (192.168.61.2))",
        "mark 0x20d00/0xffff0f00 (decrypt, node 0x2 (192.168.61.2))",
    ] {
        assert!(t.contains(m), "{m}: {t}");
    }
    let row = |t: &str, peer: &str| -> String {
        t.lines()
            .find(|l| l.starts_with("0x2 ") && l.contains(&format!(" {peer} ")))
            .unwrap_or_else(|| panic!("no row for node 0x2 {peer}: {t}"))
            .to_string()
    };
    assert!(
        t.contains("layout: Cilium with inbound SAs per source node"),
        "{t}"
    );
    for peer in ["192.168.61.2", "fd61::2"] {
        let r = row(&t, peer);
        assert!(r.contains("0x3,0x4  2/2  2/2  ok"), "{r}");
    }
    assert_eq!(text("sa-count.delete").trim(), "", "ip xfrm state delete");
    let broken = text("sa-count-ly-ca.txt");
    let r = row(&broken, "192.168.61.2");
    assert!(r.contains("2/2  1/2  WRONG"), "{r}");
    assert!(row(&broken, "fd61::2").contains("2/2  2/2  ok"));
    // 2: ESP with key 4 from ly-cb finds no SA (Cilium's SPIs are shared by both directions,
    // so the SPI-3 SA from ly-cb does not stand in for it)
    assert_eq!(
        rc("sa-count-doctor"),
        "2",
        "{}",
        text("sa-count-doctor.err")
    );
    let d: Value = serde_json::from_str(&text("sa-count-doctor.json")).unwrap();
    let missing: Vec<String> = findings(&d)
        .into_iter()
        .filter(|f| f["id"] == "in-sa-missing")
        .map(|f| f["what"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        missing,
        ["ESP spi 0x4 to 192.168.61.1 finds no SA: the kernel drops it (XfrmInNoStates)"],
        "{d:#}"
    );
    let f: Vec<Value> = findings(&d)
        .into_iter()
        .filter(|f| f["id"] == "sa-count")
        .collect();
    assert_eq!(f.len(), 1, "{f:#?}");
    let what = f[0]["what"].as_str().unwrap();
    assert!(
        what.starts_with(
            "node 0x2 (192.168.61.2) (inet): 2 out and 1 inbound SA(s) for spi 0x3, 0x4"
        ),
        "{what}"
    );
}

/// The devconf of `dev` in a snapshot: (ipv4 disable_policy, ipv4 disable_xfrm).
fn devconf(snap: &str, dev: &str) -> (bool, bool) {
    let snap = json(snap);
    let l = snap["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == dev)
        .unwrap_or_else(|| panic!("{dev} in {snap:#}"))
        .clone();
    let c = &l["xfrm_conf"]["ipv4"];
    (
        c["disable_policy"]
            .as_bool()
            .unwrap_or_else(|| panic!("{l}")),
        c["disable_xfrm"].as_bool().unwrap(),
    )
}

/// An xfrm_stat counter in a saved /proc/net/xfrm_stat.
fn xfrm_stat(file: &str, name: &str) -> u64 {
    text(file)
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("{name} in {file}"))
        .trim()
        .parse()
        .unwrap()
}

/// The same VTI pair with disable_policy off (the kernel's default): on the lab's kernel the
/// decrypted packet meets its policy check again on vti0, with mark 0 and no transform on
/// record (vti_rcv_cb scrubs it); no policy matches it there, so it passes. The trace says
/// so on ly-jb, and on ly-ib (disable_policy on) that no check is made.
#[test]
fn vti_with_disable_policy_off_is_checked_again_and_passes() {
    pings_ok("vtipol.ping");
    snapshot_equals_iproute2("vtipol", &["ly-ja", "ly-jb"]);
    assert_eq!(devconf("vtipol-ly-jb.json", "vti0"), (false, false));
    assert_eq!(devconf("vti-ly-ib.json", "vti0"), (true, false));
    capture_decrypted_all("vtipol-cap");
    let t = json("vtipol-trace.json");
    assert!(
        has_hop(
            &t,
            "ly-jb",
            "policy_check",
            "vti0",
            "no in policy matches (mark 0x0): allowed (the VTI left no transform on record)"
        ),
        "{t:#}"
    );
    delivered_on(&t, "ly-jb");
    let t = json("vti-trace.json");
    assert!(
        has_hop(
            &t,
            "ly-ib",
            "policy_check",
            "vti0",
            "no in policy check: disable_policy is on on vti0"
        ),
        "{t:#}"
    );
}

/// Then ly-jb gets an in policy without mark for the site's traffic: the kernel drops the
/// decrypted pings (XfrmInTmplMismatch rises by each), the trace stops there naming
/// disable_policy, the doctor fails with vti-policy-check, and the snapshot text shows the
/// switch.
#[test]
fn vti_unmarked_in_policy_drops_what_the_vti_decrypted() {
    let ping = text("vtitmpl.ping");
    assert!(!ping.contains("rc=0"), "{ping}");
    let m = "XfrmInTmplMismatch";
    assert!(
        xfrm_stat("stat-ly-jb.after", m) >= xfrm_stat("stat-ly-jb.before", m) + 3,
        "{m} on ly-jb"
    );
    let t = json("vtitmpl-trace.json");
    assert_eq!(
        (&t["end"]["end"], &t["end"]["node"], &t["end"]["counter"]),
        (&"stopped".into(), &"ly-jb".into(), &m.into()),
        "{t:#}"
    );
    let why = t["end"]["reason"].as_str().unwrap();
    assert!(
        why.contains("the VTI vti0 left none on record (disable_policy is off on it)"),
        "{why}"
    );
    let d = json("vtitmpl-doctor.json");
    assert_eq!(text("vtitmpl-doctor.rc").trim(), "2");
    let f: Vec<Value> = findings(&d)
        .into_iter()
        .filter(|f| f["severity"] == "fail")
        .collect();
    assert!(
        f.iter()
            .any(|f| f["id"] == "vti-policy-check" && f["node"] == "ly-jb"),
        "{f:#?}"
    );
    let snap = text("vtitmpl-ly-jb.txt");
    let row = snap
        .lines()
        .find(|l| l.starts_with("vti0 "))
        .unwrap_or_else(|| panic!("{snap}"));
    let w: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        w,
        [
            "vti0", "vti", "ikey", "0x30", "okey", "0x40", "off", "off", "off"
        ]
    );
}

/// disable_xfrm on ly-ja's vti0: vti_xmit's lookup is skipped, no SA, the packet is dropped
/// with a carrier error; the snapshot shows the switch, the trace stops on ly-ja.
#[test]
fn vti_with_disable_xfrm_sends_nothing() {
    let ping = text("vtixfrm.ping");
    assert!(!ping.contains("rc=0"), "{ping}");
    let carrier = |f: &str| -> u64 {
        let t = text(f);
        let mut lines = t.lines().skip_while(|l| !l.trim_start().starts_with("TX:"));
        let names: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        let i = names.iter().position(|w| *w == "carrier").unwrap() - 1;
        lines
            .next()
            .unwrap()
            .split_whitespace()
            .nth(i)
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        carrier("vtixfrm-ly-ja.after") >= carrier("vtixfrm-ly-ja.before") + 3,
        "tx carrier errors on ly-ja's vti0"
    );
    assert_eq!(devconf("vtixfrm-ly-ja.json", "vti0"), (false, true));
    let t = json("vtixfrm-trace.json");
    assert_eq!(
        (&t["end"]["end"], &t["end"]["node"], &t["end"]["counter"]),
        (
            &"stopped".into(),
            &"ly-ja".into(),
            &"vti0 tx_carrier_errors".into()
        ),
        "{t:#}"
    );
}
