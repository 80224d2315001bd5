//! What a device's disable_policy / disable_xfrm mean for the IPsec traffic through it, as
//! the lab's kernel (6.1) showed: the TUI's link detail and the trace say the same thing.

use crate::model::{Family, Link, Tunnel};

/// One line per switch that matters on this device: for a VTI or an xfrm interface both
/// settings of disable_policy (they decide the decrypted packets' fate), for any other device
/// the switches that are on.
pub fn meaning(l: &Link) -> Vec<String> {
    let c = &l.xfrm_conf;
    let mut out = vec![];
    for fam in [Family::V4, Family::V6] {
        let Some(on) = c.disable_policy(fam) else {
            continue;
        };
        let what = match (&l.tunnel, on) {
            (Some(Tunnel::Vti { .. }), true) => {
                "what the VTI decrypted meets no in/fwd policy check of its own (vti_rcv_cb already checked the in policy with the ikey)"
            }
            (Some(Tunnel::Vti { .. }), false) => {
                "what the VTI decrypted meets the in/fwd policy check again with its own mark and no transform on record (the VTI scrubbed it): a matching policy that requires ESP drops it (XfrmInTmplMismatch), no matching policy lets it pass"
            }
            (Some(Tunnel::Xfrm { .. }), true) => {
                "what the xfrm interface decrypted skips its in/fwd policy check"
            }
            (Some(Tunnel::Xfrm { .. }), false) => {
                "what the xfrm interface decrypted must match an in/fwd policy with its if_id (else XfrmInNoPols)"
            }
            (_, true) => "packets received here skip their in/fwd policy check",
            (_, false) => continue,
        };
        let fam = if fam == Family::V4 { "ipv4" } else { "ipv6" };
        let state = if on { "on" } else { "off" };
        out.push(format!("{fam} disable_policy {state}: {what}"));
    }
    if c.disable_xfrm() {
        out.push(match l.tunnel {
            Some(Tunnel::Vti { .. }) => "ipv4 disable_xfrm on: the VTI's own XFRM lookup is skipped, so it finds no SA and drops what it sends (tx carrier errors)".into(),
            Some(Tunnel::Xfrm { .. }) => "ipv4 disable_xfrm on: no effect on the xfrm interface's own lookup (it looks up with its if_id)".into(),
            _ => "ipv4 disable_xfrm on: packets routed out of here skip the XFRM lookup (no policy encrypts them)".into(),
        });
    }
    out
}
