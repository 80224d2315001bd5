//! `hopscope attach node/NAME` against the fake API server (tests/kube_support): the pod
//! manifest (snapshot), the create → wait → upload → run → delete lifecycle, including
//! deletion on SIGINT and when attaching fails.
//!
//! The upload runs for real: the fake's exec runs the command in a chroot laid out like the
//! busybox base image, so the bytes go over the websocket framing (v5 and v4) into busybox's
//! `head`, are hashed by busybox's `sha256sum`, and the uploaded program — a static C program
//! built here, padded to a few MB — is then exec'd from the emptyDir and its output and exit
//! code come back.
//!
//! What is exercised: every API call of the lifecycle (get/list nodes, create pod, get pod
//! while waiting, list events, the attach websocket, delete pod), the errors a cluster gives
//! (404 node, 403 create, image pull failure with its event, not running in time, attach
//! failing with 500 or hanging), signals (SIGINT while waiting and while attaching, SIGTERM
//! with --keep), and the attach stream itself through kube's websocket client (output on
//! channel 1, the exit status on channel 3, our stdin on 0, the terminal size on 4 under a
//! `script` terminal). What is not: keys in a live TUI session, window-size changes.

mod kube_support;

use hopscope::kube::attach::{Launch, PodPlan, manifest_yaml};
use kube_support::{APPLETS, AttachReply, Container, FakeApi, fixture};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// An image with hopscope in it (attached to, nothing uploaded).
const IMAGE: &str = "ghcr.io/hopscope/hopscope:0.1.0";

fn plan(privileged: bool, launch: Launch) -> PodPlan {
    PodPlan {
        name: "hopscope-worker2-k3x9a".into(),
        namespace: "default".into(),
        node: "cilium-ipsec-native-routing-worker2".into(),
        image: match launch {
            Launch::Upload => "docker.io/library/busybox:1.37".into(),
            Launch::InImage => IMAGE.into(),
        },
        launch,
        privileged,
        args: if privileged {
            vec![]
        } else {
            vec![
                "capture".into(),
                "-i".into(),
                "eth0".into(),
                "--json".into(),
            ]
        },
        tty: !privileged,
        term: Some("xterm-256color".into()),
    }
}

#[test]
fn pod_manifest() {
    let restricted = manifest_yaml(&plan(false, Launch::Upload)).unwrap();
    let privileged = manifest_yaml(&plan(true, Launch::Upload)).unwrap();
    let in_image = manifest_yaml(&plan(false, Launch::InImage)).unwrap();
    for y in [&restricted, &privileged, &in_image] {
        // Starts on any node: no host path; least privilege wherever it applies.
        assert!(!y.contains("hostPath"), "{y}");
        assert!(y.contains("automountServiceAccountToken: false"), "{y}");
        assert!(y.contains("readOnlyRootFilesystem: true"), "{y}");
        assert!(y.contains("emptyDir:"), "{y}");
        assert!(y.contains("hostPID: true"), "{y}");
        assert!(y.contains("value: /proc/1/root/run/netns"), "{y}");
    }
    assert!(restricted.contains("drop:\n        - ALL"), "{restricted}");
    // The capture pod gets what a capture of the node's interfaces uses, no more.
    assert!(
        restricted.contains(
            "add:\n        - NET_ADMIN\n        - NET_RAW\n        - SYS_PTRACE\n        drop:"
        ),
        "{restricted}"
    );
    assert!(!restricted.contains("SYS_ADMIN"), "{restricted}");
    assert!(
        restricted.contains("allowPrivilegeEscalation: false"),
        "{restricted}"
    );
    assert!(
        !privileged.contains("allowPrivilegeEscalation"),
        "{privileged}"
    );
    assert!(restricted.contains("type: RuntimeDefault"), "{restricted}");
    assert!(!restricted.contains("privileged"), "{restricted}");
    // A privileged container is unconfined whatever is set: no seccomp or capability lines.
    assert!(!privileged.contains("seccomp"), "{privileged}");
    assert!(!privileged.contains("capabilities"), "{privileged}");
    // The stock image idles; hopscope's arguments go with the exec, not the manifest.
    assert!(restricted.contains("- sleep"), "{restricted}");
    assert!(!restricted.contains("- capture"), "{restricted}");
    assert!(in_image.contains("- capture"), "{in_image}");
    insta::assert_snapshot!("attach_pod_manifest", restricted);
    insta::assert_snapshot!("attach_pod_manifest_privileged", privileged);
    insta::assert_snapshot!("attach_pod_manifest_image", in_image);
}

