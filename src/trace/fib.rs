//! The kernel's IPv4/IPv6 route selection, as a pure function of a NodeState:
//! policy rules in priority order (fib_rules), then longest-prefix match in the chosen table
//! (fib_table_lookup). Checked against `ip route get` by a property test on a real kernel.

use crate::model::{Family, NodeState, Refusal, Route, RouteKind, Rule, RuleAction};
use serde::Serialize;
use std::net::IpAddr;

/// What the route lookup knows about a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibKey {
    pub src: Option<IpAddr>,
    pub dst: IpAddr,
    pub mark: u32,
    /// Input device for forwarded/received packets; None = locally generated (the kernel
    /// then matches rules against `lo`).
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub tos: u8,
}

/// A rule that was looked at, and whether it matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleStep {
    pub priority: u32,
    pub matched: bool,
    /// For a matching lookup rule whose table had no route (or a `throw`): why we went on.
    pub note: Option<String>,
    pub rule: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FibResult {
    /// The rules evaluated up to the decision, in order.
    pub rules: Vec<RuleStep>,
    /// The deciding rule's priority (None when nothing matched).
    pub rule_priority: Option<u32>,
    pub outcome: FibOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FibOutcome {
    /// A route was chosen; `kind` is its type (unicast, local, broadcast, ...).
    Route {
        table: u32,
        route_index: usize,
        kind: RouteKind,
    },
    /// Stopped by a rule action or a route type (`table` is the route's table; None: a rule).
    Refused { what: Refusal, table: Option<u32> },
    /// No rule led to a route: "Network is unreachable".
    NoRoute,
}

impl FibOutcome {
    /// The error the kernel returns for this outcome (what `ip route get` and a sender see).
    pub fn kernel_error(&self) -> Option<&'static str> {
        match self {
            FibOutcome::Route { .. } => None,
            FibOutcome::NoRoute => Some("Network is unreachable"),
            FibOutcome::Refused { what, table } => Some(match (what, table) {
                (Refusal::Blackhole | Refusal::Other(_), _) => "Invalid argument",
                (Refusal::Prohibit, _) => "Permission denied",
                // An `unreachable` rule fails like a missing route; an unreachable route does not.
                (Refusal::Unreachable, None) => "Network is unreachable",
                (Refusal::Unreachable, Some(_)) => "No route to host",
            }),
        }
    }
}

fn family_of(ip: &IpAddr) -> Family {
    Family::of(ip)
}

fn rule_matches(r: &Rule, k: &FibKey) -> bool {
    // fib_rule_match: every selector the rule has must hold; `not` inverts the result.
    let src_ok = r.src.is_none_or(|p| k.src.is_some_and(|s| p.contains(&s)));
    let dst_ok = r.dst.is_none_or(|p| p.contains(&k.dst));
    // Locally generated packets come from `lo` as far as rules are concerned.
    let iif_ok = r
        .iif
        .as_ref()
        .is_none_or(|i| k.iif.as_deref().unwrap_or("lo") == i);
    let oif_ok = r
        .oif
        .as_ref()
        .is_none_or(|o| k.oif.as_deref() == Some(o.as_str()));
    let mark_ok = r.fwmark.is_none_or(|m| m.matches(k.mark));
    let tos_ok = r.tos == 0 || r.tos == k.tos;
    (src_ok && dst_ok && iif_ok && oif_ok && mark_ok && tos_ok) != r.invert
}

/// Longest prefix, then lowest metric, among the table's routes of the packet's family.
pub fn table_lookup(state: &NodeState, table: u32, k: &FibKey) -> Option<usize> {
    let fam = family_of(&k.dst);
    state
        .routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.family == fam && r.table.id == table)
        .filter(|(_, r)| r.dst.is_none_or(|d| d.contains(&k.dst)))
        .filter(|(_, r)| r.tos == 0 || r.tos == k.tos)
        .filter(|(_, r)| {
            r.src
                .is_none_or(|s| k.src.is_some_and(|ip| s.contains(&ip)))
        })
        // v6 link-local/multicast in `local` would need scope rules we do not model.
        .max_by(|(ia, a), (ib, b)| {
            let plen = |r: &Route| r.dst.map_or(0, |d| d.len);
            plen(a)
                .cmp(&plen(b))
                .then(b.metric.unwrap_or(0).cmp(&a.metric.unwrap_or(0)))
                .then(ib.cmp(ia)) // dump order breaks ties: first wins
        })
        .map(|(i, _)| i)
}

