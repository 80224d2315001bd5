//! One line per packet, in tcpdump's words so lines can be compared with the seed's:
//!
//! ```text
//! 06:57:23.984250 eth0 out 10.0.1.138 > 10.0.0.40: ESP(spi=0x00000003,seq=0x1a), length 120 [sa 10.0.1.138->10.0.0.40 spi 0x3 mark 0x3e00/0xff00] => 10.0.1.52 > 10.0.0.249: ICMP echo request, id 87, seq 26, length 64
//! 06:57:23.984790 eth0 in  10.0.0.249 > 10.0.1.52: ICMP echo reply, id 87, seq 26, length 64 [kernel-decrypted ESP spi 0x3 seq 0x1a]
//! 06:57:24.001000 eth0 out 10.0.1.52 > 10.0.0.249: ICMP echo request, id 88, seq 0, length 64 LEAK: out policy ...
//! ```
//! Shared by `hopscope capture` and the TUI's Packets pane. Reads records, never sockets.

use crate::decode::analyze::{Decrypt, IfaceTotals, PacketRecord, Rates, Ts};
use crate::decode::packet::{Decoded, Transport};
use crate::model::Names;
use std::fmt::Write;

/// `HH:MM:SS.micro` in local time, as tcpdump prints it.
pub fn hms(ts: Ts) -> String {
    let t = ts.sec as libc::time_t;
    // SAFETY: localtime_r writes into the zeroed tm we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    let (h, m, s) = if ok {
        (tm.tm_hour, tm.tm_min, tm.tm_sec)
    } else {
        let d = ts.sec.rem_euclid(86400);
        ((d / 3600) as i32, (d / 60 % 60) as i32, (d % 60) as i32)
    };
    format!("{h:02}:{m:02}:{s:02}.{:06}", ts.nsec / 1000)
}

/// The protocol part of a line: `10.0.1.52 > 10.0.0.249: ICMP echo request, id 87, seq 0, length 64`.
/// The names `names` has for the addresses follow the tcpdump-shaped part: `… length 64
/// [10.0.1.52 default/net]`.
pub fn summary(d: &Decoded, names: &Names) -> String {
    let line = summary_plain(d);
    let ips =
        d.ip.as_ref()
            .map(|ip| format!("{} {}", ip.src, ip.dst))
            .unwrap_or_default();
    let found = names.in_text(&ips);
    if found.is_empty() {
        return line;
    }
    let labels: Vec<String> = found
        .iter()
        .map(|(ip, label)| format!("{ip} {label}"))
        .collect();
    format!("{line}  [{}]", labels.join(", "))
}

fn summary_plain(d: &Decoded) -> String {
    let (src, dst) = match &d.ip {
        Some(ip) => (ip.src.to_string(), ip.dst.to_string()),
        None => (String::new(), String::new()),
    };
    let mut s = match &d.transport {
        Some(t) => transport_line(d, t, &src, &dst),
        None if d.ip.is_some() => format!("{src} > {dst}:"),
        None => String::new(),
    };
    if let Some(m) = &d.malformed {
        if !s.is_empty() {
            s.push(' ');
        }
        let _ = write!(s, "[malformed {}: {}]", m.layer, m.why);
    }
    s
}

