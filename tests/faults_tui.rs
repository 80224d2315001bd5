//! The TUI under inputs that used to freeze or could break it (root, tmux): a long capture
//! filter typed key by key (libpcap's optimiser took seconds per key on the UI loop: over a
//! minute frozen, Esc and q ignored), and a storm of terminal resizes (SIGWINCH) while the
//! netns changes. Each asserts what the user sees and that the TUI still answers and exits
//! with the terminal restored.

mod common;

use common::Netns;
use common::tmux::Tmux;
use std::time::{Duration, Instant};

const APPEAR: Duration = Duration::from_secs(15);

fn start(netns: &str) -> Tmux {
    Tmux::start(&format!(
        "{} --netns {netns} --interval 300ms",
        env!("CARGO_BIN_EXE_hopscope")
    ))
}

/// `port 1 or port 2 or …`: cheap to type, slow to optimise (every term is 3 protocols × 2
/// address families).
fn long_filter(terms: usize) -> String {
    (1..=terms)
        .map(|i| format!("port {i}"))
        .collect::<Vec<_>>()
        .join(" or ")
}

#[test]
fn a_long_capture_filter_never_freezes_the_keys() {
    let ns = Netns::new("ftbpf");
    let t = start(&ns.name);
    t.wait("first frame", APPEAR * 2, |s| s.contains("1 Links"));
    t.keys(&["b"]);
    // 60 terms: the optimiser takes ~0.5 s on the whole (seconds on a busy machine), so
    // compiling every prefix on the loop, as before, took minutes to take these keys.
    let f = long_filter(60);
    let t0 = Instant::now();
    t.literal(&f);
    // Every key was answered (the line shows the end of what was typed) long before 149
    // compiles could have run one after another.
    t.wait("the whole filter on the line", APPEAR * 2, |s| {
        s.contains("port 60▏")
    });
    eprintln!("{} keys answered in {:?}", f.len(), t0.elapsed());
    // The verdict comes once typing pauses.
    t.wait("libpcap's verdict", APPEAR * 4, |s| {
        s.contains("✓ libpcap compiles it")
    });
    // A refused one is said too.
    t.literal(" or hostx");
    t.wait("refused", APPEAR * 4, |s| {
        s.contains("✗ bad capture filter")
    });
    // Esc while a check may still run: answered at once; then q quits.
    t.literal("y");
    t.keys(&["Escape"]);
    t.wait("the line closed", APPEAR, |s| {
        !s.contains("capture filter (BPF):")
    });
    t.quit_cleanly();
}

#[test]
fn a_resize_storm_while_the_netns_changes() {
    let ns = Netns::new("ftwinch");
    ns.ip("link set lo up");
    let t = start(&ns.name);
    t.wait("first frame", APPEAR * 2, |s| s.contains("1 Links"));
    let pid = t.command_pid();
    ns.ip("link add hs-w0 type veth peer name hs-w1");
    // 300 resizes (each a SIGWINCH to the TUI) as fast as tmux sends them.
    for i in 0..300u32 {
        let (x, y) = (60 + (i * 7) % 140, 12 + (i * 3) % 40);
        t.tmux(&["resize-window", "-x", &x.to_string(), "-y", &y.to_string()]);
    }
    t.tmux(&["resize-window", "-x", "120", "-y", "30"]);
    // Still alive, drawn for the final size, and still following the netns.
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the TUI died in the storm"
    );
    ns.ip("link add hs-w2 type veth peer name hs-w3");
    t.wait("redrawn at 120x30 with both changes", APPEAR, |s| {
        let lines: Vec<&str> = s.lines().collect();
        lines.len() == 30
            && lines[0].contains(&format!("netns {}", ns.name))
            && s.contains("hs-w0@hs-w1")
            && s.contains("hs-w2@hs-w3")
    });
    t.answers_keys();
    t.quit_cleanly();
}
