//! What each pane shows, row by row: the cells come from `view::columns` (one definition
//! shared with the text view), plus the live columns (rates) only a live view has.

use crate::model::event::{CounterKey, LinkCounter, Live, SaCounter, SaKey};
use crate::model::{
    Names, NodeState, PolicyAction, PolicyDir, TemplateLevel, XfrmPolicy, XfrmState, reveal_secrets,
};
use crate::view::columns as col;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pane {
    Links,
    Routes,
    Rules,
    Sas,
    Policies,
    Stats,
    /// Captured packets, one stream per interface (rows: the App's `PacketLog`).
    Packets,
    /// One flow's hops (rows: the App's `Traced`).
    Trace,
    /// The doctor's findings on this node (rows: the App's `Health`).
    Health,
}

pub const PANES: [Pane; 9] = [
    Pane::Links,
    Pane::Routes,
    Pane::Rules,
    Pane::Sas,
    Pane::Policies,
    Pane::Stats,
    Pane::Packets,
    Pane::Trace,
    Pane::Health,
];

const LINK_LIVE: [&str; 3] = ["RX B/s", "TX B/s", "ERR+DROP"];
const SA_LIVE: [&str; 3] = ["PKT/s", "B/s", "FAILED"];
const POLICY_LIVE: [&str; 1] = ["SAS"];
const STAT_HEADERS: [&str; 5] = ["COUNTER", "VALUE", "RATE/s", "Δ", "MEANING"];

impl Pane {
    pub fn index(self) -> usize {
        PANES.iter().position(|p| *p == self).unwrap()
    }
    pub fn title(self) -> &'static str {
        match self {
            Pane::Links => "Links",
            Pane::Routes => "Routes",
            Pane::Rules => "Rules",
            Pane::Sas => "XFRM SAs",
            Pane::Policies => "XFRM Policies",
            Pane::Stats => "xfrm_stat",
            Pane::Packets => "Packets",
            Pane::Trace => "Trace",
            Pane::Health => "Health",
        }
    }
    /// Short name for commands and the config file.
    pub fn name(self) -> &'static str {
        match self {
            Pane::Links => "links",
            Pane::Routes => "routes",
            Pane::Rules => "rules",
            Pane::Sas => "sas",
            Pane::Policies => "policies",
            Pane::Stats => "stats",
            Pane::Packets => "packets",
            Pane::Trace => "trace",
            Pane::Health => "health",
        }
    }
    pub fn from_name(s: &str) -> Option<Pane> {
        Some(match s {
            "links" | "link" | "l" => Pane::Links,
            "routes" | "route" | "r" => Pane::Routes,
            "rules" | "rule" => Pane::Rules,
            "sas" | "sa" | "xfrm" | "states" | "state" => Pane::Sas,
            "policies" | "policy" | "pol" => Pane::Policies,
            "stats" | "stat" | "xfrm_stat" => Pane::Stats,
            "packets" | "packet" | "pkts" => Pane::Packets,
            "trace" | "follow" => Pane::Trace,
            "health" | "doctor" => Pane::Health,
            _ => return None,
        })
    }
    pub fn headers(self) -> Vec<&'static str> {
        let (base, live): (&[&str], &[&str]) = match self {
            Pane::Links => (&col::LINK_HEADERS, &LINK_LIVE),
            Pane::Routes => (&col::ROUTE_HEADERS, &[]),
            Pane::Rules => (&col::RULE_HEADERS, &[]),
            Pane::Sas => (&col::SA_HEADERS, &SA_LIVE),
            Pane::Policies => (&col::POLICY_HEADERS, &POLICY_LIVE),
            Pane::Stats => (&STAT_HEADERS, &[]),
            Pane::Packets => (&super::packets::HEADERS, &[]),
            Pane::Trace => (&super::flow::HEADERS, &[]),
            Pane::Health => (&super::health::HEADERS, &[]),
        };
        base.iter().chain(live).copied().collect()
    }
    /// Rows of a node-state pane. Packets and Trace rows are not the node's: `App::pane_len`.
    pub fn len(self, st: &NodeState) -> usize {
        match self {
            Pane::Links => st.links.len(),
            Pane::Routes => st.routes.len(),
            Pane::Rules => st.rules.len(),
            Pane::Sas => st.xfrm_states.len(),
            Pane::Policies => st.xfrm_policies.len(),
            Pane::Stats => st.xfrm_stats.len(),
            Pane::Packets | Pane::Trace | Pane::Health => 0,
        }
    }
    /// Columns that give way when the terminal is narrow, least needed first (the detail
    /// view still shows every field).
    pub fn drop_order(self) -> &'static [usize] {
        match self {
            // MASTER FLAGS MAC RX/TX-PKTS IDX MTU KIND TX-B/s
            Pane::Links => &[7, 4, 6, 9, 0, 5, 2, 11],
            // MTU METRIC PREFSRC SCOPE PROTO TYPE
            Pane::Routes => &[9, 8, 5, 7, 6, 1],
            // FAMILY TO
            Pane::Rules => &[1, 3],
            // ALG MODE REQID PROTO BYTES OUTPUT-MARK B/s
            Pane::Sas => &[8, 5, 4, 2, 10, 7, 12],
            // INDEX ACTION PRIO
            Pane::Policies => &[6, 4, 1],
            Pane::Stats => &[],
            // Every column says something here: the long ones are cut instead (enter shows all).
            Pane::Packets | Pane::Trace | Pane::Health => &[],
        }
    }
    /// Do this pane's cells change with counter samples (not only with structure)?
    pub fn has_counters(self) -> bool {
        matches!(self, Pane::Links | Pane::Sas | Pane::Stats)
    }
}

