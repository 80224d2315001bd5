//! What sources tell the state: one `Event` per kernel change (netlink multicast), one
//! `Sample` per counter read, and a full `Resync` when the source lost track (ENOBUFS).
//!
//! `NodeState::apply` folds an event into the state. `Live` wraps a NodeState with what a
//! live view needs besides the facts: short counter histories (rates and deltas are
//! derived from them, never stored), change generations, and notices. No I/O here: every
//! time stamp comes in with the event.

use super::{
    Lifetime, Link, LinkAddress, LinkRef, LinkStats, Mark, NodeState, PolicyDir, Route, Rule,
    Selector, XfrmPolicy, XfrmProto, XfrmSaStats, XfrmState, XfrmStats,
};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How an SA is named by the kernel (xfrm_usersa_id: daddr, spi, proto) plus its mark,
/// which lets two SAs with the same triple coexist.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SaKey {
    pub dst: String,
    pub spi: u32,
    pub proto: XfrmProto,
    pub mark: Option<Mark>,
}

impl SaKey {
    pub fn of(sa: &XfrmState) -> SaKey {
        SaKey {
            dst: sa.dst.clone(),
            spi: sa.spi,
            proto: sa.proto,
            mark: sa.mark,
        }
    }
    /// A delete message may omit the mark: then any mark matches.
    pub fn selects(&self, sa: &XfrmState) -> bool {
        sa.dst == self.dst
            && sa.spi == self.spi
            && sa.proto == self.proto
            && (self.mark.is_none() || self.mark == sa.mark)
    }
}

/// An `SaKey` borrowed from a key or an SA: samples are matched to SAs without copying
/// every SA's address.
#[derive(PartialEq, Eq, Hash)]
struct SaKeyRef<'a> {
    dst: &'a str,
    spi: u32,
    proto: XfrmProto,
    mark: Option<Mark>,
}

impl<'a> SaKeyRef<'a> {
    fn of(sa: &'a XfrmState) -> SaKeyRef<'a> {
        SaKeyRef {
            dst: &sa.dst,
            spi: sa.spi,
            proto: sa.proto,
            mark: sa.mark,
        }
    }
    fn of_key(k: &'a SaKey) -> SaKeyRef<'a> {
        SaKeyRef {
            dst: &k.dst,
            spi: k.spi,
            proto: k.proto,
            mark: k.mark,
        }
    }
}

/// Counters read at one instant. `None` = not read this time (no right, no support).
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Instant,
    pub links: Option<Vec<(u32, LinkStats)>>,
    pub sas: Option<Vec<(SaKey, Lifetime, XfrmSaStats)>>,
    pub xfrm_stat: Option<XfrmStats>,
}

/// Serde: a recording stores changes as they came (`crate::record`); samples and full dumps
/// are recorded as records of their own (they carry a clock and a whole state).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// RTM_NEWLINK: a new link, or a change of one (addresses are kept).
    LinkNew(Link),
    LinkDel {
        index: u32,
    },
    AddrNew {
        index: u32,
        addr: LinkAddress,
    },
    AddrDel {
        index: u32,
        addr: LinkAddress,
    },
    /// RTM_NEWROUTE; `replace` when the kernel flagged NLM_F_REPLACE (the old route of the
    /// same key gets no delete message).
    RouteNew {
        route: Route,
        replace: bool,
    },
    RouteDel(Route),
    RuleNew(Rule),
    RuleDel(Rule),
    SaNew(Box<XfrmState>),
    SaDel(SaKey),
    /// XFRM_MSG_EXPIRE: soft expiry is a notice; hard expiry removes the SA.
    SaExpire {
        key: SaKey,
        hard: bool,
    },
    PolicyNew(XfrmPolicy),
    /// A policy is named by its direction with its selector and mark (the kernel's key);
    /// a delete that carries only the index is matched by index.
    PolicyDel {
        dir: PolicyDir,
        index: u32,
        selector: Option<Selector>,
        mark: Option<Mark>,
    },
    #[serde(skip)]
    Sample(Sample),
    /// The source lost events (socket overrun); a `Resync` follows.
    ResyncNeeded {
        reason: String,
    },
    /// A complete state read from scratch: the first dump, or after an overrun.
    Resync(Box<NodeState>),
    /// A source failed or degraded; shown to the user, the rest goes on.
    SourceError(String),
}

