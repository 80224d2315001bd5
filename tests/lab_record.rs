//! Real-kernel lab test of `hopscope record` (docs/record.md): one boot of the seed's cluster
//! (tests/lab/checks/record.sh) records worker and worker2 while netshoot pings cni-worker2,
//! then replays the file and holds it against what the kernel said itself: ping's own count,
//! `ip -s xfrm state` before and after, a live snapshot afterwards.

use hopscope::record::reader::Recording;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[path = "lab/boot.rs"]
mod boot;
mod common;
use common::replay::{Play, replay_screen};

/// Boot once for every test here (tests/lab/boot.rs); HOPSCOPE_LAB_REUSE=1 reads the last
/// results.
fn results() -> &'static Path {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match CELL.get_or_init(|| boot::boot("record", &[])) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn read(name: &str) -> String {
    let p = results().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn recording() -> Recording {
    Recording::open(&results().join("lab.hsrec")).expect("the lab's recording")
}

/// The packets counter `ip -s xfrm state` gives for the SA src → dst with `spi`.
fn kernel_packets(text: &str, src: &str, dst: &str, spi: u32) -> u64 {
    let head = format!("src {src} dst {dst}");
    let spi = format!("spi 0x{spi:08x}");
    for block in text
        .split("\nsrc ")
        .map(|b| format!("src {}", b.trim_start_matches("src ")))
    {
        if !block.starts_with(&head) || !block.contains(&spi) {
            continue;
        }
        let after = block
            .split("lifetime current:")
            .nth(1)
            .expect("lifetime current");
        let w = after.split_whitespace().find(|w| w.ends_with("(packets)"));
        return w
            .and_then(|w| w.trim_end_matches("(packets)").parse().ok())
            .unwrap_or_else(|| panic!("no packets counter: {block}"));
    }
    panic!("no SA {head} {spi} in:\n{text}")
}

/// (transmitted, received) as ping said.
fn ping_counts() -> (u64, u64) {
    let p = read("ping.out");
    let line = p
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("{p}"));
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1])
}

#[test]
fn the_recording_ends_cleanly_on_sigterm() {
    assert_eq!(read("record.rc").trim(), "143", "{}", read("record.err"));
    let rec = recording();
    assert!(rec.cut.is_none(), "{:?}", rec.cut);
    let end = rec.end.as_ref().expect("an end record");
    assert_eq!(end.reason, "stopped by SIGTERM");
    assert_eq!(end.frames, rec.frames.len() as u64);
    // The two nodes given, then the pods behind their lxc veths (recorded for their state).
    let at = |n: &str| rec.node_index(n);
    assert_eq!((at("worker"), at("worker2")), (Some(0), Some(1)));
    for pod in ["netshoot", "cni-worker", "cni-worker2"] {
        assert!(at(pod).is_some_and(|i| i >= 2), "{pod}: {:?}", labels(&rec));
    }
    assert_eq!(rec.nodes.len(), 5, "{:?}", labels(&rec));
}

fn labels(rec: &Recording) -> Vec<&str> {
    rec.nodes.iter().map(|n| n.label.as_str()).collect()
}

/// Decrypted inner IPv4 ICMP packets of worker's eth0: (src, dst, type), as the recorder opened
/// them with worker's keys (no key is in the file).
fn inner_icmp(rec: &Recording) -> Vec<([u8; 4], [u8; 4], u8)> {
    rec.frames
        .iter()
        .filter(|f| rec.ifaces[f.iface].node == 0 && rec.ifaces[f.iface].name == "eth0")
        .filter_map(|f| f.opened.as_ref())
        .map(|o| &o.payload)
        .filter(|p| p.len() >= 21 && p[0] >> 4 == 4 && p[9] == 1)
        .map(|p| {
            let ihl = usize::from(p[0] & 0xf) * 4;
            (
                p[12..16].try_into().unwrap(),
                p[16..20].try_into().unwrap(),
                p[ihl],
            )
        })
        .collect()
}

#[test]
fn every_ping_the_kernel_sent_and_answered_is_in_the_recording_decrypted() {
    let (sent, got) = ping_counts();
    assert_eq!((sent, got), (10, 10), "{}", read("ping.out"));
    let rec = recording();
    let icmp = inner_icmp(&rec);
    let (pod, peer) = ([10, 0, 1, 52], [10, 0, 0, 249]);
    let requests = icmp.iter().filter(|x| **x == (pod, peer, 8)).count() as u64;
    let replies = icmp.iter().filter(|x| **x == (peer, pod, 0)).count() as u64;
    assert_eq!(
        (requests, replies),
        (sent, got),
        "ESP on worker's eth0, opened: {icmp:?}"
    );
}

