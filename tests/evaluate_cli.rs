//! `simdnet evaluate` through the binary, on a model trained in the test:
//! the confusion matrix sums to the test set's size, its diagonal over the
//! total is the printed accuracy, precision and recall agree with the
//! counts, `--json` says the same as the text, `--confusion` writes an SVG
//! that parses, a bad destination is refused before any evaluation, and a
//! model whose outputs overflow gets a clear error instead of a NaN loss.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::expect;
use simdnet::matrix::Matrix;
use simdnet::nn::{model_file, Activation, Dense, Layer, Network};

fn temp(name: &str) -> PathBuf {
    common::temp_file("evaluate", name)
}

/// A small model, trained once for all the tests of this file.
fn model() -> &'static str {
    static MODEL: OnceLock<String> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = temp("model.simdnet");
        let p = path.to_str().unwrap().to_string();
        expect(
            &[
                "train", "--epochs", "1", "--limit", "3000", "--quiet", "--save", &p,
            ],
            0,
        );
        p
    })
}

/// The value after `key` on the line that starts with it.
fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no '{key}' in:\n{out}"))
        .trim()
}

/// The text report's matrix: the 10 lines after the `true\pred` header.
fn text_matrix(out: &str) -> Vec<Vec<u64>> {
    let mut lines = out
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("true\\pred"));
    let header: Vec<&str> = lines
        .next()
        .expect("a matrix header")
        .split_whitespace()
        .collect();
    assert_eq!(header[1..], ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    (0..10)
        .map(|t| {
            let cols: Vec<u64> = lines
                .next()
                .unwrap()
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            assert_eq!(cols[0], t, "row {t} is labelled {}", cols[0]);
            assert_eq!(cols.len(), 11);
            cols[1..].to_vec()
        })
        .collect()
}

