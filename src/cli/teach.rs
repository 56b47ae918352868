//! `simdnet teach`: the lesson's line-by-line `f64` network (`src/teach`) trains
//! on MNIST, and prints its loss falling step by step, beside the engine's on
//! the same batches from the same starting weights; then the test accuracy.
//!
//! The loop is `teach::fit` (plain loops, `f64`); the engine is `nn::Trainer`
//! (`f32`, fast kernels). Same seed, same weights, same shuffled order, same
//! optimizer: the two loss curves agree to about 1e-7, the rounding of `f32`.

use rand::rngs::StdRng;

use super::args::{Flag, Parsed, UsageError};
use super::CliError;
use crate::activation::Activation;
use crate::data::mnist::Split;
use crate::nn::{Network, Optimizer, Trainer};
use crate::teach::fit::{batch, epoch_order, evaluate, from_engine, shuffle_rng, step};
use crate::teach::network::NetworkOptimizerF64;
use crate::teach::optimizers::OptimizerKind;
use crate::teach::pitfalls::{step_without_zero_grad, GradientBuffers};

pub const ABOUT: &str = "train the line-by-line f64 lesson network on MNIST, beside the engine, step by step";

pub const FLAGS: &[Flag] = &[
    Flag::value("epochs", "N", Some("1"), "passes over the training set"),
    Flag::value(
        "steps",
        "N",
        None,
        "stop after N steps (batches) [default: all the steps of --epochs]",
    ),
    Flag::value(
        "every",
        "K",
        Some("25"),
        "print the loss every K steps (and the first and last)",
    ),
    Flag::value("batch", "N", Some("128"), "examples per step"),
    Flag::value(
        "optimizer",
        "NAME",
        Some("rmsprop"),
        "sgd, momentum, rmsprop or adam, with Keras' defaults",
    ),
    super::common::TEACH_LR,
    Flag::value(
        "layers",
        "WIDTHS",
        Some("16,16"),
        "hidden layer widths, comma-separated",
    ),
    Flag::value(
        "activation",
        "NAME",
        Some("relu"),
        "hidden-layer activation: relu, sigmoid, tanh or identity",
    ),
    Flag::value(
        "seed",
        "N",
        Some("1"),
        "seed of the starting weights and of the shuffle",
    ),
    Flag::switch("no-shuffle", "visit the training images in their stored order"),
    Flag::switch(
        "forget-zero-grad",
        "pitfall 5: never zero the lesson's gradients, so each step follows their sum so far",
    ),
    Flag::value("data", "DIR", Some("data"), "folder with the MNIST files"),
];

/// The most weights and biases the lesson trains (plain f64 loops are slow).
const MAX_PARAMETERS: usize = 2_000_000;
/// The most numbers a batch may hold in all layers' buffers (about 400 MB of f64).
const MAX_BATCH_VALUES: usize = 50_000_000;

/// Parses a count that must be at least 1.
fn at_least_one(p: &Parsed, name: &str) -> Result<Option<usize>, UsageError> {
    match p.opt::<usize>(name)? {
        Some(0) => Err(UsageError(format!("--{name} must be at least 1"))),
        v => Ok(v),
    }
}