/// What applying one event changed, so views know what to recompute.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Rows appeared, disappeared or changed.
    pub structure: bool,
    /// Counter values changed.
    pub counters: bool,
    /// Something worth telling the user.
    pub notice: Option<String>,
}

impl Applied {
    fn structure(changed: bool) -> Applied {
        Applied {
            structure: changed,
            ..Default::default()
        }
    }
    fn notice(text: String) -> Applied {
        Applied {
            notice: Some(text),
            ..Default::default()
        }
    }
}

/// Key fields the kernel uses to tell routes apart (fib alias: table, dst, tos, priority).
fn same_route_key(a: &Route, b: &Route) -> bool {
    a.family == b.family
        && a.table.id == b.table.id
        && a.dst == b.dst
        && a.src == b.src
        && a.tos == b.tos
        && a.metric == b.metric
}

/// Routes compared without interface names (a message carries indexes only).
fn same_route(a: &Route, b: &Route) -> bool {
    let dev = |d: &Option<LinkRef>| d.as_ref().map(|d| d.index);
    same_route_key(a, b)
        && a.kind == b.kind
        && a.gateway == b.gateway
        && dev(&a.dev) == dev(&b.dev)
        && a.nexthops.len() == b.nexthops.len()
        && a.nexthops
            .iter()
            .zip(&b.nexthops)
            .all(|(x, y)| x.gateway == y.gateway && dev(&x.dev) == dev(&y.dev))
}

fn same_rule_key(a: &Rule, b: &Rule) -> bool {
    a.family == b.family
        && a.priority == b.priority
        && a.src == b.src
        && a.dst == b.dst
        && a.iif == b.iif
        && a.oif == b.oif
        && a.fwmark == b.fwmark
        && a.table.as_ref().map(|t| t.id) == b.table.as_ref().map(|t| t.id)
        && a.action == b.action
        && a.goto == b.goto
        && a.invert == b.invert
        && a.tos == b.tos
}

impl NodeState {
    /// Fold one event into the state. Pure: no I/O, time comes with the event.
    pub fn apply(&mut self, ev: Event) -> Applied {
        match ev {
            Event::LinkNew(link) => self.link_new(link),
            Event::LinkDel { index } => self.link_del(index),
            Event::AddrNew { index, addr } => self.addr_new(index, addr),
            Event::AddrDel { index, addr } => self.addr_del(index, &addr),
            Event::RouteNew { route, replace } => self.route_new(route, replace),
            Event::RouteDel(route) => self.route_del(&route),
            Event::RuleNew(rule) => self.rule_new(rule),
            Event::RuleDel(rule) => self.rule_del(&rule),
            Event::SaNew(sa) => self.sa_new(*sa),
            Event::SaDel(key) => self.sa_del(&key),
            Event::SaExpire { key, hard } => self.sa_expire(&key, hard),
            Event::PolicyNew(p) => self.policy_new(p),
            Event::PolicyDel {
                dir,
                index,
                selector,
                mark,
            } => self.policy_del(dir, index, selector.as_ref(), mark),
            Event::Sample(s) => self.apply_sample(&s),
            Event::ResyncNeeded { reason } => Applied::notice(reason),
            Event::Resync(new) => self.resync(*new),
            Event::SourceError(e) => Applied::notice(e),
        }
    }

    /// RTM_NEWLINK: a link appeared or changed.
    fn link_new(&mut self, mut link: Link) -> Applied {
        let index = link.index;
        let up = link.is_up();
        let mut was_up = false;
        match self.links.iter().position(|l| l.index == index) {
            Some(i) => {
                // RTM_NEWLINK carries no addresses: keep the ones we know.
                link.addresses = std::mem::take(&mut self.links[i].addresses);
                was_up = self.links[i].is_up();
                self.links[i] = link;
            }
            None => {
                let at = self.links.partition_point(|l| l.index < index);
                self.links.insert(at, link);
            }
        }
        // IPv4 flushes the routes of a link taken down without telling anyone.
        if was_up && !up {
            self.drop_routes_of(index);
        }
        self.resolve_names();
        Applied::structure(true)
    }

