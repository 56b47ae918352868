//! Number formatting and the [`Out`] line builder of `simdnet explain`: how a
//! number, a sum of products, a row of values or a large buffer is printed.
//! Nothing here computes a step of training.

use crate::teach::summary::Summary;
use std::fmt::Write as _;

/// The widest line we print (the terminal and the notes it is pasted into).
pub const WIDTH: usize = 100;
/// Buffers with at most this many entries are printed in full.
pub const FULL: usize = 32;
/// Entries of a large buffer shown with their formula.
pub const EXCERPT: usize = 4;
/// Sums with more terms than this are shortened to their first few.
pub const MAX_TERMS: usize = 8;

/// A number with 6 decimals (and no "-0.000000").
pub fn num(x: f64) -> String {
    let s = format!("{x:.6}");
    if s == "-0.000000" {
        "0.000000".into()
    } else {
        s
    }
}

/// A number inside a formula: negative numbers in parentheses.
pub fn par(x: f64) -> String {
    let s = num(x);
    if s.starts_with('-') {
        format!("({s})")
    } else {
        s
    }
}

/// A small positive number (a mean square) that 6 decimals would round away.
pub fn small(x: f64) -> String {
    if x != 0.0 && x.abs() < 1e-3 {
        format!("{x:.6e}")
    } else {
        num(x)
    }
}

/// A hyper-parameter (a decay rate, a learning rate): as few decimals as it needs.
pub fn hp(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `a·b` in a formula.
pub fn prod(a: f64, b: f64) -> String {
    format!("{}·{}", par(a), par(b))
}

/// `name[r,c]` for a (rows, cols) buffer, `name[c]` for a vector.
pub fn at(name: &str, r: Option<usize>, c: usize) -> String {
    match r {
        Some(r) => format!("{name}[{r},{c}]"),
        None => format!("{name}[{c}]"),
    }
}

/// The printed text, built line by line.
pub struct Out(pub String);

impl Out {
    pub fn line(&mut self, s: impl AsRef<str>) {
        self.0.push_str(s.as_ref());
        self.0.push('\n');
    }

    pub fn blank(&mut self) {
        self.0.push('\n');
    }

    pub fn title(&mut self, s: &str) {
        self.blank();
        let bar = "=".repeat(76usize.saturating_sub(s.chars().count()).max(4));
        self.line(format!("== {s} {bar}"));
    }

    /// `prefix term + term + ... tail`, wrapped under the first term at [`WIDTH`] columns.
    pub fn sum(&mut self, prefix: &str, terms: &[String], tail: &str) {
        let indent = " ".repeat(prefix.chars().count().min(40) + 1);
        let mut pieces: Vec<String> = Vec::new();
        for (k, t) in terms.iter().enumerate() {
            pieces.push(if k == 0 { t.clone() } else { format!("+ {t}") });
        }
        if !tail.is_empty() {
            pieces.push(tail.to_string());
        }
        let mut line = prefix.to_string();
        let mut fresh = true; // nothing but the prefix or the indent on this line yet
        for piece in pieces {
            if !fresh && line.chars().count() + 1 + piece.chars().count() > WIDTH {
                self.line(line.trim_end());
                line = format!("{indent}{piece}");
            } else {
                if !line.ends_with(' ') {
                    line.push(' ');
                }
                line.push_str(&piece);
            }
            fresh = false;
        }
        self.line(line.trim_end());
    }

    /// `label` followed by the values, 8 to a line.
    pub fn values(&mut self, label: &str, values: &[f64]) {
        self.values_then(label, values, "");
    }

    /// [`Out::values`], then `suffix` at the end of the last line.
    pub fn values_then(&mut self, label: &str, values: &[f64], suffix: &str) {
        let indent = " ".repeat(label.chars().count());
        let per_line = ((WIDTH - label.chars().count()) / 11).clamp(1, 8);
        let chunks: Vec<&[f64]> = values.chunks(per_line).collect();
        for (k, chunk) in chunks.iter().enumerate() {
            let mut s = if k == 0 { label.to_string() } else { indent.clone() };
            for v in chunk.iter() {
                let _ = write!(s, " {:>10}", num(*v));
            }
            if k + 1 == chunks.len() {
                s.push_str(suffix);
            }
            self.line(s);
        }
        if values.is_empty() {
            self.line(format!("{label}{suffix}"));
        }
    }

    /// A matrix in full (small) or summarised (large).
    pub fn matrix(&mut self, name: &str, data: &[f64], rows: usize, cols: usize) {
        if rows * cols <= FULL {
            self.line(format!("  {name} ({rows}, {cols}):"));
            for r in 0..rows {
                self.values("   ", &data[r * cols..(r + 1) * cols]);
            }
        } else {
            self.line(format!("  {name} ({rows}, {cols}): {}", stats(data)));
        }
    }
}

/// The [`Summary`] of a buffer (computed by the lesson), in one line.
pub fn stats(v: &[f64]) -> String {
    let s = Summary::of(v);
    format!(
        "{} numbers, {} nonzero, min {}, max {}, mean {}",
        s.count,
        s.nonzero,
        num(s.min),
        num(s.max),
        num(s.mean)
    )
}

/// Shortens a long sum to its first terms and a count of the rest.
pub fn shorten(mut terms: Vec<String>) -> Vec<String> {
    if terms.len() > MAX_TERMS {
        let more = terms.len() - 3;
        terms.truncate(3);
        terms.push(format!("... ({more} more terms)"));
    }
    terms
}

/// The (row, col) entries of a (rows, cols) buffer to show with formulas: all of a
/// small one; of a large one the first few entries of the first rows that pass `row_ok`
/// (e.g. the rows of nonzero pixels: the others are all zero).
pub fn pick(rows: usize, cols: usize, row_ok: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
    if rows * cols <= FULL {
        return (0..rows).flat_map(|r| (0..cols).map(move |c| (r, c))).collect();
    }
    let per_row = cols.clamp(1, EXCERPT / 2);
    let mut out = Vec::new();
    for r in (0..rows).filter(|&r| row_ok(r)) {
        for c in 0..per_row {
            if out.len() < EXCERPT {
                out.push((r, c));
            }
        }
    }
    if out.is_empty() {
        out = (0..cols.min(EXCERPT)).map(|c| (0, c)).collect();
    }
    out
}

/// The name of layer `layer`'s input: `x` for the first, `a{layer}` for the others.
pub fn input_name(layer: usize) -> String {
    if layer == 0 {
        "x".into()
    } else {
        format!("a{layer}")
    }
}
