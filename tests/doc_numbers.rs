//! Every figure in the README and in docs/ is either compared by a test or
//! marked as measured, with the machine and the command that reproduce it.
//!
//! The rule (also in a comment at the top of each checked doc):
//!
//! 1. A **figure** is a number of the rendered text that a run measures or
//!    computes: a number with a decimal point or an exponent (`0.9416`, `3.7`,
//!    `1e-7`), a percentage (`94%`), or a number with a unit of time, rate or
//!    size (`0.64 s`, `6 seconds`, `7 min`, `74 MB`, `116 GFLOP/s`, `2 GiB`).
//!    Integers without a unit are counts, sizes, settings and names (image
//!    counts, layer widths, epochs, seeds, `28x28`, years, section numbers):
//!    not figures. Nor is a number that is code: in inline code (`--lr 0.001`),
//!    in a code block other than ```` ```text ```` (but the comments there, after
//!    `#` or `//`, are text), in an HTML comment or a link's target; nor a
//!    version (after `Rust`, `version`, `BY-SA`, or before `or newer`), nor
//!    part of a word (`f32`, `x86-64`, `AVX-512`, `BP1`). Settings and
//!    formulas in prose are written as code (`` `0.001` ``, `` `ln 10 = 2.30` ``).
//! 2. A figure is **compared** when
//!    - it is in the shown output of a command that `tests/tutorial.rs` runs
//!      and compares (the convention of `tests/doc_check/mod.rs`), and is not
//!      one of the numbers that comparison lets be anything (times, threads);
//!    - a table row holds a `` `train ...` `` command and the figure is in the
//!      next cell: it must be the `Test accuracy` that the command's block
//!      shows (checked here), and that block is run (not skipped);
//!    - it is in [`CLAIMS`]: a figure of the prose with its source, a compared
//!      block's line or a test that asserts it (checked here), or someone
//!      else's published figure with where it is published (a quote).
//! 3. A figure is **measured** when a line
//!    `<!-- measured: MACHINE; command: COMMAND -->` comes before it with no
//!    heading in between: the mark covers everything up to the next heading,
//!    or up to a line `<!-- end measured -->` if one comes first. MACHINE
//!    names the CPU, the SIMD instruction set and its f32 lanes, at least three
//!    comma-separated parts, one with `lane` (`AMD EPYC (Zen 5), AVX-512, 16 f32
//!    lanes, 2 cores`); COMMAND reproduces the figures.
//!
//! Any other figure is reported as `file:line: figure`, with its line and the
//! fix. No command runs here: the compared blocks are compared by
//! `tests/tutorial.rs`.

mod doc_check;

use doc_check::{crate_root, is_wildcard, parse, read_doc, shell_words, tokens, Example, Token};

/// The docs checked: the README and every file of docs/ once its figures are
/// marked (see [`NOT_YET_CHECKED`]).
const CHECKED: &[&str] = &[
    "README.md",
    "docs/TUTORIAL.md",
    "docs/FUZZING.md",
    "docs/PERFORMANCE.md",
];
/// Files of docs/ not checked (none: every doc is).
const NOT_YET_CHECKED: &[&str] = &[];
/// Sections (file, heading line) not checked yet, for the same reason: from the
/// heading to the next heading of the same or a higher level.
const NOT_YET_CHECKED_SECTIONS: &[(&str, &str)] = &[];

