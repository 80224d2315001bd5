//! The Health pane: the doctor's findings on the node shown (`crate::doctor::examine`),
//! re-judged as its state and counters change, with the counters' rise over the last few
//! samples as the window. A judgement of a big node takes tens of milliseconds, so it runs
//! on a thread of its own, at the lowest CPU priority (frames come first), that keeps its
//! own copy of the node from the same events (a bounded queue: an event that finds it full is
//! counted and the copy rebuilt whole; a counter sample, the big and frequent event, is
//! shared with the thread rather than copied); the loop only asks and takes the answer when
//! it comes. Also what the header and the tabs show of it (fail/warn counts,
//! panes holding trouble) and where Enter on a finding leads (the object it names).

use super::rows::Pane;
use crate::doctor::{KeyHasher, NodeInput, Object, Report, Severity, examine_in};
use crate::model::event::{Event, Live, Sample};
use crate::model::{Names, NodeState};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

pub const HEADERS: [&str; 4] = ["SEV", "ID", "WHAT", "EVIDENCE"];

/// Counter-only changes are re-judged at most this often (structure changes at once).
const REJUDGE_EVERY: Duration = Duration::from_secs(1);
/// How far back a counter's rise is measured.
const WINDOW: Duration = Duration::from_secs(5);
/// Jobs waiting for the doctor's thread: past this an event is dropped (counted) and the
/// thread's copy is rebuilt from a whole state at the next judgement.
const JOBS_QUEUED: usize = 4096;

/// What the loop hands the doctor's thread.
enum Job {
    /// An event the live state took: the thread's copy takes it too.
    Event(Box<Event>),
    /// A counter sample the live state took, shared (every SA's counters: not copied).
    Sample(Arc<Sample>),
    /// A whole state to start the copy from (first use, after a drop, a paused copy).
    Reset(Box<NodeState>),
    /// Judge the copy now, under this name, with `at` as the window's end, knowing the
    /// cluster by `names` (the findings name pods and nodes as the CLI doctor's do).
    Judge {
        name: String,
        at: Instant,
        names: Arc<Names>,
    },
}

/// The doctor's own copy of the node, kept by the same `NodeState::apply` as the live one,
/// and the counters of recent judgements: the window's start.
struct Mirror {
    state: NodeState,
    window: VecDeque<(Instant, NodeState)>,
    keys: KeyHasher,
}

impl Mirror {
    fn new() -> Mirror {
        Mirror {
            state: NodeState::default(),
            window: VecDeque::new(),
            // Only one node is judged here: key hashes are never compared across nodes.
            keys: KeyHasher::new(vec![0; 32]),
        }
    }

    /// Take a job; a judgement returns its report.
    fn take(&mut self, job: Job) -> Option<Report> {
        match job {
            Job::Event(ev) => {
                self.state.apply(*ev);
                None
            }
            Job::Sample(s) => {
                self.state.apply_sample(&s);
                None
            }
            Job::Reset(st) => {
                self.state = *st;
                None
            }
            Job::Judge { name, at, names } => Some(self.judge(name, at, &names)),
        }
    }

    fn judge(&mut self, name: String, now: Instant, names: &Names) -> Report {
        while self.window.len() > 1
            && self
                .window
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW)
        {
            self.window.pop_front();
        }
        let report = examine_in(
            &[NodeInput {
                name,
                state: &self.state,
                before: self.window.front().map(|(_, s)| s),
                netfilter: None,
                pods: &[],
                seen: &[],
            }],
            &self.keys,
            names,
        );
        self.window.push_back((now, counters_of(&self.state)));
        report
    }
}

/// Where jobs go: the doctor's thread, or (no thread could start) the loop itself.
enum Judge {
    Thread {
        jobs: SyncSender<Job>,
        reports: Receiver<Report>,
    },
    Inline(Box<Mirror>, Option<Report>),
}

impl Judge {
    fn start() -> Judge {
        let (jobs, queue) = sync_channel::<Job>(JOBS_QUEUED);
        let (done, reports) = sync_channel::<Report>(1);
        let spawned = std::thread::Builder::new()
            .name("hs-doctor".into())
            .spawn(move || {
                lowest_priority();
                let mut m = Mirror::new();
                while let Ok(job) = queue.recv() {
                    if let Some(r) = m.take(job)
                        && done.send(r).is_err()
                    {
                        return;
                    }
                }
            });
        match spawned {
            Ok(_) => Judge::Thread { jobs, reports },
            Err(_) => Judge::Inline(Box::new(Mirror::new()), None),
        }
    }

