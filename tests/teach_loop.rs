//! The second round of the teaching module: the gradient check ([`gradcheck`]),
//! the training loop that follows the engine ([`fit`]), the forgotten
//! `zero_grad` and the wrong backward lines ([`pitfalls`]), and cross-entropy
//! against the squared error on a saturated output.

use std::path::Path;

use rand::SeedableRng;
use simdnet::activation::Activation;
use simdnet::data::mnist::{load_split, Split};
use simdnet::data::Dataset;
use simdnet::nn::{Network, Optimizer, Trainer};
use simdnet::teach::fit::{batch, epoch_order, evaluate, from_engine, shuffle_rng, step};
use simdnet::teach::gradcheck::{check, cost, relative_error, Verdict, RIGHT, WRONG};
use simdnet::teach::loss::saturated_gradients;
use simdnet::teach::network::{tiny_batch, NetworkF64, NetworkOptimizerF64};
use simdnet::teach::pitfalls::{step_without_zero_grad, wrong_backward, Bug, GradientBuffers};
use simdnet::teach::OptimizerKind;

fn train_set() -> Dataset {
    load_split(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data"), Split::Train).unwrap()
}

/// The workshop network (784-16-16-10, Glorot-uniform, seed 1) with `act` in
/// both hidden layers, and training image 0 (a 5), as `explain --digit 0` builds them.
fn workshop(act: Activation, train: &Dataset) -> (NetworkF64, Vec<f64>, Vec<usize>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut net = NetworkF64::glorot_uniform(&[784, 16, 16, 10], act, &mut rng);
    for layer in &mut net.layers[..2] {
        layer.act = act;
    }
    let x = train.image(0).iter().map(|&p| p as f64 / 255.0).collect();
    (net, x, vec![train.labels()[0] as usize])
}

/// The largest relative error of every tensor of the check, with its name.
fn worst_errors(
    net: &NetworkF64,
    x: &[f64],
    labels: &[usize],
    bug: Option<Bug>,
) -> Vec<(String, f64, Verdict)> {
    let fwd = net.forward(x, labels.len());
    let grads = match bug {
        None => net.backward(x, labels, &fwd),
        Some(b) => wrong_backward(net, x, labels, &fwd, b),
    };
    check(net, x, labels, &grads)
        .iter()
        .map(|c| {
            let name = format!("{}{}", if c.bias { "db" } else { "dW" }, c.layer + 1);
            (name, c.worst().1, c.verdict())
        })
        .collect()
}

#[test]
fn relative_error_is_zero_for_two_zeros_and_symmetric() {
    assert_eq!(relative_error(0.0, 0.0), 0.0);
    assert_eq!(relative_error(1.0, 0.0), 1.0);
    assert!((relative_error(1.0, 1.1) - 0.1 / 1.1).abs() < 1e-15);
    assert_eq!(relative_error(2.0, 3.0), relative_error(3.0, 2.0));
    assert_eq!(Verdict::of(1e-7), Verdict::Right);
    assert_eq!(Verdict::of(1e-4), Verdict::Suspicious);
    assert_eq!(Verdict::of(0.5), Verdict::Wrong);
}

#[test]
fn every_gradient_of_the_tiny_and_the_workshop_network_checks_below_1e_6() {
    let train = train_set();
    for act in Activation::ALL {
        let (x, labels) = tiny_batch();
        let tiny = NetworkF64::tiny(act);
        let (big, bx, blabels) = workshop(act, &train);
        for (what, errors) in [
            ("tiny", worst_errors(&tiny, &x, &labels, None)),
            ("workshop", worst_errors(&big, &bx, &blabels, None)),
        ] {
            assert_eq!(errors.len(), 2 * (if what == "tiny" { 2 } else { 3 }));
            for (name, err, verdict) in errors {
                assert!(err < RIGHT, "{act} {what} {name}: relative error {err:e}");
                assert_eq!(verdict, Verdict::Right, "{act} {what} {name}");
            }
        }
    }
}

#[test]
fn a_wrong_backward_line_shows_errors_above_1e_2() {
    let (x, labels) = tiny_batch();
    for act in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
        let net = NetworkF64::tiny(act);
        for bug in Bug::ALL {
            let errors = worst_errors(&net, &x, &labels, Some(bug));
            let worst = errors.iter().map(|e| e.1).fold(0.0, f64::max);
            assert!(worst > WRONG, "{act} {bug:?}: largest error only {worst:e}");
            assert!(errors.iter().any(|e| e.2 == Verdict::Wrong), "{act} {bug:?}");
        }
        // the forgotten slope leaves the output layer right (its slope is 1) and breaks the hidden one
        let errors = worst_errors(&net, &x, &labels, Some(Bug::ForgottenSlope));
        assert!(errors[2].1 < RIGHT && errors[3].1 < RIGHT, "{act}: {errors:?}");
        assert!(errors[0].1 > WRONG, "{act}: {errors:?}");
    }
    // the names the command line takes
    assert_eq!("overwrite".parse::<Bug>(), Ok(Bug::Overwrite));
    assert_eq!("forgotten-slope".parse::<Bug>(), Ok(Bug::ForgottenSlope));
    assert!("nonsense"
        .parse::<Bug>()
        .unwrap_err()
        .contains("forgotten-slope or overwrite"));
}

