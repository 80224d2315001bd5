//! The kernel's XFRM lookups, re-run over a node's own SAD and SPD, returning not just
//! found/not found but, on a miss, the nearest object and the field that differs:
//! - inbound SA: xfrm_state_lookup (daddr, SPI, proto, mark);
//! - inbound policy check: __xfrm_policy_check (in/fwd policy by selector, mark, priority;
//!   every tunnel-mode SA the packet was decrypted by must match a template, xfrm_state_ok);
//! - outbound: xfrm_lookup (out policy by selector, mark, priority; template → SA by
//!   xfrm_state_find's fields) and the sequence number (xfrm_output's overflow check).
//!
//! Marks that are not visible in the node's state (`None`) are assumed to be what the object
//! wants: such a lookup can only fail on fields we do see.

use super::node::{NodeView, ip, is_any, is_block};
use crate::model::{Family, PolicyDir, Template, TemplateLevel, XfrmMode, XfrmProto, XfrmState};
use crate::trace::xfrm::{XfrmKey, selector_matches};
use std::net::IpAddr;

/// The field of the nearest candidate that made the lookup miss it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Near {
    pub index: usize,
    pub field: &'static str,
    /// The candidate's value and the value the lookup needed.
    pub has: String,
    pub wants: String,
}

fn mark_ok(m: &Option<crate::model::Mark>, mark: Option<u32>) -> bool {
    match (m, mark) {
        (Some(m), Some(v)) => m.matches(v),
        _ => true,
    }
}

fn mark_text(m: &Option<crate::model::Mark>) -> String {
    m.map_or("none".into(), |m| format!("{:#x}/{:#x}", m.value, m.mask))
}

fn mark_val(v: Option<u32>) -> String {
    v.map_or("unknown".into(), |v| format!("{v:#x}"))
}

// ------------------------------------------------------------------------------- inbound SA

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InSa {
    Found(usize),
    /// No SA has this (daddr, SPI, proto) at all.
    Missing {
        nearest: Option<Near>,
    },
    /// SAs with this (daddr, SPI, proto) exist, but none takes the packet's mark.
    MarkMismatch {
        sa: usize,
        arrival: Option<u32>,
    },
}

/// xfrm_state_lookup: `arrival` None = the mark is not visible (assumed to match).
pub fn inbound_sa(
    v: &NodeView,
    dst: IpAddr,
    spi: u32,
    proto: XfrmProto,
    arrival: Option<u32>,
) -> InSa {
    let st = v.st;
    let to_dst = v.sa_by_dst.get(&dst).map_or(&[][..], |s| s.as_slice());
    let same: Vec<usize> = to_dst
        .iter()
        .copied()
        .filter(|&i| {
            let s = &st.xfrm_states[i];
            s.spi == spi && s.proto == proto
        })
        .collect();
    if let Some(&i) = same
        .iter()
        .find(|&&i| mark_ok(&st.xfrm_states[i].mark, arrival))
    {
        return InSa::Found(i);
    }
    if let Some(&sa) = same.first() {
        return InSa::MarkMismatch { sa, arrival };
    }
    // Nearest: same destination, other SPI; else same SPI, other destination.
    let nearest = to_dst
        .iter()
        .map(|&i| (i, &st.xfrm_states[i]))
        .find_map(|(i, s)| {
            (s.proto == proto).then(|| Near {
                index: i,
                field: "spi",
                has: format!("{:#x}", s.spi),
                wants: format!("{spi:#x}"),
            })
        })
        .or_else(|| {
            st.xfrm_states.iter().enumerate().find_map(|(i, s)| {
                (s.spi == spi && s.proto == proto).then(|| Near {
                    index: i,
                    field: "dst",
                    has: s.dst.to_string(),
                    wants: dst.to_string(),
                })
            })
        });
    InSa::Missing { nearest }
}

// ---------------------------------------------------------------------------- policy lookup

