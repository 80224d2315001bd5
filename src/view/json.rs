//! `--json`: the NodeState as one document (schema in docs/json.md).

use crate::model::{NodeState, reveal_secrets};

pub fn render(state: &NodeState, show_keys: bool) -> String {
    reveal_secrets(show_keys, || serde_json::to_string_pretty(state))
        .expect("NodeState serializes: all keys are strings")
}
