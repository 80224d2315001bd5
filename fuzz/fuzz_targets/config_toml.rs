//! The TUI's config file and a theme file (TOML), the intervals they hold, rt_tables and
//! /proc/net/xfrm_stat text: refused with an error or read, never a panic.
#![no_main]
use hopscope::tui::{config, theme};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = config::parse(text) {
        if let Some(i) = cfg.interval.as_deref() {
            let _ = config::parse_interval(i);
        }
        let _ = hopscope::tui::keymap::Keymap::default().with_overrides(&cfg.keys);
    }
    let _ = theme::Theme::parse("fuzz", text);
    let _ = config::parse_interval(text);
    let mut names = Default::default();
    hopscope::source::rt_tables::parse_into(text, &mut names);
    let _ = hopscope::source::procfs::parse_xfrm_stat(text);
});
