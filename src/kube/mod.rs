//! Kubernetes: names for addresses (pods, nodes, services, CiliumNodes) and `hopscope attach`.
//!
//! Everything here talks to an API server through the `kube` crate on a small tokio runtime of
//! its own, so the rest of hopscope stays synchronous. Reading is list + watch only; the one
//! write hopscope ever makes is creating and deleting its own debug pod (`attach`).
//!
//! Without credentials (no kubeconfig, not in a pod with a service account token) all of this
//! is silently off; `--no-kube` turns it off explicitly; a broken API degrades to no names with
//! one notice, within bounded time (see `names::NAMES_BUDGET`).

pub mod attach;
pub mod names;
pub mod resolve;
pub(crate) mod upload;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::path::PathBuf;
use std::time::Duration;

/// Global options: which cluster to ask for names (and to attach to).
#[derive(Debug, Args, Clone, Default)]
pub struct KubeArgs {
    /// Kubeconfig to read names from (default: $KUBECONFIG, ~/.kube/config, or the pod's
    /// service account when running in a cluster).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig to use (default: its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Do not contact Kubernetes at all: no names for addresses.
    #[arg(long, global = true, conflicts_with_all = ["kubeconfig", "context"])]
    pub no_kube: bool,
}

/// How long to wait for a TCP/TLS connection to the API server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the credentials come from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Kubeconfig { context: Option<String> },
    InCluster,
}

/// A connected client (nothing has been sent yet) and what it is connected to.
#[derive(Clone)]
pub struct Connection {
    pub client: Client,
    pub default_namespace: String,
    pub source: Source,
    pub server: String,
}

/// What `connect` found.
pub enum Connect {
    /// `--no-kube`.
    Off,
    /// No kubeconfig and not in a pod with a service account: nothing to ask, say nothing.
    NoCredentials,
    Ready(Box<Connection>),
}

fn kubeconfig_present() -> bool {
    if let Some(v) = std::env::var_os("KUBECONFIG")
        && !v.is_empty()
    {
        return true;
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".kube/config").exists())
        .unwrap_or(false)
}

fn in_cluster_present() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token").exists()
}

/// The kubeconfig at `path` (bounded read), or one error naming the file and its cause.
pub fn read_kubeconfig(path: &std::path::Path) -> Result<Kubeconfig> {
    // Bounded and readable first; then kube's own reader, which makes the certificate
    // paths in it absolute.
    crate::input::read_text(path, crate::input::limit::KUBECONFIG)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    Kubeconfig::read_from(path).with_context(|| format!("using kubeconfig {}", path.display()))
}

/// Build a client from the options: `--kubeconfig`/`--context`, then $KUBECONFIG or
/// ~/.kube/config, then the in-cluster service account. `retry` keeps kube's own retries of
/// 429/503/504 (attach wants them; names has its own loop and a time budget).
/// Errors are for configurations that exist but cannot be used.
pub async fn connect(args: &KubeArgs, retry: bool) -> Result<Connect> {
    if args.no_kube {
        return Ok(Connect::Off);
    }
    let opts = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let (mut config, source) = if let Some(path) = &args.kubeconfig {
        let kc = read_kubeconfig(path)?;
        let c = Config::from_custom_kubeconfig(kc, &opts)
            .await
            .with_context(|| format!("using kubeconfig {}", path.display()))?;
        (
            c,
            Source::Kubeconfig {
                context: args.context.clone(),
            },
        )
    } else if kubeconfig_present() {
        let c = Config::from_kubeconfig(&opts)
            .await
            .context("using the kubeconfig ($KUBECONFIG or ~/.kube/config)")?;
        (
            c,
            Source::Kubeconfig {
                context: args.context.clone(),
            },
        )
    } else if let Some(ctx) = &args.context {
        return Err(anyhow!(
            "--context {ctx} given, but there is no kubeconfig (set KUBECONFIG or --kubeconfig)"
        ));
    } else if in_cluster_present() {
        let c = Config::incluster().context("using the pod's service account")?;
        (c, Source::InCluster)
    } else {
        return Ok(Connect::NoCredentials);
    };
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    config.default_retry = retry;
    let server = config.cluster_url.to_string();
    let default_namespace = config.default_namespace.clone();
    let client = Client::try_from(config).context("setting up the Kubernetes client")?;
    Ok(Connect::Ready(Box::new(Connection {
        client,
        default_namespace,
        source,
        server,
    })))
}

/// A small runtime for one command's API calls (current thread: hopscope's own threads are
/// busy with netlink and pcap, and these calls are few).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime for Kubernetes calls")
}

/// An API error in one line, naming what was being done: `list pods: forbidden: User "x"
/// cannot list resource "pods" …`, `get node worker9: not found`, `list pods: 500 …`.
pub fn describe_error(doing: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let reason = if s.reason.is_empty() {
                String::new()
            } else {
                format!(" {}", s.reason)
            };
            let msg = if s.message.is_empty() {
                String::new()
            } else {
                format!(": {}", s.message)
            };
            format!("{doing}: HTTP {}{reason}{msg}", s.code)
        }
        other => {
            // kube's Display nests sources; keep the innermost cause, which says the most.
            let mut cause: &dyn std::error::Error = other;
            while let Some(next) = cause.source() {
                cause = next;
            }
            if std::ptr::eq(
                cause as *const dyn std::error::Error as *const u8,
                other as *const kube::Error as *const u8,
            ) {
                format!("{doing}: {other}")
            } else {
                format!("{doing}: {other}: {cause}")
            }
        }
    }
}

/// The HTTP status of an API error, if it is one.
pub fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}
