//! Every pane drawn with ratatui's TestBackend from hand-built states (insta snapshots):
//! empty, the seed's Cilium worker with SAs, 100k routes, 80×24, missing rights, loading.
//! Plus app logic without a terminal: filter, sort, pane switch, SA ↔ policy jump, pause.

use hopscope::model::event::{Event, Live, Sample};
use hopscope::model::fixtures::seed_worker;
use hopscope::model::{Family, LinkRef, LinkStats, NodeState, Prefix, Route, TableRef};
use hopscope::tui::app::{App, Effect, Mode};
use hopscope::tui::keymap::{Action, Keymap};
use hopscope::tui::render;
use hopscope::tui::rows::{PANES, Pane};
use hopscope::tui::theme::{Item, Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::time::{Duration, Instant, UNIX_EPOCH};

fn app() -> App {
    let since = UNIX_EPOCH + Duration::from_secs(1_720_000_000);
    let mut a = App::new(
        Keymap::default(),
        Duration::from_secs(1),
        "netns worker".into(),
        since,
    );
    a.now = since + Duration::from_secs(300);
    a
}

/// The seed worker after three samples: eth0 drops and XfrmInNoStates rising, SA traffic.
fn seed_live() -> Live {
    let t0 = Instant::now();
    let mut live = Live::new(seed_worker());
    let base = live.state.clone();
    for s in 0..3u64 {
        let at = t0 + Duration::from_secs(s);
        let links = base
            .links
            .iter()
            .map(|l| {
                let mut st = l.stats;
                st.rx_bytes += 1500 * s;
                st.tx_bytes += 3000 * s;
                if l.name == "eth0" {
                    st.rx_dropped = 2 * s;
                }
                (l.index, st)
            })
            .collect();
        let sas = base
            .xfrm_states
            .iter()
            .map(|sa| {
                let mut lt = sa.lifetime;
                lt.packets += 10 * s;
                lt.bytes += 1040 * s;
                (hopscope::model::event::SaKey::of(sa), lt, sa.stats)
            })
            .collect();
        let stat = base
            .xfrm_stats
            .iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    if n == "XfrmInNoStates" { v + 3 * s } else { *v },
                )
            })
            .collect();
        live.apply(
            Event::Sample(Sample {
                at,
                links: Some(links),
                sas: Some(sas),
                xfrm_stat: Some(stat),
            }),
            at,
        );
    }
    live
}

