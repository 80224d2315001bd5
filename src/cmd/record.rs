//! The commands around recordings: `record` (a live node into a file), `replay` (a file into
//! the TUI), `demo` (the recording shipped inside hopscope into the TUI).

use crate::record::reader::Recording;
use crate::record::replay::ReplayInputs;
use crate::record::writer::{self, Plan};
use crate::source::Target;
use anyhow::{Context, Result};
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The recording to write (format: docs/record.md).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub out: PathBuf,
    /// Capture frames on this interface of every recorded netns (repeatable).
    #[arg(short = 'i', long = "interface", value_name = "IF")]
    pub interfaces: Vec<String>,
    /// BPF capture filter, as tcpdump takes it (e.g. "esp or icmp").
    #[arg(short = 'f', long = "filter", value_name = "BPF")]
    pub filter: Option<String>,
    /// Stop after S seconds (default: at SIGINT/SIGTERM or the size limit).
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// Stop when the file reaches this size.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub limit: u64,
    /// How often counters are sampled: 1s (default), 500ms.
    #[arg(long, value_name = "DURATION")]
    pub interval: Option<String>,
    /// Write the XFRM keys into the file (without: keys are never written; decrypted ESP is
    /// kept as its decrypted inner packet). Keys are secrets: mind where the file goes.
    #[arg(long)]
    pub show_keys: bool,
    /// Bytes captured per frame.
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 262144)]
    pub snaplen: i32,
    /// A note saying what this recording shows (kept in the file, shown by replay).
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// No progress line.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A recording made by `hopscope record`.
    pub file: PathBuf,
    /// Play at this speed (1 = as it happened; 0.25 to 64).
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    pub speed: f64,
    /// Start paused (space plays, `.` steps).
    #[arg(long)]
    pub paused: bool,
    /// Start at S seconds into the recording.
    #[arg(long, value_name = "S")]
    pub start: Option<f64>,
    /// Show this recorded node first (its netns name; default the first).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Show only the recorded packets this BPF filter accepts (as tcpdump takes it; `b` in
    /// the TUI changes it); or give it as the trailing words.
    #[arg(short = 'f', long = "filter", value_name = "BPF")]
    pub filter: Option<String>,
    /// The capture filter as trailing words: `replay FILE icmp or esp`.
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Play the broken variant: the lab cluster with a node's inbound SA deleted.
    #[arg(long)]
    pub broken: bool,
    /// Play at this speed (0.25 to 64).
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    pub speed: f64,
    /// Write the demo's recording to FILE instead of playing it (for `replay`, `snapshot --from`).
    #[arg(long, value_name = "FILE")]
    pub extract: Option<PathBuf>,
}

pub fn record(
    args: &RecordArgs,
    targets: Vec<Target>,
    kube: &crate::kube::KubeArgs,
) -> Result<i32> {
    let interval = match &args.interval {
        Some(s) => {
            crate::tui::config::parse_interval(s).map_err(|e| anyhow::anyhow!("--interval: {e}"))?
        }
        None => std::time::Duration::from_secs(1),
    };
    anyhow::ensure!(args.limit > 0, "--limit must be at least 1 MiB");
    if let Some(f) = &args.filter {
        crate::capture::check_filter(f, crate::capture::LinkType::Ethernet)?;
    }
    let (targets, pods) = crate::source::pods::with_pods(targets);
    writer::run(&Plan {
        out: args.out.clone(),
        targets,
        pods,
        interfaces: args.interfaces.clone(),
        filter: args.filter.clone(),
        duration: args.duration.map(std::time::Duration::from_secs_f64),
        show_keys: args.show_keys,
        limit_bytes: args.limit.saturating_mul(1 << 20),
        interval,
        snaplen: args.snaplen,
        note: args.note.clone(),
        progress: !args.quiet,
        kube: kube.clone(),
    })
}

/// How to play a recording.
struct Play<'a> {
    node: Option<&'a str>,
    speed: f64,
    paused: bool,
    start: Option<f64>,
    /// The demo: start on the SAs pane, start over at the end.
    demo: bool,
    filter: Option<String>,
}

/// Play `rec` in the TUI. Returns the signal that ended it (0: quit).
fn play(rec: Recording, how: Play, tui: &crate::cli::TuiArgs) -> Result<i32> {
    if !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) {
        anyhow::bail!(
            "replay draws the TUI and needs a terminal; `hopscope snapshot --from FILE` prints the recorded state"
        );
    }
    if let Some(c) = &rec.cut {
        eprintln!(
            "hopscope: {}: {} at byte {}; playing what came before",
            rec.name, c.why, c.offset
        );
    } else if rec.end.is_none() {
        eprintln!(
            "hopscope: {}: no end record (the recorder was killed?); playing all it holds",
            rec.name
        );
    }
    let node = rec.node_named(how.node)?;
    let mut opts = crate::tui::options(Target::Current, tui)?;
    let mut inputs = ReplayInputs::new(Arc::new(rec), node, how.speed, how.paused);
    if let Some(s) = how.start {
        inputs.seek((s.max(0.0) * 1e9) as u64);
    }
    inputs.set_capture_filter(how.filter.as_deref())?;
    if how.demo {
        opts.pane = crate::tui::rows::Pane::Sas;
        inputs.looping = true;
    }
    inputs
        .watch_signals()
        .context("installing signal handlers")?;
    crate::tui::run_on_terminal(&mut inputs, &opts)
}

pub fn replay(args: &ReplayArgs, tui: &crate::cli::TuiArgs) -> Result<i32> {
    let rec = Recording::open(&args.file)?;
    let how = Play {
        node: args.node.as_deref(),
        speed: args.speed,
        paused: args.paused,
        start: args.start,
        demo: false,
        filter: crate::cmd::capture::one_filter(&args.filter, &args.expression)?,
    };
    play(rec, how, tui)
}

/// The lab's seed cluster, recorded by tests/lab/checks/record-demo.sh.
const DEMO: &[u8] = include_bytes!("../../demo/seed.hsrec");
/// The same cluster with worker2's inbound SA deleted (no-inbound-sa).
const DEMO_BROKEN: &[u8] = include_bytes!("../../demo/seed-broken.hsrec");

/// The demo's recording.
pub fn demo_recording(broken: bool) -> Result<Recording> {
    let (bytes, name) = if broken {
        (DEMO_BROKEN, "demo (broken: no inbound SA)")
    } else {
        (DEMO, "demo")
    };
    let mut rec = Recording::read(bytes).context("the demo recording")?;
    rec.name = name.to_string();
    Ok(rec)
}

pub fn demo(args: &DemoArgs, tui: &crate::cli::TuiArgs) -> Result<i32> {
    if let Some(path) = &args.extract {
        let bytes = if args.broken { DEMO_BROKEN } else { DEMO };
        std::fs::write(path, bytes).with_context(|| format!("{}", path.display()))?;
        eprintln!("hopscope: the demo recording is in {}", path.display());
        return Ok(0);
    }
    let how = Play {
        node: None,
        speed: args.speed,
        paused: false,
        start: None,
        demo: true,
        filter: None,
    };
    play(demo_recording(args.broken)?, how, tui)
}
