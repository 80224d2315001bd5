//! The command line: `hopscope [snapshot] [--netns ...]`.

use crate::source::Target;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hopscope",
    version,
    about = "Read-only node network debugger: links, routes, rules, XFRM SAs/policies and xfrm_stat of a Kubernetes node, in one picture",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the node's network state once (text, or --json) and exit.
    Snapshot(SnapshotArgs),
}

#[derive(Debug, Args, Clone, Default)]
pub struct TargetArgs {
    /// Read another network namespace: a name under /run/netns or a path (e.g. /proc/PID/ns/net).
    #[arg(long, global = true, value_name = "NAME|PATH", conflicts_with = "pid")]
    pub netns: Option<String>,
    /// Read the network namespace of this process (e.g. a kind node container's init).
    #[arg(long, global = true, value_name = "PID")]
    pub pid: Option<u32>,
}

impl TargetArgs {
    pub fn target(&self) -> Target {
        match (&self.netns, self.pid) {
            (Some(n), _) => Target::Netns(n.clone()),
            (None, Some(p)) => Target::Pid(p),
            (None, None) => Target::Current,
        }
    }
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// One JSON document instead of text (schema: docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// Print XFRM key material instead of "redacted". Keys are secrets: mind where output goes.
    #[arg(long)]
    pub show_keys: bool,
}
