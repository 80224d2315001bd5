//! Names for addresses from a (fake) Kubernetes API: the seed cluster's pods, nodes, services
//! and CiliumNodes as a real API server returns them (tests/fixtures/kube), list + watch.
//! What the fake is and why: tests/kube_support/mod.rs.

mod kube_support;

use hopscope::kube::KubeArgs;
use hopscope::kube::names::{NamesWatch, load};
use hopscope::model::names::NameKind;
use kube_support::{FakeApi, Mode, fixture};
use serde_json::json;
use std::net::IpAddr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn args(fake: &FakeApi) -> KubeArgs {
    KubeArgs {
        kubeconfig: Some(fake.kubeconfig()),
        ..Default::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn label(w: &NamesWatch, s: &str) -> Option<String> {
    w.names().label(&ip(s))
}

#[test]
fn names_appear_for_pods_nodes_services_and_cilium_addresses() {
    let fake = FakeApi::start();
    let w = NamesWatch::start(&args(&fake));
    assert!(w.wait_settled(Duration::from_secs(10)));
    assert_eq!(w.notices(), Vec::<String>::new());
    let n = w.names();
    assert_eq!(n.annotate("10.0.1.52"), "10.0.1.52 (default/net)");
    assert_eq!(n.annotate("10.0.0.249"), "10.0.0.249 (default/cni-fcnh6)");
    assert_eq!(n.annotate("172.18.0.4"), "172.18.0.4 (worker2)");
    // kube-proxy and cilium run with hostNetwork: the address stays the node's.
    assert_eq!(n.annotate("172.18.0.3"), "172.18.0.3 (worker)");
    assert_eq!(n.get(&ip("172.18.0.3")).unwrap().kind, NameKind::Node);
    assert_eq!(
        n.annotate("10.96.0.10"),
        "10.96.0.10 (kube-system/kube-dns)"
    );
    assert_eq!(
        n.annotate("10.96.169.246"),
        "10.96.169.246 (default/serversvc)"
    );
    assert_eq!(n.annotate("10.0.1.138"), "10.0.1.138 (worker cilium_host)");
    assert_eq!(n.annotate("10.0.0.40"), "10.0.0.40 (worker2 cilium_host)");
    assert_eq!(
        n.annotate("10.0.1.197"),
        "10.0.1.197 (worker cilium-health)"
    );
    // A finished pod's address is not claimed; it is in worker's pod CIDR.
    assert_eq!(n.annotate("10.0.1.77"), "10.0.1.77 (worker pods)");
    assert_eq!(
        n.annotate("10.0.2.0/24"),
        "10.0.2.0/24 (control-plane pods)"
    );
    let keys: Vec<(String, Option<u32>)> = n
        .cilium_nodes
        .iter()
        .map(|c| (c.label.clone(), c.encryption_key))
        .collect();
    assert_eq!(
        keys,
        [
            ("control-plane".to_string(), Some(3)),
            ("worker".to_string(), Some(3)),
            ("worker2".to_string(), Some(3))
        ]
    );
    // The table is plain data: it goes through JSON and back.
    let back: hopscope::model::Names =
        serde_json::from_str(&serde_json::to_string(&*n).unwrap()).unwrap();
    assert_eq!(back, *n);
}

#[test]
fn a_watch_event_renames_an_address() {
    let fake = FakeApi::start();
    let w = NamesWatch::start(&args(&fake));
    assert!(w.wait_settled(Duration::from_secs(10)));
    assert_eq!(label(&w, "10.0.1.52").as_deref(), Some("default/net"));
    let pods = fixture("pods.json");
    let mut net = pods["items"][0].clone();
    net["apiVersion"] = json!("v1");
    net["kind"] = json!("Pod");
    let mut renamed = net.clone();
    renamed["metadata"]["name"] = json!("net2");
    renamed["metadata"]["resourceVersion"] = json!("1601");
    net["metadata"]["resourceVersion"] = json!("1600");
    assert!(fake.wait_for(
        Duration::from_secs(5),
        |l| l.starts_with("GET /api/v1/pods?") && l.contains("watch=true")
    ));
    let before = w.generation();
    fake.push_watch_event("/api/v1/pods", "DELETED", net);
    fake.push_watch_event("/api/v1/pods", "ADDED", renamed);
    let end = Instant::now() + Duration::from_secs(5);
    while label(&w, "10.0.1.52").as_deref() != Some("default/net2") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(label(&w, "10.0.1.52").as_deref(), Some("default/net2"));
    assert!(w.generation() > before);
    // A node going away takes its names with it (CiliumNode MODIFIED/DELETED likewise).
    let cn = fixture("ciliumnodes.json")["items"][2].clone();
    fake.push_watch_event("/apis/cilium.io/v2/ciliumnodes", "DELETED", cn);
    let end = Instant::now() + Duration::from_secs(5);
    while label(&w, "10.0.0.40").is_some() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(label(&w, "10.0.0.40"), None);
}

#[test]
fn a_cluster_without_the_ciliumnode_crd_is_fine_and_quiet() {
    let fake = FakeApi::start();
    fake.with(|s| s.missing.push("/apis/cilium.io/v2/ciliumnodes".into()));
    let t = Instant::now();
    let (names, notice) = load(&args(&fake), Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(notice, None);
    assert_eq!(names.annotate("10.0.1.52"), "10.0.1.52 (default/net)");
    assert_eq!(names.annotate("10.0.1.138"), "10.0.1.138");
    assert!(names.cilium_nodes.is_empty());
}

#[test]
fn a_500_api_degrades_to_no_names_with_one_notice_quickly() {
    let fake = FakeApi::start();
    fake.with(|s| s.mode = Mode::Fail500);
    let t = Instant::now();
    let (names, notice) = load(&args(&fake), Duration::from_secs(10));
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(names.is_empty());
    let notice = notice.expect("a notice");
    assert!(notice.contains("HTTP 500"), "{notice}");
    assert!(notice.contains("etcdserver: request timed out"), "{notice}");
    assert!(!notice.contains('\n'));
}

#[test]
fn a_hanging_api_degrades_within_the_list_timeout() {
    let fake = FakeApi::start();
    fake.with(|s| s.mode = Mode::Hang);
    let t = Instant::now();
    let (names, notice) = load(&args(&fake), Duration::from_secs(10));
    let took = t.elapsed();
    // LIST_TIMEOUT (4 s) bounds each list; the four run at once.
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert!(took >= hopscope::kube::names::LIST_TIMEOUT, "took {took:?}");
    assert!(names.is_empty());
    assert!(notice.expect("a notice").contains("no answer within"));
}

#[test]
fn a_dead_api_degrades_at_once() {
    // A port nobody listens on: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fake = FakeApi::start();
    std::fs::write(
        fake.kubeconfig(),
        kube_support::kubeconfig(&format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    let t = Instant::now();
    let (names, notice) = load(&args(&fake), Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(names.is_empty());
    let notice = notice.unwrap();
    assert!(
        notice.to_lowercase().contains("connection refused"),
        "{notice}"
    );
}

// ---- the command line ----

fn hopscope(fake: Option<&FakeApi>, args: &[&str]) -> (Output, Duration) {
    let home = std::env::temp_dir().join(format!("hopscope-kube-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hopscope"));
    cmd.args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", &home);
    if let Some(f) = fake {
        cmd.env("KUBECONFIG", f.kubeconfig());
    }
    let t = Instant::now();
    let out = cmd.output().unwrap();
    (out, t.elapsed())
}

/// The seed's worker and worker2 as recorded snapshots, for `trace --state`.
fn seed_states(fake: &FakeApi) -> Vec<String> {
    let mut v = Vec::new();
    for n in ["worker", "worker2"] {
        let p = fake.dir().join(format!("{n}.json"));
        std::fs::write(
            &p,
            hopscope::view::json::render(&hopscope::model::fixtures::seed_node(n), false),
        )
        .unwrap();
        v.push("--state".to_string());
        v.push(p.display().to_string());
    }
    v
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn trace_text_and_json_name_the_addresses() {
    let fake = FakeApi::start();
    let states = seed_states(&fake);
    let mut a: Vec<&str> = vec!["trace", "10.0.1.52", "10.0.0.249"];
    a.extend(states.iter().map(String::as_str));
    let (out, _) = hopscope(Some(&fake), &a);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    assert!(
        stdout.starts_with("trace 10.0.1.52 (default/net) → 10.0.0.249 (default/cni-fcnh6) icmp"),
        "{stdout}"
    );
    assert!(stdout.contains("\nnames:\n"), "{stdout}");
    assert!(
        stdout.contains("10.0.1.138       worker cilium_host"),
        "{stdout}"
    );

    a.push("--json");
    let (out, _) = hopscope(Some(&fake), &a);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["names"]["10.0.1.52"], "default/net");
    assert_eq!(v["names"]["10.0.0.40"], "worker2 cilium_host");
    assert_eq!(v["flow"]["src"], "10.0.1.52");
}

#[test]
fn trace_takes_pods_and_services_by_name() {
    let fake = FakeApi::start();
    let states = seed_states(&fake);
    let mut a: Vec<&str> = vec![
        "trace",
        "pod/default/net",
        "pod/default/cni-fcnh6",
        "--json",
    ];
    a.extend(states.iter().map(String::as_str));
    let (out, _) = hopscope(Some(&fake), &a);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["flow"]["src"], "10.0.1.52");
    assert_eq!(v["flow"]["dst"], "10.0.0.249");
    assert!(text(&out.stderr).contains("pod/default/net is 10.0.1.52"));

    let mut a: Vec<&str> = vec![
        "trace",
        "pod/default/net",
        "svc/kube-system/kube-dns",
        "--json",
    ];
    a.extend(states.iter().map(String::as_str));
    let (out, _) = hopscope(Some(&fake), &a);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["flow"]["dst"], "10.96.0.10");
}

#[test]
fn trace_of_an_unknown_pod_lists_close_matches() {
    let fake = FakeApi::start();
    let (out, _) = hopscope(
        Some(&fake),
        &["trace", "pod/default/cni-fcnh7", "10.0.0.249"],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no pods named \"cni-fcnh7\" in namespace default"),
        "{err}"
    );
    assert!(err.contains("did you mean: pod/default/cni-fcnh6"), "{err}");
    // The right name in the wrong namespace.
    let (out, _) = hopscope(
        Some(&fake),
        &["trace", "pod/default/kube-dns-x", "10.0.0.249"],
    );
    assert!(!out.status.success());
    let (out, _) = hopscope(
        Some(&fake),
        &["trace", "svc/default/kube-dns", "10.0.0.249"],
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("did you mean: svc/kube-system/kube-dns"),
        "{err}"
    );
}

#[test]
fn without_credentials_nothing_is_said_and_no_kube_asks_nothing() {
    let fake = FakeApi::start();
    let states = seed_states(&fake);
    let mut a: Vec<&str> = vec!["trace", "10.0.1.52", "10.0.0.249"];
    a.extend(states.iter().map(String::as_str));
    let (out, _) = hopscope(None, &a);
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "");
    assert!(text(&out.stdout).starts_with("trace 10.0.1.52 → 10.0.0.249"));
    assert!(!text(&out.stdout).contains("names:"));

    a.push("--no-kube");
    let (out, _) = hopscope(Some(&fake), &a);
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "");
    assert!(!text(&out.stdout).contains("names:"));
    assert_eq!(fake.log(), Vec::<String>::new());
}

#[test]
fn a_broken_api_costs_a_bounded_wait_and_one_line() {
    let fake = FakeApi::start();
    let states = seed_states(&fake);
    let mut a: Vec<&str> = vec!["trace", "10.0.1.52", "10.0.0.249"];
    a.extend(states.iter().map(String::as_str));

    fake.with(|s| s.mode = Mode::Fail500);
    let (out, took) = hopscope(Some(&fake), &a);
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("hopscope: kubernetes: list "), "{err}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(!text(&out.stdout).contains("names:"));

    fake.with(|s| s.mode = Mode::Hang);
    let (out, took) = hopscope(Some(&fake), &a);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );
    assert!(took < Duration::from_secs(7), "{took:?}");
    eprintln!("hanging API: trace finished in {took:?}");
}

