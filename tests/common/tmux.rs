//! A private tmux server (its own socket) running one command in a 120x30 pane, for driving
//! the TUI as a user would: keys in, screen out. When the command exits the shell records its
//! exit code and `stty -a` (the terminal state it left). Killed when dropped.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

pub struct Tmux {
    socket: String,
    stty_file: PathBuf,
}

impl Tmux {
    /// Run `cmd` (a shell command line) in a new 120x30 pane.
    pub fn start(cmd: &str) -> Tmux {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let socket = format!("hs-tmux-{}-{n}", std::process::id());
        let stty_file = std::env::temp_dir().join(format!("{socket}.stty"));
        let _ = std::fs::remove_file(&stty_file);
        let line = format!(
            "{cmd}; echo EXIT=$? > {f}; stty -a >> {f}; sleep 60",
            f = stty_file.display()
        );
        let t = Tmux { socket, stty_file };
        t.tmux(&[
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "30",
            "sh",
            "-c",
            &line,
        ]);
        t
    }

    pub fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p"])
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys"];
        a.extend(keys);
        self.tmux(&a);
    }

    pub fn literal(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
    }

    /// Wait until the screen satisfies `cond`; returns how long it took.
    pub fn wait(&self, what: &str, limit: Duration, cond: impl Fn(&str) -> bool) -> Duration {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if cond(&s) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < limit,
                "{what}: not on screen after {limit:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pid of the command the pane's shell runs.
    pub fn command_pid(&self) -> u32 {
        let shell = self.tmux(&["display-message", "-p", "#{pane_pid}"]);
        let out = Command::new("pgrep")
            .args(["-P", shell.trim()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .expect("the command runs")
            .trim()
            .parse()
            .unwrap()
    }

    /// `stty -a` of the pane's terminal now (while the command runs or is stopped).
    pub fn stty_now(&self) -> String {
        let tty = self.tmux(&["display-message", "-p", "#{pane_tty}"]);
        let out = Command::new("stty")
            .args(["-a", "-F", tty.trim()])
            .output()
            .expect("stty");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The exit code and terminal state the shell recorded after the command ended.
    pub fn after_exit(&self) -> (i32, String) {
        let t0 = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(&self.stty_file)
                && s.contains("icanon")
            {
                let code = s
                    .lines()
                    .next()
                    .and_then(|l| l.strip_prefix("EXIT="))
                    .and_then(|c| c.trim().parse().ok())
                    .unwrap();
                return (code, s);
            }
            // Generous: on a slow, busy machine the exit path (threads joined, terminal
            // restored) can take seconds; a command that exits returns at once.
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the command did not exit:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        let _ = std::fs::remove_file(&self.stty_file);
    }
}

impl Tmux {
    /// The TUI still answers keys: `2` shows the Routes pane's header.
    pub fn answers_keys(&self) {
        self.keys(&["2"]);
        self.wait("keys answered", Duration::from_secs(15), |s| {
            s.contains("DST")
        });
    }

    /// `q`: the command exits 0 and leaves the terminal sane.
    pub fn quit_cleanly(&self) {
        self.keys(&["q"]);
        let (code, stty) = self.after_exit();
        assert_eq!(code, 0, "exit code after q");
        assert_sane(&stty);
    }
}

/// Cooked mode again: canonical input, echo, signals, newline translation.
pub fn assert_sane(stty: &str) {
    let words: Vec<&str> = stty.split_whitespace().collect();
    for w in ["icanon", "echo", "isig", "icrnl", "opost"] {
        assert!(words.contains(&w), "terminal left without {w}:\n{stty}");
        assert!(
            !words.contains(&format!("-{w}").as_str()),
            "terminal left with -{w}:\n{stty}"
        );
    }
}
