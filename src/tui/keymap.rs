//! Keys → actions. One table: the help screen is generated from it, the config file's
//! `[keys]` section overrides it by action name.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    Help,
    Back,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    NextPane,
    PrevPane,
    Pane(usize),
    Detail,
    Filter,
    Command,
    SortNext,
    SortReverse,
    Pause,
    Jump,
    /// Links pane: capture on the selected link (again: stop); Packets pane: stop the
    /// selected packet's interface.
    Capture,
    Decrypt,
    Bpf,
    /// Packets pane: trace and follow the selected packet's flow.
    Follow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
    pub alt: bool,
}

impl Key {
    pub fn parse(s: &str) -> Result<Key, String> {
        let mut k = Key {
            code: KeyCode::Null,
            ctrl: false,
            alt: false,
        };
        let mut rest = s;
        loop {
            if let Some(r) = rest
                .strip_prefix("ctrl-")
                .or_else(|| rest.strip_prefix("c-"))
            {
                k.ctrl = true;
                rest = r;
            } else if let Some(r) = rest
                .strip_prefix("alt-")
                .or_else(|| rest.strip_prefix("m-"))
            {
                k.alt = true;
                rest = r;
            } else {
                break;
            }
        }
        k.code = match rest {
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "backtab" | "shift-tab" => KeyCode::BackTab,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "pgup" | "pageup" => KeyCode::PageUp,
            "pgdn" | "pagedown" => KeyCode::PageDown,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "space" => KeyCode::Char(' '),
            "backspace" => KeyCode::Backspace,
            f if f.len() > 1 && f.starts_with('f') && f[1..].parse::<u8>().is_ok() => {
                KeyCode::F(f[1..].parse().unwrap())
            }
            c if c.chars().count() == 1 => KeyCode::Char(c.chars().next().unwrap()),
            other => return Err(format!("unknown key {other:?}")),
        };
        Ok(k)
    }