#[test]
fn the_recorded_sa_counters_moved_as_the_kernels() {
    let rec = recording();
    let worker = rec.node_index("worker").expect("worker recorded");
    let first = rec.state_at(worker, 0);
    let last = rec.state_at(worker, u64::MAX);
    let (src, dst) = ("10.0.1.138", "10.0.0.40");
    let sa = |st: &hopscope::model::NodeState| {
        st.xfrm_states
            .iter()
            .find(|s| s.src == src && s.dst == dst && s.spi == 3)
            .map(|s| s.lifetime.packets)
            .expect("worker's SA to worker2")
    };
    let recorded = sa(&last) - sa(&first);
    let before = kernel_packets(&read("xs.before"), src, dst, 3);
    let after = kernel_packets(&read("xs.after"), src, dst, 3);
    // The 10 echo requests at least, and no more than the kernel counted from before the
    // recording started to after it ended.
    assert!(recorded >= 10, "recorded +{recorded}");
    assert!(
        recorded <= after - before,
        "recorded +{recorded}, kernel +{}",
        after - before
    );
    // The last sample is the kernel's counter as read then: between the kernel's readings.
    assert!(
        (before..=after).contains(&sa(&last)),
        "{before} ≤ {} ≤ {after}",
        sa(&last)
    );
}

#[test]
fn the_replayed_node_has_the_live_nodes_sas_and_policies() {
    let rec = recording();
    let worker = rec.node_index("worker").unwrap();
    let replayed = rec.state_at(worker, u64::MAX);
    let live: Value = serde_json::from_str(&read("live.worker.json")).unwrap();
    let live_sas: BTreeSet<(String, String, u64)> = live["xfrm_states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["src"].as_str().unwrap().to_string(),
                s["dst"].as_str().unwrap().to_string(),
                s["spi"].as_u64().unwrap(),
            )
        })
        .collect();
    let rec_sas: BTreeSet<(String, String, u64)> = replayed
        .xfrm_states
        .iter()
        .map(|s| (s.src.clone(), s.dst.clone(), u64::from(s.spi)))
        .collect();
    assert_eq!(rec_sas, live_sas);
    assert!(!rec_sas.is_empty());
    assert_eq!(
        replayed.xfrm_policies.len(),
        live["xfrm_policies"].as_array().unwrap().len()
    );
    assert_eq!(
        replayed.routes.len(),
        live["routes"].as_array().unwrap().len()
    );
}

#[test]
fn a_recording_with_the_capture_filter_esp_holds_the_esp_and_nothing_else() {
    assert_eq!(
        read("record-esp.rc").trim(),
        "143",
        "{}",
        read("record-esp.err")
    );
    let rec = Recording::open(&results().join("esp.hsrec")).expect("the filtered recording");
    assert_eq!(rec.meta.filter.as_deref(), Some("esp"));
    // Ethernet frames whose IPv4 protocol is ESP (50), as `tcpdump esp` takes them.
    let is_esp = |d: &[u8]| d.len() > 23 && d[12..14] == [0x08, 0x00] && d[23] == 50;
    let (esp, other): (Vec<_>, Vec<_>) = rec.frames.iter().partition(|f| is_esp(&f.data));
    assert!(other.is_empty(), "{} frames are not ESP", other.len());
    // The 10 echo requests and their 10 replies cross worker's eth0 as ESP.
    assert!(esp.len() >= 20, "{} ESP frames", esp.len());
    // And they are opened with worker's keys, as in the unfiltered recording.
    let icmp = inner_icmp(&rec);
    assert!(icmp.len() >= 20, "decrypted: {icmp:?}");
}

/// A screen's table: its header row down to the last row above the key line, trailing blanks
/// cut. The lines above it (clock, live/replay, tab counts) differ by design.
fn table(screen: &str) -> Vec<String> {
    let lines: Vec<String> = screen.lines().map(|l| l.trim_end().to_string()).collect();
    let body = &lines[3..lines.len().saturating_sub(1)];
    let last = body
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    body[..last].to_vec()
}

#[test]
fn the_recording_replays_to_the_screens_the_live_tui_showed() {
    let rec = recording();
    let worker = rec.node_index("worker").unwrap();
    for (key, name) in [("2", "routes"), ("3", "rules"), ("5", "policies")] {
        let live = read(&format!("live-{name}.screen"));
        let replayed = replay_screen(
            rec.clone(),
            Play {
                node: worker,
                at: rec.duration(),
                filter: None,
                typed: key,
                size: (160, 30),
            },
        );
        let (live, replayed) = (table(&live), table(&replayed));
        assert!(live.len() > 2, "the live {name} pane has rows: {live:#?}");
        assert_eq!(replayed, live, "{name}: replayed vs live");
    }
}
