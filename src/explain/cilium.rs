//! Cilium's conventions for marks, routing tables and rule priorities (datapath constants
//! from Cilium's bpf/lib and linux_defaults, as of 1.13 and 1.14+).

use crate::model::Mark;

/// The "magic" in bits 8–11 of skb->mark.
const MAGIC_MASK: u32 = 0x0f00;
/// Key id (the SPI) in bits 12–15 on IPsec marks.
const KEY_MASK: u32 = 0xf000;
/// Node id in the high 16 bits of IPsec marks from Cilium 1.14 on.
const NODE_ID_MASK: u32 = 0xffff_0000;

fn magic_name(magic: u32) -> Option<&'static str> {
    Some(match magic {
        0x0200 => "to-proxy",
        0x0300 => "snat-done",
        0x0a00 => "proxy-ingress",
        0x0b00 => "proxy-egress",
        0x0c00 => "host",
        0x0d00 => "decrypt",
        0x0e00 => "encrypt",
        0x0f00 => "identity",
        _ => return None,
    })
}

/// `0x3e00/0xff00` → `encrypt, key 3`; `0xd00/0xf00` → `decrypt`; None when not Cilium's.
pub fn mark_meaning(m: &Mark) -> Option<String> {
    if m.mask & MAGIC_MASK != MAGIC_MASK {
        return None;
    }
    let mut parts = vec![magic_name(m.value & MAGIC_MASK)?.to_string()];
    let ipsec = matches!(m.value & MAGIC_MASK, 0x0d00 | 0x0e00);
    if ipsec && m.mask & KEY_MASK == KEY_MASK && m.value & KEY_MASK != 0 {
        parts.push(format!("key {}", (m.value & KEY_MASK) >> 12));
    }
    if ipsec && m.mask & NODE_ID_MASK == NODE_ID_MASK && m.value & NODE_ID_MASK != 0 {
        parts.push(format!("node {:#x}", m.value >> 16));
    }
    Some(parts.join(", "))
}

/// Meaning of a plain skb mark value (no mask), e.g. one given with `trace --mark`.
pub fn mark_value_meaning(value: u32) -> Option<String> {
    mark_meaning(&Mark {
        value,
        mask: 0xffff_ffff,
    })
}

pub fn table_meaning(id: u32) -> Option<&'static str> {
    Some(match id {
        200 => "cilium ipsec",
        201 => "cilium wireguard",
        202 => "cilium vtep",
        2004 => "cilium to-proxy",
        2005 => "cilium from-proxy",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(value: u32, mask: u32) -> Mark {
        Mark { value, mask }
    }

    #[test]
    fn seed_marks_are_named() {
        assert_eq!(
            mark_meaning(&m(0x3e00, 0xff00)).as_deref(),
            Some("encrypt, key 3")
        );
        assert_eq!(mark_meaning(&m(0xe00, 0xf00)).as_deref(), Some("encrypt"));
        assert_eq!(mark_meaning(&m(0xd00, 0xf00)).as_deref(), Some("decrypt"));
        assert_eq!(mark_meaning(&m(0x200, 0xf00)).as_deref(), Some("to-proxy"));
        assert_eq!(
            mark_meaning(&m(0xa00, 0xf00)).as_deref(),
            Some("proxy-ingress")
        );
        assert_eq!(mark_meaning(&m(0, 0xf00)), None);
        assert_eq!(mark_meaning(&m(0x1, 0xff)), None);
    }

    #[test]
    fn cilium_1_14_node_id_layout() {
        assert_eq!(
            mark_meaning(&m(0x002a_3e00, 0xffff_ff00)).as_deref(),
            Some("encrypt, key 3, node 0x2a")
        );
    }

    #[test]
    fn tables() {
        assert_eq!(table_meaning(200), Some("cilium ipsec"));
        assert_eq!(table_meaning(254), None);
    }
}
