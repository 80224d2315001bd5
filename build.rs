//! Build facts for `hopscope --version`: the git commit (when built from a checkout), how glibc
//! and libpcap are linked, which libpcap, and the target and profile.

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let static_crt = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .unwrap_or_default()
        .contains("crt-static");
    // The pcap crate links `-lpcap` from LIBPCAP_LIBDIR when that is set (packaging/
    // build-static.sh points it at a static-only libpcap build), else from the system.
    let libdir = std::env::var("LIBPCAP_LIBDIR").ok();
    let pcap_static = static_crt
        || libdir.as_deref().is_some_and(|d| {
            Path::new(d).join("libpcap.a").exists() && !Path::new(d).join("libpcap.so").exists()
        });
    // The version it is built against: as the pcap crate is told it, else pkg-config's.
    let pcap_version = std::env::var("LIBPCAP_VER").ok().or_else(|| {
        Command::new("pkg-config")
            .args(["--modversion", "libpcap"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|v| !v.is_empty())
    });
    let pcap = match (&pcap_version, pcap_static) {
        (Some(v), true) => format!("libpcap {v} linked in"),
        (None, true) => "libpcap linked in".to_string(),
        (Some(v), false) => format!("libpcap shared, built against {v}"),
        (None, false) => "libpcap shared".to_string(),
    };
    let link = if static_crt {
        format!("static: glibc and {pcap}")
    } else {
        format!("dynamic: {pcap}")
    };
    let target = std::env::var("TARGET").unwrap_or_default();
    let profile = std::env::var("PROFILE").unwrap_or_default();
    println!("cargo:rustc-env=HOPSCOPE_COMMIT={commit}");
    println!("cargo:rustc-env=HOPSCOPE_LINK={link}; {target}, {profile}");
    println!("cargo:rerun-if-env-changed=LIBPCAP_LIBDIR");
    println!("cargo:rerun-if-env-changed=LIBPCAP_VER");
    println!("cargo:rerun-if-changed=.git/HEAD");
    // Only when the commit moves (not on every index refresh, which would rebuild often).
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
