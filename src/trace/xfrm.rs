//! Which XFRM policy the kernel picks for a packet, which SA its template selects, and which
//! inbound SA an ESP packet finds: pure functions of a NodeState (xfrm_policy_lookup,
//! xfrm_state_find, xfrm_state_lookup semantics).

use crate::model::{
    Mark, NodeState, PolicyDir, Selector, SelectorDev, SelectorKey, Template, XfrmMode, XfrmPolicy,
    XfrmProto, XfrmState,
};
use serde::Serialize;
use std::net::IpAddr;

/// The fields of a packet XFRM looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XfrmKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub mark: u32,
    /// The xfrm interface's if_id the lookup runs with (0: not through an xfrm interface).
    pub if_id: u32,
}

impl XfrmKey {
    /// The part of the key a selector looks at.
    pub fn selector_key(&self) -> SelectorKey {
        SelectorKey {
            src: self.src,
            dst: self.dst,
            proto: self.proto,
            sport: self.sport,
            dport: self.dport,
        }
    }
}

/// The selector check of a flow lookup, whose device is known (`dev`: None = no device).
pub fn selector_matches(sel: &Selector, k: &XfrmKey, dev: Option<&str>) -> bool {
    sel.matches(&k.selector_key(), SelectorDev::Known(dev))
}

fn mark_matches(m: &Option<Mark>, mark: u32) -> bool {
    m.is_none_or(|m| m.matches(mark))
}

/// A policy of the right direction that was considered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub index: usize,
    pub priority: u32,
    pub selector_ok: bool,
    pub mark_ok: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyChoice {
    /// Index into `xfrm_policies` of the winner: the lowest priority among full matches.
    pub chosen: Option<usize>,
    /// Every policy of that direction whose selector or mark matched (winners and losers).
    pub candidates: Vec<Candidate>,
}

pub fn choose_policy(
    st: &NodeState,
    dir: PolicyDir,
    k: &XfrmKey,
    dev: Option<&str>,
) -> PolicyChoice {
    let mut candidates = Vec::new();
    let mut chosen: Option<(usize, u32)> = None;
    for (i, p) in st
        .xfrm_policies
        .iter()
        .enumerate()
        .filter(|(_, p)| p.dir == dir)
    {
        if p.selector.src.family() != crate::model::Family::of(&k.src) {
            continue;
        }
        let selector_ok = selector_matches(&p.selector, k, dev);
        // xfrm_policy_match: the policy's if_id must equal the lookup's, like its mark.
        let mark_ok = mark_matches(&p.mark, k.mark) && p.if_id.unwrap_or(0) == k.if_id;
        if selector_ok || mark_ok {
            candidates.push(Candidate {
                index: i,
                priority: p.priority,
                selector_ok,
                mark_ok,
            });
        }
        if selector_ok && mark_ok && chosen.is_none_or(|(_, prio)| p.priority < prio) {
            chosen = Some((i, p.priority));
        }
    }
    PolicyChoice {
        chosen: chosen.map(|(i, _)| i),
        candidates,
    }
}

/// Why an SA does not serve a template (first reason found), or None when it does.
pub fn sa_mismatch(sa: &XfrmState, t: &Template, mark: u32, if_id: u32) -> Option<&'static str> {
    let any = |a: &str| a == "0.0.0.0" || a == "::";
    if sa.proto != t.proto {
        return Some("proto");
    }
    if sa.dst != t.dst {
        return Some("dst");
    }
    if !any(&t.src) && sa.src != t.src {
        return Some("src");
    }
    if t.spi != 0 && sa.spi != t.spi {
        return Some("spi");
    }
    if t.reqid != 0 && sa.reqid != t.reqid {
        return Some("reqid");
    }
    if sa.mode != t.mode {
        return Some("mode");
    }
    if !mark_matches(&sa.mark, mark) {
        return Some("mark");
    }
    if sa.if_id.unwrap_or(0) != if_id {
        return Some("if_id");
    }
    None
}

/// A template as the kernel resolves it for one packet (xfrm_tmpl_resolve_one): tunnel and
/// BEET templates name their endpoints, a transport-mode template takes the packet's own.
pub fn resolve_template(t: &Template, src: IpAddr, dst: IpAddr) -> Template {
    if matches!(t.mode, XfrmMode::Tunnel | XfrmMode::Beet) {
        return t.clone();
    }
    Template {
        src: src.to_string(),
        dst: dst.to_string(),
        ..t.clone()
    }
}

/// The SA a template selects for a packet carrying `mark`, looked up with `if_id`
/// (xfrm_state_find).
pub fn find_sa(st: &NodeState, t: &Template, mark: u32, if_id: u32) -> Option<usize> {
    st.xfrm_states
        .iter()
        .position(|sa| sa_mismatch(sa, t, mark, if_id).is_none())
}

/// The inbound SA an ESP packet finds (xfrm_state_lookup: dst, SPI, proto, mark).
pub fn find_inbound_sa(
    st: &NodeState,
    dst: &IpAddr,
    spi: u32,
    proto: XfrmProto,
    mark: u32,
) -> Option<usize> {
    st.xfrm_states.iter().position(|sa| {
        sa.spi == spi
            && sa.proto == proto
            && sa.dst.parse::<IpAddr>().is_ok_and(|d| d == *dst)
            && mark_matches(&sa.mark, mark)
    })
}

/// The skb mark after an SA's output mark (XFRMA_SET_MARK) is applied.
pub fn apply_output_mark(mark: u32, out: Option<Mark>) -> u32 {
    match out {
        Some(m) => (mark & !m.mask) | (m.value & m.mask),
        None => mark,
    }
}