    pub fn matches(&self, ev: &KeyEvent) -> bool {
        // A shifted letter arrives as the capital with SHIFT: the char says it all.
        self.code == ev.code
            && self.ctrl == ev.modifiers.contains(KeyModifiers::CONTROL)
            && self.alt == ev.modifiers.contains(KeyModifiers::ALT)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::BackTab => f.write_str("shift-tab"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::PageUp => f.write_str("pgup"),
            KeyCode::PageDown => f.write_str("pgdn"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::F(n) => write!(f, "f{n}"),
            _ => f.write_str("?"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Binding {
    pub action: Action,
    /// The name used in the config file's [keys] section.
    pub name: &'static str,
    pub help: &'static str,
    pub keys: Vec<Key>,
}

#[derive(Debug, Clone)]
pub struct Keymap {
    pub bindings: Vec<Binding>,
}

const DEFAULTS: &[(Action, &str, &str, &[&str])] = &[
    (
        Action::Help,
        "help",
        "this help: every key binding",
        &["?", "f1"],
    ),
    (Action::Quit, "quit", "quit", &["q", "ctrl-c"]),
    (
        Action::Back,
        "back",
        "close detail/help, clear the filter",
        &["esc"],
    ),
    (Action::Up, "up", "move up", &["up", "k"]),
    (Action::Down, "down", "move down", &["down", "j"]),
    (
        Action::PageUp,
        "page_up",
        "page up",
        &["pgup", "ctrl-u", "ctrl-b"],
    ),
    (
        Action::PageDown,
        "page_down",
        "page down",
        &["pgdn", "ctrl-d", "ctrl-f"],
    ),
    (Action::Top, "top", "first row", &["home", "g"]),
    (Action::Bottom, "bottom", "last row", &["end", "G"]),
    (
        Action::NextPane,
        "next_pane",
        "next pane",
        &["tab", "right", "l"],
    ),
    (
        Action::PrevPane,
        "prev_pane",
        "previous pane",
        &["shift-tab", "left", "h"],
    ),
    (Action::Pane(0), "pane_links", "Links pane", &["1"]),
    (
        Action::Pane(1),
        "pane_routes",
        "Routes pane (all tables)",
        &["2"],
    ),
    (Action::Pane(2), "pane_rules", "Rules pane", &["3"]),
    (Action::Pane(3), "pane_sas", "XFRM SAs pane", &["4"]),
    (
        Action::Pane(4),
        "pane_policies",
        "XFRM Policies pane",
        &["5"],
    ),
    (Action::Pane(5), "pane_stats", "xfrm_stat pane", &["6"]),
    (
        Action::Pane(6),
        "pane_packets",
        "Packets pane: one stream per captured interface",
        &["7"],
    ),
    (
        Action::Pane(7),
        "pane_trace",
        "Trace pane: one flow, hop by hop, seen or not",
        &["8"],
    ),
    (
        Action::Pane(8),
        "pane_health",
        "Health pane: the doctor's findings, live",
        &["9"],
    ),
    (
        Action::Detail,
        "detail",
        "detail view: every field of the row",
        &["enter"],
    ),
    (
        Action::Filter,
        "filter",
        "filter rows (validated as typed)",
        &["/"],
    ),
    (
        Action::Command,
        "command",
        "command line (tab completes)",
        &[":"],
    ),
    (Action::SortNext, "sort", "sort by the next column", &["s"]),
    (
        Action::SortReverse,
        "sort_reverse",
        "reverse the sort order",
        &["S"],
    ),
    (
        Action::Pause,
        "pause",
        "pause the view (data keeps coming)",
        &["p", "space"],
    ),
    (
        Action::Jump,
        "jump",
        "jump SA ↔ the policies selecting it; packet → its SA",
        &["x"],
    ),
    (
        Action::Capture,
        "capture",
        "capture on the link (Links) / stop it (Packets)",
        &["c"],
    ),
    (
        Action::Decrypt,
        "decrypt",
        "decrypt ESP with the node's own SA keys (toggle)",
        &["d"],
    ),
    (
        Action::Bpf,
        "bpf",
        "capture filter (BPF, checked by libpcap as typed)",
        &["b"],
    ),
    (
        Action::Follow,
        "follow",
        "trace and follow the selected packet's flow",
        &["t"],
    ),
];

impl Default for Keymap {
    fn default() -> Self {
        Keymap {
            bindings: DEFAULTS
                .iter()
                .map(|(action, name, help, keys)| Binding {
                    action: *action,
                    name,
                    help,
                    keys: keys
                        .iter()
                        .map(|k| Key::parse(k).expect("default key"))
                        .collect(),
                })
                .collect(),
        }
    }
}

impl Keymap {
    pub fn lookup(&self, ev: &KeyEvent) -> Option<Action> {
        self.bindings
            .iter()
            .find(|b| b.keys.iter().any(|k| k.matches(ev)))
            .map(|b| b.action)
    }

    /// The config file's `[keys]`: action name → keys, replacing that action's defaults.
    pub fn with_overrides(
        mut self,
        keys: &BTreeMap<String, Vec<String>>,
    ) -> Result<Keymap, String> {
        for (name, specs) in keys {
            let parsed = specs
                .iter()
                .map(|s| Key::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("[keys] {name}: {e}"))?;
            // Ctrl-C ends every terminal program: it stays quit's, whatever the file says.
            let ctrl_c = Key::parse("ctrl-c").expect("ctrl-c is a key");
            if name != "quit" && parsed.contains(&ctrl_c) {
                return Err(format!(
                    "[keys] {name}: ctrl-c always quits; bind another key"
                ));
            }
            // A key moved to this action leaves its old one.
            for b in &mut self.bindings {
                b.keys.retain(|k| !parsed.contains(k));
            }
            let b = self
                .bindings
                .iter_mut()
                .find(|b| b.name == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = DEFAULTS.iter().map(|d| d.1).collect();
                    format!(
                        "[keys] unknown action {name:?} (known: {})",
                        names.join(", ")
                    )
                })?;
            b.keys = parsed;
            if b.action == Action::Quit && !b.keys.contains(&ctrl_c) {
                b.keys.push(ctrl_c);
            }
        }
        Ok(self)
    }

    /// The first key of an action, for hints.
    pub fn first_key(&self, a: Action) -> String {
        self.bindings
            .iter()
            .find(|b| b.action == a)
            .and_then(|b| b.keys.first())
            .map(|k| k.to_string())
            .unwrap_or_default()
    }

    /// The keys of an action as shown in hints: `q`, `?`.
    pub fn keys_of(&self, a: Action) -> String {
        self.bindings
            .iter()
            .find(|b| b.action == a)
            .map(|b| {
                b.keys
                    .iter()
                    .map(|k| k.to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn defaults_and_vim_keys() {
        let km = Keymap::default();
        let none = KeyModifiers::NONE;
        assert_eq!(
            km.lookup(&key(KeyCode::Char('q'), none)),
            Some(Action::Quit)
        );
        assert_eq!(
            km.lookup(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(
            km.lookup(&key(KeyCode::Char('j'), none)),
            Some(Action::Down)
        );
        assert_eq!(
            km.lookup(&key(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Bottom)
        );
        assert_eq!(
            km.lookup(&key(KeyCode::Char('4'), none)),
            Some(Action::Pane(3))
        );
        assert_eq!(
            km.lookup(&key(KeyCode::Char('c'), none)),
            Some(Action::Capture)
        );
        assert_eq!(
            km.lookup(&key(KeyCode::Char('8'), none)),
            Some(Action::Pane(7))
        );
        assert_eq!(km.lookup(&key(KeyCode::Char('z'), none)), None);
    }

    #[test]
    fn config_overrides_by_name() {
        let mut o = BTreeMap::new();
        o.insert("jump".to_string(), vec!["J".to_string()]);
        o.insert("quit".to_string(), vec!["ctrl-q".to_string()]);
        let km = Keymap::default().with_overrides(&o).unwrap();
        assert_eq!(
            km.lookup(&key(KeyCode::Char('J'), KeyModifiers::SHIFT)),
            Some(Action::Jump)
        );
        assert_eq!(
            km.lookup(&key(KeyCode::Char('x'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(
            km.lookup(&key(KeyCode::Char('q'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(
            km.lookup(&key(KeyCode::Char('q'), KeyModifiers::NONE)),
            None
        );
        o.insert("quit".to_string(), vec![]);
        let km = Keymap::default().with_overrides(&o).unwrap();
        assert_eq!(
            km.lookup(&key(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit),
            "quit = [] removed ctrl-c"
        );
        let mut steal = BTreeMap::new();
        steal.insert("jump".to_string(), vec!["ctrl-c".to_string()]);
        assert!(
            Keymap::default()
                .with_overrides(&steal)
                .unwrap_err()
                .contains("ctrl-c always quits")
        );
        o.insert("warp".to_string(), vec!["w".to_string()]);
        assert!(
            Keymap::default()
                .with_overrides(&o)
                .unwrap_err()
                .contains("unknown action")
        );
    }
}
