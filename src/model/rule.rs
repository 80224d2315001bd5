use super::{Family, Mark, Prefix, RouteKind, TableRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

numbered_kernel_enum!(
    /// What a matching `ip rule` does (FR_ACT_*), as iproute2 names it.
    RuleAction {
        /// Look the packet up in the rule's table.
        Lookup = 1 "lookup",
        /// Go on at the rule with the `goto` priority.
        Goto = 2 "goto",
        Nop = 3 "nop",
        /// Refuse the packet, the way the route type of the same name does.
        Blackhole = 6 "blackhole",
        Unreachable = 7 "unreachable",
        Prohibit = 8 "prohibit",
    }
);

kernel_enum!(
    /// Why a route lookup refused a packet: the rule action or route type that did it, by the
    /// name both share; `Other` is a rule action this build has no name for (the kernel refuses
    /// those too, with EINVAL).
    Refusal {
        Blackhole = "blackhole",
        Unreachable = "unreachable",
        Prohibit = "prohibit",
    }
);

impl Refusal {
    /// The refusal a route of this type makes (None: the route does not refuse).
    pub fn of_route(kind: RouteKind) -> Option<Refusal> {
        match kind {
            RouteKind::Blackhole => Some(Refusal::Blackhole),
            RouteKind::Unreachable => Some(Refusal::Unreachable),
            RouteKind::Prohibit => Some(Refusal::Prohibit),
            _ => None,
        }
    }

    /// The refusal a matching rule with this action makes (None: lookup, goto and nop go on).
    pub fn of_rule(action: RuleAction) -> Option<Refusal> {
        match action {
            RuleAction::Lookup | RuleAction::Goto | RuleAction::Nop => None,
            RuleAction::Blackhole => Some(Refusal::Blackhole),
            RuleAction::Unreachable => Some(Refusal::Unreachable),
            RuleAction::Prohibit => Some(Refusal::Prohibit),
            RuleAction::Other(n) => Some(Refusal::Other(n)),
        }
    }
}

/// One `ip rule`: a selector (from/to/iif/oif/fwmark) and what happens on a match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub family: Family,
    pub priority: u32,
    pub src: Option<Prefix>,
    pub dst: Option<Prefix>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub fwmark: Option<Mark>,
    pub table: Option<TableRef>,
    pub action: RuleAction,
    pub goto: Option<u32>,
    pub invert: bool,
    pub tos: u8,
}
