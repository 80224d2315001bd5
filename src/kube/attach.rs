//! The pod behind `hopscope attach node/NAME` (the command itself, its arguments and
//! `--dry-run`, is `cmd::attach`): the debug pod's manifest, and its lifecycle — create it,
//! attach the terminal to hopscope in it, and delete it afterwards.
//!
//! The pod runs a stock image (busybox by default) and hopscope's own static binary is sent
//! into it over the exec stream (`upload`), so no image has to be published; `--image` names
//! one that already has hopscope instead, which is then attached to as it runs.
//!
//! This is the only place hopscope writes to anything: it creates one pod of its own and
//! deletes it again — when the session ends, on Ctrl-C/SIGINT, SIGTERM, SIGHUP (terminal gone)
//! or a dropped connection — unless `--keep`.

use super::upload::{self, BIN_DIR, BIN_PATH, Payload};
use super::{Connect, KubeArgs, describe_error, status_code};
use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, Container, EmptyDirVolumeSource, EnvVar, Event, Node, Pod,
    PodSpec, SeccompProfile, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, AttachParams, DeleteParams, ListParams, PostParams};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The capabilities of the default (not `--privileged`) pod for the TUI, the doctor and every
/// mode not listed in `capabilities_for`, each for one thing hopscope does on the node
/// (docs/kube.md says which); every other one is dropped.
pub const CAPABILITIES: [&str; 5] = [
    "NET_ADMIN",
    "NET_RAW",
    "SYS_ADMIN",
    "SYS_PTRACE",
    "SYS_CHROOT",
];

/// The capabilities a pod running `hopscope ARGS` gets: `snapshot` reads XFRM (NET_ADMIN) and
/// the node's netns names through /proc/1/root (SYS_PTRACE); `capture` opens packet sockets
/// too (NET_RAW); `trace` also runs the node's iptables-save (NET_RAW for the legacy one,
/// SYS_CHROOT for /proc/1/root); each adds SYS_ADMIN only when it enters another netns
/// (`--netns`, `--pid`). Anything else (the TUI, `doctor`, which walk every netns) gets all
/// of `CAPABILITIES`.
pub fn capabilities_for(args: &[String]) -> Vec<&'static str> {
    let mode = args
        .iter()
        .find(|a| ["snapshot", "capture", "trace"].contains(&a.as_str()));
    let enters_netns = args.iter().any(|a| {
        ["--netns", "--pid"]
            .iter()
            .any(|f| a == f || a.starts_with(&format!("{f}=")))
    });
    let mut caps = match mode.map(String::as_str) {
        Some("snapshot") => vec!["NET_ADMIN", "SYS_PTRACE"],
        Some("capture") => vec!["NET_ADMIN", "NET_RAW", "SYS_PTRACE"],
        Some("trace") => vec!["NET_ADMIN", "NET_RAW", "SYS_PTRACE", "SYS_CHROOT"],
        _ => return CAPABILITIES.to_vec(),
    };
    if enters_netns {
        caps.push("SYS_ADMIN");
    }
    caps
}
/// The node's named netns, reached through the node's root (hostPID) instead of a hostPath
/// that not every node has; hopscope in the pod reads this from $HOPSCOPE_NETNS_DIR.
pub const NODE_NETNS_DIR: &str = "/proc/1/root/run/netns";
/// The emptyDir: the uploaded binary, and any file the user has hopscope write.
const SCRATCH_LIMIT: &str = "256Mi";
/// The label every pod hopscope creates carries (`kubectl delete pod -l` finds leftovers).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "hopscope");
const CONTAINER: &str = "hopscope";
/// Each API call of the lifecycle may take this long.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Deleting on the way out may take this long before we give up and say how to do it.
const DELETE_TIMEOUT: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(500);

/// How hopscope gets into the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// The image is a stock one: the pod idles, hopscope's binary is uploaded and exec'd.
    Upload,
    /// The image has hopscope: it is the container's command, attached to as it runs.
    InImage,
}

/// Everything the pod manifest depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlan {
    pub name: String,
    pub namespace: String,
    /// The node's full name (pinned with `nodeName`: no scheduler involved).
    pub node: String,
    pub image: String,
    pub launch: Launch,
    pub privileged: bool,
    pub args: Vec<String>,
    /// Allocate a TTY (the local terminal is one).
    pub tty: bool,
    /// $TERM to pass to a TTY session.
    pub term: Option<String>,
}

