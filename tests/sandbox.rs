//! Least privilege at run time (root, docs/security.md): `capture` locks down once its handles
//! and its -w file are open — every thread nobody, no capabilities, no_new_privs, a seccomp
//! filter — and still captures every packet; `--no-sandbox` keeps root; every process is
//! non-dumpable (a same-user reader without CAP_SYS_PTRACE cannot read its /proc files).

mod common;
mod kube_support;

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

/// Three pings from `ns` to its peer (192.0.2.2).
fn ping3(ns: &Netns) -> std::process::Output {
    Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "1",
        ])
        .arg("192.0.2.2")
        .output()
        .unwrap()
}

/// The child processes of `pid`, with their names.
fn children(pid: u32) -> Vec<(u32, String)> {
    let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    kids.split_whitespace()
        .map(|k| {
            let comm = std::fs::read_to_string(format!("/proc/{k}/comm")).unwrap();
            (k.parse().unwrap(), comm.trim().to_string())
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
    // No wait: the capture reads what the kernel queued before it stops.
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

/// `trace --follow` locks down once its captures are open, for the whole following (every
/// thread nobody, no capabilities, no_new_privs, seccomp), re-reads the node's counters
/// through the helper started before, and still sees every ping; `--no-sandbox` follows as
/// root without a filter.
#[test]
fn trace_follow_locks_down_while_it_follows_and_still_sees_every_ping() {
    let (ns, _peer) = veth_netns("sbxf");
    let err = std::env::temp_dir().join(format!("hs-sbxf-{}.err", std::process::id()));
    for (extra, locked) in [(None, true), (Some("--no-sandbox"), false)] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hopscope"));
        c.args(["trace", "192.0.2.1", "192.0.2.2", "--netns", &ns.name]);
        c.args(["--follow", "8", "--json", "--no-kube"]).args(extra);
        let child = c
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let pid = child.id();
        let said = |what: &str| {
            std::fs::read_to_string(&err)
                .unwrap_or_default()
                .contains(what)
        };
        wait_for("following said", || said("following for"));
        if locked {
            wait_for("sandboxed said", || {
                said("sandboxed: uid 65534 (nobody), no capabilities, no_new_privs, seccomp")
            });
        }
        let status: Vec<(&str, Vec<String>)> = ["Uid", "CapEff", "NoNewPrivs", "Seccomp"]
            .into_iter()
            .map(|k| (k, threads_status(pid, k)))
            .collect();
        let ping = ping3(&ns);
        assert!(ping.status.success(), "the path works");
        let out = child.wait_with_output().unwrap();
        let said_all = std::fs::read_to_string(&err).unwrap_or_default();
        assert!(
            out.status.success(),
            "{extra:?}: {:?} {said_all}",
            out.status
        );
        let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let hops = t["follow"]["hops"].as_array().unwrap();
        let on_s0: Vec<u64> = hops
            .iter()
            .filter(|h| h["dev"] == "hs-s0")
            .map(|h| h["seen"].as_u64().unwrap())
            .collect();
        assert_eq!(on_s0, [3], "{extra:?}: every ping seen on hs-s0: {t:#}");
        for (key, values) in status {
            assert!(values.len() >= 2, "{key}: {values:?} (capture threads)");
            let want = match (locked, key) {
                (true, "Uid") => "65534\t65534\t65534\t65534",
                (true, "CapEff") => "0000000000000000",
                (true, _) => "1",
                (false, "Uid") => "0\t0\t0\t0",
                (false, "Seccomp") => "0",
                (false, _) => continue,
            };
            let want = if key == "Seccomp" && locked {
                "2"
            } else {
                want
            };
            assert!(
                values.iter().all(|v| v == want),
                "{extra:?} {key}: {values:?}"
            );
        }
    }
    let _ = std::fs::remove_file(&err);
}

/// The TUI keeps only the capabilities its own reads use (CAP_DAC_READ_SEARCH, NET_ADMIN,
/// NET_RAW, SYS_PTRACE, SYS_ADMIN: 0x283004) in every thread, sets no_new_privs and its two
/// seccomp filters (the allow-list and clone3's ENOSYS). The tools a `:trace` runs are run
/// by its privileged helper (`hs-broker`, its child), which keeps CAP_SYS_CHROOT too
/// (0x2c3004, also the bounding set of both) and one filter: a stand-in
/// `iptables-legacy-save` finds itself the broker's child with those capabilities and is
/// refused a syscall none of them makes (unshare). With `--no-sandbox` there is no broker,
/// the TUI and the tool keep everything and unshare works.
#[test]
fn the_tui_keeps_only_what_it_uses_and_what_it_runs_inherits_it() {
    let ns = Netns::new("sbxu");
    ns.ip("link set lo up");
    let dir = std::env::temp_dir().join(format!("hs-sbxu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let probe = dir.join("probe");
    let tool = dir.join("iptables-legacy-save");
    std::fs::write(
        &tool,
        format!(
            "#!/bin/sh\n{{ grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; echo PPid: $PPID; \
             if unshare -m true 2>/dev/null; then echo unshare=allowed; else echo unshare=refused; fi; }} > {}\n",
            probe.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hs = env!("CARGO_BIN_EXE_hopscope");
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
    for (extra, locked) in [("", true), (" --no-sandbox", false)] {
        let _ = std::fs::remove_file(&probe);
        let t = Tmux::start(&format!(
            "PATH={path} {hs} --no-kube --netns {}{extra}",
            ns.name
        ));
        t.wait("first frame", Duration::from_secs(30), |s| {
            s.contains("1 Links")
        });
        let pid = t.command_pid();
        let status: Vec<(&str, Vec<String>)> = [
            "CapEff",
            "CapBnd",
            "NoNewPrivs",
            "Seccomp",
            "Seccomp_filters",
        ]
        .into_iter()
        .map(|k| (k, threads_status(pid, k)))
        .collect();
        let broker = children(pid);
        t.keys(&[":"]);
        t.literal("trace 127.0.0.1 127.0.0.2");
        t.keys(&["Enter"]);
        wait_for("the :trace ran iptables-legacy-save", || {
            std::fs::read_to_string(&probe).is_ok_and(|p| p.contains("unshare="))
        });
        let seen = std::fs::read_to_string(&probe).unwrap();
        t.quit_cleanly();
        let field = |k: &str| {
            seen.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}:")))
                .unwrap_or_else(|| panic!("{k} in {seen}"))
                .trim()
                .to_string()
        };
        for (key, values) in status {
            assert!(values.len() >= 2, "{key}: {values:?} (the TUI's threads)");
            let want = match (locked, key) {
                (true, "CapEff") => "0000000000283004",
                (true, "CapBnd") => "00000000002c3004",
                (true, "NoNewPrivs") => "1",
                (true, _) => "2",
                (false, "Seccomp_filters") => "0",
                (false, "Seccomp" | "NoNewPrivs") => "0",
                (false, _) => continue,
            };
            assert!(
                values.iter().all(|v| v == want),
                "{extra:?} {key}: {values:?}"
            );
        }
        if locked {
            let [(broker, comm)] = broker.as_slice() else {
                panic!("one child, the broker: {broker:?}")
            };
            assert_eq!(comm, "hs-broker");
            assert_eq!(
                field("PPid"),
                broker.to_string(),
                "the broker runs the tool"
            );
            let broker_status = |k: &str| threads_status(*broker, k);
            assert_eq!(broker_status("CapEff"), ["00000000002c3004"]);
            assert_eq!(broker_status("Seccomp_filters"), ["1"]);
            assert_eq!(broker_status("NoNewPrivs"), ["1"]);
            assert_eq!(
                field("CapBnd"),
                "00000000002c3004",
                "the tool's bounding set"
            );
            assert_eq!(field("CapEff"), "00000000002c3004", "the tool runs as root");
            assert_eq!(field("Seccomp"), "2", "the tool inherits the filter");
            assert!(seen.contains("unshare=refused"), "{seen}");
        } else {
            assert_eq!(broker, [], "no broker without the sandbox");
            assert_eq!(field("PPid"), pid.to_string(), "the TUI runs the tool");
            assert_eq!(field("Seccomp"), "0", "{seen}");
            assert!(seen.contains("unshare=allowed"), "{seen}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TUI session under its allow-list does all it did before: the kube names watch (TCP to
/// the API) names an address, `:netns` switches to another netns and back (setns into a
/// netns), `:capture` counts the pings, `:trace` answers, a resize redraws, and `q` exits 0
/// with the terminal restored. Every thread holds both filters all along.
#[test]
fn the_tui_under_its_allow_list_still_names_switches_captures_and_traces() {
    let fake = kube_support::FakeApi::start();
    let (ns, peer) = veth_netns("sbxa");
    // The seed cluster's pod default/net has this address.
    ns.ip("addr add 10.0.1.52/32 dev hs-s0");
    let t = Tmux::start(&format!(
        "{} --kubeconfig {} --netns {}",
        env!("CARGO_BIN_EXE_hopscope"),
        fake.kubeconfig().display(),
        ns.name
    ));
    let long = Duration::from_secs(30);
    t.wait("first frame", long, |s| s.contains("1 Links"));
    let pid = t.command_pid();
    t.wait("the pod's name from the API", long, |s| {
        s.contains("default/net")
    });
    assert!(
        fake.log().iter().any(|l| l.starts_with("GET /api/v1/pods")),
        "{:?}",
        fake.log()
    );

    t.keys(&[":"]);
    t.literal(&format!("netns {}", peer.name));
    t.keys(&["Enter", "1"]);
    t.wait("the peer's links", long, |s| {
        s.contains(&format!("netns {}", peer.name)) && s.contains("hs-s1")
    });
    t.keys(&[":"]);
    t.literal(&format!("netns {}", ns.name));
    t.keys(&["Enter"]);
    t.wait("back in the first netns", long, |s| {
        s.contains(&format!("netns {} ", ns.name)) && s.contains("hs-s0")
    });

    t.keys(&[":"]);
    t.literal("capture hs-s0");
    t.keys(&["Enter"]);
    t.wait("capturing", long, |s| s.contains("capture 1 if"));
    let ping = ping3(&ns);
    assert!(ping.status.success(), "{ping:?}");
    t.keys(&["7"]);
    // 3 echo requests and 3 replies (an ARP exchange may add more).
    t.wait("the pings counted", long, |s| {
        s.split('│').any(|tab| {
            tab.trim()
                .strip_prefix("7 Packets ")
                .and_then(|n| n.trim().parse::<u32>().ok())
                .is_some_and(|n| n >= 6)
        })
    });

    t.keys(&[":"]);
    t.literal("trace 192.0.2.1 192.0.2.2");
    t.keys(&["Enter"]);
    t.wait("the trace's answer", long, |s| {
        s.contains(&format!("leaves {} on hs-s0", ns.name))
    });

    t.tmux(&["resize-window", "-x", "100", "-y", "30"]);
    t.answers_keys();
    t.tmux(&["resize-window", "-x", "160", "-y", "45"]);
    t.answers_keys();

    for key in ["Seccomp", "Seccomp_filters", "NoNewPrivs"] {
        let values = threads_status(pid, key);
        assert!(values.len() >= 4, "{key}: {values:?} (the TUI's threads)");
        let want = if key == "NoNewPrivs" { "1" } else { "2" };
        assert!(values.iter().all(|v| v == want), "{key}: {values:?}");
    }
    t.quit_cleanly();
}
