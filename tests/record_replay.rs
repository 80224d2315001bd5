//! The demo recordings played through the TUI loop (no terminal, no root): the broken demo's
//! Health pane names the broken object, and a capture filter applied in a replay (`replay -f`,
//! `b` in the TUI) shows only the recorded packets it accepts.

mod common;
use common::replay::Play;

use hopscope::cmd::record::demo_recording;
use hopscope::record::reader::Recording;

/// `rec`'s node `node` played (paused) to `at` seconds, with `filter` as `replay -f`, then
/// `typed`: the screen at the end.
fn replay_screen(rec: Recording, node: &str, at: f64, filter: Option<&str>, typed: &str) -> String {
    let node = rec.node_index(node).expect("a recorded node");
    let at = (at * 1e9) as u64;
    let size = (200, 40);
    common::replay::replay_screen(
        rec,
        Play {
            node,
            at,
            filter,
            typed,
            size,
        },
    )
}

#[test]
fn the_broken_demo_health_pane_names_the_missing_inbound_sa() {
    let rec = demo_recording(true).unwrap();
    let s = replay_screen(rec, "worker2", 5.0, None, "9");
    assert!(s.contains("doctor: 1 fail"), "the header counts it: {s}");
    let row = s
        .lines()
        .find(|l| l.starts_with("fail") && l.contains("in-sa-missing"))
        .unwrap_or_else(|| panic!("the finding: {s}"));
    // The broken object: worker2 has no SA for ESP with spi 3 to its own address.
    assert!(
        row.contains("ESP spi 0x3 to 10.0.0.40 finds no SA") && row.contains("XfrmInNoStates"),
        "{row}"
    );
    // The healthy demo: nothing wrong on either node.
    for node in ["worker", "worker2"] {
        let s = replay_screen(demo_recording(false).unwrap(), node, 5.0, None, "9");
        assert!(s.contains("OK: nothing wrong found"), "{node}: {s}");
        assert!(!s.contains("in-sa-missing"), "{node}: {s}");
    }
}

/// Packet rows of the Packets pane, blanks squeezed (column widths follow the rows shown).
fn packet_rows(s: &str) -> Vec<String> {
    s.lines()
        .filter(|l| (l.contains(" in ") || l.contains(" out ")) && l.contains(" > "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn a_capture_filter_applies_to_the_recorded_packets() {
    let rec = demo_recording(false).unwrap();
    let all = replay_screen(rec.clone(), "worker", 6.0, None, "7");
    let esp = replay_screen(rec.clone(), "worker", 6.0, Some("esp"), "7");
    let (all, esp) = (packet_rows(&all), packet_rows(&esp));
    assert!(all.iter().any(|l| l.contains("ICMP echo")), "{all:#?}");
    assert!(esp.len() >= 8, "{esp:#?}");
    assert!(esp.iter().all(|l| l.contains(": ESP(spi=")), "{esp:#?}");
    // The same ESP rows as unfiltered, in the same order.
    let all_esp: Vec<&String> = all.iter().filter(|l| l.contains(": ESP(")).collect();
    assert_eq!(
        esp.iter().collect::<Vec<_>>()[..],
        all_esp[all_esp.len() - esp.len()..]
    );
    // In the TUI: `b`, the filter, enter, then 10 s played: only ICMP, and the plaintext the
    // kernel decrypted is still known as such (the analyzer saw the ESP the filter hides).
    let typed = replay_screen(rec, "worker", 0.0, None, "7bicmp\n]");
    assert!(typed.contains("capture 5 if · icmp"), "{typed}");
    let rows = packet_rows(&typed);
    assert!(rows.len() >= 10, "{typed}");
    assert!(rows.iter().all(|l| l.contains(": ICMP echo")), "{typed}");
    assert!(
        rows.iter()
            .any(|l| l.contains("kernel-decrypted ESP spi 0x3")),
        "{typed}"
    );
    assert!(!typed.contains("LEAK"), "{typed}");
}