/// What proves a figure of the prose.
enum Source {
    /// The number right after `after` on the first line containing `line_has`
    /// in the shown output of `command` (arguments after `cargo run --release --`)
    /// in `file`, a block that `tests/tutorial.rs` runs and compares.
    Shown {
        file: &'static str,
        command: &'static str,
        line_has: &'static str,
        after: &'static str,
    },
    /// A test file that asserts the figure, written the same way.
    Test(&'static str),
    /// Someone else's published figure, quoted: where it is published (read
    /// by people, not checked).
    #[allow(dead_code)]
    Quoted(&'static str),
}

/// A figure of the prose of `file` and its source: it covers every
/// occurrence of the figure in the prose of that file. The figure may be the
/// source rounded (`94.2%` for `0.9416`: to half a unit of its last digit).
struct Claim {
    file: &'static str,
    figure: &'static str,
    source: Source,
}

const fn shown(
    file: &'static str,
    command: &'static str,
    line_has: &'static str,
    after: &'static str,
) -> Source {
    Source::Shown {
        file,
        command,
        line_has,
        after,
    }
}

const T: &str = "docs/TUTORIAL.md";
const R: &str = "README.md";
const ACC: &str = "Test accuracy: ";

/// The figures of the prose that a test compares, with what proves each.
const CLAIMS: &[Claim] = &[
    Claim {
        file: R,
        figure: "0.9416",
        source: shown(T, "train", ACC, ""),
    },
    Claim {
        file: R,
        figure: "0.9358",
        source: shown(T, "train --seed 2", ACC, ""),
    },
    Claim {
        file: R,
        figure: "0.9386",
        source: shown(T, "train --seed 3", ACC, ""),
    },
    Claim {
        file: R,
        figure: "0.9795",
        source: shown(T, "train --layers 512,512", ACC, ""),
    },
    Claim {
        file: R,
        figure: "0.9840",
        source: Source::Quoted(
            "the mnist_mlp example of Keras (keras/examples/mnist_mlp.py): Test accuracy: 0.9840",
        ),
    },
    Claim {
        file: R,
        figure: "0.9140",
        source: shown(T, "train --epochs 1", ACC, ""),
    },
    Claim {
        file: R,
        figure: "1e-6",
        source: shown(T, "teach --every 50", "     50 ", "< "),
    },
    Claim {
        file: R,
        figure: "0.93",
        source: Source::Test("tests/training.rs"),
    },
    Claim {
        file: R,
        figure: "0.975",
        source: Source::Test("tests/training.rs"),
    },
    Claim {
        file: R,
        figure: "2 GiB",
        source: Source::Test("tests/hostile_inputs.rs"),
    },
    Claim {
        file: R,
        figure: "3 GiB",
        source: Source::Test("tests/hostile_inputs.rs"),
    },
    Claim {
        file: T,
        figure: "0.9416",
        source: shown(T, "train", ACC, ""),
    },
    Claim {
        file: T,
        figure: "94.16%",
        source: shown(T, "train", ACC, ""),
    },
    Claim {
        file: T,
        figure: "94.2%",
        source: shown(T, "train", ACC, ""),
    },
    Claim {
        file: T,
        figure: "93%",
        source: Source::Quoted("the workshop's Keras notebook, practical 2"),
    },
    Claim {
        file: T,
        figure: "99.7%",
        source: shown(T, "predict --model workshop.simdnet --index 0", "  7: ", ""),
    },
    Claim {
        file: T,
        figure: "0.7%",
        source: shown(
            T,
            "predict --model workshop.simdnet --index 8 --draw",
            "  5: ",
            "",
        ),
    },
    Claim {
        file: T,
        figure: "0.9358",
        source: shown(T, "train --seed 2", ACC, ""),
    },
    Claim {
        file: T,
        figure: "0.9386",
        source: shown(T, "train --seed 3", ACC, ""),
    },
    Claim {
        file: T,
        figure: "92.3%",
        source: shown(T, "train --layers \"\"", ACC, ""),
    },
    Claim {
        file: T,
        figure: "0.9385",
        source: shown(T, "train --layers 16,16,16", ACC, ""),
    },
    Claim {
        file: T,
        figure: "96.6%",
        source: shown(T, "train --layers 64,64", ACC, ""),
    },
    Claim {
        file: T,
        figure: "97.5%",
        source: shown(T, "train --layers 128,128", ACC, ""),
    },
    Claim {
        file: T,
        figure: "98.0%",
        source: shown(T, "train --layers 512,512", ACC, ""),
    },
    Claim {
        file: T,
        figure: "0.9397",
        source: shown(T, "train --activation tanh", ACC, ""),
    },
    Claim {
        file: T,
        figure: "0.9047",
        source: shown(T, "train --activation sigmoid", ACC, ""),
    },
    Claim {
        file: T,
        figure: "0.9140",
        source: shown(T, "train --epochs 1", ACC, ""),
    },
    Claim {
        file: T,
        figure: "0.9513",
        source: shown(T, "train --epochs 10", ACC, ""),
    },
    Claim {
        file: T,
        figure: "0.8930",
        source: shown(T, "train --optimizer sgd", ACC, ""),
    },
    Claim {
        file: T,
        figure: "0.9423",
        source: shown(T, "train --optimizer sgd --lr 0.1", ACC, ""),
    },
    Claim {
        file: T,
        figure: "0.942",
        source: shown(T, "train --optimizer momentum", ACC, ""),
    },
    Claim {
        file: T,
        figure: "0.944",
        source: shown(T, "train --optimizer adam", ACC, ""),
    },
    Claim {
        file: T,
        figure: "93.8%",
        source: shown(
            T,
            "sweep",
            "| (16, 16, 10) | ReLU, ReLU, softmax | 4 | Scaled inputs",
            "| ",
        ),
    },
    Claim {
        file: T,
        figure: "75.7%",
        source: shown(T, "sweep", "Raw 0-255 inputs", "| "),
    },
    Claim {
        file: T,
        figure: "0.9840",
        source: Source::Quoted(
            "the mnist_mlp example of Keras (keras/examples/mnist_mlp.py): Test accuracy: 0.9840",
        ),
    },
    Claim {
        file: T,
        figure: "4.7%",
        source: Source::Test("tests/explain_cli.rs"),
    },
    Claim {
        file: T,
        figure: "15.7%",
        source: Source::Test("tests/explain_cli.rs"),
    },
    Claim {
        file: T,
        figure: "0.116",
        source: shown(T, "explain --index 0", "p[0,5] (the true class)", " "),
    },
    Claim {
        file: T,
        figure: "0.175",
        source: shown(T, "explain --index 0", "p[0,5] (the true class)", "-> "),
    },
    Claim {
        file: T,
        figure: "1.7e-11",
        source: shown(
            T,
            "explain --check --step error",
            "dW1: 12 of 12",
            "largest error ",
        ),
    },
    Claim {
        file: T,
        figure: "2.15",
        source: shown(T, "explain --index 0 --step update", "loss before the step", " "),
    },
    Claim {
        file: T,
        figure: "1.74",
        source: shown(
            T,
            "explain --index 0 --step update",
            "loss before the step",
            "after ",
        ),
    },
    Claim {
        file: T,
        figure: "1e-6",
        source: shown(T, "teach --every 50", "     50 ", "< "),
    },
    Claim {
        file: T,
        figure: "28%",
        source: shown(
            T,
            "teach --optimizer sgd --forget-zero-grad --every 100",
            "test set",
            "accuracy ",
        ),
    },
    Claim {
        file: T,
        figure: "70%",
        source: shown(
            T,
            "teach --optimizer sgd --forget-zero-grad --every 100",
            "(engine:",
            "accuracy ",
        ),
    },
];

/// How one line of a doc is read.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// Rendered text: figures count.
    Text,
    /// Code: nothing counts.
    Code,
    /// Code whose comments, after this marker, are text.
    CodeWithComments(&'static str),
    /// A shown output line that a test compares: only the figures it lets be
    /// anything (times) count.
    Compared,
}

const TIME_UNITS: &[&str] = &[
    "s", "ms", "µs", "us", "ns", "min", "h", "second", "seconds", "minute", "minutes", "hour", "hours",
];
const RATE_UNITS: &[&str] = &["GFLOP/s", "TFLOP/s", "FLOP/s", "GB/s", "MB/s", "GiB/s"];
const SIZE_UNITS: &[&str] = &["B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB", "bytes"];
const VERSION_BEFORE: &[&str] = &["Rust ", "version ", "Version ", "BY-SA ", "v"];
const VERSION_AFTER: &[&str] = &[" or newer", " or later"];

/// The figures of a piece of rendered text (inline code already removed):
/// (the number, the figure as written: the number and its unit).
fn figures_in(text: &str) -> Vec<(String, String)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        // Part of a word: `f32`, `BP1`, `x86-64`, `AVX-512` (but not the
        // second number of a range, `0.942-0.944`).
        let after_word_and_hyphen = start > 1 && b[start - 1] == b'-' && {
            let mut j = start - 1;
            while j > 0 && b[j - 1].is_ascii_digit() {
                j -= 1;
            }
            j > 0 && b[j - 1].is_ascii_alphabetic()
        };
        let glued = start > 0 && (word(b[start - 1]) || after_word_and_hyphen || b[start - 1] == b'.');
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        // Thousands: 60,000.
        while i + 3 < b.len()
            && b[i] == b','
            && b[i + 1..i + 4].iter().all(u8::is_ascii_digit)
            && b.get(i + 4).is_none_or(|c| !c.is_ascii_digit())
        {
            i += 4;
        }
        let mut decimal = false;
        if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            decimal = true;
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        // An exponent: 1e-7, 2.1e6.
        if i + 1 < b.len() && b[i] == b'e' {
            let k = i + 1 + usize::from(b[i + 1] == b'-' || b[i + 1] == b'+');
            if k < b.len() && b[k].is_ascii_digit() {
                decimal = true;
                i = k;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
        }
        let number = &text[start..i];
        if glued {
            // Skip the rest of the word.
            while i < b.len() && (word(b[i]) || b[i] == b'.') {
                i += 1;
            }
            continue;
        }
        let rest = &text[i..];
        let unit_len = {
            let space = usize::from(rest.starts_with(' '));
            let r = &rest[space..];
            let is = |u: &&str| r.starts_with(*u) && !r[u.len()..].starts_with(|c: char| c.is_alphanumeric());
            if rest.starts_with('%') {
                Some(1)
            } else {
                TIME_UNITS
                    .iter()
                    .chain(RATE_UNITS)
                    .chain(SIZE_UNITS)
                    .filter(|u| is(u))
                    .map(|u| space + u.len())
                    .max()
            }
        };
        let unit = unit_len.is_some();
        // Followed by a letter that is not a unit: a name (`16x16`, `3rd`).
        let named = !unit && rest.starts_with(|c: char| c.is_alphanumeric());
        let before = &text[..start];
        let version = VERSION_BEFORE.iter().any(|v| before.ends_with(v))
            || VERSION_AFTER.iter().any(|v| rest.starts_with(v));
        if (decimal || unit) && !named && !version {
            let written = &text[start..i + unit_len.unwrap_or(0)];
            out.push((number.to_string(), written.to_string()));
        }
        if named {
            while i < b.len() && word(b[i]) {
                i += 1;
            }
        }
    }
    out
}

/// `line` without its inline code spans, link targets and HTML comments
/// (`in_comment` carries an open comment from line to line).
fn rendered_text(line: &str, in_comment: &mut bool) -> String {
    let mut out = String::new();
    let mut rest = line;
    loop {
        if *in_comment {
            match rest.find("-->") {
                Some(k) => {
                    rest = &rest[k + 3..];
                    *in_comment = false;
                }
                None => return out,
            }
        }
        let next_comment = rest.find("<!--");
        let next_code = rest.find('`');
        let next_link = rest.find("](");
        let first = [next_comment, next_code, next_link].into_iter().flatten().min();
        let Some(k) = first else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..k]);
        out.push(' ');
        let at = &rest[k..];
        if Some(k) == next_comment {
            *in_comment = true;
            rest = &at[4..];
        } else if Some(k) == next_code {
            let ticks = at.len() - at.trim_start_matches('`').len();
            let body = &at[ticks..];
            let fence = &at[..ticks];
            match body.find(fence) {
                Some(e) => rest = &body[e + ticks..],
                None => {
                    out.push_str(fence);
                    rest = body;
                }
            }
        } else {
            // `](target)`: the target is not text.
            let body = &at[2..];
            rest = body.find(')').map_or("", |e| &body[e + 1..]);
        }
    }
}

