//! The one-way design, held by a test: no module of `src/` imports a layer above its own.
//! The order is read from the `layers` block of docs/architecture.md, the imports from every
//! `crate::…` path in the shipped code (test modules may use anything). Crossings that are
//! still in the code are listed below with why; the list may only shrink.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Crossings still in the code: (file under `src/`, module it imports from above, why).
/// Fix one, delete its line: the test fails while a listed crossing is gone, so the list
/// cannot go stale.
const KNOWN: &[(&str, &str, &str)] = &[];

/// The layers from the bottom, as docs/architecture.md's `layers` block names them.
fn layer_order(doc: &str) -> BTreeMap<String, usize> {
    let block = doc
        .split("```layers\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/architecture.md has a ```layers block");
    let mut order = BTreeMap::new();
    for (level, line) in block.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let (_, modules) = line
            .split_once(':')
            .expect("a layers line is `name: module module …`");
        for m in modules.split_whitespace() {
            let before = order.insert(m.to_string(), level);
            assert!(before.is_none(), "{m} is in two layers");
        }
    }
    order
}

/// The part of a file that ships: everything before its `#[cfg(test)] mod …`, without
/// whole-line comments (module docs name other layers in prose).
fn shipped_code(src: &str) -> String {
    let mut out = String::new();
    let mut lines = src.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if !t.starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The top-level modules a piece of code names through `crate::x` or `crate::{x, y::z}`.
fn imported_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (at, _) in code.match_indices("crate::") {
        let prev = code[..at].chars().next_back();
        if prev.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `hopscope_crate::`, not ours
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Items of the group at depth one: the first name of each is a module.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && depth == 0 && !c.is_whitespace() => {
                        item_start = false;
                        let name = ident(&group[i..]);
                        if !name.is_empty() {
                            found.insert(name);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every (file, imported module) where a file imports a layer above its own.
fn crossings(order: &BTreeMap<String, usize>) -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = BTreeSet::new();
    for path in files {
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
        if rel == "lib.rs" || rel == "main.rs" || rel.ends_with("/tests.rs") {
            continue;
        }
        let own = *order
            .get(top)
            .unwrap_or_else(|| panic!("src/{rel}: module {top} is in no layer"));
        let code = shipped_code(&std::fs::read_to_string(&path).unwrap());
        for m in imported_modules(&code) {
            if order.get(&m).is_some_and(|&level| level > own) {
                found.insert((rel.clone(), m));
            }
        }
    }
    found
}

fn doc() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
        .unwrap()
}

#[test]
fn no_layer_imports_one_above_it() {
    let order = layer_order(&doc());
    let found = crossings(&order);
    let known: BTreeSet<(String, String)> = KNOWN
        .iter()
        .map(|(f, m, _)| (f.to_string(), m.to_string()))
        .collect();
    let new: Vec<_> = found.difference(&known).collect();
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(
        new.is_empty(),
        "these files import a layer above their own (docs/architecture.md, Import rules): {new:?}"
    );
    assert!(
        gone.is_empty(),
        "these listed crossings are fixed: delete them from KNOWN in tests/layers.rs: {gone:?}"
    );
}

#[test]
fn every_module_of_the_crate_has_a_layer() {
    let order = layer_order(&doc());
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        let t = line.trim_start();
        let Some(rest) = t
            .strip_prefix("pub mod ")
            .or_else(|| t.strip_prefix("pub(crate) mod "))
            .or_else(|| t.strip_prefix("mod "))
        else {
            continue;
        };
        let name = rest.trim_end_matches(';').trim();
        assert!(
            order.contains_key(name),
            "src/lib.rs declares `{name}`, which docs/architecture.md's layers block does not place"
        );
    }
}

#[test]
fn the_scan_sees_every_form_of_import() {
    // The check is only as good as its reading of `use` lines: each form here is a crossing.
    let code = shipped_code(
        "use crate::{model::Route, view::{self, columns}};\n\
         // use crate::tui; (a comment is not an import)\n\
         fn f() { crate::cmd::run(); }\n\
         #[cfg(test)]\n\
         mod tests { use crate::record; }\n",
    );
    let found = imported_modules(&code);
    let want: BTreeSet<String> = ["model", "view", "cmd"].map(String::from).into();
    assert_eq!(found, want);
    let order = layer_order(&doc());
    assert!(order["view"] > order["trace"] && order["model"] < order["trace"]);
}
