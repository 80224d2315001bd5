//! `--json`: the NodeState as one document (schema in docs/json.md and
//! docs/schema/snapshot.v1.json).

use crate::model::{NodeState, reveal_secrets};
use crate::output::{SNAPSHOT, Stamp};
use serde::Serialize;
use std::io::Write;

/// The snapshot document's body: the node's state, and what hopscope reads from it that the
/// kernel does not say — which of Cilium's IPsec layouts its SAs follow, its node IDs named,
/// and its SAs per remote node against that layout's expectation.
#[derive(Serialize)]
struct Snapshot<'a> {
    #[serde(flatten)]
    state: &'a NodeState,
    #[serde(skip_serializing_if = "Option::is_none")]
    cilium_ipsec: Option<crate::explain::cilium::NodeLayout>,
}

/// Stream the document, envelope first, to `w` (no intermediate String: 100k routes stay
/// cheap). Pretty for people at a terminal, compact for pipes and files.
pub fn write(
    state: &NodeState,
    stamp: &Stamp,
    show_keys: bool,
    pretty: bool,
    names: &crate::model::Names,
    w: impl Write,
) -> serde_json::Result<()> {
    let body = Snapshot {
        state,
        cilium_ipsec: crate::explain::cilium::node_layout(&state.xfrm_states, names),
    };
    let doc = stamp.document(SNAPSHOT, &body);
    reveal_secrets(show_keys, || {
        if pretty {
            serde_json::to_writer_pretty(w, &doc)
        } else {
            serde_json::to_writer(w, &doc)
        }
    })
}

/// The state alone, pretty (no envelope): what tests and recorded fixtures compare.
pub fn render(state: &NodeState, show_keys: bool) -> String {
    let mut out = Vec::new();
    reveal_secrets(show_keys, || serde_json::to_writer_pretty(&mut out, state))
        .expect("NodeState serializes: all keys are strings");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}
