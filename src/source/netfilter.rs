//! Netfilter state of the calling thread's netns, read-only: iptables rules with the `*-save`
//! tools of both backends (from the node's own filesystem through /proc/1/root when our image
//! has none), native nftables (`nft -j list ruleset`), ipsets (`ipset save`), `-m recent`
//! lists and conntrack (/proc), IPVS (generic netlink). What cannot be read becomes a
//! warning, never an empty rule set passed off as "no rules".

use crate::model::{
    IpSet, Mark, Netfilter, NfCond, NfMatch, NfPolicy, NfRule, NfTarget, Prefix, RecentList, Side,
};
use std::process::{Command, Output};

const SAVE_TOOLS: [&str; 2] = ["iptables-legacy-save", "iptables-nft-save"];
/// IPv6 has its own rule sets (the kernel's ip6_tables), read with their own tools.
const SAVE6_TOOLS: [&str; 2] = ["ip6tables-legacy-save", "ip6tables-nft-save"];

/// Whether `tool args` is one of the read-only dumps this module runs (the TUI's privileged
/// helper runs these and nothing else).
pub fn is_read_tool(tool: &str, args: &[&str]) -> bool {
    match (tool, args) {
        (t, []) => SAVE_TOOLS.contains(&t) || SAVE6_TOOLS.contains(&t),
        ("nft", ["-j", "list", "ruleset"]) | ("ipset", ["save"]) => true,
        _ => false,
    }
}

/// Run a read-only dump tool in the calling thread's netns: through the TUI's privileged
/// helper when it has one (its sandbox allows no exec), else here.
pub fn run_tool(tool: &str, args: &[&str]) -> Result<Output, String> {
    debug_assert!(is_read_tool(tool, args), "{tool} {args:?}");
    crate::sandbox::broker::run_tool(tool, args).unwrap_or_else(|| run_tool_here(tool, args))
}

/// The tools the TUI's privileged helper runs, and how it runs them in a netns it opened.
pub const BROKER_TOOLS: crate::sandbox::broker::Tools = crate::sandbox::broker::Tools {
    allowed: is_read_tool,
    run_in: run_tool_in,
};

fn run_tool_in(ns: &std::fs::File, tool: &str, args: &[&str]) -> Result<Output, String> {
    crate::source::netns::run_in(Some(ns), || run_tool_here(tool, args))
        .map_err(|e| format!("{tool}: {e:#}"))?
}

/// Run a read-only dump tool: from PATH, else from the node's root filesystem (a hostPID pod
/// in a scratch image: /proc/1/root is the node's `/`). Err says why neither worked.
pub fn run_tool_here(tool: &str, args: &[&str]) -> Result<Output, String> {
    match Command::new(tool).args(args).output() {
        Ok(o) => return Ok(o),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("{tool}: {e}")),
        Err(_) => {}
    }
    let host_root = std::path::Path::new("/proc/1/root");
    let same_root = std::fs::canonicalize(host_root).is_ok_and(|p| p == std::path::Path::new("/"))
        && std::fs::metadata("/proc/1/root/.").ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        }) == std::fs::metadata("/").ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        });
    let found = ["usr/sbin", "sbin", "usr/bin", "bin"]
        .iter()
        .map(|d| format!("/{d}/{tool}"))
        .find(|p| host_root.join(&p[1..]).exists());
    match (same_root, found) {
        (false, Some(path)) => {
            use std::os::unix::process::CommandExt;
            let mut cmd = Command::new(&path);
            cmd.args(args);
            // SAFETY: chroot and chdir are async-signal-safe; nothing else runs in the child
            // before exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::chroot(c"/proc/1/root".as_ptr()) != 0
                        || libc::chdir(c"/".as_ptr()) != 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            cmd.output().map_err(|e| {
                format!("{tool} is not installed here; the node's own {path} (through /proc/1/root) failed: {e} (needs CAP_SYS_CHROOT)")
            })
        }
        _ => Err(format!(
            "{tool} is not installed here{}",
            if same_root {
                " (and /proc/1/root is this container's own root: run with hostPID to use the node's)"
            } else {
                " nor on the node's filesystem (/proc/1/root)"
            }
        )),
    }
}