/// `node/worker2` → `worker2`.
pub fn node_arg(s: &str) -> Result<&str> {
    let name = match s.split_once('/') {
        Some(("node" | "nodes" | "no", n)) => n,
        Some((kind, _)) => bail!("attach takes a node (node/NAME), not {kind:?}"),
        None => s,
    };
    if name.is_empty() {
        bail!("attach needs a node name: node/NAME");
    }
    Ok(name)
}

/// `hopscope-worker2-k3x9a`: a DNS label, unique enough to run several at once.
pub fn pod_name(node: &str, suffix: &str) -> String {
    let short: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let short = short.trim_matches('-');
    // 63 characters at most: "hopscope-" + node + "-" + suffix.
    let room = 63 - "hopscope-".len() - 1 - suffix.len();
    let short = short[..short.len().min(room)].trim_end_matches('-');
    format!("hopscope-{short}-{suffix}")
}

/// Five base-36 characters from the clock and our pid.
pub fn random_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut x = (nanos as u64) ^ (u64::from(std::process::id()) << 32);
    // xorshift so neighbouring clocks do not give neighbouring names.
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (0..5)
        .map(|_| {
            let d = (x % 36) as u32;
            x /= 36;
            std::char::from_digit(d, 36).unwrap_or('x')
        })
        .collect()
}

