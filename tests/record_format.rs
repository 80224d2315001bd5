//! Recordings as files: what is written reads back; keys are never in the bytes unless asked;
//! a file cut anywhere reads up to its last whole record; a replay of a recording draws the
//! panes the recorded node had (the TUI loop fed from the file).

mod common;
use common::replay::Play;

use hopscope::model::event::{Event, SaKey};
use hopscope::model::fixtures::{SEED_KEY, seed_node};
use hopscope::record::format::{End, FrameRec, Iface, Record};
use hopscope::record::reader::{Item, Recording};
use hopscope::record::writer::Writer;
use hopscope::record::{Meta, RecSample};

const SECOND: u64 = 1_000_000_000;
const STARTED: u64 = 1_720_000_000 * SECOND;

fn meta(show_keys: bool) -> Meta {
    Meta {
        hopscope: "test".into(),
        started_unix_ns: STARTED,
        host: "lab".into(),
        nodes: vec!["netns worker".into(), "netns worker2".into()],
        interfaces: vec!["eth0".into()],
        show_keys,
        limit_bytes: 1 << 20,
        interval_ms: 1000,
        ..Default::default()
    }
}

/// A worker and a worker2 with SPI 3 SAs (the seed's key), 5 samples of moving SA counters,
/// an SA deleted on worker2 at 3 s, and a frame on worker's eth0.
fn write_recording(path: &std::path::Path, show_keys: bool) -> u64 {
    let mut w = Writer::create(path, &meta(show_keys)).unwrap();
    for (i, n) in ["worker", "worker2"].iter().enumerate() {
        w.write(&Record::State {
            node: i as u16,
            at: 0,
            state: Box::new(seed_node(n)),
        })
        .unwrap();
    }
    let worker = seed_node("worker");
    for s in 1..=5u64 {
        let sas = worker
            .xfrm_states
            .iter()
            .map(|sa| {
                let mut lt = sa.lifetime;
                lt.packets += 10 * s;
                lt.bytes += 840 * s;
                (SaKey::of(sa), lt, sa.stats)
            })
            .collect();
        w.write(&Record::Sample {
            node: 0,
            at: s * SECOND,
            sample: Box::new(RecSample {
                sas: Some(sas),
                ..Default::default()
            }),
        })
        .unwrap();
    }
    let gone = SaKey::of(&seed_node("worker2").xfrm_states[0]);
    w.write(&Record::Event {
        node: 1,
        at: 3 * SECOND,
        event: Box::new(Event::SaDel(gone)),
    })
    .unwrap();
    w.write(&Record::Iface(Iface {
        id: 0,
        node: 0,
        name: "eth0".into(),
        linktype: 1,
    }))
    .unwrap();
    w.write(&Record::Frame(FrameRec {
        iface: 0,
        sec: (STARTED / SECOND) as i64 + 2,
        nsec: 0,
        len: 60,
        data: vec![0xff; 60],
    }))
    .unwrap();
    w.write(&Record::End(End {
        at: 5 * SECOND,
        reason: "duration reached".into(),
        frames: 1,
        ..Default::default()
    }))
    .unwrap();
    w.flush().unwrap();
    w.written
}

/// A scratch file of this test process.
fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hopscope-record-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn keys_are_not_in_the_file_unless_asked_and_read_back_empty() {
    let (plain, keyed) = (tmp("plain"), tmp("keyed"));
    write_recording(&plain, false);
    write_recording(&keyed, true);
    let hex: String = SEED_KEY.iter().map(|b| format!("{b:02x}")).collect();
    let bytes = std::fs::read(&plain).unwrap();
    assert!(!contains(&bytes, &SEED_KEY), "raw key bytes in the file");
    assert!(!contains(&bytes, hex.as_bytes()), "hex key in the file");
    let keyed_bytes = std::fs::read(&keyed).unwrap();
    assert!(
        contains(&keyed_bytes, hex.as_bytes()),
        "--show-keys writes the keys"
    );

    let rec = Recording::open(&plain).unwrap();
    let Item::State(st) = &rec.nodes[0].items[0].1 else {
        panic!("the first item is the state")
    };
    let key = st.xfrm_states[0].aead.as_ref().unwrap().key.expose();
    assert!(key.is_empty(), "a redacted key reads back empty");
    let rec = Recording::open(&keyed).unwrap();
    let Item::State(st) = &rec.nodes[0].items[0].1 else {
        panic!("the first item is the state")
    };
    assert_eq!(
        st.xfrm_states[0].aead.as_ref().unwrap().key.expose(),
        SEED_KEY
    );
}

