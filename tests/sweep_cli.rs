//! `simdnet sweep`, end to end through the binary: the table's header and
//! rows, the blank handout, CSV, determinism, seeds, and bad grid
//! specifications. Runs are small (`--limit 2000`, narrow layers, 1 epoch).

mod common;

use std::path::PathBuf;

use common::expect;

fn temp(name: &str) -> PathBuf {
    common::temp_file("sweep", name)
}

/// A small, fast sweep: the flags every training test starts from.
const SMALL: &[&str] = &["sweep", "--limit", "2000", "--quiet"];

fn small(extra: &[&str]) -> Vec<String> {
    SMALL.iter().chain(extra).map(|s| s.to_string()).collect()
}

fn run_small(extra: &[&str], code: i32) -> (String, String) {
    let args = small(extra);
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    expect(&refs, code)
}

const HEADER: &str = "| Network architecture | Activation functions | Epochs | Other comments | Accuracy | Validation accuracy | Parameters | Training time |";

/// The table's data rows, each as its cells.
fn rows(out: &str) -> Vec<Vec<String>> {
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(HEADER), "{out}");
    assert_eq!(lines.next(), Some("|---|---|---|---|---|---|---|---|"), "{out}");
    lines
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// A minimal RFC 4180 reader: fields, with `"..."` quoting and `""` escapes.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let (mut fields, mut cur, mut quoted) = (Vec::new(), String::new(), false);
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    chars.next();
                    cur.push('"');
                }
                ('"', _) => quoted = !quoted,
                (',', false) => fields.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        fields.push(cur);
        rows.push(fields);
    }
    rows
}

#[test]
fn the_table_has_one_row_per_combination_of_alternatives() {
    let (out, _) = run_small(
        &[
            "--layers",
            "8",
            "--layers",
            "8,8",
            "--activation",
            "relu",
            "--activation",
            "tanh",
            "--epochs",
            "1",
            "--optimizer",
            "adam",
        ],
        0,
    );
    let rows = rows(&out);
    assert_eq!(rows.len(), 4, "2 x 2 x 1 x 1 rows:\n{out}");
    let firsts: Vec<[&str; 4]> = rows
        .iter()
        .map(|r| [r[0].as_str(), r[1].as_str(), r[2].as_str(), r[3].as_str()])
        .collect();
    assert_eq!(
        firsts,
        vec![
            ["(8, 10)", "ReLU, softmax", "1", "Scaled inputs, Adam"],
            ["(8, 10)", "tanh, softmax", "1", "Scaled inputs, Adam"],
            ["(8, 8, 10)", "ReLU, ReLU, softmax", "1", "Scaled inputs, Adam"],
            ["(8, 8, 10)", "tanh, tanh, softmax", "1", "Scaled inputs, Adam"],
        ]
    );
    for r in &rows {
        assert_eq!(r.len(), 8, "{r:?}");
        assert!(r[4].ends_with('%') && r[5].ends_with('%'), "{r:?}");
    }
    assert_eq!(rows[0][6], "6370");
    assert_eq!(rows[2][6], "6442");
    assert!(
        out.contains("Accuracy: on the 10000 test images. Validation accuracy: on the last 200 training images, held out. Seed 1."),
        "{out}"
    );
}

#[test]
fn blank_prints_the_handout_table_without_data() {
    // A missing data folder proves nothing is loaded.
    let (out, err) = expect(&["sweep", "--blank", "--data", "/nonexistent"], 0);
    let empty = "|  |  |  |  |  |\n".repeat(8);
    assert_eq!(
        out,
        format!(
            "| Network architecture | Activation functions | Epochs | Other comments | Accuracy |\n\
             |---|---|---|---|---|\n\
             | (16, 16, 10) | ReLU, ReLU, softmax | 4 | Scaled inputs | 93% |\n{empty}"
        )
    );
    assert_eq!(err, "");
}

