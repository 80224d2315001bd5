//! The live terminal UI (`hopscope` with no subcommand).
//!
//! One loop owns the state: it drains the source's events into a `Live`, lets `App`
//! (pure logic: keys → actions → view state) react to input, and draws with
//! `render::draw`, a function of `&App` and `&Live`. Paused, it draws a frozen copy while
//! the live one keeps taking events.

pub mod app;
pub mod capturing;
pub mod config;
pub mod filter;
pub mod flow;
pub mod health;
pub mod keymap;
pub mod packets;
pub mod render;
pub mod rows;
pub mod term;
pub mod theme;

use crate::model::NetnsInfo;
use crate::model::event::Live;
use crate::source::Target;
use crate::source::monitor::{self, Monitor};
use anyhow::{Context, Result};
use app::{App, Effect};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event as cev;
use std::time::{Duration, Instant, SystemTime};

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

/// `netns worker`, `pid 1234`, `own netns`.
pub fn target_label(info: &NetnsInfo) -> String {
    match (&info.name, info.pid, &info.path) {
        (Some(n), _, _) => format!("netns {n}"),
        (None, Some(p), _) => format!("netns of pid {p}"),
        (None, None, Some(p)) => format!("netns {p}"),
        _ => "own netns".into(),
    }
}

/// How long the loop waits for input when nothing happens (idle CPU stays near zero).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// At most this many events are applied before a frame is drawn.
const EVENTS_PER_FRAME: usize = 50_000;
/// While capturing: input is looked at this often, packets are analysed for at most
/// `PACKET_BUDGET` between looks, and the stream is redrawn at most every `STREAM_FRAME`
/// (a key is answered at once). A flood costs drops, counted and shown, never key latency.
const CAPTURE_POLL: Duration = Duration::from_millis(10);
const PACKET_BUDGET: Duration = Duration::from_millis(25);
const STREAM_FRAME: Duration = Duration::from_millis(100);