    /// RTM_DELLINK.
    fn link_del(&mut self, index: u32) -> Applied {
        let before = self.links.len();
        self.links.retain(|l| l.index != index);
        // Its routes die with it; IPv4 sends no RTM_DELROUTE for them.
        self.drop_routes_of(index);
        self.resolve_names();
        Applied::structure(before != self.links.len())
    }

    /// RTM_NEWADDR: an address added to a link or changed on it.
    fn addr_new(&mut self, index: u32, addr: LinkAddress) -> Applied {
        match self.links.iter_mut().find(|l| l.index == index) {
            Some(l) => {
                let same =
                    |a: &LinkAddress| a.address == addr.address && a.prefix_len == addr.prefix_len;
                match l.addresses.iter().position(same) {
                    Some(i) => l.addresses[i] = addr,
                    None => l.addresses.push(addr),
                }
                Applied::structure(true)
            }
            None => Applied::default(),
        }
    }

    /// RTM_DELADDR.
    fn addr_del(&mut self, index: u32, addr: &LinkAddress) -> Applied {
        match self.links.iter_mut().find(|l| l.index == index) {
            Some(l) => {
                let before = l.addresses.len();
                l.addresses
                    .retain(|a| !(a.address == addr.address && a.prefix_len == addr.prefix_len));
                Applied::structure(before != l.addresses.len())
            }
            None => Applied::default(),
        }
    }

    /// RTM_NEWROUTE, replacing the route of the same key when the kernel says so.
    fn route_new(&mut self, mut route: Route, replace: bool) -> Applied {
        self.name_route(&mut route);
        if replace {
            if let Some(i) = self.routes.iter().position(|r| same_route_key(r, &route)) {
                self.routes[i] = route;
                return Applied::structure(true);
            }
        } else if let Some(i) = self.routes.iter().position(|r| same_route(r, &route)) {
            // Seen in the dump already (events race the first dump).
            self.routes[i] = route;
            return Applied::structure(true);
        }
        self.routes.push(route);
        Applied::structure(true)
    }

    /// RTM_DELROUTE: the same route, or failing that the route of the same key.
    fn route_del(&mut self, route: &Route) -> Applied {
        let pos = self
            .routes
            .iter()
            .position(|r| same_route(r, route))
            .or_else(|| self.routes.iter().position(|r| same_route_key(r, route)));
        match pos {
            Some(i) => {
                self.routes.remove(i);
                Applied::structure(true)
            }
            None => Applied::default(),
        }
    }

    /// FRA_NEWRULE, placed where the kernel keeps it.
    fn rule_new(&mut self, rule: Rule) -> Applied {
        if self.rules.iter().any(|r| same_rule_key(r, &rule)) {
            return Applied::default();
        }
        // Keep the kernel's order: per family by priority, a new rule after its equals.
        let at = match self
            .rules
            .iter()
            .rposition(|r| r.family == rule.family && r.priority <= rule.priority)
        {
            Some(i) => i + 1,
            None => self
                .rules
                .iter()
                .position(|r| r.family == rule.family)
                .unwrap_or(self.rules.len()),
        };
        self.rules.insert(at, rule);
        Applied::structure(true)
    }

    /// FRA_DELRULE.
    fn rule_del(&mut self, rule: &Rule) -> Applied {
        match self.rules.iter().position(|r| same_rule_key(r, rule)) {
            Some(i) => {
                self.rules.remove(i);
                Applied::structure(true)
            }
            None => Applied::default(),
        }
    }

    /// XFRM_MSG_NEWSA / UPDSA.
    fn sa_new(&mut self, sa: XfrmState) -> Applied {
        let key = SaKey::of(&sa);
        match self.xfrm_states.iter().position(|s| SaKey::of(s) == key) {
            Some(i) => self.xfrm_states[i] = sa,
            None => self.xfrm_states.push(sa),
        }
        Applied::structure(true)
    }

    /// XFRM_MSG_DELSA.
    fn sa_del(&mut self, key: &SaKey) -> Applied {
        let before = self.xfrm_states.len();
        if let Some(i) = self.xfrm_states.iter().position(|s| key.selects(s)) {
            self.xfrm_states.remove(i);
        }
        Applied::structure(before != self.xfrm_states.len())
    }

