//! The TUI's live capture: a capture session whose interfaces come and go (chosen in the Links
//! pane, or by a trace), its frames analysed into the App's packet log and followed trace
//! within a time budget, so keys are answered however fast packets come. What does not fit
//! waits in the bounded queue, and what does not fit there is dropped and counted per
//! interface (shown in the Packets pane and the header). A new capture filter is compiled and
//! applied on a worker thread (libpcap's optimiser can take seconds): keys are answered
//! meanwhile, and frames wait in the readers' bounded queue.

use super::app::App;
use crate::capture::analyze::{Analyzer, Ts};
use crate::capture::{Options, Session};
use crate::model::event::Live;
use crate::source::Target;
use anyhow::Result;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

/// How often per-interface counters and the followed trace are brought up to date.
const SYNC_EVERY: Duration = Duration::from_millis(250);

/// The session back from a worker that applied a filter, with the filter and the outcome.
type Applied = (Session, Option<String>, Result<()>);

pub struct Capturing {
    session: Session,
    /// A filter being applied: the session is the worker's until it answers.
    applying: Option<Receiver<Applied>>,
    an: Analyzer,
    structure_gen: u64,
    last_sync: Instant,
}

impl Capturing {
    /// A session on the netns shown, judging packets by its current state.
    pub fn new(target: &Target, live: &Live, bpf: Option<String>) -> Result<Capturing> {
        let opts = Options {
            filter: bpf,
            ..Options::default()
        };
        let session = Session::empty(target, &opts, Arc::new(AtomicBool::new(false)))?;
        Ok(Capturing {
            an: Analyzer::new(&live.state, false),
            session,
            applying: None,
            structure_gen: live.structure_gen,
            last_sync: Instant::now(),
        })
    }

    /// Start or stop interfaces; the answer for the footer.
    pub fn set(&mut self, ifaces: &[String], on: bool, app: &mut App) -> Result<String> {
        if self.applying.is_some() {
            anyhow::bail!("a capture filter is being applied: try again in a moment");
        }
        for name in ifaces {
            if on {
                self.session.add(name)?;
                let s = app.packets.stream_mut(name);
                s.stopped = false;
                s.gone = None;
            } else {
                if let Some(h) = self.session.active(name) {
                    self.session.remove(h);
                }
                app.packets.stream_mut(name).stopped = true;
            }
        }
        let active = app.packets.active();
        Ok(if active.is_empty() {
            "capture stopped".to_string()
        } else {
            format!(
                "capturing on {}{}",
                active.join(", "),
                app.packets
                    .bpf
                    .as_ref()
                    .map(|f| format!(" (filter {f:?})"))
                    .unwrap_or_default()
            )
        })
    }

    /// Apply a filter on a worker; `pump` takes the session back and says how it went.
    pub fn set_filter(&mut self, f: Option<String>, _app: &mut App) -> Result<()> {
        if self.applying.is_some() {
            anyhow::bail!("a capture filter is being applied: try again in a moment");
        }
        // The worker owns the session meanwhile; an empty one stands in (never read from).
        let idle = Session::empty(
            &Target::Current,
            &Options::default(),
            Arc::new(AtomicBool::new(false)),
        )?;
        let mut session = std::mem::replace(&mut self.session, idle);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("hs-bpf-apply".into())
            .spawn(move || {
                let r = session.set_filter(f.clone());
                let _ = tx.send((session, f, r));
            })?;
        self.applying = Some(rx);
        Ok(())
    }

    /// The session back from the filter worker, once it is done: the filter in force or why
    /// libpcap refused it. False while it still works.
    fn take_back(&mut self, app: &mut App) -> bool {
        let Some(rx) = &self.applying else {
            return true;
        };
        let (session, f, r) = match rx.try_recv() {
            Ok(done) => done,
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => {
                // The worker died with the session: nothing more can be captured.
                self.applying = None;
                app.message = Some(("capture filter worker failed: capture stopped".into(), true));
                return true;
            }
        };
        self.session = session;
        self.applying = None;
        app.message = Some(match r {
            Ok(()) => {
                let m = match &f {
                    Some(f) => format!("capture filter {f:?} in force"),
                    None => "no capture filter".into(),
                };
                app.packets.bpf = f;
                (m, false)
            }
            Err(e) => (format!("{e:#}"), true),
        });
        true
    }

    /// Analyse queued frames for at most `budget`. Returns how many were taken.
    pub fn pump(&mut self, budget: Duration, live: &Live, app: &mut App) -> usize {
        if !self.take_back(app) {
            return 0;
        }
        if live.structure_gen != self.structure_gen {
            // SAs rekeyed, policies or routes changed: judge new packets by the new state.
            self.an.reload(&live.state);
            self.structure_gen = live.structure_gen;
        }
        self.an.set_decrypt(app.packets.decrypt);
        let start = Instant::now();
        let mut n = 0;
        while let Some(f) = self.session.try_next() {
            let h = &self.session.handles[f.handle];
            deliver(app, self.an.analyze(&h.name, h.link, f.ts, f.len, &f.data));
            n += 1;
            if n % 256 == 0 && start.elapsed() >= budget {
                break;
            }
        }
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.last_sync = Instant::now();
            self.sync(live, app);
        }
        n
    }

    /// Per-interface counters, rates, drops and gone marks into the packet log; the followed
    /// trace matched again.
    fn sync(&mut self, live: &Live, app: &mut App) {
        let rates = self.an.rates_at(Ts::now());
        for (i, h) in self.session.handles.iter().enumerate() {
            // An interface opened again (new filter) has several handles: the newest speaks.
            if self.session.handles[i + 1..]
                .iter()
                .any(|o| o.name == h.name)
            {
                continue;
            }
            let gone = self.session.gone().get(&i).cloned();
            let s = app.packets.stream_mut(&h.name);
            s.drops = h.counts();
            s.counts = self.an.counts.get(&h.name).cloned().unwrap_or_default();
            s.rates = rates.get(&h.name).copied().unwrap_or_default();
            if gone.is_some() {
                s.gone = gone;
            }
        }
        if let Some(t) = app.traced.as_mut() {
            t.update(&live.state);
            app.trace_gen += 1;
        }
    }
}

/// One analysed packet into the app: the followed trace sees it, the packet log keeps it
/// (counted as missed while paused). Live captures and replays deliver the same way.
pub fn deliver(app: &mut App, rec: crate::capture::analyze::PacketRecord) {
    if let Some(t) = app.traced.as_mut() {
        t.observe(&rec);
    }
    if app.paused {
        app.packets.missed_paused += 1;
    } else {
        app.packets.push(rec);
    }
}
