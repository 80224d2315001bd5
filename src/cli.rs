//! The command line: `hopscope [snapshot] [--netns ...]`.

use crate::source::Target;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hopscope",
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("HOPSCOPE_COMMIT"),
        ", ",
        env!("HOPSCOPE_LINK"),
        ")"
    ),
    about = "Read-only network debugger for a Kubernetes node. With no command: the live TUI — links, routes (every table), rules, XFRM SAs and policies, xfrm_stat, per-interface packet streams (ESP decrypted with the node's keys), and one flow followed hop by hop",
    long_about = None,
    after_help = crate::manual::after_help("")
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten, next_help_heading = "Global options (any command)")]
    pub target: TargetArgs,
    #[command(
        flatten,
        next_help_heading = "Kubernetes (global: names for addresses, attach)"
    )]
    pub kube: crate::kube::KubeArgs,
    #[command(flatten, next_help_heading = "TUI options (hopscope with no command)")]
    pub tui: TuiArgs,
    /// Do not lock down once what a run needs is open (see docs/security.md): keep root and
    /// the capabilities, no seccomp filter. The process stays non-dumpable.
    #[arg(long, global = true)]
    pub no_sandbox: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the node's network state once (text, or --json) and exit.
    #[command(after_help = crate::manual::after_help("snapshot"))]
    Snapshot(SnapshotArgs),
    /// Follow one flow: the path the kernel would take, hop by hop, what decided each hop,
    /// and where it stops. Give --netns once per node to follow it across nodes.
    #[command(after_help = crate::manual::after_help("trace"))]
    Trace(crate::cmd::trace::TraceArgs),
    /// Capture packets on several interfaces at once: ESP vs plaintext per interface, ESP
    /// decrypted with the node's own SA keys (--decrypt), leaks flagged (docs/capture.md).
    #[command(after_help = crate::manual::after_help("capture"))]
    Capture(CaptureArgs),
    /// Run hopscope on a Kubernetes node: a debug pod pinned to it (host network and PID,
    /// only the capabilities it needs) from a stock image, this hopscope's static binary sent
    /// into it, the terminal attached, the pod deleted afterwards (docs/kube.md). As a kubectl
    /// plugin: `kubectl hopscope node/NAME`.
    #[command(after_help = crate::manual::after_help("attach"))]
    Attach(crate::cmd::attach::AttachArgs),
    /// Say what is broken on an IPsec node, which object is wrong and how to fix it: the
    /// kernel's XFRM lookups re-run over each node's state, rising counters explained; exit
    /// 0 fine, 1 warnings, 2 failures (docs/doctor.md). --netns once per node.
    #[command(after_help = crate::manual::after_help("doctor"))]
    Doctor(crate::cmd::doctor::DoctorArgs),
    /// Record the nodes (--netns, repeatable) into a file: states, every change, counters,
    /// frames (-i), names; keys only with --show-keys (docs/record.md).
    #[command(after_help = crate::manual::after_help("record"))]
    Record(crate::cmd::record::RecordArgs),
    /// Play a recording in the TUI: 1×, N×, pause, step, seek (docs/record.md).
    #[command(after_help = crate::manual::after_help("replay"))]
    Replay(crate::cmd::record::ReplayArgs),
    /// The TUI on a recording of a real IPsec lab cluster, shipped inside hopscope: no root,
    /// no cluster needed.
    #[command(after_help = crate::manual::after_help("demo"))]
    Demo(crate::cmd::record::DemoArgs),
    /// A .tar.gz for a ticket: each node's state (keys redacted, a keyed hash of each), the
    /// doctor's findings, iptables rules and a short recording (docs/record.md).
    #[command(after_help = crate::manual::after_help("bundle"))]
    Bundle(crate::record::bundle::BundleArgs),
    /// Shell completions and man pages, made from this command line (for packagers).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generate,
}

#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Print the completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write hopscope.1 and one page per subcommand (hopscope-snapshot.1, …) into DIR;
    /// without DIR, print hopscope.1.
    Man { dir: Option<std::path::PathBuf> },
}

