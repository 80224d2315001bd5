//! Least privilege at run time (root, docs/security.md): `capture` locks down once its handles
//! and its -w file are open — every thread nobody, no capabilities, no_new_privs, a seccomp
//! filter — and still captures every packet; `--no-sandbox` keeps root; every process is
//! non-dumpable (a same-user reader without CAP_SYS_PTRACE cannot read its /proc files).

mod common;

use common::Netns;
use common::tmux::Tmux;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A netns whose veth hs-s0 (192.0.2.1) reaches 192.0.2.2 in a second netns.
fn veth_netns(tag: &str) -> (Netns, Netns) {
    let ns = Netns::new(tag);
    let peer = Netns::new(&format!("{tag}p"));
    ns.ip("link set lo up");
    ns.ip(&format!(
        "link add hs-s0 type veth peer name hs-s1 netns {}",
        peer.name
    ));
    ns.ip("addr add 192.0.2.1/24 dev hs-s0");
    peer.ip("addr add 192.0.2.2/24 dev hs-s1");
    ns.ip("link set hs-s0 up");
    peer.ip("link set hs-s1 up");
    (ns, peer)
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `hopscope capture` in the background, once it says it captures.
fn capture(ns: &Netns, extra: &[&str], err: &std::path::Path) -> Killed {
    let mut args = vec!["capture", "--netns", &ns.name, "-i", "hs-s0"];
    args.extend_from_slice(extra);
    let child = Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(err).unwrap())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !std::fs::read_to_string(err)
        .unwrap_or_default()
        .contains("capturing on")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "capture did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Killed(child)
}

/// `Key:` lines of /proc/PID/task/TID/status for every thread.
fn threads_status(pid: u32, key: &str) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with(&format!("{key}:")))
                .map(|l| l[key.len() + 1..].trim().to_string())
        })
        .collect()
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn capture_locks_down_every_thread_and_still_counts_every_packet() {
    let (ns, _peer) = veth_netns("sbx");
    let dir = std::env::temp_dir().join(format!("hs-sbx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("out.pcapng");
    let err = dir.join("err");
    let cap = capture(
        &ns,
        &[
            "--decrypt",
            "--print",
            "-w",
            pcap.to_str().unwrap(),
            "-f",
            "icmp",
        ],
        &err,
    );
    let pid = cap.0.id();
    wait_for("sandboxed said", || {
        std::fs::read_to_string(&err)
            .unwrap_or_default()
            .contains("sandboxed: uid 65534 (nobody), no capabilities, no_new_privs, seccomp")
    });
    for (key, want) in [
        ("Uid", "65534\t65534\t65534\t65534"),
        ("CapEff", "0000000000000000"),
        ("CapPrm", "0000000000000000"),
        ("NoNewPrivs", "1"),
        ("Seccomp", "2"),
    ] {
        let got = threads_status(pid, key);
        assert!(got.len() >= 2, "threads: {got:?}");
        assert!(got.iter().all(|v| v == want), "{key}: {got:?}");
    }
    // Locked down, it still captures: 5 echo requests and their replies on hs-s0, each
    // counted and written.
    Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ping", "-c", "5", "-i", "0.2", "-W", "1",
        ])
        .arg("192.0.2.2")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: a signal to our own child.
    unsafe { libc_kill(pid as i32, 2) };
    let mut cap = cap;
    let out = std::mem::replace(&mut cap.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    let err = std::fs::read_to_string(&err).unwrap();
    assert!(out.status.success(), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let requests = stdout
        .lines()
        .filter(|l| l.contains("192.0.2.1 > 192.0.2.2: ICMP echo request"))
        .count();
    assert_eq!(requests, 5, "{stdout}\n{err}");
    assert!(err.contains("hs-s0: 10 packets captured"), "{err}");
    let dump = Command::new("tcpdump")
        .args(["-nr", pcap.to_str().unwrap()])
        .output()
        .unwrap();
    let lines = String::from_utf8_lossy(&dump.stdout);
    assert_eq!(
        lines.lines().filter(|l| l.contains("echo request")).count(),
        5,
        "{lines}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Run as nobody with the capabilities hopscope needs (ambient, as a non-root operator
/// would grant them).
fn as_nobody(cmd: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        "--inh-caps",
        "+net_admin,+net_raw,+sys_admin",
        "--ambient-caps",
        "+net_admin,+net_raw,+sys_admin",
    ])
    .args(cmd);
    c
}

/// The owner of /proc/PID/status: the process's uid while it is dumpable, root once it is
/// not (proc(5)). Observable from outside without ptrace.
fn proc_owner(pid: u32) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/status"))
        .unwrap()
        .uid()
}

#[test]
fn every_process_is_non_dumpable_and_no_sandbox_keeps_root() {
    // The check itself: a dumpable process of nobody owns its /proc files.
    let sleeper = Killed(as_nobody(&["sleep", "30"]).spawn().unwrap());
    wait_for("sleep runs as nobody", || {
        proc_owner(sleeper.0.id()) == 65534
    });

    let (ns, _peer) = veth_netns("sbxn");
    let hs = env!("CARGO_BIN_EXE_hopscope");
    // capture --decrypt as nobody with capabilities: non-dumpable, and locked down as well
    // as a non-root run can be.
    let err = std::env::temp_dir().join(format!("hs-sbxn-{}.err", std::process::id()));
    let child = as_nobody(&[
        hs,
        "capture",
        "--netns",
        &ns.name,
        "-i",
        "hs-s0",
        "--decrypt",
    ])
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&err).unwrap())
    .spawn()
    .unwrap();
    let cap = Killed(child);
    wait_for("locked down", || {
        std::fs::read_to_string(&err)
            .unwrap_or_default()
            .contains("sandboxed: capabilities dropped (this thread), no_new_privs, seccomp")
    });
    // The pid is setpriv's, which exec'ed hopscope.
    assert_eq!(proc_owner(cap.0.id()), 0, "capture --decrypt is dumpable");
    assert!(
        threads_status(cap.0.id(), "Seccomp")
            .iter()
            .all(|s| s == "2")
    );
    drop(cap);

    // --no-sandbox: root stays root, no filter; still non-dumpable (seen as nobody).
    let cap = capture(&ns, &["--no-sandbox"], &err);
    let pid = cap.0.id();
    assert!(
        threads_status(pid, "Uid")
            .iter()
            .all(|u| u.starts_with("0\t"))
    );
    assert!(threads_status(pid, "Seccomp").iter().all(|s| s == "0"));
    assert!(!std::fs::read_to_string(&err).unwrap().contains("sandboxed"));
    drop(cap);
    let _ = std::fs::remove_file(&err);

    // The TUI (it holds the keys for the Packets pane's decryption).
    let t = Tmux::start(&format!(
        "HOME=/nonexistent setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps +net_admin,+net_raw,+sys_admin \
         --ambient-caps +net_admin,+net_raw,+sys_admin {hs} --netns {}",
        ns.name
    ));
    t.wait("first frame", Duration::from_secs(30), |s| {
        s.contains("1 Links")
    });
    assert_eq!(proc_owner(t.command_pid()), 0, "the TUI is dumpable");
    t.quit_cleanly();
}

