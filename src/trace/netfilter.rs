//! Running a packet through iptables chains (mangle marks, nat DNAT), as far as the rules
//! can be evaluated from their text. Pure function of the parsed rules.

use crate::model::{Netfilter, NfCond, NfRule, NfTarget};
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct NfPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub mark: u32,
    pub iif: Option<&'a str>,
}

/// A rule that changed something, or that we could not evaluate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NfStep {
    pub rule: String,
    pub effect: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NfResult {
    pub mark: u32,
    /// DNAT destination (address, port) when a DNAT rule fired.
    pub dnat: Option<(IpAddr, Option<u16>)>,
    pub dropped: bool,
    pub steps: Vec<NfStep>,
}

fn proto_matches(name: &str, proto: u8) -> bool {
    match name {
        "all" => true,
        "tcp" => proto == 6,
        "udp" => proto == 17,
        "icmp" => proto == 1,
        "esp" => proto == 50,
        "ah" => proto == 51,
        "sctp" => proto == 132,
        n => n.parse::<u8>().is_ok_and(|p| p == proto),
    }
}

enum Cond {
    Yes,
    No,
    /// Cannot be decided from the rule text (unknown module, random choice).
    Unknown(String),
}

fn cond(c: &NfCond, p: &NfPacket) -> Cond {
    let b = |x: bool| if x { Cond::Yes } else { Cond::No };
    match c {
        NfCond::In(i) => b(p.iif.is_some_and(|d| NfCond::iface_matches(i, d))),
        NfCond::Out(_) => Cond::Unknown("-o before routing".into()),
        NfCond::Src(pfx) => b(pfx.contains(&p.src)),
        NfCond::Dst(pfx) => b(pfx.contains(&p.dst)),
        NfCond::Proto(n) => b(proto_matches(n, p.proto)),
        NfCond::Sport(a, z) => b(p.sport.is_some_and(|s| (*a..=*z).contains(&s))),
        NfCond::Dport(a, z) => b(p.dport.is_some_and(|s| (*a..=*z).contains(&s))),
        NfCond::Mark(m) => b(m.matches(p.mark)),
        NfCond::Comment(_) => Cond::Yes,
        NfCond::Random(prob) => Cond::Unknown(format!(
            "random choice (probability {prob}); following this one"
        )),
        NfCond::Unknown(what) => {
            Cond::Unknown(format!("cannot evaluate `{what}`; assumed not to match"))
        }
    }
}

/// Does the rule match? Random choices are taken (the first endpoint), unknown conditions not.
fn rule_matches(r: &NfRule, p: &NfPacket, steps: &mut Vec<NfStep>) -> bool {
    for m in &r.matches {
        match cond(&m.what, p) {
            Cond::Yes if m.negated => return false,
            Cond::No if !m.negated => return false,
            Cond::Yes | Cond::No => {}
            Cond::Unknown(why) => {
                let take = matches!(m.what, NfCond::Random(_));
                steps.push(NfStep {
                    rule: r.line.clone(),
                    effect: why,
                });
                if !take {
                    return false;
                }
            }
        }
    }
    true
}

enum Flow {
    Continue,
    Return,
    Stop,
}

fn run(
    nf: &Netfilter,
    table: &str,
    chain: &str,
    p: &mut NfPacket,
    out: &mut NfResult,
    depth: usize,
) -> Flow {
    if depth > 32 {
        out.steps.push(NfStep {
            rule: format!("chain {chain}"),
            effect: "too deep: stopped evaluating".into(),
        });
        return Flow::Stop;
    }
    for r in nf
        .rules
        .iter()
        .filter(|r| r.table == table && r.chain == chain)
    {
        if !rule_matches(r, p, &mut out.steps) {
            continue;
        }
        match &r.target {
            NfTarget::SetMark { value, mask } => {
                let before = p.mark;
                p.mark = (p.mark & !mask) ^ value;
                out.steps.push(NfStep {
                    rule: r.line.clone(),
                    effect: format!("mark {before:#x} → {:#x}", p.mark),
                });
            }
            NfTarget::Jump { chain: c } => match run(nf, table, c, p, out, depth + 1) {
                Flow::Stop => return Flow::Stop,
                Flow::Continue | Flow::Return => {}
            },
            NfTarget::Goto { chain: c } => return run(nf, table, c, p, out, depth + 1),
            NfTarget::Return => return Flow::Return,
            NfTarget::Accept => return Flow::Stop,
            NfTarget::Drop => {
                out.dropped = true;
                out.steps.push(NfStep {
                    rule: r.line.clone(),
                    effect: "dropped".into(),
                });
                return Flow::Stop;
            }
            NfTarget::Dnat { to } => {
                let (addr, port) = match to.rsplit_once(':') {
                    Some((a, p)) if !a.contains(':') || a.starts_with('[') => (
                        a.trim_matches(|c| c == '[' || c == ']').to_string(),
                        p.parse().ok(),
                    ),
                    _ => (to.clone(), None),
                };
                if let Ok(ip) = addr.parse() {
                    out.dnat = Some((ip, port));
                    out.steps.push(NfStep {
                        rule: r.line.clone(),
                        effect: format!("DNAT {} → {to}", p.dst),
                    });
                    p.dst = ip;
                    if port.is_some() {
                        p.dport = port;
                    }
                }
                return Flow::Stop;
            }
            NfTarget::Snat { .. } | NfTarget::Masquerade => return Flow::Stop,
            NfTarget::Other { .. } => {}
        }
    }
    Flow::Continue
}

