//! Convolutional networks on the command line, through the real binary:
//! `summary`, `train --model/--arch` (and their conflicts and errors),
//! resuming with another network refused, `sweep --arch`, and, end to end,
//! a short LeNet-5 run saved, evaluated, predicted and its mistakes listed.

mod common;

use common::{expect, expect_default_data, s, scratch};
use simdnet::geometry::ImageShape;
use simdnet::nn::spec::{self, Arch, InputShape};

const LENET_SPEC: &str =
    "conv5x5x6same,relu,pool2,conv5x5x16,relu,pool2,flatten,dense120,relu,dense84,relu,dense10";

#[test]
fn summary_shows_lenet_like_keras() {
    // The golden text itself is in tests/model_spec.rs (the library's
    // summary); the command prints the name and spec, then exactly that.
    let (out, _) = expect(&["summary", "--model", "lenet"], 0);
    let input = InputShape::Image(ImageShape::new(1, 28, 28, 1).unwrap());
    let net = Arch::preset("lenet").unwrap().build(input, 10, 1).unwrap();
    assert_eq!(
        out,
        format!("Model: lenet ({LENET_SPEC})\n{}", spec::summary(&net))
    );
    assert!(
        out.contains("conv2d (5x5, same, relu)   (28, 28, 6)       156\n"),
        "{out}"
    );
    let (out, _) = expect(&["summary", "--model", "keras-cnn"], 0);
    assert!(
        out.contains("dropout (0.25)             (12, 12, 64)          0\n"),
        "{out}"
    );
    assert!(out.contains("Total params: 1,199,882\n"), "{out}");
    // The same network said as a spec (p2 is same for a 5x5 kernel).
    let (out, _) = expect(&["summary", "--arch", &LENET_SPEC.replace("same", "p2")], 0);
    assert!(out.starts_with(&format!("Model: {LENET_SPEC}\n")), "{out}");
    assert!(out.contains("Total params: 61,706\n"), "{out}");
}

#[test]
fn summary_reads_a_saved_cnn_model() {
    let dir = scratch("cnn-cli", "summary");
    let path = dir.join("small.simdnet");
    let input = InputShape::Image(ImageShape::new(1, 28, 28, 1).unwrap());
    Arch::parse("conv3x3x4same,relu,pool2,dropout0.1,flatten,dense10")
        .unwrap()
        .build(input, 10, 1)
        .unwrap()
        .save(&path)
        .unwrap();
    let (out, _) = expect(&["summary", "--model", s(&path)], 0);
    assert!(
        out.starts_with(&format!(
            "Model: '{}' (784 -> conv 3x3x4 same relu 28x28x4",
            path.display()
        )),
        "{out}"
    );
    assert!(
        out.contains("conv2d (3x3, same, relu)  (28, 28, 4)        40\n"),
        "{out}"
    );
    assert!(
        out.contains("dropout (0.1)             (14, 14, 4)         0\n"),
        "{out}"
    );
    assert!(out.contains("Total params: 7,890\n"), "{out}");
    let (_, err) = expect(&["summary", "--model", "lenett"], 2);
    assert!(err.contains(
        "error: --model 'lenett' is neither a network simdnet knows (mlp, lenet, keras-cnn) nor an existing model file: check the name or the path"
    ), "{err}");
    let bad = dir.join("bad.simdnet");
    std::fs::write(&bad, b"SIMDNET\x01 not really").unwrap();
    let (_, err) = expect(&["summary", "--model", s(&bad)], 1);
    assert!(err.contains("is not a usable simdnet model"), "{err}");
}

