//! Objects as `ip` prints them, on one line, so a finding's evidence can be pasted next to
//! `ip xfrm state` / `ip xfrm policy` / `ip route` / `ip rule` output and matched by eye.
//! Keys are never printed: an SA shows its algorithm and key length only.

use crate::model::{
    Mark, PolicyAction, Route, Rule, Selector, TemplateLevel, XfrmPolicy, XfrmState,
};
use crate::model::{RouteKind, RouteProtocol, Scope};
use std::fmt::Write;

fn mark(m: &Mark) -> String {
    let meaning = crate::explain::cilium::mark_meaning(m)
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    format!("{:#x}/{:#x}{meaning}", m.value, m.mask)
}

pub fn selector(s: &Selector) -> String {
    let mut out = format!("src {} dst {}", s.src, s.dst);
    if let Some(p) = s.proto {
        let _ = write!(out, " proto {}", crate::model::kernel_names::ip_proto(p));
    }
    if let Some(p) = s.sport {
        let _ = write!(out, " sport {p}");
    }
    if let Some(p) = s.dport {
        let _ = write!(out, " dport {p}");
    }
    if let Some(d) = &s.dev {
        let _ = write!(out, " dev {d}");
    }
    out
}

/// `src 10.0.1.138 dst 10.0.0.40 proto esp spi 0x00000003 reqid 1 mode tunnel mark 0x3e00/0xff00 …`
pub fn sa(s: &XfrmState) -> String {
    let mut out = format!(
        "src {} dst {} proto {} spi {:#010x} reqid {} mode {}",
        s.src, s.dst, s.proto, s.spi, s.reqid, s.mode
    );
    let _ = write!(out, " replay-window {}", s.replay_window);
    if s.esn {
        out.push_str(" flag esn");
    }
    if let Some(m) = &s.mark {
        let _ = write!(out, " mark {}", mark(m));
    }
    if let Some(m) = &s.output_mark {
        let _ = write!(out, " output-mark {:#x}/{:#x}", m.value, m.mask);
    }
    for (label, a) in [("aead", &s.aead), ("enc", &s.enc), ("auth", &s.auth)] {
        if let Some(a) = a {
            let _ = write!(
                out,
                " {label} {} ({} bits, key not shown)",
                a.name, a.key_bits
            );
        }
    }
    if let Some(e) = &s.encap {
        let _ = write!(out, " encap {} {} {}", e.kind, e.sport, e.dport);
    }
    let _ = write!(out, " sel {}", selector(&s.selector));
    let _ = write!(out, " seq {:#x} oseq {:#x}", s.seq, s.oseq);
    out
}

/// `src 10.0.1.0/24 dst 10.0.0.0/24 dir out priority 0 mark 0x3e00/0xff00 tmpl src … dst … proto esp spi 0x3 reqid 1 mode tunnel`
pub fn policy(p: &XfrmPolicy) -> String {
    let mut out = format!("{} dir {}", selector(&p.selector), p.dir);
    if p.action != PolicyAction::Allow {
        let _ = write!(out, " action {}", p.action);
    }
    let _ = write!(out, " priority {}", p.priority);
    if let Some(m) = &p.mark {
        let _ = write!(out, " mark {}", mark(m));
    }
    for t in &p.templates {
        let _ = write!(
            out,
            " tmpl src {} dst {} proto {} spi {:#010x} reqid {} mode {}",
            t.src, t.dst, t.proto, t.spi, t.reqid, t.mode
        );
        if t.level == TemplateLevel::Use {
            out.push_str(" level use");
        }
    }
    out
}

/// `10.0.0.0/24 dev cilium_host table 200 scope global mtu 1500`
pub fn route(r: &Route) -> String {
    let mut out = String::new();
    if r.kind != RouteKind::Unicast {
        let _ = write!(out, "{} ", r.kind);
    }
    out.push_str(&r.dst.map_or("default".into(), |d| d.to_string()));
    if let Some(g) = &r.gateway {
        let _ = write!(out, " via {g}");
    }
    if let Some(d) = r.dev.as_ref().and_then(|d| d.name.as_ref()) {
        let _ = write!(out, " dev {d}");
    }
    if r.table.id != 254 {
        let _ = write!(out, " table {}", r.table.id);
    }
    if r.protocol != RouteProtocol::Boot {
        let _ = write!(out, " proto {}", r.protocol);
    }
    if r.scope != Scope::Global {
        let _ = write!(out, " scope {}", r.scope);
    }
    if let Some(s) = &r.prefsrc {
        let _ = write!(out, " src {s}");
    }
    if let Some(m) = r.mtu {
        let _ = write!(out, " mtu {}{m}", if r.mtu_locked { "lock " } else { "" });
    }
    out
}

/// `1: from all fwmark 0xd00/0xf00 lookup 200`
pub fn rule(r: &Rule) -> String {
    let mut out = format!(
        "{}: {}from {}",
        r.priority,
        if r.invert { "not " } else { "" },
        r.src.map_or("all".into(), |p| p.to_string())
    );
    if let Some(d) = &r.dst {
        let _ = write!(out, " to {d}");
    }
    if let Some(m) = &r.fwmark {
        let _ = write!(out, " fwmark {:#x}/{:#x}", m.value, m.mask);
    }
    if let Some(i) = &r.iif {
        let _ = write!(out, " iif {i}");
    }
    if let Some(o) = &r.oif {
        let _ = write!(out, " oif {o}");
    }
    match (&r.table, r.goto) {
        (Some(t), _) => {
            let _ = write!(
                out,
                " lookup {}",
                t.name.clone().unwrap_or(t.id.to_string())
            );
        }
        (None, Some(g)) => {
            let _ = write!(out, " goto {g}");
        }
        _ => {
            let _ = write!(out, " {}", r.action);
        }
    }
    out
}
