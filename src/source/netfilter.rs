//! iptables rules, read with the `*-save` tools (read-only) of both backends and parsed.
//! Cilium's BPF is invisible here; kube-proxy's and our lab's rules are not.

use crate::model::{Mark, Netfilter, NfCond, NfMatch, NfRule, NfTarget, Prefix};
use std::process::Command;

/// Read mangle and nat rules (and conntrack entries) of the calling thread's netns. Missing tools are not an error:
/// they just mean no rules to show (and the trace says so).
pub fn read() -> Netfilter {
    let mut nf = Netfilter::default();
    for tool in ["iptables-legacy-save", "iptables-nft-save"] {
        let Ok(out) = Command::new(tool).output() else {
            continue;
        };
        if !out.status.success() {
            continue;
        }
        let rules = parse_save(&String::from_utf8_lossy(&out.stdout));
        if !rules.is_empty() {
            nf.backends.push(tool.to_string());
            nf.rules.extend(rules);
        }
    }
    // Without nf_conntrack loaded the file is absent: no entries, nothing to say.
    nf.conntrack = super::conntrack::read().unwrap_or_default();
    nf
}

/// Split a save line into words, honouring double quotes (comments have spaces).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => cur.extend(chars.next()),
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn prefix(s: &str) -> Option<Prefix> {
    let (a, l) = s.split_once('/').unwrap_or((s, ""));
    let addr: std::net::IpAddr = a.parse().ok()?;
    let len = if l.is_empty() {
        if addr.is_ipv4() { 32 } else { 128 }
    } else {
        l.parse().ok()?
    };
    Some(Prefix::new(addr, len))
}

fn ports(s: &str) -> Option<(u16, u16)> {
    match s.split_once(':') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => s.parse().ok().map(|p| (p, p)),
    }
}

