//! End to end in tmux against a throwaway netns (root, tmux): start `hopscope --netns`,
//! change the netns with `ip`, read the screen with capture-pane; filter, detail, help,
//! quit; the terminal is sane again after quit, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and a
//! panic, given back on SIGTSTP and taken again on SIGCONT.

mod common;

use common::Netns;
use common::tmux::{Tmux, assert_sane};
use std::process::Command;
use std::time::Duration;

/// hopscope on `netns` (with `env` before it) in a tmux pane.
fn start(netns: &str, env: &str) -> Tmux {
    Tmux::start(&format!(
        "{env} {bin} --netns {netns} --interval 500ms",
        bin = env!("CARGO_BIN_EXE_hopscope")
    ))
}

/// How long a change may take to show. Generous: the waits end as soon as the screen says it,
/// so a slow, busy machine only makes a test take longer, not fail.
const APPEAR: Duration = Duration::from_secs(15);
/// The first frame: the process starts and dumps the netns.
const FIRST: Duration = Duration::from_secs(30);

#[test]
fn live_changes_filter_detail_help_quit() {
    let ns = Netns::new("tui");
    ns.ip("link set lo up");
    let t = start(&ns.name, "");
    t.wait("first frame", FIRST, |s| {
        s.contains(&format!("netns {}", ns.name)) && s.contains("1 Links 1")
    });
    let mut worst = Duration::ZERO;

    // A link.
    ns.ip("link add hs-v0 type veth peer name hs-v1");
    ns.ip("link set hs-v0 up");
    worst = worst.max(t.wait("veth", APPEAR, |s| s.contains("hs-v0@hs-v1")));

    // A route in table 200, on the Routes pane.
    t.keys(&["2"]);
    ns.ip("route add 198.51.100.0/24 dev hs-v0 table 200");
    worst = worst.max(t.wait("route", APPEAR, |s| {
        s.lines()
            .any(|l| l.contains("198.51.100.0/24") && l.contains("200 (cilium ipsec)"))
    }));

    // A rule, with its mark named.
    t.keys(&["3"]);
    ns.ip("rule add fwmark 0xe00/0xf00 lookup 200 pref 123");
    worst = worst.max(t.wait("rule", APPEAR, |s| {
        s.lines()
            .any(|l| l.starts_with("123 ") && l.contains("0xe00/0xf00 (encrypt)"))
    }));

    // An XFRM policy.
    t.keys(&["5"]);
    ns.ip(
        "xfrm policy add src 10.0.1.0/24 dst 10.0.2.0/24 dir out mark 0x3e00 mask 0xff00 \
         tmpl src 10.0.1.138 dst 10.0.2.52 proto esp spi 3 reqid 1 mode tunnel",
    );
    worst = worst.max(t.wait("policy", APPEAR, |s| {
        s.contains("10.0.1.0/24 → 10.0.2.0/24")
    }));
    // Its template finds no SA: highlighted as trouble; SAS column says 0.
    eprintln!("slowest change to appear: {worst:?}");

    // Detail view of the policy, then back.
    t.keys(&["Enter"]);
    t.wait("policy detail", APPEAR, |s| {
        s.contains("detail (esc back")
            && s.contains("selects 0 SAs")
            && s.contains("encrypt, key 3")
    });
    t.keys(&["Escape"]);
    t.wait("detail closed", APPEAR, |s| !s.contains("detail (esc back"));

    // Filter the routes, shown in the header; an invalid one says why.
    t.keys(&["2", "/"]);
    t.literal("bogus=1");
    t.wait("invalid filter", APPEAR, |s| {
        s.contains("✗ unknown column \"bogus\"")
    });
    t.keys(&["C-u"]);
    t.literal("198.51");
    t.keys(&["Enter"]);
    t.wait("filter", APPEAR, |s| {
        s.contains("/198.51 ✓") && s.contains("198.51.100.0/24") && !s.contains("127.0.0.1")
    });
    t.keys(&["Escape"]);
    t.wait("filter cleared", APPEAR, |s| {
        s.contains("127.0.0.1") && !s.contains("/198.51")
    });

    // Sort by the next column: the header marks it.
    t.keys(&["s"]);
    t.wait("sorted", APPEAR, |s| {
        s.contains("TABLE↑") && s.contains("sort TABLE↑")
    });

    // :table with completion.
    t.keys(&[":"]);
    t.literal("tab");
    t.keys(&["Tab"]);
    t.literal("200");
    t.keys(&["Enter"]);
    t.wait(":table 200", APPEAR, |s| {
        s.contains("table 200") && !s.contains("127.0.0.1")
    });
    t.keys(&["Escape"]);
    t.wait("all tables", APPEAR, |s| s.contains("127.0.0.1"));

    // Help lists bindings.
    t.keys(&["?"]);
    t.wait("help", APPEAR, |s| {
        s.contains("every key binding") && s.contains("filter rows (validated as typed)")
    });
    t.keys(&["Escape"]);
    // (ESC followed at once by a key reads as alt-key: wait for it to land.)
    t.wait("help closed", APPEAR, |s| !s.contains("every key binding"));

    // And everything goes away again.
    t.keys(&["5"]);
    ns.ip("xfrm policy del src 10.0.1.0/24 dst 10.0.2.0/24 dir out mark 0x3e00 mask 0xff00");
    t.wait("policy gone", APPEAR, |s| {
        s.contains("no XFRM Policies in this netns")
    });
    t.keys(&["3"]);
    ns.ip("rule del pref 123");
    t.wait("rule gone", APPEAR, |s| {
        !s.lines().any(|l| l.starts_with("123 "))
    });
    t.keys(&["2"]);
    ns.ip("route del 198.51.100.0/24 table 200");
    t.wait("route gone", APPEAR, |s| !s.contains("198.51.100.0/24"));
    t.keys(&["1"]);
    ns.ip("link del hs-v0");
    let unpaused = t.wait("veth gone", APPEAR, |s| {
        !s.contains("hs-v0") && !s.contains("hs-v1")
    });

    // Pause: a change does not show until resumed. Nothing on screen says that the paused
    // TUI has the change, so the screen is watched for three times as long as the same kind
    // of change took to show unpaused just above (at least 300 ms): it must never show.
    t.keys(&["p"]);
    t.wait("paused", APPEAR, |s| s.contains("PAUSED"));
    ns.ip("link add hs-p0 type veth peer name hs-p1");
    let watch = (unpaused * 3).max(Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    while t0.elapsed() < watch {
        assert!(!t.screen().contains("hs-p0"), "paused view changed");
    }
    t.keys(&["p"]);
    t.wait("resumed with the change", APPEAR, |s| {
        !s.contains("PAUSED") && s.contains("hs-p0")
    });

    t.quit_cleanly();
}

/// A burst of ~1000 characters (a paste into a line) keeps the TUI answering: each line being
/// typed shows its end, where the keys land, with its verdict, and the keys after the burst
/// still act. (Shown from its start, a long line hid what was typed and the refusal of Enter:
/// the TUI looked as if it took no more input.)
#[test]
fn a_thousand_character_burst_keeps_every_line_answering() {
    let ns = Netns::new("tuib");
    ns.ip("link set lo up");
    let t = start(&ns.name, "");
    t.wait("first frame", FIRST, |s| s.contains("1 Links 1"));
    let burst = "a".repeat(1000);
    let footer = |s: &str| s.lines().last().unwrap_or("").to_string();

    // The row filter: an unknown column, so Enter is refused and the line stays open.
    t.keys(&["/"]);
    t.literal(&format!("bogus={burst}END"));
    t.keys(&["Enter"]);
    t.literal("Z");
    t.wait("the filter line's end and its refusal", APPEAR, |s| {
        let f = footer(s);
        f.contains("ENDZ▏") && f.contains("✗ unknown column")
    });
    // Esc alone (Esc and a key sent together read as Alt-key), then a pane key.
    t.keys(&["Escape"]);
    t.wait("the line closed", APPEAR, |s| footer(s).contains("? help"));
    t.keys(&["3"]);
    t.wait("the Rules pane after the burst", APPEAR, |s| {
        s.contains("PRIO") && s.contains("lookup local")
    });

    // The command line.
    t.keys(&[":"]);
    t.literal(&format!("netns {burst}END"));
    t.wait("the command line's end", APPEAR, |s| {
        footer(s).contains("END▏")
    });
    t.keys(&["Escape"]);
    t.wait("the command line closed", APPEAR, |s| {
        footer(s).contains("? help")
    });
    t.keys(&["2"]);
    t.wait("the Routes pane after the burst", APPEAR, |s| {
        s.contains("TABLE") && s.contains("127.0.0.0/8")
    });

    t.quit_cleanly();
}

#[test]
fn terminal_is_restored_after_signals() {
    let ns = Netns::new("tuis");
    for (sig, code) in [
        ("TERM", 143),
        ("INT", 130),
        ("HUP", 129),
        ("QUIT", 131),
        ("USR1", 138),
    ] {
        let t = start(&ns.name, "");
        t.wait("first frame", FIRST, |s| s.contains("1 Links"));
        kill(sig, t.command_pid());
        let (got, stty) = t.after_exit();
        assert_eq!(got, code, "SIG{sig}");
        assert_sane(&stty);
        // The alternate screen was left: the shell's output is on the normal screen.
        t.wait("normal screen", APPEAR, |s| !s.contains("1 Links"));
    }
}

fn kill(sig: &str, pid: u32) {
    let out = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "kill -{sig} {pid}");
}

