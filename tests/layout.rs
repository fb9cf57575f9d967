//! The source layout's rules, checked on the tree itself: no module of the
//! agent or the plugin host imports, directly or around a circle, a module
//! that imports it back (what `cargo modules dependencies --acyclic` checks,
//! without building rust-analyzer in CI).
//!
//! A module's imports are the `crate::`, `self::` and `super::` paths in its
//! file, up to its `#[cfg(test)]` module: test code may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`a::b`, "" for the crate root) → its file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src");
            let mut parts: Vec<String> = relative
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            let last = parts.pop().expect("a file name");
            match last.as_str() {
                "lib.rs" | "main.rs" | "mod.rs" => {}
                file => parts.push(file.trim_end_matches(".rs").to_owned()),
            }
            found.insert(parts.join("::"), path);
        }
    }
    found
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        out.push(format!("{prefix}{path}"));
        return;
    };
    let head = format!("{prefix}{}", &tree[..open]);
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&inner[start..i], &head, out);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !inner[start..].trim().is_empty() {
        expand(&inner[start..], &head, out);
    }
}

/// Every `crate::`/`self::`/`super::` path the code names.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `use` trees first (a statement starts a line, perhaps after its
    // visibility: "use" in a comment or a string is none), then the paths
    // written inline.
    let mut offset = 0;
    for line in code.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let text = line.trim_start();
        let text = ["pub(crate) ", "pub(super) ", "pub "]
            .iter()
            .find_map(|v| text.strip_prefix(v))
            .unwrap_or(text);
        let Some(tree) = text.strip_prefix("use ") else {
            continue;
        };
        let at = start + (line.len() - tree.len());
        let Some(end) = code[at..].find(';') else {
            break;
        };
        // Any tree: `use child::X` names a child module without `self::`.
        expand(code[at..at + end].trim(), "", &mut out);
    }
    let bytes = code.as_bytes();
    for start in ["crate::", "self::", "super::"] {
        let mut from = 0;
        while let Some(found) = code[from..].find(start) {
            let at = from + found;
            from = at + start.len();
            let boundary = at == 0
                || !(bytes[at - 1].is_ascii_alphanumeric()
                    || bytes[at - 1] == b'_'
                    || bytes[at - 1] == b':');
            if !boundary {
                continue;
            }
            let end = code[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            out.push(code[at..end].trim_end_matches(':').to_owned());
        }
    }
    out
}

/// The crate's modules, and the names the root re-exports (`pub use
/// error::Failure`): a path through such a name leads to the module that
/// defines it, not to the root.
struct Crate {
    known: BTreeMap<String, PathBuf>,
    reexports: BTreeMap<String, String>,
}

/// The module of the crate a path names, seen from `module`.
fn target(path: &str, module: &str, krate: &Crate) -> Option<String> {
    let known = &krate.known;
    let mut base: Vec<&str> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").collect()
    };
    let mut segments = path.split("::").peekable();
    match segments.next()? {
        "crate" => base.clear(),
        "self" => {}
        "super" => {
            base.pop();
            while segments.peek() == Some(&"super") {
                segments.next();
                base.pop();
            }
        }
        // A child module named directly (`use results::X`), or another crate.
        child => {
            base.push(child);
            if !known.contains_key(&base.join("::")) {
                return None;
            }
        }
    }
    let mut best = None;
    let mut current = base.clone();
    if known.contains_key(&current.join("::")) {
        best = Some(current.join("::"));
    }
    for segment in segments {
        if current.is_empty()
            && let Some(defined) = krate.reexports.get(segment)
        {
            return Some(defined.clone());
        }
        current.push(segment);
        let name = current.join("::");
        if known.contains_key(&name) {
            best = Some(name);
        } else {
            break;
        }
    }
    best
}

/// A circle of imports, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut circle = stack[at..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, stack, done) {
                return Some(circle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(circle) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(circle);
        }
    }
    None
}

fn import_graph(crate_dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("src");
    let known = modules(&src);
    let mut krate = Crate {
        known,
        reexports: BTreeMap::new(),
    };
    let root = std::fs::read_to_string(&krate.known[""]).expect("the crate root");
    let mut reexports = BTreeMap::new();
    for path in paths(&root) {
        if let Some(defined) = target(&path, "", &krate).filter(|m| !m.is_empty())
            && let Some(name) = path.rsplit("::").next()
        {
            reexports.insert(name.to_owned(), defined);
        }
    }
    krate.reexports = reexports;
    let known = &krate.known;
    let mut edges = BTreeMap::new();
    for (module, file) in known {
        let text = std::fs::read_to_string(file).expect("a source file");
        let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or(&text);
        // `self::` and `super::` count from the module itself.
        let imports: BTreeSet<String> = paths(code)
            .iter()
            .filter_map(|p| target(p, module, &krate))
            .filter(|t| t != module)
            .collect();
        edges.insert(module.clone(), imports);
    }
    edges
}

#[test]
fn the_agent_has_no_import_circle() {
    let edges = import_graph("host/agent");
    assert!(edges.contains_key("kuberuntime::actions"), "{edges:?}");
    assert_eq!(cycle(&edges), None);
}

#[test]
fn the_plugin_host_has_no_import_circle() {
    let edges = import_graph("host/plugin-host");
    assert!(edges.contains_key("engine"), "{edges:?}");
    assert_eq!(cycle(&edges), None);
}

#[test]
fn the_check_finds_a_circle_when_there_is_one() {
    let edges = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(
        cycle(&edges),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let known = Crate {
        known: BTreeMap::from([
            (String::new(), PathBuf::new()),
            ("k".to_owned(), PathBuf::new()),
            ("k::start".to_owned(), PathBuf::new()),
            ("status".to_owned(), PathBuf::new()),
        ]),
        reexports: BTreeMap::from([("Failure".to_owned(), "status".to_owned())]),
    };
    assert_eq!(
        target("crate::Failure", "k", &known).as_deref(),
        Some("status")
    );
    assert_eq!(
        target("super::PodSyncer", "k::start", &known).as_deref(),
        Some("k")
    );
    assert_eq!(
        target("crate::k::start::X", "status", &known).as_deref(),
        Some("k::start")
    );
    assert_eq!(
        target("self::start::f", "k", &known).as_deref(),
        Some("k::start")
    );
    assert_eq!(target("start::f", "k", &known).as_deref(), Some("k::start"));
    assert_eq!(target("std::sync::Arc", "k", &known), None);
    let mut out = Vec::new();
    expand("crate::{a::B, c::{d, e as f}}", "", &mut out);
    assert_eq!(out, ["crate::a::B", "crate::c::d", "crate::c::e"]);
}