impl Generate {
    /// Write what was asked for: the script or page to `out`, or the pages into DIR.
    pub fn run(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        use clap::CommandFactory;
        let cmd = Cli::command();
        match self {
            Generate::Completions { shell } => {
                // clap_complete offers hidden subcommands too: complete a copy without them.
                let mut shown = clap::Command::new("hopscope")
                    .version(env!("CARGO_PKG_VERSION"))
                    .args(cmd.get_arguments().cloned())
                    .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
                clap_complete::generate(*shell, &mut shown, "hopscope", out);
                Ok(())
            }
            Generate::Man { dir: Some(dir) } => crate::manual::write_pages(cmd, dir),
            Generate::Man { dir: None } => {
                // As write_pages renders it: no `help` subcommand listed.
                let mut cmd = cmd.disable_help_subcommand(true);
                cmd.build();
                crate::manual::render_page(cmd, "", out)
            }
        }
    }
}

#[derive(Debug, Args, Clone, Default)]
pub struct TargetArgs {
    /// Read another network namespace: a name under /run/netns or a path (e.g. /proc/PID/ns/net).
    /// `trace` takes it once per node.
    #[arg(long, global = true, value_name = "NAME|PATH", conflicts_with = "pid")]
    pub netns: Vec<String>,
    /// Read the network namespace of this process (e.g. a kind node container's init).
    #[arg(long, global = true, value_name = "PID")]
    pub pid: Option<u32>,
}

impl TargetArgs {
    /// The one netns a single-node command reads (the first --netns if several are given).
    pub fn target(&self) -> Target {
        self.targets().swap_remove(0)
    }

