//! No import cycles between the files of any crate: a file names another
//! through `use crate::...` or a `crate::x::` path in its code (test modules
//! aside); a parent module declaring or re-exporting its children is not a
//! cycle. Read from the sources, so CI needs no tool beyond cargo.
//! The cycles that remain are listed below, exactly: removing one means
//! deleting its line, and a new one fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Cycles still to break: none. (A cycle that must stay for a while goes
/// here as `("crate", &["module", "other"])`, so that breaking it is seen.)
const KNOWN: &[(&str, &[&str])] = &[];

type Module = Vec<String>;

fn module_of(src: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its test module.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands `a::{b, c::{d, e}}` into paths.
fn expand(prefix: &[String], tree: &str, out: &mut Vec<Module>) {
    let tree = tree.trim();
    if let Some(inner) = tree.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(prefix, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(prefix, &inner[start..], out);
    } else if let Some(at) = tree.find("::{") {
        let mut p = prefix.to_vec();
        p.extend(tree[..at].split("::").map(|s| s.trim().to_string()));
        expand(&p, &tree[at + 2..], out);
    } else if !tree.is_empty() {
        let path = tree.split(" as ").next().unwrap_or(tree);
        let mut p = prefix.to_vec();
        p.extend(path.split("::").map(|s| s.trim().to_string()));
        out.push(p);
    }
}

/// The paths named after `root::` (`crate` or `super`), in `use` trees and in code.
fn paths_after(code: &str, root: &str) -> Vec<Module> {
    let mut out = Vec::new();
    let (use_root, root) = (format!("use {root}::"), format!("{root}::"));
    let mut rest = code;
    while let Some(at) = rest.find(&use_root) {
        let tail = &rest[at + use_root.len()..];
        let end = tail.find(';').unwrap_or(tail.len());
        expand(&[], &tail[..end], &mut out);
        rest = &tail[end..];
    }
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(at) = code[from..].find(&root) {
        let start = from + at + root.len();
        // `super::super::x` is counted once, from its first `super`.
        let whole_word = from + at == 0
            || !(bytes[from + at - 1] == b':'
                || bytes[from + at - 1].is_ascii_alphanumeric()
                || bytes[from + at - 1] == b'_');
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
        {
            end += 1;
        }
        if whole_word {
            let path: Module = code[start..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            out.push(path);
        }
        from = end.max(start);
    }
    out
}

/// The modules a file names: `crate::` paths as they are, `super::` paths
/// from the file's parent module (each further `super` one level up).
fn references(module: &[String], code: &str) -> Vec<Module> {
    let mut out = paths_after(code, "crate");
    for path in paths_after(code, "super") {
        let ups = 1 + path.iter().take_while(|p| *p == "super").count();
        let Some(base) = module.len().checked_sub(ups) else {
            continue;
        };
        let mut full = module[..base].to_vec();
        full.extend(path.into_iter().skip(ups - 1));
        out.push(full);
    }
    out
}

/// The crate's file graph: each module and the modules it names.
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<Module, PathBuf> = files
        .iter()
        .map(|f| (module_of(src, f), f.clone()))
        .collect();
    let mut edges = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        let mut targets = BTreeSet::new();
        for path in references(module, &code(&text)) {
            let target = (1..=path.len())
                .rev()
                .map(|k| path[..k].to_vec())
                .find(|p| modules.contains_key(p));
            if let Some(t) = target.filter(|t| !t.starts_with(module)) {
                targets.insert(t);
            }
        }
        edges.insert(module.clone(), targets);
    }
    edges
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in &s.edges[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.found
}

#[test]
fn no_crate_has_an_import_cycle_beyond_the_known_ones() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = BTreeSet::new();
    let mut names: Vec<String> = std::fs::read_dir(&crates)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| crates.join(n).join("src").is_dir())
        .collect();
    names.sort();
    assert!(names.len() >= 6, "{names:?}");
    for name in &names {
        for cycle in cycles(&graph(&crates.join(name).join("src"))) {
            let modules: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            found.insert((name.clone(), modules));
        }
    }
    let known: BTreeSet<(String, Vec<String>)> = KNOWN
        .iter()
        .map(|(c, m)| (c.to_string(), m.iter().map(|s| s.to_string()).collect()))
        .collect();
    let new: Vec<_> = found.difference(&known).collect();
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(new.is_empty(), "import cycles between files: {new:?}");
    assert!(
        gone.is_empty(),
        "these cycles are gone: delete them from KNOWN: {gone:?}"
    );
}

#[test]
fn the_checker_sees_a_cycle_and_a_parent_declaring_its_children_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub use a::X;\n").unwrap();
    std::fs::write(
        src.join("a/mod.rs"),
        "mod inner;\nuse crate::b::{Y, Z as W};\npub use inner::X;\n",
    )
    .unwrap();
    // A child naming its parent, and its parent declaring it: no cycle.
    std::fs::write(
        src.join("a/inner.rs"),
        "// use crate::b; in a comment\npub struct X;\nfn h() { crate::a::g() }\n",
    )
    .unwrap();
    std::fs::write(src.join("b.rs"), "pub struct Y; pub struct Z;\nfn f() { crate::a::g() }\n#[cfg(test)]\nmod t { use crate::a::inner::X; }\n").unwrap();
    let found = cycles(&graph(src));
    let want: Vec<Module> = vec![vec!["a".into()], vec!["b".into()]];
    assert_eq!(found, vec![want]);
    std::fs::write(src.join("b.rs"), "pub struct Y; pub struct Z;\n").unwrap();
    assert!(cycles(&graph(src)).is_empty());
    // `super::` paths count from the file's parent: a::inner names b and a,
    // b names a::inner, and a names b.
    std::fs::write(
        src.join("a/inner.rs"),
        "pub struct X;\nuse super::super::b::Y;\nfn h() { super::g() }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "pub struct Y;\nfn f() { crate::a::inner::X; }\n",
    )
    .unwrap();
    let inner: Module = vec!["a".into(), "inner".into()];
    let want: Vec<Module> = vec![vec!["a".into()], inner, vec!["b".into()]];
    assert_eq!(cycles(&graph(src)), vec![want]);
}
