//! The static executable from packaging/build-static.sh, run in an empty root: a directory
//! with nothing but the binary (and /proc, /sys, /dev mounted in a private mount namespace,
//! so nothing leaks and the mounts vanish with the process). Root only (mount, chroot).
//!
//! The build is cached (libpcap once, then cargo's incremental release build in
//! target/static-build), so every test here shares one `build-static.sh` run.

mod common;
mod kube_support;
mod packaging_support;

use common::tmux::{Tmux, assert_sane};
use packaging_support::{EmptyRoot, static_binary, text};
use std::process::Command;
use std::time::Duration;

/// libpcap's own version string must be in the binary: it is linked in, at Debian's version.
fn libpcap_version() -> String {
    let out = Command::new("pkg-config")
        .args(["--modversion", "libpcap"])
        .output()
        .expect("pkg-config (libpcap-dev)");
    text(&out.stdout).trim().to_string()
}

#[test]
fn it_is_one_static_executable_with_libpcap_in_it() {
    let bin = static_binary();
    let file = text(
        &Command::new("file")
            .arg("-b")
            .arg(bin)
            .output()
            .unwrap()
            .stdout,
    );
    // rustc links crt-static glibc executables as static PIE (ASLR kept); `file` calls that
    // "static-pie linked", a non-PIE one "statically linked".
    assert!(
        file.contains("static-pie linked") || file.contains("statically linked"),
        "{file}"
    );
    let ldd = Command::new("ldd").arg(bin).output().unwrap();
    let ldd = text(&ldd.stdout) + &text(&ldd.stderr);
    assert!(
        ldd.contains("not a dynamic executable") || ldd.contains("statically linked"),
        "{ldd}"
    );
    // No program interpreter and no shared library needed, whatever the tools call it.
    let phdrs = text(
        &Command::new("readelf")
            .args(["-lW"])
            .arg(bin)
            .output()
            .unwrap()
            .stdout,
    );
    assert!(!phdrs.contains("INTERP"), "{phdrs}");
    let dynamic = text(
        &Command::new("readelf")
            .args(["-dW"])
            .arg(bin)
            .output()
            .unwrap()
            .stdout,
    );
    assert!(!dynamic.contains("(NEEDED)"), "{dynamic}");

    let bytes = std::fs::read(bin).unwrap();
    let want = format!("libpcap version {}", libpcap_version());
    assert!(
        bytes.windows(want.len()).any(|w| w == want.as_bytes()),
        "{want:?} not in the binary"
    );

    let version = Command::new(bin).arg("--version").output().unwrap();
    let version = text(&version.stdout);
    assert!(
        version.starts_with(&format!("hopscope {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert!(
        version.contains(&format!(
            ", static: glibc and libpcap {} linked in; x86_64-unknown-linux-gnu, release)",
            libpcap_version()
        )),
        "{version}"
    );
}

#[test]
fn snapshot_in_an_empty_root() {
    let root = EmptyRoot::new("snapshot");
    root.install(static_binary(), "hopscope");
    assert_eq!(
        root.files(),
        ["hopscope"],
        "the root holds the binary alone"
    );

    let out = root.run(&["/hopscope", "snapshot"], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("== links ("), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("lo") && l.contains("127.0.0.1/8")),
        "{stdout}"
    );
    // /proc is there: xfrm_stat is read, not reported missing.
    assert!(stdout.contains("== xfrm_stat ("), "{stdout}");
    assert!(
        !text(&out.stderr).contains("panick"),
        "{}",
        text(&out.stderr)
    );

    let out = root.run(&["/hopscope", "snapshot", "--json"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let links = v["links"].as_array().expect("links");
    let lo = links.iter().find(|l| l["name"] == "lo").expect("lo");
    assert!(lo["flags"].to_string().contains("LOOPBACK"), "{lo}");
    assert!(
        v["xfrm_stats"].is_array() || v["xfrm_stats"].is_object(),
        "{v}"
    );
    assert!(v["routes"].as_array().is_some_and(|r| !r.is_empty()));
}

#[test]
fn capture_in_an_empty_root_sees_pings_on_lo() {
    let root = EmptyRoot::new("capture");
    root.install(static_binary(), "hopscope");
    // The root shares the host's network namespace: ping lo from outside while it captures.
    let mut ping = Command::new("ping")
        .args(["-c", "150", "-i", "0.1", "-q", "127.0.0.1"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ping (iputils-ping)");
    // The BPF filter is compiled by the libpcap linked in (and keeps other lo traffic out).
    let out = root.run(
        &[
            "/hopscope",
            "capture",
            "-i",
            "lo",
            "-f",
            "icmp",
            "-c",
            "6",
            "--duration",
            "20",
        ],
        &[],
    );
    let _ = ping.kill();
    let _ = ping.wait();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let icmp: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" lo ") && l.contains("127.0.0.1 > 127.0.0.1: ICMP echo"))
        .collect();
    assert_eq!(icmp.len(), 6, "{stdout}{stderr}");
    // The totals go to stderr.
    assert!(
        stderr.contains("lo: 6 packets captured"),
        "{stdout}{stderr}"
    );
}

#[test]
fn tui_in_an_empty_root_shows_lo_and_quits_cleanly() {
    let root = EmptyRoot::new("tui");
    root.install(static_binary(), "hopscope");
    // No terminfo in the root: crossterm needs none. Once with a TERM, once without.
    for term in [Some("xterm-256color"), None] {
        let env: Vec<String> = term.iter().map(|t| format!("TERM={t}")).collect();
        let env: Vec<&str> = env.iter().map(String::as_str).collect();
        let t = Tmux::start(&root.command_line(&["/hopscope"], &env));
        t.wait("the Links pane with lo", Duration::from_secs(20), |s| {
            s.contains("1 Links ")
                && s.lines()
                    .any(|l| l.split_whitespace().nth(1) == Some("lo") && l.contains("127.0.0.1/8"))
        });
        assert_eq!(
            t.tmux(&["display-message", "-p", "#{alternate_on}"]).trim(),
            "1"
        );
        t.tmux(&["send-keys", "q"]);
        let (code, stty) = t.after_exit();
        assert_eq!(code, 0, "TERM={term:?}\n{stty}");
        assert_sane(&stty);
        // Back on the main screen, cursor shown, no mouse reporting left on.
        let flags = t.tmux(&[
            "display-message",
            "-p",
            "#{alternate_on} #{cursor_flag} #{mouse_any_flag}",
        ]);
        assert_eq!(flags.trim(), "0 1 0", "TERM={term:?}");
    }
}

/// `attach` without `--binary` sends the running executable itself (`/proc/self/exe`): the
/// static build goes over the exec stream of the fake API server into a pod laid out like the
/// busybox image, is checked there by hash, and runs there.
#[test]
fn attach_uploads_its_own_static_executable_which_runs_in_the_pod() {
    use kube_support::{APPLETS, Container, FakeApi};
    let bin = static_binary();
    let fake = FakeApi::start();
    let Some(c) = Container::busybox(fake.dir(), &APPLETS) else {
        panic!("needs a static busybox (busybox-static) and root (chroot)");
    };
    fake.with(|s| s.container = Some(c));
    let home = fake.dir().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new(bin)
        .args(["attach", "node/worker2", "--", "--version"])
        .env("KUBECONFIG", fake.kubeconfig())
        .env("HOME", &home)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("HOPSCOPE_IMAGE")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (stdout, err) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{err}");
    // The copy in the pod answered: the same version line as the static build here.
    assert!(
        stdout.starts_with(&format!("hopscope {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{stdout}{err}"
    );
    assert!(stdout.contains(", static: glibc and libpcap "), "{stdout}");
    let sent = std::fs::read(bin).unwrap();
    let in_pod = fake.with(|s| s.container.as_ref().unwrap().path("/hopscope/hopscope"));
    assert!(
        std::fs::read(in_pod).unwrap() == sent,
        "the file in the pod differs"
    );
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&sent)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    assert!(
        err.contains(&format!("sha256 {} checked in the pod", &sha[..12])),
        "{err}"
    );
    assert!(
        err.contains("deleted pod default/hopscope-worker2-"),
        "{err}"
    );
}