/// `1.2k`, `3.4M`: rates in little room.
pub fn si(v: f64) -> String {
    let a = v.abs();
    if a < 1000.0 {
        if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    } else if a < 1e6 {
        format!("{:.1}k", v / 1e3)
    } else if a < 1e9 {
        format!("{:.1}M", v / 1e6)
    } else {
        format!("{:.1}G", v / 1e9)
    }
}

fn rate(live: &Live, k: &CounterKey) -> String {
    live.history.rate(k).map(si).unwrap_or_else(|| "-".into())
}

/// A trouble total, with ↑ and the recent growth when it is rising.
fn trouble_cell(live: &Live, k: &CounterKey, total: u64) -> String {
    match live.history.delta(k, crate::model::event::RISING_SAMPLES) {
        Some(d) if d > 0 => format!("{total} ↑{d}"),
        _ => total.to_string(),
    }
}

/// SAs a policy's templates select (trace::xfrm::sa_mismatch: dst, proto, mode, spi,
/// reqid, src; the mark for out policies, whose mark is what the SA lookup uses).
pub fn sas_of_policy(st: &NodeState, p: &XfrmPolicy) -> Vec<usize> {
    st.xfrm_states
        .iter()
        .enumerate()
        .filter(|(_, sa)| policy_selects(p, sa))
        .map(|(i, _)| i)
        .collect()
}

pub fn policies_of_sa(st: &NodeState, sa: &XfrmState) -> Vec<usize> {
    st.xfrm_policies
        .iter()
        .enumerate()
        .filter(|(_, p)| policy_selects(p, sa))
        .map(|(i, _)| i)
        .collect()
}

pub fn policy_selects(p: &XfrmPolicy, sa: &XfrmState) -> bool {
    let mark = if p.dir == PolicyDir::Out {
        p.mark.map_or(0, |m| m.value & m.mask)
    } else {
        // in/fwd templates are checked against the SAs that already decrypted the
        // packet: the mark played its part in that SA's own lookup.
        sa.mark.map_or(0, |m| m.value)
    };
    p.templates
        .iter()
        .any(|t| crate::trace::xfrm::sa_mismatch(sa, t, mark, p.if_id.unwrap_or(0)).is_none())
}

/// A node row's cells, addresses named from `names`.
pub fn cells(pane: Pane, live: &Live, i: usize, names: &Names) -> Vec<String> {
    let st = &live.state;
    match pane {
        Pane::Packets | Pane::Trace | Pane::Health => vec![], // not the node's rows: App::row_cells
        Pane::Links => {
            let l = &st.links[i];
            let mut c = col::link_row(l, names);
            let s = &l.stats;
            c.push(rate(live, &CounterKey::Link(l.index, LinkCounter::RxBytes)));
            c.push(rate(live, &CounterKey::Link(l.index, LinkCounter::TxBytes)));
            c.push(trouble_cell(
                live,
                &CounterKey::Link(l.index, LinkCounter::Trouble),
                s.rx_errors + s.rx_dropped + s.tx_errors + s.tx_dropped,
            ));
            c
        }
        Pane::Routes => col::route_row(&st.routes[i], names),
        Pane::Rules => col::rule_row(&st.rules[i]),
        Pane::Sas => {
            let sa = &st.xfrm_states[i];
            let k = SaKey::of(sa);
            let mut c = col::sa_row(sa, names);
            c.push(rate(live, &CounterKey::Sa(k.clone(), SaCounter::Packets)));
            c.push(rate(live, &CounterKey::Sa(k.clone(), SaCounter::Bytes)));
            let t = &sa.stats;
            c.push(trouble_cell(
                live,
                &CounterKey::Sa(k, SaCounter::Trouble),
                u64::from(t.replay) + u64::from(t.integrity_failed) + u64::from(t.replay_window),
            ));
            c
        }
        Pane::Policies => {
            let p = &st.xfrm_policies[i];
            let mut c = col::policy_row(p, names);
            c.push(if p.templates.is_empty() {
                String::new()
            } else {
                sas_of_policy(st, p).len().to_string()
            });
            c
        }
        Pane::Stats => {
            let (name, v) = &st.xfrm_stats[i];
            let k = CounterKey::Stat(name.clone());
            let delta = match live.history.delta(&k, crate::model::event::HISTORY_LEN) {
                Some(d) if d > 0 => format!("+{d}"),
                Some(_) => "0".into(),
                None => "-".into(),
            };
            vec![
                name.clone(),
                v.to_string(),
                rate(live, &k),
                delta,
                crate::explain::xfrm_stat::meaning(name)
                    .unwrap_or("")
                    .to_string(),
            ]
        }
    }
}

