//! `hopscope demo` as a new user runs it: in tmux, as an unprivileged user (no root, no cluster,
//! and the host kernel has no ESP). The recording is the lab's (demo/, made by
//! tests/lab/checks/record-demo.sh): the SAs pane shows SPI 3 with moving counters, the Packets
//! pane ESP on eth0 decrypted, and a ping followed with `t` is seen on every hop.

mod common;

use common::tmux::Tmux;
use std::time::Duration;

/// The demo, run as nobody when we are root.
fn demo(args: &str) -> Tmux {
    let bin = env!("CARGO_BIN_EXE_hopscope");
    let user = if unsafe { libc::geteuid() } == 0 {
        "setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp "
    } else {
        ""
    };
    let t = Tmux::start(&format!("{user}{bin} --no-kube demo {args}"));
    // Wide enough for the decrypted inner packet at the end of a packet row.
    t.tmux(&["resize-window", "-x", "220", "-y", "50"]);
    t
}

/// The row of the SA worker → worker2 (10.0.1.138 → 10.0.0.40).
fn sa_row(screen: &str) -> Option<String> {
    screen
        .lines()
        .find(|l| l.contains("10.0.1.138  10.0.0.40") && l.contains("0x00000003"))
        .map(str::to_string)
}

#[test]
fn the_demo_shows_moving_sa_counters_decrypted_esp_and_every_hop_of_a_ping() {
    let t = demo("");
    let limit = Duration::from_secs(30);
    t.wait("the SAs pane", limit, |s| {
        s.contains("REPLAY demo of netns worker") && sa_row(s).is_some()
    });
    let first = sa_row(&t.screen()).unwrap();
    t.wait("the SA's counters moving", limit, |s| {
        sa_row(s).is_some_and(|r| r != first)
    });
    t.keys(&["7"]);
    t.wait("ESP on eth0, decrypted", limit, |s| {
        s.lines().any(|l| {
            l.contains("eth0")
                && l.contains("ESP(spi=0x00000003")
                && l.contains("=> 10.0.1.52 > 10.0.0.249")
        })
    });
    // Follow a ping: the pod's echo request as it entered on its lxc. Paused while picking it
    // (the demo starts over every 14 s), played again to see it go by.
    t.wait("a request on the lxc", limit, |s| {
        s.lines()
            .any(|l| l.contains("lxcda1dd0af135e  in   10.0.1.52 > 10.0.0.249: ICMP echo request"))
    });
    t.keys(&["Space"]);
    t.wait("paused", limit, |s| {
        s.lines().next().is_some_and(|l| l.contains("paused"))
    });
    t.keys(&["/"]);
    t.literal("iface=lxcda1dd0af135e request");
    t.keys(&["Enter"]);
    t.wait("the filtered rows", limit, |s| {
        s.contains("/iface=lxcda1dd0af135e request ✓")
    });
    // Pick the newest request, as a user would, and follow it.
    t.keys(&["G", "t"]);
    t.wait("the trace", limit, |s| s.contains("flow 10.0.1.52"));
    t.keys(&["Space"]);
    t.wait("every hop seen", Duration::from_secs(40), |s| {
        s.contains("seen: seen at every observable hop")
    });
    let s = t.screen();
    for dev in ["lxcda1dd0af135e", "cilium_host", "eth0"] {
        assert!(s.contains(dev), "{dev} on the path: {s}");
    }
    t.keys(&["q"]);
}

#[test]
fn the_broken_demo_shows_worker2_missing_its_inbound_sa() {
    let t = demo("--broken");
    let limit = Duration::from_secs(30);
    t.wait("the SAs pane", limit, |s| s.contains("REPLAY demo (broken"));
    t.keys(&[":"]);
    t.literal("netns worker2");
    t.keys(&["Enter"]);
    t.keys(&["6"]);
    t.wait("XfrmInNoStates on worker2", limit, |s| {
        s.contains("of netns worker2") && s.contains("XfrmInNoStates")
    });
    t.keys(&["4"]);
    // The tab is marked (`SAs!`) once the doctor's thread has judged worker2.
    t.wait("worker2's SAs", limit, |s| {
        s.contains("XFRM SAs 2") || s.contains("XFRM SAs! 2")
    });
    let s = t.screen();
    assert!(
        !s.contains("0.0.0.0     10.0.0.40"),
        "no inbound SA on worker2: {s}"
    );
    // The doctor's finding names it.
    t.keys(&["9"]);
    t.wait("the doctor's finding", limit, |s| {
        s.contains("doctor: 1 fail")
            && s.lines().any(|l| {
                l.contains("in-sa-missing") && l.contains("ESP spi 0x3 to 10.0.0.40 finds no SA")
            })
    });
}
