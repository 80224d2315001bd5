//! Connection tracking entries of the calling thread's netns, read-only: a ctnetlink dump
//! (IPCTNL_MSG_CT_GET with NLM_F_DUMP, as `conntrack -L` does), else /proc/net/nf_conntrack.
//! Used by `trace` to follow the entry of an established flow.
//!
//! Why not /proc first: its walk is restarted at every read() from a position (a count of
//! entries), so entries removed in between shift it and the next one can be skipped; the
//! entries it reaps itself on the way (expired ones) did so until a 2025 kernel fix. ctnetlink
//! resumes from the last entry it sent, held by a reference, and flags an inconsistent dump
//! (NLM_F_DUMP_INTR), which becomes a warning.

use super::ipvs::{attrs, fixed};
use super::netlink::{Family, NlSocket};
use crate::model::Conntrack;
use netlink_packet_core::{DecodeError, NetlinkDeserializable, NetlinkHeader, NetlinkSerializable};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET (the request) and IPCTNL_MSG_CT_NEW (each
/// entry of the answer).
const CT_GET: u16 = 1 << 8 | 1;
const CT_NEW: u16 = 1 << 8;
/// The nfgenmsg header every ctnetlink message starts with: family, version, res_id.
const NFGENMSG_LEN: usize = 4;
// enum ctattr_type.
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_PROTOINFO: u16 = 4;
const CTA_TIMEOUT: u16 = 7;
const CTA_MARK: u16 = 8;
const CTA_USE: u16 = 11;
const CTA_ZONE: u16 = 18;
// enum ctattr_tuple, ctattr_ip, ctattr_l4proto.
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTO_ICMP_ID: u16 = 4;
const CTA_PROTO_ICMP_TYPE: u16 = 5;
const CTA_PROTO_ICMP_CODE: u16 = 6;
const CTA_PROTO_ICMPV6_ID: u16 = 7;
const CTA_PROTO_ICMPV6_TYPE: u16 = 8;
const CTA_PROTO_ICMPV6_CODE: u16 = 9;
// ctattr_protoinfo / ctattr_protoinfo_tcp.
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
// enum ip_conntrack_status bits.
const IPS_SEEN_REPLY: u32 = 1 << 1;
const IPS_ASSURED: u32 = 1 << 2;
const IPS_OFFLOAD: u32 = 1 << 14;

/// A ctnetlink message: the dump request this module sends, or one entry of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtMsg {
    /// Dump every entry of the netns, both families.
    DumpAll,
    /// One entry, or why it could not be read.
    Entry(Result<Conntrack, String>),
    /// A message type this module never asks for.
    Other(u16),
}

impl NetlinkSerializable for CtMsg {
    fn message_type(&self) -> u16 {
        CT_GET
    }
    fn buffer_len(&self) -> usize {
        NFGENMSG_LEN
    }
    fn serialize(&self, buffer: &mut [u8]) {
        // AF_UNSPEC: IPv4 and IPv6 entries; version NFNETLINK_V0; res_id 0.
        buffer[..NFGENMSG_LEN].fill(0);
    }
}

impl NetlinkDeserializable for CtMsg {
    type Error = DecodeError;
    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        if header.message_type != CT_NEW {
            return Ok(CtMsg::Other(header.message_type));
        }
        Ok(CtMsg::Entry(match payload {
            [family, _, _, _, rest @ ..] => entry(*family, rest),
            _ => Err("ctnetlink message shorter than its nfgenmsg header".into()),
        }))
    }
}

impl Family for CtMsg {
    fn min_payload(_kind: u16) -> usize {
        NFGENMSG_LEN
    }
}

/// One direction's tuple: addresses and either ports or ICMP type/code/id.
#[derive(Debug, Default)]
struct Tuple {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    proto: Option<u8>,
    sport: Option<u16>,
    dport: Option<u16>,
    icmp: [Option<u16>; 3],
}

