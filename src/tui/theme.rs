//! Themes: themes/*.toml map each UI item to a style. Three are built in (dark, light,
//! mono); `--theme PATH` reads any file of the same form. NO_COLOR selects mono unless a
//! theme is asked for explicitly.

use ratatui::style::{Color, Modifier, Style};
use std::collections::BTreeMap;
use std::str::FromStr;

/// Every item a theme can style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Item {
    Base,
    Header,
    HeaderWarn,
    Paused,
    Tab,
    TabActive,
    TableHeader,
    Selected,
    Trouble,
    Warning,
    Notice,
    Error,
    FilterOk,
    FilterErr,
    Key,
    Dim,
    Border,
    Title,
}

pub const ITEMS: [(Item, &str); 18] = [
    (Item::Base, "base"),
    (Item::Header, "header"),
    (Item::HeaderWarn, "header_warn"),
    (Item::Paused, "paused"),
    (Item::Tab, "tab"),
    (Item::TabActive, "tab_active"),
    (Item::TableHeader, "table_header"),
    (Item::Selected, "selected"),
    (Item::Trouble, "trouble"),
    (Item::Warning, "warning"),
    (Item::Notice, "notice"),
    (Item::Error, "error"),
    (Item::FilterOk, "filter_ok"),
    (Item::FilterErr, "filter_err"),
    (Item::Key, "key"),
    (Item::Dim, "dim"),
    (Item::Border, "border"),
    (Item::Title, "title"),
];

pub const BUILTIN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("mono", include_str!("../../themes/mono.toml")),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    styles: BTreeMap<Item, Style>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    styles: BTreeMap<String, String>,
}

/// `fg=red bg=#102030 bold`.
pub fn parse_style(spec: &str) -> Result<Style, String> {
    let mut st = Style::default();
    for word in spec.split_whitespace() {
        let colour = |v: &str| Color::from_str(v).map_err(|_| format!("unknown colour {v:?}"));
        st = match word.split_once('=') {
            Some(("fg", v)) => st.fg(colour(v)?),
            Some(("bg", v)) => st.bg(colour(v)?),
            Some((k, _)) => return Err(format!("unknown style key {k:?} (fg= or bg=)")),
            None => st.add_modifier(match word {
                "bold" => Modifier::BOLD,
                "dim" => Modifier::DIM,
                "italic" => Modifier::ITALIC,
                "underlined" => Modifier::UNDERLINED,
                "reversed" => Modifier::REVERSED,
                other => return Err(format!("unknown modifier {other:?}")),
            }),
        };
    }
    Ok(st)
}

impl Theme {
    pub fn parse(name: &str, text: &str) -> Result<Theme, String> {
        let f: File = toml::from_str(text).map_err(|e| format!("theme {name}: {e}"))?;
        // Start from dark so a partial user theme is complete.
        let mut styles = if name == "dark" {
            BTreeMap::new()
        } else {
            Theme::builtin("dark").styles
        };
        for (k, v) in f.styles {
            let item = ITEMS
                .iter()
                .find(|(_, n)| *n == k)
                .map(|(i, _)| *i)
                .ok_or_else(|| {
                    let known: Vec<&str> = ITEMS.iter().map(|(_, n)| *n).collect();
                    format!(
                        "theme {name}: unknown item {k:?} (known: {})",
                        known.join(", ")
                    )
                })?;
            let st = parse_style(&v).map_err(|e| format!("theme {name}: {k}: {e}"))?;
            styles.insert(item, st);
        }
        Ok(Theme {
            name: name.to_string(),
            styles,
        })
    }

    pub fn builtin(name: &str) -> Theme {
        let text = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .expect("built-in theme");
        Theme::parse(name, text).expect("built-in themes parse")
    }

    /// `--theme NAME|PATH`; None = the default (mono under NO_COLOR, else dark).
    pub fn load(spec: Option<&str>, no_color: bool) -> Result<Theme, String> {
        match spec {
            None if no_color => Ok(Theme::builtin("mono")),
            None => Ok(Theme::builtin("dark")),
            Some(s) if BUILTIN.iter().any(|(n, _)| *n == s) => Ok(Theme::builtin(s)),
            Some(path) if path.contains('/') || path.ends_with(".toml") => {
                let text = crate::input::read_text(
                    std::path::Path::new(path),
                    crate::input::limit::SMALL_TOML,
                )
                .map_err(|e| format!("cannot read theme {path}: {e}"))?;
                Theme::parse(path, &text)
            }
            Some(other) => Err(format!(
                "unknown theme {other:?}: built in are dark, light, mono; or give a path to a .toml file"
            )),
        }
    }

    pub fn style(&self, item: Item) -> Style {
        self.styles.get(&item).copied().unwrap_or_default()
    }
}

/// NO_COLOR (https://no-color.org): present and not empty.
pub fn no_color_env() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_define_every_item() {
        for (name, text) in BUILTIN {
            let f: File = toml::from_str(text).unwrap();
            for (_, item) in ITEMS {
                assert!(f.styles.contains_key(item), "{name} lacks {item}");
            }
            Theme::parse(name, text).unwrap();
        }
    }

    #[test]
    fn mono_has_no_colour() {
        let t = Theme::builtin("mono");
        for (i, _) in ITEMS {
            let s = t.style(i);
            assert!(s.fg.is_none() && s.bg.is_none(), "{i:?} coloured in mono");
        }
        assert_eq!(Theme::load(None, true).unwrap().name, "mono");
        assert_eq!(Theme::load(None, false).unwrap().name, "dark");
        assert_eq!(Theme::load(Some("light"), true).unwrap().name, "light");
    }

    #[test]
    fn bad_themes_are_explained() {
        assert!(
            Theme::parse("x", "[styles]\nbogus = \"bold\"")
                .unwrap_err()
                .contains("unknown item")
        );
        assert!(
            Theme::parse("x", "[styles]\nbase = \"fg=nocolour\"")
                .unwrap_err()
                .contains("colour")
        );
        assert!(
            Theme::load(Some("solarized"), false)
                .unwrap_err()
                .contains("dark, light, mono")
        );
        let partial = Theme::parse("x", "[styles]\ntrouble = \"fg=#ff0000\"").unwrap();
        assert_eq!(partial.style(Item::Trouble).fg, Some(Color::Rgb(255, 0, 0)));
        assert_eq!(
            partial.style(Item::Header),
            Theme::builtin("dark").style(Item::Header)
        );
    }
}