pub fn run(p: &Parsed) -> Result<(), CliError> {
    let epochs = at_least_one(p, "epochs")?.unwrap_or(1);
    let max_steps = at_least_one(p, "steps")?;
    let every = at_least_one(p, "every")?.unwrap_or(25);
    let batch_size = at_least_one(p, "batch")?.unwrap_or(128);
    let kind: OptimizerKind = p.get("optimizer")?;
    let lr = super::common::given_lr(p, kind)?.unwrap_or(kind.default_lr());
    let act: Activation = p.get("activation")?;
    let seed: u64 = p.get("seed")?;
    let hidden = super::common::hidden_layers(p)?;
    let shuffle = !p.switch("no-shuffle");
    let zero_grad = !p.switch("forget-zero-grad");

    let train = super::common::load_data(p, Split::Train)?;
    let test = super::common::load_data(p, Split::Test)?;
    if train.is_empty() {
        return Err(crate::Error::Invalid("the training set is empty".into()).into());
    }
    if test.features() != train.features() {
        return Err(crate::Error::Invalid(format!(
            "the test images have {} pixels and the training images {}: use one data set (--data)",
            test.features(),
            train.features()
        ))
        .into());
    }
    let mut sizes = vec![train.features()];
    sizes.extend(&hidden);
    sizes.push(crate::data::NUM_CLASSES);
    let params = sizes.windows(2).try_fold(0usize, |sum, w| {
        w[0].checked_mul(w[1])
            .and_then(|n| n.checked_add(w[1]))
            .and_then(|n| sum.checked_add(n))
    });
    let batch_size = batch_size.min(train.len());
    let values = sizes[1..].iter().try_fold(0usize, |sum, &w| {
        w.checked_mul(batch_size).and_then(|n| sum.checked_add(n))
    });
    if !matches!(params, Some(n) if n <= MAX_PARAMETERS) {
        return Err(UsageError(format!(
            "--layers: the lesson trains at most {MAX_PARAMETERS} weights and biases in plain f64 loops; \
             use narrower --layers (e.g. 16,16), or `simdnet train` for big networks"
        ))
        .into());
    }
    if !matches!(values, Some(n) if n <= MAX_BATCH_VALUES) {
        return Err(UsageError(format!(
            "--batch {batch_size} with --layers {} needs too much memory in f64; use a smaller --batch (e.g. 128)",
            p.raw("layers").unwrap_or("")
        ))
        .into());
    }

    // the same start as `simdnet train --seed SEED`, in f64 for the lesson
    let mut engine = Network::mlp(train.features(), &hidden, crate::data::NUM_CLASSES, act, seed)?;
    let mut net = from_engine(&engine);
    let mut opt = NetworkOptimizerF64::new(kind, lr, &net);
    let engine_opt = Optimizer::from_name(kind.name(), Some(lr as f32)).map_err(UsageError)?;
    let mut trainer = Trainer::new(&engine, engine_opt, batch_size)?;
    let mut sums = GradientBuffers::new(&net);

    let per_epoch = train.len().div_ceil(batch_size);
    let total = max_steps.unwrap_or(epochs.saturating_mul(per_epoch));
    let epochs = total.div_ceil(per_epoch);
    let widths: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
    println!("simdnet teach: the lesson's line-by-line f64 network (src/teach) learns MNIST, step by step");
    println!();
    println!(
        "network    {}, {act}, {} weights and biases: Glorot-uniform, seed {seed}, as `train`",
        widths.join(" -> "),
        net.parameter_count()
    );
    println!(
        "training   {kind}, lr {lr}, batch {batch_size}, {total} steps ({per_epoch} per epoch), {}",
        if shuffle {
            format!("shuffled as `train` does (seed {seed})")
        } else {
            "images in stored order".to_string()
        }
    );
    println!("beside it  the engine (f32, fast kernels) from the same weights, on the same batches");
    if !zero_grad {
        println!("pitfall 5  the lesson never zeroes its gradients: each step follows the sum of all so far");
    }
    println!();
    println!("   step   loss (teach, f64)   loss (engine, f32)   difference");

    let mut rng: StdRng = shuffle_rng(seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut done = 0;
    for epoch in 1..=epochs {
        epoch_order(&mut order, &mut rng, shuffle);
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        let (mut engine_loss, mut engine_correct) = (0.0, 0usize);
        for indices in order.chunks(batch_size) {
            if done == total {
                break;
            }
            done += 1;
            let (x, labels) = batch(&train, indices);
            let rows = labels.len();
            let (loss, right) = if zero_grad {
                step(&mut net, &mut opt, &x, &labels)
            } else {
                let loss = step_without_zero_grad(&mut net, &mut opt, &mut sums, &x, &labels, false);
                (loss, 0)
            };
            let (e_sum, e_right) = trainer.step_indices(&mut engine, &train, indices)?;
            let e_loss = e_sum / rows as f64;
            loss_sum += loss * rows as f64;
            correct += right;
            seen += rows;
            engine_loss += e_sum;
            engine_correct += e_right;
            if !loss.is_finite() {
                return Err(crate::Error::Diverged {
                    epoch,
                    step: done,
                    loss: loss as f32,
                }
                .into());
            }
            if done == 1 || done % every == 0 || done == total {
                let d = (loss - e_loss).abs();
                // below 1e-6 the difference is f32 rounding, and varies between builds
                let d = if d < 1e-6 {
                    "< 1e-6".to_string()
                } else {
                    format!("{d:.6}")
                };
                println!("{done:>7}   {loss:>17.6}   {e_loss:>18.6}   {d:>10}");
            }
        }
        let n = seen.max(1) as f64;
        if zero_grad {
            println!(
                "epoch {epoch}: {seen} images, mean loss {:.4}, accuracy {:.4} (engine {:.4}, {:.4})",
                loss_sum / n,
                correct as f64 / n,
                engine_loss / n,
                engine_correct as f64 / n
            );
        } else {
            println!(
                "epoch {epoch}: {seen} images, mean loss {:.4} (engine {:.4})",
                loss_sum / n,
                engine_loss / n
            );
        }
    }
    let (test_loss, test_acc) = evaluate(&net, &test, 1000);
    let e = engine.evaluate(&test)?;
    println!();
    println!(
        "test set, {} images: loss {test_loss:.4}, accuracy {test_acc:.4}   (engine: loss {:.4}, accuracy {:.4})",
        test.len(),
        e.loss,
        e.accuracy
    );
    Ok(())
}
