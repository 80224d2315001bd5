//! `hopscope record` on the host (own netns, lo) ended by SIGTERM and by SIGKILL: the file
//! replays up to the cut; `snapshot --from` reads it. Needs root (CI runs as root) and ping.

use hopscope::record::reader::Recording;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hopscope-record-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Record lo for a while with pings going, end it with `signal`; the recording read back.
fn record_until(signal: i32, name: &str) -> (Option<i32>, Recording, String) {
    let out = tmp(name);
    // The tests run at once on the host's lo: each pings its own address and records only it.
    let dst = format!("127.0.0.{}", 100 + signal);
    let filter = format!("icmp and host {dst}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args(["--no-kube", "record", "-q", "-i", "lo", "-f", &filter, "-o"])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Frames from before the "capturing on" line are not recorded: wait for it, then ping.
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut stderr = String::new();
    while !stderr.contains("hopscope: capturing on") {
        let n = std::io::BufRead::read_line(&mut err, &mut stderr).unwrap();
        assert!(n > 0, "record ended before capturing: {stderr}");
    }
    assert!(
        stderr.contains("capturing on lo (") && stderr.contains(&format!("filter {filter:?}")),
        "{stderr}"
    );
    let ping = Command::new("ping")
        .args(["-c", "10", "-i", "0.2", &dst])
        .stdout(Stdio::null())
        .status()
        .expect("ping");
    assert!(ping.success());
    // Signalled right after the last reply: what the kernel and the queues hold must still be
    // written (the drain on stop). Only the first flush (state first, once a second) is waited
    // for, so that SIGKILL has something on disk to read back.
    let t = Instant::now();
    while !Recording::open(&out).is_ok_and(|r| r.nodes.first().is_some_and(|n| !n.items.is_empty()))
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no state flushed to {}",
            out.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(child.id() as i32, signal) };
    std::io::Read::read_to_string(&mut err, &mut stderr).unwrap();
    let done = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    let code = done.code().or(done.signal().map(|s| 128 + s));
    (code, Recording::open(&out).unwrap(), stderr)
}

#[test]
fn sigterm_ends_the_recording_cleanly_and_it_replays_to_the_cut() {
    let (code, rec, stderr) = record_until(libc::SIGTERM, "term.hsrec");
    assert_eq!(code, Some(128 + libc::SIGTERM), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    // Nothing silent: the end line counts what could not be kept (none here).
    assert!(stderr.contains(" decrypted, 0 dropped)"), "{stderr}");
    let end = rec.end.as_ref().expect("an end record after SIGTERM");
    assert_eq!(end.reason, "stopped by SIGTERM");
    assert!(rec.cut.is_none());
    // 10 pings on lo: 20 ICMP frames, all of them in the file, the last ones included.
    assert_eq!(rec.frames.len(), 20, "{stderr}");
    assert_eq!(end.frames, rec.frames.len() as u64);
    // The pings span 1.8 s.
    assert!(rec.duration() >= 1_800_000_000, "{}", rec.duration());
    let st = rec.state_at(0, u64::MAX);
    assert!(st.link_by_name("lo").is_some());
    assert!(
        rec.nodes[0].items.len() >= 2,
        "the state and a sample each second"
    );
}

#[test]
fn sigkill_leaves_a_file_that_reads_up_to_its_last_whole_record() {
    let (code, rec, _) = record_until(libc::SIGKILL, "kill.hsrec");
    assert_eq!(code, Some(128 + libc::SIGKILL));
    assert!(rec.end.is_none(), "killed: no end record");
    // What the buffer had flushed is there; the state came first.
    assert!(!rec.nodes[0].items.is_empty());
}

#[test]
fn snapshot_from_a_recording_prints_the_recorded_node() {
    let (_, _, _) = record_until(libc::SIGINT, "int.hsrec");
    let out = Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args(["snapshot", "--json", "--from"])
        .arg(tmp("int.hsrec"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let links = v["links"].as_array().unwrap();
    assert!(links.iter().any(|l| l["name"] == "lo"), "{v}");
    let bad = Command::new(env!("CARGO_BIN_EXE_hopscope"))
        .args(["snapshot", "--from"])
        .arg(tmp("int.hsrec"))
        .args(["--netns", "nosuch"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("nosuch is not in") && err.contains("own netns"),
        "{err}"
    );
}
