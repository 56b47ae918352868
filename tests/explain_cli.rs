//! `simdnet explain`, run as a user runs it: the built binary, its output and exit codes.

use std::process::{Command, Output};

use simdnet::activation::Activation;
use simdnet::teach::network::{tiny_batch, train_step, Network, NetworkOptimizer};
use simdnet::teach::optimizers::OptimizerKind;

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

fn data_dir() -> String {
    format!("{}/data", env!("CARGO_MANIFEST_DIR"))
}

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
    // the output error and a gradient: dz2[0,0] = (0.440286 - 0) / 2, dW2[0,0] = Σ_r a1[r,0]·dz2[r,0]
    assert!(text.contains("  dz2[0,0] = (0.440286 - 0) / 2 = 0.220143"));
    assert!(text.contains("    dW2[0,0] = 0.000000·0.220143 + 0.300000·(-0.245001) = -0.073500"));
    assert!(text.contains("    dW1[0,0] = 0.500000·0.000000 + 1.000000·(-0.098000) = -0.098000"));
    // an update (SGD, lr 0.01): W2[0,0] = 0.3 - 0.01·(-0.0735) = 0.300735
    assert!(text.contains("  W2[0,0] = 0.300000 - 0.010000·(-0.073500) = 0.300735"));

    // the loss after the step, computed independently through the teach API
    let mut net = Network::tiny(Activation::Relu);
    let mut opt = NetworkOptimizer::new(OptimizerKind::Sgd, 0.01, &net);
    let (x, labels) = tiny_batch();
    let trace = train_step(&mut net, &mut opt, &x, &labels);
    let (before, after) = losses(&text);
    assert_eq!(format!("{before:.6}"), format!("{:.6}", trace.loss));
    assert_eq!(format!("{after:.6}"), format!("{:.6}", trace.loss_after));
    assert_eq!(format!("{before:.6}"), "0.626839");
    assert!(after < before, "the step must go downhill: {before} -> {after}");

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
    assert!(text.contains("  p[0] =   0.440286   0.559714"));
    for absent in [
        "2. error",
        "3. backward",
        "4. update",
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

#[test]
fn every_optimizer_and_activation_takes_a_step_downhill() {
    for opt in ["sgd", "momentum", "rmsprop", "adam"] {
        for act in ["relu", "sigmoid", "tanh"] {
            let out = explain(&["--optimizer", opt, "--activation", act, "--step", "update"]);
            assert!(out.status.success(), "{opt}/{act}: {}", stderr(&out));
            let (before, after) = losses(&stdout(&out));
            assert!(after < before, "{opt}/{act}: {before} -> {after}");
        }
    }
    // an explicit learning rate is used as given
    let text = stdout(&explain(&[
        "--optimizer",
        "adam",
        "--lr",
        "0.05",
        "--step",
        "update",
    ]));
    assert!(text.contains("4. update (adam, lr 0.050000)"));
    assert!(text.contains("m̂ = m / (1 - 0.9^1)"));
}

#[test]
fn bad_command_lines_exit_2_without_a_panic() {
    for args in [
        vec!["--bogus"],
        vec!["--step", "sideways"],
        vec!["--optimizer", "adagrad"],
        vec!["--activation", "softplus"],
        vec!["--lr", "0"],
        vec!["--lr", "-0.1"],
        vec!["--lr", "inf"],
        vec!["--lr", "NaN"],
        vec!["--digit", "-1"],
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
}

#[test]
fn digit_0_explains_the_workshop_network_on_a_real_five() {
    let data = data_dir();
    let out = explain(&["--digit", "0", "--data", &data]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("network    784 -> 16 -> 16 -> 10"));
    assert!(text.contains("MNIST training image 0 (label 5)"));
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

#[test]
fn a_digit_past_the_data_or_a_missing_folder_is_a_run_error() {
    let out = explain(&["--digit", "60000", "--data", &data_dir()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--digit 60000 is past the 60000 training images"));
    let out = explain(&["--digit", "0", "--data", "/no/such/folder"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--data DIR"));
}

#[test]
fn step_error_and_step_backward_print_their_part_only() {
    let text = stdout(&explain(&["--step", "error"]));
    assert!(text.contains("2. error") && text.contains("mean loss L = (0.580330 + 0.673347) / 2 = 0.626839"));
    assert!(text.contains("accuracy: predicted class (largest p) [1, 0], labels [1, 0]: 2 of 2 right"));
    assert!(!text.contains("1. forward") && !text.contains("3. backward") && !text.contains("4. update"));
    let text = stdout(&explain(&["--step", "backward", "--activation", "sigmoid"]));
    assert!(text.contains("3. backward pass") && text.contains("sigmoid'(z) = a·(1 - a)"));
    assert!(!text.contains("2. error") && !text.contains("4. update"));
}
