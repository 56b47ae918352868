//! What Keras users expect around training: a validation split that keeps the
//! test set for the end, early stopping that restores the best weights, a
//! history CSV, `--json`; and the guards: destinations refused before any
//! work, huge `--epochs`, an exploding loss.

mod common;

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::Command;

use common::{expect_default_data as expect, s, DATA};
use simdnet::data::Mnist;
use simdnet::nn::{fit, Activation, Network, Optimizer, TrainConfig};

fn scratch(name: &str) -> PathBuf {
    common::scratch("habits", name)
}

/// `(val_loss, val_acc)` of each `Epoch` line.
fn val_numbers(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter(|l| l.starts_with("Epoch "))
        .map(|l| {
            let field = |name: &str| {
                l.split(name)
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string()
            };
            (field("val_loss: "), field("val_acc: "))
        })
        .collect()
}

#[test]
fn the_validation_split_holds_out_the_tail_and_the_test_set_waits_for_the_end() {
    let (out, _) = expect(
        &[
            "train",
            "--limit",
            "1000",
            "--validation-split",
            "0.1",
            "--epochs",
            "2",
            "--threads",
            "2",
        ],
        0,
    );
    assert!(
        out.contains(
            "Data: 900 training images, 100 validation images (the last 0.1 of the training set), 10000 test images (used only for the final test)"
        ),
        "{out}"
    );
    // The per-epoch numbers are those of the last 100 of the first 1000
    // training images: the library, given that set, prints the same.
    let mnist = Mnist::load(DATA.as_ref()).unwrap();
    let (train, val) = mnist.train.take(1000).split_tail(0.1).unwrap();
    assert_eq!((train.len(), val.len()), (900, 100));
    assert_eq!(val.labels(), &mnist.train.labels()[900..1000]);
    let mut net = Network::mlp(784, &[16, 16], 10, Activation::Relu, 1).unwrap();
    let cfg = TrainConfig::default().with_epochs(2);
    let history = fit(
        &mut net,
        Optimizer::rmsprop(0.001),
        &train,
        Some(&val),
        &cfg,
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    let printed = val_numbers(&out);
    for (h, (l, a)) in history.iter().zip(&printed) {
        let v = h.validation.unwrap();
        assert_eq!(
            (format!("{:.4}", v.loss), format!("{:.4}", v.accuracy)),
            (l.clone(), a.clone())
        );
    }
    let test = net.evaluate(&mnist.test).unwrap();
    assert!(out.contains(&format!("Test loss: {:.4}\n", test.loss)), "{out}");
    assert!(
        out.contains(&format!("Test accuracy: {:.4}\n", test.accuracy)),
        "{out}"
    );
    assert_ne!(
        printed.last().unwrap().0,
        format!("{:.4}", test.loss),
        "val != test"
    );

    let (_, err) = expect(&["train", "--validation-split", "1"], 2);
    assert!(err.contains("--validation-split 1 is out of range"), "{err}");
    let (_, err) = expect(&["train", "--limit", "1", "--validation-split", "0.5"], 2);
    assert!(
        err.contains("leaves 0 for training and 1 for validation; both need at least one"),
        "{err}"
    );
}

#[test]
fn without_a_split_the_output_is_as_before() {
    let (out, _) = expect(&["train", "--limit", "2000", "--epochs", "1"], 0);
    assert!(
        out.contains("Data: 2000 training images, 10000 test images (validation = test set)"),
        "{out}"
    );
    let (l, a) = val_numbers(&out).pop().unwrap();
    assert!(
        out.contains(&format!("Test loss: {l}\nTest accuracy: {a}\n")),
        "{out}"
    );
}

#[test]
fn early_stopping_stops_and_restores_the_best_weights() {
    let d = scratch("early");
    let model = d.join("m.bin");
    let (out, _) = expect(
        &[
            "train",
            "--limit",
            "600",
            "--validation-split",
            "0.5",
            "--layers",
            "64",
            "--lr",
            "0.01",
            "--early-stopping",
            "2",
            "--epochs",
            "40",
            "--save",
            s(&model),
        ],
        0,
    );
    let vals = val_numbers(&out);
    assert!(vals.len() < 40, "it did not stop:\n{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("Early stopping: "))
        .unwrap_or_else(|| panic!("{out}"));
    let best: usize = line
        .split("restored the weights of epoch ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(vals.len(), best + 2, "patience 2 after epoch {best}:\n{out}");
    assert!(
        line.contains("has not improved for 2 epochs since epoch"),
        "{line}"
    );
    // The numbers after restoring (evaluated afresh) are the best epoch's.
    let (l, a) = &vals[best - 1];
    assert!(
        line.ends_with(&format!("(val_loss: {l} - val_acc: {a})")),
        "{line}\n{out}"
    );
    let min = vals
        .iter()
        .map(|(l, _)| l.parse::<f64>().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(
        l.parse::<f64>().unwrap(),
        min,
        "epoch {best} has the lowest val_loss"
    );
    // The saved model is the restored one: its accuracy on the validation tail matches.
    let mnist = Mnist::load(DATA.as_ref()).unwrap();
    let (_, val) = mnist.train.take(600).split_tail(0.5).unwrap();
    let net = simdnet::nn::model_file::load(&model).unwrap();
    let v = net.evaluate(&val).unwrap();
    assert_eq!(format!("{:.4}", v.accuracy), *a);

    let (_, err) = expect(&["train", "--early-stopping", "3"], 2);
    assert!(err.contains("--early-stopping needs --validation-split"), "{err}");
    assert!(err.contains("must not be made on the test set"), "{err}");
}

#[test]
fn the_history_csv_has_one_row_per_epoch() {
    let d = scratch("history");
    let csv = d.join("h.csv");
    let (out, _) = expect(
        &[
            "train",
            "--limit",
            "1500",
            "--epochs",
            "3",
            "--validation-split",
            "0.2",
            "--history",
            s(&csv),
        ],
        0,
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3, "{text}");
    for ((i, row), (vl, va)) in rows.iter().enumerate().zip(val_numbers(&out)) {
        assert_eq!(row.len(), 7, "{row:?}");
        assert_eq!(row[0], (i + 1).to_string());
        let num = |k: usize| row[k].parse::<f64>().unwrap();
        assert_eq!(format!("{:.4}", num(3)), vl);
        assert_eq!(format!("{:.4}", num(4)), va);
        assert_eq!(row[5], "0.001");
        assert!(num(6) >= 0.0 && (0.0..=1.0).contains(&num(2)));
    }
}

#[test]
fn json_output_parses_and_agrees_with_the_text_run() {
    let args = [
        "train",
        "--limit",
        "1200",
        "--epochs",
        "2",
        "--validation-split",
        "0.25",
        "--threads",
        "1",
    ];
    let (text, _) = expect(&args, 0);
    let (json, _) = expect(&[&args[..], &["--json"]].concat(), 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}:\n{json}"));
    assert_eq!(v["model"], "784 -> 16 relu -> 16 relu -> 10 softmax");
    assert_eq!(v["parameters"], 13002);
    assert_eq!(v["config"]["batch"], 128);
    assert_eq!(v["config"]["validation_split"], 0.25);
    assert_eq!(v["data"]["train"], 900);
    assert_eq!(v["data"]["validation"], 300);
    assert_eq!(v["data"]["test"], 10000);
    let history = v["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    for (h, (l, a)) in history.iter().zip(val_numbers(&text)) {
        assert_eq!(format!("{:.4}", h["val_loss"].as_f64().unwrap()), l);
        assert_eq!(format!("{:.4}", h["val_accuracy"].as_f64().unwrap()), a);
        // 900 examples: 8 steps an epoch (the run's first timed apart). At
        // least 4 of the 7 or 8 timed steps take the median or more, all
        // inside the epoch's seconds.
        let (step, epoch) = (
            h["step_median_seconds"].as_f64().unwrap(),
            h["seconds"].as_f64().unwrap(),
        );
        assert!(step > 0.0 && 4.0 * step <= epoch, "{h}");
    }
    let acc = format!("{:.4}", v["test_accuracy"].as_f64().unwrap());
    assert!(text.contains(&format!("Test accuracy: {acc}\n")), "{acc}\n{text}");
    assert!(!json.contains("Epoch "), "only JSON on stdout:\n{json}");
}

#[test]
fn bad_destinations_are_refused_before_training_and_left_untouched() {
    let d = scratch("dest");
    // Huge work if it ever started, and data that does not exist: only a
    // check made before loading and training can give the destination's error.
    let doomed = [
        "train",
        "--layers",
        "1024,1024",
        "--epochs",
        "20",
        "--data",
        "/nonexistent-data",
    ];
    let refuse = |flag: &str, path: &str, want: &str| {
        let (out, err) = expect(&[&doomed[..], &[flag, path]].concat(), 1);
        assert!(out.is_empty(), "{out}");
        assert!(
            err.contains(&format!("'{path}'")) && err.contains(want),
            "{flag} {path}: {err}"
        );
        assert!(!err.contains("nonexistent-data"), "{err}");
    };
    refuse("--save", "/nonexistent/m.bin", "does not exist");
    refuse("--checkpoint", "/nonexistent/c.ck", "does not exist");
    refuse("--history", "/nonexistent/h.csv", "does not exist");

    let target = d.join("target.bin");
    std::fs::write(&target, b"keep me").unwrap();
    let link = d.join("link.bin");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    refuse("--save", s(&link), "symbolic link");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");

    let fifo = d.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    refuse("--checkpoint", s(&fifo), "not a regular file");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());

    let ro = d.join("ro.csv");
    std::fs::write(&ro, b"old").unwrap();
    let mut perms = std::fs::metadata(&ro).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&ro, perms).unwrap();
    refuse("--history", s(&ro), "read-only");
    assert_eq!(std::fs::read(&ro).unwrap(), b"old");
    assert!(std::fs::metadata(&ro).unwrap().permissions().readonly());

    refuse("--save", "/dev/null", "not a regular file");
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // A flag swallowed as a file name is refused too.
    let (_, err) = expect(&["train", "--save", "--quiet"], 2);
    assert!(
        err.starts_with(
            "error: --save needs a value (FILE), but got the flag --quiet; to give that text as the value, write --save=--quiet"
        ),
        "{err}"
    );
}

#[test]
fn huge_epochs_are_refused_without_a_panic() {
    for n in ["18446744073709551615", "100000000000", "1000001"] {
        let (_, err) = expect(&["train", "--epochs", n], 2);
        assert!(
            err.contains(&format!("--epochs {n} is more than the maximum of 1000000")),
            "{err}"
        );
    }
}

#[test]
fn an_exploding_loss_stops_as_diverged() {
    let (out, err) = expect(&["train", "--lr", "100", "--limit", "2000", "--epochs", "3"], 1);
    assert!(!out.contains("Test accuracy"), "{out}");
    assert!(err.contains("training diverged: the loss became "), "{err}");
    assert!(err.contains("lower the learning rate with --lr"), "{err}");
    // Stopped while the loss was still a finite number, far above its start.
    let loss: f64 = err
        .split("the loss became ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(loss.is_finite() && loss > 100.0 * 2.0, "{err}");
    // A healthy run is never stopped by the rule.
    expect(&["train", "--lr", "0.01", "--limit", "2000", "--epochs", "3"], 0);
}

/// One epoch of 128 raw-pixel images in one step of SGD at rate `lr`, saving
/// to `d/m.bin` and checkpointing to `d/c.ck`, which hold the user's files
/// before: checks that the run fails and leaves both untouched, and returns
/// its stdout and the last line of its stderr.
fn one_sgd_step_over_the_users_files(d: &std::path::Path, lr: &str) -> (String, String) {
    let (model, ck) = (d.join("m.bin"), d.join("c.ck"));
    std::fs::write(&model, b"the user's model").unwrap();
    std::fs::write(&ck, b"the user's checkpoint").unwrap();
    let (out, err) = expect(
        &[
            "train",
            "--limit",
            "128",
            "--epochs",
            "1",
            "--optimizer",
            "sgd",
            "--lr",
            lr,
            "--no-scale",
            "--save",
            s(&model),
            "--checkpoint",
            s(&ck),
        ],
        1,
    );
    assert_eq!(std::fs::read(&model).unwrap(), b"the user's model");
    assert_eq!(std::fs::read(&ck).unwrap(), b"the user's checkpoint");
    (out, err.lines().last().unwrap_or_default().to_string())
}

/// A step's loss is computed before its update, so the last update of a
/// run can overflow unseen: the run must end with an error, not with a
/// model and a checkpoint simdnet itself refuses to load, written over the
/// files that were there.
#[test]
fn an_update_that_overflows_the_weights_stops_as_diverged_and_writes_nothing() {
    // One step of SGD whose rate times the raw pixels' gradient overflows f32.
    let (out, last) = one_sgd_step_over_the_users_files(&scratch("overflow"), "3e38");
    assert!(!out.contains("Epoch 1/1"), "{out}");
    assert_eq!(
        last,
        "error: training diverged: a weight of layer 0 became NaN or infinite by epoch 1, step 1 \
         (lower the learning rate with --lr, e.g. to a tenth)"
    );
}

/// The last update can also leave every weight finite but so large that the
/// outputs overflow: no step's loss sees it, the validation loss does. The
/// run must end with an error, not print "Test loss: NaN", exit 0 and save a
/// model `simdnet evaluate` refuses; nor may it save one whose test loss is
/// ten orders of magnitude above a fresh network's.
#[test]
fn an_update_that_leaves_huge_weights_stops_as_diverged_and_writes_nothing() {
    let d = scratch("huge");
    for (lr, what) in [("1e12", "NaN"), ("1000", "finite")] {
        let (out, last) = one_sgd_step_over_the_users_files(&d, lr);
        assert!(!out.contains("Test loss"), "{out}");
        let loss = last
            .strip_prefix("error: training diverged: the loss on the validation set became ")
            .and_then(|l| {
                l.strip_suffix(" at the end of epoch 1 (lower the learning rate with --lr, e.g. to a tenth)")
            })
            .unwrap_or_else(|| panic!("--lr {lr}: {last}"));
        if what == "NaN" {
            assert_eq!(loss, "NaN", "--lr {lr}");
        } else {
            let loss: f64 = loss.parse().unwrap();
            assert!(loss.is_finite() && loss > 100.0 * 2.3, "--lr {lr}: {last}");
        }
    }
}

/// With `--validation-split` the test set is evaluated apart, at the end,
/// and its outputs can overflow where the validation set's do not. Here the
/// training images are all 1 and the test images all 255 (raw, `--no-scale`),
/// every label 0: one step of SGD at 3e33 gives the class-0 logit about
/// 2e36 on the training images (the validation loss is 0) and 255 times
/// that, more than f32 holds, on the test images.
#[test]
fn a_test_set_whose_outputs_overflow_stops_as_diverged_and_writes_nothing() {
    let d = scratch("test-overflow");
    let idx = |magic: u32, n: usize, pixel: Option<u8>| {
        let mut v = magic.to_be_bytes().to_vec();
        v.extend((n as u32).to_be_bytes());
        match pixel {
            Some(p) => {
                v.extend(28u32.to_be_bytes());
                v.extend(28u32.to_be_bytes());
                v.extend(std::iter::repeat_n(p, n * 784));
            }
            None => v.extend(std::iter::repeat_n(0u8, n)),
        }
        v
    };
    for (prefix, n, pixel) in [("train", 64, 1), ("t10k", 10, 255)] {
        std::fs::write(
            d.join(format!("{prefix}-images-idx3-ubyte")),
            idx(0x803, n, Some(pixel)),
        )
        .unwrap();
        std::fs::write(d.join(format!("{prefix}-labels-idx1-ubyte")), idx(0x801, n, None)).unwrap();
    }
    let model = d.join("m.bin");
    std::fs::write(&model, b"the user's model").unwrap();
    let train = |lr: &str, code: i32| {
        expect(
            &[
                "train",
                "--data",
                s(&d),
                "--layers",
                "",
                "--optimizer",
                "sgd",
                "--lr",
                lr,
                "--no-scale",
                "--batch",
                "64",
                "--epochs",
                "1",
                "--validation-split",
                "0.25",
                "--save",
                s(&model),
            ],
            code,
        )
    };
    let (out, err) = train("3e33", 1);
    assert!(out.contains("val_loss: 0.0000 - val_acc: 1.0000"), "{out}");
    assert!(!out.contains("Test loss"), "{out}");
    assert_eq!(
        err.lines().last().unwrap_or_default(),
        "error: training diverged: the loss on the test set became NaN at the end of epoch 1 \
         (lower the learning rate with --lr, e.g. to a tenth)"
    );
    assert_eq!(std::fs::read(&model).unwrap(), b"the user's model");
    // A third of that rate keeps the test logits finite: the run ends well.
    let (out, _) = train("1e33", 0);
    assert!(out.contains("Test loss: 0.0000"), "{out}");
    assert_ne!(std::fs::read(&model).unwrap(), b"the user's model");
}

/// The library's `fit` checks the validation loss at each epoch's end by the
/// same rule; without a validation set there is nothing to check.
#[test]
fn fit_stops_when_the_validation_loss_overflows() {
    let mnist = Mnist::load(DATA.as_ref()).unwrap();
    let train = mnist.train.take(128);
    let val = mnist.test.take(500);
    let fresh = || {
        Network::mlp(784, &[16, 16], 10, Activation::Relu, 1)
            .unwrap()
            .with_input_scale(1.0)
            .unwrap()
    };
    let cfg = TrainConfig::default().with_epochs(1);
    let mut net = fresh();
    let err = fit(
        &mut net,
        Optimizer::sgd(1e12),
        &train,
        Some(&val),
        &cfg,
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            simdnet::Error::HeldOutDiverged { epoch: 1, set: "validation", loss } if loss.is_nan()
        ),
        "{err:?}"
    );
    let mut net = fresh();
    fit(&mut net, Optimizer::sgd(1e12), &train, None, &cfg, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(
        net.evaluate(&val).unwrap().loss.is_nan(),
        "the weights do overflow"
    );
}

/// The library refuses to save what no reader would load.
#[test]
fn a_network_with_a_non_finite_weight_is_not_saved() {
    let d = scratch("non-finite");
    for (layer, bad) in [(0, f32::NAN), (1, f32::INFINITY), (2, f32::NEG_INFINITY)] {
        let mut net = Network::mlp(4, &[3, 3], 2, Activation::Relu, 1).unwrap();
        assert_eq!(net.non_finite_layer(), None);
        net.layers_mut()[layer].params_mut(layer % 2)[1] = bad;
        assert_eq!(net.non_finite_layer(), Some(layer));
        let path = d.join(format!("m{layer}.bin"));
        let err = net.save(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cannot save the model to '{}': layer {layer} of the network holds a NaN or infinite weight, \
                 which no model file may hold (nothing was written; train again with a lower learning rate)",
                path.display()
            )
        );
        assert!(!path.exists());
    }
}

#[test]
fn plot_writes_the_runs_curves_as_an_svg_chart() {
    let d = scratch("plot");
    let svg = d.join("h.svg");
    let (out, _) = expect(
        &[
            "train",
            "--limit",
            "3000",
            "--layers",
            "16",
            "--epochs",
            "3",
            "--validation-split",
            "0.2",
            "--plot",
            s(&svg),
        ],
        0,
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("not XML: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    // Two panels (loss, accuracy), each a training and a validation series of 3 epochs.
    let series: Vec<_> = doc
        .descendants()
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.split(' ').any(|t| t == "series"))
        })
        .collect();
    assert_eq!(series.len(), 4, "{text}");
    for n in &series {
        let d = n.attribute("d").unwrap_or("");
        assert_eq!(d.matches(['M', 'L']).count(), 3, "one point per epoch: {d}");
    }
    assert!(text.contains("training") && text.contains("validation"));
    assert_eq!(out.lines().filter(|l| l.starts_with("Epoch ")).count(), 3);
}

#[test]
fn per_layer_activations_dropout_decay_and_raw_inputs_reach_the_network() {
    let (out, _) = expect(
        &[
            "train",
            "--limit",
            "2000",
            "--layers",
            "16,8",
            "--activation",
            "relu,tanh",
            "--dropout",
            "0.2",
            "--weight-decay",
            "0.0001",
            "--no-scale",
            "--epochs",
            "1",
        ],
        0,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "Model: 784 -> 16 relu (dropout 0.2) -> 8 tanh (dropout 0.2) -> 10 softmax (inputs scaled by 1) (12786 parameters)"
    );
    assert!(
        lines[1]
            .starts_with("Optimizer: RMSprop(lr=0.001, rho=0.9, eps=1e-7), weight decay 0.0001, batch 128"),
        "{}",
        lines[1]
    );
    let (_, err) = expect(
        &["train", "--layers", "16,8", "--activation", "relu,tanh,relu"],
        2,
    );
    assert!(
        err.starts_with("error: --activation lists 3 activations but --layers has 2 hidden layers"),
        "{err}"
    );
    let (_, err) = expect(&["train", "--dropout", "1"], 2);
    assert!(err.starts_with("error: invalid --dropout '1'"), "{err}");
}
