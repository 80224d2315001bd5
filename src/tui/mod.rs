//! The terminal UI (`hopscope` with no subcommand, and `hopscope replay`).
//!
//! One loop owns the state: it drains the events of its `Inputs` (the live node, or a
//! recording) into a `Live`, lets `App` (pure logic: keys → actions → view state) react to
//! input, and draws with `render::draw`, a function of `&App` and `&Live`. Paused, it draws a
//! frozen copy while the live one keeps taking events.

pub mod app;
pub mod bpf_check;
pub(crate) mod capturing;
pub mod config;
pub mod filter;
pub mod flow;
pub(crate) mod health;
pub mod inputs;
pub mod keymap;
pub mod packets;
pub mod render;
pub mod rows;
pub(crate) mod term;
pub mod theme;

use crate::explain::cilium;
use crate::model::event::Live;
use crate::source::Target;
use anyhow::{Context, Result};
use app::{App, Effect};
pub use inputs::Inputs;
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use ratatui::crossterm::event as cev;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Options {
    pub target: Target,
    pub interval: Duration,
    pub theme: theme::Theme,
    pub keymap: keymap::Keymap,
    pub show_keys: bool,
    pub pane: rows::Pane,
    /// Where to read Kubernetes names from (silent without credentials).
    pub kube: crate::kube::KubeArgs,
}

/// How long the loop waits for input when nothing happens (idle CPU stays near zero).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// At most this many events are applied before a frame is drawn.
const EVENTS_PER_FRAME: usize = 50_000;
/// At most this many terminal events are answered between two frames.
const KEYS_PER_FRAME: usize = 256;
/// While capturing: input is looked at this often, packets are analysed for at most
/// `PACKET_BUDGET` between looks, and the stream is redrawn at most every `STREAM_FRAME`
/// (a key is answered at once). A flood costs drops, counted and shown, never key latency.
const CAPTURE_POLL: Duration = Duration::from_millis(10);
const PACKET_BUDGET: Duration = Duration::from_millis(25);
const STREAM_FRAME: Duration = Duration::from_millis(100);

/// Run the TUI on the live node until quit or a termination signal. Returns the signal number
/// if one ended it (the caller exits with 128 + signal).
pub fn run(opts: Options) -> Result<i32> {
    // A bad --netns fails here, before the terminal is touched.
    let mut inputs = inputs::LiveInputs::start(&opts.target, opts.interval, &opts.kube)?;
    run_on_terminal(&mut inputs, &opts)
}

/// Take over the terminal, run the loop on `inputs`, give the terminal back.
pub fn run_on_terminal(inputs: &mut dyn Inputs, opts: &Options) -> Result<i32> {
    let guard = term::Guard::enter().context("setting up the terminal")?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    let app = new_app(opts, inputs);
    let result = run_loop(&mut terminal, inputs, app, &opts.theme);
    drop(terminal);
    drop(guard);
    result
}

/// The app as the options say, showing what `inputs` read.
pub fn new_app(opts: &Options, inputs: &dyn Inputs) -> App {
    let mut app = App::new(
        opts.keymap.clone(),
        opts.interval,
        inputs.label(),
        inputs.since(),
    );
    app.show_keys = opts.show_keys;
    app.pane = opts.pane;
    app.netns_names = inputs.netns_names();
    inputs.prepare(&mut app);
    app
}