    /// Every node asked for, in order; the caller's own netns when none is.
    pub fn targets(&self) -> Vec<Target> {
        match (&self.netns[..], self.pid) {
            ([], Some(p)) => vec![Target::Pid(p)],
            ([], None) => vec![Target::Current],
            (names, _) => names.iter().cloned().map(Target::Netns).collect(),
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
    /// Print a node of a recording (its state at the end) instead of reading the live node;
    /// --netns NAME picks the recorded node.
    #[arg(long, value_name = "FILE")]
    pub from: Option<std::path::PathBuf>,
    /// Internal (trace --follow's re-read, src/cmd/reread.rs): read the node only once a line
    /// arrives on stdin; at the end of stdin without one, exit without reading.
    #[arg(long, hide = true)]
    pub when_told: bool,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Interface to capture on (repeatable); `any` for all at once (Linux cooked headers).
    #[arg(short = 'i', long = "interface", value_name = "IF")]
    pub interfaces: Vec<String>,
    /// Capture on every interface that is up, one reader each.
    #[arg(long)]
    pub all: bool,
    /// BPF capture filter, as tcpdump takes it (e.g. "esp or icmp"); or give it as the
    /// trailing words, as with tcpdump.
    #[arg(short = 'f', long = "filter", value_name = "BPF")]
    pub filter: Option<String>,
    /// The capture filter as trailing words, as tcpdump takes it: `capture -i eth0 esp or icmp`.
    #[arg(value_name = "EXPRESSION")]
    pub expression: Vec<String>,
    /// Accepted for tcpdump's habit (-n, -nn): hopscope never resolves addresses or ports
    /// through DNS or /etc/services (Kubernetes names come from the API server, --no-kube).
    #[arg(short = 'n', action = clap::ArgAction::Count)]
    pub numeric: u8,
    /// Decrypt ESP with the keys of the node's own SAs (kept in memory, never printed).
    #[arg(long)]
    pub decrypt: bool,
    /// One JSON object per packet (and per --stats interval); a summary object at the end.
    #[arg(long)]
    pub json: bool,
    /// Write the frames to a pcapng file (`-` for stdout; one interface block per interface;
    /// no keys) instead of printing them, as tcpdump -w; --print prints them too.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<std::path::PathBuf>,
    /// With -w: print the packets as well (as tcpdump --print).
    #[arg(long, requires = "write")]
    pub print: bool,
    /// Stop after N packets (over all interfaces; after the filter), as tcpdump -c.
    #[arg(short = 'c', long = "count", value_name = "N", value_parser = |s: &str| crate::input::count_in(s, u64::MAX))]
    pub count: Option<u64>,
    /// Stop after S seconds (e.g. 10, 0.5; at most a year).
    #[arg(long, value_name = "S", value_parser = crate::input::seconds)]
    pub duration: Option<std::time::Duration>,
    /// Print the SA keys used for --decrypt (stderr). Keys are secrets: mind where output goes.
    #[arg(long)]
    pub show_keys: bool,
    /// Print per-interface ESP and plaintext packets/s every S seconds (stderr; JSON records).
    #[arg(long, value_name = "S", value_parser = crate::input::seconds)]
    pub stats: Option<std::time::Duration>,
    /// Do not print packets; only the totals at the end (with -w, or to measure).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Bytes captured per packet (1 to 262144; 0 means 262144, as tcpdump -s 0).
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 262144,
          value_parser = clap::value_parser!(i32).range(0..=262144))]
    pub snaplen: i32,
    /// Kernel capture buffer per interface, in KiB (as tcpdump -B).
    #[arg(
        short = 'B',
        long = "buffer-size",
        value_name = "KIB",
        default_value_t = 4096,
        value_parser = clap::value_parser!(i32).range(1..=1 << 21)
    )]
    pub buffer_kib: i32,
    /// Packets queued between each interface's reader and the decoder; beyond, counted as
    /// dropped by hopscope (1 to 16777216).
    #[arg(long, value_name = "N", default_value_t = 65536,
          value_parser = |s: &str| crate::input::count_in(s, 1 << 24).map(|n| n as usize))]
    pub queue: usize,
    /// Read a pcap/pcapng file instead of capturing (decrypted with the keys given by --keys,
    /// -E or --esp-sa; docs/record.md).
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Option<std::path::PathBuf>,
    /// Keys for -r: a `hopscope snapshot --json --show-keys` of the node.
    #[arg(long, value_name = "STATE.json", requires = "read")]
    pub keys: Option<std::path::PathBuf>,
    /// Keys for -r as tcpdump's -E takes them: `spi@ipaddr algo:secret,…` or `file NAME`.
    #[arg(short = 'E', value_name = "SPEC", requires = "read")]
    pub esp_secrets: Vec<String>,
    /// Keys for -r from Wireshark's esp_sa file.
    #[arg(long = "esp-sa", value_name = "FILE", requires = "read")]
    pub esp_sa: Option<std::path::PathBuf>,
    /// Write the keys given as Wireshark esp_sa lines to FILE.
    #[arg(long = "wireshark-keys", value_name = "FILE", requires = "read")]
    pub wireshark_keys: Option<std::path::PathBuf>,
}

/// Options of the live view (`hopscope` with no subcommand). Defaults come from the
/// config file (docs/tui.md); these win over it.
#[derive(Debug, Args, Clone, Default)]
pub struct TuiArgs {
    /// Colours: dark, light, mono, or a theme .toml file (default dark; mono under NO_COLOR).
    #[arg(long, value_name = "NAME|PATH", value_parser = theme_arg)]
    pub theme: Option<String>,
    /// How often counters are sampled: 1s (default), 500ms, 2.5s; 100ms to 1h.
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| crate::input::interval(s).map(|_| s.to_string()))]
    pub interval: Option<String>,
    /// Show XFRM keys in the detail view instead of "redacted". Keys are secrets.
    #[arg(long = "show-keys", id = "tui_show_keys")]
    pub show_keys: bool,
}

/// `--theme`: a built-in name or a theme file that loads, checked when the command line is
/// read (also when no terminal is attached and the TUI does not start).
fn theme_arg(s: &str) -> Result<String, String> {
    crate::tui::theme::Theme::load(Some(s), false).map(|_| s.to_string())
}
