//! The names iproute2 gives to kernel constants, so our output reads like `ip`'s.

use super::LinkFlag;

pub fn route_type(t: u8) -> String {
    super::RouteKind::from_number(t).to_string()
}

pub fn scope(s: u8) -> String {
    super::Scope::from_number(s).to_string()
}

pub fn route_protocol(p: u8) -> String {
    super::RouteProtocol::from_number(p).to_string()
}

/// IFF_* flag names in the order `ip link` prints them (like ip, RUNNING is left out:
/// oper_state says it).
pub fn link_flags(flags: u32) -> Vec<LinkFlag> {
    const NAMES: [(u32, LinkFlag); 18] = [
        (1 << 3, LinkFlag::Loopback),
        (1 << 1, LinkFlag::Broadcast),
        (1 << 4, LinkFlag::PointToPoint),
        (1 << 12, LinkFlag::Multicast),
        (1 << 7, LinkFlag::NoArp),
        (1 << 9, LinkFlag::AllMulti),
        (1 << 8, LinkFlag::Promisc),
        (1 << 10, LinkFlag::Master),
        (1 << 11, LinkFlag::Slave),
        (1 << 2, LinkFlag::Debug),
        (1 << 15, LinkFlag::Dynamic),
        (1 << 14, LinkFlag::AutoMedia),
        (1 << 13, LinkFlag::PortSel),
        (1 << 5, LinkFlag::NoTrailers),
        (1 << 0, LinkFlag::Up),
        (1 << 16, LinkFlag::LowerUp),
        (1 << 17, LinkFlag::Dormant),
        (1 << 18, LinkFlag::Echo),
    ];
    let mut names: Vec<LinkFlag> = NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, f)| *f)
        .collect();
    // Up but no carrier: ip leads with NO-CARRIER, the first thing a reader should see.
    if flags & 1 != 0 && flags & (1 << 16) == 0 {
        names.insert(0, LinkFlag::NoCarrier);
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
        assert_eq!(
            super::super::RuleAction::from_number(1).to_string(),
            "lookup"
        );
        assert_eq!(super::super::RuleAction::from_number(5).to_string(), "5");
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
