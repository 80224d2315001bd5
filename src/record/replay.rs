//! A recording played into the TUI: the same loop and panes as live, its inputs read from the
//! file on a clock of its own (1×, N×, paused, stepped, moved). Frames are analysed against the
//! node as recorded; ESP that was decrypted when recording shows decrypted without keys.

use super::Stamp;
use super::reader::{Item, Recording};
use crate::capture::analyze::{Analyzer, Ts};
use crate::model::event::{Event, Live};
use crate::model::{Names, Netfilter};
use crate::tui::app::App;
use crate::tui::capturing::deliver;
use crate::tui::inputs::Inputs;
use anyhow::Result;
use ratatui::crossterm::event::{self as cev, KeyCode};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const SECOND: u64 = 1_000_000_000;
/// How often per-interface counters and the followed trace are brought up to date.
const SYNC_EVERY: Duration = Duration::from_millis(250);
/// Speeds the `+`/`-` keys move between.
const MIN_SPEED: f64 = 0.25;
const MAX_SPEED: f64 = 64.0;

/// The recording's clock: a position that runs at `speed` unless paused.
#[derive(Debug, Clone)]
pub struct Clock {
    anchor: Instant,
    at: Stamp,
    pub speed: f64,
    pub paused: bool,
    end: Stamp,
}

impl Clock {
    pub fn pos(&self) -> Stamp {
        if self.paused {
            return self.at;
        }
        let run = self.anchor.elapsed().as_secs_f64() * self.speed * 1e9;
        (self.at + run as u64).min(self.end)
    }
    fn set(&mut self, at: Stamp) {
        self.at = at.min(self.end);
        self.anchor = Instant::now();
    }
    fn set_speed(&mut self, speed: f64) {
        let at = self.pos();
        self.speed = speed.clamp(MIN_SPEED, MAX_SPEED);
        self.set(at);
    }
    fn set_paused(&mut self, paused: bool) {
        let at = self.pos();
        self.paused = paused;
        self.set(at);
    }
}

/// The replay's own keys, shown at the start and after each of them.
const HELP: &str = "space pause · +/- speed · . step · [ ] ±10s · { } ±1m · 0 start · ? keys";

/// Keys and signals when not on a real terminal (tests): the events to answer, in order.
pub type Script = VecDeque<cev::Event>;

pub struct ReplayInputs {
    rec: Arc<Recording>,
    node: usize,
    pub clock: Clock,
    /// Next item of the node's track, next frame, next names table.
    next_item: usize,
    next_frame: usize,
    next_names: usize,
    names: (u64, Arc<Names>),
    /// Monotonic instant of the recording's start (samples are placed after it).
    base: Instant,
    analyzer: Option<Analyzer>,
    structure_gen: u64,
    last_sync: Instant,
    stopped: BTreeSet<String>,
    restarted: bool,
    /// Start over at the end (the demo).
    pub looping: bool,
    script: Option<Script>,
    signals: Option<crate::tui::term::Signals>,
    /// The capture filter applied to the recorded frames (`b`, `replay -f`): one program per
    /// recorded interface, compiled for its link type; frames it refuses are not shown.
    filter: Option<(String, Vec<pcap::BpfProgram>)>,
}

impl ReplayInputs {
    /// Play `rec`'s node `node` from its first state at `speed` (paused if asked).
    pub fn new(rec: Arc<Recording>, node: usize, speed: f64, paused: bool) -> ReplayInputs {
        let end = rec.duration();
        let mut r = ReplayInputs {
            rec,
            node,
            clock: Clock {
                anchor: Instant::now(),
                at: 0,
                speed: speed.clamp(MIN_SPEED, MAX_SPEED),
                paused,
                end,
            },
            next_item: 0,
            next_frame: 0,
            next_names: 0,
            names: (0, Arc::default()),
            base: Instant::now(),
            analyzer: None,
            structure_gen: u64::MAX,
            last_sync: Instant::now(),
            stopped: BTreeSet::new(),
            restarted: false,
            looping: false,
            script: None,
            signals: None,
            filter: None,
        };
        r.clock.set(r.first_state());
        r
    }

