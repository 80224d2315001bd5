//! Read-only, proved by an observer (root, strace): snapshot, trace, capture and the TUI run
//! under `strace -f`, and the test fails on any netlink request that is not a GET/dump (by
//! each socket's protocol: rtnetlink, XFRM, netfilter, sock_diag, generic), any write-open
//! of /proc or /sys (a sysctl), any iptables setsockopt that replaces rules, and any program
//! run other than a rules *lister* (iptables-save and friends).

mod common;
#[path = "common/readonly_log.rs"]
mod readonly_log;

use common::Netns;
use common::tmux::Tmux;
use readonly_log::{generic_is_read, genl_cmd, is_read, violations};
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

/// Run the command line `cmd` under strace: what it printed and the strace log.
fn under_strace(tag: &str, cmd: &[&str]) -> (std::process::Output, String) {
    let out = trace_file(tag);
    let st = strace_cmd(&out);
    let r = Command::new(&st[0])
        .args(&st[1..])
        .args(cmd)
        .output()
        .expect("strace (Debian package strace)");
    let log = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    (r, log)
}

/// Run hopscope ARGS under strace; its log must show no change to the node.
fn assert_read_only(tag: &str, args: &[&str]) -> String {
    let cmd: Vec<&str> = std::iter::once(HS).chain(args.iter().copied()).collect();
    let (r, log) = under_strace(tag, &cmd);
    assert!(
        r.status.success(),
        "hopscope {args:?}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let bad = violations(&log, HS);
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
    let bad = violations(&std::fs::read_to_string(&out).unwrap(), HS);
    let _ = std::fs::remove_file(&out);
    assert!(
        bad.iter()
            .any(|b| b.contains("NETLINK_ROUTE request type 0x18")),
        "RTM_NEWROUTE not caught: {bad:#?}"
    );
    assert!(!is_read("NETLINK_XFRM", 0x10), "XFRM_MSG_NEWSA is a write");
    // Generic netlink by family and command, as strace prints ipvsadm's family lookup.
    let lookup = r#"sendmsg(3, {msg_iov=[{iov_base=[{nlmsg_len=32, nlmsg_type=nlctrl, nlmsg_flags=NLM_F_REQUEST|NLM_F_ACK, nlmsg_seq=1, nlmsg_pid=0}, "\x03\x01\x00\x00\x09\x00"]}]}, 0) = 32"#;
    assert_eq!(
        genl_cmd(lookup.split_once("nlmsg_type=").unwrap().1),
        Some(3)
    );
    assert!(generic_is_read("nlctrl", 3), "CTRL_CMD_GETFAMILY reads");
    assert!(!generic_is_read("nlctrl", 1), "CTRL_CMD_NEWFAMILY");
    assert!(
        !generic_is_read("IPVS", 1),
        "IPVS_CMD_NEW_SERVICE adds a service"
    );
    assert!(!generic_is_read("0x22", 17), "IPVS_CMD_FLUSH");
    assert!(
        !generic_is_read("ethtool", 4),
        "a family hopscope does not read"
    );
    assert!(
        !is_read("NETLINK_NETFILTER", 0x0103),
        "CT_GET_CTRZERO zeroes counters"
    );
}

/// The log of `cmd` run under the same strace as hopscope is, and what the observer flags in it.
fn observed(tag: &str, cmd: &[&str]) -> Vec<String> {
    let (ran, log) = under_strace(tag, cmd);
    assert!(
        ran.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    violations(&log, HS)
}

/// A write of every kind the observer watches for, planted in the netns: each is flagged as
/// that kind. (An observer that flagged nothing would pass every hopscope run above.)
#[test]
fn the_observer_flags_every_kind_of_planted_write() {
    let (a, _b) = node();
    let n = a.name.as_str();
    let planted: [(&str, Vec<&str>, &str); 4] = [
        (
            "a sysctl write",
            vec![
                "ip",
                "netns",
                "exec",
                n,
                "sysctl",
                "-w",
                "net.ipv4.ip_forward=1",
            ],
            "write-open of a kernel setting",
        ),
        (
            "an iptables rule added",
            vec![
                "ip",
                "netns",
                "exec",
                n,
                "iptables-legacy",
                "-A",
                "INPUT",
                "-j",
                "ACCEPT",
            ],
            "netfilter change",
        ),
        (
            "an nftables table added",
            vec![
                "ip", "netns", "exec", n, "nft", "add", "table", "inet", "hs",
            ],
            "NETLINK_NETFILTER request type 0xa00",
        ),
        (
            "an XFRM policy added",
            vec![
                "ip",
                "-n",
                n,
                "xfrm",
                "policy",
                "add",
                "src",
                "10.9.0.0/24",
                "dst",
                "10.9.1.0/24",
                "dir",
                "in",
            ],
            "NETLINK_XFRM request type 0x13",
        ),
    ];
    for (i, (what, cmd, flag)) in planted.iter().enumerate() {
        let bad = observed(&format!("plant{i}"), cmd);
        assert!(
            bad.iter().any(|b| b.contains(flag)),
            "{what} not flagged as {flag:?}: {bad:#?}"
        );
    }
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
    // Every pane (each waited for by its table's header, line 4, or 5 under the Health pane's
    // verdict), a capture, a trace (its netfilter hops run iptables-save).
    let panes = [
        ("2", "TABLE "),
        ("3", "PRIO "),
        ("4", "SRC  DST  PROTO  SPI"),
        ("5", "DIR "),
        ("6", "COUNTER "),
        ("7", "TIME  IFACE"),
        ("8", "#  STEP"),
        ("9", "SEV "),
        ("1", "IDX "),
    ];
    for (key, header) in panes {
        t.keys(&[key]);
        t.wait(&format!("pane {key}"), Duration::from_secs(30), |s| {
            s.lines().skip(3).take(2).any(|l| l.starts_with(header))
        });
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
    let bad = violations(&log, HS);
    assert!(bad.is_empty(), "the TUI changed the node:\n{bad:#?}");
    assert!(log.contains("nlmsg_type="), "no netlink request seen");
}