/// A `measured` mark: `Ok(None)` if the line is not one, `Err` if it is
/// written wrong.
fn measured_mark(line: &str) -> Result<Option<()>, String> {
    let t = line.trim();
    let Some(body) = t.strip_prefix("<!-- measured") else {
        return Ok(None);
    };
    let form = "`<!-- measured: MACHINE, ISA, N f32 lanes; command: COMMAND -->` on its own line";
    let body = body
        .strip_prefix(": ")
        .and_then(|b| b.strip_suffix(" -->"))
        .ok_or_else(|| format!("a measured mark must read {form}"))?;
    let (machine, command) = body
        .split_once("; command: ")
        .ok_or_else(|| format!("a measured mark must name the command: {form}"))?;
    if !machine.contains("lane") || machine.split(',').count() < 3 {
        return Err(format!(
            "a measured mark must name the machine, its SIMD instruction set and its f32 lanes: {form}"
        ));
    }
    if command.trim().is_empty() {
        return Err(format!("a measured mark must name the command: {form}"));
    }
    Ok(Some(()))
}

/// The line that ends a `measured` mark's reach before the next heading.
const MEASURED_END: &str = "<!-- end measured -->";

/// Whether `line` is a Markdown heading (outside code blocks), and its level.
fn heading_level(line: &str) -> Option<usize> {
    let hashes = line.len() - line.trim_start_matches('#').len();
    (hashes > 0 && line[hashes..].starts_with(' ')).then_some(hashes)
}