    /// XFRM_MSG_EXPIRE.
    fn sa_expire(&mut self, key: &SaKey, hard: bool) -> Applied {
        let what = format!("SA {} spi {:#x}", key.dst, key.spi);
        if hard {
            if let Some(i) = self.xfrm_states.iter().position(|s| key.selects(s)) {
                self.xfrm_states.remove(i);
            }
            Applied {
                structure: true,
                counters: false,
                notice: Some(format!("{what} hard-expired (removed by the kernel)")),
            }
        } else {
            Applied::notice(format!("{what} soft-expired (a rekey is due)"))
        }
    }

    /// XFRM_MSG_NEWPOLICY / UPDPOLICY: the policy of the same key is replaced.
    fn policy_new(&mut self, p: XfrmPolicy) -> Applied {
        let pos = self.xfrm_policies.iter().position(|q| {
            q.dir == p.dir && q.selector == p.selector && q.mark == p.mark && q.if_id == p.if_id
        });
        match pos {
            Some(i) => self.xfrm_policies[i] = p,
            None => self.xfrm_policies.push(p),
        }
        Applied::structure(true)
    }

    /// XFRM_MSG_DELPOLICY.
    fn policy_del(
        &mut self,
        dir: PolicyDir,
        index: u32,
        selector: Option<&Selector>,
        mark: Option<Mark>,
    ) -> Applied {
        let before = self.xfrm_policies.len();
        let pos = self.xfrm_policies.iter().position(|p| {
            p.dir == dir
                && match selector {
                    Some(sel) => &p.selector == sel && p.mark == mark,
                    None => p.index == index,
                }
        });
        if let Some(i) = pos {
            self.xfrm_policies.remove(i);
        }
        Applied::structure(before != self.xfrm_policies.len())
    }

    /// A full state read again: it replaces this one, keeping what the node is.
    fn resync(&mut self, new: NodeState) -> Applied {
        let node = std::mem::take(&mut self.node);
        *self = new;
        if self.node == Default::default() {
            self.node = node;
        }
        Applied {
            structure: true,
            counters: true,
            notice: None,
        }
    }

    /// Fold a counter sample into the state, read by reference: a sample can be shared
    /// (the TUI's doctor thread keeps a copy of the state from the same samples).
    pub fn apply_sample(&mut self, s: &Sample) -> Applied {
        if let Some(links) = &s.links {
            for (index, stats) in links {
                if let Some(l) = self.links.iter_mut().find(|l| l.index == *index) {
                    l.stats = *stats;
                }
            }
        }
        if let Some(sas) = &s.sas {
            let by_key: HashMap<SaKeyRef, (&Lifetime, &XfrmSaStats)> = sas
                .iter()
                .map(|(k, l, st)| (SaKeyRef::of_key(k), (l, st)))
                .collect();
            for sa in &mut self.xfrm_states {
                let hit = by_key.get(&SaKeyRef::of(sa)).map(|(l, st)| (**l, **st));
                if let Some((l, st)) = hit {
                    sa.lifetime = l;
                    sa.stats = st;
                }
            }
        }
        if let Some(stat) = &s.xfrm_stat {
            self.xfrm_stats.clone_from(stat);
        }
        Applied {
            counters: true,
            ..Default::default()
        }
    }

    fn drop_routes_of(&mut self, index: u32) {
        let on = |d: &Option<LinkRef>| d.as_ref().is_some_and(|d| d.index == index);
        self.routes.retain(|r| {
            !(on(&r.dev) || (!r.nexthops.is_empty() && r.nexthops.iter().all(|h| on(&h.dev))))
        });
    }

    fn name_of(&self, index: u32) -> Option<String> {
        self.link(index).map(|l| l.name.clone())
    }

    fn name_route(&self, r: &mut Route) {
        if let Some(d) = &mut r.dev {
            d.name = self.name_of(d.index);
        }
        for h in &mut r.nexthops {
            if let Some(d) = &mut h.dev {
                d.name = self.name_of(d.index);
            }
        }
    }

    /// Events carry interface indexes; names come from the links we know.
    fn resolve_names(&mut self) {
        let names: HashMap<u32, String> = self
            .links
            .iter()
            .map(|l| (l.index, l.name.clone()))
            .collect();
        for l in &mut self.links {
            if let Some(p) = &mut l.peer
                && p.netns_id.is_none()
            {
                p.name = names.get(&p.index).cloned();
            }
            if let Some(m) = &mut l.master {
                m.name = names.get(&m.index).cloned();
            }
        }
    }
}

