//! Keeps docs/architecture.md true: the rules of the module map, checked from the
//! source text. The protocol core (src/smimp/) is pure — no runtime, sockets, files,
//! database or HTTP — and reaches no other module of the crate.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Forbidden in the pure core: I/O, async runtimes, networking, databases, HTTP, clocks.
const IMPURE: &[&str] = &[
    "tokio",
    "std::fs",
    "std::net",
    "std::io::stdin",
    "std::process",
    "sqlx",
    "reqwest",
    "hyper",
    "axum",
    "rustls",
    "SystemTime::now",
    "Instant::now",
    "OsRng",
    "thread_rng",
];

#[test]
fn the_protocol_core_and_mime_are_pure_and_depend_on_nothing_above_them() {
    let mut files = rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/smimp"));
    files.extend(rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/mime")));
    assert!(files.len() >= 10, "expected the protocol core's modules, found {files:?}");
    let mut violations = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        // Unit tests may use the OS random source; production code takes it as a parameter.
        let production = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in production.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in IMPURE {
                if code.contains(word) {
                    violations.push(format!("{}:{}: uses {word}", file.display(), number + 1));
                }
            }
            if let Some(path) = code.trim().strip_prefix("use crate::") {
                if !path.starts_with("smimp") && !path.starts_with("mime") {
                    violations.push(format!("{}:{}: reaches crate::{path}", file.display(), number + 1));
                }
            }
        }
    }
    assert!(violations.is_empty(), "the protocol core must stay pure:\n{}", violations.join("\n"));
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let missing: Vec<_> = rust_files(&root)
        .into_iter()
        .filter(|f| !std::fs::read_to_string(f).expect("readable source").trim_start().starts_with("//!"))
        .collect();
    assert!(missing.is_empty(), "modules without a //! doc: {missing:?}");
}

/// The modules each part may reach with `use crate::…` (docs/architecture.md, rule 4).
fn check_reach(dir: &str, allowed: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let files = if root.is_dir() { rust_files(&root) } else { vec![root.with_extension("rs")] };
    files.iter().flat_map(|file| reach_of(file, allowed)).collect()
}

/// The `crate::…` paths of one file that leave `allowed`.
fn reach_of(file: &Path, allowed: &[&str]) -> Vec<String> {
    let mut violations = Vec::new();
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        for (at, _) in code.match_indices("crate::") {
            let module: String =
                code[at + "crate::".len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !allowed.contains(&module.as_str()) {
                violations.push(format!("{}:{}: reaches crate::{module}", file.display(), number + 1));
            }
        }
    }
    violations
}

/// What each part of the crate may reach with `crate::…` (docs/architecture.md's map):
/// leaves reach nothing, the protocol core only itself, the front-ends only the shared
/// listener, the SMIMP client never the gateway's store, nothing below the gateway the
/// gateway, and only the demo composes the gateway with the server.
const MAP: &[(&str, &[&str])] = &[
    ("clock", &[]),
    ("config_file", &[]),
    ("notify", &[]),
    ("sqlite", &[]),
    ("tls", &[]),
    ("listen", &[]),
    ("discovery", &["tls"]),
    ("smimp", &[]),
    ("mime", &["smimp"]),
    ("keystore", &["smimp"]),
    ("store", &["smimp", "sqlite"]),
    ("smtp", &["listen"]),
    ("imap", &["listen"]),
    ("client", &["discovery", "keystore", "smimp"]),
    (
        "backend",
        &["client", "clock", "discovery", "imap", "keystore", "listen", "mime", "smimp", "smtp", "store", "tls"],
    ),
    ("server", &["config_file", "discovery", "listen", "smimp", "sqlite", "tls"]),
    (
        "gateway",
        &[
            "backend",
            "client",
            "clock",
            "config_file",
            "discovery",
            "imap",
            "key_upkeep",
            "keystore",
            "listen",
            "smimp",
            "smtp",
            "store",
            "tls",
        ],
    ),
];

#[test]
fn every_part_reaches_only_what_the_module_map_allows() {
    let mut violations = Vec::new();
    for (part, allowed) in MAP {
        let mut allowed = allowed.to_vec();
        allowed.push(part);
        violations.extend(check_reach(part, &allowed));
    }
    assert!(violations.is_empty(), "dependency rule broken:\n{}", violations.join("\n"));
}

/// The map itself can fail: a `client/` file that reached the gateway's store would be
/// reported (the check reads the same `crate::` paths as above).
#[test]
fn a_client_reaching_the_store_is_reported() {
    let allowed = MAP.iter().find(|(part, _)| *part == "client").map(|(_, allowed)| *allowed).unwrap_or_default();
    assert!(!allowed.contains(&"store"), "client/ must not be allowed to reach store/");
    let dir = std::env::temp_dir().join(format!("architecture-map-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("client.rs");
    std::fs::write(&file, "use crate::store::GatewayStore;\nuse crate::smimp::address::Address;\n").unwrap();
    let found = reach_of(&file, &["client", "smimp"]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("reaches crate::store"), "{found:?}");
}

/// Every top-level part of src/ is in the map (or is the composition root: `demo`,
/// `main`, `lib`), so a new module cannot slip past the rules.
#[test]
fn the_map_covers_every_part_of_the_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut unmapped = Vec::new();
    for entry in std::fs::read_dir(&root).expect("src/") {
        let path = entry.expect("directory entry").path();
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        if !["demo", "main", "lib"].contains(&name.as_str()) && !MAP.iter().any(|(part, _)| *part == name) {
            unmapped.push(name);
        }
    }
    assert!(unmapped.is_empty(), "parts of src/ missing from the module map: {unmapped:?}");
}

/// The functions of a file longer than `limit` lines, tests excluded (a file's
/// `#[cfg(test)]` part, and whole test modules named `*tests.rs`). rustfmt's layout
/// makes a function end at the first `}` alone on a line at its own indentation.
fn long_functions(file: &Path, limit: usize) -> Vec<String> {
    if file.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("tests.rs")) {
        return Vec::new();
    }
    let text = std::fs::read_to_string(file).expect("readable source");
    let production = text.split("#[cfg(test)]").next().unwrap_or_default();
    let lines: Vec<&str> = production.lines().collect();
    let mut long = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let mut signature = body;
        for prefix in ["pub(crate) ", "pub(super) ", "pub ", "const ", "async ", "unsafe "] {
            signature = signature.strip_prefix(prefix).unwrap_or(signature);
        }
        if !signature.starts_with("fn ") {
            continue;
        }
        let Some(open) = lines[start..].iter().position(|l| l.trim_end().ends_with('{') || l.trim_end().ends_with(';'))
        else {
            continue;
        };
        if lines[start + open].trim_end().ends_with(';') {
            continue;
        }
        let close = format!("{}}}", &line[..line.len() - body.len()]);
        if let Some(end) = lines[start..].iter().position(|l| *l == close) {
            if end + 1 > limit {
                long.push(format!("{}:{}: {} lines", file.display(), start + 1, end + 1));
            }
        }
    }
    long
}

