//! The names iproute2 gives to kernel constants, so our output reads like `ip`'s.

pub fn route_type(t: u8) -> String {
    const NAMES: [&str; 12] = [
        "unspec",
        "unicast",
        "local",
        "broadcast",
        "anycast",
        "multicast",
        "blackhole",
        "unreachable",
        "prohibit",
        "throw",
        "nat",
        "xresolve",
    ];
    NAMES
        .get(usize::from(t))
        .map_or_else(|| t.to_string(), |s| s.to_string())
}

pub fn scope(s: u8) -> String {
    match s {
        0 => "global".into(),
        200 => "site".into(),
        253 => "link".into(),
        254 => "host".into(),
        255 => "nowhere".into(),
        n => n.to_string(),
    }
}

pub fn route_protocol(p: u8) -> String {
    let name = match p {
        0 => "unspec",
        1 => "redirect",
        2 => "kernel",
        3 => "boot",
        4 => "static",
        8 => "gated",
        9 => "ra",
        10 => "mrt",
        11 => "zebra",
        12 => "bird",
        13 => "dnrouted",
        14 => "xorp",
        15 => "ntk",
        16 => "dhcp",
        17 => "mrouted",
        18 => "keepalived",
        42 => "babel",
        99 => "openr",
        186 => "bgp",
        187 => "isis",
        188 => "ospf",
        189 => "rip",
        192 => "eigrp",
        n => return n.to_string(),
    };
    name.into()
}

pub fn rule_action(a: u8) -> String {
    match a {
        1 => "lookup".into(),
        2 => "goto".into(),
        3 => "nop".into(),
        6 => "blackhole".into(),
        7 => "unreachable".into(),
        8 => "prohibit".into(),
        n => n.to_string(),
    }
}

/// IFF_* flag names in the order `ip link` prints them (like ip, RUNNING is left out:
/// oper_state says it).
pub fn link_flags(flags: u32) -> Vec<String> {
    const NAMES: [(u32, &str); 18] = [
        (1 << 3, "LOOPBACK"),
        (1 << 1, "BROADCAST"),
        (1 << 4, "POINTOPOINT"),
        (1 << 12, "MULTICAST"),
        (1 << 7, "NOARP"),
        (1 << 9, "ALLMULTI"),
        (1 << 8, "PROMISC"),
        (1 << 10, "MASTER"),
        (1 << 11, "SLAVE"),
        (1 << 2, "DEBUG"),
        (1 << 15, "DYNAMIC"),
        (1 << 14, "AUTOMEDIA"),
        (1 << 13, "PORTSEL"),
        (1 << 5, "NOTRAILERS"),
        (1 << 0, "UP"),
        (1 << 16, "LOWER_UP"),
        (1 << 17, "DORMANT"),
        (1 << 18, "ECHO"),
    ];
    let mut names: Vec<String> = NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    // Up but no carrier: ip leads with NO-CARRIER, the first thing a reader should see.
    if flags & 1 != 0 && flags & (1 << 16) == 0 {
        names.insert(0, "NO-CARRIER".into());
    }
    names
}

/// IP protocol numbers as XFRM selectors and `ip xfrm` name them.
pub fn ip_proto(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        58 => "ipv6-icmp".into(),
        108 => "comp".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_iproute2() {
        assert_eq!(route_type(2), "local");
        assert_eq!(route_type(200), "200");
        assert_eq!(scope(253), "link");
        assert_eq!(route_protocol(2), "kernel");
        assert_eq!(route_protocol(50), "50");
        assert_eq!(rule_action(1), "lookup");
        assert_eq!(
            link_flags(0x1_1083),
            ["BROADCAST", "MULTICAST", "NOARP", "UP", "LOWER_UP"]
        );
        assert_eq!(ip_proto(50), "esp");
        assert_eq!(
            link_flags(0x1003),
            ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP"]
        );
    }
}
