//! `hopscope bundle`: the archive for a ticket. Its files hold no key bytes (raw or hex,
//! checked byte-wise) unless `--show-keys`, and a keyed hash of each SA's keys that compares
//! equal across nodes with the same key and secret; on a netns (root) the archive holds each
//! part README.txt lists, and the recording in it replays.

mod common;

use common::{Netns, require_root};
use hopscope::doctor::KeyHasher;
use hopscope::model::fixtures::{SEED_KEY, seed_node};
use hopscope::record::bundle::{key_hashes, node_files};
use hopscope::record::reader::Recording;
use std::collections::BTreeMap;
use std::io::Read;

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_key_bytes_unless_asked_and_key_hashes_compare_nodes() {
    let st = seed_node("worker");
    assert!(!st.xfrm_states.is_empty());
    let keys = KeyHasher::new(b"incident-42".to_vec());
    let nf = Ok(Default::default());
    let hex: String = SEED_KEY.iter().map(|b| format!("{b:02x}")).collect();
    let files = node_files("worker", &st, &nf, &keys, false).unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "worker/snapshot.json",
            "worker/snapshot.txt",
            "worker/key-hashes.json",
            "worker/netfilter.json"
        ]
    );
    for (name, bytes) in &files {
        assert!(!contains(bytes, &SEED_KEY), "raw key bytes in {name}");
        assert!(!contains(bytes, hex.as_bytes()), "hex key in {name}");
    }
    let snap = String::from_utf8(files[0].1.clone()).unwrap();
    assert!(snap.contains("redacted"), "{snap}");
    // With --show-keys the key is there (so the check above can see one).
    let shown = node_files("worker", &st, &nf, &keys, true).unwrap();
    assert!(
        contains(&shown[0].1, hex.as_bytes()),
        "the key with --show-keys"
    );
    // The hashes: one per SA; the same key under the same secret hashes the same on another
    // node, another secret or another key does not.
    let h = key_hashes(&st, &keys);
    assert_eq!(h.len(), st.xfrm_states.len());
    let other = key_hashes(&seed_node("worker2"), &keys);
    assert_eq!(h[0].key_hash, other[0].key_hash, "same key, same secret");
    let salted = key_hashes(&st, &KeyHasher::new(b"another".to_vec()));
    assert_ne!(h[0].key_hash, salted[0].key_hash);
    let mut rekeyed = st.clone();
    let aead = rekeyed.xfrm_states[0].aead.as_mut().unwrap();
    let mut k = aead.key.expose().to_vec();
    k[0] ^= 1;
    aead.key = hopscope::model::Secret::new(k);
    assert_ne!(key_hashes(&rekeyed, &keys)[0].key_hash, h[0].key_hash);
}

/// The archive's files by name (without the top directory).
fn unpack(path: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap());
    let mut ar = tar::Archive::new(gz);
    let mut out = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        let name = name
            .strip_prefix("hopscope-bundle/")
            .expect(&name)
            .to_string();
        out.insert(name, b);
    }
    out
}

#[test]
fn a_bundle_of_a_netns_holds_what_its_readme_lists() {
    require_root();
    let ns = Netns::new("bundle");
    ns.ip("link set lo up");
    let dir = std::env::temp_dir().join(format!("hopscope-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("node.tar.gz");
    let ping = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "ping",
            "-c",
            "25",
            "-i",
            "0.2",
            "127.0.0.1",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args([
            "--no-kube",
            "bundle",
            "--duration",
            "2",
            "-i",
            "lo",
            "-f",
            "icmp",
        ])
        .args(["--hash-secret", "s3cret", "--netns", &ns.name, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let _ = ping.wait_with_output();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("no keys"), "{stderr}");
    let files = unpack(&out);
    let n = &ns.name;
    for f in [
        "README.txt".to_string(),
        format!("{n}/snapshot.json"),
        format!("{n}/snapshot.txt"),
        format!("{n}/key-hashes.json"),
        "doctor.json".into(),
        "doctor.txt".into(),
        "recording.hsrec".into(),
    ] {
        assert!(files.contains_key(&f), "{f} in {:?}", files.keys());
    }
    assert!(
        files.contains_key(&format!("{n}/netfilter.json"))
            || files.contains_key(&format!("{n}/netfilter-not-read.txt")),
        "{:?}",
        files.keys()
    );
    let readme = String::from_utf8_lossy(&files["README.txt"]);
    assert!(readme.contains(&format!("{n}/snapshot.json")), "{readme}");
    assert!(readme.contains("--hash-secret"), "{readme}");
    let snap: serde_json::Value =
        serde_json::from_slice(&files[&format!("{n}/snapshot.json")]).unwrap();
    assert_eq!(snap["schema"], "snapshot", "{snap}");
    let links = snap["links"].as_array().unwrap();
    assert!(links.iter().any(|l| l["name"] == "lo"), "{snap}");
    let doctor: serde_json::Value = serde_json::from_slice(&files["doctor.json"]).unwrap();
    assert!(doctor["findings"].is_array(), "{doctor}");
    // The recording: the netns, and the pings on lo captured while it ran.
    let rec = Recording::read(&files["recording.hsrec"][..]).unwrap();
    assert!(
        rec.nodes[0].label.contains(n.as_str()),
        "{:?}",
        rec.nodes[0].label
    );
    assert!(rec.end.is_some());
    assert!(rec.frames.len() >= 4, "{} frames", rec.frames.len());
    // No half archive is left under another name.
    assert!(!dir.join("node.part").exists() && !dir.join("node.tar.hsrec.part").exists());
}
