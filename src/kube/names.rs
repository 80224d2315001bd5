//! Watch pods, nodes, services and CiliumNodes into a [`Names`] table.
//!
//! Each kind runs its own loop: list (bounded by [`LIST_TIMEOUT`]), then watch from the list's
//! resourceVersion, applying ADDED/MODIFIED/DELETED to that kind's objects; on a broken watch it
//! lists again after a back-off. The table is rebuilt from all kinds after each change and
//! published as an `Arc<Names>` that readers (TUI, capture, one-shot commands) take without
//! waiting. Errors become notices (one per distinct message); a missing CiliumNode CRD is
//! not an error.

use super::{Connect, KubeArgs, describe_error, status_code};
use crate::model::Prefix;
use crate::model::names::{CiliumNodeInfo, Name, NameKind, Names, PodCidr, short_node_labels};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, ObjectList, WatchEvent,
    WatchParams,
};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One list request may take this long before it counts as failed.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a one-shot command (snapshot, trace) waits for the first lists before it goes on
/// without (some) names.
pub const NAMES_BUDGET: Duration = Duration::from_secs(5);
/// Watches are asked to end after this long (the server closes them; we then watch again).
const WATCH_SECONDS: u32 = 240;
/// A watch that sends nothing (not even a bookmark) for this long is considered dead.
const WATCH_IDLE: Duration = Duration::from_secs(WATCH_SECONDS as u64 + 30);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The four kinds of objects names come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Pods,
    Nodes,
    Services,
    CiliumNodes,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Pods, Kind::Nodes, Kind::Services, Kind::CiliumNodes];
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Pods => "pods",
            Kind::Nodes => "nodes",
            Kind::Services => "services",
            Kind::CiliumNodes => "ciliumnodes.cilium.io",
        }
    }
}

/// What one node-ish object says, before labels are shortened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub ips: Vec<IpAddr>,
    pub pod_cidrs: Vec<Prefix>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiliumFacts {
    pub router_ips: Vec<IpAddr>,
    pub health_ips: Vec<IpAddr>,
    pub ingress_ips: Vec<IpAddr>,
    pub node_ips: Vec<IpAddr>,
    pub pod_cidrs: Vec<Prefix>,
    pub encryption_key: Option<u32>,
}

/// The objects of every kind as last seen, by `namespace/name` (or name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Objects {
    pub pods: BTreeMap<String, Vec<IpAddr>>,
    pub services: BTreeMap<String, Vec<IpAddr>>,
    pub nodes: BTreeMap<String, NodeFacts>,
    pub cilium: BTreeMap<String, CiliumFacts>,
}

fn ips<'a>(it: impl IntoIterator<Item = &'a str>) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = it.into_iter().filter_map(|s| s.parse().ok()).collect();
    v.sort();
    v.dedup();
    v
}

fn key_of<K: Resource>(o: &K) -> String {
    match o.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{}", o.meta().name.as_deref().unwrap_or("")),
        None => o.meta().name.clone().unwrap_or_default(),
    }
}

/// A pod's own addresses. hostNetwork pods are left out (their address is the node's), and so
/// are finished pods (their address may already belong to a new pod).
pub fn pod_ips(p: &Pod) -> Vec<IpAddr> {
    if p.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
        return vec![];
    }
    let Some(st) = &p.status else { return vec![] };
    if matches!(st.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return vec![];
    }
    let listed = st.pod_ips.iter().flatten().map(|i| i.ip.as_str());
    ips(listed.chain(st.pod_ip.as_deref()))
}

/// ClusterIPs (not `None`), external IPs and load-balancer addresses.
pub fn service_ips(s: &Service) -> Vec<IpAddr> {
    let mut all: Vec<&str> = Vec::new();
    if let Some(spec) = &s.spec {
        all.extend(spec.cluster_ips.iter().flatten().map(String::as_str));
        all.extend(spec.cluster_ip.as_deref());
        all.extend(spec.external_ips.iter().flatten().map(String::as_str));
    }
    if let Some(lb) = s.status.as_ref().and_then(|st| st.load_balancer.as_ref()) {
        all.extend(lb.ingress.iter().flatten().filter_map(|i| i.ip.as_deref()));
    }
    ips(all)
}

