//! What decided a hop, as data beside the prose `decided_by`: scripts read `trace --json`
//! and should not have to parse "rule 11: all fwmark 0x300/0xf00 lookup 105".

use crate::model::RuleAction;
use crate::model::{
    Conntrack, Family, Mark, NodeState, PolicyAction, PolicyDir, Route, Rule, Selector, Template,
    XfrmMode, XfrmPolicy, XfrmProto, XfrmState,
};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// The `ip rule` whose action decided the lookup.
    Rule {
        pref: u32,
        family: Family,
        src: Option<String>,
        dst: Option<String>,
        iif: Option<String>,
        oif: Option<String>,
        fwmark: Option<Mark>,
        action: RuleAction,
        table: Option<u32>,
        table_name: Option<String>,
        invert: bool,
    },
    /// The route the lookup chose.
    Route {
        table: u32,
        table_name: Option<String>,
        #[serde(rename = "type")]
        kind: crate::model::RouteKind,
        dst: String,
        gateway: Option<String>,
        dev: Option<String>,
        metric: Option<u32>,
        mtu: Option<u32>,
    },
    XfrmPolicy {
        index: u32,
        dir: PolicyDir,
        priority: u32,
        action: PolicyAction,
        selector: Selector,
        mark: Option<Mark>,
        templates: Vec<Template>,
    },
    XfrmSa {
        spi: u32,
        reqid: u32,
        src: String,
        dst: String,
        proto: XfrmProto,
        mark: Option<Mark>,
        output_mark: Option<Mark>,
        mode: XfrmMode,
    },
    /// A netfilter rule (iptables of either backend, nftables, IPVS) that decided something
    /// or could not be evaluated: hook, table, chain, rule text, target, effect.
    Netfilter(super::netfilter::NfDecision),
    /// The kernel's connection tracking entry of the flow.
    Conntrack(Conntrack),
    /// The counter that rises when packets stop here; `delta` is how much it moved when
    /// `--follow` watched it.
    Counter { name: String, delta: Option<u64> },
    /// The device a packet arrived on or left from, owning the address that decided it.
    Address { node: String, address: String },
    /// What hopscope assumed where the kernel's state cannot show it (Cilium's BPF marks).
    Assumption { text: String },
}

impl Decision {
    pub fn rule(r: &Rule) -> Decision {
        Decision::Rule {
            pref: r.priority,
            family: r.family,
            src: r.src.map(|p| p.to_string()),
            dst: r.dst.map(|p| p.to_string()),
            iif: r.iif.clone(),
            oif: r.oif.clone(),
            fwmark: r.fwmark,
            action: r.action,
            table: r.table.as_ref().map(|t| t.id),
            table_name: r.table.as_ref().and_then(|t| t.name.clone()),
            invert: r.invert,
        }
    }

    /// The rule of `st` that a route lookup reports by priority and text.
    pub fn rule_of(st: &NodeState, priority: u32, text: &str) -> Option<Decision> {
        st.rules
            .iter()
            .filter(|r| r.priority == priority)
            .find(|r| super::fib::describe_rule(r) == text)
            .map(Decision::rule)
    }

    pub fn route(r: &Route) -> Decision {
        Decision::Route {
            table: r.table.id,
            table_name: r.table.name.clone(),
            kind: r.kind,
            dst: r
                .dst
                .map_or_else(|| "default".to_string(), |d| d.to_string()),
            gateway: r.gateway.clone(),
            dev: r.dev.as_ref().and_then(|d| d.name.clone()),
            metric: r.metric,
            mtu: r.mtu,
        }
    }

    pub fn policy(p: &XfrmPolicy) -> Decision {
        Decision::XfrmPolicy {
            index: p.index,
            dir: p.dir,
            priority: p.priority,
            action: p.action,
            selector: p.selector.clone(),
            mark: p.mark,
            templates: p.templates.clone(),
        }
    }

    pub fn sa(s: &XfrmState) -> Decision {
        Decision::XfrmSa {
            spi: s.spi,
            reqid: s.reqid,
            src: s.src.to_string(),
            dst: s.dst.to_string(),
            proto: s.proto,
            mark: s.mark,
            output_mark: s.output_mark,
            mode: s.mode,
        }
    }

    pub fn counter(name: &str) -> Decision {
        Decision::Counter {
            name: name.to_string(),
            delta: None,
        }
    }
}
