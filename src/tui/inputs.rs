//! Everything the TUI loop reads from the world, behind one trait: the node's events, the
//! clock, the capture, the Kubernetes names, the terminal and the signals. The live node is one
//! implementation (`LiveInputs`); a recording played back is another (`record::replay`), and
//! tests script one — all of them drive the very same loop (`tui::run_loop`).

use super::app::App;
use super::capturing::Capturing;
use crate::model::event::{Event, Live};
use crate::model::{Names, Netfilter};
use crate::source::Target;
use crate::source::monitor::{self, Monitor};
use anyhow::Result;
use ratatui::crossterm::event as cev;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What the loop reads. Methods are called from the loop's one thread, in the loop's order.
pub trait Inputs {
    /// What is shown, for the header: `netns worker`, `replay of … (netns worker)`.
    fn label(&self) -> String;
    /// Node events waiting now, at most `max` (a frame never waits on a flood).
    fn events(&mut self, max: usize) -> Vec<Event>;
    /// Samples the source had to drop.
    fn dropped(&self) -> u64;
    /// The monotonic clock events are applied at (a replay's runs at its own speed).
    fn instant(&self) -> Instant;
    /// The wall clock the header shows.
    fn now(&self) -> SystemTime;
    /// When what is shown started (the header's "since").
    fn since(&self) -> SystemTime;
    /// Kubernetes names as known now, with a generation that rises when they change.
    fn names(&self) -> (u64, Arc<Names>);
    /// The named network namespaces that `:netns` can switch to.
    fn netns_names(&self) -> Vec<String>;
    /// A termination signal that ended the session (0: none).
    fn signal(&self) -> i32;
    /// Wait up to `timeout` for a terminal event.
    fn terminal_event(&mut self, timeout: Duration) -> Result<Option<cev::Event>>;
    /// Follow another netns from now on; the loop resets what it showed of the old one.
    fn switch_netns(&mut self, name: &str) -> Result<()>;
    /// The iptables rules of the node shown (a trace's netfilter hops).
    fn netfilter(&self) -> Netfilter;
    /// Whether packets may be arriving (the loop then looks at input more often).
    fn capturing(&self) -> bool;
    /// Start (`on`) or stop capturing on interfaces; the answer for the footer.
    fn capture(
        &mut self,
        ifaces: &[String],
        on: bool,
        live: &Live,
        app: &mut App,
    ) -> Result<String>;
    /// A new capture filter (None: none).
    fn set_filter(&mut self, filter: Option<String>, app: &mut App) -> Result<()>;
    /// Analyse waiting packets for at most `budget` into the app; how many were taken.
    fn pump(&mut self, budget: Duration, live: &Live, app: &mut App) -> usize;
    /// Keys the inputs answer themselves (a replay's play/pause/seek), before the app sees
    /// them: `Some(message)` when taken.
    fn take_key(&mut self, _key: &cev::KeyEvent) -> Option<String> {
        None
    }
    /// The inputs' own defaults for the view (a replay shows ESP decrypted from the start).
    fn prepare(&self, _app: &mut App) {}
    /// True once after the inputs started over (a replay seeking back): the loop forgets
    /// what it showed, as for another netns.
    fn restarted(&mut self) -> bool {
        false
    }
}

/// The live node: netlink monitor and sampler, libpcap captures, the names watch, the real
/// clock, the real terminal and the process's signals.
pub struct LiveInputs {
    monitor: Monitor,
    mon_opts: monitor::Options,
    target: Target,
    capturing: Option<Capturing>,
    names: crate::kube::names::NamesWatch,
    signals: super::term::Signals,
    since: SystemTime,
}

impl LiveInputs {
    /// Open the target netns (a bad --netns fails here, before the terminal is touched) and
    /// start watching it and the names.
    pub fn start(
        target: &Target,
        interval: Duration,
        kube: &crate::kube::KubeArgs,
    ) -> Result<LiveInputs> {
        use anyhow::Context;
        let mon_opts = monitor::Options {
            interval,
            ..Default::default()
        };
        let monitor = Monitor::start(target, &mon_opts)?;
        let signals = super::term::Signals::watch().context("installing signal handlers")?;
        Ok(LiveInputs {
            monitor,
            mon_opts,
            target: target.clone(),
            capturing: None,
            names: crate::kube::names::NamesWatch::start(kube),
            signals,
            since: SystemTime::now(),
        })
    }

    /// The capture session, started on first use.
    fn session(&mut self, live: &Live, app: &App) -> Result<&mut Capturing> {
        if self.capturing.is_none() {
            self.capturing = Some(Capturing::new(&self.target, live, app.packets.bpf.clone())?);
        }
        Ok(self.capturing.as_mut().expect("just started"))
    }
}

impl Inputs for LiveInputs {
    fn label(&self) -> String {
        self.monitor.info.label()
    }
    fn events(&mut self, max: usize) -> Vec<Event> {
        if self.monitor.ended() && self.capturing.is_some() {
            // The netns is gone: its capture handles would keep it alive.
            self.capturing = None;
        }
        self.monitor.drain(max)
    }
    fn dropped(&self) -> u64 {
        self.monitor.dropped()
    }
    fn instant(&self) -> Instant {
        Instant::now()
    }
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn since(&self) -> SystemTime {
        self.since
    }
    fn names(&self) -> (u64, Arc<Names>) {
        (self.names.generation(), self.names.names())
    }
    fn netns_names(&self) -> Vec<String> {
        crate::source::netns::list_named()
    }
    fn signal(&self) -> i32 {
        self.signals.got()
    }
    fn terminal_event(&mut self, timeout: Duration) -> Result<Option<cev::Event>> {
        Ok(if cev::poll(timeout)? {
            Some(cev::read()?)
        } else {
            None
        })
    }
    fn switch_netns(&mut self, name: &str) -> Result<()> {
        let next = Target::Netns(name.to_string());
        // The old monitor stops when dropped; packets were of the other netns.
        self.monitor = Monitor::start(&next, &self.mon_opts)?;
        self.target = next;
        self.capturing = None;
        self.since = SystemTime::now();
        Ok(())
    }
    fn netfilter(&self) -> Netfilter {
        // Without iptables tools the trace still runs (it says what it assumed).
        crate::source::collect_netfilter(&self.target).unwrap_or_default()
    }
    fn capturing(&self) -> bool {
        self.capturing.is_some()
    }
    fn capture(
        &mut self,
        ifaces: &[String],
        on: bool,
        live: &Live,
        app: &mut App,
    ) -> Result<String> {
        self.session(live, app)?.set(ifaces, on, app)
    }
    fn set_filter(&mut self, filter: Option<String>, app: &mut App) -> Result<()> {
        match self.capturing.as_mut() {
            Some(c) => c.set_filter(filter, app),
            None => {
                app.packets.bpf = filter;
                Ok(())
            }
        }
    }
    fn pump(&mut self, budget: Duration, live: &Live, app: &mut App) -> usize {
        match self.capturing.as_mut() {
            Some(c) => c.pump(budget, live, app),
            None => 0,
        }
    }
}