/// A static program (what `--binary` sends here) that prints its arguments and exits 7,
/// padded to a few MB as hopscope is; built once per test run. `None` without a C compiler.
fn static_program() -> Option<&'static Path> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("attach-prog");
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("prog.c");
        std::fs::write(
            &src,
            // Given `tui`, it stays a moment, as a session does, so its terminal size arrives.
            "#include <stdio.h>\n#include <string.h>\n#include <unistd.h>\nint main(int c, char **v) { for (int i = 0; i < c; i++) printf(\"[%s]\", v[i]); printf(\"\\n\"); fflush(stdout); if (c > 1 && !strcmp(v[1], \"tui\")) usleep(500000); return 7; }\n",
        )
        .unwrap();
        let bin = dir.join("prog");
        let ok = Command::new("cc")
            .args(["-static", "-O1", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return None;
        }
        // Data after the last segment is never loaded: the program runs the same.
        let mut bytes = std::fs::read(&bin).unwrap();
        let mut x: u32 = 0x9e37_79b9;
        bytes.extend((0..3_000_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        }));
        std::fs::write(&bin, bytes).unwrap();
        Some(bin)
    })
    .as_deref()
}

/// The fake with a busybox container to exec in and the static program to send; `None`
/// (the test says it is skipped) without busybox, root or a C compiler.
fn with_container(applets: &[&str]) -> Option<(FakeApi, &'static Path)> {
    let fake = FakeApi::start();
    let Some(prog) = static_program() else {
        eprintln!("skipped: no C compiler to build a static program");
        return None;
    };
    let Some(c) = Container::busybox(fake.dir(), applets) else {
        eprintln!("skipped: needs a static busybox and root (chroot)");
        return None;
    };
    fake.with(|s| s.container = Some(c));
    Some((fake, prog))
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[test]
fn upload_sends_the_binary_checks_its_hash_then_runs_it() {
    for proto in ["v5.channel.k8s.io", "v4.channel.k8s.io"] {
        let Some((fake, prog)) = with_container(&APPLETS) else {
            return;
        };
        fake.with(|s| s.protocols = vec![proto.into()]);
        let bin = prog.to_str().unwrap();
        let (out, took) = run(
            Some(&fake),
            &[
                "attach",
                "node/worker2",
                "--binary",
                bin,
                "--",
                "snapshot",
                "--json",
            ],
        );
        let err = text(&out.stderr);
        // The uploaded program ran from the emptyDir with our arguments; its exit is ours.
        assert_eq!(
            text(&out.stdout),
            "[/hopscope/hopscope][snapshot][--json]\n",
            "{proto}: {err}"
        );
        assert_eq!(out.status.code(), Some(7), "{proto}: {err}");
        let sent = std::fs::read(prog).unwrap();
        let sha = sha256_hex(&sent);
        let c = fake.with(|s| s.container.as_ref().unwrap().path("/hopscope/hopscope"));
        let arrived = std::fs::read(&c).unwrap();
        assert!(arrived == sent, "{proto}: the file in the pod differs");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&c).unwrap().permissions().mode() & 0o777,
            0o755
        );
        assert!(
            err.contains(&format!("sha256 {} checked in the pod", &sha[..12])),
            "{err}"
        );
        let (execs, negotiated, frames, bytes) = fake.with(|s| {
            (
                s.execs.clone(),
                s.negotiated.clone(),
                s.stdin_frames,
                s.stdin_bytes,
            )
        });
        assert_eq!(execs.len(), 2, "{execs:?}");
        assert_eq!(&execs[0][..2], ["sh", "-c"]);
        assert_eq!(
            execs[0][3..],
            [
                "hopscope-upload".to_string(),
                sent.len().to_string(),
                sha.clone(),
                "/hopscope".into()
            ]
        );
        assert_eq!(execs[1], ["/hopscope/hopscope", "snapshot", "--json"]);
        assert_eq!(negotiated, [proto, proto]);
        // In chunks of at most 64 KiB (the stdin of the second exec is empty: < /dev/null).
        assert_eq!(bytes, sent.len());
        assert!(frames >= sent.len() / 65536, "{frames} frames");
        assert!(
            err.contains("deleted pod default/hopscope-worker2-"),
            "{err}"
        );
        assert_eq!(created_and_deleted(&fake), (1, 1));
        eprintln!(
            "{proto}: {} bytes in {frames} frames, whole run {took:?}",
            sent.len()
        );
        assert!(took < Duration::from_secs(20), "{took:?}");
    }
}

