//! The layout a newcomer reads: within each crate (and the binary), no two source files import
//! each other, so that every file can be read after the ones it uses. A crate's root (`lib.rs`,
//! `main.rs`) and a folder's `mod.rs` are the module tree's parents and are left out: they declare
//! and re-export the files below them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The source files under `root` (a crate's `src`), by module path (`send::report`).
fn modules(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read a source folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.extension().is_none_or(|extension| extension != "rs") {
                continue;
            }
            let relative = path.strip_prefix(root).expect("under the root").with_extension("");
            let mut parts: Vec<String> =
                relative.components().map(|part| part.as_os_str().to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|last| last == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] || parts.is_empty() {
                continue;
            }
            found.insert(parts.join("::"), path);
        }
    }
    found
}

/// The Rust text without its comments (line comments only: the project writes no block comments).
fn without_comments(text: &str) -> String {
    text.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The module paths written after each `prefix` in `text` (`crate::a::b`, `crate::{a, b::c}`).
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        rest = &rest[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inside = &group[..group.find('}').unwrap_or(group.len())];
            for item in inside.split(',') {
                paths.push(item.trim().split("::").map(str::to_owned).collect());
            }
            continue;
        }
        let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        paths.push(path.split("::").filter(|part| !part.is_empty()).map(str::to_owned).collect());
    }
    paths
}

/// The modules of `modules` that the file of `module` uses.
fn imports(module: &str, file: &Path, modules: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let text = without_comments(&std::fs::read_to_string(file).expect("read a source file"));
    let parent = module.rsplit_once("::").map_or("", |(parent, _)| parent);
    let mut used = BTreeSet::new();
    let mut resolve = |base: &str, path: &[String]| {
        // The longest prefix of the path that names a file.
        for length in (1..=path.len()).rev() {
            let named = path[..length].join("::");
            let candidate = if base.is_empty() { named } else { format!("{base}::{named}") };
            if modules.contains_key(&candidate) {
                used.insert(candidate);
                return;
            }
        }
    };
    for path in paths_after(&text, "crate::") {
        resolve("", &path);
    }
    for path in paths_after(&text, "super::") {
        resolve(parent, &path);
    }
    used.remove(module);
    used
}

#[test]
fn no_two_source_files_import_each_other() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut roots = vec![workspace.join("src")];
    for entry in std::fs::read_dir(workspace.join("crates")).expect("read crates/").flatten() {
        roots.push(entry.path().join("src"));
    }
    let mut circles = Vec::new();
    let mut files = 0;
    for root in roots.iter().filter(|root| root.is_dir()) {
        let modules = modules(root);
        files += modules.len();
        let graph: BTreeMap<&String, BTreeSet<String>> =
            modules.iter().map(|(module, file)| (module, imports(module, file, &modules))).collect();
        for (module, used) in &graph {
            for other in used {
                if module.as_str() < other.as_str() && graph.get(other).is_some_and(|back| back.contains(module.as_str())) {
                    let shown = root.strip_prefix(workspace).unwrap_or(root).display();
                    circles.push(format!("{shown}: {module} <-> {other}"));
                }
            }
        }
    }
    assert!(files > 50, "the scan found only {files} source files: is it reading the workspace?");
    assert!(circles.is_empty(), "source files that import each other (move what both need to a module of its own):\n{}", circles.join("\n"));
}

#[test]
fn the_scan_sees_an_import_circle_when_there_is_one() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let src = folder.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").expect("write");
    std::fs::write(src.join("a.rs"), "use crate::b::Thing; // uses b\npub struct Other;\n").expect("write");
    std::fs::write(src.join("b.rs"), "use crate::{a::Other, c};\npub struct Thing;\n").expect("write");
    let modules = modules(src);
    assert_eq!(modules.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert!(imports("a", &modules["a"], &modules).contains("b"));
    assert!(imports("b", &modules["b"], &modules).contains("a"));
    std::fs::write(src.join("a.rs"), "// crate::b is named in a comment only\npub struct Other;\n").expect("write");
    assert!(imports("a", &modules["a"], &modules).is_empty());
}
