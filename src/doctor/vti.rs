//! VTI devices against the node's policies: what a VTI decrypts is scrubbed (no transform on
//! record) and, unless disable_policy is on on the VTI, meets its in/fwd policy check again
//! with its own mark; a policy that matches it there and requires ESP drops it. And
//! disable_xfrm on a VTI skips its own lookup, so nothing it sends is encrypted. Both as the
//! lab's kernel showed (docs/layouts/route-based.md).

use super::finding::{Finding, Object, Severity};
use super::ipfmt;
use super::node::{NodeView, is_block};
use crate::model::{Family, PolicyDir, Prefix, TemplateLevel, Tunnel};

pub fn vti_policy_checks(v: &NodeView, out: &mut Vec<Finding>) {
    let st = v.st;
    for l in st.links.iter().filter(|l| l.is_up()) {
        if !matches!(l.tunnel, Some(Tunnel::Vti { .. })) {
            continue;
        }
        if l.xfrm_conf.disable_xfrm() {
            out.push(
                Finding::new(
                    v.name,
                    Severity::Fail,
                    "vti-disable-xfrm",
                    format!(
                        "disable_xfrm is on on VTI {}: its own XFRM lookup is skipped, so it finds no SA and drops everything routed into it ({} tx carrier errors)",
                        l.name, l.name
                    ),
                )
                .fix(format!("sysctl -w net.ipv4.conf.{}.disable_xfrm=0", l.name)),
            );
        }
        if l.xfrm_conf.disable_policy(Family::V4) != Some(false) {
            continue;
        }
        // The remote sites: what is routed into the VTI is what comes back out of it.
        let sites: Vec<Prefix> = st
            .routes
            .iter()
            .filter(|r| r.dev.as_ref().and_then(|d| d.name.as_deref()) == Some(&l.name))
            .filter_map(|r| r.dst)
            .filter(|p| p.family() == Family::V4)
            .collect();
        let overlaps = |a: &Prefix, b: &Prefix| a.contains(&b.addr) || b.contains(&a.addr);
        for (i, p) in st.xfrm_policies.iter().enumerate() {
            let checks_it = matches!(p.dir, PolicyDir::In | PolicyDir::Fwd)
                && p.mark.is_none_or(|m| m.value == 0)
                && p.if_id.unwrap_or(0) == 0
                && sites.iter().any(|s| overlaps(s, &p.selector.src));
            let drops = is_block(p) || p.templates.iter().any(|t| t.level != TemplateLevel::Use);
            if !(checks_it && drops) {
                continue;
            }
            out.push(
                Finding::new(
                    v.name,
                    Severity::Fail,
                    "vti-policy-check",
                    format!(
                        "what VTI {} decrypts meets {} again (disable_policy is off on {}): the VTI left no transform on record, so the kernel drops it ({})",
                        l.name,
                        ipfmt::policy(p),
                        l.name,
                        if is_block(p) { "XfrmInPolBlock" } else { "XfrmInTmplMismatch" }
                    ),
                )
                .object(Object::Policy(i))
                .cause("the VTI checked the in policy with its ikey already; this second check with the packet's own mark is the one strongSwan switches off")
                .fix(format!(
                    "sysctl -w net.ipv4.conf.{}.disable_policy=1 (as strongSwan's and libreswan's VTI setup does), or give that policy a mark",
                    l.name
                )),
            );
        }
    }
}
