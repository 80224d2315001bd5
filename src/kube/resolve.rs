//! `trace pod/NS/NAME svc/NS/NAME`: Kubernetes objects as trace endpoints, resolved to their
//! addresses through the API, with close matches when a name is wrong.
//!
//! `trace` takes addresses; the command line is rewritten before it is parsed: each object
//! argument is replaced by a placeholder address from TEST-NET-1 (RFC 5737, never used on a
//! network) and, once parsed, the placeholder by the object's address.

use super::{Connect, KubeArgs, describe_error, status_code};
use anyhow::{Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// How long resolving all endpoints may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Pod { ns: Option<String>, name: String },
    Service { ns: Option<String>, name: String },
    Node { name: String },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Pod { ns: Some(ns), name } => write!(f, "pod/{ns}/{name}"),
            Endpoint::Pod { ns: None, name } => write!(f, "pod/{name}"),
            Endpoint::Service { ns: Some(ns), name } => write!(f, "svc/{ns}/{name}"),
            Endpoint::Service { ns: None, name } => write!(f, "svc/{name}"),
            Endpoint::Node { name } => write!(f, "node/{name}"),
        }
    }
}

impl Endpoint {
    /// `pod/NS/NAME`, `pod/NAME` (the context's namespace), `svc/…` or `service/…`,
    /// `node/NAME`. None for anything else (an address stays an address).
    pub fn parse(s: &str) -> Option<Endpoint> {
        let (kind, rest) = s.split_once('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        let (ns, name) = match parts[..] {
            [name] => (None, name.to_string()),
            [ns, name] => (Some(ns.to_string()), name.to_string()),
            _ => return None,
        };
        match kind {
            "pod" | "pods" | "po" => Some(Endpoint::Pod { ns, name }),
            "svc" | "service" | "services" => Some(Endpoint::Service { ns, name }),
            "node" | "nodes" | "no" if ns.is_none() => Some(Endpoint::Node { name }),
            _ => None,
        }
    }
}

fn placeholder(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200 + i as u8))
}

/// Replace object arguments of `trace` by placeholder addresses; returns the new command line
/// and (placeholder, object) pairs. Other commands are returned unchanged.
pub fn take_endpoints(argv: Vec<OsString>) -> (Vec<OsString>, Vec<(IpAddr, Endpoint)>) {
    // The subcommand is the first of these words; after `--` everything belongs to someone
    // else (`attach node/x -- trace pod/a/b …` is for hopscope in the pod).
    let sub = argv.iter().enumerate().skip(1).find(|(_, a)| {
        matches!(
            a.to_str(),
            Some("trace" | "snapshot" | "capture" | "attach" | "help" | "--")
        )
    });
    let Some((at, _)) = sub.filter(|(_, a)| *a == "trace") else {
        return (argv, vec![]);
    };
    let mut found = Vec::new();
    let out = argv
        .into_iter()
        .enumerate()
        .map(|(i, a)| {
            if i <= at || found.len() >= 2 {
                return a;
            }
            match a.to_str().and_then(Endpoint::parse) {
                Some(ep) => {
                    let ph = placeholder(found.len());
                    found.push((ph, ep));
                    OsString::from(ph.to_string())
                }
                None => a,
            }
        })
        .collect();
    (out, found)
}

