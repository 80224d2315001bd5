//! Faults around `capture -w` (root, tmux, tcpdump): a signal mid-capture (SIGTERM, SIGHUP,
//! SIGINT) writes out everything captured and says the totals — the file reads back whole
//! with the very count hopscope said, and the terminal it ran on is sane; a disk that fills
//! up while writing is a clear error naming the file, with a non-zero exit, not a silent loss;
//! the only interface deleted mid-capture is said, every packet before it is counted and
//! written, and the exit status is an error.

mod common;

use common::tmux::{Tmux, assert_sane};
use common::{Netns, require_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hopscope");

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hs-fcap-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn wait_for(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ping(ns: &Netns, count: u32) {
    let c = count.to_string();
    let out = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ping", "-q", "-c", &c, "-i", "0.05",
        ])
        .arg("127.0.0.1")
        .output()
        .unwrap();
    assert!(out.status.success(), "ping: {out:?}");
}

/// The exit status of `hs` once it exits by itself; killed, and the test fails with `why`,
/// if it is still running after `limit`.
fn exit_within(
    hs: &mut std::process::Child,
    limit: Duration,
    why: impl Fn() -> String,
) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = hs.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > limit {
            let _ = hs.kill();
            panic!("{}", why());
        }
        std::thread::sleep(Duration::from_millis(20)); // the poll interval
    }
}

/// How many packets tcpdump reads back from `file`, and whether it complained.
fn tcpdump_count(file: &Path) -> (usize, String) {
    let out = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(file)
        .output()
        .expect("tcpdump");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (String::from_utf8_lossy(&out.stdout).lines().count(), err)
}

/// The `IFACE: N packets` count of hopscope's totals line.
fn said_count(err: &str, iface: &str) -> usize {
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{iface}:")) && l.contains("captured"))
        .unwrap_or_else(|| panic!("no totals line for {iface} in:\n{err}"));
    line.split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

#[test]
fn a_signal_mid_capture_writes_out_every_packet_and_leaves_the_terminal_sane() {
    require_root();
    let ns = Netns::new("fcap");
    ns.ip("link set lo up");
    let dir = scratch("sig");
    for sig in ["TERM", "HUP", "INT"] {
        let file = dir.join(format!("{sig}.pcapng"));
        let err = dir.join(format!("{sig}.err"));
        let t = Tmux::start(&format!(
            "{BIN} capture --netns {} -i lo -f icmp -w {} 2>{}",
            ns.name,
            file.display(),
            err.display()
        ));
        let said = || std::fs::read_to_string(&err).unwrap_or_default();
        wait_for("capturing", Duration::from_secs(30), || {
            said().contains("capturing on")
        });
        ping(&ns, 20);
        let pid = t.command_pid();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let (code, stty) = t.after_exit();
        let said = said();
        assert_eq!(code, 0, "SIG{sig}: {said}");
        assert_sane(&stty);
        let n = said_count(&said, "lo");
        assert_eq!(
            n, 40,
            "SIG{sig}: 20 echo requests and 20 replies on lo: {said}"
        );
        let (read, complaint) = tcpdump_count(&file);
        assert_eq!(
            read, n,
            "SIG{sig}: the file holds what was said: {complaint}"
        );
        assert!(!complaint.contains("truncated"), "SIG{sig}: {complaint}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A tmpfs of 64 KiB under the `-w` file, and far more packets than fit: hopscope stops with
/// an error that names the file and the cause, exits non-zero, and what it wrote before is
/// a readable capture.
#[test]
fn a_full_disk_while_writing_is_an_error_naming_the_file() {
    require_root();
    let ns = Netns::new("fdisk");
    ns.ip("link set lo up");
    let dir = scratch("full");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "hs-full"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _unmount = Unmount(dir.clone());
    let file = dir.join("full.pcapng");
    let mut hs = Command::new(BIN)
        .args([
            "capture", "--netns", &ns.name, "-i", "lo", "-f", "icmp", "-w",
        ])
        .arg(&file)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // 1400-byte pings: 64 KiB hold fewer than 50 of them.
    let pinger = {
        let name = ns.name.clone();
        std::thread::spawn(move || {
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", &name, "ping", "-q", "-c", "400", "-i", "0.01",
                ])
                .args(["-s", "1400", "127.0.0.1"])
                .output();
        })
    };
    let status = exit_within(&mut hs, Duration::from_secs(60), || {
        "capture went on writing to a full disk for a minute".into()
    });
    pinger.join().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(hs.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        !status.success(),
        "exit status after a full disk: {status:?}\n{err}"
    );
    assert_ne!(status.code(), Some(101), "a panic: {err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    let (read, _) = tcpdump_count(&file);
    assert!(
        read > 0,
        "what was written before the disk filled is readable"
    );
}

/// The only interface captured on is deleted mid-capture: hopscope says it is gone and that
/// none is left, counts and writes every packet it saw before, and exits non-zero (a script
/// must not take the capture as having run its course).
#[test]
fn the_only_interface_deleted_mid_capture_is_an_error_after_every_packet_is_counted() {
    require_root();
    let ns = Netns::new("fgone");
    ns.ip("link add vx type veth peer name vy");
    ns.ip("link set vx up");
    ns.ip("link set vy up");
    ns.ip("addr add 192.0.2.1/24 dev vx");
    // A neighbour entry: the echo requests leave vx at once, with no ARP before them.
    ns.ip("neigh add 192.0.2.2 lladdr 02:00:00:00:00:02 dev vx");
    let dir = scratch("gone");
    let file = dir.join("gone.pcapng");
    let err_file = dir.join("gone.err");
    let mut hs = Command::new(BIN)
        .args([
            "capture", "--netns", &ns.name, "-i", "vx", "-f", "icmp", "-w",
        ])
        .arg(&file)
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    let err = || std::fs::read_to_string(&err_file).unwrap_or_default();
    wait_for("capturing on vx", Duration::from_secs(30), || {
        err().contains("capturing on")
    });
    // Unanswered (no one has 192.0.2.2): ping's own status is not the point.
    let _ = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ping", "-q", "-c", "5", "-i", "0.05",
        ])
        .args(["-W", "0.1", "192.0.2.2"])
        .output()
        .unwrap();
    ns.ip("link del vx");
    let status = exit_within(&mut hs, Duration::from_secs(30), || {
        format!("capture went on with its only interface gone:\n{}", err())
    });
    let err = err();
    assert!(!status.success(), "exit status: {status:?}\n{err}");
    assert_ne!(status.code(), Some(101), "a panic: {err}");
    assert!(
        err.contains("vx gone") && err.contains("no interface is left to capture on"),
        "{err}"
    );
    assert!(
        err.contains("every interface captured on is gone (vx)"),
        "{err}"
    );
    assert_eq!(said_count(&err, "vx"), 5, "every request counted: {err}");
    let (read, complaint) = tcpdump_count(&file);
    assert_eq!(read, 5, "every request written: {complaint}");
    std::fs::remove_dir_all(&dir).ok();
}