/// The debug pod: pinned to the node, host network and PID namespace, the capabilities
/// hopscope needs (or privileged), no service-account token, a read-only root filesystem with
/// an emptyDir for the uploaded binary, tolerating every taint. No host path is mounted.
pub fn manifest(p: &PodPlan) -> Pod {
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "hopscope".to_string()),
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
    ]);
    let security = if p.privileged {
        // Privileged containers run without seccomp or AppArmor confinement and with every
        // capability whatever is set, so only what still applies is set.
        SecurityContext {
            privileged: Some(true),
            read_only_root_filesystem: Some(true),
            run_as_user: Some(0),
            ..Default::default()
        }
    } else {
        SecurityContext {
            capabilities: Some(Capabilities {
                add: Some(
                    capabilities_for(&p.args)
                        .iter()
                        .map(|c| c.to_string())
                        .collect(),
                ),
                drop: Some(vec!["ALL".into()]),
            }),
            // no_new_privs on every process of the container: nothing it runs gains more.
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            // Capabilities of the bounding set reach root only (no ambient ones): whatever
            // USER the image names, hopscope runs as root.
            run_as_user: Some(0),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            // The runtime's default AppArmor profile allows ptrace-read only of its own
            // containers, so /proc/1/root and /proc/PID/ns/net of the node would be denied.
            app_armor_profile: Some(AppArmorProfile {
                type_: "Unconfined".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        }
    };
    let mut env = vec![EnvVar {
        name: "HOPSCOPE_NETNS_DIR".into(),
        value: Some(NODE_NETNS_DIR.into()),
        value_from: None,
    }];
    if let (Some(t), true) = (&p.term, p.tty) {
        env.push(EnvVar {
            name: "TERM".into(),
            value: Some(t.clone()),
            value_from: None,
        });
    }
    let (command, args, stdin, tty) = match p.launch {
        // Idles until deleted; hopscope arrives and runs through exec.
        Launch::Upload => (
            vec!["sleep".to_string(), "2147483647".to_string()],
            None,
            false,
            false,
        ),
        Launch::InImage => (
            vec!["hopscope".to_string()],
            (!p.args.is_empty()).then(|| p.args.clone()),
            true,
            p.tty,
        ),
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(p.name.clone()),
            namespace: Some(p.namespace.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "hopscope/node".to_string(),
                p.node.clone(),
            )])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(p.node.clone()),
            host_network: Some(true),
            host_pid: Some(true),
            dns_policy: Some("ClusterFirstWithHostNet".into()),
            restart_policy: Some("Never".into()),
            termination_grace_period_seconds: Some(1),
            // hopscope reads names with its own credentials when asked; the pod needs none.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".into()),
                ..Default::default()
            }]),
            containers: vec![Container {
                name: CONTAINER.into(),
                image: Some(p.image.clone()),
                image_pull_policy: Some("IfNotPresent".into()),
                command: Some(command),
                args,
                env: Some(env),
                stdin: stdin.then_some(true),
                stdin_once: stdin.then_some(true),
                tty: tty.then_some(true),
                security_context: Some(security),
                volume_mounts: Some(vec![VolumeMount {
                    name: "scratch".into(),
                    mount_path: BIN_DIR.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: "scratch".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: None,
                    size_limit: Some(Quantity(SCRATCH_LIMIT.into())),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The manifest as YAML (what `--dry-run` prints and `kubectl apply -f` takes).
pub fn manifest_yaml(p: &PodPlan) -> Result<String> {
    let mut v = serde_json::to_value(manifest(p))?;
    // apiVersion/kind first, as kubectl prints them.
    if let Some(o) = v.as_object_mut() {
        let mut ordered = serde_json::Map::new();
        for k in ["apiVersion", "kind", "metadata", "spec"] {
            if let Some(x) = o.remove(k) {
                ordered.insert(k.into(), x);
            }
        }
        ordered.extend(std::mem::take(o));
        v = serde_json::Value::Object(ordered);
    }
    serde_saphyr::to_string(&v).map_err(|e| anyhow!("writing the manifest as YAML: {e}"))
}

/// The namespace the kubeconfig's context names, read without contacting anything.
pub fn context_namespace(kube: &KubeArgs) -> Option<String> {
    use kube::config::Kubeconfig;
    let kc = match &kube.kubeconfig {
        Some(p) => Kubeconfig::read_from(p).ok()?,
        None => Kubeconfig::read().ok()?,
    };
    let ctx = kube.context.clone().or(kc.current_context.clone())?;
    kc.contexts
        .iter()
        .find(|c| c.name == ctx)
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.namespace.clone())
}

/// What the user asked for, settled from the arguments and the environment before anything is
/// contacted (`cmd::attach` fills it in).
#[derive(Debug, Clone)]
pub struct Request {
    /// The node as it was typed (`worker2`); found in the cluster by `find_node`.
    pub node: String,
    /// None: the context's namespace.
    pub namespace: Option<String>,
    pub image: String,
    pub launch: Launch,
    /// The static binary to send with `Launch::Upload` (None: this one).
    pub binary: Option<PathBuf>,
    pub privileged: bool,
    pub args: Vec<String>,
    pub keep: bool,
    /// How long the pod may take to run.
    pub timeout: Duration,
    pub tty: bool,
    pub term: Option<String>,
}

impl Request {
    /// The pod for the node's full name, in `namespace`.
    pub fn plan(&self, node: String, namespace: String) -> PodPlan {
        PodPlan {
            // Named after the node as it was typed (`worker2`), which is usually the short name.
            name: pod_name(&self.node, &random_suffix()),
            namespace,
            node,
            image: self.image.clone(),
            launch: self.launch,
            privileged: self.privileged,
            args: self.args.clone(),
            tty: self.tty,
            term: self.term.clone(),
        }
    }
}

/// Why the session ended, for the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// hopscope in the pod exited with this code.
    Exited(i32),
    /// Ctrl-C / SIGINT, SIGTERM or SIGHUP here.
    Signal(i32),
}

/// The pod's whole lifecycle: create, wait, send, attach, delete. Returns the exit code to
/// leave with.
pub fn run(kube: &KubeArgs, want: &Request) -> Result<i32> {
    let rt = super::runtime()?;
    let r = rt.block_on(lifecycle(kube, want));
    // Reading the local stdin happens on a blocking thread that may sit in read(2): do not
    // wait for it.
    rt.shutdown_background();
    r.map(|e| match e {
        Ended::Exited(c) => c,
        Ended::Signal(s) => 128 + s,
    })
}

fn say(msg: &str) {
    eprintln!("hopscope: {msg}");
}

/// Resolves when SIGINT, SIGTERM or SIGHUP arrives; the signal's number.
async fn signalled(
    int: &mut tokio::signal::unix::Signal,
    term: &mut tokio::signal::unix::Signal,
    hup: &mut tokio::signal::unix::Signal,
) -> i32 {
    tokio::select! {
        _ = int.recv() => libc::SIGINT,
        _ = term.recv() => libc::SIGTERM,
        _ = hup.recv() => libc::SIGHUP,
    }
}

async fn lifecycle(kube: &KubeArgs, a: &Request) -> Result<Ended> {
    use tokio::signal::unix::{SignalKind, signal};
    let conn = match super::connect(kube, true).await? {
        Connect::Ready(c) => c,
        Connect::Off => bail!("attach needs the Kubernetes API, but --no-kube was given"),
        Connect::NoCredentials => bail!(
            "attach needs a cluster: no kubeconfig found ($KUBECONFIG, ~/.kube/config or \
             --kubeconfig) and not running in a pod with a service account"
        ),
    };
    let ns = a
        .namespace
        .clone()
        .unwrap_or_else(|| conn.default_namespace.clone());
    let (node, arch) = find_node(&conn.client, &a.node).await?;
    let plan = a.plan(node, ns.clone());
    // What to send is settled before anything is created: a binary that cannot run there
    // is an error with no pod left behind.
    let payload = match plan.launch {
        Launch::Upload => {
            let p = upload::payload(a.binary.as_deref())?;
            upload::check_arch(&p, &plan.node, arch.as_deref())?;
            Some(p)
        }
        Launch::InImage => None,
    };
    let pods: Api<Pod> = Api::namespaced(conn.client.clone(), &ns);

    // Signals are ours from before the pod exists until it is gone again.
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;

    say(&format!(
        "creating pod {ns}/{} on node {} (image {})",
        plan.name, plan.node, plan.image
    ));
    let (pp, pod) = (PostParams::default(), manifest(&plan));
    let create = timed(pods.create(&pp, &pod));
    let created = tokio::select! {
        r = create => Some(r),
        s = signalled(&mut int, &mut term, &mut hup) => {
            // The request may have reached the server: delete by name all the same.
            let _ = cleanup(&pods, &plan.name, a.keep).await;
            return Ok(Ended::Signal(s));
        }
    };
    match created {
        Some(Ok(_)) => {}
        Some(Err(e)) => {
            return Err(anyhow!(explain(
                &e,
                "create",
                "pods",
                &ns,
                &format!("create pod {ns}/{}", plan.name)
            )));
        }
        None => unreachable!(),
    }

    let outcome = tokio::select! {
        r = session(&conn.client, &pods, &plan, a, payload.as_ref()) => r,
        s = signalled(&mut int, &mut term, &mut hup) => {
            eprintln!();
            say(&format!("interrupted ({})", match s { libc::SIGINT => "SIGINT", libc::SIGTERM => "SIGTERM", _ => "SIGHUP" }));
            Ok(Ended::Signal(s))
        }
    };
    // Drop raw mode etc. before talking again (session's guards are gone here).
    let cleaned = tokio::select! {
        r = cleanup(&pods, &plan.name, a.keep) => r,
        // A second Ctrl-C while deleting: stop waiting, say what is left behind.
        _ = signalled(&mut int, &mut term, &mut hup) => Err(anyhow!("interrupted while deleting")),
    };
    if let Err(e) = cleaned {
        say(&format!(
            "could not delete pod {ns}/{}: {e:#}; delete it with: kubectl delete pod -n {ns} {}",
            plan.name, plan.name
        ));
    }
    outcome
}

pub(super) async fn timed<T>(
    f: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(kube::Error::Service(
            format!("no answer within {CALL_TIMEOUT:?}").into(),
        )),
    }
}

/// An API error with what to do about it: RBAC (which verb on which resource), not found.
pub(super) fn explain(
    e: &kube::Error,
    verb: &str,
    resource: &str,
    ns: &str,
    doing: &str,
) -> String {
    match status_code(e) {
        Some(403) => {
            let scope = if ns.is_empty() {
                "cluster-wide".to_string()
            } else {
                format!("in namespace {ns}")
            };
            format!(
                "{doing}: forbidden: your credentials lack `{verb}` on `{resource}` {scope} \
                 (RBAC); the API said: {}",
                match e {
                    kube::Error::Api(s) => s.message.clone(),
                    _ => String::new(),
                }
            )
        }
        Some(401) => format!(
            "{doing}: unauthorized: the API server did not accept the kubeconfig's credentials"
        ),
        _ => describe_error(doing, e),
    }
}

/// The node's architecture as the kubelet reports it (`amd64`, `arm64`).
fn node_arch(n: &Node) -> Option<String> {
    Some(n.status.as_ref()?.node_info.as_ref()?.architecture.clone()).filter(|a| !a.is_empty())
}

/// The node's full name and architecture: exact, or the one node whose name ends in `-NAME`.
async fn find_node(client: &kube::Client, name: &str) -> Result<(String, Option<String>)> {
    let nodes: Api<Node> = Api::all(client.clone());
    match timed(nodes.get(name)).await {
        Ok(n) => return Ok((n.name_any(), node_arch(&n))),
        Err(e) if status_code(&e) == Some(404) => {}
        Err(e) => {
            return Err(anyhow!(explain(
                &e,
                "get",
                "nodes",
                "",
                &format!("get node {name}")
            )));
        }
    }
    let list = timed(nodes.list(&ListParams::default()))
        .await
        .map_err(|e| anyhow!(explain(&e, "list", "nodes", "", "list nodes")))?;
    let all: Vec<String> = list.items.iter().map(|n| n.name_any()).collect();
    let suffix = format!("-{name}");
    let m: Vec<&Node> = list
        .items
        .iter()
        .filter(|n| n.name_any().ends_with(&suffix))
        .collect();
    if let [one] = m[..] {
        return Ok((one.name_any(), node_arch(one)));
    }
    bail!(
        "node {name} not found; nodes: {}",
        if all.is_empty() {
            "none".to_string()
        } else {
            all.join(", ")
        }
    )
}

/// Delete the pod (unless `keep`), without waiting for it to be gone.
async fn cleanup(pods: &Api<Pod>, name: &str, keep: bool) -> Result<()> {
    let ns = pods.namespace().unwrap_or("default").to_string();
    if keep {
        say(&format!(
            "keeping pod {ns}/{name} (--keep); delete it with: kubectl delete pod -n {ns} {name}"
        ));
        return Ok(());
    }
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::background()
    };
    match tokio::time::timeout(DELETE_TIMEOUT, pods.delete(name, &dp)).await {
        Ok(Ok(_)) => {
            say(&format!("deleted pod {ns}/{name}"));
            Ok(())
        }
        Ok(Err(e)) if status_code(&e) == Some(404) => Ok(()),
        Ok(Err(e)) => Err(anyhow!(explain(
            &e,
            "delete",
            "pods",
            &ns,
            &format!("delete pod {ns}/{name}")
        ))),
        Err(_) => Err(anyhow!("no answer within {DELETE_TIMEOUT:?}")),
    }
}

/// Reasons of a waiting container that will not go away by waiting.
const STUCK: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// `Pending (ContainerCreating)`: the phase, and why the container is not running yet.
pub fn pod_progress(p: &Pod) -> (String, Option<String>) {
    let st = p.status.as_ref();
    let phase = st
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let waiting = st
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == CONTAINER))
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone());
    (phase, waiting)
}

