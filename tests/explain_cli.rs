//! `simdnet explain`, run as a user runs it: the built binary, its output and exit codes.
//!
//! The numbers it prints are checked against [`reference_step`], a plain
//! re-implementation of one training step of the tiny 3-4-2 network written in
//! this file: it shares no code with `simdnet::teach`, which `explain` prints.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::DATA;
use simdnet::data::idx;

fn explain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .arg("explain")
        .args(args)
        .output()
        .expect("run simdnet")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The two numbers of the line `loss before the step B, after A: ...`.
fn losses(text: &str) -> (f64, f64) {
    let line = text
        .lines()
        .find(|l| l.starts_with("loss before the step "))
        .unwrap_or_else(|| panic!("no loss line in:\n{text}"));
    let rest = line.trim_start_matches("loss before the step ");
    let (before, rest) = rest.split_once(", after ").unwrap();
    let after = rest.split(':').next().unwrap();
    (before.parse().unwrap(), after.parse().unwrap())
}

// ---------------------------------------------------------------- the reference

/// The tiny network's weights and batch, copied from the lesson (`NetworkF64::tiny`,
/// `tiny_batch`): W1 (3, 4), b1 (4), W2 (4, 2), b2 (2), x (2, 3), labels (2).
#[rustfmt::skip]
const W1: [f64; 12] = [0.1, -0.2, 0.3, 0.0, -0.4, 0.5, 0.1, 0.2, 0.2, 0.1, -0.3, 0.4];
const B1: [f64; 4] = [0.1, 0.0, -0.1, 0.0];
const W2: [f64; 8] = [0.3, -0.1, -0.2, 0.4, 0.5, -0.3, 0.1, 0.2];
const B2: [f64; 2] = [0.0, 0.1];
const X: [f64; 6] = [0.5, 1.0, 0.0, 1.0, 0.0, 0.5];
const LABELS: [usize; 2] = [1, 0];

/// `f(z)` and `f'(z)` by the activation's name.
fn f(act: &str, z: f64) -> (f64, f64) {
    match act {
        "relu" => (z.max(0.0), if z > 0.0 { 1.0 } else { 0.0 }),
        "sigmoid" => {
            let s = 1.0 / (1.0 + (-z).exp());
            (s, s * (1.0 - s))
        }
        "tanh" => (z.tanh(), 1.0 / z.cosh().powi(2)),
        "identity" => (z, 1.0),
        _ => panic!("{act}"),
    }
}

/// What one step of the tiny network gives, computed here.
struct Reference {
    p: Vec<f64>,
    losses: Vec<f64>,
    loss: f64,
    da2: Vec<f64>,
    dz1: Vec<f64>,
    dw1: Vec<f64>,
    dw2: Vec<f64>,
    db1: Vec<f64>,
    w1_after: Vec<f64>,
    b1_after: Vec<f64>,
    w2_after: Vec<f64>,
    b2_after: Vec<f64>,
    loss_after: f64,
}

/// Softmax probabilities and the mean cross-entropy of the tiny batch for these weights.
fn tiny_loss(
    act: &str,
    w1: &[f64],
    b1: &[f64],
    w2: &[f64],
    b2: &[f64],
) -> (Vec<f64>, Vec<f64>, f64, Vec<f64>) {
    let mut a1 = vec![0.0; 8];
    let mut p = vec![0.0; 4];
    let mut losses = vec![0.0; 2];
    for r in 0..2 {
        for j in 0..4 {
            let z: f64 = b1[j] + (0..3).map(|i| X[r * 3 + i] * w1[i * 4 + j]).sum::<f64>();
            a1[r * 4 + j] = f(act, z).0;
        }
        let logits: Vec<f64> = (0..2)
            .map(|k| b2[k] + (0..4).map(|i| a1[r * 4 + i] * w2[i * 2 + k]).sum::<f64>())
            .collect();
        let norm: f64 = logits.iter().map(|z| z.exp()).sum();
        for k in 0..2 {
            p[r * 2 + k] = logits[k].exp() / norm;
        }
        losses[r] = -p[r * 2 + LABELS[r]].ln();
    }
    let loss = (losses[0] + losses[1]) / 2.0;
    (p, losses, loss, a1)
}

