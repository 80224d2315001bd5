//! `hopscope --version` says the version, the commit it was built from, and how libpcap is
//! linked.

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
    assert!(v.contains("libpcap") || v.contains("static"), "{v}");
}