/// A packet as policy lookup sees it: addresses, protocol, mark (None: not visible), and the
/// if_id of the xfrm interface it is sent into or received on (0: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub dport: Option<u16>,
    pub mark: Option<u32>,
    pub if_id: u32,
}

impl Packet {
    fn key(&self) -> XfrmKey {
        XfrmKey {
            src: self.src,
            dst: self.dst,
            proto: self.proto,
            sport: None,
            dport: self.dport,
            mark: self.mark.unwrap_or(0),
            if_id: self.if_id,
        }
    }
}

/// The policy the kernel picks (lowest priority among full matches, the first on a tie),
/// or the nearest one and what differs.
pub fn choose_policy(v: &NodeView, d: PolicyDir, pkt: &Packet) -> Result<usize, Option<Near>> {
    let k = pkt.key();
    let mut best: Option<(usize, u32)> = None;
    let mut near: Option<(u8, Near)> = None;
    for &i in v.policies(d) {
        let p = &v.st.xfrm_policies[i];
        if p.selector.src.family() != Family::of(&pkt.src) {
            continue;
        }
        let sel = selector_matches(&p.selector, &k, None);
        // xfrm_policy_match: the policy's if_id must equal the lookup's, like its mark.
        let if_id = p.if_id.unwrap_or(0) == pkt.if_id;
        let mark = mark_ok(&p.mark, pkt.mark) && if_id;
        if sel && mark {
            if best.is_none_or(|(_, prio)| p.priority < prio) {
                best = Some((i, p.priority));
            }
            continue;
        }
        // Rank the misses: a mark-only miss is nearer than a selector miss.
        let rank = if sel {
            0
        } else if !p.selector.dst.contains(&pkt.dst) && !p.selector.src.contains(&pkt.src) {
            2
        } else {
            1
        };
        if near.as_ref().is_some_and(|(r, _)| *r <= rank) {
            continue;
        }
        let cand = if sel && !if_id {
            (
                0,
                Near {
                    index: i,
                    field: "if_id",
                    has: p.if_id.unwrap_or(0).to_string(),
                    wants: pkt.if_id.to_string(),
                },
            )
        } else if sel {
            (
                0,
                Near {
                    index: i,
                    field: "mark",
                    has: mark_text(&p.mark),
                    wants: mark_val(pkt.mark),
                },
            )
        } else if !p.selector.dst.contains(&pkt.dst) {
            (
                if p.selector.src.contains(&pkt.src) {
                    1
                } else {
                    2
                },
                Near {
                    index: i,
                    field: "dst",
                    has: p.selector.dst.to_string(),
                    wants: pkt.dst.to_string(),
                },
            )
        } else if !p.selector.src.contains(&pkt.src) {
            (
                1,
                Near {
                    index: i,
                    field: "src",
                    has: p.selector.src.to_string(),
                    wants: pkt.src.to_string(),
                },
            )
        } else {
            (
                1,
                Near {
                    index: i,
                    field: "selector",
                    has: super::ipfmt::selector(&p.selector),
                    wants: format!("proto {}", pkt.proto),
                },
            )
        };
        if near.as_ref().is_none_or(|(r, _)| cand.0 < *r) {
            near = Some(cand);
        }
    }
    best.map(|(i, _)| i).ok_or(near.map(|(_, n)| n))
}

// ------------------------------------------------------------------------ inbound policy check

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolCheck {
    Pass {
        policy: usize,
    },
    /// XfrmInNoPols: no in/fwd policy, and the packet came through a tunnel-mode SA.
    NoPolicy {
        nearest: Option<Near>,
    },
    /// XfrmInPolBlock.
    Block {
        policy: usize,
    },
    /// XfrmInTmplMismatch: the SA that decrypted it matches no template of the policy.
    TmplMismatch {
        policy: usize,
        near: Option<Near>,
    },
}

