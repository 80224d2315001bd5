//! The TUI's draw path with 100k routes and 10k XFRM policies: one frame of the Routes and
//! Policies panes (what the loop does after each batch of events), and a filter over all
//! 100k routes (what typing in `/` costs). `cargo bench --bench tui_draw`.

use criterion::{Criterion, criterion_group, criterion_main};
use hopscope::model::event::Live;
use hopscope::model::fixtures::seed_worker;
use hopscope::model::{Family, LinkRef, Prefix, Route, TableRef};
use hopscope::tui::app::App;
use hopscope::tui::keymap::Keymap;
use hopscope::tui::render;
use hopscope::tui::rows::Pane;
use hopscope::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

fn big() -> Live {
    let mut st = seed_worker();
    for i in 0..100_000u32 {
        st.routes.push(Route {
            family: Family::V4,
            table: TableRef {
                id: if i % 2 == 0 { 254 } else { 200 },
                name: None,
            },
            kind: "unicast".into(),
            dst: Some(Prefix::new(
                Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(),
                24,
            )),
            src: None,
            gateway: Some("172.18.0.1".into()),
            dev: Some(LinkRef {
                index: 7,
                name: Some("eth0".into()),
            }),
            prefsrc: None,
            protocol: "static".into(),
            scope: "global".into(),
            metric: None,
            mtu: None,
            mtu_locked: false,
            tos: 0,
            nexthops: vec![],
        });
    }
    let p0 = st.xfrm_policies[0].clone();
    for i in 0..10_000u32 {
        let mut p = p0.clone();
        p.index = 1000 + i * 8;
        p.selector.dst = Prefix::new(Ipv4Addr::from(0x0b00_0000 + (i << 8)).into(), 24);
        st.xfrm_policies.push(p);
    }
    Live::new(st)
}

fn frame(c: &mut Criterion) {
    let live = big();
    let theme = Theme::builtin("dark");
    for (pane, w, h) in [
        (Pane::Routes, 200, 50),
        (Pane::Routes, 80, 24),
        (Pane::Policies, 200, 50),
        (Pane::Sas, 200, 50),
    ] {
        let mut app = App::new(
            Keymap::default(),
            Duration::from_secs(1),
            "bench".into(),
            SystemTime::now(),
        );
        app.pane = pane;
        app.refresh(&live);
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        c.bench_function(
            &format!("frame {} {w}x{h} (100k routes, 10k policies)", pane.name()),
            |b| {
                b.iter(|| {
                    app.refresh(&live);
                    t.draw(|f| render::draw(f, &app, &live, &theme)).unwrap();
                    black_box(t.backend().buffer().area);
                })
            },
        );
    }
    let mut app = App::new(
        Keymap::default(),
        Duration::from_secs(1),
        "bench".into(),
        SystemTime::now(),
    );
    app.pane = Pane::Routes;
    let mut n = 0u32;
    c.bench_function("filter 100k routes (dev=eth0 dst=10.1)", |b| {
        b.iter(|| {
            // A different text each time, so the cache cannot answer.
            n += 1;
            app.set_filter(
                if n.is_multiple_of(2) {
                    "dev=eth0 dst=10.1"
                } else {
                    "dst=10.1 dev=eth0"
                },
                &live,
            );
            black_box(app.view().rows.len());
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = frame
}
criterion_main!(benches);