    /// Hand a job over; false when the queue is full (the job is dropped).
    fn send(&mut self, job: Job) -> bool {
        match self {
            Judge::Thread { jobs, .. } => match jobs.try_send(job) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => false,
                // The thread is gone (it panicked): judge on the loop from now on.
                Err(TrySendError::Disconnected(job)) => {
                    *self = Judge::Inline(Box::new(Mirror::new()), None);
                    self.send(job)
                }
            },
            Judge::Inline(m, done) => {
                if let Some(r) = m.take(job) {
                    *done = Some(r);
                }
                true
            }
        }
    }

    /// The report of the judgement asked for, if it is done; waits up to `wait` for it.
    fn report(&mut self, wait: Duration) -> Option<Report> {
        match self {
            Judge::Thread { reports, .. } if wait.is_zero() => reports.try_recv().ok(),
            Judge::Thread { reports, .. } => reports.recv_timeout(wait).ok(),
            Judge::Inline(_, done) => done.take(),
        }
    }
}

/// The calling thread yields the CPU to every other (nice 19; on Linux each thread has its
/// own nice value). Where the sandbox refuses the call the thread keeps the loop's priority.
fn lowest_priority() {
    // SAFETY: two syscalls about the calling thread, no memory handed over.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

/// A live state's place in its history: (loaded, structure generation, counter generation).
type Gens = (bool, u64, u64);

fn gens(live: &Live) -> Gens {
    (live.loaded, live.structure_gen, live.counter_gen)
}

pub struct Health {
    pub report: Option<Report>,
    /// Bumped when the report changes (the pane's rows depend on it).
    pub generation: u64,
    judged: Option<Gens>,
    judged_at: Option<Instant>,
    /// The names the last judgement knew (new names are judged again at once).
    judged_names: Option<Arc<Names>>,
    /// The live state the thread's copy equals (None: it differs until a `Reset`).
    fed: Option<Gens>,
    /// A judgement was asked for and has not come back: no second one is asked meanwhile,
    /// so the report that comes is always of the newest state asked for.
    busy: bool,
    judge: Judge,
    /// Events the queue had no room for (each makes the next judgement copy the state).
    pub dropped: u64,
    /// Whole states copied on the loop for the thread (first use, drops, pause).
    pub copies: u64,
    /// Judgements that came back.
    pub judgements: u64,
    /// Counter-only changes are judged at most this often.
    pub rejudge_every: Duration,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            report: None,
            generation: 0,
            judged: None,
            judged_at: None,
            judged_names: None,
            fed: Some(gens(&Live::default())),
            busy: false,
            judge: Judge::start(),
            dropped: 0,
            copies: 0,
            judgements: 0,
            rejudge_every: REJUDGE_EVERY,
        }
    }
}

/// What a window's start needs of a state: counters and SAs, not 100k routes.
fn counters_of(st: &NodeState) -> NodeState {
    NodeState {
        xfrm_stats: st.xfrm_stats.clone(),
        xfrm_states: st.xfrm_states.clone(),
        ..NodeState::default()
    }
}

impl Health {
    /// The loop's way to apply an event to the live state: the doctor's copy takes it too,
    /// so a judgement never copies the whole state on the loop.
    pub fn feed(&mut self, live: &mut Live, ev: Event, now: Instant) {
        let in_step = self.fed == Some(gens(live)) || matches!(ev, Event::Resync(_));
        let job = match ev {
            Event::Sample(s) => {
                let s = Arc::new(s);
                live.apply_sample(&s);
                in_step.then_some(Job::Sample(s))
            }
            ev => {
                let copy = in_step.then(|| Job::Event(Box::new(ev.clone())));
                live.apply(ev, now);
                copy
            }
        };
        self.fed = match job.map(|j| self.judge.send(j)) {
            Some(true) => Some(gens(live)),
            Some(false) => {
                self.dropped += 1;
                None
            }
            None => None,
        };
    }

    /// The node shown starts over (another netns, a restart): the copy is of nothing yet.
    pub fn forget(&mut self) {
        self.fed = None;
        self.judged = None;
    }