fn big_live(routes: usize, policies: usize) -> Live {
    let mut st = seed_worker();
    for i in 0..routes {
        let n = i as u32;
        st.routes.push(Route {
            family: Family::V4,
            table: TableRef {
                id: if i % 2 == 0 { 254 } else { 200 },
                name: (i % 2 == 0).then(|| "main".to_string()),
            },
            kind: "unicast".into(),
            dst: Some(Prefix::new(
                std::net::Ipv4Addr::from(0x0a00_0000 | (n << 8)).into(),
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
    for i in 0..policies {
        let mut p = p0.clone();
        p.index = 1000 + i as u32 * 8;
        p.selector.dst = Prefix::new(
            std::net::Ipv4Addr::from(0x0b00_0000 | ((i as u32) << 8)).into(),
            24,
        );
        st.xfrm_policies.push(p);
    }
    Live::new(st)
}

fn draw(app: &mut App, live: &Live, w: u16, h: u16) -> Terminal<TestBackend> {
    // The Health pane is judged on the doctor's thread: the frame is drawn once its answer is
    // in, as the loop draws it a moment later.
    app.refresh(live);
    app.health.settle(std::time::Duration::from_secs(10));
    app.refresh(live);
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    let theme = Theme::builtin("dark");
    t.draw(|f| render::draw(f, app, live, &theme)).unwrap();
    // Draw twice: the first frame fixes the scroll offset and page size.
    t.draw(|f| render::draw(f, app, live, &theme)).unwrap();
    t
}

fn screen(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let mut line = String::new();
        for x in 0..buf.area.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn render(app: &mut App, live: &Live, w: u16, h: u16) -> String {
    screen(&draw(app, live, w, h))
}

fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}
fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}
fn typed(app: &mut App, live: &Live, s: &str) {
    for c in s.chars() {
        app.handle_key(key(c), live);
    }
}

#[test]
fn every_pane_of_the_seed_worker_wide() {
    let live = seed_live();
    for p in PANES {
        let mut a = app();
        a.pane = p;
        insta::assert_snapshot!(
            format!("seed_{}_140x30", p.name()),
            render(&mut a, &live, 140, 30)
        );
    }
}

#[test]
fn every_pane_of_the_seed_worker_at_80x24() {
    let live = seed_live();
    for p in PANES {
        let mut a = app();
        a.pane = p;
        insta::assert_snapshot!(
            format!("seed_{}_80x24", p.name()),
            render(&mut a, &live, 80, 24)
        );
    }
}

#[test]
fn empty_state_and_loading() {
    let live = Live::new(NodeState::default());
    let mut a = app();
    a.pane = Pane::Sas;
    let s = render(&mut a, &live, 80, 24);
    assert!(s.contains("no XFRM SAs in this netns"), "{s}");
    insta::assert_snapshot!("empty_sas_80x24", s);
    let loading = Live::default();
    let s = render(&mut app(), &loading, 80, 24);
    assert!(s.contains("reading netns worker"), "{s}");
}

#[test]
fn missing_rights_are_in_the_header() {
    let mut st = seed_worker();
    st.xfrm_states.clear();
    st.xfrm_policies.clear();
    st.warnings.push(
        "CAP_NET_ADMIN missing: XFRM SAs and policies are not shown (the kernel refuses XFRM dumps without it)".into(),
    );
    st.hidden = vec!["xfrm_states".into(), "xfrm_policies".into()];
    let live = Live::new(st);
    let mut a = app();
    a.pane = Pane::Policies;
    let s = render(&mut a, &live, 80, 24);
    assert!(s.contains("⚠ rights: CAP_NET_ADMIN missing"), "{s}");
    // Empty because hidden, not because there are none.
    assert!(s.contains("XFRM Policies hidden: CAP_NET_ADMIN"), "{s}");
    assert!(!s.contains("no XFRM Policies"), "{s}");
    insta::assert_snapshot!("missing_rights_80x24", s);
}

#[test]
fn source_error_and_resync_are_shown() {
    let mut live = seed_live();
    let now = Instant::now();
    live.apply(
        Event::ResyncNeeded {
            reason: "netlink route monitor overran (ENOBUFS, changes lost): resynced after overrun"
                .into(),
        },
        now,
    );
    live.apply(Event::Resync(Box::new(seed_worker())), now);
    let s = render(&mut app(), &live, 100, 24);
    assert!(s.contains("resynced 1×"), "{s}");
    assert!(
        s.contains("resynced after overrun"),
        "the notice is in the footer: {s}"
    );
}

#[test]
fn hundred_thousand_routes() {
    let live = big_live(100_000, 0);
    let mut a = app();
    a.pane = Pane::Routes;
    let t0 = Instant::now();
    let s = render(&mut a, &live, 80, 24);
    let n = live.state.routes.len();
    assert!(s.contains(&format!("2 Routes {n}")), "{s}");
    insta::assert_snapshot!("routes_100k_80x24", s);
    a.apply(Action::Bottom, &live);
    let s = render(&mut a, &live, 80, 24);
    let last = hopscope::view::columns::route_dst(live.state.routes.last().unwrap());
    assert!(
        s.contains(&last),
        "last route {last} shown at the bottom: {s}"
    );
    // `:table 200` keeps half of them.
    a.run_command("table 200", &live);
    let s = render(&mut a, &live, 80, 24);
    let in200 = live
        .state
        .routes
        .iter()
        .filter(|r| r.table.id == 200)
        .count();
    assert!(s.contains(&format!("Routes {in200}/{n}")), "{s}");
    assert!(
        s.contains("table 200"),
        "the table filter is in the header: {s}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "slow: {:?}",
        t0.elapsed()
    );
}

#[test]
fn rising_trouble_is_highlighted_and_counted() {
    let live = seed_live();
    assert_eq!(live.rising_trouble(), 2, "eth0 drops and XfrmInNoStates");
    let mut a = app();
    a.pane = Pane::Stats;
    let t = draw(&mut a, &live, 120, 24);
    let s = screen(&t);
    assert!(s.lines().next().unwrap().contains("⚠ 2 rising"), "{s}");
    let theme = Theme::builtin("dark");
    let buf = t.backend().buffer();
    let y = s
        .lines()
        .position(|l| l.starts_with("XfrmInNoStates"))
        .unwrap() as u16;
    assert_eq!(
        buf[(0, y)].fg,
        theme.style(Item::Trouble).fg.unwrap(),
        "rising counter in trouble colour"
    );
    let quiet = s
        .lines()
        .position(|l| l.starts_with("XfrmInError"))
        .unwrap() as u16;
    assert_ne!(buf[(0, quiet)].fg, theme.style(Item::Trouble).fg.unwrap());
    assert!(s.contains("+6"), "delta shown: {s}");
    assert_eq!(
        buf[(0, 0)].bg,
        theme.style(Item::HeaderWarn).bg.unwrap(),
        "header turns to warning"
    );
}

#[test]
fn keys_are_redacted_unless_asked() {
    let live = seed_live();
    let mut a = app();
    a.pane = Pane::Sas;
    a.refresh(&live);
    a.apply(Action::Detail, &live);
    let s = render(&mut a, &live, 120, 60);
    assert!(s.contains("aead.key") && s.contains("redacted"), "{s}");
    assert!(!s.contains("0xd528e76e"), "{s}");
    insta::assert_snapshot!("sa_detail_120x60", s);
    a.show_keys = true;
    let s = render(&mut a, &live, 120, 60);
    assert!(
        s.contains("0xd528e76e15ded4e1"),
        "--show-keys shows the key: {s}"
    );
}

#[test]
fn help_lists_every_binding() {
    let live = seed_live();
    let mut a = app();
    a.handle_key(key('?'), &live);
    assert_eq!(a.mode, Mode::Help);
    let s = render(&mut a, &live, 100, 60);
    for b in &a.keymap.bindings {
        assert!(s.contains(b.help), "help lacks {:?}: {s}", b.help);
        for k in &b.keys {
            assert!(
                s.contains(&k.to_string()),
                "help lacks key {k} of {}",
                b.name
            );
        }
    }
    insta::assert_snapshot!("help_100x60", s);
    a.handle_key(code(KeyCode::Esc), &live);
    assert_eq!(a.mode, Mode::Normal);
}

#[test]
fn filter_is_validated_as_typed_and_shown() {
    let live = seed_live();
    let mut a = app();
    a.pane = Pane::Routes;
    a.refresh(&live);
    let n = live.state.routes.len();
    let on_cilium = live
        .state
        .routes
        .iter()
        .filter(|r| {
            r.dev
                .as_ref()
                .and_then(|d| d.name.as_deref())
                .is_some_and(|d| d.contains("cilium"))
        })
        .count();
    assert!(on_cilium > 0 && on_cilium < n);
    a.handle_key(key('/'), &live);
    typed(&mut a, &live, "dev=cilium");
    assert_eq!(a.view().rows.len(), on_cilium, "filtering while typing");
    typed(&mut a, &live, " gw=");
    assert!(a.input_error.as_deref().unwrap().contains("unknown column"));
    assert_eq!(
        a.view().filter_text,
        "dev=cilium gw",
        "the last valid filter stays in force"
    );
    for _ in 0..3 {
        a.handle_key(code(KeyCode::Backspace), &live);
    }
    typed(&mut a, &live, "!");
    assert!(
        a.input_error
            .as_deref()
            .unwrap()
            .contains("needs something")
    );
    assert_eq!(
        a.view().rows.len(),
        on_cilium,
        "an invalid filter keeps the last valid one"
    );
    let s = render(&mut a, &live, 100, 24);
    assert!(
        s.contains("✗ \"!\" needs something"),
        "the reason is shown while typing: {s}"
    );
    a.handle_key(code(KeyCode::Enter), &live);
    assert_eq!(a.mode, Mode::Filter, "enter refuses an invalid filter");
    for _ in 0..2 {
        a.handle_key(code(KeyCode::Backspace), &live);
    }
    a.handle_key(code(KeyCode::Enter), &live);
    assert_eq!(a.mode, Mode::Normal);
    let s = render(&mut a, &live, 100, 24);
    assert!(
        s.contains("/dev=cilium ✓"),
        "filter shown in the header: {s}"
    );
    assert!(s.contains(&format!("Routes {on_cilium}/{n}")), "{s}");
    // esc clears it.
    a.handle_key(code(KeyCode::Esc), &live);
    a.refresh(&live);
    assert_eq!(a.view().rows.len(), n);
}

#[test]
fn sort_orders_naturally_and_reverses() {
    let live = seed_live();
    let mut a = app();
    a.pane = Pane::Rules;
    a.refresh(&live);
    a.handle_key(key('S'), &live); // PRIO descending
    let prios: Vec<u32> = a
        .view()
        .rows
        .iter()
        .map(|&i| live.state.rules[i].priority)
        .collect();
    assert_eq!(prios, vec![32767, 32766, 100, 10, 9, 1, 1]);
    a.run_command("sort prio", &live);
    let prios: Vec<u32> = a
        .view()
        .rows
        .iter()
        .map(|&i| live.state.rules[i].priority)
        .collect();
    assert_eq!(
        prios,
        vec![1, 1, 9, 10, 100, 32766, 32767],
        "numbers, not text"
    );
    let s = render(&mut a, &live, 100, 24);
    assert!(s.contains("PRIO↑"), "{s}");
}

#[test]
fn panes_switch_by_number_tab_command_and_click() {
    let live = seed_live();
    let mut a = app();
    a.handle_key(key('4'), &live);
    assert_eq!(a.pane, Pane::Sas);
    a.handle_key(code(KeyCode::Tab), &live);
    assert_eq!(a.pane, Pane::Policies);
    a.handle_key(code(KeyCode::BackTab), &live);
    a.handle_key(code(KeyCode::BackTab), &live);
    assert_eq!(a.pane, Pane::Rules);
    a.handle_key(key(':'), &live);
    typed(&mut a, &live, "xfrm");
    a.handle_key(code(KeyCode::Enter), &live);
    assert_eq!(a.pane, Pane::Sas);
    // Click the "2 Routes" tab.
    draw(&mut a, &live, 100, 24);
    let (x0, _, _) = *a
        .hits
        .borrow()
        .tabs
        .iter()
        .find(|t| t.2 == Pane::Routes)
        .unwrap();
    a.handle_mouse(
        ratatui::crossterm::event::MouseEvent {
            kind: ratatui::crossterm::event::MouseEventKind::Down(
                ratatui::crossterm::event::MouseButton::Left,
            ),
            column: x0 + 1,
            row: 2,
            modifiers: KeyModifiers::NONE,
        },
        &live,
    );
    assert_eq!(a.pane, Pane::Routes);
    // Scroll and vim keys move the selection.
    a.handle_key(key('j'), &live);
    a.handle_key(code(KeyCode::Down), &live);
    assert_eq!(a.view().selected, 2);
    a.handle_key(key('G'), &live);
    assert_eq!(a.view().selected, live.state.routes.len() - 1);
    a.handle_key(key('g'), &live);
    assert_eq!(a.view().selected, 0);
}

#[test]
fn command_line_completes() {
    let live = seed_live();
    let mut a = app();
    a.netns_names = vec!["worker".into(), "worker2".into(), "control".into()];
    a.handle_key(key(':'), &live);
    typed(&mut a, &live, "ne");
    a.handle_key(code(KeyCode::Tab), &live);
    assert_eq!(a.input, "netns ");
    typed(&mut a, &live, "w");
    a.handle_key(code(KeyCode::Tab), &live);
    assert_eq!(a.input, "netns worker");
    assert_eq!(a.completions, vec!["worker", "worker2"]);
    assert_eq!(
        a.handle_key(code(KeyCode::Enter), &live),
        Effect::Netns("worker".into())
    );
    a.handle_key(key(':'), &live);
    typed(&mut a, &live, "table 2");
    a.handle_key(code(KeyCode::Tab), &live);
    assert_eq!(a.input, "table 2", "200, 254, 255: no longer common prefix");
    assert_eq!(a.completions, vec!["200", "254", "255"]);
    typed(&mut a, &live, "0");
    a.handle_key(code(KeyCode::Tab), &live);
    assert_eq!(a.input, "table 200");
    a.handle_key(code(KeyCode::Enter), &live);
    assert_eq!((a.pane, a.table), (Pane::Routes, Some(200)));
    let in200 = live
        .state
        .routes
        .iter()
        .filter(|r| r.table.id == 200)
        .count();
    assert_eq!(a.view().rows.len(), in200);
    a.run_command("bogus", &live);
    assert!(a.message.as_ref().unwrap().0.contains("unknown command"));
}

#[test]
fn jump_between_sa_and_policies() {
    let live = seed_live();
    let mut a = app();
    a.pane = Pane::Sas;
    a.refresh(&live);
    // SA 1: 10.0.1.138 → 10.0.0.40, mark 0x3e00/0xff00.
    a.apply(Action::Down, &live);
    a.handle_key(key('x'), &live);
    assert_eq!(a.pane, Pane::Policies);
    let p = &live.state.xfrm_policies[a.view().selected_index().unwrap()];
    assert_eq!(
        (p.dir.to_string().as_str(), p.templates[0].dst.as_str()),
        ("out", "10.0.0.40")
    );
    a.handle_key(key('x'), &live);
    assert_eq!(a.pane, Pane::Sas);
    let sa = &live.state.xfrm_states[a.view().selected_index().unwrap()];
    assert_eq!(sa.dst, "10.0.0.40");
    // The inbound SA is selected by the in policy with the decrypt mark (and the fwd one).
    a.handle_key(key('G'), &live);
    a.handle_key(key('x'), &live);
    let p = &live.state.xfrm_policies[a.view().selected_index().unwrap()];
    assert_eq!(p.templates[0].dst, "10.0.1.138");
    // A jump target hidden by a filter is shown anyway.
    a.set_filter("dir=out", &live);
    a.pane = Pane::Sas;
    a.handle_key(key('x'), &live);
    assert_eq!(a.pane, Pane::Policies);
    assert!(a.view().filter.is_empty());
}

/// An ESP frame (SPI `spi`, sequence 1) from `src` to `dst`, as the seed worker sends to a peer.
fn esp_frame(src: [u8; 4], dst: [u8; 4], spi: u32) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
    f.extend([0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 50, 0, 0]);
    f.extend(src);
    f.extend(dst);
    f.extend(spi.to_be_bytes());
    f.extend(1u32.to_be_bytes());
    f.extend([0x5a; 32]);
    f
}

#[test]
fn x_on_a_packet_row_jumps_to_its_sa() {
    use hopscope::capture::analyze::{Analyzer, Ts};
    use hopscope::decode::packet::LinkType;
    let live = seed_live();
    let mut a = app();
    a.pane = Pane::Packets;
    let mut an = Analyzer::new(&seed_worker(), false);
    let mut push = |f: Vec<u8>| {
        let ts = Ts {
            sec: 1_720_000_000,
            nsec: 0,
        };
        let r = an.analyze("eth0", LinkType::Ethernet, ts, f.len() as u32, &f);
        a.packets.push(r);
    };
    // Every SA of the seed worker has SPI 3: the destination tells them apart.
    push(esp_frame([10, 0, 1, 138], [10, 0, 0, 40], 3));
    push(esp_frame([10, 0, 1, 138], [10, 0, 0, 40], 0x99));
    push(echo_frame([10, 0, 1, 52], [10, 0, 0, 249], 1));
    a.refresh(&live);
    // The newest (plaintext) row is selected: it has no SA, and x says so where it is.
    a.handle_key(key('x'), &live);
    assert_eq!(a.pane, Pane::Packets);
    assert!(
        a.message.as_ref().unwrap().0.contains("not an ESP packet"),
        "{:?}",
        a.message
    );
    // ESP with an SPI no SA has.
    a.apply(Action::Up, &live);
    a.handle_key(key('x'), &live);
    assert_eq!(a.pane, Pane::Packets);
    assert!(
        a.message.as_ref().unwrap().0.contains("no SA of this node"),
        "{:?}",
        a.message
    );
    // ESP of the SA to 10.0.0.40: x selects that SA on the SAs pane.
    a.apply(Action::Up, &live);
    a.handle_key(key('x'), &live);
    assert_eq!(a.pane, Pane::Sas, "{:?}", a.message);
    let sa = &live.state.xfrm_states[a.view().selected_index().unwrap()];
    assert_eq!(
        (sa.src.as_str(), sa.dst.as_str(), sa.spi),
        ("10.0.1.138", "10.0.0.40", 3)
    );
    // The SA pane shows it selected.
    let scr = render(&mut a, &live, 140, 30);
    assert!(
        scr.contains("the packet's SA: 10.0.1.138->10.0.0.40 spi 0x3"),
        "{scr}"
    );
    // An SA deleted since the packet was seen: said, not a jump to another one.
    let mut gone = seed_live();
    gone.state.xfrm_states.remove(1);
    a.pane = Pane::Packets;
    a.refresh(&gone);
    a.handle_key(key('G'), &gone);
    a.apply(Action::Up, &gone);
    a.apply(Action::Up, &gone);
    a.handle_key(key('x'), &gone);
    assert_eq!(a.pane, Pane::Packets);
    assert!(
        a.message.as_ref().unwrap().0.contains("is gone"),
        "{:?}",
        a.message
    );
}

#[test]
fn pause_freezes_what_is_shown() {
    let mut live = seed_live();
    let mut a = app();
    a.pane = Pane::Routes;
    assert_eq!(a.handle_key(key('p'), &live), Effect::Pause);
    assert!(a.paused);
    // The runtime draws a frozen copy while the live state keeps taking events.
    let frozen = live.clone();
    a.invalidate();
    live.apply(
        Event::RouteDel(live.state.routes[0].clone()),
        Instant::now(),
    );
    let s = render(&mut a, &frozen, 100, 24);
    let n = frozen.state.routes.len();
    assert!(
        s.contains("PAUSED") && s.contains(&format!("Routes {n}│")),
        "{s}"
    );
    assert_eq!(live.state.routes.len(), n - 1, "data kept coming");
    a.handle_key(key('p'), &live);
    a.invalidate();
    let s = render(&mut a, &live, 100, 24);
    assert!(
        !s.contains("PAUSED") && s.contains(&format!("Routes {}│", n - 1)),
        "{s}"
    );
}

#[test]
fn detail_follows_its_row_and_says_when_it_is_gone() {
    let mut live = seed_live();
    let mut a = app();
    a.pane = Pane::Routes;
    a.refresh(&live);
    a.apply(Action::Down, &live);
    a.handle_key(code(KeyCode::Enter), &live);
    assert_eq!(a.mode, Mode::Detail);
    let shown = live.state.routes[1].clone();
    let dst = hopscope::view::columns::route_dst(&shown);
    let s = render(&mut a, &live, 100, 40);
    assert!(
        s.contains(&format!("dst  {dst}")) || s.contains(&dst),
        "{s}"
    );
    // A route before it goes: the detail still shows the same route.
    live.apply(
        Event::RouteDel(live.state.routes[0].clone()),
        Instant::now(),
    );
    let s = render(&mut a, &live, 100, 40);
    assert!(s.contains(&dst) && !s.contains("gone"), "{s}");
    live.apply(
        Event::RouteDel(live.state.routes[0].clone()),
        Instant::now(),
    );
    let s = render(&mut a, &live, 100, 40);
    assert!(s.contains("this row is gone"), "{s}");
}

#[test]
fn marks_and_tables_are_named() {
    let live = seed_live();
    let mut a = app();
    a.pane = Pane::Rules;
    let s = render(&mut a, &live, 120, 24);
    assert!(
        s.contains("0xe00/0xf00 (encrypt)") && s.contains("200 (cilium ipsec)"),
        "{s}"
    );
    a.pane = Pane::Sas;
    let s = render(&mut a, &live, 160, 24);
    assert!(s.contains("encrypt, key 3"), "{s}");
}

#[test]
fn resize_redraws_at_any_size() {
    let live = big_live(1000, 100);
    for (w, h) in [(80, 24), (40, 10), (200, 60), (20, 6), (10, 3)] {
        for p in PANES {
            let mut a = app();
            a.pane = p;
            let s = render(&mut a, &live, w, h);
            assert_eq!(s.lines().count(), h as usize);
        }
    }
}

#[test]
fn no_color_theme_is_monochrome() {
    let live = seed_live();
    let mut a = app();
    a.pane = Pane::Stats;
    a.refresh(&live);
    let mut t = Terminal::new(TestBackend::new(100, 24)).unwrap();
    let mono = Theme::builtin("mono");
    t.draw(|f| render::draw(f, &a, &live, &mono)).unwrap();
    let buf = t.backend().buffer();
    for c in buf.content() {
        assert_eq!(c.fg, ratatui::style::Color::Reset);
        assert_eq!(c.bg, ratatui::style::Color::Reset);
    }
}

#[test]
fn sample_links_stats_update_rates() {
    let live = seed_live();
    let mut a = app();
    let s = render(&mut a, &live, 140, 24);
    // eth0: 1500 B/s received in the sample series.
    let eth0 = s.lines().find(|l| l.contains("eth0@if8")).unwrap();
    assert!(eth0.contains("1.5k") && eth0.contains("3.0k"), "{eth0}");
    assert!(eth0.contains("4 ↑4"), "drops rising: {eth0}");
    let _ = LinkStats::default();
}

/// An Ethernet frame holding an ICMP echo request `src > dst` (id 87, seq `seq`, 56 data
/// bytes), from a MAC that is not the node's (so it is seen coming in).
fn echo_frame(src: [u8; 4], dst: [u8; 4], seq: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
    f.extend([0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0]);
    f.extend(src);
    f.extend(dst);
    f.extend([8, 0, 0, 0, 0, 87]);
    f.extend(seq.to_be_bytes());
    f.extend([0x61; 56]);
    f
}

/// Records as the capture makes them, from the seed worker's state.
fn seed_records(n: u16) -> Vec<hopscope::capture::analyze::PacketRecord> {
    use hopscope::capture::analyze::{Analyzer, Ts};
    use hopscope::decode::packet::LinkType;
    let mut an = Analyzer::new(&seed_worker(), false);
    (0..n)
        .map(|i| {
            let f = echo_frame([10, 0, 1, 52], [10, 0, 0, 249], i);
            let ts = Ts {
                sec: 1_720_000_000 + i64::from(i),
                nsec: 0,
            };
            an.analyze(
                "lxcda1dd0af135e",
                LinkType::Ethernet,
                ts,
                f.len() as u32,
                &f,
            )
        })
        .collect()
}

#[test]
fn packets_pane_shows_streams_drops_and_follows_the_newest() {
    use hopscope::capture::HandleCounts;
    let live = seed_live();
    let mut a = app();
    a.pane = Pane::Packets;
    let empty = render(&mut a, &live, 120, 20);
    assert!(
        empty.contains("no packets yet") && empty.contains(":capture"),
        "{empty}"
    );
    for r in seed_records(30) {
        a.packets.push(r);
    }
    let s = a.packets.stream_mut("lxcda1dd0af135e");
    s.counts.packets = 30;
    s.counts.plaintext = 30;
    s.rates.plaintext_pps = 1.0;
    s.drops = HandleCounts {
        queue_dropped: 7,
        kernel_dropped: 5,
        ..Default::default()
    };
    let scr = render(&mut a, &live, 140, 20);
    // The stream line: ESP and plaintext rates side by side, drops of both kinds.
    let head = scr.lines().nth(3).unwrap();
    assert!(
        head.contains("lxcda1dd0af135e")
            && head.contains("ESP       0/s")
            && head.contains("plain       1/s")
            && head.contains("drops kernel 5 hopscope 7"),
        "{scr}"
    );
    // Drops are in the header too, never hidden.
    assert!(
        scr.lines().next().unwrap().contains("12 pkts dropped"),
        "{scr}"
    );
    assert!(scr.contains("7 Packets 30"), "{scr}");
    // The selection follows the newest packet as more come...
    assert!(
        scr.contains("ICMP echo request, id 87, seq 29"),
        "newest shown: {scr}"
    );
    for r in seed_records(31).into_iter().skip(30) {
        a.packets.push(r);
    }
    a.refresh(&live);
    let v = &a.views[Pane::Packets.index()];
    assert_eq!(v.selected + 1, v.rows.len(), "still on the newest");
    // ...unless the user moved up: then it stays on its packet.
    a.handle_key(key('k'), &live);
    a.refresh(&live);
    let held = a.views[Pane::Packets.index()].selected_index();
    for r in seed_records(33).into_iter().skip(31) {
        a.packets.push(r);
    }
    a.refresh(&live);
    assert_eq!(a.views[Pane::Packets.index()].selected_index(), held);
    // A filter on the packet cells.
    a.set_filter("32,", &live);
    assert_eq!(a.views[Pane::Packets.index()].rows.len(), 1, "only seq 32");
    // More packets under a filter are filtered as they come (only the new ones): the same rows
    // as filtering all of them again.
    for r in seed_records(40).into_iter().skip(33) {
        a.packets.push(r);
    }
    a.set_filter("seq 3", &live);
    a.refresh(&live);
    for mut r in seed_records(60).into_iter().skip(40) {
        r.iface = "eth0".into();
        a.packets.push(r);
    }
    a.refresh(&live);
    let incremental = a.views[Pane::Packets.index()].rows.clone();
    a.invalidate();
    a.refresh(&live);
    assert_eq!(a.views[Pane::Packets.index()].rows, incremental);
    assert!(incremental.len() > 10, "{}", incremental.len());
}

#[test]
fn packets_pane_marks_leaks_failed_icvs_and_gone_interfaces() {
    use hopscope::capture::analyze::Decrypt;
    let live = seed_live();
    let mut a = app();
    a.pane = Pane::Packets;
    let mut recs = seed_records(2);
    recs[0].leak = Some("out policy 10.0.1.0/24 → 10.0.0.0/24 wants ESP".into());
    recs[1].decrypt = Some(Decrypt::AuthFailed { tried: 1 });
    for r in recs {
        a.packets.push(r);
    }
    a.packets.stream_mut("lxcda1dd0af135e").counts.leaks = 1;
    a.packets.stream_mut("eth0").gone = Some("The interface disappeared".into());
    let scr = render(&mut a, &live, 160, 20);
    assert!(scr.contains("LEAK: out policy"), "{scr}");
    assert!(scr.contains("AUTH FAILED"), "{scr}");
    assert!(scr.contains("GONE (The interface disappeared)"), "{scr}");
    assert!(scr.lines().next().unwrap().contains("1 LEAKS"), "{scr}");
    // Both rows are drawn in the trouble style.
    let t = draw(&mut a, &live, 160, 20);
    let buf = t.backend().buffer();
    let trouble = Theme::builtin("dark").style(Item::Trouble).fg;
    let rows: Vec<u16> = (0..20)
        .filter(|&y| {
            let line: String = (0..160).map(|x| buf[(x, y)].symbol()).collect();
            line.contains("ICMP echo request")
        })
        .collect();
    assert_eq!(rows.len(), 2);
    // The last row is selected (its own style); the other shows the trouble colour.
    assert_eq!(buf[(0, rows[0])].fg, trouble.unwrap());
}

#[test]
fn capture_keys_and_commands() {
    let live = seed_live();
    let mut a = app();
    // c on a link of the Links pane asks to capture there.
    a.refresh(&live);
    let eth0 = a.views[0]
        .rows
        .iter()
        .position(|&i| live.state.links[i].name == "eth0")
        .unwrap();
    a.views[0].selected = eth0;
    assert_eq!(
        a.handle_key(key('c'), &live),
        Effect::Capture {
            ifaces: vec!["eth0".into()],
            on: true
        }
    );
    // Commands: several interfaces; an unknown one lists those that exist.
    assert_eq!(
        a.run_command("capture eth0 cilium_host", &live),
        Effect::Capture {
            ifaces: vec!["eth0".into(), "cilium_host".into()],
            on: true
        }
    );
    assert_eq!(a.run_command("capture eth9", &live), Effect::None);
    let (m, err) = a.message.clone().unwrap();
    assert!(
        err && m.contains("no interface \"eth9\"") && m.contains("cilium_host"),
        "{m}"
    );
    // Completion of interface names.
    a.handle_key(key(':'), &live);
    typed(&mut a, &live, "capture cil");
    a.handle_key(code(KeyCode::Tab), &live);
    assert!(a.input.starts_with("capture cilium_"), "{}", a.input);
    a.handle_key(code(KeyCode::Esc), &live);
    // The capture filter is compiled by libpcap as it is typed, off the loop: each edit asks for
    // a check (Effect::CheckBpf) and the loop hands libpcap's verdict back; enter applies a
    // valid one.
    a.handle_key(key('b'), &live);
    assert_eq!(a.mode, Mode::Bpf);
    typed(&mut a, &live, "esp and host");
    assert_eq!(
        a.handle_key(key('x'), &live),
        Effect::CheckBpf("esp and hostx".into())
    );
    assert!(a.bpf_checking);
    let text = a.input.clone();
    a.bpf_checked(&text, hopscope::tui::bpf_check::check(&text));
    assert!(!a.bpf_checking);
    assert!(a.input_error.as_deref().unwrap_or("").contains("libpcap"));
    assert_eq!(
        a.handle_key(code(KeyCode::Enter), &live),
        Effect::None,
        "invalid: not applied"
    );
    for _ in 0.."x".len() {
        a.handle_key(code(KeyCode::Backspace), &live);
    }
    typed(&mut a, &live, " 172.18.0.4");
    let text = a.input.clone();
    a.bpf_checked(&text, hopscope::tui::bpf_check::check(&text));
    assert_eq!(a.input_error, None, "{:?}", a.input_error);
    assert_eq!(
        a.handle_key(code(KeyCode::Enter), &live),
        Effect::Bpf(Some("esp and host 172.18.0.4".into()))
    );
    // `:bpf` is not checked on the loop either: it is handed to the capture, which applies it
    // off the loop and refuses what libpcap refuses.
    assert_eq!(
        a.run_command("bpf tcp port", &live),
        Effect::Bpf(Some("tcp port".into()))
    );
    assert!(
        hopscope::tui::bpf_check::check("tcp port")
            .unwrap_err()
            .contains("libpcap")
    );
    assert_eq!(a.run_command("bpf", &live), Effect::Bpf(None));
    // d toggles decryption and says with how many SAs' keys, keys redacted.
    a.handle_key(key('d'), &live);
    assert!(a.packets.decrypt);
    let (m, _) = a.message.clone().unwrap();
    assert!(m.contains("keys of 3 SAs") && m.contains("redacted"), "{m}");
    a.run_command("decrypt off", &live);
    assert!(!a.packets.decrypt);
}

#[test]
fn trace_from_a_packet_and_from_the_command_line() {
    use hopscope::model::fixtures::seed_node;
    use hopscope::trace::path::{Node, trace};
    use hopscope::tui::flow::Traced;
    let live = seed_live();
    let mut a = app();
    a.pane = Pane::Packets;
    for r in seed_records(3) {
        a.packets.push(r);
    }
    a.refresh(&live);
    // t on the pod's echo request: its flow, entering on the pod's lxc.
    let Effect::Trace(flow) = a.handle_key(key('t'), &live) else {
        panic!("no trace effect: {:?}", a.message)
    };
    assert_eq!(
        (flow.src.to_string(), flow.dst.to_string(), flow.proto),
        ("10.0.1.52".into(), "10.0.0.249".into(), 1)
    );
    assert_eq!(flow.iif.as_deref(), Some("lxcda1dd0af135e"));
    assert_eq!(flow.size, 84);
    // The same packet picked where it leaves on eth0: it entered on the lxc that saw it come in.
    let mut leaving = seed_records(1).remove(0);
    leaving.iface = "eth0".into();
    leaving.dir = hopscope::decode::packet::Direction::Out;
    a.packets.push(leaving);
    a.refresh(&live);
    let Effect::Trace(from_eth0) = a.handle_key(key('t'), &live) else {
        panic!("no trace effect: {:?}", a.message)
    };
    assert_eq!(from_eth0.iif.as_deref(), Some("lxcda1dd0af135e"));
    // :trace takes the CLI's arguments; bad ones get one line of why.
    let Effect::Trace(f2) =
        a.run_command("trace 10.0.1.52 10.0.0.249 --proto tcp --dport 80", &live)
    else {
        panic!("{:?}", a.message)
    };
    assert_eq!((f2.proto, f2.dport), (6, Some(80)));
    assert_eq!(
        a.run_command("trace 10.0.1.52 nowhere", &live),
        Effect::None
    );
    assert!(
        a.message.as_ref().unwrap().0.contains("nowhere"),
        "{:?}",
        a.message
    );
    // The runtime predicts the path; the pane shows each hop and what decided it.
    let node = Node {
        name: "worker".into(),
        state: seed_node("worker"),
        netfilter: Default::default(),
    };
    let t = trace(std::slice::from_ref(&node), &flow);
    let mut traced = Traced::new("worker", t, node.state.clone());
    assert!(
        traced.devices.contains(&"eth0".to_string()),
        "{:?}",
        traced.devices
    );
    // Packets seen on the pod's lxc only: that hop is seen, eth0 is not.
    for r in seed_records(3) {
        traced.observe(&r);
    }
    traced.update(&node.state);
    a.traced = Some(traced);
    a.trace_gen += 1;
    a.pane = Pane::Trace;
    let scr = render(&mut a, &live, 180, 30);
    assert!(
        scr.contains("flow 10.0.1.52 → 10.0.0.249 icmp on worker"),
        "{scr}"
    );
    assert!(
        scr.contains("xfrm_policy") && scr.contains("xfrm_state"),
        "{scr}"
    );
    let lxc = scr
        .lines()
        .find(|l| l.contains("ingress") && l.contains("lxcda1dd0af135e"))
        .unwrap_or_else(|| panic!("{scr}"));
    assert!(lxc.contains("✓ 3"), "{lxc}");
    let eth0 = scr
        .lines()
        .find(|l| l.contains("eth0") && l.contains("✗ 0"))
        .unwrap_or_else(|| panic!("eth0 not marked unseen: {scr}"));
    assert!(eth0.contains("egress") || eth0.contains("wire"), "{eth0}");
    assert!(
        scr.contains("seen: stops after lxcda1dd0af135e on worker"),
        "{scr}"
    );
    // That verdict is bad news: drawn in the trouble style; the flow line is not.
    let t = draw(&mut a, &live, 180, 30);
    let buf = t.backend().buffer();
    let style_of = |prefix: &str| {
        let y = (0..30)
            .find(|&y| {
                let line: String = (0..180).map(|x| buf[(x, y)].symbol()).collect();
                line.starts_with(prefix)
            })
            .unwrap_or_else(|| panic!("no line {prefix}"));
        buf[(0, y)].fg
    };
    let trouble = Theme::builtin("dark").style(Item::Trouble).fg.unwrap();
    assert_eq!(style_of("seen: stops after"), trouble);
    assert_ne!(style_of("flow 10.0.1.52"), trouble);
}

#[test]
fn packets_beyond_the_ring_are_let_go_and_counted() {
    use hopscope::tui::packets::KEEP;
    let live = seed_live();
    let mut a = app();
    a.pane = Pane::Packets;
    let r = seed_records(1).remove(0);
    for _ in 0..KEEP + 5 {
        a.packets.push(r.clone());
    }
    assert_eq!((a.packets.len(), a.packets.evicted()), (KEEP, 5));
    assert_eq!(a.packets.seqs(), 5..KEEP as u64 + 5);
    let scr = render(&mut a, &live, 120, 20);
    assert!(
        scr.contains("5 older packets let go (newest 20000 kept)"),
        "{scr}"
    );
}

#[test]
fn trace_after_a_filter_takes_the_packet_shown_selected() {
    use hopscope::capture::analyze::{Analyzer, Ts};
    use hopscope::decode::packet::LinkType;
    let live = seed_live();
    let mut a = app();
    a.pane = Pane::Packets;
    let mut an = Analyzer::new(&seed_worker(), false);
    let mut push = |a: &mut App, src: [u8; 4], dst: [u8; 4], seq: u16| {
        let f = echo_frame(src, dst, seq);
        let ts = Ts {
            sec: 1_720_000_000 + i64::from(seq),
            nsec: 0,
        };
        a.packets.push(an.analyze(
            "lxcda1dd0af135e",
            LinkType::Ethernet,
            ts,
            f.len() as u32,
            &f,
        ));
    };
    // Ten echo requests of 10.0.1.99, then ten of 10.0.1.52.
    for seq in 0..20 {
        let src = if seq < 10 {
            [10, 0, 1, 99]
        } else {
            [10, 0, 1, 52]
        };
        push(&mut a, src, [10, 0, 0, 249], seq);
    }
    a.refresh(&live);
    // The user picks packet 15, then filters on 10.0.1.99: packet 15 is hidden, and the last
    // of the rows left (packet 9) is selected.
    typed(&mut a, &live, "kkkk");
    assert_eq!(a.view().selected_index(), Some(15));
    a.set_filter("10.0.1.99", &live);
    assert_eq!(a.view().rows.len(), 10);
    assert_eq!(a.view().selected_index(), Some(9));
    // A new packet that the filter shows arrives: the selection stays where the user left it
    // (it is not "on the newest row" and dragged along), so `t` traces what was shown selected.
    push(&mut a, [10, 0, 1, 99], [10, 0, 0, 250], 20);
    a.refresh(&live);
    assert_eq!(a.view().selected_index(), Some(9), "{:?}", a.view().rows);
    let Effect::Trace(flow) = a.handle_key(key('t'), &live) else {
        panic!("no trace effect: {:?}", a.message)
    };
    assert_eq!(
        (flow.src.to_string(), flow.dst.to_string()),
        ("10.0.1.99".into(), "10.0.0.249".into())
    );
    // Clearing the filter goes back to the packet the user picked.
    a.set_filter("", &live);
    assert_eq!(a.view().selected_index(), Some(15));
    // Moving to the bottom follows the newest again.
    a.handle_key(code(KeyCode::End), &live);
    push(&mut a, [10, 0, 1, 52], [10, 0, 0, 249], 21);
    a.refresh(&live);
    assert_eq!(a.view().selected_index(), Some(21));
}

#[test]
fn trace_pane_names_the_addresses_of_what_decided() {
    use hopscope::model::Names;
    use hopscope::model::fixtures::seed_node;
    use hopscope::model::names::PodCidr;
    use hopscope::trace::path::{Node, trace};
    use hopscope::tui::flow::Traced;
    let live = seed_live();
    let node = Node {
        name: "worker".into(),
        state: seed_node("worker"),
        netfilter: Default::default(),
    };
    // The pod's echo request, traced from its packet row as a user would (t).
    let mut a = app();
    a.pane = Pane::Packets;
    a.packets.push(seed_records(1).remove(0));
    a.refresh(&live);
    let Effect::Trace(flow) = a.handle_key(key('t'), &live) else {
        panic!("no trace effect: {:?}", a.message)
    };
    let t = trace(std::slice::from_ref(&node), &flow);
    a.traced = Some(Traced::new("worker", t, node.state.clone()));
    a.trace_gen += 1;
    a.pane = Pane::Trace;
    let policy_row = |scr: &str| {
        scr.lines()
            .find(|l| l.contains("xfrm_policy") && l.contains("policy out"))
            .unwrap_or_else(|| panic!("no out policy hop: {scr}"))
            .to_string()
    };
    let plain = policy_row(&render(&mut a, &live, 240, 30));
    assert!(!plain.contains("pods)"), "{plain}");
    // With the cluster's names, the policy's selector says whose addresses they are.
    let mut names = Names::default();
    for (cidr, node) in [("10.0.1.0/24", "worker"), ("10.0.0.0/24", "worker2")] {
        names.pod_cidrs.push(PodCidr {
            prefix: cidr.parse().unwrap(),
            node: node.into(),
        });
    }
    a.names = std::sync::Arc::new(names);
    a.invalidate();
    let named = policy_row(&render(&mut a, &live, 240, 30));
    assert!(named.contains("(worker2 pods)"), "{named}");
}
