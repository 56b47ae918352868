//! Training on a table of numbers: a data set this example makes itself.
//!
//! Each example is a point in 3 dimensions drawn around one of 4 class
//! centres (plus one useless noise column): a small table of `f32` values, as
//! a CSV of measurements would give. The values are used as they are (no
//! pixel scale); the network needs one output per class.
//!
//! Run: `cargo run --release --example tabular`

use rand::{Rng, SeedableRng};
use simdnet::data::Dataset;
use simdnet::nn::{Activation, Fit, Network, Optimizer};

/// Features per example: 3 coordinates and a noise column.
const WIDTH: usize = 4;
/// The class centres in 3 dimensions.
const CENTRES: [[f32; 3]; 4] = [
    [1.0, 1.0, 0.0],
    [-1.0, 1.0, 0.5],
    [-1.0, -1.0, 0.0],
    [1.0, -1.0, -0.5],
];

/// `n` labelled points: class `i % 4`, its centre plus Gaussian-ish noise of
/// spread 1.2 (the classes overlap), then a column of pure noise.
fn table(n: usize, seed: u64) -> Result<Dataset, simdnet::Error> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut noise = || (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.2;
    let (mut values, mut labels) = (Vec::with_capacity(n * WIDTH), Vec::with_capacity(n));
    for i in 0..n {
        let class = i % CENTRES.len();
        values.extend(CENTRES[class].iter().map(|c| c + noise()));
        values.push(noise());
        labels.push(class as u8);
    }
    Dataset::from_values(values, labels, WIDTH)
}

fn main() -> Result<(), simdnet::Error> {
    let train = table(2000, 1)?;
    let test = table(500, 2)?;
    let mut net = Network::mlp(WIDTH, &[32, 32], train.classes(), Activation::Tanh, 1)?;
    println!(
        "{} on {} examples of {} values",
        net.describe(),
        train.len(),
        train.features()
    );
    let history = Fit::new(&mut net, &train)
        .epochs(10)
        .batch(32)
        .optimizer(Optimizer::adam(0.003))
        .validation(&test)
        .run()?;
    let last = history.last().expect("10 epochs ran");
    println!(
        "epoch {}: training loss {:.4}, accuracy {:.4}",
        last.epoch, last.loss, last.accuracy
    );
    let eval = net.evaluate(&test)?;
    println!("test accuracy {:.4}", eval.accuracy);
    // Predict one new point near the second centre: class 1.
    let point = simdnet::Matrix::from_slice(1, WIDTH, &[-0.9, 1.1, 0.4, 0.0]);
    println!("the point (-0.9, 1.1, 0.4) is class {}", net.classify(&point)?[0]);
    Ok(())
}