/// Which counter of which object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CounterKey {
    Link(u32, LinkCounter),
    Sa(SaKey, SaCounter),
    Stat(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkCounter {
    RxBytes,
    RxPackets,
    TxBytes,
    TxPackets,
    /// rx+tx errors and drops: a rise means trouble.
    Trouble,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaCounter {
    Bytes,
    Packets,
    /// replay + integrity failures + replay-window drops: a rise means trouble.
    Trouble,
}

/// How many samples each counter keeps (60 s at the default interval).
pub const HISTORY_LEN: usize = 60;
/// A trouble counter is "rising" when it grew within this many recent samples.
pub const RISING_SAMPLES: usize = 10;

/// Short histories of counter values: rates and deltas are computed from them.
#[derive(Debug, Default, Clone)]
pub struct History {
    series: HashMap<CounterKey, VecDeque<(Instant, u64)>>,
}

impl History {
    pub fn record(&mut self, key: CounterKey, at: Instant, value: u64) {
        let s = self.series.entry(key).or_default();
        // A counter that went down was reset (link re-created): start over.
        if s.back().is_some_and(|(_, v)| *v > value) {
            s.clear();
        }
        if s.len() == HISTORY_LEN {
            s.pop_front();
        }
        s.push_back((at, value));
    }

    /// Record every counter of the state as read at `at`.
    pub fn record_state(&mut self, st: &NodeState, at: Instant) {
        for l in &st.links {
            let s = &l.stats;
            self.record(
                CounterKey::Link(l.index, LinkCounter::RxBytes),
                at,
                s.rx_bytes,
            );
            self.record(
                CounterKey::Link(l.index, LinkCounter::RxPackets),
                at,
                s.rx_packets,
            );
            self.record(
                CounterKey::Link(l.index, LinkCounter::TxBytes),
                at,
                s.tx_bytes,
            );
            self.record(
                CounterKey::Link(l.index, LinkCounter::TxPackets),
                at,
                s.tx_packets,
            );
            let trouble = s.rx_errors + s.rx_dropped + s.tx_errors + s.tx_dropped;
            self.record(CounterKey::Link(l.index, LinkCounter::Trouble), at, trouble);
        }
        for sa in &st.xfrm_states {
            let k = SaKey::of(sa);
            self.record(
                CounterKey::Sa(k.clone(), SaCounter::Bytes),
                at,
                sa.lifetime.bytes,
            );
            self.record(
                CounterKey::Sa(k.clone(), SaCounter::Packets),
                at,
                sa.lifetime.packets,
            );
            let t = &sa.stats;
            let trouble =
                u64::from(t.replay) + u64::from(t.integrity_failed) + u64::from(t.replay_window);
            self.record(CounterKey::Sa(k, SaCounter::Trouble), at, trouble);
        }
        for (name, v) in &st.xfrm_stats {
            self.record(CounterKey::Stat(name.clone()), at, *v);
        }
    }

    /// Forget counters of objects that are gone.
    pub fn retain_present(&mut self, st: &NodeState) {
        let links: std::collections::HashSet<u32> = st.links.iter().map(|l| l.index).collect();
        let sas: std::collections::HashSet<SaKey> = st.xfrm_states.iter().map(SaKey::of).collect();
        self.series.retain(|k, _| match k {
            CounterKey::Link(i, _) => links.contains(i),
            CounterKey::Sa(s, _) => sas.contains(s),
            CounterKey::Stat(_) => true,
        });
    }

    /// Per second, between the last two samples.
    pub fn rate(&self, key: &CounterKey) -> Option<f64> {
        let s = self.series.get(key)?;
        let n = s.len();
        if n < 2 {
            return None;
        }
        let (t0, v0) = s[n - 2];
        let (t1, v1) = s[n - 1];
        let dt = t1.checked_duration_since(t0)?.as_secs_f64();
        (dt > 0.0).then(|| (v1 - v0) as f64 / dt)
    }

    /// Growth over the last `samples` samples (or as many as there are).
    pub fn delta(&self, key: &CounterKey, samples: usize) -> Option<u64> {
        let s = self.series.get(key)?;
        let last = s.back()?.1;
        let first = s.get(s.len().saturating_sub(samples + 1))?.1;
        Some(last - first)
    }

    /// Did it grow within the last RISING_SAMPLES samples?
    pub fn rising(&self, key: &CounterKey) -> bool {
        self.delta(key, RISING_SAMPLES).is_some_and(|d| d > 0)
    }

    /// The time covered by the last `samples` samples of `key`.
    pub fn span(&self, key: &CounterKey, samples: usize) -> Option<Duration> {
        let s = self.series.get(key)?;
        let last = s.back()?.0;
        let first = s.get(s.len().saturating_sub(samples + 1))?.0;
        last.checked_duration_since(first)
    }
}

/// One notice shown to the user (resync, SA expiry, source error), with when it came.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub at: Instant,
    pub text: String,
}

pub const NOTICES_KEPT: usize = 50;

/// A NodeState being kept up to date by events, with what a live view needs beside it.
#[derive(Debug, Default, Clone)]
pub struct Live {
    pub state: NodeState,
    pub history: History,
    /// Bumped when rows appear, disappear or change.
    pub structure_gen: u64,
    /// Bumped when counter values change.
    pub counter_gen: u64,
    pub notices: VecDeque<Notice>,
    /// The first full dump has arrived.
    pub loaded: bool,
    pub resyncs: u64,
    pub samples: u64,
    pub last_sample: Option<Instant>,
}

impl Live {
    pub fn new(state: NodeState) -> Live {
        Live {
            state,
            loaded: true,
            ..Default::default()
        }
    }

    /// Apply one event that arrived at `now` (samples carry their own time).
    pub fn apply(&mut self, ev: Event, now: Instant) {
        if let Event::Sample(s) = &ev {
            self.apply_sample(s);
            return;
        }
        let is_resync = matches!(ev, Event::Resync(_));
        let a = self.state.apply(ev);
        if is_resync {
            if self.loaded {
                self.resyncs += 1;
            }
            self.loaded = true;
        }
        if a.structure {
            self.structure_gen += 1;
            self.history.retain_present(&self.state);
        }
        if a.counters {
            self.counter_gen += 1;
        }
        if let Some(text) = a.notice {
            self.notice(now, text);
        }
    }

    /// Apply a counter sample, read by reference (it may be shared with a copy of the state).
    pub fn apply_sample(&mut self, s: &Sample) {
        self.state.apply_sample(s);
        self.history.record_state(&self.state, s.at);
        self.samples += 1;
        self.last_sample = Some(s.at);
        self.counter_gen += 1;
    }

    pub fn notice(&mut self, at: Instant, text: String) {
        if self.notices.len() == NOTICES_KEPT {
            self.notices.pop_front();
        }
        self.notices.push_back(Notice { at, text });
    }

    /// Trouble counters (xfrm_stat, SA failures, link errors/drops) that rose recently.
    pub fn rising_trouble(&self) -> usize {
        let h = &self.history;
        let links = self
            .state
            .links
            .iter()
            .filter(|l| h.rising(&CounterKey::Link(l.index, LinkCounter::Trouble)))
            .count();
        let sas = self
            .state
            .xfrm_states
            .iter()
            .filter(|s| h.rising(&CounterKey::Sa(SaKey::of(s), SaCounter::Trouble)))
            .count();
        let stats = self
            .state
            .xfrm_stats
            .iter()
            .filter(|(n, _)| super::rise_is_trouble(n) && h.rising(&CounterKey::Stat(n.clone())))
            .count();
        links + sas + stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::seed_worker;
    use crate::model::{Family, LinkRef, Prefix, TableRef};

    fn route(dst: &str, dev: u32) -> Route {
        let (a, l) = dst.split_once('/').unwrap();
        Route {
            family: Family::V4,
            table: TableRef {
                id: 254,
                name: None,
            },
            kind: "unicast".into(),
            dst: Some(Prefix::new(a.parse().unwrap(), l.parse().unwrap())),
            src: None,
            gateway: None,
            dev: Some(LinkRef {
                index: dev,
                name: None,
            }),
            prefsrc: None,
            protocol: "boot".into(),
            scope: "link".into(),
            metric: None,
            mtu: None,
            mtu_locked: false,
            tos: 0,
            nexthops: vec![],
        }
    }

    #[test]
    fn route_add_names_dev_and_delete_removes_it() {
        let mut st = seed_worker();
        let n = st.routes.len();
        let a = st.apply(Event::RouteNew {
            route: route("192.0.2.0/24", 7),
            replace: false,
        });
        assert!(a.structure);
        assert_eq!(st.routes.len(), n + 1);
        let added = st.routes.last().unwrap();
        assert_eq!(added.dev.as_ref().unwrap().name.as_deref(), Some("eth0"));
        // The same route again (event racing the dump) is not duplicated.
        st.apply(Event::RouteNew {
            route: route("192.0.2.0/24", 7),
            replace: false,
        });
        assert_eq!(st.routes.len(), n + 1);
        st.apply(Event::RouteDel(route("192.0.2.0/24", 7)));
        assert_eq!(st.routes.len(), n);
        assert!(
            !st.apply(Event::RouteDel(route("192.0.2.0/24", 7)))
                .structure
        );
    }

    #[test]
    fn replace_swaps_the_route_with_the_same_key() {
        let mut st = NodeState::default();
        st.apply(Event::RouteNew {
            route: route("192.0.2.0/24", 7),
            replace: false,
        });
        st.apply(Event::RouteNew {
            route: route("192.0.2.0/24", 8),
            replace: true,
        });
        assert_eq!(st.routes.len(), 1);
        assert_eq!(st.routes[0].dev.as_ref().unwrap().index, 8);
        // Without replace (ip route append) both stay.
        st.apply(Event::RouteNew {
            route: route("192.0.2.0/24", 9),
            replace: false,
        });
        assert_eq!(st.routes.len(), 2);
    }

    #[test]
    fn deleting_a_link_drops_it_and_its_v4_routes() {
        let mut st = seed_worker();
        let on_eth0 = st
            .routes
            .iter()
            .filter(|r| r.dev.as_ref().unwrap().index == 7)
            .count();
        assert!(on_eth0 > 0);
        let n = st.routes.len();
        st.apply(Event::LinkDel { index: 7 });
        assert!(st.link(7).is_none());
        assert_eq!(st.routes.len(), n - on_eth0);
    }

    #[test]
    fn link_change_keeps_addresses_and_new_link_gets_peer_name() {
        let mut st = seed_worker();
        let mut eth0 = st.link(7).unwrap().clone();
        let addrs = eth0.addresses.len();
        eth0.addresses.clear();
        eth0.mtu = Some(9000);
        st.apply(Event::LinkNew(eth0));
        assert_eq!(st.link(7).unwrap().mtu, Some(9000));
        assert_eq!(st.link(7).unwrap().addresses.len(), addrs);
        let mut v = st.link(2).unwrap().clone();
        v.index = 40;
        v.name = "hs0".into();
        v.peer = Some(crate::model::Peer {
            index: 3,
            name: None,
            netns_id: None,
        });
        st.apply(Event::LinkNew(v));
        assert_eq!(
            st.link(40).unwrap().peer.as_ref().unwrap().name.as_deref(),
            Some("cilium_host")
        );
        assert_eq!(st.links.iter().map(|l| l.index).max(), Some(40));
    }

    #[test]
    fn rules_keep_priority_order_and_delete_by_key() {
        let mut st = seed_worker();
        let mut r = st.rules[2].clone();
        r.priority = 5;
        r.fwmark = None;
        st.apply(Event::RuleNew(r.clone()));
        let prios: Vec<u32> = st.rules.iter().map(|r| r.priority).collect();
        assert!(prios.windows(2).all(|w| w[0] <= w[1]), "{prios:?}");
        assert!(st.rules.iter().any(|x| x == &r));
        st.apply(Event::RuleDel(r.clone()));
        assert!(!st.rules.iter().any(|x| x == &r));
    }

    #[test]
    fn sa_and_policy_add_delete_expire() {
        let mut st = seed_worker();
        let sa = st.xfrm_states[0].clone();
        let key = SaKey::of(&sa);
        st.apply(Event::SaDel(SaKey {
            mark: None,
            ..key.clone()
        }));
        assert_eq!(st.xfrm_states.len(), 2);
        st.apply(Event::SaNew(Box::new(sa.clone())));
        st.apply(Event::SaNew(Box::new(sa.clone())));
        assert_eq!(st.xfrm_states.len(), 3);
        let soft = st.apply(Event::SaExpire {
            key: key.clone(),
            hard: false,
        });
        assert!(soft.notice.unwrap().contains("soft"));
        assert_eq!(st.xfrm_states.len(), 3);
        st.apply(Event::SaExpire { key, hard: true });
        assert_eq!(st.xfrm_states.len(), 2);

        let p = st.xfrm_policies[0].clone();
        st.apply(Event::PolicyDel {
            dir: p.dir,
            index: p.index,
            selector: Some(p.selector.clone()),
            mark: p.mark,
        });
        assert_eq!(st.xfrm_policies.len(), 4);
        st.apply(Event::PolicyDel {
            dir: PolicyDir::Fwd,
            index: st
                .xfrm_policies
                .iter()
                .find(|p| p.dir == PolicyDir::Fwd)
                .unwrap()
                .index,
            selector: None,
            mark: None,
        });
        assert_eq!(st.xfrm_policies.len(), 3);
        st.apply(Event::PolicyNew(p.clone()));
        assert_eq!(st.xfrm_policies.len(), 4, "an update replaces, not adds");
    }

    #[test]
    fn samples_give_rates_deltas_and_rising_trouble() {
        let t0 = Instant::now();
        let mut live = Live::new(seed_worker());
        let sample = |at, rx: u64, drops: u64, no_states: u64| {
            Event::Sample(Sample {
                at,
                links: Some(vec![(
                    7,
                    LinkStats {
                        rx_bytes: rx,
                        rx_dropped: drops,
                        ..Default::default()
                    },
                )]),
                sas: None,
                xfrm_stat: Some(vec![("XfrmInNoStates".into(), no_states)]),
            })
        };
        live.apply(sample(t0, 1000, 0, 5), t0);
        let rx = CounterKey::Link(7, LinkCounter::RxBytes);
        assert_eq!(live.history.rate(&rx), None, "one sample gives no rate");
        assert_eq!(live.rising_trouble(), 0);
        let t1 = t0 + Duration::from_secs(2);
        live.apply(sample(t1, 3000, 0, 5), t1);
        assert_eq!(live.history.rate(&rx), Some(1000.0));
        assert_eq!(live.rising_trouble(), 0, "traffic is not trouble");
        let t2 = t1 + Duration::from_secs(1);
        live.apply(sample(t2, 3000, 4, 9), t2);
        assert_eq!(live.state.link(7).unwrap().stats.rx_dropped, 4);
        assert_eq!(
            live.history
                .delta(&CounterKey::Stat("XfrmInNoStates".into()), 10),
            Some(4)
        );
        assert_eq!(
            live.rising_trouble(),
            2,
            "link drops and XfrmInNoStates rose"
        );
        // A counter going backwards is a reset, not a negative rate.
        let t3 = t2 + Duration::from_secs(1);
        live.apply(sample(t3, 10, 4, 9), t3);
        assert_eq!(live.history.rate(&rx), None);
        // Quiet for RISING_SAMPLES samples: no longer rising.
        let mut t = t3;
        for _ in 0..RISING_SAMPLES {
            t += Duration::from_secs(1);
            live.apply(sample(t, 10, 4, 9), t);
        }
        assert_eq!(live.rising_trouble(), 0);
        assert_eq!(live.samples as usize, 4 + RISING_SAMPLES);
    }

    #[test]
    fn resync_replaces_everything_and_is_counted() {
        let now = Instant::now();
        let mut live = Live::default();
        assert!(!live.loaded);
        live.apply(Event::Resync(Box::new(seed_worker())), now);
        assert!(live.loaded);
        assert_eq!(live.resyncs, 0, "the first dump is not a resync");
        live.apply(
            Event::ResyncNeeded {
                reason: "resynced after overrun".into(),
            },
            now,
        );
        let mut smaller = seed_worker();
        smaller.routes.truncate(1);
        live.apply(Event::Resync(Box::new(smaller)), now);
        assert_eq!(live.resyncs, 1);
        assert_eq!(live.state.routes.len(), 1);
        assert!(live.notices.iter().any(|n| n.text.contains("overrun")));
    }
}
