//! What scripts and terminals rely on in hopscope's output: control characters in names are
//! escaped, a closed pipe ends a command quietly (and at once), piped capture lines arrive as
//! they happen, tcpdump's habits work, exit statuses say how a trace ended, and an answer
//! computed on partial state says so. On the host kernel, in throwaway netns (root).

mod common;
use common::{Netns, require_root};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hopscope");
/// An interface name that clears the screen and sets the window title when printed raw.
const EVIL: &str = "e\x1b[2J\x1b]0;x\x07";

/// A netns whose veth end is named EVIL (10.77.0.1/24), its peer p0.
fn evil_node() -> Netns {
    let ns = Netns::new("evil");
    let run = |args: &[&str]| {
        let mut full = vec!["-n", &ns.name];
        full.extend_from_slice(args);
        common::run("ip", &full);
    };
    run(&["link", "add", EVIL, "type", "veth", "peer", "name", "p0"]);
    run(&["link", "set", EVIL, "up"]);
    run(&["link", "set", "p0", "up"]);
    run(&["addr", "add", "10.77.0.1/24", "dev", EVIL]);
    // A neighbour that never answers, known without ARP: pings to it leave on EVIL at once.
    run(&[
        "neigh",
        "add",
        "10.77.0.2",
        "lladdr",
        "02:00:00:00:00:02",
        "dev",
        EVIL,
        "nud",
        "permanent",
    ]);
    ns
}

fn in_netns(ns: &Netns, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &ns.name, BIN]).args(args);
    c.stdin(Stdio::null());
    c
}

#[track_caller]
fn no_raw_controls(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(
        !text.contains('\x1b') && !text.contains('\x07'),
        "{what} prints control characters raw: {text:?}"
    );
    assert!(text.contains("e\\x1b[2J\\x1b]0;x\\x07"), "{what}: {text}");
}

#[test]
fn control_characters_in_names_are_escaped_everywhere() {
    require_root();
    let ns = evil_node();
    let out = in_netns(&ns, &["snapshot"]).output().unwrap();
    no_raw_controls("snapshot", &out.stdout);
    let out = in_netns(&ns, &["trace", "10.77.0.1", "10.77.0.2"])
        .output()
        .unwrap();
    no_raw_controls("trace", &out.stdout);
    // An error message listing the interfaces.
    let out = in_netns(&ns, &["trace", "10.77.0.1", "10.77.0.2", "--iif", "nope"])
        .output()
        .unwrap();
    no_raw_controls("an error", &out.stderr);
    // Capture: the header (stderr) and the packet lines (stdout).
    let (cap, err) = capturing(
        in_netns(&ns, &["capture", "-i", EVIL, "-c", "1", "icmp"]),
        "evil",
    );
    let _ = Command::new("ip")
        .args(["netns", "exec", &ns.name, "ping", "-c", "3", "-i", "0.2"])
        .args(["-W", "1", "10.77.0.2"])
        .output();
    let out = cap.wait_with_output().unwrap();
    no_raw_controls("capture lines", &out.stdout);
    no_raw_controls("capture's header", &said(&err));
    // JSON keeps the name exactly, escaped the JSON way.
    let out = in_netns(&ns, &["snapshot", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == EVIL)
    );
}

/// Spawn a capture with stdout piped and stderr to a file; return once it says it captures
/// (a fixed delay missed the first packets on a slow, busy machine), with that file.
fn capturing(mut c: Command, tag: &str) -> (std::process::Child, std::path::PathBuf) {
    let err = std::env::temp_dir().join(format!("hs-cli-{}-{tag}.err", std::process::id()));
    let child = c
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !std::fs::read_to_string(&err).is_ok_and(|e| e.contains("capturing on")) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{tag}: the capture never started: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, err)
}

/// What a capture started by `capturing` said on stderr (the file is removed).
fn said(err: &std::path::Path) -> Vec<u8> {
    let bytes = std::fs::read(err).unwrap_or_default();
    let _ = std::fs::remove_file(err);
    bytes
}

/// Start `args` with stdout piped, read `lines` lines, close the pipe: the command must end
/// within `limit` with no panic, and without an error for the closed pipe.
fn reads_then_closes(mut c: Command, lines: usize, limit: Duration) -> std::process::ExitStatus {
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..lines {
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
        }
        tx.send(out).ok();
    });
    let Ok(out) = rx.recv_timeout(Duration::from_secs(20)) else {
        child.kill().ok();
        panic!("no {lines} line(s) within 20 s");
    };
    drop(out);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < limit,
            "still running {limit:?} after its reader left"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.to_lowercase().contains("broken pipe"), "{err}");
    status
}