#[test]
fn snapshot_text_names_addresses() {
    // The own netns has no cluster addresses; the recorded worker state shows the names.
    let state = hopscope::model::fixtures::seed_node("worker");
    let fake = FakeApi::start();
    let (names, _) = load(&args(&fake), Duration::from_secs(10));
    let text = hopscope::view::text::render(&state, false, &names);
    assert!(
        text.contains("10.0.1.138/32 (worker cilium_host)"),
        "{text}"
    );
    assert!(text.contains("172.18.0.3/16 (worker)"), "{text}");
    assert!(text.contains("10.0.0.0/24 (worker2 pods)"), "{text}");
    assert!(text.contains("172.18.0.4 (worker2)"), "{text}");
    // And with an empty table, the same view is unchanged.
    let plain = hopscope::view::text::render(&state, false, &Default::default());
    assert!(!plain.contains("(worker"));
}

/// For trying things by hand: `HOPSCOPE_FAKE_SECONDS=300 cargo test --test kube_names --
/// --ignored serve_the_fake_api --nocapture` prints a kubeconfig path to use with any
/// hopscope command (and writes the seed's worker/worker2 states beside it).
#[test]
#[ignore]
fn serve_the_fake_api() {
    let fake = FakeApi::start();
    let states = seed_states(&fake);
    let secs: u64 = std::env::var("HOPSCOPE_FAKE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    println!("KUBECONFIG={}", fake.kubeconfig().display());
    println!("states: {}", states.join(" "));
    std::thread::sleep(Duration::from_secs(secs));
    println!("requests:\n{}", fake.log().join("\n"));
}

/// A throwaway netns with a veth pair carrying the seed pod's address 10.0.1.52 (named
/// `default/net` by the fake API); deleted when the guard drops.
struct PodNetns(String);
impl Drop for PodNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}
fn pod_netns(tag: &str) -> PodNetns {
    let ns = PodNetns(format!("hs-{tag}-{}", std::process::id()));
    let ip = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ip(&["netns", "add", &ns.0]);
    for c in [
        "link add v0 type veth peer name v1",
        "link set v0 up",
        "link set v1 up",
        "addr add 10.0.1.52/24 dev v0",
        "neigh add 10.0.1.249 lladdr 02:00:00:00:00:01 dev v0",
    ] {
        let mut a = vec!["-n", ns.0.as_str()];
        a.extend(c.split_whitespace());
        ip(&a);
    }
    ns
}

