//! The shape of the source tree, checked from its text: no two modules
//! import each other (directly or around a loop), and no file grows past
//! about 600 lines before its unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
const MAX_LINES: usize = 620;

/// Every `.rs` file under `src/` with its module path (`queue::entry`).
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let mut inner = prefix.to_vec();
                inner.push(name);
                walk(&path, &inner, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                let mut name = prefix.to_vec();
                if !(prefix.is_empty() && (stem == "lib" || stem == "main")) {
                    name.push(stem);
                }
                out.insert(name.join("::"), path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(Path::new(SRC), &[], &mut out);
    out
}

/// The code of a file before its `#[cfg(test)]` module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The modules a file refers to through `crate::` and `super::` paths,
/// resolved to the longest prefix that is a module file.
fn references(module: &str, code: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let parent: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
    let parent = &parent[..parent.len().saturating_sub(1)];
    let mut found = BTreeSet::new();
    let mut add = |base: Vec<String>, rest: &str| {
        // `rest` is what follows `crate::` / `super::`: a path or a
        // `{...}` group of paths.
        let paths: Vec<String> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end]
                .split(',')
                .map(|p| p.trim().to_owned())
                .collect()
        } else {
            vec![rest.to_owned()]
        };
        for path in paths {
            let mut segments = base.clone();
            for segment in path.split("::") {
                let segment: String = segment
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if segment.is_empty() {
                    break;
                }
                segments.push(segment);
            }
            while !segments.is_empty() {
                let candidate = segments.join("::");
                if known.contains_key(&candidate) {
                    found.insert(candidate);
                    break;
                }
                segments.pop();
            }
        }
    };
    for (marker, base) in [
        ("crate::", Vec::new()),
        ("super::", parent.iter().map(|s| s.to_string()).collect()),
    ] {
        let mut at = 0;
        while let Some(found_at) = code[at..].find(marker) {
            let start = at + found_at + marker.len();
            add(base.clone(), &code[start..]);
            at = start;
        }
    }
    found
}

/// A module and its own ancestors may refer to each other (a parent
/// re-exports its children, a child uses its parent's private types).
fn related(a: &str, b: &str) -> bool {
    let under =
        |child: &str, parent: &str| parent.is_empty() || child.starts_with(&format!("{parent}::"));
    a == b || under(a, b) || under(b, a)
}

#[test]
fn no_module_imports_around_a_loop() {
    let known = modules();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in &known {
        let targets = references(module, &code(path), &known)
            .into_iter()
            .filter(|target| !related(module, target))
            .collect();
        edges.insert(module.clone(), targets);
    }
    assert!(
        edges["delivery::attempt"].contains("delivery::slots"),
        "the reference reader lost its way: {edges:?}"
    );
    // Depth-first search for a back edge.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for module in edges.keys() {
        let cycle = visit(module, &edges, &mut Vec::new(), &mut done);
        assert!(
            cycle.is_none(),
            "modules import each other: {}",
            cycle.unwrap().join(" -> ")
        );
    }
}

#[test]
fn no_source_file_is_too_long_before_its_tests() {
    for (module, path) in modules() {
        if module.ends_with("::tests") {
            continue;
        }
        let lines = code(&path).lines().count();
        assert!(
            lines <= MAX_LINES,
            "{module} ({}) has {lines} lines before its tests",
            path.display()
        );
    }
}
