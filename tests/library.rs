//! The library API a user meets first: data sets of f32 values as well as u8
//! pixels, inputs whose scale follows from their type, the `Fit` builder and
//! its defaults, `Network::save`/`load`, and the README's library section
//! kept line for line in `examples/workshop.rs`.

mod common;

use common::{bits, synthetic, temp_file};
use simdnet::data::{Dataset, Input};
use simdnet::matrix::MatRef;
use simdnet::nn::confusion::Confusion;
use simdnet::nn::{fit, Activation, Fit, Network, Optimizer, TrainConfig, Trainer};

/// `n` examples of 3 values in 3 classes: the class is which of the first
/// two values is larger, or 2 when both are small; the third is noise.
fn table(n: usize) -> Dataset {
    let mut s = 777u32;
    let mut next = || {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
    };
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (a, b, noise) = (next(), next(), next());
        values.extend([a, b, noise]);
        labels.push(if a.max(b) < -0.3 { 2 } else { (b > a) as u8 });
    }
    Dataset::from_values(values, labels, 3).unwrap()
}

#[test]
fn a_table_of_f32_values_trains_with_the_builder() {
    let data = table(1200);
    let (train, test) = data.split_tail(0.25).unwrap();
    assert!(matches!(train.input(), Input::Values(_)) && !train.is_pixels());
    assert_eq!((train.features(), data.classes()), (3, 3));
    let mut net = Network::mlp(3, &[32], 3, Activation::Tanh, 2).unwrap();
    let mut epochs_seen = Vec::new();
    let history = Fit::new(&mut net, &train)
        .epochs(15)
        .batch(32)
        .optimizer(Optimizer::adam(0.01))
        .validation(&test)
        .on_epoch(|s| epochs_seen.push(s.epoch))
        .run()
        .unwrap();
    assert_eq!(epochs_seen, (1..=15).collect::<Vec<_>>());
    assert_eq!(history.len(), 15);
    let acc = net.evaluate(&test).unwrap().accuracy;
    assert!(acc > 0.9, "test accuracy {acc}");
    assert_eq!(history[14].validation.unwrap().accuracy, acc);
    // The confusion matrix reads the values the same way as the evaluation.
    assert_eq!(Confusion::of(&net, &test).unwrap().accuracy(), acc);
}

/// Each epoch's step times (`nn::step_times`): every step once, the run's
/// first step apart, in epoch 1 only.
#[test]
fn each_epoch_times_its_steps_with_the_first_apart() {
    let train = table(900);
    let mut net = Network::mlp(3, &[8], 3, Activation::Relu, 1).unwrap();
    let history = Fit::new(&mut net, &train).epochs(2).batch(32).run().unwrap();
    // 900 examples in batches of 32: 28 full and one of 4.
    let (one, two) = (history[0].steps.unwrap(), history[1].steps.unwrap());
    assert_eq!((one.steps, two.steps), (28, 29));
    assert!(one.first.is_some_and(|t| t > 0.0) && two.first.is_none());
    for (t, epoch) in [one, two].into_iter().zip(&history) {
        assert!(
            0.0 < t.p10 && t.p10 <= t.median && t.median <= t.p90 && t.p90 <= t.slowest,
            "{t:?}"
        );
        // At least the steps from the tenth up take p10 or more (the faster
        // tenth, here the batch of 4 among them, may take far less).
        let at_least_p10 = t.steps - (t.steps - 1) / 10;
        assert!(
            t.total >= at_least_p10 as f64 * t.p10 && t.total <= t.steps as f64 * t.slowest,
            "{t:?}"
        );
        // The steps ran inside the epoch's training time.
        assert!(
            t.total + t.first.unwrap_or(0.0) <= epoch.train_seconds,
            "{t:?} {epoch:?}"
        );
    }
}

#[test]
fn a_values_step_is_a_step_on_the_gathered_values_at_scale_one() {
    let data = table(100);
    let Input::Values(all) = data.input() else {
        panic!("values expected")
    };
    let idx = [5usize, 17, 3, 99, 42, 0, 64];
    let gathered: Vec<f32> = idx
        .iter()
        .flat_map(|&i| all.data()[i * 3..i * 3 + 3].to_vec())
        .collect();
    let labels: Vec<u8> = idx.iter().map(|&i| data.labels()[i]).collect();
    let net = Network::mlp(3, &[8], 3, Activation::Relu, 4).unwrap();
    let (mut a, mut b) = (net.clone(), net);
    let mut ta = Trainer::new(&a, Optimizer::sgd(0.1), 8).unwrap();
    let mut tb = Trainer::new(&b, Optimizer::sgd(0.1), 8).unwrap();
    let ra = ta.step_indices(&mut a, &data, &idx).unwrap();
    let rb = tb
        .step(&mut b, MatRef::from_slice(&gathered, idx.len(), 3), 1.0, &labels)
        .unwrap();
    assert_eq!(ra.0.to_bits(), rb.0.to_bits());
    assert_eq!(bits(&a), bits(&b));
}

