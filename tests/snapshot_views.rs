//! The text and JSON views of a hand-built seed-like state, pinned with insta, plus the
//! properties that must hold whatever the layout: keys redacted, Cilium meanings named.

use hopscope::model::fixtures::{SEED_KEY, seed_worker};
use hopscope::view::{json, text};

fn key_hex() -> String {
    SEED_KEY.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn text_view_of_seed_worker() {
    let out = text::render(&seed_worker(), false, &Default::default());
    insta::assert_snapshot!(out);
}

#[test]
fn json_view_of_seed_worker() {
    let v: serde_json::Value = serde_json::from_str(&json::render(&seed_worker(), false)).unwrap();
    insta::assert_json_snapshot!(v);
}

#[test]
fn json_has_the_stable_top_level_keys() {
    let v: serde_json::Value = serde_json::from_str(&json::render(&seed_worker(), false)).unwrap();
    for k in [
        "node",
        "links",
        "routes",
        "rules",
        "xfrm_states",
        "xfrm_policies",
        "xfrm_stats",
    ] {
        assert!(v.get(k).is_some(), "missing top-level key {k}");
    }
    assert_eq!(
        v["xfrm_states"][0]["mark"],
        serde_json::json!({"value": 0x3e00, "mask": 0xff00})
    );
    assert_eq!(v["routes"][0]["dst"], "default");
    assert_eq!(
        v["routes"][6]["table"],
        serde_json::json!({"id": 200, "name": null})
    );
    assert_eq!(
        v["routes"][0]["dev"],
        serde_json::json!({"index": 7, "name": "eth0"})
    );
    assert_eq!(v["xfrm_stats"]["XfrmInNoStates"], 5);
}

#[test]
fn keys_are_redacted_unless_asked() {
    let hex = key_hex();
    let state = seed_worker();
    for out in [
        text::render(&state, false, &Default::default()),
        json::render(&state, false),
        format!("{state:?}"),
    ] {
        assert!(!out.contains(&hex), "key leaked");
        assert!(!out.contains(&hex[..16]), "key prefix leaked");
    }
    assert!(json::render(&state, false).contains("\"key\": \"redacted\""));
    let shown = json::render(&state, true);
    assert_eq!(
        shown.matches(&format!("\"0x{hex}\"")).count(),
        3,
        "every SA's key shown with --show-keys"
    );
    assert!(text::render(&state, true, &Default::default()).contains(&format!("0x{hex}")));
    // Revealing is scoped to one rendering.
    assert!(!json::render(&state, false).contains(&hex));
}

#[test]
fn text_names_cilium_marks_and_tables() {
    let out = text::render(&seed_worker(), false, &Default::default());
    assert!(out.contains("0xe00/0xf00 (encrypt)"), "{out}");
    assert!(out.contains("0x3e00/0xff00 (encrypt, key 3)"));
    assert!(out.contains("0xd00/0xf00 (decrypt)"));
    assert!(out.contains("lookup 200 (cilium ipsec)"));
    assert!(out.contains("cilium_host@cilium_net"));
    assert!(out.contains("eth0@if8"));
}

#[test]
fn json_reads_back_into_the_same_state() {
    use hopscope::model::NodeState;
    let state = seed_worker();
    let with_keys: NodeState = serde_json::from_str(&json::render(&state, true)).unwrap();
    assert_eq!(
        with_keys, state,
        "a --show-keys snapshot is a faithful recording"
    );
    let redacted: NodeState = serde_json::from_str(&json::render(&state, false)).unwrap();
    assert_eq!(redacted.routes, state.routes);
    assert_eq!(
        redacted.xfrm_stats, state.xfrm_stats,
        "counter order is kept"
    );
    let key = redacted.xfrm_states[0].aead.as_ref().unwrap().key.expose();
    assert!(
        key.is_empty(),
        "a redacted key reads back as no key, not as the marker's bytes"
    );
}
