//! Real-kernel lab tests of the TUI's Packets and Trace panes (docs/tui.md): on the seed's
//! cluster under qemu, the TUI runs in tmux on worker, captures on eth0 and the netshoot pod's
//! lxc with decryption on while the pod pings cni-worker2, then follows the flow of one of the
//! pod's requests from the Packets pane. The guest side is tests/lab/checks/tui-packets.sh; it
//! runs in tests/lab.rs' healthy boot and its no-out-policy + wrong-key boot.

use std::path::{Path, PathBuf};

fn healthy() -> PathBuf {
    super::healthy().join("tui-packets")
}

fn broken() -> PathBuf {
    super::no_out_policy().join("tui-packets")
}

/// A screen the guest script saved; the script itself must have ended well.
fn screen(dir: &Path, name: &str) -> String {
    let rc = super::text(dir, "script.rc");
    assert_eq!(
        rc.trim(),
        "0",
        "tui-packets.sh failed: {}",
        super::text(dir, "script.out")
    );
    super::text(dir, name)
}

/// The stream line of one interface at the head of the Packets pane.
fn stream<'a>(screen: &'a str, iface: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.starts_with(&format!("{iface} ")) && l.contains("ESP") && l.contains("plain"))
        .unwrap_or_else(|| panic!("no stream line for {iface}:\n{screen}"))
}

/// Does the screen line hold this word as a cell (not part of another)?
fn has_word(line: &str, word: &str) -> bool {
    line.split_whitespace().any(|w| w == word)
}

fn count_after(line: &str, word: &str) -> u64 {
    line.split(word)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn tui_packets_pane_decrypts_the_pods_pings_on_eth0() {
    let s = screen(&healthy(), "packets.screen");
    let header = s.lines().next().unwrap();
    assert!(header.contains("● capture 2 if · decrypt"), "{header}");
    assert!(!s.contains("LEAK") && !s.contains("AUTH FAILED"), "{s}");
    // The pod's echo requests leave eth0 as ESP SPI 3, and decrypt to the pod's packet.
    let esp: Vec<&str> = s
        .lines()
        .filter(|l| has_word(l, "eth0") && l.contains("ESP(spi=0x00000003"))
        .collect();
    assert!(
        esp.iter()
            .any(|l| l.contains("=> 10.0.1.52 > 10.0.0.249: ICMP echo request")),
        "{s}"
    );
    assert!(
        esp.iter()
            .any(|l| l.contains("=> 10.0.0.249 > 10.0.1.52: ICMP echo reply")),
        "{s}"
    );
    // Per interface: eth0 decrypted every ESP packet of the 5 pings (requests and replies);
    // the pod's lxc carries them in plaintext.
    let eth0 = stream(&s, "eth0");
    assert!(count_after(eth0, "decrypted") >= 10, "{eth0}");
    assert!(eth0.contains("drops kernel 0 hopscope 0"), "{eth0}");
    let lxc = stream(&s, "lxcda1dd0af135e");
    assert!(count_after(lxc, "│") >= 10, "{lxc}");
    // Keys stay redacted on screen.
    let k = super::key("KEY3");
    let k = k.trim_start_matches("0x");
    assert!(!s.contains(&k[..16]), "a key on screen");
    assert_eq!(super::text(&healthy(), "exit").trim(), "EXIT=0");
}

#[test]
fn tui_filter_and_follow_from_a_packet_sees_every_hop() {
    let f = screen(&healthy(), "packets-filtered.screen");
    let rows: Vec<&str> = f.lines().filter(|l| l.contains("ESP(spi=")).collect();
    assert!(rows.len() >= 5, "{f}");
    // Only the pod's echo requests: not the ARP requests a neighbour refresh sends on eth0.
    assert!(
        rows.iter()
            .all(|l| has_word(l, "eth0")
                && l.contains("=> 10.0.1.52 > 10.0.0.249: ICMP echo request")),
        "{f}"
    );
    assert!(!f.contains("who-has"), "{f}");
    let t = screen(&healthy(), "trace.screen");
    assert!(
        t.contains("flow 10.0.1.52 → 10.0.0.249 icmp on worker"),
        "{t}"
    );
    for step in ["xfrm_policy", "xfrm_state"] {
        assert!(t.lines().any(|l| l.contains(step)), "no {step} hop:\n{t}");
    }
    let eth0 = t
        .lines()
        .find(|l| has_word(l, "eth0") && l.contains('✓'))
        .unwrap_or_else(|| panic!("eth0 hop not seen:\n{t}"));
    assert!(count_after(eth0, "✓") >= 5, "{eth0}");
    assert!(t.contains("seen: seen at every observable hop"), "{t}");
}

#[test]
fn tui_flags_leaks_and_failed_icvs_without_the_out_policy_and_with_a_wrong_key() {
    let s = screen(&broken(), "packets.screen");
    let header = s.lines().next().unwrap();
    assert!(header.contains("LEAKS"), "{header}");
    // The pod's requests leave eth0 in plaintext: each one a leak.
    assert!(
        s.lines().any(|l| has_word(l, "eth0")
            && l.contains("10.0.1.52 > 10.0.0.249: ICMP echo request")
            && l.contains("LEAK:")),
        "{s}"
    );
    // worker2's replies are sealed with another key: failed ICVs, never plaintext.
    assert!(s.lines().any(|l| l.contains("AUTH FAILED")), "{s}");
    assert!(
        !s.contains("=> 10.0.0.249 > 10.0.1.52"),
        "a reply shown decrypted with the wrong key:\n{s}"
    );
    assert!(count_after(stream(&s, "eth0"), "LEAKS") >= 5, "{s}");
    let t = screen(&broken(), "trace.screen");
    assert!(t.contains("flow 10.0.1.52 → 10.0.0.249"), "{t}");
    assert!(
        t.lines().any(|l| has_word(l, "eth0") && l.contains('✓')),
        "the plaintext hop on eth0 seen:\n{t}"
    );
}