#[test]
fn what_is_written_reads_back_per_node_in_order() {
    let p = tmp(&format!("r{}", line!()));
    write_recording(&p, false);
    let rec = Recording::open(&p).unwrap();
    assert!(rec.cut.is_none());
    assert_eq!(rec.meta, meta(false));
    assert_eq!(rec.nodes.len(), 2);
    assert_eq!(rec.nodes[0].items.len(), 6, "state + 5 samples");
    assert_eq!(rec.nodes[1].items.len(), 2, "state + the delete");
    assert_eq!(rec.frames.len(), 1);
    assert_eq!(
        rec.frames[0].at,
        2 * SECOND,
        "frame time on the recording's clock"
    );
    assert_eq!(rec.duration(), 5 * SECOND);
    // State at a time: worker2's SA is there before 3 s and gone after.
    let before = rec.state_at(1, 2 * SECOND).xfrm_states.len();
    let after = rec.state_at(1, 4 * SECOND).xfrm_states.len();
    assert_eq!(after + 1, before);
    // Counters as of the last sample.
    let end = rec.state_at(0, u64::MAX);
    let base = seed_node("worker").xfrm_states[0].lifetime.packets;
    assert_eq!(end.xfrm_states[0].lifetime.packets, base + 50);
}

#[test]
fn a_file_cut_anywhere_reads_up_to_its_last_whole_record() {
    let p = tmp(&format!("r{}", line!()));
    write_recording(&p, false);
    let full = std::fs::read(&p).unwrap();
    let whole = Recording::read(&full[..]).unwrap();
    let total = whole.nodes.iter().map(|n| n.items.len()).sum::<usize>() + whole.frames.len();
    let mut last = 0;
    // Every cut after the meta record: never an error, never more than was there, and the
    // item count only grows as the cut moves on.
    let head = hopscope::record::format::MAGIC.len() + 2;
    let meta_len = u32::from_le_bytes(full[head..head + 4].try_into().unwrap()) as usize;
    let meta_end = head + 9 + meta_len;
    for cut in (meta_end..full.len()).step_by(97).chain([full.len() - 1]) {
        let r = Recording::read(&full[..cut]).expect("a cut file still reads");
        let n = r.nodes.iter().map(|n| n.items.len()).sum::<usize>() + r.frames.len();
        assert!(n >= last && n <= total, "cut at {cut}: {n} items");
        // A cut between two records is a clean end, unless the end record is missing.
        assert!(r.cut.is_some() || r.end.is_none(), "cut at {cut} not said");
        assert!(
            r.end.is_none(),
            "cut at {cut}: the end record cannot be whole"
        );
        last = n;
    }
    // A flipped byte in the middle is found by the checksum.
    let mut bad = full.clone();
    let mid = full.len() / 2;
    bad[mid] ^= 0x55;
    let r = Recording::read(&bad[..]).unwrap();
    assert!(
        r.cut.as_ref().unwrap().why.contains("damaged"),
        "{:?}",
        r.cut
    );
    // Not a recording at all.
    assert!(Recording::read(&b"{\"links\": []}"[..]).is_err());
}

/// The replayed screen: the recording played to `at`, paused, then `typed`.
fn replay_screen(rec: Recording, node: usize, at: u64, typed: &str) -> String {
    let (filter, size) = (None, (160, 30));
    common::replay::replay_screen(
        rec,
        Play {
            node,
            at,
            filter,
            typed,
            size,
        },
    )
}

#[test]
fn a_replay_shows_the_recorded_node_at_the_time_asked() {
    let p = tmp(&format!("r{}", line!()));
    write_recording(&p, false);
    let rec = Recording::open(&p).unwrap();
    // worker2's SAs pane at 2 s: both SAs; at 4 s: one fewer. Same as a live TUI fed those
    // states (tests/tui_render.rs draws the seed worker the same way).
    let n_sas = |s: &str| s.lines().filter(|l| l.contains("0x00000003")).count();
    let at2 = replay_screen(rec.clone(), 1, 2 * SECOND, "4");
    let at4 = replay_screen(rec.clone(), 1, 4 * SECOND, "4");
    assert!(at2.contains("REPLAY"), "the header says replay: {at2}");
    assert!(at2.contains("netns worker2"), "{at2}");
    assert!(at2.contains("0:02 / 0:05"), "position in the header: {at2}");
    assert_eq!(n_sas(&at2), n_sas(&at4) + 1, "{at2}\n{at4}");
    // The SA counters moved with the samples (worker at 5 s: 50 packets more than the state).
    let w = replay_screen(rec, 0, 5 * SECOND, "4");
    assert!(w.contains("0:05 / 0:05"), "{w}");
}