/// Resolve each object to its address (blocking; bounded by [`RESOLVE_TIMEOUT`]).
pub fn resolve(args: &KubeArgs, eps: &[Endpoint]) -> Result<Vec<IpAddr>> {
    let rt = super::runtime()?;
    rt.block_on(async {
        match tokio::time::timeout(RESOLVE_TIMEOUT, resolve_all(args, eps)).await {
            Ok(r) => r,
            Err(_) => bail!(
                "the Kubernetes API did not answer within {RESOLVE_TIMEOUT:?} while resolving {}",
                eps.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    })
}

async fn resolve_all(args: &KubeArgs, eps: &[Endpoint]) -> Result<Vec<IpAddr>> {
    let first = eps.first().map(|e| e.to_string()).unwrap_or_default();
    let conn = match super::connect(args, true).await? {
        Connect::Ready(c) => c,
        Connect::Off => bail!("{first} needs the Kubernetes API, but --no-kube was given"),
        Connect::NoCredentials => bail!(
            "{first} needs the Kubernetes API: no kubeconfig ($KUBECONFIG, ~/.kube/config, \
             --kubeconfig) and no in-cluster service account; give addresses instead"
        ),
    };
    let mut out = Vec::new();
    for ep in eps {
        out.push(resolve_one(&conn, ep).await?);
    }
    Ok(out)
}

async fn resolve_one(conn: &super::Connection, ep: &Endpoint) -> Result<IpAddr> {
    let c = conn.client.clone();
    match ep {
        Endpoint::Pod { ns, name } => {
            let ns = ns.as_deref().unwrap_or(&conn.default_namespace);
            let api: Api<Pod> = Api::namespaced(c.clone(), ns);
            match api.get(name).await {
                Ok(p) => super::names::pod_ips(&p).into_iter().next().ok_or_else(|| {
                    let phase = p
                        .status
                        .as_ref()
                        .and_then(|s| s.phase.clone())
                        .unwrap_or_else(|| "unknown".into());
                    let host = p.spec.as_ref().and_then(|s| s.host_network) == Some(true);
                    if host {
                        anyhow!(
                            "{ep} uses the host network: it has its node's address; trace to \
                             node/{} instead",
                            p.spec.and_then(|s| s.node_name).unwrap_or_default()
                        )
                    } else {
                        anyhow!("{ep} has no address (phase {phase})")
                    }
                }),
                Err(e) if status_code(&e) == Some(404) => {
                    let all: Api<Pod> = Api::namespaced(c.clone(), ns);
                    let names = list_names(&all).await;
                    let elsewhere = elsewhere::<Pod>(&c).await;
                    Err(not_found(ep, "pods", ns, name, &names, &elsewhere, "pod"))
                }
                Err(e) => Err(anyhow!(describe_error(&format!("get {ep}"), &e))),
            }
        }
        Endpoint::Service { ns, name } => {
            let ns = ns.as_deref().unwrap_or(&conn.default_namespace);
            let api: Api<Service> = Api::namespaced(c.clone(), ns);
            match api.get(name).await {
                Ok(s) => super::names::service_ips(&s)
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        anyhow!(
                            "{ep} has no cluster IP (a headless service: trace to one of its pods)"
                        )
                    }),
                Err(e) if status_code(&e) == Some(404) => {
                    let names = list_names(&api).await;
                    let elsewhere = elsewhere::<Service>(&c).await;
                    Err(not_found(
                        ep, "services", ns, name, &names, &elsewhere, "svc",
                    ))
                }
                Err(e) => Err(anyhow!(describe_error(&format!("get {ep}"), &e))),
            }
        }
        Endpoint::Node { name } => {
            let api: Api<Node> = Api::all(c.clone());
            let nodes = api
                .list(&ListParams::default())
                .await
                .map_err(|e| anyhow!(describe_error("list nodes", &e)))?;
            let all: Vec<String> = nodes.items.iter().map(|n| n.name_any()).collect();
            let found = nodes
                .items
                .iter()
                .find(|n| n.name_any() == *name)
                .or_else(|| {
                    // The short label (`worker2`) names a node too, when it is unique.
                    let m: Vec<_> = nodes
                        .items
                        .iter()
                        .filter(|n| n.name_any().ends_with(&format!("-{name}")))
                        .collect();
                    (m.len() == 1).then(|| m[0])
                });
            match found {
                Some(n) => super::names::node_facts(n)
                    .ips
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow!("{ep} has no InternalIP/ExternalIP")),
                None => Err(anyhow!(
                    "node {name} not found; nodes: {}",
                    if all.is_empty() {
                        "none".into()
                    } else {
                        all.join(", ")
                    }
                )),
            }
        }
    }
}

async fn list_names<K>(api: &Api<K>) -> Vec<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default().limit(2000))
        .await
        .map(|l| l.items.iter().map(|i| i.name_any()).collect())
        .unwrap_or_default()
}

/// Every object of this kind in the cluster, as (namespace, name), for "did you mean".
async fn elsewhere<K>(c: &kube::Client) -> Vec<(String, String)>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(c.clone());
    api.list(&ListParams::default().limit(5000))
        .await
        .map(|l| {
            l.items
                .iter()
                .map(|i| (i.namespace().unwrap_or_default(), i.name_any()))
                .collect()
        })
        .unwrap_or_default()
}

