//! Sources: everything that talks to the outside world. `collect` reads one complete,
//! faithful NodeState from the kernel of a network namespace.

pub(crate) mod caps;
pub mod conntrack;
pub mod context;
pub mod ipvs;
pub mod monitor;
pub mod netfilter;
pub mod netlink;
pub(crate) mod netns;
pub(crate) mod nftables;
pub(crate) mod pods;
pub mod procfs;
pub mod rt_tables;
pub(crate) mod rtnl;
pub(crate) mod xfrm;

use crate::model::{NodeInfo, NodeState};
use anyhow::{Context as _, Result};
use context::Context;
use netlink::NlSocket;
use netlink_sys::protocols::{NETLINK_ROUTE, NETLINK_XFRM};

pub use crate::model::kernel_names as names;
pub use netns::Target;

/// Read links, addresses, routes, rules, XFRM and xfrm_stat of `target`.
/// What cannot be read (rights, kernel support) becomes a warning; the rest is still shown.
pub fn collect(target: &Target) -> Result<NodeState> {
    let opened = netns::open(target)?;
    let tables = rt_tables::load();
    let mut state = netns::run_in(opened.file.as_ref(), || collect_consistent(tables))??;
    state.node = NodeInfo {
        hostname: hostname(),
        kernel: kernel(),
        netns: opened.info,
    };
    Ok(state)
}

/// The iptables rules of `target` (mangle marks, nat DNAT), read with the `*-save` tools
/// inside that netns; empty when neither backend has rules or the tools are missing.
pub fn collect_netfilter(target: &Target) -> Result<crate::model::Netfilter> {
    let opened = netns::open(target)?;
    netns::run_in(opened.file.as_ref(), netfilter::read)
}

/// How many times a dump the kernel flagged as interrupted is read again.
const DUMP_TRIES: usize = 3;

/// A dump the kernel flags as interrupted (NLM_F_DUMP_INTR: a table changed while it was
/// read) may be inconsistent: read everything again, a few times, before showing the last
/// one with its warning.
fn collect_consistent(tables: rt_tables::TableNames) -> Result<NodeState> {
    for _ in 1..DUMP_TRIES {
        let (st, interrupted) = collect_here(tables.clone())?;
        if !interrupted {
            return Ok(st);
        }
    }
    collect_here(tables).map(|(st, _)| st)
}

/// The state, and whether any of its dumps was interrupted.
fn collect_here(tables: rt_tables::TableNames) -> Result<(NodeState, bool)> {
    let mut st = NodeState::default();
    let mut sock = NlSocket::open(NETLINK_ROUTE).context("opening a NETLINK_ROUTE socket")?;
    let (links, reports) = rtnl::dump_links(&mut sock).context("dumping links and addresses")?;
    let mut ctx = Context::new(tables);
    ctx.set_links(&links);
    st.links = links;
    // Routes (NETLINK_ROUTE) and XFRM (NETLINK_XFRM) are independent dumps: read them side by
    // side. The scoped thread starts in this thread's netns.
    let ctx = &ctx;
    let (rr, xfrm) = std::thread::scope(|s| {
        let xfrm = s.spawn(|| collect_xfrm(ctx));
        let rr = rtnl::dump_routes_and_rules(&mut sock, ctx);
        (rr, xfrm.join())
    });
    let rr = rr.context("dumping routes and rules")?;
    let xfrm = xfrm.map_err(|_| anyhow::anyhow!("XFRM reader panicked"))??;
    let mut interrupted = xfrm.interrupted;
    for (what, report) in reports.iter().chain(&rr.reports) {
        st.warnings.extend(report.warnings(what));
        interrupted |= report.interrupted;
    }
    (st.routes, st.rules) = (rr.routes, rr.rules);
    st.warnings.extend(xfrm.warnings);
    st.hidden.extend(xfrm.hidden);
    (st.xfrm_states, st.xfrm_policies, st.xfrm_counts) = (xfrm.states, xfrm.policies, xfrm.counts);
    match procfs::read_xfrm_stat() {
        Ok(stats) => st.xfrm_stats = stats,
        Err(e) => st.warnings.push(format!(
            "/proc/net/xfrm_stat unreadable ({e}); the kernel may lack CONFIG_XFRM_STATISTICS"
        )),
    }
    Ok((st, interrupted))
}

#[derive(Default)]
struct XfrmPart {
    states: Vec<crate::model::XfrmState>,
    policies: Vec<crate::model::XfrmPolicy>,
    counts: crate::model::XfrmCounts,
    warnings: Vec<String>,
    hidden: Vec<String>,
    interrupted: bool,
}

/// SAs and policies; a missing right or a kernel without XFRM is a warning, not a failure.
fn collect_xfrm(ctx: &Context) -> Result<XfrmPart> {
    let mut part = XfrmPart::default();
    match NlSocket::open(NETLINK_XFRM).and_then(|mut s| xfrm::dump_all(&mut s, ctx)) {
        Ok(x) => {
            for (what, report) in &x.reports {
                part.warnings.extend(report.warnings(what));
                part.interrupted |= report.interrupted;
            }
            (part.states, part.policies, part.counts) = (x.states, x.policies, x.counts);
        }
        Err(e) if e.is_permission() => {
            part.warnings.push(format!(
                "CAP_NET_ADMIN missing: XFRM SAs and policies are not shown (the kernel refuses XFRM dumps without it); {}",
                caps::how_to_fix(caps::CAP_NET_ADMIN)
            ));
            part.hidden = vec!["xfrm_states".into(), "xfrm_policies".into()];
        }
        Err(e) if e.raw_os_error() == Some(libc::EPROTONOSUPPORT) => part.warnings.push(
            "this kernel has no XFRM netlink (xfrm_user not loaded): no SAs or policies shown"
                .into(),
        ),
        Err(e) => return Err(e).context("dumping XFRM states and policies"),
    }
    Ok(part)
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
