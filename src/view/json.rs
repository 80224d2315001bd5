//! `--json`: the NodeState as one document (schema in docs/json.md).

use crate::model::{NodeState, reveal_secrets};
use std::io::Write;

/// Stream the document to `w` (no intermediate String: 100k routes stay cheap).
/// Pretty for people at a terminal, compact for pipes and files.
pub fn write(
    state: &NodeState,
    show_keys: bool,
    pretty: bool,
    w: impl Write,
) -> serde_json::Result<()> {
    reveal_secrets(show_keys, || {
        if pretty {
            serde_json::to_writer_pretty(w, state)
        } else {
            serde_json::to_writer(w, state)
        }
    })
}

pub fn render(state: &NodeState, show_keys: bool) -> String {
    let mut out = Vec::new();
    write(state, show_keys, true, &mut out).expect("NodeState serializes: all keys are strings");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}
