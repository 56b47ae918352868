//! The workshop through the library API: the README's "The library" section
//! line for line (tests/library.rs checks that every line of that section is
//! here), which CI builds and runs (`.ci/run`).
//!
//! Run: `cargo run --release --example workshop` (from the repository's root:
//! it reads `data/` and writes `model.simdnet` there, as the README does).

use simdnet::data::Mnist;
use simdnet::matrix::MatRef;
use simdnet::nn::{argmax, Activation, Fit, Network, Optimizer};

fn main() -> Result<(), simdnet::Error> {
    let mnist = Mnist::load("data".as_ref())?; // u8 pixels, validated
    let mut net = Network::mlp(784, &[16, 16], 10, Activation::Relu, 1)?;
    Fit::new(&mut net, &mnist.train) // defaults: 4 epochs, batch 128, seed 1
        .optimizer(Optimizer::rmsprop(0.001))
        .validation(&mnist.test)
        .on_epoch(|s| println!("epoch {}: loss {:.4}", s.epoch, s.loss))
        .run()?;
    let eval = net.evaluate(&mnist.test)?; // eval.loss, eval.accuracy
    println!("test loss {:.4}, test accuracy {:.4}", eval.loss, eval.accuracy);
    let x = MatRef::from_slice(mnist.test.image(0), 1, 784); // u8: scaled by 1/255 inside
    let probs = net.predict(x)?; // (1, 10), rows sum to 1
    println!("predicted {}", argmax(probs.row(0)));
    net.save("model.simdnet")?; // atomic; Network::load reads it
    assert_eq!(Network::load("model.simdnet")?, net);
    println!(
        "saved to model.simdnet (label of that test image: {})",
        mnist.test.labels()[0]
    );
    Ok(())
}