#[test]
fn pixels_are_scaled_by_the_networks_scale_and_values_are_not() {
    let data = synthetic(40);
    // Tanh: a ReLU network with zero biases would pick the same class at any scale.
    let net = Network::mlp(64, &[16], 10, Activation::Tanh, 3).unwrap();
    let scaled: Vec<f32> = data
        .pixels()
        .iter()
        .map(|&p| p as f32 * net.input_scale())
        .collect();
    let values = Dataset::from_values(scaled.clone(), data.labels().to_vec(), 64).unwrap();
    let x = MatRef::from_slice(&scaled, 40, 64);
    let by_hand = net.predict_scaled(x, 1.0).unwrap();
    assert_eq!(net.predict(data.images()).unwrap(), by_hand);
    assert_eq!(net.predict(&data).unwrap(), by_hand);
    assert_eq!(net.predict(x).unwrap(), by_hand);
    assert_eq!(net.predict(&values).unwrap(), by_hand);
    assert_eq!(net.evaluate(&values).unwrap(), net.evaluate(&data).unwrap());
    assert_eq!(
        Confusion::of(&net, &values).unwrap(),
        Confusion::of(&net, &data).unwrap()
    );
    // A network that reads raw pixels (scale 1) is used with its own scale everywhere.
    let raw = net.clone().with_input_scale(1.0).unwrap();
    let raw_probs = raw.predict_scaled(data.images(), 1.0).unwrap();
    assert_eq!(raw.predict(&data).unwrap(), raw_probs);
    let raw_classes = raw.classify(&data).unwrap();
    let want: Vec<usize> = (0..40).map(|r| simdnet::nn::argmax(raw_probs.row(r))).collect();
    assert_eq!(raw_classes, want);
    assert_eq!(
        Confusion::of(&raw, &data).unwrap(),
        Confusion::from_predictions(10, data.labels(), &want).unwrap()
    );
}