/// The loop: take what came, draw when something changed, answer the terminal. Returns the
/// signal that ended it (0: quit).
pub fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    inputs: &mut dyn Inputs,
    app: App,
    theme: &theme::Theme,
) -> Result<i32>
where
    B::Error: Send + Sync + 'static,
{
    let mut ui = Screen {
        app,
        live: Live::default(),
        frozen: None,
        dirty: true,
        last_draw: Instant::now(),
        names_gen: u64::MAX,
        node_ids: (None, Arc::default()),
        bpf: bpf_check::Checker::default(),
    };
    loop {
        let sig = inputs.signal();
        if sig != 0 {
            return Ok(sig);
        }
        if term::take_redraw() {
            // Continued after a stop: the terminal was taken again, its screen is not ours.
            terminal.clear()?;
            ui.dirty = true;
        }
        ui.take_events(inputs);
        ui.take_packets(inputs);
        ui.notice_names(inputs);
        ui.take_bpf_verdicts();
        // The header's clock ticks even when nothing arrives.
        if ui.last_draw.elapsed() >= Duration::from_secs(1) {
            ui.dirty = true;
        }
        if ui.dirty {
            ui.draw(terminal, theme)?;
        }
        // A filter being checked: its verdict is shown as soon as it comes.
        let poll = if inputs.capturing() || ui.app.bpf_checking {
            CAPTURE_POLL
        } else {
            IDLE_POLL
        };
        let Some(mut ev) = inputs.terminal_event(poll)? else {
            continue;
        };
        // Keys that came faster than frames are drawn (a paste, a long filter typed) are all
        // answered before the next frame, up to a bound so the screen still moves.
        for answered in 1.. {
            let effect = ui.answer(ev, inputs);
            if let ControlFlow::Break(()) = ui.apply(effect, inputs) {
                return Ok(0);
            }
            if answered == KEYS_PER_FRAME {
                break;
            }
            match inputs.terminal_event(Duration::ZERO)? {
                Some(next) => ev = next,
                None => break,
            }
        }
    }
}

/// What the loop keeps between turns.
struct Screen {
    app: App,
    live: Live,
    /// Paused: the copy shown while the live one keeps taking events.
    frozen: Option<Live>,
    dirty: bool,
    last_draw: Instant,
    names_gen: u64,
    /// The shown state's node-ID names, for the (structure, names) generations they are of.
    node_ids: (Option<(u64, u64)>, Arc<cilium::NodeIdLabels>),
    /// Checks the capture filter line off the loop.
    bpf: bpf_check::Checker,
}

impl Screen {
    /// libpcap's verdicts on the capture filter line, as they come back.
    fn take_bpf_verdicts(&mut self) {
        for (text, verdict) in self.bpf.verdicts() {
            self.app.bpf_checked(&text, verdict);
            self.dirty = true;
        }
    }

    /// Fold the node's new events into the live state.
    fn take_events(&mut self, inputs: &mut dyn Inputs) {
        if inputs.restarted() {
            // Started over on the same node: the packet settings and the followed flow stay.
            let (decrypt, bpf) = (self.app.packets.decrypt, self.app.packets.bpf.take());
            let traced = self.app.traced.take();
            self.forget_shown(inputs);
            self.app.packets.decrypt = decrypt;
            self.app.packets.bpf = bpf;
            self.app.traced = traced;
        }
        let events = inputs.events(EVENTS_PER_FRAME);
        if !events.is_empty() {
            let now = inputs.instant();
            for ev in events {
                // The doctor's thread keeps its own copy from the same events.
                self.app.health.feed(&mut self.live, ev, now);
            }
            // Paused: the frozen copy is shown; the live one keeps collecting.
            self.dirty |= self.frozen.is_none();
        }
        self.app.dropped = inputs.dropped();
        self.app.now = inputs.now();
        self.app.target_label = inputs.label();
    }

    /// Analyse captured packets within the budget; redraw the stream at most every frame.
    fn take_packets(&mut self, inputs: &mut dyn Inputs) {
        if inputs.pump(PACKET_BUDGET, &self.live, &mut self.app) > 0
            && self.last_draw.elapsed() >= STREAM_FRAME
        {
            self.dirty = true;
        }
    }

    fn notice_names(&mut self, inputs: &dyn Inputs) {
        let (generation, names) = inputs.names();
        if generation != self.names_gen {
            self.names_gen = generation;
            self.app.names = names;
            self.app.invalidate(); // rows are formatted with the names: format them again
            self.dirty = true;
        }
    }

