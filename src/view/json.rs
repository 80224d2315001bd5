//! `--json`: the NodeState as one document (schema in docs/json.md and
//! docs/schema/snapshot.v1.json).

use crate::model::{NodeState, reveal_secrets};
use crate::output::{SNAPSHOT, Stamp};
use std::io::Write;

/// Stream the document, envelope first, to `w` (no intermediate String: 100k routes stay
/// cheap). Pretty for people at a terminal, compact for pipes and files.
pub fn write(
    state: &NodeState,
    stamp: &Stamp,
    show_keys: bool,
    pretty: bool,
    w: impl Write,
) -> serde_json::Result<()> {
    let doc = stamp.document(SNAPSHOT, state);
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
