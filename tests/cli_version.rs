//! `hopscope --version` says the version, the commit it was built from, how glibc and libpcap
//! are linked (and which libpcap), the target and the profile.

#[test]
fn version_names_the_commit_and_the_linking() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .arg("--version")
        .output()
        .unwrap();
    let v = String::from_utf8(out.stdout).unwrap();
    assert!(
        v.starts_with(&format!("hopscope {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    // Built from a checkout: the commit is the checkout's (a test binary built before the last
    // commit would show the older one, which cargo rebuilds when .git/refs move).
    if let Some(head) = head {
        assert!(v.contains(&format!("commit {head},")), "{v} vs HEAD {head}");
    }
    // `cargo test` builds the ordinary dynamic binary; packaging/build-static.sh's static one
    // is checked in tests/static_binary.rs.
    assert!(v.contains(", dynamic: libpcap shared"), "{v}");
    let pkg = std::process::Command::new("pkg-config")
        .args(["--modversion", "libpcap"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(pkg) = pkg {
        assert!(v.contains(&format!("built against {pkg};")), "{v} vs {pkg}");
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    assert!(
        v.trim_end()
            .ends_with(&format!("; x86_64-unknown-linux-gnu, {profile})")),
        "{v}"
    );
}
