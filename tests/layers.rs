//! The layering `docs/ARCHITECTURE.md` describes, checked on the source text: the library never
//! parses arguments or prints (only `src/cli/` and `src/main.rs` do), and no module below the
//! pipeline imports the pipeline, the server or the CLI.

use std::path::{Path, PathBuf};

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

/// Every library source file (relative path, code lines without comments).
fn library() -> Vec<(String, Vec<String>)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter_map(|p| {
            let rel = p
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            if rel.starts_with("cli/") || rel == "main.rs" {
                return None;
            }
            let code = std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with("//"))
                .map(str::to_string)
                .collect();
            Some((rel, code))
        })
        .collect()
}

#[test]
fn the_library_neither_parses_arguments_nor_prints() {
    let banned = [
        "clap::",
        "println!",
        "eprintln!",
        "print!(",
        "eprint!(",
        "indicatif",
    ];
    let mut found = Vec::new();
    for (file, lines) in library() {
        for (i, line) in lines.iter().enumerate() {
            if let Some(b) = banned.iter().find(|b| line.contains(*b)) {
                found.push(format!("src/{file}: {b} in {line:?} (code line {})", i + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "CLI work outside src/cli/:\n{}",
        found.join("\n")
    );
}

#[test]
fn nothing_below_the_pipeline_imports_the_pipeline_the_server_or_the_cli() {
    let above = ["pipeline/", "server/"];
    let mut found = Vec::new();
    for (file, lines) in library() {
        if above.iter().any(|a| file.starts_with(a)) {
            continue;
        }
        for line in &lines {
            // The config composes every section's type, `[server]` included: section types are
            // leaves that import nothing of their module.
            let section_type = file == "config.rs" && line.contains("crate::server::config::");
            for m in ["crate::pipeline", "crate::server", "crate::cli"] {
                if line.contains(m) && !section_type {
                    found.push(format!("src/{file}: {line}"));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "imports that run back up:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_pipeline_does_not_import_the_server() {
    let mut found = Vec::new();
    for (file, lines) in library() {
        if file.starts_with("pipeline/") {
            found.extend(
                lines
                    .iter()
                    .filter(|l| l.contains("crate::server"))
                    .map(|l| format!("src/{file}: {l}")),
            );
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