/// The problems of one doc: figures neither compared nor measured, and marks
/// or claims written wrong. Also counts the lines of sections not checked yet.
fn check_doc(
    file: &str,
    doc: &str,
    claims: &[Claim],
    examples_of: &dyn Fn(&str) -> Vec<Example>,
) -> (Vec<String>, usize) {
    let examples = examples_of(file);
    let lines: Vec<&str> = doc.lines().collect();
    // How each line is read.
    let mut kind = vec![Kind::Text; lines.len()];
    let mut in_fence: Option<String> = None;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if let Some(info) = t.strip_prefix("```") {
            kind[i] = Kind::Code;
            in_fence = match in_fence {
                Some(_) => None,
                None => Some(info.trim().to_string()),
            };
            continue;
        }
        if let Some(info) = &in_fence {
            kind[i] = match info.as_str() {
                "text" | "" => Kind::Text,
                "sh" | "bash" | "shell" | "toml" | "console" | "python" => Kind::CodeWithComments("#"),
                "rust" | "c" | "js" => Kind::CodeWithComments("//"),
                _ => Kind::Code,
            };
            if info == "text" && (line.starts_with("$ ")) {
                kind[i] = Kind::Code;
            }
        }
    }
    for ex in examples.iter().filter(|e| !e.skip) {
        for (n, _) in &ex.expected {
            kind[n - 1] = Kind::Compared;
        }
    }
    // Sections not checked yet.
    let mut pending = vec![false; lines.len()];
    let mut skipped = 0;
    for (f, heading) in NOT_YET_CHECKED_SECTIONS {
        if *f != file {
            continue;
        }
        let level = heading_level(heading).expect("a heading");
        let Some(start) = lines.iter().position(|l| l == heading) else {
            continue;
        };
        for i in start..lines.len() {
            if i > start && kind[i] == Kind::Text && heading_level(lines[i]).is_some_and(|l| l <= level) {
                break;
            }
            pending[i] = true;
            skipped += 1;
        }
    }
    // Table cells after a `train ...` command: compared against the command's block.
    let mut problems = Vec::new();
    let mut table_figures: Vec<(usize, String)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if kind[i] != Kind::Text || !line.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(k) = cells
            .iter()
            .position(|c| c.starts_with("`train") && c.ends_with('`'))
        else {
            continue;
        };
        // The next cell, if it is one (not the empty piece after the last `|`).
        let Some(cell) = cells.get(k + 1).filter(|_| k + 2 < cells.len()) else {
            continue;
        };
        let args = shell_words(cells[k].trim_matches('`')).unwrap_or_default();
        let block = examples.iter().find(|e| without_save(&e.args) == args);
        match block.and_then(|e| e.shown(ACC).map(|acc| (e, acc))) {
            None => problems.push(format!(
                "{file}:{}: the table names `{}` but no block of {file} shows its `{ACC}`",
                i + 1,
                args.join(" ")
            )),
            Some((e, acc)) if *cell != acc => problems.push(format!(
                "{file}:{}: the table says {cell} for `{}`, its block (line {}) says {acc}",
                i + 1,
                args.join(" "),
                e.line
            )),
            Some((e, _)) if !e.skip => table_figures.push((i + 1, cell.to_string())),
            Some(_) => {}
        }
    }
    // The figures, line by line.
    let mut in_comment = false;
    let mut measured = false;
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        match measured_mark(line) {
            Ok(Some(())) => {
                measured = true;
                continue;
            }
            Ok(None) => {}
            Err(e) => problems.push(format!("{file}:{n}: {e}")),
        }
        if kind[i] == Kind::Text && (heading_level(line).is_some() || line.trim() == MEASURED_END) {
            measured = false;
        }
        let figures: Vec<(String, bool)> = match kind[i] {
            Kind::Code => Vec::new(),
            Kind::CodeWithComments(mark) => match line.find(mark) {
                Some(k) => figures_in(&rendered_text(&line[k..], &mut false))
                    .into_iter()
                    .map(|(_, f)| {
                        let compared = claimed(claims, file, &f);
                        (f, compared)
                    })
                    .collect(),
                None => Vec::new(),
            },
            Kind::Compared => {
                // Only the numbers the comparison lets be anything.
                let t = tokens(line);
                let wild: Vec<&str> = t
                    .iter()
                    .enumerate()
                    .filter_map(|(k, tok)| match tok {
                        Token::Num(x) if is_wildcard(&t, k) => Some(*x),
                        _ => None,
                    })
                    .collect();
                figures_in(line)
                    .into_iter()
                    .map(|(number, f)| {
                        let wildcard = wild.contains(&number.as_str());
                        (f, !wildcard)
                    })
                    .collect()
            }
            Kind::Text => {
                let text = rendered_text(line, &mut in_comment);
                figures_in(&text)
                    .into_iter()
                    .map(|(_, f)| {
                        let compared = table_figures.iter().any(|(l, c)| *l == n && *c == f)
                            || claimed(claims, file, &f);
                        (f, compared)
                    })
                    .collect()
            }
        };
        if pending[i] {
            continue;
        }
        for (f, compared) in figures {
            if !compared && !measured {
                problems.push(format!("{file}:{n}: {f}\n    | {}", line.trim()));
            }
        }
    }
    (problems, skipped)
}

