//! Sources: everything that talks to the outside world. `collect` reads one complete,
//! faithful NodeState from the kernel of a network namespace.

pub mod caps;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod procfs;
pub mod rt_tables;
pub mod rtnl;
pub mod xfrm;

use crate::model::{NodeInfo, NodeState};
use anyhow::{Context, Result};
use netlink::NlSocket;
use netlink_sys::protocols::{NETLINK_ROUTE, NETLINK_XFRM};

pub use netns::Target;

/// Read links, addresses, routes, rules, XFRM and xfrm_stat of `target`.
/// What cannot be read (rights, kernel support) becomes a warning; the rest is still shown.
pub fn collect(target: &Target) -> Result<NodeState> {
    let opened = netns::open(target)?;
    let tables = rt_tables::load();
    let mut state = netns::run_in(opened.file.as_ref(), || collect_here(&tables))??;
    state.node = NodeInfo {
        hostname: hostname(),
        kernel: kernel(),
        netns: opened.info,
    };
    Ok(state)
}

fn collect_here(tables: &rt_tables::TableNames) -> Result<NodeState> {
    let mut st = NodeState::default();
    let mut rt = NlSocket::open(NETLINK_ROUTE).context("opening a NETLINK_ROUTE socket")?;
    let dump = rtnl::dump_all(&mut rt).context("dumping links/addresses/routes/rules")?;
    for (what, report) in &dump.reports {
        st.warnings.extend(report.warnings(what));
    }
    st.links = rtnl::links(&dump.links, &dump.addrs);
    st.routes = dump
        .routes
        .iter()
        .filter_map(|m| rtnl::route(m, &st.links, tables))
        .collect();
    st.rules = dump
        .rules
        .iter()
        .filter_map(|m| rtnl::rule(m, tables))
        .collect();

    let dev_name = |idx: i32| {
        st.links
            .iter()
            .find(|l| l.index as i32 == idx)
            .map(|l| l.name.clone())
    };
    match NlSocket::open(NETLINK_XFRM).and_then(|mut s| xfrm::dump_all(&mut s)) {
        Ok(x) => {
            for (what, report) in &x.reports {
                st.warnings.extend(report.warnings(what));
            }
            st.xfrm_states = x.states.iter().map(|m| xfrm::state(m, dev_name)).collect();
            st.xfrm_policies = x.policies.iter().map(|m| xfrm::policy(m, dev_name)).collect();
            st.xfrm_counts = x.counts;
        }
        Err(e) if e.is_permission() => st.warnings.push(format!(
            "CAP_NET_ADMIN missing: XFRM SAs and policies are not shown (the kernel refuses XFRM dumps without it); {}",
            caps::how_to_fix(caps::CAP_NET_ADMIN)
        )),
        Err(e) if e.raw_os_error() == Some(libc::EPROTONOSUPPORT) => {
            st.warnings.push("this kernel has no XFRM netlink (xfrm_user not loaded): no SAs or policies shown".into())
        }
        Err(e) => return Err(e).context("dumping XFRM states and policies"),
    }
    match procfs::read_xfrm_stat() {
        Ok(stats) => st.xfrm_stats = stats,
        Err(e) => st.warnings.push(format!(
            "/proc/net/xfrm_stat unreadable ({e}); the kernel may lack CONFIG_XFRM_STATISTICS"
        )),
    }
    Ok(st)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