/// xfrm_state_ok: does the SA `x` satisfy template `t` on input? Else the first field off.
fn state_ok(t: &Template, x: &XfrmState) -> Result<(), (&'static str, String, String)> {
    let f = |field, has: String, wants: String| Err((field, has, wants));
    if x.proto != t.proto {
        return f("proto", x.proto.to_string(), t.proto.to_string());
    }
    if t.spi != 0 && x.spi != t.spi {
        return f("spi", format!("{:#x}", x.spi), format!("{:#x}", t.spi));
    }
    if t.reqid != 0 && x.reqid != t.reqid {
        return f("reqid", x.reqid.to_string(), t.reqid.to_string());
    }
    if x.mode != t.mode {
        return f("mode", x.mode.to_string(), t.mode.to_string());
    }
    if x.mode != XfrmMode::Transport {
        if ip(&x.dst) != ip(&t.dst) {
            return f("dst", x.dst.to_string(), t.dst.to_string());
        }
        if !is_any(&t.src) && ip(&x.src) != ip(&t.src) {
            return f("src", x.src.to_string(), t.src.to_string());
        }
    }
    Ok(())
}

/// __xfrm_policy_check for a packet decrypted by SA `sa` (one tunnel-mode SA in its secpath).
pub fn policy_check(v: &NodeView, d: PolicyDir, pkt: &Packet, sa: usize) -> PolCheck {
    let st = v.st;
    let policy = match choose_policy(v, d, pkt) {
        Ok(p) => p,
        Err(nearest) => {
            let tunnel = st.xfrm_states[sa].mode != XfrmMode::Transport;
            // Without a tunnel-mode transform in its path the kernel lets it through.
            return if tunnel {
                PolCheck::NoPolicy { nearest }
            } else {
                PolCheck::Pass { policy: usize::MAX }
            };
        }
    };
    let p = &st.xfrm_policies[policy];
    if is_block(p) {
        return PolCheck::Block { policy };
    }
    let x = &st.xfrm_states[sa];
    // The templates are matched against the secpath; a tunnel-mode SA left unmatched rejects
    // the packet even where every template is optional (`level use`).
    let mut first_miss = None;
    for t in p.templates.iter().rev() {
        match state_ok(t, x) {
            Ok(()) => return PolCheck::Pass { policy },
            Err((field, has, wants)) => {
                first_miss.get_or_insert(Near {
                    index: sa,
                    field,
                    has,
                    wants,
                });
                let optional = t.level == TemplateLevel::Use;
                if optional && t.mode == XfrmMode::Transport {
                    continue;
                }
                if !optional {
                    break;
                }
            }
        }
    }
    if x.mode == XfrmMode::Transport && p.templates.iter().all(|t| t.level == TemplateLevel::Use) {
        return PolCheck::Pass { policy };
    }
    PolCheck::TmplMismatch {
        policy,
        near: first_miss,
    }
}

// ------------------------------------------------------------------------------- outbound

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// No out policy: the packet leaves unencrypted.
    Plain {
        nearest: Option<Near>,
    },
    /// XfrmOutPolBlock.
    Block {
        policy: usize,
    },
    /// XfrmOutNoStates: a template no SA serves.
    NoState {
        policy: usize,
        tmpl: usize,
        nearest: Option<Near>,
    },
    /// XfrmOutStateSeqError: the SA's 32-bit sequence number is used up (no ESN).
    SeqExhausted {
        policy: usize,
        sa: usize,
    },
    /// XfrmOutStateModeError: the SA cannot carry this packet's family.
    ModeError {
        policy: usize,
        sa: usize,
    },
    Encrypted {
        policy: usize,
        sas: Vec<usize>,
    },
}