fn be16(v: &[u8], what: &str) -> Result<u16, String> {
    fixed::<2>(v, what).map(u16::from_be_bytes)
}

fn be32(v: &[u8], what: &str) -> Result<u32, String> {
    fixed::<4>(v, what).map(u32::from_be_bytes)
}

fn tuple(buf: &[u8]) -> Result<Tuple, String> {
    let mut t = Tuple::default();
    for (k, v) in attrs(buf)? {
        match k {
            CTA_TUPLE_IP => {
                for (k, v) in attrs(v)? {
                    let a = match k {
                        CTA_IP_V4_SRC | CTA_IP_V4_DST => {
                            IpAddr::V4(Ipv4Addr::from(fixed::<4>(v, "IPv4 address")?))
                        }
                        CTA_IP_V6_SRC | CTA_IP_V6_DST => {
                            IpAddr::V6(Ipv6Addr::from(fixed::<16>(v, "IPv6 address")?))
                        }
                        _ => continue,
                    };
                    if matches!(k, CTA_IP_V4_SRC | CTA_IP_V6_SRC) {
                        t.src = Some(a);
                    } else {
                        t.dst = Some(a);
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (k, v) in attrs(v)? {
                    match k {
                        CTA_PROTO_NUM => t.proto = Some(fixed::<1>(v, "protocol")?[0]),
                        CTA_PROTO_SRC_PORT => t.sport = Some(be16(v, "source port")?),
                        CTA_PROTO_DST_PORT => t.dport = Some(be16(v, "destination port")?),
                        CTA_PROTO_ICMP_TYPE | CTA_PROTO_ICMPV6_TYPE => {
                            t.icmp[0] = Some(fixed::<1>(v, "icmp type")?[0].into())
                        }
                        CTA_PROTO_ICMP_CODE | CTA_PROTO_ICMPV6_CODE => {
                            t.icmp[1] = Some(fixed::<1>(v, "icmp code")?[0].into())
                        }
                        CTA_PROTO_ICMP_ID | CTA_PROTO_ICMPV6_ID => {
                            t.icmp[2] = Some(be16(v, "icmp id")?)
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(t)
}

/// `src=… dst=… sport=… dport=…` (or `type=… code=… id=…`), as /proc and `conntrack -L`.
fn tuple_text(t: &Tuple) -> String {
    let mut s = format!(
        "src={} dst={}",
        t.src.map_or("?".into(), |a| a.to_string()),
        t.dst.map_or("?".into(), |a| a.to_string())
    );
    for (k, v) in [("sport", t.sport), ("dport", t.dport)]
        .into_iter()
        .chain(["type", "code", "id"].into_iter().zip(t.icmp))
    {
        if let Some(v) = v {
            s += &format!(" {k}={v}");
        }
    }
    s
}

/// enum tcp_conntrack's names, as /proc prints them.
fn tcp_state(n: u8) -> String {
    const NAMES: [&str; 10] = [
        "NONE",
        "SYN_SENT",
        "SYN_RECV",
        "ESTABLISHED",
        "FIN_WAIT",
        "CLOSE_WAIT",
        "LAST_ACK",
        "TIME_WAIT",
        "CLOSE",
        "SYN_SENT2",
    ];
    NAMES
        .get(usize::from(n))
        .map_or(format!("state {n}"), |s| s.to_string())
}

/// One IPCTNL_MSG_CT_NEW's attributes (after nfgenmsg) as an entry, with the line /proc
/// would print for it.
fn entry(family: u8, buf: &[u8]) -> Result<Conntrack, String> {
    let (mut orig, mut reply) = (None, None);
    let (mut status, mut timeout, mut mark, mut usage, mut zone, mut state) =
        (0, None, 0, None, 0, None);
    for (k, v) in attrs(buf)? {
        match k {
            CTA_TUPLE_ORIG => orig = Some(tuple(v)?),
            CTA_TUPLE_REPLY => reply = Some(tuple(v)?),
            CTA_STATUS => status = be32(v, "status")?,
            CTA_TIMEOUT => timeout = Some(be32(v, "timeout")?),
            CTA_MARK => mark = be32(v, "mark")?,
            CTA_USE => usage = Some(be32(v, "use")?),
            CTA_ZONE => zone = be16(v, "zone")?,
            CTA_PROTOINFO => {
                for (k, v) in attrs(v)? {
                    if k == CTA_PROTOINFO_TCP {
                        for (k, v) in attrs(v)? {
                            if k == CTA_PROTOINFO_TCP_STATE {
                                state = Some(tcp_state(fixed::<1>(v, "tcp state")?[0]));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let orig = orig.ok_or("entry without its original tuple")?;
    let reply = reply.ok_or("entry without its reply tuple")?;
    let protonum = orig.proto.ok_or("entry without a protocol")?;
    let proto = crate::model::kernel_names::ip_proto(protonum);
    let mut flags = Vec::new();
    let mut line = format!(
        "{} {family} {proto} {protonum} {}",
        if family == libc::AF_INET6 as u8 {
            "ipv6"
        } else {
            "ipv4"
        },
        timeout.unwrap_or(0)
    );
    if let Some(s) = &state {
        line += &format!(" {s}");
    }
    line += &format!(" {}", tuple_text(&orig));
    if status & IPS_SEEN_REPLY == 0 {
        flags.push("UNREPLIED".to_string());
        line += " [UNREPLIED]";
    }
    line += &format!(" {}", tuple_text(&reply));
    let assured = if status & IPS_OFFLOAD != 0 {
        Some("OFFLOAD")
    } else if status & IPS_ASSURED != 0 {
        Some("ASSURED")
    } else {
        None
    };
    if let Some(a) = assured {
        flags.push(a.to_string());
        line += &format!(" [{a}]");
    }
    line += &format!(" mark={mark} zone={zone}");
    if let Some(u) = usage {
        line += &format!(" use={u}");
    }
    let missing = |what: &str| format!("entry without its {what}");
    Ok(Conntrack {
        proto,
        state,
        src: orig.src.ok_or_else(|| missing("source"))?,
        dst: orig.dst.ok_or_else(|| missing("destination"))?,
        sport: orig.sport,
        dport: orig.dport,
        reply_src: reply.src.ok_or_else(|| missing("reply source"))?,
        reply_dst: reply.dst.ok_or_else(|| missing("reply destination"))?,
        reply_sport: reply.sport,
        reply_dport: reply.dport,
        flags,
        mark,
        line,
    })
}

/// The entries of the calling thread's netns and what could not be read of them: over
/// ctnetlink, else (no nf_conntrack_netlink) from /proc, which says it may miss entries.
pub fn read() -> std::io::Result<(Vec<Conntrack>, Vec<String>)> {
    match read_netlink() {
        Ok(read) => Ok(read),
        Err(why) => {
            let text = std::fs::read_to_string("/proc/thread-self/net/nf_conntrack")?;
            Ok((
                text.lines().filter_map(parse_line).collect(),
                vec![format!(
                    "conntrack read from /proc/net/nf_conntrack ({why}): its walk can skip an entry when the table changes while it is read, so an established flow may be traced as new"
                )],
            ))
        }
    }
}

/// The ctnetlink dump; Err says why it could not be had.
pub fn read_netlink() -> Result<(Vec<Conntrack>, Vec<String>), String> {
    let mut sock = NlSocket::open(netlink_sys::protocols::NETLINK_NETFILTER)
        .map_err(|e| format!("netfilter netlink socket: {e}"))?;
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    let report = sock
        .dump(CtMsg::DumpAll, |m| match m {
            CtMsg::Entry(Ok(c)) => entries.push(c),
            CtMsg::Entry(Err(e)) => bad.push(e),
            _ => {}
        })
        .map_err(|e| format!("ctnetlink dump: {e}"))?;
    let mut warnings = report.warnings("conntrack");
    if let Some(first) = bad.first() {
        warnings.push(format!(
            "conntrack: {} entr{} could not be read ({first}): a flow of {} is traced as new",
            bad.len(),
            if bad.len() == 1 { "y" } else { "ies" },
            if bad.len() == 1 { "it" } else { "them" }
        ));
    }
    Ok((entries, warnings))
}

/// One line: `ipv4 2 tcp 6 118 TIME_WAIT src=… dst=… sport=… dport=… src=… … [ASSURED] mark=0 use=1`.
pub fn parse_line(line: &str) -> Option<Conntrack> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let proto = words.get(2)?.to_string();
    let mut orig = Vec::new();
    let mut reply = Vec::new();
    let mut state = None;
    let mut flags = Vec::new();
    let mut mark = 0;
    for w in &words[3..] {
        if let Some((k, v)) = w.split_once('=') {
            match k {
                "src" | "dst" | "sport" | "dport" | "type" | "code" | "id" => {
                    // The second src= starts the reply tuple.
                    let tuple = if k == "src" && !orig.is_empty() || !reply.is_empty() {
                        &mut reply
                    } else {
                        &mut orig
                    };
                    tuple.push((k.to_string(), v.to_string()));
                }
                "mark" => mark = v.parse().unwrap_or(0),
                _ => {}
            }
        } else if w.starts_with('[') {
            flags.push(w.trim_matches(|c| c == '[' || c == ']').to_string());
        } else if w.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            state = Some(w.to_string());
        }
    }
    let get =
        |t: &[(String, String)], k: &str| t.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    Some(Conntrack {
        proto,
        state,
        src: get(&orig, "src")?.parse().ok()?,
        dst: get(&orig, "dst")?.parse().ok()?,
        sport: get(&orig, "sport").and_then(|p| p.parse().ok()),
        dport: get(&orig, "dport").and_then(|p| p.parse().ok()),
        reply_src: get(&reply, "src")?.parse().ok()?,
        reply_dst: get(&reply, "dst")?.parse().ok()?,
        reply_sport: get(&reply, "sport").and_then(|p| p.parse().ok()),
        reply_dport: get(&reply, "dport").and_then(|p| p.parse().ok()),
        flags,
        mark,
        line: line.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_nodeport_entry() {
        let line = "ipv4     2 tcp      6 118 TIME_WAIT src=10.0.1.52 dst=172.18.0.3 sport=45404 dport=32000 src=10.0.0.249 dst=172.18.0.3 sport=80 dport=50772 [ASSURED] mark=0 zone=0 use=2";
        let c = parse_line(line).unwrap();
        assert_eq!(c.proto, "tcp");
        assert_eq!(c.state.as_deref(), Some("TIME_WAIT"));
        assert_eq!(
            (c.src.to_string(), c.dst.to_string(), c.sport, c.dport),
            (
                "10.0.1.52".into(),
                "172.18.0.3".into(),
                Some(45404),
                Some(32000)
            )
        );
        assert_eq!(
            (c.reply_src.to_string(), c.reply_sport),
            ("10.0.0.249".into(), Some(80))
        );
        assert_eq!(c.flags, ["ASSURED"]);
        assert!(c.is_dnat());
    }

    #[test]
    fn icmp_entry_without_ports() {
        let line = "ipv4     2 icmp     1 29 src=10.0.1.52 dst=10.0.0.249 type=8 code=0 id=87 src=10.0.0.249 dst=10.0.1.52 type=0 code=0 id=87 mark=0 zone=0 use=2";
        let c = parse_line(line).unwrap();
        assert_eq!(
            (c.proto.as_str(), c.state.as_deref(), c.sport),
            ("icmp", None, None)
        );
        assert!(!c.is_dnat());
    }
}
