//! Plain text: one section per kind, aligned columns, readable the way `ip` is.

use super::columns as col;
use crate::explain::cilium::{self, NodeLayout};
use crate::model::{Names, NodeState, reveal_secrets};
use std::fmt::Write;

/// Align `rows` under `headers`; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(&widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn section(out: &mut String, title: &str, count: usize, body: String) {
    let _ = writeln!(out, "\n== {title} ({count}) ==");
    out.push_str(&body);
}

/// The node as text, its addresses named from `names` (an empty table names nothing).
pub fn render(st: &NodeState, show_keys: bool, names: &Names) -> String {
    // Marks name node IDs by this node's own SAs (node IDs are node-local).
    let ids = cilium::node_id_labels(&st.xfrm_states, names);
    cilium::with_node_ids(ids, || render_node(st, show_keys, names))
}

fn render_node(st: &NodeState, show_keys: bool, names: &Names) -> String {
    let mut out = String::new();
    let where_ = st.node.netns.label();
    let _ = writeln!(
        out,
        "node {}  kernel {}  {where_}",
        st.node.hostname, st.node.kernel
    );
    for w in &st.warnings {
        let _ = writeln!(out, "warning: {w}");
    }

    let rows: Vec<_> = st.links.iter().map(|l| col::link_row(l, names)).collect();
    section(
        &mut out,
        "links",
        rows.len(),
        table(&col::LINK_HEADERS, &rows),
    );
    let rows: Vec<_> = st.links.iter().filter_map(col::xfrm_conf_row).collect();
    if !rows.is_empty() {
        section(
            &mut out,
            "links: IPsec switches (tunnel devices, and any device with one on)",
            rows.len(),
            table(&col::XFRM_CONF_HEADERS, &rows),
        );
    }
    let rows: Vec<_> = st.routes.iter().map(|r| col::route_row(r, names)).collect();
    section(
        &mut out,
        "routes, all tables",
        rows.len(),
        table(&col::ROUTE_HEADERS, &rows),
    );
    let rows: Vec<_> = st.rules.iter().map(col::rule_row).collect();
    section(
        &mut out,
        "rules",
        rows.len(),
        table(&col::RULE_HEADERS, &rows),
    );

    let _ = writeln!(out, "\n== xfrm states ({}) ==", st.xfrm_states.len());
    for s in &st.xfrm_states {
        out.push_str(&sa_block(s, show_keys, names));
    }
    if let Some(l) = cilium::node_layout(&st.xfrm_states, names) {
        out.push_str(&layout_section(&l));
    }
    let rows: Vec<_> = st
        .xfrm_policies
        .iter()
        .map(|p| col::policy_row(p, names))
        .collect();
    section(
        &mut out,
        "xfrm policies",
        rows.len(),
        table(&col::POLICY_HEADERS, &rows),
    );
    let rows = col::stat_rows(st);
    section(
        &mut out,
        "xfrm_stat",
        rows.len(),
        table(&col::STAT_HEADERS, &rows),
    );
    out
}

/// An SA as a block like `ip -s xfrm state`, with marks named and keys redacted.
fn sa_block(s: &crate::model::XfrmState, show_keys: bool, names: &Names) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "src {} dst {}",
        names.annotate(&s.src),
        names.annotate(&s.dst)
    );
    let _ = writeln!(
        b,
        "    proto {} spi {:#010x} reqid {} mode {}",
        s.proto, s.spi, s.reqid, s.mode
    );
    let _ = writeln!(
        b,
        "    replay-window {}{}{}",
        s.replay_window,
        if s.esn { " esn" } else { "" },
        if s.flags.is_empty() {
            String::new()
        } else {
            format!(" flag {}", s.flags.join(" "))
        }
    );
    if s.mark.is_some() || s.output_mark.is_some() {
        let _ = writeln!(
            b,
            "    mark {}  output-mark {}",
            col::opt_mark(&s.mark),
            col::opt_mark(&s.output_mark)
        );
    }
    reveal_secrets(show_keys, || {
        for (label, a) in [("aead", &s.aead), ("enc", &s.enc), ("auth", &s.auth)] {
            if let Some(a) = a {
                let extra = match (a.icv_bits, a.trunc_bits) {
                    (Some(n), _) => format!(" icv {n}"),
                    (None, Some(n)) => format!(" trunc {n}"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    b,
                    "    {label} {} key {} ({} bits){extra}",
                    a.name, a.key, a.key_bits
                );
            }
        }
    });
    if let Some(e) = &s.encap {
        let _ = writeln!(
            b,
            "    encap type {} sport {} dport {}",
            e.kind, e.sport, e.dport
        );
    }
    let _ = writeln!(
        b,
        "    seq {:#x} oseq {:#x}  sel {}",
        s.seq,
        s.oseq,
        col::selector(&s.selector, names)
    );
    let _ = writeln!(
        b,
        "    lifetime {} bytes, {} packets  stats replay-window {} replay {} failed {}",
        s.lifetime.bytes,
        s.lifetime.packets,
        s.stats.replay_window,
        s.stats.replay,
        s.stats.integrity_failed
    );
    b
}

pub const PEER_HEADERS: [&str; 9] = [
    "NODE ID",
    "NODE",
    "FAMILY",
    "PEER",
    "SPIS",
    "OUT",
    "IN",
    "COUNT",
    "NAME FROM",
];

/// One remote node's SAs against what the layout expects: `2/2` is 2 found of 2 expected.
pub fn peer_row(p: &cilium::PeerSas) -> Vec<String> {
    let spis: Vec<String> = p.spis.iter().map(|s| format!("{s:#x}")).collect();
    vec![
        p.node_id
            .map(|id| format!("{id:#x}"))
            .unwrap_or_else(|| "-".into()),
        p.name.clone().unwrap_or_else(|| "-".into()),
        p.family.name().into(),
        p.peer.to_string(),
        spis.join(","),
        format!("{}/{}", p.out, p.expected_out),
        format!("{}/{}", p.inbound, p.expected_in),
        if p.ok() { "ok" } else { "WRONG" }.into(),
        p.name_from
            .clone()
            .unwrap_or_else(|| "no Kubernetes name for the peer".into()),
    ]
}

/// Which of Cilium's layouts the SAs follow, why, and the SAs per remote node and family
/// against that layout's expectation.
fn layout_section(l: &NodeLayout) -> String {
    let mut b = String::new();
    let _ = writeln!(b, "layout: {} — {}", l.layout, l.why);
    let _ = writeln!(b, "expects: {}", l.expectation());
    for (fam, n) in &l.shared_in {
        let _ = writeln!(
            b,
            "inbound SAs shared by all peers, {}: {n} (expected {})",
            fam.name(),
            l.expected.in_shared
        );
    }
    if l.stale > 0 {
        let _ = writeln!(
            b,
            "stale: {} out SA(s) in the key-only layout beside the node-ID ones",
            l.stale
        );
    }
    let rows: Vec<_> = l.peers.iter().map(peer_row).collect();
    b.push_str(&table(&PEER_HEADERS, &rows));
    let mut out = String::new();
    section(
        &mut out,
        "cilium ipsec: SAs per remote node",
        l.peers.len(),
        b,
    );
    out
}
