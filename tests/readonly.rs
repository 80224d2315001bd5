//! Read-only, proved by an observer (root, strace): snapshot, trace, capture and the TUI run
//! under `strace -f`, and the test fails on any netlink request that is not a GET/dump (by
//! each socket's protocol: rtnetlink, XFRM, netfilter, sock_diag, generic), any write-open
//! of /proc or /sys (a sysctl), any iptables setsockopt that replaces rules, and any program
//! run other than a rules *lister* (iptables-save and friends).

mod common;

use common::Netns;
use common::tmux::Tmux;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const HS: &str = env!("CARGO_BIN_EXE_hopscope");
const TRACED: &str = "trace=socket,sendto,sendmsg,open,openat,setsockopt,execve";

fn trace_file(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("hs-ro-{tag}-{}.strace", std::process::id()))
}

/// `strace -f` in front of a hopscope command line.
fn strace_cmd(out: &Path) -> Vec<String> {
    ["strace", "-f", "-qq", "-e", TRACED, "-o"]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
}

/// A netlink message type that only reads, for the socket's protocol.
fn is_read(protocol: &str, t: u32) -> bool {
    match protocol {
        // RTM_NEW*/DEL*/GET*/SET* come in fours from 16: GET is base + 2.
        "NETLINK_ROUTE" => t >= 16 && t % 4 == 2,
        // XFRM_MSG_GETSA, GETPOLICY, GETAE, GETSADINFO, GETSPDINFO, GETDEFAULT.
        "NETLINK_XFRM" => matches!(t, 0x12 | 0x15 | 0x1f | 0x23 | 0x25 | 0x28),
        // subsystem << 8 | message: ctnetlink's GET, GET_STATS(_CPU), GET_DYING/UNCONFIRMED
        // (not GET_CTRZERO); nftables' GET* messages.
        "NETLINK_NETFILTER" => match (t >> 8, t & 0xff) {
            (1, m) => matches!(m, 1 | 4 | 5 | 6 | 7),
            (10, m) => matches!(m, 1 | 4 | 7 | 10 | 13 | 16 | 19 | 23),
            _ => false,
        },
        "NETLINK_SOCK_DIAG" => t == 20,
        "NETLINK_GENERIC" => t == 16,
        _ => false,
    }
}

/// What in an strace log changed (or could have changed) the node.
fn violations(log: &str) -> Vec<String> {
    let mut protocol: HashMap<String, String> = HashMap::new();
    let mut bad = Vec::new();
    for line in log.lines() {
        let call = line.split_once(' ').map_or(line, |(_, c)| c.trim_start());
        if call.starts_with("socket(AF_NETLINK") {
            // socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE) = 4
            let proto = call.split(", ").nth(2).and_then(|p| p.split(')').next());
            let fd = call.rsplit("= ").next().map(str::trim);
            if let (Some(p), Some(fd)) = (proto, fd) {
                protocol.insert(fd.to_string(), p.to_string());
            }
        } else if call.starts_with("sendto(") || call.starts_with("sendmsg(") {
            let fd = call
                .split_once('(')
                .and_then(|(_, r)| r.split([',', '<']).next())
                .unwrap_or("");
            let Some(p) = protocol.get(fd) else {
                continue; // not a netlink socket of ours (e.g. the names watch's TLS)
            };
            for ty in call.split("nlmsg_type=").skip(1) {
                let tok = ty.split([',', ' ']).next().unwrap_or("");
                let t = tok
                    .strip_prefix("0x")
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| tok.parse().ok());
                match t {
                    Some(t) if is_read(p, t) => {}
                    _ => bad.push(format!("{p} request type {tok}: {line}")),
                }
            }
        } else if call.starts_with("open") {
            let writes = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
                .iter()
                .any(|f| call.contains(f));
            if writes && (call.contains("\"/proc/") || call.contains("\"/sys/")) {
                bad.push(format!("write-open of a kernel setting: {line}"));
            }
        } else if call.starts_with("setsockopt(") {
            if ["_SO_SET_REPLACE", "_SO_SET_ADD_COUNTERS", "EBT_SO_SET"]
                .iter()
                .any(|o| call.contains(o))
            {
                bad.push(format!("netfilter change: {line}"));
            }
        } else if call.starts_with("execve(\"") && !call.contains("= -1") {
            let prog = call["execve(\"".len()..].split('"').next().unwrap_or("");
            let name = prog.rsplit('/').next().unwrap_or(prog);
            let argv: Vec<&str> = call
                .split_once(", [")
                .and_then(|(_, rest)| rest.split_once(']'))
                .map(|(a, _)| a.split(", ").map(|w| w.trim_matches('"')).collect())
                .unwrap_or_default();
            if prog != HS && !name.ends_with("-save") && !is_lister(name, &argv) {
                bad.push(format!("ran {prog}: {line}"));
            }
        }
    }
    bad
}