/// SIGTSTP (what ^Z sends from a shell) gives the terminal back before stopping: cooked mode,
/// the normal screen. SIGCONT takes it again and draws the whole screen; keys work again.
#[test]
fn stop_gives_the_terminal_back_and_continue_takes_it_again() {
    let ns = Netns::new("tuit");
    let t = start(&ns.name, "");
    t.wait("first frame", FIRST, |s| s.contains("1 Links"));
    let pid = t.command_pid();
    for round in 0..2 {
        kill("TSTP", pid);
        t.wait("normal screen while stopped", APPEAR, |s| {
            !s.contains("1 Links")
        });
        // The screen is given back just before the process stops itself: under load the
        // stop can lag the screen by a moment, so the state is polled (never assumed).
        let read_stat = || std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state_of = |stat: &str| {
            stat.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_string)
        };
        let since = std::time::Instant::now();
        let mut stat = read_stat();
        while state_of(&stat).as_deref() != Some("T") && since.elapsed() < APPEAR {
            std::thread::sleep(std::time::Duration::from_millis(20));
            stat = read_stat();
        }
        assert_eq!(
            state_of(&stat).as_deref(),
            Some("T"),
            "round {round}: stopped: {stat}"
        );
        assert_sane(&t.stty_now());
        kill("CONT", pid);
        t.wait("the TUI again", APPEAR, |s| {
            s.contains("1 Links") && s.contains(&format!("netns {}", ns.name))
        });
        let stty = t.stty_now();
        assert!(
            stty.split_whitespace().any(|w| w == "-icanon"),
            "round {round}: raw again:\n{stty}"
        );
    }
    t.answers_keys();
    t.quit_cleanly();
}

