//! The monitor-fed state must stay the kernel's state: a change event for an object the dump
//! already showed replaces it (never a second row), a delete removes it, and after an overrun
//! and its resync the state equals a fresh dump. Run on the host kernel in throwaway netns (root).

mod common;

use common::Netns;
use hopscope::model::NodeState;
use hopscope::model::event::Live;
use hopscope::source::Target;
use hopscope::source::monitor::{Monitor, Options};
use std::time::{Duration, Instant};

fn start(ns: &Netns, opts: Options) -> (Monitor, Live) {
    let m = Monitor::start(&Target::Netns(ns.name.clone()), &opts).expect("monitor starts");
    let mut live = Live::default();
    apply_until(&m, &mut live, "first dump", Duration::from_secs(5), |l| {
        l.loaded
    });
    (m, live)
}

/// Apply events until `cond` holds; fail after `limit`.
fn apply_until(
    m: &Monitor,
    live: &mut Live,
    what: &str,
    limit: Duration,
    cond: impl Fn(&Live) -> bool,
) {
    let t0 = Instant::now();
    while !cond(live) {
        assert!(
            t0.elapsed() < limit,
            "{what}: not seen within {limit:?}; notices: {:?}",
            live.notices
        );
        if let Some(ev) = m.recv_timeout(Duration::from_millis(50)) {
            live.apply(ev, Instant::now());
        }
    }
}

#[test]
fn a_policy_update_with_a_dev_selector_replaces_the_dumped_policy_and_its_delete_removes_it() {
    common::require_root();
    let ns = Netns::new("mondev");
    ns.ip("link add hs-x type veth peer name hs-y");
    ns.ip("link set hs-x up");
    let sel = "src 10.9.1.0/24 dst 10.9.2.0/24 dev hs-x dir out";
    let tmpl = "tmpl src 10.9.1.1 dst 10.9.2.1 proto esp reqid 1 mode tunnel";
    ns.ip(&format!("xfrm policy add {sel} priority 10 {tmpl}"));
    let (m, mut live) = start(
        &ns,
        Options {
            interval: Duration::from_secs(5),
            ..Default::default()
        },
    );
    let ours = |st: &NodeState| {
        st.xfrm_policies
            .iter()
            .filter(|p| p.selector.dst.to_string() == "10.9.2.0/24")
            .map(|p| (p.priority, p.selector.dev.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ours(&live.state),
        [(10, Some("hs-x".to_string()))],
        "dumped"
    );

    // The same policy (same selector) with a new priority: the kernel replaces it.
    ns.ip(&format!("xfrm policy update {sel} priority 20 {tmpl}"));
    apply_until(&m, &mut live, "the update", Duration::from_secs(2), |l| {
        ours(&l.state).iter().any(|(prio, _)| *prio == 20)
    });
    assert_eq!(
        ours(&live.state),
        [(20, Some("hs-x".to_string()))],
        "an update of a dumped policy is one row, named as the dump names it"
    );

    ns.ip(&format!("xfrm policy del {sel}"));
    apply_until(&m, &mut live, "the delete", Duration::from_secs(2), |l| {
        ours(&l.state).is_empty()
    });
}