/// Run hopscope ARGS under strace; its log must show no change to the node.
fn assert_read_only(tag: &str, args: &[&str]) -> String {
    let out = trace_file(tag);
    let cmd = strace_cmd(&out);
    let r = Command::new(&cmd[0])
        .args(&cmd[1..])
        .arg(HS)
        .args(args)
        .output()
        .expect("strace (Debian package strace)");
    let log = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    assert!(
        r.status.success(),
        "hopscope {args:?}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let bad = violations(&log);
    assert!(
        bad.is_empty(),
        "hopscope {args:?} changed the node:\n{bad:#?}"
    );
    // The observer saw the requests at all (a log without them proves nothing).
    assert!(
        log.contains("nlmsg_type="),
        "no netlink request seen:\n{log}"
    );
    log
}

/// A node with something of everything: veths across two netns, a route in table 200, a
/// rule, an XFRM policy.
fn node() -> (Netns, Netns) {
    let a = Netns::new("ro");
    let b = Netns::new("rop");
    a.ip("link set lo up");
    a.ip(&format!(
        "link add hs-r0 type veth peer name hs-r1 netns {}",
        b.name
    ));
    a.ip("addr add 192.0.2.1/24 dev hs-r0");
    b.ip("addr add 192.0.2.2/24 dev hs-r1");
    a.ip("link set hs-r0 up");
    b.ip("link set hs-r1 up");
    a.ip("route add 198.51.100.0/24 dev hs-r0 table 200");
    a.ip("rule add fwmark 0xe00/0xf00 lookup 200 pref 123");
    a.ip(
        "xfrm policy add src 10.0.1.0/24 dst 10.0.2.0/24 dir out mark 0x3e00 mask 0xff00 \
         tmpl src 10.0.1.138 dst 10.0.2.52 proto esp spi 3 reqid 1 mode tunnel",
    );
    (a, b)
}

#[test]
fn the_observer_catches_a_change() {
    // The checker itself: what `ip` sends to add a route and a policy is caught.
    let (a, _b) = node();
    let out = trace_file("ip");
    let cmd = strace_cmd(&out);
    let ok = Command::new(&cmd[0])
        .args(&cmd[1..])
        .args([
            "ip",
            "-n",
            &a.name,
            "route",
            "add",
            "203.0.113.0/24",
            "dev",
            "hs-r0",
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let bad = violations(&std::fs::read_to_string(&out).unwrap());
    let _ = std::fs::remove_file(&out);
    assert!(
        bad.iter()
            .any(|b| b.contains("NETLINK_ROUTE request type 0x18")),
        "RTM_NEWROUTE not caught: {bad:#?}"
    );
    assert!(!is_read("NETLINK_XFRM", 0x10), "XFRM_MSG_NEWSA is a write");
    assert!(
        !is_read("NETLINK_NETFILTER", 0x0103),
        "CT_GET_CTRZERO zeroes counters"
    );
}

#[test]
fn snapshot_trace_and_capture_only_read() {
    let (a, _b) = node();
    assert_read_only("snap", &["snapshot", "--json", "--netns", &a.name]);
    assert_read_only("snapk", &["snapshot", "--show-keys", "--netns", &a.name]);
    assert_read_only(
        "trace",
        &["trace", "192.0.2.1", "192.0.2.2", "--netns", &a.name],
    );
    assert_read_only(
        "cap",
        &[
            "capture",
            "--netns",
            &a.name,
            "-i",
            "hs-r0",
            "--decrypt",
            "--duration",
            "1",
        ],
    );
}

#[test]
fn the_tui_only_reads() {
    let (a, _b) = node();
    let out = trace_file("tui");
    let t = Tmux::start(&format!(
        "{} {HS} --netns {} --interval 200ms",
        strace_cmd(&out).join(" "),
        a.name
    ));
    t.wait("first frame", Duration::from_secs(60), |s| {
        s.contains("hs-r0@")
    });
    // Every pane, a capture, a trace (its netfilter hops run iptables-save), :netns.
    for k in ["2", "3", "4", "5", "6", "1"] {
        t.keys(&[k]);
        std::thread::sleep(Duration::from_millis(300));
    }
    t.keys(&[":"]);
    t.literal("capture hs-r0");
    t.keys(&["Enter"]);
    t.wait("capturing", Duration::from_secs(30), |s| {
        s.contains("● capture 1 if")
    });
    t.keys(&[":"]);
    t.literal("trace 192.0.2.1 192.0.2.2");
    t.keys(&["Enter"]);
    t.wait("traced", Duration::from_secs(30), |s| {
        s.contains("flow 192.0.2.1 → 192.0.2.2")
    });
    t.quit_cleanly();
    let log = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let bad = violations(&log);
    assert!(bad.is_empty(), "the TUI changed the node:\n{bad:#?}");
    assert!(log.contains("nlmsg_type="), "no netlink request seen");
}

/// A rules or state *lister* other than `*-save`: `nft list …`, `ipset save|list`,
/// `conntrack -L`. Any verb that changes something (add, delete, flush, -f FILE…) is not one.
fn is_lister(name: &str, argv: &[&str]) -> bool {
    let args = argv.get(1..).unwrap_or(&[]);
    let writes = [
        "add", "create", "delete", "destroy", "flush", "insert", "replace", "reset", "rename",
        "-f", "--file", "-D", "-F", "-U", "-I",
    ];
    if args.iter().any(|a| writes.contains(a)) {
        return false;
    }
    match name {
        "nft" => args.contains(&"list"),
        "ipset" => args.first().is_some_and(|a| *a == "save" || *a == "list"),
        "conntrack" => args.iter().any(|a| *a == "-L" || *a == "--dump"),
        _ => false,
    }
}
