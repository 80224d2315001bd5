//! The Health pane: the doctor's findings on the node shown (`crate::doctor::examine`),
//! re-judged as its state and counters change, with the counters' rise over the last few
//! samples as the window. Also what the header and the tabs show of it (fail/warn counts,
//! panes holding trouble) and where Enter on a finding leads (the object it names).

use super::rows::Pane;
use crate::doctor::{KeyHasher, NodeInput, Object, Report, Severity, examine};
use crate::model::NodeState;
use crate::model::event::Live;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const HEADERS: [&str; 4] = ["SEV", "ID", "WHAT", "EVIDENCE"];

/// Counter-only changes are re-judged at most this often (structure changes at once).
const REJUDGE_EVERY: Duration = Duration::from_secs(1);
/// How far back a counter's rise is measured.
const WINDOW: Duration = Duration::from_secs(5);

pub struct Health {
    pub report: Option<Report>,
    /// Bumped when the report changes (the pane's rows depend on it).
    pub generation: u64,
    judged: Option<(u64, u64)>,
    judged_at: Option<Instant>,
    /// Counters and SAs of recent samples, oldest first: the window's start.
    window: VecDeque<(Instant, NodeState)>,
    keys: KeyHasher,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            report: None,
            generation: 0,
            judged: None,
            judged_at: None,
            window: VecDeque::new(),
            // Only one node is judged here: key hashes are never compared across nodes.
            keys: KeyHasher::new(vec![0; 32]),
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
    /// Judge again if the node changed; true when the report did.
    pub fn update(&mut self, live: &Live, now: Instant) -> bool {
        if !live.loaded {
            return false;
        }
        let gens = (live.structure_gen, live.counter_gen);
        if self.judged == Some(gens) {
            return false;
        }
        let structure = self.judged.is_none_or(|(s, _)| s != gens.0);
        if !structure
            && self
                .judged_at
                .is_some_and(|t| now.duration_since(t) < REJUDGE_EVERY)
        {
            return false;
        }
        while self.window.len() > 1
            && self
                .window
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW)
        {
            self.window.pop_front();
        }
        let name = live
            .state
            .node
            .netns
            .name
            .clone()
            .unwrap_or_else(|| live.state.node.hostname.clone());
        let before = self.window.front().map(|(_, s)| s);
        let report = examine(
            &[NodeInput {
                name,
                state: &live.state,
                before,
                netfilter: None,
                pods: &[],
                seen: &[],
            }],
            &self.keys,
        );
        self.window.push_back((now, counters_of(&live.state)));
        self.judged = Some(gens);
        self.judged_at = Some(now);
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
