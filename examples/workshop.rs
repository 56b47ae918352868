//! The workshop through the library API (the README's "The library" section).
//!
//! Run: `cargo run --release --example workshop`

use simdnet::data::Mnist;
use simdnet::matrix::MatRef;
use simdnet::nn::{argmax, fit, Activation, Network, Optimizer, Progress, TrainConfig, PIXEL_SCALE};

fn main() -> Result<(), simdnet::Error> {
    let mnist = Mnist::load("data".as_ref())?; // u8 pixels, validated
    let mut net = Network::mlp(784, &[16, 16], 10, Activation::Relu, 1)?;
    let cfg = TrainConfig {
        epochs: 4,
        batch_size: 128,
        seed: 1,
        shuffle: true,
    };
    fit(
        &mut net,
        Optimizer::rmsprop(0.001),
        &mnist.train,
        Some(&mnist.test),
        &cfg,
        &mut |p| {
            if let Progress::Epoch { stats, .. } = p {
                println!(
                    "epoch {}: loss {:.4}, accuracy {:.4}",
                    stats.epoch, stats.loss, stats.accuracy
                );
            }
        },
    )?;
    let eval = net.evaluate(&mnist.test)?;
    println!("test loss {:.4}, test accuracy {:.4}", eval.loss, eval.accuracy);
    let x = MatRef::from_slice(mnist.test.image(0), 1, 784);
    let probs = net.predict(x, PIXEL_SCALE)?; // (1, 10), rows sum to 1
    println!(
        "y_test[0] = {}, predicted {}",
        mnist.test.labels()[0],
        argmax(probs.row(0))
    );
    let path = std::env::temp_dir().join("workshop.simdnet");
    simdnet::nn::model_file::save(&net, &path)?; // atomic: temporary file, then rename
    println!("saved to {}", path.display());
    Ok(())
}
