//! `hopscope generate completions SHELL` and `hopscope generate man [DIR]`: made from the clap
//! definition, loaded by the real shells and rendered by the real man tooling (.ci/run
//! installs bash, zsh, fish, man-db and groff).

use std::path::Path;
use std::process::{Command, Output};

fn hopscope(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hopscope {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The visible subcommands, from the clap definition itself.
fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    let names: Vec<String> = hopscope::cli::Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    for expected in ["snapshot", "trace", "capture", "attach"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    names
}

fn script(shell: &str) -> (tempdir::Dir, std::path::PathBuf) {
    let dir = tempdir::Dir::new();
    let path = dir.0.join(format!("hopscope.{shell}"));
    std::fs::write(&path, hopscope(&["generate", "completions", shell]).stdout).unwrap();
    (dir, path)
}

/// Run bash's completion function for the words of a command line, as readline would on TAB.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        "source '{}' || exit 3; complete -p hopscope || exit 4; \
         COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT={}; \
         _hopscope hopscope '{}' '{}'; printf 'reply:%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        line.len(),
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &prog])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    // `complete -p` shows the function is registered for the command name.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("complete ") && l.ends_with(" -F _hopscope hopscope")),
        "{stdout}"
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("reply:"))
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completion_loads_and_completes_subcommands_and_options() {
    let (_dir, path) = script("bash");
    assert_eq!(bash_complete(&path, &["hopscope", "sn"]), ["snapshot"]);
    let all = bash_complete(&path, &["hopscope", ""]);
    for sub in subcommands() {
        assert!(all.contains(&sub), "{sub} not in {all:?}");
    }
    assert_eq!(
        bash_complete(&path, &["hopscope", "snapshot", "--js"]),
        ["--json"]
    );
    let capture = bash_complete(&path, &["hopscope", "capture", "--"]);
    assert!(capture.iter().any(|w| w == "--decrypt"), "{capture:?}");
}

#[test]
fn fish_completion_loads_and_completes() {
    let (_dir, path) = script("fish");
    let run = |line: &str| {
        let out = Command::new("fish")
            .args([
                "--no-config",
                "-c",
                &format!("source '{}'; complete -C '{line}'", path.display()),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "fish complained");
        text(&out.stdout)
    };
    let words: Vec<String> = run("hopscope sn")
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    assert_eq!(words, ["snapshot"]);
    let opts = run("hopscope snapshot --");
    assert!(opts.lines().any(|l| l.starts_with("--json\t")), "{opts}");
}

#[test]
fn zsh_completion_parses() {
    let (_dir, path) = script("zsh");
    let body = std::fs::read_to_string(&path).unwrap();
    assert!(body.starts_with("#compdef hopscope\n"), "{body:.200}");
    for sub in subcommands() {
        assert!(body.contains(&format!("'{sub}:")), "{sub} missing");
    }
    let out = Command::new("zsh")
        .args(["-n", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn man_pages_render_and_name_every_subcommand() {
    let dir = tempdir::Dir::new();
    hopscope(&["generate", "man", dir.0.to_str().unwrap()]);
    let subs = subcommands();
    let mut expected: Vec<String> = subs.iter().map(|s| format!("hopscope-{s}.1")).collect();
    expected.push("hopscope.1".into());
    expected.sort();
    let mut files: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, expected);

    // Without DIR: the main page on stdout, the same as the file.
    let stdout = text(&hopscope(&["generate", "man"]).stdout);
    let file = std::fs::read_to_string(dir.0.join("hopscope.1")).unwrap();
    assert!(stdout == file, "stdout:\n{stdout}\nfile:\n{file}");

    for page in &files {
        let path = dir.0.join(page);
        // groff with all warnings (-k: UTF-8 input through preconv, as man-db does): the roff
        // is clean.
        let out = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{page}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "{page}: groff warnings");
        // man-db renders it as a user would see it.
        let out = Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        assert!(out.status.success(), "{page}: {}", text(&out.stderr));
        let shown = text(&out.stdout);
        let name = page.trim_end_matches(".1");
        assert!(shown.contains("NAME") && shown.contains(name), "{shown}");
        if page == "hopscope.1" {
            for sub in &subs {
                assert!(
                    shown.contains(&format!("hopscope-{sub}(1)")),
                    "{sub} not in the page:\n{shown}"
                );
            }
            assert!(shown.contains(env!("CARGO_PKG_VERSION")), "{shown}");
            assert!(!shown.contains("generate"), "hidden subcommand shown");
        }
    }
    let snap = text(
        &Command::new("man")
            .arg("-l")
            .arg(dir.0.join("hopscope-snapshot.1"))
            .env("MANPAGER", "cat")
            .output()
            .unwrap()
            .stdout,
    );
    assert!(
        snap.contains("--json") && snap.contains("--show-keys"),
        "{snap}"
    );
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "hopscope-gen-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
