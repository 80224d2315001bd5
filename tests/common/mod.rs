//! Shared helpers for tests that need a throwaway network namespace on the host kernel (root).
#![allow(dead_code)]

pub mod replay;
pub mod screen;
pub mod state_diff;
pub mod tmux;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// A network namespace that is deleted when dropped, even if the test panics.
pub struct Netns {
    pub name: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        remove_orphans();
        let name = format!(
            "hs-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        run("ip", &["netns", "add", &name]);
        // No IPv6 duplicate address detection: link-local addresses (and their local routes)
        // exist as soon as a link is up, so two reads of the netns see the same state.
        run(
            "ip",
            &[
                "netns",
                "exec",
                &name,
                "sysctl",
                "-qw",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.all.accept_dad=0",
            ],
        );
        Netns { name }
    }
    /// `ip -n NAME <args>`; panics with ip's stderr on failure.
    pub fn ip(&self, args: &str) -> String {
        let mut full = vec!["-n", &self.name];
        full.extend(args.split_whitespace());
        run("ip", &full)
    }
    pub fn ip_json(&self, args: &str) -> serde_json::Value {
        let text = self.ip(&format!("-j {args}"));
        serde_json::from_str(if text.trim().is_empty() { "[]" } else { &text })
            .expect("ip -j output is JSON")
    }
    /// Feed many commands to one `ip -batch` (fast setup of big tables).
    pub fn ip_batch(&self, lines: &str) {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["-n", &self.name, "-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("ip");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "ip -batch failed");
    }
}

/// Drop does not run when a test binary is killed (a timeout, SIGKILL): the netns it made
/// (`hs-TAG-PID-SEQ`) would stay on the machine. Any whose PID is gone is removed here, once
/// per process; a live PID (another test binary running now) is left alone.
fn remove_orphans() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(dir) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let mut parts = name.rsplitn(3, '-');
            let (seq, pid, rest) = (parts.next(), parts.next(), parts.next());
            let ours = rest.is_some_and(|r| r.starts_with("hs-"))
                && seq.is_some_and(|s| s.parse::<u32>().is_ok());
            if let (true, Some(pid)) = (ours, pid.and_then(|p| p.parse::<u32>().ok()))
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = Command::new("ip").args(["netns", "del", &name]).output();
            }
        }
    });
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn hopscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args(args)
        .output()
        .expect("run hopscope")
}

/// `hopscope snapshot --json` of a netns, parsed; panics with stderr if it failed.
pub fn snapshot_json(netns: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["snapshot", "--json", "--netns", netns];
    args.extend_from_slice(extra);
    let out = hopscope(&args);
    assert!(
        out.status.success(),
        "hopscope failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("hopscope --json is JSON")
}

/// Tests touching netns need root; on a machine without it they must fail loudly, not skip.
pub fn require_root() {
    let uid = unsafe { libc_geteuid() };
    assert_eq!(
        uid, 0,
        "these tests need root (they create network namespaces); run as root"
    );
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