#[test]
fn no_function_outside_tests_is_longer_than_80_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let long: Vec<String> = rust_files(&root).iter().flat_map(|f| long_functions(f, 80)).collect();
    assert!(long.is_empty(), "functions over 80 lines:\n{}", long.join("\n"));
}

#[test]
fn the_size_lint_is_never_silenced() {
    let mut files = rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    files.extend(rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")));
    let silenced: Vec<String> = files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(f).expect("readable source").contains(concat!("clippy::", "too_many_lines"))
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(silenced.is_empty(), "clippy's too_many_lines is silenced in {silenced:?}");
}

/// The checker itself: a function one line over the limit is found, one at it is not.
#[test]
fn the_length_check_can_fail() {
    let dir = std::env::temp_dir().join(format!("architecture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sample.rs");
    let body = |n: usize| (0..n).map(|i| format!("    let _x{i} = {i};\n")).collect::<String>();
    std::fs::write(&file, format!("pub fn long() {{\n{}}}\n\nfn fits() {{\n{}}}\n", body(79), body(78))).unwrap();
    let found = long_functions(&file, 80);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("sample.rs:1: 81 lines"), "{found:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The entries of the module map in docs/architecture.md: the first code block after
/// `## Module map`, an entry a line whose name starts before the description column (24),
/// nested by two spaces a level; continuation lines start at the column.
fn documented_tree() -> Vec<String> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
        .expect("docs/architecture.md");
    let section = doc.split("## Module map").nth(1).expect("a `## Module map` section");
    let block = section.split("```").nth(1).expect("a code block in the module map");
    let mut parents: Vec<String> = Vec::new();
    let mut entries = Vec::new();
    for line in block.lines().filter(|l| !l.trim().is_empty()) {
        let indent = line.len() - line.trim_start().len();
        if indent >= 24 {
            continue;
        }
        let name = line.split_whitespace().next().unwrap_or_default();
        parents.truncate(indent / 2);
        let path = format!("{}{name}", parents.concat());
        if name.ends_with('/') {
            parents.push(name.to_string());
        }
        entries.push(path);
    }
    entries
}

/// Every folder and .rs file below `dir`, as paths like `src/smimp/wire/` and `src/lib.rs`.
fn source_tree(dir: &Path, prefix: &str) -> Vec<String> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).expect("source folder") {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if path.is_dir() {
            let folder = format!("{prefix}{name}/");
            entries.push(folder.clone());
            entries.extend(source_tree(&path, &folder));
        } else if name.ends_with(".rs") {
            entries.push(format!("{prefix}{name}"));
        }
    }
    entries
}

#[test]
fn the_documented_module_map_names_exactly_the_files_of_src() {
    let mut documented = documented_tree();
    let mut actual = source_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), "src/");
    actual.push("src/".into());
    documented.sort();
    actual.sort();
    let missing: Vec<_> = actual.iter().filter(|e| !documented.contains(e)).collect();
    let stale: Vec<_> = documented.iter().filter(|e| !actual.contains(e)).collect();
    assert!(missing.is_empty() && stale.is_empty(), "docs/architecture.md's map lacks {missing:?} and names {stale:?}");
}

/// The IMAP front-end reaches nothing else in the crate (the backend implements its
/// `MailStore` trait from outside) and uses only the crates its module doc names.
#[test]
fn the_imap_front_end_stands_alone() {
    let violations = check_reach("imap", &["imap", "listen"]);
    assert!(violations.is_empty(), "dependency rule broken:\n{}", violations.join("\n"));
    const CRATES: &[&str] = &[
        "std",
        "core",
        "alloc",
        "tokio",
        "tokio_rustls",
        "rustls",
        "imap_codec",
        "mail_parser",
        "tracing",
        "thiserror",
        "zeroize",
        "super",
        "crate",
        "self",
    ];
    let files = rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src/imap"));
    assert!(files.len() >= 8, "expected the IMAP front-end's modules, found {files:?}");
    let mut foreign = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        for (number, line) in text.lines().enumerate() {
            // Top-level imports only: a `use X as Y;` inside a function names what is imported already.
            let Some(path) = line.strip_prefix("use ") else { continue };
            let root: String = path.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !CRATES.contains(&root.as_str()) {
                foreign.push(format!("{}:{}: uses {root}", file.display(), number + 1));
            }
        }
    }
    assert!(foreign.is_empty(), "src/imap uses crates it must not:\n{}", foreign.join("\n"));
}
