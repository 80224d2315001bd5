//! `hopscope attach node/NAME`: the arguments, settled with the environment ($HOPSCOPE_IMAGE,
//! $TERM, whether this is a terminal) into what to ask the cluster for, and `--dry-run`,
//! which prints the pod and contacts nothing. The pod and its lifecycle are `kube::attach`.

use crate::kube::KubeArgs;
use crate::kube::attach::{self, Launch, Request};
use crate::kube::upload::{BIN_DIR, BIN_PATH, DEFAULT_BASE_IMAGE};
use anyhow::Result;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args, Clone)]
pub struct AttachArgs {
    /// The node: node/NAME or NAME (a unique short name such as `worker2` works too).
    #[arg(value_name = "node/NAME")]
    pub node: String,
    /// An image that already has hopscope on its PATH: run that, send nothing [default: none,
    /// or $HOPSCOPE_IMAGE].
    #[arg(long, value_name = "IMG")]
    pub image: Option<String>,
    /// The stock image this hopscope's own binary is sent into; it needs sh, head and
    /// sha256sum [default: docker.io/library/busybox:1.37].
    #[arg(long, value_name = "IMG", conflicts_with = "image")]
    pub base_image: Option<String>,
    /// The static hopscope executable to send [default: this one, when it is static; else
    /// build one with packaging/build-static.sh].
    #[arg(long, value_name = "PATH", conflicts_with = "image")]
    pub binary: Option<PathBuf>,
    /// Run privileged instead of adding only the capabilities hopscope needs (docs/kube.md).
    #[arg(long)]
    pub privileged: bool,
    /// Keep the pod when the session ends (default: delete it).
    #[arg(long)]
    pub keep: bool,
    /// Print the pod manifest (YAML) and exit; contacts nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Namespace for the pod [default: the context's namespace, else `default`].
    #[arg(short = 'n', long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Seconds to wait for the pod to run.
    #[arg(long, value_name = "S", default_value_t = 120)]
    pub timeout: u64,
    /// Arguments for hopscope in the pod, after `--` (e.g. `-- capture -i eth0 --json`).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// An image with hopscope in it from $HOPSCOPE_IMAGE, as if given with `--image`.
fn image_from_env() -> Option<String> {
    std::env::var("HOPSCOPE_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
}

/// What the arguments ask for, before anything is contacted.
fn request(a: &AttachArgs, node: &str) -> Request {
    let (image, launch) = match a.image.clone().or_else(image_from_env) {
        Some(img) if a.base_image.is_none() && a.binary.is_none() => (img, Launch::InImage),
        _ => (
            a.base_image
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_IMAGE.into()),
            Launch::Upload,
        ),
    };
    Request {
        node: node.to_string(),
        namespace: a.namespace.clone(),
        image,
        launch,
        binary: a.binary.clone(),
        privileged: a.privileged,
        args: a.args.clone(),
        keep: a.keep,
        timeout: Duration::from_secs(a.timeout),
        tty: std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
        term: std::env::var("TERM").ok(),
    }
}

/// `hopscope attach`: the exit code to leave with (hopscope's in the pod, or 128 + a signal).
pub fn run(kube: &KubeArgs, a: &AttachArgs) -> Result<i32> {
    let node = attach::node_arg(&a.node)?;
    let want = request(a, node);
    if a.dry_run {
        dry_run(kube, &want)
    } else {
        attach::run(kube, &want)
    }
}

/// The manifest, and what would happen in the pod, printed; nothing is contacted.
fn dry_run(kube: &KubeArgs, want: &Request) -> Result<i32> {
    let ns = want
        .namespace
        .clone()
        .or_else(|| attach::context_namespace(kube))
        .unwrap_or_else(|| "default".into());
    let plan = want.plan(want.node.clone(), ns);
    print!("{}", attach::manifest_yaml(&plan)?);
    if plan.launch == Launch::Upload {
        // Not part of the manifest: what attach does in the pod once it runs.
        let argv: Vec<&str> = std::iter::once(BIN_PATH)
            .chain(plan.args.iter().map(String::as_str))
            .collect();
        println!(
            "# then: hopscope's static binary is sent into {BIN_DIR} over pods/exec, its \
             sha256 checked in the pod, and run: {}",
            argv.join(" ")
        );
    }
    Ok(0)
}
