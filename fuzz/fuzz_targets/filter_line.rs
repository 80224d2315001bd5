//! The `/` filter line as typed, against rows of any text: parse and match never panic.
#![no_main]
use hopscope::tui::filter::{Filter, sort_key};
use libfuzzer_sys::fuzz_target;

const HEADERS: [&str; 5] = ["TIME", "IFACE", "DIR", "PACKET", "HOPSCOPE"];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (line, row) = text.split_once('\n').unwrap_or((&text, "eth0 out ESP"));
    let cells: Vec<String> = row.split('\t').map(str::to_string).collect();
    for c in &cells {
        let _ = sort_key(c);
    }
    if let Ok(f) = Filter::parse(line, &HEADERS) {
        let _ = f.matches(&cells);
    }
});
