//! The floors of the crate: a module may use only modules on its own floor or
//! below. This test reads every source file under `src/` and fails on any
//! `crate::X` in code (not comments) that names a module on a higher floor.
//! (`super::` stays inside a top-level module, so it cannot climb a floor.)
//!
//! ```text
//! floor 1  matrix, error, geometry, simd, activation, primitives
//!          trace, interrupt, safe_file, safe_read
//! floor 2  gemm, kernels                            the speed
//! floor 3  data, nn, teach                          data, engine, lesson
//! floor 4  profile, plot                            bench, tune, reports, charts
//! floor 5  cli (and main.rs)                        the command line
//! ```

mod common;

use std::fs;
use std::path::{Path, PathBuf};

const FLOORS: &[(&str, u8)] = &[
    ("matrix", 1),
    ("error", 1),
    ("geometry", 1),
    ("simd", 1),
    ("activation", 1),
    ("trace", 1),
    ("interrupt", 1),
    ("huge_pages", 1),
    ("safe_file", 1),
    ("safe_read", 1),
    ("gemm", 2),
    ("kernels", 2),
    ("data", 3),
    ("nn", 3),
    ("teach", 3),
    ("profile", 4),
    ("plot", 4),
    ("cli", 5),
];

fn floor(module: &str) -> Option<u8> {
    FLOORS.iter().find(|(m, _)| *m == module).map(|&(_, f)| f)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`src/gemm/pack.rs` -> `gemm`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::name` in the code of `text` (comments skipped).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((n + 1, name));
            }
            rest = after;
        }
    }
    out
}

/// Imports running to a higher floor, as `file:line: module (floor f) uses X (floor g)`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        let module = module_of(src, &file);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = floor(&module) else {
            bad.push(format!(
                "{}: module '{module}' has no floor: add it to FLOORS in tests/architecture.rs",
                file.display()
            ));
            continue;
        };
        let text = fs::read_to_string(&file).unwrap();
        for (line, used) in crate_paths(&text) {
            match floor(&used) {
                Some(f) if f > own => bad.push(format!(
                    "{}:{line}: {module} (floor {own}) uses crate::{used} (floor {f})",
                    file.display()
                )),
                _ => {}
            }
        }
    }
    bad
}

#[test]
fn no_module_imports_a_higher_floor() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(bad.is_empty(), "imports that run upwards:\n{}", bad.join("\n"));
}

#[test]
fn every_top_level_module_has_a_floor() {
    let lib = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line
            .trim()
            .strip_prefix("pub mod ")
            .or(line.trim().strip_prefix("mod "))
        {
            let name = name.trim_end_matches(';');
            assert!(
                floor(name).is_some(),
                "src/lib.rs declares '{name}' with no floor in tests/architecture.rs"
            );
        }
    }
}

#[test]
fn the_checker_sees_an_upward_import() {
    // A lower floor naming a higher one must be reported.
    let dir = common::scratch_root().join(format!("simdnet-arch-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("gemm")).unwrap();
    fs::write(dir.join("gemm/mod.rs"), "use crate::nn::Activation; // upward\n").unwrap();
    fs::write(dir.join("nn.rs"), "use crate::gemm::gemm;\n").unwrap();
    let bad = violations(&dir);
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].contains("gemm (floor 2) uses crate::nn (floor 3)"),
        "{}",
        bad[0]
    );
}

/// The integration tests write their scratch files under Cargo's
/// `CARGO_TARGET_TMPDIR` (`common::scratch_root`, emptied at each run of a
/// test binary), never in the system's temporary folder, where a run of the
/// suite used to leave about 85 MB behind.
#[test]
fn integration_tests_keep_their_files_out_of_the_system_temporary_folder() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files = Vec::new();
    rust_files(&tests, &mut files);
    assert!(files.len() > 10, "found only {} test files", files.len());
    let banned = ["std::env::", "temp_dir()"].concat();
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| fs::read_to_string(f).unwrap().contains(&banned))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "use common::scratch_root() instead of the system's temporary folder in {offenders:?}"
    );
}
