//! Model values printed with what they mean on a Cilium node: a mark (`0xd00/0xf00 (cilium
//! decrypt)`), a table (`200 (cilium ipsec)`), a rule's match and action. Views and the trace
//! print the same text, so it lives here, below both, instead of the trace borrowing a view.

use super::cilium;
use crate::model::{Mark, Rule, TableRef};

/// A mark with its Cilium meaning when it has one.
pub fn mark(m: &Mark) -> String {
    match cilium::mark_meaning(m) {
        Some(meaning) => format!("{m} ({meaning})"),
        None => m.to_string(),
    }
}

/// `200 (cilium ipsec)`, `main`, `local`.
pub fn table(t: &TableRef) -> String {
    match (&t.name, cilium::table_meaning(t.id)) {
        (Some(name), _) => name.clone(),
        (None, Some(meaning)) => format!("{} ({meaning})", t.id),
        (None, None) => t.id.to_string(),
    }
}

/// A rule as `ip rule` shows it after its priority and family: from, to, match, action
/// (`to` and `match` empty when the rule has none).
pub fn rule_cells(r: &Rule) -> [String; 4] {
    let mut matches = Vec::new();
    if let Some(i) = &r.iif {
        matches.push(format!("iif {i}"));
    }
    if let Some(o) = &r.oif {
        matches.push(format!("oif {o}"));
    }
    if let Some(m) = &r.fwmark {
        matches.push(format!("fwmark {}", mark(m)));
    }
    if r.tos != 0 {
        matches.push(format!("tos {:#x}", r.tos));
    }
    let action = match (&r.table, r.goto) {
        (Some(t), _) => format!("lookup {}", table(t)),
        (None, Some(g)) => format!("goto {g}"),
        (None, None) => r.action.to_string(),
    };
    [
        format!(
            "{}{}",
            if r.invert { "not " } else { "" },
            r.src.map_or("all".into(), |p| p.to_string())
        ),
        r.dst.map(|p| p.to_string()).unwrap_or_default(),
        matches.join(" "),
        action,
    ]
}
