//! End-to-end training on the real MNIST: the accuracies the workshop promises.
//!
//! Run in release mode (`cargo test --release`), as the README says.

use std::path::Path;

use simdnet::data::Mnist;
use simdnet::nn::{fit, Activation, Network, Optimizer, TrainConfig};

fn mnist() -> Mnist {
    Mnist::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data"))).expect("bundled MNIST")
}

#[test]
fn workshop_network_reaches_93_percent() {
    // Dense(16, relu) -> Dense(16, relu) -> Dense(10, softmax), RMSprop, batch 128, 4 epochs.
    let data = mnist();
    let mut net = Network::mlp(784, &[16, 16], 10, Activation::Relu, 1).unwrap();
    let history = fit(
        &mut net,
        Optimizer::rmsprop(0.001),
        &data.train,
        None,
        &TrainConfig::default(),
        &mut |_| std::ops::ControlFlow::Continue(()),
    )
    .unwrap();
    assert!(
        history.windows(2).all(|w| w[1].loss < w[0].loss),
        "the training loss falls every epoch"
    );
    let eval = net.evaluate(&data.test).unwrap();
    assert!(eval.accuracy >= 0.93, "test accuracy {}", eval.accuracy);
}

#[test]
fn wide_network_reaches_97_5_percent_in_3_epochs() {
    let data = mnist();
    let mut net = Network::mlp(784, &[512, 512], 10, Activation::Relu, 1).unwrap();
    let cfg = TrainConfig::default().with_epochs(3);
    fit(
        &mut net,
        Optimizer::rmsprop(0.001),
        &data.train,
        None,
        &cfg,
        &mut |_| std::ops::ControlFlow::Continue(()),
    )
    .unwrap();
    let eval = net.evaluate(&data.test).unwrap();
    assert!(eval.accuracy >= 0.975, "test accuracy {}", eval.accuracy);
}

#[test]
fn a_diverging_run_stops_with_a_clear_error() {
    let data = mnist();
    let small = data.train.take(2000);
    let mut net = Network::mlp(784, &[16], 10, Activation::Relu, 1).unwrap();
    let cfg = TrainConfig::default().with_epochs(3);
    let err = fit(&mut net, Optimizer::sgd(1e30), &small, None, &cfg, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("diverged") && msg.contains("--lr"), "{msg}");
}
