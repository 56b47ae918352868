//! Keeps `docs/TUTORIAL.md` true: every command it shows runs, and prints what the
//! tutorial says it prints.
//!
//! The convention (also written at the top of the tutorial, in an HTML comment):
//! inside a ```` ```text ```` block, a line `$ cargo run --release -- ARGS` is a
//! command, and the lines after it, up to the next command or the end of the
//! block, are its expected standard output. A line `...` marks left-out output.
//! Expected lines must appear in the real output in order; a decimal number may
//! differ by at most one unit in its last printed digit (`0.626839` by 1e-6,
//! `0.9416` by 1e-4: a rounding difference, nothing more), times (`0.061s`) and
//! the thread count (`2 threads`) may be anything.
//!
//! The engine's numbers (every command but `explain`, which computes in f64)
//! are the same on every machine whose build fuses multiply-add: each GEMM
//! element is summed in one fixed order with one FMA per term, whatever the
//! SIMD width (checked with AVX-512 and AVX2 builds). A build without FMA
//! (`-C target-cpu=x86-64`) rounds every product separately and trains to
//! slightly different numbers; there the engine's numbers may differ by
//! [`NO_FMA_TOLERANCE`] instead. A block right after [`SKIP`]
//! is not run (its commands are counted and printed as skipped).
//!
//! The commands run in the tutorial's order (`evaluate` needs the model that
//! `train --save` wrote) in a fresh temporary directory per test run, whose
//! `data` entry points at the crate's `data/`, so parallel runs never collide
//! and the repository gets no stray files.

use std::path::{Path, PathBuf};
use std::process::Command;

const TUTORIAL: &str = "docs/TUTORIAL.md";
const PREFIX: &str = "$ cargo run --release -- ";
const SKIP: &str = "<!-- tutorial-test: skip (slow) -->";
/// Whether this build fuses multiply-add (x86-64 with FMA, or aarch64): the
/// library's one definition, which every kernel uses.
const FUSED: bool = simdnet::simd::FUSED_MULTIPLY_ADD;
/// How far the engine's numbers may be from the tutorial's in a build without FMA.
const NO_FMA_TOLERANCE: f64 = 0.002;

/// How far a decimal number in the tutorial may be from the real one: one unit
/// in its last printed digit (with a little room for the parsing of both);
/// `engine`: the number comes from the f32 engine (see the module docs).
fn tolerance(expected: &str, engine: bool) -> f64 {
    let decimals = expected.split_once('.').map_or(0, |(_, d)| d.len());
    let digit = 10f64.powi(-(decimals as i32)) * (1.0 + 1e-9);
    if engine && !FUSED {
        digit.max(NO_FMA_TOLERANCE)
    } else {
        digit
    }
}

/// One command of the tutorial and the output it shows.
#[derive(Debug)]
struct Example {
    /// 1-based line of the command in the tutorial.
    line: usize,
    args: Vec<String>,
    /// The output lines shown, with their 1-based line numbers.
    expected: Vec<(usize, String)>,
    skip: bool,
}

fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tutorial() -> String {
    std::fs::read_to_string(crate_root().join(TUTORIAL)).expect("read docs/TUTORIAL.md")
}

/// Finds every command in the ```text blocks of `doc`.
fn parse(doc: &str) -> Vec<Example> {
    let mut examples: Vec<Example> = Vec::new();
    let mut in_fence = false;
    let mut is_text = false;
    let mut skip = false;
    let mut in_example = false;
    let mut prev_nonblank = "";
    for (i, line) in doc.lines().enumerate() {
        let n = i + 1;
        if line.trim_start().starts_with("```") {
            if in_fence {
                in_fence = false;
            } else {
                in_fence = true;
                is_text = line.trim() == "```text";
                skip = prev_nonblank.trim() == SKIP;
                in_example = false;
            }
        } else if in_fence && is_text {
            if let Some(rest) = line.strip_prefix(PREFIX) {
                examples.push(Example {
                    line: n,
                    args: shell_words(rest).unwrap_or_else(|e| panic!("{TUTORIAL}:{n}: {e}")),
                    expected: Vec::new(),
                    skip,
                });
                in_example = true;
            } else if line.starts_with("$ ") {
                panic!("{TUTORIAL}:{n}: a command must start with `{PREFIX}`: {line}");
            } else if in_example {
                examples.last_mut().unwrap().expected.push((n, line.to_string()));
            }
        }
        if !line.trim().is_empty() {
            prev_nonblank = line;
        }
    }
    assert!(!in_fence, "{TUTORIAL}: a code block is not closed");
    examples
}