pub fn node_facts(n: &Node) -> NodeFacts {
    let addrs = n
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .map(|a| a.address.as_str());
    let cidrs = n
        .spec
        .iter()
        .flat_map(|s| s.pod_cidrs.iter().flatten().chain(s.pod_cidr.as_ref()))
        .filter_map(|c| c.parse().ok());
    let mut pod_cidrs: Vec<Prefix> = cidrs.collect();
    pod_cidrs.sort();
    pod_cidrs.dedup();
    NodeFacts {
        ips: ips(addrs),
        pod_cidrs,
    }
}

/// What a `cilium.io/v2` CiliumNode says: spec.addresses (CiliumInternalIP = the router,
/// `cilium_host`), spec.health, spec.ingress, spec.ipam.podCIDRs, spec.encryption.key.
pub fn cilium_facts(o: &DynamicObject) -> CiliumFacts {
    let spec = &o.data["spec"];
    let strs = |v: &serde_json::Value| -> Vec<String> {
        ["ipv4", "ipv6"]
            .iter()
            .filter_map(|k| v[k].as_str().map(str::to_string))
            .collect()
    };
    let mut f = CiliumFacts::default();
    for a in spec["addresses"].as_array().into_iter().flatten() {
        let (Some(t), Some(ip)) = (a["type"].as_str(), a["ip"].as_str()) else {
            continue;
        };
        let Ok(ip) = ip.parse() else { continue };
        match t {
            "CiliumInternalIP" => f.router_ips.push(ip),
            "InternalIP" | "ExternalIP" => f.node_ips.push(ip),
            _ => {}
        }
    }
    f.health_ips = ips(strs(&spec["health"]).iter().map(String::as_str));
    f.ingress_ips = ips(strs(&spec["ingress"]).iter().map(String::as_str));
    f.pod_cidrs = spec["ipam"]["podCIDRs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str()?.parse().ok())
        .collect();
    f.encryption_key = spec["encryption"]["key"].as_u64().map(|k| k as u32);
    f.router_ips.sort();
    f.node_ips.sort();
    f
}

impl Objects {
    /// The table: pods over services over Cilium's addresses over nodes, where one address has
    /// several names (a pod's name says more than its node's).
    pub fn build(&self) -> Names {
        let labels = short_node_labels(
            self.nodes
                .keys()
                .chain(self.cilium.keys())
                .map(String::as_str)
                .collect::<std::collections::BTreeSet<_>>(),
        );
        let label = |node: &str| labels.get(node).cloned().unwrap_or_else(|| node.into());
        let mut t = Names::default();
        let mut put = |ip: IpAddr, label: String, kind: NameKind, object: String| {
            t.addresses.insert(
                ip,
                Name {
                    label,
                    kind,
                    object,
                },
            );
        };
        for (name, f) in &self.nodes {
            for ip in &f.ips {
                put(*ip, label(name), NameKind::Node, format!("node {name}"));
            }
        }
        for (name, f) in &self.cilium {
            let l = label(name);
            for ip in &f.node_ips {
                put(*ip, l.clone(), NameKind::Node, format!("ciliumnode {name}"));
            }
            for (ips, what, kind) in [
                (&f.ingress_ips, "cilium-ingress", NameKind::CiliumIngress),
                (&f.health_ips, "cilium-health", NameKind::CiliumHealth),
                (&f.router_ips, "cilium_host", NameKind::CiliumRouter),
            ] {
                for ip in ips {
                    put(
                        *ip,
                        format!("{l} {what}"),
                        kind,
                        format!("ciliumnode {name}"),
                    );
                }
            }
        }
        for (key, ips) in &self.services {
            for ip in ips {
                put(
                    *ip,
                    key.clone(),
                    NameKind::Service,
                    format!("service {key}"),
                );
            }
        }
        for (key, ips) in &self.pods {
            for ip in ips {
                put(*ip, key.clone(), NameKind::Pod, format!("pod {key}"));
            }
        }
        let mut cidrs: BTreeMap<Prefix, String> = BTreeMap::new();
        for (name, f) in &self.nodes {
            for c in &f.pod_cidrs {
                cidrs.insert(*c, label(name));
            }
        }
        for (name, f) in &self.cilium {
            for c in &f.pod_cidrs {
                cidrs.insert(*c, label(name));
            }
            t.cilium_nodes.push(CiliumNodeInfo {
                node: name.clone(),
                label: label(name),
                router_ips: f.router_ips.clone(),
                health_ips: f.health_ips.clone(),
                pod_cidrs: f.pod_cidrs.clone(),
                encryption_key: f.encryption_key,
            });
        }
        t.pod_cidrs = cidrs
            .into_iter()
            .map(|(prefix, node)| PodCidr { prefix, node })
            .collect();
        t
    }
}

/// What readers see: the latest table, notices, and whether the first lists are in.
struct Shared {
    objects: Mutex<Objects>,
    names: Mutex<Arc<Names>>,
    generation: AtomicU64,
    notices: Mutex<Vec<String>>,
    /// Kinds whose first list has finished (answered, failed, or found no CRD).
    settled: Mutex<Vec<Kind>>,
    settled_cv: Condvar,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Objects)) {
        let mut o = self.objects.lock().unwrap();
        f(&mut o);
        let built = Arc::new(o.build());
        drop(o);
        let mut n = self.names.lock().unwrap();
        if **n != *built {
            *n = built;
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn notice(&self, msg: String) {
        let mut n = self.notices.lock().unwrap();
        if !n.contains(&msg) {
            n.push(msg);
        }
    }
    fn settle(&self, k: Kind) {
        let mut s = self.settled.lock().unwrap();
        if !s.contains(&k) {
            s.push(k);
            self.settled_cv.notify_all();
        }
    }
}

/// A running watch of the cluster's names, on a thread of its own. Dropping it stops the
/// watch (the thread ends at its next await point).
pub struct NamesWatch {
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Off (`--no-kube`) or nothing to ask: an empty table, no thread.
    idle: bool,
}

impl NamesWatch {
    /// Start watching as `args` say. Never fails: problems become notices.
    pub fn start(args: &KubeArgs) -> NamesWatch {
        let shared = Arc::new(Shared {
            objects: Mutex::default(),
            names: Mutex::default(),
            generation: AtomicU64::new(0),
            notices: Mutex::default(),
            settled: Mutex::default(),
            settled_cv: Condvar::new(),
        });
        if args.no_kube {
            return NamesWatch {
                shared,
                stop: None,
                idle: true,
            };
        }
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let args = args.clone();
        let spawned = std::thread::Builder::new()
            .name("kube-names".into())
            .spawn(move || {
                let rt = match super::runtime() {
                    Ok(rt) => rt,
                    Err(e) => {
                        sh.notice(format!(
                            "kubernetes: {}; no names",
                            crate::output::error_chain(&e)
                        ));
                        Kind::ALL.iter().for_each(|k| sh.settle(*k));
                        return;
                    }
                };
                rt.block_on(async move {
                    tokio::select! {
                        _ = run(&args, &sh) => {}
                        _ = rx => {}
                    }
                });
            });
        if let Err(e) = spawned {
            shared.notice(format!("kubernetes: cannot start the watch thread: {e}"));
            return NamesWatch {
                shared,
                stop: None,
                idle: true,
            };
        }
        NamesWatch {
            shared,
            stop: Some(tx),
            idle: false,
        }
    }

    /// The table as it is now (cheap: a shared pointer).
    pub fn names(&self) -> Arc<Names> {
        self.shared.names.lock().unwrap().clone()
    }

    /// Rises every time the table changes (for a UI to know when to redraw).
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::SeqCst)
    }

    /// One line per distinct problem so far (`kubernetes: list pods: HTTP 500 …; no names`).
    pub fn notices(&self) -> Vec<String> {
        self.shared.notices.lock().unwrap().clone()
    }

    /// Wait until every kind's first list has finished (or there is nothing to wait for), at
    /// most `budget`. False when the budget ran out first; a notice then says which kinds did
    /// not answer.
    pub fn wait_settled(&self, budget: Duration) -> bool {
        if self.idle {
            return true;
        }
        let deadline = Instant::now() + budget;
        let mut s = self.shared.settled.lock().unwrap();
        while s.len() < Kind::ALL.len() {
            let now = Instant::now();
            if now >= deadline {
                let missing: Vec<&str> = Kind::ALL
                    .iter()
                    .filter(|k| !s.contains(k))
                    .map(|k| k.plural())
                    .collect();
                drop(s);
                self.shared.notice(format!(
                    "kubernetes: no answer for {} within {:.0?}; names may be missing",
                    missing.join(", "),
                    budget
                ));
                return false;
            }
            s = self
                .shared
                .settled_cv
                .wait_timeout(s, deadline - now)
                .unwrap()
                .0;
        }
        true
    }
}