    /// When the node was first read: before it, there is nothing to show.
    fn first_state(&self) -> Stamp {
        self.rec.nodes[self.node]
            .items
            .iter()
            .find(|(_, i)| matches!(i, Item::State(_)))
            .map_or(0, |(t, _)| *t)
    }

    /// Answer the process's termination signals (the real terminal's session).
    pub fn watch_signals(&mut self) -> Result<()> {
        self.signals = Some(crate::tui::term::Signals::watch()?);
        Ok(())
    }

    /// Take terminal events from `script` instead of the terminal (`q` when it runs out).
    pub fn scripted(mut self, script: Script) -> ReplayInputs {
        self.script = Some(script);
        self
    }

    /// Move to `at` on the recording's clock: forward plays what lies between at once; back
    /// starts over and plays up to it.
    pub fn seek(&mut self, at: Stamp) {
        if at < self.clock.pos() {
            self.next_item = 0;
            self.next_frame = 0;
            self.next_names = 0;
            self.analyzer = None;
            self.structure_gen = u64::MAX;
            self.restarted = true;
        }
        self.clock.set(at);
    }

    /// Show only the recorded frames `filter` (a BPF expression, as tcpdump takes it) accepts,
    /// from the clock on; None shows them all. A bad filter changes nothing.
    pub fn set_capture_filter(&mut self, filter: Option<&str>) -> Result<()> {
        self.filter = match filter {
            None => None,
            Some(f) => {
                let progs = (0..self.rec.ifaces.len())
                    .map(|i| crate::capture::compile_filter(f, self.rec.linktype(i)))
                    .collect::<Result<Vec<_>>>()?;
                Some((f.to_string(), progs))
            }
        };
        Ok(())
    }

    pub fn recording(&self) -> &Recording {
        &self.rec
    }

    /// The time of the next thing that happens after the clock (for stepping).
    fn next_time(&self) -> Option<Stamp> {
        let pos = self.clock.pos();
        let item = self.rec.nodes[self.node].items[self.next_item..]
            .iter()
            .map(|(t, _)| *t)
            .find(|t| *t > pos);
        let frame = self.rec.frames[self.next_frame..]
            .iter()
            .filter(|f| self.of_node(f.iface))
            .map(|f| f.at)
            .find(|t| *t > pos);
        match (item, frame) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn of_node(&self, iface: usize) -> bool {
        usize::from(self.rec.ifaces[iface].node) == self.node
    }

    fn position(&self) -> String {
        format!(
            "{} / {}",
            clock_text(self.clock.pos()),
            clock_text(self.clock.end)
        )
    }

    fn sync(&mut self, live: &Live, app: &mut App) {
        let Some(an) = self.analyzer.as_mut() else {
            return;
        };
        let now = self.rec.meta.started_unix_ns + self.clock.pos();
        let rates = an.rates_at(Ts {
            sec: (now / SECOND) as i64,
            nsec: (now % SECOND) as u32,
        });
        for i in &self.rec.ifaces {
            if usize::from(i.node) != self.node {
                continue;
            }
            let s = app.packets.stream_mut(&i.name);
            s.counts = an.counts.get(&i.name).cloned().unwrap_or_default();
            s.rates = rates.get(&i.name).copied().unwrap_or_default();
            s.stopped = self.stopped.contains(&i.name);
        }
        if let Some(t) = app.traced.as_mut() {
            t.update(&live.state);
            app.trace_gen += 1;
        }
    }
}

/// `1:05` (minutes:seconds) of a position.
fn clock_text(at: Stamp) -> String {
    let s = at / SECOND;
    format!("{}:{:02}", s / 60, s % 60)
}

impl Inputs for ReplayInputs {
    fn label(&self) -> String {
        let rec = &self.rec;
        let state = if self.clock.paused {
            "paused".to_string()
        } else {
            format!("{}×", self.clock.speed)
        };
        format!(
            "REPLAY {} of {} on {} · {} {state}",
            rec.name,
            rec.nodes[self.node].label,
            if rec.meta.host.is_empty() {
                "?"
            } else {
                &rec.meta.host
            },
            self.position(),
        )
    }