/// Run `table`'s built-in `chain` (PREROUTING, OUTPUT, ...) for a packet.
pub fn traverse(nf: &Netfilter, table: &str, chain: &str, p: &NfPacket) -> NfResult {
    let mut p = p.clone();
    let mut out = NfResult {
        mark: p.mark,
        ..Default::default()
    };
    run(nf, table, chain, &mut p, &mut out, 0);
    out.mark = p.mark;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::netfilter::parse_save;

    fn nf(text: &str) -> Netfilter {
        Netfilter {
            backends: vec!["test".into()],
            rules: parse_save(text),
            conntrack: vec![],
        }
    }

    fn pkt<'a>(
        src: &str,
        dst: &str,
        proto: u8,
        dport: Option<u16>,
        mark: u32,
        iif: &'a str,
    ) -> NfPacket<'a> {
        NfPacket {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto,
            sport: Some(40000),
            dport,
            mark,
            iif: Some(iif),
        }
    }

    const LAB_MANGLE: &str = "*mangle\n\
-A PREROUTING -j CILIUM_PRE_mangle\n\
-A CILIUM_PRE_mangle -i eth0 -p esp -j MARK --set-xmark 0xd00/0xf00\n\
-A CILIUM_PRE_mangle -i eth0 ! -p esp -m mark --mark 0xd00/0xf00 -j MARK --set-xmark 0x0/0xf00\n\
-A CILIUM_PRE_mangle -i cilium_net -j MARK --set-xmark 0x0/0xff00\n\
-A CILIUM_PRE_mangle -i lxc+ -d 10.0.0.0/24 -j MARK --set-xmark 0x3e00/0xff00\n";

    #[test]
    fn lab_marks() {
        let n = nf(LAB_MANGLE);
        let r = traverse(
            &n,
            "mangle",
            "PREROUTING",
            &pkt("10.0.1.52", "10.0.0.249", 1, None, 0, "lxc1234"),
        );
        assert_eq!(r.mark, 0x3e00);
        assert_eq!(r.steps.len(), 1);
        let r = traverse(
            &n,
            "mangle",
            "PREROUTING",
            &pkt("10.0.1.138", "10.0.0.40", 50, None, 0, "eth0"),
        );
        assert_eq!(r.mark, 0xd00);
        let r = traverse(
            &n,
            "mangle",
            "PREROUTING",
            &pkt("10.0.1.52", "10.0.0.249", 1, None, 0xd00, "eth0"),
        );
        assert_eq!(r.mark, 0);
        let r = traverse(
            &n,
            "mangle",
            "PREROUTING",
            &pkt("10.0.1.138", "10.0.0.40", 50, None, 0x3e00, "cilium_net"),
        );
        assert_eq!(r.mark, 0);
    }

    #[test]
    fn kube_proxy_cluster_ip_dnat() {
        let n = nf("*nat\n\
-A PREROUTING -j KUBE-SERVICES\n\
-A KUBE-SERVICES -d 10.96.169.246/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-X\n\
-A KUBE-SVC-X ! -s 10.0.0.0/8 -d 10.96.169.246/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ\n\
-A KUBE-SVC-X -m statistic --mode random --probability 0.5 -j KUBE-SEP-A\n\
-A KUBE-SVC-X -j KUBE-SEP-B\n\
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n\
-A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 10.0.0.249:80\n\
-A KUBE-SEP-B -p tcp -m tcp -j DNAT --to-destination 10.0.1.103:80\n");
        let r = traverse(
            &n,
            "nat",
            "PREROUTING",
            &pkt("10.0.1.52", "10.96.169.246", 6, Some(80), 0, "lxc1"),
        );
        assert_eq!(r.dnat, Some(("10.0.0.249".parse().unwrap(), Some(80))));
        assert_eq!(
            r.mark, 0,
            "pod source is inside 10.0.0.0/8: no masquerade mark"
        );
        assert!(r.steps.iter().any(|s| s.effect.contains("random")));
        let r = traverse(
            &n,
            "nat",
            "PREROUTING",
            &pkt("192.168.9.9", "10.96.169.246", 6, Some(80), 0, "eth0"),
        );
        assert_eq!(r.mark, 0x4000);
        let r = traverse(
            &n,
            "nat",
            "PREROUTING",
            &pkt("10.0.1.52", "10.96.169.246", 6, Some(443), 0, "lxc1"),
        );
        assert_eq!(r.dnat, None);
    }
}