/// The first step of `opt` (Keras' defaults) on a weight `w` with gradient `g`.
fn first_step(opt: &str, w: f64, g: f64) -> f64 {
    match opt {
        "sgd" => w - 0.01 * g,
        "momentum" => w + (0.9 * 0.0 - 0.01 * g),
        "rmsprop" => w - 0.001 * g / (0.1 * g * g + 1e-7).sqrt(),
        "adam" => {
            let (m, v) = (0.1 * g, 0.001 * g * g);
            let (m_hat, v_hat) = (m / (1.0 - 0.9), v / (1.0 - 0.999));
            w - 0.001 * m_hat / (v_hat.sqrt() + 1e-7)
        }
        _ => panic!("{opt}"),
    }
}

/// One training step of the tiny network: forward, loss, backward by the chain rule
/// written out per weight, the optimizer's first step, and the loss again.
fn reference_step(act: &str, opt: &str) -> Reference {
    let (p, losses, loss, a1) = tiny_loss(act, &W1, &B1, &W2, &B2);
    // dL/dlogit = (p - y) / 2
    let da2: Vec<f64> = (0..4)
        .map(|k| (p[k] - if LABELS[k / 2] == k % 2 { 1.0 } else { 0.0 }) / 2.0)
        .collect();
    let mut dw2 = vec![0.0; 8];
    let mut db2 = vec![0.0; 2];
    let mut dz1 = vec![0.0; 8];
    for r in 0..2 {
        for k in 0..2 {
            db2[k] += da2[r * 2 + k];
            for i in 0..4 {
                dw2[i * 2 + k] += a1[r * 4 + i] * da2[r * 2 + k];
            }
        }
        for i in 0..4 {
            let z: f64 = B1[i] + (0..3).map(|c| X[r * 3 + c] * W1[c * 4 + i]).sum::<f64>();
            let da1: f64 = (0..2).map(|k| da2[r * 2 + k] * W2[i * 2 + k]).sum();
            dz1[r * 4 + i] = da1 * f(act, z).1;
        }
    }
    let mut dw1 = vec![0.0; 12];
    let mut db1 = vec![0.0; 4];
    for r in 0..2 {
        for j in 0..4 {
            db1[j] += dz1[r * 4 + j];
            for i in 0..3 {
                dw1[i * 4 + j] += X[r * 3 + i] * dz1[r * 4 + j];
            }
        }
    }
    let step = |w: &[f64], g: &[f64]| -> Vec<f64> {
        w.iter().zip(g).map(|(&w, &g)| first_step(opt, w, g)).collect()
    };
    let (w1_after, b1_after) = (step(&W1, &dw1), step(&B1, &db1));
    let (w2_after, b2_after) = (step(&W2, &dw2), step(&B2, &db2));
    let loss_after = tiny_loss(act, &w1_after, &b1_after, &w2_after, &b2_after).2;
    Reference {
        p,
        losses,
        loss,
        da2,
        dz1,
        dw1,
        dw2,
        db1,
        w1_after,
        b1_after,
        w2_after,
        b2_after,
        loss_after,
    }
}

/// The last number of the first line that starts with `prefix` (e.g. the `X` of
/// `    dW1[0,0] = ... = X`).
fn printed(text: &str, prefix: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with '{prefix}' in:\n{text}"));
    last_number(line)
}

/// The numbers after the `=` of the first line that starts with `prefix` (a row of values).
fn printed_row(text: &str, prefix: &str) -> Vec<f64> {
    let line = text
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with '{prefix}' in:\n{text}"));
    line[prefix.len()..]
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect()
}

fn last_number(line: &str) -> f64 {
    let word = line.rsplit([' ', '=']).find(|w| !w.is_empty()).unwrap();
    word.parse()
        .unwrap_or_else(|e| panic!("no number at the end of '{line}': {e}"))
}