/// Run the TUI until quit or a termination signal. Returns the signal number if one
/// ended it (the caller exits with 128 + signal).
pub fn run(opts: Options) -> Result<i32> {
    let mon_opts = monitor::Options {
        interval: opts.interval,
        ..Default::default()
    };
    // A bad --netns fails here, before the terminal is touched.
    let mut monitor = Monitor::start(&opts.target, &mon_opts)?;
    let signals = term::Signals::watch().context("installing signal handlers")?;
    let mut app = App::new(
        opts.keymap,
        opts.interval,
        target_label(&monitor.info),
        SystemTime::now(),
    );
    app.show_keys = opts.show_keys;
    app.pane = opts.pane;
    app.netns_names = crate::source::netns::list_named();
    // Names for addresses in every pane, as the watch learns them.
    let names = crate::kube::names::NamesWatch::start(&opts.kube);
    let mut names_gen = u64::MAX;
    let guard = term::Guard::enter().context("setting up the terminal")?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    let mut live = Live::default();
    let mut frozen: Option<Live> = None;
    let mut target = opts.target.clone();
    let mut capturing: Option<capturing::Capturing> = None;
    let mut dirty = true;
    let mut last_draw = Instant::now();
    let result = loop {
        let sig = signals.got();
        if sig != 0 {
            break Ok(sig);
        }
        let events = monitor.drain(EVENTS_PER_FRAME);
        if !events.is_empty() {
            let now = Instant::now();
            for ev in events {
                live.apply(ev, now);
            }
            // Paused: the frozen copy is shown; the live one keeps collecting.
            dirty |= frozen.is_none();
        }
        app.dropped = monitor.dropped();
        app.now = SystemTime::now();
        if let Some(c) = capturing.as_mut()
            && c.pump(PACKET_BUDGET, &live, &mut app) > 0
            && last_draw.elapsed() >= STREAM_FRAME
        {
            dirty = true;
        }
        // The header's clock ticks even when nothing arrives.
        if last_draw.elapsed() >= Duration::from_secs(1) {
            dirty = true;
        }
        if names.generation() != names_gen {
            names_gen = names.generation();
            app.invalidate(); // rows are formatted with the names: format them again
            dirty = true;
        }
        if dirty {
            let shown = frozen.as_ref().unwrap_or(&live);
            crate::model::names::with_names(names.names(), || -> Result<()> {
                app.refresh(shown);
                terminal.draw(|f| render::draw(f, &app, shown, &opts.theme))?;
                Ok(())
            })?;
            dirty = false;
            // For the end-to-end test of the panic hook (tests/tui_e2e.rs).
            if live.loaded && std::env::var_os("HOPSCOPE_TEST_PANIC").is_some() {
                panic!("HOPSCOPE_TEST_PANIC: a panic to test that the terminal is restored");
            }
            last_draw = Instant::now();
        }
        let poll = if capturing.is_some() {
            CAPTURE_POLL
        } else {
            IDLE_POLL
        };
        if !cev::poll(poll)? {
            continue;
        }
        let effect = {
            let shown = frozen.as_ref().unwrap_or(&live);
            match cev::read()? {
                cev::Event::Key(k) => {
                    if app.mode == app::Mode::Command {
                        app.netns_names = crate::source::netns::list_named();
                    }
                    // Any key clears the last answer; the action may set a new one.
                    app.message = None;
                    app.handle_key(k, shown)
                }
                cev::Event::Mouse(m) => app.handle_mouse(m, shown),
                _ => Effect::None, // resize and focus: just redraw
            }
        };
        dirty = true;
        match effect {
            Effect::None => {}
            Effect::Quit => break Ok(0),
            Effect::Pause => {
                frozen = app.paused.then(|| live.clone());
                app.invalidate();
            }
            Effect::Netns(name) => {
                let next = Target::Netns(name.clone());
                match Monitor::start(&next, &mon_opts) {
                    Ok(m) => {
                        target = next;
                        monitor = m; // the old one stops when dropped
                        // Packets and traces were of the other netns.
                        capturing = None;
                        app.packets = packets::PacketLog::default();
                        app.traced = None;
                        live = Live::default();
                        frozen = None;
                        app.paused = false;
                        app.target_label = target_label(&monitor.info);
                        app.since = SystemTime::now();
                        app.table = None;
                        app.invalidate();
                        app.message = Some((format!("following {}", app.target_label), false));
                    }
                    Err(e) => app.message = Some((format!("{e:#}"), true)),
                }
            }
            Effect::Capture { ifaces, on } => {
                let r = start_capture(&mut capturing, &target, &live, &mut app)
                    .and_then(|c| c.set(&ifaces, on, &mut app));
                app.message = Some(match r {
                    Ok(m) => (m, false),
                    Err(e) => (format!("{e:#}"), true),
                });
                if on {
                    app.pane = rows::Pane::Packets;
                    app.refresh(&live);
                }
            }
            Effect::Bpf(f) => {
                let r = match capturing.as_mut() {
                    Some(c) => c.set_filter(f.clone(), &mut app),
                    None => {
                        app.packets.bpf = f.clone();
                        Ok(())
                    }
                };
                app.message = Some(match (r, f) {
                    (Ok(()), Some(f)) => (format!("capture filter {f:?}"), false),
                    (Ok(()), None) => ("no capture filter".into(), false),
                    (Err(e), _) => (format!("{e:#}"), true),
                });
            }
            Effect::Trace(flow) => {
                let devs = follow_flow(flow, &target, &live, &mut app);
                if !devs.is_empty()
                    && let Err(e) = start_capture(&mut capturing, &target, &live, &mut app)
                        .and_then(|c| c.set(&devs, true, &mut app))
                {
                    app.message = Some((format!("{e:#}"), true));
                }
                app.pane = rows::Pane::Trace;
                app.refresh(&live);
            }
        }
    };
    drop(terminal);
    drop(guard);
    result
}

/// The capture session, started on first use.
fn start_capture<'a>(
    slot: &'a mut Option<capturing::Capturing>,
    target: &Target,
    live: &Live,
    app: &mut App,
) -> Result<&'a mut capturing::Capturing> {
    if slot.is_none() {
        *slot = Some(capturing::Capturing::new(
            target,
            live,
            app.packets.bpf.clone(),
        )?);
    }
    Ok(slot.as_mut().expect("just started"))
}

/// Predict the flow's path on the node shown (with its iptables rules) and make it the Trace
/// pane's; returns the devices to capture on to follow it.
fn follow_flow(
    flow: crate::trace::path::Flow,
    target: &Target,
    live: &Live,
    app: &mut App,
) -> Vec<String> {
    use crate::trace::path::{Node, trace};
    let name = crate::trace::cmd::node_name(&live.state);
    // Without iptables tools the trace still runs (it says what it assumed).
    let netfilter = crate::source::collect_netfilter(target).unwrap_or_default();
    let node = Node {
        name: name.clone(),
        state: live.state.clone(),
        netfilter,
    };
    let t = trace(std::slice::from_ref(&node), &flow);
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

/// `hopscope` with no subcommand.
pub fn run_cli(
    target: Target,
    args: &crate::cli::TuiArgs,
    kube: &crate::kube::KubeArgs,
) -> Result<i32> {
    run(Options {
        kube: kube.clone(),
        ..options(target, args)?
    })
}
