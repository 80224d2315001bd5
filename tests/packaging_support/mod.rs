//! Shared by the packaging tests: the static build (made once per test binary), an empty root
//! to chroot into (tmux: tests/common/tmux.rs).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Run a packaging script of this checkout; its last stdout line is the file it made.
pub fn run_script(script: &str) -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("packaging").join(script))
        .current_dir(repo())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
    assert!(
        out.status.success(),
        "packaging/{script} failed:\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    let made = text(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let made = PathBuf::from(made);
    assert!(made.is_file(), "packaging/{script} printed {made:?}");
    made
}

/// target/static/hopscope, built (or brought up to date) by packaging/build-static.sh once.
pub fn static_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = run_script("build-static.sh");
        assert_eq!(bin, repo().join("target/static/hopscope"));
        bin
    })
}

/// A directory to chroot into; commands run in a private mount namespace where /proc, /sys
/// and /dev are mounted for them only (gone when the command ends). Removed when dropped.
pub struct EmptyRoot {
    pub dir: PathBuf,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

fn chroot_path() -> &'static str {
    ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chroot (coreutils)")
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl EmptyRoot {
    pub fn new(what: &str) -> EmptyRoot {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("hopscope-root-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        EmptyRoot { dir }
    }

    /// Copy a file into the root (keeping its mode).
    pub fn install(&self, from: &Path, to: &str) {
        let dest = self.dir.join(to);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(from, &dest).unwrap();
    }

    /// The entries at the top of the root.
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// argv: unshare a mount namespace, mount /proc, /sys and /dev into the root, then chroot
    /// with only `env` (and PATH=/usr/bin:/) in the environment.
    pub fn argv(&self, cmd: &[&str], env: &[&str]) -> Vec<String> {
        let script = r#"set -e; r=$1; shift
mkdir -p "$r/proc" "$r/sys" "$r/dev"
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
mount --rbind /dev "$r/dev"
exec env -i "$@""#;
        let root = self.dir.to_str().unwrap().to_string();
        let mut v: Vec<String> = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "sh",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push(root.clone());
        v.push("PATH=/usr/bin:/".into());
        v.extend(env.iter().map(|s| s.to_string()));
        v.push(chroot_path().into());
        v.push(root);
        v.extend(cmd.iter().map(|s| s.to_string()));
        v
    }

    /// The same as a shell command line (for tmux).
    pub fn command_line(&self, cmd: &[&str], env: &[&str]) -> String {
        self.argv(cmd, env)
            .iter()
            .map(|a| quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn run(&self, cmd: &[&str], env: &[&str]) -> Output {
        let argv = self.argv(cmd, env);
        Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for EmptyRoot {
    fn drop(&mut self) {
        // The mounts live in the commands' own namespaces; make sure none is visible here
        // before deleting anything (never recurse into a mounted /dev or /sys).
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir.to_string_lossy().into_owned();
        if mounts
            .lines()
            .any(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&dir)))
        {
            eprintln!("{dir}: still has mounts, left in place");
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