    fn events(&mut self, max: usize) -> Vec<Event> {
        let pos = self.clock.pos();
        let items = &self.rec.nodes[self.node].items;
        let mut out = Vec::new();
        while let Some((t, item)) = items.get(self.next_item) {
            if *t > pos || out.len() >= max {
                break;
            }
            out.push(match item {
                Item::State(s) => Event::Resync(s.clone()),
                Item::Event(e) => (**e).clone(),
                Item::Sample(s) => {
                    Event::Sample(s.clone().at(self.base + Duration::from_nanos(*t)))
                }
            });
            self.next_item += 1;
        }
        while let Some((t, names)) = self.rec.names.get(self.next_names) {
            if *t > pos {
                break;
            }
            self.names = (self.names.0 + 1, Arc::new(names.clone()));
            self.next_names += 1;
        }
        out
    }

    fn dropped(&self) -> u64 {
        0
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_nanos(self.clock.pos())
    }

    fn now(&self) -> SystemTime {
        self.rec.meta.started() + Duration::from_nanos(self.clock.pos())
    }

    fn since(&self) -> SystemTime {
        self.rec.meta.started()
    }

    fn names(&self) -> (u64, Arc<Names>) {
        self.names.clone()
    }

    fn netns_names(&self) -> Vec<String> {
        self.rec
            .nodes
            .iter()
            .map(|n| {
                n.label
                    .strip_prefix("netns ")
                    .unwrap_or(&n.label)
                    .to_string()
            })
            .collect()
    }

    fn signal(&self) -> i32 {
        self.signals.as_ref().map_or(0, |s| s.got())
    }

    fn terminal_event(&mut self, timeout: Duration) -> Result<Option<cev::Event>> {
        if let Some(script) = self.script.as_mut() {
            // One key per frame, as a user types: a look without waiting finds nothing.
            if timeout.is_zero() {
                return Ok(None);
            }
            return Ok(Some(script.pop_front().unwrap_or(cev::Event::Key(
                cev::KeyEvent::new(KeyCode::Char('q'), cev::KeyModifiers::NONE),
            ))));
        }
        Ok(if cev::poll(timeout)? {
            Some(cev::read()?)
        } else {
            None
        })
    }

    fn switch_netns(&mut self, name: &str) -> Result<()> {
        let Some(node) = self.rec.node_index(name) else {
            anyhow::bail!(
                "{name} is not in this recording (it holds {})",
                self.netns_names().join(", ")
            );
        };
        let at = self.clock.pos();
        self.node = node;
        self.seek(0);
        self.clock.set(at);
        self.restarted = false; // the loop resets for the netns switch itself
        Ok(())
    }

    fn netfilter(&self) -> Netfilter {
        self.rec.nodes[self.node].netfilter.clone()
    }

    fn capturing(&self) -> bool {
        !self.clock.paused
    }

    fn capture(
        &mut self,
        ifaces: &[String],
        on: bool,
        _live: &Live,
        app: &mut App,
    ) -> Result<String> {
        let recorded: Vec<&str> = self
            .rec
            .ifaces
            .iter()
            .filter(|i| usize::from(i.node) == self.node)
            .map(|i| i.name.as_str())
            .collect();
        let known: Vec<&String> = ifaces
            .iter()
            .filter(|i| recorded.contains(&i.as_str()))
            .collect();
        if known.is_empty() {
            anyhow::bail!(
                "{} not captured in this recording (captured: {})",
                ifaces.join(", "),
                if recorded.is_empty() {
                    "none".to_string()
                } else {
                    recorded.join(", ")
                }
            );
        }
        for name in known {
            if on {
                self.stopped.remove(name);
            } else {
                self.stopped.insert(name.clone());
            }
            app.packets.stream_mut(name).stopped = !on;
        }
        Ok(format!(
            "{} recorded packets of {}",
            if on { "showing" } else { "hiding" },
            ifaces.join(", ")
        ))
    }

    fn set_filter(&mut self, filter: Option<String>, app: &mut App) -> Result<()> {
        self.set_capture_filter(filter.as_deref())?;
        app.packets.bpf = filter;
        Ok(())
    }

