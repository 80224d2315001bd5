//! The live source against a throwaway netns on the host kernel (root): changes made with
//! `ip` arrive as events within a second and fold into the state; counters are sampled.

mod common;

use common::Netns;
use hopscope::model::event::{Event, Live};
use hopscope::source::Target;
use hopscope::source::monitor::{Monitor, Options};
use std::time::{Duration, Instant};

fn start(ns: &Netns) -> (Monitor, Live) {
    let m = Monitor::start(
        &Target::Netns(ns.name.clone()),
        &Options {
            interval: Duration::from_millis(200),
            ..Default::default()
        },
    )
    .expect("monitor starts");
    let mut live = Live::default();
    wait(&m, &mut live, "first dump", |l| l.loaded);
    (m, live)
}

/// Apply events until `cond` holds; fail after 2 s (the issue asks for < 1 s).
fn wait(m: &Monitor, live: &mut Live, what: &str, cond: impl Fn(&Live) -> bool) -> Duration {
    let t0 = Instant::now();
    while !cond(live) {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{what}: not seen within 2 s; notices: {:?}",
            live.notices
        );
        if let Some(ev) = m.recv_timeout(Duration::from_millis(50)) {
            if let Event::SourceError(e) = &ev {
                eprintln!("source error: {e}");
            }
            live.apply(ev, Instant::now());
        }
    }
    t0.elapsed()
}

#[test]
fn changes_arrive_by_multicast_and_go_away() {
    let ns = Netns::new("mon");
    ns.ip("link set lo up");
    let (m, mut live) = start(&ns);

    ns.ip("link add hs-a type veth peer name hs-b");
    ns.ip("link set hs-a up");
    ns.ip("addr add 192.0.2.1/24 dev hs-a");
    let t = wait(&m, &mut live, "veth + address", |l| {
        l.state
            .link_by_name("hs-a")
            .is_some_and(|a| a.addresses.iter().any(|x| x.address == "192.0.2.1"))
            && l.state.link_by_name("hs-b").is_some()
    });
    assert!(t < Duration::from_secs(1), "took {t:?}");
    let a = live.state.link_by_name("hs-a").unwrap();
    assert_eq!(
        a.peer.as_ref().and_then(|p| p.name.as_deref()),
        Some("hs-b"),
        "veth peer resolved"
    );

    ns.ip("route add 198.51.100.0/24 via 192.0.2.2 dev hs-a table 200");
    wait(&m, &mut live, "route in table 200", |l| {
        l.state.routes.iter().any(|r| {
            r.table.id == 200
                && r.dst.is_some_and(|d| d.to_string() == "198.51.100.0/24")
                && r.dev.as_ref().and_then(|d| d.name.as_deref()) == Some("hs-a")
        })
    });
    ns.ip("rule add fwmark 0xe00/0xf00 lookup 200 pref 1");
    wait(&m, &mut live, "rule", |l| {
        l.state
            .rules
            .iter()
            .any(|r| r.priority == 1 && r.fwmark.is_some())
    });
    ns.ip(
        "xfrm policy add src 10.0.1.0/24 dst 10.0.2.0/24 dir out mark 0x3e00 mask 0xff00 \
         tmpl src 10.0.1.138 dst 10.0.2.52 proto esp spi 3 reqid 1 mode tunnel",
    );
    wait(&m, &mut live, "xfrm policy", |l| {
        l.state
            .xfrm_policies
            .iter()
            .any(|p| p.dir == "out" && p.templates.iter().any(|t| t.dst == "10.0.2.52"))
    });

    // And they go away.
    ns.ip("xfrm policy del src 10.0.1.0/24 dst 10.0.2.0/24 dir out mark 0x3e00 mask 0xff00");
    wait(&m, &mut live, "policy gone", |l| {
        l.state.xfrm_policies.is_empty()
    });
    ns.ip("rule del pref 1");
    wait(&m, &mut live, "rule gone", |l| {
        !l.state.rules.iter().any(|r| r.priority == 1)
    });
    ns.ip("route del 198.51.100.0/24 table 200");
    wait(&m, &mut live, "route gone", |l| {
        !l.state.routes.iter().any(|r| r.table.id == 200)
    });
    ns.ip("link del hs-a");
    wait(&m, &mut live, "veth pair gone", |l| {
        l.state.link_by_name("hs-a").is_none() && l.state.link_by_name("hs-b").is_none()
    });
    // Routes of the deleted link went with it although IPv4 sends no delete for them.
    assert!(
        !live
            .state
            .routes
            .iter()
            .any(|r| r.dst.is_some_and(|d| d.to_string() == "192.0.2.0/24")),
        "connected route of a deleted link lingers"
    );
    assert_eq!(m.dropped(), 0);
}

#[test]
fn counters_are_sampled_and_rates_derived() {
    let ns = Netns::new("mons");
    ns.ip("link set lo up");
    let (m, mut live) = start(&ns);
    let before = live.samples;
    wait(&m, &mut live, "three samples", |l| l.samples >= before + 3);
    // Traffic on lo: its packet counter rises and a rate appears.
    let _ = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "ping",
            "-c",
            "3",
            "-i",
            "0.2",
            "-q",
            "127.0.0.1",
        ])
        .output();
    let lo = live.state.link_by_name("lo").unwrap().index;
    let key = hopscope::model::event::CounterKey::Link(
        lo,
        hopscope::model::event::LinkCounter::RxPackets,
    );
    wait(&m, &mut live, "lo counters after the pings", |l| {
        l.state.link_by_name("lo").unwrap().stats.rx_packets >= 6
    });
    assert!(
        live.history.delta(&key, 60).unwrap() >= 6,
        "lo rx packets rose"
    );
    assert!(live.history.rate(&key).is_some());
    assert!(!live.state.xfrm_stats.is_empty(), "xfrm_stat sampled");
}

#[test]
fn unknown_netns_fails_at_start() {
    let e = Monitor::start(
        &Target::Netns("hs-no-such-netns-xyz".into()),
        &Options::default(),
    )
    .err()
    .expect("must fail");
    assert!(e.to_string().contains("not found"), "{e}");
}

#[test]
fn overrun_is_said_and_repaired_by_a_resync() {
    let ns = Netns::new("monov");
    ns.ip("link set lo up");
    ns.ip("link add hs-d type veth peer name hs-e");
    ns.ip("link set hs-d up");
    let m = Monitor::start(
        &Target::Netns(ns.name.clone()),
        &Options {
            interval: Duration::from_secs(5),
            queue: 16,
            rcvbuf: 4096,
        },
    )
    .unwrap();
    let mut live = Live::default();
    wait(&m, &mut live, "first dump", |l| l.loaded);
    // Nobody drains while 3000 routes arrive: the queue fills, the socket overruns.
    let batch: String = (0..3000)
        .map(|i| format!("route add 10.{}.{}.0/24 dev hs-d\n", i / 256, i % 256))
        .collect();
    ns.ip_batch(&batch);
    let t0 = Instant::now();
    while !(live.resyncs >= 1
        && live
            .state
            .routes
            .iter()
            .filter(|r| r.table.id == 254)
            .count()
            >= 3000)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no resync; notices {:?}",
            live.notices
        );
        if let Some(ev) = m.recv_timeout(Duration::from_millis(50)) {
            live.apply(ev, Instant::now());
        }
    }
    assert!(
        live.notices
            .iter()
            .any(|n| n.text.contains("resynced after overrun")),
        "{:?}",
        live.notices
    );
}