#[test]
fn train_refuses_specs_that_cannot_be_built_and_mlp_flags_beside_them() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["train", "--model", "lenet", "--layers", "16"],
            "error: --layers is for the MLP (--model mlp), but --model lenet already says every layer: drop --layers, or say it in --arch (e.g. dense128,relu,dense10)",
        ),
        (
            &["train", "--arch", "conv3x3x8,flatten,dense10", "--dropout", "0.2"],
            "error: --dropout is for the MLP (--model mlp), but --arch already says every layer: drop --dropout, or say it in --arch (e.g. ...,dense128,relu,dropout0.5,dense10)",
        ),
        (
            &["train", "--model", "lenet", "--arch", "flatten,dense10"],
            "error: --model lenet and --arch both say which network to train: give one of them",
        ),
        (
            &["train", "--model", "resnet"],
            "error: unknown --model 'resnet': expected mlp, lenet, keras-cnn (or --arch SPEC for any other network)",
        ),
        (
            &["train", "--arch", "conv3x3x8,relu,pool2,flatten,dense10,softmax"],
            "error: --arch: item 6 (softmax) is unknown",
        ),
        (
            &["train", "--arch", "conv3x3x8,relu,pool2,dense10"],
            "error: --arch: item 4 (dense10) does not fit: input 28x28x1 -> conv3x3x8 valid relu 26x26x8 -> pool2 13x13x8 -> dense10 reads a row of values, but gets a 13x13x8 image: add flatten before it (...,flatten,dense10,...); simdnet does not flatten silently",
        ),
        (
            &["train", "--arch", "conv9x9x4,pool2,conv11x11x4,flatten,dense10"],
            "error: --arch: item 3 (conv11x11x4) does not fit: input 28x28x1 -> conv9x9x4 valid 20x20x4 -> pool2 10x10x4 -> conv11x11x4 (valid) needs an image of at least 11x11 but gets 10x10: use padding same (conv11x11x4same) or fewer poolings or valid convolutions before it",
        ),
        (
            &["train", "--arch", "flatten,dense16"],
            "error: --arch: the output layer dense16 (item 2) has 16 units but the data have 10 classes: end the spec with dense10",
        ),
    ];
    for (args, msg) in cases {
        let (out, err) = expect_default_data(args, 2);
        assert!(err.contains(msg), "{args:?}:\n{err}");
        assert!(err.contains("Usage: simdnet train [FLAGS]"), "{err}");
        assert!(out.is_empty(), "{args:?} printed {out}");
    }
}

#[test]
fn a_resume_with_another_network_is_refused_naming_both() {
    let dir = scratch("cnn-cli", "resume");
    let ck = dir.join("run.ckpt");
    expect_default_data(
        &[
            "train",
            "--limit",
            "300",
            "--epochs",
            "1",
            "--quiet",
            "--checkpoint",
            s(&ck),
        ],
        0,
    );
    let (_, err) = expect_default_data(&["train", "--resume", s(&ck), "--model", "lenet"], 2);
    assert!(
        err.contains(&format!(
            "error: --model lenet ({LENET_SPEC}) contradicts the checkpoint '{}', which was trained with --model mlp; drop it (a resumed run keeps its network) or start a new run without --resume",
            ck.display()
        )),
        "{err}"
    );
    let (_, err) = expect_default_data(&["train", "--resume", s(&ck), "--arch", "flatten,dense10"], 2);
    assert!(
        err.contains("error: --arch flatten,dense10 contradicts the checkpoint"),
        "{err}"
    );
    // The same network (--model mlp) is not a contradiction.
    expect_default_data(
        &[
            "train",
            "--resume",
            s(&ck),
            "--model",
            "mlp",
            "--epochs",
            "1",
            "--quiet",
        ],
        0,
    );
}

#[test]
fn help_documents_the_spec_and_the_presets() {
    let (out, _) = expect(&["train", "--help"], 0);
    for key in [
        "--model NAME",
        "lenet (LeNet-5: conv5x5x6same,relu,pool2,conv5x5x16,relu,pool2,flatten,dense120,relu,dense84,relu,dense10)",
        "--arch SPEC",
        "flatten (required before a dense layer that follows an image: nothing is flattened silently)",
        "--optimizer adam (lr 0.001) and --epochs 10 (lenet) or 12 (keras-cnn)",
    ] {
        assert!(out.contains(key), "{key} missing from:\n{out}");
    }
    let (out, _) = expect(&["--help"], 0);
    assert!(out.contains("  summary      print a network's layers"), "{out}");
}

#[test]
fn sweep_takes_a_network_axis() {
    let (_, err) = expect_default_data(&["sweep", "--arch", "lenet", "--layers", "16"], 2);
    assert!(
        err.contains("error: --layers is for the MLP rows, but --arch already says every layer"),
        "{err}"
    );
    let (_, err) = expect_default_data(&["sweep", "--arch", "conv3x3x8,pool2,dense10"], 2);
    assert!(
        err.contains("error: invalid --arch 'conv3x3x8,pool2,dense10'")
            || err.contains("error: row 1: --arch conv3x3x8,pool2,dense10: item 3 (dense10) does not fit"),
        "{err}"
    );
}

