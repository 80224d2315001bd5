//! A trace as text: one block per hop (what happened, the packet, what decided it), then
//! where the path ends.

use crate::trace::path::{End, Step, Trace};
use std::fmt::Write;

/// The trace as text; the addresses `names` has are named in a `names:` list at the end.
pub fn render(t: &Trace, names: &crate::model::Names) -> String {
    let mut out = String::new();
    let proto = crate::model::kernel_names::ip_proto(t.flow.proto);
    let _ = writeln!(
        out,
        "trace {} → {} {proto} ({} bytes)",
        names.annotate(&t.flow.src.to_string()),
        names.annotate(&t.flow.dst.to_string()),
        t.flow.size
    );
    for (i, h) in t.hops.iter().enumerate() {
        let step = step_name(h.step);
        let dev = h
            .dev
            .as_deref()
            .map(|d| format!(" · {d}"))
            .unwrap_or_default();
        let _ = writeln!(out, "\n[{:>2}] {} · {step}{dev}", i + 1, h.node);
        let _ = writeln!(out, "     {}", h.what);
        let _ = writeln!(out, "     packet  {}", h.packet);
        if !h.decided_by.is_empty() {
            let _ = writeln!(out, "     by      {}", h.decided_by);
        }
        for d in &h.details {
            let _ = writeln!(out, "       - {d}");
        }
    }
    let _ = writeln!(out);
    if let Some(f) = &t.follow {
        let _ = writeln!(out, "followed:");
        for h in &f.hops {
            let lat = h
                .ms_after_previous
                .map(|ms| format!(" (+{ms:.2} ms)"))
                .unwrap_or_default();
            let mark = if h.seen > 0 { "seen" } else { "NOT seen" };
            let _ = writeln!(
                out,
                "  [{:>2}] {mark} {}× on {} of {}{lat}",
                h.hop + 1,
                h.seen,
                h.dev,
                h.node
            );
        }
        for c in &f.counters {
            let flag = if c.trouble { "!" } else { " " };
            let _ = writeln!(out, "  {flag} {} {} +{}", c.node, c.counter, c.delta);
        }
        let _ = writeln!(out, "=> {}", f.verdict);
    }
    let _ = writeln!(out, "=> {}", end_line(&t.end));
    if !t.incomplete.is_empty() {
        let _ = writeln!(
            out,
            "!! this answer may be wrong: it was worked out on incomplete state:"
        );
        for w in &t.incomplete {
            let _ = writeln!(out, "   - {w}");
        }
    }
    // The Kubernetes names of the addresses above.
    let found = names.in_text(&out);
    if !found.is_empty() {
        let _ = writeln!(out, "\nnames:");
        for (ip, label) in found {
            let _ = writeln!(out, "  {ip:<15}  {label}");
        }
    }
    out
}

/// `xfrm_policy`, `route`: a step as the JSON names it.
pub fn step_name(step: Step) -> String {
    serde_json::to_value(step)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Where the path ends, in one line.
pub fn end_line(end: &End) -> String {
    match end {
        End::Delivered { node, what, dev } => format!(
            "delivered on {node}: {what}{}",
            dev.as_deref()
                .map(|d| format!(" (via {d})"))
                .unwrap_or_default()
        ),
        End::Wire {
            node,
            dev,
            next_hop,
        } => format!(
            "leaves {node} on {dev} towards {next_hop}; add that node's netns (--netns) to follow it further"
        ),
        End::Stopped {
            node,
            reason,
            counter,
        } => format!(
            "STOPS on {node}: {reason}{}",
            counter
                .as_deref()
                .map(|c| format!("; counter: {c}"))
                .unwrap_or_default()
        ),
    }
}