/// The value of weight `name` after the update, as printed: the last number of the
/// `w = ...` line of its update (SGD writes it on the name's own line).
fn printed_after(text: &str, name: &str) -> f64 {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(&format!("  {name} ")))
        .unwrap_or_else(|| panic!("no update of {name} in:\n{text}"));
    if lines[start].starts_with(&format!("  {name} = ")) {
        return last_number(lines[start]);
    }
    let w_line = lines[start + 1..]
        .iter()
        .find(|l| {
            let l = l.trim_start();
            l.starts_with("w = ") || l.starts_with("b = ")
        })
        .unwrap();
    last_number(w_line)
}

/// A printed number agrees with the reference to its 6 printed decimals.
fn check(what: &str, printed: f64, reference: f64) {
    assert!(
        (printed - reference).abs() <= 0.5e-6 + 1e-12,
        "{what}: explain printed {printed}, the reference computes {reference:.9}"
    );
}

/// Every number the reference has, against what explain printed for `act` and `opt`.
fn check_against_the_reference(text: &str, act: &str, opt: &str) {
    let r = reference_step(act, opt);
    let what = |s: String| format!("{opt}/{act}: {s}");
    for row in 0..2 {
        check(
            &what(format!("L_{row}")),
            printed(text, &format!("  L_{row} = ")),
            r.losses[row],
        );
        for k in 0..2 {
            check(
                &what(format!("p[{row},{k}]")),
                printed(text, &format!("    p[{row},{k}] = ")),
                r.p[row * 2 + k],
            );
            check(
                &what(format!("da2[{row},{k}]")),
                printed(text, &format!("  da2[{row},{k}] = ")),
                r.da2[row * 2 + k],
            );
        }
        for i in 0..4 {
            // one line per number, or for the identity (dz1 = da1) one row of values
            let dz = if act == "identity" {
                printed_row(text, &format!("    dz1[{row}] = "))[i]
            } else {
                printed(text, &format!("    dz1[{row},{i}] = "))
            };
            check(&what(format!("dz1[{row},{i}]")), dz, r.dz1[row * 4 + i]);
        }
    }
    check(&what("mean loss".into()), printed(text, "mean loss L = "), r.loss);
    for i in 0..3 {
        for j in 0..4 {
            let (name, k) = (format!("W1[{i},{j}]"), i * 4 + j);
            check(
                &what(format!("d{name}")),
                printed(text, &format!("    d{name} = ")),
                r.dw1[k],
            );
            check(&what(name.clone()), printed_after(text, &name), r.w1_after[k]);
        }
    }
    for i in 0..4 {
        for j in 0..2 {
            let (name, k) = (format!("W2[{i},{j}]"), i * 2 + j);
            check(
                &what(format!("d{name}")),
                printed(text, &format!("    d{name} = ")),
                r.dw2[k],
            );
            check(&what(name.clone()), printed_after(text, &name), r.w2_after[k]);
        }
    }
    for j in 0..4 {
        check(
            &what(format!("db1[{j}]")),
            printed(text, &format!("    db1[{j}] = ")),
            r.db1[j],
        );
        check(
            &what(format!("b1[{j}]")),
            printed_after(text, &format!("b1[{j}]")),
            r.b1_after[j],
        );
    }
    for j in 0..2 {
        check(
            &what(format!("b2[{j}]")),
            printed_after(text, &format!("b2[{j}]")),
            r.b2_after[j],
        );
    }
    let (before, after) = losses(text);
    check(&what("loss before".into()), before, r.loss);
    check(&what("loss after".into()), after, r.loss_after);
    assert!(
        after < before,
        "{opt}/{act}: the step must go downhill: {before} -> {after}"
    );
}

// ---------------------------------------------------------------- the tests

