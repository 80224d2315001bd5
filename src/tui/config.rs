//! The config file: `$XDG_CONFIG_HOME/hopscope/config.toml` (default `~/.config/...`).
//! Defaults for the TUI and key bindings; the command line wins over it.
//!
//! ```toml
//! theme = "light"        # dark | light | mono | a path to a theme .toml
//! interval = "2s"        # counter sampling interval (500ms, 1s, 2.5s, 3)
//! pane = "sas"           # pane shown first: links routes rules sas policies stats
//! [keys]                 # action = [keys]; replaces that action's default keys
//! jump = ["J"]
//! quit = ["q", "ctrl-q"]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub theme: Option<String>,
    pub interval: Option<String>,
    pub pane: Option<String>,
    #[serde(default)]
    pub keys: BTreeMap<String, Vec<String>>,
}

/// Where the config file is looked for (it need not exist).
pub fn path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("hopscope").join("config.toml"))
}

pub fn parse(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

/// The config, or the defaults when there is no file. A file that does not parse is an
/// error (silently ignoring a typo is worse).
pub fn load() -> Result<Config, String> {
    let Some(p) = path() else {
        return Ok(Config::default());
    };
    match crate::input::read_text(&p, crate::input::limit::SMALL_TOML) {
        Ok(t) => parse(&t).map_err(|e| format!("{}: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

/// `1s`, `500ms`, `2.5s`, `3` (seconds); 100 ms to 1 h.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    crate::input::interval(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("2.5").unwrap(), Duration::from_millis(2500));
        assert!(parse_interval("10ms").is_err());
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn config_file() {
        let c = parse("theme = \"light\"\ninterval = \"2s\"\n[keys]\njump = [\"J\"]\n").unwrap();
        assert_eq!(c.theme.as_deref(), Some("light"));
        assert_eq!(c.keys["jump"], vec!["J".to_string()]);
        assert!(
            parse("colour = \"red\"").is_err(),
            "unknown fields are errors"
        );
    }
}