/// The packet in tcpdump's words, by its transport header.
fn transport_line(d: &Decoded, t: &Transport, src: &str, dst: &str) -> String {
    let addr_port = |a: &str, p: u16| format!("{a}.{p}");
    match t {
        Transport::Esp(e) => {
            let encap = match e.udp_encap {
                Some((sp, dp)) => format!("UDP-encap {sp}>{dp} "),
                None => String::new(),
            };
            format!(
                "{src} > {dst}: {encap}ESP(spi={:#010x},seq={:#x}), length {}",
                e.spi, e.seq, e.len
            )
        }
        Transport::Ah {
            spi,
            seq,
            next_header,
            ah_len,
        } => format!(
            "{src} > {dst}: AH(spi={spi:#010x},seq={seq:#x}), next {next_header}, AH length {ah_len} (not verified)"
        ),
        Transport::Vxlan {
            sport,
            dport,
            vni,
            inner,
        } => format!(
            "{} > {}: VXLAN, vni {vni}: {}",
            addr_port(src, *sport),
            addr_port(dst, *dport),
            summary_plain(inner)
        ),
        Transport::Icmp {
            ty,
            code,
            id,
            seq,
            len,
        } => format!(
            "{src} > {dst}: ICMP {}, length {len}",
            icmp_what(*ty, *code, *id, *seq)
        ),
        Transport::Icmp6 {
            ty,
            code,
            id,
            seq,
            len,
        } => format!(
            "{src} > {dst}: ICMP6, {}, length {len}",
            icmp6_what(*ty, *code, *id, *seq)
        ),
        Transport::Tcp {
            sport,
            dport,
            flags,
            seq,
            ack,
            win,
            len,
        } => {
            let mut s = format!(
                "{} > {}: Flags {flags}, seq {seq}",
                addr_port(src, *sport),
                addr_port(dst, *dport)
            );
            if flags.0 & crate::decode::packet::TcpFlags::ACK != 0 {
                let _ = write!(s, ", ack {ack}");
            }
            let _ = write!(s, ", win {win}, length {len}");
            s
        }
        Transport::Udp { sport, dport, len } => format!(
            "{} > {}: UDP, length {len}",
            addr_port(src, *sport),
            addr_port(dst, *dport)
        ),
        Transport::Arp {
            op,
            sender,
            target,
            sender_mac,
        } => arp_line(*op, *sender, *target, sender_mac.as_ref()),
        Transport::Other {
            ip_proto: Some(p), ..
        } => match &d.ip {
            Some(ip) => format!("{src} > {dst}: ip-proto-{p}, length {}", ip.payload_len),
            None => format!("{src} > {dst}: ip-proto-{p}"),
        },
        Transport::Other {
            ethertype: Some(e), ..
        } => format!("ethertype {e:#06x}"),
        Transport::Other { .. } if d.ip.is_some() => format!("{src} > {dst}:"),
        Transport::Other { .. } => String::new(),
    }
}

fn icmp_what(ty: u8, code: u8, id: Option<u16>, seq: Option<u16>) -> String {
    match (ty, id, seq) {
        (8, Some(id), Some(seq)) => format!("echo request, id {id}, seq {seq}"),
        (0, Some(id), Some(seq)) => format!("echo reply, id {id}, seq {seq}"),
        (3, _, _) => format!("unreachable code {code}"),
        (11, _, _) => "time exceeded in-transit".to_string(),
        _ => format!("type {ty} code {code}"),
    }
}

fn icmp6_what(ty: u8, code: u8, id: Option<u16>, seq: Option<u16>) -> String {
    match (ty, id, seq) {
        (128, Some(id), Some(seq)) => format!("echo request, id {id}, seq {seq}"),
        (129, Some(id), Some(seq)) => format!("echo reply, id {id}, seq {seq}"),
        (135, _, _) => "neighbor solicitation".into(),
        (136, _, _) => "neighbor advertisement".into(),
        (133, _, _) => "router solicitation".into(),
        (134, _, _) => "router advertisement".into(),
        _ => format!("type {ty} code {code}"),
    }
}

fn arp_line(
    op: u16,
    sender: Option<std::net::Ipv4Addr>,
    target: Option<std::net::Ipv4Addr>,
    sender_mac: Option<&crate::decode::packet::Mac>,
) -> String {
    let ip = |a: Option<std::net::Ipv4Addr>| a.map_or("?".to_string(), |a| a.to_string());
    match (op, sender_mac) {
        (1, _) => format!("ARP, Request who-has {} tell {}", ip(target), ip(sender)),
        (2, Some(m)) => format!("ARP, Reply {} is-at {m}", ip(sender)),
        (2, None) => format!("ARP, Reply {} is-at ?", ip(sender)),
        _ => format!("ARP, op {op}"),
    }
}

/// One full line for a captured packet.
pub fn line(r: &PacketRecord, names: &Names) -> String {
    format!(
        "{} {} {:<3} {}{}",
        hms(r.ts),
        r.iface,
        r.dir.as_str(),
        summary(&r.decoded, names),
        annotations(r, names)
    )
}