fn num(s: &str) -> Option<u32> {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn mark(s: &str) -> Option<Mark> {
    let (v, m) = s.split_once('/').unwrap_or((s, "0xffffffff"));
    Some(Mark {
        value: num(v)?,
        mask: num(m)?,
    })
}

/// Parse `iptables-save` output into rules of every table.
pub fn parse_save(text: &str) -> Vec<NfRule> {
    let mut table = String::new();
    let mut rules = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_string();
            continue;
        }
        let Some(rest) = line.strip_prefix("-A ") else {
            continue;
        };
        let w = words(rest);
        let Some(chain) = w.first().cloned() else {
            continue;
        };
        let mut matches = Vec::new();
        let mut target = NfTarget::Other {
            name: String::new(),
        };
        let mut neg = false;
        let mut i = 1;
        let arg = |i: usize| w.get(i).cloned().unwrap_or_default();
        while i < w.len() {
            let word = w[i].as_str();
            let mut push = |what: NfCond| {
                matches.push(NfMatch { negated: neg, what });
            };
            match word {
                "!" => {
                    neg = true;
                    i += 1;
                    continue;
                }
                "-i" => push(NfCond::In(arg(i + 1))),
                "-o" => push(NfCond::Out(arg(i + 1))),
                "-s" => push(
                    prefix(&arg(i + 1))
                        .map_or(NfCond::Unknown(format!("-s {}", arg(i + 1))), NfCond::Src),
                ),
                "-d" => push(
                    prefix(&arg(i + 1))
                        .map_or(NfCond::Unknown(format!("-d {}", arg(i + 1))), NfCond::Dst),
                ),
                "-p" => push(NfCond::Proto(arg(i + 1))),
                "--dport" => push(
                    ports(&arg(i + 1))
                        .map_or(NfCond::Unknown(arg(i + 1)), |(a, b)| NfCond::Dport(a, b)),
                ),
                "--sport" => push(
                    ports(&arg(i + 1))
                        .map_or(NfCond::Unknown(arg(i + 1)), |(a, b)| NfCond::Sport(a, b)),
                ),
                "--mark" => {
                    push(mark(&arg(i + 1)).map_or(NfCond::Unknown(arg(i + 1)), NfCond::Mark))
                }
                "--comment" => push(NfCond::Comment(arg(i + 1))),
                "--probability" => push(NfCond::Random(arg(i + 1))),
                "-m" | "--mode" => {
                    i += 2; // module names carry no condition themselves
                    neg = false;
                    continue;
                }
                "-j" | "-g" => {
                    let name = arg(i + 1);
                    let opt = |flag: &str| w.iter().position(|x| x == flag).map(|p| arg(p + 1));
                    target = match name.as_str() {
                        "RETURN" => NfTarget::Return,
                        "ACCEPT" => NfTarget::Accept,
                        "DROP" => NfTarget::Drop,
                        "MASQUERADE" => NfTarget::Masquerade,
                        "MARK" => match opt("--set-xmark")
                            .or(opt("--set-mark"))
                            .and_then(|m| mark(&m))
                        {
                            Some(m) => NfTarget::SetMark {
                                value: m.value,
                                mask: m.mask,
                            },
                            None => NfTarget::Other { name },
                        },
                        "DNAT" => NfTarget::Dnat {
                            to: opt("--to-destination").unwrap_or_default(),
                        },
                        "SNAT" => NfTarget::Snat {
                            to: opt("--to-source").unwrap_or_default(),
                        },
                        _ if name.chars().all(|c| c.is_ascii_uppercase())
                            && !name.contains('-') =>
                        {
                            NfTarget::Other { name }
                        }
                        _ if word == "-g" => NfTarget::Goto { chain: name },
                        _ => NfTarget::Jump { chain: name },
                    };
                    break;
                }
                other if other.starts_with("--") => {
                    push(NfCond::Unknown(format!("{other} {}", arg(i + 1))))
                }
                other => push(NfCond::Unknown(other.to_string())),
            }
            neg = false;
            i += 2;
        }
        rules.push(NfRule {
            table: table.clone(),
            chain,
            matches,
            target,
            line: format!("-A {rest}"),
        });
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: &str = r#"*mangle
:PREROUTING ACCEPT [0:0]
:CILIUM_PRE_mangle - [0:0]
-A PREROUTING -m comment --comment "cilium-feeder: CILIUM_PRE_mangle" -j CILIUM_PRE_mangle
-A CILIUM_PRE_mangle -i eth0 ! -p esp -m mark --mark 0xd00/0xf00 -m comment --comment "decrypted" -j MARK --set-xmark 0x0/0xf00
-A CILIUM_PRE_mangle -i lxc+ -d 10.0.0.0/24 -j MARK --set-xmark 0x3e00/0xff00
COMMIT
*nat
-A KUBE-SERVICES -d 10.96.169.246/32 -p tcp -m comment --comment "default/serversvc:cni cluster IP" -m tcp --dport 80 -j KUBE-SVC-CU7F3MNN62CF4ANP
-A KUBE-SVC-X -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-A
-A KUBE-SEP-A -p tcp -m tcp -j DNAT --to-destination 10.0.0.249:80
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
COMMIT
"#;

    #[test]
    fn parses_kube_proxy_and_mark_rules() {
        let r = parse_save(SAVE);
        assert_eq!(r.len(), 7);
        assert_eq!(
            (r[0].table.as_str(), r[0].chain.as_str()),
            ("mangle", "PREROUTING")
        );
        assert_eq!(
            r[0].target,
            NfTarget::Jump {
                chain: "CILIUM_PRE_mangle".into()
            }
        );
        let dec = &r[1];
        assert_eq!(
            dec.matches[0],
            NfMatch {
                negated: false,
                what: NfCond::In("eth0".into())
            }
        );
        assert_eq!(
            dec.matches[1],
            NfMatch {
                negated: true,
                what: NfCond::Proto("esp".into())
            }
        );
        assert_eq!(
            dec.matches[2].what,
            NfCond::Mark(Mark {
                value: 0xd00,
                mask: 0xf00
            })
        );
        assert_eq!(
            dec.target,
            NfTarget::SetMark {
                value: 0,
                mask: 0xf00
            }
        );
        assert_eq!(
            r[2].matches[1].what,
            NfCond::Dst(prefix("10.0.0.0/24").unwrap())
        );
        let svc = &r[3];
        assert_eq!(svc.table, "nat");
        assert!(svc.matches.contains(&NfMatch {
            negated: false,
            what: NfCond::Dport(80, 80)
        }));
        assert!(svc.matches.contains(&NfMatch {
            negated: false,
            what: NfCond::Comment("default/serversvc:cni cluster IP".into())
        }));
        assert_eq!(r[4].matches[0].what, NfCond::Random("0.50000000000".into()));
        assert_eq!(
            r[5].target,
            NfTarget::Dnat {
                to: "10.0.0.249:80".into()
            }
        );
        assert!(r[6].matches[0].negated);
        assert_eq!(r[6].target, NfTarget::Return);
    }

    #[test]
    fn interface_wildcards() {
        assert!(NfCond::iface_matches("lxc+", "lxcda1dd0af135e"));
        assert!(!NfCond::iface_matches("lxc+", "eth0"));
        assert!(NfCond::iface_matches("eth0", "eth0"));
    }
}
