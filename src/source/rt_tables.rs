//! Routing table names from iproute2's config files (`/etc/iproute2/rt_tables`, its `.d`
//! directory, and the distribution default under /usr/share or /usr/lib).

use std::collections::BTreeMap;
use std::path::Path;

pub type TableNames = BTreeMap<u32, String>;

/// The names a node knows. Built-ins first; files override them as iproute2 does.
pub fn load() -> TableNames {
    let mut names = TableNames::new();
    names.insert(0, "unspec".into());
    names.insert(253, "default".into());
    names.insert(254, "main".into());
    names.insert(255, "local".into());
    for dir in ["/usr/share/iproute2", "/usr/lib/iproute2", "/etc/iproute2"] {
        let dir = Path::new(dir);
        if let Ok(text) = std::fs::read_to_string(dir.join("rt_tables")) {
            parse_into(&text, &mut names);
        }
        if let Ok(entries) = std::fs::read_dir(dir.join("rt_tables.d")) {
            let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files
                .iter()
                .filter(|f| f.extension().is_some_and(|e| e == "conf"))
            {
                if let Ok(text) = std::fs::read_to_string(f) {
                    parse_into(&text, &mut names);
                }
            }
        }
    }
    names
}

/// `rt_tables` format: `<number> <name>` per line, `#` comments.
pub fn parse_into(text: &str, names: &mut TableNames) {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut parts = line.split_whitespace();
        let (Some(id), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        let id = if let Some(hex) = id.strip_prefix("0x") {
            u32::from_str_radix(hex, 16).ok()
        } else {
            id.parse().ok()
        };
        if let Some(id) = id {
            names.insert(id, name.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_names_and_comments() {
        let mut names = TableNames::new();
        parse_into(
            "# reserved\n255\tlocal\n254 main # the main one\n0x64 hundred\nbogus\n",
            &mut names,
        );
        assert_eq!(names.get(&255).map(String::as_str), Some("local"));
        assert_eq!(names.get(&254).map(String::as_str), Some("main"));
        assert_eq!(names.get(&100).map(String::as_str), Some("hundred"));
        assert_eq!(names.len(), 3);
    }
}