#[test]
fn default_run_prints_the_hand_checkable_numbers_of_the_tiny_network() {
    let out = explain(&[]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);

    // by hand (see tests/teach.rs): L = (-ln 0.559714 - ln 0.509999) / 2 = 0.626839
    assert!(
        text.contains("  L_0 = -ln p[0,1] = -ln 0.559714 = 0.580330"),
        "{text}"
    );
    assert!(text.contains("mean loss L = (0.580330 + 0.673347) / 2 = 0.626839"));
    // the output error and a gradient: da2[0,0] = (0.440286 - 0) / 2, dW2[0,0] = Σ_r a1[r,0]·dz2[r,0]
    assert!(text.contains("  da2[0,0] = (0.440286 - 0) / 2 = 0.220143"));
    assert!(text.contains("  the forward pass was a2 = identity(z2), so dz2 = da2 ⊙ 1 = da2"));
    assert!(text.contains("    dW2[0,0] = 0.000000·0.220143 + 0.300000·(-0.245001) = -0.073500"));
    assert!(text.contains("    dW1[0,0] = 0.500000·0.000000 + 1.000000·(-0.098000) = -0.098000"));
    // relu' from the stored output a: the dead unit a1[0,0] = 0 passes nothing back
    assert!(text.contains("    dz1[0,0] = 0.088057·relu'(0.000000) = 0.088057·0.000000 = 0.000000"));
    // an update (SGD, lr 0.01): W2[0,0] = 0.3 - 0.01·(-0.0735) = 0.300735
    assert!(text.contains("  W2[0,0] = 0.300000 - 0.010000·(-0.073500) = 0.300735"));
    assert_eq!(losses(&text).0, 0.626839);

    // every other number, against this file's own implementation of the step
    check_against_the_reference(&text, "relu", "sgd");

    // every part is there, in order, and every line fits a terminal
    let parts: Vec<usize> = ["1. forward pass", "2. error", "3. backward pass", "4. update"]
        .iter()
        .map(|p| text.find(p).unwrap_or_else(|| panic!("no '{p}'")))
        .collect();
    assert!(parts.windows(2).all(|w| w[0] < w[1]));
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "too wide: {line}");
    }
}