    fn pump(&mut self, budget: Duration, live: &Live, app: &mut App) -> usize {
        if self.script.is_some() {
            // Scripted (tests): each key is answered on the doctor's finished judgement, not
            // on whether its low-priority thread got the CPU before the script ran out.
            app.health.settle(Duration::from_secs(10));
        }
        if !live.loaded {
            return 0; // frames are judged against the node: wait for its state
        }
        if self.analyzer.is_none() || live.structure_gen != self.structure_gen {
            match self.analyzer.as_mut() {
                Some(an) => an.reload(&live.state),
                None => self.analyzer = Some(Analyzer::new(&live.state, false)),
            }
            self.structure_gen = live.structure_gen;
        }
        let an = self.analyzer.as_mut().expect("just made");
        an.set_decrypt(app.packets.decrypt);
        let pos = self.clock.pos();
        let start = Instant::now();
        let mut n = 0;
        while let Some(f) = self.rec.frames.get(self.next_frame) {
            if f.at > pos {
                break;
            }
            self.next_frame += 1;
            let iface = &self.rec.ifaces[f.iface];
            if usize::from(iface.node) != self.node || self.stopped.contains(&iface.name) {
                continue;
            }
            let link = self.rec.linktype(f.iface);
            let opened = f.opened.clone().filter(|_| app.packets.decrypt);
            // The analyzer sees every recorded frame, filtered or not: the plaintext the
            // kernel decrypted is known by the ESP frame before it, which a filter such as
            // `icmp` hides (judged alone it would be a false LEAK).
            let rec = an.analyze_opened(&iface.name, link, f.ts, f.len, &f.data, opened);
            if let Some((_, progs)) = &self.filter
                && !progs[f.iface].filter(&f.data)
            {
                continue;
            }
            deliver(app, rec);
            n += 1;
            if n % 256 == 0 && start.elapsed() >= budget {
                break;
            }
        }
        if n > 0 || self.last_sync.elapsed() >= SYNC_EVERY {
            self.last_sync = Instant::now();
            self.sync(live, app);
        }
        n
    }

    fn take_key(&mut self, key: &cev::KeyEvent) -> Option<String> {
        if !key
            .modifiers
            .difference(cev::KeyModifiers::SHIFT)
            .is_empty()
        {
            return None;
        }
        let KeyCode::Char(c) = key.code else {
            return None;
        };
        let ten = 10 * SECOND;
        match c {
            ' ' | 'p' => {
                let paused = !self.clock.paused;
                self.clock.set_paused(paused);
            }
            '+' | '>' => self.clock.set_speed(self.clock.speed * 2.0),
            '-' | '<' => self.clock.set_speed(self.clock.speed / 2.0),
            '.' => {
                self.clock.set_paused(true);
                match self.next_time() {
                    Some(t) => self.clock.set(t),
                    None => return Some(format!("end of the recording ({})", self.position())),
                }
            }
            ']' => self.seek(self.clock.pos().saturating_add(ten)),
            '[' => self.seek(self.clock.pos().saturating_sub(ten)),
            '}' => self.seek(self.clock.pos().saturating_add(6 * ten)),
            '{' => self.seek(self.clock.pos().saturating_sub(6 * ten)),
            '0' => self.seek(self.first_state()),
            _ => return None,
        }
        Some(format!(
            "replay {} {} ({HELP})",
            self.position(),
            if self.clock.paused {
                "paused".to_string()
            } else {
                format!("at {}×", self.clock.speed)
            }
        ))
    }

    fn prepare(&self, app: &mut App) {
        // What was decrypted when recording is shown decrypted (`d` toggles, as live).
        app.packets.decrypt = true;
        app.packets.bpf = self.filter.as_ref().map(|(f, _)| f.clone());
        app.message = Some((HELP.to_string(), false));
    }

    fn restarted(&mut self) -> bool {
        // Asked before the events are taken, so a loop's first events go to the fresh view.
        if self.looping && !self.clock.paused && self.clock.pos() >= self.clock.end {
            self.seek(self.first_state());
        }
        std::mem::take(&mut self.restarted)
    }
}
