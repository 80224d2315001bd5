//! `hopscope capture` on the host kernel (root): a veth pair between two throwaway netns, pings
//! across, hopscope and tcpdump on the same veth at the same time must see the same packets.
//! Also: unknown interface, bad filter, an interface deleted mid-capture, pcapng read back by
//! tcpdump. (ESP needs the qemu lab: tests/lab_capture.rs.)

mod common;

use common::{Netns, require_root};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn need(tool: &str, pkg: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "{tool} missing: apt-get install {pkg}");
}

/// Two netns joined by a veth pair: a/va 192.0.2.1 <-> b/vb 192.0.2.2.
fn pair() -> (Netns, Netns) {
    require_root();
    let a = Netns::new("cap");
    let b = Netns::new("cap");
    a.ip(&format!(
        "link add va type veth peer name vb netns {}",
        b.name
    ));
    a.ip("addr add 192.0.2.1/24 dev va");
    b.ip("addr add 192.0.2.2/24 dev vb");
    a.ip("link set va up");
    b.ip("link set vb up");
    a.ip("link set lo up");
    // No IPv6 chatter (router solicitations) in the comparison.
    for ns in [&a, &b] {
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
            ])
            .output();
    }
    (a, b)
}

/// `ping -c COUNT -i INTERVAL DST` inside `ns`; fails the test unless every reply came.
fn ping(ns: &Netns, count: u32, interval: &str, dst: &str) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            interval,
            dst,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Wait until a child has written `needle` to its stderr file, or fail.
fn wait_file(path: &std::path::Path, needle: &str) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if std::fs::read_to_string(path)
            .unwrap_or_default()
            .contains(needle)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{} never said {needle:?}: {}",
        path.display(),
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