/// What hopscope adds after tcpdump's words: the SA, the decrypted inner packet or why not,
/// the kernel's re-injection, a leak. Empty or starting with a space.
pub fn annotations(r: &PacketRecord, names: &Names) -> String {
    let mut s = String::new();
    if r.decoded.esp().is_some() {
        match &r.sa {
            Some(sa) => {
                let _ = write!(s, " [sa {sa}]");
            }
            None => s.push_str(" [no SA]"),
        }
    }
    match &r.decrypt {
        Some(Decrypt::Ok { inner, next_header }) => {
            let _ = match next_header {
                59 => write!(s, " => dummy (TFC padding)"),
                _ => write!(s, " => {}", summary(inner, names)),
            };
        }
        Some(Decrypt::AuthFailed { tried }) => {
            let _ = write!(
                s,
                " => AUTH FAILED: ICV mismatch with the key of {tried} SA{}",
                if *tried == 1 { "" } else { "s" }
            );
        }
        Some(Decrypt::NoSa) => s.push_str(" => not decrypted: no SA for this SPI/dst"),
        Some(Decrypt::Unsupported { why }) => {
            let _ = write!(s, " => not decrypted: {why}");
        }
        Some(Decrypt::Malformed { why }) => {
            let _ = write!(s, " => not decrypted: {why}");
        }
        None => {}
    }
    if let Some(k) = &r.kernel_decrypted {
        let _ = write!(
            s,
            " [kernel-decrypted ESP spi {:#x} seq {:#x}{}]",
            k.esp_spi,
            k.esp_seq,
            if k.exact { "" } else { ", by time" }
        );
    }
    if let Some(l) = &r.leak {
        let _ = write!(s, " LEAK: {l}");
    }
    if let Some(m) = &r.encap_mismatch {
        let _ = write!(s, " ENCAP MISMATCH: {m}");
    }
    s
}

pub fn totals_text(t: &IfaceTotals) -> String {
    let c = &t.counts;
    let mut s = format!(
        "{}: {} packets captured, {} received by filter, {} dropped by kernel, {} dropped by interface, {} dropped by hopscope",
        t.iface,
        t.captured,
        t.received_by_filter,
        t.dropped_by_kernel,
        t.dropped_by_interface,
        t.dropped_by_hopscope
    );
    let _ = write!(
        s,
        "\n  {} ESP ({:.1}/s), {} plaintext ({:.1}/s), {} kernel-decrypted, {} other",
        c.esp, t.esp_pps, c.plaintext, t.plaintext_pps, c.kernel_decrypted, c.other
    );
    if c.decrypted + c.auth_failed + c.no_sa > 0 {
        let _ = write!(
            s,
            "; {} decrypted, {} auth failures, {} without SA",
            c.decrypted, c.auth_failed, c.no_sa
        );
    }
    if c.leaks > 0 {
        let _ = write!(s, "; {} LEAKS", c.leaks);
    }
    if c.malformed > 0 {
        let _ = write!(s, "; {} malformed", c.malformed);
    }
    if let Some(g) = &t.gone {
        let _ = write!(s, "\n  gone: {g}");
    }
    s
}

/// The periodic "is traffic here encrypted?" line: ESP and plaintext pps side by side.
pub fn rates_text(rates: &[(String, Rates)]) -> String {
    rates
        .iter()
        .map(|(i, r)| format!("{i}: esp {:.0}/s plain {:.0}/s", r.esp_pps, r.plaintext_pps))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod names_tests {
    use super::*;
    use crate::model::names::{Name, NameKind};

    /// An ICMP echo request 10.0.1.52 → 10.0.0.249, id 87, seq 0 (the seed's ping).
    fn echo() -> Decoded {
        let mut p = vec![
            0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 1, 0, 0, 10, 0, 1, 52, 10, 0, 0, 249,
        ];
        p.extend([8, 0, 0, 0, 0, 87, 0, 0]);
        crate::decode::packet::decode_ip(&p)
    }

    #[test]
    fn names_follow_the_tcpdump_shaped_line_only_when_known() {
        let plain = summary(&echo(), &Names::default());
        assert!(
            plain.starts_with("10.0.1.52 > 10.0.0.249: ICMP echo request"),
            "{plain}"
        );
        let mut names = Names::default();
        names.addresses.insert(
            "10.0.1.52".parse().unwrap(),
            Name {
                label: "default/net".into(),
                kind: NameKind::Pod,
                object: "pod default/net".into(),
            },
        );
        let named = summary(&echo(), &names);
        assert_eq!(named, format!("{plain}  [10.0.1.52 default/net]"));
    }
}