#[test]
fn capture_lines_name_the_addresses() {
    // A veth in a throwaway netns carrying the seed pod's address: pings from 10.0.1.52
    // (default/net in the fake cluster) to 10.0.0.249 are captured and named.
    let pod = pod_netns("kcap");
    let ns = pod.0.clone();
    let fake = FakeApi::start();
    let home = std::env::temp_dir().join(format!("hopscope-kube-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let err_file = home.join("kcap.err");
    let child = Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args([
            "capture",
            "--netns",
            &ns,
            "-i",
            "v1",
            "-f",
            "icmp",
            "-c",
            "2",
            "--duration",
            "20",
        ])
        .env("KUBECONFIG", fake.kubeconfig())
        .env("HOME", &home)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    // Pings before "capturing on" are not captured.
    let t0 = Instant::now();
    while !std::fs::read_to_string(&err_file)
        .unwrap_or_default()
        .contains("capturing on")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "capture did not start: {}",
            std::fs::read_to_string(&err_file).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20)); // the poll interval
    }
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "ping",
            "-c",
            "3",
            "-i",
            "0.3",
            "-W",
            "1",
            "10.0.1.249",
        ])
        .output();
    let out = child.wait_with_output().unwrap();
    let lines = text(&out.stdout);
    let err = std::fs::read_to_string(&err_file).unwrap_or_default();
    assert!(out.status.success(), "{err}");
    assert!(
        lines.contains("10.0.1.52 > 10.0.1.249: ICMP echo request"),
        "{lines}"
    );
    assert!(
        lines.contains("  [10.0.1.52 default/net, 10.0.1.249 worker pods]"),
        "names on the packet lines: {lines}"
    );
}