/// `snapshot` locks down once the node is read, before it prints: caught while it writes a
/// long answer into a pipe nobody reads yet, every thread is nobody with no capabilities,
/// no_new_privs and a seccomp filter; the answer then arrives whole. `--no-sandbox` prints
/// as root, without a filter.
#[test]
fn snapshot_prints_locked_down_and_whole() {
    let ns = Netns::new("sbxs");
    ns.ip("link set lo up");
    ns.ip("link add hs-d0 type veth peer name hs-d1");
    ns.ip("link set hs-d0 up");
    // Some 3000 routes: far more text than a pipe holds, so the writer blocks mid-answer.
    let mut batch = String::new();
    for i in 0..3000u32 {
        batch += &format!(
            "route add 10.{}.{}.0/24 dev hs-d0 table 200\n",
            100 + i / 250,
            i % 250
        );
    }
    ns.ip_batch(&batch);
    for (extra, locked) in [(None, true), (Some("--no-sandbox"), false)] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hopscope"));
        c.args(["snapshot", "--netns", &ns.name]);
        if let Some(e) = extra {
            c.arg(e);
        }
        let child = c.stdout(Stdio::piped()).spawn().unwrap();
        let pid = child.id();
        // The pipe is full while it prints: it waits in write until this test reads.
        wait_for("snapshot blocked in its output", || {
            std::fs::read_to_string(format!("/proc/{pid}/wchan"))
                .is_ok_and(|w| w.contains("pipe_write"))
        });
        let seccomp = threads_status(pid, "Seccomp");
        let uid = threads_status(pid, "Uid");
        let cap = threads_status(pid, "CapEff");
        let nnp = threads_status(pid, "NoNewPrivs");
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{extra:?}: {:?}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("10.111.249.0/24"),
            "{extra:?}: the last route is printed"
        );
        assert!(!seccomp.is_empty());
        for (i, s) in seccomp.iter().enumerate() {
            if locked {
                assert_eq!(s, "2", "thread {i} has a seccomp filter");
                assert!(uid[i].starts_with("65534"), "thread {i}: {}", uid[i]);
                assert_eq!(cap[i], "0000000000000000", "thread {i}");
                assert_eq!(nnp[i], "1", "thread {i}");
            } else {
                assert_eq!(s, "0", "--no-sandbox: no filter on thread {i}");
                assert!(
                    uid[i].starts_with("0\t"),
                    "--no-sandbox keeps root: {}",
                    uid[i]
                );
            }
        }
    }
}

/// `trace` locks down after reading the node and before printing (strace sees the uid
/// change and the filter installed), and its answer is the same as with `--no-sandbox`.
#[test]
fn trace_locks_down_before_printing_and_answers_the_same() {
    let ns = Netns::new("sbxt");
    ns.ip("link set lo up");
    let trace = |extra: &[&str]| {
        let out = Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-e",
                "trace=seccomp,setresuid",
                "-o",
                "/dev/stderr",
            ])
            .arg(env!("CARGO_BIN_EXE_hopscope"))
            .args(["trace", "--netns", &ns.name, "127.0.0.1", "127.0.0.1"])
            .args(extra)
            .output()
            .expect("strace runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, text, calls) = trace(&[]);
    assert!(calls.contains("setresuid(65534, 65534, 65534)"), "{calls}");
    assert!(calls.contains("SECCOMP_SET_MODE_FILTER"), "{calls}");
    let (free_code, free_text, free_calls) = trace(&["--no-sandbox"]);
    assert!(
        !free_calls.contains("SECCOMP_SET_MODE_FILTER"),
        "{free_calls}"
    );
    assert_eq!(code, free_code);
    assert_eq!(text, free_text);
    assert!(text.contains("127.0.0.1"), "{text}");
}