/// The newest Warning event of the pod, as `Reason: message`.
async fn last_warning(client: &kube::Client, ns: &str, pod: &str) -> Option<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    let list = timed(events.list(&lp)).await.ok()?;
    list.items
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .max_by_key(|e| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
                .or(e.event_time.as_ref().map(|t| t.0.as_second()))
                .unwrap_or(0)
        })
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.as_deref().unwrap_or("Warning"),
                e.message.as_deref().unwrap_or("")
            )
        })
}

/// Wait for the pod to run (progress on stderr), send hopscope into it if the image has none,
/// then connect the terminal to hopscope there.
async fn session(
    client: &kube::Client,
    pods: &Api<Pod>,
    plan: &PodPlan,
    a: &Request,
    payload: Option<&Payload>,
) -> Result<Ended> {
    wait_running(client, pods, plan, a.timeout).await?;
    if let Some(p) = payload {
        upload::upload(pods, &plan.name, CONTAINER, &plan.image, p).await?;
    }
    connect_terminal(pods, plan).await
}

async fn wait_running(
    client: &kube::Client,
    pods: &Api<Pod>,
    plan: &PodPlan,
    limit: Duration,
) -> Result<()> {
    let ns = &plan.namespace;
    let start = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last_line = String::new();
    loop {
        let pod = timed(pods.get(&plan.name)).await.map_err(|e| {
            anyhow!(explain(
                &e,
                "get",
                "pods",
                ns,
                &format!("get pod {ns}/{}", plan.name)
            ))
        })?;
        let (phase, waiting) = pod_progress(&pod);
        let line = format!(
            "waiting for pod {ns}/{} on {}: {phase}{}",
            plan.name,
            plan.node,
            waiting
                .as_deref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        );
        if line != last_line {
            if tty {
                eprint!("\r\x1b[2K{line} {}s", start.elapsed().as_secs());
            } else {
                eprintln!("hopscope: {line}");
            }
            last_line = line;
        } else if tty {
            eprint!("\r\x1b[2K{line} {}s", start.elapsed().as_secs());
        }
        let done_line = || {
            if tty {
                eprintln!();
            }
        };
        match phase.as_str() {
            "Running" => {
                done_line();
                return Ok(());
            }
            "Succeeded" | "Failed" => {
                done_line();
                bail!(
                    "pod {ns}/{} ended ({phase}) before hopscope could attach; see: kubectl \
                     logs -n {ns} {}",
                    plan.name,
                    plan.name
                );
            }
            _ => {}
        }
        if let Some(w) = waiting.as_deref()
            && STUCK.contains(&w)
        {
            done_line();
            let event = last_warning(client, ns, &plan.name).await;
            let what = if w.contains("Image") {
                format!("image {} cannot be pulled", plan.image)
            } else {
                "the container cannot be created".to_string()
            };
            bail!(
                "pod {ns}/{}: {what} ({w}){}; {}",
                plan.name,
                event.map(|e| format!(": {e}")).unwrap_or_default(),
                match plan.launch {
                    Launch::Upload => "name one the node can pull with --base-image",
                    Launch::InImage => "try another --image",
                }
            );
        }
        if start.elapsed() >= limit {
            done_line();
            let event = last_warning(client, ns, &plan.name).await;
            bail!(
                "pod {ns}/{} is not running after {}s (phase {phase}{}){}",
                plan.name,
                limit.as_secs(),
                waiting.map(|w| format!(", {w}")).unwrap_or_default(),
                event
                    .map(|e| format!("; last event: {e}"))
                    .unwrap_or_else(|| format!("; is node {} Ready?", plan.node))
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Puts the terminal in raw mode for as long as it lives.
struct RawMode(bool);
impl RawMode {
    fn on(tty: bool) -> RawMode {
        RawMode(tty && crossterm::terminal::enable_raw_mode().is_ok())
    }
}
impl Drop for RawMode {
    fn drop(&mut self) {
        if self.0 {
            let _ = crossterm::terminal::disable_raw_mode();
        }
    }
}

/// Connect the terminal to hopscope in the pod — exec'd from the emptyDir, or the image's
/// own as it runs — until it exits or the connection drops.
async fn connect_terminal(pods: &Api<Pod>, plan: &PodPlan) -> Result<Ended> {
    use futures::SinkExt;
    let ns = &plan.namespace;
    let ap = AttachParams::default()
        .container(CONTAINER)
        .stdin(true)
        .stdout(true)
        .stderr(!plan.tty)
        .tty(plan.tty);
    let connected = match plan.launch {
        Launch::Upload => {
            let argv = std::iter::once(BIN_PATH.to_string()).chain(plan.args.iter().cloned());
            timed(pods.exec(&plan.name, argv, &ap))
                .await
                .map_err(|e| ("pods/exec", "run hopscope in", e))
        }
        Launch::InImage => timed(pods.attach(&plan.name, &ap))
            .await
            .map_err(|e| ("pods/attach", "attach to", e)),
    };
    let mut proc = connected.map_err(|(resource, doing, e)| {
        anyhow!(explain(
            &e,
            "create",
            resource,
            ns,
            &format!("{doing} pod {ns}/{}", plan.name)
        ))
    })?;
    if plan.tty {
        say("attached; hopscope's own keys work (q quits), the pod goes when it exits");
    }
    let raw = RawMode::on(plan.tty);
    if let Some(mut tx) = proc.terminal_size()
        && let Ok((w, h)) = crossterm::terminal::size()
    {
        let _ = tx
            .send(kube::api::TerminalSize {
                width: w,
                height: h,
            })
            .await;
        // Follow window size changes for as long as the session lasts.
        tokio::spawn(async move {
            let Ok(mut winch) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
            else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Ok((width, height)) = crossterm::terminal::size()
                    && tx
                        .send(kube::api::TerminalSize { width, height })
                        .await
                        .is_err()
                {
                    break;
                }
            }
        });
    }
    let mut stdin_remote = proc.stdin();
    let stdin_pump = async {
        if let Some(w) = stdin_remote.as_mut() {
            let mut local = tokio::io::stdin();
            let _ = tokio::io::copy(&mut local, w).await;
            // Local stdin ended (`< /dev/null`, a pipe): stop sending, but do not close the
            // remote stdin: over the v4 protocol that closes the whole stream, and hopscope
            // in the pod does not need the EOF.
        }
        std::future::pending::<()>().await
    };
    let out = proc.stdout();
    let err = proc.stderr();
    let out_pump = async {
        if let Some(mut r) = out {
            let _ = tokio::io::copy(&mut r, &mut tokio::io::stdout()).await;
        }
    };
    let err_pump = async {
        if let Some(mut r) = err {
            let _ = tokio::io::copy(&mut r, &mut tokio::io::stderr()).await;
        }
    };
    let status = proc.take_status();
    tokio::select! {
        _ = async { tokio::join!(out_pump, err_pump) } => {}
        _ = stdin_pump => {}
    }
    let status = match status {
        Some(s) => tokio::time::timeout(Duration::from_secs(2), s)
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let joined = tokio::time::timeout(Duration::from_secs(2), proc.join()).await;
    drop(raw);
    let code = exit_code(status.as_ref());
    match (code, joined) {
        (Some(c), _) => Ok(Ended::Exited(c)),
        (None, Ok(Err(e))) => Err(anyhow!(
            "the connection to pod {ns}/{} broke: {e}",
            plan.name
        )),
        (None, _) => Ok(Ended::Exited(0)),
    }
}

/// The exit code in the status the API sends when the attached process ends
/// (`Success`, or `Failure` with reason `NonZeroExitCode` and an `ExitCode` cause).
pub fn exit_code(
    s: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>,
) -> Option<i32> {
    let s = s?;
    if s.status.as_deref() == Some("Success") {
        return Some(0);
    }
    s.details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_deref()?.parse().ok())
        .or(Some(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_argument_forms() {
        assert_eq!(node_arg("node/worker2").unwrap(), "worker2");
        assert_eq!(node_arg("worker2").unwrap(), "worker2");
        assert!(node_arg("pod/x").is_err());
        assert!(node_arg("node/").is_err());
    }

    #[test]
    fn pod_names_are_dns_labels() {
        assert_eq!(pod_name("worker2", "abcde"), "hopscope-worker2-abcde");
        let long = "n".repeat(100) + ".example.com";
        let n = pod_name(&long, "abcde");
        assert!(n.len() <= 63, "{n}");
        assert!(
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        let s = random_suffix();
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn each_mode_gets_only_the_capabilities_it_uses() {
        let caps = |args: &str| {
            let args: Vec<String> = args.split_whitespace().map(String::from).collect();
            capabilities_for(&args).join(" ")
        };
        assert_eq!(caps("snapshot --json"), "NET_ADMIN SYS_PTRACE");
        assert_eq!(
            caps("--netns=cilium snapshot"),
            "NET_ADMIN SYS_PTRACE SYS_ADMIN"
        );
        assert_eq!(caps("capture -i eth0"), "NET_ADMIN NET_RAW SYS_PTRACE");
        assert_eq!(
            caps("capture --pid 4242 -i eth0"),
            "NET_ADMIN NET_RAW SYS_PTRACE SYS_ADMIN"
        );
        assert_eq!(
            caps("trace 10.0.0.1 10.0.1.2"),
            "NET_ADMIN NET_RAW SYS_PTRACE SYS_CHROOT"
        );
        let all = CAPABILITIES.join(" ");
        for tui_like in ["", "--netns x", "doctor", "record -o r.hsrec"] {
            assert_eq!(caps(tui_like), all, "{tui_like:?}");
        }
    }
}
