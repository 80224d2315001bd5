//! Faults around the netns a run reads (root, tmux): a file that is no netns is refused at once
//! by the CLI and by the TUI's `:netns` (it used to hang on "reading …"); the netns the TUI
//! follows is deleted under it: said on screen, and let go (no thread stays in it, so the
//! kernel can free it), while the TUI goes on answering.

mod common;

use common::Netns;
use common::tmux::Tmux;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

const APPEAR: Duration = Duration::from_secs(15);

fn start(netns: &str) -> Tmux {
    Tmux::start(&format!(
        "{} --netns {netns} --interval 300ms",
        env!("CARGO_BIN_EXE_hopscope")
    ))
}

#[test]
fn a_file_that_is_no_netns_is_refused_by_the_cli_and_the_tui() {
    let out = common::hopscope(&["snapshot", "--netns", "/etc/passwd"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/etc/passwd is not a network namespace"),
        "{err}"
    );

    let ns = Netns::new("fnsbad");
    let t = start(&ns.name);
    t.wait("first frame", APPEAR * 2, |s| s.contains("1 Links"));
    t.keys(&[":"]);
    t.literal("netns /etc/passwd");
    t.keys(&["Enter"]);
    t.wait("refused at once", APPEAR, |s| {
        s.contains("/etc/passwd is not a network namespace")
            && s.contains(&format!("netns {}", ns.name))
    });
    // Still following the first netns, still answering keys.
    ns.ip("link add hs-f0 type veth peer name hs-f1");
    t.wait("the netns still followed", APPEAR, |s| s.contains("hs-f0"));
    t.quit_cleanly();
}

/// Threads of `pid` whose netns is the inode `ino`.
fn threads_in(pid: u32, ino: u64) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter(|t| {
                    std::fs::metadata(t.path().join("ns/net")).is_ok_and(|m| m.ino() == ino)
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn the_followed_netns_deleted_is_said_and_let_go() {
    let ns = Netns::new("fnsdel");
    ns.ip("link add hs-g0 type veth peer name hs-g1");
    let ino = std::fs::metadata(format!("/run/netns/{}", ns.name))
        .unwrap()
        .ino();
    let t = start(&ns.name);
    t.wait("first frame", APPEAR * 2, |s| s.contains("hs-g0"));
    let pid = t.command_pid();
    assert!(threads_in(pid, ino) > 0, "the reader threads are in it");

    common::run("ip", &["netns", "del", &ns.name]);
    t.wait("gone, said in the header", APPEAR, |s| {
        s.contains(&format!(
            "⚠ netns GONE: /run/netns/{} was deleted; what is shown is its last state",
            ns.name
        ))
    });
    // Its last state stays on screen.
    assert!(t.screen().contains("hs-g0"));
    // Let go: no thread is left inside it.
    let t0 = Instant::now();
    while threads_in(pid, ino) > 0 {
        assert!(t0.elapsed() < APPEAR, "threads still in the deleted netns");
        std::thread::sleep(Duration::from_millis(50));
    }
    t.answers_keys();
    t.quit_cleanly();
}