/// The per-digit lines: (digit, precision, recall, support).
fn text_per_digit(out: &str) -> Vec<(usize, String, String, u64)> {
    let mut lines = out
        .lines()
        .skip_while(|l| !l.contains("precision") || !l.contains("support"));
    assert!(lines.next().is_some());
    (0..10)
        .map(|_| {
            let f: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                f[1].to_string(),
                f[2].to_string(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

/// The number after `"key":` in a JSON text (the first occurrence from `from`).
fn json_number(json: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\": ");
    let at = json.find(&pat).unwrap_or_else(|| panic!("no {key} in {json}")) + pat.len();
    let end = json[at..].find([',', '\n', '}']).unwrap() + at;
    json[at..end].trim().parse().unwrap()
}

#[test]
fn the_matrix_text_json_and_heat_map_agree() {
    let m = model();
    let svg = temp("confusion.svg");
    let (out, _) = expect(
        &["evaluate", "--model", m, "--confusion", svg.to_str().unwrap()],
        0,
    );
    let examples: u64 = value(&out, "Examples:").parse().unwrap();
    let accuracy: f64 = value(&out, "Accuracy:").parse().unwrap();
    let loss: f64 = value(&out, "Loss:").parse().unwrap();
    assert_eq!(examples, 10000);
    let matrix = text_matrix(&out);
    let total: u64 = matrix.iter().flatten().sum();
    assert_eq!(total, examples, "the matrix counts every test image once");
    let diagonal: u64 = (0..10).map(|d| matrix[d][d]).sum();
    assert!(
        ((diagonal as f64 / total as f64) - accuracy).abs() <= 5e-5,
        "{diagonal}/{total} vs {accuracy}"
    );
    for (d, precision, recall, support) in text_per_digit(&out) {
        let row: u64 = matrix[d].iter().sum();
        let column: u64 = matrix.iter().map(|r| r[d]).sum();
        assert_eq!(support, row, "digit {d}");
        assert_eq!(
            precision,
            format!("{:.4}", matrix[d][d] as f64 / column as f64),
            "digit {d}"
        );
        assert_eq!(
            recall,
            format!("{:.4}", matrix[d][d] as f64 / row as f64),
            "digit {d}"
        );
    }
    assert!(out.contains(&format!("Saved the confusion heat map to {}", svg.display())));

    // --json: one object with the same numbers.
    let (json, _) = expect(&["evaluate", "--model", m, "--json"], 0);
    assert!(json.starts_with('{') && json.trim_end().ends_with('}'), "{json}");
    assert!(
        json.contains(&format!("\"model\": \"{m}\"")) && json.contains("\"split\": \"test\""),
        "{json}"
    );
    assert_eq!(json_number(&json, "examples"), 10000.0);
    assert_eq!(json_number(&json, "accuracy"), diagonal as f64 / total as f64);
    assert!((json_number(&json, "loss") - loss).abs() <= 5e-5);
    let rows: Vec<Vec<u64>> = json
        .lines()
        .filter(|l| l.trim_start().starts_with('['))
        .map(|l| {
            l.trim()
                .trim_end_matches(',')
                .trim_matches(['[', ']'])
                .split(", ")
                .map(|x| x.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(rows, matrix);
    let per_class: Vec<&str> = json.lines().filter(|l| l.contains("\"digit\"")).collect();
    assert_eq!(per_class.len(), 10);
    for (d, line) in per_class.iter().enumerate() {
        let row: u64 = matrix[d].iter().sum();
        let column: u64 = matrix.iter().map(|r| r[d]).sum();
        assert_eq!(json_number(line, "digit"), d as f64);
        assert_eq!(json_number(line, "support"), row as f64);
        assert_eq!(
            json_number(line, "precision"),
            matrix[d][d] as f64 / column as f64
        );
        assert_eq!(json_number(line, "recall"), matrix[d][d] as f64 / row as f64);
    }

    // The same on one thread as on two.
    let (one, _) = expect(&["evaluate", "--model", m, "--json", "--threads", "1"], 0);
    let (two, _) = expect(&["evaluate", "--model", m, "--json", "--threads", "2"], 0);
    assert_eq!(one, two);

    // The heat map: 100 cells holding the same counts.
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let cells: Vec<u64> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("cell"))
        .map(|n| n.attribute("data-count").unwrap().parse().unwrap())
        .collect();
    assert_eq!(cells, matrix.concat());
    assert!(
        text.contains(&format!("accuracy {accuracy:.4}")),
        "the title gives the accuracy"
    );
}

#[test]
fn a_bad_destination_is_refused_before_evaluating() {
    let m = model();
    let folder = temp("a-folder");
    std::fs::create_dir_all(&folder).unwrap();
    let target = temp("target.txt");
    std::fs::write(&target, "keep me").unwrap();
    let link = temp("link.svg");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let missing = temp("no-such-folder/c.svg");
    for (dest, why) in [
        (&missing, "folder"),
        (&folder, "folder"),
        (&link, "symbolic link"),
    ] {
        let (out, err) = expect(
            &["evaluate", "--model", m, "--confusion", dest.to_str().unwrap()],
            1,
        );
        assert!(out.is_empty(), "nothing is evaluated:\n{out}");
        assert!(
            err.starts_with(&format!(
                "error: cannot save the confusion heat map to '{}'",
                dest.display()
            )),
            "{err}"
        );
        assert!(err.contains(why), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    let (_, err) = expect(&["evaluate", "--model", m, "--confusion"], 2);
    assert!(err.contains("--confusion needs a value"), "{err}");
}

#[test]
fn outputs_that_overflow_are_named_not_printed_as_nan() {
    // Finite weights so large that every logit overflows to infinity.
    let w = Matrix::from_fn(784, 10, |_, _| 3.0e38);
    let layer = Layer::Dense(Dense {
        w,
        b: vec![0.0; 10],
        act: Activation::Identity,
    });
    let net = Network::from_layers(784, vec![layer]).unwrap();
    let path = temp("huge.simdnet");
    model_file::save(&net, Path::new(&path)).unwrap();
    let (out, err) = expect(&["evaluate", "--model", path.to_str().unwrap()], 1);
    assert!(!out.contains("NaN") && !out.contains("Loss:"), "{out}");
    assert!(
        err.contains("the model's outputs are not finite (NaN or infinity) for 10000 of 10000 images")
            && err.contains("retrain"),
        "{err}"
    );
}