    fn draw<B: Backend>(&mut self, terminal: &mut Terminal<B>, theme: &theme::Theme) -> Result<()>
    where
        B::Error: Send + Sync + 'static,
    {
        let shown = self.frozen.as_ref().unwrap_or(&self.live);
        let app = &mut self.app;
        let (names_gen, node_ids) = (self.names_gen, &mut self.node_ids);
        // Marks name node IDs from the node's SAs and the names: again only when either
        // changed (the rows are formatted again then too).
        let key = (shown.structure_gen, names_gen);
        if node_ids.0 != Some(key) {
            let ids = cilium::node_id_labels(&shown.state.xfrm_states, &app.names);
            *node_ids = (Some(key), ids);
        }
        cilium::with_node_ids(node_ids.1.clone(), || -> Result<()> {
            app.refresh(shown);
            terminal.draw(|f| render::draw(f, app, shown, theme))?;
            Ok(())
        })?;
        self.dirty = false;
        // For the end-to-end test of the panic hook (tests/tui_e2e.rs).
        if self.live.loaded && std::env::var_os("HOPSCOPE_TEST_PANIC").is_some() {
            panic!("HOPSCOPE_TEST_PANIC: a panic to test that the terminal is restored");
        }
        self.last_draw = Instant::now();
        Ok(())
    }

    /// What a terminal event asks for.
    fn answer(&mut self, ev: cev::Event, inputs: &mut dyn Inputs) -> Effect {
        self.dirty = true;
        match ev {
            cev::Event::Key(k) => {
                if self.app.mode == app::Mode::Normal
                    && let Some(m) = inputs.take_key(&k)
                {
                    self.app.message = Some((m, false));
                    return Effect::None;
                }
                if self.app.mode == app::Mode::Command {
                    self.app.netns_names = inputs.netns_names();
                }
                // Any key clears the last answer; the action may set a new one.
                self.app.message = None;
                let shown = self.frozen.as_ref().unwrap_or(&self.live);
                self.app.handle_key(k, shown)
            }
            cev::Event::Mouse(m) => {
                let shown = self.frozen.as_ref().unwrap_or(&self.live);
                self.app.handle_mouse(m, shown)
            }
            _ => Effect::None, // resize and focus: just redraw
        }
    }

    /// Carry out what the app asked for; `Break` to quit.
    fn apply(&mut self, effect: Effect, inputs: &mut dyn Inputs) -> ControlFlow<()> {
        let app = &mut self.app;
        match effect {
            Effect::None => {}
            Effect::Quit => return ControlFlow::Break(()),
            Effect::CheckBpf(text) => self.bpf.submit(text),
            Effect::Pause => {
                self.frozen = app.paused.then(|| self.live.clone());
                app.invalidate();
            }
            Effect::Netns(name) => match inputs.switch_netns(&name) {
                Ok(()) => self.follow_new_netns(inputs),
                Err(e) => app.message = Some((format!("{e:#}"), true)),
            },
            Effect::Capture { ifaces, on } => {
                let r = inputs.capture(&ifaces, on, &self.live, app);
                app.message = Some(match r {
                    Ok(m) => (m, false),
                    Err(e) => (format!("{e:#}"), true),
                });
                if on {
                    app.pane = rows::Pane::Packets;
                    app.refresh(&self.live);
                }
            }
            Effect::Bpf(f) => {
                let r = inputs.set_filter(f.clone(), app);
                app.message = Some(match (r, f) {
                    (Ok(()), Some(f)) => (format!("capture filter {f:?}"), false),
                    (Ok(()), None) => ("no capture filter".into(), false),
                    (Err(e), _) => (format!("{e:#}"), true),
                });
            }
            Effect::Trace(flow) => {
                let devs = follow_flow(flow, inputs.netfilter(), &self.live, app);
                if !devs.is_empty()
                    && let Err(e) = inputs.capture(&devs, true, &self.live, app)
                {
                    app.message = Some((format!("{e:#}"), true));
                }
                app.pane = rows::Pane::Trace;
                app.refresh(&self.live);
            }
        }
        ControlFlow::Continue(())
    }

