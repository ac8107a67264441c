//! ARCHITECTURE.md's dependency rules, kept by a test rather than by habit.
//!
//! - Which workspace crate may depend on which (the crate graph points down: binaries over
//!   libraries, libraries over the few below them; no binary depends on another; `logq` never
//!   links the wire protocol, not even through another crate).
//! - Every library crate forbids `unsafe`.
//! - Inside a crate, no module imports one that imports it back (a file reaching back into the
//!   file that reaches into it means an item lives in the wrong room).
//!
//! The module check reads `crate::`/`super::` paths in the source text: a file refers to the
//! deepest module file a path names. A parent's reach into its own children, and a child's into
//! its ancestors, are structure, not loops, and the crate root (which only declares and
//! re-exports) is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Each crate's folder, and the workspace crates its `[dependencies]` may name. The tests
/// crate (`tests/`) may use anything and is not listed.
const ALLOWED: &[(&str, &[&str])] = &[
    ("lib/fs", &[]),
    ("lib/ids", &[]),
    ("lib/cli", &[]),
    ("lib/tls", &[]),
    ("lib/protocol", &["scribe-ids", "scribe-tls"]),
    ("lib/follow", &["scribe-fs"]),
    ("lib/archive", &["scribe-ids", "scribe-fs"]),
    ("lib/spool", &["scribe-ids", "scribe-fs"]),
    ("lib/syslog", &["scribe-archive"]),
    ("lib/objstore", &["scribe-archive"]),
    ("lib/kafka", &["scribe-ids", "scribe-archive", "scribe-cli"]),
    (
        "scribed",
        &[
            "scribe-tls",
            "scribe-ids",
            "scribe-protocol",
            "scribe-archive",
            "scribe-spool",
            "scribe-fs",
            "scribe-cli",
            "scribe-syslog",
            "scribe-objstore",
            "scribe-kafka",
        ],
    ),
    (
        "shipper",
        &[
            "scribe-tls",
            "scribe-ids",
            "scribe-protocol",
            "scribe-archive",
            "scribe-spool",
            "scribe-follow",
            "scribe-fs",
            "scribe-cli",
        ],
    ),
    (
        "tailgate",
        &[
            "scribe-tls",
            "scribe-protocol",
            "scribe-archive",
            "scribe-follow",
            "scribe-fs",
            "scribe-cli",
            "scribe-kafka",
        ],
    ),
    (
        "query",
        &[
            "scribe-archive",
            "scribe-follow",
            "scribe-fs",
            "scribe-cli",
            "scribe-objstore",
        ],
    ),
];

/// Crates that hold binaries: none may depend on another.
const BINARIES: &[&str] = &["scribed", "shipper", "tailgate", "logq"];

fn manifest(dir: &str) -> toml::Table {
    let text = std::fs::read_to_string(root().join(dir).join("Cargo.toml")).unwrap();
    text.parse().unwrap()
}

fn workspace_deps(dir: &str) -> BTreeSet<String> {
    let names: BTreeSet<String> = ALLOWED
        .iter()
        .map(|(d, _)| manifest(d)["package"]["name"].as_str().unwrap().to_string())
        .collect();
    let m = manifest(dir);
    let deps = m.get("dependencies").and_then(|d| d.as_table());
    deps.into_iter()
        .flat_map(|t| t.keys())
        .filter(|k| names.contains(*k))
        .cloned()
        .collect()
}

#[test]
fn every_workspace_member_has_a_rule() {
    let ws = manifest(".");
    let members = ws["workspace"]["members"].as_array().unwrap();
    for m in members {
        let m = m.as_str().unwrap();
        assert!(
            m == "tests" || ALLOWED.iter().any(|(d, _)| *d == m),
            "workspace member {m} has no dependency rule in tests/tests/architecture.rs \
             (and ARCHITECTURE.md)"
        );
    }
}

#[test]
fn crates_depend_only_on_what_the_rules_allow() {
    let mut broken = Vec::new();
    for (dir, allowed) in ALLOWED {
        for dep in workspace_deps(dir) {
            if !allowed.contains(&dep.as_str()) {
                broken.push(format!("{dir} depends on {dep}"));
            }
            assert!(
                !BINARIES.contains(&dep.as_str()),
                "{dir} depends on the binary crate {dep}"
            );
        }
    }
    assert!(broken.is_empty(), "dependency rules broken: {broken:#?}");
}

#[test]
fn logq_never_links_the_wire_protocol() {
    // Transitively: walk the allowed graph from logq's real dependencies.
    let by_name: BTreeMap<String, &str> = ALLOWED
        .iter()
        .map(|(d, _)| (manifest(d)["package"]["name"].as_str().unwrap().into(), *d))
        .collect();
    let mut seen = BTreeSet::new();
    let mut todo: Vec<String> = workspace_deps("query").into_iter().collect();
    while let Some(dep) = todo.pop() {
        if seen.insert(dep.clone()) {
            todo.extend(workspace_deps(by_name[&dep]));
        }
    }
    assert!(
        !seen.contains("scribe-protocol"),
        "logq links scribe-protocol through {seen:?}"
    );
}

