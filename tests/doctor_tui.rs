//! The TUI's Health pane (docs/doctor.md): the doctor's findings for the node shown, the
//! header's fail/warn counts, the marked tabs, Enter to the object a finding names, and the
//! findings judged again when the node changes.

use hopscope::model::event::{Event, Live};
use hopscope::model::fixtures::seed_node;
use hopscope::tui::app::App;
use hopscope::tui::keymap::{Action, Keymap};
use hopscope::tui::render;
use hopscope::tui::rows::Pane;
use hopscope::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::time::{Duration, Instant, SystemTime};

/// The screen as text after a frame (refresh asks the doctor's thread to judge the node
/// again; the frame is drawn once its answer is in).
fn frame(app: &mut App, live: &Live) -> String {
    app.refresh(live);
    app.health.settle(Duration::from_secs(10));
    app.refresh(live);
    let mut t = Terminal::new(TestBackend::new(160, 30)).unwrap();
    let theme = Theme::builtin("dark");
    t.draw(|f| render::draw(f, app, live, &theme)).unwrap();
    let b = t.backend().buffer();
    (0..b.area.height)
        .map(|y| {
            (0..b.area.width)
                .map(|x| b[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_string()
                + "\n"
        })
        .collect()
}

fn app() -> App {
    App::new(
        Keymap::default(),
        Duration::from_secs(1),
        "netns worker2".into(),
        SystemTime::now(),
    )
}

/// worker2 without its inbound SA: ESP from its peers finds none.
fn broken() -> Live {
    let mut st = seed_node("worker2");
    st.xfrm_states.retain(|s| s.src != "0.0.0.0");
    Live::new(st)
}

#[test]
fn health_pane_lists_findings_counts_them_and_marks_tabs() {
    let live = broken();
    let mut a = app();
    a.apply(Action::Pane(Pane::Health.index()), &live);
    let s = frame(&mut a, &live);
    assert!(s.contains("doctor: 1 fail 0 warn (9)"), "{s}");
    assert!(s.contains("fail  in-sa-missing"), "{s}");
    assert!(s.contains("ESP spi 0x3 to 10.0.0.40 finds no SA"), "{s}");
    assert!(s.contains("verdict") || s.contains("FAIL: 1 fail"), "{s}");
    // The SAs tab holds the nearest SA a failure names; the Routes tab nothing.
    assert!(s.contains("4 XFRM SAs! "), "{s}");
    assert!(s.contains("2 Routes 11 "), "{s}");
    // A healthy node: no counts, no marks, the ok line.
    let fine = Live::new(seed_node("worker2"));
    let mut b = app();
    b.apply(Action::Pane(Pane::Health.index()), &fine);
    let s = frame(&mut b, &fine);
    assert!(!s.contains("doctor:") && !s.contains("!"), "{s}");
    assert!(s.contains("ok    lookups"), "{s}");
}

#[test]
fn enter_jumps_to_the_object_a_finding_names() {
    let live = broken();
    let mut a = app();
    a.apply(Action::Pane(Pane::Health.index()), &live);
    frame(&mut a, &live);
    let f = &a.health.report.as_ref().unwrap().findings[a.view().selected_index().unwrap()];
    assert_eq!(f.id, "in-sa-missing");
    let Some(hopscope::doctor::Object::Sa(sa)) = f.object.clone() else {
        panic!("{f:?}")
    };
    a.apply(Action::Detail, &live);
    assert_eq!(a.pane, Pane::Sas);
    assert_eq!(a.view().selected_index(), Some(sa));
}

#[test]
fn findings_are_judged_again_when_the_node_changes() {
    let mut live = broken();
    let mut a = app();
    a.apply(Action::Pane(Pane::Health.index()), &live);
    assert!(frame(&mut a, &live).contains("in-sa-missing"));
    // The SA comes back (the monitor resyncs the node): the failure is gone.
    live.apply(
        Event::Resync(Box::new(seed_node("worker2"))),
        Instant::now(),
    );
    let s = frame(&mut a, &live);
    assert!(
        !s.contains("in-sa-missing") && !s.contains("doctor:"),
        "{s}"
    );
}

/// The loop feeds events to the doctor's thread as it applies them: its own copy follows the
/// node, so judging never copies the whole state on the loop (only the first, handed-in one).
#[test]
fn the_doctor_thread_follows_the_node_by_its_events() {
    let mut a = app();
    let mut live = Live::default();
    let now = Instant::now();
    let mut st = seed_node("worker2");
    let sa = st
        .xfrm_states
        .iter()
        .position(|s| s.src == "0.0.0.0")
        .unwrap();
    let inbound = st.xfrm_states.remove(sa);
    a.health.feed(&mut live, Event::Resync(Box::new(st)), now);
    a.apply(Action::Pane(Pane::Health.index()), &live);
    assert!(frame(&mut a, &live).contains("in-sa-missing"));
    // The inbound SA comes back as an event, not a whole state.
    a.health
        .feed(&mut live, Event::SaNew(Box::new(inbound)), now);
    let s = frame(&mut a, &live);
    assert!(
        !s.contains("in-sa-missing") && s.contains("ok    lookups"),
        "{s}"
    );
    assert_eq!((a.health.copies, a.health.dropped), (0, 0));
    assert_eq!(a.health.judgements, 2);
    // A state handed in whole (not through feed) is copied once, then judged right.
    let other = broken();
    let s = frame(&mut a, &other);
    assert!(s.contains("in-sa-missing"), "{s}");
    assert_eq!(a.health.copies, 1);
}

/// The Health pane judges with the names the TUI has, as the CLI doctor does: Kubernetes'
/// node list makes an SA to a node it does not list stale (named so), and names arriving after
/// a judgement are judged with at once.
#[test]
fn health_judges_with_kubernetes_names() {
    use hopscope::model::Names;
    use hopscope::model::names::{CiliumNodeInfo, Name, NameKind, PodCidr};
    let live = Live::new(seed_node("worker"));
    let mut a = app();
    a.apply(Action::Pane(Pane::Health.index()), &live);
    let without = frame(&mut a, &live);
    assert!(!without.contains("stale-sa"), "{without}");
    // Kubernetes lists worker2 (and its router, 10.0.0.40), not control-plane (10.0.2.52).
    let mut names = Names::default();
    names.addresses.insert(
        "172.18.0.4".parse().unwrap(),
        Name {
            label: "worker2".into(),
            kind: NameKind::Node,
            object: "node worker2".into(),
        },
    );
    names.pod_cidrs.push(PodCidr {
        prefix: "10.0.0.0/24".parse().unwrap(),
        node: "worker2".into(),
    });
    names.cilium_nodes.push(CiliumNodeInfo {
        node: "kind-worker2".into(),
        label: "worker2".into(),
        router_ips: vec!["10.0.0.40".parse().unwrap()],
        ..Default::default()
    });
    a.names = std::sync::Arc::new(names);
    let with = frame(&mut a, &live);
    assert!(with.contains("stale-sa"), "{with}");
    assert!(with.contains("1 Kubernetes node(s) (worker2)"), "{with}");
}