fn not_found(
    ep: &Endpoint,
    plural: &str,
    ns: &str,
    name: &str,
    names: &[String],
    all: &[(String, String)],
    prefix: &str,
) -> anyhow::Error {
    let mut msg = format!("{ep}: no {plural} named {name:?} in namespace {ns}");
    // Close names here first, then the same or close names in other namespaces.
    let mut hints: Vec<String> = close_matches(name, names)
        .iter()
        .map(|n| format!("{prefix}/{ns}/{n}"))
        .collect();
    let other: Vec<String> = all
        .iter()
        .filter(|(o, _)| o != ns)
        .map(|(_, n)| n.clone())
        .collect();
    for n in close_matches(name, &other) {
        for (o, _) in all.iter().filter(|(o, m)| o != ns && *m == n) {
            hints.push(format!("{prefix}/{o}/{n}"));
        }
    }
    hints.dedup();
    hints.truncate(5);
    if !hints.is_empty() {
        msg.push_str(&format!("; did you mean: {}", hints.join(", ")));
    } else if !names.is_empty() {
        let some: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
        msg.push_str(&format!(
            "; {plural} in {ns}: {}{}",
            some.join(", "),
            if names.len() > 10 { ", …" } else { "" }
        ));
    }
    anyhow!(msg)
}

/// Names like `want`: sharing a prefix with it, containing it, or a few edits away; best
/// first, at most five.
pub fn close_matches(want: &str, names: &[String]) -> Vec<String> {
    let mut scored: Vec<(bool, usize, &String)> = names
        .iter()
        .filter_map(|n| {
            let d = edit_distance(want, n);
            let related = n.contains(want) || want.contains(n.as_str());
            // Names that start with what was typed come first (`netshoot` → `netshoot-7d9f`).
            (related || d <= 2.max(want.len() / 3)).then_some((!n.starts_with(want), d, n))
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(5)
        .map(|(_, _, n)| n.clone())
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_objects_and_leaves_addresses() {
        assert_eq!(
            Endpoint::parse("pod/default/net"),
            Some(Endpoint::Pod {
                ns: Some("default".into()),
                name: "net".into()
            })
        );
        assert_eq!(
            Endpoint::parse("svc/kube-system/kube-dns").map(|e| e.to_string()),
            Some("svc/kube-system/kube-dns".into())
        );
        assert_eq!(
            Endpoint::parse("node/worker2"),
            Some(Endpoint::Node {
                name: "worker2".into()
            })
        );
        assert_eq!(Endpoint::parse("10.0.1.52"), None);
        assert_eq!(Endpoint::parse("10.0.1.0/24"), None);
        assert_eq!(Endpoint::parse("pod//x"), None);
        assert_eq!(Endpoint::parse("node/a/b"), None);
    }

    #[test]
    fn rewrites_only_trace_arguments() {
        let argv: Vec<OsString> = [
            "hopscope",
            "trace",
            "pod/default/net",
            "svc/default/serversvc",
            "--json",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let (out, eps) = take_endpoints(argv);
        assert_eq!(out[2], "192.0.2.200");
        assert_eq!(out[3], "192.0.2.201");
        assert_eq!(out[4], "--json");
        assert_eq!(eps.len(), 2);
        let argv: Vec<OsString> = [
            "hopscope", "attach", "node/w", "--", "trace", "pod/a/b", "10.0.0.1",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let (out, eps) = take_endpoints(argv.clone());
        assert!(eps.is_empty());
        assert_eq!(out, argv);
        let argv: Vec<OsString> = ["hopscope", "snapshot"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(take_endpoints(argv).1.is_empty());
    }

    #[test]
    fn close_matches_rank_near_names_first() {
        let names: Vec<String> = [
            "net",
            "netshoot-7d9f",
            "cni-fcnh6",
            "cni-s22px",
            "coredns-64897985d-djvrw",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(close_matches("nett", &names), ["net"]);
        assert_eq!(close_matches("netshoot", &names), ["netshoot-7d9f", "net"]);
        assert_eq!(close_matches("cni-fcnh7", &names)[0], "cni-fcnh6");
        assert!(close_matches("zzzzzzzz", &names).is_empty());
    }
}
