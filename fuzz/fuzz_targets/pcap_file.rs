//! A pcap or pcapng file as `capture -r` reads it (libpcap's reader, then the same analyzer a
//! live capture uses): any bytes are refused with an error or read up to their damage, never a
//! panic. libpcap reads from a path, so each input is written to a private file first.
#![no_main]
use hopscope::cmd::capture_file::run;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("hopscope-fuzz-pcap-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, file)) = data.split_first() else {
        return;
    };
    let path = scratch();
    std::fs::write(path, file).expect("the scratch file is writable");
    let _ = run(path, &[], None, sel & 1 == 1, &mut std::io::sink());
});