/// Is this row's trouble counter rising (highlighted)?
pub fn trouble(pane: Pane, live: &Live, i: usize) -> bool {
    let h = &live.history;
    let st = &live.state;
    match pane {
        Pane::Links => h.rising(&CounterKey::Link(st.links[i].index, LinkCounter::Trouble)),
        Pane::Sas => h.rising(&CounterKey::Sa(
            SaKey::of(&st.xfrm_states[i]),
            SaCounter::Trouble,
        )),
        Pane::Stats => {
            let name = &st.xfrm_stats[i].0;
            crate::explain::xfrm_stat::rise_is_trouble(name)
                && h.rising(&CounterKey::Stat(name.clone()))
        }
        // An out policy whose template finds no SA: packets hit XfrmOutNoStates.
        Pane::Policies => {
            let p = &st.xfrm_policies[i];
            p.dir == PolicyDir::Out
                && p.action == PolicyAction::Allow
                && p.templates
                    .iter()
                    .any(|t| t.level == TemplateLevel::Required)
                && sas_of_policy(st, p).is_empty()
        }
        _ => false,
    }
}

/// What names a row across changes (the detail view follows it).
pub fn identity(pane: Pane, st: &NodeState, i: usize) -> String {
    match pane {
        Pane::Links => st.links[i].index.to_string(),
        // Without names: a row is the same row whatever Kubernetes says about its addresses.
        Pane::Routes => col::route_row(&st.routes[i], &Names::default()).join("\u{1f}"),
        Pane::Rules => col::rule_row(&st.rules[i]).join("\u{1f}"),
        Pane::Sas => format!("{:?}", SaKey::of(&st.xfrm_states[i])),
        Pane::Policies => {
            let p = &st.xfrm_policies[i];
            format!("{} {:?} {:?}", p.dir, p.selector, p.mark)
        }
        Pane::Stats => st.xfrm_stats[i].0.clone(),
        Pane::Packets | Pane::Trace | Pane::Health => String::new(), // not the node's rows
    }
}

pub fn find_identity(pane: Pane, st: &NodeState, id: &str) -> Option<usize> {
    (0..pane.len(st)).find(|&i| identity(pane, st, i) == id)
}

/// `key.sub[0].x: value` lines for every field of a JSON value.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        Value::Array(a) if a.is_empty() => out.push((prefix.into(), "[]".into())),
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        Value::Null => out.push((prefix.into(), "-".into())),
        Value::String(s) => out.push((prefix.into(), s.clone())),
        other => out.push((prefix.into(), other.to_string())),
    }
}

/// One line of a detail view: a field and its value, or a section title (empty value).
pub type DetailLine = (String, String);

fn fields<T: serde::Serialize>(v: &T, show_keys: bool) -> Vec<DetailLine> {
    let value = reveal_secrets(show_keys, || serde_json::to_value(v)).unwrap_or_default();
    let mut out = Vec::new();
    flatten("", &value, &mut out);
    out
}

fn mark_lines(out: &mut Vec<DetailLine>, what: &str, m: &Option<crate::model::Mark>) {
    if let Some(m) = m
        && let Some(meaning) = crate::explain::cilium::mark_meaning(m)
    {
        out.push((format!("{what} means"), format!("{meaning} (Cilium)")));
    }
}