#[test]
fn csv_has_the_same_rows_as_the_markdown() {
    let csv = temp("table.csv");
    let (out, _) = run_small(
        &[
            "--layers",
            "8",
            "--layers",
            "",
            "--epochs",
            "1",
            "--csv",
            csv.to_str().unwrap(),
        ],
        0,
    );
    let md = rows(&out);
    let text = std::fs::read_to_string(&csv).unwrap();
    let csv = csv_rows(&text);
    assert_eq!(
        csv[0],
        HEADER
            .trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(csv[1..], md[..], "CSV:\n{text}\nMarkdown:\n{out}");
    assert_eq!(md.len(), 2);
    assert_eq!(md[1][0], "(10)");
    assert_eq!(md[1][1], "softmax");
}

/// Every cell but the training time.
fn without_time(rows: &[Vec<String>]) -> Vec<Vec<String>> {
    rows.iter().map(|r| r[..r.len() - 1].to_vec()).collect()
}

#[test]
fn a_seed_fixes_the_table_whatever_the_thread_count() {
    let args = ["--layers", "8", "--layers", "16", "--epochs", "1", "--seed", "7"];
    let (a, _) = run_small(&[&args[..], &["--threads", "1"]].concat(), 0);
    let (b, _) = run_small(&[&args[..], &["--threads", "2"]].concat(), 0);
    assert_eq!(without_time(&rows(&a)), without_time(&rows(&b)));
    let (c, _) = run_small(&[&args[..7], &["8"]].concat(), 0);
    assert_ne!(
        without_time(&rows(&a)),
        without_time(&rows(&c)),
        "seed 8 should differ"
    );
}

/// `94.2%` as 94.2; `94.2% ± 0.3` as (94.2, Some(0.3)).
fn percent(cell: &str) -> (f64, Option<f64>) {
    let (m, sd) = match cell.split_once("% ± ") {
        Some((m, sd)) => (m, Some(sd.parse().unwrap())),
        None => (cell.trim_end_matches('%'), None),
    };
    (m.parse().unwrap(), sd)
}

#[test]
fn seeds_give_mean_and_spread_of_the_single_seed_rows() {
    let base = ["--layers", "8", "--epochs", "1"];
    let (two, _) = run_small(&[&base[..], &["--seeds", "2"]].concat(), 0);
    let (s1, _) = run_small(&[&base[..], &["--seed", "1"]].concat(), 0);
    let (s2, _) = run_small(&[&base[..], &["--seed", "2"]].concat(), 0);
    let (mean, sd) = percent(&rows(&two)[0][4]);
    let (a, _) = percent(&rows(&s1)[0][4]);
    let (b, _) = percent(&rows(&s2)[0][4]);
    assert!((mean - (a + b) / 2.0).abs() <= 0.1, "{mean} vs {a} and {b}");
    let expected_sd = (a - b).abs() / 2f64.sqrt();
    assert!(
        (sd.unwrap() - expected_sd).abs() <= 0.15,
        "{sd:?} vs {expected_sd}"
    );
    assert!(percent(&rows(&two)[0][5]).1.is_some(), "{two}");
    assert!(two.contains("Mean ± standard deviation over seeds 1-2."), "{two}");
}

#[test]
fn a_grid_file_gives_one_row_per_line() {
    let g = temp("good.grid");
    std::fs::write(
        &g,
        "# the workshop's questions\n--layers 8 --epochs 1\n\n--layers \"\" --epochs 1   # no hidden layer\n--layers 8,8 --activation tanh --epochs=1 --optimizer sgd --lr 0.1\n",
    )
    .unwrap();
    let (out, _) = run_small(&["--grid", g.to_str().unwrap()], 0);
    let rows = rows(&out);
    let cols: Vec<(&str, &str)> = rows.iter().map(|r| (r[0].as_str(), r[3].as_str())).collect();
    assert_eq!(
        cols,
        vec![
            ("(8, 10)", "Scaled inputs"),
            ("(10)", "Scaled inputs"),
            ("(8, 8, 10)", "Scaled inputs, SGD, lr 0.1"),
        ]
    );
}

/// Writes `text` as a grid file and runs a sweep on it: it must fail with exit 2
/// and the message; returns the message line.
fn bad_grid(name: &str, text: &str, message: &str) {
    let g = temp(name);
    std::fs::write(&g, text).unwrap();
    let (out, err) = run_small(&["--grid", g.to_str().unwrap()], 2);
    let first = err.lines().next().unwrap_or("");
    assert_eq!(
        first,
        format!("error: grid file '{}' {message}", g.display()),
        "stderr:\n{err}"
    );
    assert_eq!(out, "", "nothing trained");
}

#[test]
fn bad_grid_files_are_usage_errors_with_their_line() {
    bad_grid(
        "unknown.grid",
        "--layers 8\n# ok\n--layers 8 --epoch 2\n",
        "line 3: unknown flag '--epoch' for `simdnet sweep` (did you mean --epochs?)",
    );
    bad_grid(
        "value.grid",
        "--layers 8,x\n",
        "line 1: invalid --layers '8,x': 'x': invalid digit found in string (expected widths like 16,16)",
    );
    bad_grid(
        "twice.grid",
        "\n--epochs 1 --epochs 2\n",
        "line 2: --epochs is given 2 times; a line is one row (put alternatives on separate lines)",
    );
    bad_grid(
        "empty.grid",
        "# nothing\n\n",
        "has no rows: write one row per line as train flags, e.g. --layers 64,64 --activation tanh --epochs 10",
    );
    bad_grid(
        "many.grid",
        &"--epochs 1\n".repeat(501),
        "has more than 500 rows: split it into smaller sweeps",
    );
    bad_grid(
        "lines.grid",
        &"#\n".repeat(1001),
        "has 1001 lines, more than 1000",
    );
    bad_grid(
        "big.grid",
        &"#".repeat(64 * 1024 + 1),
        "is larger than 64 KiB: a grid has at most 500 rows, one per line",
    );
    bad_grid("quote.grid", "--layers \"8\n", "line 1: a quote \" is not closed");
    // What a line quotes back is escaped: an escape sequence from the file
    // would act on the terminal, a right-to-left override reorder the line
    // (fuzz target `grid`).
    bad_grid(
        "escape.grid",
        "--layers 8 --epochs\u{1b}[2J 2\n",
        "line 1: unknown flag '--epochs\\u{1b}[2J' for `simdnet sweep` (did you mean --epochs?)",
    );
    bad_grid(
        "override.grid",
        "--optimizer ad\u{202e}am\n",
        "line 1: invalid --optimizer 'ad\\u{202e}am': unknown optimizer 'ad\\u{202e}am': expected one of sgd, momentum, rmsprop, adam",
    );
}

#[test]
fn bad_axis_flags_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["--epochs", "0"], "error: invalid --epochs '0': epochs must be 1 to 10000, got 0"),
        (&["--scale", "maybe"], "error: invalid --scale 'maybe': 'maybe': expected on (pixels / 255) or off (raw 0-255)"),
        (&["--dropout", "1"], "error: invalid --dropout '1': the dropout rate must be at least 0 and below 1, got 1"),
        (&["--optimizer", "adagrad"], "error: invalid --optimizer 'adagrad': unknown optimizer 'adagrad': expected one of sgd, momentum, rmsprop, adam"),
        (
            &["--layers", "8,8,8", "--activation", "relu,tanh"],
            "error: --activation lists 2 activations but --layers 8,8,8 has 3 hidden layers: give one activation for every layer, or one per layer",
        ),
        (&["--seeds", "0"], "error: --seeds must be 1 to 100, got 0"),
        (
            &["--layers", "8", "--layers", "20000,20000"],
            "error: row 2: a (20000, 20000, 10) network has 415920010 parameters, more than simdnet trains (268435456): use narrower layers",
        ),
        (
            &["--grid", "x.grid", "--epochs", "1"],
            "error: give the rows either with --grid x.grid or with axis flags (--layers, --epochs, ...), not both",
        ),
    ];
    for (args, message) in cases {
        let (out, err) = run_small(args, 2);
        assert_eq!(err.lines().next(), Some(*message), "{args:?}:\n{err}");
        assert_eq!(out, "");
    }
    // (not through run_small: a second --limit would be refused as given twice)
    let (_, err) = expect(&["sweep", "--limit", "5", "--quiet"], 2);
    assert_eq!(err.lines().next(), Some("error: 5 training images are too few: sweep holds out the last 10% of them for validation; use --limit 10 or more"));
    // 3 x 13 x 13 alternatives: more than 500 rows.
    let mut many: Vec<String> = Vec::new();
    for f in ["8", "9", "10"] {
        many.extend(["--layers".into(), f.into()]);
    }
    for e in 1..=13 {
        many.extend(["--epochs".into(), e.to_string(), "--batch".into(), e.to_string()]);
    }
    let refs: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
    let (_, err) = run_small(&refs, 2);
    assert_eq!(
        err.lines().next(),
        Some("error: the grid has more than 500 rows (at --batch): give fewer alternatives")
    );
}

