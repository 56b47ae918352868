//! The workshop through the library API: the README's "The library" section,
//! which CI builds and runs (`.ci/run`).
//!
//! Run: `cargo run --release --example workshop`

use simdnet::data::Mnist;
use simdnet::matrix::MatRef;
use simdnet::nn::{argmax, Activation, Fit, Network, Optimizer};

fn main() -> Result<(), simdnet::Error> {
    let mnist = Mnist::load("data".as_ref())?; // u8 pixels, validated
    let mut net = Network::mlp(784, &[16, 16], 10, Activation::Relu, 1)?;
    Fit::new(&mut net, &mnist.train) // defaults: 4 epochs, batch 128, seed 1
        .optimizer(Optimizer::rmsprop(0.001))
        .validation(&mnist.test)
        .on_epoch(|s| {
            println!(
                "epoch {}: loss {:.4}, accuracy {:.4}",
                s.epoch, s.loss, s.accuracy
            )
        })
        .run()?;
    let eval = net.evaluate(&mnist.test)?;
    println!("test loss {:.4}, test accuracy {:.4}", eval.loss, eval.accuracy);
    let x = MatRef::from_slice(mnist.test.image(0), 1, 784); // u8: scaled by 1/255 inside
    let probs = net.predict(x)?; // (1, 10), rows sum to 1
    println!(
        "y_test[0] = {}, predicted {}",
        mnist.test.labels()[0],
        argmax(probs.row(0))
    );
    let path = std::env::temp_dir().join("workshop.simdnet");
    net.save(&path)?; // atomic: temporary file, then rename
    assert_eq!(Network::load(&path)?, net);
    println!("saved to {}", path.display());
    Ok(())
}
