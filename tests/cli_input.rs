//! Bad input on the command line and in files is an error that names what is valid — never a
//! panic (exit 101), never silently ignored (no terminal attached here: these run piped), never
//! an unbounded read. One test per class of input.

use std::process::{Command, Output};

fn hopscope_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hopscope"));
    c.args(args).stdin(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run hopscope")
}

fn hopscope(args: &[&str]) -> Output {
    hopscope_env(args, &[])
}

/// Refused with a usage error (2) whose message contains `says`; no panic.
#[track_caller]
fn refused(args: &[&str], says: &str) {
    let out = hopscope(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?} should say {says:?}: {err}");
}

#[test]
fn float_seconds_that_a_duration_cannot_hold_are_refused() {
    for v in ["inf", "nan", "1e300", "-1", "0"] {
        refused(
            &["capture", "-i", "lo", &format!("--duration={v}")],
            "--duration",
        );
        refused(&["capture", "-i", "lo", &format!("--stats={v}")], "--stats");
        refused(
            &["trace", "10.0.0.1", "10.0.0.2", &format!("--follow={v}")],
            "--follow",
        );
    }
    refused(&["capture", "--duration", "1e300"], "at most 31536000 s");
    refused(&["capture", "--duration", "nan"], "not a number of seconds");
}

#[test]
fn intervals_out_of_range_or_not_numbers_are_refused() {
    for v in [
        "99999999999999999999s",
        "nans",
        "-1s",
        "10ms",
        "soon",
        "infs",
    ] {
        refused(&[&format!("--interval={v}")], "--interval");
    }
    refused(&["--interval", "nans"], "e.g. 1s, 500ms");
    refused(&["--interval=-1s"], "100ms to 1h");
}

#[test]
fn integers_out_of_range_are_refused() {
    refused(
        &["capture", "-i", "lo", "--queue", "18446744073709551615"],
        "1 to 16777216",
    );
    refused(&["capture", "-i", "lo", "--queue", "0"], "1 to 16777216");
    refused(&["capture", "-i", "lo", "-c", "0"], "--count");
    refused(&["capture", "-i", "lo", "--snaplen=-1"], "--snaplen");
    refused(
        &["capture", "-i", "lo", "-B", "2147483647"],
        "--buffer-size",
    );
    for v in ["0", "19", "4294967295", "65536"] {
        refused(
            &["trace", "10.0.0.1", "10.0.0.2", "--size", v],
            "20..=65535",
        );
    }
}

#[test]
fn a_bad_theme_is_refused_without_a_terminal() {
    refused(&["--theme", "nosuch"], "dark, light, mono");
    refused(&["--theme", "/nonexistent/x.toml"], "cannot read theme");
    // A file that never ends is not read to its end.
    refused(&["--theme", "/dev/zero"], "larger than 1 MiB");
}

#[test]
fn a_bad_config_file_is_an_error_without_a_terminal() {
    let dir = std::env::temp_dir().join(format!("hs-cfg-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("hopscope")).unwrap();
    let cfg = dir.join("hopscope/config.toml");
    let env = [("XDG_CONFIG_HOME", dir.to_str().unwrap())];
    std::fs::write(&cfg, "interval = \"-1s\"\n").unwrap();
    let out = hopscope_env(&[], &env);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("100ms to 1h") && !err.contains("panicked"),
        "{err}"
    );

    std::fs::write(&cfg, "theme = \"nosuch\"\n").unwrap();
    let out = hopscope_env(&[], &env);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown theme"), "{err}");

    // The config file is read with a limit too.
    std::fs::write(&cfg, "#".repeat(2 << 20)).unwrap();
    let out = hopscope_env(&[], &env);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("larger than 1 MiB"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_state_file_that_never_ends_is_refused() {
    let start = std::time::Instant::now();
    let out = hopscope(&["trace", "10.0.0.1", "10.0.0.2", "--state", "/dev/zero"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("/dev/zero is larger than 512 MiB"), "{err}");
    assert!(start.elapsed().as_secs() < 30, "took {:?}", start.elapsed());
}

#[test]
fn a_state_file_of_a_newer_schema_is_refused() {
    let f = std::env::temp_dir().join(format!("hs-state-{}.json", std::process::id()));
    std::fs::write(&f, r#"{"schema":"snapshot","schema_version":99}"#).unwrap();
    let out = hopscope(&[
        "trace",
        "10.0.0.1",
        "10.0.0.2",
        "--state",
        f.to_str().unwrap(),
    ]);
    std::fs::remove_file(&f).ok();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("schema version 99"), "{err}");
}

#[test]
fn a_missing_kubeconfig_is_said_once_and_fails() {
    let out = hopscope(&["--kubeconfig", "/nonexistent/kubeconfig", "snapshot"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
    assert!(out.stdout.is_empty(), "nothing printed as if all was well");
}

#[test]
fn two_filters_are_refused() {
    let out = hopscope(&["capture", "-i", "lo", "-f", "icmp", "esp"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("two capture filters"), "{err}");
}

/// As an ordinary user whose ~/.config (or the config file in it) cannot be read: a clear
/// error naming the file, exit 1, no panic, nothing drawn. Run as root: the child drops to
/// nobody with setpriv, so root's permission override does not hide the refusal.
#[test]
fn an_unreadable_config_is_an_error_naming_the_file() {
    use std::os::unix::fs::PermissionsExt;
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run the child as nobody");
        return;
    }
    let home = std::env::temp_dir().join(format!("hs-home-{}", std::process::id()));
    let conf = home.join(".config");
    std::fs::create_dir_all(conf.join("hopscope")).unwrap();
    let file = conf.join("hopscope/config.toml");
    std::fs::write(&file, "interval = \"1s\"\n").unwrap();
    let mode = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode(&home, 0o755);
    let run_as_nobody = || {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_hopscope"))
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("setpriv runs")
    };
    for (what, path, m) in [("~/.config", &conf, 0o000), ("the file", &file, 0o000)] {
        mode(&conf, 0o755);
        mode(&file, 0o644);
        mode(path, m);
        let out = run_as_nobody();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.contains(&format!("{}: Permission denied", file.display())),
            "{what}: {err}"
        );
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert!(out.stdout.is_empty(), "{what}: nothing is drawn");
    }
    mode(&conf, 0o755);
    std::fs::remove_dir_all(&home).ok();
}