/// Whether a claim of `file` covers the figure `written`.
fn claimed(claims: &[Claim], file: &str, written: &str) -> bool {
    claims.iter().any(|c| c.file == file && c.figure == written)
}

fn without_save(args: &[String]) -> Vec<String> {
    let mut a = args.to_vec();
    if let Some(k) = a.iter().position(|w| w == "--save") {
        a.drain(k..(k + 2).min(a.len()));
    }
    a
}

/// Checks each claim against its source: problems.
fn check_claims(claims: &[Claim]) -> Vec<String> {
    let mut problems = Vec::new();
    for c in claims {
        let doc = read_doc(c.file);
        let in_prose = doc.lines().any(|l| {
            figures_in(&rendered_text(l, &mut false))
                .iter()
                .any(|(_, f)| f == c.figure)
        });
        if !in_prose {
            problems.push(format!(
                "CLAIMS: {} does not say {} any more: remove the claim",
                c.file, c.figure
            ));
            continue;
        }
        match &c.source {
            Source::Quoted(_) => {}
            Source::Test(test) => {
                let text = read_doc(test);
                if !text.contains(c.figure) {
                    problems.push(format!(
                        "CLAIMS: {test} does not assert {} ({}): name the test that does",
                        c.figure, c.file
                    ));
                }
            }
            Source::Shown {
                file,
                command,
                line_has,
                after,
            } => {
                let args = shell_words(command).unwrap();
                let examples = parse(file, &read_doc(file));
                let Some(ex) = examples.iter().find(|e| !e.skip && without_save(&e.args) == args) else {
                    problems.push(format!(
                        "CLAIMS: {} says {}, but {file} has no compared block of `{command}`",
                        c.file, c.figure
                    ));
                    continue;
                };
                let value = ex
                    .expected
                    .iter()
                    .find(|(_, l)| l.contains(line_has))
                    .and_then(|(_, l)| {
                        let rest = &l[l.find(line_has)? + line_has.len()..];
                        let rest = &rest[rest.find(after)? + after.len()..];
                        let end = rest
                            .find(|ch: char| !(ch.is_ascii_digit() || ch == '.' || ch == '-' || ch == 'e'))
                            .unwrap_or(rest.len());
                        let percent = if rest[end..].starts_with('%') { "%" } else { "" };
                        Some(format!("{}{percent}", &rest[..end]))
                    });
                match value {
                    Some(v) if agrees(c.figure, &v) => {}
                    Some(v) => problems.push(format!(
                        "{}: says {}, but `{command}` in {file}:{} shows {v} ({line_has} ... {after})",
                        c.file, c.figure, ex.line
                    )),
                    None => problems.push(format!(
                        "CLAIMS: `{command}` in {file}:{} shows no line with `{line_has}` and `{after}`",
                        ex.line
                    )),
                }
            }
        }
    }
    problems
}