impl Drop for NamesWatch {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Names for a one-shot command: start, wait for the first lists (at most `budget`), and
/// return the table with at most one line of notice to print.
pub fn load(args: &KubeArgs, budget: Duration) -> (Arc<Names>, Option<String>) {
    finish(NamesWatch::start(args), budget)
}

/// Like [`load`], for a watch started earlier (so the API answers while the node is read).
pub fn finish(w: NamesWatch, budget: Duration) -> (Arc<Names>, Option<String>) {
    w.wait_settled(budget);
    (w.names(), summarize(&w.notices()))
}

/// Several notices as one line: the first, and how many more.
pub fn summarize(notices: &[String]) -> Option<String> {
    let first = notices.first()?;
    Some(match notices.len() {
        1 => first.clone(),
        n => format!("{first} (and {} more)", n - 1),
    })
}

async fn run(args: &KubeArgs, sh: &Arc<Shared>) {
    let conn = match super::connect(args, false).await {
        Ok(Connect::Ready(c)) => c,
        Ok(Connect::Off | Connect::NoCredentials) => {
            Kind::ALL.iter().for_each(|k| sh.settle(*k));
            return;
        }
        Err(e) => {
            sh.notice(format!(
                "kubernetes: {}; no names",
                crate::output::error_chain(&e)
            ));
            Kind::ALL.iter().for_each(|k| sh.settle(*k));
            return;
        }
    };
    let client = conn.client;
    let cilium = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cilium.io", "v2", "CiliumNode"),
        "ciliumnodes",
    );
    tokio::join!(
        follow(
            Kind::Pods,
            Api::<Pod>::all(client.clone()),
            sh,
            |o: &mut Objects, k, p: Option<&Pod>| set(&mut o.pods, k, p.map(pod_ips)),
        ),
        follow(
            Kind::Services,
            Api::<Service>::all(client.clone()),
            sh,
            |o: &mut Objects, k, s: Option<&Service>| set(&mut o.services, k, s.map(service_ips)),
        ),
        follow(
            Kind::Nodes,
            Api::<Node>::all(client.clone()),
            sh,
            |o: &mut Objects, k, n: Option<&Node>| set(&mut o.nodes, k, n.map(node_facts)),
        ),
        follow(
            Kind::CiliumNodes,
            Api::<DynamicObject>::all_with(client.clone(), &cilium),
            sh,
            |o: &mut Objects, k, c: Option<&DynamicObject>| {
                set(&mut o.cilium, k, c.map(cilium_facts))
            },
        ),
    );
}