    /// Another netns is shown: what was seen of the old one goes.
    fn follow_new_netns(&mut self, inputs: &dyn Inputs) {
        self.forget_shown(inputs);
        let app = &mut self.app;
        app.message = Some((format!("following {}", app.target_label), false));
    }

    /// Start from nothing: the inputs now show another node, or started over.
    fn forget_shown(&mut self, inputs: &dyn Inputs) {
        let app = &mut self.app;
        app.packets = packets::PacketLog::default();
        // Sequence numbers start over with the log: a held packet is gone with it.
        app.views[rows::Pane::Packets.index()].held = None;
        app.traced = None;
        self.live = Live::default();
        app.health.forget();
        self.frozen = None;
        app.paused = false;
        app.target_label = inputs.label();
        app.since = inputs.since();
        app.table = None;
        app.invalidate();
    }
}

/// Predict the flow's path on the node shown (with its iptables rules) and make it the Trace
/// pane's; returns the devices to capture on to follow it.
fn follow_flow(
    flow: crate::trace::path::Flow,
    netfilter: crate::model::Netfilter,
    live: &Live,
    app: &mut App,
) -> Vec<String> {
    use crate::trace::path::{Node, trace_named};
    let name = live.state.node.name();
    let node = Node {
        name: name.clone(),
        state: live.state.clone(),
        netfilter,
    };
    let t = trace_named(std::slice::from_ref(&node), &flow, &app.names);
    // The node as traced is where the moved counters are counted from.
    let traced = flow::Traced::new(&name, t, node.state);
    let devs = traced.devices.clone();
    app.message = Some((
        format!(
            "tracing {} → {}: {} hops predicted{}",
            flow.src,
            flow.dst,
            traced.len(),
            if devs.is_empty() {
                String::new()
            } else {
                format!("; following on {}", devs.join(", "))
            }
        ),
        false,
    ));
    app.traced = Some(traced);
    app.trace_gen += 1;
    app.views[rows::Pane::Trace.index()].selected = 0;
    devs
}

/// Options from the command line over the config file over the defaults.
pub fn options(target: Target, args: &crate::cli::TuiArgs) -> Result<Options> {
    let cfg = config::load().map_err(|e| anyhow::anyhow!("config file: {e}"))?;
    // NO_COLOR beats a theme from the config file, not one given on the command line.
    let theme = if theme::no_color_env() && args.theme.is_none() {
        theme::Theme::builtin("mono")
    } else {
        theme::Theme::load(args.theme.as_deref().or(cfg.theme.as_deref()), false)
            .map_err(|e| anyhow::anyhow!(e))?
    };
    let interval = match args.interval.as_deref().or(cfg.interval.as_deref()) {
        Some(s) => config::parse_interval(s).map_err(|e| anyhow::anyhow!("--interval: {e}"))?,
        None => Duration::from_secs(1),
    };
    let pane = match cfg.pane.as_deref() {
        Some(p) => rows::Pane::from_name(p)
            .ok_or_else(|| anyhow::anyhow!("config file: unknown pane {p:?}"))?,
        None => rows::Pane::Links,
    };
    let keymap = keymap::Keymap::default()
        .with_overrides(&cfg.keys)
        .map_err(|e| anyhow::anyhow!("config file: {e}"))?;
    Ok(Options {
        target,
        interval,
        theme,
        keymap,
        show_keys: args.show_keys,
        pane,
        kube: Default::default(),
    })
}

/// `hopscope` with no subcommand. Unless `--no-sandbox`, the capabilities and syscalls it
/// will never need go once the config is read, before any thread starts
/// (`sandbox::limit_live`).
pub fn run_cli(
    target: Target,
    args: &crate::cli::TuiArgs,
    kube: &crate::kube::KubeArgs,
    sandbox: bool,
) -> Result<i32> {
    let opts = options(target, args)?;
    if sandbox {
        crate::sandbox::limit_live(crate::source::netfilter::BROKER_TOOLS)?;
    }
    run(Options {
        kube: kube.clone(),
        ..opts
    })
}
