//! The doctor's judgement on a node with 1,000 peers (2,000 SAs: an out SA and a per-node in
//! SA each; 3,000 policies: out, in and fwd per peer; 100,000 routes), against the TUI's own
//! frame of the same node in the same run, idle and while the Health pane re-judges (on the
//! doctor's own thread: the frames around a judgement must not slow down), each frame's
//! event and drawing timed apart, and against the same frames with no doctor at all.
//! `cargo bench --bench doctor_judge` prints medians and the ratio.

use hopscope::doctor::{KeyHasher, NodeInput, examine};
use hopscope::model::event::{Event, Live, SaKey, Sample};
use hopscope::model::fixtures::seed_worker;
use hopscope::model::{Family, LinkRef, Mark, NodeState, PolicyDir, Prefix, Route, TableRef};
use hopscope::tui::app::App;
use hopscope::tui::keymap::Keymap;
use hopscope::tui::render;
use hopscope::tui::rows::Pane;
use hopscope::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant, SystemTime};

const PEERS: u32 = 1000;
/// Frames measured idle; judgements waited for while the counters rise.
const FRAMES: usize = 15;
const JUDGEMENTS: u64 = 10;

fn v4(a: u32) -> IpAddr {
    Ipv4Addr::from(a).into()
}

fn route(table: u32, dst: Prefix, dev: (u32, &str), gw: Option<String>) -> Route {
    Route {
        family: Family::V4,
        table: TableRef {
            id: table,
            name: None,
        },
        kind: "unicast".into(),
        dst: Some(dst),
        src: None,
        gateway: gw,
        dev: Some(LinkRef {
            index: dev.0,
            name: Some(dev.1.into()),
        }),
        prefsrc: None,
        protocol: "boot".into(),
        scope: "global".into(),
        metric: None,
        mtu: None,
        mtu_locked: false,
        tos: 0,
        nexthops: vec![],
    }
}