#[test]
fn lenet_trains_then_evaluates_predicts_and_lists_its_mistakes() {
    let dir = scratch("cnn-cli", "lenet");
    let model = dir.join("lenet.simdnet");
    let (out, _) = expect_default_data(
        &[
            "train",
            "--model",
            "lenet",
            "--limit",
            "2000",
            "--epochs",
            "1",
            "--save",
            s(&model),
        ],
        0,
    );
    assert!(
        out.starts_with(&format!(
            "Model: lenet ({LENET_SPEC})\nInput shape: (28, 28, 1)\n"
        )),
        "{out}"
    );
    assert!(out.contains("Total params: 61,706\n"), "{out}");
    assert!(out.contains("Optimizer: Adam(lr=0.001"), "{out}");
    assert!(out.contains("batch 128, 1 epoch, seed 1"), "{out}");
    let accuracy: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("Test accuracy: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        accuracy > 0.3,
        "16 Adam steps of LeNet-5 should beat chance by far: {accuracy}"
    );
    let saved = std::fs::read(&model).unwrap();
    assert_eq!(
        saved[8..12],
        3u32.to_le_bytes(),
        "a CNN is saved as model file version 3"
    );

    let (out, _) = expect_default_data(&["evaluate", "--model", s(&model)], 0);
    assert!(out.starts_with("Model: 784 -> conv 5x5x6 same relu 28x28x6 -> pool 2x2 14x14x6 -> conv 5x5x16 valid relu 10x10x16"), "{out}");
    assert!(
        out.contains(&format!("Accuracy: {accuracy:.4}\n")),
        "evaluate agrees with train:\n{out}"
    );

    let image = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/img/my7.png");
    let (out, _) = expect(&["predict", "--model", s(&model), "--image", image], 0);
    assert!(
        out.contains("Probabilities:\n") && out.contains("Predicted: "),
        "{out}"
    );
    let (out, _) = expect_default_data(&["predict", "--model", s(&model), "--index", "0"], 0);
    assert!(out.contains("Actual value: 7\n"), "{out}");

    let gallery = dir.join("gallery");
    let (out, _) = expect_default_data(
        &[
            "mistakes",
            "--model",
            s(&model),
            "--top",
            "3",
            "--out",
            s(&gallery),
        ],
        0,
    );
    assert!(out.contains("#1 test["), "{out}");
    assert!(gallery.join("index.html").is_file());

    let (out, _) = expect(&["summary", "--model", s(&model)], 0);
    assert!(out.contains("Total params: 61,706\n"), "{out}");
}

#[test]
fn a_cnn_checkpoint_resumes_bit_for_bit_and_keeps_its_network() {
    let dir = scratch("cnn-cli", "ckpt");
    let arch = "conv3x3x4,relu,pool2,dropout0.2,flatten,dense10";
    let (straight, ck, resumed) = (
        dir.join("straight.simdnet"),
        dir.join("run.ckpt"),
        dir.join("resumed.simdnet"),
    );
    let common = ["--arch", arch, "--limit", "600", "--quiet"];
    let with = |extra: &[&str]| -> Vec<String> {
        ["train"]
            .iter()
            .chain(&common)
            .chain(extra)
            .map(|a| a.to_string())
            .collect()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        expect_default_data(&a, 0)
    };
    run(with(&["--epochs", "2", "--save", s(&straight)]));
    run(with(&["--epochs", "1", "--checkpoint", s(&ck)]));
    // The resume takes the network from the checkpoint: no --arch needed.
    expect_default_data(
        &[
            "train",
            "--resume",
            s(&ck),
            "--epochs",
            "2",
            "--quiet",
            "--save",
            s(&resumed),
        ],
        0,
    );
    assert_eq!(
        std::fs::read(&straight).unwrap(),
        std::fs::read(&resumed).unwrap()
    );
    let (_, err) = expect_default_data(&["train", "--resume", s(&ck), "--model", "lenet"], 2);
    assert!(
        err.contains(&format!(
            "error: --model lenet ({LENET_SPEC}) contradicts the checkpoint '{}', which was trained with --arch {arch}",
            ck.display()
        )),
        "{err}"
    );
    let (_, err) = expect_default_data(&["train", "--resume", s(&ck), "--layers", "16"], 2);
    assert!(err.contains("--layers 16 contradicts the checkpoint"), "{err}");
    // The same spec written another way is the same network.
    expect_default_data(
        &[
            "train",
            "--resume",
            s(&ck),
            "--arch",
            "CONV3x3x4valid,relu,pool2,dropout0.2,flatten,dense10",
            "--epochs",
            "2",
            "--quiet",
        ],
        0,
    );
}

#[test]
fn sweep_puts_a_cnn_row_in_the_table_and_the_csv() {
    let dir = scratch("cnn-cli", "sweep");
    let csv = dir.join("t.csv");
    let (out, _) = expect_default_data(
        &[
            "sweep",
            "--arch",
            "conv3x3x4,relu,pool2,flatten,dense10",
            "--epochs",
            "1",
            "--limit",
            "500",
            "--quiet",
            "--csv",
            s(&csv),
        ],
        0,
    );
    assert!(
        out.contains("| conv3x3x4,relu,pool2,flatten,dense10 | ReLU, softmax | 1 | Scaled inputs, Adam | "),
        "{out}"
    );
    assert!(
        out.contains(" | 6810 | "),
        "parameters: 3·3·4+4 + 13·13·4·10+10:\n{out}"
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.contains(
            "\"conv3x3x4,relu,pool2,flatten,dense10\",\"ReLU, softmax\",1,\"Scaled inputs, Adam\","
        ),
        "{text}"
    );
}