#[test]
fn the_cost_of_finite_differences_for_the_workshop_network() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let net = NetworkF64::glorot_uniform(&[784, 16, 16, 10], Activation::Relu, &mut rng);
    let c = cost(&net, 1);
    assert_eq!(c.forward, 784 * 16 + 16 * 16 + 16 * 10); // 12,960
    assert_eq!(c.backward, 12_960 + 16 * 16 + 16 * 10); // dW everywhere, dx above the first layer
    assert_eq!(c.parameters, 13_002);
    assert_eq!(c.finite_differences, 2 * 13_002 * 12_960); // 337,011,840
    assert_eq!(c.finite_differences / c.backward, 25_195);
}

#[test]
fn cross_entropy_keeps_its_gradient_on_a_saturated_wrong_output_squared_error_loses_it() {
    let z = [8.0, 0.0];
    let (ce, se) = saturated_gradients(&z, 1);
    // p = (0.999665, 0.000335): cross-entropy's dz = p - y
    assert!(
        (ce[0] - 0.999665).abs() < 1e-6 && (ce[1] + 0.999665).abs() < 1e-6,
        "{ce:?}"
    );
    // the squared error's, against a central difference of ½ Σ (p - y)²
    let se_loss = |z0: f64, z1: f64| {
        let (e0, e1) = (z0.exp(), z1.exp());
        let (p0, p1) = (e0 / (e0 + e1), e1 / (e0 + e1));
        0.5 * (p0 * p0 + (p1 - 1.0) * (p1 - 1.0))
    };
    let h = 1e-5;
    let numeric = [
        (se_loss(8.0 + h, 0.0) - se_loss(8.0 - h, 0.0)) / (2.0 * h),
        (se_loss(8.0, h) - se_loss(8.0, -h)) / (2.0 * h),
    ];
    for k in 0..2 {
        assert!(relative_error(se[k], numeric[k]) < 1e-6, "{se:?} vs {numeric:?}");
    }
    assert!(ce[0].abs() / se[0].abs() > 1000.0, "{ce:?} {se:?}");
}

#[test]
fn the_teaching_loop_and_the_engine_follow_the_same_loss_curve_for_100_steps() {
    let train = train_set();
    let (rows, steps) = (128, 100);
    for (kind, engine_opt) in [
        (OptimizerKind::Sgd, Optimizer::sgd(0.01)),
        (OptimizerKind::Momentum, Optimizer::momentum(0.01, 0.9)),
        (OptimizerKind::RmsProp, Optimizer::rmsprop(0.001)),
        (OptimizerKind::Adam, Optimizer::adam(0.001)),
    ] {
        // the same start, the same order, the same learning rate (the engine's f32 one)
        let mut engine = Network::mlp(784, &[16, 16], 10, Activation::Relu, 1).unwrap();
        let mut net = from_engine(&engine);
        let mut opt = NetworkOptimizerF64::new(kind, engine_opt.lr() as f64, &net);
        let mut trainer = Trainer::new(&engine, engine_opt, rows).unwrap();
        let mut order: Vec<usize> = (0..train.len()).collect();
        epoch_order(&mut order, &mut shuffle_rng(1), true);
        let (mut first, mut last) = (0.0, 0.0);
        for (s, indices) in order.chunks(rows).take(steps).enumerate() {
            let (engine_sum, engine_right) = trainer.step_indices(&mut engine, &train, indices).unwrap();
            let engine_loss = engine_sum / rows as f64;
            let (x, labels) = batch(&train, indices);
            let (loss, right) = step(&mut net, &mut opt, &x, &labels);
            let rel = (loss - engine_loss).abs() / loss;
            // f32 against f64: measured at most 1.1e-7 over these 100 steps for SGD,
            // momentum and RMSprop; Adam moves every weight by about lr whatever the
            // size of its gradient, so the rounding of tiny gradients shows more (1.1e-6)
            let bound = if kind == OptimizerKind::Adam { 1e-5 } else { 1e-6 };
            assert!(
                rel < bound,
                "{kind} step {}: teaching loss {loss}, engine {engine_loss} (relative {rel:e})",
                s + 1
            );
            assert!(right.abs_diff(engine_right) <= 1, "{kind} step {}", s + 1);
            if s == 0 {
                first = loss;
            }
            last = loss;
        }
        assert!(last < first, "{kind}: the loss did not fall ({first} -> {last})");
    }
}

