//! Keeps the docs true: every command that `docs/TUTORIAL.md` and `README.md`
//! show in a ```` ```text ```` block runs, and prints what the doc says it
//! prints. The convention is written in `tests/doc_check/mod.rs` and at the top
//! of each doc.
//!
//! The commands run in each doc's order (`evaluate` needs the model that
//! `train --save` wrote), the tutorial's first, in one fresh temporary
//! directory whose `data` and `docs` entries point at the crate's, so parallel
//! runs never collide and the repository gets no stray files. A command with
//! the same arguments as one already run (the README repeats the tutorial's)
//! is not run again: its output is compared with the doc's lines once more.
//!
//! `SIMDNET_DOCS_UPDATE=1 cargo test --release --test tutorial` regenerates
//! the docs' shown output instead: where the text of a shown line matches, its
//! numbers (accuracies, losses, times) are rewritten from this run. Review the
//! change with `git diff`, then update the `measured` marks above timed
//! output and the prose figures that `tests/doc_numbers.rs` reports.

mod common;

mod doc_check;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use doc_check::{
    check_output, crate_root, line_matches, parse, read_doc, shell_words, tokens, updating, Example, Token,
    FUSED, RUN_DOCS, UPDATE,
};

const TUTORIAL: &str = "docs/TUTORIAL.md";

/// A fresh directory for one test run, with `data` and `docs` pointing at the crate's
/// folders; removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> WorkDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = common::scratch_root().join(format!("simdnet-tutorial-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        for folder in ["data", "docs"] {
            let from = crate_root().join(folder);
            #[cfg(unix)]
            std::os::unix::fs::symlink(&from, dir.join(folder)).expect("link a folder of the crate");
            #[cfg(not(unix))]
            copy_dir(&from, &dir.join(folder));
        }
        WorkDir(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // Removes the links, not the files they point at.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(not(unix))]
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create a folder");
    for entry in std::fs::read_dir(from).expect("read a folder") {
        let entry = entry.expect("read a folder");
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy a file");
        }
    }
}

#[test]
fn doc_commands_run_and_print_what_the_docs_say() {
    let tutorial = parse(TUTORIAL, &read_doc(TUTORIAL));
    // The practicals themselves must never be skipped.
    for cmd in ["inspect", "train", "evaluate", "predict", "explain"] {
        assert!(
            tutorial
                .iter()
                .any(|e| !e.skip && e.args.first().is_some_and(|a| a == cmd)),
            "{TUTORIAL}: no `{cmd}` command is run by this test"
        );
    }
    let workshop = ["train", "--save", "workshop.simdnet"];
    assert!(
        tutorial.iter().any(|e| !e.skip && e.args == workshop),
        "{TUTORIAL}: `{}` must be shown and not skipped",
        workshop.join(" ")
    );

    let dir = WorkDir::new();
    let mut outputs: HashMap<Vec<String>, String> = HashMap::new();
    let mut wrong = Vec::new();
    for file in RUN_DOCS {
        let doc = read_doc(file);
        let mut lines: Vec<String> = doc.lines().map(str::to_string).collect();
        let mut rewritten = 0;
        let examples = parse(file, &doc);
        let (mut ran, mut reused, mut skipped) = (0, 0, Vec::new());
        for ex in &examples {
            if ex.skip {
                skipped.push(format!("line {}: {}", ex.line, ex.args.join(" ")));
                continue;
            }
            let stdout = match outputs.get(&ex.args) {
                Some(stdout) => {
                    reused += 1;
                    stdout.clone()
                }
                None => {
                    let stdout = run(ex, &dir);
                    outputs.insert(ex.args.clone(), stdout.clone());
                    ran += 1;
                    stdout
                }
            };
            match check_output(ex, &stdout) {
                Ok(matched) => {
                    for (n, real) in matched {
                        if lines[n - 1].trim_end() != real {
                            lines[n - 1] = real;
                            rewritten += 1;
                        }
                    }
                }
                Err(msg) => wrong.push(msg),
            }
        }
        println!(
            "{file}: ran {ran} commands, reused the output of {reused}, skipped {} (slow):",
            skipped.len()
        );
        for s in &skipped {
            println!("  skipped {s}");
        }
        if updating() && rewritten > 0 {
            let mut text = lines.join("\n");
            text.push('\n');
            std::fs::write(crate_root().join(file), text).expect("rewrite the doc");
            println!("{UPDATE}: rewrote {rewritten} shown lines of {file} from this run");
        }
    }
    assert!(
        wrong.is_empty(),
        "{} shown outputs are not what the commands print:\n\n{}",
        wrong.len(),
        wrong.join("\n\n")
    );
    assert!(!outputs.is_empty());
}

