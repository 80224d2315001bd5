//! The terminal is always given back: raw mode off, alternate screen left, mouse released,
//! cursor shown — on quit (guard drop), on panic (hook), and on SIGINT/SIGTERM/SIGHUP/SIGQUIT/
//! SIGUSR1 (a signal thread asks the loop to stop, and restores itself if the loop does not).
//! SIGTSTP gives it back before the process stops, and SIGCONT takes it again (the loop is told
//! to draw the whole screen anew).

use ratatui::crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::crossterm::{cursor, execute};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

/// Whether we changed the terminal (restore is idempotent and only acts once).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Given back for a stop (SIGTSTP): taken again on continue.
static SUSPENDED: AtomicBool = AtomicBool::new(false);
/// The screen must be drawn whole again (after a continue): the loop takes it.
static REDRAW: AtomicBool = AtomicBool::new(false);

/// Give the terminal back. Safe to call from any thread, any number of times.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut out = std::io::stdout();
        let _ = execute!(out, DisableMouseCapture, LeaveAlternateScreen, cursor::Show);
        let _ = disable_raw_mode();
        let _ = out.flush();
    }
}

/// Raw mode, the alternate screen, mouse reporting, no cursor.
fn take() -> std::io::Result<()> {
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let mut out = std::io::stdout();
    if let Err(e) = execute!(out, EnterAlternateScreen, EnableMouseCapture, cursor::Hide) {
        restore();
        return Err(e);
    }
    Ok(())
}

/// SIGTSTP: give the terminal back, stop (as the default action would), and take it again
/// once continued.
fn suspend() {
    if ACTIVE.load(Ordering::SeqCst) {
        restore();
        SUSPENDED.store(true, Ordering::SeqCst);
    }
    let _ = signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGTSTP);
    resume();
}

/// SIGCONT (or back from `suspend`): take the terminal again if a stop gave it back; in any
/// case the screen is drawn anew (whoever ran meanwhile drew over it).
fn resume() {
    if SUSPENDED.swap(false, Ordering::SeqCst) {
        let _ = take();
    }
    REDRAW.store(true, Ordering::SeqCst);
}

/// Whether the screen must be cleared and drawn whole (once per continue).
pub fn take_redraw() -> bool {
    REDRAW.swap(false, Ordering::SeqCst)
}

pub struct Guard;

impl Guard {
    pub fn enter() -> std::io::Result<Guard> {
        install_panic_hook();
        take()?;
        Ok(Guard)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Restore first, so the message lands on a sane terminal.
            restore();
            prev(info);
        }));
    });
}

/// The last termination signal received (0 = none).
#[derive(Clone)]
pub struct Signals {
    pub got: Arc<AtomicI32>,
}

impl Signals {
    /// Watch the signals that end a run (INT, TERM, HUP, QUIT, USR1: their default action
    /// would leave the terminal raw) and the stop/continue pair. The loop should stop when
    /// `got()` is non-zero; if it has not restored the terminal 2 s later, the watcher does
    /// and exits.
    pub fn watch() -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGCONT, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTSTP, SIGUSR1};
        let got = Arc::new(AtomicI32::new(0));
        let mut it = signal_hook::iterator::Signals::new([
            SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGTSTP, SIGCONT,
        ])?;
        let g = got.clone();
        std::thread::Builder::new()
            .name("hs-signals".into())
            .spawn(move || {
                for sig in it.forever() {
                    match sig {
                        SIGTSTP => suspend(),
                        SIGCONT => resume(),
                        _ => {
                            g.store(sig, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_secs(2));
                            // The loop is stuck: give the terminal back ourselves.
                            restore();
                            std::process::exit(128 + sig);
                        }
                    }
                }
            })?;
        Ok(Signals { got })
    }

    pub fn got(&self) -> i32 {
        self.got.load(Ordering::SeqCst)
    }
}
