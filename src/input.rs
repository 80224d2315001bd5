//! Values the user hands in (command line, config file, files named on the command line),
//! checked where they enter: a number that would overflow a conversion later, a duration that
//! is NaN or negative, a file that never ends. Each becomes an error that says what is valid,
//! at parse time, whether or not a terminal is attached.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

/// The longest run a duration option may ask for. `Instant + Duration` panics on overflow;
/// a year is far beyond any capture or follow and far inside what an Instant can hold.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// `--duration`, `--stats`, `--follow`: seconds as a number (`5`, `0.5`, `1e3`), finite,
/// above zero, at most a year.
pub fn seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds (e.g. 5, 0.5)"))?;
    positive_duration(s, v)
}

/// `v` seconds as a Duration, refused unless 0 < v ≤ MAX_DURATION (NaN and ∞ included).
fn positive_duration(s: &str, v: f64) -> Result<Duration, String> {
    if v.is_nan() {
        return Err(format!("{s:?} is not a number of seconds (e.g. 5, 0.5)"));
    }
    if v <= 0.0 {
        return Err(format!("{s:?} must be more than 0 seconds"));
    }
    match Duration::try_from_secs_f64(v) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(format!(
            "{s:?} is too long (at most {} s, a year)",
            MAX_DURATION.as_secs()
        )),
    }
}

/// A TUI sampling interval: `1s`, `500ms`, `2.5s`, `3` (seconds); 100 ms to 1 h.
pub fn interval(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    let bad = || format!("bad interval {s:?}: a number with ms or s (e.g. 1s, 500ms, 2.5s)");
    let v: f64 = num.trim().parse().map_err(|_| bad())?;
    if !v.is_finite() {
        return Err(bad());
    }
    let range = || format!("interval {s:?} out of range (100ms to 1h)");
    let d = Duration::try_from_secs_f64(v * scale).map_err(|_| range())?;
    if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&d) {
        return Err(range());
    }
    Ok(d)
}

/// A count that must be at least 1 and at most `max` (`-c`, `--queue`), as clap parses it.
pub fn count_in(s: &str, max: u64) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number from 1 to {max}"))?;
    if !(1..=max).contains(&n) {
        return Err(format!("{n} is out of range: 1 to {max}"));
    }
    Ok(n)
}

/// How much of each kind of file hopscope reads at most: far above any real one, far below
/// what would exhaust memory (`--state /dev/zero`).
pub mod limit {
    /// A `snapshot --json` of a node with 100k routes is about 30 MB.
    pub const STATE: u64 = 512 << 20;
    /// Themes and the config file are a few hundred bytes.
    pub const SMALL_TOML: u64 = 1 << 20;
    /// Kubeconfigs with many clusters and embedded certificates stay well under this.
    pub const KUBECONFIG: u64 = 16 << 20;
}

/// The whole of `path` as text, refused when it is longer than `max` bytes (read at most
/// `max + 1` bytes: a file that never ends is not read to its end).
pub fn read_text(path: &Path, max: u64) -> std::io::Result<String> {
    let f = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    f.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("{} is larger than {}", path.display(), human_bytes(max)),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not UTF-8 text", path.display()),
        )
    })
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_refuse_what_a_duration_cannot_hold() {
        assert_eq!(seconds("5").unwrap(), Duration::from_secs(5));
        assert_eq!(seconds("0.25").unwrap(), Duration::from_millis(250));
        for bad in ["nan", "inf", "-inf", "1e300", "-1", "0", "", "5s", "NaN"] {
            assert!(seconds(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn intervals() {
        assert_eq!(interval("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(interval("2.5").unwrap(), Duration::from_millis(2500));
        for bad in [
            "10ms",
            "soon",
            "nans",
            "nan",
            "infs",
            "-1s",
            "99999999999999999999s",
            "1e300ms",
        ] {
            assert!(interval(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn counts() {
        assert_eq!(count_in("3", 10).unwrap(), 3);
        for bad in ["0", "11", "-1", "18446744073709551616", "x"] {
            assert!(count_in(bad, 10).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn reads_stop_at_the_limit() {
        let e = read_text(Path::new("/dev/zero"), 4096).unwrap_err();
        assert!(e.to_string().contains("larger than 4 KiB"), "{e}");
        let dir = std::env::temp_dir().join(format!("hopscope-input-{}", std::process::id()));
        std::fs::write(&dir, "abc").unwrap();
        assert_eq!(read_text(&dir, 3).unwrap(), "abc");
        assert!(read_text(&dir, 2).is_err());
        std::fs::remove_file(&dir).unwrap();
    }
}