#[test]
fn library_crates_forbid_unsafe_code() {
    for (dir, _) in ALLOWED.iter().filter(|(d, _)| d.starts_with("lib/")) {
        let lib = std::fs::read_to_string(root().join(dir).join("src/lib.rs")).unwrap();
        assert!(
            lib.contains("#![forbid(unsafe_code)]"),
            "{dir}/src/lib.rs lacks #![forbid(unsafe_code)]"
        );
    }
}

/// A source file's module path inside its crate (`stores/file.rs` → `stores::file`,
/// `stores/mod.rs` → `stores`, `lib.rs` → ``), or `None` for files that are not modules of the
/// crate's tree (binaries under `src/bin/`, out-of-line test files mounted with `#[path]`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    if rel.starts_with("bin") {
        return None;
    }
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    Some(parts.join("::"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every path in the text that starts at `crate::` or `super::`, as absolute module paths
/// (segments), with `use` groups (`use crate::{a::B, c::{d, E}}`) expanded.
fn referenced_paths(text: &str, module: &str) -> Vec<Vec<String>> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        let at_word_start = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        if at_word_start && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let (paths, used) = expand(rest);
            for p in paths {
                out.push(absolute(&p, module));
            }
            i += used.max(1);
        } else {
            i += rest.chars().next().unwrap().len_utf8();
        }
    }
    out
}

/// Expands one path expression (possibly a `use` tree) starting at `text`; returns its leaf
/// paths and the bytes consumed.
fn expand(text: &str) -> (Vec<Vec<String>>, usize) {
    let b = text.as_bytes();
    let mut i = 0;
    let mut prefix: Vec<String> = Vec::new();
    loop {
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if i > start {
            prefix.push(text[start..i].to_string());
        }
        if text[i..].starts_with("::") {
            i += 2;
            if text[i..].starts_with('{') {
                i += 1;
                let mut leaves = Vec::new();
                loop {
                    while i < b.len() && (b[i] as char).is_whitespace()
                        || text[i..].starts_with(',')
                    {
                        i += 1;
                    }
                    if i >= b.len() || text[i..].starts_with('}') {
                        i += 1;
                        break;
                    }
                    let (inner, used) = expand(&text[i..]);
                    for p in inner {
                        let mut full = prefix.clone();
                        full.extend(p);
                        leaves.push(full);
                    }
                    i += used.max(1);
                }
                return (leaves, i);
            }
            continue;
        }
        return (vec![prefix], i);
    }
}

/// Resolves `crate::`/`super::`/`self::` against the referring module.
fn absolute(path: &[String], module: &str) -> Vec<String> {
    let mut base: Vec<String> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").map(String::from).collect()
    };
    let mut segs = path.iter().peekable();
    match segs.peek().map(|s| s.as_str()) {
        Some("crate") => {
            base.clear();
            segs.next();
        }
        Some("super") => {
            while segs.peek().map(|s| s.as_str()) == Some("super") {
                segs.next();
                base.pop();
            }
        }
        _ => {}
    }
    base.extend(segs.filter(|s| s.as_str() != "self").cloned());
    base
}

/// Module pairs (a, b) inside one crate's `src/` where each refers to the other.
fn import_loops(src: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .iter()
        .filter_map(|f| Some((module_of(src, f)?, f.clone())))
        .collect();
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    for (module, file) in &modules {
        if module.is_empty() {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for path in referenced_paths(&text, module) {
            // The deepest module file the path names.
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|m| modules.contains_key(m));
            let Some(target) = target else { continue };
            let related = target == *module
                || module.starts_with(&format!("{target}::"))
                || target.starts_with(&format!("{module}::"));
            if !related {
                edges.insert((module.clone(), target));
            }
        }
    }
    edges
        .iter()
        .filter(|(a, b)| a < b && edges.contains(&(b.clone(), a.clone())))
        .cloned()
        .collect()
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut loops = Vec::new();
    for (dir, _) in ALLOWED {
        for (a, b) in import_loops(&root().join(dir).join("src")) {
            loops.push(format!("{dir}: {a} <-> {b}"));
        }
    }
    assert!(loops.is_empty(), "import loops: {loops:#?}");
}

#[test]
fn the_loop_finder_finds_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("stores")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod config; mod stores;").unwrap();
    std::fs::write(
        src.join("config.rs"),
        "use crate::{stores::{file::parse, Store}, x};",
    )
    .unwrap();
    std::fs::write(src.join("stores/mod.rs"), "pub mod file; use file::X;").unwrap();
    std::fs::write(
        src.join("stores/file.rs"),
        "use super::Store; fn f() { crate::config::Settings::new(); }",
    )
    .unwrap();
    assert_eq!(
        import_loops(src),
        vec![("config".to_string(), "stores::file".to_string())]
    );
}