/// Runs the example's command in `dir`; its standard output.
fn run(ex: &Example, dir: &WorkDir) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .args(&ex.args)
        .current_dir(&dir.0)
        .output()
        .expect("run simdnet");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "{}:{}: `{}` failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        ex.file,
        ex.line,
        ex.args.join(" "),
        out.status
    );
    stdout
}

/// Every relative link, and every `src/...`-like path in backticks, names a
/// real file, in the README and every checked doc.
#[test]
fn doc_links_and_paths_exist() {
    let mut missing = Vec::new();
    for file in RUN_DOCS.iter().chain(&["docs/FUZZING.md", "docs/PERFORMANCE.md"]) {
        missing.extend(missing_links(file));
    }
    assert!(missing.is_empty(), "missing files:\n{}", missing.join("\n"));
}

/// The links and paths of `file` that name no file.
fn missing_links(file: &str) -> Vec<String> {
    let doc = read_doc(file);
    let docs_dir = crate_root().join(file).parent().unwrap().to_path_buf();
    let mut missing = Vec::new();
    let mut in_fence = false;
    for (i, line) in doc.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut rest = line;
        while let Some(k) = rest.find("](") {
            let after = &rest[k + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = &after[..end];
            rest = &after[end..];
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let path = target.split('#').next().unwrap();
            if !docs_dir.join(path).exists() {
                missing.push(format!("{file}:{}: link {target}", i + 1));
            }
        }
        for span in line.split('`').skip(1).step_by(2) {
            let is_path = ["src/", "tests/", "examples/", "benches/", "data/", "docs/"]
                .iter()
                .any(|p| span.starts_with(p));
            // A segment in capitals is a placeholder: `tests/fuzz-cases/TARGET/`.
            let placeholder = span
                .split('/')
                .any(|seg| seg.len() > 1 && seg.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
            if is_path
                && !placeholder
                && !span.contains(' ')
                && !span.contains("...")
                && !crate_root().join(span).exists()
            {
                missing.push(format!("{file}:{}: path `{span}`", i + 1));
            }
        }
    }
    missing
}

#[test]
fn the_checker_itself() {
    assert_eq!(
        shell_words(r#"train --layers "" --epochs 1"#).unwrap(),
        ["train", "--layers", "", "--epochs", "1"]
    );
    assert!(shell_words("train | head").is_err());
    assert_eq!(
        tokens("x[152] = -0.25, 1e-7"),
        [
            Token::Text("x["),
            Token::Num("152"),
            Token::Text("] = "),
            Token::Num("-0.25"),
            Token::Text(", "),
            Token::Num("1"),
            Token::Text("e-"),
            Token::Num("7"),
        ]
    );
    // Decimals to one unit in their last printed digit, integers exactly, times and
    // threads anything.
    assert!(line_matches(
        "Test accuracy: 0.9416",
        "Test accuracy: 0.9417",
        false
    ));
    assert!(line_matches(
        "Test accuracy: 0.9416",
        "Test accuracy: 0.9415",
        false
    ));
    assert!(!line_matches(
        "Test accuracy: 0.9416",
        "Test accuracy: 0.9418",
        false
    ));
    assert!(line_matches("L = 0.626839", "L = 0.626840", false));
    assert!(!line_matches("L = 0.626839", "L = 0.626841", false));
    assert!(!line_matches("L = 0.626839", "L = 0.627", false));
    assert!(!line_matches("Predicted: 7", "Predicted: 1", false));
    assert!(!line_matches(
        "Test accuracy: 0.9416",
        "Test accuracy: 0.9416 (best)",
        false
    ));
    assert!(line_matches(
        "Epoch 1/4 - 0.061s - loss: 0.5813, seed 1, 2 threads",
        "Epoch 1/4 - 12.500s - loss: 0.5813, seed 1, 8 threads",
        false
    ));
    assert!(line_matches("seed 1, 2 threads", "seed 1, 1 thread", false));
    assert!(!line_matches("seed 1, 2 threads", "seed 1, 1 threat", false));
    assert!(!line_matches("seed 1, 2 threads", "seed 1, 2 threads.", false));
    // The engine's numbers: one unit of the last digit where multiply-add is
    // fused, anything without (its text still compared).
    assert_eq!(
        line_matches("Test accuracy: 0.9432", "Test accuracy: 0.9429", true),
        !FUSED
    );
    assert_eq!(
        line_matches("Test accuracy: 0.9432", "Test accuracy: 0.9400", true),
        !FUSED
    );
    assert!(!line_matches("Test accuracy: 0.9432", "Test loss: 0.9432", true));
    assert!(!line_matches("Epoch 1/4 - 0.061s", "Epoch 2/4 - 0.061s", false));
    // Shown lines: runs between `...` marks are consecutive real lines; the
    // first run starts the output and the last ends it unless a `...` says otherwise.
    let ex = |shown: &[&str]| Example {
        file: "doc.md".into(),
        line: 1,
        args: vec!["x".into()],
        expected: shown
            .iter()
            .enumerate()
            .map(|(i, l)| (i + 2, l.to_string()))
            .collect(),
        skip: false,
    };
    let out = "a 1\nb 2\nc 3\nd 4\n";
    assert!(check_output(&ex(&["a 1", "...", "c 3", "d 4"]), out).is_ok());
    assert!(check_output(&ex(&["a 1", "b 2", "c 3", "d 4"]), out).is_ok());
    assert!(check_output(&ex(&["...", "b 2", "c 3", "..."]), out).is_ok());
    assert!(check_output(&ex(&["...", "c 3", "d 4"]), out).is_ok());
    assert!(check_output(&ex(&["...", "d 4"]), out).is_ok());
    // A line left out without a mark.
    let err = check_output(&ex(&["a 1", "c 3", "..."]), out).unwrap_err();
    assert!(
        err.starts_with("doc.md:3: this line of the output of `x` (line 1) does not follow"),
        "{err}"
    );
    // The output goes on after the last shown line.
    let err = check_output(&ex(&["a 1", "...", "c 3"]), out).unwrap_err();
    assert!(
        err.starts_with("doc.md:4: this line of the output of `x` (line 1) is not the last line"),
        "{err}"
    );
    let err = check_output(&ex(&["a 1", "b 2"]), out).unwrap_err();
    assert!(
        err.starts_with("doc.md:3: this line of the output of `x` (line 1) is not the last line"),
        "{err}"
    );
    // The output starts before the first shown line.
    let err = check_output(&ex(&["b 2", "..."]), out).unwrap_err();
    assert!(
        err.starts_with("doc.md:2: this line of the output of `x` (line 1) is not the first line"),
        "{err}"
    );
    // Out of order.
    assert!(check_output(&ex(&["...", "c 3", "...", "a 1", "..."]), out).is_err());
    assert!(check_output(&ex(&["...", "b 2", "d 4", "..."]), out).is_err());
    // Trailing blank lines do not count.
    assert!(check_output(&ex(&["a 1", "...", "d 4", ""]), "a 1\nd 4\n\n").is_ok());
}
