//! The `/` filter: words that must all match a row (case-insensitive substrings).
//!
//! ```text
//! eth0            any cell contains "eth0"
//! dev=eth0        the DEV column contains "eth0"  (COLUMN:TEXT works too)
//! !kernel         no cell contains "kernel"
//! dst=10.0.1. !proto=kernel
//! ```
//! Validated as typed: an unknown column or an empty word is an error shown at once.

use std::cmp::Ordering;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    negate: bool,
    column: Option<usize>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    terms: Vec<Term>,
}

impl Filter {
    pub fn parse(text: &str, headers: &[&str]) -> Result<Filter, String> {
        let mut terms = Vec::new();
        for word in text.split_whitespace() {
            let (negate, w) = match word.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, word),
            };
            let split = w.find(['=', ':']).filter(|i| {
                // `fe80::1` and `10.0.0.1:80` are values, not COLUMN:VALUE.
                let head = &w[..*i];
                !head.is_empty()
                    && head
                        .chars()
                        .all(|c| c.is_ascii_alphabetic() || c == '/' || c == '-')
            });
            let (column, value) = match split {
                Some(i) => {
                    let name = &w[..i];
                    let col = headers
                        .iter()
                        .position(|h| h.eq_ignore_ascii_case(name))
                        .ok_or_else(|| {
                            format!(
                                "unknown column {name:?}; columns: {}",
                                headers.join(" ").to_lowercase()
                            )
                        })?;
                    (Some(col), &w[i + 1..])
                }
                None => (None, w),
            };
            if value.is_empty() {
                return Err(format!("{word:?} needs something to match"));
            }
            terms.push(Term {
                negate,
                column,
                text: value.to_lowercase(),
            });
        }
        Ok(Filter { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, cells: &[String]) -> bool {
        self.terms.iter().all(|t| {
            let hit = match t.column {
                Some(c) => cells.get(c).is_some_and(|s| contains(s, &t.text)),
                None => cells.iter().any(|s| contains(s, &t.text)),
            };
            hit != t.negate
        })
    }
}

fn contains(hay: &str, needle_lower: &str) -> bool {
    if hay.is_ascii() {
        // No allocation for the common case (100k routes).
        hay.as_bytes()
            .windows(needle_lower.len())
            .any(|w| w.eq_ignore_ascii_case(needle_lower.as_bytes()))
            || needle_lower.is_empty()
    } else {
        hay.to_lowercase().contains(needle_lower)
    }
}

/// A sort key that orders numbers as numbers and addresses as addresses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortKey {
    Empty,
    Num(u64),
    Ip(IpAddr, u8),
    Text(String),
}

pub fn sort_key(cell: &str) -> SortKey {
    let first = cell.split_whitespace().next().unwrap_or("");
    if first.is_empty() {
        return SortKey::Empty;
    }
    if let Ok(n) = first.parse::<u64>() {
        return SortKey::Num(n);
    }
    if let Some(h) = first.strip_prefix("0x")
        && let Ok(n) = u64::from_str_radix(h.split('/').next().unwrap_or(h), 16)
    {
        return SortKey::Num(n);
    }
    let (a, len) = first.split_once('/').unwrap_or((first, ""));
    if let Ok(ip) = a.parse::<IpAddr>() {
        return SortKey::Ip(ip, len.parse().unwrap_or(255));
    }
    SortKey::Text(cell.to_lowercase())
}

pub fn compare(a: &SortKey, b: &SortKey) -> Ordering {
    a.cmp(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }
    const H: [&str; 3] = ["DST", "DEV", "PROTO"];

    #[test]
    fn words_columns_and_negation() {
        let r = row(&["10.0.1.0/24", "cilium_host", "kernel"]);
        let f = |t: &str| Filter::parse(t, &H).unwrap().matches(&r);
        assert!(f(""));
        assert!(f("CILIUM"));
        assert!(f("dev=cilium dst:10.0.1"));
        assert!(!f("dev=10.0"));
        assert!(!f("!kernel"));
        assert!(f("!proto=boot"));
        assert!(f("10.0.1.0/24"));
    }

    #[test]
    fn invalid_filters_say_why() {
        assert!(
            Filter::parse("gw=1.2.3.4", &H)
                .unwrap_err()
                .contains("unknown column")
        );
        assert!(
            Filter::parse("dev=", &H)
                .unwrap_err()
                .contains("needs something")
        );
        assert!(Filter::parse("!", &H).is_err());
        // IPv6 addresses and host:port are values, not columns.
        assert!(Filter::parse("fe80::1", &H).is_ok());
        assert!(Filter::parse("10.0.0.1:80", &H).is_ok());
    }

    #[test]
    fn sort_keys_are_natural() {
        let mut v = vec!["10.0.10.0/24", "10.0.2.0/24", "default", "9"];
        v.sort_by_key(|s| sort_key(s));
        assert_eq!(v, vec!["9", "10.0.2.0/24", "10.0.10.0/24", "default"]);
        assert!(sort_key("32766") > sort_key("100"));
    }
}
