//! The text of a TestBackend's buffer, one trimmed line per row (what a user would read).

use ratatui::Terminal;
use ratatui::backend::TestBackend;

pub fn screen(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    (0..buf.area.height)
        .map(|y| {
            let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
            line.trim_end().to_string() + "\n"
        })
        .collect()
}
