//! The monitor-fed state must stay the kernel's state: a change event for an object the dump
//! already showed replaces it (never a second row), a delete removes it, and after an overrun
//! and its resync the state equals a fresh dump. Run on the host kernel in throwaway netns (root).

mod common;

use common::Netns;
use common::state_diff::differences;
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

#[test]
fn after_a_netlink_overrun_storm_the_shown_state_equals_a_fresh_dump() {
    common::require_root();
    let ns = Netns::new("monstorm");
    ns.ip("link set lo up");
    ns.ip("link add hs-d type veth peer name hs-e");
    ns.ip("link set hs-d up");
    ns.ip("link set hs-e up");
    // A tiny socket buffer and queue: the storm overruns the monitor many times.
    let (m, mut live) = start(
        &ns,
        Options {
            interval: Duration::from_secs(60),
            queue: 16,
            rcvbuf: 4096,
        },
    );
    // Every kind churns: each object is added, deleted and (for most) added again, so a
    // stale add or delete applied after a resync leaves a visible difference.
    let mut batch = String::new();
    for i in 0..12_000u32 {
        let r = format!("10.{}.{}.0/24", 100 + i / 256 % 100, i % 256);
        batch += &format!("route add {r} dev hs-d\nroute del {r} dev hs-d\n");
        if i % 3 != 0 {
            batch += &format!("route add {r} dev hs-d\n");
        }
        if i % 40 == 0 {
            let n = i / 40;
            let a = format!("192.0.{}.{}/32", n / 250, n % 250 + 1);
            batch += &format!("addr add {a} dev hs-d\naddr del {a} dev hs-d\n");
            let pref = 1000 + n;
            batch += &format!("rule add pref {pref} fwmark {n} lookup 100\n");
            batch += &format!("rule del pref {pref}\n");
            let sel = format!(
                "src 10.8.{}.{}/32 dst 10.9.0.0/16 dir out",
                n / 250,
                n % 250
            );
            batch += &format!("xfrm policy add {sel} action block\nxfrm policy del {sel}\n");
            if n % 2 == 0 {
                batch += &format!("addr add {a} dev hs-d\n");
                batch += &format!("rule add pref {pref} fwmark {n} lookup 100\n");
                batch += &format!("xfrm policy add {sel} action block\n");
            }
        }
        if i % 1000 == 0 {
            let n = i / 1000;
            batch += &format!("link add hs-s{n} type veth peer name hs-t{n}\n");
            if n % 2 == 0 {
                batch += &format!("link del hs-s{n}\n");
            }
        }
    }
    // Follow the storm as the TUI does, then until the source has been quiet for a while.
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let storm = s.spawn(|| ns.ip_batch(&batch));
        while !storm.is_finished() {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "the storm never ended"
            );
            if let Some(ev) = m.recv_timeout(Duration::from_millis(20)) {
                live.apply(ev, Instant::now());
            }
        }
    });
    while let Some(ev) = m.recv_timeout(Duration::from_millis(1500)) {
        live.apply(ev, Instant::now());
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "the source never went quiet"
        );
    }
    assert!(live.resyncs >= 1, "the storm did not overrun the monitor");
    let kernel = hopscope::source::collect(&Target::Netns(ns.name.clone())).expect("dump");
    assert!(kernel.routes.len() > 8000, "{} routes", kernel.routes.len());
    let diff = differences(&live.state, &kernel);
    assert!(
        diff.is_empty(),
        "after {} resync(s) the shown state is not the kernel's:\n{}",
        live.resyncs,
        diff.join("\n")
    );
}