/// Splits a command line into words like a shell, for the little the tutorial
/// uses: spaces separate words, '...' and "..." group (`--layers ""` is one empty
/// word). Anything else a shell would interpret is refused.
fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None if "|&;<>$`\\*?(){}".contains(c) => {
                return Err(format!("unsupported shell syntax '{c}' in: {s}"))
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(format!("unclosed quote in: {s}"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A piece of a line: a number (`-0.25`, `784`) or the text between numbers.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Num(&'a str),
    Text(&'a str),
}

fn tokens(line: &str) -> Vec<Token<'_>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut text_start) = (0, 0);
    while i < b.len() {
        let sign = b[i] == b'-'
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        if b[i].is_ascii_digit() || sign {
            if text_start < i {
                out.push(Token::Text(&line[text_start..i]));
            }
            let start = i;
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push(Token::Num(&line[start..i]));
            text_start = i;
        } else {
            i += 1;
        }
    }
    if text_start < b.len() {
        out.push(Token::Text(&line[text_start..]));
    }
    out
}

/// Whether the real output line `actual` says what the tutorial's line `expected` says.
/// `engine`: the line is the engine's output, not `explain`'s (see [`tolerance`]).
fn line_matches(expected: &str, actual: &str, engine: bool) -> bool {
    let (e, a) = (tokens(expected.trim_end()), tokens(actual.trim_end()));
    if e.len() != a.len() {
        return false;
    }
    for (k, (te, ta)) in e.iter().zip(&a).enumerate() {
        match (te, ta) {
            (Token::Text(x), Token::Text(y)) if x == y => {}
            (Token::Num(x), Token::Num(y)) => {
                // A time (`0.061s`) or the thread count (`2 threads`): any number.
                let anything = match e.get(k + 1) {
                    Some(Token::Text(next)) => {
                        next.starts_with(" threads")
                            || (next.starts_with('s')
                                && !next[1..].starts_with(|c: char| c.is_alphanumeric()))
                    }
                    _ => false,
                };
                if anything {
                    continue;
                }
                if x.contains('.') {
                    let close = y.contains('.')
                        && match (x.parse::<f64>(), y.parse::<f64>()) {
                            (Ok(xv), Ok(yv)) => (xv - yv).abs() <= tolerance(x, engine),
                            _ => false,
                        };
                    if !close {
                        return false;
                    }
                } else if x != y {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// Checks that every shown line appears in `stdout`, in order; returns what is wrong.
fn check_output(ex: &Example, stdout: &str) -> Result<(), String> {
    let actual: Vec<&str> = stdout.lines().collect();
    let mut pos = 0;
    for (n, want) in &ex.expected {
        if want.trim().is_empty() || want.trim() == "..." {
            continue;
        }
        let engine = ex.args.first().is_none_or(|c| c != "explain");
        match (pos..actual.len()).find(|&j| line_matches(want, actual[j], engine)) {
            Some(j) => pos = j + 1,
            None => {
                return Err(format!(
                    "{TUTORIAL}:{n}: this line of the output of `{}` (line {}) is not in the real \
                     output{}:\n  {want}\nreal output:\n{stdout}",
                    ex.args.join(" "),
                    ex.line,
                    if pos > 0 {
                        " after the lines matched before it"
                    } else {
                        ""
                    },
                ))
            }
        }
    }
    Ok(())
}

/// A fresh directory for one test run, with `data` pointing at the crate's
/// `data/`; removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> WorkDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("simdnet-tutorial-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        let data = crate_root().join("data");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&data, dir.join("data")).expect("link data/");
        #[cfg(not(unix))]
        {
            std::fs::create_dir(dir.join("data")).expect("create data/");
            for entry in std::fs::read_dir(&data).expect("read data/") {
                let entry = entry.expect("read data/");
                std::fs::copy(entry.path(), dir.join("data").join(entry.file_name())).expect("copy data/");
            }
        }
        WorkDir(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // Removes the link to data/, not the files it points at.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn tutorial_commands_run_and_print_what_the_tutorial_says() {
    let examples = parse(&tutorial());
    // The practicals themselves must never be skipped.
    for cmd in ["inspect", "train", "evaluate", "predict", "explain"] {
        assert!(
            examples
                .iter()
                .any(|e| !e.skip && e.args.first().is_some_and(|a| a == cmd)),
            "{TUTORIAL}: no `{cmd}` command is run by this test"
        );
    }
    let workshop = ["train", "--save", "workshop.simdnet"];
    assert!(
        examples.iter().any(|e| !e.skip && e.args == workshop),
        "{TUTORIAL}: `{}` must be shown and not skipped",
        workshop.join(" ")
    );

    let dir = WorkDir::new();
    let (mut ran, mut skipped) = (0, Vec::new());
    for ex in &examples {
        if ex.skip {
            skipped.push(format!("line {}: {}", ex.line, ex.args.join(" ")));
            continue;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_simdnet"))
            .args(&ex.args)
            .current_dir(&dir.0)
            .output()
            .expect("run simdnet");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("panicked"),
            "{TUTORIAL}:{}: `{}` failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
            ex.line,
            ex.args.join(" "),
            out.status
        );
        if let Err(msg) = check_output(ex, &stdout) {
            panic!("{msg}");
        }
        ran += 1;
    }
    println!(
        "{TUTORIAL}: ran {ran} commands, skipped {} (slow):",
        skipped.len()
    );
    for s in &skipped {
        println!("  skipped {s}");
    }
    assert!(ran > 0);
}

/// Every row of the results table that names a `train` command states the test
/// accuracy that the command's block shows (and the blocks are checked above).
#[test]
fn results_table_agrees_with_the_commands() {
    let doc = tutorial();
    let examples = parse(&doc);
    let shown_accuracy = |args: &[String]| -> Option<String> {
        let ex = examples.iter().find(|e| {
            let mut a = e.args.clone();
            if let Some(k) = a.iter().position(|w| w == "--save") {
                a.drain(k..(k + 2).min(a.len()));
            }
            a == args
        })?;
        ex.expected
            .iter()
            .find_map(|(_, l)| l.strip_prefix("Test accuracy: ").map(str::to_string))
    };
    let mut rows = 0;
    let start = doc
        .lines()
        .position(|l| l.starts_with("### The results table"))
        .expect("a section `### The results table`");
    // The table: the first run of `|` lines after the heading.
    let table = doc
        .lines()
        .enumerate()
        .skip(start)
        .skip_while(|(_, l)| !l.starts_with('|'))
        .take_while(|(_, l)| l.starts_with('|'));
    for (i, line) in table {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(k) = cells
            .iter()
            .position(|c| c.starts_with("`train") && c.ends_with('`'))
        else {
            continue;
        };
        let args = shell_words(cells[k].trim_matches('`')).unwrap();
        let table = cells.get(k + 1).copied().unwrap_or("");
        let shown = shown_accuracy(&args)
            .unwrap_or_else(|| panic!("{TUTORIAL}:{}: no block shows `{}`", i + 1, args.join(" ")));
        assert_eq!(
            table,
            shown,
            "{TUTORIAL}:{}: the table says {table} for `{}`, its block says {shown}",
            i + 1,
            args.join(" ")
        );
        rows += 1;
    }
    assert!(
        rows >= 10,
        "{TUTORIAL}: found only {rows} rows in the results table"
    );
}

/// Every relative link, and every `src/...`-like path in backticks, names a real file.
#[test]
fn tutorial_links_and_paths_exist() {
    let doc = tutorial();
    let docs_dir = crate_root().join(TUTORIAL).parent().unwrap().to_path_buf();
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
                missing.push(format!("line {}: link {target}", i + 1));
            }
        }
        for span in line.split('`').skip(1).step_by(2) {
            let is_path = ["src/", "tests/", "examples/", "benches/", "data/", "docs/"]
                .iter()
                .any(|p| span.starts_with(p));
            if is_path && !span.contains(' ') && !span.contains("...") && !crate_root().join(span).exists() {
                missing.push(format!("line {}: path `{span}`", i + 1));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{TUTORIAL}: missing files:\n{}",
        missing.join("\n")
    );
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
    // The engine's numbers: one unit of the last digit where multiply-add is
    // fused, NO_FMA_TOLERANCE without.
    assert_eq!(
        line_matches("Test accuracy: 0.9432", "Test accuracy: 0.9429", true),
        !FUSED
    );
    assert!(!line_matches(
        "Test accuracy: 0.9432",
        "Test accuracy: 0.9400",
        true
    ));
    assert!(!line_matches("Epoch 1/4 - 0.061s", "Epoch 2/4 - 0.061s", false));
    let ex = Example {
        line: 1,
        args: vec!["x".into()],
        expected: vec![(2, "a 1".into()), (3, "...".into()), (4, "c 3".into())],
        skip: false,
    };
    assert!(check_output(&ex, "a 1\nb 2\nc 3\n").is_ok());
    assert!(check_output(&ex, "c 3\na 1\n").is_err());
}