#[test]
fn step_forward_prints_only_the_forward_part() {
    let out = explain(&["--step", "forward"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("1. forward pass"));
    // the output layer is the identity: its a are the logits, softmax comes with the loss
    assert!(text.contains("  a2[0] =   0.015000   0.255000"));
    for absent in [
        "2. error",
        "3. backward",
        "4. update",
        "p[0] =",
        "mean loss",
        "dW2",
        "loss before the step",
    ] {
        assert!(!text.contains(absent), "'{absent}' in --step forward output");
    }
}

#[test]
fn step_update_prints_only_the_update_and_the_loss_after() {
    let out = explain(&["--step=update"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("4. update (sgd, lr 0.010000)"));
    assert!(text.contains("W2[0,0] = 0.300000 - 0.010000·(-0.073500) = 0.300735"));
    assert!(!text.contains("1. forward pass") && !text.contains("3. backward pass"));
    let (before, after) = losses(&text);
    assert!(after < before);
}

/// Every optimizer with every activation: every gradient, every updated weight and
/// bias and the losses, against the reference in this file.
#[test]
fn every_optimizer_and_activation_matches_the_reference_step() {
    for opt in ["sgd", "momentum", "rmsprop", "adam"] {
        for act in ["relu", "sigmoid", "tanh", "identity"] {
            let out = explain(&["--optimizer", opt, "--activation", act]);
            assert!(out.status.success(), "{opt}/{act}: {}", stderr(&out));
            check_against_the_reference(&stdout(&out), act, opt);
        }
    }
}

#[test]
fn the_optimizer_formulas_show_the_hyper_parameters_used() {
    let text = stdout(&explain(&[
        "--optimizer",
        "adam",
        "--lr",
        "0.05",
        "--step",
        "update",
    ]));
    assert!(text.contains("4. update (adam, lr 0.050000)"));
    assert!(text.contains("(b1 0.9, b2 0.999; m, v start at 0)"));
    assert!(text.contains("m̂ = m / (1 - 0.9^1)"));
    assert!(text.contains("(eps 1e-7)"));
    // an explicit learning rate is used as given: W1[0,0]'s g is -0.098, so m̂/sqrt(v̂) = -1
    let w = printed_after(&text, "W1[0,0]");
    assert!((w - (0.1 + 0.05 * 0.098 / (0.098 + 1e-7))).abs() <= 0.5e-6, "{w}");
    let text = stdout(&explain(&["--optimizer", "rmsprop", "--step", "update"]));
    assert!(text.contains("v = rho·v + (1 - rho)·g²   (rho 0.9; v starts at 0)"));
    let text = stdout(&explain(&["--optimizer", "momentum", "--step", "update"]));
    assert!(text.contains("(momentum 0.9; v starts at 0)"));
}

#[test]
fn bad_command_lines_exit_2_without_a_panic() {
    for args in [
        vec!["--bogus"],
        vec!["--step", "sideways"],
        vec!["--optimizer", "adagrad"],
        vec!["--activation", "softplus"],
        vec!["--activation", "relu,tanh"],
        vec!["--lr", "0"],
        vec!["--lr", "-0.1"],
        vec!["--lr", "inf"],
        vec!["--lr", "NaN"],
        vec!["--digit", "-1"],
        vec!["--layers", "16,0"],
        vec!["--layers", "16,x"],
        vec!["--lr"],
    ] {
        let out = explain(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert!(stderr(&explain(&["--step", "sideways"])).contains("forward, error, backward, update, all"));
    assert!(stderr(&explain(&["--lr", "0"])).contains("--lr must be a positive finite number"));
    assert!(stderr(&explain(&["--activation", "relu,tanh"])).contains("2 activations for 1 hidden layers"));
}

#[test]
fn digit_0_explains_the_workshop_network_on_a_real_five() {
    let data = DATA.to_string();
    let out = explain(&["--digit", "0", "--data", &data]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("network    784 -> 16 -> 16 -> 10: the workshop network"));
    assert!(text.contains("MNIST training image 0 (label 5), 28x28 pixels flattened to 784"));
    assert!(text.contains("L_0 = -ln p[0,5]"));
    assert!(text.contains("166 of 784 pixels are nonzero"));
    // a large layer is summarised, not printed in full
    assert!(text.contains("all of dW1: 12544 numbers"));
    assert!(text.lines().count() < 400, "{} lines", text.lines().count());
    let (before, after) = losses(&text);
    assert!(after < before);
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "too wide: {line}");
    }
    // the same seed gives the same numbers, another seed other ones
    assert_eq!(stdout(&explain(&["--digit", "0", "--data", &data])), text);
    assert_ne!(
        stdout(&explain(&["--digit", "0", "--data", &data, "--seed", "2"])),
        text
    );
}

/// A fresh folder holding a training split of `n` images of `rows` x `cols` pixels
/// (raw IDX files, as tests/data.rs writes them).
fn synthetic_data(tag: &str, n: usize, rows: usize, cols: usize) -> PathBuf {
    let dir = common::scratch_root().join(format!("simdnet-explain-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut images = idx::IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [n, rows, cols] {
        images.extend_from_slice(&(d as u32).to_be_bytes());
    }
    images.extend((0..n * rows * cols).map(|i| ((i * 37) % 5 * 60) as u8));
    let mut labels = idx::LABELS_MAGIC.to_be_bytes().to_vec();
    labels.extend_from_slice(&(n as u32).to_be_bytes());
    labels.extend((0..n).map(|i| (i * 3 % 10) as u8));
    let (img, lbl) = simdnet::data::Split::Train.file_names();
    std::fs::write(dir.join(img.trim_end_matches(".gz")), images).unwrap();
    std::fs::write(dir.join(lbl.trim_end_matches(".gz")), labels).unwrap();
    dir
}

#[test]
fn digit_works_for_any_image_size_and_any_hidden_layers() {
    let dir = synthetic_data("5x7", 3, 5, 7);
    let data = dir.to_str().unwrap();
    for (layers, acts, sizes) in [
        ("16,16", "relu", "35 -> 16 -> 16 -> 10"),
        ("6,5", "relu,tanh", "35 -> 6 -> 5 -> 10"),
        ("", "relu", "35 -> 10"),
        ("40", "sigmoid", "35 -> 40 -> 10"),
    ] {
        let out = explain(&[
            "--digit",
            "1",
            "--data",
            data,
            "--layers",
            layers,
            "--activation",
            acts,
        ]);
        let (text, err) = (stdout(&out), stderr(&out));
        assert!(
            out.status.success() && !err.contains("panicked"),
            "--layers '{layers}': {err}"
        );
        assert!(text.contains(&format!("network    {sizes}: ")), "{text}");
        assert!(text.contains("MNIST training image 1 (label 3), 5x7 pixels flattened to 35, / 255"));
        // the image: 5 rows of 7 pixels
        let art: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.contains("'#' = ink > 0.5"))
            .skip(1)
            .take_while(|l| l.starts_with("    ") && !l.contains('='))
            .collect();
        assert_eq!(art.len(), 5, "{text}");
        assert!(
            art.iter().all(|l| l.trim_start().len() <= 14 && l.len() > 4),
            "{art:?}"
        );
        losses(&text);
        for line in text.lines() {
            assert!(line.chars().count() <= 100, "too wide: {line}");
        }
    }
    assert!(stdout(&explain(&[
        "--digit",
        "0",
        "--data",
        data,
        "--layers",
        "6,5",
        "--activation",
        "relu,tanh"
    ]))
    .contains("layers     hidden: dense + relu, tanh;"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_digit_past_the_data_or_a_missing_folder_is_a_run_error() {
    let out = explain(&["--digit", "60000", "--data", DATA]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--index 60000 is past the 60000 training images"));
    let out = explain(&["--digit", "0", "--data", "/no/such/folder"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--data DIR"));
}

#[test]
fn step_error_and_step_backward_print_their_part_only() {
    let text = stdout(&explain(&["--step", "error"]));
    assert!(text.contains("2. error") && text.contains("mean loss L = (0.580330 + 0.673347) / 2 = 0.626839"));
    assert!(text.contains("  p[0] =   0.440286   0.559714"));
    assert!(text.contains("accuracy: predicted class (largest p) [1, 0], labels [1, 0]: 2 of 2 right"));
    assert!(!text.contains("1. forward") && !text.contains("3. backward") && !text.contains("4. update"));
    let text = stdout(&explain(&["--step", "backward", "--activation", "sigmoid"]));
    assert!(text.contains("3. backward pass") && text.contains("sigmoid' = a·(1 - a)"));
    assert!(!text.contains("2. error") && !text.contains("4. update"));
}

// ---------------------------------------------------------------- round 2: check, shapes, lessons

/// The `error` column of every entry line of the check (`  dW1[0,0]  analytic  numeric  error`).
fn check_errors(text: &str) -> Vec<f64> {
    let part = &text[text.find("5. gradient check").expect("no check part")..];
    part.lines()
        .filter(|l| l.starts_with("  d") && l.contains('[') && l.split_whitespace().count() == 4)
        .map(|l| {
            let last = l.split_whitespace().last().unwrap();
            last.parse::<f64>()
                .unwrap_or_else(|e| panic!("no error at the end of '{l}': {e}"))
        })
        .collect()
}

#[test]
fn check_agrees_below_1e_6_for_every_activation_and_optimizer() {
    for act in ["relu", "sigmoid", "tanh", "identity"] {
        for opt in ["sgd", "momentum", "rmsprop", "adam"] {
            let o = explain(&["--check", "--activation", act, "--optimizer", opt]);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            let text = stdout(&o);
            let errors = check_errors(&text);
            // every entry of dW1 (12), db1 (4), dW2 (8), db2 (2)
            assert_eq!(errors.len(), 26, "{act} {opt}:\n{text}");
            assert!(errors.iter().all(|&e| e < 1e-6), "{act} {opt}: {errors:?}");
            for t in ["dW1", "db1", "dW2", "db2"] {
                assert!(
                    text.contains(&format!("    {t} is right")),
                    "{act} {opt}: no verdict for {t}"
                );
            }
            assert!(text.contains("every gradient agrees with its finite difference"));
            assert!(!text.contains("WRONG"));
            // the rest of the step is unchanged by --check
            check_against_the_reference(&text, act, opt);
            for line in text.lines() {
                assert!(line.chars().count() <= 100, "too wide: {line}");
            }
        }
    }
}

#[test]
fn check_on_the_workshop_network_and_the_cost_of_finite_differences() {
    let data = DATA.to_string();
    let o = explain(&["--digit", "0", "--data", &data, "--check", "--step", "backward"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("  dW1: 12544 of 12544 below 1e-6 (all checked, 5 shown)"),
        "{text}"
    );
    for t in ["dW1", "db1", "dW2", "db2", "dW3", "db3"] {
        assert!(text.contains(&format!("    {t} is right")), "no verdict for {t}");
    }
    assert!(check_errors(&text).iter().all(|&e| e < 1e-6));
    assert!(
        text.contains("  forward pass 12,960, backward pass 13,376"),
        "{text}"
    );
    assert!(text.contains("2·13,002·12,960 = 337,011,840,"), "{text}");
    assert!(text.contains("  25,195 times the backward pass"), "{text}");
    // every activation (the check is of the gradients before the update: the
    // optimizer plays no part, see check_agrees_below_1e_6_for_every_activation_and_optimizer)
    for act in ["sigmoid", "tanh", "identity", "relu,tanh"] {
        let o = explain(&[
            "--digit",
            "0",
            "--data",
            &data,
            "--check",
            "--step",
            "forward",
            "--activation",
            act,
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = stdout(&o);
        let errors = check_errors(&text);
        assert!(
            errors.len() > 20 && errors.iter().all(|&e| e < 1e-6),
            "{act}: {errors:?}"
        );
        assert!(
            text.contains("every gradient agrees with its finite difference"),
            "{act}"
        );
    }
}

#[test]
fn a_deliberate_bug_shows_under_the_check() {
    for (bug, line) in [
        ("forgotten-slope", "  dz = da   (right: dz = da ⊙ f'(a))"),
        (
            "overwrite",
            "  dW[i,j] = x[r,i]·dz[r,j]   (right: dW[i,j] += x[r,i]·dz[r,j])",
        ),
    ] {
        let o = explain(&["--bug", bug, "--step", "update"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains(line), "{bug}:\n{text}");
        assert!(
            text.contains("is WRONG: a bug in the backward pass"),
            "{bug}:\n{text}"
        );
        let worst = check_errors(&text).into_iter().fold(0.0, f64::max);
        assert!(worst > 1e-2, "{bug}: largest error {worst}");
    }
    // a network too big to check in reasonable time is refused before any work
    let o = explain(&["--check", "--digit", "0", "--data", DATA, "--layers", "128,128"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--check: the network has 118282 weights and biases;"),
        "{}",
        stderr(&o)
    );
    let o = explain(&["--bug", "typo"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown bug 'typo': expected forgotten-slope or overwrite"));
}

#[test]
fn every_shape_and_every_matrix_product_is_shown() {
    let text = stdout(&explain(&[]));
    for line in [
        "  shapes: x (2x3)·W1 (3x4) + b1 (4, on every row) -> z1 (2x4), the shape of a1",
        "  shapes: a1 (2x4)·W2 (4x2) + b2 (2, on every row) -> z2 (2x2), the shape of a2",
        "  shapes: p = softmax(a2) (2x2), y (2x2) -> da2 (2x2), as a2",
        "  shapes: a1ᵀ (4x2)·dz2 (2x2) -> dW2 (4x2), the shape of W2",
        "          Σ_rows dz2 (2x2) -> db2 (2), the shape of b2",
        "          dz2 (2x2)·W2ᵀ (2x4) -> da1 (2x4), the shape of a1",
        "  shapes: xᵀ (3x2)·dz1 (2x4) -> dW1 (3x4), the shape of W1",
    ] {
        assert!(text.contains(line), "no '{line}' in:\n{text}");
    }
    // Nielsen's four equations, each beside the line that computes it
    for eq in [
        "  BP1  δ^L",
        "  BP2  δ^l",
        "  BP3  ∂C/∂b^l_j",
        "  BP4  ∂C/∂w^l_jk",
    ] {
        assert!(text.contains(eq), "no {eq}");
    }
    // `--step backward` alone no longer points at an error it did not print
    let backward = stdout(&explain(&["--step", "backward"]));
    assert!(!backward.contains("the error above"));
    assert!(backward.contains("starting at da2 = (p - y) / 2, the output error (part 2)"));
}

#[test]
fn the_lessons_in_the_numbers() {
    let data = DATA.to_string();
    // input scale sets the step size: 2.150082 -> 1.744392 with ‖x‖² = 91.35
    let text = stdout(&explain(&["--digit", "0", "--data", &data, "--step", "update"]));
    assert!(text.contains("loss before the step 2.150082, after 1.744392"));
    assert!(
        text.contains("  layer 1: ‖x‖² + 1 = 92.349558, lr·that = 0.923496: z1[0,13] moved -0.459448 = -0.923496·dz1[0,13]"),
        "{text}"
    );
    assert!(text.contains("784 pixels in 0..1 give ‖x‖² = 91.349558"));
    // the change of z1 printed is the step's own (x·ΔW1 + Δb1) and equals -lr·(‖x‖² + 1)·dz1
    let line = text.lines().find(|l| l.starts_with("  layer 1: ")).unwrap();
    let moved: f64 = line
        .split(" moved ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let factor: f64 = line
        .split("= -")
        .nth(1)
        .unwrap()
        .split('·')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let dz: f64 = printed(
        &stdout(&explain(&["--digit", "0", "--data", &data, "--step", "backward"])),
        "    dz1[0,13] = ",
    );
    assert!(
        (moved - (-factor * dz)).abs() < 2e-6,
        "moved {moved}, -{factor}·{dz}"
    );

    // RMSprop's first step is 3.16·lr, not lr; and v is named for what it is
    let text = stdout(&explain(&["--optimizer", "rmsprop", "--step", "update"]));
    assert!(
        text.contains("≈ lr / sqrt(0.1) = 3.162278·lr = 0.003162, not lr;"),
        "{text}"
    );
    assert!(text.contains("(v is the running mean of g², not momentum's velocity."));
    // biases print as b = ..., not w = ...
    assert!(
        text.contains("\n         b = 0.100000 - 0.001000·(-0.098000) / sqrt("),
        "{text}"
    );
    let text = stdout(&explain(&["--optimizer", "momentum", "--step", "update"]));
    assert!(text.contains("(v is the velocity: the step itself; on the first step v = -lr·g, SGD's step)"));

    // cross-entropy against the squared error on a saturated output
    let text = stdout(&explain(&["--step", "error"]));
    assert!(
        text.contains(
            "  cross-entropy  -ln p[1]          dz = p - y                       = (0.999665, -0.999665)"
        ),
        "{text}"
    );
    assert!(
        text.contains("  the squared error's gradient is 1491 times smaller"),
        "{text}"
    );
}

/// The texts issue 11 corrected, kept corrected: each wrong sentence is gone,
/// and the number that replaced it is the one the program prints.
#[test]
fn corrected_texts_stay_corrected() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).unwrap();
    let tutorial = read("docs/TUTORIAL.md");
    let readme = read("README.md");
    let optimizers = read("src/teach/optimizers.rs");
    for (text, wrong) in [
        (&tutorial, "it takes the same small step size for every weight"),
        (&tutorial, "between 5% and 16%"),
        (&tutorial, "Practicals 4 and 5"),
        (&readme, "explain --step backward --optimizer adam"),
        (&optimizers, "every weight moves at roughly `lr` per step"),
        (&optimizers, "so the numbers match the workshop notebook"),
    ] {
        assert!(!text.contains(wrong), "'{wrong}' is back");
    }
    assert!(tutorial.contains("the sigmoid slide writes `1/(1 + e^s)`"));
    assert!(tutorial.contains("`--lr 0.1` SGD reaches 0.9423"));
    // the smallest and largest probability of the untrained workshop network on image 0
    let text = stdout(&explain(&["--digit", "0", "--data", DATA, "--step", "error"]));
    let line = text.lines().position(|l| l.starts_with("  p[0] =")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let p: Vec<f64> = lines[line]["  p[0] =".len()..]
        .split_whitespace()
        .chain(lines[line + 1].split_whitespace())
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(p.len(), 10);
    let (lo, hi) = p
        .iter()
        .fold((1.0f64, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let claim = format!("between {:.1}% and {:.1}%", lo * 100.0, hi * 100.0);
    assert_eq!(claim, "between 4.7% and 15.7%");
    assert!(tutorial.contains(&claim), "the tutorial should say '{claim}'");
}