/// Read everything netfilter of the calling thread's netns that a trace needs.
pub fn read() -> Netfilter {
    let mut nf = Netfilter::default();
    for (tools, what) in [(SAVE_TOOLS, "iptables"), (SAVE6_TOOLS, "ip6tables")] {
        read_save_tools(&mut nf, &tools, what);
    }
    match super::nftables::read() {
        Ok(tables) => {
            if !tables.is_empty() {
                nf.backends.push("nft".into());
            }
            nf.nft = tables;
        }
        Err(e) => nf
            .warnings
            .push(format!("native nftables rules could not be read: {e}")),
    }
    if uses_sets(&nf) {
        match run_tool("ipset", &["save"]) {
            Ok(o) if o.status.success() => {
                nf.ipsets = parse_ipset_save(&String::from_utf8_lossy(&o.stdout))
            }
            Ok(o) => nf.warnings.push(format!(
                "ipset save failed ({}): set matches cannot be evaluated",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => nf
                .warnings
                .push(format!("{e}: set matches cannot be evaluated")),
        }
    }
    nf.recent = read_recent(&nf);
    nf.bridge_nf_call = read_bridge_nf_call();
    match super::ipvs::read() {
        Ok(Some(ipvs)) => {
            nf.ipvs = ipvs.services;
            nf.warnings.extend(ipvs.warnings);
        }
        Ok(None) => {} // no IPVS in this kernel: nothing of it to trace
        Err(e) => nf.warnings.push(format!(
            "IPVS virtual services could not be read ({e}): a kube-proxy IPVS DNAT is not traced"
        )),
    }
    match super::conntrack::read() {
        Ok((ct, warnings)) => {
            nf.conntrack = ct;
            nf.warnings.extend(warnings);
        }
        Err(e) => nf.warnings.push(format!(
            "conntrack table not readable ({e}: nf_conntrack not loaded, or no /proc/net/nf_conntrack): established flows are traced as new"
        )),
    }
    nf
}

/// br_netfilter's switches for IPv4 and IPv6 (per netns); None when it is not loaded.
fn read_bridge_nf_call() -> Option<[bool; 2]> {
    let on = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/bridge/bridge-nf-call-{f}"))
            .ok()
            .map(|v| v.trim() == "1")
    };
    Some([on("iptables")?, on("ip6tables")?])
}

/// One family's save tools (legacy and nft backends) into `nf`; a warning when none ran.
fn read_save_tools(nf: &mut Netfilter, tools: &[&str], what: &str) {
    let mut failures = Vec::new();
    for tool in tools {
        match run_tool(tool, &[]) {
            Ok(out) if out.status.success() => {
                let (rules, policies) = parse_save(tool, &String::from_utf8_lossy(&out.stdout));
                if !rules.is_empty() || policies.iter().any(|p| p.policy != "ACCEPT") {
                    nf.backends.push(tool.to_string());
                    nf.rules.extend(rules);
                    nf.policies.extend(policies);
                }
            }
            Ok(out) => failures.push(format!(
                "{tool} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => failures.push(e),
        }
    }
    if failures.len() == tools.len() {
        nf.warnings.push(format!(
            "{what} rules could not be read ({} NAT and filter rules unknown): {}",
            if what == "ip6tables" { "IPv6" } else { "IPv4" },
            failures.join("; ")
        ));
    }
}

fn uses_sets(nf: &Netfilter) -> bool {
    nf.rules.iter().any(|r| {
        r.matches
            .iter()
            .any(|m| matches!(m.what, NfCond::Set { .. }))
    })
}

/// The `-m recent` lists the rules name, from /proc/net/xt_recent.
fn read_recent(nf: &Netfilter) -> Vec<RecentList> {
    let mut names: Vec<&str> = nf
        .rules
        .iter()
        .flat_map(|r| &r.matches)
        .filter_map(|m| match &m.what {
            NfCond::Recent { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let text =
                std::fs::read_to_string(format!("/proc/thread-self/net/xt_recent/{name}")).ok()?;
            Some(RecentList {
                name: name.to_string(),
                addrs: parse_recent(&text),
            })
        })
        .collect()
}

/// `src=10.0.1.52 ttl: 64 last_seen: 4295 oldest_pkt: 1 4295` lines.
pub fn parse_recent(text: &str) -> Vec<std::net::IpAddr> {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("src=")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// `create NAME TYPE [netmask N] ...` and `add NAME MEMBER [nomatch] ...` lines of `ipset save`.
pub fn parse_ipset_save(text: &str) -> Vec<IpSet> {
    let mut sets: Vec<IpSet> = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let option = |name: &str| w.iter().position(|x| *x == name).and_then(|i| w.get(i + 1));
        match w.as_slice() {
            ["create", name, kind, ..] => sets.push(IpSet {
                name: name.to_string(),
                kind: kind.to_string(),
                members: vec![],
                netmask: option("netmask").and_then(|n| n.parse().ok()),
                nomatch: vec![],
            }),
            ["add", name, member, rest @ ..] => {
                if let Some(s) = sets.iter_mut().find(|s| s.name == *name) {
                    if rest.contains(&"nomatch") {
                        s.nomatch.push(member.to_string());
                    } else {
                        s.members.push(member.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    sets
}

/// A save line as words; `quoted` words (comments) are never options.
fn words(line: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            '\\' if quoted => cur.extend(chars.next()),
            ' ' if !quoted => {
                if !cur.is_empty() || was_quoted {
                    out.push((std::mem::take(&mut cur), was_quoted));
                }
                was_quoted = false;
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() || was_quoted {
        out.push((cur, was_quoted));
    }
    out
}

/// `Prefix::from_iptables`, under the name this reader's rules use.
fn prefix(s: &str) -> Option<Prefix> {
    Prefix::from_iptables(s)
}

fn ports(s: &str) -> Option<(u16, u16)> {
    match s.split_once(':') {
        Some((a, b)) => Some((
            if a.is_empty() { 0 } else { a.parse().ok()? },
            if b.is_empty() { 65535 } else { b.parse().ok()? },
        )),
        None => s.parse().ok().map(|p| (p, p)),
    }
}

pub fn num(s: &str) -> Option<u32> {
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

/// ICMP type names iptables prints (`echo-request`) or numbers.
fn icmp_type(s: &str) -> Option<Option<u8>> {
    let t = s.split('/').next()?;
    Some(match t {
        "any" => None,
        "echo-reply" | "pong" => Some(0),
        "destination-unreachable"
        | "port-unreachable"
        | "host-unreachable"
        | "network-unreachable"
        | "fragmentation-needed" => Some(3),
        "redirect" => Some(5),
        "echo-request" | "ping" => Some(8),
        "time-exceeded" => Some(11),
        n => Some(n.parse().ok()?),
    })
}

/// Options without an argument (everything else takes the words up to the next option).
const FLAGS: &[&str] = &[
    "--syn",
    "--physdev-is-in",
    "--physdev-is-out",
    "--physdev-is-bridged",
    "--set",
    "--rcheck",
    "--update",
    "--remove",
    "--reap",
    "--rsource",
    "--rdest",
    "--random",
    "--random-fully",
    "--persistent",
    "--notrack",
    "--save-mark",
    "--restore-mark",
    "--return-nomatch",
    "--update-counters",
    "--update-subcounters",
    "--log-uid",
    "--log-ip-options",
    "--log-tcp-options",
    "--log-tcp-sequence",
    "--clamp-mss-to-pmtu",
    "--checksum-fill",
    "-f",
];

struct Opt {
    neg: bool,
    name: String,
    args: Vec<String>,
}

fn options(w: &[(String, bool)]) -> Vec<Opt> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut neg = false;
    while i < w.len() {
        let (word, quoted) = &w[i];
        if !quoted && word == "!" {
            neg = true;
            i += 1;
            continue;
        }
        let mut o = Opt {
            neg,
            name: word.clone(),
            args: vec![],
        };
        neg = false;
        i += 1;
        if !FLAGS.contains(&word.as_str()) {
            while i < w.len() {
                let (a, q) = &w[i];
                if !q
                    && (a == "!"
                        || (a.starts_with('-')
                            && a.len() > 1
                            && !a[1..].starts_with(|c: char| c.is_ascii_digit())))
                {
                    break;
                }
                o.args.push(a.clone());
                i += 1;
                // Short options and nearly every long one take one argument.
                if !matches!(word.as_str(), "--tcp-flags" | "--match-set") || o.args.len() == 2 {
                    break;
                }
            }
        }
        out.push(o);
    }
    out
}

fn side_of(opt: &str) -> Side {
    if opt.contains("src") || opt.contains("sport") || opt.contains("rsource") {
        Side::Src
    } else {
        Side::Dst
    }
}

/// One match option in the context of its module (`--mark` means a connmark under
/// `-m connmark`); None = the option adds nothing to evaluate (`-m tcp`, `--reap`).
fn cond(module: &str, o: &Opt, recent: &mut Option<RecentOpts>) -> Option<NfCond> {
    let a = |k: usize| o.args.get(k).cloned().unwrap_or_default();
    let unknown = || {
        NfCond::Unknown(
            format!(
                "{}{} {}",
                if o.neg { "! " } else { "" },
                o.name,
                o.args.join(" ")
            )
            .trim()
            .to_string(),
        )
    };
    Some(match (module, o.name.as_str()) {
        (_, "-i") => NfCond::In(a(0)),
        (_, "-o") => NfCond::Out(a(0)),
        (_, "-s") => prefix(&a(0)).map_or_else(unknown, NfCond::Src),
        (_, "-d") => prefix(&a(0)).map_or_else(unknown, NfCond::Dst),
        (_, "-p") => NfCond::Proto(a(0)),
        ("connmark", "--mark") => mark(&a(0)).map_or_else(unknown, NfCond::ConnMark),
        (_, "--mark") => mark(&a(0)).map_or_else(unknown, NfCond::Mark),
        (_, "--dport" | "--destination-port") => {
            ports(&a(0)).map_or_else(unknown, |(x, y)| NfCond::Dport(x, y))
        }
        (_, "--sport" | "--source-port") => {
            ports(&a(0)).map_or_else(unknown, |(x, y)| NfCond::Sport(x, y))
        }
        (
            "multiport",
            n @ ("--dports" | "--sports" | "--ports" | "--destination-ports" | "--source-ports"),
        ) => {
            let list: Option<Vec<_>> = a(0).split(',').map(ports).collect();
            let side = (n != "--ports").then(|| side_of(n));
            list.map_or_else(unknown, |l| NfCond::Ports(side, l))
        }
        (_, "--ctstate" | "--state") => {
            NfCond::CtState(a(0).split(',').map(str::to_string).collect())
        }
        (_, "--ctstatus") => NfCond::CtStatus(a(0).split(',').map(str::to_string).collect()),
        ("addrtype", n @ ("--src-type" | "--dst-type")) => NfCond::AddrType {
            side: side_of(n),
            types: a(0).split(',').map(str::to_string).collect(),
            limit_iface: None,
        },
        ("addrtype", "--limit-iface-in" | "--limit-iface-out") => unknown(),
        (_, "--physdev-in") => NfCond::PhysdevIn(a(0)),
        (_, "--physdev-out") => NfCond::PhysdevOut(a(0)),
        (_, n @ ("--physdev-is-in" | "--physdev-is-out" | "--physdev-is-bridged")) => {
            NfCond::PhysdevIs(n.trim_start_matches("--physdev-is-").to_string())
        }
        (_, "--match-set") => NfCond::Set {
            name: a(0),
            flags: a(1).split(',').map(side_of).collect(),
        },
        ("set", "--return-nomatch" | "--update-counters" | "--update-subcounters") => return None,
        (_, "--tcp-flags") => NfCond::TcpFlags(
            a(0).split(',').map(str::to_string).collect(),
            a(1).split(',').map(str::to_string).collect(),
        ),
        (_, "--syn") => NfCond::TcpFlags(
            ["FIN", "SYN", "RST", "ACK"].map(String::from).to_vec(),
            vec!["SYN".into()],
        ),
        (_, "--icmp-type") => icmp_type(&a(0)).map_or_else(unknown, NfCond::IcmpType),
        (_, n @ ("--src-range" | "--dst-range")) => match a(0).split_once('-') {
            Some((x, y)) => match (x.parse(), y.parse()) {
                (Ok(x), Ok(y)) => NfCond::Range(side_of(n), x, y),
                _ => unknown(),
            },
            None => unknown(),
        },
        ("length", "--length") => match ports(&a(0)) {
            Some((x, y)) => NfCond::Length(x.into(), y.into()),
            None => unknown(),
        },
        (_, "--comment") => NfCond::Comment(a(0)),
        ("statistic", "--mode") => return None,
        ("statistic", "--probability") => NfCond::Random(a(0)),
        ("statistic", "--every") => NfCond::Nth(num(&a(0)).unwrap_or(1), 0),
        ("statistic", "--packet") => NfCond::Nth(0, num(&a(0)).unwrap_or(0)),
        ("recent", n) => {
            let r = recent.get_or_insert_with(RecentOpts::default);
            match n {
                "--set" => r.check = Some(false),
                "--rcheck" | "--update" => r.check = Some(true),
                "--name" => r.name = a(0),
                "--seconds" => r.seconds = num(&a(0)),
                "--rdest" => r.side = Side::Dst,
                "--remove" | "--hitcount" | "--rttl" => r.unknown = true,
                _ => {}
            }
            r.neg |= o.neg;
            return None;
        }
        ("tcp" | "udp" | "sctp" | "icmp", _) if o.name == "--tcp-option" => unknown(),
        _ => unknown(),
    })
}

#[derive(Default)]
struct RecentOpts {
    name: String,
    check: Option<bool>,
    seconds: Option<u32>,
    side: Side,
    neg: bool,
    unknown: bool,
}

fn target(name: &str, opts: &[Opt], goto: bool) -> NfTarget {
    let opt = |flag: &str| {
        opts.iter()
            .find(|o| o.name == flag)
            .map(|o| o.args.first().cloned().unwrap_or_default())
    };
    let has = |flag: &str| opts.iter().any(|o| o.name == flag);
    let mask = |flag: &str| opt(flag).and_then(|m| num(&m)).unwrap_or(u32::MAX);
    match name {
        "RETURN" => NfTarget::Return,
        "ACCEPT" => NfTarget::Accept,
        "DROP" => NfTarget::Drop,
        "REJECT" => NfTarget::Reject {
            with: opt("--reject-with").unwrap_or_else(|| "icmp-port-unreachable".into()),
        },
        "MASQUERADE" => NfTarget::Masquerade {
            to_ports: opt("--to-ports"),
        },
        "REDIRECT" => NfTarget::Redirect {
            to_ports: opt("--to-ports"),
        },
        "NOTRACK" => NfTarget::Notrack,
        "CT" if has("--notrack") => NfTarget::Notrack,
        "MARK" => {
            let set = opt("--set-xmark")
                .or(opt("--set-mark"))
                .and_then(|m| mark(&m));
            let and = opt("--and-mark").and_then(|m| num(&m));
            let or = opt("--or-mark").and_then(|m| num(&m));
            let xor = opt("--xor-mark").and_then(|m| num(&m));
            match (set, and, or, xor) {
                // --set-mark v/m is (mark & !m) | v; save prints --set-xmark with the same effect
                // whenever v ⊆ m, which is what iptables itself generates.
                (Some(m), ..) => NfTarget::SetMark {
                    value: m.value,
                    mask: m.mask,
                },
                (_, Some(a), ..) => NfTarget::SetMark { value: 0, mask: !a },
                (_, _, Some(o), _) => NfTarget::SetMark { value: o, mask: o },
                (_, _, _, Some(x)) => NfTarget::SetMark { value: x, mask: 0 },
                _ => NfTarget::Other { name: name.into() },
            }
        }
        "CONNMARK" => {
            if has("--save-mark") {
                NfTarget::SaveMark {
                    nfmask: mask("--nfmask").min(mask("--mask")),
                    ctmask: mask("--ctmask").min(mask("--mask")),
                }
            } else if has("--restore-mark") {
                NfTarget::RestoreMark {
                    nfmask: mask("--nfmask").min(mask("--mask")),
                    ctmask: mask("--ctmask").min(mask("--mask")),
                }
            } else if let Some(m) = opt("--set-xmark")
                .or(opt("--set-mark"))
                .and_then(|m| mark(&m))
            {
                NfTarget::SetConnMark {
                    value: m.value,
                    mask: m.mask,
                }
            } else {
                NfTarget::Other { name: name.into() }
            }
        }
        "DNAT" => NfTarget::Dnat {
            to: opt("--to-destination").unwrap_or_default(),
        },
        "SNAT" => NfTarget::Snat {
            to: opt("--to-source").unwrap_or_default(),
        },
        "LOG" | "NFLOG" | "TRACE" | "COUNTER" | "TCPMSS" | "CHECKSUM" | "AUDIT" | "ULOG" => {
            NfTarget::Log { name: name.into() }
        }
        // A user chain may be named anything; built-in targets are known upper-case words.
        "CT" | "NFQUEUE" | "TPROXY" | "TEE" | "CLASSIFY" | "DSCP" | "TOS" | "TTL" | "SECMARK"
        | "CONNSECMARK" | "HMARK" | "SET" | "IDLETIMER" | "LED" | "SYNPROXY" | "NETMAP" => {
            NfTarget::Other { name: name.into() }
        }
        _ if goto => NfTarget::Goto { chain: name.into() },
        _ => NfTarget::Jump { chain: name.into() },
    }
}

/// One `-A CHAIN ...` line (without `-A `) of `table`.
fn parse_rule(backend: &str, table: &str, rest: &str) -> Option<NfRule> {
    let w = words(rest);
    let chain = w.first()?.0.clone();
    let opts = options(&w[1..]);
    let mut matches = Vec::new();
    let mut module = String::new();
    let mut recent = None;
    let mut tgt = NfTarget::Other {
        name: String::new(),
    };
    for (k, o) in opts.iter().enumerate() {
        match o.name.as_str() {
            "-m" | "--match" => {
                flush_recent(&mut recent, &mut matches);
                module = o.args.first().cloned().unwrap_or_default();
            }
            "-j" | "--jump" | "-g" | "--goto" => {
                let name = o.args.first().cloned().unwrap_or_default();
                tgt = target(
                    &name,
                    &opts[k + 1..],
                    o.name.starts_with("-g") || o.name == "--goto",
                );
                break;
            }
            _ => {
                if let Some(c) = cond(&module, o, &mut recent) {
                    // --every/--packet come as two options: fold them into one Nth.
                    if let (
                        NfCond::Nth(0, p),
                        Some(NfMatch {
                            what: NfCond::Nth(_, q),
                            ..
                        }),
                    ) = (&c, matches.last_mut())
                    {
                        *q = *p;
                        continue;
                    }
                    matches.push(NfMatch {
                        negated: o.neg,
                        what: c,
                    });
                }
            }
        }
    }
    flush_recent(&mut recent, &mut matches);
    Some(NfRule {
        backend: backend.into(),
        table: table.into(),
        chain,
        matches,
        target: tgt,
        line: format!("-A {rest}"),
    })
}

fn flush_recent(recent: &mut Option<RecentOpts>, matches: &mut Vec<NfMatch>) {
    let Some(r) = recent.take() else {
        return;
    };
    let what = if r.unknown || r.check.is_none() {
        NfCond::Unknown(format!("-m recent --name {}", r.name))
    } else {
        NfCond::Recent {
            name: r.name,
            check: r.check == Some(true),
            side: r.side,
            seconds: r.seconds,
        }
    };
    matches.push(NfMatch {
        negated: r.neg,
        what,
    });
}

/// Parse `iptables-save` output (with or without `-c` counters) into rules and built-in chain
/// policies of every table.
pub fn parse_save(backend: &str, text: &str) -> (Vec<NfRule>, Vec<NfPolicy>) {
    let mut table = String::new();
    let mut rules = Vec::new();
    let mut policies = Vec::new();
    for line in text.lines() {
        // `[pkts:bytes] -A ...` with -c.
        let line = match line.strip_prefix('[') {
            Some(r) => r.split_once("] ").map_or(line, |(_, rest)| rest),
            None => line,
        };
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_string();
        } else if let Some(rest) = line.strip_prefix(':') {
            let mut w = rest.split_whitespace();
            if let (Some(chain), Some(policy)) = (w.next(), w.next())
                && policy != "-"
            {
                policies.push(NfPolicy {
                    backend: backend.into(),
                    table: table.clone(),
                    chain: chain.into(),
                    policy: policy.into(),
                });
            }
        } else if let Some(rest) = line.strip_prefix("-A ") {
            rules.extend(parse_rule(backend, &table, rest));
        }
    }
    (rules, policies)
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
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
COMMIT
*filter
:INPUT DROP [3:180]
[5:300] -A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark 0x8000/0x8000 -j DROP
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -m connmark --mark 0x1/0x1 -j ACCEPT
-A INPUT -p tcp -m multiport --dports 22,80:90 -m set ! --match-set allow src,dst -j REJECT --reject-with tcp-reset
-A FORWARD -m physdev --physdev-is-bridged --physdev-in veth1 -j ACCEPT
-A KUBE-SVC-Y -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-A --mask 255.255.255.255 --rsource -j KUBE-SEP-A
-A X -m statistic --mode nth --every 3 --packet 1 -m owner --uid-owner 0 -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff
COMMIT
"#;

    fn rules() -> (Vec<NfRule>, Vec<NfPolicy>) {
        parse_save("iptables-legacy-save", SAVE)
    }

    fn conds(r: &NfRule) -> Vec<(bool, NfCond)> {
        r.matches
            .iter()
            .map(|m| (m.negated, m.what.clone()))
            .collect()
    }

    #[test]
    fn parses_kube_proxy_and_mark_rules() {
        let (r, pol) = rules();
        assert_eq!(r.len(), 15);
        assert_eq!(
            pol,
            [
                NfPolicy {
                    backend: "iptables-legacy-save".into(),
                    table: "mangle".into(),
                    chain: "PREROUTING".into(),
                    policy: "ACCEPT".into()
                },
                NfPolicy {
                    backend: "iptables-legacy-save".into(),
                    table: "filter".into(),
                    chain: "INPUT".into(),
                    policy: "DROP".into()
                }
            ]
        );
        assert_eq!(
            r[0].target,
            NfTarget::Jump {
                chain: "CILIUM_PRE_mangle".into()
            }
        );
        assert_eq!(
            conds(&r[1])[..3],
            [
                (false, NfCond::In("eth0".into())),
                (true, NfCond::Proto("esp".into())),
                (
                    false,
                    NfCond::Mark(Mark {
                        value: 0xd00,
                        mask: 0xf00
                    })
                ),
            ]
        );
        assert_eq!(
            r[1].target,
            NfTarget::SetMark {
                value: 0,
                mask: 0xf00
            }
        );
        assert_eq!(
            r[2].matches[1].what,
            NfCond::Dst(prefix("10.0.0.0/24").unwrap())
        );
        let svc = conds(&r[3]);
        assert!(svc.contains(&(false, NfCond::Dport(80, 80))));
        assert!(svc.contains(&(
            false,
            NfCond::Comment("default/serversvc:cni cluster IP".into())
        )));
        assert_eq!(
            conds(&r[4]),
            [(false, NfCond::Random("0.50000000000".into()))]
        );
        assert_eq!(
            r[5].target,
            NfTarget::Dnat {
                to: "10.0.0.249:80".into()
            }
        );
        assert!(r[6].matches[0].negated);
        assert_eq!(r[6].target, NfTarget::Return);
        assert_eq!(
            r[7].matches[1].what,
            NfCond::AddrType {
                side: Side::Dst,
                types: vec!["LOCAL".into()],
                limit_iface: None
            }
        );
        assert_eq!(r[8].target, NfTarget::Masquerade { to_ports: None });
    }

    #[test]
    fn parses_filter_matches_and_counters() {
        let (r, _) = rules();
        assert_eq!(
            r[9].target,
            NfTarget::Drop,
            "the [5:300] counter prefix is skipped"
        );
        assert_eq!(r[9].chain, "KUBE-FIREWALL");
        assert_eq!(
            conds(&r[10]),
            [
                (
                    false,
                    NfCond::CtState(vec!["RELATED".into(), "ESTABLISHED".into()])
                ),
                (false, NfCond::ConnMark(Mark { value: 1, mask: 1 })),
            ]
        );
        assert_eq!(
            conds(&r[11])[1..],
            [
                (
                    false,
                    NfCond::Ports(Some(Side::Dst), vec![(22, 22), (80, 90)])
                ),
                (
                    true,
                    NfCond::Set {
                        name: "allow".into(),
                        flags: vec![Side::Src, Side::Dst]
                    }
                ),
            ]
        );
        assert_eq!(
            r[11].target,
            NfTarget::Reject {
                with: "tcp-reset".into()
            }
        );
        assert_eq!(
            conds(&r[12]),
            [
                (false, NfCond::PhysdevIs("bridged".into())),
                (false, NfCond::PhysdevIn("veth1".into())),
            ]
        );
        assert_eq!(
            conds(&r[13]),
            [(
                false,
                NfCond::Recent {
                    name: "KUBE-SEP-A".into(),
                    check: true,
                    side: Side::Src,
                    seconds: Some(10800)
                }
            )]
        );
        assert_eq!(
            conds(&r[14]),
            [
                (false, NfCond::Nth(3, 1)),
                (false, NfCond::Unknown("--uid-owner 0".into())),
            ]
        );
        assert_eq!(
            r[14].target,
            NfTarget::SaveMark {
                nfmask: 0xff,
                ctmask: 0xff
            }
        );
    }

    #[test]
    fn ipset_and_recent_lists() {
        let sets = parse_ipset_save(
            "create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536\nadd KUBE-CLUSTER-IP 10.96.0.1,tcp:443\nadd KUBE-CLUSTER-IP 10.96.0.10,udp:53\n",
        );
        assert_eq!(sets[0].kind, "hash:ip,port");
        assert_eq!(sets[0].members, ["10.96.0.1,tcp:443", "10.96.0.10,udp:53"]);
        assert_eq!(
            parse_recent("src=10.0.1.52 ttl: 63 last_seen: 4295 oldest_pkt: 1 4295\n"),
            ["10.0.1.52".parse::<std::net::IpAddr>().unwrap()]
        );
    }

    #[test]
    fn interface_wildcards() {
        assert!(NfCond::iface_matches("lxc+", "lxcda1dd0af135e"));
        assert!(!NfCond::iface_matches("lxc+", "eth0"));
        assert!(NfCond::iface_matches("eth0", "eth0"));
    }
}