fn set<V: Default + PartialEq>(m: &mut BTreeMap<String, V>, key: String, v: Option<V>) {
    match v {
        Some(v) if v != V::default() => {
            m.insert(key, v);
        }
        _ => {
            m.remove(&key);
        }
    }
}

type Apply<K> = fn(&mut Objects, String, Option<&K>);

/// List, then watch, one kind for as long as the program runs.
async fn follow<K>(kind: Kind, api: Api<K>, sh: &Arc<Shared>, apply: Apply<K>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut backoff = BACKOFF_MIN;
    // Lists that failed in a row: when the API answers again, that is said too (the
    // failure's notice alone would read as if names were still missing).
    let mut failed = 0u32;
    loop {
        let listed: Result<ObjectList<K>, String> =
            match tokio::time::timeout(LIST_TIMEOUT, api.list(&ListParams::default())).await {
                Ok(Ok(l)) => Ok(l),
                Ok(Err(e)) if kind == Kind::CiliumNodes && status_code(&e) == Some(404) => {
                    // No CiliumNode CRD: not a Cilium cluster (or an old one). Not a problem.
                    sh.settle(kind);
                    return;
                }
                Ok(Err(e)) => Err(describe_error(&format!("list {}", kind.plural()), &e)),
                Err(_) => Err(format!(
                    "list {}: no answer within {:.0?}",
                    kind.plural(),
                    LIST_TIMEOUT
                )),
            };
        let list = match listed {
            Ok(l) => l,
            Err(msg) => {
                sh.notice(format!(
                    "kubernetes: {msg}; no names from {}",
                    kind.plural()
                ));
                sh.settle(kind);
                failed += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        if failed > 0 {
            sh.notice(format!(
                "kubernetes: {} listed again after {failed} failed attempt(s); their names are current",
                kind.plural()
            ));
            failed = 0;
        }
        let mut rv = list.metadata.resource_version.clone().unwrap_or_default();
        sh.update(|o| {
            let fresh: BTreeMap<String, &K> = list.items.iter().map(|i| (key_of(i), i)).collect();
            let stale: Vec<String> = match kind {
                Kind::Pods => o.pods.keys().cloned().collect(),
                Kind::Services => o.services.keys().cloned().collect(),
                Kind::Nodes => o.nodes.keys().cloned().collect(),
                Kind::CiliumNodes => o.cilium.keys().cloned().collect(),
            };
            for k in stale {
                if !fresh.contains_key(&k) {
                    apply(o, k, None);
                }
            }
            for (k, item) in fresh {
                apply(o, k, Some(item));
            }
        });
        sh.settle(kind);
        backoff = BACKOFF_MIN;
        // Watch from the list's version until the watch breaks; then list again.
        'watch: loop {
            let wp = WatchParams::default().timeout(WATCH_SECONDS);
            let stream = match tokio::time::timeout(LIST_TIMEOUT, api.watch(&wp, &rv)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    sh.notice(format!(
                        "kubernetes: {}",
                        describe_error(&format!("watch {}", kind.plural()), &e)
                    ));
                    break 'watch;
                }
                Err(_) => break 'watch,
            };
            let mut stream = std::pin::pin!(stream);
            loop {
                let next = match tokio::time::timeout(WATCH_IDLE, stream.try_next()).await {
                    Ok(n) => n,
                    Err(_) => break 'watch,
                };
                match next {
                    Ok(Some(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                        if let Some(v) = o.resource_version() {
                            rv = v;
                        }
                        sh.update(|objs| apply(objs, key_of(&o), Some(&o)));
                    }
                    Ok(Some(WatchEvent::Deleted(o))) => {
                        if let Some(v) = o.resource_version() {
                            rv = v;
                        }
                        sh.update(|objs| apply(objs, key_of(&o), None));
                    }
                    Ok(Some(WatchEvent::Bookmark(b))) => rv = b.metadata.resource_version,
                    Ok(Some(WatchEvent::Error(e))) => {
                        // 410 Gone: our version is too old; anything else: start over too.
                        if e.code != 410 {
                            sh.notice(format!(
                                "kubernetes: watch {}: HTTP {} {}",
                                kind.plural(),
                                e.code,
                                e.message
                            ));
                        }
                        break 'watch;
                    }
                    // The server ended the watch (its timeout): watch again from `rv`.
                    Ok(None) => continue 'watch,
                    Err(e) => {
                        sh.notice(format!(
                            "kubernetes: {}",
                            describe_error(&format!("watch {}", kind.plural()), &e)
                        ));
                        break 'watch;
                    }
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// For tests and tools: the objects of one list response (a recorded `kubectl get -o json`).
pub fn objects_from_lists(
    pods: &[Pod],
    nodes: &[Node],
    services: &[Service],
    cilium: &[DynamicObject],
) -> Objects {
    let mut o = Objects::default();
    for p in pods {
        set(&mut o.pods, key_of(p), Some(pod_ips(p)));
    }
    for s in services {
        set(&mut o.services, key_of(s), Some(service_ips(s)));
    }
    for n in nodes {
        set(&mut o.nodes, key_of(n), Some(node_facts(n)));
    }
    for c in cilium {
        set(&mut o.cilium, c.name_any(), Some(cilium_facts(c)));
    }
    o
}
