//! Any bytes, any link type: decoding never panics, and ranges it reports lie in the frame.
#![no_main]
use hopscope::decode::packet::{LinkType, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let link = match sel % 5 {
        0 => LinkType::Ethernet,
        1 => LinkType::LinuxSll,
        2 => LinkType::LinuxSll2,
        3 => LinkType::RawIp,
        _ => LinkType::Other(i32::from(sel)),
    };
    let d = decode(link, frame);
    for r in [&d.ip_range, &d.esp_range].into_iter().flatten() {
        assert!(
            r.start <= r.end && r.end <= frame.len(),
            "{r:?} outside {}",
            frame.len()
        );
    }
});
