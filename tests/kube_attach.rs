//! `hopscope attach node/NAME` against the fake API server (tests/kube_support): the pod
//! manifest (snapshot), and the create → wait → delete lifecycle, including deletion on
//! SIGINT and when attaching fails.
//!
//! What is exercised: every API call of the lifecycle (get/list nodes, create pod, get pod
//! while waiting, list events, the attach websocket, delete pod), the errors a cluster gives
//! (404 node, 403 create, image pull failure with its event, not running in time, attach
//! failing with 500 or hanging), signals (SIGINT while waiting and while attaching, SIGTERM
//! with --keep), and the attach stream itself through kube's websocket client (output on
//! channel 1, the exit status on channel 3, our stdin on 0, the terminal size on 4 under a
//! `script` terminal). What is not: keys in a live TUI session, window-size changes.

mod kube_support;

use hopscope::kube::attach::{PodPlan, manifest_yaml};
use kube_support::{AttachReply, FakeApi, fixture};
use serde_json::json;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn plan(privileged: bool) -> PodPlan {
    PodPlan {
        name: "hopscope-worker2-k3x9a".into(),
        namespace: "default".into(),
        node: "cilium-ipsec-native-routing-worker2".into(),
        image: "ghcr.io/hopscope/hopscope:0.1.0".into(),
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
    insta::assert_snapshot!("attach_pod_manifest", manifest_yaml(&plan(false)).unwrap());
    insta::assert_snapshot!(
        "attach_pod_manifest_privileged",
        manifest_yaml(&plan(true)).unwrap()
    );
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
    assert!(y.contains("- snapshot\n    - --json"), "{y}");
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
    let (out, took) = run(Some(&fake), &["attach", "node/worker2", "--", "snapshot"]);
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
    let (out, _) = run(Some(&fake), &["attach", "worker2"]);
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
    let mut child = cmd(Some(&fake), &["attach", "node/worker2"])
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
    let mut child = cmd(Some(&fake), &["attach", "node/worker2"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(fake.wait_for(Duration::from_secs(10), |l| l.contains("/attach?")));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("exits after SIGINT");
    assert_eq!(status.code(), Some(130));
    assert_eq!(created_and_deleted(&fake), (1, 1));

    // --keep: the pod stays, and we say how to delete it.
    let mut child = cmd(Some(&fake), &["attach", "node/worker2", "--keep"])
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
    let (out, took) = run(Some(&fake), &["attach", "node/worker2", "--timeout", "1"]);
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
    let (out, _) = run(Some(&fake), &["attach", "node/worker2"]);
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
    let (out, _) = run(None, &["attach", "node/worker2"]);
    let err = text(&out.stderr);
    assert!(
        err.contains("attach needs a cluster: no kubeconfig found"),
        "{err}"
    );
    // A context that is not there.
    let (out, _) = run(
        Some(&fake),
        &["attach", "node/worker2", "--context", "prod"],
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
    let (out, took) = run(Some(&fake), &["attach", "node/worker2", "--", "snapshot"]);
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
    let (out, _) = run(Some(&fake), &["attach", "node/worker2"]);
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
        }
    });
    let mut child = cmd(Some(&fake), &["attach", "node/worker2"])
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
        }
    });
    let line = format!(
        "stty cols 100 rows 30; {} attach node/worker2",
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
