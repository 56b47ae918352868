//! How the docs show commands and their output, shared by `tests/tutorial.rs`
//! (which runs the commands and compares their output) and
//! `tests/doc_numbers.rs` (which finds every figure that is neither compared nor
//! marked as measured).
//!
//! The convention (also written at the top of each doc, in an HTML comment):
//! inside a ```` ```text ```` block, a line `$ cargo run --release -- ARGS` is a
//! command, and the lines after it, up to the next command or the end of the
//! block, are its expected standard output. A line `...` marks left-out output;
//! everywhere else the shown lines are consecutive lines of the real output, the
//! first shown line is the output's first line and the last is its last (put a
//! `...` line first or last when the shown output starts or ends elsewhere). A
//! decimal number may differ by at most one unit in its last printed digit
//! (`0.626839` by 1e-6, `0.9416` by 1e-4: a rounding difference, nothing more);
//! times (`0.061s`) and the thread count (`2 threads`) may be anything.
//!
//! The engine's numbers (every command but `explain`, which computes in f64)
//! are the same on every machine whose build fuses multiply-add: each GEMM
//! element is summed in one fixed order with one FMA per term, whatever the
//! SIMD width (checked with AVX-512 and AVX2 builds), and every kernel that
//! sums lane by lane keeps 16 partial sums on every build
//! (`simdnet::simd::SUM_LANES`), so convolutional networks too (until
//! 2026-12-01 an 8-lane build trained LeNet-5 to other numbers, and this
//! test compared those outputs as text only there). A build without FMA
//! (`-C target-cpu=x86-64`) rounds every product separately, and training
//! carries the difference through thousands of steps further than any fixed
//! tolerance (on a Zen 3 the portable build's `sweep` gave 98.0% where the
//! docs show 98.2%; with a tolerance of 0.002 the test failed there): on such
//! a build only the text of the engine's outputs is compared, their numbers
//! and the `#` bars drawn from them left free. A block right after [`SKIP`] is not run (its
//! commands are counted and printed as skipped); its figures must then be marked
//! as measured (`tests/doc_numbers.rs`).

#![allow(dead_code)]

use std::path::Path;

/// The docs whose ```` ```text ```` commands `tests/tutorial.rs` runs, in this
/// order (commands with the same arguments run once and are compared in both).
pub const RUN_DOCS: &[&str] = &["docs/TUTORIAL.md", "README.md"];
/// How a command starts in a ```` ```text ```` block.
pub const PREFIX: &str = "$ cargo run --release -- ";
/// The line before a ```` ```text ```` block whose commands are not run.
pub const SKIP: &str = "<!-- tutorial-test: skip (slow) -->";
/// Whether this build fuses multiply-add (x86-64 with FMA, or aarch64): the
/// library's one definition, which every kernel uses.
pub const FUSED: bool = simdnet::simd::FUSED_MULTIPLY_ADD;

/// The crate's folder.
pub fn crate_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The text of `file` (relative to the crate's folder).
pub fn read_doc(file: &str) -> String {
    std::fs::read_to_string(crate_root().join(file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
}

/// How far a decimal number in the docs may be from the real one: one unit
/// in its last printed digit (with a little room for the parsing of both).
pub fn tolerance(expected: &str) -> f64 {
    let decimals = expected.split_once('.').map_or(0, |(_, d)| d.len());
    10f64.powi(-(decimals as i32)) * (1.0 + 1e-9)
}

/// One command of a doc and the output it shows.
#[derive(Debug, Clone)]
pub struct Example {
    /// The doc it is in, relative to the crate's folder.
    pub file: String,
    /// 1-based line of the command.
    pub line: usize,
    pub args: Vec<String>,
    /// The output lines shown, with their 1-based line numbers.
    pub expected: Vec<(usize, String)>,
    pub skip: bool,
}

impl Example {
    /// Whether the output comes from the f32 engine (every command but `explain`).
    pub fn engine(&self) -> bool {
        self.args.first().is_none_or(|c| c != "explain")
    }

    /// The number after `prefix` on the first shown line starting with it.
    pub fn shown(&self, prefix: &str) -> Option<&str> {
        self.expected.iter().find_map(|(_, l)| {
            let rest = l.strip_prefix(prefix)?;
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                .unwrap_or(rest.len());
            Some(&rest[..end]).filter(|n| !n.is_empty())
        })
    }
}

/// Finds every command in the ```text blocks of `doc` (the text of `file`).
pub fn parse(file: &str, doc: &str) -> Vec<Example> {
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
                    file: file.to_string(),
                    line: n,
                    args: shell_words(rest).unwrap_or_else(|e| panic!("{file}:{n}: {e}")),
                    expected: Vec::new(),
                    skip,
                });
                in_example = true;
            } else if line.starts_with("$ ") {
                panic!("{file}:{n}: a command must start with `{PREFIX}`: {line}");
            } else if in_example {
                examples.last_mut().unwrap().expected.push((n, line.to_string()));
            }
        }
        if !line.trim().is_empty() {
            prev_nonblank = line;
        }
    }
    assert!(!in_fence, "{file}: a code block is not closed");
    examples
}