#[test]
fn the_tui_names_addresses_in_its_panes() {
    let pod = pod_netns("ktui");
    let fake = FakeApi::start();
    let home = std::env::temp_dir().join(format!("hopscope-kube-home-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let session = format!("hs-ktui-{}", std::process::id());
    let cmd = format!(
        "env KUBECONFIG={} HOME={} {} --netns {}",
        fake.kubeconfig().display(),
        home.display(),
        env!("CARGO_BIN_EXE_hopscope"),
        pod.0
    );
    let tmux = |args: &[&str]| Command::new("tmux").args(args).output().unwrap();
    assert!(
        tmux(&[
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "160",
            "-y",
            "30",
            &cmd
        ])
        .status
        .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut screen = String::new();
    while Instant::now() < deadline {
        screen = text(&tmux(&["capture-pane", "-p", "-t", &session]).stdout);
        if screen.contains("(default/net)") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = tmux(&["send-keys", "-t", &session, "q"]);
    // The session ends with the TUI (its only command): then nothing is left running.
    let t0 = Instant::now();
    while tmux(&["has-session", "-t", &session]).status.success()
        && t0.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20)); // the poll interval
    }
    let _ = tmux(&["kill-session", "-t", &session]);
    assert!(
        screen.contains("10.0.1.52/24 (default/net)"),
        "the Links pane names the pod address:\n{screen}"
    );
}
