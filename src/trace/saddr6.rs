//! IPv6 source address selection as the kernel's ipv6_dev_get_saddr makes it: MASQUERADE
//! picks its IPv6 address this way (and so does a route without `src`), so the trace must too.
//! RFC 6724 section 5's rules in the kernel's order, with its defaults: 1 prefer the same
//! address, 2 appropriate scope, 3 avoid deprecated (and optimistic) addresses, 5 prefer the
//! outgoing interface, 6 matching label (the default policy table), 7 prefer public over
//! temporary addresses, then Linux's own ORCHID rule, 8 longest matching prefix (capped at the
//! address's prefix length), and last prefer non-optimistic. Rule 4 (home addresses) is
//! compiled out of common kernels. Tentative addresses that are not optimistic are no
//! candidates. Assumed, not read: `ip addrlabel` left at its default table, use_tempaddr < 2,
//! use_optimistic 0. The first candidate wins a tie, in device then address dump order (the
//! kernel's list order: global scope first, newest first).

use crate::model::{AddrFlag, Family, LinkAddress, NodeState};
use std::net::Ipv6Addr;

/// The chosen address and the rule that set it apart from the next best candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub addr: Ipv6Addr,
    pub why: String,
}

/// The rules by which candidates are compared, in order (higher is better), as named on a hop.
const RULES: [&str; 10] = [
    "rule 1: the destination itself",
    "rule 2: appropriate scope",
    "rule 3: avoid deprecated and optimistic addresses",
    "rule 5: prefer the outgoing interface",
    "rule 6: matching label",
    "rule 7: prefer public addresses",
    "Linux's ORCHID rule",
    "rule 8: longest matching prefix",
    "prefer non-optimistic addresses",
    "",
];

/// The scope of an address as the kernel's __ipv6_addr_src_scope gives it (1 interface, 2
/// link, 5 site, 8 organisation, 14 global): unique local and v4-mapped addresses are global,
/// the loopback address link scope.
fn scope(a: &Ipv6Addr) -> i32 {
    let o = a.octets();
    if a.is_multicast() {
        return i32::from(o[1] & 0x0f);
    }
    let seg = a.segments();
    if seg[0] & 0xffc0 == 0xfe80 || *a == Ipv6Addr::LOCALHOST {
        2
    } else if seg[0] & 0xffc0 == 0xfec0 {
        5
    } else {
        14
    }
}

/// The label of the kernel's default policy table (net/ipv6/addrlabel.c): longest prefix first.
fn label(a: &Ipv6Addr) -> u32 {
    const TABLE: [(u128, u8, u32); 10] = [
        (1, 128, 0),                // ::1
        (0xffff_0000_0000, 96, 4),  // ::ffff:0:0/96
        (0, 96, 3),                 // ::/96
        (0x2001_0000 << 96, 32, 6), // 2001::/32 (Teredo)
        (0x2001_0010 << 96, 28, 7), // 2001:10::/28 (ORCHID)
        (0x2002 << 112, 16, 2),     // 2002::/16 (6to4)
        (0x3ffe << 112, 16, 12),    // 3ffe::/16 (6bone)
        (0xfec0 << 112, 10, 11),    // fec0::/10 (site-local)
        (0xfc00 << 112, 7, 5),      // fc00::/7 (unique local)
        (0, 0, 1),                  // ::/0
    ];
    let v = u128::from(*a);
    let mut best = (0u8, 1u32);
    for (net, len, l) in TABLE {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        if v & mask == net & mask && len >= best.0 {
            best = (len, l);
        }
    }
    best.1
}

fn orchid(a: &Ipv6Addr) -> bool {
    a.segments()[0] == 0x2001 && a.segments()[1] & 0xfff0 == 0x0010
}

