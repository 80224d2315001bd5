use super::{Family, Mark, Prefix, TableRef};
use serde::{Deserialize, Serialize};

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
    /// lookup, goto, nop, blackhole, unreachable, prohibit.
    pub action: String,
    pub goto: Option<u32>,
    pub invert: bool,
    pub tos: u8,
}