#[test]
fn the_shuffle_is_the_engines() {
    // `train` (nn::fit) with one epoch and the teaching loop over the same epoch
    // order end at the same weights, to f32 rounding
    let train = train_set().take(1000);
    let mut engine = Network::mlp(784, &[8], 10, Activation::Relu, 3).unwrap();
    let mut net = from_engine(&engine);
    let cfg = simdnet::nn::TrainConfig::default()
        .with_epochs(1)
        .with_batch_size(100)
        .with_seed(3);
    simdnet::nn::fit(&mut engine, Optimizer::sgd(0.1), &train, None, &cfg, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    let mut opt = NetworkOptimizerF64::new(OptimizerKind::Sgd, 0.1f32 as f64, &net);
    let mut order: Vec<usize> = (0..train.len()).collect();
    epoch_order(&mut order, &mut shuffle_rng(3), true);
    for indices in order.chunks(100) {
        let (x, labels) = batch(&train, indices);
        step(&mut net, &mut opt, &x, &labels);
    }
    let after = from_engine(&engine);
    for (l, (t, e)) in net.layers.iter().zip(&after.layers).enumerate() {
        let diff =
            t.w.iter()
                .zip(&e.w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
        assert!(diff < 1e-4, "layer {l}: weights differ by {diff}");
    }
    // and another order really differs
    let mut other: Vec<usize> = (0..train.len()).collect();
    epoch_order(&mut other, &mut shuffle_rng(4), true);
    assert_ne!(order, other);
}

#[test]
fn a_forgotten_zero_grad_steps_with_the_sum_of_every_gradient_so_far() {
    let (x, labels) = tiny_batch();
    let lr = 0.5;
    // right: two SGD steps, each with its own gradient
    let mut right = NetworkF64::tiny(Activation::Relu);
    let mut opt = NetworkOptimizerF64::new(OptimizerKind::Sgd, lr, &right);
    let mut sums = GradientBuffers::new(&right);
    let w0 = right.layers[1].w.clone();
    let g0 = {
        let fwd = right.forward(&x, 2);
        right.backward(&x, &labels, &fwd).dw[1].clone()
    };
    step_without_zero_grad(&mut right, &mut opt, &mut sums, &x, &labels, true);
    let g1 = {
        let fwd = right.forward(&x, 2);
        right.backward(&x, &labels, &fwd).dw[1].clone()
    };
    step_without_zero_grad(&mut right, &mut opt, &mut sums, &x, &labels, true);
    // forgotten: the second step follows g0 + g1
    let mut wrong = NetworkF64::tiny(Activation::Relu);
    let mut opt = NetworkOptimizerF64::new(OptimizerKind::Sgd, lr, &wrong);
    let mut sums = GradientBuffers::new(&wrong);
    step_without_zero_grad(&mut wrong, &mut opt, &mut sums, &x, &labels, false);
    step_without_zero_grad(&mut wrong, &mut opt, &mut sums, &x, &labels, false);
    for k in 0..w0.len() {
        let want_right = w0[k] - lr * g0[k] - lr * g1[k];
        let want_wrong = w0[k] - lr * g0[k] - lr * (g0[k] + g1[k]);
        assert!((right.layers[1].w[k] - want_right).abs() < 1e-12, "right W2[{k}]");
        assert!((wrong.layers[1].w[k] - want_wrong).abs() < 1e-12, "wrong W2[{k}]");
    }
    assert_ne!(right.layers[1].w, wrong.layers[1].w);
}

#[test]
fn one_epoch_of_the_teaching_network_reaches_90_percent_on_the_test_set() {
    let train = train_set();
    let test = load_split(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data"), Split::Test).unwrap();
    let engine = Network::mlp(784, &[16, 16], 10, Activation::Relu, 1).unwrap();
    let mut net = from_engine(&engine);
    let mut opt = NetworkOptimizerF64::new(OptimizerKind::RmsProp, 0.001, &net);
    let mut order: Vec<usize> = (0..train.len()).collect();
    epoch_order(&mut order, &mut shuffle_rng(1), true);
    let (before, _) = evaluate(&net, &test, 1000);
    for indices in order.chunks(128) {
        let (x, labels) = batch(&train, indices);
        step(&mut net, &mut opt, &x, &labels);
    }
    let (loss, accuracy) = evaluate(&net, &test, 1000);
    assert!(accuracy >= 0.90, "test accuracy {accuracy} after one epoch");
    assert!(loss < before / 2.0, "test loss {before} -> {loss}");
}
