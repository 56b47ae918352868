//! `simdnet evaluate`: practical 3, loss and accuracy of a saved model, then
//! its confusion matrix with per-digit precision and recall (as text, as one
//! JSON object with `--json`, and as an SVG heat map with `--confusion FILE`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::args::{Flag, Parsed};
use super::common::{self, DATA, MODEL, SPLIT, THREADS};
use super::CliError;
use crate::data::Split;
use crate::error::Error;
use crate::nn::confusion::Confusion;
use crate::nn::{model_file, Evaluation, Network};
use crate::plot::confusion_svg;
use crate::profile::json::Json;
use crate::safe_file;

// (The one-line summary stays as docs/TUTORIAL.md shows it in `simdnet --help`.)
pub const ABOUT: &str = "loss and accuracy of a saved model on the test (or training) set";

pub const FLAGS: &[Flag] = &[
    MODEL,
    SPLIT,
    Flag::value(
        "confusion",
        "FILE",
        None,
        "also draw the confusion matrix as an SVG heat map in FILE (e.g. confusion.svg)",
    ),
    Flag::switch("json", "print one JSON object instead of text"),
    THREADS,
    DATA,
];

/// What the heat map file is called in messages.
const HEAT_MAP: &str = "confusion heat map";

/// Everything `evaluate` measured.
struct Report<'a> {
    model: &'a Path,
    net: &'a Network,
    split: Split,
    examples: usize,
    eval: Evaluation,
    confusion: Confusion,
}

pub fn run(p: &Parsed) -> Result<(), CliError> {
    let path: PathBuf = p.required_path("model")?;
    let which = common::split(p)?;
    let heat_map = p.path("confusion")?;
    // Refuse a bad destination before any work.
    if let Some(dest) = &heat_map {
        safe_file::check_destination(dest, HEAT_MAP)?;
    }
    let net = model_file::load(&path)?;
    let data = common::load_data(p, which)?;
    let (confusion, eval) = common::with_threads(p, || -> crate::Result<_> {
        let confusion = Confusion::of(&net, &data)?;
        Ok((confusion, net.evaluate(&data)?))
    })??;
    if !eval.loss.is_finite() {
        return Err(Error::Invalid(format!(
            "the model's loss on these {} images is {}: its outputs overflow, so its numbers mean \
             nothing; retrain it, e.g. with a lower --lr",
            data.len(),
            eval.loss
        ))
        .into());
    }
    let report = Report {
        model: &path,
        net: &net,
        split: which,
        examples: data.len(),
        eval,
        confusion,
    };
    // The report first: a refused destination was caught before any work,
    // so what is left to fail here (a full disk) comes after the numbers.
    let json_out = p.switch("json");
    print!("{}", if json_out { json(&report) } else { text(&report) });
    if let Some(dest) = &heat_map {
        let svg = confusion_svg(
            &heat_map_title(&report),
            &report.confusion.rows(),
            &class_labels(&report.confusion),
        );
        safe_file::write_atomic(dest, svg.as_bytes(), HEAT_MAP)?;
        if !json_out {
            println!("\nSaved the confusion heat map to {}", dest.display());
        }
    }
    Ok(())
}

fn split_name(s: Split) -> &'static str {
    match s {
        Split::Train => "train",
        Split::Test => "test",
    }
}

fn class_labels(c: &Confusion) -> Vec<String> {
    (0..c.classes()).map(|i| i.to_string()).collect()
}

fn heat_map_title(r: &Report) -> String {
    let widths: Vec<String> = r.net.widths().iter().map(usize::to_string).collect();
    let dense_only = r.net.layers().iter().all(|l| l.as_dense().is_some());
    format!(
        "Confusion matrix: {}, {} set, accuracy {:.4}",
        if dense_only {
            widths.join("-")
        } else {
            crate::nn::spec::spec_of(r.net)
        },
        split_name(r.split),
        r.eval.accuracy
    )
}

/// A ratio with four decimals, or `-` for 0/0.
fn ratio_text(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

/// The text report: loss and accuracy, the matrix (one row per true digit), then per-digit scores.
fn text(r: &Report) -> String {
    let c = &r.confusion;
    let k = c.classes();
    let mut s = String::new();
    let _ = writeln!(s, "Model: {}", r.net.describe());
    let _ = writeln!(s, "Examples: {}", r.examples);
    let _ = writeln!(s, "Loss: {:.4}", r.eval.loss);
    let _ = writeln!(s, "Accuracy: {:.4}", r.eval.accuracy);

    let widest = (0..k)
        .flat_map(|t| c.row(t).iter())
        .map(|n| n.to_string().len())
        .max()
        .unwrap_or(1);
    let w = widest.max(k.saturating_sub(1).to_string().len()).max(4) + 1;
    let _ = writeln!(
        s,
        "\nConfusion matrix (row: true digit, column: predicted digit):"
    );
    let _ = write!(s, "{:>10}", "true\\pred");
    for p in 0..k {
        let _ = write!(s, "{p:>w$}");
    }
    s.push('\n');
    for t in 0..k {
        let _ = write!(s, "{t:>10}");
        for n in c.row(t) {
            let _ = write!(s, "{n:>w$}");
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "\nPer digit (precision: right / predicted as the digit; recall: right / images of the digit):"
    );
    let _ = writeln!(
        s,
        "{:>5} {:>10} {:>8} {:>8}",
        "digit", "precision", "recall", "support"
    );
    for d in 0..k {
        let _ = writeln!(
            s,
            "{d:>5} {:>10} {:>8} {:>8}",
            ratio_text(c.precision(d)),
            ratio_text(c.recall(d)),
            c.support(d)
        );
    }
    s
}

/// A JSON number (`null` when not finite or 0/0).
fn json_num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => "null".into(),
    }
}

/// A JSON string, escaped by the profile's JSON writer.
fn json_str(s: &str) -> String {
    Json::str(s).render().trim_end().to_string()
}

/// The report as one JSON object, the matrix one row per line.
fn json(r: &Report) -> String {
    let c = &r.confusion;
    let k = c.classes();
    let mut s = String::from("{\n");
    let _ = writeln!(s, "  \"model\": {},", json_str(&r.model.display().to_string()));
    let _ = writeln!(s, "  \"architecture\": {},", json_str(&r.net.describe()));
    let _ = writeln!(s, "  \"split\": {},", json_str(split_name(r.split)));
    let _ = writeln!(s, "  \"examples\": {},", r.examples);
    let _ = writeln!(s, "  \"loss\": {},", json_num(Some(r.eval.loss)));
    let _ = writeln!(s, "  \"accuracy\": {},", json_num(Some(r.eval.accuracy)));
    s.push_str("  \"confusion\": [\n");
    for t in 0..k {
        let row: Vec<String> = c.row(t).iter().map(u64::to_string).collect();
        let _ = writeln!(s, "    [{}]{}", row.join(", "), if t + 1 < k { "," } else { "" });
    }
    s.push_str("  ],\n  \"per_class\": [\n");
    for d in 0..k {
        let _ = writeln!(
            s,
            "    {{\"digit\": {d}, \"precision\": {}, \"recall\": {}, \"support\": {}}}{}",
            json_num(c.precision(d)),
            json_num(c.recall(d)),
            c.support(d),
            if d + 1 < k { "," } else { "" }
        );
    }
    s.push_str("  ]\n}\n");
    s
}
