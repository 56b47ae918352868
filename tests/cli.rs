//! The command line, end to end: every command, and every kind of bad input
//! giving one clear message and a non-zero exit code (never a panic).

mod common;

use std::path::PathBuf;

use common::expect;

fn temp(name: &str) -> PathBuf {
    common::temp_file("cli", name)
}

#[test]
fn help_lists_commands_and_every_flag_with_defaults() {
    let (out, _) = expect(&["--help"], 0);
    for c in [
        "inspect", "train", "evaluate", "predict", "explain", "bench", "tune",
    ] {
        assert!(out.contains(c), "{c} missing from:\n{out}");
    }
    let (out, _) = expect(&["train", "--help"], 0);
    for f in [
        "--layers W,W,.. ",
        "[default: 16,16]",
        "[default: relu]",
        "[default: 4]",
        "[default: 128]",
    ] {
        assert!(out.contains(f), "{f} missing from:\n{out}");
    }
    assert!(out.contains("[default: rmsprop]") && out.contains("0.001") && out.contains("[default: 1]"));
    expect(&[], 2);
    let (_, err) = expect(&["trian"], 2);
    assert!(err.contains("unknown command 'trian'"));
}

#[test]
fn bad_flags_are_usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["train", "--epochs", "many"],
            "invalid value 'many' for --epochs",
        ),
        (&["train", "--bogus"], "unknown flag '--bogus'"),
        (&["train", "--layers", "16,0"], "0 neurons"),
        (&["train", "--layers", "16,x"], "invalid --layers"),
        (&["train", "--lr", "-1"], "positive"),
        (&["train", "--optimizer", "adagrad"], "unknown optimizer"),
        (&["train", "--activation", "softplus"], "unknown activation"),
        (&["train", "--batch", "0"], "--batch must be at least 1"),
        (&["train", "--epochs", "0"], "--epochs must be at least 1"),
        (&["train", "--layers", "1000000,1000000"], "use narrower layers"),
        (&["train", "--threads", "0"], "--threads must be at least 1"),
        (&["predict"], "needs --model"),
        (&["inspect", "--split", "validation"], "expected train or test"),
        (&["inspect", "--index", "60000"], "out of range"),
    ];
    for (args, msg) in cases {
        let (_, err) = expect(args, 2);
        assert!(err.contains(msg), "{args:?}: expected '{msg}' in:\n{err}");
    }
}

#[test]
fn missing_data_names_the_folder_and_the_fix() {
    let (_, err) = expect(&["train", "--data", "/no/such/dir", "--epochs", "1"], 1);
    assert!(err.contains("/no/such/dir") && err.contains("--data"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn a_diverging_run_fails_and_saves_nothing() {
    let model = temp("diverged.simdnet");
    let m = model.to_str().unwrap();
    let args = [
        "train",
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
        "--limit",
        "2000",
        "--save",
        m,
    ];
    let (_, err) = expect(&args, 1);
    assert!(err.contains("diverged") && err.contains("--lr"), "{err}");
    assert!(!model.exists(), "a diverged model must not be saved");
}

#[test]
fn a_corrupt_model_is_refused() {
    let p = temp("corrupt.simdnet");
    std::fs::write(&p, b"SIMDNET\x01 but then garbage follows here").unwrap();
    let (_, err) = expect(&["evaluate", "--model", p.to_str().unwrap()], 1);
    assert!(
        err.contains("corrupt.simdnet") && err.contains("simdnet train --save"),
        "{err}"
    );
    let (_, err) = expect(&["predict", "--model", "/no/such/model"], 1);
    assert!(
        err.contains("/no/such/model") && err.contains("cannot be read"),
        "{err}"
    );
    assert!(
        !err.contains("MNIST"),
        "a missing model is not a data problem: {err}"
    );
}

#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = common::bin()
        .args(["inspect", "--numbers"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then drop: the pipe closes
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn inspect_shows_the_workshop_steps() {
    let (out, _) = expect(&["inspect"], 0);
    for s in [
        "x_train: (60000, 28, 28)",
        "x_test:  (10000, 28, 28)",
        "y_train[0] = 5",
        "x_train: (60000, 784)",
        "max pixel of x_train[0]: 255 before, 1 after",
        "[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]",
        "train  0:5923",
    ] {
        assert!(out.contains(s), "'{s}' missing from:\n{out}");
    }
    let (out, _) = expect(&["inspect", "--split", "test", "--index", "0", "--numbers"], 0);
    assert!(out.contains("y_test[0] = 7") && out.contains("255"), "{out}");
}

#[test]
fn train_save_evaluate_predict() {
    let model = temp("small.simdnet");
    let m = model.to_str().unwrap();
    let (out, _) = expect(
        &[
            "train",
            "--limit",
            "3000",
            "--epochs",
            "2",
            "--save",
            m,
            "--threads",
            "2",
        ],
        0,
    );
    assert!(
        out.contains("Epoch 2/2") && out.contains("val_acc") && out.contains("Test accuracy: 0."),
        "{out}"
    );
    let acc: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("Test accuracy: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(acc > 0.5, "3000 images, 2 epochs: accuracy {acc} (chance is 0.1)");
    let (out, _) = expect(&["evaluate", "--model", m], 0);
    let eval: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("Accuracy: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((eval - acc).abs() < 1e-4, "evaluate {eval} vs train {acc}");
    let (out, _) = expect(&["predict", "--model", m, "--index", "0"], 0);
    assert!(
        out.contains("Actual value: 7") && out.contains("Predicted: "),
        "{out}"
    );
    assert_eq!(
        out.lines()
            .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
            .count(),
        10
    );
    let (_, err) = expect(&["predict", "--model", m, "--index", "10000"], 2);
    assert!(err.contains("out of range"), "{err}");
    let (out, _) = expect(&["train", "--limit", "500", "--epochs", "1", "--quiet"], 0);
    assert_eq!(out.lines().count(), 1, "{out}");
}

#[test]
fn predict_with_a_model_of_fewer_classes_than_the_label_does_not_panic() {
    // A valid model with 2 outputs; test image 0 is a 7.
    let path = temp("two-classes.bin");
    let net = simdnet::nn::Network::mlp(784, &[4], 2, simdnet::nn::Activation::Relu, 1).unwrap();
    simdnet::nn::model_file::save(&net, &path).unwrap();
    let (out, _) = expect(&["predict", "--model", path.to_str().unwrap()], 0);
    assert!(
        out.contains("y_test[0] = 7: not one of this model's 2 classes (0..=1)"),
        "{out}"
    );
    assert!(out.contains("Predicted: "), "{out}");
    let path = temp("ten-classes.bin");
    let net = simdnet::nn::Network::mlp(784, &[4], 10, simdnet::nn::Activation::Relu, 1).unwrap();
    simdnet::nn::model_file::save(&net, &path).unwrap();
    let (out, _) = expect(&["predict", "--model", path.to_str().unwrap()], 0);
    assert!(
        out.contains("y_test[0] (one-hot): [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]"),
        "{out}"
    );
}