#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    require_root();
    for shell in ["zsh", "bash", "fish"] {
        let mut c = Command::new(BIN);
        c.args(["generate", "completions", shell]);
        let s = reads_then_closes(c, 1, Duration::from_secs(10));
        assert!(s.success(), "completions {shell}: {s}");
    }
    let mut c = Command::new(BIN);
    c.args(["generate", "man"]);
    assert!(reads_then_closes(c, 1, Duration::from_secs(10)).success());
    let ns = evil_node();
    assert!(reads_then_closes(in_netns(&ns, &["snapshot"]), 1, Duration::from_secs(10)).success());
    // `capture | head -1` on an idle interface: ends without waiting for another packet.
    let mut c = in_netns(&ns, &["capture", "-i", "p0", "icmp"]);
    c.stdin(Stdio::null());
    // A ping every 0.3 s until it ends: however long the capture takes to start, one comes.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pinger = std::thread::spawn({
        let (name, done) = (ns.name.clone(), done.clone());
        move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = Command::new("ip")
                    .args(["netns", "exec", &name, "ping", "-c", "1", "-W", "1"])
                    .arg("10.77.0.2")
                    .output();
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    });
    let s = reads_then_closes(c, 1, Duration::from_secs(30));
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(s.success(), "capture | head -1: {s}");
    pinger.join().unwrap();
}

#[test]
fn piped_capture_lines_arrive_as_they_happen() {
    require_root();
    let ns = evil_node();
    for json in [false, true] {
        let mut args = vec!["capture", "-i", "p0", "-c", "3", "icmp"];
        if json {
            args.push("--json");
        }
        let (mut child, err) = capturing(in_netns(&ns, &args), "piped");
        let _ = std::fs::remove_file(err);
        // One ping now, the next two 3 s later: the first line must not wait for them.
        let ping = |n: &str| {
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns.name,
                    "ping",
                    "-c",
                    n,
                    "-W",
                    "1",
                    "10.77.0.2",
                ])
                .output()
                .unwrap()
        };
        let sent = Instant::now();
        ping("1");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
            tx.send(l).unwrap();
            out
        });
        let line = rx.recv_timeout(Duration::from_secs(2)).unwrap_or_else(|_| {
            panic!("json={json}: no line 2 s after the packet (block-buffered?)")
        });
        assert!(sent.elapsed() < Duration::from_secs(2));
        if json {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["schema"], "capture");
            assert_eq!(v["type"], "packet");
        } else {
            assert!(line.contains("ICMP echo request"), "{line}");
        }
        ping("2");
        drop(reader.join().unwrap());
        child.wait().unwrap();
    }
}

#[test]
fn write_to_a_full_disk_names_the_file() {
    require_root();
    let ns = evil_node();
    let (child, err_file) = capturing(
        in_netns(&ns, &["capture", "-i", "p0", "-c", "2", "-w", "/dev/full"]),
        "full",
    );
    let _ = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "1",
        ])
        .arg("10.77.0.2")
        .output();
    let out = child.wait_with_output().unwrap();
    let err = said(&err_file);
    let err = String::from_utf8_lossy(&err);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("writing /dev/full"), "{err}");
    // As tcpdump -w: the packets went to the file, not to stdout.
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn tcpdump_habits_work() {
    require_root();
    let ns = evil_node();
    // -nn, the filter as trailing words, -c.
    let (child, err_file) = capturing(
        in_netns(
            &ns,
            &[
                "capture", "-nn", "-i", "p0", "-c", "1", "icmp", "and", "not", "tcp",
            ],
        ),
        "habits",
    );
    let _ = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "1",
        ])
        .arg("10.77.0.2")
        .output();
    let out = child.wait_with_output().unwrap();
    let err = said(&err_file);
    let err = String::from_utf8_lossy(&err);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("filter \"icmp and not tcp\""), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "-c 1: {text}");
    assert!(text.contains("ICMP echo request"), "{text}");
}

#[test]
fn trace_exit_status_says_how_it_ended() {
    require_root();
    let ns = evil_node();
    // Stops: a routing loop back over the veth pair.
    let out = in_netns(&ns, &["trace", "10.77.0.1", "10.77.0.2"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("=> STOPS"));
    // Delivered: to the node's own address.
    let out = in_netns(&ns, &["trace", "10.77.0.1", "10.77.0.1", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["end"]["end"], "delivered", "{v:#}");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(v["schema"], "trace");
    assert_eq!(v["schema_version"], 1);
    // A usage error.
    let out = Command::new(BIN)
        .args(["trace", "10.77.0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_trace_without_net_admin_says_it_may_be_wrong() {
    require_root();
    let ns = evil_node();
    // The trace as root without CAP_NET_ADMIN: the kernel hides the XFRM state from it.
    let trace = |extra: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "setpriv"])
            .args(["--bounding-set=-net_admin", "--inh-caps=-net_admin", BIN])
            .args(["trace", "10.77.0.1", "10.77.0.1"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = trace(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("!! this answer may be wrong"), "{text}");
    assert!(text.contains("CAP_NET_ADMIN missing"), "{text}");
    let out = trace(&["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inc = v["incomplete"].to_string();
    assert!(inc.contains("CAP_NET_ADMIN"), "{v:#}");
    // As root the same trace has nothing to warn about.
    let out = in_netns(&ns, &["trace", "10.77.0.1", "10.77.0.1", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["incomplete"], serde_json::json!([]), "{v:#}");
}