/// Whether the kernel considers the address at all: tentative (DAD not done) only when
/// optimistic; never the unspecified address or a multicast one.
fn candidate(a: &LinkAddress) -> Option<Ipv6Addr> {
    if a.family != Family::V6 || (a.has(AddrFlag::Tentative) && !a.has(AddrFlag::Optimistic)) {
        return None;
    }
    let ip: Ipv6Addr = a.address.parse().ok()?;
    (!ip.is_unspecified() && !ip.is_multicast()).then_some(ip)
}

/// The address the kernel takes as source towards `dst` leaving by `oif` (None: no device
/// known, rule 5 then holds for every address).
pub fn select(st: &NodeState, oif: Option<&str>, dst: Ipv6Addr) -> Option<Chosen> {
    let dst_scope = scope(&dst);
    let oif_index = oif.and_then(|d| st.link_by_name(d)).map(|l| l.index);
    // A link-scope or multicast destination takes an address of the outgoing device only.
    let only_oif = dst.is_multicast() || dst_scope <= 2;
    let mut links: Vec<_> = st
        .links
        .iter()
        .filter(|l| !only_oif || Some(l.index) == oif_index)
        .collect();
    links.sort_by_key(|l| l.index);
    let dst_label = label(&dst);
    let score = |ip: &Ipv6Addr, a: &LinkAddress, index: u32| -> [i32; 9] {
        let s = scope(ip);
        let bits = (u128::from(*ip) ^ u128::from(dst)).leading_zeros() as i32;
        [
            i32::from(*ip == dst),
            if s >= dst_scope { -s } else { s - 128 },
            // The kernel's ipv6_saddr_preferred: the loopback address is never avoided.
            i32::from(
                *ip == Ipv6Addr::LOCALHOST
                    || !(a.has(AddrFlag::Deprecated) || a.has(AddrFlag::Optimistic)),
            ),
            i32::from(oif_index.is_none_or(|o| o == index)),
            i32::from(label(ip) == dst_label),
            i32::from(!a.has(AddrFlag::Secondary)),
            i32::from(orchid(ip) == orchid(&dst)),
            bits.min(i32::from(a.prefix_len)),
            i32::from(!a.has(AddrFlag::Optimistic)),
        ]
    };
    let mut best: Option<(Ipv6Addr, [i32; 9])> = None;
    let mut second: Option<[i32; 9]> = None;
    for l in links {
        for a in &l.addresses {
            let Some(ip) = candidate(a) else { continue };
            let s = score(&ip, a, l.index);
            match &best {
                Some((_, b)) if s <= *b => {
                    if second.is_none_or(|x| s > x) {
                        second = Some(s);
                    }
                }
                _ => {
                    second = best.map(|(_, b)| b);
                    best = Some((ip, s));
                }
            }
        }
    }
    let (addr, s) = best?;
    let why = match second {
        None => "the only candidate".to_string(),
        Some(o) => match (0..9).find(|&i| s[i] != o[i]) {
            Some(i) => format!("chosen by RFC 6724 {}", RULES[i]),
            None => "the first of equal candidates".to_string(),
        },
    };
    Some(Chosen { addr, why })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Link;

    fn addr(a: &str, len: u8, flags: &[AddrFlag]) -> LinkAddress {
        LinkAddress {
            family: Family::V6,
            address: a.into(),
            prefix_len: len,
            scope: "global".into(),
            label: None,
            flags: flags.to_vec(),
        }
    }

    fn node(addrs: Vec<(&str, Vec<LinkAddress>)>) -> NodeState {
        let mut st = NodeState::default();
        for (i, (name, a)) in addrs.into_iter().enumerate() {
            st.links.push(Link {
                index: i as u32 + 1,
                name: name.into(),
                kind: None,
                flags: vec![],
                mtu: None,
                mac: None,
                master: None,
                qdisc: None,
                oper_state: crate::model::OperState::Up,
                peer: None,
                addresses: a,
                stats: Default::default(),
                tunnel: None,
                xfrm_conf: Default::default(),
            });
        }
        st
    }

    fn pick(st: &NodeState, oif: &str, dst: &str) -> Option<String> {
        select(st, Some(oif), dst.parse().unwrap()).map(|c| c.addr.to_string())
    }

    /// The choice among `addrs`, all on eth0, the outgoing device.
    fn on_eth0(addrs: Vec<LinkAddress>, dst: &str) -> Chosen {
        select(
            &node(vec![("eth0", addrs)]),
            Some("eth0"),
            dst.parse().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn tentative_addresses_are_skipped_unless_optimistic() {
        let tentative = addr("2001:db8::1", 64, &[AddrFlag::Tentative]);
        let c = on_eth0(vec![tentative, addr("2001:db8::2", 64, &[])], "2001:db8::9");
        assert_eq!(c.addr.to_string(), "2001:db8::2");
        let optimistic = addr(
            "2001:db8::1",
            64,
            &[AddrFlag::Tentative, AddrFlag::Optimistic],
        );
        assert_eq!(
            on_eth0(vec![optimistic], "2001:db8::9").addr.to_string(),
            "2001:db8::1"
        );
    }

    #[test]
    fn deprecated_loses_to_a_preferred_address_but_is_used_when_alone() {
        let deprecated = addr("2001:db8::1", 128, &[AddrFlag::Deprecated]);
        let c = on_eth0(
            vec![deprecated.clone(), addr("2001:db9::2", 64, &[])],
            "2001:db8::9",
        );
        assert_eq!(c.addr.to_string(), "2001:db9::2");
        assert!(c.why.contains("rule 3"), "{c:?}");
        assert_eq!(
            on_eth0(vec![deprecated], "2001:db8::9").addr.to_string(),
            "2001:db8::1"
        );
    }

    #[test]
    fn matching_label_comes_before_the_longest_prefix() {
        // 2001::/32 (Teredo) has a label of its own: 3000::1 shares fewer bits with
        // 2001:db8::9 but its label (::/0's) is the destination's.
        let c = on_eth0(
            vec![addr("2001::1", 64, &[]), addr("3000::1", 64, &[])],
            "2001:db8::9",
        );
        assert_eq!(c.addr.to_string(), "3000::1");
        assert!(c.why.contains("rule 6"), "{c:?}");
    }

    #[test]
    fn longest_prefix_is_capped_at_the_address_prefix_length() {
        // The first shares 125 bits with the destination but counts only its /48; the second
        // shares 63.
        let c = on_eth0(
            vec![
                addr("2001:db8:0:3::1", 48, &[]),
                addr("2001:db8:0:2::1", 64, &[]),
            ],
            "2001:db8:0:3::9",
        );
        assert_eq!(c.addr.to_string(), "2001:db8:0:2::1");
        assert!(c.why.contains("rule 8"), "{c:?}");
    }

    #[test]
    fn scope_then_interface_then_label_then_prefix() {
        let st = node(vec![
            (
                "eth0",
                vec![addr("fe80::1", 64, &[]), addr("fd00::1", 64, &[])],
            ),
            ("eth1", vec![addr("2001:db8:1::1", 64, &[])]),
        ]);
        // Global scope beats link scope; the outgoing device beats a longer prefix elsewhere.
        assert_eq!(
            pick(&st, "eth0", "2001:db8:1::9").as_deref(),
            Some("fd00::1")
        );
        // The outgoing device comes before the label: eth1's address, not the ULA.
        assert_eq!(
            pick(&st, "eth1", "fd00::9").as_deref(),
            Some("2001:db8:1::1")
        );
        // A link-local destination takes the outgoing device's addresses only (eth0's
        // link-local one is nearer in scope, but not eth1's).
        assert_eq!(
            pick(&st, "eth1", "fe80::9").as_deref(),
            Some("2001:db8:1::1")
        );
        assert_eq!(pick(&st, "eth0", "fe80::9").as_deref(), Some("fe80::1"));
    }
}