#[test]
fn terminal_is_restored_after_a_panic() {
    let ns = Netns::new("tuip");
    let t = start(&ns.name, "HOPSCOPE_TEST_PANIC=1");
    let (code, stty) = t.after_exit();
    assert_eq!(code, 101, "a panic exits with 101");
    assert_sane(&stty);
    t.wait("panic message on the normal screen", APPEAR, |s| {
        s.contains("HOPSCOPE_TEST_PANIC")
    });
}

#[test]
fn unknown_netns_fails_before_touching_the_terminal() {
    let t = start("hs-tui-no-such-netns", "");
    let (code, stty) = t.after_exit();
    assert_eq!(code, 1);
    assert_sane(&stty);
    t.wait("error", APPEAR, |s| s.contains("not found"));
}

/// A child process killed when dropped (the traffic generator).
struct Traffic(std::process::Child);
impl Drop for Traffic {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Packets and Trace panes as an on-call user drives them: capture on a veth chosen in the
/// Links pane and see its pings; a capture filter that libpcap refuses is shown as typed and
/// not applied, a good one is; `:trace` predicts the flow's hops and marks the egress seen; the
/// veth deleted mid-capture is marked GONE while the rest goes on; q restores the terminal.
#[test]
fn packets_pane_capture_filter_trace_and_gone() {
    let a = Netns::new("pkta");
    let b = Netns::new("pktb");
    a.ip("link set lo up");
    a.ip(&format!(
        "link add hs-p0 type veth peer name hs-p1 netns {}",
        b.name
    ));
    a.ip("addr add 192.0.2.1/24 dev hs-p0");
    b.ip("addr add 192.0.2.2/24 dev hs-p1");
    a.ip("link set hs-p0 up");
    b.ip("link set hs-p1 up");
    let _ping = Traffic(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &a.name,
                "ping",
                "-q",
                "-i",
                "0.2",
                "192.0.2.2",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("ping"),
    );
    let t = start(&a.name, "");
    t.wait("first frame", FIRST, |s| s.contains("hs-p0@"));

    // Choose the veth in the Links pane, capture on it.
    t.keys(&["/"]);
    t.literal("hs-p0");
    t.keys(&["Enter", "c"]);
    t.wait("pings on the Packets pane", APPEAR * 2, |s| {
        s.contains("● capture 1 if")
            && s.lines().any(|l| {
                l.contains("hs-p0") && l.contains("192.0.2.1 > 192.0.2.2: ICMP echo request")
            })
            && s.lines()
                .any(|l| l.starts_with("hs-p0") && l.contains("capturing"))
    });

    // A capture filter libpcap refuses: said while typing, enter does not apply it.
    t.keys(&["b"]);
    t.literal("icmp and hostx");
    t.wait("filter refused as typed", APPEAR, |s| {
        s.contains("✗ bad capture filter") && s.contains("libpcap")
    });
    t.keys(&["Enter", "C-u"]);
    t.literal("arp");
    t.wait("filter accepted as typed", APPEAR, |s| {
        s.contains("libpcap compiles it")
    });
    t.keys(&["Enter"]);
    t.wait("filter in force", APPEAR, |s| {
        s.contains("● capture 1 if · arp")
    });
    t.keys(&[":"]);
    t.literal("bpf");
    t.keys(&["Enter"]);
    t.wait("filter cleared", APPEAR, |s| {
        s.contains("no capture filter") && s.contains("● capture 1 if │")
    });

    // Trace the ping's flow: the hops, and the egress device seen.
    t.keys(&[":"]);
    t.literal("trace 192.0.2.1 192.0.2.2");
    t.keys(&["Enter"]);
    t.wait("trace pane with the egress seen", APPEAR * 2, |s| {
        s.contains("flow 192.0.2.1 → 192.0.2.2 icmp")
            && s.lines()
                .any(|l| l.contains("egress") && l.contains("hs-p0") && l.contains("✓"))
            && s.contains("seen: seen at every observable hop")
    });

    // The veth goes away mid-capture: its stream says GONE, the TUI goes on.
    a.ip("link del hs-p0");
    t.keys(&["7"]);
    t.wait("stream gone", APPEAR * 2, |s| {
        s.lines()
            .any(|l| l.starts_with("hs-p0") && l.contains("GONE"))
    });
    t.keys(&["1"]);
    t.wait("still answering keys", APPEAR, |s| {
        s.contains("IDX") && !s.contains("hs-p0@")
    });
    t.quit_cleanly();
}
