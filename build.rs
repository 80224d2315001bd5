//! Build facts for `hopscope --version`: the git commit (when built from a checkout) and how
//! libpcap is linked.

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
    println!("cargo:rustc-env=HOPSCOPE_COMMIT={commit}");
    println!(
        "cargo:rustc-env=HOPSCOPE_LINK={}",
        if static_crt {
            "static"
        } else {
            "dynamic (libpcap shared)"
        }
    );
    println!("cargo:rerun-if-changed=.git/HEAD");
    // Only when the commit moves (not on every index refresh, which would rebuild often).
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
