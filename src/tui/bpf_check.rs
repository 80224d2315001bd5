//! The capture filter line is checked by libpcap as it is typed, but never on the UI loop:
//! the optimiser takes seconds on a long filter (a minute over a 149-term one, key after key),
//! and the loop must keep answering Esc and q. A worker thread compiles the newest text once
//! typing pauses (debounced); a text typed over before its turn is never compiled, and an
//! answer for a text no longer on the line is dropped by the caller.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

/// Typing faster than this is one edit: only the text it ends on is compiled.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// A text and libpcap's verdict on it (the line's error text when refused).
pub type Verdict = (String, Result<(), String>);

pub struct Checker {
    tx: Sender<String>,
    rx: Receiver<Verdict>,
}

impl Default for Checker {
    fn default() -> Self {
        Self::start(check)
    }
}

impl Checker {
    /// A worker judging texts with `judge` (libpcap's compiler; tests pass their own).
    pub fn start(judge: fn(&str) -> Result<(), String>) -> Checker {
        let (tx, texts) = channel::<String>();
        let (verdicts, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("hs-bpf-check".into())
            .spawn(move || {
                while let Ok(mut text) = texts.recv() {
                    // Wait for typing to pause; a newer text replaces the waiting one.
                    loop {
                        match texts.recv_timeout(DEBOUNCE) {
                            Ok(newer) => text = newer,
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    let verdict = judge(&text);
                    if verdicts.send((text, verdict)).is_err() {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            // No thread: every check answers at once that it could not run.
            let (tx, texts) = channel::<String>();
            let (verdicts, rx) = channel();
            drop(texts);
            let _ = verdicts.send((String::new(), Err(format!("cannot check filters: {e}"))));
            return Checker { tx, rx };
        }
        Checker { tx, rx }
    }

    /// Check `text` when typing pauses.
    pub fn submit(&self, text: String) {
        let _ = self.tx.send(text);
    }

    /// The verdicts that came in since the last call, oldest first.
    pub fn verdicts(&self) -> Vec<Verdict> {
        self.rx.try_iter().collect()
    }
}

/// libpcap's verdict on a capture filter (empty: none), in one line.
pub fn check(f: &str) -> Result<(), String> {
    if f.trim().is_empty() {
        return Ok(());
    }
    crate::capture::check_filter(f, crate::capture::LinkType::Ethernet)
        .map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn slow(t: &str) -> Result<(), String> {
        std::thread::sleep(Duration::from_millis(300));
        if t.contains("bad") {
            Err(format!("{t}: refused"))
        } else {
            Ok(())
        }
    }

    fn wait_for(c: &Checker, n: usize) -> Vec<Verdict> {
        let t0 = Instant::now();
        let mut got = Vec::new();
        while got.len() < n {
            assert!(t0.elapsed() < Duration::from_secs(10), "{got:?}");
            got.extend(c.verdicts());
            std::thread::sleep(Duration::from_millis(10));
        }
        got
    }

    #[test]
    fn submitting_never_waits_and_a_burst_is_compiled_once() {
        let c = Checker::start(slow);
        let t0 = Instant::now();
        for t in ["a", "ar", "arp", "arp or bad"] {
            c.submit(t.into());
        }
        assert!(t0.elapsed() < Duration::from_millis(50), "submit blocked");
        let got = wait_for(&c, 1);
        assert_eq!(
            got,
            vec![("arp or bad".into(), Err("arp or bad: refused".into()))]
        );
        // Nothing else comes: the texts typed over were never compiled.
        std::thread::sleep(DEBOUNCE * 3);
        assert!(c.verdicts().is_empty());
    }

    #[test]
    fn libpcap_judges() {
        assert!(check("").is_ok());
        assert!(check("icmp and host 10.0.0.1").is_ok());
        assert!(
            check("icmp and hostx")
                .unwrap_err()
                .contains("bad capture filter")
        );
    }
}