pub fn describe_rule(r: &Rule) -> String {
    crate::explain::labels::rule_cells(r)
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The lookup ended at rule `r` with `outcome`.
fn decided(rules: Vec<RuleStep>, r: &Rule, outcome: FibOutcome) -> FibResult {
    FibResult {
        rules,
        rule_priority: Some(r.priority),
        outcome,
    }
}

pub fn lookup(state: &NodeState, k: &FibKey) -> FibResult {
    let fam = family_of(&k.dst);
    let mut rules: Vec<&Rule> = state.rules.iter().filter(|r| r.family == fam).collect();
    rules.sort_by_key(|r| r.priority); // stable: equal priorities keep the kernel's order
    let mut steps = Vec::new();
    let mut i = 0;
    while i < rules.len() {
        let r = rules[i];
        i += 1;
        let matched = rule_matches(r, k);
        steps.push(RuleStep {
            priority: r.priority,
            matched,
            note: None,
            rule: describe_rule(r),
        });
        if !matched {
            continue;
        }
        match r.action {
            RuleAction::Lookup => {
                let table = r.table.as_ref().map_or(254, |t| t.id);
                let table_name = r
                    .table
                    .as_ref()
                    .map_or("main".to_string(), crate::explain::labels::table);
                let Some(idx) = table_lookup(state, table, k) else {
                    steps.last_mut().unwrap().note =
                        Some(format!("table {table_name}: no route, next rule"));
                    continue;
                };
                let kind = state.routes[idx].kind;
                if kind == RouteKind::Throw {
                    steps.last_mut().unwrap().note =
                        Some(format!("table {table_name}: throw route, next rule"));
                    continue;
                }
                let outcome = match Refusal::of_route(kind) {
                    Some(what) => FibOutcome::Refused {
                        what,
                        table: Some(table),
                    },
                    None => FibOutcome::Route {
                        table,
                        route_index: idx,
                        kind,
                    },
                };
                return decided(steps, r, outcome);
            }
            RuleAction::Goto => {
                // The kernel resolves a goto to a rule with exactly that priority; an
                // unresolved goto is skipped.
                match r
                    .goto
                    .and_then(|t| rules.iter().position(|x| x.priority == t))
                {
                    Some(target) => i = target,
                    None => {
                        steps.last_mut().unwrap().note = Some("goto target missing: skipped".into())
                    }
                }
            }
            RuleAction::Nop => {}
            action => {
                let what = Refusal::of_rule(action).expect("lookup, goto and nop go on above");
                return decided(steps, r, FibOutcome::Refused { what, table: None });
            }
        }
    }
    FibResult {
        rules: steps,
        rule_priority: None,
        outcome: FibOutcome::NoRoute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::seed_worker;

    fn key(src: &str, dst: &str, mark: u32, iif: Option<&str>) -> FibKey {
        FibKey {
            src: Some(src.parse().unwrap()),
            dst: dst.parse().unwrap(),
            mark,
            iif: iif.map(Into::into),
            oif: None,
            tos: 0,
        }
    }

    #[test]
    fn encrypt_mark_goes_to_table_200_and_cilium_host() {
        let st = seed_worker();
        let r = lookup(
            &st,
            &key("10.0.1.52", "10.0.0.249", 0x3e00, Some("lxcda1dd0af135e")),
        );
        let FibOutcome::Route {
            table, route_index, ..
        } = r.outcome
        else {
            panic!("{r:?}")
        };
        assert_eq!(table, 200);
        assert_eq!(r.rule_priority, Some(1));
        assert_eq!(
            st.routes[route_index].dev.as_ref().unwrap().name.as_deref(),
            Some("cilium_host")
        );
        // The decrypt rule came first and did not match.
        assert!(!r.rules[0].matched && r.rules[1].matched);
    }

    #[test]
    fn unmarked_traffic_uses_main_via_eth0() {
        let st = seed_worker();
        let r = lookup(
            &st,
            &key("10.0.1.52", "10.0.0.249", 0, Some("lxcda1dd0af135e")),
        );
        let FibOutcome::Route {
            table, route_index, ..
        } = r.outcome
        else {
            panic!()
        };
        assert_eq!(table, 254);
        assert_eq!(
            st.routes[route_index].gateway.as_deref(),
            Some("172.18.0.4")
        );
        assert_eq!(r.rule_priority, Some(32766));
    }

    #[test]
    fn longest_prefix_then_metric() {
        let mut st = seed_worker();
        let mut wide = st.routes[1].clone(); // 10.0.0.0/24 via 172.18.0.4
        wide.dst = Some(crate::model::Prefix::new("10.0.0.0".parse().unwrap(), 16));
        wide.gateway = Some("172.18.0.99".into());
        st.routes.push(wide);
        let mut worse = st.routes[1].clone();
        worse.metric = Some(100);
        worse.gateway = Some("172.18.0.77".into());
        st.routes.insert(0, worse);
        let r = lookup(&st, &key("10.0.1.52", "10.0.0.249", 0, None));
        let FibOutcome::Route { route_index, .. } = r.outcome else {
            panic!()
        };
        assert_eq!(
            st.routes[route_index].gateway.as_deref(),
            Some("172.18.0.4")
        );
    }
}