#[test]
fn fit_defaults_are_the_documented_ones() {
    let data = synthetic(300);
    let net = Network::mlp(64, &[12], 10, Activation::Relu, 9).unwrap();
    let (mut a, mut b) = (net.clone(), net);
    let ha = Fit::new(&mut a, &data).run().unwrap();
    let cfg = TrainConfig::default()
        .with_epochs(4)
        .with_batch_size(128)
        .with_seed(1);
    assert_eq!(cfg, TrainConfig::default());
    let hb = fit(&mut b, Optimizer::rmsprop(0.001), &data, None, &cfg, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(ha.len(), 4);
    assert_eq!(
        ha.iter().map(|s| s.loss).collect::<Vec<_>>(),
        hb.iter().map(|s| s.loss).collect::<Vec<_>>()
    );
}

#[test]
fn the_builder_reports_bad_settings_with_the_fix() {
    let data = table(50);
    let mut net = Network::mlp(3, &[4], 3, Activation::Relu, 1).unwrap();
    let e = Fit::new(&mut net, &data)
        .early_stopping(2)
        .run()
        .unwrap_err()
        .to_string();
    assert!(e.contains("early stopping needs a validation set"), "{e}");
    let e = Fit::new(&mut net, &data).batch(0).run().unwrap_err().to_string();
    assert!(e.contains("the batch size must be at least 1"), "{e}");
    let mut two = Network::mlp(3, &[4], 2, Activation::Relu, 1).unwrap();
    let e = Fit::new(&mut two, &data).run().unwrap_err().to_string();
    assert!(
        e.contains("label 2 is out of range for a network with 2 outputs"),
        "{e}"
    );
}

#[test]
fn a_values_data_set_checks_its_shape_and_its_numbers() {
    let e = Dataset::from_values(vec![0.0; 7], vec![0, 1], 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("7 values do not make 2 examples of 3 features"), "{e}");
    let e = Dataset::from_values(vec![0.0, 1.0, f32::NAN, 2.0], vec![0, 1], 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("value 2 (example 1, feature 0) is NaN"), "{e}");
    let d = Dataset::from_values(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![0, 200, 7], 2).unwrap();
    assert_eq!(d.classes(), 201);
    let first = d.take(2);
    assert_eq!((first.len(), first.labels()), (2, &[0u8, 200][..]));
    let Input::Values(x) = first.input() else {
        panic!("values expected")
    };
    assert_eq!(x.data(), &[1.0, 2.0, 3.0, 4.0]);
    // u8 pixels with any labels.
    let p = Dataset::from_pixels(vec![1, 2, 3, 4], vec![0, 99], 2).unwrap();
    assert!(p.is_pixels());
    assert_eq!(p.image(1), &[3, 4]);
}

#[test]
fn the_teaching_batch_reads_values_as_they_are() {
    let d = Dataset::from_values(vec![0.5, -2.0, 3.0, 4.0], vec![1, 0], 2).unwrap();
    let (x, labels) = simdnet::teach::fit::batch(&d, &[1, 0]);
    assert_eq!(x, vec![3.0, 4.0, 0.5, -2.0]);
    assert_eq!(labels, vec![0, 1]);
}

#[test]
fn save_and_load_are_methods_of_the_network() {
    let net = Network::mlp(3, &[5], 4, Activation::Sigmoid, 8)
        .unwrap()
        .with_input_scale(1.0)
        .unwrap();
    let path = temp_file("library", "m.simdnet");
    net.save(&path).unwrap();
    let back = Network::load(&path).unwrap();
    assert_eq!(back, net);
    assert_eq!(back.input_scale(), 1.0);
    let e = Network::load(path.with_extension("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("m.missing"), "{e}");
}

/// The README's "The library" code, line by line without comments and spaces.
fn readme_library_lines() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## The library\n")
        .nth(1)
        .expect("README has a library section");
    let code = section
        .split("```rust\n")
        .nth(1)
        .expect("the section has a rust block");
    let code = code.split("\n```").next().unwrap();
    code.lines().map(normal).filter(|l| !l.is_empty()).collect()
}

/// A line without its `//` comment and without any whitespace.
fn normal(line: &str) -> String {
    let code = line.split("//").next().unwrap();
    code.chars().filter(|c| !c.is_whitespace()).collect()
}

#[test]
fn the_readme_library_section_is_the_workshop_example() {
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/workshop.rs")).unwrap();
    // rustfmt may wrap a line of the example: compare against all of it, joined.
    let example: String = example.lines().map(normal).collect();
    let lines = readme_library_lines();
    assert!(lines.len() >= 10, "{lines:?}");
    for line in lines {
        assert!(
            example.contains(line.as_str()),
            "the README's library line `{line}` is not in examples/workshop.rs: keep the two the same"
        );
    }
}

/// Set in the child process of [`fit_warns_once_when_the_build_lacks_the_cpus_simd`].
const CHILD: &str = "SIMDNET_TEST_LIBRARY_WARNING_CHILD";

/// A program that trains through the library learns, once, that its build
/// lacks SIMD the CPU has (or, here, has SIMD the CPU is said to lack): the
/// test re-runs itself as a child with `SIMDNET_ASSUME_CPU_FEATURES` set to a
/// CPU with no SIMD at all, so any build but a scalar one must warn; the child
/// trains twice and the warning must appear exactly once.
#[test]
fn fit_warns_once_when_the_build_lacks_the_cpus_simd() {
    const NAME: &str = "fit_warns_once_when_the_build_lacks_the_cpus_simd";
    if std::env::var_os(CHILD).is_some() {
        for _ in 0..2 {
            let mut net = Network::mlp(3, &[4], 3, Activation::Relu, 1).unwrap();
            Fit::new(&mut net, &table(64)).epochs(1).run().unwrap();
        }
        return;
    }
    let run = |assume: Option<&str>| {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args([NAME, "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD, "1")
            .env_remove(ASSUME);
        if let Some(features) = assume {
            child.env(ASSUME, features);
        }
        let out = child.output().unwrap();
        assert!(out.status.success(), "child failed: {out:?}");
        String::from_utf8_lossy(&out.stderr)
            .matches("warning: this simdnet was built")
            .count()
    };
    use simdnet::simd::{
        build_vs_cpu_warning, native_warning, ASSUME_CPU_FEATURES_ENV as ASSUME, TARGET_FEATURES,
    };
    // A CPU without SIMD: every SIMD build must warn, once.
    let expected = build_vs_cpu_warning(TARGET_FEATURES, &[]).is_some() as usize;
    assert_eq!(run(Some("")), expected, "a CPU without SIMD");
    assert_eq!(expected, usize::from(TARGET_FEATURES.iter().any(|&(_, on)| on)));
    // This CPU as it is: a native build (this repository's .cargo/config.toml)
    // has nothing to say; a portable one warns once.
    assert_eq!(run(None), native_warning().is_some() as usize, "this CPU");
}
