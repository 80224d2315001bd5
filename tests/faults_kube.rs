//! The Kubernetes API going away and coming back under a running names watch (the fake API
//! server of tests/kube_support): while it is gone the last names stay and the loss is said;
//! once it answers again, what changed meanwhile shows (a fresh list, not the old table) and
//! that it is back is said too.

mod kube_support;

use hopscope::kube::KubeArgs;
use hopscope::kube::names::NamesWatch;
use kube_support::{FakeApi, Mode};
use serde_json::json;
use std::time::{Duration, Instant};

fn wait(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_api_going_away_and_coming_back_is_said_and_names_catch_up() {
    let fake = FakeApi::start();
    let w = NamesWatch::start(&KubeArgs {
        kubeconfig: Some(fake.kubeconfig()),
        ..Default::default()
    });
    assert!(w.wait_settled(Duration::from_secs(10)));
    let label = |ip: &str| w.names().label(&ip.parse().unwrap());
    assert_eq!(label("10.0.1.52").as_deref(), Some("default/net"));
    assert!(fake.wait_for(Duration::from_secs(10), |l| {
        l.starts_with("GET /api/v1/pods?") && l.contains("watch=true")
    }));
    assert_eq!(w.notices(), Vec::<String>::new());

    // Gone: the open watch is cut, and the lists that follow get no answer.
    fake.with(|s| s.mode = Mode::Down);
    wait("the loss said", Duration::from_secs(20), || {
        w.notices()
            .iter()
            .any(|n| n.contains("list pods") && n.contains("no names from pods"))
    });
    // The last names known stay meanwhile.
    assert_eq!(label("10.0.1.52").as_deref(), Some("default/net"));

    // While it was gone, the pod was replaced by one of another name.
    fake.with(|s| {
        let pods = s.lists.get_mut("/api/v1/pods").unwrap();
        pods["items"][0]["metadata"]["name"] = json!("net-replaced");
        pods["metadata"]["resourceVersion"] = json!("1700");
        s.mode = Mode::Normal;
    });
    wait(
        "the new name after the API came back",
        Duration::from_secs(60),
        || label("10.0.1.52").as_deref() == Some("default/net-replaced"),
    );
    let notices = w.notices();
    assert!(
        notices
            .iter()
            .any(|n| n.contains("pods listed again") && n.contains("names are current")),
        "{notices:?}"
    );
}
