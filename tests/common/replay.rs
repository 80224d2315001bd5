//! A recording played through the real TUI loop into a test terminal: what `hopscope replay`
//! would draw, without a terminal or root.

use super::screen::screen;
use hopscope::record::reader::Recording;
use hopscope::record::replay::ReplayInputs;
use hopscope::tui::app::App;
use hopscope::tui::inputs::Inputs;
use hopscope::tui::keymap::Keymap;
use hopscope::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use std::sync::Arc;
use std::time::Duration;

/// Typed text as key events (`\n` is Enter).
pub fn keys(s: &str) -> Vec<TermEvent> {
    s.chars()
        .map(|c| {
            let code = if c == '\n' {
                KeyCode::Enter
            } else {
                KeyCode::Char(c)
            };
            TermEvent::Key(KeyEvent::new(code, KeyModifiers::NONE))
        })
        .collect()
}

/// How to play: which node, to when (ns on the recording's clock), with which capture filter,
/// then which keys, on a terminal of `size` (columns, rows).
pub struct Play<'a> {
    pub node: usize,
    pub at: u64,
    pub filter: Option<&'a str>,
    pub typed: &'a str,
    pub size: (u16, u16),
}

/// `rec` played (paused) as `how` says: the screen once the typed keys are handled.
pub fn replay_screen(rec: Recording, how: Play) -> String {
    let mut inputs = ReplayInputs::new(Arc::new(rec), how.node, 1.0, true)
        .scripted(keys(how.typed).into_iter().collect());
    inputs.set_capture_filter(how.filter).unwrap();
    inputs.seek(how.at);
    let app = App::new(
        Keymap::default(),
        Duration::from_secs(1),
        inputs.label(),
        inputs.since(),
    );
    let mut term = Terminal::new(TestBackend::new(how.size.0, how.size.1)).unwrap();
    hopscope::tui::run_loop(&mut term, &mut inputs, app, &Theme::builtin("mono")).unwrap();
    screen(&term)
}