/// Whether `figure` (maybe a percentage) is `source` (maybe one too) rounded
/// to the figure's digits.
fn agrees(figure: &str, source: &str) -> bool {
    let (f, scale) = match (figure.strip_suffix('%'), source.ends_with('%')) {
        (Some(f), false) => (f, 100.0),
        (Some(f), true) => (f, 1.0),
        (None, _) => (figure, 1.0),
    };
    let source = source.trim_end_matches('%');
    // Half a unit of the figure's last digit: `0.942` by 0.0005, `1.7e-11` by 0.05e-11.
    let (mantissa, exponent) = match f.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (f, 0),
    };
    let decimals = mantissa.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let half_unit = 0.5 * 10f64.powi(exponent - decimals);
    match (f.parse::<f64>(), source.parse::<f64>()) {
        (Ok(fv), Ok(sv)) => (fv - sv * scale).abs() <= half_unit * (1.0 + 1e-9),
        _ => false,
    }
}

const FIX: &str = "Each figure must be compared by a test or marked as measured (the rule is at the top of \
tests/doc_numbers.rs). Fix: show it as the output of a command in a ```text block that tests/tutorial.rs runs; \
or add it to CLAIMS in tests/doc_numbers.rs with the compared line or the test that proves it; or put \
`<!-- measured: MACHINE, ISA, N f32 lanes; command: COMMAND -->` on its own line above it (it covers everything \
up to the next heading). A number that is code goes in backticks.";