#[test]
fn a_bad_csv_destination_is_refused_before_any_data_or_training() {
    let missing = temp("no-such-folder").join("t.csv");
    // With a data folder that does not exist either: the CSV check comes first.
    let (out, err) = run_small(
        &[
            "--epochs",
            "1",
            "--csv",
            missing.to_str().unwrap(),
            "--data",
            "/nonexistent",
        ],
        1,
    );
    assert!(
        err.starts_with(&format!(
            "error: cannot save the sweep table to '{}'",
            missing.display()
        )),
        "{err}"
    );
    assert_eq!(out, "");
    assert!(!err.contains("[1/"), "no row may start: {err}");
}

#[test]
fn raw_inputs_train_a_row_of_their_own() {
    let (out, _) = run_small(
        &[
            "--layers", "8", "--epochs", "1", "--scale", "on", "--scale", "off",
        ],
        0,
    );
    let rows = rows(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][3], "Scaled inputs");
    assert_eq!(rows[1][3], "Raw 0-255 inputs");
    assert!(rows[1][4].ends_with('%'), "{out}");
    assert_ne!(rows[0][4], rows[1][4], "the scale changes the result: {out}");
}

#[test]
fn plot_draws_one_bar_per_trained_row() {
    let svg = temp("sweep.svg");
    let (out, _) = run_small(
        &[
            "--layers",
            "8",
            "--layers",
            "8,8",
            "--epochs",
            "1",
            "--plot",
            svg.to_str().unwrap(),
        ],
        0,
    );
    let rows = rows(&out);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") || text.starts_with("<?xml"), "{text}");
    for r in &rows {
        // Each bar is labelled with its value, as the table prints it (one decimal).
        let pct = r[4].trim_end_matches('%');
        assert!(text.contains(pct), "bar for {pct} missing");
    }
    assert!(text.contains("Test accuracy per row of the sweep"));
}