/// Splits a command line into words like a shell, for the little the docs
/// use: spaces separate words, '...' and "..." group (`--layers ""` is one empty
/// word). Anything else a shell would interpret is refused.
pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
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
pub enum Token<'a> {
    Num(&'a str),
    Text(&'a str),
}

/// Cuts a line into numbers and the text between them.
pub fn tokens(line: &str) -> Vec<Token<'_>> {
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

/// Whether the number `tokens[k]` of a shown line may be anything: a time
/// (`0.061s`) or the thread count (`2 threads`).
pub fn is_wildcard(tokens: &[Token<'_>], k: usize) -> bool {
    match tokens.get(k + 1) {
        Some(Token::Text(next)) => {
            next.starts_with(" threads")
                || (next.starts_with('s') && !next[1..].starts_with(|c: char| c.is_alphanumeric()))
        }
        _ => false,
    }
}

/// What follows the word " thread" or " threads" that starts `text`.
fn after_thread(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(" thread")?;
    Some(rest.strip_prefix('s').unwrap_or(rest))
}

/// The environment variable that makes `tests/tutorial.rs` regenerate the
/// numbers of the shown output instead of comparing them.
pub const UPDATE: &str = "SIMDNET_DOCS_UPDATE";

/// Whether the numbers of shown output are being regenerated ([`UPDATE`] is
/// set): then any number matches any number, and only the text must agree.
pub fn updating() -> bool {
    std::env::var_os(UPDATE).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Whether an output's numbers go unchecked: the engine's (`engine`, every
/// command but `explain`) in a build without FMA (see the module docs).
fn numbers_free(engine: bool) -> bool {
    engine && !FUSED
}

/// Whether the real output line `actual` says what the doc's line `expected` says.
/// `engine`: the line is the engine's output, not `explain`'s ([`numbers_free`]).
pub fn line_matches(expected: &str, actual: &str, engine: bool) -> bool {
    line_matches_in(expected, actual, numbers_free(engine))
}

/// [`line_matches`]; with `any_number`, every number matches every number.
fn line_matches_in(expected: &str, actual: &str, any_number: bool) -> bool {
    let (e, a) = (tokens(expected.trim_end()), tokens(actual.trim_end()));
    if e.len() != a.len() {
        return false;
    }
    for (k, (te, ta)) in e.iter().zip(&a).enumerate() {
        match (te, ta) {
            (Token::Text(x), Token::Text(y)) if x == y => {}
            // "2 threads" in a doc, "1 thread" on a one-core machine
            (Token::Text(x), Token::Text(y))
                if k > 0
                    && is_wildcard(&e, k - 1)
                    && after_thread(x).is_some()
                    && after_thread(x) == after_thread(y) => {}
            (Token::Num(x), Token::Num(y)) => {
                if any_number || is_wildcard(&e, k) {
                    continue;
                }
                if x.contains('.') {
                    let close = y.contains('.')
                        && match (x.parse::<f64>(), y.parse::<f64>()) {
                            (Ok(xv), Ok(yv)) => (xv - yv).abs() <= tolerance(x),
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

/// Whether a shown line is the left-out-output mark.
fn is_gap(line: &str) -> bool {
    line.trim() == "..."
}

/// Checks that the shown lines are the real output `stdout`: runs of shown lines
/// between `...` marks are consecutive real lines, in order, the first run at the
/// start and the last at the end unless a `...` says otherwise. Returns, for
/// each shown line, its doc line and the real line it matched; or what is
/// wrong. While [`updating`], any number matches any number.
pub fn check_output(ex: &Example, stdout: &str) -> Result<Vec<(usize, String)>, String> {
    // without FMA, the engine's outputs as text (see the module docs)
    let loose = numbers_free(ex.engine());
    let any_number = updating() || loose;
    let unbar = |l: &str| if loose { l.replace('#', "") } else { l.to_string() };
    let actual: Vec<&str> = stdout.lines().collect();
    let trailing_blank = |v: &[&str]| v.iter().rev().take_while(|l| l.trim().is_empty()).count();
    let actual = &actual[..actual.len() - trailing_blank(&actual)];
    // Runs of consecutive shown lines, split at the `...` marks.
    let mut runs: Vec<Vec<(usize, &str)>> = vec![Vec::new()];
    for (n, l) in &ex.expected {
        if is_gap(l) {
            runs.push(Vec::new());
        } else {
            runs.last_mut().unwrap().push((*n, l.as_str()));
        }
    }
    for run in &mut runs {
        while run.last().is_some_and(|(_, l)| l.trim().is_empty()) {
            run.pop();
        }
    }
    let last = runs.len() - 1;
    let fail = |n: usize, want: &str, why: &str| {
        Err(format!(
            "{}:{n}: this line of the output of `{}` (line {}) {why}:\n  {want}\n\
             (shown lines between `...` marks must be consecutive lines of the real output; \
             mark left-out output with a line `...`)\nreal output:\n{stdout}",
            ex.file,
            ex.args.join(" "),
            ex.line,
        ))
    };
    let matches_at = |run: &[(usize, &str)], j: usize| -> Result<(), usize> {
        for (k, (_, want)) in run.iter().enumerate() {
            match actual.get(j + k) {
                Some(a) if line_matches_in(&unbar(want), &unbar(a), any_number) => {}
                _ => return Err(k),
            }
        }
        Ok(())
    };
    let mut pos = 0;
    let mut matched = Vec::new();
    for (r, run) in runs.iter().enumerate() {
        if run.is_empty() {
            continue;
        }
        let anchored_start = r == 0;
        let anchored_end = r == last;
        let found = if anchored_start {
            match matches_at(run, 0) {
                Ok(()) => Some(0),
                Err(k) => {
                    let (n, want) = run[k];
                    let why = if k == 0 {
                        "is not the first line of the real output (start with a `...` line if it should not be)"
                    } else {
                        "does not follow the line above it in the real output"
                    };
                    return fail(n, want, why);
                }
            }
        } else if anchored_end {
            let j = actual.len().checked_sub(run.len()).filter(|&j| j >= pos);
            match j.map(|j| (j, matches_at(run, j))) {
                Some((j, Ok(()))) => Some(j),
                _ => None,
            }
        } else {
            (pos..actual.len()).find(|&j| matches_at(run, j).is_ok())
        };
        match found {
            Some(j) => {
                if anchored_start && anchored_end && j + run.len() != actual.len() {
                    let (n, want) = *run.last().unwrap();
                    return fail(
                        n,
                        want,
                        "is not the last line of the real output (end with a `...` line if it should not be)",
                    );
                }
                pos = j + run.len();
                for (k, (n, _)) in run.iter().enumerate() {
                    matched.push((*n, actual[j + k].trim_end().to_string()));
                }
            }
            None => {
                // Say which line: where the longest start of the run matches, the
                // line after that start.
                let prefix = |j: usize| matches_at(run, j).err().unwrap_or(run.len());
                let best = (pos..actual.len()).map(prefix).max().unwrap_or(0);
                let (n, want) = run[best.min(run.len() - 1)];
                let why = if best == run.len() {
                    "is not the last line of the real output (end with a `...` line if it should not be)"
                } else if best > 0 {
                    "does not follow the line above it in the real output"
                } else if anchored_end {
                    "is not in the lines that end the real output (end with a `...` line if it should not be)"
                } else if pos > 0 {
                    "is not in the real output after the lines matched before it"
                } else {
                    "is not in the real output"
                };
                return fail(n, want, why);
            }
        }
    }
    Ok(matched)
}