#[test]
fn every_figure_is_compared_or_marked_as_measured() {
    let mut problems = check_claims(CLAIMS);
    for file in CHECKED {
        let examples_of = |f: &str| parse(f, &read_doc(f));
        let (p, skipped) = check_doc(file, &read_doc(file), CLAIMS, &examples_of);
        problems.extend(p);
        if skipped > 0 {
            println!("{file}: {skipped} lines in sections not checked yet (NOT_YET_CHECKED_SECTIONS)");
        }
    }
    assert!(
        problems.is_empty(),
        "{} figure(s) or mark(s) to fix:\n{}\n\n{FIX}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every doc in docs/ is checked, or listed as not checked yet.
#[test]
fn every_doc_is_checked() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(crate_root().join("docs")).unwrap() {
        let name = format!("docs/{}", entry.unwrap().file_name().to_string_lossy());
        if name.ends_with(".md")
            && !CHECKED.contains(&name.as_str())
            && !NOT_YET_CHECKED.contains(&name.as_str())
        {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "add these docs to CHECKED in tests/doc_numbers.rs: {missing:?}"
    );
}

#[test]
fn the_checker_itself() {
    let figures = |t: &str| -> Vec<String> { figures_in(t).into_iter().map(|(_, f)| f).collect() };
    // Figures: decimals, exponents, percentages, numbers with a unit.
    assert_eq!(figures("Seeds 1, 2, 3 give 0.9416, 0.9358"), ["0.9416", "0.9358"]);
    assert_eq!(
        figures("at 0.64 s per epoch, 7 min 40 s, 74 MB, 116 GFLOP/s"),
        ["0.64 s", "7 min", "40 s", "74 MB", "116 GFLOP/s"]
    );
    assert_eq!(
        figures("94.2% and 1e-7, 2.1e6, 28%"),
        ["94.2%", "1e-7", "2.1e6", "28%"]
    );
    assert_eq!(figures("around 0.942-0.944"), ["0.942", "0.944"]);
    assert_eq!(figures("1,500,000 (1520 s; 1277 edges)"), ["1520 s"]);
    // Not figures: integers without a unit, names, versions.
    assert!(figures("60,000 images of 28x28, 784-16-16-10, epoch 7, section 6, 2026").is_empty());
    assert!(figures("x86-64, AVX-512, f32x8, u8, BP1, 16x16, Zen 5, 3rd").is_empty());
    assert!(figures("Rust 1.89 or newer; CC BY-SA 3.0; (1.89 or later)").is_empty());
    // Code, comments and link targets are not text.
    let text = |l: &str| rendered_text(l, &mut false);
    assert_eq!(
        figures(&text("`--lr 0.001` and [x](docs/v0.5.md) <!-- 0.3 --> 0.7")),
        ["0.7"]
    );
    assert_eq!(figures(&text("``a `0.5` b`` 0.25")), ["0.25"]);
    let mut open = false;
    assert!(figures(&rendered_text("a <!-- 0.3", &mut open)).is_empty() && open);
    assert!(figures(&rendered_text("0.4 --> b", &mut open)).is_empty() && !open);
    // Marks.
    let ok = "<!-- measured: AMD EPYC (Zen 5), AVX-512, 16 f32 lanes, 2 cores; command: simdnet bench -->";
    assert_eq!(measured_mark(ok), Ok(Some(())));
    assert_eq!(measured_mark("plain text"), Ok(None));
    assert!(measured_mark("<!-- measured: Zen 5, AVX-512, 16 f32 lanes -->")
        .unwrap_err()
        .contains("command"));
    assert!(measured_mark("<!-- measured: Zen 5; command: x -->")
        .unwrap_err()
        .contains("lanes"));
    // Claims may round, and turn a fraction into a percentage.
    assert!(agrees("94.2%", "0.9416") && agrees("0.942", "0.9416") && agrees("93.8%", "93.8%"));
    assert!(!agrees("94.3%", "0.9416") && !agrees("0.9416", "0.9417") && !agrees("0.9416", "x"));
    assert!(agrees("1.7e-11", "1.74e-11") && !agrees("1.7e-11", "1.8e-11") && !agrees("1e-6", "1e-7"));

    // A whole doc: what counts, and how far a mark reaches.
    let doc = format!(
        "# A\n\nprose 0.5\n\n```text\n$ cargo run --release -- train\n\
         Epoch 1/4 - 0.061s - acc: 0.8388\nTest accuracy: 0.9416\n```\n\n\
         {SKIP_LINE}\n```text\n$ cargo run --release -- train --epochs 9\nTest accuracy: 0.9001\n```\n\n\
         {ok}\nmarked 0.6\n\n## B\n\nafter the heading 0.7\n\n{ok}\nmarked 0.8\n{MEASURED_END}\n\
         after the end 0.9\n\n```sh\nsimdnet train --lr 0.5   # reaches 0.91\n```\n\n\
         | cmd | acc |\n|---|---|\n| `train` | 0.9416 |\n| `train --epochs 9` | 0.9000 |\n"
    );
    let examples_of = |f: &str| parse(f, &doc);
    let (problems, _) = check_doc("doc.md", &doc, &[], &examples_of);
    let found: Vec<&str> = problems.iter().map(|p| p.split('\n').next().unwrap()).collect();
    assert_eq!(
        found,
        [
            "doc.md:36: the table says 0.9000 for `train --epochs 9`, its block (line 13) says 0.9001",
            "doc.md:3: 0.5",
            "doc.md:7: 0.061s",
            "doc.md:14: 0.9001",
            "doc.md:22: 0.7",
            "doc.md:27: 0.9",
            "doc.md:30: 0.91",
            "doc.md:36: 0.9000",
        ],
        "{problems:#?}"
    );
}

const SKIP_LINE: &str = doc_check::SKIP;