/// For an SA of one of Cilium's layouts: the layout, what it expects, and the remote node this
/// SA is for with its SAs counted against that.
fn layout_lines(out: &mut Vec<DetailLine>, st: &NodeState, sa: &XfrmState, names: &Names) {
    use crate::explain::cilium::node_layout;
    let Some(l) = node_layout(&st.xfrm_states, names) else {
        return;
    };
    out.push(("── cilium layout".into(), l.layout.describe().into()));
    out.push(("because".into(), l.why.clone()));
    out.push(("expects".into(), l.expectation()));
    let peer = l.peers.iter().find(|p| {
        p.spis.contains(&sa.spi) && [&sa.src, &sa.dst].iter().any(|a| **a == p.peer.to_string())
    });
    if let Some(p) = peer {
        out.push(("remote node".into(), p.label()));
        out.push((
            "its SAs".into(),
            format!(
                "out {} of {}, in {} of {}: {}",
                p.out,
                p.expected_out,
                p.inbound,
                p.expected_in,
                if p.ok() { "as expected" } else { "WRONG count" }
            ),
        ));
        out.push((
            "name from".into(),
            p.name_from
                .clone()
                .unwrap_or_else(|| "no Kubernetes name for the peer address".into()),
        ));
    }
}

/// Every field of a row, then what it means and what it links to.
pub fn detail(
    pane: Pane,
    live: &Live,
    i: usize,
    show_keys: bool,
    names: &Names,
) -> Vec<DetailLine> {
    let st = &live.state;
    let all = match pane {
        Pane::Links => fields(&st.links[i], show_keys),
        Pane::Routes => fields(&st.routes[i], show_keys),
        Pane::Rules => fields(&st.rules[i], show_keys),
        Pane::Sas => fields(&st.xfrm_states[i], show_keys),
        Pane::Policies => fields(&st.xfrm_policies[i], show_keys),
        Pane::Stats => {
            let (n, v) = &st.xfrm_stats[i];
            vec![(n.clone(), v.to_string())]
        }
        Pane::Packets | Pane::Trace | Pane::Health => return vec![], // not the node's rows: App::row_detail
    };
    let headers = pane.headers();
    let row = cells(pane, live, i, names);
    let mut out = vec![("── as shown".to_string(), String::new())];
    for (h, c) in headers.iter().zip(&row) {
        out.push((h.to_string(), c.clone()));
    }
    match pane {
        Pane::Links => {
            let l = &st.links[i];
            if let Some(p) = &l.peer {
                let where_ = match (&p.name, p.netns_id) {
                    (Some(n), _) => format!("{n} (index {}) in this netns", p.index),
                    (None, Some(id)) => format!("index {} in netns id {id}", p.index),
                    (None, None) => format!("index {}", p.index),
                };
                out.push(("peer".into(), where_));
            }
            for m in crate::explain::xfrm_dev::meaning(l) {
                out.push(("IPsec".into(), m));
            }
        }
        Pane::Routes => {
            let r = &st.routes[i];
            if let Some(m) = crate::explain::cilium::table_meaning(r.table.id) {
                out.push(("table means".into(), m.into()));
            }
        }
        Pane::Rules => {
            let r = &st.rules[i];
            mark_lines(&mut out, "fwmark", &r.fwmark);
            if let Some(m) = r
                .table
                .as_ref()
                .and_then(|t| crate::explain::cilium::table_meaning(t.id))
            {
                out.push(("table means".into(), m.into()));
            }
        }
        Pane::Sas => {
            let sa = &st.xfrm_states[i];
            mark_lines(&mut out, "mark", &sa.mark);
            mark_lines(&mut out, "output-mark", &sa.output_mark);
            layout_lines(&mut out, st, sa, names);
            let pols = policies_of_sa(st, sa);
            out.push((
                format!(
                    "── selected by {} polic{}",
                    pols.len(),
                    if pols.len() == 1 { "y" } else { "ies" }
                ),
                String::new(),
            ));
            for p in pols {
                let p = &st.xfrm_policies[p];
                out.push((
                    format!("{} prio {}", p.dir, p.priority),
                    col::selector(&p.selector, names),
                ));
            }
        }
        Pane::Policies => {
            let p = &st.xfrm_policies[i];
            mark_lines(&mut out, "mark", &p.mark);
            let sas = sas_of_policy(st, p);
            out.push((
                format!(
                    "── selects {} SA{}",
                    sas.len(),
                    if sas.len() == 1 { "" } else { "s" }
                ),
                String::new(),
            ));
            for s in sas {
                let sa = &st.xfrm_states[s];
                out.push((
                    format!("spi {:#x}", sa.spi),
                    format!("{} → {}", sa.src, sa.dst),
                ));
            }
        }
        Pane::Stats | Pane::Packets | Pane::Trace | Pane::Health => {}
    }
    out.push(("── every field".into(), String::new()));
    out.extend(all);
    out
}