pub fn describe_policy(p: &XfrmPolicy) -> String {
    let mark = p
        .mark
        .map(|m| format!(" mark {}", crate::explain::labels::mark(&m)))
        .unwrap_or_default();
    format!(
        "policy {} {} priority {}{mark} (index {})",
        p.dir, p.selector, p.priority, p.index
    )
}

pub fn describe_sa(s: &XfrmState) -> String {
    let mark = s
        .mark
        .map(|m| format!(" mark {}", crate::explain::labels::mark(&m)))
        .unwrap_or_default();
    format!(
        "SA {} → {} {} spi {:#010x} reqid {}{mark}",
        s.src, s.dst, s.proto, s.spi, s.reqid
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fixtures::seed_worker;

    fn key(src: &str, dst: &str, mark: u32) -> XfrmKey {
        XfrmKey {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: 1,
            sport: None,
            dport: None,
            mark,
            if_id: 0,
        }
    }

    #[test]
    fn out_policy_needs_the_encrypt_mark() {
        let st = seed_worker();
        let c = choose_policy(
            &st,
            PolicyDir::Out,
            &key("10.0.1.52", "10.0.0.249", 0x3e00),
            None,
        );
        assert_eq!(c.chosen, Some(1));
        let c = choose_policy(
            &st,
            PolicyDir::Out,
            &key("10.0.1.52", "10.0.0.249", 0xe00),
            None,
        );
        assert_eq!(c.chosen, None, "0xe00 & 0xff00 != 0x3e00");
        assert!(
            c.candidates
                .iter()
                .any(|c| c.index == 1 && c.selector_ok && !c.mark_ok)
        );
    }

    #[test]
    fn a_policy_with_if_id_matches_only_lookups_with_that_if_id() {
        let mut st = seed_worker();
        st.xfrm_policies[1].if_id = Some(42);
        let k = key("10.0.1.52", "10.0.0.249", 0x3e00);
        assert_eq!(choose_policy(&st, PolicyDir::Out, &k, None).chosen, None);
        let k42 = XfrmKey { if_id: 42, ..k };
        assert_eq!(
            choose_policy(&st, PolicyDir::Out, &k42, None).chosen,
            Some(1)
        );
    }

    #[test]
    fn lowest_priority_wins() {
        let mut st = seed_worker();
        let mut better = st.xfrm_policies[1].clone();
        better.priority = 0;
        st.xfrm_policies[1].priority = 10;
        st.xfrm_policies.push(better);
        let c = choose_policy(
            &st,
            PolicyDir::Out,
            &key("10.0.1.52", "10.0.0.249", 0x3e00),
            None,
        );
        assert_eq!(c.chosen, Some(st.xfrm_policies.len() - 1));
        assert_eq!(
            c.candidates.len(),
            3,
            "the other out policy matches by mark only"
        );
    }

    #[test]
    fn template_selects_sa_by_dst_spi_reqid_and_mark() {
        let st = seed_worker();
        let t = &st.xfrm_policies[1].templates[0];
        assert_eq!(find_sa(&st, t, 0x3e00, 0), Some(1));
        assert_eq!(find_sa(&st, t, 0x4e00, 0), None);
        assert_eq!(sa_mismatch(&st.xfrm_states[0], t, 0x3e00, 0), Some("dst"));
        assert_eq!(
            find_sa(&st, t, 0x3e00, 42),
            None,
            "an if_id lookup skips SAs without it"
        );
    }

    #[test]
    fn transport_template_takes_the_packets_addresses() {
        let mut st = seed_worker();
        let mut t = st.xfrm_policies[1].templates[0].clone();
        (t.src, t.dst, t.mode) = ("0.0.0.0".into(), "0.0.0.0".into(), XfrmMode::Transport);
        st.xfrm_states[1].mode = XfrmMode::Transport;
        let (src, dst) = ("10.0.1.138".parse().unwrap(), "10.0.0.40".parse().unwrap());
        assert_eq!(find_sa(&st, &t, 0x3e00, 0), None, "unresolved: dst 0.0.0.0");
        let r = resolve_template(&t, src, dst);
        assert_eq!(find_sa(&st, &r, 0x3e00, 0), Some(1));
        // a tunnel template keeps its own endpoints
        let tun = &st.xfrm_policies[1].templates[0];
        assert_eq!(resolve_template(tun, dst, src), *tun);
    }

    #[test]
    fn inbound_sa_by_spi_dst_and_decrypt_mark() {
        let st = seed_worker();
        let dst: IpAddr = "10.0.1.138".parse().unwrap();
        assert_eq!(
            find_inbound_sa(&st, &dst, 3, XfrmProto::Esp, 0xd00),
            Some(2)
        );
        assert_eq!(
            find_inbound_sa(&st, &dst, 3, XfrmProto::Esp, 0),
            None,
            "without Cilium's decrypt mark: XfrmInNoStates"
        );
        assert_eq!(find_inbound_sa(&st, &dst, 4, XfrmProto::Esp, 0xd00), None);
    }

    #[test]
    fn output_mark_replaces_masked_bits() {
        assert_eq!(
            apply_output_mark(
                0x3e00,
                Some(Mark {
                    value: 0xe00,
                    mask: 0xf00
                })
            ),
            0x3e00
        );
        assert_eq!(
            apply_output_mark(
                0x3d00,
                Some(Mark {
                    value: 0xe00,
                    mask: 0xf00
                })
            ),
            0x3e00
        );
        assert_eq!(apply_output_mark(0x12, None), 0x12);
    }
}
