//! The TUI loop fed by scripted inputs instead of the live node (the seam a replay uses too):
//! a state arrives, keys are pressed, the loop draws what they ask and quits on `q`.

mod common;
use common::screen::screen;

use hopscope::model::event::{Event, Live};
use hopscope::model::fixtures::seed_worker;
use hopscope::model::{Names, Netfilter};
use hopscope::tui::app::App;
use hopscope::tui::inputs::Inputs;
use hopscope::tui::keymap::Keymap;
use hopscope::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Scripted {
    events: Vec<Event>,
    keys: VecDeque<char>,
    polls: usize,
    switched: Vec<String>,
}

impl Inputs for Scripted {
    fn label(&self) -> String {
        "netns scripted".into()
    }
    fn events(&mut self, _max: usize) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
    fn dropped(&self) -> u64 {
        7
    }
    fn instant(&self) -> Instant {
        Instant::now()
    }
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_720_000_300)
    }
    fn since(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_720_000_000)
    }
    fn names(&self) -> (u64, Arc<Names>) {
        (0, Arc::default())
    }
    fn netns_names(&self) -> Vec<String> {
        vec!["other".into()]
    }
    fn signal(&self) -> i32 {
        0
    }
    fn terminal_event(&mut self, timeout: Duration) -> anyhow::Result<Option<TermEvent>> {
        // One key per frame: a look without waiting finds nothing.
        if timeout.is_zero() {
            return Ok(None);
        }
        self.polls += 1;
        let c = self.keys.pop_front().unwrap_or('q');
        Ok(Some(TermEvent::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        ))))
    }
    fn switch_netns(&mut self, name: &str) -> anyhow::Result<()> {
        self.switched.push(name.into());
        Ok(())
    }
    fn netfilter(&self) -> Netfilter {
        Netfilter::default()
    }
    fn capturing(&self) -> bool {
        false
    }
    fn capture(&mut self, _: &[String], _: bool, _: &Live, _: &mut App) -> anyhow::Result<String> {
        anyhow::bail!("no capture in this script")
    }
    fn set_filter(&mut self, _: Option<String>, _: &mut App) -> anyhow::Result<()> {
        Ok(())
    }
    fn pump(&mut self, _: Duration, _: &Live, _: &mut App) -> usize {
        0
    }
}

#[test]
fn the_loop_draws_what_scripted_inputs_bring_and_quits_on_q() {
    let mut inputs = Scripted {
        events: vec![Event::Resync(Box::new(seed_worker()))],
        keys: "4".chars().collect(),
        polls: 0,
        switched: vec![],
    };
    let app = App::new(
        Keymap::default(),
        Duration::from_secs(1),
        inputs.label(),
        inputs.since(),
    );
    let mut term = Terminal::new(TestBackend::new(140, 30)).unwrap();
    let sig = hopscope::tui::run_loop(&mut term, &mut inputs, app, &Theme::builtin("mono"))
        .expect("loop runs");
    assert_eq!(sig, 0, "q quits without a signal");
    assert_eq!(inputs.polls, 2, "one key, then q");
    let s = screen(&term);
    // The header names what the inputs said, the SAs pane (key 4) shows the seed's SPI 3.
    assert!(s.contains("netns scripted"), "{s}");
    // The SAs pane's own header row, and an SA's SPI in it.
    assert!(s.contains("REQID"), "{s}");
    assert!(s.contains("0x00000003"), "{s}");
}