/// Wait until `path` holds `n` lines, or fail.
fn wait_lines(path: &std::path::Path, n: usize) {
    let t = Instant::now();
    while std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
        < n
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{} never had {n} lines: {}",
            path.display(),
            std::fs::read_to_string(path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigint(child: &Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
}

#[test]
fn ping_over_veth_matches_tcpdump() {
    need("tcpdump", "tcpdump");
    need("ping", "iputils-ping");
    let (a, _b) = pair();
    let tmp = std::env::temp_dir().join(format!("hs-cap-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let pcapng = tmp.join("va.pcapng");
    let hs_err = tmp.join("hs.err");
    let td_err = tmp.join("td.err");
    let hs = Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args([
            "capture", "--netns", &a.name, "-i", "va", "-i", "lo", "--json", "--print", "-w",
        ])
        .arg(&pcapng)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&hs_err).unwrap())
        .spawn()
        .unwrap();
    let td_out = tmp.join("td.out");
    let td = Command::new("ip")
        .args([
            "netns", "exec", &a.name, "tcpdump", "-l", "-nn", "-i", "va", "icmp",
        ])
        .stdout(std::fs::File::create(&td_out).unwrap())
        .stderr(std::fs::File::create(&td_err).unwrap())
        .spawn()
        .unwrap();
    wait_file(&hs_err, "capturing on");
    wait_file(&td_err, "listening on");
    ping(&a, 5, "0.2", "192.0.2.2");
    // tcpdump prints a packet only once its capture block is handed over: wait for all 10.
    wait_lines(&td_out, 10);
    sigint(&hs);
    sigint(&td);
    let hs = hs.wait_with_output().unwrap();
    assert!(td.wait_with_output().unwrap().status.success());
    let td_stdout = std::fs::read_to_string(&td_out).unwrap();
    let err = std::fs::read_to_string(&hs_err).unwrap();
    assert!(hs.status.success(), "hopscope: {err}");

    let recs: Vec<Value> = String::from_utf8_lossy(&hs.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // ICMP lines, hopscope vs tcpdump, same words.
    let ours: Vec<String> = recs
        .iter()
        .filter(|r| {
            r["type"] == "packet" && r["iface"] == "va" && r["transport"]["proto"] == "icmp"
        })
        .map(|r| {
            let t = &r["transport"];
            format!(
                "{} > {}: ICMP echo {}, id {}, seq {}, length {}",
                r["ip"]["src"].as_str().unwrap(),
                r["ip"]["dst"].as_str().unwrap(),
                if t["icmp_type"] == 8 {
                    "request"
                } else {
                    "reply"
                },
                t["id"],
                t["seq"],
                t["len"]
            )
        })
        .collect();
    let theirs: Vec<String> = td_stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split_once(" IP ")
                .unwrap_or_else(|| panic!("tcpdump line {l:?}"))
                .1
                .to_string()
        })
        .collect();
    assert_eq!(ours.len(), 10, "{ours:#?}");
    assert_eq!(ours, theirs);
    // Direction by the veth's own MAC: requests leave, replies arrive.
    for r in recs.iter().filter(|r| r["transport"]["proto"] == "icmp") {
        let want = if r["transport"]["icmp_type"] == 8 {
            "out"
        } else {
            "in"
        };
        assert_eq!(r["dir"], want, "{r}");
    }
    // Summary record and tcpdump-style totals on stderr, per interface.
    let summary = recs
        .iter()
        .find(|r| r["type"] == "summary")
        .expect("summary");
    let ifs = summary["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 2);
    let va = ifs.iter().find(|i| i["iface"] == "va").unwrap();
    assert!(va["captured"].as_u64().unwrap() >= 10);
    assert_eq!(
        va["plaintext"].as_u64().unwrap() + va["other"].as_u64().unwrap(),
        va["captured"].as_u64().unwrap()
    );
    assert_eq!(va["dropped_by_hopscope"], 0);
    assert!(
        err.contains("va: ")
            && err.contains("packets captured")
            && err.contains("dropped by kernel")
            && err.contains("dropped by hopscope"),
        "{err}"
    );
    assert!(err.contains("lo: "), "{err}");

    // The pcapng: tcpdump reads it back, both interfaces named, same ICMP count.
    let r = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(&pcapng)
        .arg("icmp")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(String::from_utf8_lossy(&r.stdout).lines().count(), 10);
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn unknown_interface_lists_the_existing_ones() {
    let (a, _b) = pair();
    let out = Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args(["capture", "--netns", &a.name, "-i", "nosuch0", "-c", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("\"nosuch0\"") && e.contains("lo, va"), "{e}");
}

/// Without CAP_NET_RAW (root in a container without --cap-add NET_RAW) the error names the
/// capability and how to get it, not only libpcap's "Operation not permitted".
#[test]
fn missing_cap_net_raw_is_named_with_the_fix() {
    let (a, _b) = pair();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &a.name,
            "setpriv",
            "--bounding-set=-net_raw",
            "--inh-caps=-net_raw",
        ])
        .args([
            env!("CARGO_BIN_EXE_hopscope"),
            "capture",
            "-i",
            "va",
            "-c",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("cannot capture on va")
            && e.contains("CAP_NET_RAW")
            && e.contains("--cap-add NET_RAW"),
        "{e}"
    );
}

#[test]
fn bad_filter_shows_the_filter_and_libpcaps_message() {
    let (a, _b) = pair();
    let out = Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args([
            "capture",
            "--netns",
            &a.name,
            "-i",
            "va",
            "-f",
            "icmp and (",
            "-c",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("\"icmp and (\"") && e.contains("syntax error"),
        "{e}"
    );
}

/// A veth deleted mid-capture: its stream says gone, the other interface goes on.
#[test]
fn interface_gone_mid_capture_others_go_on() {
    let (a, _b) = pair();
    a.ip("link add vx type veth peer name vy");
    a.ip("link set vx up");
    a.ip("link set vy up");
    let tmp = std::env::temp_dir().join(format!("hs-gone-{}.err", std::process::id()));
    let hs = Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args([
            "capture", "--netns", &a.name, "-i", "vx", "-i", "va", "--json", "-f", "icmp",
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&tmp).unwrap())
        .spawn()
        .unwrap();
    wait_file(&tmp, "capturing on");
    a.ip("link del vx");
    wait_file(&tmp, "vx gone");
    ping(&a, 2, "0.2", "192.0.2.2");
    // No wait: the capture reads what the kernel queued before it stops.
    sigint(&hs);
    let out = hs.wait_with_output().unwrap();
    let err = std::fs::read_to_string(&tmp).unwrap();
    let _ = std::fs::remove_file(&tmp);
    assert!(out.status.success(), "{err}");
    let summary: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["type"] == "summary")
        .unwrap();
    let ifs = summary["interfaces"].as_array().unwrap();
    let vx = ifs.iter().find(|i| i["iface"] == "vx").unwrap();
    assert!(vx["gone"].is_string(), "{vx}");
    let va = ifs.iter().find(|i| i["iface"] == "va").unwrap();
    assert_eq!(va["captured"], 4, "{va}");
}

/// Two interfaces are one stream in capture-time order, as `tcpdump -i any` shows them: each
/// reader delivers its interface in blocks, so without the merge a ping's request on the
/// second interface came out before (or long after) it on the first.
#[test]
fn two_interfaces_come_out_in_capture_time_order() {
    need("ping", "iputils-ping");
    require_root();
    // a — (va | r0a) m (r0b | vb) — b, m forwarding. (Not `ma`: `ip link set` reads it as `master`.)
    let a = Netns::new("ord");
    let m = Netns::new("ord");
    let b = Netns::new("ord");
    a.ip(&format!(
        "link add va type veth peer name r0a netns {}",
        m.name
    ));
    b.ip(&format!(
        "link add vb type veth peer name r0b netns {}",
        m.name
    ));
    a.ip("addr add 198.51.100.1/24 dev va");
    m.ip("addr add 198.51.100.2/24 dev r0a");
    m.ip("addr add 203.0.113.2/24 dev r0b");
    b.ip("addr add 203.0.113.1/24 dev vb");
    for (ns, dev) in [(&a, "va"), (&m, "r0a"), (&m, "r0b"), (&b, "vb")] {
        ns.ip(&format!("link set {dev} up"));
    }
    a.ip("route add default via 198.51.100.2");
    b.ip("route add default via 203.0.113.2");
    let fwd = Command::new("ip")
        .args([
            "netns",
            "exec",
            &m.name,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])
        .output()
        .unwrap();
    assert!(fwd.status.success());

    let err_file = std::env::temp_dir().join(format!("hs-ord-{}.err", std::process::id()));
    let hs = Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args([
            "capture", "--netns", &m.name, "-i", "r0a", "-i", "r0b", "--json", "icmp",
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    wait_file(&err_file, "capturing on");
    ping(&a, 20, "0.05", "203.0.113.1");
    // No wait: the capture reads what the kernel queued before it stops.
    sigint(&hs);
    let out = hs.wait_with_output().unwrap();
    let err = std::fs::read_to_string(&err_file).unwrap_or_default();
    let _ = std::fs::remove_file(&err_file);
    assert!(out.status.success(), "{err}");
    let packets: Vec<(f64, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["type"] == "packet")
        .map(|r| {
            let ts = &r["ts"];
            let t = ts["sec"].as_f64().unwrap() + ts["nsec"].as_f64().unwrap() / 1e9;
            (t, r["iface"].as_str().unwrap().to_string())
        })
        .collect();
    // 20 requests and 20 replies, each crossing both interfaces.
    assert_eq!(packets.len(), 80, "{err}");
    let out_of_order: Vec<_> = packets.windows(2).filter(|w| w[1].0 < w[0].0).collect();
    assert!(
        out_of_order.is_empty(),
        "{} of 79 steps go back in time: {out_of_order:?}",
        out_of_order.len()
    );
}

/// Stopped right after the last packet: what the kernel already queued on the handle (the
/// last, not yet retired capture block) is read and counted before it closes, as tcpdump's
/// final stats do. Without the drain the last burst was lost and "captured" fell short of
/// "received by filter". (`--duration` and `-c` end through the same stop of the readers.)
#[test]
fn stop_right_after_the_last_packet_reads_what_the_kernel_queued() {
    need("ping", "iputils-ping");
    let (a, _b) = pair();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let err_file =
            std::env::temp_dir().join(format!("hs-drain-{signal}-{}", std::process::id()));
        let hs = Command::new(env!("CARGO_BIN_EXE_hopscope"))
            .args(["capture", "--netns", &a.name, "-i", "va", "--json", "icmp"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err_file).unwrap())
            .spawn()
            .unwrap();
        wait_file(&err_file, "capturing on");
        ping(&a, 30, "0.002", "192.0.2.2");
        unsafe { libc::kill(hs.id() as i32, signal) };
        let out = hs.wait_with_output().unwrap();
        let err = std::fs::read_to_string(&err_file).unwrap_or_default();
        let _ = std::fs::remove_file(&err_file);
        assert!(out.status.success(), "signal {signal}: {err}");
        let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let packets = lines.iter().filter(|r| r["type"] == "packet").count();
        let summary = lines
            .iter()
            .find(|r| r["type"] == "summary")
            .expect("summary");
        let va = &summary["interfaces"][0];
        assert_eq!(
            packets, 60,
            "signal {signal}: 30 requests and 30 replies: {va} {err}"
        );
        assert_eq!(va["captured"], 60, "signal {signal}: {va}");
        assert_eq!(va["received_by_filter"], 60, "signal {signal}: {va}");
    }
}