/// The fields xfrm_state_find compares, in order; the first that differs. The SA must carry
/// the if_id the policy was found with (the packet's).
fn tmpl_miss(x: &XfrmState, t: &Template, pkt: &Packet) -> Option<(&'static str, String, String)> {
    let want_src = if is_any(&t.src) {
        Some(pkt.src)
    } else {
        ip(&t.src)
    };
    let checks: [(&'static str, bool, String, String); 9] = [
        (
            "proto",
            x.proto == t.proto,
            x.proto.to_string(),
            t.proto.to_string(),
        ),
        (
            "dst",
            ip(&x.dst) == ip(&t.dst),
            x.dst.to_string(),
            t.dst.to_string(),
        ),
        (
            "src",
            ip(&x.src) == want_src,
            x.src.to_string(),
            want_src.map_or("?".into(), |a| a.to_string()),
        ),
        (
            "spi",
            t.spi == 0 || x.spi == t.spi,
            format!("{:#x}", x.spi),
            format!("{:#x}", t.spi),
        ),
        (
            "reqid",
            t.reqid == 0 || x.reqid == t.reqid,
            x.reqid.to_string(),
            t.reqid.to_string(),
        ),
        (
            "mode",
            x.mode == t.mode,
            x.mode.to_string(),
            t.mode.to_string(),
        ),
        (
            "mark",
            mark_ok(&x.mark, pkt.mark),
            mark_text(&x.mark),
            mark_val(pkt.mark),
        ),
        (
            "if_id",
            x.if_id.unwrap_or(0) == pkt.if_id,
            x.if_id.unwrap_or(0).to_string(),
            pkt.if_id.to_string(),
        ),
        (
            "sel",
            x.selector.src.family() != Family::of(&pkt.src)
                || selector_matches(&x.selector, &pkt.key(), None),
            super::ipfmt::selector(&x.selector),
            format!("{} → {}", pkt.src, pkt.dst),
        ),
    ];
    checks
        .into_iter()
        .find(|c| !c.1)
        .map(|(f, _, h, w)| (f, h, w))
}

/// xfrm_lookup for a locally sent or forwarded packet.
pub fn outbound(v: &NodeView, pkt: &Packet) -> Out {
    let st = v.st;
    let policy = match choose_policy(v, PolicyDir::Out, pkt) {
        Ok(p) => p,
        Err(nearest) => return Out::Plain { nearest },
    };
    let p = &st.xfrm_policies[policy];
    if is_block(p) {
        return Out::Block { policy };
    }
    let mut sas = Vec::new();
    for (ti, t) in p.templates.iter().enumerate() {
        let found = ip(&t.dst).and_then(|d| v.sa_by_dst.get(&d)).and_then(|c| {
            c.iter()
                .copied()
                .find(|&i| tmpl_miss(&st.xfrm_states[i], t, pkt).is_none())
        });
        let Some(sa) = found else {
            if t.level == TemplateLevel::Use {
                continue;
            }
            // Nearest: the SA with the fewest fields off… ranked by the first one that is.
            let order = [
                "mark", "if_id", "reqid", "spi", "mode", "sel", "src", "dst", "proto",
            ];
            let nearest = st
                .xfrm_states
                .iter()
                .enumerate()
                .filter_map(|(i, x)| {
                    let (field, has, wants) = tmpl_miss(x, t, pkt)?;
                    let rank = order.iter().position(|f| *f == field).unwrap_or(9);
                    Some((
                        rank,
                        Near {
                            index: i,
                            field,
                            has,
                            wants,
                        },
                    ))
                })
                .min_by_key(|(r, _)| *r)
                .map(|(_, n)| n);
            return Out::NoState {
                policy,
                tmpl: ti,
                nearest,
            };
        };
        let x = &st.xfrm_states[sa];
        if !x.esn && x.oseq == u32::MAX {
            return Out::SeqExhausted { policy, sa };
        }
        if x.selector.src.family() != Family::of(&pkt.src) {
            return Out::ModeError { policy, sa };
        }
        sas.push(sa);
    }
    Out::Encrypted { policy, sas }
}
