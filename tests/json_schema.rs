//! Every JSON document hopscope writes matches its schema in docs/schema/: real outputs of the
//! binary (snapshot of a live netns and of the recorded cluster node, traces live and
//! recorded, capture lines of each type), validated with the jsonschema crate. The schemas are
//! closed (no unknown key), so a change of shape fails here until the schema file says it.

mod common;
#[path = "schema_support/mod.rs"]
mod schema_support;

use common::{Netns, require_root};
use schema_support::validate;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_hopscope");

fn json_of(c: &mut Command) -> Value {
    let out = c.output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn every_schema_has_its_file_and_says_its_version() {
    for s in hopscope::output::SCHEMAS {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs/schema")
            .join(s.file_name());
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(
            v["title"]
                .as_str()
                .unwrap()
                .contains(&format!("schema version {}", s.version)),
            "{}",
            path.display()
        );
        jsonschema::validator_for(&v).expect("a valid JSON Schema");
    }
}

#[test]
fn snapshots_match_the_schema() {
    require_root();
    let ns = Netns::new("schema");
    ns.ip("link add v0 type veth peer name v1");
    ns.ip("addr add 10.78.0.1/24 dev v0");
    ns.ip("link set v0 up");
    ns.ip("route add 10.79.0.0/16 via 10.78.0.2 table 200 mtu 1400 metric 5");
    ns.ip("rule add fwmark 0xd00/0xf00 lookup 200 pref 10");
    let v = json_of(Command::new(BIN).args(["snapshot", "--json", "--netns", &ns.name]));
    validate("snapshot --json of a netns", &v);
    assert_eq!(v["schema"], "snapshot");
    // The recorded cluster node has SAs, policies and marks, through the same writer.
    let mut out = Vec::new();
    let st = hopscope::model::fixtures::seed_worker();
    hopscope::view::json::write(
        &st,
        &hopscope::output::Stamp::now(),
        false,
        true,
        &Default::default(),
        &mut out,
    )
    .unwrap();
    validate(
        "snapshot of the seed worker",
        &serde_json::from_slice(&out).unwrap(),
    );
    // A document without its envelope is refused by the schema.
    let bare: Value = serde_json::from_str(&hopscope::view::json::render(&st, false)).unwrap();
    let schema =
        schema_support::schema_for(&serde_json::json!({"schema": "snapshot", "schema_version": 1}));
    assert!(!jsonschema::is_valid(&schema, &bare));
}

#[test]
fn traces_match_the_schema() {
    let dir = std::env::temp_dir().join(format!("hs-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut args: Vec<String> = ["trace", "10.0.1.52", "10.0.0.249", "--json", "--iif"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push("lxcda1dd0af135e".into());
    for n in ["worker", "worker2", "control-plane"] {
        let f = dir.join(format!("{n}.json"));
        std::fs::write(
            &f,
            hopscope::view::json::render(&hopscope::model::fixtures::seed_node(n), false),
        )
        .unwrap();
        args.push("--state".into());
        args.push(f.display().to_string());
    }
    let v = json_of(Command::new(BIN).args(&args).arg("--no-kube"));
    validate("trace over recorded nodes (delivered)", &v);
    assert_eq!(v["end"]["end"], "delivered");
    // One node only: the flow leaves it on the wire.
    let v = json_of(Command::new(BIN).args(&args[..8]).arg("--no-kube"));
    validate("trace over one recorded node", &v);
    // A destination nobody routes: it stops.
    let mut stop = args.clone();
    stop[2] = "192.0.2.9".into();
    let v = json_of(Command::new(BIN).args(&stop).arg("--no-kube"));
    validate("trace that stops", &v);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn capture_lines_match_the_schema() {
    require_root();
    let ns = Netns::new("schemacap");
    ns.ip("link set lo up");
    let err = std::env::temp_dir().join(format!("hs-schemacap-{}.err", std::process::id()));
    let child = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, BIN, "capture", "-i", "lo", "--json",
        ])
        .args(["--stats", "0.2", "--duration", "5", "icmp"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    // Ping once it captures (a fixed delay could ping before, on a slow machine).
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(&err).is_ok_and(|e| e.contains("capturing on")) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the capture never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    common::run(
        "ip",
        &[
            "netns",
            "exec",
            &ns.name,
            "ping",
            "-c",
            "2",
            "-i",
            "0.2",
            "127.0.0.1",
        ],
    );
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&err);
    let text = String::from_utf8(out.stdout).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        validate(&format!("capture line {line}"), &v);
        kinds.insert(v["type"].as_str().unwrap().to_string());
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["packet", "rates", "summary"],
        "{text}"
    );
}

/// The doctor's report of a recording (broken: every kind of object and a counter named, and
/// healthy), through the binary, in the common envelope.
#[test]
fn doctor_reports_match_the_schema() {
    let root = env!("CARGO_MANIFEST_DIR");
    for (rec, netns, code) in [
        ("demo/seed-broken.hsrec", None, 2),
        ("demo/seed.hsrec", Some("worker"), 0),
    ] {
        let out = Command::new(BIN)
            .args(["doctor", "--no-kube", "--json", "--from"])
            .arg(format!("{root}/{rec}"))
            .args(netns.map(|n| ["--netns", n]).into_iter().flatten())
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        validate(&format!("doctor --json --from {rec}"), &v);
        assert_eq!(v["schema"], "doctor");
        assert_eq!(out.status.code(), Some(code), "{rec}: {v}");
        assert_eq!(v["exit_code"], code);
    }
}