/// The seed's worker, grown to 1,000 peers the way Cilium ≥ 1.14 lays them out.
pub fn thousand_peers() -> NodeState {
    let mut st = seed_worker();
    let out0 = st
        .xfrm_states
        .iter()
        .find(|s| s.src != "0.0.0.0")
        .unwrap()
        .clone();
    let in0 = st
        .xfrm_states
        .iter()
        .find(|s| s.src == "0.0.0.0")
        .unwrap()
        .clone();
    let pol = |d: PolicyDir| {
        st.xfrm_policies
            .iter()
            .find(|p| p.dir == d)
            .unwrap()
            .clone()
    };
    let (pout, pin, pfwd) = (pol(PolicyDir::Out), pol(PolicyDir::In), pol(PolicyDir::Fwd));
    st.xfrm_states.clear();
    st.xfrm_policies.clear();
    st.routes.retain(|r| r.table.id != 200);
    for k in 0..PEERS {
        let router = v4(0x0a80_0000 + k * 4 + 1); // 10.128.x.y
        let cidr = Prefix::new(v4(0x0b00_0000 + (k << 8)), 24); // 11.k.0/24
        let node_id = (k + 2) << 16;
        let mut o = out0.clone();
        o.dst = router.to_string();
        o.mark = Some(Mark {
            value: node_id | 0x3e00,
            mask: 0xffff_ff00,
        });
        let mut i = in0.clone();
        i.src = router.to_string();
        i.mark = Some(Mark {
            value: node_id | 0x0d00,
            mask: 0xffff_0f00,
        });
        st.xfrm_states.push(o);
        st.xfrm_states.push(i);
        let mut p = pout.clone();
        p.selector.dst = cidr;
        p.mark = Some(Mark {
            value: node_id | 0x3e00,
            mask: 0xffff_ff00,
        });
        p.templates[0].dst = router.to_string();
        let mut pi = pin.clone();
        pi.selector.src = cidr;
        let mut pf = pfwd.clone();
        pf.selector.src = cidr;
        st.xfrm_policies.extend([p, pi, pf]);
        st.routes.push(route(200, cidr, (3, "cilium_host"), None));
        st.routes
            .push(route(254, cidr, (7, "eth0"), Some(router.to_string())));
    }
    // Endpoint-style /32 routes fill the rest up to 100k.
    let mut n = 0u32;
    while st.routes.len() < 100_000 {
        st.routes.push(route(
            254,
            Prefix::new(v4(0x0c00_0000 + n), 32),
            (7, "eth0"),
            None,
        ));
        n += 1;
    }
    st
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn main() {
    let st = thousand_peers();
    println!(
        "node: {} SAs, {} policies, {} routes",
        st.xfrm_states.len(),
        st.xfrm_policies.len(),
        st.routes.len()
    );
    let keys = KeyHasher::new(vec![7; 32]);
    let input = [NodeInput {
        name: "worker".into(),
        state: &st,
        before: Some(&st),
        netfilter: None,
        pods: &[],
        seen: &[],
    }];
    let report = examine(&input, &keys);
    println!(
        "report: {} findings, verdict: {}",
        report.findings.len(),
        report.verdict
    );
    let judge = median(
        (0..15)
            .map(|_| {
                let t = Instant::now();
                black_box(examine(&input, &keys));
                t.elapsed()
            })
            .collect(),
    );
    // The TUI's frames of the same node (Routes pane, 200x50), in the same run, fed the way
    // the loop feeds them (the doctor's thread keeps its own copy from the events).
    let theme = Theme::builtin("dark");
    let mut app = App::new(
        Keymap::default(),
        Duration::from_secs(1),
        "bench".into(),
        SystemTime::now(),
    );
    let mut live = Live::default();
    app.health.feed(
        &mut live,
        Event::Resync(Box::new(st.clone())),
        Instant::now(),
    );
    app.pane = Pane::Routes;
    app.refresh(&live);
    app.health.settle(Duration::from_secs(30));
    let mut t = Terminal::new(TestBackend::new(200, 50)).unwrap();
    let mut draw = |app: &mut App, live: &Live| {
        let s = Instant::now();
        app.refresh(live);
        t.draw(|f| render::draw(f, app, live, &theme)).unwrap();
        s.elapsed()
    };
    // Frames while nothing changes: no judgement.
    let idle = median((0..FRAMES).map(|_| draw(&mut app, &live)).collect());
    // Frames while the counters rise at every frame (a sample of every SA's counters and the
    // xfrm_stat, as the sampler sends once a second), in three phases of the same loop:
    // fed through the Health pane (its copy takes every event) with no judgement asked; the
    // same while a judgement is asked at once after every change (no once-a-second limit), so
    // the doctor's thread judges beside the loop; and, last (the copy then falls out of step),
    // the events applied to the live state alone: what a frame costs with no doctor at all.
    // Each frame is split into the event's share (fed or applied) and the drawing.
    let mut seen = 0u64;
    let mut sample = |live: &Live| {
        seen += 1;
        Event::Sample(Sample {
            at: Instant::now(),
            links: None,
            sas: Some(
                live.state
                    .xfrm_states
                    .iter()
                    .map(|s| {
                        let mut stats = s.stats;
                        stats.integrity_failed += seen as u32;
                        (SaKey::of(s), s.lifetime, stats)
                    })
                    .collect(),
            ),
            xfrm_stat: Some(vec![("XfrmInNoStates".into(), seen)]),
        })
    };
    #[derive(Clone, Copy, PartialEq)]
    enum Phase {
        Fed,
        Judging,
        NoDoctor,
    }
    let mut run = |app: &mut App, live: &mut Live, phase: Phase| {
        app.health.rejudge_every = if phase == Phase::Judging {
            Duration::ZERO
        } else {
            Duration::from_secs(3600)
        };
        let before = app.health.judgements;
        let t0 = Instant::now();
        let (mut evs, mut draws) = (Vec::new(), Vec::new());
        while if phase == Phase::Judging {
            app.health.judgements - before < JUDGEMENTS
        } else {
            evs.len() < 3 * FRAMES
        } {
            let ev = sample(live);
            let s = Instant::now();
            if phase == Phase::NoDoctor {
                live.apply(ev, Instant::now());
            } else {
                app.health.feed(live, ev, Instant::now());
            }
            evs.push(s.elapsed());
            draws.push(draw(app, live));
            std::thread::sleep(Duration::from_millis(2));
        }
        let frames: Vec<Duration> = evs.iter().zip(&draws).map(|(a, b)| *a + *b).collect();
        let worst = *frames.iter().max().unwrap();
        (
            median(evs),
            median(draws),
            median(frames.clone()),
            worst,
            frames.len(),
            app.health.judgements - before,
            t0.elapsed(),
        )
    };
    let fed = run(&mut app, &mut live, Phase::Fed);
    let copies_before = app.health.copies;
    let judging = run(&mut app, &mut live, Phase::Judging);
    let (copies, dropped) = (app.health.copies - copies_before, app.health.dropped);
    let bare = run(&mut app, &mut live, Phase::NoDoctor);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "median: doctor judgement {:.1} ms, TUI frame {:.2} ms idle; ratio judgement/frame = {:.1}",
        ms(judge),
        ms(idle),
        judge.as_secs_f64() / idle.as_secs_f64()
    );
    for (what, r) in [
        ("no doctor (events applied to the live state only)", bare),
        ("doctor fed, not judging", fed),
        ("doctor judging on its thread", judging),
    ] {
        println!(
            "{what}: {} frames; event {:.3} ms + draw {:.3} ms = frame median {:.3} ms, worst {:.2} ms; ratio to no doctor {:.2}",
            r.4,
            ms(r.0),
            ms(r.1),
            ms(r.2),
            ms(r.3),
            r.2.as_secs_f64() / bare.2.as_secs_f64()
        );
    }
    println!(
        "the doctor's share of a frame's event: {:.3} ms (fed {:.3} − applied alone {:.3}); {} judgements in {:.2} s; whole-state copies while judging {copies}, events dropped {dropped}",
        ms(fed.0.saturating_sub(bare.0)),
        ms(fed.0),
        ms(bare.0),
        judging.5,
        judging.6.as_secs_f64()
    );
}
