//! Validate a hopscope JSON document against its schema in docs/schema/ (picked by the
//! document's own `schema` and `schema_version`), for the host tests and the lab's results.
#![allow(dead_code)]

use serde_json::Value;
use std::path::Path;

/// The schema file a document names.
pub fn schema_for(doc: &Value) -> Value {
    let name = doc["schema"]
        .as_str()
        .unwrap_or_else(|| panic!("no \"schema\" key: {doc}"));
    let version = doc["schema_version"]
        .as_u64()
        .unwrap_or_else(|| panic!("no \"schema_version\": {doc}"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/schema")
        .join(format!("{name}.v{version}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Panics with every violation (and where) unless `doc` is valid against its schema.
#[track_caller]
pub fn validate(what: &str, doc: &Value) {
    let schema = schema_for(doc);
    let v = jsonschema::validator_for(&schema).expect("the schema itself is valid");
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match docs/schema/{}.v{}.json:\n{}",
        doc["schema"].as_str().unwrap_or("?"),
        doc["schema_version"],
        errors.join("\n")
    );
}

/// The exit status hopscope must have given with `doc` on stdout (docs/exit-codes.md): 0, or
/// for a trace the one its end calls for — 3 when it stops, 4 when `--follow` saw a hop get
/// nothing.
pub fn expected_exit(doc: &Value) -> i32 {
    if doc["schema"] != "trace" {
        0
    } else if doc["end"]["end"] == "stopped" {
        3
    } else if doc["follow"]["hops"]
        .as_array()
        .is_some_and(|h| h.iter().any(|h| h["seen"] == 0))
    {
        4
    } else {
        0
    }
}