    /// Take a finished judgement; ask for a new one if the node or the names changed. True
    /// when the report changed.
    pub fn update(&mut self, live: &Live, names: &Arc<Names>, now: Instant) -> bool {
        let changed = self.take_report(Duration::ZERO);
        if !live.loaded || self.busy {
            return changed;
        }
        let g = gens(live);
        let same_names = self
            .judged_names
            .as_ref()
            .is_some_and(|n| Arc::ptr_eq(n, names));
        if self.judged == Some(g) && same_names {
            return changed;
        }
        let structure = !same_names || self.judged.is_none_or(|(l, s, _)| (l, s) != (g.0, g.1));
        if !structure
            && self
                .judged_at
                .is_some_and(|t| now.duration_since(t) < self.rejudge_every)
        {
            return changed;
        }
        if self.fed != Some(g) {
            // The copy differs (a drop, a pause, a state handed in whole): copy it once.
            if !self.judge.send(Job::Reset(Box::new(live.state.clone()))) {
                self.dropped += 1;
                return changed;
            }
            self.copies += 1;
            self.fed = Some(g);
        }
        let job = Job::Judge {
            name: live.state.node.name(),
            at: now,
            names: names.clone(),
        };
        if !self.judge.send(job) {
            self.dropped += 1;
            return changed;
        }
        self.busy = true;
        self.judged = Some(g);
        self.judged_at = Some(now);
        self.judged_names = Some(names.clone());
        self.take_report(Duration::ZERO) || changed
    }

    /// Wait up to `wait` for the judgement asked for (tests, and callers that must show it).
    pub fn settle(&mut self, wait: Duration) -> bool {
        self.busy && self.take_report(wait)
    }

    fn take_report(&mut self, wait: Duration) -> bool {
        if !self.busy {
            return false;
        }
        let Some(report) = self.judge.report(wait) else {
            return false;
        };
        self.busy = false;
        self.judgements += 1;
        let changed = self.report.as_ref() != Some(&report);
        if changed {
            self.report = Some(report);
            self.generation += 1;
        }
        changed
    }

    pub fn len(&self) -> usize {
        self.report.as_ref().map_or(0, |r| r.findings.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (fails, warnings) for the header.
    pub fn counts(&self) -> (usize, usize) {
        self.report.as_ref().map_or((0, 0), |r| {
            (r.count(Severity::Fail), r.count(Severity::Warn))
        })
    }

    fn finding(&self, i: usize) -> Option<&crate::doctor::Finding> {
        self.report.as_ref()?.findings.get(i)
    }

    pub fn cells(&self, i: usize) -> Vec<String> {
        let Some(f) = self.finding(i) else {
            return vec![];
        };
        let rise = f
            .counter
            .as_ref()
            .map(|c| format!(" [{} +{}]", c.name, c.delta))
            .unwrap_or_default();
        vec![
            f.severity.name().to_string(),
            f.id.to_string(),
            format!("{}{rise}", f.what),
            f.evidence.first().cloned().unwrap_or_default(),
        ]
    }

    pub fn trouble(&self, i: usize) -> bool {
        self.finding(i)
            .is_some_and(|f| f.severity >= Severity::Warn)
    }

    pub fn detail(&self, i: usize) -> Option<Vec<(String, String)>> {
        let f = self.finding(i)?;
        let mut out = vec![
            ("severity".into(), f.severity.name().to_string()),
            ("id".into(), f.id.to_string()),
            ("what".into(), f.what.clone()),
        ];
        if let Some(c) = &f.counter {
            out.push(("counter".into(), format!("{} rose by {}", c.name, c.delta)));
        }
        for e in &f.evidence {
            out.push(("evidence".into(), e.clone()));
        }
        out.push(("cause".into(), f.cause.clone()));
        out.push(("fix".into(), f.fix.clone()));
        if let Some(o) = &f.object {
            out.push(("enter".into(), format!("jumps to {o:?}")));
        }
        Some(out)
    }

    /// The pane and row of the object finding `i` names (Enter goes there).
    pub fn target(&self, i: usize, st: &NodeState) -> Option<(Pane, usize)> {
        Some(match self.finding(i)?.object.as_ref()? {
            Object::Sa(j) => (Pane::Sas, *j),
            Object::Policy(j) => (Pane::Policies, *j),
            Object::Route(j) => (Pane::Routes, *j),
            Object::Rule(j) => (Pane::Rules, *j),
            Object::Link(j) => (Pane::Links, *j),
            Object::Counter(name) => (
                Pane::Stats,
                st.xfrm_stats.iter().position(|(k, _)| k == name)?,
            ),
        })
    }

    /// Does a warning or failure name an object of `pane` (its tab is marked)?
    pub fn pane_trouble(&self, pane: Pane, st: &NodeState) -> bool {
        if pane == Pane::Health {
            return self.counts() != (0, 0);
        }
        (0..self.len())
            .any(|i| self.trouble(i) && self.target(i, st).is_some_and(|(p, _)| p == pane))
    }
}
