//! The codemap's invariants, checked on the source: no import cycle between the crate's
//! top-level modules, no command file importing another, and each external crate used by its
//! one module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            src_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source without comments and string literals (so prose naming a module is no edge).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if !in_str && c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// `src/a/b.rs` and `src/a/mod.rs` belong to module `a`; `src/x.rs` to `x`.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::<name>` a file's code refers to (and `super::<name>` inside a directory
/// module, which names a sibling of the same top module).
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            refs.insert(name);
        }
        rest = after;
    }
    // `use crate::{a, b::c}` groups.
    let mut rest = code;
    while let Some(i) = rest.find("crate::{") {
        let after = &rest[i + "crate::{".len()..];
        let group: String = after.chars().take_while(|c| *c != ';').collect();
        let mut depth = 0;
        let mut item = String::new();
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    refs.insert(item.trim().split("::").next().unwrap().to_string());
                    item.clear();
                    continue;
                }
                _ => {}
            }
            if depth == 0 {
                item.push(c);
            }
        }
        let last = item.trim().split("::").next().unwrap().to_string();
        if !last.is_empty() {
            refs.insert(last);
        }
        rest = after;
    }
    refs
}

struct Crate {
    src: PathBuf,
    files: Vec<(PathBuf, String)>,
}

fn load() -> Crate {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    src_files(&src, &mut paths);
    paths.sort();
    let files = paths
        .into_iter()
        .map(|p| {
            let code = code_only(&std::fs::read_to_string(&p).unwrap());
            (p, code)
        })
        .collect();
    Crate { src, files }
}

/// Module -> the other top-level modules it refers to.
fn graph(c: &Crate) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = c.files.iter().map(|(p, _)| top_module(&c.src, p)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (p, code) in &c.files {
        let m = top_module(&c.src, p);
        if m == "main" || m == "lib" {
            continue;
        }
        let entry = g.entry(m.clone()).or_default();
        for r in crate_refs(code) {
            if r != m && modules.contains(&r) {
                entry.insert(r);
            }
        }
    }
    g
}

/// A cycle through `start`, if one exists (depth-first search).
fn cycle_from(g: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        g: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in g.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    walk(g, start, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let c = load();
    let g = graph(&c);
    assert!(g.len() > 20, "the graph was read: {g:?}");
    assert!(
        g["commands"].contains("policy"),
        "edges are found: {:?}",
        g["commands"]
    );
    let cycles: Vec<Vec<String>> = g.keys().filter_map(|m| cycle_from(&g, m)).collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:?}");
}

#[test]
fn command_files_import_no_sibling_command() {
    let c = load();
    let dir = c.src.join("commands");
    let commands: Vec<String> = c
        .files
        .iter()
        .filter(|(p, _)| p.parent() == Some(dir.as_path()) && !p.ends_with("mod.rs"))
        .map(|(p, _)| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(commands.len() >= 7, "{commands:?}");
    for (p, code) in c.files.iter().filter(|(p, _)| p.parent() == Some(dir.as_path())) {
        if p.ends_with("mod.rs") {
            continue;
        }
        for other in &commands {
            for needle in [format!("super::{other}::"), format!("commands::{other}::")] {
                assert!(
                    !code.contains(&needle),
                    "{} uses {needle}: shared steps belong in commands/mod.rs or a pure module",
                    p.display()
                );
            }
        }
    }
}

#[test]
fn each_external_crate_is_used_by_its_one_module() {
    let c = load();
    let owners = [
        ("clap", &["cli", "main"][..]),
        ("polars", &["data"]),
        ("candle_core", &["model"]),
        ("candle_nn", &["model"]),
        ("bolt_kernels", &["model"]),
        ("hf_hub", &["model"]),
        ("git2", &["deploy"]),
        ("lettre", &["notify"]),
        ("plotters", &["plot"]),
        ("comfy_table", &["output"]),
        ("indicatif", &["output"]),
        ("tracing_subscriber", &["logging"]),
    ];
    for (krate, allowed) in owners {
        for (p, code) in &c.files {
            let m = top_module(&c.src, p);
            let uses = code.contains(&format!("{krate}::")) || code.contains(&format!("use {krate}"));
            assert!(
                !uses || allowed.contains(&m.as_str()),
                "{} (module {m}) uses {krate}, which belongs to {allowed:?}",
                p.display()
            );
        }
    }
}

/// Functions whose body holds more than `limit` lines of code between the line that opens it
/// and the line that closes it (blank and comment lines not counted, as clippy's
/// `too_many_lines` counts), outside test modules: (file, line, name, lines).
fn long_functions(c: &Crate, limit: usize) -> Vec<(String, usize, String, usize)> {
    let mut out = Vec::new();
    for (p, code) in &c.files {
        if p.ends_with("tests.rs") {
            continue;
        }
        let lines: Vec<&str> = code.lines().collect();
        // Test modules sit at the end of a file.
        let end = lines
            .iter()
            .position(|l| l.trim() == "#[cfg(test)]")
            .unwrap_or(lines.len());
        let mut i = 0;
        while i < end {
            let Some(name) = fn_name(lines[i]) else {
                i += 1;
                continue;
            };
            let (mut depth, mut opened, mut counted, mut j) = (0i64, false, 0, i);
            while j < end {
                let l = lines[j];
                if opened && !l.trim().is_empty() {
                    counted += 1;
                }
                for ch in l.chars() {
                    match ch {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if opened && depth == 0 {
                    // The closing line is not body.
                    counted -= usize::from(j > i && !l.trim().is_empty());
                    break;
                }
                if !opened && l.trim_end().ends_with(';') {
                    break;
                }
                j += 1;
            }
            if counted > limit {
                out.push((p.display().to_string(), i + 1, name, counted));
            }
            i += 1;
        }
    }
    out
}

/// The name of the function a line declares, if it declares one.
fn fn_name(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let after = rest.strip_prefix("fn ")?;
    Some(
        after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect(),
    )
}

#[test]
fn no_production_function_is_over_100_lines() {
    let c = load();
    let long = long_functions(&c, 100);
    assert!(long.is_empty(), "functions over 100 lines: {long:?}");
    // The check sees functions: a lower limit finds the longest ones.
    assert!(!long_functions(&c, 60).is_empty());
}
