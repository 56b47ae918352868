//! `simdnet teach`, run as a user runs it: the lesson's f64 network trains on
//! MNIST beside the engine, and both print the same losses.

mod common;

use std::process::{Command, Output};

use common::DATA;

fn teach(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simdnet"))
        .arg("teach")
        .args(args)
        .args(["--data", DATA])
        .output()
        .expect("run simdnet")
}

/// The (teach, engine) losses of every step line.
fn step_losses(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .skip_while(|l| !l.contains("loss (teach, f64)"))
        .skip(1)
        .take_while(|l| !l.starts_with("epoch"))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[1].parse().unwrap(), w[2].parse().unwrap())
        })
        .collect()
}

/// The accuracies of the last line: (teaching network, engine).
fn test_accuracies(text: &str) -> (f64, f64) {
    let line = text
        .lines()
        .find(|l| l.starts_with("test set, "))
        .expect("no test line");
    let acc: Vec<f64> = line
        .split("accuracy ")
        .skip(1)
        .map(|s| {
            s.trim_end_matches(')')
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches(')')
                .parse()
                .unwrap()
        })
        .collect();
    (acc[0], acc[1])
}

#[test]
fn one_epoch_reaches_the_engines_0_9140_step_by_step() {
    let o = teach(&["--every", "100"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let losses = step_losses(&text);
    assert_eq!(losses.len(), 6, "steps 1, 100, ..., 400, 469:\n{text}");
    for (t, e) in &losses {
        assert!((t - e).abs() < 1e-5, "teach {t} vs engine {e}");
    }
    assert!(
        losses.last().unwrap().0 < losses[0].0 / 3.0,
        "the loss must fall: {losses:?}"
    );
    assert!(text.contains("epoch 1: 60000 images, mean loss 0.5813, accuracy 0.8388 (engine 0.5813, 0.8388)"));
    let (acc, engine) = test_accuracies(&text);
    assert!(acc >= 0.90, "test accuracy {acc}");
    assert!((acc - engine).abs() <= 1e-4, "{acc} vs the engine's {engine}");
}

#[test]
fn forgetting_zero_grad_wrecks_the_run_the_engine_does_not_forget() {
    let o = teach(&[
        "--optimizer",
        "sgd",
        "--forget-zero-grad",
        "--steps",
        "469",
        "--every",
        "469",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("pitfall 5  the lesson never zeroes its gradients"));
    let (acc, engine) = test_accuracies(&text);
    assert!(
        engine > 0.65 && acc < engine - 0.2,
        "forgotten {acc}, engine {engine}"
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    for (args, want) in [
        (&["--every", "0"][..], "--every must be at least 1"),
        (&["--batch", "0"], "--batch must be at least 1"),
        (&["--steps", "0"], "--steps must be at least 1"),
        (&["--lr", "-1"], "--lr must be a positive finite number"),
        (&["--optimizer", "lbfgs"], "invalid value 'lbfgs' for --optimizer"),
        (
            &["--layers", "4000,4000"],
            "the lesson trains at most 2000000 weights and biases",
        ),
        (
            &["--batch", "60000", "--layers", "1000"],
            "needs too much memory in f64",
        ),
    ] {
        let o = teach(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{args:?}: {err}"
        );
    }
}
