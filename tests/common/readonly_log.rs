//! What in an `strace -f` log of hopscope changed (or could have changed) the node: any
//! netlink request that is not a GET/dump (by each socket's protocol: rtnetlink, XFRM,
//! netfilter, sock_diag, generic), any write-open of /proc or /sys (a sysctl), any iptables
//! setsockopt that replaces rules, and any program run other than a rules *lister*. Shared by
//! tests/readonly.rs (host) and tests/lab_netfilter.rs (IPVS, in the lab).
#![allow(dead_code)] // each includer uses its part

use std::collections::HashMap;

/// A netlink message type that only reads, for the socket's protocol.
pub fn is_read(protocol: &str, t: u32) -> bool {
    match protocol {
        // RTM_NEW*/DEL*/GET*/SET* come in fours from 16: GET is base + 2.
        "NETLINK_ROUTE" => t >= 16 && t % 4 == 2,
        // XFRM_MSG_GETSA, GETPOLICY, GETAE, GETSADINFO, GETSPDINFO, GETDEFAULT.
        "NETLINK_XFRM" => matches!(t, 0x12 | 0x15 | 0x1f | 0x23 | 0x25 | 0x28),
        // subsystem << 8 | message: ctnetlink's GET, GET_STATS(_CPU), GET_DYING/UNCONFIRMED
        // (not GET_CTRZERO); nftables' GET* messages.
        "NETLINK_NETFILTER" => match (t >> 8, t & 0xff) {
            (1, m) => matches!(m, 1 | 4 | 5 | 6 | 7),
            (10, m) => matches!(m, 1 | 4 | 7 | 10 | 13 | 16 | 19 | 23),
            _ => false,
        },
        "NETLINK_SOCK_DIAG" => t == 20,
        _ => false,
    }
}

/// Generic netlink is judged by family and command (the byte after the netlink header):
/// nlctrl (id 0x10) only for CTRL_CMD_GETFAMILY; IPVS — strace names it, or prints its
/// dynamic id as a number — only for IPVS_CMD_GET_SERVICE, GET_DEST, GET_DAEMON,
/// GET_CONFIG and GET_INFO. Any other family is not one hopscope reads.
pub fn generic_is_read(family: &str, cmd: u8) -> bool {
    let numeric = family.starts_with("0x") || family.parse::<u32>().is_ok();
    match family {
        "nlctrl" | "0x10" | "16" => cmd == 3,
        _ if family == "IPVS" || numeric => matches!(cmd, 4 | 8 | 11 | 13 | 15),
        _ => false,
    }
}

/// The generic-netlink command of a message strace printed as `…}, "\x04\x01…`.
pub fn genl_cmd(after_type: &str) -> Option<u8> {
    let (_, data) = after_type.split_once("}, \"\\x")?;
    u8::from_str_radix(data.get(..2)?, 16).ok()
}

/// One netlink request an strace log shows: the socket's protocol, the message type as strace
/// printed it (a number or a name), and for generic netlink its command.
pub struct Request {
    pub protocol: String,
    pub kind: String,
    pub genl_cmd: Option<u8>,
    pub line: String,
}

/// Every netlink request of the log, by the protocol of the socket it was sent on.
pub fn netlink_requests(log: &str) -> Vec<Request> {
    let mut protocol: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for line in log.lines() {
        let call = line.split_once(' ').map_or(line, |(_, c)| c.trim_start());
        if call.starts_with("socket(AF_NETLINK") {
            // socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE) = 4
            let proto = call.split(", ").nth(2).and_then(|p| p.split(')').next());
            let fd = call.rsplit("= ").next().map(str::trim);
            if let (Some(p), Some(fd)) = (proto, fd) {
                protocol.insert(fd.to_string(), p.to_string());
            }
        } else if call.starts_with("sendto(") || call.starts_with("sendmsg(") {
            let fd = call
                .split_once('(')
                .and_then(|(_, r)| r.split([',', '<']).next())
                .unwrap_or("");
            let Some(p) = protocol.get(fd) else {
                continue; // not a netlink socket of ours (e.g. the names watch's TLS)
            };
            for ty in call.split("nlmsg_type=").skip(1) {
                out.push(Request {
                    protocol: p.clone(),
                    kind: ty.split([',', ' ']).next().unwrap_or("").to_string(),
                    genl_cmd: genl_cmd(ty),
                    line: line.to_string(),
                });
            }
        }
    }
    out
}

/// What in an strace log changed (or could have changed) the node.
pub fn violations(log: &str, hs: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for r in netlink_requests(log) {
        let (p, tok, line) = (&r.protocol, &r.kind, &r.line);
        if p == "NETLINK_GENERIC" {
            match r.genl_cmd {
                Some(c) if generic_is_read(tok, c) => {}
                c => bad.push(format!("generic netlink {tok} command {c:?}: {line}")),
            }
            continue;
        }
        let t = tok
            .strip_prefix("0x")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .or_else(|| tok.parse().ok());
        match t {
            Some(t) if is_read(p, t) => {}
            _ => bad.push(format!("{p} request type {tok}: {line}")),
        }
    }
    for line in log.lines() {
        let call = line.split_once(' ').map_or(line, |(_, c)| c.trim_start());
        if call.starts_with("open") {
            let writes = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
                .iter()
                .any(|f| call.contains(f));
            if writes && (call.contains("\"/proc/") || call.contains("\"/sys/")) {
                bad.push(format!("write-open of a kernel setting: {line}"));
            }
        } else if call.starts_with("setsockopt(") {
            if ["_SO_SET_REPLACE", "_SO_SET_ADD_COUNTERS", "EBT_SO_SET"]
                .iter()
                .any(|o| call.contains(o))
            {
                bad.push(format!("netfilter change: {line}"));
            }
        } else if call.starts_with("execve(\"") && !call.contains("= -1") {
            let prog = call["execve(\"".len()..].split('"').next().unwrap_or("");
            let name = prog.rsplit('/').next().unwrap_or(prog);
            let argv: Vec<&str> = call
                .split_once(", [")
                .and_then(|(_, rest)| rest.split_once(']'))
                .map(|(a, _)| a.split(", ").map(|w| w.trim_matches('"')).collect())
                .unwrap_or_default();
            if prog != hs && !name.ends_with("-save") && !is_lister(name, &argv) {
                bad.push(format!("ran {prog}: {line}"));
            }
        }
    }
    bad
}

/// A rules or state *lister* other than `*-save`: `nft list …`, `ipset save|list`,
/// `conntrack -L`. Any verb that changes something (add, delete, flush, -f FILE…) is not one.
fn is_lister(name: &str, argv: &[&str]) -> bool {
    let args = argv.get(1..).unwrap_or(&[]);
    let writes = [
        "add", "create", "delete", "destroy", "flush", "insert", "replace", "reset", "rename",
        "-f", "--file", "-D", "-F", "-U", "-I",
    ];
    if args.iter().any(|a| writes.contains(a)) {
        return false;
    }
    match name {
        "nft" => args.contains(&"list"),
        "ipset" => args.first().is_some_and(|a| *a == "save" || *a == "list"),
        "conntrack" => args.iter().any(|a| *a == "-L" || *a == "--dump"),
        _ => false,
    }
}