#[test]
fn a_damaged_upload_is_never_run() {
    let Some((fake, prog)) = with_container(&APPLETS) else {
        return;
    };
    fake.with(|s| s.corrupt_stdin_at = Some(100_000));
    let (out, _) = run(
        Some(&fake),
        &["attach", "node/worker2", "--binary", prog.to_str().unwrap()],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let sha = sha256_hex(&std::fs::read(prog).unwrap());
    assert!(
        err.contains(&format!(
            "the binary arrived damaged: sent sha256 {sha}, the pod has "
        )),
        "{err}"
    );
    assert!(err.contains("it was not run"), "{err}");
    // Only the upload was exec'd, and nothing is left in the emptyDir.
    assert_eq!(fake.with(|s| s.execs.len()), 1);
    let dir = fake.with(|s| s.container.as_ref().unwrap().path("/hopscope"));
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
    assert_eq!(created_and_deleted(&fake), (1, 1));
}

/// Make the container's `sh` the host's dash (with its libraries), which — unlike busybox's
/// own shell — runs only the tools the image has.
fn dash_as_sh(fake: &FakeApi) -> bool {
    let Ok(ldd) = Command::new("ldd").arg("/bin/dash").output() else {
        return false;
    };
    let root = fake.with(|s| s.container.as_ref().unwrap().root.clone());
    let libs: Vec<String> = text(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(String::from)
        .collect();
    for f in libs.iter().map(String::as_str).chain(["/bin/dash"]) {
        let to = root.join(f.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(f, &to).unwrap();
    }
    std::fs::remove_file(root.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("dash", root.join("bin/sh")).unwrap();
    true
}

#[test]
fn a_base_image_without_the_tools_says_which_and_what_to_do() {
    let applets: Vec<&str> = APPLETS.into_iter().filter(|a| *a != "sha256sum").collect();
    let Some((fake, prog)) = with_container(&applets) else {
        return;
    };
    if !dash_as_sh(&fake) {
        eprintln!("skipped: no /bin/dash");
        return;
    }
    let (out, _) = run(
        Some(&fake),
        &["attach", "node/worker2", "--binary", prog.to_str().unwrap()],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("hopscope: not in this image: sha256sum"),
        "{err}"
    );
    assert!(
        err.contains("the base image docker.io/library/busybox:1.37 needs sh, head and sha256sum"),
        "{err}"
    );
    assert!(err.contains("--base-image"), "{err}");
    assert_eq!(fake.with(|s| s.execs.len()), 1);
    assert_eq!(created_and_deleted(&fake), (1, 1));

    // No shell at all: the runtime's own message.
    fake.with(|s| {
        let root = s.container.as_ref().unwrap().path("/bin/sh");
        std::fs::remove_file(root).unwrap();
    });
    let (out, _) = run(
        Some(&fake),
        &["attach", "node/worker2", "--binary", prog.to_str().unwrap()],
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("exec: \"sh\": executable file not found"),
        "{err}"
    );
    assert_eq!(created_and_deleted(&fake), (2, 2));
}

#[test]
fn only_a_static_binary_for_the_node_is_sent() {
    let fake = FakeApi::start();
    // The test build of hopscope is dynamically linked.
    let (out, _) = run(Some(&fake), &["attach", "node/worker2"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is dynamically linked (it needs /lib"),
        "{err}"
    );
    assert!(err.contains("packaging/build-static.sh"), "{err}");
    assert!(err.contains("--binary"), "{err}");
    // Not a program at all.
    let script = fake.dir().join("script");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let (out, _) = run(
        Some(&fake),
        &[
            "attach",
            "node/worker2",
            "--binary",
            script.to_str().unwrap(),
        ],
    );
    assert!(text(&out.stderr).contains("not a 64-bit ELF executable"));
    // Built for another machine than the node's (amd64 in the fixtures).
    if let Some(prog) = static_program() {
        let mut b = std::fs::read(prog).unwrap();
        b[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
        let arm = fake.dir().join("arm64");
        std::fs::write(&arm, b).unwrap();
        let (out, _) = run(
            Some(&fake),
            &["attach", "node/worker2", "--binary", arm.to_str().unwrap()],
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("node cilium-ipsec-native-routing-worker2 is amd64, but"),
            "{err}"
        );
        assert!(err.contains("is built for arm64"), "{err}");
    }
    // Nothing was created for any of them.
    assert_eq!(created_and_deleted(&fake), (0, 0));
}

#[test]
fn exec_forbidden_names_the_permission() {
    let Some((fake, prog)) = with_container(&APPLETS) else {
        return;
    };
    fake.with(|s| {
        s.refuse.push((
            "GET".into(),
            "/exec".into(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "pods \"x\" is forbidden: User \"limited\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"default\"",
                   "reason": "Forbidden", "code": 403}),
        ))
    });
    let (out, _) = run(
        Some(&fake),
        &["attach", "node/worker2", "--binary", prog.to_str().unwrap()],
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("upload hopscope to pod default/hopscope-worker2-"),
        "{err}"
    );
    assert!(
        err.contains("lack `create` on `pods/exec` in namespace default"),
        "{err}"
    );
    assert_eq!(created_and_deleted(&fake), (1, 1));
}

fn cmd(fake: Option<&FakeApi>, args: &[&str]) -> Command {
    let home = std::env::temp_dir().join(format!("hopscope-attach-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_hopscope"));
    c.args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("HOPSCOPE_IMAGE")
        .env("HOME", &home)
        .stdin(Stdio::null());
    if let Some(f) = fake {
        c.env("KUBECONFIG", f.kubeconfig());
    }
    c
}

fn run(fake: Option<&FakeApi>, args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let out = cmd(fake, args).output().unwrap();
    (out, t.elapsed())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn created_and_deleted(fake: &FakeApi) -> (usize, usize) {
    let log = fake.log();
    let posts = log
        .iter()
        .filter(|l| l.starts_with("POST /api/v1/namespaces/default/pods"))
        .count();
    let deletes = log
        .iter()
        .filter(|l| l.starts_with("DELETE /api/v1/namespaces/default/pods/hopscope-worker2-"))
        .count();
    (posts, deletes)
}

#[test]
fn dry_run_prints_the_manifest_and_contacts_nothing() {
    let fake = FakeApi::start();
    let (out, _) = run(
        Some(&fake),
        &[
            "attach",
            "node/worker2",
            "--dry-run",
            "--privileged",
            "--",
            "snapshot",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let y = text(&out.stdout);
    assert!(y.starts_with("apiVersion: v1\nkind: Pod\n"), "{y}");
    assert!(y.contains("nodeName: worker2"), "{y}");
    assert!(y.contains("privileged: true"), "{y}");
    assert!(y.contains("image: docker.io/library/busybox:1.37"), "{y}");
    assert!(
        y.ends_with("and run: /hopscope/hopscope snapshot --json\n"),
        "{y}"
    );
    assert_eq!(fake.log(), Vec::<String>::new());
    // With an image that has hopscope, the arguments are the container's.
    let (out, _) = run(
        Some(&fake),
        &[
            "attach",
            "worker2",
            "--dry-run",
            "--image",
            IMAGE,
            "--",
            "snapshot",
            "--json",
        ],
    );
    let y = text(&out.stdout);
    assert!(y.contains("- snapshot\n    - --json"), "{y}");
    assert!(!y.contains("# then"), "{y}");
    assert_eq!(fake.log(), Vec::<String>::new());

    // The kubectl plugin is the same binary under another name.
    let plugin = fake.dir().join("kubectl-hopscope");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_hopscope"), &plugin).unwrap();
    let out = Command::new(&plugin)
        .args(["node/worker2", "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("nodeName: worker2"));
}

#[test]
fn attach_failing_still_deletes_the_pod() {
    let fake = FakeApi::start();
    fake.with(|s| {
        s.pod_statuses = vec![
            json!({"phase": "Pending"}),
            json!({"phase": "Pending", "containerStatuses": [{"name": "hopscope", "ready": false, "restartCount": 0, "image": "x", "imageID": "", "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
            json!({"phase": "Running", "containerStatuses": [{"name": "hopscope", "ready": true, "restartCount": 0, "image": "x", "imageID": "", "state": {"running": {"startedAt": "2024-05-21T03:30:05Z"}}}]}),
        ]
    });
    // `worker2` is the short name of cilium-ipsec-native-routing-worker2.
    let (out, took) = run(
        Some(&fake),
        &["attach", "node/worker2", "--image", IMAGE, "--", "snapshot"],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("on node cilium-ipsec-native-routing-worker2"),
        "{err}"
    );
    assert!(err.contains(": Pending (ContainerCreating)"), "{err}");
    assert!(err.contains(": Running"), "{err}");
    assert!(err.contains("error dialing backend"), "{err}");
    assert!(
        err.contains("deleted pod default/hopscope-worker2-"),
        "{err}"
    );
    assert_eq!(created_and_deleted(&fake), (1, 1));
    assert!(fake.with(|s| s.created.is_empty()));
    // What the pod was created with: pinned, host namespaces, the args after --.
    let log = fake.log();
    let order: Vec<&str> = log
        .iter()
        .map(|l| l.split('?').next().unwrap())
        .filter(|l| !l.contains("/nodes"))
        .collect();
    assert!(order.iter().any(|l| l.ends_with("/attach")), "{log:?}");
    assert!(order.last().unwrap().starts_with("DELETE "), "{log:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");

    fake.with(|s| s.attach = AttachReply::Forbidden);
    let (out, _) = run(Some(&fake), &["attach", "worker2", "--image", IMAGE]);
    let err = text(&out.stderr);
    assert!(
        err.contains("lack `create` on `pods/attach` in namespace default"),
        "{err}"
    );
    assert_eq!(created_and_deleted(&fake), (2, 2));
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

#[test]
fn sigint_while_waiting_deletes_the_pod() {
    let fake = FakeApi::start();
    fake.with(|s| s.pod_statuses = vec![json!({"phase": "Pending"})]);
    let mut child = cmd(Some(&fake), &["attach", "node/worker2", "--image", IMAGE])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(fake.wait_for(Duration::from_secs(10), |l| {
        l.starts_with("GET /api/v1/namespaces/default/pods/hopscope-worker2-")
    }));
    let t = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exits after SIGINT");
    eprintln!("SIGINT → exit in {:?}", t.elapsed());
    assert_eq!(status.code(), Some(130));
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(err.contains("interrupted (SIGINT)"), "{err}");
    assert!(
        err.contains("deleted pod default/hopscope-worker2-"),
        "{err}"
    );
    assert_eq!(created_and_deleted(&fake), (1, 1));
    assert!(fake.with(|s| s.created.is_empty()));
}

#[test]
fn sigint_while_attaching_deletes_the_pod_and_keep_keeps_it() {
    let fake = FakeApi::start();
    fake.with(|s| s.attach = AttachReply::Hang);
    let mut child = cmd(Some(&fake), &["attach", "node/worker2", "--image", IMAGE])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(fake.wait_for(Duration::from_secs(10), |l| l.contains("/attach?")));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exits after SIGINT");
    assert_eq!(status.code(), Some(130));
    assert_eq!(created_and_deleted(&fake), (1, 1));

    // --keep: the pod stays, and we say how to delete it.
    let mut child = cmd(
        Some(&fake),
        &["attach", "node/worker2", "--image", IMAGE, "--keep"],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    assert!(
        fake.wait_for(Duration::from_secs(10), |l| l.contains("/attach?")
            && fake.with(|s| s.created.len()) == 1)
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(143));
    let err = text(&child.wait_with_output().unwrap().stderr);
    assert!(
        err.contains("keeping pod default/hopscope-worker2-"),
        "{err}"
    );
    assert!(
        err.contains("kubectl delete pod -n default hopscope-worker2-"),
        "{err}"
    );
    assert_eq!(created_and_deleted(&fake), (2, 1));
}

#[test]
fn image_pull_failure_shows_the_event_and_deletes() {
    let fake = FakeApi::start();
    fake.with(|s| {
        s.pod_statuses = vec![json!({"phase": "Pending", "containerStatuses": [{"name": "hopscope", "ready": false, "restartCount": 0, "image": "ghcr.io/hopscope/hopscope:0.0.0-missing", "imageID": "", "state": {"waiting": {"reason": "ErrImagePull", "message": "rpc error: code = NotFound"}}}]})];
        s.events = fixture("events-image-pull.json");
    });
    let (out, _) = run(
        Some(&fake),
        &[
            "attach",
            "node/worker2",
            "--image",
            "ghcr.io/hopscope/hopscope:0.0.0-missing",
        ],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("image ghcr.io/hopscope/hopscope:0.0.0-missing cannot be pulled (ErrImagePull): Failed: Failed to pull image"),
        "{err}"
    );
    assert!(err.contains("deleted pod"), "{err}");
    assert_eq!(created_and_deleted(&fake), (1, 1));
}

#[test]
fn not_running_in_time_says_so_and_deletes() {
    let fake = FakeApi::start();
    fake.with(|s| s.pod_statuses = vec![json!({"phase": "Pending"})]);
    let (out, took) = run(
        Some(&fake),
        &["attach", "node/worker2", "--image", IMAGE, "--timeout", "1"],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("is not running after 1s (phase Pending)"),
        "{err}"
    );
    assert!(
        err.contains("is node cilium-ipsec-native-routing-worker2 Ready?"),
        "{err}"
    );
    assert_eq!(created_and_deleted(&fake), (1, 1));
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn clear_errors_before_anything_is_created() {
    let fake = FakeApi::start();
    // Unknown node: the nodes there are.
    let (out, _) = run(Some(&fake), &["attach", "node/worker9"]);
    let err = text(&out.stderr);
    assert!(
        err.contains("node worker9 not found; nodes: cilium-ipsec-native-routing-control-plane, cilium-ipsec-native-routing-worker, cilium-ipsec-native-routing-worker2"),
        "{err}"
    );
    // RBAC: which verb on which resource.
    fake.with(|s| {
        s.refuse.push((
            "POST".into(),
            "/namespaces/default/pods".into(),
            fixture("status-403-create-pods.json"),
        ))
    });
    let (out, _) = run(Some(&fake), &["attach", "node/worker2", "--image", IMAGE]);
    let err = text(&out.stderr);
    assert!(
        err.contains("forbidden: your credentials lack `create` on `pods` in namespace default"),
        "{err}"
    );
    assert!(
        err.contains("cannot create resource \\\"pods\\\"")
            || err.contains("cannot create resource \"pods\""),
        "{err}"
    );
    assert_eq!(created_and_deleted(&fake).1, 0);
    // No kubeconfig at all.
    let (out, _) = run(None, &["attach", "node/worker2", "--image", IMAGE]);
    let err = text(&out.stderr);
    assert!(
        err.contains("attach needs a cluster: no kubeconfig found"),
        "{err}"
    );
    // A context that is not there.
    let (out, _) = run(
        Some(&fake),
        &[
            "attach",
            "node/worker2",
            "--image",
            IMAGE,
            "--context",
            "prod",
        ],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("prod"), "{err}");
    // A dead API: the connection error, quickly.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        fake.kubeconfig(),
        kube_support::kubeconfig(&format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    let (out, took) = run(Some(&fake), &["attach", "node/worker2"]);
    let err = text(&out.stderr);
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn attach_streams_output_and_passes_the_exit_code_then_deletes() {
    let fake = FakeApi::start();
    fake.with(|s| {
        s.attach = AttachReply::Stream {
            stdout: "node cilium-ipsec-native-routing-worker2  kernel 5.11.5  own netns\n".into(),
            exit: 3,
        }
    });
    let (out, took) = run(
        Some(&fake),
        &["attach", "node/worker2", "--image", IMAGE, "--", "snapshot"],
    );
    let err = text(&out.stderr);
    assert_eq!(
        text(&out.stdout),
        "node cilium-ipsec-native-routing-worker2  kernel 5.11.5  own netns\n",
        "{err}"
    );
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("deleted pod default/hopscope-worker2-"),
        "{err}"
    );
    assert_eq!(created_and_deleted(&fake), (1, 1));
    assert!(took < Duration::from_secs(10), "{took:?}");

    fake.with(|s| {
        s.attach = AttachReply::Stream {
            stdout: "ok\n".into(),
            exit: 0,
        }
    });
    let (out, _) = run(Some(&fake), &["attach", "node/worker2", "--image", IMAGE]);
    assert_eq!(text(&out.stdout), "ok\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(created_and_deleted(&fake), (2, 2));
}

#[test]
fn attach_sends_local_stdin_to_the_pod() {
    let fake = FakeApi::start();
    fake.with(|s| {
        s.attach = AttachReply::Stream {
            stdout: "bye\n".into(),
            exit: 0,
        };
        s.attach_waits_for = Some(0);
    });
    let mut child = cmd(Some(&fake), &["attach", "node/worker2", "--image", IMAGE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"q\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let got = fake.with(|s| s.ws_received.clone());
    assert!(got.contains(&(0, b"q\n".to_vec())), "{got:?}");
    assert_eq!(created_and_deleted(&fake), (1, 1));
}

/// Under a terminal (util-linux `script` gives one): the pod gets `tty: true`, our terminal's
/// size goes to it on the resize channel (4), and the session still ends with the pod deleted.
#[test]
fn attach_under_a_terminal_sends_its_size() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) to make a terminal");
        return;
    }
    let fake = FakeApi::start();
    fake.with(|s| {
        s.attach = AttachReply::Stream {
            stdout: "tui\r\n".into(),
            exit: 0,
        };
        s.attach_waits_for = Some(4);
    });
    let line = format!(
        "stty cols 100 rows 30; {} attach node/worker2 --image {IMAGE}",
        env!("CARGO_BIN_EXE_hopscope")
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("KUBECONFIG", fake.kubeconfig())
        .env("TERM", "xterm-256color")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("HOPSCOPE_IMAGE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let all = text(&out.stdout);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("tui"), "{all}");
    assert!(
        all.contains("deleted pod default/hopscope-worker2-"),
        "{all}"
    );
    let created: Vec<String> = fake.log();
    assert!(
        created.iter().any(|l| l.contains("tty=true")),
        "{created:?}"
    );
    let got = fake.with(|s| s.ws_received.clone());
    let sizes: Vec<String> = got
        .iter()
        .filter(|(ch, _)| *ch == 4)
        .map(|(_, p)| text(p))
        .collect();
    assert!(
        sizes.contains(&r#"{"Width":100,"Height":30}"#.to_string()),
        "{got:?}"
    );
}

/// The uploaded hopscope runs through an exec with a TTY when ours is one: the exec asks for
/// `tty=true` and our terminal's size goes on the resize channel (4).
#[test]
fn upload_then_run_under_a_terminal_sends_its_size() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) to make a terminal");
        return;
    }
    let Some((fake, prog)) = with_container(&APPLETS) else {
        return;
    };
    let line = format!(
        "stty cols 120 rows 40; {} attach node/worker2 --binary {} -- tui",
        env!("CARGO_BIN_EXE_hopscope"),
        prog.display()
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("KUBECONFIG", fake.kubeconfig())
        .env("TERM", "xterm-256color")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("HOPSCOPE_IMAGE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let all = text(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{all}");
    assert!(all.contains("[/hopscope/hopscope][tui]"), "{all}");
    assert!(all.contains("checked in the pod"), "{all}");
    let log = fake.log();
    let run = log
        .iter()
        .filter(|l| l.contains("/exec?"))
        .nth(1)
        .unwrap_or_else(|| panic!("{log:?}"));
    assert!(run.contains("tty=true"), "{run}");
    let got = fake.with(|s| s.ws_received.clone());
    assert!(
        got.contains(&(4, br#"{"Width":120,"Height":40}"#.to_vec())),
        "{got:?}"
    );
    assert_eq!(created_and_deleted(&fake), (1, 1));
}

/// What the pod's `HOPSCOPE_NETNS_DIR` does: `--netns NAME` is looked up there — here through
/// another process's root (`/proc/PID/root`, this test's) as the pod goes through the node's
/// PID 1 to reach /run/netns without a host path. (PID 1's root here need not be ours.)
#[test]
fn netns_names_are_read_from_the_dir_the_pod_names() {
    let fake = FakeApi::start();
    let dir = fake.dir().join("netns");
    std::fs::create_dir_all(&dir).unwrap();
    let through_root = format!("/proc/{}/root{}", std::process::id(), dir.display());
    let snapshot = |name: &str| {
        cmd(None, &["snapshot", "--no-kube", "--netns", name])
            .env("HOPSCOPE_NETNS_DIR", &through_root)
            .output()
            .unwrap()
    };
    let out = snapshot("cni-1234");
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("no named netns exist in {through_root}")),
        "{err}"
    );
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped the named case: needs root (setns)");
        return;
    }
    // A name for our own netns, as `ip netns` would leave one.
    std::os::unix::fs::symlink("/proc/self/ns/net", dir.join("cni-own")).unwrap();
    let out = snapshot("cni-own");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("== links ("),
        "{}",
        text(&out.stdout)
    );
    let out = snapshot("cni-other");
    assert!(
        text(&out.stderr).contains("known: cni-own"),
        "{}",
        text(&out.stderr)
    );
}

/// To try the upload by hand: `HOPSCOPE_FAKE_SECONDS=300 cargo test --test kube_attach --
/// --ignored serve_the_fake_api_with_a_busybox_pod --nocapture` prints a kubeconfig and a
/// static program; `KUBECONFIG=… hopscope attach node/worker2 --binary …` then uploads into
/// the busybox chroot and runs it there.
#[test]
#[ignore]
fn serve_the_fake_api_with_a_busybox_pod() {
    let Some((fake, prog)) = with_container(&APPLETS) else {
        return;
    };
    let secs: u64 = std::env::var("HOPSCOPE_FAKE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    println!("KUBECONFIG={}", fake.kubeconfig().display());
    println!("--binary {}", prog.display());
    std::thread::sleep(Duration::from_secs(secs));
    println!("requests:\n{}", fake.log().join("\n"));
}