/// Runs a small sweep of two rows, `flags` (split at spaces) giving its
/// flags: the first row trains, the second is listed as not trained, for
/// the reason `why`.
fn second_row_not_trained(flags: &str, why: &str) -> Vec<Vec<String>> {
    let args: Vec<&str> = flags.split_whitespace().collect();
    let (out, _) = run_small(&args, 0);
    let rows = rows(&out);
    assert!(rows[0][4].ends_with('%'), "{out}");
    assert_eq!(rows[1][4], "not trained", "{out}");
    assert!(
        out.contains(&format!("Row 2 was not trained: with seed 1, {why}")),
        "{out}"
    );
    rows
}

#[test]
fn a_row_that_diverges_is_listed_and_the_sweep_goes_on() {
    let rows = second_row_not_trained(
        "--layers 8 --epochs 1 --optimizer sgd --activation identity --lr 0.01 --lr 1e30",
        "training diverged: the loss became NaN at epoch 1",
    );
    assert_eq!(rows[1][3], "Scaled inputs, SGD, lr 1e30");
}

/// A row whose one update leaves a weight infinite (the step's loss was
/// still finite) is listed as diverged too, and the sweep goes on.
#[test]
fn a_row_whose_update_overflows_the_weights_is_listed_and_the_sweep_goes_on() {
    second_row_not_trained(
        "--layers 8 --epochs 1 --optimizer sgd --scale off --batch 4096 --lr 1e-6 --lr 3e38",
        "training diverged: a weight of layer 0 became NaN or infinite by epoch 1, step 1",
    );
}

/// A row whose one update leaves the weights finite but so large that the
/// outputs overflow is listed as diverged, not as 9.8% (the share of the
/// digit 0, which NaN outputs are taken for), and the sweep goes on.
#[test]
fn a_row_whose_outputs_overflow_is_listed_and_the_sweep_goes_on() {
    second_row_not_trained(
        "--layers 8 --epochs 1 --optimizer sgd --scale off --batch 4096 --lr 1e-6 --lr 1e20",
        "training diverged: the loss on the validation set became NaN at the end of epoch 1",
    );
}

#[test]
fn progress_goes_to_stderr_one_plain_line_per_row() {
    let (out, err) = expect(
        &[
            "sweep",
            "--limit",
            "2000",
            "--layers",
            "8",
            "--layers",
            "8",
            "--epochs",
            "1",
            "--threads",
            "1",
        ],
        0,
    );
    // (A tuning file in the folder adds a line about it first.)
    let lines: Vec<&str> = err.lines().skip_while(|l| !l.starts_with("Sweep:")).collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(
        lines[0].starts_with(
            "Sweep: 2 rows x 1 seed, 1 thread; 1800 training images, 200 held out for validation, 10000 test images. Planned work: about "
        ),
        "{err}"
    );
    assert!(
        lines[1].starts_with("[1/2] (8, 10) relu 1 epoch ... about "),
        "{err}"
    );
    assert!(
        lines[2].starts_with("[2/2] (8, 10) relu 1 epoch ... about "),
        "{err}"
    );
    assert!(lines[3].starts_with("Swept 2 rows in "), "{err}");
    assert!(!out.contains("[1/2]") && !err.contains('\r'));
    let (_, quiet) = run_small(&["--layers", "8", "--epochs", "1"], 0);
    assert_eq!(quiet, "");
}
