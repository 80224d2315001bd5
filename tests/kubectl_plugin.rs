//! Called as `kubectl-hopscope` (how kubectl runs the plugin for `kubectl hopscope …`), the
//! binary means `hopscope attach …`, unless the arguments start with another subcommand or
//! ask for help or the version. `--dry-run` contacts nothing, so no API server is needed.

use std::process::{Command, Output};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Plugin {
    dir: std::path::PathBuf,
}

impl Plugin {
    fn new() -> Plugin {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("hopscope-plugin-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_hopscope"), dir.join("kubectl-hopscope"))
            .unwrap();
        Plugin { dir }
    }

    fn run(&self, name: &str, args: &[&str]) -> Output {
        let exe = if name == "hopscope" {
            env!("CARGO_BIN_EXE_hopscope").into()
        } else {
            self.dir.join(name)
        };
        Command::new(exe)
            .args(args)
            .env("KUBECONFIG", self.dir.join("no-kubeconfig"))
            .env_remove("HOPSCOPE_IMAGE")
            .output()
            .unwrap()
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pod(out: &Output) -> String {
    let y = text(&out.stdout);
    assert!(out.status.success(), "{y}{}", text(&out.stderr));
    assert!(y.starts_with("apiVersion: v1\nkind: Pod\n"), "{y}");
    y
}

#[test]
fn as_kubectl_hopscope_the_arguments_are_attachs() {
    let p = Plugin::new();
    // node/NAME first, options first, a bare node name, `-n`: all attach.
    for args in [
        &["node/worker2", "--dry-run"][..],
        &["--dry-run", "node/worker2"],
        &["worker2", "--dry-run"],
        &[
            "-n",
            "debug",
            "--dry-run",
            "node/worker2",
            "--",
            "snapshot",
            "--json",
        ],
    ] {
        let y = pod(&p.run("kubectl-hopscope", args));
        assert!(y.contains("nodeName: worker2"), "{args:?}: {y}");
    }
    let y = pod(&p.run(
        "kubectl-hopscope",
        &[
            "-n",
            "debug",
            "--dry-run",
            "node/worker2",
            "--",
            "snapshot",
            "--json",
        ],
    ));
    assert!(y.contains("namespace: debug"), "{y}");
    // The arguments go to hopscope once it is sent into the stock image.
    assert!(
        y.contains("and run: /hopscope/hopscope snapshot --json"),
        "{y}"
    );

    // Nothing given: attach's own error, naming what is missing (not the local TUI).
    let out = p.run("kubectl-hopscope", &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("<node/NAME>") && err.contains("kubectl-hopscope attach"),
        "{err}"
    );
}

#[test]
fn as_kubectl_hopscope_other_subcommands_help_and_version_still_work() {
    let p = Plugin::new();
    let out = p.run("kubectl-hopscope", &["snapshot", "--no-kube"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("== links ("));

    let out = p.run("kubectl-hopscope", &["--version"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("hopscope "));

    let out = p.run("kubectl-hopscope", &["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.contains("attach") && help.contains("snapshot"),
        "{help}"
    );
}

#[test]
fn under_its_own_name_attach_is_not_implied() {
    let p = Plugin::new();
    let out = p.run("hopscope", &["node/worker2", "--dry-run"]);
    assert!(!out.status.success());
    assert!(text(&out.stdout).is_empty());
}
