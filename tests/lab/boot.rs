//! Booting the real-kernel lab for a test group: preflight (tools, root), one qemu boot per
//! group through tests/lab/run.sh, serialised. Shared by tests/lab.rs and tests/lab_*.rs
//! (`#[path = "lab/boot.rs"] mod boot;`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const HOPSCOPE: &str = env!("CARGO_BIN_EXE_hopscope");

/// Tools the lab needs on the host, with the Debian package that provides each.
const NEEDED: &[(&str, &str)] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("/bin/busybox", "busybox-static"),
    ("depmod", "kmod"),
    ("modprobe", "kmod"),
    ("apt-get", "apt"),
    ("dpkg", "dpkg"),
    ("ip", "iproute2"),
    ("tc", "iproute2"),
    ("iptables-legacy", "iptables"),
    ("tcpdump", "tcpdump"),
    ("ping", "iputils-ping"),
    ("conntrack", "conntrack"),
];

fn preflight() -> Result<(), String> {
    let mut missing = Vec::new();
    for (tool, pkg) in NEEDED {
        let found = if tool.starts_with('/') {
            Path::new(tool).exists()
        } else {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if !found {
            missing.push(format!("{tool} (Debian package {pkg})"));
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "the real-kernel lab cannot run, missing: {}.\nInstall: apt-get install qemu-system-x86 \
             busybox-static kmod iproute2 iptables tcpdump iputils-ping conntrack",
            missing.join(", ")
        ));
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err(
            "the real-kernel lab must run as root (qemu shares / over 9p with \
                    security_model=passthrough)"
                .into(),
        );
    }
    Ok(())
}

static BOOT_LOCK: Mutex<()> = Mutex::new(());

/// Boot the lab with `variants`, run `tests/lab/checks/<group>.sh HOPSCOPE` inside, return the
/// results dir. Never panics (so a OnceLock keeps the error instead of booting again).
#[allow(dead_code)] // tests/lab_layouts.rs boots bare
pub fn boot(group: &str, variants: &[&str]) -> Result<PathBuf, String> {
    boot_with(group, variants, true, 900, &[])
}

/// `boot` with a guest timeout of `secs` for a group that runs many cases in one boot.
#[allow(dead_code)] // not every test file that includes boot.rs uses it
pub fn boot_timed(group: &str, variants: &[&str], secs: u32) -> Result<PathBuf, String> {
    boot_with(group, variants, true, secs, &[])
}

/// Boot without the seed cluster (modules loaded, nothing else): for a group whose check
/// script builds its own netns, which saves the cluster's build time.
#[allow(dead_code)] // not every test file that includes boot.rs uses it
pub fn boot_bare(group: &str) -> Result<PathBuf, String> {
    boot_with(group, &[], false, 900, &[])
}

/// `boot_bare` whose check script gets `args` after the hopscope path (a group that runs a
/// test binary's guest half passes that binary).
#[allow(dead_code)] // not every test file that includes boot.rs uses it
pub fn boot_bare_args(group: &str, args: &[&str]) -> Result<PathBuf, String> {
    boot_with(group, &[], false, 900, args)
}

fn boot_with(
    group: &str,
    variants: &[&str],
    cluster: bool,
    timeout_secs: u32,
    args: &[&str],
) -> Result<PathBuf, String> {
    let results = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("lab")
        .join(group);
    // For iterating on assertions: HOPSCOPE_LAB_REUSE=1 reads the last run's results, no boot.
    if std::env::var_os("HOPSCOPE_LAB_REUSE").is_some_and(|v| v == "1") {
        eprintln!("HOPSCOPE_LAB_REUSE=1: reusing {}", results.display());
        return if results.join("rc").exists() {
            Ok(results)
        } else {
            Err(format!(
                "HOPSCOPE_LAB_REUSE=1 but {} has no results",
                results.display()
            ))
        };
    }
    preflight()?;
    let _serial = BOOT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let _ = std::fs::remove_dir_all(&results);
    std::fs::create_dir_all(&results).map_err(|e| format!("{}: {e}", results.display()))?;
    let mut cmd = Command::new(Path::new(REPO).join("tests/lab/run.sh"));
    for v in variants {
        cmd.args(["--variant", v]);
    }
    if !cluster {
        cmd.arg("--no-cluster");
    }
    // Each boot runs hopscope a dozen times under TCG (snapshots, traces, captures).
    cmd.args(["--timeout", &timeout_secs.to_string()])
        .arg("--results")
        .arg(&results)
        .arg(Path::new(REPO).join(format!("tests/lab/checks/{group}.sh")))
        .arg(HOPSCOPE)
        .args(args);
    let start = Instant::now();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start tests/lab/run.sh: {e}"))?;
    let timings = std::fs::read_to_string(results.join("timings")).unwrap_or_default();
    eprintln!(
        "lab group {group}: {:.1} s on the host; guest {}; results in {}",
        start.elapsed().as_secs_f64(),
        timings.split_whitespace().collect::<Vec<_>>().join(" "),
        results.display()
    );
    if !out.status.success() {
        return Err(format!(
            "lab group {group} failed ({}):\n--- stdout\n{}\n--- stderr\n{}\n(results: {})",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            results.display()
        ));
    }
    Ok(results)
}
