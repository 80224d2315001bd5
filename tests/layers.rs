//! The one-way design, held by a test: no module of `src/` imports a layer above its own.
//! The order is read from the `layers` block of docs/architecture.md, the imports from every
//! `crate::…` path in the code. Shipped code and test code (`#[cfg(test)] mod …`, `tests.rs`)
//! are read apart: crossings still in shipped code are listed in KNOWN, the pure helpers test
//! code may take from above in TEST_SUPPORT, each with why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Crossings still in the code: (file under `src/`, module it imports from above, why).
/// Fix one, delete its line: the test fails while a listed crossing is gone, so the list
/// cannot go stale.
const KNOWN: &[(&str, &str, &str)] = &[];

/// Test code (`#[cfg(test)] mod …` and `tests.rs` under `src/`) keeps the same rule, with one
/// exception: it may import a pure helper from above to build its input or to read its result
/// the way a user sees it. Each such import is listed here (file, module, why); an unlisted
/// one fails, and so does a listed one that is gone.
const TEST_SUPPORT: &[(&str, &str, &str)] = &[
    (
        "decode/packet.rs",
        "view",
        "the decoder's cases are asserted as view::packet::summary prints them",
    ),
    (
        "sandbox/broker.rs",
        "source",
        "the broker is tested with the tools the TUI hands it (source::netfilter::BROKER_TOOLS)",
    ),
    (
        "trace/netfilter/tests.rs",
        "source",
        "rule sets come from iptables-save/ipset text through source's pure parsers",
    ),
];

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

/// A file split into the code that ships and its test code (`#[cfg(test)] mod … { … }`,
/// wherever in the file), both without whole-line comments (module docs name other layers in
/// prose). A `#[cfg(test)] mod x;` names a file of its own, which is test code as a whole.
fn split_test_code(src: &str) -> (String, String) {
    let (mut shipped, mut test) = (String::new(), String::new());
    let mut lines = src.lines().peekable();
    let mut depth: Option<i64> = None;
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if depth.is_none()
            && t == "#[cfg(test)]"
            && lines.peek().is_some_and(|next| {
                let n = next.trim_start();
                n.trim_start_matches("pub ")
                    .trim_start_matches("pub(crate) ")
                    .starts_with("mod ")
                    && n.contains('{')
            })
        {
            depth = Some(0);
            continue;
        }
        if t.starts_with("//") {
            continue;
        }
        match depth.as_mut() {
            Some(d) => {
                *d += brace_balance(line);
                test.push_str(line);
                test.push('\n');
                if *d <= 0 {
                    depth = None;
                }
            }
            None => {
                shipped.push_str(line);
                shipped.push('\n');
            }
        }
    }
    (shipped, test)
}

/// `{` minus `}` on a line, outside string and char literals and trailing comments.
fn brace_balance(line: &str) -> i64 {
    let (mut n, mut in_str, mut prev) = (0, false, ' ');
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if prev != '\\' => in_str = !in_str,
            '/' if !in_str && chars.peek() == Some(&'/') => break,
            '\'' if !in_str => {
                // A char literal ('{', '\''): skip to its closing quote; a lifetime has none.
                let rest: String = chars.clone().take(3).collect();
                if let Some(close) = rest.find('\'').filter(|&i| i > 0) {
                    for _ in 0..=close {
                        chars.next();
                    }
                }
            }
            '{' if !in_str => n += 1,
            '}' if !in_str => n -= 1,
            _ => {}
        }
        prev = if prev == '\\' { ' ' } else { c };
    }
    n
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

/// Which code of `src/` a scan reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Code {
    /// What the binary contains.
    Shipped,
    /// `#[cfg(test)]` modules and `tests.rs` files.
    Test,
}

/// Every (file, imported module) where `code` of a file imports a layer above its own.
fn crossings(order: &BTreeMap<String, usize>, code: Code) -> BTreeSet<(String, String)> {
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
        if rel == "lib.rs" || rel == "main.rs" {
            continue;
        }
        let own = *order
            .get(top)
            .unwrap_or_else(|| panic!("src/{rel}: module {top} is in no layer"));
        let (shipped, test) = split_test_code(&std::fs::read_to_string(&path).unwrap());
        let read = match (code, rel.ends_with("/tests.rs")) {
            (Code::Shipped, false) => shipped,
            (Code::Shipped, true) => String::new(),
            (Code::Test, false) => test,
            (Code::Test, true) => shipped + &test,
        };
        for m in imported_modules(&read) {
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

/// `found` against a list of allowed crossings: none new, none listed that is gone.
fn only_listed(found: BTreeSet<(String, String)>, listed: &[(&str, &str, &str)], list: &str) {
    let listed: BTreeSet<(String, String)> = listed
        .iter()
        .map(|(f, m, _)| (f.to_string(), m.to_string()))
        .collect();
    let new: Vec<_> = found.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&found).collect();
    assert!(
        new.is_empty(),
        "these files import a layer above their own (docs/architecture.md, Import rules): {new:?}"
    );
    assert!(
        gone.is_empty(),
        "these listed crossings are fixed: delete them from {list} in tests/layers.rs: {gone:?}"
    );
}

#[test]
fn no_layer_imports_one_above_it() {
    let order = layer_order(&doc());
    only_listed(crossings(&order, Code::Shipped), KNOWN, "KNOWN");
}

#[test]
fn test_code_imports_from_above_only_the_listed_helpers() {
    let order = layer_order(&doc());
    only_listed(crossings(&order, Code::Test), TEST_SUPPORT, "TEST_SUPPORT");
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
    // The check is only as good as its reading of `use` lines: each form here is a crossing,
    // and shipped code after a test module is still shipped.
    let (code, test) = split_test_code(
        "use crate::{model::Route, view::{self, columns}};\n\
         // use crate::tui; (a comment is not an import)\n\
         fn f() { crate::cmd::run(); }\n\
         #[cfg(test)]\n\
         mod tests { use crate::record; }\n\
         #[cfg(test)]\n\
         mod more {\n\
             fn g() { let brace = '}'; let s = \"}}\"; }\n\
             use crate::kube;\n\
         }\n\
         fn h() { crate::trace::path::walk(); }\n",
    );
    let found = imported_modules(&code);
    let want: BTreeSet<String> = ["model", "view", "cmd", "trace"].map(String::from).into();
    assert_eq!(found, want);
    let want: BTreeSet<String> = ["record", "kube"].map(String::from).into();
    assert_eq!(imported_modules(&test), want);
    let order = layer_order(&doc());
    assert!(order["view"] > order["trace"] && order["model"] < order["trace"]);
}
