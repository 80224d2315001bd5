//! IPVS virtual services and their real servers from /proc/net/ip_vs (read-only; the netns
//! of the calling thread). kube-proxy's IPVS mode does its DNAT here, not in iptables.

use crate::model::{IpvsReal, IpvsService};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `0A600001:01BB` (IPv4) or `[2001:0db8:...:0001]:0050` (IPv6), as the kernel prints them.
fn addr_port(s: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = s.rsplit_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = match a.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        Some(v6) => IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?),
        None => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(a, 16).ok()?)),
    };
    Some((ip, port))
}

pub fn parse(text: &str) -> Vec<IpvsService> {
    let mut out: Vec<IpvsService> = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["->", ap, fwd, weight, active, inactive, ..] => {
                let (Some((addr, port)), Some(svc)) = (addr_port(ap), out.last_mut()) else {
                    continue;
                };
                svc.reals.push(IpvsReal {
                    addr,
                    port,
                    forward: fwd.to_string(),
                    weight: weight.parse().unwrap_or(0),
                    active: active.parse().unwrap_or(0),
                    inactive: inactive.parse().unwrap_or(0),
                });
            }
            [proto @ ("TCP" | "UDP" | "SCTP"), ap, sched, ..] => {
                if let Some((addr, port)) = addr_port(ap) {
                    out.push(IpvsService {
                        proto: proto.to_lowercase(),
                        addr,
                        port,
                        scheduler: sched.to_string(),
                        reals: vec![],
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// None when IPVS is not loaded (no file): not an error, most nodes do not use it.
pub fn read() -> Option<Vec<IpvsService>> {
    std::fs::read_to_string("/proc/thread-self/net/ip_vs")
        .ok()
        .map(|t| parse(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_and_real_servers() {
        let text = "IP Virtual Server version 1.2.1 (size=4096)\n\
Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n\
TCP  0A60A9F6:0050 rr\n  -> 0A0000F9:0050      Masq    1      0          2\n  -> 0A000167:0050      Masq    1      1          0\n\
UDP  0A60000A:0035 rr\n";
        let s = parse(text);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].addr.to_string(), s[0].port, s[0].proto.as_str()),
            ("10.96.169.246".into(), 80, "tcp")
        );
        assert_eq!(s[0].reals.len(), 2);
        assert_eq!(
            (s[0].reals[0].addr.to_string(), s[0].reals[0].port),
            ("10.0.0.249".into(), 80)
        );
        assert_eq!((s[0].reals[1].active, s[0].reals[0].inactive), (1, 2));
        assert!(s[1].reals.is_empty());
    }
}
