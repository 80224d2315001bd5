//! XFRM SAs, policies and SAD/SPD counts over NETLINK_XFRM (netlink-packet-xfrm decodes),
//! converted into the model. Pure conversions, tested on captured bytes.

use super::names::ip_proto;
use super::netlink::{DumpReport, NlError, NlSocket};
use crate::model::{
    AlgInfo, Encap, Lifetime, Mark, Prefix, Secret, Selector, Template, XfrmCounts, XfrmPolicy,
    XfrmSaStats, XfrmState,
};
use netlink_packet_xfrm::policy::{
    DelGetMessage as PolicyGet, GetSpdInfoMessage, ModifyMessage as PolicyMsg,
};
use netlink_packet_xfrm::state::{GetDumpMessage, GetSadInfoMessage, ModifyMessage as StateMsg};
use netlink_packet_xfrm::{
    Address, XfrmAttrs, XfrmMessage, constants as c, policy::spdinfo::SpdInfoAttrs,
    state::sadinfo::SadInfoAttrs,
};
use std::net::IpAddr;

/// SAs, policies and counts, converted while read (10k policies are not held twice).
#[derive(Default)]
pub struct XfrmDump {
    pub states: Vec<XfrmState>,
    pub policies: Vec<XfrmPolicy>,
    pub counts: XfrmCounts,
    pub reports: Vec<(&'static str, DumpReport)>,
}

/// `dev` names an ifindex found in a selector.
pub fn dump_all(
    sock: &mut NlSocket,
    dev: impl Fn(i32) -> Option<String>,
) -> Result<XfrmDump, NlError> {
    let mut d = XfrmDump::default();
    let r = sock.dump(XfrmMessage::GetDumpSa(GetDumpMessage::default()), |m| {
        if let XfrmMessage::AddSa(s) = m {
            d.states.push(state(&s, &dev))
        }
    })?;
    d.reports.push(("xfrm states", r));
    let r = sock.dump(XfrmMessage::GetPolicy(PolicyGet::default()), |m| {
        if let XfrmMessage::AddPolicy(p) = m {
            d.policies.push(policy(&p, &dev))
        }
    })?;
    d.reports.push(("xfrm policies", r));
    // The counts are informative; a kernel without them must not fail the snapshot.
    let _ = sock.get(XfrmMessage::GetSadInfo(GetSadInfoMessage::default()), |m| {
        if let XfrmMessage::NewSadInfo(info) = m {
            for a in info.nlas {
                if let SadInfoAttrs::SadCount(n) = a {
                    d.counts.sad = Some(n);
                }
            }
        }
    });
    let _ = sock.get(XfrmMessage::GetSpdInfo(GetSpdInfoMessage::default()), |m| {
        if let XfrmMessage::NewSpdInfo(info) = m {
            for a in info.nlas {
                if let SpdInfoAttrs::SpdInfo(s) = a {
                    for (k, v) in [
                        ("in", s.incnt),
                        ("out", s.outcnt),
                        ("fwd", s.fwdcnt),
                        ("in_socket", s.inscnt),
                        ("out_socket", s.outscnt),
                        ("fwd_socket", s.fwdscnt),
                    ] {
                        d.counts.spd.insert(k.into(), v);
                    }
                }
            }
        }
    });
    Ok(d)
}

fn family_ip(family: u16, a: &Address) -> IpAddr {
    if family == c::AF_INET6 {
        IpAddr::V6(a.to_ipv6())
    } else {
        IpAddr::V4(a.to_ipv4())
    }
}

pub fn mode_name(m: u8) -> String {
    match m {
        c::XFRM_MODE_TRANSPORT => "transport".into(),
        c::XFRM_MODE_TUNNEL => "tunnel".into(),
        c::XFRM_MODE_ROUTEOPTIMIZATION => "ro".into(),
        c::XFRM_MODE_IN_TRIGGER => "in_trigger".into(),
        c::XFRM_MODE_BEET => "beet".into(),
        n => n.to_string(),
    }
}

fn state_flags(f: u8) -> Vec<String> {
    [
        (c::XFRM_STATE_NOECN, "noecn"),
        (c::XFRM_STATE_DECAP_DSCP, "decap-dscp"),
        (c::XFRM_STATE_NOPMTUDISC, "nopmtudisc"),
        (c::XFRM_STATE_WILDRECV, "wildrecv"),
        (c::XFRM_STATE_ICMP, "icmp"),
        (c::XFRM_STATE_AF_UNSPEC, "af-unspec"),
        (c::XFRM_STATE_ALIGN4, "align4"),
        (c::XFRM_STATE_ESN, "esn"),
    ]
    .iter()
    .filter(|(bit, _)| f & bit != 0)
    .map(|(_, n)| n.to_string())
    .collect()
}

fn selector(s: &netlink_packet_xfrm::Selector, dev: impl Fn(i32) -> Option<String>) -> Selector {
    let fam = if s.family == 0 { c::AF_INET } else { s.family };
    Selector {
        src: Prefix::new(family_ip(fam, &s.saddr), s.prefixlen_s),
        dst: Prefix::new(family_ip(fam, &s.daddr), s.prefixlen_d),
        proto: (s.proto != 0).then_some(s.proto),
        sport: (s.sport_mask != 0).then_some(s.sport),
        dport: (s.dport_mask != 0).then_some(s.dport),
        dev: (s.ifindex != 0).then(|| dev(s.ifindex).unwrap_or_else(|| format!("if{}", s.ifindex))),
    }
}

fn c_name(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The kernel's key length is in bits; keep exactly that many bytes of key.
fn key(bits: u32, bytes: &[u8]) -> Secret {
    let n = (bits as usize).div_ceil(8).min(bytes.len());
    Secret::new(bytes[..n].to_vec())
}

fn lifetime(l: &netlink_packet_xfrm::Lifetime) -> Lifetime {
    Lifetime {
        bytes: l.bytes,
        packets: l.packets,
        add_time: l.add_time,
        use_time: l.use_time,
    }
}

pub fn state(m: &StateMsg, dev: impl Fn(i32) -> Option<String>) -> XfrmState {
    let i = &m.user_sa_info;
    let mut s = XfrmState {
        src: family_ip(i.family, &i.saddr).to_string(),
        dst: family_ip(i.family, &i.id.daddr).to_string(),
        proto: ip_proto(i.id.proto),
        spi: i.id.spi,
        reqid: i.reqid,
        mode: mode_name(i.mode),
        flags: state_flags(i.flags),
        replay_window: u32::from(i.replay_window),
        esn: i.flags & c::XFRM_STATE_ESN != 0,
        seq: 0,
        oseq: 0,
        mark: None,
        output_mark: None,
        if_id: None,
        aead: None,
        enc: None,
        auth: None,
        encap: None,
        selector: selector(&i.selector, &dev),
        lifetime: lifetime(&i.lifetime_cur),
        stats: XfrmSaStats {
            replay_window: i.stats.replay_window,
            replay: i.stats.replay,
            integrity_failed: i.stats.integrity_failed,
        },
    };
    let (mut set_mark, mut set_mask) = (None, None);
    for a in &m.nlas {
        match a {
            XfrmAttrs::Mark(mk) => {
                s.mark = Some(Mark {
                    value: mk.value,
                    mask: mk.mask,
                })
            }
            XfrmAttrs::MarkVal(v) => set_mark = Some(*v),
            XfrmAttrs::MarkMask(v) => set_mask = Some(*v),
            XfrmAttrs::IfId(v) => s.if_id = Some(*v),
            XfrmAttrs::ReplayState(r) => {
                s.seq = r.seq;
                s.oseq = r.oseq;
            }
            XfrmAttrs::ReplayStateEsn(r) => {
                s.seq = r.seq;
                s.oseq = r.oseq;
                s.replay_window = r.replay_window;
            }
            XfrmAttrs::EncryptionAlgAead(a) => {
                s.aead = Some(AlgInfo {
                    name: c_name(&a.alg_name),
                    key_bits: a.alg_key_len,
                    icv_bits: Some(a.alg_icv_len),
                    trunc_bits: None,
                    key: key(a.alg_key_len, &a.alg_key),
                })
            }
            XfrmAttrs::EncryptionAlg(a) => {
                s.enc = Some(AlgInfo {
                    name: c_name(&a.alg_name),
                    key_bits: a.alg_key_len,
                    icv_bits: None,
                    trunc_bits: None,
                    key: key(a.alg_key_len, &a.alg_key),
                })
            }
            // The truncated form carries the real truncation length; prefer it.
            XfrmAttrs::AuthenticationAlgTrunc(a) => {
                s.auth = Some(AlgInfo {
                    name: c_name(&a.alg_name),
                    key_bits: a.alg_key_len,
                    icv_bits: None,
                    trunc_bits: Some(a.alg_trunc_len),
                    key: key(a.alg_key_len, &a.alg_key),
                })
            }
            XfrmAttrs::AuthenticationAlg(a) if s.auth.is_none() => {
                s.auth = Some(AlgInfo {
                    name: c_name(&a.alg_name),
                    key_bits: a.alg_key_len,
                    icv_bits: None,
                    trunc_bits: None,
                    key: key(a.alg_key_len, &a.alg_key),
                })
            }
            XfrmAttrs::EncapsulationTemplate(e) => {
                s.encap = Some(Encap {
                    kind: match e.encap_type {
                        1 => "espinudp-nonike".into(),
                        2 => "espinudp".into(),
                        7 => "espintcp".into(),
                        n => n.to_string(),
                    },
                    sport: e.encap_sport,
                    dport: e.encap_dport,
                    oa: (e.encap_oa.addr != [0; 16])
                        .then(|| family_ip(i.family, &e.encap_oa).to_string()),
                })
            }
            _ => {}
        }
    }
    // Output mark (XFRMA_SET_MARK); the kernel omits the mask when it is all ones.
    if let Some(v) = set_mark {
        s.output_mark = Some(Mark {
            value: v,
            mask: set_mask.unwrap_or(u32::MAX),
        });
    }
    s
}

pub fn dir_name(d: u8) -> String {
    match d {
        c::XFRM_POLICY_IN => "in".into(),
        c::XFRM_POLICY_OUT => "out".into(),
        c::XFRM_POLICY_FWD => "fwd".into(),
        n => n.to_string(),
    }
}

pub fn policy(m: &PolicyMsg, dev: impl Fn(i32) -> Option<String>) -> XfrmPolicy {
    let i = &m.user_policy_info;
    let mut p = XfrmPolicy {
        dir: dir_name(i.direction),
        priority: i.priority,
        action: if i.action == c::XFRM_POLICY_BLOCK {
            "block".into()
        } else {
            "allow".into()
        },
        index: i.index,
        selector: selector(&i.selector, &dev),
        mark: None,
        if_id: None,
        templates: Vec::new(),
        lifetime: lifetime(&i.lifetime_cur),
    };
    for a in &m.nlas {
        match a {
            XfrmAttrs::Mark(mk) => {
                p.mark = Some(Mark {
                    value: mk.value,
                    mask: mk.mask,
                })
            }
            XfrmAttrs::IfId(v) => p.if_id = Some(*v),
            XfrmAttrs::Template(ts) => {
                p.templates = ts
                    .iter()
                    .map(|t| Template {
                        src: family_ip(t.family, &t.saddr).to_string(),
                        dst: family_ip(t.family, &t.id.daddr).to_string(),
                        proto: ip_proto(t.id.proto),
                        spi: t.id.spi,
                        reqid: t.reqid,
                        mode: mode_name(t.mode),
                        level: if t.optional != 0 {
                            "use".into()
                        } else {
                            "required".into()
                        },
                    })
                    .collect()
            }
            _ => {}
        }
    }
    p
}
