//! A hopscope recording as `replay` and `--state` read it: never a panic, and what is read
//! answers every question the replay asks (states at any time, the trace nodes).
//! Every record carries a checksum, so random bytes would almost never pass the framing: with
//! an even first byte the input is a list of bodies (u16 length, bytes) that the target frames
//! and checksums as the writer does, so the body decoders get fuzzed; with an odd one the bytes
//! are the file itself, so the framing does.
#![no_main]
use hopscope::record::format::{MAGIC, VERSION};
use hopscope::record::reader::{Recording, trace_nodes};
use libfuzzer_sys::fuzz_target;

fn framed(mut bodies: &[u8]) -> Vec<u8> {
    let mut file = MAGIC.to_vec();
    file.extend(format!("{VERSION}\n").bytes());
    while bodies.len() >= 2 {
        let want = u16::from_le_bytes([bodies[0], bodies[1]]) as usize;
        let body = &bodies[2..(2 + want).min(bodies.len())];
        bodies = &bodies[2 + body.len()..];
        if body.is_empty() {
            continue;
        }
        // The framed length excludes the kind byte, as `encode` writes it.
        file.extend(((body.len() - 1) as u32).to_le_bytes());
        file.extend(crc32fast::hash(body).to_le_bytes());
        file.extend(body);
    }
    file
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let file = if sel & 1 == 0 {
        framed(rest)
    } else {
        rest.to_vec()
    };
    let Ok(rec) = Recording::read(file.as_slice()) else {
        return;
    };
    let end = rec.duration();
    for node in 0..rec.nodes.len() {
        let _ = rec.state_at(node, end);
    }
    let _ = rec.final_states();
    let _ = trace_nodes(&rec);
    for iface in 0..rec.ifaces.len() {
        let _ = rec.linktype(iface);
    }
});
